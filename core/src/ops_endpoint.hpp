// SPDX-License-Identifier: MIT
// The operations endpoint of a running engine (internal): GET /metrics, /health/live,
// /health/ready and /pipelines on the HTTP server (http_endpoint.hpp), plus the routes
// other parts add (/tap). docs/operations.md.
//
// The run loop (cli::runEngine) drives it:
//   auto ops = ops::startEndpoint(engine);  // before Engine::start(); null when off
//   engine.start(); ops->engineStarted();
//   while (...) { ops->tick(); ... }        // each turn of the loop
//   engine.stop();                          // the endpoint answers during the drain
//   ops.reset();
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "http_endpoint.hpp"
#include "switchyard/engine.hpp"

namespace switchyard::ops {

/// How long the run loop may stand still before /health/live says 503.
inline constexpr std::chrono::seconds kLiveTimeout{5};

/// Readiness of one engine, as GET /health/ready answers it: ready when every pipeline is
/// running, every plugin that keeps a gauge `connected` has it at 1 and none keeps a gauge
/// `blocked` at 1. @p problems gets one JSON object per thing that is not ready.
bool ready(const std::vector<PipelineStatus> &status, const std::vector<CounterSample> &samples,
           std::string &problems);

class Endpoint {
 public:
  /// Registers /metrics, /health/live, /health/ready and /pipelines for @p engine.
  /// @p engine must outlive the endpoint.
  explicit Endpoint(Engine &engine);
  ~Endpoint();
  Endpoint(const Endpoint &) = delete;
  Endpoint &operator=(const Endpoint &) = delete;

  /// The server, to add routes before start().
  http::Server &server() noexcept { return server_; }
  /// Binds @p where and serves; throws http::BindError naming the address.
  void start(const http::Listen &where);
  /// Engine::start() returned: /health/ready and /pipelines now ask the engine.
  void engineStarted() noexcept { started_.store(true); }
  /// The run loop turned (/health/live).
  void tick() noexcept;

 private:
  http::Response metrics() const;
  http::Response live() const;
  http::Response readyResponse() const;
  http::Response pipelines() const;

  Engine &engine_;
  http::Server server_;
  std::atomic<bool> started_{false};
  std::atomic<std::int64_t> last_tick_ns_;  ///< steady clock
};

/// The endpoint of @p engine when it has an address (Engine::httpListen()), started, with
/// the routes @p add_routes adds; null when the endpoint is off. Throws
/// std::invalid_argument for a bad address and http::BindError when it cannot be bound.
std::unique_ptr<Endpoint> startEndpoint(Engine &engine,
                                        const std::function<void(http::Server &)> &add_routes = {});

}  // namespace switchyard::ops
