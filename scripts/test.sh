#!/usr/bin/env bash
# Builds genai and runs the whole test suite twice: a normal build (warnings
# as errors, assertions on) and an AddressSanitizer + UndefinedBehaviorSanitizer
# build; then compiles a Release build (-O3, NDEBUG) and a Debug build (-O0),
# whose different warnings (maybe-uninitialized at -O3, format-truncation
# without the optimizer's value ranges at -O0) are errors too. Installs missing
# system packages first.
#
#   scripts/test.sh            all of them
#   scripts/test.sh normal     only the normal build
#   scripts/test.sh asan       only the sanitizer build
#   scripts/test.sh release    only the Release and Debug compiles
set -euo pipefail
cd "$(dirname "$0")/.."

"$(pwd)/scripts/install-deps.sh"
"$(pwd)/scripts/check-banned.sh"

jobs=$(nproc 2>/dev/null || echo 2)
which=${1:-all}

run_suite() {
  local dir=$1
  shift
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 300)
}

if [ "$which" = all ] || [ "$which" = normal ]; then
  echo "== normal build =="
  run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
if [ "$which" = all ] || [ "$which" = asan ]; then
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build =="
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  run_suite build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGENAI_SANITIZE=ON
fi
if [ "$which" = all ] || [ "$which" = release ]; then
  for type in Release Debug; do
    echo "== $type build (compile only) =="
    dir=build-$(echo "$type" | tr '[:upper:]' '[:lower:]')
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" >/dev/null
    cmake --build "$dir" -j"$jobs"
  done
fi
