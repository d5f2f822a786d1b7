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

#include "sy_bench_common.hpp"

using namespace sybench;


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
