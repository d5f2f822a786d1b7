// SPDX-License-Identifier: MIT
// Helpers shared by the subcommands that build a configuration from their arguments.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace switchyard::cli {

/// A YAML double-quoted scalar holding @p s literally: quotes and backslashes escaped,
/// control characters as \xXX, and `$` doubled because the configuration loader expands
/// `${VAR}` in values while command-line text must stay as typed.
inline std::string yamlQuote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c == '$') {
      out += "$$";
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

/// A YAML flow sequence of quoted scalars.
inline std::string yamlList(const std::vector<std::string> &items) {
  std::string out = "[";
  for (std::size_t k = 0; k < items.size(); ++k) {
    if (k > 0) {
      out += ", ";
    }
    out += yamlQuote(items[k]);
  }
  out += ']';
  return out;
}

}  // namespace switchyard::cli
