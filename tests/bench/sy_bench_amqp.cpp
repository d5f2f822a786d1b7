// SPDX-License-Identifier: MIT
// sy-bench: the rabbitmq-c commands (amqp-setup, amqp-pub, amqp-drain, amqp-count).
#include "sy_bench_common.hpp"

namespace sybench {

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


}  // namespace sybench
