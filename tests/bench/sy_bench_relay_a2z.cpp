// SPDX-License-Identifier: MIT
// sy-bench: the AMQP -> ZeroMQ raw relay, plain or signing (relay-a2z).
#include "sy_bench_common.hpp"

namespace sybench {

// --- the signing AMQP -> ZeroMQ relay ------------------------------------------------------

// A JSON string literal of s (quotes, backslashes and control characters escaped).
static std::string jsonString(std::string_view s) {
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
static std::string headersJson(const amqp_table_t &t) {
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
static void signEnvelope(SignJob &j, EVP_PKEY *key, const std::string &certField) {
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
static std::uint64_t relaySigning(Amqp &c, zmq::socket_t &pub, const Args &a) {
  EVP_PKEY *key = loadKey(a.need("sign-key"));
  const std::string certField = wrap76Json(base64(readFile(a.need("sign-cert"))));
  unsigned threads = static_cast<unsigned>(a.integer("threads", std::max(1U, std::thread::hardware_concurrency())));
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) {
    die("eventfd");
  }
  std::mutex mu;
  std::condition_variable cv;
  std::deque<SignJob *> queued;
  bool quit = false;
  std::vector<std::thread> workers;
  for (unsigned k = 0; k < threads; ++k) {
    workers.emplace_back([&] {
      for (;;) {
        SignJob *j = nullptr;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return quit || !queued.empty(); });
          if (queued.empty()) {
            return;
          }
          j = queued.front();
          queued.pop_front();
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
      queued.push_back(j.get());
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


}  // namespace sybench
