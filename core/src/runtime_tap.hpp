// SPDX-License-Identifier: MIT
//
// The runtime tap (internal): a live sample of the messages the pipelines hand to their
// outputs, for `GET /tap` and `switchyard tap` (docs/operations.md, "Tap").
//
// Cost: while no client is attached, a pipeline pays one relaxed atomic load per message
// (tap::active()). While one is, each message of a pipeline it asked for is offered to it
// under one mutex: copied as a JSON line (the body cut to the client's body limit) when the
// client still wants messages and its buffer has room, skipped (counted) otherwise. The
// buffer of a client is bounded (kBufferLines lines), so a slow reader costs bounded memory
// and never slows a pipeline down beyond the copy.
//
// The hub is process-wide: pipelines of every engine in the process offer to it, and the
// lines name their pipeline. THREADING: everything here is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "switchyard/message.hpp"

namespace switchyard::tap {

namespace detail {
/// How many clients are attached; read on the hot path.
extern std::atomic<int> g_clients;
void offerSlow(std::string_view pipeline, const Message &msg) noexcept;
}  // namespace detail

/// True while at least one tap client is attached (one relaxed load).
[[nodiscard]] inline bool active() noexcept { return detail::g_clients.load(std::memory_order_relaxed) != 0; }

/// Offers @p msg, handed to the outputs of @p pipeline, to the attached clients. Call only
/// when active() (the check stays inline at the call site).
inline void offer(std::string_view pipeline, const Message &msg) noexcept { detail::offerSlow(pipeline, msg); }

/// Lines a client's buffer holds at most; beyond, messages are skipped (counted).
inline constexpr std::size_t kBufferLines = 256;
/// Clients attached at once at most (each holds one of the HTTP server's threads for its
/// duration, so /metrics and /health stay answerable).
inline constexpr int kMaxClients = 2;
/// Bounds of a request.
inline constexpr std::uint64_t kDefaultLimit = 100;
inline constexpr std::uint64_t kMaxLimit = 100000;
inline constexpr double kDefaultSeconds = 60;
inline constexpr double kMaxSeconds = 3600;
inline constexpr std::size_t kDefaultBodyBytes = 4096;
inline constexpr std::size_t kMaxBodyBytes = 1 << 20;

/// One attached client. Attaching is refused (attach() returns null) beyond kMaxClients.
class Client {
 public:
  struct Options {
    std::string pipeline;  ///< "" = every pipeline
    std::uint64_t limit = kDefaultLimit;
    std::size_t body_bytes = kDefaultBodyBytes;
  };
  static std::shared_ptr<Client> attach(Options opts);
  ~Client();
  Client(const Client &) = delete;
  Client &operator=(const Client &) = delete;

  /// Waits until @p deadline for the next line (JSON, no newline); false when none came.
  bool next(std::string &line, std::chrono::steady_clock::time_point deadline);
  /// Every message it asked for was taken (limit reached) and read.
  [[nodiscard]] bool finished();
  [[nodiscard]] std::uint64_t sampled();
  [[nodiscard]] std::uint64_t skipped();

  /// Hub side: queues @p msg of @p pipeline when this client wants it and has room
  /// (rendered into @p line, made with @p line_body_bytes, once for the clients of one
  /// offer that share a body limit), or counts a skip.
  void take(std::string_view pipeline, const Message &msg, std::string &line, std::size_t &line_body_bytes);

  explicit Client(Options opts) : opts_(std::move(opts)) {}

 private:
  const Options opts_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> lines_;
  std::uint64_t taken_ = 0;    ///< lines queued so far (bounded by the limit)
  std::uint64_t skipped_ = 0;  ///< offered while the buffer was full
};

/// The JSON line of a tapped message (exposed for tests): time, pipeline, topic, id,
/// headers, body (a JSON value, or the first @p body_bytes bytes as a string when longer),
/// body_bytes and truncated.
std::string render(std::string_view pipeline, const Message &msg, std::size_t body_bytes);

}  // namespace switchyard::tap

namespace switchyard {
class Engine;
}  // namespace switchyard

namespace switchyard::http {
class Server;
}  // namespace switchyard::http

namespace switchyard::tap {

/// Adds `GET /tap?pipeline=NAME&limit=N&seconds=S&body_bytes=B` to @p server: streams the
/// tapped messages as JSON lines (chunked, application/x-ndjson), then one last line
/// {"end": {"reason", "sampled", "skipped"}}; a blank line is a keep-alive sent after 5 s
/// without a message. With @p enabled false (settings.http.tap off) it answers 404 saying
/// how to turn it on. @p pipelines names the running pipelines (an unknown one is a 404).
void addRoute(http::Server &server, bool enabled, std::function<std::vector<std::string>()> pipelines);
/// addRoute() for @p engine (settings.http.tap, its pipelines); @p engine must outlive
/// the server.
void addRoute(http::Server &server, const Engine &engine);

}  // namespace switchyard::tap
