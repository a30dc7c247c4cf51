#!/usr/bin/env bash
# Installs missing system packages, builds genai (build/) and runs it with the
# given arguments:  scripts/genai.sh system --json
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh" >&2
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j"$(nproc 2>/dev/null || echo 2)" --target genai >/dev/null
exec "$root/build/src/cli/genai" "$@"
