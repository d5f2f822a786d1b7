// SPDX-License-Identifier: MIT
//
// jsonl-file (sink): appends every message to a file as one JSON line. A complete
// out-of-tree sink written only against the installed SDK (`pkg-config switchyard`); the
// guide docs/writing-a-plugin.md walks through it.
//
//   outputs:
//     - type: jsonl-file
//       path: /var/log/switchyard/messages.jsonl
//       format: full          # full: {"topic","id","headers","body"}; body: the body alone
//       sync_every: 100       # fsync(2) after every 100 lines (0: never)
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "switchyard/backoff.hpp"
#include "switchyard/drop_log.hpp"
#include "switchyard/sdk.hpp"

namespace {

using namespace switchyard;

// The schema: the core checks types, allowed values and bounds, and fills in defaults
// before the plugin sees the configuration; `switchyard plugins jsonl-file` lists it.
constexpr sy_config_key kSchema[] = {
    sdk::key("path", SY_CFG_STRING, nullptr, "File the lines are appended to (created if missing).").required(),
    sdk::key("format", SY_CFG_STRING, "\"full\"",
             "full: one object with topic, id, headers and body; body: the body alone.")
        .oneOf("full|body"),
    sdk::key("sync_every", SY_CFG_INT, "0", "fsync(2) after this many lines (0: never).").range(0, 1000000),
    sdk::kEndOfSchema,
};

// Counters, declared beside the schema; reported as NAME{pipeline, plugin}.
enum : std::size_t { kWritten, kWriteFailed };
constexpr sdk::CounterSpec kCounters[] = {
    {"lines_written", "Messages appended to the file."},
    {"write_failed", "Messages handed back for a retry because the file could not be written."},
};

enum class Format { Full, Body };

// One instance per configured output, driven by its own thread (Sink's threading rule):
// no locking needed inside. SWITCHYARD_PLUGIN makes the factory that keeps the parsed Config.
class JsonlSink final : public Sink {
 public:
  explicit JsonlSink(const sdk::Config &c)
      : path_(c.str("path")),
        format_(c.oneOf<Format>("format", {{"full", Format::Full}, {"body", Format::Body}})),
        sync_every_(c.integer("sync_every")) {
    if (path_.empty()) {
      throw sdk::ConfigError("path", "path must not be empty");  // points at the key in the file
    }
  }
  ~JsonlSink() override { closeFile(); }

  Status start(SinkContext &ctx) noexcept override {
    counters_.attach(ctx);
    // A file that cannot be opened at start is a configuration problem: say so now.
    if (!openFile(ctx)) {
      return Status::fatal("cannot open " + path_ + ": " + std::strerror(errno), "path");
    }
    return Status::ok();
  }

  void send(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept override {
    if (fd_ < 0 && (std::chrono::steady_clock::now() < reopen_at_ || !openFile(ctx))) {
      failed(ctx, std::move(msg), id);
      return;
    }
    try {
      line_.clear();
      format(msg, line_);
      line_ += '\n';
    } catch (const std::exception &) {  // allocation failure: transient
      ctx.retry(id, std::move(msg), "out_of_memory");
      return;
    }
    if (!writeAll(line_)) {
      log_.warn(ctx, "write", "cannot write {}: {}", path_, std::strerror(errno));
      closeFile();
      failed(ctx, std::move(msg), id);
      return;
    }
    backoff_.reset();
    counters_[kWritten].add();
    if (sync_every_ > 0 && ++unsynced_ >= sync_every_) {
      (void)::fsync(fd_);
      unsynced_ = 0;
    }
    ctx.done(id, Outcome::Delivered);
  }

  Status flush(SinkContext &, std::chrono::milliseconds) noexcept override {
    if (fd_ >= 0) {
      (void)::fsync(fd_);
    }
    return Status::ok();
  }
  void stop() noexcept override { closeFile(); }

 private:
  void format(const Message &msg, std::string &out) const {
    if (format_ == Format::Body) {
      out += msg.body();  // already JSON text
      return;
    }
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("topic");
    w.String(msg.topic().data(), static_cast<rapidjson::SizeType>(msg.topic().size()));
    w.Key("id");
    w.String(msg.id().data(), static_cast<rapidjson::SizeType>(msg.id().size()));
    w.Key("headers");
    w.RawValue(msg.headers().data(), msg.headers().size(), rapidjson::kObjectType);
    w.Key("body");
    w.RawValue(msg.body().data(), msg.body().size(), rapidjson::kObjectType);
    w.EndObject();
    out.append(sb.GetString(), sb.GetSize());
  }

  bool openFile(SinkContext &ctx) noexcept {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd_ < 0) {
      log_.warn(ctx, "open", "cannot open {}: {}", path_, std::strerror(errno));
      reopen_at_ = std::chrono::steady_clock::now() + backoff_.next();  // do not retry at once
      return false;
    }
    return true;
  }
  void closeFile() noexcept {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  bool writeAll(const std::string &s) noexcept {
    std::size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::write(fd_, s.data() + off, s.size() - off);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        return false;
      }
      off += static_cast<std::size_t>(n);
    }
    return true;
  }
  // The message goes back to the runtime, which sends it to this output again after the
  // output's `retry:` backoff; other outputs of the message are not affected.
  void failed(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept {
    counters_[kWriteFailed].add();
    ctx.retry(id, std::move(msg), "write_failed");
  }

  std::string path_;
  Format format_;
  std::int64_t sync_every_;
  int fd_ = -1;
  std::int64_t unsynced_ = 0;
  std::string line_;
  sdk::Counters counters_{kCounters};
  DropLog log_{1, std::chrono::seconds(10)};  // at most one line per reason per 10 s
  sdk::Backoff backoff_{{.initial_s = 0.5, .max_s = 30, .jitter = 0.25}};
  std::chrono::steady_clock::time_point reopen_at_{};
};

}  // namespace

// The three exported entry points: info record, schema, create (with exception barrier).
SWITCHYARD_PLUGIN(JsonlSink, SY_KIND_SINK, "jsonl-file", "1.0.0", "Appends messages to a file as JSON lines", 0,
                  kSchema)
