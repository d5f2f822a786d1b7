// SPDX-License-Identifier: MIT
// `switchyard journal inspect|check`: see cli_journal.hpp and docs/cli.md.
#include "cli_journal.hpp"

#include <cstdio>
#include <ctime>

#include <fmt/format.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "cli_common.hpp"
#include "journal.hpp"

namespace switchyard::cli {

namespace jn = switchyard::journal;

namespace {

std::string isoTime(std::int64_t ms) {
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms % 1000);
}

std::string problemLine(const jn::Problem &p) {
  return fmt::format("{}: offset {}: {} ({} bytes skipped)", p.file.string(), p.offset, p.what, p.skipped_bytes);
}

void printJson(const std::string &dir, const jn::ScanResult &r) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto str = [&w](const std::string &s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); };
  w.StartObject();
  w.Key("dir");
  str(dir);
  w.Key("segments");
  w.Uint64(r.segments);
  w.Key("bytes");
  w.Uint64(r.bytes);
  w.Key("live");
  w.Uint64(r.live.size());
  w.Key("released");
  w.Uint64(r.released);
  w.Key("records");
  w.StartArray();
  for (const auto &rec : r.live) {
    w.StartObject();
    w.Key("seq");
    w.Uint64(rec.seq);
    w.Key("appended_ms");
    w.Int64(rec.appended_ms);
    w.Key("time");
    str(isoTime(rec.appended_ms));
    w.Key("topic");
    str(rec.msg.topic());
    w.Key("message_id");
    str(rec.msg.id());
    w.Key("size");
    w.Uint64(jn::recordBytes(rec.msg));
    w.EndObject();
  }
  w.EndArray();
  w.Key("problems");
  w.StartArray();
  for (const auto &p : r.problems) {
    w.StartObject();
    w.Key("file");
    str(p.file.string());
    w.Key("offset");
    w.Uint64(p.offset);
    w.Key("what");
    str(p.what);
    w.Key("skipped_bytes");
    w.Uint64(p.skipped_bytes);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  std::fwrite(sb.GetString(), 1, sb.GetSize(), stdout);
  std::fputc('\n', stdout);
}

void printText(const jn::ScanResult &r) {
  if (!r.live.empty()) {
    fmt::print("{:>10}  {:<24}  {:>8}  {:<36}  {}\n", "SEQ", "APPENDED (UTC)", "SIZE", "MESSAGE ID", "TOPIC");
  }
  for (const auto &rec : r.live) {
    fmt::print("{:>10}  {:<24}  {:>8}  {:<36}  {}\n", rec.seq, isoTime(rec.appended_ms), jn::recordBytes(rec.msg),
               rec.msg.id().empty() ? "-" : rec.msg.id(), rec.msg.topic());
  }
  fmt::print("segments: {}, bytes: {}, live: {}, released: {}, problems: {}\n", r.segments, r.bytes,
             r.live.size(), r.released, r.problems.size());
  for (const auto &p : r.problems) {
    fmt::print("problem: {}\n", problemLine(p));
  }
}

}  // namespace

CLI::App *addJournalCommand(CLI::App &app, JournalOptions &opts) {
  auto *journal = app.add_subcommand("journal", "Look at a pipeline's disk journal (read-only)");
  journal->require_subcommand(1);
  opts.inspect = journal->add_subcommand(
      "inspect", "List the journal's live (unreleased) records and a summary: segments, bytes, live, released, problems");
  opts.inspect->add_option("dir", opts.dir, "The journal dir (the pipeline's journal.dir)")->required();
  opts.inspect->add_flag("--json", opts.json, "One JSON object: the summary, records[] and problems[]");
  opts.check = journal->add_subcommand(
      "check", "Check every record's length and CRC32C; exit 0 when clean, 1 when problems were found");
  opts.check->add_option("dir", opts.dir, "The journal dir (the pipeline's journal.dir)")->required();
  return journal;
}

int runJournal(const JournalOptions &opts) {
  jn::ScanResult r;
  std::string error;
  if (!jn::scan(opts.dir, r, error)) {
    std::fprintf(stderr, "switchyard journal: %s\n", error.c_str());
    return kExitConfig;
  }
  if (*opts.inspect) {
    if (opts.json) {
      printJson(opts.dir, r);
    } else {
      printText(r);
    }
    return kExitOk;
  }
  for (const auto &p : r.problems) {
    fmt::print("problem: {}\n", problemLine(p));
  }
  fmt::print("{}: {} segments, {} bytes, {} live, {} released, {} problems\n", opts.dir, r.segments, r.bytes,
             r.live.size(), r.released, r.problems.size());
  return r.problems.empty() ? kExitOk : kExitFailure;
}

}  // namespace switchyard::cli
