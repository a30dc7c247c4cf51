/*
 * fake_llama_server.c - main of the fake llama-server: command line,
 * environment, start-up sequence, signals and shutdown.
 *
 * Start-up follows contracts/llama-server.md §4: parse (usage errors exit 1
 * before any log line), banner, bind the HTTP socket (from here every path
 * answers 503), "load" the model, mark ready, install the SIGINT/SIGTERM
 * handlers (only now: a signal while loading kills with the default action),
 * log "listening on", wait. Shutdown follows §8: the first signal logs
 * "cleaning up before exit..." and waits for in-flight requests (forever for
 * a non-streaming one whose client stays connected); a second signal prints
 * "Received second interrupt, terminating immediately." and exits 1.
 */
#include "fake_llama.h"

#include "core/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

fl_config fl_cfg;
fl_runtime fl_rt;
atomic_int fl_ready;
atomic_int fl_stopping;
atomic_long fl_tokens;

static struct timespec t_start;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file;
static int sig_pipe[2] = {-1, -1};
static atomic_int sig_count;

const char *const fl_cache_types[] = {"f32",  "f16",    "bf16", "q8_0", "q4_0",
                                      "q4_1", "iq4_nl", "q5_0", "q5_1", NULL};
const uint32_t fl_cache_bytes32[] = {128, 64, 64, 34, 18, 20, 18, 22, 24};

int fl_cache_type_index(const char *name)
{
    for (int i = 0; fl_cache_types[i] != NULL; i++)
        if (strcmp(fl_cache_types[i], name) == 0)
            return i;
    return -1;
}

void fl_log(int need, char level, const char *fmt, ...)
{
    if (fl_cfg.verbosity < need)
        return;
    char prefix[48] = "";
    if (fl_cfg.log_prefix) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long us = (long long)(now.tv_sec - t_start.tv_sec) * 1000000 +
                       (now.tv_nsec - t_start.tv_nsec) / 1000;
        if (fl_cfg.log_timestamps)
            snprintf(prefix, sizeof(prefix), "%d.%02d.%03d.%03d %c ", (int)(us / 60000000),
                     (int)(us / 1000000 % 60), (int)(us / 1000 % 1000), (int)(us % 1000), level);
        else
            snprintf(prefix, sizeof(prefix), "%c ", level);
    }
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%s%s\n", prefix, msg);
    fflush(stderr);
    if (log_file != NULL) {
        fprintf(log_file, "%s%s\n", prefix, msg);
        fflush(log_file);
    }
    pthread_mutex_unlock(&log_lock);
}

/* ---- command line ------------------------------------------------------ */

enum opt_id {
    O_MODEL,
    O_HOST,
    O_PORT,
    O_CTX,
    O_NP,
    O_KVU,
    O_NO_KVU,
    O_NGL,
    O_FA,
    O_CTK,
    O_CTV,
    O_BATCH,
    O_UBATCH,
    O_LM,
    O_MMAP,
    O_NO_MMAP,
    O_MLOCK,
    O_DIO,
    O_FIT,
    O_CRAM,
    O_SSE_PING,
    O_TIMEOUT,
    O_THREADS,
    O_METRICS,
    O_SLOTS,
    O_NO_SLOTS,
    O_PROPS,
    O_API_KEY,
    O_API_KEY_FILE,
    O_ALIAS,
    O_VERBOSITY,
    O_VERBOSE,
    O_LOG_FILE,
    O_LOG_PREFIX,
    O_NO_LOG_PREFIX,
    O_LOG_TS,
    O_NO_LOG_TS,
    O_EMBEDDINGS,
    O_HELP,
    O_VERSION,
    O_IGNORED_VALUE,
    O_IGNORED_FLAG,
    O_INT_IGNORED,
};

struct opt {
    const char *names[4];
    const char *value; /* value placeholder for help; NULL for flags */
    const char *env;
    enum opt_id id;
    const char *help;
};

