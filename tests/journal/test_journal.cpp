// SPDX-License-Identifier: MIT
// The disk journal's storage (core/src/journal*.cpp): append, next, release, reopen and
// replay order, segment deletion, Full, torn tails at every byte of the last record, a CRC
// flip in the middle, one writer per dir, the fsync counts of each mode, and scan().
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "journal.hpp"
#include "journal_codec.hpp"
#include "switchyard/fedmsg.hpp"

namespace fs = std::filesystem;
namespace jn = switchyard::journal;
namespace jd = switchyard::journal::detail;
using switchyard::Message;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "sy-journal-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

Message msg(int i, std::size_t body_pad = 0) {
  Message m("org.example.t" + std::to_string(i), "{\"i\":" + std::to_string(i) + ",\"p\":\"" +
                                                      std::string(body_pad, 'x') + "\"}",
            "{\"h\":1}", "id-" + std::to_string(i), 1000 + i);
  m.setMeta("zmq.endpoint", "tcp://127.0.0.1:1");
  return m;
}

std::unique_ptr<jn::Journal> openJ(const jn::Options &o, std::vector<jn::Problem> &problems) {
  std::string error;
  auto j = jn::Journal::open(o, problems, error);
  INFO(error);
  REQUIRE(j != nullptr);
  return j;
}

std::unique_ptr<jn::Journal> openJ(const jn::Options &o) {
  std::vector<jn::Problem> problems;
  auto j = openJ(o, problems);
  REQUIRE(problems.empty());
  return j;
}

std::vector<std::uint64_t> drain(jn::Journal &j, std::vector<std::string> *ids = nullptr) {
  std::vector<std::uint64_t> seqs;
  while (auto r = j.next()) {
    seqs.push_back(r->seq);
    if (ids != nullptr) {
      ids->push_back(r->msg.id());
    }
  }
  return seqs;
}

