// SPDX-License-Identifier: MIT
// `switchyard test`: what the runner (cli_test.cpp) uses from its other parts: the input
// messages of a case made ready for their input's stand-in (cli_test_input.cpp: building,
// signing and tampering fedmsg envelopes), the real signer and verifier plugins loaded
// through the test kit's Harness, and the matching of what an output sent against what a
// case expects (cli_test_match.cpp).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli_test_file.hpp"
#include "cli_test_io.hpp"
#include "switchyard/testkit/harness.hpp"

namespace switchyard::cli::pipetest {

/// The real signer and verifier plugins, found in the plugin search path and loaded once
/// per key pair or CA (testkit::Harness): the signer signs test inputs, the verifier
/// checks what zmq-pub would send (`verifies`).
class PluginTools {
 public:
  explicit PluginTools(std::vector<std::string> search_path) : search_path_(std::move(search_path)) {}
  /// @p msg (a decoded envelope) signed with the key pair; throws std::runtime_error.
  std::string sign(const std::string &cert_file, const std::string &key_file, Message msg);
  /// "" when the verifier passes @p msg; else "dropped (REASON)" or why it could not run.
  std::string verify(const VerifySpec &spec, Message msg);

 private:
  std::string pluginFile(const std::string &name);
  std::vector<std::string> search_path_;
  std::map<std::string, std::string> files_;
  std::map<std::string, std::unique_ptr<testkit::Harness>> signers_;
  std::map<std::string, std::unique_ptr<testkit::Harness>> verifiers_;
};

/// Makes @p in ready for an input of @p input_type (zmq-sub, amqp-consume or stdin). False
/// with the problem in @p diags (a bad test file) when it does not fit that input.
bool prepareInput(const TestFile &f, const TestInput &in, std::string_view input_type, PluginTools &tools,
                  RawInput &out, std::vector<Diagnostic> &diags);

/// Compact JSON of @p v for messages, cut to about @p max characters.
std::string render(const json::Value &v, std::size_t max = 200);

/// Appends one line per difference between @p got and @p want to @p diffs, each starting
/// with @p where ("outputs[0] (amqp-publish) message 1").
void matchMessage(const TestFile &f, const ExpectedMessage &want, const Capture &got, const std::string &where,
                  PluginTools &tools, std::vector<std::string> &diffs);

}  // namespace switchyard::cli::pipetest
