// SPDX-License-Identifier: MIT
// http-in (source): HTTPS ingest (docs/plugins/http-in.md). Senders POST JSON messages; the
// HTTP response is the acknowledgement.
//
// Threads: cpp-httplib's workers (`threads`) authenticate, parse and check each request,
// then hand its messages to the pipeline's input thread through a queue and an eventfd
// that poll() waits on together with ctx.wakeFd(); the input thread submits them and
// complete() settles them, which wakes the waiting worker. The input thread never waits
// for a client: a worker waits (up to `timeout`) for its own request's outcomes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "http_in_body.hpp"
#include "http_in_config.hpp"
#include "switchyard/sdk.hpp"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace switchyard::httpin {

/// One POST being served: its messages, then their outcomes as the outputs settle them.
struct Batch {
  std::vector<Message> msgs;  ///< moved out by the input thread when it submits
  std::vector<std::string> ids;
  std::mutex m;
  std::condition_variable cv;
  std::size_t remaining = 0;
  std::vector<Outcome> outcomes;
  std::vector<std::string> reasons;
  std::vector<bool> settled;
};

class HttpIn final : public Source {
 public:
  explicit HttpIn(const sdk::Config &c);
  ~HttpIn() override;

  Status start(SourceContext &ctx) noexcept override;
  Status poll(SourceContext &ctx, std::chrono::milliseconds timeout) noexcept override;
  void complete(std::uint64_t tag, Outcome outcome, std::string_view reason) noexcept override;
  void stopIntake(SourceContext &ctx) noexcept override;
  void stop() noexcept override;
  Status probe(ProbeReport &report, std::chrono::milliseconds timeout) noexcept override;

 private:
  // http_in_server.cpp: the HTTP side (worker threads).
  bool buildServer(std::string &key, std::string &err);
  void routes();
  void handlePost(const httplib::Request &req, const std::string &body, httplib::Response &res);
  /// Cheap refusals before the body is read: credentials, content type, size, load.
  bool refuseEarly(const httplib::Request &req, httplib::Response &res);
  const Sender *authenticate(const httplib::Request &req, std::string &error, std::string &detail) const;
  void refuse(httplib::Response &res, int status, std::string_view error, std::string_view detail,
              const std::vector<std::string> &ids = {}, const std::vector<LineResult> *results = nullptr);
  void answer(httplib::Response &res, Batch &b, bool single, bool finished);
  /// Takes @p n messages' room in max_in_flight; false when there is none.
  bool admit(std::size_t n);

  // http_in.cpp: the input thread.
  void submitQueued(SourceContext &ctx);
  void settle(Batch &b, std::size_t i, Outcome o, std::string_view reason);
  /// Closes the listening socket (once: httplib's stop() must not run twice).
  void stopListening() noexcept;

  Settings s_;
  std::unique_ptr<httplib::Server> server_;
  std::thread listener_;
  bool listening_stopped_ = false;  ///< input thread (stopIntake, stop)
  int efd_ = -1;

  std::mutex q_m_;
  std::deque<std::shared_ptr<Batch>> queue_;
  bool intake_open_ = false;  ///< under q_m_
  std::atomic<bool> accepting_{false};
  std::atomic<std::size_t> in_flight_{0};
  /// A request timed out and no message settled since: the outputs are stuck (a broker
  /// down), so new requests are answered 503 at once instead of holding a worker each.
  std::atomic<bool> stalled_{false};

  // input thread only
  std::uint64_t next_tag_ = 0;
  std::unordered_map<std::uint64_t, std::pair<std::shared_ptr<Batch>, std::size_t>> tags_;

  // counters: looked up in start(), read by the workers afterwards
  Counter *requests_ = nullptr, *accepted_ = nullptr, *accepted_messages_ = nullptr;
  std::map<std::string, Counter *, std::less<>> refused_;
  Gauge *in_flight_gauge_ = nullptr;
  Logger *log_ = nullptr;
};

}  // namespace switchyard::httpin
