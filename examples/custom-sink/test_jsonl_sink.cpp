// SPDX-License-Identifier: MIT
//
// Tests of the jsonl-file sink with the INSTALLED test kit (switchyard/testkit.hpp): the
// built plugin library is loaded through its three entry points, as the core loads it.
//
//   test_jsonl_sink PATH/switchyard-sink-jsonl-file.so
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <fmt/format.h>

#include "switchyard/testkit.hpp"

namespace {

using namespace switchyard;
using testkit::Harness;

int failures = 0;

void check(bool ok, const std::string &what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  failures += ok ? 0 : 1;
}

std::string readAll(const std::string &path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PLUGIN.so\n", argv[0]);
    return 2;
  }
  const std::string plugin = argv[1];
  char dir_tmpl[] = "/tmp/sy-jsonl-XXXXXX";
  if (::mkdtemp(dir_tmpl) == nullptr) {
    return 2;
  }
  const std::string dir = dir_tmpl;

  {  // Two messages, both written in order and settled as delivered; the counter says 2.
    const std::string file = dir + "/full.jsonl";
    Harness h = Harness::load(plugin, fmt::format(R"({{"path":"{}"}})", file));
    h.send(Message("org.example.a", R"({"n":1})", R"({"x":"y"})", "id-1"));
    h.send(Message("org.example.b", R"({"n":2})"));
    check(h.settle(std::chrono::seconds(5)), "every delivery settled");
    auto settled = h.settled();
    check(settled.size() == 2 && settled[0].outcome == Outcome::Delivered &&
              settled[1].outcome == Outcome::Delivered,
          "both delivered");
    check(h.counter("lines_written") == 2, "lines_written == 2");
    h.stop();
    check(readAll(file) ==
              "{\"topic\":\"org.example.a\",\"id\":\"id-1\",\"headers\":{\"x\":\"y\"},\"body\":{\"n\":1}}\n"
              "{\"topic\":\"org.example.b\",\"id\":\"\",\"headers\":{},\"body\":{\"n\":2}}\n",
          "the file holds one JSON line per message");
  }
  {  // format: body (an allowed value) writes the bodies alone.
    const std::string file = dir + "/body.jsonl";
    Harness h = Harness::load(plugin, fmt::format(R"({{"path":"{}","format":"body"}})", file));
    h.send(Message("t", R"({"n":3})"));
    check(h.settle(std::chrono::seconds(5)), "settled (format: body)");
    h.stop();
    check(readAll(file) == "{\"n\":3}\n", "format: body writes the body alone");
  }
  {  // A value outside the schema's allowed values is refused before the plugin runs.
    bool refused = false;
    try {
      Harness h = Harness::load(plugin, fmt::format(R"({{"path":"{}","format":"xml"}})", dir + "/x"));
    } catch (const std::exception &e) {
      refused = std::string(e.what()).find("format") != std::string::npos;
    }
    check(refused, "format: xml is refused, naming the key");
  }
  {  // An unwritable path fails start() with a fatal status that names the key.
    bool failed = false;
    try {
      Harness h = Harness::load(plugin, R"({"path":"/nonexistent-dir/x.jsonl"})");
      failed = !h.start().isOk();
    } catch (const std::exception &) {
    }
    check(failed, "start() fails for an unwritable path");
  }
  std::string rm = "rm -rf '" + dir + "'";
  (void)!std::system(rm.c_str());
  std::printf("%s\n", failures == 0 ? "all checks passed" : "some checks FAILED");
  return failures == 0 ? 0 : 1;
}
