// SPDX-License-Identifier: MIT
//
// amqp-publish's lease: see amqp_lease.hpp for the mechanism.
#include "amqp_lease.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <climits>
#include <string>

namespace switchyard::amqp {

namespace {

constexpr std::int64_t kMinTickMs = 10;
constexpr std::int64_t kMaxTickMs = 60000;

/// The lease queue's arguments: the same on every instance (a different set is a 406 at
/// declare). A quorum queue works on a single node too and survives the loss of a minority
/// of a cluster's nodes; at most kMaxTicks ticks are kept (the oldest dropped) while no
/// instance consumes.
constexpr std::int64_t kMaxTicks = 100;

/// Rounds of readMethods() per service() at most (1000 frames each).
constexpr int kMaxReadRounds = 64;

amqp_bytes_t bytesOf(std::string_view s) { return amqp_bytes_t{s.size(), const_cast<char *>(s.data())}; }

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace

LeaseSettings LeaseSettings::fromConfig(const sdk::Config &c) {
  LeaseSettings ls;
  if (!c.has("lease")) {
    return ls;
  }
  const auto &v = c.value("lease");
  if (!v.IsObject()) {
    c.problem("lease", "'lease' must be a mapping {queue: NAME, tick_ms: 500, timeout_ms: 2000}");
    return ls;
  }
  bool have_queue = false;
  std::int64_t tick = 500;
  std::int64_t timeout = -1;
  for (const auto &m : v.GetObject()) {
    std::string k(m.name.GetString(), m.name.GetStringLength());
    std::string key = "lease." + k;
    if (k == "queue") {
      have_queue = true;  // a bad value is reported here, not as missing
      if (!m.value.IsString() || m.value.GetStringLength() == 0 || m.value.GetStringLength() > 255) {
        c.problem(key, "lease.queue must be a queue name (1 to 255 bytes), the same on every instance of the pair");
        ls.queue = "-";  // a problem is recorded: the load fails anyway
        continue;
      }
      ls.queue.assign(m.value.GetString(), m.value.GetStringLength());
      if (ls.queue.rfind("amq.", 0) == 0) {
        c.problem(key, "lease.queue '" + ls.queue + "': names starting with 'amq.' are reserved by the broker; choose "
                       "another name");
      }
    } else if (k == "tick_ms" || k == "timeout_ms") {
      if (!m.value.IsInt64()) {
        c.problem(key, key + " must be an integer number of milliseconds");
        continue;
      }
      (k == "tick_ms" ? tick : timeout) = m.value.GetInt64();
    } else {
      c.problem(key, "unknown key " + key + "; allowed: queue, tick_ms, timeout_ms");
    }
  }
  bool tick_ok = tick >= kMinTickMs && tick <= kMaxTickMs;
  if (!tick_ok) {
    c.problem("lease.tick_ms", fmt::format("lease.tick_ms must be between {} and {} (it is {})", kMinTickMs,
                                           kMaxTickMs, tick));
    tick = 500;
  }
  if (timeout < 0) {
    timeout = std::max<std::int64_t>(2000, 4 * tick);
  } else if (timeout > 3600000 || (tick_ok && timeout < 2 * tick)) {
    c.problem("lease.timeout_ms",
              fmt::format("lease.timeout_ms must be at least twice lease.tick_ms ({} ms) and at most 3600000 (it is "
                          "{}): a shorter timeout gives the lease up between two ticks",
                          2 * tick, timeout));
    timeout = std::max<std::int64_t>(2000, 4 * tick);
  }
  if (!have_queue) {
    c.problem("lease", "lease needs queue: the name of the lease queue, the same on every instance of the pair");
    ls.queue.clear();
    return ls;
  }
  ls.tick = std::chrono::milliseconds(tick);
  ls.timeout = std::chrono::milliseconds(timeout);
  return ls;
}

bool Lease::start(SinkContext &ctx, ConnectError &err) noexcept {
  active_gauge_ = &ctx.gauge("lease_active");
  ticks_sent_ = &ctx.counter("lease_ticks_sent");
  ticks_received_ = &ctx.counter("lease_ticks_received");
  acquired_ = &ctx.counter("lease_acquired");
  released_ = &ctx.counter("lease_released");
  try {
    std::array<char, HOST_NAME_MAX + 1> host{};
    (void)::gethostname(host.data(), host.size() - 1);
    tick_body_ = fmt::format("{} {}", host.data(), ::getpid());
  } catch (...) {
    tick_body_ = "switchyard";
  }
  active_gauge_->set(0);
  ctx.setActive(false);
  standby_since_ = Clock::now();
  ctx.log().info("lease on queue '{}': standing by until RabbitMQ makes this instance the active consumer",
                 ls_.queue);
  if (connect(ctx, err, kStartTimeoutS)) {
    return true;
  }
  if (!err.permanent()) {
    next_attempt_ = Clock::now() + retryDelay(ctx, backoff_, settings_->redacted_url, err);
  }
  return false;
}

bool Lease::connect(SinkContext &ctx, ConnectError &err, double timeout_s) noexcept {
  try {
    if (!conn_.open(*settings_, err, timeout_s) || !declareAndConsume(err)) {
      conn_.drop();
      return false;
    }
  } catch (const std::exception &e) {
    conn_.drop();
    err.message = e.what();
    return false;
  }
  conn_.setRpcTimeout(settings_->connect_timeout);
  backoff_.reset();
  if (lost_once_) {
    ctx.log().info("lease connection to {} open again; consuming '{}'", settings_->redacted_url, ls_.queue);
  }
  next_tick_ = Clock::now();  // the first tick at once: a lone instance is active within one round trip
  return true;
}

bool Lease::declareAndConsume(ConnectError &err) {
  auto st = conn_.state();
  amqp_channel_open(st, kChannel);
  auto r = amqp_get_rpc_reply(st);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    err.message = "lease channel.open: " + describe(r);
    return false;
  }
  std::array<amqp_table_entry_t, 3> args{};
  args[0].key = amqp_cstring_bytes("x-queue-type");
  args[0].value.kind = AMQP_FIELD_KIND_UTF8;
  args[0].value.value.bytes = amqp_cstring_bytes("quorum");
  args[1].key = amqp_cstring_bytes("x-single-active-consumer");
  args[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
  args[1].value.value.boolean = 1;
  args[2].key = amqp_cstring_bytes("x-max-length");
  args[2].value.kind = AMQP_FIELD_KIND_I64;
  args[2].value.value.i64 = kMaxTicks;
  amqp_table_t table{static_cast<int>(args.size()), args.data()};
  amqp_queue_declare(st, kChannel, bytesOf(ls_.queue), 0, 1, 0, 0, table);
  r = amqp_get_rpc_reply(st);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    std::string what = "lease queue '" + ls_.queue + "'";
    err.message = "declaring " + what + " (quorum, single active consumer): " + describe(r);
    classifyDeclare(r, what, err);
    if (err.kind == Failure::Declaration) {
      err.fix = what + " exists with other arguments (it must be a quorum queue with x-single-active-consumer: "
                       "true and x-max-length: " + std::to_string(kMaxTicks) +
                ", as every instance declares it): delete it on the broker (rabbitmqctl delete_queue " + ls_.queue +
                ") or choose another lease.queue";
    }
    return false;
  }
  // No-ack: a tick is only a sign of being the active consumer, nothing to settle.
  amqp_basic_consume(st, kChannel, bytesOf(ls_.queue), amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
  r = amqp_get_rpc_reply(st);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    err.message = "consuming lease queue '" + ls_.queue + "': " + describe(r);
    classifyDeclare(r, "lease queue '" + ls_.queue + "'", err);
    return false;
  }
  return true;
}

std::chrono::milliseconds Lease::service(SinkContext &ctx) noexcept {
  auto now = Clock::now();
  if (!conn_.isOpen()) {
    if (now >= next_attempt_) {
      ConnectError err;
      if (!connect(ctx, err, 0)) {
        next_attempt_ = Clock::now() + retryDelay(ctx, backoff_, settings_->redacted_url, err);
      }
    }
    if (!conn_.isOpen()) {
      return std::max(std::chrono::milliseconds(1),
                      std::chrono::duration_cast<std::chrono::milliseconds>(next_attempt_ - Clock::now()));
    }
  }
  // Everything there is, not a bounded batch: after a freeze (SIGSTOP, a stalled VM) the
  // socket holds old ticks followed by the broker's goodbye, and the ticks alone would
  // look like a lease still held.
  for (int round = 0; round < kMaxReadRounds && conn_.isOpen(); ++round) {
    int rc = conn_.readMethods(1000, [&](const amqp_frame_t &frame) {
      handleMethod(ctx, frame);
      return conn_.isOpen();
    });
    if (rc != AMQP_STATUS_OK) {
      lost(ctx, describeStatus(rc));
      return std::chrono::milliseconds(1);
    }
    if (!conn_.isOpen() || !(conn_.hasBuffered() || readable(conn_.fd()))) {
      break;
    }
  }
  if (!conn_.isOpen()) {
    return std::chrono::milliseconds(1);
  }
  now = Clock::now();
  if (now >= next_tick_) {
    tick(ctx);
    if (!conn_.isOpen()) {
      return std::chrono::milliseconds(1);
    }
  }
  if (active_ && now - last_received_ >= ls_.timeout) {
    setActive(ctx, false,
              fmt::format("no tick for {} ms (lease.timeout_ms): another instance is the active consumer now",
                          std::chrono::duration_cast<std::chrono::milliseconds>(now - last_received_).count()));
  }
  auto next = next_tick_;
  if (active_) {
    next = std::min(next, last_received_ + ls_.timeout);
  }
  return std::max(std::chrono::milliseconds(1),
                  std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now()));
}

