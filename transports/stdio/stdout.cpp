// SPDX-License-Identifier: MIT
//
// stdout (sink): writes each message as one JSON line
// {"topic":...,"body":...,"headers":...,"id":...} to standard output (or a file). A message
// counts as delivered once write(2) took it.
//
//   outputs: [{type: stdout}]
//   outputs: [{type: stdout, path: out.jsonl}]
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "jsonl_impl.hpp"
#include "switchyard/sdk.hpp"

namespace {

using namespace switchyard;

const sy_config_key kSchema[] = {
    {"path", SY_CFG_STRING, 0, "\"-\"", "File to append to; \"-\" writes standard output.", 0},
    {"buffer_bytes", SY_CFG_INT, 0, "65536",
     "Lines are written in batches of up to this many bytes, and whenever the queue is idle.", 0},
    {nullptr, 0, 0, nullptr, nullptr, 0},
};

class StdoutSink final : public Sink {
 public:
  explicit StdoutSink(const sdk::Config &c)
      : path_(c.str("path")), limit_(static_cast<std::size_t>(c.integer("buffer_bytes"))) {
    if (c.integer("buffer_bytes") < 0) {
      throw sdk::ConfigError("buffer_bytes", "buffer_bytes must not be negative");
    }
  }
  ~StdoutSink() override {
    if (fd_ > 2) {
      ::close(fd_);
    }
  }

  Status start(SinkContext &) noexcept override {
    if (path_ == "-") {
      fd_ = 1;
    } else {
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd_ < 0) {
        return Status::fatal(fmt::format("cannot open '{}': {}", path_, std::strerror(errno)), "path");
      }
    }
    return Status::ok();
  }

  void send(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept override {
    try {
      jsonl::formatLine(msg, buf_);
      buf_ += '\n';
      ids_.push_back(id);
    } catch (...) {
      ctx.done(id, Outcome::Retry, "out_of_memory");
      return;
    }
    if (buf_.size() >= limit_) {
      writeOut(ctx);
    }
  }

  Status poll(SinkContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    if (!buf_.empty()) {
      return writeOut(ctx);
    }
    return Sink::poll(ctx, timeout);
  }

  Status flush(SinkContext &ctx, std::chrono::milliseconds) noexcept override { return writeOut(ctx); }

 private:
  Status writeOut(SinkContext &ctx) noexcept {
    std::size_t off = 0;
    while (off < buf_.size()) {
      ssize_t n = ::write(fd_, buf_.data() + off, buf_.size() - off);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        int err = errno;
        for (auto id : ids_) {
          ctx.done(id, Outcome::Retry, "write_failed");
        }
        ids_.clear();
        buf_.clear();
        return Status::fatal(fmt::format("write: {}", std::strerror(err)));
      }
      off += static_cast<std::size_t>(n);
    }
    buf_.clear();
    for (auto id : ids_) {
      ctx.done(id, Outcome::Delivered);
    }
    ids_.clear();
    return Status::ok();
  }

  std::string path_;
  std::size_t limit_;
  int fd_ = -1;
  std::string buf_;
  std::vector<DeliveryId> ids_;
};

}  // namespace

SWITCHYARD_PLUGIN(StdoutSink, SY_KIND_SINK, "stdout", "1.0.0",
                  "Writes messages as JSON lines to standard output or a file", 0, kSchema)
