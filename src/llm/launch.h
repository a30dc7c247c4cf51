/*
 * launch.h - how genai starts llama-server: a launch description and the
 * argv built from it.
 *
 * genai plans memory itself (contracts/memory.md §13), so every setting that
 * changes the footprint is passed explicitly and llama.cpp's own fitting is
 * switched off with `--fit off`: with --fit on, llama-server may shrink the
 * context or move layers behind genai's back, and on a CPU-only machine it
 * compares against total RAM, not available RAM (llama-server.md §11.1).
 * docs/llm-driver.md explains each flag.
 *
 * The struct borrows its strings; the argv builder copies what it needs.
 */
#ifndef GENAI_LLM_LAUNCH_H
#define GENAI_LLM_LAUNCH_H

#include "core/error.h"

#include <stdint.h>

enum llm_flash_attn { LLM_FA_AUTO = 0, LLM_FA_ON, LLM_FA_OFF };

/* KV cache element types accepted by -ctk/-ctv at b10470. */
enum llm_cache_type {
    LLM_CACHE_F16 = 0,
    LLM_CACHE_F32,
    LLM_CACHE_BF16,
    LLM_CACHE_Q8_0,
    LLM_CACHE_Q4_0,
    LLM_CACHE_Q4_1,
    LLM_CACHE_IQ4_NL,
    LLM_CACHE_Q5_0,
    LLM_CACHE_Q5_1,
    LLM_CACHE__COUNT
};

/* -lm values. */
enum llm_load_mode {
    LLM_LOAD_AUTO = 0,
    LLM_LOAD_NONE,
    LLM_LOAD_MMAP,
    LLM_LOAD_MLOCK,
    LLM_LOAD_MMAP_MLOCK,
    LLM_LOAD_DIO,
    LLM_LOAD__COUNT
};

#define LLM_NGL_ALL (-1) /* -ngl all */
#define LLM_DEFAULT_HOST "127.0.0.1"

typedef struct llm_launch {
    const char *binary;       /* llama-server path (argv[0]); required */
    const char *model;        /* GGUF path, the first shard of a split set; required */
    const char *host;         /* NULL: 127.0.0.1 */
    uint32_t port;            /* 1..65535; genai picks it (llm_port_pick) */
    const char *api_key;      /* passed as --api-key when api_key_file is NULL */
    const char *api_key_file; /* preferred: --api-key-file, keeps the key out of argv */
    const char *alias;        /* -a; NULL: none (the id is then the -m path) */
    uint32_t ctx;             /* -c, > 0 (genai always chooses the context) */
    int32_t ngl;              /* -ngl: 0.. or LLM_NGL_ALL */
    uint32_t parallel;        /* -np, >= 1 */
    int kv_unified;           /* 1: -kvu, 0: -no-kvu */
    enum llm_cache_type ctk, ctv;
    enum llm_flash_attn fa;
    int32_t threads; /* -t; 0: not passed (llama.cpp decides) */
    enum llm_load_mode load_mode;
    int64_t cache_ram_mib;    /* -cram: -1 unlimited, 0 off, else MiB */
    uint32_t batch, ubatch;   /* -b / -ub; 0: not passed */
    int verbosity;            /* -lv 0..5; 4 shows the memory lines (§5.3) */
    int32_t sse_ping_s;       /* --sse-ping-interval; 0: not passed */
    int metrics;              /* --metrics */
    const char *const *extra; /* NULL-terminated flags appended verbatim; may be NULL */
} llm_launch;

/* Fills l with genai's defaults: host 127.0.0.1, 1 slot, unified KV, f16 KV,
 * flash attention auto, load mode auto, cache-ram 0, verbosity 3. The caller
 * then sets binary, model, port, ctx and ngl. */
void llm_launch_defaults(llm_launch *l);

/*
 * Builds the argv for l as understood by llama-server build `build` (0 =
 * unknown, treated as LLM_BUILD_VERIFIED). On success *out is a
 * NULL-terminated array of newly allocated strings; free it with
 * llm_argv_free(). GENAI_EBAD_ARG when l is incomplete or inconsistent (port
 * out of range, quantized V cache with flash attention off, an extra flag
 * that duplicates one genai manages).
 */
int llm_launch_argv(const llm_launch *l, uint32_t build, char ***out, genai_error *err);

/* Frees an argv from llm_launch_argv (or any NULL-terminated array of
 * mem_alloc'ed strings). Accepts NULL. */
void llm_argv_free(char **argv);

/* "f16", "q8_0", ...; NULL for an out-of-range value. */
const char *llm_cache_type_name(enum llm_cache_type t);
/* Parses a -ctk/-ctv value. 0 on success, GENAI_EBAD_ARG otherwise. */
int llm_cache_type_parse(const char *name, enum llm_cache_type *out);
/* Bytes per element times 32 (q8_0 = 34), so that sizes stay integral. */
uint32_t llm_cache_type_bytes32(enum llm_cache_type t);
/* "auto", "none", "mmap", "mlock", "mmap+mlock", "dio"; NULL when out of range. */
const char *llm_load_mode_name(enum llm_load_mode m);

#endif
