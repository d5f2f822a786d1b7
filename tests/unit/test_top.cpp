// SPDX-License-Identifier: MIT
// `switchyard top`'s reading of the Prometheus text and its quantiles (core/cli/cli_top.cpp).
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cli_top.hpp"

namespace top = switchyard::cli::top;

TEST_CASE("parse: names, escaped label values, values; comments skipped") {
  std::vector<top::Sample> out;
  std::string why;
  REQUIRE(top::parse("# HELP x y\n# TYPE x counter\n"
                     "switchyard_received_total{pipeline=\"p\",plugin=\"a \\\"b\\\" \\\\ c\\nd\"} 12\n"
                     "switchyard_process_start_time_seconds 1700000000.250\n"
                     "x_bucket{le=\"+Inf\"} 3 1700000000000\n",
                     out, why));
  REQUIRE(out.size() == 3);
  CHECK(out[0].name == "switchyard_received_total");
  CHECK(out[0].labels.at("pipeline") == "p");
  CHECK(out[0].labels.at("plugin") == "a \"b\" \\ c\nd");
  CHECK(out[0].value == 12);
  CHECK(out[1].labels.empty());
  CHECK(out[1].value == doctest::Approx(1700000000.25));
  CHECK(out[2].labels.at("le") == "+Inf");
  CHECK(out[2].value == 3);  // the timestamp after the value is ignored
}

TEST_CASE("parse: a line that is not the format names its line") {
  std::vector<top::Sample> out;
  std::string why;
  CHECK_FALSE(top::parse("ok 1\nbad{x=\"1\" 2\n", out, why));
  CHECK(why.starts_with("line 2:"));
  CHECK_FALSE(top::parse("<html>\n", out, why));
  CHECK(why.starts_with("line 1: expected NAME{LABELS} VALUE"));
}

TEST_CASE("quantile: linear inside the bucket, as histogram_quantile()") {
  // 10 values <= 0.01, 10 more <= 0.1, none above.
  std::vector<std::pair<double, double>> h = {{0.01, 10}, {0.1, 20}, {INFINITY, 20}};
  CHECK(top::quantile(0.5, h) == doctest::Approx(0.01));
  CHECK(top::quantile(0.25, h) == doctest::Approx(0.005));
  CHECK(top::quantile(0.75, h) == doctest::Approx(0.055));
  CHECK(top::quantile(0.99, h) == doctest::Approx(0.0982));
  // Above the last bound: the last bound is all that is known.
  CHECK(top::quantile(0.99, {{0.01, 1}, {INFINITY, 10}}) == doctest::Approx(0.01));
  CHECK(top::quantile(0.5, {{0.01, 0}, {INFINITY, 0}}) < 0);  // empty
}
