/*
 * test_runtime.c - the LLM runtime (src/llm/runtime.c), the chat client and
 * `genai run`, against fake-llama-server as a real process (and against the
 * real llama-server when one is found).
 *
 * The runtime lives on a loop.h thread, as in genai; the test thread posts
 * to it and waits for recorded events with deadlines. Every test checks
 * that the child is gone afterwards (kill(pid, 0) == ESRCH) and that this
 * process's fd count is back where it started.
 */
#include "cmocka_all.h"

#include "../proc/proc_test_util.h"
#include "core/alloc.h"
#include "core/loop.h"
#include "core/paths.h"
#include "gguf/writer.h"
#include "llm/chat.h"
#include "llm/discover.h"
#include "llm/isolate.h"
#include "llm/runtime.h"
#include "proc/run.h"
#include "sys/fakegpu.h"
#include "testutil/testutil.h"
#include "tiny_llama.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_EV = 64, TXT = 2048 };

typedef struct rec_event {
    llm_rt_event ev; /* pointers cleared */
    char reason[TXT];
    char tail[TXT];
    int64_t at_ms;
} rec_event;

typedef struct rtx {
    loop *l;
    llm_runtime *rt;
    plan_footprints *fp;
    llm_rt_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rec_event ev[MAX_EV];
    int n;
    int start_rc;
    genai_error start_err;
    pid_t pids[16]; /* every child seen */
    int npids;
    /* results of loop calls */
    llm_rt_endpoint ep;
    llm_rt_plan plan;
    plan_demand measured;
    int have_measured;
    genai_error error;
    llm_footprint memlog;
    char model_key[PLAN_KEY_MAX], config_key[PLAN_KEY_MAX];
} rtx;

static char g_dir[256], g_tiny[300], g_big[300], g_fake[512], g_genai[512];
static char *g_real; /* a real llama-server, when found */
static int g_fds;

/* ---- fixtures ------------------------------------------------------------ */

static void write_tiny(const char *path)
{
    struct mkmodel_opts o;
    mkmodel_defaults(&o);
    gguf_writer *w = NULL;
    genai_error e;
    assert_int_equal(mkmodel_build(&o, &w, &e), 0);
    assert_int_equal(gguf_writer_write(w, path, &e), 0);
    gguf_writer_free(w);
}

/* A llama model far larger than 8 GiB of GPU plus this host, F32, written
 * as a sparse file (the tensor data is a hole). */
static void write_big(const char *path)
{
    const uint64_t L = 64, E = 4096, F = 11008, V = 32000;
    gguf_writer *w;
    assert_int_equal(gguf_writer_new(&w), 0);
    assert_int_equal(gguf_writer_add_str(w, "general.architecture", "llama"), 0);
    assert_int_equal(gguf_writer_add_u32(w, "llama.block_count", (uint32_t)L), 0);
    assert_int_equal(gguf_writer_add_u32(w, "llama.context_length", 4096), 0);
    assert_int_equal(gguf_writer_add_u32(w, "llama.embedding_length", (uint32_t)E), 0);
    assert_int_equal(gguf_writer_add_u32(w, "llama.feed_forward_length", (uint32_t)F), 0);
    assert_int_equal(gguf_writer_add_u32(w, "llama.attention.head_count", 32), 0);
    assert_int_equal(gguf_writer_add_u32(w, "llama.attention.head_count_kv", 8), 0);
    assert_int_equal(gguf_writer_add_u32(w, "llama.vocab_size", (uint32_t)V), 0);
    uint64_t ne[2];
    ne[0] = E;
    ne[1] = V;
    assert_int_equal(gguf_writer_add_tensor(w, "token_embd.weight", GGUF_DT_F32, 2, ne, NULL), 0);
    for (uint64_t l = 0; l < L; l++) {
        static const struct {
            const char *name;
            uint64_t a, b;
        } t[] = {{"attn_norm.weight", 4096, 0},      {"attn_q.weight", 4096, 4096},
                 {"attn_k.weight", 4096, 1024},      {"attn_v.weight", 4096, 1024},
                 {"attn_output.weight", 4096, 4096}, {"ffn_norm.weight", 4096, 0},
                 {"ffn_gate.weight", 4096, 11008},   {"ffn_up.weight", 4096, 11008},
                 {"ffn_down.weight", 11008, 4096}};
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
            char n[64];
            snprintf(n, sizeof(n), "blk.%llu.%s", (unsigned long long)l, t[i].name);
            ne[0] = t[i].a;
            ne[1] = t[i].b;
            assert_int_equal(gguf_writer_add_tensor(w, n, GGUF_DT_F32, t[i].b ? 2 : 1, ne, NULL),
                             0);
        }
    }
    ne[0] = E;
    assert_int_equal(gguf_writer_add_tensor(w, "output_norm.weight", GGUF_DT_F32, 1, ne, NULL), 0);
    ne[1] = V;
    assert_int_equal(gguf_writer_add_tensor(w, "output.weight", GGUF_DT_F32, 2, ne, NULL), 0);
    genai_error e;
    assert_int_equal(gguf_writer_write(w, path, &e), 0);
    gguf_writer_free(w);
}