void Lease::handleMethod(SinkContext &ctx, const amqp_frame_t &frame) noexcept {
  auto id = frame.payload.method.id;
  void *m = frame.payload.method.decoded;
  switch (id) {
    case AMQP_BASIC_DELIVER_METHOD:
      // Its header and body frames follow; readMethods() skips them.
      ticks_received_->add();
      last_received_ = Clock::now();
      if (!active_) {
        setActive(ctx, true, "RabbitMQ made this instance the active consumer of the lease queue");
      }
      return;
    case AMQP_BASIC_RETURN_METHOD:
      lost(ctx, "a tick came back unroutable: the lease queue '" + ls_.queue + "' is gone; declaring it again");
      return;
    case AMQP_BASIC_CANCEL_METHOD:
      lost(ctx, "the broker cancelled the lease consumer (queue deleted, or its leader moved)");
      return;
    case AMQP_CHANNEL_CLOSE_METHOD: {
      auto *c = static_cast<amqp_channel_close_t *>(m);
      std::string why = fmt::format("lease channel closed by broker: {} {}", c->reply_code,
                                    std::string_view(static_cast<char *>(c->reply_text.bytes), c->reply_text.len));
      sendChannelCloseOk(conn_.state(), frame.channel);
      lost(ctx, why);
      return;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
      auto *c = static_cast<amqp_connection_close_t *>(m);
      std::string why = fmt::format("lease connection closed by broker: {} {}", c->reply_code,
                                    std::string_view(static_cast<char *>(c->reply_text.bytes), c->reply_text.len));
      sendConnectionCloseOk(conn_.state());
      lost(ctx, why);
      return;
    }
    default: return;
  }
}