static const struct opt opts[] = {
    {{"-m", "--model"}, "FNAME", "LLAMA_ARG_MODEL", O_MODEL, "model path to load"},
    {{"--host"}, "HOST", "LLAMA_ARG_HOST", O_HOST, "ip address to listen (default: 127.0.0.1)"},
    {{"--port"}, "PORT", "LLAMA_ARG_PORT", O_PORT, "port to listen (default: 8080)"},
    {{"--reuse-port"}, NULL, NULL, O_IGNORED_FLAG, "allow multiple sockets to bind the port"},
    {{"-c", "--ctx-size"},
     "N",
     "LLAMA_ARG_CTX_SIZE",
     O_CTX,
     "size of the prompt context (default: 0, 0 = loaded from model)"},
    {{"-np", "--parallel"},
     "N",
     "LLAMA_ARG_N_PARALLEL",
     O_NP,
     "number of server slots (default: -1, -1 = auto)"},
    {{"-kvu", "--kv-unified"}, NULL, NULL, O_KVU, "use a single unified KV buffer"},
    {{"-no-kvu", "--no-kv-unified"}, NULL, NULL, O_NO_KVU, "use one KV buffer per sequence"},
    {{"-ngl", "--gpu-layers", "--n-gpu-layers"},
     "N",
     "LLAMA_ARG_N_GPU_LAYERS",
     O_NGL,
     "max. number of layers to store in VRAM, either an exact number, 'auto', or 'all' "
     "(default: auto)"},
    {{"-ts", "--tensor-split"}, "N0,N1,...", NULL, O_IGNORED_VALUE, "tensor split"},
    {{"-sm", "--split-mode"}, "{none,layer,row,tensor}", NULL, O_IGNORED_VALUE, "split mode"},
    {{"-mg", "--main-gpu"}, "INDEX", NULL, O_INT_IGNORED, "main GPU"},
    {{"-dev", "--device"}, "<dev1,dev2,..>", NULL, O_IGNORED_VALUE, "devices to use"},
    {{"-ot", "--override-tensor"},
     "<pattern>=<type>,...",
     NULL,
     O_IGNORED_VALUE,
     "override tensor buffer type"},
    {{"-cmoe", "--cpu-moe"}, NULL, NULL, O_IGNORED_FLAG, "keep all MoE weights in the CPU"},
    {{"-ncmoe", "--n-cpu-moe"}, "N", NULL, O_INT_IGNORED, "MoE weights of the first N layers"},
    {{"-fa", "--flash-attn"},
     "[on|off|auto]",
     "LLAMA_ARG_FLASH_ATTN",
     O_FA,
     "set Flash Attention use ('on', 'off', or 'auto', default: 'auto')"},
    {{"-ctk", "--cache-type-k"},
     "TYPE",
     "LLAMA_ARG_CACHE_TYPE_K",
     O_CTK,
     "KV cache data type for K (default: f16)"},
    {{"-ctv", "--cache-type-v"},
     "TYPE",
     "LLAMA_ARG_CACHE_TYPE_V",
     O_CTV,
     "KV cache data type for V (default: f16)"},
    {{"-b", "--batch-size"}, "N", "LLAMA_ARG_BATCH", O_BATCH, "logical maximum batch size"},
    {{"-ub", "--ubatch-size"}, "N", "LLAMA_ARG_UBATCH", O_UBATCH, "physical maximum batch size"},
    {{"-lm", "--load-mode"},
     "{auto,none,mmap,mlock,mmap+mlock,dio}",
     NULL,
     O_LM,
     "how to load the model (default: auto)"},
    {{"--mmap"}, NULL, NULL, O_MMAP, "deprecated: use --load-mode mmap"},
    {{"--no-mmap"}, NULL, NULL, O_NO_MMAP, "deprecated: use --load-mode none"},
    {{"--mlock"}, NULL, NULL, O_MLOCK, "deprecated: use --load-mode mlock"},
    {{"-dio", "--direct-io", "-ndio", "--no-direct-io"},
     NULL,
     NULL,
     O_DIO,
     "deprecated: use --load-mode dio"},
    {{"-kvo", "--kv-offload", "-nkvo", "--no-kv-offload"},
     NULL,
     NULL,
     O_IGNORED_FLAG,
     "KV cache offloading"},
    {{"--fit"}, "[on|off]", "LLAMA_ARG_FIT", O_FIT, "fit unset arguments to free memory"},
    {{"-fitt", "--fit-target"}, "MiB0,MiB1,...", NULL, O_IGNORED_VALUE, "fit target margin"},
    {{"-fitc", "--fit-ctx"}, "N", NULL, O_INT_IGNORED, "minimum context --fit may set"},
    {{"-cram", "--cache-ram"},
     "N",
     "LLAMA_ARG_CACHE_RAM",
     O_CRAM,
     "set the maximum cache size in MiB (default: 8192, -1 - no limit, 0 - disable)"},
    {{"--sleep-idle-seconds"}, "SECONDS", NULL, O_INT_IGNORED, "sleep after idle seconds"},
    {{"--sse-ping-interval"}, "N", NULL, O_SSE_PING, "SSE ping interval in seconds"},
    {{"-to", "--timeout"}, "N", NULL, O_TIMEOUT, "server read/write timeout in seconds"},
    {{"--threads-http"}, "N", NULL, O_INT_IGNORED, "number of HTTP threads"},
    {{"-t", "--threads"}, "N", "LLAMA_ARG_THREADS", O_THREADS, "number of CPU threads"},
    {{"-tb", "--threads-batch"}, "N", NULL, O_INT_IGNORED, "threads for batch processing"},
    {{"--metrics"}, NULL, "LLAMA_ARG_ENDPOINT_METRICS", O_METRICS, "enable /metrics"},
    {{"--slots"}, NULL, NULL, O_SLOTS, "expose slots monitoring endpoint"},
    {{"--no-slots"}, NULL, NULL, O_NO_SLOTS, "disable slots monitoring endpoint"},
    {{"--props"}, NULL, NULL, O_PROPS, "enable changing global properties via POST /props"},
    {{"--slot-save-path"}, "PATH", NULL, O_IGNORED_VALUE, "path to save slot kv cache"},
    {{"--api-key"}, "KEY", "LLAMA_API_KEY", O_API_KEY, "API key to use for authentication"},
    {{"--api-key-file"}, "FNAME", NULL, O_API_KEY_FILE, "path to file containing API keys"},
    {{"-a", "--alias"}, "STRING", "LLAMA_ARG_ALIAS", O_ALIAS, "model name aliases"},
    {{"--jinja", "--no-jinja"}, NULL, NULL, O_IGNORED_FLAG, "use jinja template for chat"},
    {{"--no-warmup"}, NULL, NULL, O_IGNORED_FLAG, "skip warming up the model"},
    {{"--swa-full"}, NULL, NULL, O_IGNORED_FLAG, "use full-size SWA cache"},
    {{"--ui", "--no-ui", "--webui", "--no-webui"}, NULL, NULL, O_IGNORED_FLAG, "web UI"},
    {{"--cors-origins"}, "ORIGINS", NULL, O_IGNORED_VALUE, "allowed CORS origins"},
    {{"--log-file"}, "FNAME", NULL, O_LOG_FILE, "log to file"},
    {{"-lv", "--verbosity", "--log-verbosity"},
     "N",
     "LLAMA_LOG_VERBOSITY",
     O_VERBOSITY,
     "set the verbosity threshold"},
    {{"-v", "--verbose", "--log-verbose"}, NULL, NULL, O_VERBOSE, "log all messages"},
    {{"--log-prefix"}, NULL, NULL, O_LOG_PREFIX, "enable prefix in log messages"},
    {{"--no-log-prefix"}, NULL, NULL, O_NO_LOG_PREFIX, "disable prefix in log messages"},
    {{"--log-timestamps"}, NULL, NULL, O_LOG_TS, "enable timestamps in log messages"},
    {{"--no-log-timestamps"}, NULL, NULL, O_NO_LOG_TS, "disable timestamps in log messages"},
    {{"--log-colors"}, "[on|off|auto]", NULL, O_IGNORED_VALUE, "colored logging"},
    {{"--embedding", "--embeddings"}, NULL, NULL, O_EMBEDDINGS, "restrict to embeddings"},
    {{"-h", "--help", "--usage"}, NULL, NULL, O_HELP, "print usage and exit"},
    {{"--version"}, NULL, NULL, O_VERSION, "show version and build info"},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static void print_opt_help(FILE *f, const struct opt *o)
{
    char names[160] = "";
    size_t n = 0;
    for (int i = 0; i < 4 && o->names[i] != NULL; i++)
        n += (size_t)snprintf(names + n, sizeof(names) - n, "%s%s", i ? ", " : "", o->names[i]);
    if (o->value != NULL && n < sizeof(names))
        snprintf(names + n, sizeof(names) - n, " %s", o->value);
    fprintf(f, "%-40s%s\n", names, o->help);
    if (o->env != NULL)
        fprintf(f, "%-40s(env: %s)\n", "", o->env);
}

static _Noreturn void usage_error(const struct opt *o, const char *flag, const char *what)
{
    fprintf(stderr, "error while handling argument \"%s\": %s\n\nusage:\n", flag, what);
    print_opt_help(stderr, o);
    fprintf(stderr, "\nto show complete usage, run with -h\n");
    exit(1);
}

/* std::stoi: leading blanks, a sign, digits; trailing text ignored. */
static int stoi_(const char *s, long *out)
{
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || errno == ERANGE || v < INT_MIN || v > INT_MAX)
        return -1;
    *out = v;
    return 0;
}

