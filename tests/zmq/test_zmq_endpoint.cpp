// SPDX-License-Identifier: MIT
// The endpoint syntax zmq-sub and zmq-pub check when the configuration is loaded
// (transports/zmq/zmq_endpoint.hpp): what libzmq takes passes, the rest is refused with a
// reason.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "zmq_endpoint.hpp"

using switchyard::zmqt::endpointProblem;
using switchyard::zmqt::tcpAddress;

namespace {
std::string problem(const char *e, bool bind) { return endpointProblem(e, bind).value_or(""); }
}  // namespace

TEST_CASE("endpoints libzmq takes") {
  for (const char *e : {"tcp://127.0.0.1:9940", "tcp://hub.fedoraproject.org:9940", "tcp://[::1]:9940",
                        "tcp://10.0.0.1:5000;hub.example:9940", "ipc:///run/fedmsg/pub.sock", "ipc://@abstract",
                        "inproc://relay", "tcp://h:1", "tcp://h:65535"}) {
    CHECK_MESSAGE(problem(e, false).empty(), e);
  }
  for (const char *e : {"tcp://*:9940", "tcp://*:*", "tcp://*:0", "tcp://127.0.0.1:9940", "tcp://eth0:9940",
                        "tcp://[::]:9940", "ipc:///tmp/x.sock", "inproc://x"}) {
    CHECK_MESSAGE(problem(e, true).empty(), e);
  }
}

TEST_CASE("endpoints refused, with the reason") {
  CHECK(problem("tcp://*:notaport", true).find("port 'notaport' is not a number") != std::string::npos);
  CHECK(problem("tcp://*:9940", false).find("can only be bound") != std::string::npos);
  CHECK(problem("bogus://x", false).find("unknown transport 'bogus'") != std::string::npos);
  CHECK(problem("not-an-endpoint", true).find("not an endpoint") != std::string::npos);
  CHECK(problem("tcp://127.0.0.1:99999", false).find("port 99999 is out of range") != std::string::npos);
  CHECK(problem("tcp://127.0.0.1:0", false).find("port 0 is out of range") != std::string::npos);
  CHECK(problem("tcp://127.0.0.1:*", false).find("port '*' is not a number") != std::string::npos);
  CHECK(problem("tcp://127.0.0.1", false).find("no port") != std::string::npos);
  CHECK(problem("tcp://:9940", false).find("no host") != std::string::npos);
  CHECK(problem("tcp://[::1:9940", false).find("closing ']'") != std::string::npos);
  CHECK(problem("tcp://ho st:9940", false).find("not a host name") != std::string::npos);
  CHECK(problem("ipc://", false).find("no path") != std::string::npos);
  CHECK(problem("inproc://", false).find("no name") != std::string::npos);
  CHECK(problem(("ipc:///" + std::string(120, 'a')).c_str(), true).find("at most 107") != std::string::npos);
}

TEST_CASE("the host and port a probe connects to") {
  auto a = tcpAddress("tcp://10.0.0.1:5000;hub.example:9940", false);
  REQUIRE(a);
  CHECK(a->host == "hub.example");
  CHECK(a->port == "9940");
  auto b = tcpAddress("tcp://[::1]:9940", false);
  REQUIRE(b);
  CHECK(b->host == "::1");
  CHECK_FALSE(tcpAddress("ipc:///x", false));
}
