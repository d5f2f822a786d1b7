// SPDX-License-Identifier: MIT
// Internal to libswitchyard-store-db: the backends' constructors.
#pragma once

#include <memory>
#include <string>

#include "db.hpp"

namespace switchyard::store {

std::unique_ptr<Database> openSqlite(const std::string &path, const std::string &url);
/// Defined only when built with libpq (SY_STORE_HAVE_PQ).
std::unique_ptr<Database> openPostgres(const std::string &url, int connect_timeout_s);
double nowSeconds();

}  // namespace switchyard::store
