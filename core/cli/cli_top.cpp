// SPDX-License-Identifier: MIT
#include "cli_top.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

namespace switchyard::cli {

namespace top {

bool parse(const std::string &text, std::vector<Sample> &out, std::string &why) {
  std::size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) {
      end = text.size();
    }
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.empty() || line.front() == '#') {
      continue;
    }
    Sample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') {
      s.name += line[i++];
    }
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        std::size_t eq = line.find("=\"", i);
        if (eq == std::string_view::npos) {
          why = fmt::format("line {}: a label without =\"value\"", line_no);
          return false;
        }
        std::string key(line.substr(i, eq - i));
        std::string value;
        i = eq + 2;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\' && i + 1 < line.size()) {
            ++i;
            value += line[i] == 'n' ? '\n' : line[i];
          } else {
            value += line[i];
          }
          ++i;
        }
        if (i >= line.size()) {
          why = fmt::format("line {}: an unterminated label value", line_no);
          return false;
        }
        ++i;  // the closing quote
        if (i < line.size() && line[i] == ',') {
          ++i;
        }
        s.labels[key] = value;
      }
      if (i >= line.size()) {
        why = fmt::format("line {}: labels without a closing brace", line_no);
        return false;
      }
      ++i;  // '}'
    }
    while (i < line.size() && line[i] == ' ') {
      ++i;
    }
    std::string value(line.substr(i, line.find(' ', i) - i));
    char *vend = nullptr;
    s.value = std::strtod(value.c_str(), &vend);
    if (s.name.empty() || value.empty() || vend != value.c_str() + value.size()) {
      why = fmt::format("line {}: expected NAME{{LABELS}} VALUE, got '{}'", line_no, line);
      return false;
    }
    out.push_back(std::move(s));
  }
  return true;
}

double quantile(double q, const std::vector<std::pair<double, double>> &le_cumulative) {
  if (le_cumulative.empty() || le_cumulative.back().second <= 0) {
    return -1;
  }
  double total = le_cumulative.back().second;
  double rank = q * total;
  double lower = 0;
  double below = 0;
  for (const auto &[le, cum] : le_cumulative) {
    if (cum >= rank) {
      if (std::isinf(le)) {
        return lower;  // above the last bound: the last bound is all that is known
      }
      double in_bucket = cum - below;
      return in_bucket <= 0 ? le : lower + (le - lower) * (rank - below) / in_bucket;
    }
    lower = le;
    below = cum;
  }
  return lower;
}

}  // namespace top

