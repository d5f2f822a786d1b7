// SPDX-License-Identifier: MIT
// http-in: the HTTP side, run by cpp-httplib's worker threads. Debian's libcpp-httplib is
// built with CPPHTTPLIB_OPENSSL_SUPPORT (its pkg-config file defines it), so SSLServer and
// Request::ssl are there; the TLS context is set up here (setupTls) rather than by
// httplib's file constructor, so that a client certificate from another CA reaches the
// handler and is answered 401 with the reason instead of a failed handshake.
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <httplib.h>

#include "http_in.hpp"

namespace switchyard::httpin {

namespace {

constexpr const char *kPath = "/v1/messages";

std::string mediaType(const httplib::Request &req) {
  std::string ct = req.get_header_value("Content-Type");
  auto semi = ct.find(';');
  if (semi != std::string::npos) {
    ct.resize(semi);
  }
  while (!ct.empty() && ct.back() == ' ') {
    ct.pop_back();
  }
  for (auto &ch : ct) {
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  return ct;
}

bool isBatchType(const std::string &t) { return t == "application/x-ndjson" || t == "application/jsonl"; }

bool sameSecret(const std::string &a, const std::string &b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

/// The subject CN of the client's certificate, "" when there is none.
std::string peerCn(X509 *cert) {
  X509_NAME *name = X509_get_subject_name(cert);
  int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx < 0) {
    return {};
  }
  unsigned char *utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
  if (len < 0) {
    return {};
  }
  std::string cn(reinterpret_cast<char *>(utf8), static_cast<std::size_t>(len));
  OPENSSL_free(utf8);
  return cn;
}

}  // namespace

bool HttpIn::buildServer(std::string &key, std::string &err) {
  if (s_.tls.on) {
    bool ok = false;
    auto srv = std::make_unique<httplib::SSLServer>([&](SSL_CTX &ctx) {
      ok = setupTls(&ctx, s_.tls, key, err);
      return ok;
    });
    if (!ok || !srv->is_valid()) {
      if (err.empty()) {
        err = "cannot set up TLS";
      }
      return false;
    }
    server_ = std::move(srv);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  const auto threads = static_cast<std::size_t>(s_.threads);
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // SO_REUSEADDR only: httplib's default is SO_REUSEPORT, which would let a second
  // listener on the same port (another pipeline, another switchyard) share the connections
  // silently instead of failing to start.
  server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    (void)::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server_->set_payload_max_length(s_.max_body);
  server_->set_read_timeout(s_.read_timeout);
  server_->set_write_timeout(s_.read_timeout);
  // One request per connection: a request refused before its body was read (credentials,
  // size, load) leaves that body unread, and httplib 0.11 would read it as the next request
  // on a kept-alive connection. It also keeps idle connections from holding workers.
  server_->set_keep_alive_max_count(1);
  routes();
  return true;
}

void HttpIn::routes() {
  server_->set_pre_routing_handler([this](const httplib::Request &req, httplib::Response &res) {
    if (req.get_header_value("Expect") == "100-continue") {
      return httplib::Server::HandlerResponse::Unhandled;  // checked already, below
    }
    return refuseEarly(req, res) ? httplib::Server::HandlerResponse::Handled
                                 : httplib::Server::HandlerResponse::Unhandled;
  });
  // A client that asks before sending its body (curl does above 1 KiB) hears a refusal
  // instead of "100 Continue", and does not send the body at all.
  server_->set_expect_100_continue_handler([this](const httplib::Request &req, httplib::Response &res) {
    return refuseEarly(req, res) ? res.status : 100;
  });
  // The body is read here, chunk by chunk, up to max_body: httplib 0.11 checks
  // payload_max_length against Content-Length only, not while it reads a chunked body.
  server_->Post(kPath, [this](const httplib::Request &req, httplib::Response &res,
                              const httplib::ContentReader &reader) {
    std::string body;
    bool over = false;
    reader([&](const char *data, std::size_t n) {
      if (body.size() + n > s_.max_body) {
        over = true;
        return false;
      }
      body.append(data, n);
      return true;
    });
    if (over) {
      refuse(res, 413, "oversize", fmt::format("the body is larger than max_body ({} bytes)", s_.max_body));
      return;
    }
    handlePost(req, body, res);
  });
  server_->Get("/v1/health", [this](const httplib::Request &, httplib::Response &res) {
    bool up = accepting_.load();
    res.status = up ? 200 : 503;
    res.set_content(up ? "{\"status\":\"ok\"}\n" : "{\"status\":\"stopping\"}\n", "application/json");
  });
  // What httplib answers by itself (no such path 404, body above max_body 413, a request
  // it cannot parse 400) gets a JSON reason and is counted like our own refusals.
  server_->set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request &req,
                                                                         httplib::Response &res) {
    if (!res.body.empty()) {
      return httplib::Server::HandlerResponse::Unhandled;  // our own answer
    }
    if (req.path != kPath || req.method != "POST") {
      requests_->add();  // (a POST to kPath was counted before its body was read)
    }
    if (res.status == 413) {
      refuse(res, 413, "oversize", fmt::format("the body is larger than max_body ({} bytes)", s_.max_body));
    } else if (res.status == 404 || res.status == 405) {
      refuse(res, 404, "not_found",
             fmt::format("no such resource: {} {}; messages are POSTed to {}", req.method, req.path, kPath));
    } else {
      int st = res.status;
      refuse(res, st, "bad_request", fmt::format("the request could not be read (HTTP {})", st));
    }
    return httplib::Server::HandlerResponse::Handled;
  }));
}

