// SPDX-License-Identifier: MIT
//
// zmq-pub's replay store in the message store's database (replay_db.hpp): the replay_log
// table, numbered per publisher name, the replay query translated to SQL (sql.hpp).
#include "replay_db.hpp"

#include <mutex>

#include "db.hpp"

namespace switchyard::store {
namespace {

class DbReplayStore final : public replay::Store {
 public:
  DbReplayStore(std::unique_ptr<Database> db, std::string name) : db_(std::move(db)), name_(std::move(name)) {
    auto st = db_->replayStats(name_);
    next_ = st.max_seq + 1;
    records_ = static_cast<std::size_t>(st.records);
    bytes_ = static_cast<std::size_t>(st.bytes);
  }

  std::int64_t nextSeqId() override {
    std::lock_guard lock(mu_);
    return next_;
  }

  void add(replay::Record r) override {
    std::lock_guard lock(mu_);
    try {
      db_->replayAdd(name_, r);
    } catch (const DbError &e) {
      throw std::runtime_error(e.what());
    }
    next_ = r.seq_id + 1;
    ++records_;
    bytes_ += r.envelope.size();
  }

  std::vector<replay::Record> query(const replay::Query &q, std::size_t limit) override {
    std::lock_guard lock(mu_);
    try {
      return db_->replayQuery(name_, q, limit);
    } catch (const DbError &e) {
      throw std::runtime_error(e.what());
    }
  }

  std::size_t size() override {
    std::lock_guard lock(mu_);
    return records_;
  }
  std::size_t bytes() override {
    std::lock_guard lock(mu_);
    return bytes_;
  }

 private:
  std::mutex mu_;
  std::unique_ptr<Database> db_;
  std::string name_;
  std::int64_t next_ = 1;
  std::size_t records_ = 0;
  std::size_t bytes_ = 0;
};

}  // namespace

std::unique_ptr<replay::Store> openReplayStore(std::string_view url, std::string_view name, std::string &error) {
  try {
    if (name.empty()) {
      error = "the replay store needs a publisher name (zmq-pub's name)";
      return nullptr;
    }
    return std::make_unique<DbReplayStore>(Database::open(url), std::string(name));
  } catch (const std::exception &e) {
    error = e.what();
    return nullptr;
  }
}

}  // namespace switchyard::store
