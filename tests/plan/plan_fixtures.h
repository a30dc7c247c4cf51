/*
 * plan_fixtures.h - model profiles and probe snapshots built in memory for
 * the planner tests and benchmark.
 *
 * ref-big and ref-tiny are the reference models of
 * contracts/llama-server.md §2, with per-layer tensor bytes computed exactly
 * from their shapes (llama architecture: attn_norm, q, k, v, o, ffn_norm,
 * gate, up, down). Free profiles with fixture_profile_free() and snapshots
 * with fixture_snapshot_free().
 */
#ifndef GENAI_TESTS_PLAN_FIXTURES_H
#define GENAI_TESTS_PLAN_FIXTURES_H

#include "gguf/profile.h"
#include "sys/probe.h"

#include <stdint.h>

/* A llama-architecture profile: dtype_bytes per weight element (2 = F16,
 * 4 = F32), norms in F32. Returns 0, or -1 when out of memory. */
int fixture_llama(gguf_profile *p, uint32_t n_layer, uint32_t n_embd, uint32_t n_head,
                  uint32_t n_head_kv, uint32_t n_ff, uint32_t n_ctx_train, uint32_t n_vocab,
                  uint32_t dtype_bytes);
int fixture_ref_big(gguf_profile *p);
int fixture_ref_tiny(gguf_profile *p);
/* A 12B-like quantized model: 48 layers of 135 MB, 5120 wide, 40/8 heads of
 * 128, 152064-token vocabulary, 32768 trained context. */
int fixture_12b(gguf_profile *p);
/* gguf_profile_free(): the fixtures own their arrays the same way. */
void fixture_profile_free(gguf_profile *p);

/* A snapshot with n_gpus GPUs of gpu_total bytes each (free = total), host
 * MemAvailable = effective_available = host_avail, 8 physical cores. */
int fixture_snapshot(probe_snapshot *s, uint32_t n_gpus, uint64_t gpu_total, uint64_t host_avail);
void fixture_snapshot_free(probe_snapshot *s);

#endif
