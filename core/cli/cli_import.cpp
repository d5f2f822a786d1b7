// SPDX-License-Identifier: MIT
// `switchyard import-fedmsg-config DIR`: see cli_import.hpp.
#include "cli_import.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "cli_common.hpp"
#include "switchyard/json.hpp"

namespace switchyard::cli {
namespace {

/// Executes every *.py file of argv[1] in sorted order, as fedmsg does, and merges their
/// `config` dicts recursively (a later file wins, nested dicts are merged key by key).
/// Prints the merged dict as JSON; on a failure prints {"error", "file", "line"} and
/// exits 3. Values JSON cannot hold (sets, objects) are written as their repr().
constexpr const char *kEvalScript = R"PY(
import json, os, sys, traceback
d = sys.argv[1]
def fail(msg, f, line):
    print(json.dumps({"error": msg, "file": f, "line": line}))
    sys.exit(3)
def merge(a, b):
    for k, v in b.items():
        if k in a and isinstance(a[k], dict) and isinstance(v, dict):
            merge(a[k], v)
        else:
            a[k] = v
merged = {}
files = sorted(f for f in os.listdir(d) if f.endswith(".py"))
for f in files:
    path = os.path.join(d, f)
    ns = {"__file__": path, "__name__": "fedmsg_config_" + f[:-3]}
    try:
        with open(path, "rb") as fh:
            code = compile(fh.read(), path, "exec")
        exec(code, ns)
    except SyntaxError as e:
        fail("SyntaxError: %s" % e.msg, f, e.lineno or 0)
    except BaseException as e:
        line = 0
        for fr in traceback.extract_tb(e.__traceback__):
            if fr.filename == path:
                line = fr.lineno
        fail("%s: %s" % (type(e).__name__, e), f, line)
    cfg = ns.get("config")
    if cfg is None:
        continue
    if not isinstance(cfg, dict):
        fail("`config` is a %s, not a dict" % type(cfg).__name__, f, 0)
    merge(merged, cfg)
merged["__files__"] = files
print(json.dumps(merged, default=repr))
)PY";

struct Child {
  std::string out, err;
  int status = 0;
};

Child runPython(const std::string &python, const std::string &dir) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error(fmt::format("pipe: {}", std::strerror(errno)));
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    throw std::runtime_error(fmt::format("fork: {}", std::strerror(errno)));
  }
  if (pid == 0) {
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) {
      ::dup2(null, 0);
    }
    // -I: isolated (no user site, no PYTHON* variables), -B: no .pyc next to the files.
    const char *argv[] = {python.c_str(), "-I", "-B", "-c", kEvalScript, dir.c_str(), nullptr};
    ::execv(python.c_str(), const_cast<char *const *>(argv));
    std::fprintf(stderr, "exec: %s\n", std::strerror(errno));
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  Child c;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    for (int k = 0; k < 2; ++k) {
      if (fds[k].fd < 0 || fds[k].revents == 0) {
        continue;
      }
      char buf[65536];
      ssize_t n = ::read(fds[k].fd, buf, sizeof buf);
      if (n > 0) {
        (k == 0 ? c.out : c.err).append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[k].fd);
        fds[k].fd = -1;
        --open_fds;
      }
    }
  }
  while (::waitpid(pid, &c.status, 0) < 0 && errno == EINTR) {
  }
  return c;
}

std::vector<std::string> stringList(const json::Value *v) {
  std::vector<std::string> out;
  if (v == nullptr) {
    return out;
  }
  if (v->isString()) {
    out.push_back(v->text);  // fedmsg "listifies" a single string
  } else if (v->isArray()) {
    for (const auto &item : v->items) {
      if (item.isString()) {
        out.push_back(item.text);
      }
    }
  }
  return out;
}

void emitList(YAML::Emitter &y, const std::vector<std::string> &items) {
  y << YAML::Flow << YAML::BeginSeq;
  for (const auto &s : items) {
    y << s;
  }
  y << YAML::EndSeq;
}

bool isUrl(const std::string &s) { return s.starts_with("http://") || s.starts_with("https://"); }