void Lease::tick(SinkContext &ctx) noexcept {
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_EXPIRATION_FLAG;
  props.delivery_mode = 1;  // transient: a tick is worth nothing after a restart
  std::string ttl = std::to_string(ls_.timeout.count());
  props.expiration = bytesOf(ttl);
  // mandatory: a queue deleted under us comes back as basic.return (then declared again).
  int rc = amqp_basic_publish(conn_.state(), kChannel, amqp_empty_bytes, bytesOf(ls_.queue), 1, 0, &props,
                              bytesOf(tick_body_));
  if (rc != AMQP_STATUS_OK) {
    lost(ctx, "publishing a tick: " + describeStatus(rc));
    return;
  }
  ticks_sent_->add();
  next_tick_ = Clock::now() + ls_.tick;
}

void Lease::lost(SinkContext &ctx, const std::string &why) noexcept {
  conn_.drop();
  lost_once_ = true;
  auto d = nextDelay(backoff_);
  next_attempt_ = Clock::now() + d;
  ctx.log().warn("lease connection to {} lost: {}; reconnecting in {} ms", settings_->redacted_url, why, d.count());
  // Without the connection this instance is no longer a consumer: the broker has already
  // made another one active.
  if (active_) {
    setActive(ctx, false, "the lease connection was lost");
  }
}

void Lease::setActive(SinkContext &ctx, bool on, const std::string &why) noexcept {
  active_ = on;
  active_gauge_->set(on ? 1 : 0);
  ctx.setActive(on);
  auto now = Clock::now();
  if (on) {
    acquired_->add();
    ctx.log().info("lease on queue '{}' acquired after {} ms standing by: {}; this instance publishes now",
                   ls_.queue,
                   std::chrono::duration_cast<std::chrono::milliseconds>(now - standby_since_).count(), why);
  } else {
    released_->add();
    standby_since_ = now;
    ctx.log().warn("lease on queue '{}' lost: {}; standing by (publishing nothing)", ls_.queue, why);
  }
}

}  // namespace switchyard::amqp
