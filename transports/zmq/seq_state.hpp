// SPDX-License-Identifier: MIT
// zmq-sub's sequence state file (`state_file:`): read whole, written atomically (a
// temporary file in the same directory, then rename(2)), so that a process killed at any
// moment leaves either the previous state or the new one, never half of one. No fsync:
// a killed process loses nothing the kernel already has; a power loss may leave an older
// or empty file, which is refused on load (logged) and replaced by a fresh state.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

namespace switchyard::zmqt {

enum class StateRead : unsigned char { Ok, Missing, Error };

/// Reads @p path into @p out (at most @p max_bytes). Missing: the file does not exist.
inline StateRead readStateFile(const std::string &path, std::string &out, std::string &error,
                               std::size_t max_bytes = 64U << 20U) {
  out.clear();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return StateRead::Missing;
    }
    error = std::strerror(errno);
    return StateRead::Error;
  }
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      error = std::strerror(errno);
      ::close(fd);
      return StateRead::Error;
    }
    if (n == 0) {
      break;
    }
    if (out.size() + static_cast<std::size_t>(n) > max_bytes) {
      error = "larger than " + std::to_string(max_bytes) + " bytes";
      ::close(fd);
      return StateRead::Error;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return StateRead::Ok;
}

/// Replaces @p path with @p content atomically (PATH.tmp, then rename).
inline bool writeStateFile(const std::string &path, std::string_view content, std::string &error) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = "cannot create " + tmp + ": " + std::strerror(errno);
    return false;
  }
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      error = "cannot write " + tmp + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) {
    error = "cannot write " + tmp + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot rename " + tmp + " to " + path + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace switchyard::zmqt
