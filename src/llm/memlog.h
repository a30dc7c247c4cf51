/*
 * memlog.h - read llama-server's memory figures from its log.
 *
 * At -lv 4 llama-server logs one line per buffer it allocates
 * (contracts/llama-server.md §5.3):
 *   load_tensors: %12s model buffer size = %8.2f MiB
 *   llama_context: %10s  output buffer size = %8.2f MiB
 *   llama_kv_cache: %10s KV buffer size = %8.2f MiB
 *   llama_kv_cache: size = %7.2f MiB (%6u cells, %3d layers, %2u/%u seqs), K (%s): ...
 *   llama_memory_recurrent: %10s RS buffer size = %8.2f MiB
 *   sched_reserve: %10s compute buffer size = %8.2f MiB
 *   common_params_fit_impl: projected to use N MiB of host|device memory vs. ...
 *   srv    load_model: prompt cache is enabled, size limit: N MiB
 * The supervisor feeds every stderr line to llm_memlog_feed(); the lines it
 * recognises fill a footprint, per buffer kind and per buffer type (device).
 * This is the "measured" tier of the planner (memory.md §13).
 *
 * Figures are printed with two decimals, so each buffer is known to within
 * ±0.005 MiB (about 5 KiB). Several buffers of one kind on one device (one
 * per mapped shard) are summed. A restarted or re-woken server logs the lines
 * again: reset the footprint first.
 */
#ifndef GENAI_LLM_MEMLOG_H
#define GENAI_LLM_MEMLOG_H

#include <stddef.h>
#include <stdint.h>

enum llm_buf_kind {
    LLM_BUF_MODEL = 0, /* weights */
    LLM_BUF_KV,        /* KV cache */
    LLM_BUF_COMPUTE,   /* compute (scheduler) buffer */
    LLM_BUF_OUTPUT,    /* logits */
    LLM_BUF_RS,        /* recurrent state */
    LLM_BUF__COUNT
};

#define LLM_MEM_MAX_BUFTYPES 16
#define LLM_MEM_NAME_MAX 32
/* Longest line examined; longer lines are ignored (no memory line is close). */
#define LLM_MEMLOG_LINE_MAX 1024

typedef struct llm_mem_buftype {
    char name[LLM_MEM_NAME_MAX]; /* "CPU_Mapped", "CPU", "CUDA0", "CUDA_Host", ... */
    int is_host;                 /* CPU*, *_Host: host memory */
    uint64_t bytes[LLM_BUF__COUNT];
} llm_mem_buftype;

typedef struct llm_footprint {
    llm_mem_buftype types[LLM_MEM_MAX_BUFTYPES];
    uint32_t n_types;
    uint32_t n_lines;   /* lines recognised */
    uint32_t n_dropped; /* buffer lines lost because types[] was full */
    /* KV summary line; 0 when not seen. */
    uint32_t kv_cells, kv_layers, kv_seqs, kv_streams;
    char kv_type_k[8], kv_type_v[8];
    /* --fit projection; -1 when not seen. */
    int64_t projected_mib, projected_limit_mib;
    int projected_is_host;
    int64_t prompt_cache_mib; /* -1 when not seen */
} llm_footprint;

/* Empties fp. */
void llm_footprint_init(llm_footprint *fp);

/* Examines one log line (with or without the "M.SS.mmm.uuu L " prefix, with
 * or without a trailing newline; ANSI colour codes are skipped). Returns 1
 * when the line was recognised and recorded, 0 otherwise. Never fails: a
 * malformed line is simply not recognised. */
int llm_memlog_feed(llm_footprint *fp, const char *line, size_t len);

/* Sum of bytes of the given kind (LLM_BUF__COUNT: all kinds) over host types
 * (host = 1) or device types (host = 0). */
uint64_t llm_footprint_sum(const llm_footprint *fp, int host, enum llm_buf_kind kind);

/* The entry named name, or NULL. */
const llm_mem_buftype *llm_footprint_find(const llm_footprint *fp, const char *name);

#endif
