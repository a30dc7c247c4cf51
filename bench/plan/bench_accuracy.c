/*
 * bench_accuracy.c - how close the planner's ESTIMATE tier comes to the
 * buffers llama-server b10470 reported for the reference models
 * (contracts/llama-server.md §13, memory.md §5, §8), and the DRY_RUN tier
 * built from the observed llama-fit-params rows (§11.2).
 *
 * Prints one line per configuration and quantity with the ratio
 * estimate / observed. Targets: weights and KV within 2 %, total within 10 %;
 * the dry-run total is an upper bound by at most 3 MiB.
 * Exits 1 when a target is missed, so the table in docs/planner.md can be
 * re-checked with one command.
 *
 * With GENAI_LLAMA_SERVER naming a real llama-server, it then writes ref-tiny
 * and a ref-big-shaped model (genai-mkmodel's writer, tiny_llama.c), runs the
 * server CPU-only (-dev none -ngl 0 --fit off -lv 4) for each reference
 * configuration, reads the buffer lines with llm/memlog.h and RssAnon/RssFile
 * once "model loaded" is logged, and prints estimate / observed next to the
 * contract's figures. A binary that holds the string "FAKE_LLAMA_" is the
 * test double, whose figures come from formulas: it is skipped unless
 * GENAI_BENCH_ALLOW_FAKE=1 (a check of this harness, not a measurement).
 */
#include "core/alloc.h"
#include "gguf/writer.h"
#include "llm/discover.h"
#include "llm/memlog.h"
#include "plan/fitparams.h"
#include "plan/llm.h"
#include "plan_fixtures.h"
#include "tiny_llama.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MIB (1024.0 * 1024.0)

struct ref_case {
    const char *label;
    int tiny;
    uint32_t n_ctx, np;
    enum plan_fa fa;
    enum plan_cache_type kv;
    int mmap;
    double model, kv_mib, compute; /* runtime buffer lines, MiB */
    double rss_anon, rss_file;     /* MB (kB / 1000), 0 = not measured */
    const char *fit_print;         /* llama-fit-params Host row, NULL = not run */
};

static const struct ref_case cases[] = {
    {"ref-tiny -c 512", 1, 512, 0, PLAN_FA_AUTO, PLAN_CACHE_F16, 1, 1.43, 0.25, 2.51, 4.7, 16.0,
     "Host 1 0 2 \n"},
    {"ref-tiny -c 2048 -np 1", 1, 2048, 1, PLAN_FA_AUTO, PLAN_CACHE_F16, 1, 1.43, 1.00, 4.01, 5.4,
     15.9, "Host 1 1 4 \n"},
    {"ref-big -c 1024", 0, 1024, 0, PLAN_FA_AUTO, PLAN_CACHE_F16, 1, 345.35, 16.00, 25.51, 21.5,
     368, "Host 345 16 25 \n"},
    {"ref-big -c 8192", 0, 8192, 0, PLAN_FA_AUTO, PLAN_CACHE_F16, 1, 345.35, 128.00, 32.51, 137,
     368, "Host 345 128 32 \n"},
    {"ref-big -c 8192 -fa off", 0, 8192, 0, PLAN_FA_OFF, PLAN_CACHE_F16, 1, 345.35, 128.00, 283.01,
     137, 368, "Host 345 128 283 \n"},
    {"ref-big -c 8192 q8_0", 0, 8192, 0, PLAN_FA_ON, PLAN_CACHE_Q8_0, 1, 345.35, 68.00, 30.54, 75,
     368, "Host 345 68 30 \n"},
    {"ref-big --no-mmap", 0, 0, 0, PLAN_FA_AUTO, PLAN_CACHE_F16, 0, 345.35, 128.00, 32.51, 490,
     14.5, "Host 345 128 32 \n"},
    {"ref-big -c 4096 -np 2", 0, 4096, 2, PLAN_FA_AUTO, PLAN_CACHE_F16, 1, 345.35, 64.00, 26.51, 71,
     368, "Host 345 64 26 \n"},
    {"ref-big -c 32768 (dry run)", 0, 32768, 0, PLAN_FA_AUTO, PLAN_CACHE_F16, 1, 345, 512, 56, 0, 0,
     "Host 345 512 56 \n"},
};

static int misses;

static void line(const char *what, double est, double obs, double target)
{
    double ratio = est / obs;
    int miss = target > 0 && fabs(ratio - 1.0) > target;
    misses += miss;
    printf("  %-10s est %10.2f  obs %10.2f  ratio %.3f%s\n", what, est, obs, ratio,
           miss ? "  MISSED TARGET" : "");
}

