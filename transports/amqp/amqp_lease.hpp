// SPDX-License-Identifier: MIT
//
// amqp-publish's lease (`lease:`): which of several instances of the same pipeline is the
// active one, decided by RabbitMQ itself. Every instance declares the same quorum queue
// with `x-single-active-consumer: true`, consumes it (no-ack) on a connection of its own,
// and publishes a small tick to it every tick_ms. The broker delivers to one consumer only,
// so only the active instance receives ticks; an instance is active while its last tick
// arrived less than timeout_ms ago. When the active instance dies its connection closes
// and the broker makes the next consumer active, which receives the next tick (its own or
// a peer's) within tick_ms.
//
// The sink reports every change with SinkContext::setActive() (the runtime then stands the
// pipeline by, or dispatches again) and the gauge `lease_active` (0/1). A lost lease
// connection, a cancelled consumer or a tick returned as unroutable (the queue was
// deleted) end the lease at once; the connection is then opened again with backoff and
// the queue declared again.
// THREADING: owned by one AmqpPublish, used from its sink thread only.
#pragma once

#include <chrono>
#include <string>

#include "amqp_common.hpp"

namespace switchyard::amqp {

struct LeaseSettings {
  std::string queue;  ///< empty: no lease (always active)
  std::chrono::milliseconds tick{500};
  std::chrono::milliseconds timeout{2000};
  [[nodiscard]] bool enabled() const noexcept { return !queue.empty(); }
  /// Reads `lease:` (absent or null: no lease); each problem recorded at its key ("lease.tick_ms").
  static LeaseSettings fromConfig(const sdk::Config &c);
};

class Lease {
 public:
  using Clock = std::chrono::steady_clock;

  /// @p settings must outlive the lease (the owning sink's connection settings).
  Lease(LeaseSettings ls, const Settings &settings)
      : ls_(std::move(ls)), settings_(&settings), backoff_(reconnectPolicy(settings.max_delay)) {}

  /// Registers the gauge, says "standing by" to the runtime, and makes one bounded
  /// connection attempt. A permanent failure (the queue exists with other arguments, no
  /// permission) is returned for start() to report; a transient one is retried later.
  [[nodiscard]] bool start(SinkContext &ctx, ConnectError &err) noexcept;

  /// Does what is due without blocking: reconnect, read deliveries, tick, expire.
  /// Returns how long the caller may block before calling it again.
  std::chrono::milliseconds service(SinkContext &ctx) noexcept;

  /// The lease connection's socket while it is open (-1 otherwise), to wait on with poll(2).
  [[nodiscard]] int fd() const noexcept { return conn_.isOpen() ? conn_.fd() : -1; }
  [[nodiscard]] bool hasBuffered() const noexcept { return conn_.isOpen() && conn_.hasBuffered(); }
  /// Whether this instance may publish now: it holds the lease and its last tick is less
  /// than timeout_ms old. The time is checked here too (not only in service()), so that a
  /// process that was frozen (SIGSTOP, a stalled VM) publishes nothing when it wakes up
  /// before service() has read what happened meanwhile.
  [[nodiscard]] bool active() const noexcept { return active_ && Clock::now() - last_received_ < ls_.timeout; }
  [[nodiscard]] const LeaseSettings &settings() const noexcept { return ls_; }

  void stop() noexcept { conn_.close(); }

 private:
  bool connect(SinkContext &ctx, ConnectError &err, double timeout_s) noexcept;
  bool declareAndConsume(ConnectError &err);
  void handleMethod(SinkContext &ctx, const amqp_frame_t &frame) noexcept;
  void tick(SinkContext &ctx) noexcept;
  void lost(SinkContext &ctx, const std::string &why) noexcept;
  void setActive(SinkContext &ctx, bool on, const std::string &why) noexcept;

  static constexpr amqp_channel_t kChannel = 1;

  LeaseSettings ls_;
  const Settings *settings_;
  Connection conn_;
  std::string tick_body_;  ///< "host pid": who ticked, for a person reading the queue
  bool active_ = false;
  bool lost_once_ = false;  ///< a connection was lost before (for the log line's wording)
  Backoff backoff_;
  Clock::time_point next_attempt_{};
  Clock::time_point next_tick_{};
  Clock::time_point last_received_{};
  Clock::time_point standby_since_{};
  Gauge *active_gauge_ = nullptr;
  Counter *ticks_sent_ = nullptr;
  Counter *ticks_received_ = nullptr;
  Counter *acquired_ = nullptr;
  Counter *released_ = nullptr;
};

}  // namespace switchyard::amqp
