# shellcheck shell=bash
# Shared set-up for scripts/test, scripts/demo and scripts/bench: install the Debian 12
# packages Switchyard needs (apt-get as root, sudo otherwise; nothing when all are present),
# then configure and build with meson.

SY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SY_BUILD=${SWITCHYARD_BUILD_DIR:-$SY_ROOT/build}

# Build and test dependencies, all from Debian 12.
SY_PACKAGES=(
  meson ninja-build pkg-config g++ cmake binutils
  libzmq3-dev cppzmq-dev librabbitmq-dev libboost-dev libboost-filesystem-dev
  libyaml-cpp-dev rapidjson-dev libfmt-dev libspdlog-dev libcli11-dev doctest-dev libssl-dev
  openssl rabbitmq-server python3 python3-zmq python3-pika python3-cryptography
  # the operations HTTP endpoint, and the Prometheus text parser its tests read it with
  libcpp-httplib-dev python3-prometheus-client
  # sd_notify: `switchyard run` tells systemd it is ready, alive and stopping
  libsystemd-dev
  # tests/pipelines: `switchyard test` opens no socket, which strace watches
  strace
  # tests/packaging: build the Debian package, lintian, its man pages and unit
  build-essential debhelper help2man lintian man-db systemd
  # the rest of the fedmsg bus: SRV discovery (c-ares), the message store (SQLite,
  # PostgreSQL's libpq), HTTPS ingest (cpp-httplib, above); their test peers: a private
  # DNS server and a private PostgreSQL server on 127.0.0.1
  libc-ares-dev libsqlite3-dev libpq-dev dnsmasq postgresql
)

sy_log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

sy_install_packages() {
  local missing=() p
  for p in "${SY_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    sy_log "all ${#SY_PACKAGES[@]} Debian packages present"
    return 0
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "switchyard: missing packages (${missing[*]}) and neither root nor sudo available" >&2
      return 1
    fi
    sudo=(sudo)
  fi
  sy_log "installing ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # rabbitmq-server's maintainer scripts try to start a system broker; a private node is
  # started by scripts/rabbitmq-local instead, so policy-rc.d keeps the system one down.
  if [ ! -e /usr/sbin/policy-rc.d ] && [ -z "${sudo[*]}" ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    SY_REMOVE_POLICY=1
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
  if [ "${SY_REMOVE_POLICY:-0}" = 1 ]; then
    rm -f /usr/sbin/policy-rc.d
  fi
}

# Configures $SY_BUILD with the options every script uses (werror), or re-applies them.
sy_configure() {
  local opts=(-Dwerror=true)
  if [ -f "$SY_BUILD/meson-info/intro-buildoptions.json" ]; then
    sy_log "reconfiguring $SY_BUILD"
    meson configure "$SY_BUILD" "${opts[@]}" >/dev/null
  else
    sy_log "configuring $SY_BUILD"
    meson setup "$SY_BUILD" "$SY_ROOT" "${opts[@]}"
  fi
}

# Everything: the command, the plugins, the tests and the benchmarks (scripts/test).
sy_build() {
  sy_configure
  sy_log "building"
  ninja -C "$SY_BUILD"
}

# The targets that running pipelines needs, one per line, relative to $SY_BUILD: the
# `switchyard` command and every plugin of the tree (not the test plugins, test binaries or
# benchmarks), as `meson introspect --targets` lists them.
sy_runtime_targets() {
  meson introspect --targets "$SY_BUILD" | /usr/bin/python3 -c '
import json, os, sys
for t in json.load(sys.stdin):
    for f in t["filename"]:
        b = os.path.basename(f)
        if (b.startswith("switchyard-") and b.endswith(".so") and "/tests/" not in f) or b == "switchyard":
            print(os.path.relpath(f, sys.argv[1]))
' "$SY_BUILD"
}

# Only what running pipelines needs (scripts/demo): a fraction of sy_build, same options and
# build dir, so a later sy_build only adds the rest.
sy_build_runtime() {
  sy_configure
  local targets
  mapfile -t targets < <(sy_runtime_targets)
  if [ ${#targets[@]} -eq 0 ]; then
    echo "switchyard: meson lists no targets in $SY_BUILD" >&2
    return 1
  fi
  sy_log "building ${#targets[@]} targets: the switchyard command and its plugins"
  ninja -C "$SY_BUILD" "${targets[@]}"
}