static void config_of(const struct ref_case *c, plan_llm_config *cfg)
{
    plan_llm_config_init(cfg);
    cfg->n_ctx = c->n_ctx;
    cfg->n_parallel = c->np;
    cfg->flash_attn = c->fa;
    cfg->type_k = cfg->type_v = c->kv;
    cfg->use_mmap = c->mmap;
}

/* ---- the real llama-server ------------------------------------------------ */

#define SERVER_TIMEOUT_MS 120000

/* 1 when the file holds marker (the double's environment switches). */
static int file_has(const char *path, const char *marker)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t mlen = strlen(marker), have = 0;
    char buf[65536];
    int found = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof(buf) - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        if (memmem(buf, have, marker, mlen) != NULL) {
            found = 1;
            break;
        }
        /* keep the last mlen - 1 bytes: a marker may straddle two reads */
        size_t keep = have < mlen - 1 ? have : mlen - 1;
        memmove(buf, buf + have - keep, keep);
        have = keep;
    }
    close(fd);
    return found;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* "Name:   N kB" of /proc/<pid>/status, in bytes; 0 when absent. */
static uint64_t status_bytes(pid_t pid, const char *name)
{
    char path[64], buf[8192];
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *p = strstr(buf, name);
    return p != NULL ? strtoull(p + strlen(name) + 1, NULL, 10) * 1000 : 0;
}

typedef struct observed {
    llm_footprint fp;
    uint64_t rss_anon, rss_file; /* bytes (kB x 1000, as the contract's MB) */
    char last[256];              /* last log line, for a failure */
} observed;

/* Runs the server with argv until it logs "model loaded" (or exits, or the
 * deadline passes), feeding every stderr line to the memory-line parser;
 * then kills it and reaps it. 0, or -1 with the reason printed. */
static int run_server(char *const argv[], observed *obs)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        printf("  cannot run %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    llm_footprint_init(&obs->fp);
    char buf[LLM_MEMLOG_LINE_MAX * 4];
    size_t have = 0;
    int loaded = 0, done = 0;
    int64_t deadline = now_ms() + SERVER_TIMEOUT_MS;
    while (!done) {
        int64_t left = deadline - now_ms();
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t n = read(pfd[0], buf + have, sizeof(buf) - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', have - (size_t)(start - buf))) != NULL) {
            size_t len = (size_t)(nl - start);
            llm_memlog_feed(&obs->fp, start, len);
            snprintf(obs->last, sizeof(obs->last), "%.*s", (int)(len < 255 ? len : 255), start);
            if (memmem(start, len, "llama_server: model loaded", 26) != NULL) {
                loaded = 1;
                done = 1;
                break;
            }
            start = nl + 1;
        }
        have -= (size_t)(start - buf);
        memmove(buf, start, have);
        if (have == sizeof(buf))
            have = 0; /* a line longer than any memory line: drop it */
    }
    if (loaded) {
        obs->rss_anon = status_bytes(pid, "RssAnon:");
        obs->rss_file = status_bytes(pid, "RssFile:");
    }
    kill(pid, SIGKILL);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    close(pfd[0]);
    if (!loaded)
        printf("  no \"model loaded\" line; last line: %s\n", obs->last);
    return loaded ? 0 : -1;
}

static int write_model(const char *path, int big)
{
    struct mkmodel_opts o;
    mkmodel_defaults(&o);
    if (big) { /* the ref-big shape of contracts/llama-server.md §2 */
        o.n_layer = 16;
        o.n_embd = 1024;
        o.n_head = 16;
        o.n_head_kv = 4;
        o.n_ff = 2816;
        o.n_ctx = 8192;
        o.type = GGUF_DT_F16;
    }
    gguf_writer *w = NULL;
    genai_error err;
    int rc = mkmodel_build(&o, &w, &err);
    if (rc == 0)
        rc = gguf_writer_write(w, path, &err);
    gguf_writer_free(w);
    if (rc < 0)
        printf("  cannot write %s: %s\n", path, err.detail);
    return rc;
}

/* The argv of one case (at most 28 entries with the NULL); numbers are
 * written into store (3 of 32 bytes). */
