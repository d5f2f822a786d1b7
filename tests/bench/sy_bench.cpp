// SPDX-License-Identifier: MIT
//
// sy-bench: load generators, counters and raw-ceiling programs for scripts/bench.
// Each subcommand does one job and prints one JSON object on stdout; the driver
// (tests/bench/bench.py) combines them. They use the same libraries as the plugins
// (rabbitmq-c, libzmq, OpenSSL) and no Switchyard code, so they measure what those
// libraries allow on this machine: the ceilings the bridges are compared with.
//
//   sy-bench rsa --key K [--seconds S] [--threads N]
//   sy-bench amqp-setup --url U --queue Q [--exchange X] [--bind-key K] [--purge] [--delete] [--check]
//   sy-bench amqp-pub --url U [--exchange X] [--key RK] [--size B] [--seconds S | --count N]
//                     [--window W] [--rate R]
//   sy-bench amqp-drain --url U --queue Q [--prefetch P] [--expect N] [--idle S] [--latency [--dump F]]
//   sy-bench amqp-count --url U --queue Q --expect N [--idle S] [--timeout S]
//   sy-bench zmq-gen [--pubs N | --bind EP] [--endpoints-file F] [--size B] [--seconds S | --count N]
//                    [--rate R] [--nodrop] [--topics K] [--subscribers K] [--sign KEY CERT] [--pool P]
//   sy-bench zmq-count --connect EP [--expect N] [--idle S] [--latency [--dump F]] [--timeout S] [--ignore-prefix T]
//   sy-bench relay-z2a --connect EP --url U [--exchange X] [--window W] [--key-prefix P] [--verify-key KEY [--verify-size B]]
//   sy-bench relay-a2z --url U --queue Q [--prefetch P] [--bind EP] [--endpoints-file F] [--wait-subscriber S]
//                      [--sign-key KEY --sign-cert CERT [--threads N]]
//
// Message bodies carry "t":<CLOCK_MONOTONIC ns> stamped just before sending, so any
// counter on the same machine can compute end-to-end latency.
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

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};

void onSignal(int /*sig*/) { g_stop = true; }

std::int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

