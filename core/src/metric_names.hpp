// SPDX-License-Identifier: MIT
// What a counter's label means, one table for every place that prints counters: the
// Prometheus exposition (/metrics), the `stats:` log lines and the JSON log records.
#pragma once

#include <string_view>

namespace switchyard {

/// The name of the label of a labelled counter: "outcome" for `completed`, "code" for
/// `channel_closures`, ...; "reason" for every counter not in the table (dropped, failed,
/// retried, lost, errors, ...). Documented in docs/architecture.md (Counters).
[[nodiscard]] std::string_view labelName(std::string_view counter) noexcept;

}  // namespace switchyard