static int enum_value(const char *v, const char *const *names)
{
    for (int i = 0; names[i] != NULL; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    return -1;
}

/* Splits a comma-separated list into dst (borrowing copies that live for the
 * process); empty entries are dropped (§7). */
static int split_list(const char *v, const char **dst, int cap)
{
    char *copy = mem_strdup(v);
    int n = 0;
    if (copy == NULL)
        return 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok != NULL && n < cap;
         tok = strtok_r(NULL, ",", &save))
        if (tok[0] != '\0')
            dst[n++] = tok;
    return n; /* copy is intentionally kept: dst points into it */
}

static void read_key_file(const struct opt *o, const char *flag, const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        usage_error(o, flag, "error: failed to open file");
    char line[1024];
    while (fgets(line, sizeof(line), f) != NULL && fl_cfg.n_keys < FL_MAX_KEYS) {
        line[strcspn(line, "\r\n#")] = '\0';
        if (line[0] != '\0')
            fl_cfg.keys[fl_cfg.n_keys++] = mem_strdup(line);
    }
    fclose(f);
}

static void apply(const struct opt *o, const char *flag, const char *v)
{
    static const char *const fa_names[] = {"auto", "on", "off", NULL};
    static const char *const on_off[] = {"off", "on", NULL};
    static const char *const lm_names[] = {"auto",       "none", "mmap", "mlock",
                                           "mmap+mlock", "dio",  NULL};
    long n = 0;
    char what[256];
    switch (o->id) {
    case O_CTX:
    case O_NP:
    case O_BATCH:
    case O_UBATCH:
    case O_CRAM:
    case O_SSE_PING:
    case O_TIMEOUT:
    case O_THREADS:
    case O_VERBOSITY:
    case O_PORT:
    case O_INT_IGNORED:
        if (stoi_(v, &n) < 0)
            usage_error(o, flag, "stoi");
        break;
    default:
        break;
    }
    switch (o->id) {
    case O_MODEL:
        fl_cfg.model = v;
        break;
    case O_HOST:
        fl_cfg.host = v;
        break;
    case O_PORT:
        fl_cfg.port_arg = n;
        break;
    case O_CTX:
        fl_cfg.ctx = (int32_t)n;
        break;
    case O_NP:
        if (n == 0 || n < -1)
            usage_error(o, flag, "error: invalid value for n_parallel");
        fl_cfg.np = (int32_t)n;
        break;
    case O_KVU:
        fl_cfg.kvu = 1;
        break;
    case O_NO_KVU:
        fl_cfg.kvu = 0;
        break;
    case O_NGL:
        if (strcmp(v, "auto") == 0)
            fl_cfg.ngl = -1;
        else if (strcmp(v, "all") == 0)
            fl_cfg.ngl = -2;
        else if (stoi_(v, &n) < 0)
            usage_error(o, flag, "stoi");
        else
            fl_cfg.ngl = n < 0 ? -1 : (int32_t)n;
        break;
    case O_FA:
        if ((n = enum_value(v, fa_names)) < 0) {
            snprintf(what, sizeof(what), "error: unknown value for --flash-attn: '%s'", v);
            usage_error(o, flag, what);
        }
        fl_cfg.fa = (enum fl_fa)n;
        break;
    case O_CTK:
    case O_CTV:
        if ((n = fl_cache_type_index(v)) < 0) {
            snprintf(what, sizeof(what), "Unsupported cache type: %s", v);
            usage_error(o, flag, what);
        }
        *(o->id == O_CTK ? &fl_cfg.ctk : &fl_cfg.ctv) = (int)n;
        break;
    case O_BATCH:
        fl_cfg.batch = (int32_t)n;
        break;
    case O_UBATCH:
        fl_cfg.ubatch = (int32_t)n;
        break;
    case O_LM:
        if ((n = enum_value(v, lm_names)) < 0) {
            snprintf(what, sizeof(what), "error: unknown value for --load-mode: '%s'", v);
            usage_error(o, flag, what);
        }
        fl_cfg.load_mode = (int)n;
        break;
    case O_MMAP:
    case O_NO_MMAP:
        fl_log(2, 'W',
               "DEPRECATED: --mmap and --no-mmap are deprecated. use --load-mode mmap "
               "instead");
        fl_cfg.load_mode = o->id == O_MMAP ? 2 : 1;
        break;
    case O_MLOCK:
        fl_log(2, 'W', "DEPRECATED: --mlock is deprecated. use --load-mode mlock instead");
        fl_cfg.load_mode = 3;
        break;
    case O_DIO:
        fl_log(2, 'W',
               "DEPRECATED: --direct-io and --no-direct-io are deprecated. use "
               "--load-mode dio instead");
        fl_cfg.load_mode = flag[1] == 'n' || strstr(flag, "no-") != NULL ? 0 : 5;
        break;
    case O_FIT:
        if ((n = enum_value(v, on_off)) < 0) {
            snprintf(what, sizeof(what), "error: unknown value for --fit: '%s'", v);
            usage_error(o, flag, what);
        }
        fl_cfg.fit = (int)n;
        break;
    case O_CRAM:
        fl_cfg.cache_ram = n;
        break;
    case O_SSE_PING:
        fl_cfg.sse_ping = (int)n;
        break;
    case O_TIMEOUT:
        fl_cfg.timeout_s = (int)n;
        break;
    case O_THREADS:
        fl_cfg.threads = (int32_t)n;
        break;
    case O_METRICS:
        fl_cfg.metrics = 1;
        break;
    case O_SLOTS:
        fl_cfg.slots = 1;
        break;
    case O_NO_SLOTS:
        fl_cfg.slots = 0;
        break;
    case O_PROPS:
        fl_cfg.props = 1;
        break;
    case O_API_KEY:
        fl_cfg.n_keys = split_list(v, fl_cfg.keys, FL_MAX_KEYS);
        break;
    case O_API_KEY_FILE:
        read_key_file(o, flag, v);
        break;
    case O_ALIAS:
        fl_cfg.n_aliases = split_list(v, fl_cfg.aliases, FL_MAX_ALIASES);
        break;
    case O_VERBOSITY:
        fl_cfg.verbosity = (int)n;
        break;
    case O_VERBOSE:
        fl_cfg.verbosity = INT_MAX;
        break;
    case O_LOG_FILE:
        fl_cfg.log_file = v;
        break;
    case O_LOG_PREFIX:
        fl_cfg.log_prefix = 1;
        break;
    case O_NO_LOG_PREFIX:
        fl_cfg.log_prefix = 0;
        break;
    case O_LOG_TS:
        fl_cfg.log_timestamps = 1;
        break;
    case O_NO_LOG_TS:
        fl_cfg.log_timestamps = 0;
        break;
    case O_EMBEDDINGS:
        fl_cfg.embeddings = 1;
        break;
    case O_HELP:
        printf("usage: llama-server [options]\n\n");
        for (size_t i = 0; i < N_OPTS; i++)
            print_opt_help(stdout, &opts[i]);
        exit(0);
    case O_VERSION:
        fprintf(stderr, "version: 0.1.1-dev (build %u, commit %s)\n", fl_cfg.build, fl_cfg.commit);
        fprintf(stderr, "built with GNU 12.2.0 for Linux x86_64\n");
        exit(0);
    case O_IGNORED_VALUE:
    case O_IGNORED_FLAG:
    case O_INT_IGNORED:
        break;
    }
}

