// SPDX-License-Identifier: MIT
//
// The plugin loader against the ABI fixtures (tests/abi/fixtures): every broken fixture is
// refused with its specific reason, and its ELF constructor never ran (no marker file);
// good ones are mapped only on first use; permission rules; duplicates; hostile files.
//
// Usage: test_loader FIXTURE_DIR [doctest options]
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "registry.hpp"
#include "switchyard/plugin.hpp"

namespace fs = std::filesystem;
using namespace switchyard;

namespace {

std::string g_fixtures;  // build dir of tests/abi/fixtures
std::string g_markers;   // $SWITCHYARD_TEST_MARKER_DIR

const std::vector<std::string> kRefused = {"fx-major",    "fx-abi1",     "fx-minor",
                                           "fx-fingerprint", "fx-magic", "fx-nocreate",
                                           "fx-noinfo",   "fx-misnamed", "fx-kind"};

std::string fixture(const std::string &file_suffix) {
  return g_fixtures + "/switchyard-" + file_suffix + ".so";
}

bool markerExists(const std::string &name) { return fs::exists(g_markers + "/" + name); }

void clearMarkers() {
  for (const auto &e : fs::directory_iterator(g_markers)) {
    fs::remove(e.path());
  }
}

/// A private temporary directory (mode 0700 from mkdtemp), removed at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "sy-abi-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  [[nodiscard]] const std::string &path() const { return path_; }
  [[nodiscard]] std::string operator/(const std::string &name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void copyGood(const std::string &to) {
  fs::copy_file(fixture("filter-fx-good"), to, fs::copy_options::overwrite_existing);
  REQUIRE(::chmod(to.c_str(), 0755) == 0);
}

const Refusal *refusalFor(const PluginRegistry &reg, const std::string &path) {
  for (const auto &r : reg.refusals()) {
    if (r.path == path) {
      return &r;
    }
  }
  return nullptr;
}

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class NullLogger final : public Logger {
 public:
  void log(LogLevel, std::string_view) noexcept override {}
  [[nodiscard]] bool enabled(LogLevel) const noexcept override { return false; }
};

class FakeContext final : public FilterContext {
 public:
  Logger &log() noexcept override { return logger_; }
  Counter &counter(std::string_view name, std::string_view label) noexcept override {
    return counters_[std::string(name) + "/" + std::string(label)];
  }
  Gauge &gauge(std::string_view name) noexcept override { return gauges_[std::string(name)]; }
  void countDrop(std::string_view reason) noexcept override { counter("dropped", reason).add(); }
  [[nodiscard]] std::string_view pipeline() const noexcept override { return "p"; }
  [[nodiscard]] std::string_view instance() const noexcept override { return "filters[0]"; }
  [[nodiscard]] bool stopping() const noexcept override { return false; }

 private:
  NullLogger logger_;
  std::map<std::string, Counter> counters_;
  std::map<std::string, Gauge> gauges_;
};

}  // namespace

TEST_CASE("scan: broken fixtures are refused with specific reasons, good ones are not mapped") {
  clearMarkers();
  PluginRegistry reg;
  reg.scan({g_fixtures});

  REQUIRE(reg.find("fx-good") != nullptr);
  REQUIRE(reg.find("fx-throws") != nullptr);
  CHECK(reg.all().size() == 2);
  CHECK(reg.refusals().size() == kRefused.size());

  const PluginDescriptor *good = reg.find("fx-good");
  CHECK(good->kind == SY_KIND_FILTER);
  CHECK(good->version == "0.0.1");
  CHECK(good->description == "ABI test fixture (fx-good)");
  CHECK(good->abi_major == SWITCHYARD_ABI_MAJOR);
  CHECK(good->abi_minor == SWITCHYARD_ABI_MINOR);
  CHECK(good->fingerprint == SWITCHYARD_BUILD_FINGERPRINT);
  CHECK(good->path == fixture("filter-fx-good"));
  CHECK_FALSE(good->canAck());

  struct Expect {
    std::string file;
    std::vector<std::string> parts;
  };
  const std::vector<Expect> expected = {
      {"filter-fx-major",
       {"incompatible switchyard plugin 'fx-major'",
        fmt::format("built for ABI {}.{}", SWITCHYARD_ABI_MAJOR + 1, SWITCHYARD_ABI_MINOR),
        fmt::format("this host has ABI {}.{}", SWITCHYARD_ABI_MAJOR, SWITCHYARD_ABI_MINOR)}},
      {"filter-fx-abi1",  // the previous major: refused before its code could run
       {"incompatible switchyard plugin 'fx-abi1'", "built for ABI 1.2",
        fmt::format("this host has ABI {}.{}", SWITCHYARD_ABI_MAJOR, SWITCHYARD_ABI_MINOR),
        fmt::format("port the plugin to ABI {}", SWITCHYARD_ABI_MAJOR)}},
      {"filter-fx-minor",
       {"incompatible switchyard plugin 'fx-minor'",
        fmt::format("built for ABI {}.{}", SWITCHYARD_ABI_MAJOR, SWITCHYARD_ABI_MINOR + 1),
        "newer than this host's"}},
      {"filter-fx-fingerprint",
       {"incompatible switchyard plugin 'fx-fingerprint'", "'gcc-0.0;bogus'",
        fmt::format("'{}'", SWITCHYARD_BUILD_FINGERPRINT)}},
      {"filter-fx-magic", {"not a switchyard plugin", "0x12345678", "0x53594142"}},
      {"filter-fx-nocreate",
       {"incompatible switchyard plugin 'fx-nocreate'",
        "does not export switchyard_plugin_create"}},
      {"filter-fx-noinfo", {"not a switchyard plugin", "does not export switchyard_plugin_info"}},
      {"filter-fx-misnamed", {"does not match its info record", "switchyard-filter-fx-other.so"}},
      {"filter-fx-kind", {"does not match its info record", "switchyard-source-fx-kind.so"}},
  };
  for (const auto &x : expected) {
    CAPTURE(x.file);
    const Refusal *r = refusalFor(reg, fixture(x.file));
    REQUIRE(r != nullptr);
    CAPTURE(r->reason);
    for (const auto &part : x.parts) {
      CHECK(r->reason.find(part) != std::string::npos);
    }
  }
  // Nothing was mapped: not the refused fixtures, and not the good ones either (lazy).
  CHECK(fs::is_empty(g_markers));
}

TEST_CASE("schema() maps the library; instances co-own it and outlive the registry") {
  clearMarkers();
  PluginPtr instance(nullptr, PluginDeleter{});
  {
    PluginRegistry reg;
    reg.scan({g_fixtures});
    CHECK_FALSE(markerExists("fx-good"));
    const auto &schema = reg.schema("fx-good");
    CHECK(markerExists("fx-good"));
    REQUIRE(schema.size() == 2);
    CHECK(schema[0].name == "suffix");
    CHECK(schema[0].type == SY_CFG_STRING);
    CHECK_FALSE(schema[0].required);
    REQUIRE(schema[0].default_json.has_value());
    CHECK(*schema[0].default_json == "\"\"");
    CHECK(schema[0].description == "Appended to every topic.");
    CHECK_FALSE(schema[0].secret);
    CHECK(schema[1].name == "token");
    CHECK_FALSE(schema[1].default_json.has_value());
    CHECK(schema[1].secret);

    Status error;
    NullLogger logger;
    std::shared_ptr<void> library;
    auto factory = reg.create("fx-good", R"({"suffix":".x","token":null})", "filters[0] (fx-good)",
                              &logger, nullptr, error, library);
    REQUIRE(factory != nullptr);
    instance = instantiate(factory, library, "filters[0] (fx-good)", 0, 1, error);
    REQUIRE(instance != nullptr);
    CHECK(error.isOk());
    REQUIRE(instance.get_deleter().library != nullptr);
    CHECK(instance.get_deleter().library.use_count() >= 2);  // the registry and the instance
    CHECK(instance.get_deleter().factory == factory);        // the instance keeps its factory
  }
  // The registry is gone; the instance still runs code of its library.
  CHECK(instance.get_deleter().library.use_count() == 1);
  FakeContext ctx;
  Message m;
  m.setTopic("org.example");
  auto *filter = static_cast<Filter *>(instance.get());  // kind says filter: no RTTI
  CHECK(filter->process(ctx, m).kind == Verdict::Kind::Pass);
  CHECK(m.topic() == "org.example.x");
  instance.reset();
  for (const auto &name : kRefused) {
    CHECK_FALSE(markerExists(name));
  }
}

TEST_CASE("a create that throws: loaded, then refused at create() with the plugin's message") {
  clearMarkers();
  PluginRegistry reg;
  reg.scan({g_fixtures});
  Status error;
  NullLogger logger;
  std::shared_ptr<void> library;
  auto p = reg.create("fx-throws", R"({"suffix":""})", "filters[0] (fx-throws)", &logger, nullptr, error, library);
  CHECK(p == nullptr);
  CHECK(error.code() == Status::Code::Fatal);
  CHECK(error.message() == "fixture refuses to be created");
  CHECK(markerExists("fx-throws"));  // it was loaded: the failure came from its own code
}

TEST_CASE("unknown plugin: create() fails with a Status, schema() throws") {
  PluginRegistry reg;
  reg.scan({g_fixtures});
  Status error;
  std::shared_ptr<void> library;
  auto p = reg.create("fx-major", "{}", "x", nullptr, nullptr, error, library);
  CHECK(p == nullptr);
  CHECK(error.message() == "unknown plugin 'fx-major'");
  CHECK_THROWS_WITH_AS(reg.schema("fx-major"), "unknown plugin 'fx-major'", std::runtime_error);
}

TEST_CASE("permissions: world-writable file, directory and symlink target are refused") {
  clearMarkers();
  SUBCASE("world-writable file") {
    TempDir d;
    copyGood(d / "switchyard-filter-fx-good.so");
    REQUIRE(::chmod((d / "switchyard-filter-fx-good.so").c_str(), 0757) == 0);
    PluginRegistry reg;
    reg.scan({d.path()});
    CHECK(reg.find("fx-good") == nullptr);
    const Refusal *r = refusalFor(reg, d / "switchyard-filter-fx-good.so");
    REQUIRE(r != nullptr);
    CHECK(r->reason.find("is world-writable (mode 0757)") != std::string::npos);
  }
  SUBCASE("world-writable directory") {
    TempDir d;
    copyGood(d / "switchyard-filter-fx-good.so");
    REQUIRE(::chmod(d.path().c_str(), 0777) == 0);
    PluginRegistry reg;
    reg.scan({d.path()});
    CHECK(reg.find("fx-good") == nullptr);
    const Refusal *r = refusalFor(reg, d / "switchyard-filter-fx-good.so");
    REQUIRE(r != nullptr);
    CHECK(r->reason.find(fmt::format("directory {} is world-writable", d.path())) !=
          std::string::npos);
  }
  SUBCASE("symlink into a world-writable directory") {
    TempDir safe, open;
    copyGood(open / "real.so");
    REQUIRE(::chmod(open.path().c_str(), 0777) == 0);
    fs::create_symlink(open / "real.so", safe / "switchyard-filter-fx-good.so");
    PluginRegistry reg;
    reg.scan({safe.path()});
    CHECK(reg.find("fx-good") == nullptr);
    const Refusal *r = refusalFor(reg, safe / "switchyard-filter-fx-good.so");
    REQUIRE(r != nullptr);
    CAPTURE(r->reason);
    CHECK(r->reason.find("symbolic link target " + (open / "real.so")) != std::string::npos);
    CHECK(r->reason.find("world-writable") != std::string::npos);
  }
  SUBCASE("symlink to a safe directory is fine") {
    TempDir a, b;
    copyGood(b / "real.so");
    fs::create_symlink(b / "real.so", a / "switchyard-filter-fx-good.so");
    PluginRegistry reg;
    reg.scan({a.path()});
    REQUIRE(reg.find("fx-good") != nullptr);
    CHECK(reg.find("fx-good")->path == a / "switchyard-filter-fx-good.so");
    CHECK(reg.refusals().empty());
  }
  SUBCASE("dangling symlink") {
    TempDir a;
    fs::create_symlink(a / "missing.so", a / "switchyard-filter-fx-good.so");
    PluginRegistry reg;
    reg.scan({a.path()});
    const Refusal *r = refusalFor(reg, a / "switchyard-filter-fx-good.so");
    REQUIRE(r != nullptr);
    CHECK(r->reason == "dangling symbolic link");
  }
  SUBCASE("file owned by another non-root user") {
    // Creating a file owned by someone else needs root; the CI and this test run as root.
    REQUIRE_MESSAGE(::geteuid() == 0, "this case needs root to chown a file to another user");
    TempDir d;
    copyGood(d / "switchyard-filter-fx-good.so");
    REQUIRE(::chown((d / "switchyard-filter-fx-good.so").c_str(), 65534, 65534) == 0);
    PluginRegistry reg;
    reg.scan({d.path()});
    CHECK(reg.find("fx-good") == nullptr);
    const Refusal *r = refusalFor(reg, d / "switchyard-filter-fx-good.so");
    REQUIRE(r != nullptr);
    CHECK(r->reason.find("is owned by uid 65534, neither root nor the current user") !=
          std::string::npos);
  }
  CHECK_FALSE(markerExists("fx-good"));
}

TEST_CASE("duplicate names are an error naming both files") {
  SUBCASE("two directories") {
    TempDir a, b;
    copyGood(a / "switchyard-filter-fx-good.so");
    copyGood(b / "switchyard-filter-fx-good.so");
    PluginRegistry reg;
    CHECK_THROWS_WITH_AS(reg.scan({a.path(), b.path()}),
                         fmt::format("two plugins are named 'fx-good': {} and {}",
                                     a / "switchyard-filter-fx-good.so",
                                     b / "switchyard-filter-fx-good.so")
                             .c_str(),
                         std::runtime_error);
  }
  SUBCASE("a file plugin named like an in-process plugin") {
    TempDir a;
    copyGood(a / "switchyard-filter-fx-good.so");
    PluginRegistry reg;
    PluginDescriptor d;
    d.name = "fx-good";
    reg.addInProcess(d, {}, [](const CreateArgs &) -> PluginFactory * { return nullptr; });
    CHECK_THROWS_WITH_AS(reg.scan({a.path()}),
                         fmt::format("two plugins are named 'fx-good': (in-process) and {}",
                                     a / "switchyard-filter-fx-good.so")
                             .c_str(),
                         std::runtime_error);
  }
  SUBCASE("the same file reached twice is one plugin") {
    TempDir a, b;
    copyGood(a / "switchyard-filter-fx-good.so");
    fs::create_directory_symlink(a.path(), b / "alias");
    PluginRegistry reg;
    CHECK_NOTHROW(reg.scan({a.path(), b / "alias"}));
    CHECK(reg.find("fx-good") != nullptr);
  }
}

TEST_CASE("the kind in the file name must match the record; a source fixture is accepted") {
  TempDir a;
  fs::copy_file(fixture("filter-fx-kind"), a / "switchyard-source-fx-kind.so");
  PluginRegistry reg;
  reg.scan({a.path()});
  REQUIRE(reg.find("fx-kind") != nullptr);
  CHECK(reg.find("fx-kind")->kind == SY_KIND_SOURCE);
  CHECK(reg.refusals().empty());
}

TEST_CASE("hostile and misnamed files are refused without crashing") {
  TempDir d;
  {
    std::ofstream(d / "switchyard-filter-text.so") << "this is not an ELF file\n";
    std::ofstream(d / "switchyard-filter-empty.so");
    std::ofstream(d / "libunrelated.so") << "ignored: not named like a plugin";
    std::ofstream(d / "README") << "ignored";
    copyGood(d / "switchyard-gadget-fx-good.so");
  }
  const std::string good = readFile(fixture("filter-fx-good"));
  REQUIRE(good.size() > 4096);
  // Truncations cut the section headers (at the end) or the tables they point to.
  std::vector<std::size_t> cuts = {4, 16, 63, 64, 65, 200, 1000, 4096, good.size() / 2,
                                   good.size() - 64, good.size() - 1};
  for (std::size_t cut : cuts) {
    std::ofstream(d / fmt::format("switchyard-filter-cut{}.so", cut), std::ios::binary)
        << good.substr(0, cut);
  }
  PluginRegistry reg;
  reg.scan({d.path()});
  CHECK(reg.all().empty());
  CHECK(reg.refusals().size() == 3 + cuts.size());
  const Refusal *text = refusalFor(reg, d / "switchyard-filter-text.so");
  REQUIRE(text != nullptr);
  CHECK(text->reason == "not a switchyard plugin: not an ELF file");
  const Refusal *gadget = refusalFor(reg, d / "switchyard-gadget-fx-good.so");
  REQUIRE(gadget != nullptr);
  CHECK(gadget->reason == "file name is not switchyard-<source|sink|filter>-<name>.so");
  for (std::size_t cut : cuts) {
    const Refusal *r = refusalFor(reg, d / fmt::format("switchyard-filter-cut{}.so", cut));
    REQUIRE(r != nullptr);
    CAPTURE(r->reason);
    CHECK(r->reason.starts_with("not a switchyard plugin"));
  }
  CHECK(refusalFor(reg, d / "libunrelated.so") == nullptr);
}

TEST_CASE("readPluginInfo survives corrupted files") {
  TempDir d;
  const std::string good = readFile(fixture("filter-fx-good"));
  std::mt19937 rng(20240601);  // fixed seed: a failure repeats
  std::uniform_int_distribution<std::size_t> pos(0, good.size() - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  int parsed = 0, refused = 0;
  for (int i = 0; i < 300; ++i) {
    std::string bytes = good;
    // Corrupt the ELF header, the section header table (at the end) or anywhere.
    for (int k = 0; k < 8; ++k) {
      std::size_t p = pos(rng);
      if (k % 3 == 0) {
        p %= 64;
      } else if (k % 3 == 1) {
        p = good.size() - 1 - (p % 2048);
      }
      bytes[p] = static_cast<char>(byte(rng));
    }
    std::string path = d / "corrupt.so";
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    ElfInfoResult r = readPluginInfo(path);
    if (r.info) {
      ++parsed;
      CHECK(r.error.empty());
      (void)checkPluginInfo(*r.info);  // must not crash on whatever it read
    } else {
      ++refused;
      CHECK_FALSE(r.error.empty());
    }
  }
  CHECK(parsed + refused == 300);
  CHECK(refused > 0);
}

TEST_CASE("readPluginInfo and checkPluginInfo on the good record") {
  ElfInfoResult r = readPluginInfo(fixture("filter-fx-good"));
  REQUIRE(r.info.has_value());
  CHECK(r.error.empty());
  // Exactly the three entry points are exported (the version script did its job).
  std::vector<std::string> syms = r.symbols;
  std::sort(syms.begin(), syms.end());
  CHECK(syms == std::vector<std::string>{SY_SYMBOL_CREATE, SY_SYMBOL_INFO, SY_SYMBOL_SCHEMA});

  const sy_plugin_info good = *r.info;
  CHECK(checkPluginInfo(good).empty());

  sy_plugin_info x = good;
  x.struct_size = sizeof(sy_plugin_info) + 16;  // a later minor appended fields: accepted
  CHECK(checkPluginInfo(x).empty());
  x = good;
  x.struct_size = sizeof(sy_plugin_info) - 4;
  CHECK(checkPluginInfo(x).find("info record is") != std::string::npos);
  x = good;
  x.kind = 7;
  CHECK(checkPluginInfo(x) == "incompatible switchyard plugin 'fx-good': unknown kind 7");
  x = good;
  x.flags = 0x80;
  CHECK(checkPluginInfo(x) == "incompatible switchyard plugin 'fx-good': unknown flags 0x80");
  x = good;
  x.flags = SY_FLAG_PARALLEL;
  CHECK(checkPluginInfo(x).empty());  // fx-good is a filter
  x.kind = SY_KIND_SOURCE;
  CHECK(checkPluginInfo(x) == "incompatible switchyard plugin 'fx-good': SY_FLAG_PARALLEL is only for filters");
  x = good;
  x.version[0] = '\0';
  CHECK(checkPluginInfo(x).find("version is empty") != std::string::npos);
  x = good;
  std::memset(x.name, 'a', sizeof x.name);
  CHECK(checkPluginInfo(x).find("name is empty or not NUL-terminated") != std::string::npos);
  x = good;
  std::memset(x.build_fingerprint, 'f', sizeof x.build_fingerprint);
  CHECK(checkPluginInfo(x).find("fingerprint is not NUL-terminated") != std::string::npos);
  x = good;
  std::memset(x.description, 'd', sizeof x.description);
  CHECK(checkPluginInfo(x).find("description is not NUL-terminated") != std::string::npos);
}

namespace {
bool mapped(const std::string &path) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.ends_with(" " + path)) {
      return true;
    }
  }
  return false;
}
void loadAndDrop(const std::string &dir) {
  PluginRegistry reg;
  reg.scan({dir});
  (void)reg.schema("fx-good");
}
}  // namespace

