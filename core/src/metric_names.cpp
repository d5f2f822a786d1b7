// SPDX-License-Identifier: MIT
#include "metric_names.hpp"

#include <array>
#include <utility>

namespace switchyard {

std::string_view labelName(std::string_view counter) noexcept {
  // Counters whose label is not a drop/failure reason. Keep sorted by counter name.
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 5> kLabels{{
      {"channel_closures", "code"},
      {"completed", "outcome"},
      {"permanent_errors", "kind"},
      {"publisher_seq_gaps", "publisher"},
      {"publisher_seq_missing", "publisher"},
  }};
  for (const auto &[name, label] : kLabels) {
    if (name == counter) {
      return label;
    }
  }
  return "reason";
}

}  // namespace switchyard