/* A fake GPU file with one empty device of 8 GiB; returns its path. */
static const char *fake_gpu_8g(char *buf, size_t n)
{
    snprintf(buf, n, "%s/gpu.json", g_dir);
    FILE *f = fopen(buf, "we");
    assert_non_null(f);
    fprintf(f, "{\"devices\":[{\"name\":\"Fake GPU 8GB\",\"total_bytes\":8589934592}]}\n");
    fclose(f);
    return buf;
}

static void clear_switches(void)
{
    static const char *const names[] = {
        "FAKE_LLAMA_CRASH_AT_START",  "FAKE_LLAMA_CRASH_AFTER_TOKENS",
        "FAKE_LLAMA_CRASH_HOW",       "FAKE_LLAMA_LOAD_MS",
        "FAKE_LLAMA_HANG_ON_SIGTERM", "FAKE_LLAMA_BIND_FAIL",
        "FAKE_LLAMA_PROPS_ALIAS",     "FAKE_LLAMA_READY_FILE",
        "FAKE_LLAMA_PORT_FILE",       "GENAI_FAKE_GPU",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unsetenv(names[i]);
}

/* ---- the runtime on a loop thread ------------------------------------------ */

static void on_event(void *arg, llm_runtime *rt, const llm_rt_event *ev)
{
    (void)rt;
    rtx *x = arg;
    pthread_mutex_lock(&x->mu);
    if (x->n < MAX_EV) {
        rec_event *r = &x->ev[x->n++];
        r->ev = *ev;
        r->ev.reason = NULL;
        r->ev.stderr_tail = NULL;
        snprintf(r->reason, sizeof(r->reason), "%s", ev->reason);
        snprintf(r->tail, sizeof(r->tail), "%s", ev->stderr_tail);
        r->at_ms = tu_now_ms();
    }
    if (ev->pid > 0 && x->npids < 16 && (x->npids == 0 || x->pids[x->npids - 1] != ev->pid))
        x->pids[x->npids++] = ev->pid;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

static void do_new_start(loop *l, void *arg, loop_completion *c)
{
    rtx *x = arg;
    int rc = x->rt == NULL
                 ? llm_runtime_new(loop_uv(l), &x->cfg, x->fp, on_event, x, &x->rt, &x->start_err)
                 : 0;
    if (rc == 0)
        rc = llm_runtime_start(x->rt, &x->start_err);
    if (llm_runtime_plan(x->rt) != NULL)
        x->plan = *llm_runtime_plan(x->rt);
    loop_complete(c, rc);
}

static void do_query(loop *l, void *arg, loop_completion *c)
{
    (void)l;
    rtx *x = arg;
    int rc = llm_runtime_endpoint(x->rt, &x->ep, NULL);
    if (llm_runtime_plan(x->rt) != NULL)
        x->plan = *llm_runtime_plan(x->rt);
    x->have_measured = llm_runtime_measured(x->rt, &x->measured);
    x->error = *llm_runtime_error(x->rt);
    x->memlog = *llm_runtime_memlog(x->rt);
    snprintf(x->model_key, sizeof(x->model_key), "%s", llm_runtime_model_key(x->rt));
    snprintf(x->config_key, sizeof(x->config_key), "%s", llm_runtime_config_key(x->rt));
    pid_t pid = llm_runtime_pid(x->rt);
    if (pid > 0 && x->npids < 16 && (x->npids == 0 || x->pids[x->npids - 1] != pid))
        x->pids[x->npids++] = pid;
    loop_complete(c, rc);
}

static void do_stop(loop *l, void *arg, loop_completion *c)
{
    (void)l;
    llm_runtime_stop(((rtx *)arg)->rt);
    loop_complete(c, 0);
}

static void do_free(loop *l, void *arg, loop_completion *c)
{
    (void)l;
    rtx *x = arg;
    llm_runtime_free(x->rt);
    x->rt = NULL;
    loop_complete(c, 0);
}

static void rtx_init(rtx *x, const char *model)
{
    memset(x, 0, sizeof(*x));
    g_fds = tu_fd_count();
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    llm_rt_config_init(&x->cfg);
    x->cfg.model = model;
    x->cfg.model_id = "tiny";
    x->cfg.probe_min_ms = 10;
    assert_int_equal(loop_start(&x->l, NULL), 0);
    x->fp = plan_footprints_new();
    assert_non_null(x->fp);
}

static int rtx_start(rtx *x)
{
    x->start_rc = loop_call_wait(x->l, do_new_start, x);
    return x->start_rc;
}

static void rtx_query(rtx *x)
{
    loop_call_wait(x->l, do_query, x);
}

/* Index of the first event at or after 'from' in state st, or -1 after
 * timeout_ms. */
static int rtx_wait(rtx *x, llm_rt_state st, int from, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&x->mu);
    int found = -1;
    for (;;) {
        for (int i = from; i < x->n && found < 0; i++)
            if (x->ev[i].ev.state == st)
                found = i;
        if (found >= 0 || pthread_cond_timedwait(&x->cv, &x->mu, &dl) == ETIMEDOUT)
            break;
    }
    if (found < 0) {
        for (int i = from; i < x->n && found < 0; i++)
            if (x->ev[i].ev.state == st)
                found = i;
    }
    pthread_mutex_unlock(&x->mu);
    return found;
}

static int rtx_count(rtx *x, llm_rt_state st)
{
    pthread_mutex_lock(&x->mu);
    int k = 0;
    for (int i = 0; i < x->n; i++)
        k += x->ev[i].ev.state == st;
    pthread_mutex_unlock(&x->mu);
    return k;
}

/* Stops (waiting for STOPPED or FAILED), frees, stops the loop, and checks
 * every child is gone and no fd leaked. */
static void rtx_done(rtx *x)
{
    int from = x->n;
    loop_call_wait(x->l, do_stop, x);
    pthread_mutex_lock(&x->mu);
    llm_rt_state last = x->n > 0 ? x->ev[x->n - 1].ev.state : LLM_RT_STOPPED;
    pthread_mutex_unlock(&x->mu);
    if (last != LLM_RT_STOPPED && last != LLM_RT_FAILED)
        assert_true(rtx_wait(x, LLM_RT_STOPPED, from, 15000) >= 0);
    loop_call_wait(x->l, do_free, x);
    loop_stop(x->l);
    plan_footprints_free(x->fp);
    for (int i = 0; i < x->npids; i++) {
        errno = 0;
        assert_int_equal(kill(x->pids[i], 0), -1);
        assert_int_equal(errno, ESRCH);
    }
    pthread_cond_destroy(&x->cv);
    pthread_mutex_destroy(&x->mu);
    assert_int_equal(tu_fd_count(), g_fds);
    clear_switches();
}

typedef struct collected {
    char text[4096];
    size_t len;
} collected;

static int collect(void *arg, const char *t, size_t n)
{
    collected *c = arg;
    if (c->len + n < sizeof(c->text)) {
        memcpy(c->text + c->len, t, n);
        c->len += n;
        c->text[c->len] = '\0';
    }
    return 0;
}

static int chat_once(rtx *x, llm_chat *chat, int max_tokens, collected *out, genai_error *e)
{
    rtx_query(x);
    llm_chat_opts o = {.port = x->ep.port,
                       .api_key = x->ep.api_key,
                       .model = x->ep.model_id,
                       .max_tokens = max_tokens};
    memset(out, 0, sizeof(*out));
    return llm_chat_send(chat, &o, "hello there", collect, out, NULL, e);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_start_ready_chat_stop(void **state)
{
    (void)state;
    rtx x;
    rtx_init(&x, g_tiny);
    x.cfg.ctx = 512;
    assert_int_equal(rtx_start(&x), 0);
    int r = rtx_wait(&x, LLM_RT_READY, 0, 10000);
    assert_true(r >= 0);
    assert_int_equal(x.ev[0].ev.state, LLM_RT_STARTING);
    rtx_query(&x);
    assert_int_equal(x.plan.props_n_ctx, 512); /* what /props said */
    assert_int_equal(x.plan.props_slots, 1);
    assert_string_equal(x.ep.model_id, "tiny");
    assert_int_equal(strlen(x.ep.api_key), LLM_API_KEY_LEN);
    assert_true(x.plan.build_info[0] == 'b');

    llm_chat *chat;
    assert_int_equal(llm_chat_new("be brief", &chat, NULL), 0);
    collected out;
    genai_error e;
    assert_int_equal(chat_once(&x, chat, 6, &out, &e), 0);
    assert_string_equal(out.text, "0rr=rr=rr"); /* the double's deterministic tokens */
    assert_int_equal(llm_chat_messages(chat), 3);
    assert_int_equal(chat_once(&x, chat, 2, &out, &e), 0);
    assert_int_equal(llm_chat_messages(chat), 5);
    /* a wrong key is refused with the server's message */
    llm_chat_opts bad = {.port = x.ep.port, .api_key = "nope", .max_tokens = 2};
    assert_int_equal(llm_chat_send(chat, &bad, "x", NULL, NULL, NULL, &e), GENAI_EHTTP);
    assert_non_null(strstr(e.detail, "Invalid API Key"));
    assert_int_equal(llm_chat_messages(chat), 5);
    llm_chat_free(chat);

    int from = x.n;
    loop_call_wait(x.l, do_stop, &x);
    int s = rtx_wait(&x, LLM_RT_STOPPED, from, 10000);
    assert_true(s >= 0);
    assert_int_equal(x.ev[s].ev.stop_how, SUP_STOP_CLEAN);
    assert_true(x.ev[s].ev.reaped);
    rtx_done(&x);
}

static void test_props_mismatch(void **state)
{
    (void)state;
    setenv("FAKE_LLAMA_PROPS_ALIAS", "some-other-model", 1);
    rtx x;
    rtx_init(&x, g_tiny);
    x.cfg.ctx = 512;
    assert_int_equal(rtx_start(&x), 0);
    int f = rtx_wait(&x, LLM_RT_FAILED, 0, 10000);
    assert_true(f >= 0);
    assert_int_equal(rtx_count(&x, LLM_RT_READY), 0); /* never reported ready */
    assert_int_equal(x.ev[f].ev.code, GENAI_ENOT_READY);
    rtx_query(&x);
    assert_non_null(strstr(x.error.detail, "serves model 'some-other-model'"));
    assert_non_null(strstr(x.error.detail, "'tiny'"));
    assert_true(x.ev[f].ev.reaped);
    rtx_done(&x);
}

static void test_crash_at_start(void **state)
{
    (void)state;
    setenv("FAKE_LLAMA_CRASH_AT_START", "1", 1);
    setenv("FAKE_LLAMA_CRASH_HOW", "exit:3", 1);
    rtx x;
    rtx_init(&x, g_tiny);
    x.cfg.restart_max = 1;
    assert_int_equal(rtx_start(&x), 0);
    int f = rtx_wait(&x, LLM_RT_FAILED, 0, 15000);
    assert_true(f >= 0);
    assert_int_equal(rtx_count(&x, LLM_RT_CRASHED), 2); /* first start and one restart */
    assert_int_equal(rtx_count(&x, LLM_RT_RESTARTING), 1);
    int c = rtx_wait(&x, LLM_RT_CRASHED, 0, 0);
    assert_int_equal(x.ev[c].ev.exit_code, 3);
    assert_int_equal(x.ev[c].ev.cause, PROC_CAUSE_UNKNOWN);
    assert_non_null(strstr(x.ev[c].tail, "verbosity = 4")); /* the banner the double printed */
    rtx_query(&x);
    assert_int_equal(x.error.code, GENAI_ECHILD_EXITED);
    assert_non_null(strstr(x.error.detail, "exited with code 3"));
    assert_non_null(strstr(x.error.detail, "last stderr lines:"));
    assert_non_null(strstr(x.error.detail, "verbosity = 4"));
    rtx_done(&x);
}

/* A cause a restart cannot fix fails at once. */
static void test_bad_argument_fails_fast(void **state)
{
    (void)state;
    static const char *const extra[] = {"--bogus-flag", NULL};
    rtx x;
    rtx_init(&x, g_tiny);
    x.cfg.extra_args = extra;
    assert_int_equal(rtx_start(&x), 0);
    int f = rtx_wait(&x, LLM_RT_FAILED, 0, 10000);
    assert_true(f >= 0);
    assert_int_equal(rtx_count(&x, LLM_RT_RESTARTING), 0);
    assert_int_equal(x.ev[f].ev.code, GENAI_EBAD_ARG);
    rtx_query(&x);
    assert_non_null(strstr(x.error.detail, "error: invalid argument: --bogus-flag"));
    assert_non_null(strstr(x.error.detail, "bad argument"));
    rtx_done(&x);
}

static void test_crash_during_chat_restarts(void **state)
{
    (void)state;
    setenv("FAKE_LLAMA_CRASH_AFTER_TOKENS", "5", 1);
    rtx x;
    rtx_init(&x, g_tiny);
    x.cfg.ctx = 512;
    assert_int_equal(rtx_start(&x), 0);
    assert_true(rtx_wait(&x, LLM_RT_READY, 0, 10000) >= 0);
    llm_chat *chat;
    assert_int_equal(llm_chat_new(NULL, &chat, NULL), 0);
    collected out;
    genai_error e;
    assert_int_equal(chat_once(&x, chat, 20, &out, &e), GENAI_EUNAVAILABLE);
    assert_int_equal(llm_chat_messages(chat), 0); /* the failed turn is not kept */
    int c = rtx_wait(&x, LLM_RT_CRASHED, 0, 5000);
    assert_true(c >= 0);
    assert_int_equal(x.ev[c].ev.term_signal, SIGABRT);
    int rs = rtx_wait(&x, LLM_RT_RESTARTING, c, 5000);
    int st = rtx_wait(&x, LLM_RT_STARTING, rs, 5000);
    assert_true(rs >= 0 && st >= 0);
    assert_true(x.ev[st].at_ms - x.ev[c].at_ms >= 990); /* backoff: at least 1 s */
    int r2 = rtx_wait(&x, LLM_RT_READY, st, 10000);
    assert_true(r2 >= 0);
    assert_int_equal(chat_once(&x, chat, 3, &out, &e), 0); /* below the crash point */
    assert_string_equal(out.text, "0rr=");
    llm_chat_free(chat);
    assert_int_equal(x.npids, 2);
    rtx_done(&x);
}

static void test_load_slowly(void **state)
{
    (void)state;
    char ready_file[400];
    snprintf(ready_file, sizeof(ready_file), "%s/ready-at", g_dir);
    unlink(ready_file);
    setenv("FAKE_LLAMA_LOAD_MS", "700", 1);
    setenv("FAKE_LLAMA_READY_FILE", ready_file, 1);
    rtx x;
    rtx_init(&x, g_tiny);
    x.cfg.ctx = 512;
    int64_t t0 = tu_now_ms();
    assert_int_equal(rtx_start(&x), 0);
    int ld = rtx_wait(&x, LLM_RT_LOADING, 0, 5000);
    assert_true(ld >= 0);
    assert_true(x.ev[ld].at_ms - t0 < 600); /* seen loading, answering 503 */
    int r = rtx_wait(&x, LLM_RT_READY, ld, 10000);
    assert_true(r >= 0);
    assert_true(x.ev[r].at_ms - t0 >= 700);
    /* not early: READY comes after the instant the double began to answer 200 */
    FILE *f = fopen(ready_file, "re");
    assert_non_null(f);
    long long sec;
    long nsec;
    assert_int_equal(fscanf(f, "%lld.%ld", &sec, &nsec), 2);
    fclose(f);
    assert_true(x.ev[r].at_ms >= sec * 1000 + nsec / 1000000);
    unlink(ready_file);
    rtx_done(&x);
}

static void test_hang_on_sigterm(void **state)
{
    (void)state;
    setenv("FAKE_LLAMA_HANG_ON_SIGTERM", "1", 1);
    rtx x;
    rtx_init(&x, g_tiny);
    x.cfg.ctx = 512;
    x.cfg.stop_grace_ms = 400;
    /* Long enough for the double to act on the second SIGTERM even under
     * ThreadSanitizer; it exits at once, so the test does not wait it out. */
    x.cfg.stop_term2_ms = 3000;
    assert_int_equal(rtx_start(&x), 0);
    assert_true(rtx_wait(&x, LLM_RT_READY, 0, 10000) >= 0);
    int from = x.n;
    int64_t t0 = tu_now_ms();
    loop_call_wait(x.l, do_stop, &x);
    int s = rtx_wait(&x, LLM_RT_STOPPED, from, 10000);
    assert_true(s >= 0);
    assert_int_equal(x.ev[s].ev.stop_how, SUP_STOP_SECOND_TERM);
    assert_true(x.ev[s].at_ms - t0 >= 400);
    assert_true(x.ev[s].at_ms - t0 < 400 + 3000);
    rtx_done(&x);

    /* A child that cannot act on SIGTERM at all (stopped): SIGKILL. */
    rtx_init(&x, g_tiny);
    x.cfg.ctx = 512;
    x.cfg.stop_grace_ms = 300;
    x.cfg.stop_term2_ms = 300;
    assert_int_equal(rtx_start(&x), 0);
    assert_true(rtx_wait(&x, LLM_RT_READY, 0, 10000) >= 0);
    rtx_query(&x);
    assert_int_equal(kill(x.pids[0], SIGSTOP), 0);
    from = x.n;
    t0 = tu_now_ms();
    loop_call_wait(x.l, do_stop, &x);
    s = rtx_wait(&x, LLM_RT_STOPPED, from, 10000);
    assert_true(s >= 0);
    assert_int_equal(x.ev[s].ev.stop_how, SUP_STOP_KILLED);
    assert_int_equal(x.ev[s].ev.term_signal, SIGKILL);
    assert_true(x.ev[s].at_ms - t0 < 300 + 300 + 2000);
    rtx_done(&x);
}

/* Listens on a free loopback port; returns the fd and the port. */
static int hold_port(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 1), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void test_port_in_use(void **state)
{
    (void)state;
    /* Taken between the pick and the bind: retried on another port. */
    uint16_t taken;
    rtx x;
    rtx_init(&x, g_tiny);
    int fd = hold_port(&taken);
    x.cfg.ctx = 512;
    x.cfg.port = taken;
    assert_int_equal(rtx_start(&x), 0);
    int c = rtx_wait(&x, LLM_RT_CRASHED, 0, 10000);
    assert_true(c >= 0);
    assert_int_equal(x.ev[c].ev.cause, PROC_CAUSE_PORT);
    assert_non_null(strstr(x.ev[c].tail, "couldn't bind HTTP server socket"));
    assert_true(rtx_wait(&x, LLM_RT_READY, c, 10000) >= 0);
    rtx_query(&x);
    assert_true(x.ep.port != taken);
    close(fd);
    rtx_done(&x);

    /* Never bindable: reported as a port problem after the retries. */
    setenv("FAKE_LLAMA_BIND_FAIL", "1", 1);
    rtx_init(&x, g_tiny);
    x.cfg.restart_max = 1;
    assert_int_equal(rtx_start(&x), 0);
    int f = rtx_wait(&x, LLM_RT_FAILED, 0, 15000);
    assert_true(f >= 0);
    assert_int_equal(x.ev[f].ev.cause, PROC_CAUSE_PORT);
    assert_int_equal(x.ev[f].ev.code, -EADDRINUSE);
    rtx_query(&x);
    assert_non_null(strstr(x.error.detail, "port in use"));
    rtx_done(&x);
}

static void test_does_not_fit(void **state)
{
    (void)state;
    char gpu[400];
    setenv("GENAI_FAKE_GPU", fake_gpu_8g(gpu, sizeof(gpu)), 1);
    rtx x;
    rtx_init(&x, g_big);
    x.cfg.model_id = "big";
    x.cfg.ngl = 65; /* every unit on the 8 GiB GPU */
    assert_int_equal(rtx_start(&x), GENAI_ENO_FIT);
    assert_non_null(strstr(x.start_err.detail, "big does not fit"));
    assert_non_null(strstr(x.start_err.detail, "more on GPU 0 (Fake GPU 8GB)"));
    assert_int_equal(x.n, 0); /* refused before anything was spawned */
    assert_true(x.plan.choice.fit.gpu_deficit[0] > 0);
    rtx_query(&x);
    assert_int_equal(x.error.code, GENAI_ENO_FIT);
    fakegpu_state st;
    assert_int_equal(fakegpu_read(gpu, &st, NULL), 0);
    assert_int_equal(st.n_allocs, 0);
    fakegpu_state_free(&st);
    rtx_done(&x);
    unlink(gpu);
}

static void test_footprint_recorded(void **state)
{
    (void)state;
    char gpu[400];
    setenv("GENAI_FAKE_GPU", fake_gpu_8g(gpu, sizeof(gpu)), 1);
    rtx x;
    rtx_init(&x, g_tiny);
    assert_int_equal(rtx_start(&x), 0); /* everything auto: all on the GPU, full context */
    assert_int_equal(x.plan.demand.tier, PLAN_TIER_ESTIMATE);
    assert_true(rtx_wait(&x, LLM_RT_READY, 0, 10000) >= 0);
    rtx_query(&x);
    assert_int_equal(x.plan.choice.shape.gpu_units, 3);
    assert_int_equal(x.plan.props_n_ctx, 2048);
    assert_true(x.have_measured);
    /* KV: 2048 cells x 2 layers x (64 + 64) x 2 B = 1 MiB, on CUDA0 */
    assert_int_equal(x.measured.gpu_parts[0].kv, 1048576);
    assert_int_equal(x.measured.gpu_parts[0].weights,
                     llm_footprint_sum(&x.memlog, 0, LLM_BUF_MODEL));
    assert_true(x.memlog.n_lines >= 4);
    /* per-process GPU memory: what the double holds on the fake GPU */
    fakegpu_state st;
    assert_int_equal(fakegpu_read(gpu, &st, NULL), 0);
    uint64_t held = 0;
    for (uint32_t i = 0; i < st.n_allocs; i++)
        if (st.allocs[i].pid == x.pids[0] && st.allocs[i].released_at_ms == 0)
            held += st.allocs[i].bytes;
    fakegpu_state_free(&st);
    assert_true(held > 0);
    assert_int_equal(x.measured.gpu[0], held);
    assert_true(x.measured.host_anon > 0 && x.measured.host_file > 0);
    assert_int_equal(x.measured.tier, PLAN_TIER_MEASURED);
    plan_demand d;
    assert_int_equal(plan_footprints_lookup(x.fp, x.model_key, x.config_key, &d), 1);
    assert_int_equal(d.gpu[0], held);

    /* A reload plans with the measurement (same configuration, deep copy). */
    int from = x.n;
    loop_call_wait(x.l, do_stop, &x);
    assert_true(rtx_wait(&x, LLM_RT_STOPPED, from, 10000) >= 0);
    assert_int_equal(rtx_start(&x), 0);
    assert_int_equal(x.plan.demand.tier, PLAN_TIER_MEASURED);
    assert_true(rtx_wait(&x, LLM_RT_READY, from, 10000) >= 0);
    rtx_done(&x);
    unlink(gpu);
}

/*
 * Measured beats estimated (DESIGN.md principle 1): a pinned configuration
 * whose estimate no longer fits the GPU, but whose footprint measured on
 * the last run does, starts with the measurement instead of being refused.
 */
static void test_measured_overrides_estimate(void **state)
{
    (void)state;
    char gpu[400];
    setenv("GENAI_FAKE_GPU", fake_gpu_8g(gpu, sizeof(gpu)), 1);
    rtx x;
    rtx_init(&x, g_tiny);
    x.cfg.ngl = 3; /* pinned, as the orchestrator pins a reload */
    x.cfg.ctx = 2048;
    assert_int_equal(rtx_start(&x), 0);
    assert_int_equal(x.plan.demand.tier, PLAN_TIER_ESTIMATE);
    uint64_t estimate = x.plan.demand.gpu[0];
    assert_true(rtx_wait(&x, LLM_RT_READY, 0, 10000) >= 0);
    rtx_query(&x);
    assert_true(x.have_measured);
    uint64_t measured = x.measured.gpu[0];
    assert_true(measured > 0 && measured < estimate);
    int from = x.n;
    loop_call_wait(x.l, do_stop, &x);
    assert_true(rtx_wait(&x, LLM_RT_STOPPED, from, 10000) >= 0);

    /* Others now hold the card but for the measurement, the reserve and
     * half of what the estimate adds on top. */
    fakegpu_state st;
    assert_int_equal(fakegpu_read(gpu, &st, NULL), 0);
    uint64_t room = measured + PLAN_DEFAULT_GPU_RESERVE + (estimate - measured) / 2;
    st.devices[0].base_used_bytes = st.devices[0].total_bytes - room;
    assert_int_equal(fakegpu_write(gpu, &st, NULL), 0);
    fakegpu_state_free(&st);

    /* The same runtime restarting: the configuration it had, measured. */
    from = x.n;
    int rc = rtx_start(&x);
    if (rc != 0)
        print_message("start: %s\n", x.start_err.detail);
    assert_int_equal(rc, 0);
    assert_int_equal(x.plan.demand.tier, PLAN_TIER_MEASURED);
    assert_true(rtx_wait(&x, LLM_RT_READY, from, 10000) >= 0);
    from = x.n;
    loop_call_wait(x.l, do_stop, &x);
    assert_true(rtx_wait(&x, LLM_RT_STOPPED, from, 10000) >= 0);

    /* A new runtime with every field pinned (how the orchestrator reloads),
     * sharing the footprint table: the measurement decides too. */
    loop_call_wait(x.l, do_free, &x);
    x.rt = NULL;
    x.cfg.kv = PLAN_CACHE_F16;
    x.cfg.fa = x.plan.choice.cfg.flash_attn;
    from = x.n;
    rc = rtx_start(&x);
    if (rc != 0)
        print_message("start: %s\n", x.start_err.detail);
    assert_int_equal(rc, 0);
    assert_int_equal(x.plan.demand.tier, PLAN_TIER_MEASURED);
    assert_true(rtx_wait(&x, LLM_RT_READY, from, 10000) >= 0);
    rtx_done(&x);
    unlink(gpu);
}

/* ---- genai run as a process ------------------------------------------------- */

static void test_cli_run_prompt(void **state)
{
    (void)state;
    int fds = tu_fd_count();
    char port_file[400];
    snprintf(port_file, sizeof(port_file), "%s/cli-port", g_dir);
    setenv("FAKE_LLAMA_PORT_FILE", port_file, 1);
    const char *argv[] = {g_genai, "run", g_tiny,         "--prompt", "hello",
                          "--ctx", "512", "--max-tokens", "8",        NULL};
    proc_capture cap;
    assert_int_equal(proc_run_capture(argv, 30000, 1 << 20, &cap, NULL), 0);
    if (cap.exit_code != 0)
        print_message("stderr: %s\n", cap.err);
    assert_int_equal(cap.exited, 1);
    assert_int_equal(cap.exit_code, 0);
    assert_string_equal(cap.out, "0rr=rr=rr=rr\n");
    proc_capture_free(&cap);
    /* --json: the answer with its token counts, which the server sends only
     * when asked for (stream_options.include_usage). */
    const char *argvj[] = {g_genai, "run",          g_tiny, "--prompt", "hello", "--ctx",
                           "512",   "--max-tokens", "8",    "--json",   NULL};
    assert_int_equal(proc_run_capture(argvj, 30000, 1 << 20, &cap, NULL), 0);
    assert_int_equal(cap.exit_code, 0);
    json_t *ans = json_loads(cap.out, 0, NULL);
    assert_non_null(ans);
    assert_string_equal(json_string_value(json_object_get(ans, "content")), "0rr=rr=rr=rr");
    assert_string_equal(json_string_value(json_object_get(ans, "finish_reason")), "length");
    assert_int_equal(json_integer_value(json_object_get(ans, "completion_tokens")), 8);
    assert_true(json_integer_value(json_object_get(ans, "prompt_tokens")) > 0);
    json_decref(ans);
    proc_capture_free(&cap);
    FILE *f = fopen(port_file, "re");
    assert_non_null(f);
    long pid = 0;
    assert_int_equal(fscanf(f, "%ld", &pid), 1);
    fclose(f);
    assert_true(tu_wait_pid_gone((pid_t)pid, 5000)); /* the CLI left no child behind */
    unlink(port_file);

    /* A failing start: one paragraph with the cause, the child's last lines
     * and a suggestion; exit 1. */
    setenv("FAKE_LLAMA_CRASH_AT_START", "1", 1);
    setenv("FAKE_LLAMA_CRASH_HOW", "exit:1", 1);
    const char *argv2[] = {g_genai, "run", g_tiny, "--prompt", "hello", NULL};
    assert_int_equal(proc_run_capture(argv2, 60000, 1 << 20, &cap, NULL), 0);
    assert_int_equal(cap.exit_code, 1);
    assert_string_equal(cap.out, "");
    assert_non_null(strstr(cap.err, "genai run: llama-server did not start"));
    assert_non_null(strstr(cap.err, "exited with code 1"));
    assert_non_null(strstr(cap.err, "Last lines from llama-server:"));
    assert_non_null(strstr(cap.err, "verbosity = 4"));
    assert_non_null(strstr(cap.err, "Suggestion: "));
    proc_capture_free(&cap);
    clear_switches();

    /* Does not fit: refused before spawning, with the deficit and a suggestion. */
    char gpu[400];
    setenv("GENAI_FAKE_GPU", fake_gpu_8g(gpu, sizeof(gpu)), 1);
    const char *argv3[] = {g_genai, "run", g_big, "--prompt", "hi", "--ngl", "65", NULL};
    assert_int_equal(proc_run_capture(argv3, 30000, 1 << 20, &cap, NULL), 0);
    assert_int_equal(cap.exit_code, 1);
    assert_non_null(strstr(cap.err, "does not fit: needs"));
    assert_non_null(strstr(cap.err, "more on GPU 0 (Fake GPU 8GB)"));
    assert_non_null(strstr(cap.err, "Suggestion: try"));
    proc_capture_free(&cap);
    clear_switches();
    unlink(gpu);
    assert_int_equal(tu_fd_count(), fds);
}

/* ---- the real llama-server ---------------------------------------------------- */

static void test_real_server(void **state)
{
    (void)state;
    if (g_real == NULL) {
        print_message("skipped: no real llama-server on PATH (GENAI_LLAMA_SERVER names the "
                      "double here; set GENAI_REAL_LLAMA_SERVER to a real one)\n");
        skip();
    }
    const char *model = getenv("GENAI_LLAMA_TEST_MODEL");
    rtx x;
    rtx_init(&x, model != NULL && model[0] == '/' ? model : g_tiny);
    x.cfg.server_path = g_real;
    x.cfg.ctx = 512;
    assert_int_equal(rtx_start(&x), 0);
    assert_true(rtx_wait(&x, LLM_RT_READY, 0, 120000) >= 0);
    rtx_query(&x);
    assert_int_equal(x.plan.props_slots, 1);
    assert_true(x.plan.props_n_ctx >= 512);
    assert_true(x.have_measured);
    llm_chat *chat;
    assert_int_equal(llm_chat_new(NULL, &chat, NULL), 0);
    collected out;
    genai_error e;
    assert_int_equal(chat_once(&x, chat, 4, &out, &e), 0);
    llm_chat_free(chat);
    rtx_done(&x);
}

/* ---- the SSE parser ------------------------------------------------------------ */

typedef struct sse_seen {
    char data[8][128];
    int n;
} sse_seen;

static int on_data(void *arg, const char *d, size_t len)
{
    sse_seen *s = arg;
    if (s->n < 8)
        snprintf(s->data[s->n++], sizeof(s->data[0]), "%.*s", (int)len, d);
    return 0;
}

static void test_sse_parser(void **state)
{
    (void)state;
    static const char stream[] = ": ping\n\ndata: {\"a\":1}\r\n\r\ndata:x\ndata: y\n\n"
                                 "event: e\rdata: [DONE]\r\r";
    /* byte by byte and whole: the same events */
    for (int mode = 0; mode < 2; mode++) {
        llm_sse p;
        llm_sse_init(&p);
        sse_seen s;
        memset(&s, 0, sizeof(s));
        if (mode == 0) {
            for (size_t i = 0; i < sizeof(stream) - 1; i++)
                assert_int_equal(llm_sse_feed(&p, stream + i, 1, on_data, &s), 0);
        } else {
            assert_int_equal(llm_sse_feed(&p, stream, sizeof(stream) - 1, on_data, &s), 0);
        }
        assert_int_equal(s.n, 3);
        assert_string_equal(s.data[0], "{\"a\":1}");
        assert_string_equal(s.data[1], "x\ny");
        assert_string_equal(s.data[2], "[DONE]");
        llm_sse_free(&p);
    }
    /* a line without end beyond the cap is refused */
    llm_sse p;
    llm_sse_init(&p);
    char *big = mem_alloc(LLM_SSE_LINE_MAX + 2);
    assert_non_null(big);
    memset(big, 'a', LLM_SSE_LINE_MAX + 2);
    assert_int_equal(llm_sse_feed(&p, big, LLM_SSE_LINE_MAX + 2, on_data, NULL), GENAI_ETOO_LARGE);
    mem_free(big);
    llm_sse_free(&p);
}

int main(void)
{
    ptu_fd_baseline();
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof(g_dir), "%s/genai-rt-XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp");
    if (mkdtemp(g_dir) == NULL)
        return 1;
    snprintf(g_tiny, sizeof(g_tiny), "%s/tiny.gguf", g_dir);
    snprintf(g_big, sizeof(g_big), "%s/big.gguf", g_dir);
    const char *bdir = getenv("GENAI_BUILD_DIR");
    snprintf(g_fake, sizeof(g_fake), "%s/tests/doubles/llama/fake-llama-server",
             bdir != NULL ? bdir : ".");
    snprintf(g_genai, sizeof(g_genai), "%s/src/cli/genai", bdir != NULL ? bdir : ".");
    /* A real server: GENAI_REAL_LLAMA_SERVER, else PATH (before the double
     * takes over GENAI_LLAMA_SERVER). */
    const char *real = getenv("GENAI_REAL_LLAMA_SERVER");
    if (real == NULL)
        unsetenv(LLM_SERVER_ENV);
    if (llm_find_server(real, &g_real, NULL) < 0)
        g_real = NULL;
    setenv(LLM_SERVER_ENV, g_fake, 1);
    clear_switches();
    write_tiny(g_tiny);
    write_big(g_big);
    ptu_warm_up();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_parser),
        cmocka_unit_test(test_start_ready_chat_stop),
        cmocka_unit_test(test_props_mismatch),
        cmocka_unit_test(test_crash_at_start),
        cmocka_unit_test(test_bad_argument_fails_fast),
        cmocka_unit_test(test_crash_during_chat_restarts),
        cmocka_unit_test(test_load_slowly),
        cmocka_unit_test(test_hang_on_sigterm),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_does_not_fit),
        cmocka_unit_test(test_footprint_recorded),
        cmocka_unit_test(test_measured_overrides_estimate),
        cmocka_unit_test(test_cli_run_prompt),
        cmocka_unit_test(test_real_server),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(g_tiny);
    unlink(g_big);
    rmdir(g_dir);
    mem_free(g_real);
    return rc;
}
