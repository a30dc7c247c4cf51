#!/usr/bin/env bash
# Runs examples/hello.c (built against libgenai.so) on a temporary GENAI_HOME
# holding one registered model, and checks what it prints: the system
# snapshot and the model list as JSON, and a chat reply from fake-llama-server
# on a fake 8 GB GPU, with the orchestrator's events on stderr.
# Usage: example_test.sh GENAI_CLI HELLO_BIN TEST_DATA FAKE_LLAMA_SERVER
set -euo pipefail
genai=$1 hello=$2 data=$3 llama=$4
home=$(mktemp -d /tmp/genai-example-XXXXXX)
trap 'rm -rf "$home"' EXIT
export GENAI_HOME=$home GENAI_LLAMA_SERVER=$llama GENAI_FAKE_GPU=$home/gpu.json
echo '{"devices":[{"name":"Fake GPU 8GB","total_bytes":8589934592}]}' >"$home/gpu.json"
"$genai" add "$data/gguf/corpus/valid_tiny_llama.gguf" >/dev/null
"$hello" valid_tiny_llama >"$home/out" 2>"$home/err"
python3 - "$home/out" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
byprefix = {l.split(": ", 1)[0]: l.split(": ", 1)[1] for l in lines if ": " in l}
assert lines[0].startswith("genai "), lines[0]
system = json.loads(byprefix["system"])
assert system["cpu"]["logical"] > 0, system["cpu"]
assert "memory" in system, system.keys()
models = json.loads(byprefix["models"])
assert [m["id"] for m in models] == ["valid_tiny_llama"], models
assert models[0]["kind"] == "llm" and models[0]["size"] == 16928, models[0]
reply = json.loads(byprefix["chat"])
content = reply["choices"][0]["message"]["content"]
assert content == "0rr=rr=rr=rr", content  # the double's 8 deterministic tokens
print("example output ok:", len(models), "model,", repr(content))
PY
# stderr: only the event callback's lines, the LLM's load among them.
if grep -v '^event: ' "$home/err" >&2; then
  echo "unexpected stderr" >&2
  exit 1
fi
grep -q '^event: orch.llm_ready$' "$home/err"