/// A local file for a fedmsg location that may be a URL (which the verifier does not fetch).
std::string localFile(const std::string &location, const char *key, std::vector<std::string> &warnings) {
  if (!isUrl(location)) {
    return location;
  }
  auto slash = location.find_last_of('/');
  std::string local = "/etc/pki/fedmsg/" + location.substr(slash + 1);
  warnings.push_back(fmt::format("{} is a URL ({}): the verifier reads local files only; download it to {} "
                                 "(and keep it current)",
                                 key, location, local));
  return local;
}

}  // namespace

CLI::App *addImportCommand(CLI::App &app, ImportOptions &opts) {
  auto *cmd = app.add_subcommand(
      "import-fedmsg-config",
      "Turn a fedmsg.d/ directory (endpoints, routing_policy, routing_nitpicky, CA/CRL locations, "
      "certnames) into YAML plugin entries");
  cmd->add_option("directory", opts.directory, "The fedmsg.d directory (its *.py files are executed, as fedmsg does)")
      ->required();
  cmd->add_option("-o,--output", opts.output, "Write the YAML to this file instead of standard output");
  cmd->add_option("--python", opts.python, "Python 3 interpreter that evaluates the files")
      ->envname("SWITCHYARD_PYTHON3")
      ->capture_default_str();
  return cmd;
}

std::string evaluateFedmsgConfig(const ImportOptions &opts) {
  struct stat st {};
  if (::stat(opts.directory.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw std::runtime_error(fmt::format("{}: not a directory ({})", opts.directory,
                                         errno != 0 ? std::strerror(errno) : "a file"));
  }
  if (::access(opts.python.c_str(), X_OK) != 0) {
    throw std::runtime_error(fmt::format(
        "{} is needed to evaluate the fedmsg.d files (they are Python, as fedmsg executes them) and cannot be "
        "run: {}; install Debian's python3 package (apt-get install python3) or name another interpreter "
        "with --python",
        opts.python, std::strerror(errno)));
  }
  Child c = runPython(opts.python, opts.directory);
  if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == 3) {
    auto v = json::parse(c.out);
    if (v && v->isObject()) {
      auto file = v->findString("file").value_or("?");
      const json::Value *line = v->find("line");
      std::string where = fmt::format("{}/{}", opts.directory, file);
      if (line != nullptr && line->type == json::Value::Type::Integer && line->text != "0") {
        where += ":" + line->text;
      }
      throw std::runtime_error(fmt::format("{}: {} (fix the file, or move it out of the directory)", where,
                                           v->findString("error").value_or("failed")));
    }
  }
  if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
    throw std::runtime_error(fmt::format("evaluating {} with {} failed (status {}): {}", opts.directory, opts.python,
                                         WIFEXITED(c.status) ? WEXITSTATUS(c.status) : -1, c.err));
  }
  return c.out;
}