void HttpIn::refuse(httplib::Response &res, int status, std::string_view error, std::string_view detail,
                    const std::vector<std::string> &ids, const std::vector<LineResult> *results) {
  if (auto it = refused_.find(error); it != refused_.end()) {
    it->second->add();
  }
  res.status = status;
  if (status == 503) {
    res.set_header("Retry-After", std::to_string(s_.retry_after));
  }
  if (status == 401) {
    res.set_header("WWW-Authenticate", "Bearer realm=\"switchyard\"");
  }
  res.set_content(responseJson("refused", error, detail, ids, false, results), "application/json");
}

const Sender *HttpIn::authenticate(const httplib::Request &req, std::string &error, std::string &detail) const {
  std::string token;
  if (req.has_header("Authorization")) {
    std::string auth = req.get_header_value("Authorization");
    if (auth.size() <= 7 || (auth.compare(0, 7, "Bearer ") != 0 && auth.compare(0, 7, "bearer ") != 0)) {
      error = "bad_token";
      detail = "the Authorization header must be \"Bearer TOKEN\"";
      return nullptr;
    }
    token = auth.substr(7);
  }
  // A client certificate counts only when it verified against client_ca_file.
  std::string cn;
  bool cert_ok = false;
  std::string cert_problem;
  if (req.ssl != nullptr && !s_.tls.client_ca_file.empty()) {
    if (X509 *cert = SSL_get1_peer_certificate(req.ssl); cert != nullptr) {
      long v = SSL_get_verify_result(req.ssl);
      if (v == X509_V_OK) {
        cn = peerCn(cert);
        cert_ok = !cn.empty();
        if (!cert_ok) {
          cert_problem = "the client certificate has no subject CN";
        }
      } else {
        cert_problem = fmt::format("the client certificate was not accepted: {} (it must be signed by the CA of "
                                   "tls.client_ca_file)",
                                   X509_verify_cert_error_string(v));
      }
      X509_free(cert);
    }
  }
  const Sender *found = nullptr;
  if (!token.empty()) {
    for (const auto &snd : s_.senders) {
      // Every token is compared in constant time, whichever matches.
      if (snd.hasToken() && sameSecret(snd.token, token) && found == nullptr) {
        found = &snd;
      }
    }
    if (found == nullptr) {
      error = "bad_token";
      detail = "the bearer token is not one of a configured sender's";
      return nullptr;
    }
    if (!found->client_cn.empty() && !(cert_ok && cn == found->client_cn)) {
      error = cert_problem.empty() ? "unknown_client" : "bad_client_certificate";
      detail = cert_problem.empty() ? fmt::format("sender '{}' also needs a client certificate with CN '{}'",
                                                  found->name, found->client_cn)
                                    : cert_problem;
      return nullptr;
    }
    return found;
  }
  if (!cert_problem.empty()) {
    error = "bad_client_certificate";
    detail = cert_problem;
    return nullptr;
  }
  if (cert_ok) {
    for (const auto &snd : s_.senders) {
      if (snd.client_cn == cn) {
        if (snd.hasToken()) {
          error = "no_credentials";
          detail = fmt::format("sender '{}' also needs its bearer token (Authorization: Bearer TOKEN)", snd.name);
          return nullptr;
        }
        return &snd;
      }
    }
    error = "unknown_client";
    detail = fmt::format("no sender has client_cn '{}'", cn);
    return nullptr;
  }
  error = "no_credentials";
  detail = "no credentials: send Authorization: Bearer TOKEN, or a client certificate";
  return nullptr;
}

