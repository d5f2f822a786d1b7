// SPDX-License-Identifier: MIT
// sy-canon: the codec's canonical JSON as the signer and verifier use it, for
// differential.py. Reads records "<length>\n<bytes>" from stdin until EOF and answers each
// with one line:
//   OK <length>\n<canonical bytes>\n    json::parse() (default limits) + json::canonical()
//   ERR <reason>\n                        json::parse() refused it; <reason> is its reason
//   BUG <what>\n                          an internal property failed (see below)
// Properties checked on every accepted document, as the verifier relies on them: the
// canonical text parses again to the same canonical text, and when it is an object,
// json::scanCanonicalObject() accepts it (the verifier's one-pass fast path) unless it
// holds what that scan gives up on by design (NaN/Infinity, a lone surrogate escape, a
// key written with an escape).
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "switchyard/json.hpp"

namespace json = switchyard::json;

namespace {

// Whether a key anywhere in @p v is written with an escape in the canonical form.
bool hasEscapedKey(const json::Value &v) {
  for (const auto &m : v.members) {
    std::string k;
    json::writeAsciiString(m.key, k);
    if (k.find('\\') != std::string::npos || hasEscapedKey(m.value)) {
      return true;
    }
  }
  for (const auto &i : v.items) {
    if (hasEscapedKey(i)) {
      return true;
    }
  }
  return false;
}

// Whether scanCanonicalObject() may give up on canonical text @p t by design: it has
// NaN/Infinity (checked loosely: anywhere) or a lone surrogate escape.
bool scanMayGiveUp(const std::string &t) {
  if (t.find("NaN") != std::string::npos || t.find("Infinity") != std::string::npos) {
    return true;
  }
  auto isSurrogate = [&](std::size_t i, const char *lead) {
    return i + 6 <= t.size() && t.compare(i, 3, "\\ud") == 0 &&
           std::string_view(lead).find(t[i + 3]) != std::string_view::npos;
  };
  for (std::size_t i = 0; i + 6 <= t.size(); ++i) {
    if (t[i] != '\\') {
      continue;
    }
    if (isSurrogate(i, "89ab")) {
      if (!isSurrogate(i + 6, "cdef")) {
        return true;
      }
      i += 11;
    } else if (isSurrogate(i, "cdef")) {
      return true;
    } else {
      ++i;  // skip the escaped character (e.g. the second backslash of "\\\\")
    }
  }
  return false;
}

}  // namespace

int main() {
  std::ios::sync_with_stdio(false);
  std::string header;
  std::string doc;
  std::string out;
  while (std::getline(std::cin, header)) {
    char *end = nullptr;
    const unsigned long n = std::strtoul(header.c_str(), &end, 10);
    if (header.empty() || end == nullptr || *end != '\0') {
      std::cerr << "sy-canon: bad record header '" << header << "'\n";
      return 2;
    }
    doc.assign(n, '\0');
    if (n > 0 && !std::cin.read(doc.data(), static_cast<std::streamsize>(n))) {
      std::cerr << "sy-canon: short record (" << n << " bytes announced)\n";
      return 2;
    }
    std::string reason;
    auto v = json::parse(doc, &reason);
    if (!v) {
      std::cout << "ERR " << (reason.empty() ? "(none)" : reason) << '\n';
      continue;
    }
    out = json::canonical(*v);
    std::string again_reason;
    auto again = json::parse(out, &again_reason);
    if (!again) {
      std::cout << "BUG canonical text refused by parse: " << again_reason << '\n';
      continue;
    }
    if (json::canonical(*again) != out) {
      std::cout << "BUG canonical text not a fixed point\n";
      continue;
    }
    if (v->type == json::Value::Type::Object) {
      std::vector<json::RawMember> members;
      if (!json::scanCanonicalObject(out, members) && !scanMayGiveUp(out) && !hasEscapedKey(*v)) {
        std::cout << "BUG scanCanonicalObject refused the canonical text\n";
        continue;
      }
    }
    std::cout << "OK " << out.size() << '\n' << out << '\n';
  }
  std::cout.flush();
  return std::cout ? 0 : 1;
}
