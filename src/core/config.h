/*
 * config.h - genai's configuration: defaults, then a JSON file, then the
 * environment (GENAI_*), then command-line flags, each overriding the last.
 *
 * One table in config.c names every key with its JSON name, its environment
 * variable, its type and its bounds, so the file, the environment and the
 * flags go through the same parser (config_set) and cannot disagree. The keys
 * and their defaults are documented in docs/configuration.md.
 *
 * Ownership: a genai_config owns its strings and lists; config_free()
 * releases them. config_copy() makes an independent deep copy.
 */
#ifndef GENAI_CORE_CONFIG_H
#define GENAI_CORE_CONFIG_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

/* The default port: one above Ollama's 11434, so both can run side by side
 * and the number still reads as "a local LLM server". */
#define CONFIG_DEFAULT_PORT 11435
#define CONFIG_HOST_MAX 256
/* Largest config file read; a config is a few hundred bytes. */
#define CONFIG_FILE_MAX (256u * 1024u)
/* Most entries in a list key (cors_origins, allowed_hosts). */
#define CONFIG_LIST_MAX 32

typedef struct config_list {
    char **items; /* n owned strings */
    size_t n;
} config_list;

/* A memory amount: unset, bytes, or a fraction of a total (budgets and
 * reserves). Text forms: "none", "6GiB", "512MiB", "8GB", "1073741824",
 * "75%", "0.75" (docs/configuration.md). */
enum config_amount_kind { CONFIG_AMOUNT_NONE = 0, CONFIG_AMOUNT_BYTES, CONFIG_AMOUNT_FRACTION };
#define CONFIG_PPM 1000000u
typedef struct config_amount {
    enum config_amount_kind kind;
    uint64_t bytes; /* CONFIG_AMOUNT_BYTES */
    uint32_t ppm;   /* CONFIG_AMOUNT_FRACTION: parts per million of the total, <= CONFIG_PPM */
} config_amount;

/* Per GPU amounts: none set (n = 0), one for every device (n = 1), or one per
 * device index (n > 1; devices past the list are unset). */
#define CONFIG_MAX_GPUS 8
typedef struct config_amounts {
    config_amount v[CONFIG_MAX_GPUS];
    unsigned n;
} config_amounts;

/* What genai does when other programs take memory its residents need. */
enum config_others_policy { CONFIG_OTHERS_WARN = 0, CONFIG_OTHERS_OFFLOAD = 1 };

typedef struct genai_config {
    char host[CONFIG_HOST_MAX]; /* bind address: an IP literal or "localhost" */
    unsigned port;              /* 0: an ephemeral port (tests) */
    char *api_key;              /* NULL: no key; owned */
    config_list cors_origins;   /* allowed CORS origins; empty: CORS off */
    config_list allowed_hosts;  /* extra Host header names accepted */
    size_t max_body_bytes;      /* request body limit (413 beyond) */
    unsigned max_json_depth;    /* nesting limit of request JSON (400 beyond) */
    unsigned idle_timeout_s;    /* idle connection timeout (MHD_OPTION_CONNECTION_TIMEOUT) */
    unsigned max_connections;   /* MHD_OPTION_CONNECTION_LIMIT */
    unsigned queue_limit;       /* requests that may wait for a model (orchestrator) */
    unsigned queue_timeout_s;   /* how long they may wait before 503 (orchestrator) */
    unsigned sse_ping_s;        /* keep-alive comment interval on SSE streams */
    /* Sharing the machine (docs/budgets.md). */
    config_amounts budget_gpu;  /* most genai may hold per GPU; unset: no cap */
    config_amount budget_host;  /* most genai may hold of host memory */
    config_amounts reserve_gpu; /* kept free per GPU; unset: the planner's default */
    config_amount reserve_host; /* kept free on the host; unset: the planner's default */
    unsigned others_policy;     /* enum config_others_policy */
    unsigned watch_interval_ms; /* sampling period of the memory watcher */
    unsigned watch_fast_ms;     /* its period while a swap or reservation is in progress */
} genai_config;

/* Fills c with the documented defaults (no allocation). */
void config_init(genai_config *c);

/* Releases c's strings and lists and re-initialises it. Accepts NULL. */
void config_free(genai_config *c);

/* Deep copy of src into dst (dst is overwritten, not freed first); -ENOMEM. */
int config_copy(genai_config *dst, const genai_config *src);

/*
 * Sets one key from text, as the environment and flags give it: numbers in
 * decimal, lists comma-separated, "api_key_file" reads the key from a file.
 * origin ("GENAI_PORT", "--port", a file name) goes into error messages.
 * Unknown key or bad value: GENAI_EBAD_ARG; c is unchanged on failure.
 */
int config_set(genai_config *c, const char *key, const char *value, const char *origin,
               genai_error *err);

/*
 * Applies a JSON config file. must_exist = 0 makes a missing file a no-op.
 * An unknown key is an error naming the key and the file. On failure c may
 * hold the keys applied before the bad one.
 */
int config_load_file(genai_config *c, const char *path, int must_exist, genai_error *err);

/* Applies every GENAI_* variable of the table that is set. */
int config_load_env(genai_config *c, genai_error *err);

/*
 * The usual sequence: config_init, the file (path, else $GENAI_CONFIG, else
 * <config dir>/genai.json when it exists), then the environment. Flags come
 * after, through config_set. On failure c is freed and re-initialised.
 */
int config_load(genai_config *c, const char *path, genai_error *err);

/* Startup checks that span keys: a non-loopback bind needs an api key. */
int config_validate(const genai_config *c, genai_error *err);

/* Parses one amount ("6GiB", "75%", "0.75", "none"; see config_amount).
 * GENAI_EBAD_ARG (with the reason in err) for anything else; *out is
 * written only on success. */
int config_parse_amount(const char *text, config_amount *out, genai_error *err);

/* Formats an amount as config_parse_amount reads it back ("6 GiB" style is
 * not used: "6442450944", "75%", "none"). */
void config_format_amount(const config_amount *a, char *buf, size_t bufsz);

/* True for 127.0.0.0/8, ::1 and "localhost". */
int config_host_is_loopback(const char *host);

#endif
