// SPDX-License-Identifier: MIT
// Loss accounting over fedmsg's per-publisher counter `i`: turns the
// silent losses of ZeroMQ PUB/SUB into numbers. Header-only so the
// unit tests can exercise it without a socket.
//
// A value skipped by a jump of `i` is not missing yet: it is *open* for a short reorder
// window (a parallel signer lets envelopes leave slightly out of order).
// An open value that arrives is `Reordered`; one still open when the publisher's highest
// `i` is `reorder_count` past it, or `reorder_ms` after the jump that opened it, is judged
// missing. Only judged values count as missing, so "missing" is net loss, not a guess that
// a late arrival corrects afterwards. With both limits 0 every gap is judged at once.
//
// The state of every publisher (highest, judged frontier, open values) can be saved to
// and loaded from a small text form (save()/load()), so that a restarted router judges
// the window it was down for as a gap instead of taking the next `i` as a new baseline.
#pragma once

#include <algorithm>
#include <bitset>
#include <charconv>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

namespace switchyard::zmqt {

/// What one observed `i` means for its publisher, and what it settled.
struct SeqEvent {
  enum class Kind : std::uint8_t {
    First,      ///< first message seen from this publisher: its baseline (joining late is no gap)
    InOrder,    ///< exactly the expected next value
    Ahead,      ///< `i` jumped: `opened` values were skipped and are open (not missing yet)
    Duplicate,  ///< a value seen before (or judged before the state was loaded), again
    Reordered,  ///< an open value arrived inside the reorder window: late, never counted missing
    Late,       ///< a value that had already been judged missing arrived after all
    Restart,    ///< a new publisher process: `i` fell back to 1, far below the highest, or
                ///< below it on a new connection; the open values of the old one are judged,
                ///< and the new one's values before `i` are open
  };
  Kind kind = Kind::First;
  std::uint64_t opened = 0;   ///< values this message left open (Ahead, Restart)
  std::uint64_t missing = 0;  ///< values of this publisher judged missing during this call
  std::uint64_t gaps = 0;     ///< runs of consecutive missing values among them
};

/// Tracks, per publisher key, the highest `i`, the frontier up to which gaps are judged and
/// a window of recently seen values. THREADING: one thread (the source's).
class SeqTracker {
 public:
  /// Values this far below the highest one seen are treated as a restart rather than a
  /// late arrival; also the size of the duplicate-detection window.
  static constexpr std::uint64_t kWindow = 4096;
  /// Largest reorder window by count (the open values must stay inside kWindow).
  static constexpr std::uint64_t kMaxReorder = 1024;

  /// @p reorder_count: a skipped value is judged missing once the highest `i` is this far
  /// past it; @p reorder_ms: or this long after the jump that skipped it (0: no time limit).
  explicit SeqTracker(std::uint64_t reorder_count = 0, std::int64_t reorder_ms = 0)
      : reorder_count_(std::min(reorder_count, kMaxReorder)), reorder_ms_(reorder_ms) {}

  /// @p now_ms: a monotonic clock, for the time limit. @p epoch: the connection generation
  /// of the socket the message came in on; a value at or below the highest that arrives on
  /// a newer connection than the publisher's previous message is a restart.
  SeqEvent observe(const std::string &key, std::uint64_t i, std::int64_t now_ms = 0, std::uint64_t epoch = 0) {
    auto [it, inserted] = publishers_.try_emplace(key);
    Publisher &p = it->second;
    SeqEvent ev;
    if (inserted) {
      p.key = &it->first;
      p.epoch = epoch;
      p.base = i;
      p.highest = i;
      p.judged = i;
      p.window.set(i % kWindow);
      ev.kind = SeqEvent::Kind::First;
      return ev;
    }
    bool new_connection = epoch != p.epoch;
    p.epoch = epoch;
    if (i > p.highest) {
      ev.kind = i == p.highest + 1 ? SeqEvent::Kind::InOrder : SeqEvent::Kind::Ahead;
      advance(p, i, now_ms, ev);
      return ev;
    }
    // i <= highest from here on.
    bool in_window = p.highest - i < kWindow;
    bool open = in_window && i > p.judged && i >= p.base && !p.seen(i);
    if (new_connection || (i == 1 && !open) || !in_window) {
      restart(p, i, now_ms, ev);
      return ev;
    }
    if (p.seen(i)) {
      ev.kind = SeqEvent::Kind::Duplicate;
      return ev;
    }
    p.mark(i);
    if (open) {
      setOpen(p, p.open - 1);
      ev.kind = SeqEvent::Kind::Reordered;
    } else if (i < p.base) {
      ev.kind = SeqEvent::Kind::Reordered;  // from before the baseline: never counted
    } else {
      ev.kind = SeqEvent::Kind::Late;
    }
    return ev;
  }

