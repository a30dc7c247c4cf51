#!/usr/bin/env bash
# libgenai.so must export the public API and nothing else: every defined
# dynamic symbol starts with genai_ (the linker's own _init/_fini and the
# section markers aside), and the main entry points are there.
# Usage: exports_test.sh LIBGENAI_SO
set -euo pipefail
lib=$1
syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort)
bad=$(printf '%s\n' "$syms" | grep -v -E '^(genai_|_init$|_fini$|_edata$|_end$|__bss_start$)' || true)
if [ -n "$bad" ]; then
  echo "libgenai.so exports symbols outside genai_*:" >&2
  printf '%s\n' "$bad" | head -20 >&2
  exit 1
fi
for want in genai_new genai_free genai_system genai_models_list genai_model_pull \
            genai_set_event_callback genai_chat genai_image_submit genai_strerror \
            genai_config_load genai_free_string; do
  printf '%s\n' "$syms" | grep -qx "$want" || { echo "missing export: $want" >&2; exit 1; }
done
echo "exports ok: $(printf '%s\n' "$syms" | grep -c '^genai_') genai_* symbols, nothing else"
