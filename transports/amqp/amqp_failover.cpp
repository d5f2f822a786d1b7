// SPDX-License-Identifier: MIT
//
// Broker failover of both plugins: `url` may list the nodes of a cluster. Every attempt
// after a failed one, or after a lost connection, goes to the next node of the list (round
// robin); a failed attempt is followed at once by one on the next node, and the reconnect
// backoff (reconnectPolicy) only paces full rounds, so a cluster with one node down costs
// one refused connect, not a backoff. What a plugin owns (exchange, queue, bindings, qos,
// confirm mode) is declared again on every connection by the plugin's own set-up, so the
// new node gets all of it; which node is in use is logged with every connect and
// published as the gauge `broker_node` (ConnCounters).
#include "amqp_common.hpp"

namespace switchyard::amqp {

bool Connection::open(Settings &s, ConnectError &error, double timeout_s) {
  if (attempted_ && s.nodes.size() > 1) {
    s.nextNode();
  }
  attempted_ = true;
  return open(static_cast<const Settings &>(s), error, timeout_s);
}

std::chrono::milliseconds retryDelay(PluginContext &ctx, Backoff &backoff, std::string_view url,
                                     const ConnectError &err) noexcept {
  auto d = nextDelay(backoff);
  if (err.permanent()) {
    ctx.counter("permanent_errors", failureName(err.kind)).add();
    ctx.log().error("cannot connect to {}: {}; this will not fix itself; retrying in {} ms", url, err.text(),
                    d.count());
  } else {
    ctx.log().warn("cannot connect to {}: {}; retrying in {} ms", url, err.text(), d.count());
  }
  return d;
}

std::chrono::milliseconds retryDelay(PluginContext &ctx, Backoff &backoff, Settings &s,
                                     const ConnectError &err) noexcept {
  ++s.failures_in_row;
  if (err.permanent()) {
    ctx.counter("permanent_errors", failureName(err.kind)).add();
  }
  if (s.nodes.size() > 1 && s.failures_in_row % s.nodes.size() != 0) {
    // Not every node has failed yet: the next one at once.
    if (err.permanent()) {
      ctx.log().error("cannot connect to {}: {}; this will not fix itself; trying the next node {} now",
                      s.redacted_url, err.text(), s.nextUrl());
    } else {
      ctx.log().warn("cannot connect to {}: {}; trying the next node {} now", s.redacted_url, err.text(),
                     s.nextUrl());
    }
    return std::chrono::milliseconds(0);
  }
  auto d = nextDelay(backoff);
  std::string next = s.nodes.size() > 1 ? fmt::format(" (every node of url failed; next: {})", s.nextUrl()) : "";
  if (err.permanent()) {
    ctx.log().error("cannot connect to {}: {}; this will not fix itself; retrying in {} ms{}", s.redacted_url,
                    err.text(), d.count(), next);
  } else {
    ctx.log().warn("cannot connect to {}: {}; retrying in {} ms{}", s.redacted_url, err.text(), d.count(), next);
  }
  return d;
}

}  // namespace switchyard::amqp