  /// Judges the values whose time in the window is over. @p fn(key, missing, gaps, upto)
  /// is called for each publisher with something judged (missing may be 0: all arrived).
  template <typename Fn>
  void expire(std::int64_t now_ms, Fn &&fn) {
    while (!marks_.empty() && marks_.front().opened_ms + reorder_ms_ <= now_ms) {
      Mark m = marks_.front();
      marks_.pop_front();
      if (m.pub->gen != m.gen || m.hi <= m.pub->judged) {
        continue;  // judged already (by count, or a restart)
      }
      SeqEvent ev;
      judgeTo(*m.pub, m.hi, ev);
      fn(*m.pub->key, ev.missing, ev.gaps, m.hi);
    }
  }

  /// Judges every open value now (shutdown without a state file).
  template <typename Fn>
  void judgeAll(Fn &&fn) {
    for (auto &[key, p] : publishers_) {
      if (p.judged < p.highest) {
        SeqEvent ev;
        std::uint64_t hi = p.highest;
        judgeTo(p, hi, ev);
        if (ev.missing > 0) {
          fn(key, ev.missing, ev.gaps, hi);
        }
      }
    }
    marks_.clear();
  }

  [[nodiscard]] std::size_t publishers() const noexcept { return publishers_.size(); }
  /// Values skipped and not judged yet, over all publishers.
  [[nodiscard]] std::uint64_t open() const noexcept { return open_total_; }

  /// The state of every publisher as text: a header line, then one line per publisher:
  /// `KEY BASE HIGHEST JUDGED RUN BITS`, KEY percent-encoded, RUN 1 when the value JUDGED
  /// was missing, BITS the seen values of (JUDGED, HIGHEST] in hex (bit k = JUDGED+1+k),
  /// or `-` when empty.
  [[nodiscard]] std::string save() const {
    std::string out(kHeader);
    out += '\n';
    for (const auto &[key, p] : publishers_) {
      // Skip the seen prefix of the open part: nothing about it is still undecided.
      std::uint64_t j = p.judged;
      bool run = p.prev_missing;
      while (j < p.highest && p.seen(j + 1)) {
        ++j;
        run = false;
      }
      appendEncoded(out, key);
      out += ' ';
      out += std::to_string(p.base);
      out += ' ';
      out += std::to_string(p.highest);
      out += ' ';
      out += std::to_string(j);
      out += run ? " 1 " : " 0 ";
      if (j == p.highest) {
        out += '-';
      } else {
        static constexpr char kHex[] = "0123456789abcdef";
        std::uint64_t n = p.highest - j;
        for (std::uint64_t k = 0; k < n; k += 4) {
          unsigned nib = 0;
          for (std::uint64_t b = 0; b < 4 && k + b < n; ++b) {
            if (p.seen(j + 1 + k + b)) {
              nib |= 1U << b;
            }
          }
          out += kHex[nib];
        }
      }
      out += '\n';
    }
    return out;
  }

