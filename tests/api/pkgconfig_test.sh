#!/usr/bin/env bash
# Installs the library (cmake --install --component library) into a temporary
# prefix, then builds examples/hello.c the way an application would, with
# cc $(pkg-config --cflags --libs genai), and runs it against the installed
# libgenai.so on a temporary GENAI_HOME.
# Usage: pkgconfig_test.sh BUILD_DIR SOURCE_DIR CC [EXTRA_CFLAGS...]
set -euo pipefail
build=$1 src=$2 cc=$3
shift 3
tmp=$(mktemp -d /tmp/genai-pc-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" --component library >/dev/null
pc=$(dirname "$(find "$tmp/prefix" -name genai.pc | head -1)")
[ -n "$pc" ] || { echo "genai.pc was not installed" >&2; exit 1; }
export PKG_CONFIG_PATH=$pc
[ "$(pkg-config --modversion genai)" = "$(sed -n 's/^project(genai VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")" ]
# shellcheck disable=SC2046
"$cc" -std=c11 -Wall -Wextra -Werror "$@" "$src/examples/hello.c" \
  $(pkg-config --cflags --libs genai) -o "$tmp/hello"
libdir=$(pkg-config --variable=libdir genai)
mkdir "$tmp/home"
GENAI_HOME=$tmp/home LD_LIBRARY_PATH=$libdir "$tmp/hello" >"$tmp/out"
grep -q '^models: \[\]$' "$tmp/out"
grep -q '^system: {' "$tmp/out"
echo "pkg-config build ok: $(pkg-config --cflags --libs genai)"
