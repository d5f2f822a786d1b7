// SPDX-License-Identifier: MIT
// zmq-sub: the schema, the settings and the factory (see zmq_sub.hpp).
#include <algorithm>

#include "zmq_sub.hpp"

namespace switchyard::zmqt {
namespace {

const sy_config_key kOwnRows[] = {
    {"endpoints", SY_CFG_ANY, 0, nullptr,
     "ZeroMQ addresses to connect to (or to bind, with bind: true), e.g. tcp://host:9940: a list, "
     "or fedmsg's map NAME -> address or list of addresses (the publisher's name, for "
     "replay_endpoints). Required unless srv is given.", 0},
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

const sy_config_key kReplayRows[] = {
    {"replay_endpoints", SY_CFG_MAP, 0, nullptr,
     "Gap backfill: publisher name (a key of endpoints, an endpoint address, or an srv name) -> "
     "its replay endpoint (REQ/REP), e.g. {bodhi: tcp://host:9941}. Connect mode only.", 0},
    {"replay_timeout", SY_CFG_INT, 0, "5000",
     "Gap backfill: milliseconds to wait for a replay answer before counting the gap unrecoverable.", 0,
     nullptr, SY_BOUND_MIN | SY_BOUND_MAX, 1, 600000},
    {"replay_max_gap", SY_CFG_INT, 0, "1000",
     "Gap backfill: the largest gap (in seq_id) asked for; a bigger one is counted unrecoverable at once.", 0,
     nullptr, SY_BOUND_MIN | SY_BOUND_MAX, 1, 1000000},
    {"replay_hold", SY_CFG_INT, 0, "10000",
     "Gap backfill: newer messages of a publisher held while its replay is outstanding; beyond "
     "that the replay is given up (unrecoverable) and the held ones are forwarded.", 0,
     nullptr, SY_BOUND_MIN | SY_BOUND_MAX, 1, 1000000},
};

const sy_config_key kSrvRows[] = {
    {"srv", SY_CFG_STRING_LIST, 0, "[]",
     "DNS SRV names whose records give more endpoints, e.g. [_fedmsg._tcp.example.org] (connect mode).", 0},
    {"srv_interval", SY_CFG_INT, 0, "300",
     "Seconds between resolutions of srv; the records' TTL shortens it.", 0, nullptr,
     SY_BOUND_MIN | SY_BOUND_MAX, 1, 86400},
    {"dns_servers", SY_CFG_STRING_LIST, 0, "[]",
     "DNS servers for srv, as HOST or HOST:PORT (e.g. 127.0.0.1:5353); empty: the system's resolv.conf.", 0},
};

constexpr auto kSchema = joinSchema(kOwnRows, kSocketTuningRows, kSequenceRows, kReplayRows, kSrvRows);

/// `endpoints`: a list (each endpoint named by its address) or fedmsg's map NAME ->
/// address or list of addresses. Fills @p s.endpoints and s.names; problems at the item.
void readEndpoints(const sdk::Config &c, SubSettings &s) {
  if (!c.has("endpoints")) {
    return;
  }
  const auto &v = c.value("endpoints");
  auto add = [&](const rapidjson::Value &e, const std::string &key, const std::string &name) {
    if (!e.IsString()) {
      c.problem(key, "an endpoint must be a string such as tcp://HOST:9940");
      return;
    }
    std::string addr(e.GetString(), e.GetStringLength());
    if (auto problem = endpointProblem(addr, s.bind)) {
      c.problem(key, fmt::format("'{}' is not a usable endpoint: {}", addr, *problem));
    }
    s.endpoints.push_back(addr);
    s.names.push_back(name.empty() ? addr : name);
  };
  if (v.IsString()) {  // a single scalar is a list of one, as for any list key
    add(v, "endpoints[0]", {});
  } else if (v.IsArray()) {
    for (rapidjson::SizeType k = 0; k < v.Size(); ++k) {
      add(v[k], fmt::format("endpoints[{}]", k), {});
    }
  } else if (v.IsObject()) {
    for (const auto &m : v.GetObject()) {
      std::string name(m.name.GetString(), m.name.GetStringLength());
      if (m.value.IsArray()) {
        for (rapidjson::SizeType k = 0; k < m.value.Size(); ++k) {
          add(m.value[k], fmt::format("endpoints.{}[{}]", name, k), name);
        }
      } else {
        add(m.value, "endpoints." + name, name);
      }
    }
  } else {
    c.problem("endpoints", "'endpoints' must be a list of addresses or a map NAME -> address(es)");
  }
}

void readReplay(const sdk::Config &c, SubSettings &s) {
  s.replay.timeout_ms = intOr(c, "replay_timeout", 5000);
  s.replay.max_gap = intOr(c, "replay_max_gap", 1000);
  s.replay.hold = static_cast<std::size_t>(intOr(c, "replay_hold", 10000));
  if (!c.has("replay_endpoints")) {
    return;
  }
  const auto &v = c.value("replay_endpoints");
  if (!v.IsObject()) {
    c.problem("replay_endpoints", "'replay_endpoints' must be a map NAME -> tcp://HOST:PORT");
    return;
  }
  if (s.bind && v.MemberCount() > 0) {
    c.problem("replay_endpoints", "replay needs connect mode: a bound zmq-sub does not know its publishers' "
                                  "names; remove replay_endpoints or set bind: false");
    return;
  }
  for (const auto &m : v.GetObject()) {
    std::string name(m.name.GetString(), m.name.GetStringLength());
    std::string key = "replay_endpoints." + name;
    if (!m.value.IsString()) {
      c.problem(key, "a replay endpoint must be a string such as tcp://HOST:9941");
      continue;
    }
    std::string addr(m.value.GetString(), m.value.GetStringLength());
    if (auto problem = endpointProblem(addr, false)) {
      c.problem(key, fmt::format("'{}' is not a usable endpoint: {}", addr, *problem));
    }
    bool known = std::find(s.names.begin(), s.names.end(), name) != s.names.end() ||
                 std::find(s.srv.begin(), s.srv.end(), name) != s.srv.end();
    if (!known) {
      c.problem(key, fmt::format("'{}' names no endpoint: use a key of endpoints (written as a map), an "
                                 "address of the endpoints list, or an srv name",
                                 name));
    }
    s.replay.endpoints[name] = addr;
  }
}

}  // namespace

SubSettings SubSettings::fromConfig(const sdk::Config &c) {
  SubSettings s;
  s.bind = boolOr(c, "bind", false);
  s.topics = stringsOr(c, "topics", {""});
  s.hwm = static_cast<int>(nonNegative(c, "hwm", kDefaultHwm));
  s.socket_max = intOr(c, "socket_max_message_size", 0);
  s.tuning = SocketTuning::fromConfig(c);
  s.seq = SeqSettings::fromConfig(c);
  readEndpoints(c, s);
  s.srv = stringsOr(c, "srv", {});
  s.srv_interval_s = intOr(c, "srv_interval", 300);
  s.dns_servers = stringsOr(c, "dns_servers", {});
  if (s.endpoints.empty() && s.srv.empty()) {
    c.problem("endpoints", "'endpoints' needs at least one address, e.g. " +
                           std::string(s.bind ? "tcp://*:9940" : "tcp://HOST:9940") +
                           " (or give srv: [_fedmsg._tcp.DOMAIN])");
  }
  if (s.bind && !s.srv.empty()) {
    c.problem("srv", "srv discovers publishers to connect to: it cannot be used with bind: true");
  }
  readReplay(c, s);
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
