#!/usr/bin/env bash
# Idle memory of `genai serve` against a minimal process (sleep) measured in
# the same run. Usage: bench/http/idle_rss.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: idle_rss.sh BUILD_DIR}
home=$(mktemp -d)
trap 'kill "$pid" "$base" 2>/dev/null || true; rm -rf -- "$home"' EXIT
GENAI_HOME=$home "$build/src/cli/genai" serve --port 0 2>/dev/null &
pid=$!
sleep 30 &
base=$!
for _ in $(seq 1 200); do
  [ -s "$home/run/serve.json" ] && break
  sleep 0.05
done
port=$(sed -n 's/.*"port": \([0-9]*\).*/\1/p' "$home/run/serve.json")
curl -s "http://127.0.0.1:$port/health" >/dev/null   # one request, then idle
sleep 1
rss() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
for k in VmRSS RssAnon RssFile; do
  printf '%-8s genai serve %6s kB   sleep %6s kB\n' "$k" "$(rss $pid $k)" "$(rss $base $k)"
done
ticks0=$(awk '{print $14 + $15}' "/proc/$pid/stat"); sleep 2
ticks1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
echo "CPU ticks while idle for 2 s: $((ticks1 - ticks0))"