  /// Replaces the state with the one saved in @p text. Open values get a new time window
  /// from @p now_ms. Values at or below a publisher's judged frontier count as seen (the
  /// text does not say which of them were missing: already counted, by the process that
  /// wrote it). On a malformed text: false, @p error says why, and the tracker is empty.
  bool load(std::string_view text, std::int64_t now_ms, std::string &error) {
    publishers_.clear();
    marks_.clear();
    open_total_ = 0;
    std::size_t line_no = 0;
    auto fail = [&](std::string_view why) {
      error = "line " + std::to_string(line_no) + ": " + std::string(why);
      publishers_.clear();
      marks_.clear();
      open_total_ = 0;
      return false;
    };
    bool header = false;
    while (!text.empty()) {
      std::size_t nl = text.find('\n');
      if (nl == std::string_view::npos) {
        ++line_no;
        return fail("truncated (no end of line)");
      }
      std::string_view line = text.substr(0, nl);
      text.remove_prefix(nl + 1);
      ++line_no;
      if (!header) {
        if (line != kHeader) {
          return fail("not a zmq-sub sequence state file (unknown header)");
        }
        header = true;
        continue;
      }
      std::string_view f[6];
      std::size_t n = 0;
      while (!line.empty() && n < 6) {
        std::size_t sp = line.find(' ');
        f[n++] = line.substr(0, sp);
        line = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
      }
      if (n != 6 || !line.empty()) {
        return fail("expected 6 fields");
      }
      std::string key;
      std::uint64_t base = 0;
      std::uint64_t highest = 0;
      std::uint64_t judged = 0;
      if (!decodeKey(f[0], key) || !number(f[1], base) || !number(f[2], highest) || !number(f[3], judged) ||
          (f[4] != "0" && f[4] != "1")) {
        return fail("bad field");
      }
      if (base == 0 || highest < base || judged + 1 < base || judged > highest ||
          highest - judged > kMaxReorder) {
        return fail("inconsistent values");
      }
      std::uint64_t width = highest - judged;
      if ((width == 0) != (f[5] == "-") || (width > 0 && f[5].size() != (width + 3) / 4)) {
        return fail("bad bit field length");
      }
      auto [it, inserted] = publishers_.try_emplace(std::move(key));
      if (!inserted) {
        return fail("publisher listed twice");
      }
      Publisher &p = it->second;
      p.key = &it->first;
      p.base = base;
      p.highest = highest;
      p.judged = judged;
      p.prev_missing = f[4] == "1";
      std::uint64_t low = std::max(base, highest >= kWindow ? highest - kWindow + 1 : 1);
      for (std::uint64_t v = low; v <= judged; ++v) {
        p.mark(v);
      }
      std::uint64_t open = 0;
      for (std::uint64_t k = 0; k < width; ++k) {
        char c = f[5][k / 4];
        int nib = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (nib < 0) {
          return fail("bad hex digit");
        }
        if ((nib >> (k % 4)) & 1) {
          p.mark(judged + 1 + k);
        } else {
          ++open;
        }
      }
      if (!p.seen(highest)) {
        return fail("highest value not marked seen");
      }
      setOpen(p, open);
      if (open > 0) {
        pushMark(p, highest, now_ms);
      }
    }
    if (!header) {
      return fail("empty");
    }
    return true;
  }

 private:
  static constexpr std::string_view kHeader = "switchyard-zmq-sub-seq 1";

  struct Publisher {
    const std::string *key = nullptr;
    std::uint64_t base = 1;     // lowest value tracked (the baseline, or 1 after a restart)
    std::uint64_t highest = 0;  // highest value seen
    std::uint64_t judged = 0;   // every value <= judged is decided (seen, or counted missing)
    std::uint64_t open = 0;     // values in (judged, highest] not seen
    std::uint64_t epoch = 0;    // connection generation of the last message
    std::uint64_t gen = 0;      // incarnation, to invalidate time marks at a restart
    bool prev_missing = false;  // the value `judged` was counted missing (a run goes on)
    std::bitset<kWindow> window;  // bit (v % kWindow): v seen, for v in (highest-kWindow, highest]

    [[nodiscard]] bool seen(std::uint64_t v) const { return window.test(v % kWindow); }
    void mark(std::uint64_t v) { window.set(v % kWindow); }
  };
  struct Mark {
    std::int64_t opened_ms;
    Publisher *pub;  // nodes of an unordered_map do not move
    std::uint64_t gen;
    std::uint64_t hi;  // judge up to here when the time is over
  };

  void setOpen(Publisher &p, std::uint64_t open) {
    open_total_ = open_total_ - p.open + open;
    p.open = open;
  }

