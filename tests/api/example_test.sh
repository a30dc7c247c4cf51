#!/usr/bin/env bash
# Runs examples/hello.c (built against libgenai.so) on a temporary GENAI_HOME
# holding one registered model, and checks what it prints: the system
# snapshot and the model list as JSON, and the clear refusal of chat while
# the orchestrator is not wired.
# Usage: example_test.sh GENAI_CLI HELLO_BIN TEST_DATA
set -euo pipefail
genai=$1 hello=$2 data=$3
home=$(mktemp -d /tmp/genai-example-XXXXXX)
trap 'rm -rf "$home"' EXIT
export GENAI_HOME=$home
"$genai" add "$data/gguf/corpus/valid_tiny_llama.gguf" >/dev/null
"$hello" >"$home/out" 2>"$home/err"
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
assert byprefix["chat"].startswith("GENAI_EUNAVAILABLE (genai_chat: "), byprefix["chat"]
print("example output ok:", len(models), "model")
PY
if [ -s "$home/err" ]; then
  echo "unexpected stderr:" >&2
  cat "$home/err" >&2
  exit 1
fi
