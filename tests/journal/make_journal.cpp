// SPDX-License-Identifier: MIT
// Test helper: writes a journal for the `switchyard journal` tests.
//   make_journal DIR N RELEASED [AFTER]
// appends N messages (topic org.example.jN, id msg-N), releases seqs 1..RELEASED, flushes,
// then appends AFTER more messages (so the last record of the file is a message).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "journal.hpp"

int main(int argc, char **argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: make_journal DIR N RELEASED [AFTER]\n");
    return 2;
  }
  namespace jn = switchyard::journal;
  jn::Options o;
  o.dir = argv[1];
  const int n = std::atoi(argv[2]);
  const int released = std::atoi(argv[3]);
  const int after = argc > 4 ? std::atoi(argv[4]) : 0;
  std::vector<jn::Problem> problems;
  std::string error;
  auto j = jn::Journal::open(o, problems, error);
  if (!j) {
    std::fprintf(stderr, "make_journal: %s\n", error.c_str());
    return 1;
  }
  int i = 0;
  auto add = [&] {
    ++i;
    switchyard::Message m("org.example.j" + std::to_string(i), "{\"n\":" + std::to_string(i) + "}", "{}",
                          "msg-" + std::to_string(i), 1700000000000 + i);
    return j->append(m).status == jn::Journal::AppendStatus::Ok;
  };
  for (int k = 0; k < n; ++k) {
    if (!add()) {
      return 1;
    }
  }
  for (int s = 1; s <= released; ++s) {
    j->release(static_cast<std::uint64_t>(s));
  }
  j->flush();
  for (int k = 0; k < after; ++k) {
    if (!add()) {
      return 1;
    }
  }
  return 0;
}
