/*
 * llm.h - llama-server launch configurations and their memory demand
 * estimated from GGUF metadata (the ESTIMATE tier of contracts/memory.md §13).
 *
 * plan_llm_estimate() turns a gguf_profile and a plan_llm_config into a
 * plan_demand by following llama.cpp b10470 as contracts/memory.md describes
 * it:
 *   - weights: exact tensor bytes, placed with the -ngl unit rule (§3):
 *     n_layer + 1 units, the output layer first, then the LAST N-1 repeating
 *     layers; token_embd stays on the host. Layers are shared between GPUs
 *     by upper_bound over the cumulative split, like llama-model.cpp;
 *   - KV cache: the exact formula of §4 (pad256, unified or per-slot streams,
 *     sliding-window cells, per-layer KV heads, ggml block sizes), on the
 *     layer's device unless no_kv_offload;
 *   - compute buffer: a rough model fitted to the OBS figures of §5 (see
 *     plan_llm_compute_bytes), the only part without a closed formula;
 *   - output buffer, --cache-ram budget, process runtime and driver context.
 * With mmap the host weights are file-backed (page cache); without, anonymous.
 *
 * Everything here is pure computation on values: no I/O, no allocation.
 */
#ifndef GENAI_PLAN_LLM_H
#define GENAI_PLAN_LLM_H

#include "core/error.h"
#include "gguf/profile.h"
#include "plan/demand.h"

#include <stdint.h>

/* KV cache element types accepted by -ctk / -ctv (llama-server.md §3.1). */
enum plan_cache_type {
    PLAN_CACHE_DEFAULT = 0, /* not chosen: f16 for llama-server, chosen by auto-config */
    PLAN_CACHE_F32,
    PLAN_CACHE_F16,
    PLAN_CACHE_BF16,
    PLAN_CACHE_Q8_0,
    PLAN_CACHE_Q5_1,
    PLAN_CACHE_Q5_0,
    PLAN_CACHE_Q4_1,
    PLAN_CACHE_Q4_0,
    PLAN_CACHE_IQ4_NL,
};

enum plan_fa { PLAN_FA_AUTO = 0, PLAN_FA_ON = 1, PLAN_FA_OFF = 2 };

#define PLAN_NGL_AUTO (-1)    /* n_gpu_layers chosen by auto-config (or --fit) */
#define PLAN_PARALLEL_AUTO 0  /* llama-server's -np auto: 4 slots, unified KV */
#define PLAN_KVU_DEFAULT (-1) /* unified iff n_parallel is auto */
#define PLAN_THREADS_AUTO 0
#define PLAN_DEFAULT_UBATCH 512
#define PLAN_DEFAULT_BATCH 2048
#define PLAN_DEFAULT_CACHE_RAM_MIB 8192
#define PLAN_AUTO_PARALLEL_SLOTS 4

/*
 * One llama-server launch, in the terms of its flags. plan_llm_config_init()
 * gives llama-server's defaults; zero means "default" for every numeric
 * field except where noted.
 */
typedef struct plan_llm_config {
    int32_t n_gpu_layers; /* -ngl: PLAN_NGL_AUTO, or units 0 .. n_layer+1 (more = all) */
    uint32_t n_ctx;       /* -c: 0 = n_ctx_train (auto-config: the largest that fits) */
    uint32_t n_parallel;  /* -np: PLAN_PARALLEL_AUTO or slots */
    int kv_unified;       /* -kvu/-no-kvu: PLAN_KVU_DEFAULT, 0 or 1 */
    enum plan_cache_type type_k, type_v; /* -ctk / -ctv */
    enum plan_fa flash_attn;             /* -fa */
    int use_mmap;                        /* 1 = mmap (default), 0 = --no-mmap */
    uint32_t n_batch;                    /* -b: 0 = 2048 */
    uint32_t n_ubatch;                   /* -ub: 0 = 512 */
    uint32_t cache_ram_mib;              /* -cram: prompt cache budget, 0 disables */
    int no_kv_offload;                   /* -nkvo */
    int swa_full;                        /* --swa-full */
    uint32_t threads;                    /* -t: PLAN_THREADS_AUTO or count */
    uint32_t n_gpus;                     /* GPUs llama-server may use (0: CPU only) */
    float tensor_split[PLAN_MAX_GPUS];   /* -ts proportions; all 0 = even */
    uint64_t mmproj_bytes;               /* --mmproj file, 0 when none (on GPU 0 if used) */
} plan_llm_config;

