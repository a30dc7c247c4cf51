#!/usr/bin/env bash
# Installs every system package genai needs to build, test and run.
#
# Debian/Ubuntu (apt-get) is automated here. Equivalent packages elsewhere:
#   Fedora:  dnf install gcc clang cmake pkgconf-pkg-config libuv-devel libmicrohttpd-devel \
#              libcurl-devel jansson-devel sqlite-devel openssl-devel libcmocka-devel \
#              libarchive-devel nodejs npm
#   macOS:   brew install cmake pkg-config libuv libmicrohttpd curl jansson sqlite openssl@3 \
#              cmocka libarchive node
#   Windows: vcpkg install libuv libmicrohttpd curl jansson sqlite3 openssl cmocka libarchive
#            (or MSYS2: pacman -S mingw-w64-x86_64-{cmake,libuv,libmicrohttpd,curl,jansson,
#             sqlite3,openssl,cmocka,libarchive})
#
# Runs apt-get only when a package is missing, so repeated runs are fast.
# Needs root (or sudo) the first time.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libuv1-dev libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev
  libssl-dev libcmocka-dev libarchive-dev
  curl python3
)
# node and npm run the OpenAI JavaScript client test (tests/http/openai_client).
# Any install of them will do: Debian's nodejs and npm, or NodeSource's nodejs,
# which bundles npm and conflicts with Debian's npm package, so check commands.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: this script installs with apt-get (Debian/Ubuntu);" >&2
  echo "see the package names at the top of $0 for other systems." >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
