// SPDX-License-Identifier: MIT
//
// test-sink (test only): settles message N as `retry` when N % retry_every == 0, as
// `reject` when N % reject_every == 0, else as `settle` says (delivered by default). `name` is required (it exists so
// the configuration tests have a plugin with a required key).
#include <string>

#include "switchyard/sdk.hpp"

namespace {

using namespace switchyard;

// Written with sdk::key (allowed values, bounds); the positional form works too.
constexpr sy_config_key kSchema[] = {
    sdk::key("name", SY_CFG_STRING, nullptr, "A label for log lines (required).").required(),
    sdk::key("retry_every", SY_CFG_INT, "0", "Fail every Nth message as retry (0: never).").atLeast(0),
    sdk::key("reject_every", SY_CFG_INT, "0", "Fail every Nth message as reject (0: never).").atLeast(0),
    sdk::key("token", SY_CFG_STRING, "\"\"", "A secret, to test that secrets are never printed.").secret(),
    sdk::key("settle", SY_CFG_STRING, "\"delivered\"", "How the other messages end.").oneOf("delivered|dropped"),
    sdk::key("weight", SY_CFG_FLOAT, "1", "Unused: a number with bounds, for the tests.").range(0, 1),
    sdk::kEndOfSchema,
};

class TestSink final : public Sink {
 public:
  explicit TestSink(const sdk::Config &c)
      : name_(c.str("name")),
        retry_(c.integer("retry_every")),
        reject_(c.integer("reject_every")),
        drop_(c.oneOf<bool>("settle", {{"delivered", false}, {"dropped", true}})) {}
  Status start(SinkContext &ctx) noexcept override {
    ctx.log().info("test-sink '{}' started", name_);
    return Status::ok();
  }
  void send(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept override {
    long long n = 0;
    try {
      n = std::stoll(msg.id());
    } catch (...) {
    }
    if (retry_ > 0 && n % retry_ == 0) {
      ctx.done(id, Outcome::Retry, "test_retry");
    } else if (reject_ > 0 && n % reject_ == 0) {
      ctx.done(id, Outcome::Reject, "test_reject");
    } else if (drop_) {
      ctx.done(id, Outcome::Dropped, "test_drop");
    } else {
      ctx.done(id, Outcome::Delivered);
    }
  }

 private:
  std::string name_;
  std::int64_t retry_;
  std::int64_t reject_;
  bool drop_;
};

}  // namespace

SWITCHYARD_PLUGIN(TestSink, SY_KIND_SINK, "test-sink", "1.0.0",
                  "Test only: settles messages with configurable outcomes", SY_FLAG_CAN_ACK, kSchema)