namespace {

using Clock = std::chrono::steady_clock;

/// "http://HOST:PORT" and the path of the metrics from URL, HOST:PORT or PORT.
bool splitUrl(std::string url, std::string &base, std::string &path, std::string &why) {
  if (url.starts_with("https://")) {
    why = "https is not served by the endpoint: use http://";
    return false;
  }
  if (url.starts_with("http://")) {
    url = url.substr(7);
  }
  std::size_t slash = url.find('/');
  path = slash == std::string::npos ? "" : url.substr(slash);
  url = url.substr(0, slash);
  if (path.empty() || path == "/") {
    path = "/metrics";
  }
  if (!url.empty() && url.find_first_not_of("0123456789") == std::string::npos) {
    url = "127.0.0.1:" + url;
  }
  std::size_t colon = url.rfind(':');
  if (url.empty() || colon == std::string::npos || colon + 1 == url.size() || colon == 0) {
    why = "expected http://HOST:PORT, HOST:PORT or a port of this host (as in settings.http.listen)";
    return false;
  }
  base = "http://" + url;
  return true;
}

struct Row {
  double received = 0, sent = 0, dropped = 0, queue = 0;
  bool has_received = false, has_sent = false, has_queue = false;
};

struct Snapshot {
  Clock::time_point at;
  std::map<std::string, std::map<std::string, Row>> rows;  ///< pipeline -> "place (plugin)" ("" for itself)
  std::map<std::string, double> in_flight;
  std::map<std::string, std::map<double, double>> latency;  ///< pipeline -> le -> cumulative
};

Snapshot digest(const std::vector<top::Sample> &samples) {
  Snapshot s;
  s.at = Clock::now();
  for (const auto &x : samples) {
    auto label = [&x](const char *k) {
      auto it = x.labels.find(k);
      return it == x.labels.end() ? std::string() : it->second;
    };
    std::string pipeline = label("pipeline");
    if (pipeline.empty()) {
      continue;
    }
    std::string place = label("place");
    std::string plugin = place.empty() ? label("plugin") : place + " (" + label("plugin") + ")";
    if (!plugin.empty()) {
      s.rows[pipeline][plugin];  // every plugin gets its row, even one with no rate to show
    }
    if (x.name == "switchyard_in_flight") {
      s.in_flight[pipeline] += x.value;
    } else if (x.name == "switchyard_pipeline_latency_seconds_bucket") {
      std::string le = label("le");
      s.latency[pipeline][le == "+Inf" ? INFINITY : std::strtod(le.c_str(), nullptr)] += x.value;
    } else if (x.name == "switchyard_received_total") {
      Row &r = s.rows[pipeline][plugin];
      r.received += x.value;
      r.has_received = true;
    } else if (x.name == "switchyard_sent_total") {
      Row &r = s.rows[pipeline][plugin];
      r.sent += x.value;
      r.has_sent = true;
    } else if (x.name == "switchyard_dropped_total") {
      s.rows[pipeline][plugin].dropped += x.value;
    } else if (x.name == "switchyard_queue_depth") {
      Row &r = s.rows[pipeline][plugin];
      r.queue += x.value;
      r.has_queue = true;
    }
  }
  return s;
}

/// input first, then filters[i], then outputs[i], each by index.
bool placeLess(const std::string &a, const std::string &b) {
  auto rank = [](const std::string &p) -> std::pair<int, long> {
    int kind = p.starts_with("input") ? 0 : p.starts_with("filters[") ? 1 : p.starts_with("outputs[") ? 2 : 3;
    std::size_t open = p.find('[');
    long index = open == std::string::npos ? 0 : std::strtol(p.c_str() + open + 1, nullptr, 10);
    return {kind, index};
  };
  auto ra = rank(a);
  auto rb = rank(b);
  return ra != rb ? ra < rb : a < b;
}

std::string rate(double now, double before, double seconds, bool has) {
  if (!has) {
    return "-";
  }
  return fmt::format("{:.1f}", std::max(0.0, now - before) / seconds);
}

std::string latencyMs(double q, const std::map<double, double> &now, const std::map<double, double> *before) {
  std::vector<std::pair<double, double>> delta;
  for (const auto &[le, cum] : now) {
    double was = 0;
    if (before != nullptr) {
      auto it = before->find(le);
      was = it == before->end() ? 0 : it->second;
    }
    delta.emplace_back(le, cum - was);
  }
  double v = top::quantile(q, delta);
  return v < 0 ? "-" : fmt::format("{:.1f}", v * 1000);
}

std::string table(const std::string &url, const Snapshot &before, const Snapshot &now) {
  double secs = std::chrono::duration<double>(now.at - before.at).count();
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  std::string out = fmt::format("switchyard top {}  every {:.1f} s  {:04}-{:02}-{:02} {:02}:{:02}:{:02}\n", url, secs,
                                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  out += fmt::format("{:<34} {:>9} {:>9} {:>8} {:>6} {:>9} {:>7} {:>7}\n", "PIPELINE / PLUGIN", "RECV/s", "SENT/s",
                     "DROP/s", "QUEUE", "IN-FLIGHT", "P50 ms", "P99 ms");
  for (const auto &[pipeline, rows] : now.rows) {
    const auto *old_rows = before.rows.count(pipeline) ? &before.rows.at(pipeline) : nullptr;
    std::vector<std::string> places;
    Row total, total_before;
    for (const auto &[place, r] : rows) {
      places.push_back(place);
      Row b = old_rows != nullptr && old_rows->count(place) ? old_rows->at(place) : Row{};
      total.received += r.received;
      total_before.received += b.received;
      total.has_received = total.has_received || r.has_received;
      if (place.starts_with("outputs[")) {
        total.sent += r.sent;
        total_before.sent += b.sent;
        total.has_sent = total.has_sent || r.has_sent;
      }
      total.dropped += r.dropped;
      total_before.dropped += b.dropped;
      total.queue += r.queue;
      total.has_queue = total.has_queue || r.has_queue;
    }
    std::sort(places.begin(), places.end(), placeLess);
    auto lat = now.latency.find(pipeline);
    auto lat_before = before.latency.find(pipeline);
    const std::map<double, double> *lb = lat_before == before.latency.end() ? nullptr : &lat_before->second;
    auto in_flight = now.in_flight.find(pipeline);
    out += fmt::format("{:<34} {:>9} {:>9} {:>8} {:>6} {:>9} {:>7} {:>7}\n", pipeline,
                       rate(total.received, total_before.received, secs, total.has_received),
                       rate(total.sent, total_before.sent, secs, total.has_sent),
                       rate(total.dropped, total_before.dropped, secs, true),
                       total.has_queue ? fmt::format("{}", total.queue) : "-",
                       in_flight == now.in_flight.end() ? "-" : fmt::format("{}", in_flight->second),
                       lat == now.latency.end() ? "-" : latencyMs(0.5, lat->second, lb),
                       lat == now.latency.end() ? "-" : latencyMs(0.99, lat->second, lb));
    for (const auto &place : places) {
      if (place.empty()) {
        continue;
      }
      const Row &r = rows.at(place);
      Row b = old_rows != nullptr && old_rows->count(place) ? old_rows->at(place) : Row{};
      out += fmt::format("  {:<32} {:>9} {:>9} {:>8} {:>6}\n", place, rate(r.received, b.received, secs, r.has_received),
                         rate(r.sent, b.sent, secs, r.has_sent), rate(r.dropped, b.dropped, secs, true),
                         r.has_queue ? fmt::format("{}", r.queue) : "-");
    }
  }
  if (now.rows.empty()) {
    out += "(no pipelines)\n";
  }
  return out;
}

}  // namespace

CLI::App *addTopCommand(CLI::App &app, TopOptions &o) {
  auto *cmd = app.add_subcommand("top", "Live rates per pipeline and plugin of a running instance, from its /metrics");
  cmd->add_option("url", o.url,
                  "The instance's HTTP endpoint (settings.http.listen or run --http): http://HOST:PORT, "
                  "HOST:PORT or a local port")
      ->required();
  cmd->add_option("--interval", o.interval_s, "Seconds between two scrapes; rates are over this interval")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  cmd->add_option("--iterations", o.iterations, "Print this many tables, then exit (0: until interrupted)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--once", o.once, "Print one table (two scrapes --interval apart), then exit");
  return cmd;
}

int runTop(const TopOptions &o) {
  std::string base, path, why;
  if (!splitUrl(o.url, base, path, why)) {
    std::fprintf(stderr, "switchyard: top: '%s': %s\n", o.url.c_str(), why.c_str());
    return 2;
  }
  const int iterations = o.once ? 1 : o.iterations;
  const bool bounded = iterations > 0;
  const bool tty = ::isatty(STDOUT_FILENO) == 1;
  httplib::Client client(base);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(10, 0);
  auto scrape = [&](Snapshot &out) {
    auto res = client.Get(path);
    if (!res) {
      std::string cause = httplib::to_string(res.error());
      if (res.error() == httplib::Error::Connection) {
        cause = "cannot connect: nothing answers there (is `switchyard run` serving it? settings.http.listen or run --http)";
      } else if (res.error() == httplib::Error::ConnectionTimeout || res.error() == httplib::Error::Read) {
        cause = "no answer in time";
      }
      why = fmt::format("cannot read {}{}: {}", base, path, cause);
      return false;
    }
    if (res->status != 200) {
      why = fmt::format("{}{} answered HTTP {}", base, path, res->status);
      return false;
    }
    std::vector<top::Sample> samples;
    if (!top::parse(res->body, samples, why)) {
      why = fmt::format("{}{}: not the Prometheus text format: {}", base, path, why);
      return false;
    }
    out = digest(samples);
    return true;
  };
  const auto pause = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.interval_s));
  Snapshot before;
  bool have_before = false;
  for (int printed = 0; !bounded || printed < iterations;) {
    if (have_before) {
      std::this_thread::sleep_until(before.at + pause);
    }
    Snapshot now;
    if (!scrape(now)) {
      std::fprintf(stderr, "switchyard: top: %s\n", why.c_str());
      if (bounded) {
        return 1;
      }
      have_before = false;
      std::this_thread::sleep_for(pause);
      continue;
    }
    if (have_before) {
      std::string text = table(base + path, before, now);
      std::fputs(tty ? ("\033[H\033[2J" + text).c_str() : (printed > 0 ? "\n" + text : text).c_str(), stdout);
      std::fflush(stdout);
      ++printed;
    }
    before = std::move(now);
    have_before = true;
  }
  return 0;
}

}  // namespace switchyard::cli
