// SPDX-License-Identifier: MIT
//
// sy-bench: what its commands share (arguments, statistics, rabbitmq-c helpers). See
// sy_bench.cpp for the commands and how scripts/bench uses them.
#pragma once

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>
#include <zmq.hpp>

namespace sybench {


using Clock = std::chrono::steady_clock;

inline std::atomic<bool> g_stop{false};

inline void onSignal(int /*sig*/) { g_stop = true; }

inline std::int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

inline double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

[[noreturn]] inline void die(const std::string &what) {
  std::fprintf(stderr, "sy-bench: %s\n", what.c_str());
  std::exit(2);
}

// --- arguments ---------------------------------------------------------------------------

class Args {
 public:
  Args(int argc, char **argv, int from) {
    for (int i = from; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0) {
        die("unexpected argument " + a);
      }
      std::vector<std::string> vals;
      while (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
        vals.emplace_back(argv[++i]);
      }
      values_[a.substr(2)] = vals;
    }
  }
  bool has(const std::string &k) const { return values_.count(k) != 0; }
  std::string str(const std::string &k, const std::string &def = "") const {
    auto it = values_.find(k);
    return it == values_.end() || it->second.empty() ? def : it->second[0];
  }
  std::string need(const std::string &k) const {
    if (!has(k)) {
      die("--" + k + " is required");
    }
    return str(k);
  }
  std::vector<std::string> list(const std::string &k) const {
    auto it = values_.find(k);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
  }
  double num(const std::string &k, double def) const { return has(k) ? std::stod(str(k)) : def; }
  long integer(const std::string &k, long def) const { return has(k) ? std::stol(str(k)) : def; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
};

// --- statistics and output ---------------------------------------------------------------

struct Latency {
  std::vector<std::int64_t> ns;
  std::vector<std::pair<std::int64_t, std::int64_t>> samples;  ///< (stamp, latency) for --dump
  std::string dump_path;
  void add(std::int64_t v, std::int64_t stamp) {
    ns.push_back(v);
    samples.emplace_back(stamp, v);
  }
  /// --dump FILE: one "stamp latency_ns" line per message, so that the driver can pair
  /// the two copies of each message (bridge and raw path) and take per-message differences.
  void dump(const std::string &path) const {
    if (path.empty()) {
      return;
    }
    FILE *f = std::fopen(path.c_str(), "w");
    if (f == nullptr) {
      die("cannot write " + path);
    }
    for (const auto &[stamp, l] : samples) {
      std::fprintf(f, "%lld %lld\n", static_cast<long long>(stamp), static_cast<long long>(l));
    }
    std::fclose(f);
  }
  std::string json() {
    dump(dump_path);
    if (ns.empty()) {
      return "null";
    }
    std::sort(ns.begin(), ns.end());
    auto q = [&](double p) {
      std::size_t i = static_cast<std::size_t>(p * static_cast<double>(ns.size() - 1) + 0.5);
      return static_cast<double>(ns[std::min(i, ns.size() - 1)]) / 1000.0;
    };
    char buf[256];
    std::snprintf(buf, sizeof buf, "{\"n\":%zu,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f}",
                  ns.size(), q(0.5), q(0.99), q(0.999), static_cast<double>(ns.back()) / 1000.0);
    return buf;
  }
};

// Finds "t":<digits> in a body and returns latency against now, or -1.
inline std::int64_t stampLatency(const char *data, std::size_t len, std::int64_t now) {
  static const char kKey[] = "\"t\":";
  const char *end = data + len;
  const char *p = std::search(data, end, kKey, kKey + 4);
  if (p == end) {
    return -1;
  }
  p += 4;
  std::int64_t v = 0;
  bool any = false;
  while (p < end && *p >= '0' && *p <= '9') {
    v = v * 10 + (*p - '0');
    ++p;
    any = true;
  }
  return any ? now - v : -1;
}

// A fedmsg-like payload of about `size` bytes in total once wrapped by the caller:
// {"body":"xxxx","n":N,"t":STAMP}. `pad` is the number of 'x'.
inline std::string payload(std::uint64_t n, std::size_t pad, std::int64_t stamp) {
  std::string s;
  s.reserve(pad + 64);
  s += "{\"body\":\"";
  s.append(pad, 'x');
  s += "\",\"n\":";
  s += std::to_string(n);
  s += ",\"t\":";
  s += std::to_string(stamp);
  s += "}";
  return s;
}

// --- rabbitmq-c ---------------------------------------------------------------------------

class Amqp {
 public:
  explicit Amqp(const std::string &url) {
    std::string copy = url;
    amqp_connection_info info{};
    amqp_default_connection_info(&info);
    if (amqp_parse_url(copy.data(), &info) != AMQP_STATUS_OK) {
      die("bad url " + url);
    }
    conn_ = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(conn_);
    if (sock == nullptr || amqp_socket_open(sock, info.host, info.port) != AMQP_STATUS_OK) {
      die("cannot connect to " + std::string(info.host) + ":" + std::to_string(info.port));
    }
    std::string vhost = info.vhost[0] ? info.vhost : "/";
    check(amqp_login(conn_, vhost.c_str(), 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password), "login");
    amqp_channel_open(conn_, 1);
    check(amqp_get_rpc_reply(conn_), "channel.open");
  }
  ~Amqp() {
    amqp_channel_close(conn_, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn_);
  }
  Amqp(const Amqp &) = delete;
  Amqp &operator=(const Amqp &) = delete;

