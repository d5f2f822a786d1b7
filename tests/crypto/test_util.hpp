// SPDX-License-Identifier: MIT
//
// Helpers for the crypto tests: running the Python helper, temporary directories, and an
// in-memory FilterContext that records counters and log lines.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "switchyard/plugin.hpp"

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

class CaptureLogger final : public switchyard::Logger {
 public:
  void log(switchyard::LogLevel, std::string_view message) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    lines_.emplace_back(message);
  }
  [[nodiscard]] bool enabled(switchyard::LogLevel) const noexcept override { return true; }
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

/// A FilterContext without a core: counters live in a map.
class FakeContext final : public switchyard::FilterContext {
 public:
  explicit FakeContext(std::string pipeline = "test") : pipeline_(std::move(pipeline)) {}
  switchyard::Logger &log() noexcept override { return logger_; }
  switchyard::Counter &counter(std::string_view name, std::string_view label = {}) noexcept override {
    auto &slot = counters_[std::string(name) + "{" + std::string(label) + "}"];
    if (!slot) {
      slot = std::make_unique<switchyard::Counter>();
    }
    return *slot;
  }
  switchyard::Gauge &gauge(std::string_view name) noexcept override {
    auto &slot = gauges_[std::string(name)];
    if (!slot) {
      slot = std::make_unique<switchyard::Gauge>();
    }
    return *slot;
  }
  void countDrop(std::string_view reason) noexcept override { counter("dropped", reason).add(); }
  [[nodiscard]] std::string_view pipeline() const noexcept override { return pipeline_; }
  [[nodiscard]] std::string_view instance() const noexcept override { return "filters[0]"; }
  [[nodiscard]] bool stopping() const noexcept override { return false; }

  std::uint64_t value(const std::string &name, const std::string &label = {}) {
    auto it = counters_.find(name + "{" + label + "}");
    return it == counters_.end() ? 0 : it->second->value();
  }
  CaptureLogger &logger() { return logger_; }

 private:
  std::string pipeline_;
  CaptureLogger logger_;
  std::map<std::string, std::unique_ptr<switchyard::Counter>> counters_;
  std::map<std::string, std::unique_ptr<switchyard::Gauge>> gauges_;
};

}  // namespace sytest
