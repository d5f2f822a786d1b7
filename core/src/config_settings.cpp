// SPDX-License-Identifier: MIT
//
// Configuration phase 1, the document's shape: version, settings (queues, drain, retry, http),
// plugin_path, pipelines and their input/filters/outputs entries (each `type` present;
// the entries are checked against their plugins' schemas in phase 2, config_plugins.cpp).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <system_error>

#include <fmt/format.h>

#include "config_detail.hpp"
#include "http_endpoint.hpp"

namespace switchyard::config_detail {


/// A positive integer setting; false (reported) when it is not one.
static bool settingInt(const State &st, const ConfigNode::Entry &e, const std::string &path,
                std::int64_t min, std::int64_t &out) {
  const ConfigNode &n = *e.value;
  if (n.broken) {
    return false;
  }
  std::int64_t v = 0;
  if (n.kind != Kind::Scalar || !parseInt(n.scalar, v)) {
    st.add(e.value_mark, path, fmt::format("expected an integer, got {}", describe(n)));
    return false;
  }
  if (v < min) {
    st.add(e.value_mark, path, fmt::format("must be at least {}, got {}", min, v));
    return false;
  }
  out = v;
  return true;
}

/// A `retry:` mapping (settings.retry, or an output's own): every key optional, each
/// overriding the value already in @p policy.
void checkRetry(const State &st, const ConfigNode::Entry &re, const std::string &path,
                RetryPolicy &policy) {
  const ConfigNode &n = *re.value;
  if (n.kind == Kind::Null || n.broken) {
    return;
  }
  if (n.kind != Kind::Map) {
    st.add(re.value_mark, path,
           fmt::format("expected a mapping (initial_backoff, max_backoff, max_duration, jitter), got {}",
                       describe(n)));
    return;
  }
  static const std::vector<std::string> kKeys = {"initial_backoff", "max_backoff", "max_duration",
                                                 "jitter"};
  RetryPolicy p = policy;
  bool ok = true;
  for (const auto &e : n.entries) {
    std::string kpath = joinPath(path, e.key);
    if (!isKnown(kKeys, e.key)) {
      st.unknownKey(e, path, "in retry", kKeys);
      ok = false;
      continue;
    }
    const ConfigNode &vn = *e.value;
    if (vn.kind == Kind::Null || vn.broken) {
      continue;
    }
    double d = 0;
    if (vn.kind != Kind::Scalar || !parseFloat(vn.scalar, d)) {
      st.add(e.value_mark, kpath,
             fmt::format("expected {}, got {}", e.key == "jitter" ? "a fraction (0 to 0.5)" : "a number of seconds",
                         describe(vn)));
      ok = false;
      continue;
    }
    if (e.key == "initial_backoff") {
      if (d < 0.001 || d > 3600) {
        st.add(e.value_mark, kpath, fmt::format("must be between 0.001 and 3600 seconds, got {}", vn.scalar));
        ok = false;
      }
      p.initial_backoff_s = d;
    } else if (e.key == "max_backoff") {
      if (d < 1 || d > 3600) {
        st.add(e.value_mark, kpath,
               fmt::format("must be between 1 and 3600 seconds (at least 1 s, so that a failing "
                           "message is retried at most once a second), got {}",
                           vn.scalar));
        ok = false;
      }
      p.max_backoff_s = d;
    } else if (e.key == "max_duration") {
      if (d < 0) {
        st.add(e.value_mark, kpath, "must not be negative (0: retry without a time limit)");
        ok = false;
      }
      p.max_duration_s = d;
    } else {
      if (d < 0 || d > 0.5) {
        st.add(e.value_mark, kpath, fmt::format("must be between 0 and 0.5, got {}", vn.scalar));
        ok = false;
      }
      p.jitter = d;
    }
  }
  if (ok && p.initial_backoff_s > p.max_backoff_s) {
    st.add(re.value_mark, path,
           fmt::format("initial_backoff ({} s) is larger than max_backoff ({} s)", p.initial_backoff_s,
                       p.max_backoff_s));
    ok = false;
  }
  if (ok) {
    policy = p;
  }
}

/// settings.http: {listen: "ADDR:PORT"}.
static void checkHttp(const State &st, const ConfigNode::Entry &he, const std::string &path, HttpSettings &out) {
  const ConfigNode &n = *he.value;
  if (n.kind == Kind::Null || n.broken) {
    return;
  }
  if (n.kind != Kind::Map) {
    st.add(he.value_mark, path,
           fmt::format("expected a mapping (listen: \"127.0.0.1:9100\"), got {}", describe(n)));
    return;
  }
  static const std::vector<std::string> kKeys = {"listen", "tap"};
  for (const auto &e : n.entries) {
    std::string kpath = joinPath(path, e.key);
    if (!isKnown(kKeys, e.key)) {
      st.unknownKey(e, path, "in http", kKeys);
      continue;
    }
    const ConfigNode &vn = *e.value;
    if (vn.kind == Kind::Null || vn.broken) {
      continue;  // off
    }
    if (e.key == "tap") {  // GET /tap (runtime_tap.hpp)
      if (vn.kind != Kind::Scalar || !parseBoolWord(vn.scalar, out.tap)) {
        st.add(e.value_mark, kpath,
               fmt::format("expected true or false (true lets GET /tap sample the messages), got {}", describe(vn)));
      }
      continue;
    }
    if (vn.kind != Kind::Scalar) {
      st.add(e.value_mark, kpath,
             fmt::format("expected an address and port such as \"127.0.0.1:9100\", got {}", describe(vn)));
      continue;
    }
    http::Listen where;
    if (auto why = http::parseListen(vn.scalar, where)) {
      st.add(e.value_mark, kpath, *why);
      continue;
    }
    out.listen = vn.scalar;
  }
}

static void checkSettings(const State &st, const ConfigNode::Entry &se, Settings &settings) {
  const ConfigNode &n = *se.value;
  if (n.kind == Kind::Null || n.broken) {
    return;
  }
  if (n.kind != Kind::Map) {
    st.add(se.value_mark, "settings", fmt::format("expected a mapping, got {}", describe(n)));
    return;
  }
  static const std::vector<std::string> kKeys = {"queue_max_messages", "queue_max_bytes",
                                                 "drain_timeout", "retry", "http"};
  for (const auto &e : n.entries) {
    std::string path = joinPath("settings", e.key);
    if (!isKnown(kKeys, e.key)) {
      st.unknownKey(e, "settings", "in settings", kKeys);
      continue;
    }
    if (e.value->kind == Kind::Null) {
      continue;  // an empty value keeps the default
    }
    std::int64_t v = 0;
    if (e.key == "retry") {
      checkRetry(st, e, path, settings.retry);
    } else if (e.key == "http") {
      checkHttp(st, e, path, settings.http);
    } else if (e.key == "queue_max_messages") {
      if (settingInt(st, e, path, 1, v)) {
        settings.queue_max_messages = static_cast<std::size_t>(v);
      }
    } else if (e.key == "queue_max_bytes") {
      if (settingInt(st, e, path, 1, v)) {
        settings.queue_max_bytes = static_cast<std::size_t>(v);
      }
    } else {
      const ConfigNode &vn = *e.value;
      double d = 0;
      if (vn.broken) {
        continue;
      }
      if (vn.kind != Kind::Scalar || !parseFloat(vn.scalar, d)) {
        st.add(e.value_mark, path, fmt::format("expected a number of seconds, got {}", describe(vn)));
      } else if (d < 0) {
        st.add(e.value_mark, path, "must not be negative");
      } else {
        settings.drain_timeout_s = d;
      }
    }
  }
}

/// plugin_path: a string or a list of strings, relative to the configuration's directory.
/// Returns false when it could not be understood (plugins would then be searched wrongly).
static bool checkPluginPath(const State &st, const ConfigNode::Entry &pe, const std::string &file,
                     std::vector<std::string> &out) {
  const ConfigNode &n = *pe.value;
  if (n.kind == Kind::Null) {
    return true;
  }
  struct Item {
    const ConfigNode *node;
    std::string path;
    Mark at;
  };
  std::vector<Item> items;
  if (n.kind == Kind::Scalar) {
    items.push_back({&n, "plugin_path", pe.value_mark});
  } else if (n.kind == Kind::Sequence) {
    for (std::size_t i = 0; i < n.items.size(); ++i) {
      items.push_back({n.items[i].get(), fmt::format("plugin_path[{}]", i), n.item_marks[i]});
    }
  } else {
    st.add(pe.value_mark, "plugin_path",
           fmt::format("expected a directory or a list of directories, got {}", describe(n)));
    return false;
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path base;
  if (!file.empty() && file.front() != '<') {
    base = fs::absolute(fs::path(file), ec).parent_path();
  } else {
    base = fs::current_path(ec);
  }
  bool ok = true;
  for (const auto &[item, path, at] : items) {
    if (item->broken) {
      ok = false;
      continue;
    }
    if (item->kind != Kind::Scalar || item->scalar.empty()) {
      st.add(at, path, fmt::format("expected a directory, got {}", describe(*item)));
      ok = false;
      continue;
    }
    fs::path p(item->scalar);
    if (p.is_relative()) {
      p = base / p;
    }
    p = p.lexically_normal();
    if (!fs::is_directory(p, ec)) {
      st.add(at, path,
             fmt::format("plugin directory '{}' does not exist or is not a directory", p.string()));
      ok = false;
      continue;
    }
    out.push_back(p.string());
  }
  return ok;
}

/// A plugin entry {type: NAME, ...}: checked for shape here, against its schema in phase 2.
/// @p at is where the entry is written (an alias's place when it is one).
static bool checkPluginEntry(const State &st, const NodePtr &node, Mark at, const std::string &path,
                      PluginSpec &spec) {
  const ConfigNode &n = *node;
  if (!st.spend(n, path)) {
    return false;
  }
  if (n.broken) {
    return false;
  }
  if (n.kind != Kind::Map) {
    st.add(at, path,
           fmt::format("expected a plugin entry (a mapping with 'type' and the plugin's keys), got {}",
                       describe(n)));
    return false;
  }
  const auto *t = n.find("type");
  if (t == nullptr) {
    st.add(at, path, "missing required key 'type' (the plugin's name)");
    return false;
  }
  const ConfigNode &tv = *t->value;
  if (tv.broken) {
    return false;
  }
  if (tv.kind != Kind::Scalar || tv.scalar.empty()) {
    st.add(t->value_mark, path + ".type",
           fmt::format("expected a plugin name, got {}", describe(tv)));
    return false;
  }
  spec.type = tv.scalar;
  spec.path = path;
  spec.mark = at;
  spec.node = node;
  return true;
}

static bool validPipelineName(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

static void checkPipeline(const State &st, const ConfigNode::Entry &pe, ConfigModel &model) {
  std::string base = joinPath("pipelines", pe.key);
  if (!validPipelineName(pe.key)) {
    st.add(pe.key_mark, base,
           fmt::format("invalid pipeline name '{}': use letters, digits, '_', '.' and '-'", pe.key));
  }
  const ConfigNode &n = *pe.value;
  if (!st.spend(n, base) || n.broken) {
    return;
  }
  if (n.kind != Kind::Map) {
    st.add(pe.value_mark, base,
           fmt::format("expected a pipeline (a mapping with input, filters, outputs), got {}",
                       describe(n)));
    return;
  }
  static const std::vector<std::string> kKeys = {"input", "filters", "outputs", "workers", "journal"};
  for (const auto &e : n.entries) {
    if (!isKnown(kKeys, e.key)) {
      st.unknownKey(e, base, "in a pipeline", kKeys);
    }
  }
  PipelineSpec p;
  p.name = pe.key;
  p.mark = pe.value_mark;

  if (const auto *w = n.find("workers"); w != nullptr && w->value->kind != Kind::Null && !w->value->broken) {
    p.workers_mark = w->value_mark;
    std::int64_t v = 0;
    const ConfigNode &wv = *w->value;
    if (wv.kind == Kind::Scalar && wv.scalar == "auto") {
      p.workers = 0;
    } else if (wv.kind != Kind::Scalar || !parseInt(wv.scalar, v)) {
      st.add(w->value_mark, base + ".workers",
             fmt::format("expected 'auto' or a number of filter worker threads, got {}", describe(wv)));
    } else if (v < 1 || v > kMaxWorkers) {
      st.add(w->value_mark, base + ".workers",
             fmt::format("must be between 1 and {} (or 'auto'), got {}", kMaxWorkers, v));
    } else {
      p.workers = static_cast<std::size_t>(v);
    }
  }

  if (const auto *j = n.find("journal"); j != nullptr) {
    checkJournal(st, *j, base, p);
  }

  if (const auto *in = n.find("input"); in == nullptr) {
    st.add(pe.value_mark, base + ".input", "missing required key 'input' (a source plugin entry)");
  } else if (in->value->kind == Kind::Sequence) {
    st.add(in->value_mark, base + ".input",
           "expected one plugin entry: a pipeline has exactly one input (use several pipelines "
           "to merge inputs)");
  } else {
    checkPluginEntry(st, in->value, in->value_mark, base + ".input", p.input);
  }

  if (const auto *fl = n.find("filters"); fl != nullptr && fl->value->kind != Kind::Null) {
    const ConfigNode &fv = *fl->value;
    if (fv.kind != Kind::Sequence) {
      if (!fv.broken) {
        st.add(fl->value_mark, base + ".filters",
               fmt::format("expected a list of filter entries, got {}", describe(fv)));
      }
    } else {
      for (std::size_t i = 0; i < fv.items.size(); ++i) {
        PluginSpec spec;
        if (checkPluginEntry(st, fv.items[i], fv.item_marks[i], fmt::format("{}.filters[{}]", base, i),
                             spec)) {
          p.filters.push_back(std::move(spec));
        }
      }
    }
  }

  const auto *out = n.find("outputs");
  if (out == nullptr) {
    st.add(pe.value_mark, base + ".outputs",
           "missing required key 'outputs' (a list of one or more sink plugin entries)");
  } else {
    const ConfigNode &ov = *out->value;
    if (ov.broken) {
      // already reported
    } else if (ov.kind == Kind::Null || (ov.kind == Kind::Sequence && ov.items.empty())) {
      st.add(out->value_mark, base + ".outputs", "a pipeline needs at least one output (a sink plugin entry)");
    } else if (ov.kind == Kind::Map) {
      st.add(out->value_mark, base + ".outputs",
             "expected a list of sink entries: write '- type: ...' (outputs fan out to every entry)");
    } else if (ov.kind != Kind::Sequence) {
      st.add(out->value_mark, base + ".outputs",
             fmt::format("expected a list of sink entries, got {}", describe(ov)));
    } else {
      for (std::size_t i = 0; i < ov.items.size(); ++i) {
        PluginSpec spec;
        if (checkPluginEntry(st, ov.items[i], ov.item_marks[i], fmt::format("{}.outputs[{}]", base, i),
                             spec)) {
          p.outputs.push_back(std::move(spec));
        }
      }
    }
  }
  model.pipelines.push_back(std::move(p));
}

void checkRoot(const State &st, const ConfigNode &root, ConfigModel &model, bool &paths_ok) {
  if (root.kind != Kind::Map) {
    st.add(root.mark, "",
           fmt::format("expected a mapping with the keys version and pipelines at the top level, got {}",
                       describe(root)));
    return;
  }
  static const std::vector<std::string> kKeys = {"version", "plugin_path", "settings", "pipelines"};
  for (const auto &e : root.entries) {
    if (!isKnown(kKeys, e.key)) {
      st.unknownKey(e, "", "at the top level", kKeys);
    }
  }
  if (const auto *v = root.find("version"); v == nullptr) {
    st.add(root.mark, "version", "missing required key 'version' (write 'version: 1')");
  } else if (!v->value->broken) {
    std::int64_t ver = 0;
    const ConfigNode &vn = *v->value;
    if (vn.kind != Kind::Scalar || !parseInt(vn.scalar, ver) || ver != 1) {
      st.add(v->value_mark, "version",
             fmt::format("unsupported configuration version {}; expected 1", describe(vn)));
    }
  }
  if (const auto *pp = root.find("plugin_path"); pp != nullptr) {
    paths_ok = checkPluginPath(st, *pp, model.file, model.plugin_paths);
  }
  if (const auto *s = root.find("settings"); s != nullptr) {
    checkSettings(st, *s, model.settings);
  }
  const auto *pl = root.find("pipelines");
  if (pl == nullptr) {
    st.add(root.mark, "pipelines", "missing required key 'pipelines' (a mapping of pipeline names)");
    return;
  }
  const ConfigNode &pn = *pl->value;
  if (pn.broken) {
    return;
  }
  if (pn.kind == Kind::Null || (pn.kind == Kind::Map && pn.entries.empty())) {
    st.add(pl->value_mark, "pipelines",
           "no pipelines: 'pipelines' must map at least one pipeline name to its definition");
    return;
  }
  if (pn.kind != Kind::Map) {
    st.add(pl->value_mark, "pipelines",
           fmt::format("expected a mapping of pipeline names to pipelines, got {}", describe(pn)));
    return;
  }
  for (const auto &e : pn.entries) {
    checkPipeline(st, e, model);
  }
}

}  // namespace switchyard::config_detail
