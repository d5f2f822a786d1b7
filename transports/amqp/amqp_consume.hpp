// SPDX-License-Identifier: MIT
//
// amqp-consume (source), the class: amqp_consume.cpp holds the configuration and the
// mapping of a delivery to a message (deliver(), fedora_messaging.hpp, the envelope
// restore), amqp_consume_link.cpp the connection, the queue and its bindings, reading
// frames and the batched acknowledgements.
// THREADING: one instance per configured input, used from its source thread only (and
// complete(), which the core calls on that same thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "amqp_common.hpp"
#include "switchyard/json.hpp"
#include "switchyard/sdk.hpp"

namespace switchyard::amqp {

using Clock = std::chrono::steady_clock;

struct Binding {
  std::string exchange;
  std::vector<std::string> keys;
};

inline constexpr int kTagBits = 44;  // source tag = generation << 44 | delivery tag

class AmqpConsume final : public Source {
 public:
  explicit AmqpConsume(const sdk::Config &c);

  Status start(SourceContext &ctx) noexcept override;

  Status poll(SourceContext &ctx, std::chrono::milliseconds timeout) noexcept override;

  void complete(std::uint64_t tag, Outcome outcome, std::string_view reason) noexcept override;

  void stopIntake(SourceContext &ctx) noexcept override;

  void stop() noexcept override;

  /// `switchyard check --connect`: connects and logs in like start(), then checks the queue
  /// and the bindings' exchanges passively (amqp_probe.hpp).
  Status probe(ProbeReport &report, std::chrono::milliseconds timeout) noexcept override;

 private:
  static constexpr amqp_channel_t kChannel = 1;

  /// The constructor's reading of `bindings` (problems recorded per item).
  void readBindings(const sdk::Config &c);

  /// queue_type and single_active_consumer into the `arguments` tree @p args.
  void queueOptions(const sdk::Config &c, json::Value &args);

  /// Sends the acks complete() collected: one basic.ack with multiple=true for those below
  /// the oldest delivery still unsettled (so it never acknowledges a message the pipeline
  /// still holds, nor one left unacked on purpose at shutdown), single acks for the rest.
  void flushAcks() noexcept;

  void waitWake(SourceContext &ctx, std::chrono::milliseconds t);

  /// After a failed attempt: the next one at the backoff's pace (retryDelay()).
  void scheduleRetry(SourceContext &ctx, const ConnectError &err) noexcept;

  void connect(SourceContext &ctx) noexcept;

  bool connect(SourceContext &ctx, ConnectError &err, double timeout_s = 0) noexcept;

  /// Channel, qos, queue, bindings, consume. Repeated after every reconnect: a queue that
  /// is not durable (or was deleted) must be declared again.
  bool setup(ConnectError &err);

  bool declareAndConsume(ConnectError &err);

  void readFrames(SourceContext &ctx) noexcept;

  void handleMethod(SourceContext &ctx, const amqp_frame_t &frame) noexcept;

  void deliver(SourceContext &ctx, std::uint64_t dtag, bool redelivered, const std::string &rk,
               const std::string &exchange, const amqp_message_t &msg) noexcept;

  /// carry_envelope's fedmsg_* headers -> the original envelope: the message becomes what
  /// zmq-sub made of that envelope (body, headers, id, fedmsg.* metadata), so a verifier
  /// checks the origin signature and zmq-pub sends the envelope byte-identical. A message
  /// without those headers is left alone; unusable ones are counted and left alone too.
  /// Works on the trees already parsed (headers, @p body); the envelope text it renders is
  /// decoded once (the canonical fast path) to attach it. True when it restored one (and
  /// kept @p body as the parsed body).
  bool restoreEnvelope(SourceContext &ctx, Message &out, json::Value &body);

  void lostConnection(SourceContext &ctx, const std::string &why) noexcept;

  Settings settings_;
  std::string queue_;
  bool durable_;
  bool auto_delete_;
  bool passive_;
  bool restore_;
  bool require_object_;
  bool generate_ids_ = false;
  std::uint16_t prefetch_ = 10;
  std::string prefix_;
  TableArena args_arena_;
  std::vector<amqp_table_entry_t> args_;
  std::vector<Binding> bindings_;

  Connection conn_;
  Backoff backoff_;
  Clock::time_point next_attempt_{};
  std::uint64_t generation_ = 0;
  bool ever_connected_ = false;
  bool consuming_ = false;
  bool intake_stopped_ = false;
  std::string consumer_tag_;
  std::string active_queue_;
  std::string pending_error_;
  std::set<std::uint64_t> unsettled_;     ///< delivery tags of this channel not yet settled
  std::vector<std::uint64_t> ack_ready_;  ///< completed, ack not sent yet (flushAcks)

  ConnCounters cc_;
  Counter *received_ = nullptr;
  Counter *redelivered_ = nullptr;
  Counter *acked_ = nullptr;
  Counter *requeued_ = nullptr;
  Counter *rejected_ = nullptr;
  Counter *stale_ = nullptr;
  Counter *multiple_acks_ = nullptr;
  Counter *cancels_ = nullptr;
  Counter *restored_ = nullptr;
  Counter *restore_failed_ = nullptr;
  Counter *generated_ids_ = nullptr;
  DropLog drop_log_{5, std::chrono::seconds(10)};  // 5 lines per reason per 10 s
};

}  // namespace switchyard::amqp