bool HttpIn::refuseEarly(const httplib::Request &req, httplib::Response &res) {
  if (req.path != kPath || req.method != "POST") {
    return false;  // the routes or the error handler answer
  }
  requests_->add();
  // The body is not read: the connection ends with this answer (one request per connection).
  auto early = [&](int status, std::string_view error, std::string_view detail) {
    refuse(res, status, error, detail);
    return true;
  };
  if (!accepting_.load()) {
    return early(503, "stopping", "the router is shutting down; send again later");
  }
  std::string error, detail;
  if (authenticate(req, error, detail) == nullptr) {
    return early(401, error, detail);
  }
  std::string type = mediaType(req);
  if (type != "application/json" && !isBatchType(type)) {
    return early(415, "wrong_content_type",
                 fmt::format("Content-Type '{}': send application/json (one message) or application/x-ndjson "
                             "(one message per line)",
                             type));
  }
  if (req.has_header("Content-Length")) {
    std::string cl = req.get_header_value("Content-Length");
    if (std::strtoull(cl.c_str(), nullptr, 10) > s_.max_body) {
      return early(413, "oversize", fmt::format("the body ({} bytes) is larger than max_body ({} bytes)", cl, s_.max_body));
    }
  }
  if (stalled_.load() && in_flight_.load() > 0) {
    return early(503, "stalled",
                 fmt::format("the outputs have confirmed nothing since a request timed out (timeout {} ms): the "
                             "next hop is probably down; send again later",
                             s_.timeout.count()));
  }
  if (in_flight_.load() >= s_.max_in_flight) {
    return early(503, "busy", fmt::format("{} messages are waiting for their outputs (max_in_flight); send again later",
                                          s_.max_in_flight));
  }
  return false;
}

bool HttpIn::admit(std::size_t n) {
  std::size_t cur = in_flight_.load();
  do {
    if (cur + n > s_.max_in_flight) {
      return false;
    }
  } while (!in_flight_.compare_exchange_weak(cur, cur + n));
  in_flight_gauge_->add(static_cast<std::int64_t>(n));
  return true;
}

