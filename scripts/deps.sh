#!/usr/bin/env bash
# Installs the Debian packages Cozy needs, if any is missing (Debian 12, as root
# or with sudo). Safe to run again: it does nothing when all are there.
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-openmp libgloo-dev libnats-dev
  libopencv-dev libboost-dev libboost-graph-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev libtbb-dev libsqlite3-dev
  clang libclang-rt-14-dev
  dataset-fashion-mnist python3-torch python3-pip
  libtiff-dev libgeotiff-dev libgdcm-dev
)
# The browser tests (tests/browser) drive Debian's chromium: only for the
# tests (`deps.sh --tests`), the main job does not need it.
# The packs' tests compare with numpy, GDAL (python3-gdal, gdal-bin),
# pydicom, nibabel and scipy: also only for the tests. The queue's tests
# start their own NATS server (nats-server).
[ "${1:-}" = "--tests" ] && packages+=(chromium python3-gdal gdal-bin python3-pydicom python3-nibabel python3-scipy
  nats-server)
# The npm clients' tests (tests/clients) need node and npm; a machine that
# has them from elsewhere (NodeSource) keeps its own.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "cozy: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ComfyUI's web frontend for `cozy serve` (pinned, from PyPI).
"$(dirname "$0")/frontend.sh"
# The domain packs' real scenes (Debian packages, unpacked, checked): for the tests.
[ "${1:-}" = "--tests" ] && "$(dirname "$0")/data.sh"
exit 0
