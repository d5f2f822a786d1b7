# Sourced by scripts/test after lib/setup.sh: the AddressSanitizer + UndefinedBehaviorSanitizer
# build and the tests run under it (docs/testing.md says why these ones).
#
# The build: meson's own b_sanitize=address,undefined with g++ (Debian's g++ 12 ships
# libasan and libubsan), -fno-sanitize-recover=undefined so that undefined behaviour ends
# the process (a failed test, not a line in a log), at -O1 (the sanitizers' usual level:
# stack traces stay readable, compiling is quicker than -O2). Without werror: g++ 12 warns
# falsely under the sanitizers' instrumentation (-Wmaybe-uninitialized inside std::regex),
# and the normal build enforces the warnings already.

SY_SANITIZE_BUILD=${SWITCHYARD_SANITIZE_BUILD_DIR:-$SY_BUILD-sanitize}

# ASan with leak detection; both sanitizers stop at the first finding and print a stack.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=1:print_summary=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:print_summary=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-print_suppressions=0}

# The tests of the code that reads untrusted bytes that fit CI's time budget with their
# cold sanitizer build (docs/testing.md: what, why, and the measured cost): the codec
# (envelope decode, one-pass scanner, canonical JSON and the differential test, UTF-8,
# fedmsg <-> AMQP mapping), the replay query codec, the HTTP ingest request parser, the
# AMQP frame mapping, and the fuzz corpora replayed through their targets. SY_SANITIZE_SUITES takes whole suites.
SY_SANITIZE_SUITES=()
SY_SANITIZE_TESTS=(
  utf8 envelope-scan fedmsg-codec canonical-json differential-json bridges-envelope-carry
  replay-codec http-in-unit amqp-publish-frames
  fuzz-corpus-envelope fuzz-corpus-replay fuzz-corpus-http fuzz-corpus-amqp fuzz-corpus-config
)

sy_sanitize_configure() {
  local opts=(-Dwerror=false -Db_sanitize=address,undefined -Doptimization=1
    -Dcpp_args=-fno-sanitize-recover=undefined -Dc_args=-fno-sanitize-recover=undefined)
  if [ -f "$SY_SANITIZE_BUILD/meson-info/intro-buildoptions.json" ]; then
    meson configure "$SY_SANITIZE_BUILD" "${opts[@]}" >/dev/null
  else
    meson setup "$SY_SANITIZE_BUILD" "$SY_ROOT" "${opts[@]}" >/dev/null
  fi
  # Regenerate now if meson files changed, so that the introspection below is current.
  ninja -C "$SY_SANITIZE_BUILD" build.ninja >/dev/null
}

# The selected tests' names, one per line, then (after a line "--") the build targets they
# need (their executables and their declared dependencies), relative to the build dir.
sy_sanitize_selection() {
  local dir=$SY_SANITIZE_BUILD
  /usr/bin/python3 - "$dir" "${SY_SANITIZE_SUITES[*]}" "${SY_SANITIZE_TESTS[*]}" \
    3< <(meson introspect --tests "$dir") 4< <(meson introspect --targets "$dir") <<'PY'
import json, os, sys
build, suites, names = sys.argv[1], set(sys.argv[2].split()), set(sys.argv[3].split())
tests = json.load(open(3))
targets = json.load(open(4))
by_id = {t["id"]: t for t in targets}
by_file = {f: t for t in targets for f in t["filename"]}
chosen = [t for t in tests
          if t["name"] in names or any(s.split(":")[-1] in suites for s in t["suite"])]
missing = names - {t["name"] for t in chosen}
if missing:
    sys.exit("scripts/test: no such tests for the sanitizer run: " + " ".join(sorted(missing)))
need = set()
for t in chosen:
    for d in t.get("depends", []):
        if d in by_id:
            need.update(by_id[d]["filename"])
    if t["cmd"] and t["cmd"][0] in by_file:
        need.update(by_file[t["cmd"][0]]["filename"])
for t in chosen:
    print(t["name"])
print("--")
for f in sorted(need):
    print(os.path.relpath(f, build))
PY
}

# Builds what the selected tests need and runs them; returns meson test's status.
sy_sanitize_run() {
  sy_sanitize_configure || return 1
  local sel names=() targets=() seen=0 line
  sel=$(sy_sanitize_selection) || return 1
  while IFS= read -r line; do
    if [ "$line" = "--" ]; then seen=1; continue; fi
    if [ $seen = 0 ]; then names+=("$line"); else targets+=("$line"); fi
  done <<<"$sel"
  sy_log "sanitizer build: ${#targets[@]} targets in $SY_SANITIZE_BUILD"
  ninja -C "$SY_SANITIZE_BUILD" "${targets[@]}" || return 1
  sy_log "running ${#names[@]} tests under ASan+UBSan"
  meson test -C "$SY_SANITIZE_BUILD" --no-rebuild --print-errorlogs --num-processes 2 \
    --timeout-multiplier 3 "${names[@]}"
}