void HttpIn::handlePost(const httplib::Request &req, const std::string &body, httplib::Response &res) {
  try {
    std::string error, detail;
    const Sender *snd = authenticate(req, error, detail);
    if (snd == nullptr) {
      refuse(res, 401, error, detail);
      return;
    }
    const bool single = !isBatchType(mediaType(req));
    auto b = std::make_shared<Batch>();
    std::vector<Line> lines;
    if (single) {
      lines.push_back({0, body});
    } else {
      lines = splitLines(body);
      if (lines.empty()) {
        refuse(res, 400, "bad_body", "the batch has no message: one JSON message object per line");
        return;
      }
      if (lines.size() > s_.max_batch) {
        refuse(res, 413, "too_many_messages",
               fmt::format("the batch has {} messages, more than max_batch ({})", lines.size(), s_.max_batch));
        return;
      }
    }
    // All or nothing: every message is checked before any is taken.
    b->msgs.resize(lines.size());
    for (std::size_t i = 0; i < lines.size(); ++i) {
      std::string err;
      std::string where = single ? std::string() : fmt::format("line {}: ", lines[i].number);
      if (!parseMessage(lines[i].text, b->msgs[i], err)) {
        refuse(res, 400, "bad_body", where + err);
        return;
      }
      if (!snd->allows(b->msgs[i].topic())) {
        refuse(res, 403, "forbidden_topic",
               fmt::format("{}sender '{}' may not post topic '{}' (see its topics)", where, snd->name,
                           b->msgs[i].topic()));
        return;
      }
      b->ids.push_back(b->msgs[i].id());
    }
    const std::size_t n = b->msgs.size();
    b->remaining = n;
    b->outcomes.assign(n, Outcome::Retry);
    b->reasons.assign(n, {});
    b->settled.assign(n, false);
    if (!admit(n)) {
      refuse(res, 503, "busy",
             fmt::format("{} messages are waiting for their outputs (max_in_flight {}); send again later",
                         in_flight_.load(), s_.max_in_flight));
      return;
    }
    {
      std::lock_guard lk(q_m_);
      if (!intake_open_) {
        in_flight_.fetch_sub(n);
        in_flight_gauge_->add(-static_cast<std::int64_t>(n));
        refuse(res, 503, "stopping", "the router is shutting down; send again later");
        return;
      }
      queue_.push_back(b);
    }
    std::uint64_t one = 1;
    (void)!::write(efd_, &one, sizeof one);
    std::unique_lock lk(b->m);
    bool finished = b->cv.wait_for(lk, s_.timeout, [&] { return b->remaining == 0; });
    lk.unlock();
    if (!finished) {
      stalled_ = true;
    }
    answer(res, *b, single, finished);
  } catch (const std::exception &e) {
    log_->error("{} {}: {}", req.method, req.path, e.what());
    refuse(res, 500, "internal_error", "internal error; see the router's log");
  }
}

void HttpIn::answer(httplib::Response &res, Batch &b, bool single, bool finished) {
  std::vector<LineResult> results;
  Outcome worst = Outcome::Delivered;
  bool any_retry = !finished;
  std::string first_reason;
  {
    std::lock_guard lk(b.m);
    for (std::size_t i = 0; i < b.ids.size(); ++i) {
      LineResult r;
      r.line = single ? 0 : i + 1;
      r.id = b.ids[i];
      if (!b.settled[i]) {
        r.outcome = "pending";
      } else {
        r.outcome = outcomeName(b.outcomes[i]);
        r.reason = b.reasons[i];
        if (b.outcomes[i] == Outcome::Retry) {
          any_retry = true;
        }
        if (b.outcomes[i] > worst) {
          worst = b.outcomes[i];
        }
        if (b.outcomes[i] != Outcome::Delivered && first_reason.empty()) {
          first_reason = b.reasons[i];
        }
      }
      results.push_back(std::move(r));
    }
  }
  if (any_retry) {
    // Some message is not known to be delivered and may be sent again: the sender resends
    // the whole request (messages with their ids, so duplicates can be recognised).
    if (!finished) {
      refuse(res, 503, "timeout",
             fmt::format("the outputs did not confirm within timeout ({} ms); send again later", s_.timeout.count()),
             {}, &results);
    } else {
      refuse(res, 503, first_reason == "stopping" || first_reason == "shutdown" ? "stopping" : "retry",
             fmt::format("an output could not take the message now ({}); send again later", first_reason), {},
             &results);
    }
    return;
  }
  if (worst == Outcome::Dropped || worst == Outcome::Reject) {
    refuse(res, 422, worst == Outcome::Dropped ? "dropped" : "rejected",
           fmt::format("the pipeline {} the message{} ({}); sending it again will not help",
                       worst == Outcome::Dropped ? "dropped" : "rejected", single ? "" : "s", first_reason),
           {}, &results);
    return;
  }
  accepted_->add();
  accepted_messages_->add(b.ids.size());
  res.status = 202;
  res.set_content(responseJson("accepted", {}, {}, b.ids, single), "application/json");
}

}  // namespace switchyard::httpin
