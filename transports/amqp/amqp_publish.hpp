// SPDX-License-Identifier: MIT
//
// amqp-publish (sink), the class: amqp_publish.cpp holds the configuration and the mapping
// of a message to a publish (send(), fedora_messaging.hpp), amqp_publish_link.cpp the
// connection, the channel in confirm mode, confirms and the broker's refusals.
// THREADING: one instance per configured output, used from its sink thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "amqp_common.hpp"
#include "amqp_frames.hpp"
#include "amqp_lease.hpp"
#include "switchyard/json.hpp"
#include "switchyard/sdk.hpp"

namespace switchyard::amqp {

using Clock = std::chrono::steady_clock;

struct Pending {
  DeliveryId id = 0;
  Message msg;
  std::string routing_key;
  std::string message_id;
  std::string sent_at;
  /// The carry headers (fedmsg_*) to add, or null. The AMQP table itself is built at
  /// publish time from the message's parsed headers (cached: not parsed again) into the
  /// one reusable arena, so a message waiting for its confirm holds no table.
  std::unique_ptr<const json::Value> carried;
};

class AmqpPublish final : public Sink {
 public:
  explicit AmqpPublish(const sdk::Config &c);

  Status start(SinkContext &ctx) noexcept override;

  void send(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept override;

  Status poll(SinkContext &ctx, std::chrono::milliseconds timeout) noexcept override;

  Status flush(SinkContext &ctx, std::chrono::milliseconds timeout) noexcept override;

  void stop() noexcept override {
    if (lease_) {
      lease_->stop();
    }
    conn_.close();
  }

  /// `switchyard check --connect`: connects and logs in like start(), then checks the
  /// exchange passively (amqp_probe.hpp).
  Status probe(ProbeReport &report, std::chrono::milliseconds timeout) noexcept override;

 private:
  bool connected() const { return conn_.isOpen() && channel_ok_; }

  /// Under `lease:`, only the active instance publishes (amqp_lease.hpp).
  bool mayPublish() const { return !lease_ || lease_->active(); }

  /// message_id (keep or uuid mode) and the fedmsg_* headers (uuid mode, carry_envelope)
  /// into @p carried, read from the decoded envelope (not parsed again when canonical).
  bool chooseIds(SinkContext &ctx, const Message &msg, Pending &p, json::Value &carried);

  void rejectHeaders(SinkContext &ctx, const Message &msg, DeliveryId id, const std::string &why);

  /// require_object_body: whether the body is a JSON object, refusing the message when it
  /// is not. What was decoded on entry is not checked again: a body that came in an
  /// envelope is that envelope's checked `msg`, a parsed body has its tree; only a body
  /// nobody parsed is validated here.
  bool bodyIsObject(SinkContext &ctx, const Message &msg, DeliveryId id);

  bool topicAllowed(const std::string &rk) const {
    return std::any_of(allowed_topics_.begin(), allowed_topics_.end(),
                       [&](const std::regex &re) { return std::regex_search(rk, re); });
  }

  /// After a failed attempt: the next one at the backoff's pace (retryDelay()).
  void scheduleRetry(SinkContext &ctx, const ConnectError &err) noexcept;

  void connect(SinkContext &ctx) noexcept;

  bool connect(SinkContext &ctx, ConnectError &err, double timeout_s = 0) noexcept;

  /// Opens a fresh channel in confirm mode; after a connect also checks the exchange.
  bool openChannel(SinkContext &ctx, bool fresh_connection, ConnectError &err);

  /// Waits up to @p timeout for the broker (and ctx.wakeFd() if @p wake), handles what came.
  void service(SinkContext &ctx, std::chrono::milliseconds timeout, bool wake) noexcept;

  void readFrames(SinkContext &ctx) noexcept;

  void handleMethod(SinkContext &ctx, const amqp_frame_t &frame) noexcept;

  void settleConfirms(SinkContext &ctx, std::uint64_t tag, bool multiple, bool ack) noexcept;

  void requeueUnconfirmed();

  /// The first unconfirmed message the broker's close text names, or end(): 403 names the
  /// topic ("access to topic 'a.b' in exchange ..."), a size 406 the body size ("message size
  /// 2097152 is larger than configured max size 1048576"). The broker closes the channel at
  /// the first offending publish and drops every later one, so the first match is the one.
  std::map<std::uint64_t, Pending>::iterator findVictim(SinkContext &ctx, int code, const std::string &text,
                                                        const char *&reason);

  void channelClosed(SinkContext &ctx, int code, const std::string &text) noexcept;

  void lostConnection(SinkContext &ctx, const std::string &why) noexcept;

  /// A body above the broker's limit (max_message_size, or what a 406 taught us): refused
  /// without publishing, so the broker never closes the channel over it.
  void refuseTooLarge(SinkContext &ctx, DeliveryId id, std::string_view message_id, std::size_t size) noexcept;

  /// Publishes what waits, within the confirm window: on plain TCP the frames of all of
  /// them go out in one write (FrameBatch), on TLS one amqp_basic_publish() each.
  void pump(SinkContext &ctx) noexcept;

  /// Encodes the publish of @p p into batch_ (plain TCP) or sends it (TLS).
  int publish(const Pending &p);

  /// Writes batch_; false (the connection lost) when that failed.
  bool writeBatch(SinkContext &ctx) noexcept;

  /// The fedora-messaging headers of @p p as an AMQP table in @p arena / @p entries
  /// (cleared first), pointing into @p headers and the carry of @p p; false with @p error
  /// when AMQP cannot carry them.
  bool buildTable(const Pending &p, const json::Value &headers, TableArena &arena,
                  std::vector<amqp_table_entry_t> &entries, std::optional<std::uint8_t> &priority,
                  std::string &error);

  static amqp_bytes_t bytesOf(std::string_view s) { return amqp_bytes_t{s.size(), const_cast<char *>(s.data())}; }

  /// send() publishes at once when this many messages wait (else poll() does).
  static constexpr std::size_t kPublishBatch = 128;
  /// pump() writes the frames it encoded when they reach this size. 64 KiB already makes
  /// one send(2) of dozens of typical messages; a larger buffer only adds memory that the
  /// queue limits (settings.queue_max_bytes) do not account for (a 256 KiB batch pushed the
  /// RSS growth of the memory-alarm test over its budget).
  static constexpr std::size_t kBatchBytes = 64 * 1024;

  Settings settings_;
  std::string exchange_;
  std::string exchange_type_;
  bool declare_;
  bool mandatory_;
  bool carry_;
  bool require_object_;
  bool uuid_ids_ = false;
  std::string prefix_;
  std::size_t window_ = 256;
  Outcome unroutable_ = Outcome::Dropped;
  std::uint64_t max_size_ = 134217728;
  std::vector<std::regex> allowed_topics_;
  /// Messages still to publish one at a time after an ambiguous closure: its suspects; a
  /// confirm counts it down, a refusal leaves at least 1 (only a confirm ends the probe).
  std::size_t probe_ = 0;
  /// Since when every confirm on this channel was a nack, while it never had an ack. A
  /// channel opened while a quorum queue's leader was being replaced can stay bound to the
  /// old leader and nack every publish: past kNackReconnect the link reconnects. (A channel
  /// that had acks and then nacks, e.g. a full queue under reject-publish, stays.)
  std::optional<std::chrono::steady_clock::time_point> nacking_since_;
  bool acked_on_channel_ = false;
  static constexpr std::chrono::seconds kNackReconnect{2};
  Counter *nack_reconnects_ = nullptr;
  DropLog drop_log_{5, std::chrono::seconds(10)};  // 5 lines per reason per 10 s

  std::optional<Lease> lease_;  // `lease:` configured

  Connection conn_;
  amqp_channel_t channel_ = 0;
  bool channel_ok_ = false;
  bool blocked_ = false;
  bool ever_connected_ = false;
  std::uint64_t next_seq_ = 1;
  Backoff backoff_;
  Clock::time_point next_attempt_{};

  std::deque<Pending> waiting_;                 // not yet published (or to republish)
  std::map<std::uint64_t, Pending> unconfirmed_;  // by publish sequence number
  std::multiset<std::string> returned_;         // message_id '\0' routing key
  // The table of the publish in progress, pointing into the message's headers and carry
  // (nothing copied), and the header list it is built from.
  TableArena arena_{false};
  std::vector<amqp_table_entry_t> entries_;
  std::vector<fedora_messaging::HeaderRef> header_refs_;
  FrameBatch batch_;  // the frames of the publishes of one pump(), written at once
  std::time_t sent_at_second_ = -1;  // `sent-at` of the last second, formatted once
  std::string sent_at_;

  ConnCounters cc_;
  Counter *published_ = nullptr;
  Counter *confirmed_ = nullptr;
  Counter *nacked_ = nullptr;
  Counter *returned_count_ = nullptr;
  Counter *forbidden_ = nullptr;
  Counter *republished_ = nullptr;
  Counter *blocked_count_ = nullptr;
  Counter *carried_ = nullptr;
  Counter *not_carried_ = nullptr;
  Counter *oversize_ = nullptr;
  Counter *forbidden_topic_ = nullptr;
  Counter *refused_ = nullptr;
  Gauge *unconfirmed_gauge_ = nullptr;
};

}  // namespace switchyard::amqp
