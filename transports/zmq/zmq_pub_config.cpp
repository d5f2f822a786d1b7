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
    {"replay_endpoint", SY_CFG_STRING, 0, "\"\"",
     "Address of fedmsg's replay endpoint (a REP socket bound there, e.g. tcp://*:9941); when set, every "
     "envelope published is numbered with `seq_id` and kept to answer replay queries. Empty = no replay.", 0},
    {"replay_max_messages", SY_CFG_INT, 0, "100000",
     "Most envelopes the in-memory replay store keeps (the oldest are forgotten); 0 = no count limit.", 0},
    {"replay_max_bytes", SY_CFG_INT, 0, "268435456",
     "Most bytes of envelope text the in-memory replay store keeps; 0 = no byte limit.", 0},
    {"replay_max_reply", SY_CFG_INT, 0, "10000",
     "Most envelopes in one replay reply; a query matching more gets the first ones (lowest seq_id).", 0},
    {"replay_database", SY_CFG_STRING, 0, "\"\"",
     "Keep the replay records in the message store's database instead of memory: sqlite:PATH or "
     "postgresql://...; numbering then continues across restarts.", 0},
    {"replay_name", SY_CFG_STRING, 0, "\"\"",
     "With replay_database: the publisher name its records are kept under; empty = the pipeline's name.", 0},
};

constexpr auto kSchema = joinSchema(kOwnRows, kSocketTuningRows);

/// The replay keys (zmq_pub_replay.hpp).
void replayFromConfig(const sdk::Config &c, PubSettings &s) {
  s.replay_endpoint = strOr(c, "replay_endpoint", "");
  s.replay_max_messages = static_cast<std::size_t>(nonNegative(c, "replay_max_messages", 100000));
  s.replay_max_bytes = static_cast<std::size_t>(nonNegative(c, "replay_max_bytes", std::int64_t{256} << 20));
  std::int64_t max_reply = intOr(c, "replay_max_reply", 10000);
  s.replay_database = strOr(c, "replay_database", "");
  s.replay_name = strOr(c, "replay_name", "");
  if (max_reply < 1) {
    c.problem("replay_max_reply", "'replay_max_reply' must be 1 or more, got " + std::to_string(max_reply));
  } else {
    s.replay_max_reply = static_cast<std::size_t>(max_reply);
  }
  if (s.replay_endpoint.empty()) {
    if (!s.replay_database.empty()) {
      c.problem("replay_database", "'replay_database' needs 'replay_endpoint' (the address replay queries come to)");
    }
    return;
  }
  if (auto problem = endpointProblem(s.replay_endpoint, true)) {
    c.problem("replay_endpoint", fmt::format("'{}' is not a usable endpoint: {}", s.replay_endpoint, *problem));
  }
  for (const std::string &e : s.endpoints) {
    if (e == s.replay_endpoint) {
      c.problem("replay_endpoint", fmt::format("'{}' is also in endpoints: the replay endpoint needs an address of "
                                               "its own, e.g. the next port", e));
    }
  }
  if (s.replay_database.empty() && s.replay_max_messages == 0 && s.replay_max_bytes == 0) {
    c.problem("replay_max_messages", "the in-memory replay store needs a bound: set replay_max_messages or "
                                     "replay_max_bytes above 0");
  }
  if (!s.replay_database.empty()) {
#ifdef SY_HAVE_STORE_DB
    std::string_view db = s.replay_database;
    if (db.rfind("sqlite:", 0) != 0 && db.rfind("postgresql://", 0) != 0 && db.rfind("postgres://", 0) != 0) {
      c.problem("replay_database", "'replay_database' must be sqlite:PATH or postgresql://...");
    }
#else
    c.problem("replay_database", "this build has no message store (built without libswitchyard-store-db): remove "
                                 "replay_database to keep the replay records in memory");
#endif
  }
}

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
  replayFromConfig(c, s);
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