std::string fragmentsFromConfig(const std::string &merged_json, const std::string &source,
                                std::vector<std::string> &warnings) {
  auto parsed = json::parse(merged_json);
  if (!parsed || !parsed->isObject()) {
    throw std::runtime_error("the evaluated configuration is not a JSON object");
  }
  const json::Value &cfg = *parsed;
  std::string files;
  for (const auto &f : stringList(cfg.find("__files__"))) {
    files += (files.empty() ? "" : ", ") + f;
  }

  YAML::Emitter y;
  y << YAML::Comment(fmt::format("Generated by switchyard import-fedmsg-config from {} ({}).\n"
                                 "Each top-level key is one plugin entry: paste it under a pipeline's input:,\n"
                                 "filters: or outputs: (docs/migration-guide.md).",
                                 source, files.empty() ? "no .py files" : files));
  y << YAML::BeginMap;

  // Endpoints: a subscriber connects to every address of every service (fedmsg's
  // tail_messages), except the relay's inbound side, where publishers connect.
  std::vector<std::string> endpoints;
  std::vector<std::pair<std::string, std::vector<std::string>>> named;  // service key -> its addresses
  if (const json::Value *eps = cfg.find("endpoints"); eps != nullptr && eps->isObject()) {
    for (const auto &m : eps->members) {
      if (m.key == "relay_inbound") {
        continue;
      }
      std::vector<std::string> own;
      for (auto &addr : stringList(&m.value)) {
        if (std::find(endpoints.begin(), endpoints.end(), addr) == endpoints.end()) {
          endpoints.push_back(addr);
          own.push_back(addr);
        }
      }
      if (!own.empty()) {
        named.emplace_back(m.key, std::move(own));
      }
    }
  }
  // replay_endpoints (service key -> its replay address) needs the endpoints by service
  // key, which zmq-sub takes as fedmsg writes them; srv_endpoints (domains) become `srv:`
  // names, whose endpoints zmq-sub names after the SRV name.
  std::vector<std::string> srv;
  for (const auto &domain : stringList(cfg.find("srv_endpoints"))) {
    srv.push_back("_fedmsg._tcp." + domain);
  }
  std::vector<std::pair<std::string, std::string>> replay;
  if (const json::Value *r = cfg.find("replay_endpoints"); r != nullptr && r->isObject()) {
    for (const auto &m : r->members) {
      auto addr = stringList(&m.value);
      if (addr.empty()) {
        continue;
      }
      const bool known = std::any_of(named.begin(), named.end(), [&](const auto &n) { return n.first == m.key; });
      const std::string srv_name = "_fedmsg._tcp." + m.key;
      if (known) {
        replay.emplace_back(m.key, addr.front());
      } else if (std::find(srv.begin(), srv.end(), srv_name) != srv.end()) {
        replay.emplace_back(srv_name, addr.front());
      } else {
        warnings.push_back(fmt::format("replay_endpoints: '{}' names no service of `endpoints` nor a domain of "
                                       "`srv_endpoints`; left out",
                                       m.key));
      }
    }
  }
  if (endpoints.empty() && srv.empty()) {
    warnings.push_back("no `endpoints`: the zmq-sub entry is left out");
  } else {
    y << YAML::Newline << YAML::Comment("zmq-sub input: every address of fedmsg's `endpoints` (what fedmsg subscribers connect to)");
    y << YAML::Key << "zmq_sub" << YAML::Value << YAML::BeginMap;
    y << YAML::Key << "type" << YAML::Value << "zmq-sub";
    if (replay.empty() && !endpoints.empty()) {
      y << YAML::Key << "endpoints" << YAML::Value;
      emitList(y, endpoints);
    } else if (!endpoints.empty()) {
      y << YAML::Key << "endpoints" << YAML::Value << YAML::BeginMap;
      for (const auto &[name, addrs] : named) {
        y << YAML::Key << name << YAML::Value;
        emitList(y, addrs);
      }
      y << YAML::EndMap;
    }
    if (!srv.empty()) {
      y << YAML::Key << "srv" << YAML::Value;
      emitList(y, srv);
    }
    if (!replay.empty()) {
      y << YAML::Key << "replay_endpoints" << YAML::Value << YAML::BeginMap;
      for (const auto &[name, addr] : replay) {
        y << YAML::Key << name << YAML::Value << addr;
      }
      y << YAML::EndMap;
    }
    y << YAML::EndMap;
  }
  if (auto inbound = stringList(cfg.find("relay_inbound")); !inbound.empty()) {
    y << YAML::Newline
      << YAML::Comment(fmt::format("relay_inbound ({}): where active publishers connect; a relay's zmq-sub binds it "
                                   "(bind: true), `switchyard logger --endpoint` connects to it",
                                   inbound.front()));
  }

  // Verifier: trust material and routing policy.
  y << YAML::Newline
    << YAML::Comment("verifier filter: ca_cert_location, crl_location, routing_policy, routing_nitpicky");
  y << YAML::Key << "verifier" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "type" << YAML::Value << "verifier";
  auto ca = cfg.findString("ca_cert_location");
  y << YAML::Key << "ca_file" << YAML::Value
    << localFile(ca ? std::string(*ca) : std::string("/etc/pki/fedmsg/ca.crt"), "ca_cert_location", warnings);
  if (!ca) {
    y << YAML::Comment("fedmsg's default: ca_cert_location is not set");
  }
  if (auto crl = cfg.findString("crl_location"); crl && !crl->empty()) {
    y << YAML::Key << "crl_file" << YAML::Value << localFile(std::string(*crl), "crl_location", warnings);
  } else {
    warnings.push_back("no crl_location: revocation will not be checked (set crl_file when you have a CRL)");
  }
  bool nitpicky = false;
  if (const json::Value *n = cfg.find("routing_nitpicky"); n != nullptr && n->type == json::Value::Type::Bool) {
    nitpicky = n->boolean;
  }
  y << YAML::Key << "nitpicky" << YAML::Value << nitpicky;
  if (cfg.find("routing_nitpicky") == nullptr) {
    y << YAML::Comment("fedmsg's default; Switchyard's own default is true");
  }
  const json::Value *policy = cfg.find("routing_policy");
  std::size_t topics = 0;
  if (policy != nullptr && policy->isObject() && !policy->members.empty()) {
    y << YAML::Key << "routing_policy" << YAML::Value << YAML::BeginMap;
    for (const auto &m : policy->members) {
      y << YAML::Key << m.key << YAML::Value;
      emitList(y, stringList(&m.value));
      ++topics;
    }
    y << YAML::EndMap;
  }
  if (nitpicky && topics == 0) {
    warnings.push_back("routing_nitpicky is true and routing_policy is empty: the verifier would refuse every message");
  }
  if (const json::Value *v = cfg.find("validate_signatures"); v != nullptr && v->type == json::Value::Type::Bool &&
                                                               !v->boolean) {
    warnings.push_back("validate_signatures is false: fedmsg did not check signatures; leave the verifier out, or "
                       "give it allow_unsigned: true while publishers start signing");
  }
  y << YAML::EndMap;

  // Signers: one per certnames entry (fedmsg picks certnames["<name>.<host>"] for a
  // publishing process), and cert_prefix (fedmsg-logger's "<prefix>-<host>").
  std::string ssldir = std::string(cfg.findString("ssldir").value_or("/etc/pki/fedmsg"));
  while (ssldir.size() > 1 && ssldir.back() == '/') {
    ssldir.pop_back();
  }
  const json::Value *certnames = cfg.find("certnames");
  auto prefix = cfg.findString("cert_prefix");
  if ((certnames != nullptr && certnames->isObject() && !certnames->members.empty()) || prefix) {
    y << YAML::Newline
      << YAML::Comment(fmt::format("signer filters: certnames (service -> certificate name) and cert_prefix, "
                                   "with the key pairs in ssldir ({})",
                                   ssldir));
    y << YAML::Key << "signers" << YAML::Value << YAML::BeginMap;
    auto signer = [&](const std::string &name, const std::string &certname) {
      y << YAML::Key << name << YAML::Value << YAML::BeginMap;
      y << YAML::Key << "type" << YAML::Value << "signer";
      y << YAML::Key << "cert_file" << YAML::Value << fmt::format("{}/{}.crt", ssldir, certname);
      y << YAML::Key << "key_file" << YAML::Value << fmt::format("{}/{}.key", ssldir, certname);
      y << YAML::EndMap;
    };
    if (certnames != nullptr && certnames->isObject()) {
      for (const auto &m : certnames->members) {
        if (m.value.isString()) {
          signer(m.key, m.value.text);
        }
      }
    }
    if (prefix) {
      char host[256] = {};
      ::gethostname(host, sizeof host - 1);
      std::string short_host(host);
      short_host = short_host.substr(0, short_host.find('.'));
      y << YAML::Newline << YAML::Comment(fmt::format("cert_prefix '{}' on this host ({})", *prefix, short_host));
      signer("cert_prefix", fmt::format("{}-{}", *prefix, short_host));
    }
    y << YAML::EndMap;
  }
  y << YAML::EndMap;
  if (!y.good()) {
    throw std::runtime_error(fmt::format("cannot write the YAML: {}", y.GetLastError()));
  }
  return std::string(y.c_str()) + "\n";
}

int runImport(const ImportOptions &opts) {
  std::vector<std::string> warnings;
  std::string yaml;
  try {
    yaml = fragmentsFromConfig(evaluateFedmsgConfig(opts), opts.directory, warnings);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "switchyard import-fedmsg-config: %s\n", e.what());
    return kExitConfig;
  }
  for (const auto &w : warnings) {
    std::fprintf(stderr, "switchyard import-fedmsg-config: warning: %s\n", w.c_str());
  }
  if (opts.output.empty()) {
    std::fputs(yaml.c_str(), stdout);
    return kExitOk;
  }
  std::FILE *f = std::fopen(opts.output.c_str(), "we");
  if (f == nullptr || std::fputs(yaml.c_str(), f) < 0 || std::fclose(f) != 0) {
    std::fprintf(stderr, "switchyard import-fedmsg-config: cannot write '%s': %s\n", opts.output.c_str(),
                 std::strerror(errno));
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace switchyard::cli