std::vector<fs::path> segments(const fs::path &dir) {
  std::vector<fs::path> out;
  for (const auto &e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".seg") {
      out.push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("append, next, release, reopen: the unreleased come back in seq order, fields intact") {
  TempDir d;
  jn::Options o;
  o.dir = d.path;
  {
    auto j = openJ(o);
    for (int i = 1; i <= 10; ++i) {
      auto r = j->append(msg(i));
      REQUIRE(r.status == jn::Journal::AppendStatus::Ok);
      CHECK(r.seq == static_cast<std::uint64_t>(i));
    }
    CHECK(j->stats().backlog == 10);
    std::vector<std::string> ids;
    CHECK(drain(*j, &ids) == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
    CHECK(ids.front() == "id-1");
    CHECK(j->stats().backlog == 0);
    for (std::uint64_t s : {1, 2, 3, 5, 8}) {
      j->release(s);
    }
    j->release(3);   // twice: no effect
    j->release(99);  // unknown: no effect
    auto st = j->stats();
    CHECK(st.live_records == 5);
    CHECK(st.first_seq == 4);
    CHECK(st.last_seq == 10);
  }
  {
    auto j = openJ(o);
    CHECK(j->stats().backlog == 5);
    std::vector<jn::Record> got;
    while (auto r = j->next()) {
      got.push_back(std::move(*r));
    }
    REQUIRE(got.size() == 5);
    CHECK(got[0].seq == 4);
    CHECK(got[1].seq == 6);
    CHECK(got[4].seq == 10);
    const Message &m = got[0].msg;
    CHECK(m.topic() == "org.example.t4");
    CHECK(m.body() == "{\"i\":4,\"p\":\"\"}");
    CHECK(m.headers() == "{\"h\":1}");
    CHECK(m.id() == "id-4");
    CHECK(m.timestampMs() == 1004);
    CHECK(m.getMeta("zmq.endpoint") == "tcp://127.0.0.1:1");
    CHECK(got[0].appended_ms > 0);
    // New appends come after the backlog and keep counting up.
    auto r = j->append(msg(11));
    CHECK(r.seq == 11);
    CHECK(j->next()->seq == 11);
    CHECK_FALSE(j->next().has_value());
  }
}

TEST_CASE("a message released before next() reached it is never handed out") {
  TempDir d;
  jn::Options o;
  o.dir = d.path;
  auto j = openJ(o);
  for (int i = 1; i <= 4; ++i) {
    j->append(msg(i));
  }
  j->release(2);
  CHECK(j->stats().backlog == 3);
  CHECK(drain(*j) == std::vector<std::uint64_t>{1, 3, 4});
}

TEST_CASE("next() reads the backlog from disk past the in-memory cache") {
  TempDir d;
  jn::Options o;
  o.dir = d.path;
  auto j = openJ(o);
  for (int i = 1; i <= 600; ++i) {  // ~6 MB: far more than the cache holds
    REQUIRE(j->append(msg(i, 10000)).status == jn::Journal::AppendStatus::Ok);
  }
  std::vector<std::string> ids;
  auto seqs = drain(*j, &ids);
  REQUIRE(seqs.size() == 600);
  for (int i = 0; i < 600; ++i) {
    CHECK(seqs[i] == static_cast<std::uint64_t>(i + 1));
    CHECK(ids[i] == "id-" + std::to_string(i + 1));
  }
}

TEST_CASE("a segment is deleted once all its messages are released") {
  TempDir d;
  jn::Options o;
  o.dir = d.path;
  o.segment_bytes = 8192;
  auto j = openJ(o);
  for (int i = 1; i <= 200; ++i) {
    j->append(msg(i, 100));
  }
  const auto before = j->stats().segments;
  CHECK(before > 4);
  CHECK(segments(d.path).size() == before);
  drain(*j);
  for (std::uint64_t s = 1; s <= 150; ++s) {
    j->release(s);
  }
  auto st = j->stats();
  CHECK(st.segments < before);
  CHECK(st.live_records == 50);
  CHECK(st.first_seq == 151);
  CHECK(segments(d.path).size() == st.segments);
  // The oldest file left holds seq 151 or an earlier one of the same segment.
  const auto oldest = std::stoull(segments(d.path).front().filename().string().substr(0, 20));
  CHECK(oldest <= 151);
  CHECK(oldest > 100);
  j.reset();
  auto k = openJ(o);
  auto seqs = drain(*k);
  REQUIRE(seqs.size() == 50);
  CHECK(seqs.front() == 151);
  CHECK(seqs.back() == 200);
}

TEST_CASE("Full: max_bytes is never passed; space comes back as messages are released") {
  TempDir d;
  jn::Options o;
  o.dir = d.path;
  o.max_bytes = 64 * 1024;
  auto j = openJ(o);
  const std::size_t rec = jn::recordBytes(msg(1, 500));
  int ok = 0;
  for (int i = 1; i <= 1000; ++i) {
    auto r = j->append(msg(i, 500));
    if (r.status == jn::Journal::AppendStatus::Full) {
      break;
    }
    REQUIRE(r.status == jn::Journal::AppendStatus::Ok);
    ++ok;
  }
  auto st = j->stats();
  CHECK(ok == static_cast<int>(st.live_records));
  CHECK(st.live_bytes <= o.max_bytes);
  CHECK(st.live_bytes + rec > o.max_bytes);
  CHECK(ok > 64 * 1024 / static_cast<int>(rec) - 2);
  // Nothing was written by the refused append.
  CHECK(j->append(msg(9999, 500)).status == jn::Journal::AppendStatus::Full);
  CHECK(j->stats().live_bytes == st.live_bytes);
  CHECK_FALSE(j->waitForSpace(rec, std::chrono::steady_clock::now() + std::chrono::milliseconds(20)));
  // Released from another thread while waiting.
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    while (auto r = j->next()) {
      j->release(r->seq);
    }
  });
  CHECK(j->waitForSpace(rec, std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  t.join();
  CHECK(j->append(msg(10000, 500)).status == jn::Journal::AppendStatus::Ok);
  CHECK(j->stats().live_records == 1);
}

TEST_CASE("a torn tail at every byte of the last record: reported, skipped, the rest kept") {
  TempDir d;
  jn::Options o;
  o.dir = d.path / "src";
  {
    auto j = openJ(o);
    for (int i = 1; i <= 3; ++i) {
      j->append(msg(i));
    }
  }
  const auto segs = segments(o.dir);
  REQUIRE(segs.size() == 1);
  const auto full = fs::file_size(segs[0]);
  const std::uint64_t last = jn::recordBytes(msg(1)) + jn::recordBytes(msg(2));
  REQUIRE(full == last + jn::recordBytes(msg(3)));
  for (std::uint64_t cut = last; cut < full; ++cut) {
    CAPTURE(cut);
    const fs::path dir = d.path / ("cut" + std::to_string(cut));
    fs::copy(o.dir, dir);
    const fs::path seg = dir / segs[0].filename();
    fs::resize_file(seg, cut);
    jn::Options c = o;
    c.dir = dir;
    {
      std::vector<jn::Problem> problems;
      auto j = openJ(c, problems);
      if (cut == last) {
        CHECK(problems.empty());  // a clean end between records
      } else {
        REQUIRE(problems.size() == 1);
        CHECK(problems[0].file == seg);
        CHECK(problems[0].offset == last);
        CHECK(problems[0].skipped_bytes == cut - last);
        CHECK(problems[0].what.find("torn record") != std::string::npos);
      }
      CHECK(drain(*j) == std::vector<std::uint64_t>{1, 2});
      // It writes on: a new record after the torn one is replayed on the next open.
      CHECK(j->append(msg(4)).seq == 3);
    }
    std::vector<jn::Problem> again;
    auto j = openJ(c, again);
    CHECK(again.size() == (cut == last ? 0 : 1));
    CHECK(drain(*j) == std::vector<std::uint64_t>{1, 2, 3});
    j.reset();
    fs::remove_all(dir);
  }
}

TEST_CASE("a CRC flip in the middle: that record is reported and skipped, the ones after it kept") {
  TempDir d;
  jn::Options o;
  o.dir = d.path;
  {
    auto j = openJ(o);
    for (int i = 1; i <= 3; ++i) {
      j->append(msg(i));
    }
  }
  const auto seg = segments(d.path).at(0);
  const std::uint64_t second = jn::recordBytes(msg(1));
  {
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(second + 20));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x01);
    f.seekp(static_cast<std::streamoff>(second + 20));
    f.write(&c, 1);
  }
  std::vector<jn::Problem> problems;
  auto j = openJ(o, problems);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].file == seg);
  CHECK(problems[0].offset == second);
  CHECK(problems[0].what.find("CRC mismatch") != std::string::npos);
  CHECK(problems[0].skipped_bytes == jn::recordBytes(msg(2)));
  CHECK(drain(*j) == std::vector<std::uint64_t>{1, 3});

  jn::ScanResult sr;
  std::string error;
  REQUIRE(jn::scan(d.path, sr, error));
  REQUIRE(sr.problems.size() == 1);
  CHECK(sr.problems[0].offset == second);
  REQUIRE(sr.live.size() == 2);
  CHECK(sr.live[0].msg.id() == "id-1");
  CHECK(sr.live[1].msg.id() == "id-3");
}

