#!/usr/bin/env bash
# Installs qpipe's build and test dependencies from Debian packages.
# Idempotent: packages already present are left alone. Needs root (or sudo).
set -euo pipefail

packages=(
  cmake g++ make pkg-config
  libyaml-cpp-dev nlohmann-json3-dev libeigen3-dev
  libprotobuf-dev protobuf-compiler libonnx-dev
  libtbb-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
