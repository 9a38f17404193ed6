#!/usr/bin/env bash
# Installs the Debian 12 packages Proctor needs to build and test. Idempotent: only
# missing packages are installed, so a machine that has them all does no network work.
set -euo pipefail

build_pkgs=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libboost-filesystem1.81-dev libssl-dev libgit2-dev libpugixml-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev doctest-dev libyaml-cpp-dev libcli11-dev
  libarchive-dev libsystemd-dev subversion libbenchmark-dev file
)
test_pkgs=(python3 python3-pytest python3-yaml systemd procps time openssl clang libclang-rt-14-dev)
with_tests=0
if [[ "${1:-}" == "--with-tests" ]]; then with_tests=1; fi

# s3rver (the S3-compatible server the tests use) comes from npm, into .tools/ of the
# checkout; node and npm from Debian unless some node with npm is already there.
install_s3rver() {
  local root
  root=$(cd "$(dirname "$0")/.." && pwd)
  if [[ -x "$root/.tools/node_modules/.bin/s3rver" ]]; then return 0; fi
  echo "install-deps: installing s3rver 3.7.1 from npm into $root/.tools"
  npm install --no-fund --no-audit --loglevel=error --prefix "$root/.tools" s3rver@3.7.1
}

want=("${build_pkgs[@]}")
if ((with_tests)); then
  want+=("${test_pkgs[@]}")
  if ! command -v npm >/dev/null; then want+=(nodejs npm); fi
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#want[@]} packages present"
  if ((with_tests)); then install_s3rver; fi
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
if ((with_tests)); then install_s3rver; fi
