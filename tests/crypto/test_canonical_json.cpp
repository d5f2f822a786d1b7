// SPDX-License-Identifier: MIT
//
// Canonical JSON (core/src/canonical_json.cpp) against Python's json module: a generated
// corpus compared byte for byte with json.dumps(sort_keys=True, separators=(',', ':')) run
// in this test, interop-spec 2.9's reference vector, and the spec's verified examples.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <openssl/evp.h>

#include <cmath>
#include <limits>
#include <string>

#include "switchyard/json.hpp"
#include "test_util.hpp"

using switchyard::json::canonicalize;

namespace {

std::string canon(std::string_view text) {
  std::string reason;
  auto out = canonicalize(text, &reason);
  return out ? *out : "ERROR:" + reason;
}

std::string sha1Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  REQUIRE(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha1(), nullptr) == 1);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

}  // namespace

TEST_CASE("generated corpus canonicalizes exactly like Python's json.dumps") {
  constexpr int kCount = 1500;
  auto r = sytest::run(sytest::pyHelper() + " corpus 20240611 " + std::to_string(kCount));
  REQUIRE(r.status == 0);
  std::size_t pos = 0;
  int cases = 0;
  int mismatches = 0;
  while (pos < r.out.size()) {
    std::size_t nl = r.out.find('\n', pos);
    REQUIRE(nl != std::string::npos);
    std::size_t in_len = 0;
    std::size_t out_len = 0;
    REQUIRE(std::sscanf(r.out.c_str() + pos, "%zu %zu", &in_len, &out_len) == 2);
    pos = nl + 1;
    REQUIRE(pos + in_len + out_len <= r.out.size());
    std::string_view input(r.out.data() + pos, in_len);
    std::string_view expected(r.out.data() + pos + in_len, out_len);
    pos += in_len + out_len;
    ++cases;
    std::string got = canon(input);
    if (got != expected) {
      ++mismatches;
      if (mismatches <= 5) {
        FAIL_CHECK("case " << cases << "\n input:    " << input << "\n expected: " << expected
                           << "\n got:      " << got);
      }
    }
  }
  CHECK(cases == kCount);
  CHECK(mismatches == 0);
}

TEST_CASE("interop-spec 2.9 reference vector: canonical bytes and SHA-1") {
  // The spec's input envelope, written the way a non-canonical publisher might: other key
  // order, whitespace, raw UTF-8, and crypto added as the signer does.
  const std::string input =
      "{ \"topic\": \"org.fedoraproject.dev.interop.test\", \"timestamp\": 1700000000, \"i\": 1,\n"
      "  \"username\": \"interop\", \"msg_id\": \"2023-00000000-0000-4000-8000-000000000001\",\n"
      "  \"msg\": {\"text\": \"h\xc3\xa9llo \xf0\x9f\x98\x80\", \"n\": 1.5, \"list\": [1, null, true]},\n"
      "  \"crypto\": \"x509\" }";
  const std::string expected =
      "{\"crypto\":\"x509\",\"i\":1,\"msg\":{\"list\":[1,null,true],\"n\":1.5,\"text\":\"h\\u00e9llo "
      "\\ud83d\\ude00\"},\"msg_id\":\"2023-00000000-0000-4000-8000-000000000001\",\"timestamp\":1700000000,"
      "\"topic\":\"org.fedoraproject.dev.interop.test\",\"username\":\"interop\"}";
  std::string got = canon(input);
  CHECK(got == expected);
  CHECK(got.size() == 235);
  CHECK(sha1Hex(got) == "ba10b73102ab00fb0b9eeff3ad8e8d8ad195d647");

  // Same through the Value API, as the signer uses it: set crypto, drop credentials.
  auto v = switchyard::json::parse(
      "{\"signature\":\"x\",\"certificate\":\"y\",\"topic\":\"org.fedoraproject.dev.interop.test\","
      "\"timestamp\":1700000000,\"i\":1,\"username\":\"interop\","
      "\"msg_id\":\"2023-00000000-0000-4000-8000-000000000001\","
      "\"msg\":{\"text\":\"h\\u00e9llo \\ud83d\\ude00\",\"n\":1.50,\"list\":[1,null,true]}}");
  REQUIRE(v);
  v->set("crypto", switchyard::json::Value::fromString("x509"));
  CHECK(switchyard::json::canonical(*v, {"signature", "certificate"}) == expected);
}

