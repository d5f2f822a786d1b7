// SPDX-License-Identifier: MIT
//
// The message store's database as zmq-pub's replay store (`replay_database:`): zmq-pub
// keeps each envelope it publishes, numbered with its seq_id, in the same database the
// `store` sink writes (sqlite:PATH or postgresql://...), and answers replay queries from it;
// numbering continues across restarts. Built into libswitchyard-store-db (a static library,
// PIC) that zmq-pub links when the store is built (meson: sy_store_db_found).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "switchyard/replay.hpp"

namespace switchyard::store {

/// Opens (creating the tables if missing) the database @p url as a replay store for the
/// publisher named @p name (several publishers may share one database; each numbers its own
/// seq_ids). Returns nullptr and sets @p error (naming the database, without a password,
/// and how to fix) when it cannot.
std::unique_ptr<replay::Store> openReplayStore(std::string_view url, std::string_view name,
                                               std::string &error);

}  // namespace switchyard::store
