/*
 * fake_llama.h - shared state of the fake llama-server (test double).
 *
 * The double follows /work/shared/contracts/llama-server.md (build b10470):
 * the same flags, log lines, HTTP shapes, exit codes and signal behaviour,
 * with a model "shape" taken from environment variables instead of real
 * weights. docs/llama-server-double.md lists every switch and every place
 * where the double knowingly differs from the real server.
 *
 * Files: fake_llama_server.c (main: flags, start-up, signals, shutdown),
 * fake_llama_model.c (memory figures, allocation, fake GPU, memory log
 * lines), fake_llama_http.c (the HTTP endpoints on libmicrohttpd).
 */
#ifndef GENAI_FAKE_LLAMA_H
#define GENAI_FAKE_LLAMA_H

#include "core/error.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define FL_BUILD_DEFAULT 10470u
#define FL_COMMIT_DEFAULT "34af94cd9"
#define FL_MAX_KEYS 16
#define FL_MAX_ALIASES 8

enum fl_fa { FL_FA_AUTO, FL_FA_ON, FL_FA_OFF };

typedef struct fl_config {
    /* flags */
    const char *model; /* -m; NULL = router mode */
    const char *host;  /* --host */
    long port_arg;     /* --port as given (may exceed 65535, §10) */
    int32_t ctx;       /* -c; 0 = n_ctx_train */
    int32_t np;        /* -np; -1 = auto (4 slots, unified) */
    int kvu;           /* -1 default, 0/1 explicit */
    int32_t ngl;       /* -ngl; -1 auto, -2 all */
    enum fl_fa fa;
    int ctk, ctv; /* index into fl_cache_types */
    int32_t batch, ubatch;
    int load_mode;     /* 0 auto 1 none 2 mmap 3 mlock 4 mmap+mlock 5 dio */
    int fit;           /* --fit on|off */
    int64_t cache_ram; /* -cram MiB */
    const char *keys[FL_MAX_KEYS];
    int n_keys;
    const char *aliases[FL_MAX_ALIASES];
    int n_aliases;
    int verbosity; /* -lv */
    int32_t threads;
    int metrics, slots, props, embeddings;
    int sse_ping;  /* seconds */
    int timeout_s; /* -to */
    int log_prefix, log_timestamps;
    const char *log_file;

    /* model shape (env FAKE_LLAMA_*; defaults = ref-tiny of contract §2) */
    uint32_t n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx_train;
    uint64_t model_bytes; /* tensor data; default: the file size */
    uint64_t n_params;
    const char *ftype;

    /* switches (env FAKE_LLAMA_*) */
    uint32_t build;
    const char *commit;
    int crash_at_start;
    long crash_after_tokens; /* 0: never */
    int crash_exit;          /* crash by _exit(code) when >= 0 ... */
    int crash_signal;        /* ... else by this signal */
    long load_ms, token_ms, gpu_hold_ms, eos_after;
    int hang_on_sigterm, bind_fail;
    double mem_scale;
    const char *port_file;
    const char *ready_file;  /* FAKE_LLAMA_READY_FILE */
    const char *token_times; /* FAKE_LLAMA_TOKEN_TIMES */
    const char *props_alias; /* FAKE_LLAMA_PROPS_ALIAS */
    const char *fake_gpu;    /* GENAI_FAKE_GPU */
} fl_config;

/* What the configuration implies once the model is "loaded" (§4, memory.md). */
typedef struct fl_runtime {
    uint32_t n_ctx;      /* total cells (after padding and -np rewrite) */
    uint32_t n_ctx_slot; /* per slot */
    uint32_t n_slots;
    int unified;
    uint32_t cells, streams;
    uint64_t kv_k_bytes, kv_v_bytes;
    uint64_t compute_bytes, output_bytes;
    uint32_t gpu_units; /* -ngl units on the GPU (output layer counts as one) */
    uint64_t gpu_model, gpu_kv, gpu_compute;
    int fa_on;
    uint16_t port; /* bound port */
} fl_runtime;

extern fl_config fl_cfg;
extern fl_runtime fl_rt;
extern atomic_int fl_ready;    /* model loaded */
extern atomic_int fl_stopping; /* first SIGTERM/SIGINT seen */
extern atomic_long fl_tokens;  /* tokens generated since start */

/* Logging in llama.cpp's format (§5.1) on stderr (and --log-file). level is
 * 'I', 'W', 'E' or 'D'; need is the -lv value from which it is shown. */
void fl_log(int need, char level, const char *fmt, ...) GX_PRINTF(3, 4);

/* Cache type names (-ctk/-ctv) and their bytes per 32 elements. */
extern const char *const fl_cache_types[];
extern const uint32_t fl_cache_bytes32[];
int fl_cache_type_index(const char *name);

/* Computes fl_rt from fl_cfg (no side effects). */
void fl_model_plan(void);
/* Checks the model file, logs the load, allocates host memory and fake GPU
 * memory. Returns 0, or 1 after logging the failure chain of §9 (the caller
 * exits with status 1). */
int fl_model_load(void);
/* Logs the exit-time breakdown and releases fake GPU memory (honouring
 * FAKE_LLAMA_GPU_HOLD_MS). */
void fl_model_unload(void);

/* Starts the HTTP server on fl_cfg.host:port. 0 or -1 (caller logs §9's
 * bind failure). */
int fl_http_start(uint16_t port, uint16_t *bound);
/* Waits until no request is in flight (a non-streaming request blocks this
 * until its client goes away, as in §8), then stops the server. */
void fl_http_stop(void);
/* Counts one generated token and crashes when FAKE_LLAMA_CRASH_AFTER_TOKENS
 * says so. */
void fl_count_token(void);
/* Crashes the way FAKE_LLAMA_CRASH_HOW says. Never returns. */
_Noreturn void fl_crash(void);

#endif
