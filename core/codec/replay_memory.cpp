// SPDX-License-Identifier: MIT
//
// The bounded in-memory replay store (switchyard/replay.hpp, makeMemoryStore): the last
// records zmq-pub published, oldest first, within a count and a byte budget.
//
// Records carry consecutive seq_ids (add() insists), so the record of seq_id n is at
// index n - front's seq_id: seq_id, seq_ids and seq_id_range are answered without a
// search; msg_id and msg_ids through a hash index; time by a scan in seq_id order that
// stops at the limit. Every query key adds its matches (OR), and the result is the first
// `limit` of the union, in seq_id order.
#include <algorithm>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "switchyard/replay.hpp"

namespace switchyard::replay {
namespace {

class MemoryStore final : public Store {
 public:
  MemoryStore(std::size_t max_messages, std::size_t max_bytes)
      : max_messages_(max_messages), max_bytes_(max_bytes) {}

  std::int64_t nextSeqId() override {
    std::lock_guard<std::mutex> lock(mu_);
    return next_;
  }

  void add(Record r) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (r.seq_id != next_) {
      throw std::runtime_error("replay store: seq_id " + std::to_string(r.seq_id) + " added, expected " +
                               std::to_string(next_));
    }
    bytes_ += r.envelope.size();
    by_msg_id_.emplace(r.msg_id, r.seq_id);
    records_.push_back(std::move(r));
    ++next_;
    while (!records_.empty() && ((max_messages_ != 0 && records_.size() > max_messages_) ||
                                 (max_bytes_ != 0 && bytes_ > max_bytes_))) {
      forgetOldest();
    }
  }

  std::vector<Record> query(const Query &q, std::size_t limit) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::size_t> hits;  // indexes into records_
    if (!records_.empty() && limit != 0) {
      collect(q, limit, hits);
    }
    std::sort(hits.begin(), hits.end());
    hits.erase(std::unique(hits.begin(), hits.end()), hits.end());
    if (hits.size() > limit) {
      hits.resize(limit);
    }
    std::vector<Record> out;
    out.reserve(hits.size());
    for (std::size_t i : hits) {
      out.push_back(records_[i]);
    }
    return out;
  }

  std::size_t size() override {
    std::lock_guard<std::mutex> lock(mu_);
    return records_.size();
  }

  std::size_t bytes() override {
    std::lock_guard<std::mutex> lock(mu_);
    return bytes_;
  }

 private:
  void forgetOldest() {
    const Record &r = records_.front();
    auto [lo, hi] = by_msg_id_.equal_range(r.msg_id);
    for (auto it = lo; it != hi; ++it) {
      if (it->second == r.seq_id) {
        by_msg_id_.erase(it);
        break;
      }
    }
    bytes_ -= r.envelope.size();
    records_.pop_front();
  }

  /// Index of the record of @p seq, if kept.
  [[nodiscard]] std::optional<std::size_t> indexOf(std::int64_t seq) const {
    std::int64_t first = records_.front().seq_id;
    if (seq < first || seq >= next_) {
      return std::nullopt;
    }
    return static_cast<std::size_t>(seq - first);
  }

  void addMsgId(const std::string &id, std::vector<std::size_t> &hits) const {
    auto [lo, hi] = by_msg_id_.equal_range(id);
    for (auto it = lo; it != hi; ++it) {
      if (auto i = indexOf(it->second)) {
        hits.push_back(*i);
      }
    }
  }

  /// Adds the indexes matching any key of @p q. A range or a scan adds only its first
  /// @p limit matches: the first `limit` of the union are among them.
  void collect(const Query &q, std::size_t limit, std::vector<std::size_t> &hits) const {
    if (q.seq_id) {
      if (auto i = indexOf(*q.seq_id)) {
        hits.push_back(*i);
      }
    }
    for (std::int64_t s : q.seq_ids) {
      if (auto i = indexOf(s)) {
        hits.push_back(*i);
      }
    }
    if (q.seq_id_range && q.seq_id_range->first <= q.seq_id_range->second) {
      std::int64_t first = records_.front().seq_id;
      std::int64_t lo = std::max(q.seq_id_range->first, first);
      std::int64_t hi = std::min(q.seq_id_range->second, next_ - 1);
      for (std::int64_t s = lo; s <= hi && static_cast<std::size_t>(s - lo) < limit; ++s) {
        hits.push_back(static_cast<std::size_t>(s - first));
      }
    }
    if (q.msg_id) {
      addMsgId(*q.msg_id, hits);
    }
    for (const std::string &id : q.msg_ids) {
      addMsgId(id, hits);
    }
    if (q.time) {
      std::size_t found = 0;
      for (std::size_t i = 0; i < records_.size() && found < limit; ++i) {
        double t = records_[i].timestamp;
        if (t >= q.time->first && t <= q.time->second) {
          hits.push_back(i);
          ++found;
        }
      }
    }
  }

  const std::size_t max_messages_;
  const std::size_t max_bytes_;
  std::mutex mu_;
  std::deque<Record> records_;
  std::unordered_multimap<std::string, std::int64_t> by_msg_id_;
  std::size_t bytes_ = 0;
  std::int64_t next_ = 1;
};

}  // namespace

std::unique_ptr<Store> makeMemoryStore(std::size_t max_messages, std::size_t max_bytes) {
  if (max_messages == 0 && max_bytes == 0) {
    throw std::invalid_argument("a memory replay store needs a bound: max_messages or max_bytes");
  }
  return std::make_unique<MemoryStore>(max_messages, max_bytes);
}

}  // namespace switchyard::replay
