#!/usr/bin/env bash
# Runs the real OpenAI JavaScript client (the `openai` npm package, pinned in
# tests/http/openai_client/package-lock.json) against `genai serve` on a free
# port, with an API key and a temporary GENAI_HOME holding one model.
# The client package is installed with `npm ci` into WORK_DIR (node_modules
# is never committed) and reused while the lock file is unchanged.
# Exit 77 (skipped, with the reason) when node or npm is missing.
# With FAKE_LLAMA and FAKE_SD (the test doubles) the orchestrator's routes are
# tested too (GENAI_TEST_ORCH=1): an LLM and an image model are registered
# and a fake 3 GiB GPU is sized so that the image does not fit beside the
# LLM (the double holds 2 GiB once loaded, the image model is a 1.5 GiB
# sparse file): every image moves the LLM aside and brings it back.
# Usage: openai_client.sh GENAI_BIN TEST_DATA CLIENT_SRC_DIR WORK_DIR [FAKE_LLAMA FAKE_SD]
set -euo pipefail
genai=$1 data=$2 src=$3 work=$4
fake_llama=${5:-} fake_sd=${6:-}

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool is not installed (scripts/install-deps.sh installs nodejs and npm)"
    exit 77
  fi
done

mkdir -p "$work"
if ! cmp -s "$src/package-lock.json" "$work/package-lock.json" ||
   [ ! -d "$work/node_modules/openai" ]; then
  cp "$src/package.json" "$src/package-lock.json" "$work/"
  (cd "$work" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error)
fi
cp "$src/client.mjs" "$work/"

home=$(mktemp -d /tmp/genai-openai-XXXXXX)
serve_pid=
cleanup() {
  if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
    kill -KILL "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
  fi
  rm -rf "$home"
}
trap cleanup EXIT
export GENAI_HOME=$home
key=test-key-$RANDOM$RANDOM
printf '%s\n' "$key" >"$home/key"
"$genai" add "$data/gguf/corpus/valid_tiny_llama.gguf" >/dev/null
if [ -n "$fake_llama" ] && [ -n "$fake_sd" ]; then
  export GENAI_TEST_ORCH=1 GENAI_TEST_IMAGE_MODEL=sd-big
  export GENAI_LLAMA_SERVER=$fake_llama GENAI_SD_CLI=$fake_sd
  export GENAI_FAKE_GPU=$home/gpu.json
  printf '{"devices":[{"name":"Fake GPU 3GB","total_bytes":3221225472}],"allocations":[]}\n' \
    >"$GENAI_FAKE_GPU"
  export FAKE_LLAMA_MODEL_BYTES=2147483648 FAKE_LLAMA_MEM_SCALE=0 FAKE_LLAMA_TOKEN_MS=2
  printf 'fake-sd-model 1\nsplit_ok=1\n' >"$home/sd-big.fake"
  truncate -s 1536M "$home/sd-big.fake"
  "$genai" add "$home/sd-big.fake" --kind diffusion --name sd-big >/dev/null 2>&1
fi

"$genai" serve --port 0 --api-key-file "$home/key" 2>"$home/serve.err" &
serve_pid=$!
state=$home/run/serve.json
for _ in $(seq 1 200); do            # up to 10 s for the state file
  [ -s "$state" ] && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$home/serve.err" >&2; exit 1; }
  sleep 0.05
done
url=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).url)' "$state")

status=0
(cd "$work" && node client.mjs "$url" "$key" valid_tiny_llama) || status=$?

GENAI_API_KEY=$key "$genai" stop --timeout 20 >/dev/null || status=1
wait "$serve_pid" || { echo "genai serve exited with $?" >&2; status=1; }
serve_pid=
[ ! -e "$state" ] || { echo "serve.json left behind" >&2; status=1; }
exit $status
