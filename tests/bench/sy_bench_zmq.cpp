// SPDX-License-Identifier: MIT
// sy-bench: RSA sign/verify rates and the ZeroMQ commands (zmq-gen, zmq-count, relay-z2a).
#include "sy_bench_common.hpp"

namespace sybench {

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


}  // namespace sybench
