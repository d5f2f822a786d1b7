// SPDX-License-Identifier: MIT
// Configuration parsing and validation (internal to libswitchyard).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "switchyard/engine.hpp"

namespace switchyard {

class PluginRegistry;

/// A node of the parsed YAML document (defined in config.cpp). Kept between phase 1 and
/// phase 2 so that phase 2 can type each value per schema and point at its position.
struct ConfigNode;

/// Hard limits against hostile files (docs/configuration.md, "Limits").
inline constexpr std::size_t kMaxConfigBytes = 4u << 20;  ///< larger files are refused
inline constexpr std::size_t kMaxConfigNodes = 200000;    ///< YAML nodes in the document
inline constexpr std::size_t kMaxExpandedNodes = 200000;  ///< values produced, aliases expanded
inline constexpr int kMaxConfigDepth = 200;               ///< nesting levels

struct Mark {
  int line = 0;    ///< 1-based
  int column = 0;  ///< 1-based
};

/// How an output retries a message its sink handed back (SinkContext::retry()):
/// exponential backoff from `initial_backoff` doubling up to `max_backoff` (each wait
/// jittered by ±`jitter`), until `max_duration` after the first failure (0: no limit).
/// docs/delivery.md.
struct RetryPolicy {
  double initial_backoff_s = 0.1;
  double max_backoff_s = 5.0;   ///< at least 1 s: never more than one retry per second at the cap
  double max_duration_s = 300;  ///< below RabbitMQ's consumer_timeout (30 min by default)
  double jitter = 0.2;          ///< fraction of each wait, 0..0.5
};

/// One plugin entry of a pipeline after validation.
struct PluginSpec {
  std::string type;         ///< plugin name
  std::string path;         ///< "pipelines.p.filters[1]"
  std::string config_json;  ///< keys other than `type`, defaults applied, ${VAR} expanded;
                            ///< empty when the plugin cannot be made (a required key missing)
  /// Keys that were reported (unknown, wrong type or value, broken): left out of
  /// config_json (their default in their place), so that the plugin can still be made and
  /// report its own problems with the others; what it says about these keys is dropped.
  std::vector<std::string> bad_keys;
  bool partial = false;  ///< some keys were bad: made only to find more problems
  Mark mark;                ///< of the entry itself
  std::map<std::string, Mark> key_marks;  ///< of each key's value given in the file
  std::shared_ptr<const ConfigNode> node;  ///< the entry's mapping (phase 1 -> phase 2)
  bool has_retry = false;   ///< outputs: a `retry:` mapping was given
  RetryPolicy retry;        ///< outputs: settings.retry, overridden by the entry's `retry:`
};

/// A pipeline's `journal:` (docs/journal.md): the disk journal of an input that cannot
/// redeliver. Off unless the mapping is given.
struct JournalSpec {
  bool enabled = false;
  std::string dir;                          ///< absolute (a relative one: against the file's directory)
  std::uint64_t max_bytes = 1ULL << 30;     ///< live bytes on disk at most
  std::string fsync = "batch";              ///< always | batch | never
  std::int64_t batch_ms = 50;               ///< group commit interval (fsync: batch)
  bool block_when_full = true;              ///< when_full: block (true) | drop (false)
  double standby_overlap_s = 10;            ///< kept while standing by (SinkContext::setActive)
  Mark mark;                                ///< of the mapping
  Mark dir_mark;                            ///< of `dir`'s value
};

struct PipelineSpec {
  std::string name;
  Mark mark;
  PluginSpec input;
  std::vector<PluginSpec> filters;
  std::vector<PluginSpec> outputs;
  /// `workers`: filter worker threads; 0 = "auto" (the default: one per CPU when every
  /// filter of the pipeline is SY_FLAG_PARALLEL, else 1).
  std::size_t workers = 0;
  Mark workers_mark;  ///< of the value, when given
  JournalSpec journal;
};

/// Most filter workers a pipeline may ask for.
inline constexpr std::int64_t kMaxWorkers = 256;

/// settings.http: the operations HTTP endpoint (docs/operations.md). Off when `listen` is
/// empty; `switchyard run --http` overrides it (Engine::setHttpListen()).
struct HttpSettings {
  std::string listen;  ///< "ADDR:PORT" or "PORT", checked by http::parseListen()
  bool tap = false;    ///< GET /tap answers (runtime_tap.hpp); off by default
};

/// Engine-wide settings (top-level `settings:` mapping, all optional).
struct Settings {
  std::size_t queue_max_messages = 1000;       ///< per output queue
  std::size_t queue_max_bytes = 64u << 20;      ///< per output queue
  double drain_timeout_s = 10.0;                ///< how long shutdown waits for in-flight messages
  RetryPolicy retry;                            ///< default of every output's `retry:`
  HttpSettings http;                            ///< the operations endpoint
};

struct ConfigModel {
  std::string file;                       ///< as given ("<string>" for strings)
  std::vector<std::string> plugin_paths;  ///< top-level plugin_path, made absolute against the file's dir
  Settings settings;
  std::vector<PipelineSpec> pipelines;    ///< in file order
  /// False when phase 1 failed so badly (syntax error, no document, bad plugin_path) that
  /// checking plugin entries would only add noise. When true, phase 2 may run even though
  /// phase 1 reported problems (e.g. a duplicate key), so that every problem is reported.
  bool checkable = false;
};

/// Phase 1: YAML syntax, duplicate keys, ${VAR} interpolation, the document's shape
/// (version, settings, plugin_path, pipelines, input/filters/outputs, `type` present).
/// Phase 2 (validatePlugins) checks each entry against its plugin's schema. Both collect
/// every problem before failing.
class ConfigParser {
 public:
  /// Parses @p text. Diagnostics are appended to @p diags; the returned model holds what
  /// could be understood (plugin entries not yet checked against schemas).
  ConfigModel parse(std::string_view text, const std::string &file, std::vector<Diagnostic> &diags);

  /// Checks every plugin entry against @p registry: unknown plugin (listing the known ones
  /// of that kind), wrong kind for its place, unknown key (listing allowed keys), wrong
  /// type, missing required key; fills config_json with defaults applied.
  void validatePlugins(ConfigModel &model, PluginRegistry &registry, std::vector<Diagnostic> &diags);

 private:
  // Shared by both phases: values produced so far (aliases expanded) against
  // kMaxExpandedNodes, and whether running out was reported.
  std::size_t budget_used_ = 0;
  bool budget_reported_ = false;
};

/// Where the value of @p key is written in @p spec's entry: a top-level key ("ca_file") or
/// a path into it ("tls.ca_file", "bindings[1].exchange", "[2]"); as far down the path as
/// the file goes (a key left to its default: the entry itself).
Mark keyMark(const PluginSpec &spec, std::string_view key);

/// Whether @p key of @p a and of @p b is one setting given once: the same anchor's value
/// (an alias), or the same ${VAR} placeholder written the same way. A plugin's problem
/// with it is then one problem, however many places use it.
bool sameSetting(const PluginSpec &a, const PluginSpec &b, std::string_view key);

/// Reads a configuration file, refusing one over kMaxConfigBytes without reading it all.
/// Returns false (with a diagnostic) when it cannot be read.
bool readConfigText(const std::string &path, std::string &text, std::vector<Diagnostic> &diags);

/// Convenience used by Engine: reads the file (a read error is a diagnostic), runs phase 1.
ConfigModel parseConfigFile(const std::string &path, std::vector<Diagnostic> &diags);

}  // namespace switchyard
