// SPDX-License-Identifier: MIT
// `switchyard test`: the test file (docs/testing-pipelines.md) read into a model, every
// problem a Diagnostic at its file:line:column and key path, like the configuration's.
//
//   pipeline_file: ../bridge.yaml        # relative to the test file
//   environment: {FEDMSG_CA: "${PKI}/ca.crt"}
//   tests:
//     - name: a signed message is bridged
//       pipeline: zmq-to-amqp
//       input: [...]                     # checked against the input's type when it runs
//       outputs: {outputs[0]: [{routing_key: a.b, body.n: 1}]}
//       drops: {dropped{reason=bad_signature}: 1}
//       counters: {outputs[0].sent: 1}
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "config.hpp"
#include "switchyard/engine.hpp"
#include "switchyard/json.hpp"

namespace switchyard::cli::pipetest {

/// A node of the test file as written: kind, place, scalar text after ${VAR} expansion.
struct TNode {
  enum class Kind { Null, Scalar, Sequence, Map };
  struct Entry {
    std::string key;
    Mark key_mark;
    std::shared_ptr<const TNode> value;
  };
  Kind kind = Kind::Null;
  Mark mark;
  std::string scalar;
  bool plain = true;  ///< plain scalar: typed as YAML 1.2 (int, float, bool); quoted: a string
  std::vector<std::shared_ptr<const TNode>> items;
  std::vector<Entry> entries;

  [[nodiscard]] const Entry *find(std::string_view key) const {
    for (const auto &e : entries) {
      if (e.key == key) {
        return &e;
      }
    }
    return nullptr;
  }
};

/// The JSON value of a node: plain scalars typed (integer, number, true/false, null),
/// quoted ones strings, mappings objects, sequences arrays.
json::Value toJson(const TNode &n);

/// One step of a field path: a key, or an index ("headers.sent-at", "body.items[0]",
/// `headers["a.b"]`).
struct PathStep {
  std::string key;
  std::optional<std::size_t> index;
};

struct FieldMatcher {
  enum class Op { Equals, Contains, Regex, Exists };
  std::string field;  ///< as written
  std::vector<PathStep> steps;
  Op op = Op::Equals;
  json::Value value;  ///< equals, contains
  std::string pattern;
  std::shared_ptr<const std::regex> re;
  bool exists = true;
  Mark mark;
  std::string path;  ///< key path in the test file, for messages
};

/// `verifies:` of an expected zmq-pub message: the real verifier plugin checks it.
struct VerifySpec {
  std::string ca_file;
  std::string crl_file;
};

struct ExpectedMessage {
  Mark mark;
  std::string path;
  std::vector<FieldMatcher> fields;
  std::optional<VerifySpec> verifies;
};

struct ExpectedOutput {
  std::string selector;  ///< "outputs[1]" or a plugin type
  Mark mark;
  std::string path;
  std::vector<ExpectedMessage> messages;
};

/// `drops:` and `counters:` entries: [PLACE.]NAME[{[LABEL=]VALUE}]: COUNT.
struct CounterCheck {
  std::string text;   ///< the key as written
  std::string place;  ///< "input", "filters[0]", "outputs[1]"; "" = the whole pipeline
  std::string name;
  std::string label;
  std::int64_t count = 0;
  Mark mark;
  std::string path;
};

struct TestInput {
  std::shared_ptr<const TNode> node;
  std::string path;  ///< "tests[0].input[2]"
};

struct TestCase {
  std::string name;
  Mark mark;
  std::string path;
  std::string pipeline;  ///< empty: the file's only pipeline
  Mark pipeline_mark;
  std::vector<TestInput> input;
  std::vector<ExpectedOutput> outputs;
  std::vector<CounterCheck> drops;
  std::vector<CounterCheck> counters;
};

struct TestFile {
  std::string path;
  std::string dir;            ///< of the test file: relative paths are resolved against it
  std::string pipeline_file;  ///< resolved
  Mark pipeline_file_mark;
  std::vector<std::pair<std::string, std::string>> environment;
  std::vector<TestCase> cases;
};

/// The counters whose every non-zero value a case must list under `drops:` (what did not
/// reach an output, and why).
bool isDropCounter(std::string_view name);

/// Reads @p path. False with every problem in @p diags (each at file:line:column).
bool loadTestFile(const std::string &path, TestFile &out, std::vector<Diagnostic> &diags);

/// @p p against the test file's directory, unless absolute.
std::string resolvePath(const TestFile &f, const std::string &p);

/// Parses a field path; "" on success, else the problem.
std::string parseFieldPath(std::string_view text, std::vector<PathStep> &steps);

}  // namespace switchyard::cli::pipetest