static const struct opt *find_opt(const char *arg)
{
    char norm[128];
    snprintf(norm, sizeof(norm), "%s", arg);
    if (strncmp(norm, "--", 2) == 0)
        for (char *p = norm + 2; *p != '\0'; p++)
            if (*p == '_')
                *p = '-';
    for (size_t i = 0; i < N_OPTS; i++)
        for (int k = 0; k < 4 && opts[i].names[k] != NULL; k++)
            if (strcmp(norm, opts[i].names[k]) == 0)
                return &opts[i];
    return NULL;
}

static void parse_args(int argc, char **argv)
{
    /* Environment first (§3 precedence), then argv. */
    for (size_t i = 0; i < N_OPTS; i++) {
        const char *v = opts[i].env != NULL ? getenv(opts[i].env) : NULL;
        if (v != NULL && (opts[i].value != NULL || strcmp(v, "1") == 0 || strcmp(v, "true") == 0))
            apply(&opts[i], opts[i].env, v);
    }
    unsigned char seen[N_OPTS] = {0};
    for (int i = 1; i < argc; i++) {
        const struct opt *o = find_opt(argv[i]);
        if (o == NULL) {
            fprintf(stderr, "error: invalid argument: %s\n", argv[i]);
            exit(1);
        }
        size_t idx = (size_t)(o - opts);
        if (o->env != NULL && getenv(o->env) != NULL)
            fprintf(stderr,
                    "warn: %s environment variable is set, but will be overwritten by command "
                    "line argument %s\n",
                    o->env, argv[i]);
        if (seen[idx]++ && o->value != NULL)
            fl_log(2, 'W',
                   "DEPRECATED: argument '%s' specified multiple times, use "
                   "comma-separated values instead (only last value will be used)",
                   argv[i]);
        const char *v = NULL;
        if (o->value != NULL) {
            if (i + 1 >= argc)
                usage_error(o, argv[i], "expected value for argument");
            v = argv[++i];
        }
        apply(o, argv[i - (v != NULL)], v);
    }
}