  amqp_connection_state_t st() { return conn_; }

  static void check(amqp_rpc_reply_t r, const char *what) {
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      std::string detail;
      if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
        detail = amqp_error_string2(r.library_error);
      } else if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto *m = static_cast<amqp_channel_close_t *>(r.reply.decoded);
        detail = std::string(static_cast<char *>(m->reply_text.bytes), m->reply_text.len);
      } else {
        detail = "server exception";
      }
      die(std::string(what) + ": " + detail);
    }
  }
  void rpc(const char *what) { check(amqp_get_rpc_reply(conn_), what); }

  // Passive declare: returns the number of ready messages.
  std::uint32_t count(const std::string &queue) {
    auto *ok = amqp_queue_declare(conn_, 1, amqp_cstring_bytes(queue.c_str()), 1, 0, 0, 0, amqp_empty_table);
    rpc("queue.declare passive");
    return ok->message_count;
  }

 private:
  amqp_connection_state_t conn_;
};

// Publisher with confirms and a window of unconfirmed messages, as amqp-publish works.
class ConfirmPublisher {
 public:
  ConfirmPublisher(Amqp &a, std::size_t window) : a_(a), window_(window) {
    amqp_confirm_select(a_.st(), 1);
    a_.rpc("confirm.select");
  }

  void publish(const std::string &exchange, const std::string &key, const std::string &body, std::uint64_t n) {
    while (pending_.size() >= window_) {
      readAcks(true);
    }
    amqp_basic_properties_t p{};
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
               AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.content_encoding = amqp_cstring_bytes("utf-8");
    p.delivery_mode = 2;
    std::string id = "bench-" + std::to_string(n);
    p.message_id = amqp_cstring_bytes(id.c_str());
    // The headers fedora-messaging (and amqp-publish) send, so the frames are as big.
    amqp_table_entry_t h[5];
    h[0].key = amqp_cstring_bytes("fedora_messaging_schema");
    h[0].value.kind = AMQP_FIELD_KIND_UTF8;
    h[0].value.value.bytes = amqp_cstring_bytes("base.message");
    h[1].key = amqp_cstring_bytes("fedora_messaging_schema_package");
    h[1].value.kind = AMQP_FIELD_KIND_UTF8;
    h[1].value.value.bytes = amqp_cstring_bytes("fedora_messaging");
    h[2].key = amqp_cstring_bytes("fedora_messaging_severity");
    h[2].value.kind = AMQP_FIELD_KIND_I32;
    h[2].value.value.i32 = 20;
    h[3].key = amqp_cstring_bytes("sent-at");
    h[3].value.kind = AMQP_FIELD_KIND_UTF8;
    h[3].value.value.bytes = amqp_cstring_bytes("2026-01-01T00:00:00+00:00");
    h[4].key = amqp_cstring_bytes("priority");
    h[4].value.kind = AMQP_FIELD_KIND_I32;
    h[4].value.value.i32 = 0;
    p.headers.num_entries = 5;
    p.headers.entries = h;
    amqp_bytes_t b{body.size(), const_cast<char *>(body.data())};
    int rc = amqp_basic_publish(a_.st(), 1, amqp_cstring_bytes(exchange.c_str()), amqp_cstring_bytes(key.c_str()),
                                0, 0, &p, b);
    if (rc != AMQP_STATUS_OK) {
      die(std::string("publish: ") + amqp_error_string2(rc));
    }
    pending_.insert(++next_tag_);
    readAcks(false);
  }

  void drain(double timeout_s) {
    auto start = Clock::now();
    while (!pending_.empty() && secondsSince(start) < timeout_s) {
      readAcks(true);
    }
  }

  // Takes the confirms already received, without waiting.
  void poll() { readAcks(false); }

  std::uint64_t confirmed() const { return confirmed_; }
  std::uint64_t nacked() const { return nacked_; }

 private:
  void settle(std::uint64_t tag, bool multiple, bool ack) {
    auto end = multiple ? pending_.upper_bound(tag) : pending_.find(tag);
    if (!multiple) {
      if (end == pending_.end()) {
        return;
      }
      (ack ? confirmed_ : nacked_) += 1;
      pending_.erase(end);
      return;
    }
    for (auto it = pending_.begin(); it != end;) {
      (ack ? confirmed_ : nacked_) += 1;
      it = pending_.erase(it);
    }
  }