/* The resolved shape of a configuration: what llama.cpp will actually use. */
typedef struct plan_llm_shape {
    uint32_t n_ctx;     /* after pad256 and the non-unified raise (cells x streams) */
    uint32_t n_seq;     /* slots */
    int kv_unified;     /* 0 or 1 */
    uint32_t n_stream;  /* KV streams: 1 when unified, else n_seq */
    uint32_t cells;     /* cells per stream on full-attention layers */
    uint32_t swa_cells; /* cells per stream on sliding-window layers (0: none) */
    int flash_attn;     /* 0 or 1 after resolving auto */
    enum plan_cache_type type_k, type_v; /* resolved (never DEFAULT) */
    uint32_t n_ubatch;                  /* tokens per micro-batch the compute buffer is sized for */
    uint32_t gpu_units;                 /* -ngl units in effect, 0 .. n_layer+1 */
    uint32_t gpu_layers[PLAN_MAX_GPUS]; /* repeating layers per device */
    int output_device;                  /* device of the output layer, -1 = host */
    uint64_t kv_bytes;                  /* KV total over all places */
} plan_llm_shape;

/* Fills cfg with llama-server's defaults (and n_gpus = 0). */
void plan_llm_config_init(plan_llm_config *cfg);

/* Bytes of n elements of a cache type (ggml block sizes, memory.md §4),
 * rounded up to whole blocks; 0 for PLAN_CACHE_DEFAULT. */
uint64_t plan_cache_row_bytes(enum plan_cache_type type, uint64_t n);
/* "f16", "q8_0", ...; "default" for PLAN_CACHE_DEFAULT. Static string. */
const char *plan_cache_type_name(enum plan_cache_type type);
/* Parses a -ctk/-ctv value; 0 and *out on success, GENAI_EBAD_ARG if unknown. */
int plan_cache_type_parse(const char *text, enum plan_cache_type *out);
/* True for the block-quantized types (q8_0 ... iq4_nl). */
int plan_cache_type_is_quantized(enum plan_cache_type type);
/* "auto", "on", "off". Static string. */
const char *plan_fa_name(enum plan_fa fa);

/* Rounds x up to a multiple of 256, as llama.cpp pads n_ctx. */
uint32_t plan_pad256(uint32_t x);

/*
 * Resolves cfg against the model into *shape and checks the combination the
 * way llama.cpp's context creation does: GENAI_EBAD_ARG with detail for a
 * quantized V cache with flash attention off, a quantized cache with a head
 * dimension not divisible by 32, no context length, or no layers.
 */
int plan_llm_shape_resolve(const gguf_profile *p, const plan_llm_config *cfg, plan_llm_shape *shape,
                           genai_error *err);

/*
 * Rough compute-buffer size (memory.md §5) for one backend running the whole
 * graph at this shape: max(logits, per-layer FFN working set) plus the
 * attention term, n_kv x n_ubatch x 2 B (f16 mask) with flash attention or
 * n_kv x n_ubatch x n_head x 4 B (f32 scores) without. Fitted to the OBS
 * figures; docs/planner.md has the comparison.
 */
uint64_t plan_llm_compute_bytes(const gguf_profile *p, const plan_llm_shape *shape);

/*
 * The ESTIMATE-tier demand of running model p with configuration cfg: fills
 * *out (and *shape when not NULL) on success. Errors: those of
 * plan_llm_shape_resolve, GENAI_EBAD_ARG for a malformed profile (missing
 * per-layer arrays) or more than PLAN_MAX_GPUS devices.
 */
int plan_llm_estimate(const gguf_profile *p, const plan_llm_config *cfg, plan_demand *out,
                      plan_llm_shape *shape, genai_error *err);

#endif