TEST_CASE("SWITCHYARD_NO_DLCLOSE keeps libraries mapped after the registry is gone") {
  TempDir keep, drop;
  copyGood(keep / "switchyard-filter-fx-good.so");
  copyGood(drop / "switchyard-filter-fx-good.so");

  ::unsetenv("SWITCHYARD_NO_DLCLOSE");
  loadAndDrop(drop.path());
  CHECK_FALSE(mapped(drop / "switchyard-filter-fx-good.so"));  // default: unloaded

  ::setenv("SWITCHYARD_NO_DLCLOSE", "1", 1);
  loadAndDrop(keep.path());
  ::unsetenv("SWITCHYARD_NO_DLCLOSE");
  CHECK(mapped(keep / "switchyard-filter-fx-good.so"));
}

TEST_CASE("no refused fixture ever ran code in this process") {
  for (const auto &name : kRefused) {
    CAPTURE(name);
    CHECK_FALSE(markerExists(name));
  }
}

int main(int argc, char **argv) {
  if (argc < 2 || argv[1][0] == '-') {
    std::fprintf(stderr, "usage: %s FIXTURE_DIR [doctest options]\n", argv[0]);
    return 2;
  }
  g_fixtures = argv[1];
  std::string tmpl = (fs::temp_directory_path() / "sy-abi-markers-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::perror("mkdtemp");
    return 2;
  }
  g_markers = tmpl;
  ::setenv("SWITCHYARD_TEST_MARKER_DIR", g_markers.c_str(), 1);

  doctest::Context ctx;
  ctx.applyCommandLine(argc - 1, argv + 1);
  int rc = ctx.run();
  std::error_code ec;
  fs::remove_all(g_markers, ec);
  return rc;
}