TEST_CASE("one writer per dir: a second opener is refused, naming the dir and the holder's pid") {
  TempDir d;
  jn::Options o;
  o.dir = d.path;
  auto j = openJ(o);
  std::vector<jn::Problem> problems;
  std::string error;
  auto k = jn::Journal::open(o, problems, error);
  CHECK(k == nullptr);
  CHECK(error.find(d.path.string()) != std::string::npos);
  CHECK(error.find("pid " + std::to_string(::getpid())) != std::string::npos);
  j.reset();
  auto l = jn::Journal::open(o, problems, error);
  CHECK(l != nullptr);
}

TEST_CASE("a dir that cannot be created is an error, not a crash") {
  TempDir d;
  std::ofstream(d.path / "file") << "x";
  jn::Options o;
  o.dir = d.path / "file" / "journal";
  std::vector<jn::Problem> problems;
  std::string error;
  CHECK(jn::Journal::open(o, problems, error) == nullptr);
  CHECK(error.find(o.dir.string()) != std::string::npos);
}

TEST_CASE("fsync counts: batch syncs once per batch at most and only after a write") {
  TempDir d;
  jn::Options o;
  o.dir = d.path;
  o.fsync = jn::Fsync::Batch;
  o.batch = std::chrono::milliseconds(50);
  auto j = openJ(o);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 1; i <= 2000; ++i) {
    j->append(msg(i));
  }
  const auto spent = std::chrono::steady_clock::now() - t0;
  // Wait (with a deadline) for the group commit of the last writes.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (j->stats().fsyncs == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const auto after_writes = j->stats().fsyncs;
  CHECK(after_writes >= 1);
  CHECK(after_writes <= static_cast<std::uint64_t>(spent / o.batch) + 2);
  CHECK(after_writes < 2000);
  // Idle: nothing written, nothing synced (four batch periods).
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  const auto settled = j->stats().fsyncs;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(j->stats().fsyncs == settled);
}

