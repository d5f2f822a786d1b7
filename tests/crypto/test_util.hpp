// SPDX-License-Identifier: MIT
//
// Helpers for the crypto tests: running the Python helper, temporary directories, and an
// in-memory FilterContext that records counters and log lines (the test kit's).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "switchyard/plugin.hpp"
#include "switchyard/testkit/context.hpp"

namespace sytest {

inline std::string sourceRoot() {
  const char *root = std::getenv("SWITCHYARD_SOURCE_ROOT");
  return root != nullptr ? root : ".";
}

/// Debian's python: the one that has python3-cryptography.
inline std::string pyHelper() { return "/usr/bin/python3 '" + sourceRoot() + "/tests/crypto/pyhelper.py'"; }

struct RunResult {
  int status = -1;
  std::string out;
};

/// Runs @p command through the shell with @p input on its stdin; returns exit status + stdout.
inline RunResult run(const std::string &command, const std::string &input = {}) {
  char tmpl[] = "/tmp/sy-crypto-in-XXXXXX";
  int fd = ::mkstemp(tmpl);
  if (fd < 0) {
    throw std::runtime_error("mkstemp failed");
  }
  std::size_t off = 0;
  while (off < input.size()) {
    ssize_t n = ::write(fd, input.data() + off, input.size() - off);
    if (n <= 0) {
      ::close(fd);
      throw std::runtime_error("write failed");
    }
    off += static_cast<std::size_t>(n);
  }
  ::close(fd);
  std::string full = command + " < '" + tmpl + "'";
  RunResult r;
  FILE *p = ::popen(full.c_str(), "r");
  if (p == nullptr) {
    ::unlink(tmpl);
    throw std::runtime_error("popen failed");
  }
  char buf[65536];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) {
    r.out.append(buf, n);
  }
  int st = ::pclose(p);
  ::unlink(tmpl);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/sy-crypto-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  [[nodiscard]] const std::string &path() const { return path_; }
  [[nodiscard]] std::string file(const std::string &name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void writeFile(const std::string &path, const std::string &data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

/// The test kit's recording logger and fake FilterContext (switchyard/testkit/context.hpp):
/// counters and gauges live in maps, log lines are kept.
using CaptureLogger = switchyard::testkit::RecordingLogger;
using FakeContext = switchyard::testkit::FakeFilterContext;

}  // namespace sytest
