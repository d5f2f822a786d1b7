// SPDX-License-Identifier: MIT
//
// The corpus replay: a main() for a fuzz target in the ordinary build (no libFuzzer). Feeds
// every file of the directories (or files) given on the command line to
// LLVMFuzzerTestOneInput once, in name order, and fails when a directory is missing or holds
// no input at all. A broken property aborts inside the target, naming it; the file being
// fed is printed first so that the log says which input did it.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_check.hpp"

namespace fs = std::filesystem;

int main(int argc, char **argv) {
  std::vector<fs::path> files;
  for (int a = 1; a < argc; ++a) {
    const fs::path p(argv[a]);
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (const auto &e : fs::recursive_directory_iterator(p)) {
        if (e.is_regular_file() && e.path().filename() != "README.md") {
          files.push_back(e.path());
        }
      }
    } else if (fs::is_regular_file(p, ec)) {
      files.push_back(p);
    } else {
      std::fprintf(stderr, "%s: no such file or directory (give the target's corpus directory)\n", argv[a]);
      return 2;
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "no input files: give the target's corpus directory\n");
    return 2;
  }
  std::sort(files.begin(), files.end());
  for (const auto &f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "%s: cannot read\n", f.c_str());
      return 2;
    }
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::fprintf(stderr, "input %s (%zu bytes)\n", f.c_str(), data.size());
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t *>(data.data()), data.size());
  }
  std::printf("%zu inputs, no property broken\n", files.size());
  return 0;
}
