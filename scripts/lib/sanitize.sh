# Sourced by scripts/test after lib/setup.sh: the AddressSanitizer + UndefinedBehaviorSanitizer
# build and the tests run under it (docs/testing.md says why these ones).
#
# The build: meson's own b_sanitize=address,undefined with g++ (Debian's g++ 12 ships
# libasan and libubsan), -fno-sanitize-recover=undefined so that undefined behaviour ends
# the process (a failed test, not a line in a log), at -O1 (the sanitizers' usual level:
# stack traces stay readable, compiling is quicker than -O2).

SY_SANITIZE_BUILD=${SWITCHYARD_SANITIZE_BUILD_DIR:-$SY_BUILD-sanitize}

# ASan with leak detection; both sanitizers stop at the first finding and print a stack.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=1:print_summary=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:print_summary=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-print_suppressions=0}

# Every test of these suites (unit: the codec, the configuration loader and its corpus, the
# replay and HTTP parsers, every fuzz corpus replayed, the differential test; crypto: the
# verifier and signer on hostile envelopes) ...
SY_SANITIZE_SUITES=(unit crypto)
# ... and these end to end tests of code that reads bytes from the network or from files.
SY_SANITIZE_TESTS=(
  config-check-cli integration-stdio integration-cli integration-import-fedmsg-config
  journal-cli journal-corrupt-tail
  zmq-sub-python-publisher zmq-sub-malformed-flood zmq-sub-seq-forged-envelopes
  zmq-pub-envelopes-and-pass-through zmq-sub-protocol-disconnect zmq-tail-and-logger
  replay-endpoint-get-replay replay-signed-verified zmq-sub-replay-gap zmq-sub-replay-error
  http-in-api http-in-check
  amqp-poison-message amqp-no-message-id bridges-bad-input
)

sy_sanitize_configure() {
  local opts=(-Dwerror=true -Db_sanitize=address,undefined -Doptimization=1
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