/* ---- switches ---------------------------------------------------------- */

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        return def;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0') {
        fprintf(stderr, "fake-llama-server: bad %s='%s'\n", name, v);
        exit(2);
    }
    return n;
}

static void load_switches(void)
{
    fl_cfg.build = (uint32_t)env_long("FAKE_LLAMA_BUILD", FL_BUILD_DEFAULT);
    fl_cfg.commit = getenv("FAKE_LLAMA_COMMIT") ? getenv("FAKE_LLAMA_COMMIT") : FL_COMMIT_DEFAULT;
    fl_cfg.n_layer = (uint32_t)env_long("FAKE_LLAMA_N_LAYER", 2);
    fl_cfg.n_embd = (uint32_t)env_long("FAKE_LLAMA_N_EMBD", 128);
    fl_cfg.n_head = (uint32_t)env_long("FAKE_LLAMA_N_HEAD", 4);
    fl_cfg.n_head_kv = (uint32_t)env_long("FAKE_LLAMA_N_HEAD_KV", 2);
    fl_cfg.head_dim = (uint32_t)env_long("FAKE_LLAMA_HEAD_DIM", 32);
    fl_cfg.n_ff = (uint32_t)env_long("FAKE_LLAMA_N_FF", 256);
    fl_cfg.n_vocab = (uint32_t)env_long("FAKE_LLAMA_N_VOCAB", 312);
    fl_cfg.n_ctx_train = (uint32_t)env_long("FAKE_LLAMA_N_CTX_TRAIN", 2048);
    fl_cfg.model_bytes = (uint64_t)env_long("FAKE_LLAMA_MODEL_BYTES", 0);
    fl_cfg.n_params = (uint64_t)env_long("FAKE_LLAMA_N_PARAMS", 375000);
    fl_cfg.ftype = getenv("FAKE_LLAMA_FTYPE") ? getenv("FAKE_LLAMA_FTYPE") : "F32";
    fl_cfg.crash_at_start = (int)env_long("FAKE_LLAMA_CRASH_AT_START", 0);
    fl_cfg.crash_after_tokens = env_long("FAKE_LLAMA_CRASH_AFTER_TOKENS", 0);
    fl_cfg.crash_exit = -1;
    fl_cfg.crash_signal = SIGABRT;
    const char *how = getenv("FAKE_LLAMA_CRASH_HOW");
    if (how != NULL) {
        char *end;
        if (strncmp(how, "exit:", 5) == 0)
            fl_cfg.crash_exit = (int)strtol(how + 5, &end, 10);
        else if (strncmp(how, "signal:", 7) == 0)
            fl_cfg.crash_signal = (int)strtol(how + 7, &end, 10);
        else {
            fprintf(stderr, "fake-llama-server: bad FAKE_LLAMA_CRASH_HOW='%s'\n", how);
            exit(2);
        }
    }
    fl_cfg.load_ms = env_long("FAKE_LLAMA_LOAD_MS", 0);
    fl_cfg.token_ms = env_long("FAKE_LLAMA_TOKEN_MS", 0);
    fl_cfg.gpu_hold_ms = env_long("FAKE_LLAMA_GPU_HOLD_MS", 0);
    fl_cfg.eos_after = env_long("FAKE_LLAMA_EOS_AFTER", 0);
    fl_cfg.hang_on_sigterm = (int)env_long("FAKE_LLAMA_HANG_ON_SIGTERM", 0);
    fl_cfg.bind_fail = (int)env_long("FAKE_LLAMA_BIND_FAIL", 0);
    const char *scale = getenv("FAKE_LLAMA_MEM_SCALE");
    fl_cfg.mem_scale = scale != NULL ? strtod(scale, NULL) : 1.0;
    if (!(fl_cfg.mem_scale >= 0.0 && fl_cfg.mem_scale <= 1.0)) {
        fprintf(stderr, "fake-llama-server: FAKE_LLAMA_MEM_SCALE must be in [0, 1]\n");
        exit(2);
    }
    fl_cfg.port_file = getenv("FAKE_LLAMA_PORT_FILE");
    fl_cfg.ready_file = getenv("FAKE_LLAMA_READY_FILE");
    fl_cfg.token_times = getenv("FAKE_LLAMA_TOKEN_TIMES");
    fl_cfg.props_alias = getenv("FAKE_LLAMA_PROPS_ALIAS");
    fl_cfg.fake_gpu = getenv("GENAI_FAKE_GPU");
}

