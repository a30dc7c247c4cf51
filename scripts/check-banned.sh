#!/usr/bin/env bash
# Fails when the sources call a function that STYLE.md bans
# (sprintf, strcpy, strcat, gets, atoi, system, popen).
set -euo pipefail
cd "$(dirname "$0")/.."
hits=$(grep -rnE '\b(sprintf|vsprintf|strcpy|strcat|gets|atoi|system|popen)[[:space:]]*\(' \
  src include tests bench examples 2>/dev/null | grep -vE '\b(snprintf|vsnprintf)\b' || true)
if [ -n "$hits" ]; then
  echo "check-banned: banned functions found:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "check-banned: no banned functions"
