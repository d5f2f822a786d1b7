// SPDX-License-Identifier: MIT
// zmq-pub: the schema, the settings and the factory (see zmq_pub.hpp).
#include "zmq_pub.hpp"

namespace switchyard::zmqt {
namespace {

const sy_config_key kOwnRows[] = {
    {"endpoints", SY_CFG_STRING_LIST, 1, nullptr,
     "ZeroMQ addresses to bind (or to connect to, with bind: false), e.g. tcp://*:9940.", 0},
    {"bind", SY_CFG_BOOL, 0, "true",
     "Bind the endpoints (fedmsg publisher); false connects them (active mode, to a relay).", 0},
    {"hwm", SY_CFG_INT, 0, "1000",
     "ZMQ_SNDHWM: messages queued per subscriber; beyond it libzmq drops (or, with no_drop, "
     "the sink waits). 0 = unlimited.", 0},
    {"max_message_size", SY_CFG_INT, 0, "16777216",
     "Largest envelope sent, in bytes; bigger messages are dropped as oversize.", 0},
    {"max_depth", SY_CFG_INT, 0, "64", "Deepest JSON nesting accepted in a body that needs a new envelope.", 0},
    {"no_drop", SY_CFG_BOOL, 0, "false",
     "A full subscriber pipe makes the sink wait instead of dropping; one slow subscriber then "
     "stalls every subscriber. false: see slow_subscriber.", 0},
    {"slow_subscriber", SY_CFG_STRING, 0, "\"skip\"",
     "Without no_drop, when a subscriber's pipe is full (hwm): skip = libzmq's behaviour, that "
     "subscriber misses messages until it has read half of its queue, the others get them; counted "
     "per episode (subscriber_skips), not per message, which libzmq does not report. drop = the "
     "message goes to nobody and is counted exactly as dropped (subscriber_full); one slow subscriber "
     "then costs every subscriber those messages.", 0, "skip|drop"},
    {"no_subscriber", SY_CFG_STRING, 0, "\"retry\"",
     "When the input can redeliver (AMQP) and no subscription matches a message's topic: retry = hand "
     "it back to the runtime, which sends it again after the output's retry backoff (settled as failed "
     "when the retry budget is spent), while the socket has no subscription at all and for "
     "subscriber_grace seconds after the first one arrived; drop = drop it (no_subscriber) at once, "
     "as fedmsg does. Inputs that cannot redeliver always drop.", 0, "retry|drop"},
    {"subscriber_grace", SY_CFG_FLOAT, 0, "10",
     "With no_subscriber: retry, how many seconds after the first subscription arrived (at start-up, or "
     "after every subscriber had left) an unmatched message is still retried, so that subscribers "
     "reconnecting a moment later get it; afterwards it is dropped as no_subscriber.", 0},
    {"reorder_timeout", SY_CFG_INT, 0, "200",
     "Milliseconds an envelope numbered by a signer (parallel workers) waits for a lower `i` still on "
     "its way, so that `i` leaves in order; a lower `i` that has not come by then is skipped.", 0},
    {"reorder_window", SY_CFG_INT, 0, "1024",
     "Most envelopes held back to restore `i` order; beyond it the lowest missing `i` is skipped.", 0},
    {"send_timeout", SY_CFG_INT, 0, "-1",
     "With no_drop: milliseconds to wait for a full pipe before dropping the message as "
     "send_timeout; -1 waits as long as the pipeline runs.", 0},
    {"username", SY_CFG_STRING, 0, "\"\"",
     "`username` of envelopes this sink builds; empty = the process's user name.", 0},
    {"linger", SY_CFG_INT, 0, "1000",
     "ZMQ_LINGER in milliseconds: how long queued messages may still leave at shutdown.", 0},
    {"wait_for_subscriber", SY_CFG_FLOAT, 0, "0",
     "Before the first message, wait up to this many seconds for a subscription (avoids the "
     "slow-joiner loss); 0 = do not wait.", 0},
};

constexpr auto kSchema = joinSchema(kOwnRows, kSocketTuningRows);

}  // namespace

PubSettings PubSettings::fromConfig(const sdk::Config &c) {
  PubSettings s;
  s.bind = boolOr(c, "bind", true);
  s.hwm = static_cast<int>(nonNegative(c, "hwm", kDefaultHwm));
  s.no_drop = boolOr(c, "no_drop", false);
  s.send_timeout_ms = intOr(c, "send_timeout", -1);
  s.linger_ms = static_cast<int>(intOr(c, "linger", kDefaultLinger));
  s.wait_for_subscriber_s = numberOr(c, "wait_for_subscriber", 0.0);
  s.subscriber_grace_s = numberOr(c, "subscriber_grace", 10.0);
  s.reorder_timeout = std::chrono::milliseconds(nonNegative(c, "reorder_timeout", 200));
  s.reorder_window = static_cast<std::size_t>(nonNegative(c, "reorder_window", 1024));
  s.tuning = SocketTuning::fromConfig(c);
  s.limits = limitsFrom(c);
  s.username = strOr(c, "username", "");
  if (s.username.empty()) {
    s.username = processUserName();
  }
  s.endpoints = endpointsFrom(c, s.bind);
  if (s.send_timeout_ms < -1) {
    c.problem("send_timeout", "'send_timeout' must be -1 or more");
  }
  if (s.linger_ms < -1) {
    c.problem("linger", "'linger' must be -1 or more");
  }
  if (s.wait_for_subscriber_s < 0) {
    c.problem("wait_for_subscriber", "'wait_for_subscriber' must not be negative");
  }
  if (s.subscriber_grace_s < 0) {
    c.problem("subscriber_grace", "'subscriber_grace' must not be negative");
  }
  std::string slow = strOr(c, "slow_subscriber", "skip");
  if (slow == "drop") {
    s.drop_for_all = true;
  } else if (slow != "skip") {
    c.problem("slow_subscriber", "'slow_subscriber' must be skip or drop, got '" + slow + "'");
  }
  std::string ns = strOr(c, "no_subscriber", "retry");
  if (ns == "retry") {
    s.retry_unsubscribed = true;
  } else if (ns == "drop") {
    s.retry_unsubscribed = false;
  } else {
    c.problem("no_subscriber", "'no_subscriber' must be retry or drop, got '" + ns + "'");
  }
  return s;
}

using ZmqPubFactory = ContextFactory<PubSettings, makeZmqPubSink>;

}  // namespace switchyard::zmqt

SWITCHYARD_PLUGIN(switchyard::zmqt::ZmqPubFactory, SY_KIND_SINK, "zmq-pub", "1.0.0",
                  "Publishes messages as fedmsg on a ZeroMQ PUB (XPUB) socket", 0,
                  switchyard::zmqt::kSchema.data())