  void pushMark(Publisher &p, std::uint64_t hi, std::int64_t now_ms) {
    if (reorder_ms_ > 0) {
      marks_.push_back({now_ms, &p, p.gen, hi});
    }
  }

  /// Decides every value in (judged, upto]; upto <= highest, inside the window.
  void judgeTo(Publisher &p, std::uint64_t upto, SeqEvent &ev) {
    std::uint64_t open = p.open;
    for (std::uint64_t v = p.judged + 1; v <= upto; ++v) {
      if (v >= p.base && !p.seen(v)) {
        ++ev.missing;
        --open;
        if (!p.prev_missing) {
          ++ev.gaps;
        }
        p.prev_missing = true;
      } else {
        p.prev_missing = false;
      }
    }
    if (upto > p.judged) {
      p.judged = upto;
    }
    setOpen(p, open);
  }

  /// i > highest.
  void advance(Publisher &p, std::uint64_t i, std::int64_t now_ms, SeqEvent &ev) {
    std::uint64_t limit = i > reorder_count_ ? i - reorder_count_ : 0;  // judge up to here
    // The known part first, while the window still holds it.
    judgeTo(p, std::min(limit, p.highest), ev);
    std::uint64_t skipped = i - p.highest - 1;
    std::uint64_t at_once = 0;
    if (skipped > 0 && limit > p.highest) {
      // Values of the jump that are already out of the reorder window: missing at once
      // (all unseen by definition; counted in O(1) however far the jump).
      at_once = std::min(limit, i - 1) - p.highest;
      ev.missing += at_once;
      ++ev.gaps;  // `highest` was seen, so this is a new run
      p.prev_missing = true;
      p.judged = p.highest + at_once;
    }
    if (i - p.highest >= kWindow) {
      p.window.reset();
    } else {
      for (std::uint64_t v = p.highest + 1; v <= i; ++v) {
        p.window.reset(v % kWindow);
      }
    }
    p.highest = i;
    p.mark(i);
    ev.opened = skipped;
    setOpen(p, p.open + skipped - at_once);
    if (skipped > at_once) {
      pushMark(p, i - 1, now_ms);
    }
    judgeTo(p, std::min(limit, i), ev);  // i itself, when there is no window
  }

  void restart(Publisher &p, std::uint64_t i, std::int64_t now_ms, SeqEvent &ev) {
    judgeTo(p, p.highest, ev);  // the old incarnation's open values will never come
    ++p.gen;
    ev.kind = SeqEvent::Kind::Restart;
    p.base = 1;
    p.highest = 0;
    p.judged = 0;
    p.prev_missing = false;
    p.window.reset();
    setOpen(p, 0);
    // The new incarnation's values 1..i-1 are a jump from 0.
    advance(p, i, now_ms, ev);
    ev.kind = SeqEvent::Kind::Restart;
  }

  static void appendEncoded(std::string &out, std::string_view key) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (unsigned char c : key) {
      if (c <= 0x20 || c >= 0x7f || c == '%') {
        out += '%';
        out += kHex[c >> 4];
        out += kHex[c & 15];
      } else {
        out += static_cast<char>(c);
      }
    }
    if (key.empty()) {
      out += "%";  // never an empty field; decodes to ""
    }
  }
  static bool decodeKey(std::string_view in, std::string &out) {
    if (in == "%") {
      out.clear();
      return true;
    }
    out.clear();
    for (std::size_t k = 0; k < in.size(); ++k) {
      if (in[k] != '%') {
        out += in[k];
        continue;
      }
      unsigned v = 0;
      if (k + 2 >= in.size()) {
        return false;
      }
      auto r = std::from_chars(in.data() + k + 1, in.data() + k + 3, v, 16);
      if (r.ec != std::errc() || r.ptr != in.data() + k + 3) {
        return false;
      }
      out += static_cast<char>(v);
      k += 2;
    }
    return true;
  }
  static bool number(std::string_view s, std::uint64_t &v) {
    auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size();
  }

  std::uint64_t reorder_count_;
  std::int64_t reorder_ms_;
  std::unordered_map<std::string, Publisher> publishers_;
  std::deque<Mark> marks_;  // in time order (one per jump)
  std::uint64_t open_total_ = 0;
};

}  // namespace switchyard::zmqt
