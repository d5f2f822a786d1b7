// SPDX-License-Identifier: MIT
// Times as `switchyard query` and the headers' `sent-at` give them (db.hpp: parseTime).
#include <cctype>
#include <cstdlib>
#include <ctime>

#include "db.hpp"

namespace switchyard::store {

namespace {

bool allDigits(const std::string &s, std::size_t from, std::size_t n) {
  if (from + n > s.size()) {
    return false;
  }
  for (std::size_t i = from; i < from + n; ++i) {
    if (std::isdigit(static_cast<unsigned char>(s[i])) == 0) {
      return false;
    }
  }
  return true;
}

int num(const std::string &s, std::size_t from, std::size_t n) { return std::stoi(s.substr(from, n)); }

}  // namespace

std::optional<double> parseTime(const std::string &s) {
  if (s.empty()) {
    return std::nullopt;
  }
  // Epoch seconds.
  {
    char *end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    bool plain = s.find_first_not_of("0123456789.") == std::string::npos;
    if (plain && end == s.c_str() + s.size()) {
      return v;
    }
  }
  // ISO 8601: YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|+HH:MM|-HH:MM|+HHMM]
  if (!allDigits(s, 0, 4) || s.size() < 10 || s[4] != '-' || !allDigits(s, 5, 2) || s[7] != '-' ||
      !allDigits(s, 8, 2)) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = num(s, 0, 4) - 1900;
  tm.tm_mon = num(s, 5, 2) - 1;
  tm.tm_mday = num(s, 8, 2);
  double frac = 0;
  std::size_t i = 10;
  if (i < s.size() && (s[i] == 'T' || s[i] == ' ')) {
    if (!allDigits(s, i + 1, 2) || i + 3 >= s.size() || s[i + 3] != ':' || !allDigits(s, i + 4, 2)) {
      return std::nullopt;
    }
    tm.tm_hour = num(s, i + 1, 2);
    tm.tm_min = num(s, i + 4, 2);
    i += 6;
    if (i < s.size() && s[i] == ':') {
      if (!allDigits(s, i + 1, 2)) {
        return std::nullopt;
      }
      tm.tm_sec = num(s, i + 1, 2);
      i += 3;
      if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
        std::size_t j = i + 1;
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j])) != 0) {
          ++j;
        }
        if (j == i + 1) {
          return std::nullopt;
        }
        frac = std::stod("0." + s.substr(i + 1, j - i - 1));
        i = j;
      }
    }
  }
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
    return std::nullopt;
  }
  long offset = 0;
  if (i < s.size()) {
    if (s[i] == 'Z' && i + 1 == s.size()) {
      i += 1;
    } else if ((s[i] == '+' || s[i] == '-') && allDigits(s, i + 1, 2)) {
      int sign = s[i] == '-' ? -1 : 1;
      int hh = num(s, i + 1, 2);
      int mm = 0;
      std::size_t j = i + 3;
      if (j < s.size() && s[j] == ':') {
        ++j;
      }
      if (j < s.size()) {
        if (!allDigits(s, j, 2) || j + 2 != s.size()) {
          return std::nullopt;
        }
        mm = num(s, j, 2);
      }
      offset = sign * (hh * 3600L + mm * 60L);
      i = s.size();
    } else {
      return std::nullopt;
    }
  }
  if (i != s.size()) {
    return std::nullopt;
  }
  return static_cast<double>(timegm(&tm) - offset) + frac;
}

}  // namespace switchyard::store
