// SPDX-License-Identifier: MIT
//
// topic-prefix (filter): prepends a configured prefix to every message's topic. A small,
// complete out-of-tree plugin: built against the installed SDK (`pkg-config switchyard`),
// see README.md and docs/plugin-abi.md.
//
//   filters:
//     - type: topic-prefix
//       prefix: "org.example."
//       skip_prefixed: true     # leave topics that already start with the prefix alone
#include <string>

#include "switchyard/sdk.hpp"

namespace {

using namespace switchyard;

// The schema: the core checks types and fills in defaults before the plugin sees them.
// sdk::key() builds each entry (with .required(), .oneOf("a|b"), .range(min, max) when
// needed) and compiles cleanly under -Wextra.
constexpr sy_config_key kSchema[] = {
    sdk::key("prefix", SY_CFG_STRING, nullptr, "Text prepended to every topic.").required(),
    sdk::key("skip_prefixed", SY_CFG_BOOL, "true",
             "Leave topics that already start with the prefix unchanged (no double prefix)."),
    sdk::kEndOfSchema,
};

class TopicPrefix final : public Filter {
 public:
  // Runs inside the SDK's exception barrier: throwing sdk::ConfigError here becomes a
  // configuration error that points at the key in the user's file.
  explicit TopicPrefix(const sdk::Config &c)
      : prefix_(c.str("prefix")), skip_prefixed_(c.boolean("skip_prefixed")) {
    if (prefix_.empty()) {
      throw sdk::ConfigError("prefix", "prefix must not be empty");
    }
  }

  Status start(FilterContext &ctx) noexcept override {
    // Counter references stay valid for the instance's life: look them up once.
    prefixed_ = &ctx.counter("topics_prefixed");
    return Status::ok();
  }

  // Called on the pipeline's input thread, one message at a time; must not throw.
  Verdict process(FilterContext &ctx, Message &msg) noexcept override {
    if (skip_prefixed_ && msg.topic().starts_with(prefix_)) {
      return Verdict::pass();
    }
    try {
      // setTopic() also drops the message's fedmsg envelope: it no longer describes the
      // message, so zmq-pub builds a new one instead of sending the old signed bytes.
      msg.setTopic(prefix_ + msg.topic());
    } catch (const std::exception &e) {  // allocation failure: transient, the input may retry
      ctx.log().error("cannot prefix topic: {}", e.what());
      return Verdict::error("out_of_memory", true);
    }
    if (prefixed_ != nullptr) {
      prefixed_->add();
    }
    return Verdict::pass();
  }

 private:
  std::string prefix_;
  bool skip_prefixed_;
  Counter *prefixed_ = nullptr;
};

}  // namespace

// The three exported entry points: info record, schema, create (with exception barrier).
SWITCHYARD_PLUGIN(TopicPrefix, SY_KIND_FILTER, "topic-prefix", "1.0.0",
                  "Prepends a configured prefix to every topic", 0, kSchema)
