// SPDX-License-Identifier: MIT
//
// A pipeline's `journal:` mapping (docs/journal.md): its keys in phase 1, and in phase 2
// what needs the whole model or the plugins: two pipelines sharing a directory, a journal
// on an input that can redeliver, a directory that cannot be created or written.
#include <unistd.h>

#include <filesystem>
#include <map>
#include <system_error>

#include <fmt/format.h>

#include "config_detail.hpp"
#include "registry.hpp"

namespace switchyard::config_detail {

namespace {

const std::vector<std::string> kJournalKeys = {"dir",      "max_bytes", "fsync",
                                               "batch_ms", "when_full", "standby_overlap"};

std::filesystem::path baseDir(const std::string &file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!file.empty() && file.front() != '<') {
    return fs::absolute(fs::path(file), ec).parent_path();
  }
  return fs::current_path(ec);
}

/// An integer between @p min and @p max; false (reported) when it is not one.
bool intIn(const State &st, const ConfigNode::Entry &e, const std::string &path, std::int64_t min,
           std::int64_t max, const char *unit, std::int64_t &out) {
  const ConfigNode &n = *e.value;
  std::int64_t v = 0;
  if (n.kind != Kind::Scalar || !parseInt(n.scalar, v)) {
    st.add(e.value_mark, path, fmt::format("expected an integer ({}), got {}", unit, describe(n)));
    return false;
  }
  if (v < min || v > max) {
    st.add(e.value_mark, path, fmt::format("must be between {} and {} ({}), got {}", min, max, unit, v));
    return false;
  }
  out = v;
  return true;
}

}  // namespace

void checkJournal(const State &st, const ConfigNode::Entry &je, const std::string &base, PipelineSpec &p) {
  const std::string path = base + ".journal";
  const ConfigNode &n = *je.value;
  if (n.kind == Kind::Null || n.broken) {
    return;  // no journal
  }
  if (n.kind != Kind::Map) {
    st.add(je.value_mark, path,
           fmt::format("expected a mapping such as {{dir: /var/lib/switchyard/journal/NAME}}, got {}", describe(n)));
    return;
  }
  JournalSpec j;
  j.enabled = true;
  j.mark = je.value_mark;
  bool ok = true;
  for (const auto &e : n.entries) {
    const std::string kpath = joinPath(path, e.key);
    if (!isKnown(kJournalKeys, e.key)) {
      st.unknownKey(e, path, "in journal", kJournalKeys);
      ok = false;
      continue;
    }
    const ConfigNode &vn = *e.value;
    if (vn.broken) {
      ok = false;
      continue;
    }
    if (vn.kind == Kind::Null) {
      continue;  // the default
    }
    std::int64_t v = 0;
    if (e.key == "dir") {
      if (vn.kind != Kind::Scalar || vn.scalar.empty()) {
        st.add(e.value_mark, kpath, fmt::format("expected a directory, got {}", describe(vn)));
        ok = false;
        continue;
      }
      std::filesystem::path d(vn.scalar);
      if (d.is_relative()) {
        d = baseDir(st.file) / d;
      }
      j.dir = d.lexically_normal().string();
      if (j.dir.size() > 1 && j.dir.back() == '/') {
        j.dir.pop_back();
      }
      j.dir_mark = e.value_mark;
    } else if (e.key == "max_bytes") {
      if (intIn(st, e, kpath, 1 << 20, std::int64_t{1} << 50, "bytes, at least 1 MiB", v)) {
        j.max_bytes = static_cast<std::uint64_t>(v);
      } else {
        ok = false;
      }
    } else if (e.key == "batch_ms") {
      if (intIn(st, e, kpath, 1, 10000, "milliseconds", v)) {
        j.batch_ms = v;
      } else {
        ok = false;
      }
    } else if (e.key == "fsync" || e.key == "when_full") {
      const bool fs = e.key == "fsync";
      const std::vector<std::string> words = fs ? std::vector<std::string>{"always", "batch", "never"}
                                                : std::vector<std::string>{"block", "drop"};
      if (vn.kind != Kind::Scalar || !isKnown(words, vn.scalar)) {
        st.add(e.value_mark, kpath,
               fmt::format("expected one of '{}', got {}", join(words, "', '"), describe(vn)));
        ok = false;
      } else if (fs) {
        j.fsync = vn.scalar;
      } else {
        j.block_when_full = vn.scalar == "block";
      }
    } else {  // standby_overlap
      double d = 0;
      if (vn.kind != Kind::Scalar || !parseFloat(vn.scalar, d)) {
        st.add(e.value_mark, kpath, fmt::format("expected a number of seconds, got {}", describe(vn)));
        ok = false;
      } else if (d < 0 || d > 3600) {
        st.add(e.value_mark, kpath, fmt::format("must be between 0 and 3600 seconds, got {}", vn.scalar));
        ok = false;
      } else {
        j.standby_overlap_s = d;
      }
    }
  }
  if (const auto *d = n.find("dir"); d == nullptr) {
    st.add(je.value_mark, path + ".dir",
           "missing required key 'dir' (the journal's directory, one per pipeline, e.g. "
           "/var/lib/switchyard/journal/NAME)");
    ok = false;
  } else if (j.dir.empty()) {
    ok = false;
  }
  if (ok) {
    p.journal = std::move(j);
  }
}

namespace {

/// Why @p dir cannot hold a journal (it need not exist: its nearest existing parent must
/// then let us create it), or "".
std::string dirProblem(const std::filesystem::path &dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path at = dir;
  while (!fs::exists(at, ec)) {
    if (!at.has_parent_path() || at.parent_path() == at) {
      return "no parent directory of it exists";
    }
    at = at.parent_path();
  }
  if (!fs::is_directory(at, ec)) {
    return at == dir ? std::string("it exists and is not a directory")
                     : fmt::format("'{}' is not a directory", at.string());
  }
  if (::access(at.c_str(), W_OK | X_OK) != 0) {
    return at == dir ? std::string("it is not writable by this user")
                     : fmt::format("it does not exist and '{}' is not writable by this user to create it", at.string());
  }
  return {};
}

}  // namespace

void checkJournals(const State &st, ConfigModel &model, const PluginRegistry &registry) {
  std::map<std::string, const PipelineSpec *> owners;
  for (auto &p : model.pipelines) {
    JournalSpec &j = p.journal;
    if (!j.enabled) {
      continue;
    }
    const std::string path = fmt::format("pipelines.{}.journal", p.name);
    if (const PluginDescriptor *d = registry.find(p.input.type); d != nullptr && d->canAck()) {
      st.add(j.mark, path,
             fmt::format("the input '{}' can redeliver: the broker already keeps its messages until the "
                         "outputs settle them, so a journal adds nothing; remove 'journal' (it is for "
                         "inputs that cannot redeliver, such as zmq-sub and stdin)",
                         p.input.type));
      continue;
    }
    auto [it, fresh] = owners.emplace(j.dir, &p);
    if (!fresh) {
      st.add(j.dir_mark, path + ".dir",
             fmt::format("'{}' is also the journal of pipeline '{}' (line {}): each pipeline needs its own "
                         "directory (one writer per journal)",
                         j.dir, it->second->name, it->second->journal.dir_mark.line));
      continue;
    }
    if (auto why = dirProblem(j.dir); !why.empty()) {
      st.add(j.dir_mark, path + ".dir",
             fmt::format("cannot use '{}' as a journal directory: {}; create it, or give one this user can write",
                         j.dir, why));
    }
  }
}

}  // namespace switchyard::config_detail
