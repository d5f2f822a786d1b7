// SPDX-License-Identifier: MIT
//
// store (sink): keeps every message in a database, like datanommer (docs/plugins/store.md).
//
//   outputs: [{type: store, database: "sqlite:/var/lib/switchyard/messages.db"}]
//
// Messages are inserted in batches (batch_size messages, or what came within batch_ms),
// one transaction each, and each is acknowledged (Delivered) only after its transaction
// committed. An id already stored is skipped by the database (unique id) and counted as a
// duplicate: still Delivered, so a redelivered message is acknowledged again. When the
// database fails, the batch is kept and committed again after a reconnect with backoff;
// meanwhile send() blocks (backpressure: the input stops taking messages).
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "db.hpp"
#include "switchyard/backoff.hpp"
#include "switchyard/sdk.hpp"

namespace {

using namespace switchyard;
using Clock = std::chrono::steady_clock;

const sy_config_key kSchema[] = {
    sdk::key("database", SY_CFG_STRING, nullptr,
             "sqlite:PATH (a file, created if missing) or postgresql://USER:PASSWORD@HOST:PORT/DBNAME.")
        .required()
        .secret(),
    sdk::key("batch_size", SY_CFG_INT, "500", "Messages per transaction at most.").range(1, 100000),
    sdk::key("batch_ms", SY_CFG_INT, "100",
             "A batch is committed when it is this many milliseconds old, even if not full.")
        .range(0, 60000),
    sdk::kEndOfSchema,
};

bool isDatabaseUrl(const std::string &u) {
  for (const char *p : {"sqlite:", "postgresql://", "postgres://"}) {
    if (u.rfind(p, 0) == 0 && u.size() > std::string_view(p).size()) {
      return true;
    }
  }
  return false;
}

double wallNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class StoreSink final : public Sink {
 public:
  explicit StoreSink(const sdk::Config &c)
      : url_(c.str("database")),
        batch_size_(static_cast<std::size_t>(c.integer("batch_size"))),
        batch_age_(std::chrono::milliseconds(c.integer("batch_ms"))),
        backoff_({.initial_s = 0.2, .max_s = 10, .jitter = 0.25, .first_max_s = 0.3}) {
    if (!isDatabaseUrl(url_)) {
      c.problem("database", "'" + store::redactUrl(url_) +
                                "' is not a database URL: write sqlite:PATH (a file, created if missing) or "
                                "postgresql://USER:PASSWORD@HOST:PORT/DBNAME");
    }
  }

  Status probe(ProbeReport &report, std::chrono::milliseconds timeout) noexcept override {
    try {
      auto db = store::Database::open(url_, static_cast<int>(std::max<std::int64_t>(1, timeout.count() / 1000)));
      report.result(db->name(), Status::ok());
    } catch (const std::exception &e) {
      report.result(store::redactUrl(url_), Status::fatal(e.what()));
    }
    return Status::ok();
  }

  Status start(SinkContext &ctx) noexcept override {
    stored_ = &ctx.counter("stored");
    duplicates_ = &ctx.counter("duplicates");
    commit_errors_ = &ctx.counter("commit_errors");
    reconnects_ = &ctx.counter("reconnects");
    connected_ = &ctx.gauge("connected");
    held_ = &ctx.gauge("held");
    connect(ctx);
    return Status::ok();
  }

  void send(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept override {
    // Backpressure: nothing new is taken while the database is down or a batch is held.
    while ((failed_ || !db_) && !ctx.stopping()) {
      if (!recover(ctx)) {
        waitUntil(ctx, next_try_, false);
      }
    }
    try {
      if (batch_.empty()) {
        first_at_ = Clock::now();
      }
      // The row now: the message itself is not needed any more (a failed batch is kept
      // and committed again, never handed back).
      batch_.push_back({id, store::rowFromMessage(msg, wallNow())});
    } catch (...) {
      ctx.done(id, Outcome::Retry, "out_of_memory");
      return;
    }
    if (!failed_ && db_ && (batch_.size() >= batch_size_ || Clock::now() - first_at_ >= batch_age_)) {
      commit(ctx);
    }
  }

  Status poll(SinkContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    auto until = Clock::now() + timeout;
    if (failed_ || !db_) {
      if (!recover(ctx)) {
        waitUntil(ctx, std::min(until, next_try_), false);
      }
      return Status::ok();
    }
    if (!batch_.empty()) {
      auto due = first_at_ + batch_age_;
      if (Clock::now() >= due) {
        commit(ctx);
        return Status::ok();
      }
      until = std::min(until, due);
    }
    waitUntil(ctx, until, true);
    return Status::ok();
  }

  Status flush(SinkContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    auto deadline = Clock::now() + timeout;
    while (!batch_.empty() && Clock::now() < deadline) {
      if (failed_ || !db_) {
        if (!recover(ctx)) {
          waitUntil(ctx, std::min(deadline, next_try_), false);
        }
      } else {
        commit(ctx);
      }
    }
    // Not stored in time: left to the input (AMQP redelivers; other inputs count them lost).
    for (auto &p : batch_) {
      ctx.counter("failed", "database_unavailable").add();
      ctx.done(p.id, Outcome::Retry, "database_unavailable");
    }
    batch_.clear();
    held_->set(0);
    return Status::ok();
  }

  void stop() noexcept override { db_.reset(); }

 private:
  struct Pending {
    DeliveryId id;
    store::Row row;
  };

  void waitUntil(SinkContext &ctx, Clock::time_point t, bool wake) noexcept {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
    if (ms <= 0) {
      return;
    }
    pollfd pfd{wake ? ctx.wakeFd() : -1, POLLIN, 0};
    (void)::poll(&pfd, 1, static_cast<int>(std::min<long long>(ms, 200)));
  }

  void connect(SinkContext &ctx) noexcept {
    try {
      db_ = store::Database::open(url_);
      connected_->set(1);
      if (ever_connected_) {
        reconnects_->add();
      }
      ever_connected_ = true;
      ctx.log().info("store: connected to {}", db_->name());
    } catch (const std::exception &e) {
      db_.reset();
      connected_->set(0);
      auto wait = backoff_.next();
      next_try_ = Clock::now() + wait;
      ctx.log().error("store: {}; trying again in {} ms", e.what(), wait.count());
    }
  }

  /// Reconnects when due and commits the held batch. True when the sink can take messages.
  bool recover(SinkContext &ctx) noexcept {
    if (Clock::now() < next_try_) {
      return false;
    }
    if (!db_) {
      connect(ctx);
      if (!db_) {
        return false;
      }
    }
    if (failed_) {
      commit(ctx);
    }
    return !failed_ && db_;
  }

  void commit(SinkContext &ctx) noexcept {
    if (batch_.empty()) {
      failed_ = false;
      return;
    }
    try {
      rows_.clear();
      rows_.reserve(batch_.size());
      for (auto &p : batch_) {
        rows_.push_back(std::move(p.row));
      }
      std::size_t added = 0;
      try {
        added = db_->insert(rows_);
      } catch (const store::DbError &e) {
        if (!e.dataError()) {
          throw;
        }
        restoreRows();
        commitOneByOne(ctx, e.what());
        return;
      }
      settle(ctx, added, batch_.size());
      batch_.clear();
      rows_.clear();
      held_->set(0);
      failed_ = false;
      backoff_.reset();
    } catch (const std::exception &e) {
      restoreRows();
      commit_errors_->add();
      failed_ = true;
      held_->set(static_cast<std::int64_t>(batch_.size()));
      db_.reset();
      connected_->set(0);
      auto wait = backoff_.next();
      next_try_ = Clock::now() + wait;
      ctx.log().error("store: a batch of {} message(s) was not committed: {}; trying again in {} ms",
                      batch_.size(), e.what(), wait.count());
    }
  }

  /// A batch the database refused for its data: each row in its own transaction, so that
  /// only the rows it refuses are rejected (failed{reason=invalid_row}).
  std::size_t commitOneByOne(SinkContext &ctx, const std::string &why) {
    ctx.log().warn("store: the database refused a batch ({}); storing its {} message(s) one by one", why,
                   batch_.size());
    const auto &rows = batch_;
    std::size_t added = 0;
    std::vector<Pending> left;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      try {
        std::size_t n = db_->insert({rows[i].row});
        added += n;
        stored_->add(n);
        duplicates_->add(1 - n);
        ctx.done(batch_[i].id, Outcome::Delivered);
      } catch (const store::DbError &e) {
        if (!e.dataError()) {
          // The connection failed meanwhile: keep the rest for the retry.
          left.assign(std::make_move_iterator(batch_.begin() + static_cast<std::ptrdiff_t>(i)),
                      std::make_move_iterator(batch_.end()));
          batch_ = std::move(left);
          throw;
        }
        ctx.log().error("store: message '{}' on '{}' refused by the database: {}", rows[i].row.id,
                        rows[i].row.topic, e.what());
        ctx.counter("failed", "invalid_row").add();
        ctx.done(batch_[i].id, Outcome::Reject, "invalid_row");
      }
    }
    batch_.clear();
    held_->set(0);
    failed_ = false;
    return added;
  }

  /// Gives the rows back to the batch after a failed insert (they were moved out).
  void restoreRows() noexcept {
    if (rows_.size() == batch_.size()) {
      for (std::size_t i = 0; i < rows_.size(); ++i) {
        batch_[i].row = std::move(rows_[i]);
      }
    }
    rows_.clear();
  }

  void settle(SinkContext &ctx, std::size_t added, std::size_t total) noexcept {
    stored_->add(added);
    duplicates_->add(total - added);
    for (const auto &p : batch_) {
      ctx.done(p.id, Outcome::Delivered);
    }
  }

  std::string url_;
  std::size_t batch_size_;
  std::chrono::milliseconds batch_age_;
  sdk::Backoff backoff_;
  std::unique_ptr<store::Database> db_;
  std::vector<Pending> batch_;
  std::vector<store::Row> rows_;  ///< the batch's rows during an insert
  Clock::time_point first_at_{};
  Clock::time_point next_try_{};
  bool failed_ = false;
  bool ever_connected_ = false;
  Counter *stored_ = nullptr;
  Counter *duplicates_ = nullptr;
  Counter *commit_errors_ = nullptr;
  Counter *reconnects_ = nullptr;
  Gauge *connected_ = nullptr;
  Gauge *held_ = nullptr;
};

}  // namespace

SWITCHYARD_PLUGIN(StoreSink, SY_KIND_SINK, "store", "1.0.0",
                  "Keeps every message in a database (SQLite or PostgreSQL), acknowledged after commit", 0, kSchema)