[[noreturn]] void die(const std::string &what) {
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
std::int64_t stampLatency(const char *data, std::size_t len, std::int64_t now) {
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
std::string payload(std::uint64_t n, std::size_t pad, std::int64_t stamp) {
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

int cmdAmqpSetup(const Args &a) {
  Amqp c(a.need("url"));
  std::string q = a.need("queue");
  if (a.has("delete")) {
    amqp_queue_delete(c.st(), 1, amqp_cstring_bytes(q.c_str()), 0, 0);
    c.rpc("queue.delete");
    std::printf("{\"deleted\":\"%s\"}\n", q.c_str());
    return 0;
  }
  if (!a.has("check")) {
    amqp_queue_declare(c.st(), 1, amqp_cstring_bytes(q.c_str()), 0, 1, 0, 0, amqp_empty_table);
    c.rpc("queue.declare");
    std::string ex = a.str("exchange", "amq.topic");
    std::string key = a.str("bind-key", "#");
    amqp_queue_bind(c.st(), 1, amqp_cstring_bytes(q.c_str()), amqp_cstring_bytes(ex.c_str()),
                    amqp_cstring_bytes(key.c_str()), amqp_empty_table);
    c.rpc("queue.bind");
  }
  if (a.has("purge")) {
    amqp_queue_purge(c.st(), 1, amqp_cstring_bytes(q.c_str()));
    c.rpc("queue.purge");
  }
  auto *ok = amqp_queue_declare(c.st(), 1, amqp_cstring_bytes(q.c_str()), 1, 0, 0, 0, amqp_empty_table);
  c.rpc("queue.declare passive");
  std::printf("{\"queue\":\"%s\",\"messages\":%u,\"consumers\":%u}\n", q.c_str(), ok->message_count,
              ok->consumer_count);
  return 0;
}

int cmdAmqpPub(const Args &a) {
  Amqp c(a.need("url"));
  ConfirmPublisher pub(c, static_cast<std::size_t>(a.integer("window", 256)));
  std::string ex = a.str("exchange", "amq.topic");
  std::string key = a.str("key", "org.fedoraproject.bench.a2z");
  std::size_t size = static_cast<std::size_t>(a.integer("size", 1024));
  std::size_t pad = size > 60 ? size - 60 : 1;
  double seconds = a.num("seconds", 0);
  std::uint64_t count = static_cast<std::uint64_t>(a.integer("count", 0));
  Pacer pacer(a.num("rate", 0));
  auto start = Clock::now();
  std::uint64_t n = 0;
  while (!g_stop) {
    if (count != 0 ? n >= count : secondsSince(start) >= seconds) {
      break;
    }
    pacer.wait(n);
    pub.publish(ex, key, payload(n + 1, pad, nowNs()), n + 1);
    ++n;
  }
  pub.drain(30);
  double el = secondsSince(start);
  std::printf("{\"sent\":%llu,\"confirmed\":%llu,\"nacked\":%llu,\"seconds\":%.3f,\"rate\":%.1f}\n",
              static_cast<unsigned long long>(n), static_cast<unsigned long long>(pub.confirmed()),
              static_cast<unsigned long long>(pub.nacked()), el, static_cast<double>(pub.confirmed()) / el);
  return 0;
}

int cmdAmqpDrain(const Args &a) {
  Amqp c(a.need("url"));
  std::string q = a.need("queue");
  std::uint64_t expect = static_cast<std::uint64_t>(a.integer("expect", 0));
  double idle = a.num("idle", 3);
  bool lat = a.has("latency");
  amqp_basic_qos(c.st(), 1, 0, static_cast<std::uint16_t>(a.integer("prefetch", 10)), 0);
  c.rpc("basic.qos");
  amqp_basic_consume(c.st(), 1, amqp_cstring_bytes(q.c_str()), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  c.rpc("basic.consume");
  Latency latency;
  latency.dump_path = a.str("dump");
  std::uint64_t got = 0;
  auto start = Clock::now();
  auto last = start;
  Clock::time_point first{};
  while (!g_stop && (expect == 0 || got < expect)) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(c.st());
    timeval tv{0, 100000};
    auto r = amqp_consume_message(c.st(), &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) {
      if (std::chrono::duration<double>(Clock::now() - last).count() > idle) {
        break;
      }
      continue;
    }
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      die("consume failed");
    }
    auto now = Clock::now();
    if (got == 0) {
      first = now;
    }
    if (lat) {
      std::int64_t now_ns = nowNs();
      auto l = stampLatency(static_cast<const char *>(env.message.body.bytes), env.message.body.len, now_ns);
      if (l >= 0) {
        latency.add(l, now_ns - l);
      }
    }
    if (amqp_basic_ack(c.st(), 1, env.delivery_tag, 0) != AMQP_STATUS_OK) {
      die("ack failed");
    }
    amqp_destroy_envelope(&env);
    ++got;
    last = now;
  }
  // Rate from the first to the last delivery, as zmq-count measures the bridge.
  double span = got > 1 ? std::chrono::duration<double>(last - first).count() : 0;
  std::printf("{\"received\":%llu,\"seconds\":%.3f,\"rate\":%.1f,\"latency\":%s}\n",
              static_cast<unsigned long long>(got), span, span > 0 ? static_cast<double>(got - 1) / span : 0.0,
              latency.json().c_str());
  return 0;
}

// Counts at the broker: polls the queue depth until `expect` messages are there or it
// stopped growing for `idle` seconds. The rate is the slope between 10 % and 90 % of the
// final count, i.e. the steady state, without start-up and the tail.
int cmdAmqpCount(const Args &a) {
  Amqp c(a.need("url"));
  std::string q = a.need("queue");
  std::uint64_t expect = static_cast<std::uint64_t>(a.integer("expect", 0));
  double idle = a.num("idle", 3);
  double timeout = a.num("timeout", 120);
  std::uint64_t base = a.integer("base", 0);
  std::vector<std::pair<double, std::uint64_t>> samples;
  auto start = Clock::now();
  std::uint64_t lastCount = 0;
  double lastChange = 0;
  while (!g_stop) {
    std::uint64_t n = c.count(q) - base;
    double t = secondsSince(start);
    samples.emplace_back(t, n);
    if (n != lastCount) {
      lastCount = n;
      lastChange = t;
    }
    if ((expect != 0 && n >= expect) || (n > 0 && t - lastChange > idle) || t > timeout) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  double t10 = 0;
  double t90 = 0;
  std::uint64_t n10 = 0;
  std::uint64_t n90 = 0;
  for (auto &[t, n] : samples) {
    if (n10 == 0 && n * 10 >= lastCount && n > 0) {
      t10 = t;
      n10 = n;
    }
    if (n90 == 0 && n * 10 >= lastCount * 9 && n > 0) {
      t90 = t;
      n90 = n;
    }
  }
  double rate = t90 > t10 ? static_cast<double>(n90 - n10) / (t90 - t10) : 0;
  std::printf("{\"count\":%llu,\"rate\":%.1f,\"first_s\":%.3f,\"last_change_s\":%.3f}\n",
              static_cast<unsigned long long>(lastCount), rate, samples.empty() ? 0.0 : t10, lastChange);
  return 0;
}

// --- RSA --------------------------------------------------------------------------------

EVP_PKEY *loadKey(const std::string &path) {
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

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    die("cannot read " + path);
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// RSA PKCS#1 v1.5 over SHA-1 with EVP_DigestSign: the calls the signer plugin makes.
std::string signSha1(EVP_PKEY *key, const std::string &data) {
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
EVP_MD_CTX *verifyTemplate(EVP_PKEY *key) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = nullptr;
  if (EVP_DigestVerifyInit(ctx, &pctx, EVP_sha1(), nullptr, key) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
    die("verify init");
  }
  return ctx;
}

bool verifySha1(const EVP_MD_CTX *tmpl, const std::string &data, const std::string &sig) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (EVP_MD_CTX_copy_ex(ctx, tmpl) != 1) {
    die("verify copy");
  }
  int rc = EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char *>(sig.data()), sig.size(),
                            reinterpret_cast<const unsigned char *>(data.data()), data.size());
  EVP_MD_CTX_free(ctx);
  return rc == 1;
}

int cmdRsa(const Args &a) {
  EVP_PKEY *key = loadKey(a.need("key"));
  double seconds = a.num("seconds", 1);
  int threads = static_cast<int>(a.integer("threads", 1));
  std::string data = payload(1, 900, nowNs());  // about a 1 KB canonical envelope
  std::string sig = signSha1(key, data);
  EVP_MD_CTX *tmpl = verifyTemplate(key);
  auto run = [&](bool sign) {
    std::atomic<std::uint64_t> total{0};
    std::vector<std::thread> ts;
    auto start = Clock::now();
    for (int i = 0; i < threads; ++i) {
      ts.emplace_back([&] {
        std::uint64_t n = 0;
        while (secondsSince(start) < seconds) {
          if (sign) {
            (void)signSha1(key, data);
          } else if (!verifySha1(tmpl, data, sig)) {
            die("verify failed");
          }
          ++n;
        }
        total += n;
      });
    }
    for (auto &t : ts) {
      t.join();
    }
    return static_cast<double>(total) / secondsSince(start);
  };
  double s = run(true);
  double v = run(false);
  std::printf("{\"bits\":%d,\"threads\":%d,\"sign_per_s\":%.1f,\"verify_per_s\":%.1f}\n", EVP_PKEY_get_bits(key),
              threads, s, v);
  EVP_MD_CTX_free(tmpl);
  EVP_PKEY_free(key);
  return 0;
}

// --- ZeroMQ ------------------------------------------------------------------------------

std::string base64(const std::string &in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                          reinterpret_cast<const unsigned char *>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// base64 cut into 76-character lines with a final newline, JSON-escaped (as fedmsg sends it).
std::string wrap76Json(const std::string &b64) {
  std::string out;
  for (std::size_t i = 0; i < b64.size(); i += 76) {
    out += b64.substr(i, 76);
    out += "\\n";
  }
  return out;
}

struct EnvelopeMaker {
  std::size_t pad = 0;
  std::string topicBase = "org.fedoraproject.bench.z2a";
  EVP_PKEY *key = nullptr;
  std::string certField;  // JSON-escaped, wrapped base64 of the PEM

  // Canonical (sorted keys, compact) envelope of message n from publisher p.
  std::string unsignedText(std::uint64_t n, int p, const std::string &topic, std::int64_t stamp, bool crypto) const {
    std::string s = "{";
    if (crypto) {
      s += "\"crypto\":\"x509\",";
    }
    s += "\"i\":" + std::to_string(n) + ",\"msg\":" + payload(n, pad, stamp) + ",\"msg_id\":\"2026-bench-" +
         std::to_string(p) + "-" + std::to_string(n) + "\",\"timestamp\":1700000000,\"topic\":\"" + topic +
         "\",\"username\":\"bench" + std::to_string(p) + "\"}";
    return s;
  }

  std::string signedText(std::uint64_t n, int p, const std::string &topic) const {
    std::string canon = unsignedText(n, p, topic, 0, true);
    std::string sig = wrap76Json(base64(signSha1(key, canon)));
    // Insert certificate first and signature after msg_id, keeping sorted order.
    std::string out = "{\"certificate\":\"" + certField + "\"," + canon.substr(1);
    auto pos = out.find(",\"timestamp\":");
    out.insert(pos, ",\"signature\":\"" + sig + "\"");
    return out;
  }
};

int cmdZmqGen(const Args &a) {
  int pubs = static_cast<int>(a.integer("pubs", 1));
  std::size_t size = static_cast<std::size_t>(a.integer("size", 1024));
  double seconds = a.num("seconds", 0);
  std::uint64_t count = static_cast<std::uint64_t>(a.integer("count", 0));
  bool nodrop = a.has("nodrop");
  int topics = static_cast<int>(a.integer("topics", 1));
  EnvelopeMaker mk;
  mk.topicBase = a.str("topic", mk.topicBase);
  // Envelope overhead without the body is about 150 bytes.
  mk.pad = size > 160 ? size - 160 : 1;
  std::vector<std::string> pool;
  auto signArgs = a.list("sign");
  if (!signArgs.empty()) {
    if (signArgs.size() != 2) {
      die("--sign KEY CERT");
    }
    mk.key = loadKey(signArgs[0]);
    mk.certField = wrap76Json(base64(readFile(signArgs[1])));
    std::size_t poolSize = static_cast<std::size_t>(a.integer("pool", 1000));
    for (std::size_t i = 0; i < poolSize; ++i) {
      pool.push_back(mk.signedText(i + 1, 0, mk.topicBase));
    }
  }
  std::vector<std::string> topicNames;
  for (int k = 0; k < topics; ++k) {
    // ".p<k>.m" so that the prefix ".p1." of one pipeline does not also match ".p10.".
    topicNames.push_back(topics == 1 ? mk.topicBase : mk.topicBase + ".p" + std::to_string(k) + ".m");
  }
  zmq::context_t ctx(1);
  ctx.set(zmq::ctxopt::max_sockets, pubs + 64);
  std::vector<zmq::socket_t> socks;
  std::string epFile = a.str("endpoints-file");
  std::string bindTo = a.str("bind", "tcp://127.0.0.1:*");
  std::ofstream eps;
  if (!epFile.empty()) {
    eps.open(epFile + ".tmp");
  }
  for (int i = 0; i < pubs; ++i) {
    zmq::socket_t s(ctx, zmq::socket_type::xpub);
    s.set(zmq::sockopt::xpub_nodrop, nodrop ? 1 : 0);
    s.set(zmq::sockopt::xpub_verbose, 1);
    s.set(zmq::sockopt::linger, 5000);
    if (nodrop) {
      s.set(zmq::sockopt::sndtimeo, 10000);
    }
    s.bind(pubs == 1 ? bindTo : "tcp://127.0.0.1:*");
    if (eps.is_open()) {
      eps << s.get(zmq::sockopt::last_endpoint) << "\n";
    }
    socks.push_back(std::move(s));
  }
  if (eps.is_open()) {
    eps.close();
    std::rename((epFile + ".tmp").c_str(), epFile.c_str());
  }
  // Slow joiner: wait until every socket has a subscriber before the clock starts.
  // With K pipelines on one socket, wait for K subscriptions (XPUB_VERBOSE passes each).
  int want = static_cast<int>(a.integer("subscribers", 1));
  std::vector<int> subs(socks.size(), 0);
  std::size_t nsub = 0;
  auto waitStart = Clock::now();
  while (nsub < socks.size() && !g_stop) {
    if (secondsSince(waitStart) > a.num("wait", 60)) {
      die("timed out waiting for subscribers (" + std::to_string(nsub) + " of " + std::to_string(socks.size()) + ")");
    }
    bool any = false;
    for (std::size_t i = 0; i < socks.size(); ++i) {
      zmq::message_t m;
      while (socks[i].recv(m, zmq::recv_flags::dontwait)) {
        any = true;
        if (m.size() > 0 && static_cast<const char *>(m.data())[0] == 1 && ++subs[i] == want) {
          ++nsub;
        }
      }
    }
    if (!any) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  std::fprintf(stderr, "zmq-gen: subscribed (%zu sockets)\n", socks.size());
  Pacer pacer(a.num("rate", 0));
  auto start = Clock::now();
  std::uint64_t n = 0;
  std::uint64_t dropped = 0;
  std::vector<std::uint64_t> seq(socks.size(), 0);
  while (!g_stop) {
    if (count != 0 ? n >= count : secondsSince(start) >= seconds) {
      break;
    }
    pacer.wait(n);
    std::size_t p = static_cast<std::size_t>(n % socks.size());
    const std::string &topic = topicNames[n % topicNames.size()];
    std::string text = pool.empty() ? mk.unsignedText(++seq[p], static_cast<int>(p), topic, nowNs(), false)
                                    : pool[n % pool.size()];
    zmq::const_buffer t(topic.data(), topic.size());
    if (!socks[p].send(t, zmq::send_flags::sndmore) ||
        !socks[p].send(zmq::const_buffer(text.data(), text.size()), zmq::send_flags::none)) {
      ++dropped;  // only with --nodrop and a subscriber stuck for sndtimeo
    }
    ++n;
    // Subscription messages keep arriving (reconnects); read them so they do not queue.
    if ((n & 1023) == 0) {
      zmq::message_t m;
      while (socks[p].recv(m, zmq::recv_flags::dontwait)) {
      }
    }
  }
  double el = secondsSince(start);
  std::printf("{\"sent\":%llu,\"send_timeouts\":%llu,\"seconds\":%.3f,\"rate\":%.1f,\"envelope_bytes\":%zu}\n",
              static_cast<unsigned long long>(n - dropped), static_cast<unsigned long long>(dropped), el,
              static_cast<double>(n) / el,
              pool.empty() ? mk.unsignedText(1, 0, mk.topicBase, nowNs(), false).size() : pool[0].size());
  std::fflush(stdout);
  return 0;
}

int cmdZmqCount(const Args &a) {
  zmq::context_t ctx(1);
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "");
  sub.set(zmq::sockopt::rcvhwm, static_cast<int>(a.integer("hwm", 1000)));
  for (const auto &ep : a.list("connect")) {
    sub.connect(ep);
  }
  std::uint64_t expect = static_cast<std::uint64_t>(a.integer("expect", 0));
  double idle = a.num("idle", 3);
  double timeout = a.num("timeout", 120);
  bool lat = a.has("latency");
  std::string ignore = a.str("ignore-prefix");
  bool warm = false;
  Latency latency;
  latency.dump_path = a.str("dump");
  std::uint64_t got = 0;
  auto start = Clock::now();
  Clock::time_point first{};
  Clock::time_point last = start;
  // Ready marker for the driver: the socket is connecting.
  std::fprintf(stderr, "zmq-count: ready\n");
  while (!g_stop && (expect == 0 || got < expect)) {
    zmq::pollitem_t it{sub.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&it, 1, std::chrono::milliseconds(100));
    if ((it.revents & ZMQ_POLLIN) == 0) {
      double since = std::chrono::duration<double>(Clock::now() - (got ? last : start)).count();
      if ((got > 0 && since > idle) || since > timeout) {
        break;
      }
      continue;
    }
    zmq::message_t topic;
    zmq::message_t body;
    while (sub.recv(topic, zmq::recv_flags::dontwait)) {
      if (!topic.more() || !sub.recv(body)) {
        continue;
      }
      if (!ignore.empty() && topic.to_string_view().substr(0, ignore.size()) == ignore) {
        // Warm-up traffic: proves the subscription is in place, is not counted.
        if (!warm) {
          warm = true;
          std::fprintf(stderr, "zmq-count: warm\n");
        }
        continue;
      }
      auto now = Clock::now();
      if (got == 0) {
        first = now;
      }
      if (lat) {
        std::int64_t now_ns = nowNs();
        auto l = stampLatency(static_cast<const char *>(body.data()), body.size(), now_ns);
        if (l >= 0) {
          latency.add(l, now_ns - l);
        }
      }
      ++got;
      last = now;
      if (expect != 0 && got >= expect) {
        break;
      }
    }
  }
  double span = got > 1 ? std::chrono::duration<double>(last - first).count() : 0;
  std::printf("{\"received\":%llu,\"seconds\":%.3f,\"rate\":%.1f,\"latency\":%s}\n",
              static_cast<unsigned long long>(got), span, span > 0 ? static_cast<double>(got - 1) / span : 0.0,
              latency.json().c_str());
  return 0;
}

// The plain rabbitmq-c programs users compare the bridge with: SUB -> confirmed publish,
// and consume (manual acks, prefetch) -> PUB. No parsing, no envelope: bytes in, bytes out.
int cmdRelayZ2a(const Args &a) {
  Amqp c(a.need("url"));
  ConfirmPublisher pub(c, static_cast<std::size_t>(a.integer("window", 256)));
  std::string ex = a.str("exchange", "amq.topic");
  std::string prefix = a.str("key-prefix");
  // --verify-key: one RSA/SHA-1 verification per message with the calls of
  // plugins/fedmsg_crypto/x509.cpp, of a fixed text of --verify-size bytes (the size of the
  // signed part of the messages; no parsing: the cost of the cryptography alone, the hash
  // of that many bytes and the RSA operation, which any verifying relay must pay).
  EVP_PKEY *key = nullptr;
  EVP_MD_CTX *tmpl = nullptr;
  std::string data;
  std::string sig;
  if (!a.str("verify-key").empty()) {
    key = loadKey(a.str("verify-key"));
    const auto size = static_cast<std::size_t>(a.integer("verify-size", 1024));
    data = payload(1, size > 64 ? size - 64 : 0, nowNs());
    sig = signSha1(key, data);
    tmpl = verifyTemplate(key);
  }
  zmq::context_t ctx(1);
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "");
  for (const auto &ep : a.list("connect")) {
    sub.connect(ep);
  }
  std::uint64_t n = 0;
  while (!g_stop) {
    zmq::pollitem_t it{sub.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&it, 1, std::chrono::milliseconds(100));
    zmq::message_t topic;
    zmq::message_t body;
    while (sub.recv(topic, zmq::recv_flags::dontwait)) {
      if (!topic.more() || !sub.recv(body)) {
        continue;
      }
      if (tmpl != nullptr && !verifySha1(tmpl, data, sig)) {
        die("verify failed");
      }
      pub.publish(ex, prefix + topic.to_string(), body.to_string(), ++n);
    }
    pub.poll();
  }
  pub.drain(10);
  std::printf("{\"relayed\":%llu,\"confirmed\":%llu}\n", static_cast<unsigned long long>(n),
              static_cast<unsigned long long>(pub.confirmed()));
  EVP_MD_CTX_free(tmpl);
  EVP_PKEY_free(key);
  return 0;
}

// --- the signing AMQP -> ZeroMQ relay ------------------------------------------------------

// A JSON string literal of s (quotes, backslashes and control characters escaped).
std::string jsonString(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

// AMQP headers as a JSON object with sorted keys (the canonical form): strings and
// integers, booleans; anything else becomes null. "" when there are none.
std::string headersJson(const amqp_table_t &t) {
  if (t.num_entries == 0) {
    return "";
  }
  std::map<std::string, std::string> m;
  for (int i = 0; i < t.num_entries; ++i) {
    const amqp_table_entry_t &e = t.entries[i];
    const amqp_field_value_t &v = e.value;
    std::string val;
    switch (v.kind) {
      case AMQP_FIELD_KIND_UTF8:
      case AMQP_FIELD_KIND_BYTES:
        val = jsonString(std::string_view(static_cast<const char *>(v.value.bytes.bytes), v.value.bytes.len));
        break;
      case AMQP_FIELD_KIND_BOOLEAN: val = v.value.boolean ? "true" : "false"; break;
      case AMQP_FIELD_KIND_I8: val = std::to_string(v.value.i8); break;
      case AMQP_FIELD_KIND_U8: val = std::to_string(v.value.u8); break;
      case AMQP_FIELD_KIND_I16: val = std::to_string(v.value.i16); break;
      case AMQP_FIELD_KIND_U16: val = std::to_string(v.value.u16); break;
      case AMQP_FIELD_KIND_I32: val = std::to_string(v.value.i32); break;
      case AMQP_FIELD_KIND_U32: val = std::to_string(v.value.u32); break;
      case AMQP_FIELD_KIND_I64: val = std::to_string(v.value.i64); break;
      case AMQP_FIELD_KIND_U64: val = std::to_string(v.value.u64); break;
      default: val = "null"; break;
    }
    m[std::string(static_cast<const char *>(e.key.bytes), e.key.len)] = std::move(val);
  }
  std::string out = "{";
  for (const auto &[k, v] : m) {
    if (out.size() > 1) {
      out += ',';
    }
    out += jsonString(k);
    out += ':';
    out += v;
  }
  out += '}';
  return out;
}

// One delivery on its way through the signing relay.
struct SignJob {
  std::uint64_t i = 0;
  std::uint64_t tag = 0;
  std::int64_t timestamp = 0;
  std::string topic;
  std::string body;
  std::string headers;
  std::string id;
  std::string envelope;  ///< set by a worker, then done
  std::atomic<bool> done{false};
};

// What the signing relay does per message besides moving bytes: the canonical fedmsg
// envelope around the body (concatenation, the body taken as it is: no parsing, no
// validation), one RSA-2048/SHA-1 signature with the calls of the signer plugin
// (x509::signSha1: EVP_DigestSignInit + EVP_DigestSign), and the signed envelope.
void signEnvelope(SignJob &j, EVP_PKEY *key, const std::string &certField) {
  // Canonical: keys sorted, compact. certificate and signature go around it afterwards.
  std::string head = "{\"crypto\":\"x509\",";
  if (!j.headers.empty()) {
    head += "\"headers\":" + j.headers + ",";
  }
  head += "\"i\":" + std::to_string(j.i) + ",\"msg\":" + (j.body.empty() ? std::string("null") : j.body) +
          ",\"msg_id\":" + jsonString(j.id);
  std::string tail = ",\"timestamp\":" + std::to_string(j.timestamp) + ",\"topic\":" + jsonString(j.topic) +
                     ",\"username\":\"amqp-bridge\"}";
  std::string sig = wrap76Json(base64(signSha1(key, head + tail)));
  j.envelope.reserve(head.size() + tail.size() + certField.size() + sig.size() + 40);
  j.envelope = "{\"certificate\":\"";
  j.envelope += certField;
  j.envelope += "\",";
  j.envelope.append(head, 1);
  j.envelope += ",\"signature\":\"";
  j.envelope += sig;
  j.envelope += '"';
  j.envelope += tail;
}

// consume -> N signing threads -> PUB, in the order of the deliveries, one basic.ack per
// message once ZeroMQ took it. The consuming thread is the only one that touches the
// connection and the socket; it waits on the AMQP socket and on an eventfd the workers
// signal when a message is signed.
std::uint64_t relaySigning(Amqp &c, zmq::socket_t &pub, const Args &a) {
  EVP_PKEY *key = loadKey(a.need("sign-key"));
  const std::string certField = wrap76Json(base64(readFile(a.need("sign-cert"))));
  unsigned threads = static_cast<unsigned>(a.integer("threads", std::max(1U, std::thread::hardware_concurrency())));
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) {
    die("eventfd");
  }
  std::mutex mu;
  std::condition_variable cv;
  std::deque<SignJob *> todo;
  bool quit = false;
  std::vector<std::thread> workers;
  for (unsigned k = 0; k < threads; ++k) {
    workers.emplace_back([&] {
      for (;;) {
        SignJob *j = nullptr;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return quit || !todo.empty(); });
          if (todo.empty()) {
            return;
          }
          j = todo.front();
          todo.pop_front();
        }
        signEnvelope(*j, key, certField);
        j->done.store(true, std::memory_order_release);
        std::uint64_t one = 1;
        if (write(efd, &one, sizeof one) != sizeof one) {
          die("eventfd write");
        }
      }
    });
  }
  const int year = [] {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    return tm.tm_year + 1900;
  }();
  amqp_connection_state_t st = c.st();
  std::deque<std::unique_ptr<SignJob>> inflight;  // in delivery order
  std::uint64_t seq = 0;
  std::uint64_t n = 0;
  while (!g_stop) {
    while (!inflight.empty() && inflight.front()->done.load(std::memory_order_acquire)) {
      SignJob &j = *inflight.front();
      pub.send(zmq::const_buffer(j.topic.data(), j.topic.size()), zmq::send_flags::sndmore);
      pub.send(zmq::const_buffer(j.envelope.data(), j.envelope.size()), zmq::send_flags::none);
      amqp_basic_ack(st, 1, j.tag, 0);
      inflight.pop_front();
      ++n;
    }
    if (amqp_data_in_buffer(st) == 0 && amqp_frames_enqueued(st) == 0) {
      pollfd fds[2] = {{amqp_get_sockfd(st), POLLIN, 0}, {efd, POLLIN, 0}};
      if (poll(fds, 2, 100) < 0) {
        continue;  // EINTR: g_stop is checked above
      }
      if ((fds[1].revents & POLLIN) != 0) {
        std::uint64_t v = 0;
        (void)!read(efd, &v, sizeof v);
      }
      if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
        continue;
      }
    }
    amqp_maybe_release_buffers(st);
    amqp_envelope_t env;
    timeval tv{0, 0};
    auto r = amqp_consume_message(st, &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) {
      continue;
    }
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      break;
    }
    auto j = std::make_unique<SignJob>();
    j->i = ++seq;
    j->tag = env.delivery_tag;
    j->timestamp = static_cast<std::int64_t>(std::time(nullptr));
    j->topic.assign(static_cast<const char *>(env.routing_key.bytes), env.routing_key.len);
    j->body.assign(static_cast<const char *>(env.message.body.bytes), env.message.body.len);
    const amqp_basic_properties_t &p = env.message.properties;
    if ((p._flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
      j->headers = headersJson(p.headers);
    }
    j->id = std::to_string(year) + "-";
    if ((p._flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0) {
      j->id.append(static_cast<const char *>(p.message_id.bytes), p.message_id.len);
    } else {
      j->id += std::to_string(seq);
    }
    amqp_destroy_envelope(&env);
    {
      std::lock_guard<std::mutex> lock(mu);
      todo.push_back(j.get());
    }
    cv.notify_one();
    inflight.push_back(std::move(j));
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    quit = true;
  }
  cv.notify_all();
  for (auto &t : workers) {
    t.join();
  }
  close(efd);
  EVP_PKEY_free(key);
  return n;
}

