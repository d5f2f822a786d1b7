// SPDX-License-Identifier: MIT
//
// Test kit: a Harness pushes messages through ONE plugin, without an engine, and gives
// back what came out -- a filter's verdicts and changed messages, what a source
// submitted, how a sink settled each delivery -- with the plugin's counters and log lines.
// The plugin is either a built .so (loaded with dlopen, through its three entry points)
// or a class compiled into the test:
//
//   auto h = testkit::Harness::load("build/switchyard-sink-jsonl.so", R"({"path":"/tmp/x"})");
//   h.send(Message("a.b", R"({"n":1})"));
//   REQUIRE(h.settle(std::chrono::seconds(5)));
//   CHECK(h.settled()[0].outcome == Outcome::Delivered);
//   CHECK(h.counter("lines_written") == 1);
//
//   auto f = testkit::Harness::of<TopicPrefix>(kSchema, R"({"prefix":"org."})");
//   auto r = f.process(Message("a.b", "{}"));   // r.verdict, r.message
//
// The configuration is JSON (the YAML mapping of the plugin's entry, without `type`);
// like the core, the harness fills in the schema's defaults and refuses missing required
// keys, values outside a key's allowed values or bounds, and unknown keys.
// THREADING: the test's thread calls every method (it plays the plugin's thread).
#pragma once

#include <dlfcn.h>

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "switchyard/sdk.hpp"
#include "switchyard/testkit/context.hpp"

namespace switchyard::testkit {

/// The configuration @p json with @p schema's defaults filled in; throws
/// std::runtime_error naming the key for what the core would refuse.
inline std::string applySchema(const sy_config_key *schema, std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    throw std::runtime_error("harness: the configuration is not a JSON object");
  }
  auto &alloc = doc.GetAllocator();
  for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
    bool known = false;
    for (const sy_config_key *k = schema; k != nullptr && k->name != nullptr; ++k) {
      known = known || std::string_view(k->name) == m->name.GetString();
    }
    if (!known) {
      throw std::runtime_error(fmt::format("harness: unknown key '{}'", m->name.GetString()));
    }
  }
  for (const sy_config_key *k = schema; k != nullptr && k->name != nullptr; ++k) {
    auto it = doc.FindMember(k->name);
    if (it == doc.MemberEnd() || it->value.IsNull()) {
      if (k->required != 0) {
        throw std::runtime_error(fmt::format("harness: missing required key '{}'", k->name));
      }
      if (k->default_json == nullptr) {
        continue;
      }
      rapidjson::Document def(&alloc);
      def.Parse(k->default_json);
      if (def.HasParseError()) {
        throw std::runtime_error(fmt::format("harness: the default of '{}' is not JSON", k->name));
      }
      if (it != doc.MemberEnd()) {
        doc.RemoveMember(it);
      }
      doc.AddMember(rapidjson::Value(k->name, alloc), rapidjson::Value(def, alloc), alloc);
      continue;
    }
    const rapidjson::Value &v = it->value;
    auto values = sdk::enumValues(k->enum_values);
    auto check = [&](const rapidjson::Value &e) {
      if (!values.empty() && e.IsString()) {
        bool ok = false;
        for (const auto &a : values) {
          ok = ok || a == e.GetString();
        }
        if (!ok) {
          throw std::runtime_error(fmt::format("harness: '{}' is not one of {}", k->name, k->enum_values));
        }
      }
      if (e.IsNumber() && (((k->bounds & SY_BOUND_MIN) != 0 && e.GetDouble() < k->min) ||
                           ((k->bounds & SY_BOUND_MAX) != 0 && e.GetDouble() > k->max))) {
        throw std::runtime_error(fmt::format("harness: '{}' is out of its bounds", k->name));
      }
    };
    if (v.IsArray()) {
      for (const auto &e : v.GetArray()) {
        check(e);
      }
    } else {
      check(v);
    }
  }
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  doc.Accept(w);
  return {sb.GetString(), sb.GetSize()};
}

class Harness {
 public:
  struct FilterResult {
    Verdict verdict;
    Message message;  ///< the message as the filter left it
  };
  using Settled = FakeSinkContext::Settled;

