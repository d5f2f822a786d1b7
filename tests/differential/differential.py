#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Differential test of canonical JSON: the codec (json::parse + json::canonical, as the
signer and verifier use them, through the sy-canon helper) against Python's
json.dumps(json.loads(text), sort_keys=True, separators=(",", ":")) under /usr/bin/python3.

    differential.py [--cases N] [--seed S] [--canon PATH] [--save DIR]

`meson test differential-json` runs 10,000 cases; scripts/fuzz runs 100,000 with
`differential.py --cases 100000` (the helper found through SWITCHYARD_BUILD_ROOT, or
--canon). The documents come from a seeded generator (same seed, same documents): nested
objects and arrays, every escape, raw and escaped unicode including astral characters and
lone surrogates, integers of any length (around Python's 4,300-digit limit too), floats with
exponents (overflowing and underflowing ones too), NaN/Infinity, duplicate keys, deep
nesting, all four whitespace bytes; one document in ten is then damaged (a byte changed,
cut short, a control byte, bytes that are not UTF-8, trailing text).

Passes when there are 0 mismatches: where both accept, the bytes are identical; where the
codec refuses, its reason is one of the codec's documented refusal reasons (docs/codec.md),
and where Python accepts what the codec refuses, the document has what docs/codec.md says
the codec refuses on purpose (a key twice in one object, nesting deeper than 128, a lone
high surrogate escape); the codec accepting what Python refuses is always a mismatch.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import time

DOCUMENTED = {"oversize", "invalid_utf8", "invalid_json", "too_deep", "duplicate_keys"}
MAX_DEPTH = 128  # json::ParseLimits::max_depth
WS = " \t\n\r"
SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                 "\t": "\\t", "/": "\\/"}
ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.S)


class Gen:
    """Writes random JSON text directly (not through json.dumps), so that every spelling
    Python accepts can occur."""

    def __init__(self, rng):
        self.r = rng

    def ws(self):
        r = self.r
        if r.random() < 0.8:
            return ""
        return "".join(r.choice(WS) for _ in range(r.randint(1, 3)))

    def char(self):
        r = self.r
        k = r.random()
        if k < 0.55:
            return chr(r.randint(0x20, 0x7E))
        if k < 0.65:
            return r.choice(list(SHORT_ESCAPES))
        if k < 0.72:
            return chr(r.randint(0, 0x1F))  # a control character: must be escaped
        if k < 0.85:
            return chr(r.choice([r.randint(0x80, 0x7FF), r.randint(0x800, 0xD7FF),
                                 r.randint(0xE000, 0xFFFF)]))
        if k < 0.99:
            return chr(r.randint(0x10000, 0x10FFFF))  # astral
        return chr(r.randint(0xD800, 0xDFFF))  # a lone surrogate (only as an escape)

    def spell(self, c):
        """JSON spelling of one character, chosen at random among the valid ones."""
        r = self.r
        cp = ord(c)
        if 0xD800 <= cp <= 0xDFFF:
            return self.uescape(cp)
        if c in SHORT_ESCAPES and (c in '"\\' or cp < 0x20 or r.random() < 0.5):
            return SHORT_ESCAPES[c] if r.random() < 0.7 else self.uescape(cp)
        if cp < 0x20:
            return self.uescape(cp)
        if r.random() < 0.8:
            return c
        if cp >= 0x10000:
            v = cp - 0x10000
            return self.uescape(0xD800 + (v >> 10)) + self.uescape(0xDC00 + (v & 0x3FF))
        return self.uescape(cp)

    def uescape(self, cp):
        s = "\\u%04x" % cp
        return s.upper().replace("\\U", "\\u") if self.r.random() < 0.3 else s

    def string(self, maxlen=12):
        chars = [self.char() for _ in range(self.r.randint(0, maxlen))]
        return '"' + "".join(self.spell(c) for c in chars) + '"'

    def key(self):
        # Short keys from a small alphabet collide often; a few are long and unicode.
        r = self.r
        if r.random() < 0.6:
            return '"' + "".join(self.spell(c) for c in r.choice(["a", "b", "ab", "B", "é", "\U0001f600", "a\u00e9", "topic", "msg"])) + '"'
        return self.string(8)

    def number(self):
        r = self.r
        k = r.random()
        sign = "-" if r.random() < 0.3 else ""
        if k < 0.35:
            return sign + str(r.choice([0, r.randint(0, 9), r.randint(0, 2**31), r.randint(0, 2**64), r.randint(0, 10**30)]))
        if k < 0.37:
            n = r.choice([r.randint(20, 400), 4299, 4300, 4300, 4301, r.randint(4301, 5000)])
            return sign + str(r.randint(1, 9)) + "".join(r.choice("0123456789") for _ in range(n - 1))
        intpart = "0" if r.random() < 0.3 else str(r.randint(1, 9)) + "".join(r.choice("0123456789") for _ in range(r.randint(0, 20)))
        frac = ""
        if r.random() < 0.7:
            frac = "." + "".join(r.choice("0123456789") for _ in range(r.randint(1, 25)))
        exp = ""
        if not frac or r.random() < 0.5:
            e = r.choice([r.randint(0, 30), r.randint(0, 400), r.choice([15, 16, 17, 307, 308, 309, 323, 324, 325, 340])])
            exp = r.choice("eE") + r.choice(["", "+", "-"]) + str(e)
        return sign + intpart + frac + exp

    def scalar(self):
        r = self.r
        k = r.random()
        if k < 0.35:
            return self.string()
        if k < 0.75:
            return self.number()
        if k < 0.93:
            return r.choice(["true", "false", "null"])
        return r.choice(["NaN", "Infinity", "-Infinity"])

    def value(self, depth, budget):
        r = self.r
        if depth >= budget or r.random() < 0.35 + depth * 0.05:
            return self.scalar()
        n = r.randint(0, 5)
        if r.random() < 0.5:
            items = [self.ws() + self.value(depth + 1, budget) + self.ws() for _ in range(n)]
            return "[" + ",".join(items) + "]" if items else "[" + self.ws() + "]"
        members = [self.ws() + self.key() + self.ws() + ":" + self.ws() + self.value(depth + 1, budget) + self.ws()
                   for _ in range(n)]
        return "{" + ",".join(members) + "}" if members else "{" + self.ws() + "}"

    def deep(self):
        r = self.r
        depth = r.choice([r.randint(60, 127), 127, 128, 128, 129, r.randint(129, 300)])
        out = []
        for _ in range(depth - 1):
            out.append(r.choice(["[", '{"k":']))
        inner = self.value(0, 1)
        closing = "".join("]" if o == "[" else "}" for o in reversed(out))
        return "".join(out) + inner + closing

    def document(self):
        r = self.r
        k = r.random()
        if k < 0.03:
            text = self.deep()
        elif k < 0.10:
            text = self.scalar()
        else:
            text = self.value(0, r.randint(1, 6))
        data = (self.ws() + text + self.ws()).encode("utf-8", "surrogatepass")
        if r.random() < 0.10:
            data = self.damage(data)
        return data

    def damage(self, data):
        r = self.r
        pos = r.randint(0, len(data))
        k = r.random()
        if k < 0.2 and data:
            return data[:pos]
        if k < 0.4 and data:
            b = bytearray(data)
            b[min(pos, len(b) - 1)] = r.randint(0, 255)
            return bytes(b)
        bad = r.choice([b"\x00", b"\x01", b"\x1f", b"\x7f", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                        b"\xff", b"\xe2\x82", b"x", b",", b"]", b"}", b'"', b"\\", b"\\u12", b"\\x", b"\xef\xbb\xbf"])
        if k < 0.6:
            return data + bad
        return data[:pos] + bad + data[pos:]