static void case_argv(const struct ref_case *c, const char *server, const char *model, int port,
                      char store[][32], char *argv[])
{
    size_t n = 0, k = 0;
#define ARG(s) (argv[n++] = (char *)(s))
#define NUM(v) (snprintf(store[k], 32, "%u", (unsigned)(v)), argv[n++] = store[k++])
    ARG(server);
    ARG("-m");
    ARG(model);
    if (c->n_ctx > 0) {
        ARG("-c");
        NUM(c->n_ctx);
    }
    if (c->np > 0) {
        ARG("-np");
        NUM(c->np);
    }
    ARG("-fa");
    ARG(c->fa == PLAN_FA_ON ? "on" : c->fa == PLAN_FA_OFF ? "off" : "auto");
    if (c->kv != PLAN_CACHE_F16) {
        ARG("-ctk");
        ARG(plan_cache_type_name(c->kv));
        ARG("-ctv");
        ARG(plan_cache_type_name(c->kv));
    }
    if (!c->mmap) { /* as genai spells it from b10470 on; b11669 no longer takes --no-mmap */
        ARG("-lm");
        ARG("none");
    }
    ARG("-dev");
    ARG("none");
    ARG("-ngl");
    ARG("0");
    ARG("--fit");
    ARG("off");
    ARG("-lv");
    ARG("4");
    ARG("--host");
    ARG("127.0.0.1");
    ARG("--port");
    NUM(port);
#undef ARG
#undef NUM
    argv[n] = NULL;
}

static void real_line(const char *what, double est, double obs, double contract, double target)
{
    double ratio = obs > 0 ? est / obs : 0;
    int miss = target > 0 && (obs <= 0 || fabs(ratio - 1.0) > target);
    misses += miss;
    printf("  %-10s est %10.2f  real %10.2f  ratio %.3f  (contract %.2f)%s\n", what, est, obs,
           ratio, contract, miss ? "  MISSED TARGET" : "");
}

/* Returns 0 when the comparison ran or was skipped (with the reason). */
static int compare_real(const gguf_profile *tiny, const gguf_profile *big)
{
    const char *server = getenv("GENAI_LLAMA_SERVER");
    const char *allow = getenv("GENAI_BENCH_ALLOW_FAKE");
    if (server == NULL || server[0] == '\0') {
        printf("real llama-server comparison skipped: GENAI_LLAMA_SERVER is not set\n");
        return 0;
    }
    if (access(server, X_OK) != 0) {
        printf("real llama-server comparison skipped: %s is not executable (%s)\n", server,
               strerror(errno));
        return 0;
    }
    int fake = file_has(server, "FAKE_LLAMA_");
    if (fake && (allow == NULL || strcmp(allow, "1") != 0)) {
        printf("real llama-server comparison skipped: %s is the test double "
               "(set GENAI_BENCH_ALLOW_FAKE=1 to check the harness against it)\n",
               server);
        return 0;
    }
    char dir[] = "/tmp/genai-accuracy-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return -1;
    char tiny_path[64], big_path[64];
    snprintf(tiny_path, sizeof(tiny_path), "%s/ref-tiny.gguf", dir);
    snprintf(big_path, sizeof(big_path), "%s/ref-big.gguf", dir);
    int have_tiny = write_model(tiny_path, 0) == 0;
    int have_big = write_model(big_path, 1) == 0;
    /* llama-fit-params for the DRY_RUN rows: GENAI_LLAMA_FIT_PARAMS, next to
     * the server, or PATH, as genai itself finds it. */
    char *fit = NULL;
    genai_error ferr;
    if (fake || llm_find_fit_params(NULL, server, &fit, &ferr) < 0) {
        printf("real llama-fit-params comparison skipped: %s\n",
               fake ? "the server is the double" : ferr.detail);
        fit = NULL;
    } else {
        printf("DRY_RUN rows use %s\n", fit);
    }
    printf("\n%s %s vs the same configurations run CPU-only (MiB; RSS MB)\n",
           fake ? "HARNESS CHECK against the double" : "ESTIMATE vs real llama-server", server);
    int failed = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct ref_case *c = &cases[i];
        if (c->rss_anon <= 0 || (c->tiny ? !have_tiny : !have_big))
            continue; /* the dry-run-only row, or no model */
        plan_llm_config cfg;
        config_of(c, &cfg);
        plan_demand d;
        genai_error err;
        if (plan_llm_estimate(c->tiny ? tiny : big, &cfg, &d, NULL, &err) < 0) {
            printf("%s: %s\n", c->label, err.detail);
            failed = 1;
            continue;
        }
        char store[3][32];
        char *argv[32];
        int port = free_port();
        case_argv(c, server, c->tiny ? tiny_path : big_path, port, store, argv);
        printf("%s (real)\n", c->label);
        observed obs;
        memset(&obs, 0, sizeof(obs));
        if (port < 0 || run_server(argv, &obs) < 0) {
            misses++;
            continue;
        }
        double w = d.host_parts.weights / MIB, kv = d.host_parts.kv / MIB;
        double comp = d.host_parts.compute / MIB;
        double ow = llm_footprint_sum(&obs.fp, 1, LLM_BUF_MODEL) / MIB;
        double okv = llm_footprint_sum(&obs.fp, 1, LLM_BUF_KV) / MIB;
        double oc = llm_footprint_sum(&obs.fp, 1, LLM_BUF_COMPUTE) / MIB;
        real_line("weights", w, ow, c->model, 0.02);
        real_line("kv", kv, okv, c->kv_mib, 0.02);
        real_line("compute", comp, oc, c->compute, 0);
        real_line("total", w + kv + comp, ow + okv + oc, c->model + c->kv_mib + c->compute, 0.10);
        if (fit != NULL) {
            /* DRY_RUN against the real run: an upper bound by at most 3 MiB. */
            plan_demand dry;
            if (plan_fitparams_run(fit, c->tiny ? tiny_path : big_path, c->tiny ? tiny : big,
                                   &cfg, 30000, &dry, &err) < 0) {
                printf("  dry total: %s  MISSED TARGET\n", err.detail);
                misses++;
            } else {
                double dt = (dry.host_parts.weights + dry.host_parts.kv + dry.host_parts.compute) /
                            MIB;
                double ot = ow + okv + oc;
                int miss = dt < ot || dt - ot > 3.0;
                misses += miss;
                printf("  %-10s est %10.2f  real %10.2f  (real llama-fit-params; within [real, "
                       "real + 3])%s\n",
                       "dry total", dt, ot, miss ? "  MISSED TARGET" : "");
            }
        }
        uint64_t anon, file;
        plan_demand_resident(&d, &anon, &file);
        real_line("rss anon", anon / 1e6, obs.rss_anon / 1e6, c->rss_anon, 0);
        real_line("rss file", file / 1e6, obs.rss_file / 1e6, c->rss_file, 0);
        uint64_t dev = llm_footprint_sum(&obs.fp, 0, LLM_BUF__COUNT);
        if (dev > 0)
            printf("  note: %.2f MiB in device buffers despite -dev none\n", dev / MIB);
    }
    mem_free(fit);
    unlink(tiny_path);
    unlink(big_path);
    rmdir(dir);
    return failed ? -1 : 0;
}

