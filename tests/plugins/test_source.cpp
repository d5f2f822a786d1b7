// SPDX-License-Identifier: MIT
//
// test-source (test only): emits `count` messages {"n":N} on topic `topic`, then ends, and
// writes how each one ended ("N outcome reason") to `record_file` when it stops.
#include <cstdio>
#include <map>
#include <string>

#include "switchyard/sdk.hpp"

namespace {

using namespace switchyard;

const sy_config_key kSchema[] = {
    {"count", SY_CFG_INT, 0, "100", "Messages to emit before the end of input.", 0, nullptr, SY_BOUND_MIN, 0, 0},
    {"topic", SY_CFG_STRING, 0, "\"test.topic\"", "Topic of every message.", 0},
    {"record_file", SY_CFG_STRING, 0, "\"\"", "Where to write each message's outcome at stop.", 0},
    {nullptr, 0, 0, nullptr, nullptr, 0},
};

class TestSource final : public Source {
 public:
  explicit TestSource(const sdk::Config &c)
      : count_(c.integer("count")), topic_(c.str("topic")), record_(c.str("record_file")) {
    if (count_ < 0) {
      throw sdk::ConfigError("count", "count must not be negative");
    }
  }
  Status start(SourceContext &) noexcept override { return Status::ok(); }
  Status poll(SourceContext &ctx, std::chrono::milliseconds) noexcept override {
    if (next_ >= count_) {
      return Status::endOfStream();
    }
    Message m;
    m.setTopic(topic_);
    m.setBody(fmt::format("{{\"n\":{}}}", next_));
    m.setId(std::to_string(next_));
    if (ctx.submit(std::move(m), static_cast<std::uint64_t>(next_)) ==
        SourceContext::SubmitResult::Accepted) {
      ++next_;
    }
    return Status::ok();
  }
  void complete(std::uint64_t tag, Outcome o, std::string_view reason) noexcept override {
    try {
      outcomes_[tag] = fmt::format("{} {}", outcomeName(o), reason.empty() ? "-" : reason);
    } catch (...) {
    }
  }
  void stop() noexcept override {
    if (record_.empty()) {
      return;
    }
    if (FILE *f = std::fopen(record_.c_str(), "w")) {
      for (const auto &[tag, text] : outcomes_) {
        std::fprintf(f, "%llu %s\n", static_cast<unsigned long long>(tag), text.c_str());
      }
      std::fclose(f);
    }
  }

 private:
  std::int64_t count_;
  std::string topic_;
  std::string record_;
  std::int64_t next_ = 0;
  std::map<std::uint64_t, std::string> outcomes_;
};

}  // namespace

SWITCHYARD_PLUGIN(TestSource, SY_KIND_SOURCE, "test-source", "1.0.0",
                  "Test only: emits numbered messages and records their outcomes",
                  SY_FLAG_CAN_ACK, kSchema)
