// SPDX-License-Identifier: MIT
// `switchyard test`: the in-memory stand-ins of the network (and stdio) plugins, and what
// they share with the test runner: the messages each input receives, as that transport
// would receive them, and what each output would have sent, encoded as it would send it.
//
// Inputs decode with the transports' own codec calls: zmq-sub's fedmsg::decode() of the
// two frames, amqp-consume's fedora-messaging mapping (fedora_messaging::toMessage(),
// restore_envelope through the envelope carry), stdin's JSON-lines reader. Outputs encode
// the same way: amqp-publish's routing key, message_id and header table
// (fedora_messaging::publishHeaders(), the envelope carry), zmq-pub's envelope (the carried
// one byte-exact, else fedmsg::EnvelopeBuilder), stdout's line. Nothing opens a socket.
//
// THREADING: stand-ins run on the engine's threads; CaseIO is locked.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "switchyard/engine.hpp"
#include "switchyard/json.hpp"
#include "switchyard/message.hpp"

namespace switchyard::cli::pipetest {

/// One message as the real input would receive it.
struct RawInput {
  enum class Kind { Zmq, Amqp, Line };
  Kind kind = Kind::Zmq;
  std::vector<std::string> frames;  ///< zmq-sub: the multipart message
  // amqp-consume: a delivery
  std::string routing_key;
  std::string exchange;
  std::string body;
  std::optional<std::string> message_id;
  std::optional<std::uint64_t> timestamp_s;
  std::optional<json::Value> headers;
  bool redelivered = false;
  std::string line;  ///< stdin: one line (without its newline)
};

/// What an output sent: the fields expected messages are matched against, and for zmq-pub
/// the message decoded from its frames as a subscriber would (for `verifies`).
struct Capture {
  json::Value view = json::Value::object();
  std::optional<Message> wire;
  /// zmq-pub: the `i` a signer gave the envelope (0: none). The real output sends envelopes
  /// of parallel signers in `i` order, so the captures are compared in that order.
  std::uint64_t signer_seq = 0;
};

struct OutputLog {
  std::string type;
  std::vector<Capture> sent;
};

struct CaseIO {
  std::mutex mu;
  std::map<std::string, std::vector<RawInput>> inputs;                // pipeline -> messages
  std::map<std::string, std::map<std::size_t, OutputLog>> outputs;  // pipeline -> outputs[i]
};

/// Whether @p type has an in-memory stand-in (as an input, or as an output).
bool hasInputStandIn(std::string_view type);
bool hasOutputStandIn(std::string_view type);

/// Makes @p engine run every zmq-sub, amqp-consume and stdin input and every zmq-pub,
/// amqp-publish and stdout output through its stand-in, reading from and writing to @p io.
void installStandIns(Engine &engine, const std::shared_ptr<CaseIO> &io);

}  // namespace switchyard::cli::pipetest
