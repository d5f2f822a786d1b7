// SPDX-License-Identifier: MIT
// The pieces of the operations endpoint that need no server: the Prometheus text
// rendering, the latency histogram, the address syntax and the readiness rule.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "http_endpoint.hpp"
#include "metrics_text.hpp"
#include "ops_endpoint.hpp"
#include "runtime_histogram.hpp"

namespace sy = switchyard;

TEST_CASE("metric names: switchyard_ prefix, _total for counters, odd characters replaced") {
  CHECK(sy::metrics::metricName("received", true) == "switchyard_received_total");
  CHECK(sy::metrics::metricName("queue_depth", false) == "switchyard_queue_depth");
  CHECK(sy::metrics::metricName("odd-name.x", true) == "switchyard_odd_name_x_total");
  CHECK(sy::metrics::metricName("already_total", true) == "switchyard_already_total");
}

TEST_CASE("label values are escaped as the text format requires") {
  CHECK(sy::metrics::escapeLabel(R"(a"b\c)") == R"(a\"b\\c)");
  CHECK(sy::metrics::escapeLabel("two\nlines") == "two\\nlines");
  CHECK(sy::metrics::escapeLabel("caf\xc3\xa9") == "caf\xc3\xa9");  // UTF-8 stays
}

TEST_CASE("render: families with HELP and TYPE, labels split, the counter's own label by name") {
  std::vector<sy::CounterSample> samples = {
      {"p", "input (stdin)", "received", "", 7, false},
      {"p", "input (stdin)", "completed", "delivered", 6, false},
      {"p", "filters[0] (verifier)", "dropped", "bad \"sig\"", 1, false},
      {"p", "outputs[0] (stdout)", "queue_depth", "", 3, true},
      {"p", "", "in_flight", "", 1, true},
      {"p", "input (stdin)", "lines_read", "", 7, false},
  };
  sy::HistogramSample h;
  h.pipeline = "p";
  h.name = "pipeline_latency_seconds";
  h.bounds = {0.01, 0.1};
  h.buckets = {2, 3, 1};
  h.sum = 0.5;
  h.count = 6;
  std::string text = sy::metrics::render(samples, {h}, {"1.2.3", 1700000000.25});
  CHECK(text.find("# TYPE switchyard_received_total counter\n"
                  "switchyard_received_total{pipeline=\"p\",plugin=\"stdin\",place=\"input\"} 7\n") !=
        std::string::npos);
  CHECK(text.find("switchyard_completed_total{pipeline=\"p\",plugin=\"stdin\",place=\"input\",outcome=\"delivered\"} 6\n") !=
        std::string::npos);
  CHECK(text.find("switchyard_dropped_total{pipeline=\"p\",plugin=\"verifier\",place=\"filters[0]\",reason=\"bad \\\"sig\\\"\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("# TYPE switchyard_queue_depth gauge\nswitchyard_queue_depth{pipeline=\"p\",plugin=\"stdout\",place=\"outputs[0]\"} 3\n") !=
        std::string::npos);
  CHECK(text.find("switchyard_in_flight{pipeline=\"p\"} 1\n") != std::string::npos);
  CHECK(text.find("# HELP switchyard_lines_read_total Switchyard lines_read (docs/operations.md).\n") !=
        std::string::npos);
  CHECK(text.find("# TYPE switchyard_pipeline_latency_seconds histogram\n"
                  "switchyard_pipeline_latency_seconds_bucket{pipeline=\"p\",le=\"0.01\"} 2\n"
                  "switchyard_pipeline_latency_seconds_bucket{pipeline=\"p\",le=\"0.1\"} 5\n"
                  "switchyard_pipeline_latency_seconds_bucket{pipeline=\"p\",le=\"+Inf\"} 6\n"
                  "switchyard_pipeline_latency_seconds_sum{pipeline=\"p\"} 0.5\n"
                  "switchyard_pipeline_latency_seconds_count{pipeline=\"p\"} 6\n") != std::string::npos);
  CHECK(text.find("switchyard_build_info{version=\"1.2.3\"} 1\n") != std::string::npos);
  CHECK(text.find("switchyard_process_start_time_seconds 1700000000.250\n") != std::string::npos);
  // Every family once, each sample line after its family's TYPE line.
  std::size_t types = 0;
  for (std::size_t at = text.find("# TYPE "); at != std::string::npos; at = text.find("# TYPE ", at + 1)) {
    ++types;
  }
  CHECK(types == 9);
}

TEST_CASE("latency histogram: le is inclusive, above the last bound counts in +Inf, count = buckets") {
  sy::rt::Histogram h;
  h.observe(500'000);        // 0.0005 s: the first bucket (le="0.0005")
  h.observe(500'001);        // just above: le="0.001"
  h.observe(-5);             // a clock step back counts as 0
  h.observe(61'000'000'000); // 61 s: above 60
  std::vector<std::uint64_t> b;
  double sum = 0;
  h.read(b, sum);
  REQUIRE(b.size() == sy::rt::Histogram::kBounds.size() + 1);
  CHECK(b[0] == 2);
  CHECK(b[1] == 1);
  CHECK(b.back() == 1);
  CHECK(sum == doctest::Approx(61.001000001));
}

TEST_CASE("listen addresses: the accepted forms and each refusal's reason") {
  sy::http::Listen l;
  CHECK_FALSE(sy::http::parseListen("9100", l));
  CHECK((l.host == "127.0.0.1" && l.port == 9100));
  CHECK_FALSE(sy::http::parseListen("0.0.0.0:0", l));
  CHECK((l.host == "0.0.0.0" && l.port == 0));
  CHECK_FALSE(sy::http::parseListen("[::1]:9100", l));
  CHECK((l.host == "::1" && l.str() == "[::1]:9100"));
  CHECK_FALSE(sy::http::parseListen("metrics.example.org:65535", l));
  auto why = [](std::string_view text) {
    sy::http::Listen x;
    auto r = sy::http::parseListen(text, x);
    return r ? *r : std::string("accepted");
  };
  CHECK(why("").starts_with("empty address"));
  CHECK(why("localhost").find("has no port") != std::string::npos);
  CHECK(why("::1:9100").find("write an IPv6 address in brackets") != std::string::npos);
  CHECK(why("[::1]9100").find("needs a port after it") != std::string::npos);
  CHECK(why("[1.2.3.4]:80").find("is not an IPv6 address") != std::string::npos);
  CHECK(why("256.0.0.1:80").find("is not an IPv4 address or a host name") != std::string::npos);
  CHECK(why("host_name:80").find("is not an IPv4 address or a host name") != std::string::npos);
  CHECK(why("127.0.0.1:http").find("is not a number") != std::string::npos);
  CHECK(why("127.0.0.1:65536").find("port 65536 is out of range: use 1 to 65535") != std::string::npos);
  CHECK(why("127.0.0.1:123456789012").find("out of range") != std::string::npos);
}

TEST_CASE("readiness: pipelines running, `connected` at 1, `blocked` not at 1") {
  sy::PipelineStatus p{"p", "running", std::nullopt, {{"input", "amqp-consume"}, {"outputs[0]", "stdout"}}};
  std::vector<sy::CounterSample> ok = {{"p", "input (amqp-consume)", "connected", "", 1, true},
                                       {"p", "input (amqp-consume)", "blocked", "", 0, true}};
  std::string problems;
  CHECK(sy::ops::ready({p}, ok, problems));
  CHECK(problems.empty());

  std::vector<sy::CounterSample> down = {{"p", "input (amqp-consume)", "connected", "", 0, true},
                                         {"p", "outputs[0] (stdout)", "blocked", "", 1, true},
                                         {"p", "outputs[0] (stdout)", "connected", "", 0, false}};  // a counter: ignored
  CHECK_FALSE(sy::ops::ready({p}, down, problems));
  CHECK(problems ==
        R"j({"pipeline":"p","plugin":"input (amqp-consume)","reason":"not connected (gauge connected is 0)"},)j"
        R"j({"pipeline":"p","plugin":"outputs[0] (stdout)","reason":"blocked by its peer (gauge blocked is 1)"})j");

  problems.clear();
  p.state = "stopping";
  CHECK_FALSE(sy::ops::ready({p}, ok, problems));
  CHECK(problems == R"j({"pipeline":"p","reason":"pipeline is stopping"})j");
}
