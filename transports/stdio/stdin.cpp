// SPDX-License-Identifier: MIT
//
// stdin (source): reads JSON lines {"topic":...,"body":...,"headers":...,"id":...} from
// standard input (or a file) and submits one message per line. A bad line is skipped,
// logged with its line number and counted under its reason; it never stops the source.
//
//   input: {type: stdin}
//   input: {type: stdin, path: messages.jsonl, max_line_bytes: 1048576}
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "jsonl_impl.hpp"
#include "switchyard/sdk.hpp"

namespace {

using namespace switchyard;

const sy_config_key kSchema[] = {
    {"path", SY_CFG_STRING, 0, "\"-\"", "File to read; \"-\" reads standard input.", 0},
    {"max_line_bytes", SY_CFG_INT, 0, "16777216",
     "Longest accepted line; longer lines are skipped and counted as line_too_long.", 0},
    {nullptr, 0, 0, nullptr, nullptr, 0},
};

class StdinSource final : public Source {
 public:
  explicit StdinSource(const sdk::Config &c)
      : path_(c.str("path")), max_line_(static_cast<std::size_t>(c.integer("max_line_bytes"))) {
    if (c.integer("max_line_bytes") <= 0) {
      throw sdk::ConfigError("max_line_bytes", "max_line_bytes must be positive");
    }
  }
  ~StdinSource() override {
    if (fd_ > 2) {
      ::close(fd_);
    }
  }

  Status start(SourceContext &ctx) noexcept override {
    if (path_ == "-") {
      fd_ = 0;
    } else {
      fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd_ < 0) {
        return Status::fatal(fmt::format("cannot open '{}': {}", path_, std::strerror(errno)), "path");
      }
    }
    received_ = &ctx.counter("lines", {});
    return Status::ok();
  }

  Status poll(SourceContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    if (eof_) {
      return Status::endOfStream();
    }
    pollfd p{fd_, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (n < 0) {
      return errno == EINTR ? Status::ok() : Status::fatal(fmt::format("poll: {}", std::strerror(errno)));
    }
    if (n == 0) {
      return Status::ok();
    }
    char chunk[65536];
    ssize_t got = ::read(fd_, chunk, sizeof chunk);
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        return Status::ok();
      }
      return Status::fatal(fmt::format("read: {}", std::strerror(errno)));
    }
    if (got == 0) {
      eof_ = true;
      if (!buf_.empty() && !skipping_) {
        handleLine(ctx, buf_);
      }
      buf_.clear();
      return Status::endOfStream();
    }
    std::string_view data(chunk, static_cast<std::size_t>(got));
    while (!data.empty()) {
      auto nl = data.find('\n');
      if (nl == std::string_view::npos) {
        if (!skipping_) {
          buf_.append(data);
          if (buf_.size() > max_line_) {
            skipping_ = true;
            buf_.clear();
          }
        }
        break;
      }
      if (skipping_) {
        ++line_no_;
        ctx.countDrop("line_too_long");
        ctx.log().warn("line {}: longer than max_line_bytes ({}); skipped", line_no_, max_line_);
        skipping_ = false;
      } else if (buf_.empty()) {
        std::string line(data.substr(0, nl));
        handleLine(ctx, line);
      } else {
        buf_.append(data.substr(0, nl));
        handleLine(ctx, buf_);
        buf_.clear();
      }
      data.remove_prefix(nl + 1);
    }
    return Status::ok();
  }

  void stopIntake(SourceContext &) noexcept override { eof_ = true; }

 private:
  void handleLine(SourceContext &ctx, std::string &line) noexcept {
    ++line_no_;
    received_->add();
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    if (line.find_first_not_of(" \t") == std::string::npos) {
      return;  // blank lines are not messages
    }
    if (line.size() > max_line_) {
      ctx.countDrop("line_too_long");
      ctx.log().warn("line {}: longer than max_line_bytes ({}); skipped", line_no_, max_line_);
      return;
    }
    try {
      Message m;
      std::string detail;
      std::string reason = jsonl::parseLine(line, m, detail);
      if (!reason.empty()) {
        ctx.countDrop(reason);
        ctx.log().warn("line {}: {}; skipped", line_no_, detail);
        return;
      }
      (void)ctx.submit(std::move(m), line_no_);
    } catch (const std::exception &e) {
      ctx.countDrop("internal_error");
      ctx.log().error("line {}: {}", line_no_, e.what());
    }
  }

  std::string path_;
  std::size_t max_line_;
  int fd_ = -1;
  bool eof_ = false;
  bool skipping_ = false;
  std::string buf_;
  std::uint64_t line_no_ = 0;
  Counter *received_ = nullptr;
};

}  // namespace

SWITCHYARD_PLUGIN(StdinSource, SY_KIND_SOURCE, "stdin", "1.0.0",
                  "Reads JSON-lines messages from standard input or a file", 0, kSchema)