_Noreturn void fl_crash(void)
{
    if (fl_cfg.crash_exit >= 0)
        _exit(fl_cfg.crash_exit);
    signal(fl_cfg.crash_signal, SIG_DFL);
    raise(fl_cfg.crash_signal);
    _exit(128 + fl_cfg.crash_signal); /* a signal whose default action is not fatal */
}

void fl_count_token(void)
{
    long n = atomic_fetch_add(&fl_tokens, 1) + 1;
    if (fl_cfg.crash_after_tokens > 0 && n >= fl_cfg.crash_after_tokens)
        fl_crash();
}

/* ---- signals ----------------------------------------------------------- */

static void on_signal(int sig)
{
    (void)sig;
    int n = atomic_fetch_add(&sig_count, 1) + 1;
    if (n == 1 && fl_cfg.hang_on_sigterm)
        return; /* the deadlock of §8: the first signal is lost */
    if (n == 1) {
        int saved = errno;
        atomic_store(&fl_stopping, 1);
        ssize_t w = write(sig_pipe[1], "x", 1);
        (void)w;
        errno = saved;
        return;
    }
    static const char msg[] = "Received second interrupt, terminating immediately.\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)w;
    _exit(1);
}

static void write_port_file(void)
{
    if (fl_cfg.port_file == NULL)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", fl_cfg.port_file, (int)getpid());
    FILE *f = fopen(tmp, "we");
    if (f == NULL)
        return;
    fprintf(f, "%d %u\n", (int)getpid(), fl_rt.port);
    fclose(f);
    rename(tmp, fl_cfg.port_file);
}

