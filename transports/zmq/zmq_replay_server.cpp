// SPDX-License-Identifier: MIT
// zmq-pub's replay endpoint: the REP socket and its thread (see zmq_replay_server.hpp).
#include "zmq_replay_server.hpp"

#include "zmq_common.hpp"

#include <fmt/format.h>

#include <string>
#include <vector>

namespace switchyard::zmqt {

ReplayCounters ReplayCounters::from(PluginContext &ctx) {
  ReplayCounters c;
  c.requests = &ctx.counter("replay_requests");
  c.served = &ctx.counter("replay_served");
  c.bad_query = &ctx.counter("replay_errors", "bad_query");
  c.no_match = &ctx.counter("replay_errors", "no_match");
  c.store_error = &ctx.counter("replay_errors", "store_error");
  c.multipart = &ctx.counter("replay_errors", "multipart");
  return c;
}

ReplayServer::ReplayServer(std::shared_ptr<zmq::context_t> zctx, std::shared_ptr<replay::Store> store,
                           std::size_t max_reply, ReplayCounters counters, Logger &log)
    : zctx_(std::move(zctx)), store_(std::move(store)), max_reply_(max_reply), counters_(counters), log_(log) {}

ReplayServer::~ReplayServer() { stop(); }

Status ReplayServer::start(const std::string &endpoint) noexcept {
  try {
    sock_ = std::make_unique<zmq::socket_t>(*zctx_, zmq::socket_type::rep);
    sock_->set(zmq::sockopt::linger, 0);
    // A reply to a client that went away is discarded by REP; a reply the client's pipe
    // cannot take within a second is given up, so one stuck client never stalls the others.
    sock_->set(zmq::sockopt::sndtimeo, 1000);
    sock_->set(zmq::sockopt::sndhwm, 0);  // a reply is at most replay_max_reply frames
    sock_->bind(endpoint);
    log_.info("replay endpoint bound {}", sock_->get(zmq::sockopt::last_endpoint));
  } catch (const std::exception &err) {
    sock_.reset();
    return Status::fatal(fmt::format("cannot bind the replay endpoint {} (replay_endpoint): {}{}", endpoint,
                                     err.what(), bindFailureHint(err)),
                         "replay_endpoint");
  }
  try {
    stop_.store(false);
    thread_ = std::thread([this] { run(); });
  } catch (const std::exception &err) {
    sock_.reset();
    return Status::fatal(fmt::format("cannot start the replay thread: {}", err.what()));
  }
  return Status::ok();
}

void ReplayServer::stop() noexcept {
  stop_.store(true);
  if (thread_.joinable()) {
    thread_.join();
  }
  sock_.reset();
}

void ReplayServer::run() noexcept {
  zmq::socket_t &sock = *sock_;
  while (!stop_.load()) {
    try {
      zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) > 0 && (item.revents & ZMQ_POLLIN) != 0) {
        answer(sock);
      }
    } catch (const zmq::error_t &e) {
      if (e.num() == ETERM) {
        return;
      }
      if (e.num() != EINTR && e.num() != EAGAIN) {
        log_.error("replay endpoint: {}", e.what());
      }
    } catch (const std::exception &e) {
      log_.error("replay endpoint: {}", e.what());
    }
  }
}

void ReplayServer::answer(zmq::socket_t &sock) {
  std::vector<zmq::message_t> request;
  do {  // every frame of the request (once the first is there, the rest are too)
    zmq::message_t part;
    if (!sock.recv(part, zmq::recv_flags::dontwait)) {
      if (request.empty()) {
        return;
      }
      break;
    }
    request.push_back(std::move(part));
  } while (request.back().more());
  counters_.requests->add();
  auto sendError = [&](Counter *counter, std::string_view reason) {
    counter->add();
    std::string frame = replay::errorFrame(reason);
    (void)sock.send(zmq::buffer(frame), zmq::send_flags::none);
  };
  if (request.size() != 1) {
    sendError(counters_.multipart, fmt::format("the query must be one frame, got {}", request.size()));
    return;
  }
  std::string reason;
  auto query = replay::parseQuery(request[0].to_string_view(), reason);
  if (!query) {
    sendError(counters_.bad_query, reason);
    return;
  }
  std::vector<replay::Record> found;
  try {
    found = store_->query(*query, max_reply_);
  } catch (const std::exception &e) {
    log_.error("replay endpoint: the store failed to answer {}: {}", request[0].to_string_view(), e.what());
    sendError(counters_.store_error, std::string("the store failed: ") + e.what());
    return;
  }
  if (found.empty()) {
    sendError(counters_.no_match, "no match");
    return;
  }
  for (std::size_t i = 0; i < found.size(); ++i) {
    const std::string &env = found[i].envelope;
    auto flags = i + 1 < found.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
    if (!sock.send(zmq::buffer(env), flags)) {
      log_.warn("replay endpoint: a client did not take its reply within 1 s; given up");
      return;
    }
  }
  counters_.served->add(found.size());
}

}  // namespace switchyard::zmqt
