// SPDX-License-Identifier: MIT
#include "metrics_text.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <utility>

#include <fmt/format.h>

#include "metric_names.hpp"

namespace switchyard::metrics {

namespace {

// HELP of each name the core and the shipped plugins use. Keep sorted by name.
constexpr std::array<std::pair<std::string_view, std::string_view>, 37> kHelp{{
    {"acked", "AMQP deliveries acknowledged to the broker."},
    {"blocked", "1 while the peer refuses to take messages (an AMQP broker's connection.blocked), else 0."},
    {"ca_not_after_timestamp_seconds", "When the CA certificate expires (Unix time)."},
    {"cert_not_after_timestamp_seconds", "When the signing certificate expires (Unix time)."},
    {"codec_parses", "Parses of message text by the codec, by kind (process-wide)."},
    {"codec_serialisations", "Serialisations of message trees by the codec, by kind (process-wide)."},
    {"completed", "Messages settled back to the input, by outcome (delivered, dropped, retry, reject)."},
    {"confirmed", "Messages the broker confirmed (publisher confirms)."},
    {"connected", "1 while the plugin is connected to its peer, else 0."},
    {"crl_next_update_timestamp_seconds", "When the CRL is due for its next update (Unix time)."},
    {"disconnects", "Connections lost."},
    {"dropped", "Messages deliberately not delivered, by reason."},
    {"endpoints_connected", "Endpoints with a live connection."},
    {"errors", "Messages a filter failed on, by reason."},
    {"failed", "Messages an output could not deliver (retry or reject; shutdown: not confirmed at exit), by reason."},
    {"in_flight", "Messages submitted by the input and not yet settled."},
    {"lost", "Retry outcomes that reached an input that cannot redeliver, by reason."},
    {"nacked", "AMQP deliveries refused back to the broker, by reason."},
    {"pipeline_latency_seconds",
     "Time from the input submitting a message to its settlement back to the input, for delivered messages."},
    {"published", "Messages published to the broker."},
    {"publisher_seq_gaps", "Gaps in one ZeroMQ publisher's sequence numbers, by publisher."},
    {"publisher_seq_missing", "Messages missing from one ZeroMQ publisher's sequence numbers, by publisher."},
    {"queue_bytes", "Bytes held by the output's queue."},
    {"queue_depth", "Messages waiting in the output's queue."},
    {"received", "Messages the input submitted to the pipeline."},
    {"reconnects", "Connections re-established after a loss."},
    {"redelivered", "Deliveries the broker marked as redelivered."},
    {"republished", "Messages published again after a reconnect, not confirmed before it."},
    {"retried", "Messages a sink handed back to be sent again, by reason."},
    {"retry_exhausted", "Messages given up after the output's retry.max_duration, by reason."},
    {"retry_held", "Messages waiting for their next retry."},
    {"sent", "Messages the output delivered to the next hop."},
    {"seq_gaps", "Gaps in ZeroMQ publishers' sequence numbers."},
    {"seq_missing", "Messages missing from ZeroMQ publishers' sequence numbers."},
    {"tls_cert_not_after_timestamp_seconds", "When the TLS client certificate expires (Unix time)."},
    {"unconfirmed", "Messages published and not yet confirmed by the broker."},
    {"verified", "Signatures checked and accepted."},
}};

/// Backslash and newline escaped (HELP text), and with @p quotes the double quote too
/// (label values).
std::string escapeText(std::string_view text, bool quotes) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (quotes && c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escapeHelp(std::string_view text) { return escapeText(text, false); }

struct Family {
  std::string type;
  std::string help;
  std::string lines;
};

/// pipeline, plugin and place labels of a sample's keys ("outputs[0] (amqp-publish)").
std::string baseLabels(std::string_view pipeline, std::string_view plugin) {
  std::string out;
  auto add = [&out](std::string_view name, std::string_view value) {
    out += fmt::format("{}{}=\"{}\"", out.empty() ? "" : ",", name, escapeLabel(value));
  };
  if (!pipeline.empty()) {
    add("pipeline", pipeline);
  }
  if (!plugin.empty()) {
    auto open = plugin.rfind(" (");
    if (open != std::string_view::npos && plugin.back() == ')') {
      add("plugin", plugin.substr(open + 2, plugin.size() - open - 3));
      add("place", plugin.substr(0, open));
    } else {
      add("plugin", plugin);
    }
  }
  return out;
}

std::string braced(const std::string &labels) { return labels.empty() ? std::string() : "{" + labels + "}"; }

Family &family(std::map<std::string, Family> &families, const std::string &metric, const char *type,
               std::string_view name) {
  Family &f = families[metric];
  if (f.type.empty()) {
    f.type = type;
    f.help = help(name);
  }
  return f;
}

}  // namespace

std::string metricName(std::string_view name, bool counter) {
  std::string out = "switchyard_";
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':';
    out += ok ? c : '_';
  }
  if (counter && !out.ends_with("_total")) {
    out += "_total";
  }
  return out;
}

std::string escapeLabel(std::string_view value) { return escapeText(value, true); }

std::string help(std::string_view name) {
  for (const auto &[n, text] : kHelp) {
    if (n == name) {
      return std::string(text);
    }
  }
  return fmt::format("Switchyard {} (docs/operations.md).", name);
}

std::string render(const std::vector<CounterSample> &samples, const std::vector<HistogramSample> &histograms,
                   const ProcessInfo &process) {
  std::map<std::string, Family> families;
  for (const auto &s : samples) {
    std::string metric = metricName(s.name, !s.gauge);  // counters end in _total: never a gauge's name
    Family &f = family(families, metric, s.gauge ? "gauge" : "counter", s.name);
    std::string labels = baseLabels(s.pipeline, s.plugin);
    if (!s.label.empty()) {
      labels += fmt::format("{}{}=\"{}\"", labels.empty() ? "" : ",", labelName(s.name), escapeLabel(s.label));
    }
    f.lines += fmt::format("{}{} {}\n", metric, braced(labels), s.value);
  }
  for (const auto &h : histograms) {
    std::string metric = metricName(h.name, false);
    Family &f = family(families, metric, "histogram", h.name);
    std::string labels = baseLabels(h.pipeline, h.plugin);
    std::string sep = labels.empty() ? "" : ",";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < h.buckets.size(); ++i) {
      cumulative += h.buckets[i];
      std::string le = i < h.bounds.size() ? fmt::format("{}", h.bounds[i]) : "+Inf";
      f.lines += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", metric, labels, sep, le, cumulative);
    }
    f.lines += fmt::format("{}_sum{} {}\n", metric, braced(labels), h.sum);
    f.lines += fmt::format("{}_count{} {}\n", metric, braced(labels), h.count);
  }
  Family &build = families["switchyard_build_info"];
  build.type = "gauge";
  build.help = "Always 1; its label says which Switchyard version runs.";
  build.lines = fmt::format("switchyard_build_info{{version=\"{}\"}} 1\n", escapeLabel(process.version));
  Family &start = families["switchyard_process_start_time_seconds"];
  start.type = "gauge";
  start.help = "When the process started, in seconds since the Unix epoch.";
  start.lines = fmt::format("switchyard_process_start_time_seconds {:.3f}\n", process.start_time_s);

  std::string out;
  for (const auto &[metric, f] : families) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", metric, escapeHelp(f.help), metric, f.type);
    out += f.lines;
  }
  return out;
}

}  // namespace switchyard::metrics