/* FAKE_LLAMA_READY_FILE: the CLOCK_MONOTONIC instant from which /health
 * answers 200, "<sec>.<nsec>\n", for latency benchmarks. */
static void write_ready_file(const struct timespec *now)
{
    if (fl_cfg.ready_file == NULL)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", fl_cfg.ready_file, (int)getpid());
    FILE *f = fopen(tmp, "we");
    if (f == NULL)
        return;
    fprintf(f, "%lld.%09ld\n", (long long)now->tv_sec, now->tv_nsec);
    fclose(f);
    rename(tmp, fl_cfg.ready_file);
}

static void defaults(void)
{
    fl_cfg.host = "127.0.0.1";
    fl_cfg.port_arg = 8080;
    fl_cfg.np = -1;
    fl_cfg.kvu = -1;
    fl_cfg.ngl = -1;
    fl_cfg.fa = FL_FA_AUTO;
    fl_cfg.ctk = fl_cfg.ctv = 1; /* f16 */
    fl_cfg.batch = 2048;
    fl_cfg.ubatch = 512;
    fl_cfg.fit = 1;
    fl_cfg.cache_ram = 8192;
    fl_cfg.verbosity = 3;
    fl_cfg.threads = -1;
    fl_cfg.slots = 1;
    fl_cfg.sse_ping = 30;
    fl_cfg.timeout_s = 3600;
    fl_cfg.log_prefix = 1;
    fl_cfg.log_timestamps = 1;
}

