// SPDX-License-Identifier: MIT
// journal::scan: the read-only look at a journal dir behind `switchyard journal inspect` and
// `switchyard journal check`. It takes no lock and changes nothing, so it can look at the
// journal of a running router (what it sees is then a moment of a moving log).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "journal.hpp"
#include "journal_codec.hpp"

namespace switchyard::journal {

using namespace detail;

bool scan(const std::filesystem::path &dir, ScanResult &out, std::string &error) {
  out = ScanResult{};
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    error = fmt::format("journal dir {}: {}", dir.string(),
                        ec ? ec.message() : std::string("not a directory (give the pipeline's journal.dir)"));
    return false;
  }
  std::vector<std::pair<std::uint64_t, std::filesystem::path>> files;
  if (!listSegments(dir, files, error)) {
    return false;
  }
  std::map<std::uint64_t, Record> live;
  std::uint64_t last_seq = 0;
  Payload p;
  std::string why;
  for (const auto &[first, file] : files) {
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) {
      out.problems.push_back({file, 0, fmt::format("cannot read it: {}", std::strerror(errno)), 0});
      if (fd >= 0) {
        ::close(fd);
      }
      continue;
    }
    ++out.segments;
    out.bytes += static_cast<std::uint64_t>(st.st_size);
    SegmentReader rd(fd, static_cast<std::uint64_t>(st.st_size));
    for (;;) {
      auto status = rd.read();
      if (status == SegmentReader::Status::End) {
        break;
      }
      if (status != SegmentReader::Status::Ok) {
        out.problems.push_back({file, rd.recordOffset(), rd.problem(), rd.skippedBytes()});
        if (status == SegmentReader::Status::Tail) {
          break;
        }
        continue;
      }
      if (!decodePayload(rd.payload(), p, why, false)) {
        out.problems.push_back({file, rd.recordOffset(), why, rd.payload().size() + kHeaderBytes});
        continue;
      }
      if (p.type == kTypeRelease) {
        for (const auto &[s, n] : p.ranges) {
          for (auto it = live.lower_bound(s); it != live.end() && it->first - s < n;) {
            it = live.erase(it);
            ++out.released;
          }
        }
        continue;
      }
      if (p.record.seq < first || p.record.seq <= last_seq) {
        out.problems.push_back({file, rd.recordOffset(),
                                fmt::format("message seq {} out of order (segment starts at {}, last seq {})",
                                            p.record.seq, first, last_seq),
                                rd.payload().size() + kHeaderBytes});
        continue;
      }
      last_seq = p.record.seq;
      live.emplace(p.record.seq, std::move(p.record));
      p.record = Record{};
    }
    ::close(fd);
  }
  out.live.reserve(live.size());
  for (auto &kv : live) {
    out.live.push_back(std::move(kv.second));
  }
  return true;
}

}  // namespace switchyard::journal
