// SPDX-License-Identifier: MIT
// The disk journal (internal to the core): an append-only log of the messages an input that
// cannot redeliver (zmq-sub, stdin) handed to a pipeline, kept until every output settled
// them, and replayed on the next start. See docs/journal.md.
//
// On disk: a directory of segment files `<first-seq, 20 digits>.seg`. Each record is
//   u32 length (of the payload) | u32 CRC32C (of the payload) | payload
// little-endian; the payload starts with a one-byte type: a message (its journal sequence
// number, the append wall-clock time and every field of the Message: topic, body, headers,
// id, timestamp and meta) or a release (sequence numbers whose messages were settled).
// A segment is deleted once every message in it is released and it is not the one being
// written. A torn or corrupt tail (short record, bad length, CRC mismatch) is reported as a
// Problem and skipped: recovery keeps every good record before it and writes on in a new
// segment; it never throws out of open() for a bad file.
//
// THREADING: append(), release(), next() and the stats are safe from any thread (one mutex);
// the batch fsync runs on the journal's own flusher thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "switchyard/message.hpp"

namespace switchyard::journal {

enum class Fsync : std::uint8_t {
  Always,  ///< fdatasync before append() returns
  Batch,   ///< written at once (safe from kill -9), fdatasync'd at most every batch_ms (group commit)
  Never,   ///< written at once; the kernel decides when it reaches the disk
};

struct Options {
  std::filesystem::path dir;
  std::uint64_t max_bytes = 1ULL << 30;      ///< live bytes on disk (all segments) at most
  std::uint64_t segment_bytes = 64ULL << 20; ///< a new segment starts past this size
  Fsync fsync = Fsync::Batch;
  std::chrono::milliseconds batch{50};
};

/// A record read back.
struct Record {
  std::uint64_t seq = 0;          ///< journal sequence number: increasing, unique within a dir
  std::int64_t appended_ms = 0;   ///< wall clock (ms since the epoch) when it was appended
  Message msg;
};

/// Something wrong found on disk (reported, skipped; never fatal).
struct Problem {
  std::filesystem::path file;
  std::uint64_t offset = 0;  ///< byte offset of the bad record in that file
  std::string what;          ///< e.g. "torn record: 312 of 1040 bytes", "CRC mismatch"
  std::uint64_t skipped_bytes = 0;
};

struct Stats {
  std::uint64_t live_records = 0;  ///< appended, not released
  std::uint64_t live_bytes = 0;    ///< bytes of the segments on disk
  std::uint64_t segments = 0;
  std::uint64_t backlog = 0;       ///< live records not yet handed out by next()
  std::uint64_t first_seq = 0;     ///< lowest live seq (0: none)
  std::uint64_t last_seq = 0;      ///< highest seq ever appended (0: none)
  std::uint64_t fsyncs = 0;        ///< fdatasync calls since open
};

class Journal {
 public:
  virtual ~Journal() = default;

  /// Opens @p opts.dir (created if missing) and recovers it: the unreleased messages become
  /// the backlog, handed out by next() in seq order before anything appended later.
  /// Returns nullptr with @p error set when the dir cannot be used (permissions, a lock held
  /// by another process: one writer per dir, flock on `<dir>/lock`); bad records only add
  /// @p problems.
  static std::unique_ptr<Journal> open(const Options &opts, std::vector<Problem> &problems,
                                       std::string &error);

  enum class AppendStatus : std::uint8_t { Ok, Full, IoError };
  struct AppendResult {
    AppendStatus status = AppendStatus::Ok;
    std::uint64_t seq = 0;
    std::string error;  ///< IoError: strerror and the file
  };
  /// Appends @p msg; once it returns Ok the record is in the file (write() returned, and
  /// fdatasync'd under Fsync::Always). Full: max_bytes would be passed (nothing written).
  virtual AppendResult append(const Message &msg) = 0;
  /// Waits until append() of @p bytes more would fit, or @p deadline. True when it fits.
  virtual bool waitForSpace(std::size_t bytes, std::chrono::steady_clock::time_point deadline) = 0;

  /// Marks @p seq settled: it is not replayed again (the release record is written lazily,
  /// with the next append or flush: after a kill -9 a few settled messages may come back,
  /// never fewer).
  virtual void release(std::uint64_t seq) = 0;

  /// The next live record not yet handed out (recovered backlog first, then in append
  /// order), read from disk when it is no longer in memory; nullopt when none.
  /// Each record is handed out once per open().
  virtual std::optional<Record> next() = 0;

  /// Writes what is buffered (release records) and fdatasyncs (unless Fsync::Never).
  virtual void flush() = 0;
  virtual Stats stats() const = 0;
};

/// The encoded size of @p msg as a record (header included), for waitForSpace().
std::size_t recordBytes(const Message &msg);

/// Read-only scan for `switchyard journal inspect|check` (never modifies the dir, takes no lock).
struct ScanResult {
  std::vector<Record> live;       ///< unreleased messages, seq order
  std::uint64_t released = 0;     ///< messages already released
  std::vector<Problem> problems;
  std::uint64_t segments = 0;
  std::uint64_t bytes = 0;
};
bool scan(const std::filesystem::path &dir, ScanResult &out, std::string &error);

}  // namespace switchyard::journal
