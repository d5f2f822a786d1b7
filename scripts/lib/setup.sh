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
  # tests/packaging: build the Debian package, lintian, its man pages and unit
  build-essential debhelper help2man lintian man-db systemd
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

sy_build() {
  local opts=(-Dwerror=true)
  if [ -f "$SY_BUILD/meson-info/intro-buildoptions.json" ]; then
    sy_log "reconfiguring $SY_BUILD"
    meson configure "$SY_BUILD" "${opts[@]}" >/dev/null
  else
    sy_log "configuring $SY_BUILD"
    meson setup "$SY_BUILD" "$SY_ROOT" "${opts[@]}"
  fi
  sy_log "building"
  ninja -C "$SY_BUILD"
}