def python_side(data):
    """(canonical bytes or None, refusal, facts) where facts say what the document holds
    that the codec refuses on purpose."""
    facts = set()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "invalid_utf8", facts

    def pairs(ps):
        if len({k for k, _ in ps}) != len(ps):
            facts.add("duplicate_keys")
        return dict(ps)

    def number(tok, convert):
        if too_big_for_reader(tok):
            facts.add("number_too_big")
        return convert(tok)
    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_int=lambda t: number(t, int),
                           parse_float=lambda t: number(t, float))
    except RecursionError:
        return None, "too_deep", facts
    except ValueError as e:
        return None, "invalid_json: %s" % e, facts
    # From the text, not the value: a duplicate key's dropped value counts too.
    if max_depth(text) > MAX_DEPTH:
        facts.add("too_deep")
    if has_lone_high_surrogate(text):
        facts.add("lone_high_surrogate")
    out = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return out.encode("ascii"), None, facts


def max_depth(text):
    """Deepest nesting of a text json.loads accepted, the top level counting as 1."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def has_lone_high_surrogate(text):
    """A \\uD800-\\uDBFF escape not followed at once by a \\uDC00-\\uDFFF one (json.loads
    joins such a pair into one character; the codec refuses the lone one)."""
    escapes = list(ESCAPE.finditer(text))
    for n, m in enumerate(escapes):
        e = m.group(1)
        if e[0] == "u" and 0xD800 <= int(e[1:], 16) <= 0xDBFF:
            nxt = escapes[n + 1] if n + 1 < len(escapes) else None
            if not (nxt and nxt.start() == m.end() and nxt.group(1)[0] == "u"
                    and 0xDC00 <= int(nxt.group(1)[1:], 16) <= 0xDFFF):
                return True
    return False


NUMBER = re.compile(r"-?(\d+)(?:\.(\d+))?(?:[eE]([-+]?)(\d+))?$")


def too_big_for_reader(tok):
    """Whether RapidJSON 1.1 (the codec's reader) refuses the number token: an integer part
    that reaches 1.7976931348623157e307 with a digit still to come, or a positive exponent
    above 308 (plus the fraction's digits, approximated here by allowing any)."""
    m = NUMBER.match(tok)
    if not m:
        return False
    ip, _, esign, exp = m.groups()
    if len(ip) > 1:
        try:
            if float(int(ip[:-1])) >= 1.7976931348623157e307:
                return True
        except OverflowError:
            return True
    return exp is not None and esign != "-" and int(exp) > 308


# What each codec refusal needs to be found in a document Python accepts (docs/codec.md).
# "number_too_big" is a deviation documented in docs/codec.md (RapidJSON's limit).
JUSTIFIED = {"duplicate_keys": {"duplicate_keys"}, "too_deep": {"too_deep"},
             "invalid_json": {"lone_high_surrogate", "number_too_big"}}
MAY_ACCEPT = {"number_too_big"}  # facts that do not always make the codec refuse


def run_codec(canon, docs):
    payload = b"".join(b"%d\n%s" % (len(d), d) for d in docs)
    p = subprocess.run([canon], input=payload, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    if p.returncode != 0:
        sys.exit("sy-canon exited with %d: %s" % (p.returncode, p.stderr.decode(errors="replace")))
    out, i, results = p.stdout, 0, []
    while i < len(out):
        nl = out.index(b"\n", i)
        line = out[i:nl].decode()
        i = nl + 1
        if line.startswith("OK "):
            n = int(line[3:])
            results.append(("ok", out[i:i + n]))
            i += n + 1
        elif line.startswith("ERR "):
            results.append(("err", line[4:]))
        else:
            results.append(("bug", line))
    if len(results) != len(docs):
        sys.exit("sy-canon answered %d of %d documents" % (len(results), len(docs)))
    return results


def compare(doc, ours, py):
    """None when the two agree (under the rules in the module comment), else why not."""
    kind, val = ours
    canon, refusal, facts = py
    if kind == "bug":
        return "codec property failed: " + val
    if kind == "ok":
        if canon is None:
            return "codec accepts what Python refuses (%s)" % refusal
        if facts - MAY_ACCEPT:
            return "codec accepts a document it documents as refused (%s)" % ", ".join(sorted(facts - MAY_ACCEPT))
        if val != canon:
            return "different bytes: codec %r, Python %r" % (val[:300], canon[:300])
        return None
    if val not in DOCUMENTED:
        return "codec refuses with an undocumented reason %r" % val
    if canon is not None and not JUSTIFIED.get(val, set()) & facts:
        return "codec refuses (%s) what Python accepts, and the document has no %s" % (
            val, " or ".join(sorted(JUSTIFIED.get(val, {val}))))
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--canon", default=None, help="the sy-canon helper (default: from SWITCHYARD_BUILD_ROOT)")
    ap.add_argument("--save", default=None, help="write each mismatching document to this directory")
    a = ap.parse_args()
    canon = a.canon or os.path.join(os.environ.get("SWITCHYARD_BUILD_ROOT", "build"), "tests", "differential", "sy-canon")
    start = time.monotonic()
    gen = Gen(random.Random(a.seed))
    stats = {"both accept": 0, "both refuse": 0, "only Python accepts": 0}
    reasons = {}
    mismatches = []
    done = 0
    while done < a.cases:
        docs = [gen.document() for _ in range(min(5000, a.cases - done))]
        for doc, ours in zip(docs, run_codec(canon, docs)):
            py = python_side(doc)
            why = compare(doc, ours, py)
            if why:
                mismatches.append((doc, why))
                continue
            if ours[0] == "ok":
                stats["both accept"] += 1
            else:
                key = ours[1] if py[0] is None else "%s (Python accepts: %s)" % (ours[1], "+".join(sorted(py[2])))
                reasons[key] = reasons.get(key, 0) + 1
                stats["both refuse" if py[0] is None else "only Python accepts"] += 1
        done += len(docs)
    for doc, why in mismatches[:20]:
        print("MISMATCH: %s\n  document: %r" % (why, doc[:400]))
    if a.save and mismatches:
        os.makedirs(a.save, exist_ok=True)
        for n, (doc, _) in enumerate(mismatches):
            with open(os.path.join(a.save, "mismatch-%d.json" % n), "wb") as f:
                f.write(doc)
    print("%d cases (seed %d) in %.1f s: %s; codec refusals: %s; %d mismatches"
          % (a.cases, a.seed, time.monotonic() - start, ", ".join("%d %s" % (v, k) for k, v in stats.items()),
             ", ".join("%s %d" % kv for kv in sorted(reasons.items())), len(mismatches)))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