int cmdRelayA2z(const Args &a) {
  Amqp c(a.need("url"));
  std::string q = a.need("queue");
  zmq::context_t ctx(1);
  // --wait-subscriber S: an XPUB that starts consuming only once a subscription arrived
  // (or S seconds passed), so that a throughput run loses nothing to the slow joiner (what
  // zmq-pub's wait_for_subscriber does for the bridge).
  const double waitSub = a.num("wait-subscriber", 0);
  zmq::socket_t pub(ctx, waitSub > 0 ? zmq::socket_type::xpub : zmq::socket_type::pub);
  pub.bind(a.str("bind", "tcp://127.0.0.1:*"));
  std::string epFile = a.str("endpoints-file");
  if (!epFile.empty()) {
    std::ofstream(epFile + ".tmp") << pub.get(zmq::sockopt::last_endpoint) << "\n";
    std::rename((epFile + ".tmp").c_str(), epFile.c_str());
  }
  if (waitSub > 0) {
    auto start = Clock::now();
    bool subscribed = false;
    while (!subscribed && !g_stop && secondsSince(start) < waitSub) {
      zmq::pollitem_t it{pub.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&it, 1, std::chrono::milliseconds(100));
      zmq::message_t m;
      while (pub.recv(m, zmq::recv_flags::dontwait)) {
        subscribed = subscribed || (m.size() > 0 && static_cast<const char *>(m.data())[0] == 1);
      }
    }
    std::fprintf(stderr, "relay-a2z: %s\n", subscribed ? "subscribed" : "no subscriber, relaying anyway");
  }
  amqp_basic_qos(c.st(), 1, 0, static_cast<std::uint16_t>(a.integer("prefetch", 10)), 0);
  c.rpc("basic.qos");
  amqp_basic_consume(c.st(), 1, amqp_cstring_bytes(q.c_str()), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  c.rpc("basic.consume");
  if (a.has("sign-key")) {
    std::uint64_t n = relaySigning(c, pub, a);
    std::printf("{\"relayed\":%llu}\n", static_cast<unsigned long long>(n));
    return 0;
  }
  std::uint64_t n = 0;
  while (!g_stop) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(c.st());
    timeval tv{0, 100000};
    auto r = amqp_consume_message(c.st(), &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) {
      continue;
    }
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      break;
    }
    pub.send(zmq::const_buffer(env.routing_key.bytes, env.routing_key.len), zmq::send_flags::sndmore);
    pub.send(zmq::const_buffer(env.message.body.bytes, env.message.body.len), zmq::send_flags::none);
    amqp_basic_ack(c.st(), 1, env.delivery_tag, 0);
    amqp_destroy_envelope(&env);
    ++n;
  }
  std::printf("{\"relayed\":%llu}\n", static_cast<unsigned long long>(n));
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: sy-bench COMMAND [--option value...] (see the source header)\n");
    return 2;
  }
  struct sigaction sa{};
  sa.sa_handler = onSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  std::string cmd = argv[1];
  Args a(argc, argv, 2);
  try {
    if (cmd == "rsa") {
      return cmdRsa(a);
    }
    if (cmd == "amqp-setup") {
      return cmdAmqpSetup(a);
    }
    if (cmd == "amqp-pub") {
      return cmdAmqpPub(a);
    }
    if (cmd == "amqp-drain") {
      return cmdAmqpDrain(a);
    }
    if (cmd == "amqp-count") {
      return cmdAmqpCount(a);
    }
    if (cmd == "zmq-gen") {
      return cmdZmqGen(a);
    }
    if (cmd == "zmq-count") {
      return cmdZmqCount(a);
    }
    if (cmd == "relay-z2a") {
      return cmdRelayZ2a(a);
    }
    if (cmd == "relay-a2z") {
      return cmdRelayA2z(a);
    }
  } catch (const std::exception &e) {
    die(e.what());
  }
  die("unknown command " + cmd);
}
