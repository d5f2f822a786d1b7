// SPDX-License-Identifier: MIT
// The journal's record format (internal to journal*.cpp): encoding of message and release
// records, CRC32C, and reading one record from a segment file with every check recovery
// needs (see journal.hpp for the layout).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "journal.hpp"

namespace switchyard::journal::detail {

inline constexpr std::size_t kHeaderBytes = 8;          // u32 length | u32 CRC32C
inline constexpr std::uint32_t kMaxPayload = 256u << 20;  // a longer length is corruption
inline constexpr std::uint8_t kTypeMessage = 1;
inline constexpr std::uint8_t kTypeRelease = 2;
/// A message that carries a decoded fedmsg envelope (what zmq-sub hands over): its topic,
/// the envelope's byte-exact text, timestamp and meta; read back with fedmsg::decode(), so
/// the replayed message has its envelope again (the verifier, the carry headers and
/// amqp-publish's mapping need it) and is the message the fast path would have sent.
inline constexpr std::uint8_t kTypeFedmsg = 3;
[[nodiscard]] constexpr bool isMessageType(std::uint8_t t) noexcept { return t == kTypeMessage || t == kTypeFedmsg; }

std::uint32_t crc32c(const void *data, std::size_t n);
/// The portable (Boost.CRC) computation, for tests of the fast one.
std::uint32_t crc32cReference(const void *data, std::size_t n);

/// Appends the record (header and payload) of message @p seq to @p out.
void encodeMessage(std::string &out, std::uint64_t seq, std::int64_t appended_ms, const Message &msg);
/// The payload size of the message record of @p msg.
std::size_t messagePayloadBytes(const Message &msg);
/// Appends one release record covering @p seqs (sorted, unique) as ranges.
void encodeRelease(std::string &out, const std::vector<std::uint64_t> &seqs);

/// One decoded payload.
struct Payload {
  std::uint8_t type = 0;
  Record record;  ///< kTypeMessage, kTypeFedmsg
  std::vector<std::pair<std::uint64_t, std::uint32_t>> ranges;  ///< kTypeRelease: first, count
};
/// Decodes @p p; false (with @p why) when it is malformed. With @p header_only, a message's
/// strings are not copied (only seq and time are filled in).
bool decodePayload(std::string_view p, Payload &out, std::string &why, bool header_only = false);

/// Reads records of one segment in order (pread on @p fd), classifying what it finds.
class SegmentReader {
 public:
  SegmentReader(int fd, std::uint64_t file_size) : fd_(fd), size_(file_size) {}

  enum class Status : std::uint8_t {
    Ok,       ///< payload() holds a record whose CRC matched
    End,      ///< clean end of the file
    Skipped,  ///< a bad record (CRC mismatch, malformed): problem() says; reading goes on after it
    Tail,     ///< a torn or corrupt tail: problem() says; nothing after it is readable
  };
  /// Reads the record at offset(). On Skipped and Tail, problem() describes it.
  Status read();
  [[nodiscard]] std::uint64_t offset() const { return off_; }  ///< of the next record
  [[nodiscard]] std::uint64_t recordOffset() const { return rec_off_; }
  [[nodiscard]] std::string_view payload() const { return buf_; }
  [[nodiscard]] const std::string &problem() const { return problem_; }
  [[nodiscard]] std::uint64_t skippedBytes() const { return skipped_; }
  void seek(std::uint64_t off) { off_ = off; }

 private:
  int fd_;
  std::uint64_t size_;
  std::uint64_t off_ = 0;
  std::uint64_t rec_off_ = 0;
  std::string buf_;
  std::string problem_;
  std::uint64_t skipped_ = 0;
};

/// `<first seq, 20 digits>.seg`; nullopt for any other name.
std::optional<std::uint64_t> segmentSeq(const std::filesystem::path &file);
std::filesystem::path segmentPath(const std::filesystem::path &dir, std::uint64_t first_seq);
/// The segment files of @p dir in seq order (first seq, path); false with @p error when the
/// dir cannot be listed.
bool listSegments(const std::filesystem::path &dir,
                  std::vector<std::pair<std::uint64_t, std::filesystem::path>> &out, std::string &error);

}  // namespace switchyard::journal::detail