  /// Loads the plugin library at @p path and makes one instance from @p config_json.
  /// Throws std::runtime_error when it cannot (with the plugin's own message).
  static Harness load(const std::string &path, std::string_view config_json = "{}") {
    void *h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char *err = ::dlerror();
      throw std::runtime_error(fmt::format("harness: cannot load {}: {}", path, err != nullptr ? err : "?"));
    }
    std::shared_ptr<void> lib(h, [](void *p) { ::dlclose(p); });
    auto *info = static_cast<const sy_plugin_info *>(::dlsym(h, SY_SYMBOL_INFO));
    auto *schema = reinterpret_cast<sy_plugin_schema_fn *>(::dlsym(h, SY_SYMBOL_SCHEMA));
    auto *create = reinterpret_cast<sy_plugin_create_fn *>(::dlsym(h, SY_SYMBOL_CREATE));
    if (info == nullptr || schema == nullptr || create == nullptr) {
      throw std::runtime_error(fmt::format("harness: {} lacks the three entry points", path));
    }
    if (info->magic != SWITCHYARD_INFO_MAGIC || info->abi_major != SWITCHYARD_ABI_MAJOR) {
      throw std::runtime_error(fmt::format("harness: {} is not a plugin of ABI {}", path, SWITCHYARD_ABI_MAJOR));
    }
    return Harness(std::move(lib), static_cast<sy_plugin_kind>(info->kind), schema(),
                   [create](const CreateArgs *a) { return create(a); }, config_json);
  }

  /// Makes one instance of @p T (an instance class, or a factory derived from
  /// PluginFactory: then give @p kind) the way SWITCHYARD_PLUGIN would.
  template <typename T>
  static Harness of(const sy_config_key *schema, std::string_view config_json = "{}",
                    sy_plugin_kind kind = kindOf<T>()) {
    return Harness(nullptr, kind, schema, [](const CreateArgs *a) { return sdk::createFactory<T>(a); },
                   config_json);
  }

  Harness(Harness &&) noexcept = default;
  Harness &operator=(Harness &&) noexcept = default;
  ~Harness() { stop(); }

  [[nodiscard]] sy_plugin_kind kind() const noexcept { return kind_; }

  /// Starts the instance (the first push does it too). Idempotent.
  Status start() {
    if (!started_) {
      started_ = true;
      switch (kind_) {
        case SY_KIND_SOURCE: start_status_ = static_cast<Source *>(plugin_.get())->start(*source_ctx_); break;
        case SY_KIND_SINK: start_status_ = static_cast<Sink *>(plugin_.get())->start(*sink_ctx_); break;
        case SY_KIND_FILTER: start_status_ = static_cast<Filter *>(plugin_.get())->start(*filter_ctx_); break;
      }
    }
    return start_status_;
  }

  // --- Filters ---------------------------------------------------------------------------
  FilterResult process(Message msg) {
    need(SY_KIND_FILTER);
    startOrThrow();
    Verdict v = static_cast<Filter *>(plugin_.get())->process(*filter_ctx_, msg);
    return {std::move(v), std::move(msg)};
  }
  std::vector<FilterResult> process(std::vector<Message> msgs) {
    std::vector<FilterResult> out;
    for (auto &m : msgs) {
      out.push_back(process(std::move(m)));
    }
    return out;
  }

  // --- Sinks -----------------------------------------------------------------------------
  /// Hands @p msg to the sink; returns its delivery id.
  DeliveryId send(Message msg) {
    need(SY_KIND_SINK);
    startOrThrow();
    DeliveryId id = next_id_++;
    sink_ctx_->handed();
    static_cast<Sink *>(plugin_.get())->send(*sink_ctx_, std::move(msg), id);
    return id;
  }
  /// Polls the sink until every delivery is settled; false when @p timeout passed first.
  bool settle(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    need(SY_KIND_SINK);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (sink_ctx_->pending() > 0) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return false;
      }
      (void)static_cast<Sink *>(plugin_.get())->poll(*sink_ctx_, std::chrono::milliseconds(10));
    }
    return true;
  }
  [[nodiscard]] std::vector<Settled> settled() const { return sink_ctx_->settled(); }

  // --- Sources ---------------------------------------------------------------------------
  /// Polls the source until it submitted @p max messages, ended its stream, or @p timeout
  /// passed; completes each message at once with @p outcome (as an output would) and
  /// returns them in order.
  std::vector<Message> pull(std::size_t max, std::chrono::milliseconds timeout = std::chrono::seconds(10),
                            Outcome outcome = Outcome::Delivered, std::string_view reason = {}) {
    need(SY_KIND_SOURCE);
    startOrThrow();
    auto *src = static_cast<Source *>(plugin_.get());
    std::vector<Message> out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.size() < max && !ended_ && std::chrono::steady_clock::now() < deadline) {
      Status st = src->poll(*source_ctx_, std::chrono::milliseconds(10));
      ended_ = st.code() == Status::Code::EndOfStream || st.code() == Status::Code::Fatal;
      for (auto &s : source_ctx_->take()) {
        src->complete(s.tag, outcome, outcome == Outcome::Delivered ? std::string_view() : reason);
        source_ctx_->completed();
        out.push_back(std::move(s.message));
      }
    }
    return out;
  }
  /// Whether the source ended its stream (or failed fatally).
  [[nodiscard]] bool ended() const noexcept { return ended_; }

  // --- Everything ------------------------------------------------------------------------
  /// Counter @p name (with @p label) of the instance; 0 when never looked up.
  [[nodiscard]] std::uint64_t counter(std::string_view name, std::string_view label = {}) const {
    switch (kind_) {
      case SY_KIND_SOURCE: return source_ctx_->value(name, label);
      case SY_KIND_SINK: return sink_ctx_->value(name, label);
      default: return filter_ctx_->value(name, label);
    }
  }
  [[nodiscard]] RecordingLogger &logger() {
    switch (kind_) {
      case SY_KIND_SOURCE: return source_ctx_->logger();
      case SY_KIND_SINK: return sink_ctx_->logger();
      default: return filter_ctx_->logger();
    }
  }
  [[nodiscard]] FakeHost &host() noexcept { return *host_; }
  [[nodiscard]] FakeFilterContext &filterContext() noexcept { return *filter_ctx_; }
  [[nodiscard]] FakeSourceContext &sourceContext() noexcept { return *source_ctx_; }
  [[nodiscard]] FakeSinkContext &sinkContext() noexcept { return *sink_ctx_; }
  /// The instance (cast it to the class given to of<T>() to look inside).
  [[nodiscard]] Plugin *plugin() noexcept { return plugin_.get(); }

  /// Shuts the instance down as the core would (sink: flush, source: stopIntake), then
  /// stop(). Idempotent; the destructor calls it.
  void stop(std::chrono::milliseconds flush_timeout = std::chrono::seconds(5)) {
    if (!plugin_ || !started_ || stopped_) {
      return;
    }
    stopped_ = true;
    switch (kind_) {
      case SY_KIND_SOURCE:
        source_ctx_->setStopping(true);
        static_cast<Source *>(plugin_.get())->stopIntake(*source_ctx_);
        source_ctx_->closeIntake();
        static_cast<Source *>(plugin_.get())->stop();
        break;
      case SY_KIND_SINK:
        sink_ctx_->setStopping(true);
        (void)static_cast<Sink *>(plugin_.get())->flush(*sink_ctx_, flush_timeout);
        static_cast<Sink *>(plugin_.get())->stop();
        break;
      case SY_KIND_FILTER:
        static_cast<Filter *>(plugin_.get())->stop();
        break;
    }
  }

 private:
  using Create = std::function<PluginFactory *(const CreateArgs *)>;

  template <typename T>
  static constexpr sy_plugin_kind kindOf() {
    if constexpr (std::is_base_of_v<Source, T>) {
      return SY_KIND_SOURCE;
    } else if constexpr (std::is_base_of_v<Sink, T>) {
      return SY_KIND_SINK;
    } else {
      return SY_KIND_FILTER;
    }
  }

  Harness(std::shared_ptr<void> lib, sy_plugin_kind kind, const sy_config_key *schema, const Create &create,
          std::string_view config_json)
      : lib_(std::move(lib)),
        kind_(kind),
        host_(std::make_unique<FakeHost>()),
        filter_ctx_(std::make_unique<FakeFilterContext>("test", "filters[0]")),
        source_ctx_(std::make_unique<FakeSourceContext>()),
        sink_ctx_(std::make_unique<FakeSinkContext>()) {
    std::string config = applySchema(schema, config_json);
    Status error;
    CreateArgs args;
    args.config_json = config;
    args.instance = "harness";
    args.logger = &host_->logger();
    args.error = &error;
    args.host = host_.get();
    factory_.reset(create(&args));
    if (!factory_) {
      throw std::runtime_error(fmt::format("harness: create failed: {}{}", error.message(),
                                           error.key().empty() ? "" : " (key '" + error.key() + "')"));
    }
    InstanceArgs ia;
    ia.instance = "harness";
    ia.error = &error;
    plugin_.reset(factory_->instantiate(ia));
    if (!plugin_) {
      throw std::runtime_error(fmt::format("harness: instantiate failed: {}", error.message()));
    }
  }
  void need(sy_plugin_kind k) const {
    if (kind_ != k) {
      throw std::logic_error("harness: this call is for another kind of plugin");
    }
  }
  void startOrThrow() {
    Status st = start();
    if (!st.isOk()) {
      throw std::runtime_error(fmt::format("harness: start failed: {}", st.message()));
    }
  }

  // Destroyed in reverse: the instance, then its factory, the contexts, and the library last.
  std::shared_ptr<void> lib_;
  sy_plugin_kind kind_;
  std::unique_ptr<FakeHost> host_;
  std::unique_ptr<FakeFilterContext> filter_ctx_;
  std::unique_ptr<FakeSourceContext> source_ctx_;
  std::unique_ptr<FakeSinkContext> sink_ctx_;
  std::unique_ptr<PluginFactory> factory_;
  std::unique_ptr<Plugin> plugin_;
  bool started_ = false;
  bool stopped_ = false;
  bool ended_ = false;
  Status start_status_;
  DeliveryId next_id_ = 1;
};

}  // namespace switchyard::testkit