  void readAcks(bool block) {
    for (;;) {
      amqp_frame_t f;
      timeval tv{0, block ? 200000 : 0};
      int rc = amqp_simple_wait_frame_noblock(a_.st(), &f, &tv);
      if (rc == AMQP_STATUS_TIMEOUT) {
        return;
      }
      if (rc != AMQP_STATUS_OK) {
        die(std::string("reading confirms: ") + amqp_error_string2(rc));
      }
      if (f.frame_type == AMQP_FRAME_METHOD) {
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
          auto *m = static_cast<amqp_basic_ack_t *>(f.payload.method.decoded);
          settle(m->delivery_tag, m->multiple != 0, true);
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
          auto *m = static_cast<amqp_basic_nack_t *>(f.payload.method.decoded);
          settle(m->delivery_tag, m->multiple != 0, false);
        } else if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                   f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
          die("the broker closed the channel");
        }
      }
      amqp_maybe_release_buffers(a_.st());
      block = false;  // got something: take what else is buffered, then return
    }
  }

  Amqp &a_;
  std::size_t window_;
  std::set<std::uint64_t> pending_;
  std::uint64_t next_tag_ = 0;
  std::uint64_t confirmed_ = 0;
  std::uint64_t nacked_ = 0;
};

// Paces a loop at `rate` per second (0 = as fast as possible).
class Pacer {
 public:
  explicit Pacer(double rate) : rate_(rate), start_(Clock::now()) {}
  void wait(std::uint64_t n) {
    if (rate_ <= 0) {
      return;
    }
    auto due = start_ + std::chrono::nanoseconds(static_cast<std::int64_t>(static_cast<double>(n) * 1e9 / rate_));
    if (Clock::now() < due) {
      std::this_thread::sleep_until(due);
    }
  }

 private:
  double rate_;
  Clock::time_point start_;
};


// --- RSA --------------------------------------------------------------------------------

inline EVP_PKEY *loadKey(const std::string &path) {
  FILE *f = std::fopen(path.c_str(), "r");
  if (f == nullptr) {
    die("cannot open " + path);
  }
  EVP_PKEY *k = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (k == nullptr) {
    die("cannot read key " + path);
  }
  return k;
}

inline std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    die("cannot read " + path);
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// RSA PKCS#1 v1.5 over SHA-1 with EVP_DigestSign: the calls the signer plugin makes.
inline std::string signSha1(EVP_PKEY *key, const std::string &data) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = nullptr;
  if (EVP_DigestSignInit(ctx, &pctx, EVP_sha1(), nullptr, key) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
    die("sign init");
  }
  std::size_t len = 0;
  const auto *p = reinterpret_cast<const unsigned char *>(data.data());
  EVP_DigestSign(ctx, nullptr, &len, p, data.size());
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx, reinterpret_cast<unsigned char *>(sig.data()), &len, p, data.size()) != 1) {
    die("sign");
  }
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  return sig;
}

/// The calls of plugins/fedmsg_crypto/x509.cpp: a context set up once per key
/// (sha1VerifyTemplate) and copied for each verification.
inline EVP_MD_CTX *verifyTemplate(EVP_PKEY *key) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = nullptr;
  if (EVP_DigestVerifyInit(ctx, &pctx, EVP_sha1(), nullptr, key) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
    die("verify init");
  }
  return ctx;
}

inline bool verifySha1(const EVP_MD_CTX *tmpl, const std::string &data, const std::string &sig) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (EVP_MD_CTX_copy_ex(ctx, tmpl) != 1) {
    die("verify copy");
  }
  int rc = EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char *>(sig.data()), sig.size(),
                            reinterpret_cast<const unsigned char *>(data.data()), data.size());
  EVP_MD_CTX_free(ctx);
  return rc == 1;
}


inline std::string base64(const std::string &in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                          reinterpret_cast<const unsigned char *>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// base64 cut into 76-character lines with a final newline, JSON-escaped (as fedmsg sends it).
inline std::string wrap76Json(const std::string &b64) {
  std::string out;
  for (std::size_t i = 0; i < b64.size(); i += 76) {
    out += b64.substr(i, 76);
    out += "\\n";
  }
  return out;
}

int cmdAmqpSetup(const Args &a);
int cmdAmqpPub(const Args &a);
int cmdAmqpDrain(const Args &a);
int cmdAmqpCount(const Args &a);
int cmdRsa(const Args &a);
int cmdZmqGen(const Args &a);
int cmdZmqCount(const Args &a);
int cmdRelayZ2a(const Args &a);
int cmdRelayA2z(const Args &a);

}  // namespace sybench
