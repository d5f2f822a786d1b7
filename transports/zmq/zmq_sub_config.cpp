// SPDX-License-Identifier: MIT
// zmq-sub: the schema, the settings and the factory (see zmq_sub.hpp).
#include <algorithm>

#include "zmq_sub.hpp"

namespace switchyard::zmqt {
namespace {

const sy_config_key kOwnRows[] = {
    {"endpoints", SY_CFG_STRING_LIST, 1, nullptr,
     "ZeroMQ addresses to connect to (or to bind, with bind: true), e.g. tcp://host:9940.", 0},
    {"bind", SY_CFG_BOOL, 0, "false",
     "Bind the endpoints instead of connecting (fedmsg-relay inbound: publishers connect).", 0},
    {"topics", SY_CFG_STRING_LIST, 0, "[\"\"]",
     "Topic prefixes to subscribe to (byte-prefix match on frame 0); \"\" means everything.", 0},
    {"hwm", SY_CFG_INT, 0, "1000",
     "ZMQ_RCVHWM: messages queued per connection before libzmq drops; 0 = unlimited.", 0},
    {"max_message_size", SY_CFG_INT, 0, "16777216",
     "Largest accepted frame in bytes; larger messages are dropped as oversize.", 0},
    {"socket_max_message_size", SY_CFG_INT, 0, "0",
     "ZMQ_MAXMSGSIZE: libzmq disconnects a peer that sends a bigger frame. 0 = twice "
     "max_message_size, -1 = unlimited.", 0},
    {"max_depth", SY_CFG_INT, 0, "64", "Deepest accepted JSON nesting; deeper is dropped as too_deep.", 0},
};

const sy_config_key kSequenceRows[] = {
    {"track_sequence", SY_CFG_BOOL, 0, "true",
     "Count gaps, duplicates, reorders and restarts of each publisher's `i` counter.", 0},
    {"reorder_window", SY_CFG_INT, 0, "64",
     "Sequence tracking: a skipped `i` is counted missing once the publisher's `i` is this many "
     "values past it (0 to 1024; 0: at once); arriving before, it counts as reordered.", 0},
    {"reorder_time", SY_CFG_INT, 0, "1000",
     "Sequence tracking: or once this many milliseconds passed since the jump that skipped it "
     "(0: no time limit).", 0},
    {"state_file", SY_CFG_STRING, 0, "\"\"",
     "Sequence tracking: file that keeps each publisher's sequence state across restarts, so "
     "that what was sent while the router was down is counted missing. Empty: none.", 0},
    {"state_interval", SY_CFG_INT, 0, "0",
     "Milliseconds between writes of state_file; 0: after every poll that changed the state "
     "(exact after a kill -9). Always written at stop.", 0},
};

constexpr auto kSchema = joinSchema(kOwnRows, kSocketTuningRows, kSequenceRows);

}  // namespace

SubSettings SubSettings::fromConfig(const sdk::Config &c) {
  SubSettings s;
  s.bind = boolOr(c, "bind", false);
  s.topics = stringsOr(c, "topics", {""});
  s.hwm = static_cast<int>(nonNegative(c, "hwm", kDefaultHwm));
  s.socket_max = intOr(c, "socket_max_message_size", 0);
  s.tuning = SocketTuning::fromConfig(c);
  s.seq = SeqSettings::fromConfig(c);
  s.endpoints = endpointsFrom(c, s.bind);
  s.limits = limitsFrom(c);
  if (s.socket_max == 0) {
    s.socket_max = 2 * static_cast<std::int64_t>(s.limits.max_bytes);
  }
  if (s.socket_max < -1) {
    c.problem("socket_max_message_size", "'socket_max_message_size' must be -1 or more");
  }
  if (s.topics.empty()) {
    s.topics.emplace_back();
  }
  s.all_topics = std::find(s.topics.begin(), s.topics.end(), std::string()) != s.topics.end();
  return s;
}

std::unique_ptr<Source> makeZmqSubSource(const SubSettings &settings, std::shared_ptr<zmq::context_t> zctx) {
  return std::make_unique<ZmqSubSource>(settings, std::move(zctx));
}

using ZmqSubFactory = ContextFactory<SubSettings, makeZmqSubSource>;

}  // namespace switchyard::zmqt

SWITCHYARD_PLUGIN(switchyard::zmqt::ZmqSubFactory, SY_KIND_SOURCE, "zmq-sub", "1.0.0",
                  "Receives fedmsg messages from ZeroMQ PUB sockets (SUB, connect or bind)", 0,
                  switchyard::zmqt::kSchema.data())