static void banner(void)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    char ini[4096] = "";
    if (xdg != NULL && xdg[0] != '\0')
        snprintf(ini, sizeof(ini), "%s/llama.cpp/config.ini", xdg);
    else if (home != NULL)
        snprintf(ini, sizeof(ini), "%s/.config/llama.cpp/config.ini", home);
    struct stat st;
    if (ini[0] != '\0' && stat(ini, &st) == 0)
        fl_log(3, 'I', "using config file: %s", ini);
    fl_log(3, 'I',
           "cmn  %12.12s: common_params_print_info: verbosity = %d (adjust with the "
           "`-lv N` CLI arg)",
           "common_params_print_info", fl_cfg.verbosity > 5 ? 5 : fl_cfg.verbosity);
    if (fl_cfg.n_keys == 0) {
        fl_log(2, 'W', "srv  llama_server: -----------------");
        fl_log(2, 'W',
               "srv  llama_server: CORS is set to allow all origins ('*') and no API key "
               "is set");
        fl_log(2, 'W', "srv  llama_server: this can be a security risk (cross-origin attacks)");
        fl_log(2, 'W',
               "srv  llama_server: more info: "
               "https://github.com/ggml-org/llama.cpp/pull/25655");
        fl_log(2, 'W', "srv  llama_server: -----------------");
    }
}

int main(int argc, char **argv)
{
    clock_gettime(CLOCK_MONOTONIC, &t_start);
    signal(SIGPIPE, SIG_IGN); /* §8: ignored from the start */
    defaults();
    load_switches();
    parse_args(argc, argv);
    if (fl_cfg.log_file != NULL)
        log_file = fopen(fl_cfg.log_file, "we");
    if (pipe2(sig_pipe, O_CLOEXEC) != 0)
        return 1;

    banner();
    if (fl_cfg.crash_at_start)
        fl_crash();

    if (fl_cfg.model != NULL)
        fl_model_plan(); /* slot count and sizes; redone once the file is read */
    /* Bind before loading (§4 step 3); the port wraps modulo 65536 (§10). */
    uint16_t want = (uint16_t)(fl_cfg.port_arg & 0xffff);
    if (fl_cfg.bind_fail || fl_http_start(want, &fl_rt.port) != 0) {
        fl_log(1, 'E', "srv  %12.12s: couldn't bind HTTP server socket, hostname: %s, port: %ld",
               "start", fl_cfg.host, fl_cfg.port_arg);
        fl_log(1, 'E', "srv  llama_server: exiting due to HTTP server error");
        return 1;
    }
    if (fl_cfg.port_arg == 8080)
        fl_log(2, 'W',
               "srv  llama_server: NOTICE: server default port will be changed to :9931 "
               "in a future release");
    write_port_file();

    if (fl_cfg.model == NULL) {
        fl_log(3, 'I',
               "srv  llama_server: starting server in router mode. models will be "
               "automatically loaded on-demand");
        fl_log(2, 'W', "srv  llama_server: the following feature(s) are enabled: router mode");
    } else {
        if (fl_model_load() != 0)
            return 1;
    }
    struct timespec ready_at; /* taken before /health can answer 200 */
    clock_gettime(CLOCK_MONOTONIC, &ready_at);
    atomic_store(&fl_ready, 1);
    write_ready_file(&ready_at);
    fl_log(3, 'I', "srv  llama_server: model loaded");

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fl_log(3, 'I', "srv  llama_server: listening on http://%s:%ld", fl_cfg.host,
           fl_cfg.port_arg == 0 ? (long)fl_rt.port : fl_cfg.port_arg);

    struct pollfd pfd = {.fd = sig_pipe[0], .events = POLLIN};
    while (!atomic_load(&fl_stopping))
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
            break;
    fl_log(3, 'I', "srv  %12.12s: operator(): cleaning up before exit...", "operator()");
    fl_http_stop();
    if (fl_cfg.model != NULL)
        fl_model_unload();
    if (log_file != NULL)
        fclose(log_file);
    return 0;
}
