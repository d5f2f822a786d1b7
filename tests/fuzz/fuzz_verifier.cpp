// SPDX-License-Identifier: MIT
//
// Fuzz target "verifier": the verifier filter with a fixed CA made for the fuzzer
// (fuzz_pki.cpp). At start the signer filter signs one envelope with a certificate of that
// CA; the verifier accepts it (checked once). Each input then says what the verifier gets:
//   first byte even: the signed envelope edited by the rest of the input, read as 4-byte
//                    operations (kind, position as 2 bytes, byte): replace, insert, delete;
//   first byte odd:  the rest of the input as the envelope, as is.
// The frame topic is the signed topic. The message goes through the codec's decode() when
// it decodes, else it carries the raw text (as the verifier must handle both).
// Properties: the verifier never crashes, never throws, and never passes an envelope
// whose signed content differs from what was signed: anything it passes parses, and its
// canonical form without `signature` and `certificate` is the original one byte for byte
// (edits that keep the JSON value, e.g. whitespace, are the same signed message).
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "../../plugins/signer/signer.hpp"
#include "../../plugins/verifier/verifier.hpp"
#include "fuzz_check.hpp"
#include "fuzz_pki.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"
#include "switchyard/testkit/context.hpp"

namespace sy = switchyard;
namespace json = switchyard::json;
namespace fedmsg = switchyard::fedmsg;

namespace {

constexpr std::string_view kTopic = "org.fedoraproject.prod.fuzz.signed";

std::string quote(std::string_view s) {
  std::string out;
  json::writeAsciiString(s, out);
  return out;
}

std::string signedContent(std::string_view envelope) {
  auto v = json::parse(envelope);
  if (!v || !v->isObject()) {
    return {};
  }
  return json::canonical(*v, {"signature", "certificate"});
}

struct World {
  sy::testkit::FakeHost host;
  std::unique_ptr<sy::plugins::VerifierFactory> factory;
  std::unique_ptr<sy::plugins::Verifier> verifier;
  sy::testkit::FakeFilterContext ctx;
  std::string envelope;  ///< signed, canonical
  std::string content;   ///< signedContent(envelope)

  World() {
    const syfuzz::Pki &p = syfuzz::pki();
    sy::plugins::SignerFactory signer_factory(
        sy::sdk::Config("{\"cert_file\":" + quote(p.leaf_crt) + ",\"key_file\":" + quote(p.leaf_key) +
                            ",\"username\":\"fuzz\",\"keep_signed\":false}",
                        nullptr, "fuzz-signer", &host));
    auto signer = signer_factory.make();
    sy::testkit::FakeFilterContext sctx;
    FUZZ_CHECK(signer->start(sctx).isOk());
    sy::Message m(std::string(kTopic),
                  R"({"text":"h\u00e9llo \ud83d\ude00","n":1.5,"big":123456789012345678901234567890,"l":[1,{"a":null}]})",
                  R"({"fedora_messaging_severity":20})", "2026-5e7b7d8a-0000-4000-8000-000000000042");
    m.setTimestampMs(1700000000000);
    FUZZ_CHECK(signer->process(sctx, m).kind == sy::Verdict::Kind::Pass);
    FUZZ_CHECK(m.envelope() != nullptr);
    envelope = m.envelope()->text;
    content = signedContent(envelope);
    FUZZ_CHECK(!content.empty());

    factory = std::make_unique<sy::plugins::VerifierFactory>(
        sy::sdk::Config("{\"ca_file\":" + quote(p.ca_crt) +
                            ",\"crl_file\":null,\"routing_policy\":{},\"nitpicky\":false,\"allow_unsigned\":false,\"auth_level\":-1}",
                        nullptr, "fuzz-verifier", &host));
    verifier = factory->make();
    FUZZ_CHECK(verifier->start(ctx).isOk());
    // The untouched envelope verifies, through the codec and as raw text.
    FUZZ_CHECK(verify(envelope).kind == sy::Verdict::Kind::Pass);
  }

  sy::Verdict verify(const std::string &text) {
    sy::Message msg;
    if (!fedmsg::decode(kTopic, text, msg).ok()) {
      msg = sy::Message(std::string(kTopic), "{}");
      auto wire = std::make_shared<fedmsg::WireEnvelope>();  // not decoded
      wire->text = text;
      fedmsg::attach(msg, std::move(wire));
    }
    return verifier->process(ctx, msg);
  }
};

World &world() {
  static World *w = new World;
  return *w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  World &w = world();
  if (size == 0) {
    return 0;
  }
  std::string text;
  if ((data[0] & 1) == 0) {
    text = w.envelope;
    for (std::size_t k = 1; k + 4 <= size; k += 4) {
      const std::size_t pos = ((std::size_t{data[k + 1]} << 8) | data[k + 2]) % (text.size() + 1);
      const char byte = static_cast<char>(data[k + 3]);
      switch (data[k] % 3) {
        case 0:
          if (pos < text.size()) {
            text[pos] = byte;
          }
          break;
        case 1:
          text.insert(pos, 1, byte);
          break;
        default:
          if (pos < text.size()) {
            text.erase(pos, 1);
          }
          break;
      }
    }
  } else {
    text.assign(reinterpret_cast<const char *>(data) + 1, size - 1);
  }
  const sy::Verdict v = w.verify(text);
  if (v.kind == sy::Verdict::Kind::Pass) {
    FUZZ_CHECK(signedContent(text) == w.content);
  } else {
    FUZZ_CHECK(v.kind == sy::Verdict::Kind::Drop);
    FUZZ_CHECK(!v.reason.empty());
  }
  return 0;
}