TEST_CASE("interop-spec 2.2 verified examples") {
  CHECK(canon("1.0") == "1.0");
  CHECK(canon("1E2") == "100.0");
  CHECK(canon("1e16") == "1e+16");
  CHECK(canon("1e15") == "1000000000000000.0");
  CHECK(canon("0.00001") == "1e-05");
  CHECK(canon("0.0001") == "0.0001");
  CHECK(canon("3.14159265358979323846") == "3.141592653589793");
  CHECK(canon("12345678901234567890123") == "12345678901234567890123");
  CHECK(canon("1.5e300") == "1.5e+300");
  CHECK(canon("123456789012345678.0") == "1.2345678901234568e+17");
  CHECK(canon("-0") == "0");
  CHECK(canon("-0.0") == "-0.0");
  CHECK(canon("1e-400") == "0.0");
  CHECK(canon("-1e-400") == "-0.0");
  CHECK(canon("[NaN,Infinity,-Infinity]") == "[NaN,Infinity,-Infinity]");
  CHECK(canon("{\"\xf0\x9f\x98\x80\":5,\"z\":1,\"\xef\xbf\xbf\":4,\"A\":2,\"\xc3\xa9\":3}") ==
        "{\"A\":2,\"z\":1,\"\\u00e9\":3,\"\\uffff\":4,\"\\ud83d\\ude00\":5}");
  CHECK(canon("\"\\u0001 \\u007f \\u2028\"") == "\"\\u0001 \\u007f \\u2028\"");
  CHECK(canon("\"\\b\\f\\n\\r\\t\\\"\\\\\\/\"") == "\"\\b\\f\\n\\r\\t\\\"\\\\/\"");
  CHECK(canon("\"a\\udc00b\"") == "\"a\\udc00b\"");
  CHECK(canon(" [ {} , [ ] , \"\" ] ") == "[{},[],\"\"]");
  CHECK(canon("true") == "true");
}

TEST_CASE("pythonFloatRepr follows float.__repr__") {
  using switchyard::json::pythonFloatRepr;
  CHECK(pythonFloatRepr(0.0) == "0.0");
  CHECK(pythonFloatRepr(-0.0) == "-0.0");
  CHECK(pythonFloatRepr(1400000000.0) == "1400000000.0");
  CHECK(pythonFloatRepr(9999999999999998.0) == "9999999999999998.0");
  CHECK(pythonFloatRepr(1e16) == "1e+16");
  CHECK(pythonFloatRepr(0.0001) == "0.0001");
  CHECK(pythonFloatRepr(0.00009999) == "9.999e-05");
  CHECK(pythonFloatRepr(5e-324) == "5e-324");
  CHECK(pythonFloatRepr(1.7976931348623157e308) == "1.7976931348623157e+308");
  CHECK(pythonFloatRepr(std::numeric_limits<double>::quiet_NaN()) == "NaN");
  CHECK(pythonFloatRepr(-std::numeric_limits<double>::infinity()) == "-Infinity");
}

TEST_CASE("duplicate keys are refused at any depth") {
  CHECK(canon("{\"a\":1,\"a\":2}") == "ERROR:duplicate_keys");
  CHECK(canon("{\"topic\":\"x\",\"msg\":{\"k\":[{\"b\":1,\"c\":2,\"b\":3}]}}") == "ERROR:duplicate_keys");
  // The same key spelled with an escape is the same key.
  CHECK(canon("{\"topic\":\"x\",\"t\\u006fpic\":\"y\"}") == "ERROR:duplicate_keys");
  CHECK(canon("[{\"a\":1},{\"a\":1}]") == "[{\"a\":1},{\"a\":1}]");
}

TEST_CASE("malformed and hostile input is refused with a reason, never a crash") {
  CHECK(canon("") == "ERROR:malformed_json");
  CHECK(canon("{") == "ERROR:malformed_json");
  CHECK(canon("[1,]") == "ERROR:malformed_json");
  CHECK(canon("Inf") == "ERROR:malformed_json");
  CHECK(canon("-Inf") == "ERROR:malformed_json");
  CHECK(canon("-NaN") == "ERROR:malformed_json");
  CHECK(canon("01") == "ERROR:malformed_json");
  CHECK(canon("\"\xff\"") == "ERROR:malformed_json");
  CHECK(canon("\"a\x01\"") == "ERROR:malformed_json");
  CHECK(canon(std::string("{}\0{}", 5)) == "ERROR:malformed_json");
  CHECK(canon("{} {}") == "ERROR:malformed_json");
  CHECK(canon("\"\\ud800\"") == "ERROR:malformed_json");  // documented deviation: lone high surrogate
  CHECK(canon(std::string(200, '[') + std::string(200, ']')) == "ERROR:too_deep");
  CHECK(canon(std::string(100, '[') + std::string(100, ']')).size() == 200);
  CHECK(canon(std::string(5000, '1')) == "ERROR:malformed_json");  // > Python's int_max_str_digits
  switchyard::json::ParseLimits small;
  small.max_bytes = 10;
  std::string reason;
  CHECK_FALSE(canonicalize("[1,2,3,4,5,6,7]", &reason, small));
  CHECK(reason == "too_large");
}

TEST_CASE("Value editing keeps members sorted and unique") {
  auto v = switchyard::json::parse("{\"b\":1,\"d\":2}");
  REQUIRE(v);
  v->set("c", switchyard::json::Value::fromInt(3));
  v->set("a", switchyard::json::Value::fromString("x"));
  v->set("d", switchyard::json::Value::fromDouble(0.5));
  CHECK(switchyard::json::canonical(*v) == "{\"a\":\"x\",\"b\":1,\"c\":3,\"d\":0.5}");
  CHECK(v->erase("b"));
  CHECK_FALSE(v->erase("zz"));
  CHECK(switchyard::json::canonical(*v, {"a"}) == "{\"c\":3,\"d\":0.5}");
  CHECK(v->findString("a") == std::optional<std::string_view>("x"));
  CHECK_FALSE(v->findString("c"));
}