int main(void)
{
    gguf_profile big, tiny;
    if (fixture_ref_big(&big) < 0 || fixture_ref_tiny(&tiny) < 0)
        return 1;
    printf("planner accuracy, ESTIMATE and DRY_RUN tiers vs llama-server b10470 (MiB; RSS MB)\n");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct ref_case *c = &cases[i];
        const gguf_profile *p = c->tiny ? &tiny : &big;
        plan_llm_config cfg;
        config_of(c, &cfg);
        plan_demand d;
        plan_llm_shape s;
        genai_error err;
        if (plan_llm_estimate(p, &cfg, &d, &s, &err) < 0) {
            printf("%s: %s\n", c->label, err.detail);
            return 1;
        }
        printf("%s\n", c->label);
        double w = d.host_parts.weights / MIB, kv = d.host_parts.kv / MIB;
        double comp = d.host_parts.compute / MIB;
        line("weights", w, c->model, 0.02);
        line("kv", kv, c->kv_mib, 0.02);
        line("compute", comp, c->compute, 0);
        line("total", w + kv + comp, c->model + c->kv_mib + c->compute, 0.10);
        if (c->rss_anon > 0) {
            uint64_t anon, file;
            plan_demand_resident(&d, &anon, &file);
            line("rss anon", anon / 1e6, c->rss_anon, 0);
            line("rss file", file / 1e6, c->rss_file, 0);
        }
        plan_fitparams_result r;
        plan_demand dry;
        if (plan_fitparams_parse(c->fit_print, strlen(c->fit_print), &r, &err) < 0 ||
            plan_fitparams_demand(&r, p, &cfg, &dry, &err) < 0) {
            printf("%s: %s\n", c->label, err.detail);
            return 1;
        }
        double dry_total =
            (dry.host_parts.weights + dry.host_parts.kv + dry.host_parts.compute) / MIB;
        /* The dry run charges each floored value + 1 MiB: it must be an
         * upper bound, by at most 3 MiB (one per field). */
        double obs_total = c->model + c->kv_mib + c->compute;
        line("dry total", dry_total, obs_total, 0);
        if (dry_total < obs_total || dry_total - obs_total > 3.0) {
            printf("  dry total is not within [obs, obs + 3 MiB]  MISSED TARGET\n");
            misses++;
        }
    }
    int real = compare_real(&tiny, &big);
    fixture_profile_free(&big);
    fixture_profile_free(&tiny);
    if (real < 0)
        misses++;
    printf("%s: %d target(s) missed\n", misses ? "FAIL" : "OK", misses);
    return misses ? 1 : 0;
}