TEST_CASE("fsync counts: always syncs every append, never none") {
  TempDir d;
  jn::Options o;
  o.dir = d.path / "always";
  o.fsync = jn::Fsync::Always;
  {
    auto j = openJ(o);
    for (int i = 1; i <= 20; ++i) {
      j->append(msg(i));
    }
    CHECK(j->stats().fsyncs == 20);
  }
  o.dir = d.path / "never";
  o.fsync = jn::Fsync::Never;
  auto j = openJ(o);
  for (int i = 1; i <= 20; ++i) {
    j->append(msg(i));
  }
  j->flush();
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  CHECK(j->stats().fsyncs == 0);
}

TEST_CASE("release records persist: flushed releases do not come back; scan agrees") {
  TempDir d;
  jn::Options o;
  o.dir = d.path;
  {
    auto j = openJ(o);
    for (int i = 1; i <= 10; ++i) {
      j->append(msg(i));
    }
    drain(*j);
    for (std::uint64_t s = 1; s <= 7; ++s) {
      j->release(s);
    }
    j->flush();
    jn::ScanResult sr;
    std::string error;
    REQUIRE(jn::scan(d.path, sr, error));
    CHECK(sr.problems.empty());
    CHECK(sr.released == 7);
    REQUIRE(sr.live.size() == 3);
    CHECK(sr.live[0].seq == 8);
    CHECK(sr.segments >= 1);
    CHECK(sr.bytes > 0);
  }
  auto j = openJ(o);
  CHECK(drain(*j) == std::vector<std::uint64_t>{8, 9, 10});
}

TEST_CASE("scan of a missing dir is an error naming it") {
  jn::ScanResult sr;
  std::string error;
  CHECK_FALSE(jn::scan("/nonexistent/journal", sr, error));
  CHECK(error.find("/nonexistent/journal") != std::string::npos);
}

TEST_CASE("CRC32C: the check value, and the CPU's instruction agrees with Boost.CRC at every length") {
  const std::string check = "123456789";
  CHECK(jd::crc32c(check.data(), check.size()) == 0xE3069283u);
  std::string data;
  for (int i = 0; i < 300; ++i) {
    data.push_back(static_cast<char>((i * 131 + 7) & 0xFF));
  }
  for (std::size_t off = 0; off < 8; ++off) {
    for (std::size_t n = 0; off + n <= data.size(); n += 7) {
      CHECK(jd::crc32c(data.data() + off, n) == jd::crc32cReference(data.data() + off, n));
    }
  }
}

TEST_CASE("a message with a fedmsg envelope comes back from disk with it, byte for byte") {
  TempDir d;
  const std::string text =
      R"({"i":7,"msg":{"a":[1,2,{"b":"\u00e9"}]},"msg_id":"2026-0b8e2a6e-4d0c-4b5e-9d47-0e1f0c1d2e3f",)"
      R"("timestamp":1764979200.5,"topic":"org.fedoraproject.prod.bodhi.update.request","username":"bodhi"})";
  Message in;
  auto res = switchyard::fedmsg::decode("org.fedoraproject.prod.bodhi.update.request", text, in);
  REQUIRE(res.ok());
  REQUIRE(in.envelope() != nullptr);
  in.setMeta("zmq.endpoint", "tcp://127.0.0.1:9940");
  in.setTimestampMs(1234);
  const std::string topic = in.topic(), body = in.body(), headers = in.headers(), id = in.id();
  {
    // Read back after a reopen: the cache of recent appends is gone, the record is decoded.
    jn::Options o{.dir = d.path};
    auto j = openJ(o);
    REQUIRE(j->append(in).status == jn::Journal::AppendStatus::Ok);
    j->flush();
  }
  auto j = openJ(jn::Options{.dir = d.path});
  auto r = j->next();
  REQUIRE(r);
  REQUIRE(r->msg.envelope() != nullptr);
  CHECK(r->msg.envelope()->text == text);
  CHECK(r->msg.topic() == topic);
  CHECK(r->msg.body() == body);
  CHECK(r->msg.headers() == headers);
  CHECK(r->msg.id() == id);
  CHECK(r->msg.timestampMs() == 1234);
  REQUIRE(r->msg.getMeta("zmq.endpoint"));
  CHECK(*r->msg.getMeta("zmq.endpoint") == "tcp://127.0.0.1:9940");
  // inspect's scan reads it too.
  jn::ScanResult sr;
  std::string error;
  REQUIRE(jn::scan(d.path, sr, error));
  REQUIRE(sr.live.size() == 1);
  CHECK(sr.live[0].msg.id() == id);
}
