/*
 * test_llama_double.c - runs fake-llama-server as a real process and checks
 * it against contracts/llama-server.md, through genai's own driver pieces
 * (llm_launch_argv, llm_env_build, llm_port_pick, the parsers). The same
 * contract checks run against the real llama-server when one is found
 * (GENAI_LLAMA_SERVER or PATH) and GENAI_LLAMA_TEST_MODEL names a model.
 */
#include "cmocka_all.h"

#include "llama_harness.h"

#include "core/alloc.h"
#include "core/paths.h"
#include "llm/crash.h"
#include "llm/discover.h"
#include "llm/isolate.h"
#include "llm/launch.h"
#include "llm/memlog.h"
#include "llm/status.h"
#include "llm/version.h"
#include "sys/fakegpu.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char fake_bin[PATHS_MAX];

/* One server under test plus what the test set up for it. */
struct srv {
    lh_child c;
    const char *bin;
    char model[400];
    char key[LLM_API_KEY_LEN + 1];
    char key_file[400];
    uint16_t port;
    int is_real;
};

static const char *const no_env[] = {NULL};

/* Picks a port, writes the key file and starts bin with genai's argv for
 * ctx/np/verbosity, the extra flags, and an environment built by
 * llm_env_build from environ plus extra_env. */
static void start(struct srv *s, uint32_t ctx, uint32_t np, int verbosity, const char *const *extra,
                  const char *const *extra_env)
{
    llm_port_range range;
    llm_port_range_system(&range);
    assert_int_equal(llm_port_pick(&range, &s->port, NULL), 0);
    assert_int_equal(llm_api_key_new(s->key, NULL), 0);
    snprintf(s->key_file, sizeof(s->key_file), "%s/key", s->c.dir);
    FILE *f = fopen(s->key_file, "we");
    assert_non_null(f);
    fprintf(f, "%s\n", s->key);
    fclose(f);

    llm_launch l;
    llm_launch_defaults(&l);
    l.binary = s->bin;
    l.model = s->model;
    l.port = s->port;
    l.api_key_file = s->key_file;
    l.ctx = ctx;
    l.parallel = np;
    l.verbosity = verbosity;
    l.sse_ping_s = 2;
    l.extra = extra;
    char **argv = NULL, **envp = NULL;
    genai_error e;
    assert_int_equal(llm_launch_argv(&l, 0, &argv, &e), 0);
    /* environ plus variables the child must never see: they would change its
     * alias and key if they leaked through. */
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    const char **base = mem_calloc(n + 4 + 8, sizeof(*base));
    assert_non_null(base);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        base[k++] = environ[i];
    base[k++] = "LLAMA_ARG_ALIAS=leaked-alias";
    base[k++] = "LLAMA_API_KEY=leaked-key";
    base[k++] = "AIP_MODE=PREDICTION";
    for (const char *const *x = extra_env; x != NULL && *x != NULL && k < n + 11; x++)
        base[k++] = *x;
    char home[PATHS_MAX];
    snprintf(home, sizeof(home), "%s/home", s->c.dir);
    assert_int_equal(llm_env_build(base, home, NULL, &envp, &e), 0);
    mem_free(base);
    assert_int_equal(lh_spawn(&s->c, argv, envp), 0);
    llm_argv_free(argv);
    llm_env_free(envp);
}

static json_t *parse(const lh_reply *r)
{
    json_t *v = json_loadb(sbuf_str(&r->body), r->body.len, 0, NULL);
    assert_non_null(v);
    return v;
}

/* The keys of o, comma-separated, in their order. */
static void keys_of(json_t *o, char *out, size_t cap)
{
    const char *k;
    json_t *v;
    size_t n = 0;
    out[0] = '\0';
    json_object_foreach(o, k, v)
    {
        n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "," : "", k);
        assert_true(n < cap);
    }
}

/* --- checks shared by the double and the real server (contract) -------- */

static void check_ready_and_props(struct srv *s, uint32_t ctx_slot, uint32_t slots)
{
    long first = 0;
    assert_int_equal(lh_wait_ready(&s->c, s->port, 20000, &first), 200);
    lh_reply r;
    lh_http(&r, "GET", s->port, "/health", NULL, NULL, 2000);
    enum llm_health h;
    assert_int_equal(llm_health_parse(r.status, sbuf_str(&r.body), r.body.len, &h, NULL), 0);
    assert_int_equal(h, LLM_HEALTH_OK);
    assert_string_equal(sbuf_str(&r.body), "{\"status\":\"ok\"}");
    assert_non_null(strstr(sbuf_str(&r.headers), "Server: llama.cpp"));
    lh_reply_free(&r);

    /* §7: /props needs the key; the 401 body is exact. */
    lh_http(&r, "GET", s->port, "/props", NULL, NULL, 2000);
    assert_int_equal(r.status, 401);
    assert_string_equal(sbuf_str(&r.body), "{\"error\":{\"message\":\"Invalid API Key\",\"type\":"
                                           "\"authentication_error\",\"code\":401}}");
    lh_reply_free(&r);
    lh_http(&r, "GET", s->port, "/props", NULL, "leaked-key", 2000);
    assert_int_equal(r.status, 401); /* LLAMA_API_KEY was scrubbed */
    lh_reply_free(&r);

    lh_http(&r, "GET", s->port, "/props", NULL, s->key, 2000);
    assert_int_equal(r.status, 200);
    llm_props p;
    assert_int_equal(llm_props_parse(sbuf_str(&r.body), r.body.len, &p, NULL), 0);
    assert_int_equal(p.n_ctx_slot, ctx_slot);
    assert_int_equal(p.total_slots, slots);
    assert_string_equal(p.model_path, s->model);
    assert_string_not_equal(p.model_alias, "leaked-alias"); /* LLAMA_ARG_* scrubbed */
    assert_true(p.build.build > 0);
    llm_props_free(&p);
    json_t *o = parse(&r);
    char keys[1024];
    keys_of(o, keys, sizeof(keys));
    assert_string_equal(keys, "default_generation_settings,total_slots,model_alias,model_ftype,"
                              "model_path,modalities,media_marker,endpoint_slots,endpoint_props,"
                              "endpoint_metrics,ui,ui_settings,chat_template,chat_template_caps,"
                              "bos_token,eos_token,build_info,is_sleeping,cors_proxy_enabled");
    json_decref(o);
    lh_reply_free(&r);

    /* /v1/models names the -m path when there is no alias. It is public at
     * b10470 (the double); later builds (b11669, Debian) want the key for it
     * too. genai asks it nothing; the check is that either holds. */
    lh_http(&r, "GET", s->port, "/v1/models", NULL, NULL, 2000);
    if (s->is_real && r.status == 401) {
        assert_string_equal(sbuf_str(&r.body), "{\"error\":{\"message\":\"Invalid API Key\","
                                               "\"type\":\"authentication_error\",\"code\":401}}");
        lh_reply_free(&r);
        lh_http(&r, "GET", s->port, "/v1/models", NULL, s->key, 2000);
    }
    assert_int_equal(r.status, 200);
    o = parse(&r);
    keys_of(o, keys, sizeof(keys));
    assert_string_equal(keys, "models,object,data");
    json_t *d0 = json_array_get(json_object_get(o, "data"), 0);
    assert_string_equal(json_string_value(json_object_get(d0, "id")), s->model);
    assert_string_equal(json_string_value(json_object_get(d0, "owned_by")), "llamacpp");
    assert_non_null(json_object_get(json_object_get(d0, "meta"), "n_ctx_train"));
    json_decref(o);
    lh_reply_free(&r);

    lh_http(&r, "GET", s->port, "/no/such/path", NULL, s->key, 2000);
    assert_int_equal(r.status, 404);
    assert_string_equal(sbuf_str(&r.body), "{\"error\":{\"message\":\"File Not Found\",\"type\":"
                                           "\"not_found_error\",\"code\":404}}");
    lh_reply_free(&r);
}

static void check_chat(struct srv *s)
{
    lh_reply r;
    const char *req =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"max_tokens\":16}";
    lh_http(&r, "POST", s->port, "/v1/chat/completions", req, NULL, 5000);
    assert_int_equal(r.status, 401);
    lh_reply_free(&r);
    lh_http(&r, "POST", s->port, "/v1/chat/completions", req, s->key, 30000);
    assert_int_equal(r.status, 200);
    json_t *o = parse(&r);
    char keys[512];
    keys_of(o, keys, sizeof(keys));
    assert_string_equal(keys, "choices,created,model,system_fingerprint,object,usage,id,timings");
    assert_string_equal(json_string_value(json_object_get(o, "object")), "chat.completion");
    json_t *u = json_object_get(o, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "completion_tokens")), 16);
    long pt = (long)json_integer_value(json_object_get(u, "prompt_tokens"));
    assert_true(pt > 0);
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 16 + pt);
    json_t *c0 = json_array_get(json_object_get(o, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "length");
    assert_string_equal(json_string_value(json_object_get(json_object_get(c0, "message"), "role")),
                        "assistant");
    assert_int_equal(strncmp(json_string_value(json_object_get(o, "id")), "chatcmpl-", 9), 0);
    json_decref(o);
    lh_reply_free(&r);

    /* Streaming with usage: role chunk, content chunks, final, usage, [DONE]. */
    const char *sreq = "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"max_tokens\":8,"
                       "\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
    lh_http(&r, "POST", s->port, "/v1/chat/completions", sreq, s->key, 30000);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(sbuf_str(&r.headers), "text/event-stream"));
    const char *p = sbuf_str(&r.body);
    int events = 0, contents = 0, saw_role = 0, saw_final = 0, saw_usage = 0, saw_done = 0;
    char id[128] = "";
    while (*p != '\0') {
        const char *end = strstr(p, "\n\n");
        assert_non_null(end);
        if (p[0] == ':') { /* SSE ping comment */
            p = end + 2;
            continue;
        }
        assert_int_equal(strncmp(p, "data: ", 6), 0);
        assert_false(saw_done); /* nothing after [DONE] */
        if (strncmp(p + 6, "[DONE]", 6) == 0) {
            saw_done = 1;
            p = end + 2;
            continue;
        }
        json_t *ev = json_loadb(p + 6, (size_t)(end - p - 6), 0, NULL);
        assert_non_null(ev);
        events++;
        assert_string_equal(json_string_value(json_object_get(ev, "object")),
                            "chat.completion.chunk");
        const char *eid = json_string_value(json_object_get(ev, "id"));
        if (id[0] == '\0')
            snprintf(id, sizeof(id), "%s", eid);
        assert_string_equal(eid, id);
        json_t *ch = json_array_get(json_object_get(ev, "choices"), 0);
        if (ch == NULL) {
            json_t *us = json_object_get(ev, "usage");
            assert_int_equal(json_integer_value(json_object_get(us, "completion_tokens")), 8);
            saw_usage = 1;
        } else {
            json_t *delta = json_object_get(ch, "delta");
            if (json_object_get(delta, "role") != NULL) {
                assert_int_equal(events, 1);
                saw_role = 1;
            } else if (json_is_string(json_object_get(delta, "content"))) {
                contents++;
            } else if (json_is_string(json_object_get(ch, "finish_reason"))) {
                assert_string_equal(json_string_value(json_object_get(ch, "finish_reason")),
                                    "length");
                saw_final = 1;
            }
        }
        json_decref(ev);
        p = end + 2;
    }
    assert_true(saw_role && saw_final && saw_usage && saw_done);
    assert_true(contents >= 1 && contents <= 8);
    lh_reply_free(&r);

    /* §6.5: malformed JSON is a 500 server_error at b10470 (the double), a
     * 400 invalid_request_error from b11669 (Debian) on; the parser's text
     * is the message in both. */
    lh_http(&r, "POST", s->port, "/v1/chat/completions", "{bad", s->key, 5000);
    int newer = s->is_real && r.status == 400;
    assert_int_equal(r.status, newer ? 400 : 500);
    o = parse(&r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "error"), "type")),
                        newer ? "invalid_request_error" : "server_error");
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(o, "error"),
                                                             "message")),
                           "parse error"));
    json_decref(o);
    lh_reply_free(&r);
}

static void check_sigterm_idle(struct srv *s)
{
    assert_int_equal(kill(s->c.pid, SIGTERM), 0);
    assert_true(lh_wait_exit(&s->c, 10000));
    assert_true(WIFEXITED(s->c.status));
    assert_int_equal(WEXITSTATUS(s->c.status), 0);
    char *err = lh_stderr(&s->c);
    assert_non_null(strstr(err, "cleaning up before exit..."));
    mem_free(err);
}

/* --- the double --------------------------------------------------------- */

static void fake_init(struct srv *s)
{
    memset(s, 0, sizeof(*s));
    lh_init(&s->c);
    s->bin = fake_bin;
    snprintf(s->model, sizeof(s->model), "%s/tiny.gguf", s->c.dir);
    lh_write_gguf(s->model, 64 * 1024);
}

static void test_fake_version(void **state)
{
    (void)state;
    const char *builds[] = {NULL, "FAKE_LLAMA_BUILD=9000"};
    for (int i = 0; i < 2; i++) {
        lh_child c;
        lh_init(&c);
        char *argv[] = {fake_bin, "--version", NULL};
        char **envp = NULL;
        const char *set[] = {builds[i], NULL};
        char home[PATHS_MAX];
        snprintf(home, sizeof(home), "%s/home", c.dir);
        assert_int_equal(
            llm_env_build((const char *const *)environ, home, builds[i] ? set : NULL, &envp, NULL),
            0);
        assert_int_equal(lh_spawn(&c, argv, envp), 0);
        llm_env_free(envp);
        assert_true(lh_wait_exit(&c, 10000));
        assert_true(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
        char *err = lh_stderr(&c), *out = NULL;
        size_t out_len = 1;
        assert_int_equal(paths_read_file(c.out_path, 4096, &out, &out_len, NULL), 0);
        assert_int_equal(out_len, 0); /* nothing on stdout (§1) */
        llm_version v;
        assert_int_equal(llm_version_parse(err, strlen(err), &v, NULL), 0);
        assert_int_equal(v.build, i == 0 ? 10470 : 9000);
        assert_non_null(strstr(err, "built with GNU 12.2.0 for Linux x86_64\n"));
        mem_free(err);
        mem_free(out);
        lh_cleanup(&c);
    }
}

/* Runs the double with argv and expects exit 1 with a signature. */
static void expect_fail(char *const *argv, const char *const *envp, const char *needle,
                        enum llm_crash_cause cause)
{
    lh_child c;
    lh_init(&c);
    assert_int_equal(lh_spawn(&c, argv, (char *const *)envp), 0);
    assert_true(lh_wait_exit(&c, 10000));
    assert_true(WIFEXITED(c.status));
    assert_int_equal(WEXITSTATUS(c.status), 1);
    char *err = lh_stderr(&c);
    if (strstr(err, needle) == NULL)
        fail_msg("'%s' not in stderr:\n%s", needle, err);
    /* Classify the tail line by line, as the supervisor will. */
    const char *lines[256];
    size_t n = 0;
    for (char *save = NULL, *l = strtok_r(err, "\n", &save); l != NULL && n < 256;
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    assert_int_equal(llm_crash_classify(lines, n, NULL), cause);
    mem_free(err);
    lh_cleanup(&c);
}

static void test_fake_usage_errors(void **state)
{
    (void)state;
    char *a1[] = {fake_bin, "--bogus-flag", NULL};
    expect_fail(a1, NULL, "error: invalid argument: --bogus-flag\n", LLM_CRASH_BAD_ARGUMENT);
    char *a2[] = {fake_bin, "-c", "abc", NULL};
    expect_fail(a2, NULL, "error while handling argument \"-c\": stoi\n\nusage:\n",
                LLM_CRASH_BAD_ARGUMENT);
    char *a3[] = {fake_bin, "-fa", "maybe", NULL};
    expect_fail(a3, NULL,
                "error while handling argument \"-fa\": error: unknown value for --flash-attn: "
                "'maybe'",
                LLM_CRASH_BAD_ARGUMENT);
    char *a4[] = {fake_bin, "-np", "0", NULL};
    expect_fail(a4, NULL,
                "error while handling argument \"-np\": error: invalid value for "
                "n_parallel",
                LLM_CRASH_BAD_ARGUMENT);
}

static void test_fake_bad_model(void **state)
{
    (void)state;
    struct srv s;
    fake_init(&s);
    char missing[600], notgguf[600], port[16];
    snprintf(missing, sizeof(missing), "%s/missing.gguf", s.c.dir);
    snprintf(notgguf, sizeof(notgguf), "%s/text.gguf", s.c.dir);
    FILE *f = fopen(notgguf, "we");
    fputs("abcdefgh", f);
    fclose(f);
    llm_port_range range;
    llm_port_range_system(&range);
    uint16_t p;
    assert_int_equal(llm_port_pick(&range, &p, NULL), 0);
    snprintf(port, sizeof(port), "%u", p);
    char *a1[] = {fake_bin, "-m", missing, "--port", port, NULL};
    expect_fail(a1, NULL, "failed to open GGUF file", LLM_CRASH_BAD_MODEL);
    char *a2[] = {fake_bin, "-m", notgguf, "--port", port, NULL};
    expect_fail(a2, NULL, "invalid magic characters: 'abcd', expected 'GGUF'", LLM_CRASH_BAD_MODEL);
    lh_cleanup(&s.c);
}

static void test_fake_port_in_use(void **state)
{
    (void)state;
    struct srv s;
    fake_init(&s);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 1), 0);
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    char port[16], needle[128];
    snprintf(port, sizeof(port), "%u", ntohs(sa.sin_port));
    snprintf(needle, sizeof(needle),
             "E srv         start: couldn't bind HTTP server socket, hostname: 127.0.0.1, port: %s",
             port);
    char *argv[] = {fake_bin, "-m", s.model, "--port", port, NULL};
    expect_fail(argv, NULL, needle, LLM_CRASH_PORT_IN_USE);
    close(fd);
    /* The switch fakes the same failure on a free port. */
    const char *env[] = {"FAKE_LLAMA_BIND_FAIL=1", NULL};
    expect_fail(argv, env, "exiting due to HTTP server error", LLM_CRASH_PORT_IN_USE);
    lh_cleanup(&s.c);
}

static void test_fake_lifecycle(void **state)
{
    (void)state;
    struct srv s;
    fake_init(&s);
    start(&s, 512, 1, 4, NULL, no_env);
    check_ready_and_props(&s, 512, 1);
    check_chat(&s);

    /* Wrong key: 401 and the W log line. */
    lh_reply r;
    lh_http(&r, "GET", s.port, "/slots", NULL, "wrong", 2000);
    assert_int_equal(r.status, 401);
    lh_reply_free(&r);
    lh_http(&r, "GET", s.port, "/metrics", NULL, s.key, 2000);
    assert_int_equal(r.status, 501);
    assert_non_null(strstr(sbuf_str(&r.body), "Start it with `--metrics`"));
    lh_reply_free(&r);
    /* §6.5: a prompt longer than the slot context. */
    char big[4096];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char req[4300];
    snprintf(req, sizeof(req), "{\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}", big);
    lh_http(&r, "POST", s.port, "/v1/chat/completions", req, s.key, 5000);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(sbuf_str(&r.body), "exceeds the available context size (512 "
                                              "tokens), try increasing it\",\"type\":"
                                              "\"exceed_context_size_error\",\"n_prompt_tokens\""));
    lh_reply_free(&r);

    check_sigterm_idle(&s);
    char *err = lh_stderr(&s.c);
    assert_non_null(strstr(err, "W srv    operator(): unauthorized: Invalid API Key"));
    assert_non_null(strstr(err, "initializing, n_slots = 1, n_ctx_slot = 512, kv_unified = "
                                "'true'"));
    assert_null(strstr(err, "CORS is set to allow all origins")); /* a key is set */
    /* The -lv 4 memory lines parse, and the KV figure is memory.md §4's:
     * 512 cells x 2 layers x (2 x 32 x 2 B) x 2 (K and V) = 0.25 MiB. */
    llm_footprint fp;
    llm_footprint_init(&fp);
    for (char *save = NULL, *l = strtok_r(err, "\n", &save); l != NULL;
         l = strtok_r(NULL, "\n", &save))
        llm_memlog_feed(&fp, l, strlen(l));
    assert_int_equal(llm_footprint_sum(&fp, 1, LLM_BUF_KV), 256u * 1024);
    assert_int_equal(fp.kv_cells, 512);
    /* 64 KiB of weights print as "0.06 MiB"; the compute line as 2.51 MiB. */
    assert_non_null(llm_footprint_find(&fp, "CPU_Mapped"));
    assert_int_equal(llm_footprint_sum(&fp, 1, LLM_BUF_MODEL), (uint64_t)(0.06 * 1048576 + 0.5));
    assert_int_equal(llm_footprint_sum(&fp, 1, LLM_BUF_COMPUTE), (uint64_t)(2.51 * 1048576 + 0.5));
    mem_free(err);
    lh_cleanup(&s.c);
}

static void test_fake_loading(void **state)
{
    (void)state;
    struct srv s;
    fake_init(&s);
    const char *env[] = {"FAKE_LLAMA_LOAD_MS=1500", NULL};
    start(&s, 512, 1, 3, NULL, env);
    /* §4: the port answers 503 with the loading body on every path, before
     * the key check, until the model is loaded. */
    lh_reply r;
    long deadline = 0;
    do {
        lh_http(&r, "GET", s.port, "/props", NULL, NULL, 500);
        if (r.status == 0) {
            lh_reply_free(&r);
            lh_nap_ms(10);
        }
        assert_true(++deadline < 500);
    } while (r.status == 0);
    assert_int_equal(r.status, 503);
    assert_string_equal(sbuf_str(&r.body), "{\"error\":{\"message\":\"Loading model\",\"type\":"
                                           "\"unavailable_error\",\"code\":503}}");
    assert_non_null(strstr(sbuf_str(&r.headers), "application/json; charset=utf-8"));
    lh_reply_free(&r);
    lh_http(&r, "GET", s.port, "/health", NULL, NULL, 500);
    enum llm_health h;
    assert_int_equal(llm_health_parse(r.status, sbuf_str(&r.body), r.body.len, &h, NULL), 0);
    assert_int_equal(h, LLM_HEALTH_LOADING);
    lh_reply_free(&r);
    /* §8: a signal while loading kills with the default action. */
    assert_int_equal(kill(s.c.pid, SIGTERM), 0);
    assert_true(lh_wait_exit(&s.c, 10000));
    assert_true(WIFSIGNALED(s.c.status));
    assert_int_equal(WTERMSIG(s.c.status), SIGTERM);
    lh_cleanup(&s.c);

    /* And it does become ready. */
    fake_init(&s);
    start(&s, 512, 1, 3, NULL, env);
    long first = 0;
    assert_int_equal(lh_wait_ready(&s.c, s.port, 20000, &first), 200);
    assert_int_equal(first, 503);
    check_sigterm_idle(&s);
    lh_cleanup(&s.c);
}

static void test_fake_crash_switches(void **state)
{
    (void)state;
    struct srv s;
    fake_init(&s);
    const char *e1[] = {"FAKE_LLAMA_CRASH_AT_START=1", "FAKE_LLAMA_CRASH_HOW=exit:3", NULL};
    start(&s, 512, 1, 3, NULL, e1);
    assert_true(lh_wait_exit(&s.c, 10000));
    assert_true(WIFEXITED(s.c.status) && WEXITSTATUS(s.c.status) == 3);
    lh_cleanup(&s.c);

    fake_init(&s);
    const char *e2[] = {"FAKE_LLAMA_CRASH_AT_START=1", "FAKE_LLAMA_CRASH_HOW=signal:11", NULL};
    start(&s, 512, 1, 3, NULL, e2);
    assert_true(lh_wait_exit(&s.c, 10000));
    assert_true(WIFSIGNALED(s.c.status) && WTERMSIG(s.c.status) == SIGSEGV);
    lh_cleanup(&s.c);

    /* Crash after 5 tokens: the reply never comes, the child dies of SIGABRT. */
    fake_init(&s);
    const char *e3[] = {"FAKE_LLAMA_CRASH_AFTER_TOKENS=5", NULL};
    start(&s, 512, 1, 3, NULL, e3);
    assert_int_equal(lh_wait_ready(&s.c, s.port, 20000, NULL), 200);
    lh_reply r;
    lh_http(&r, "POST", s.port, "/v1/chat/completions",
            "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":16}", s.key,
            10000);
    assert_int_not_equal(r.status, 200);
    lh_reply_free(&r);
    assert_true(lh_wait_exit(&s.c, 10000));
    assert_true(WIFSIGNALED(s.c.status) && WTERMSIG(s.c.status) == SIGABRT);
    lh_cleanup(&s.c);
}

struct bg_req {
    unsigned port;
    const char *key, *body;
    long timeout_ms;
    lh_reply r;
    pthread_t t;
};

static void *bg_main(void *arg)
{
    struct bg_req *b = arg;
    lh_http(&b->r, "POST", b->port, "/v1/chat/completions", b->body, b->key, b->timeout_ms);
    return NULL;
}

/* Waits until the slot is busy (a request is generating). */
static void wait_busy(struct srv *s)
{
    for (int i = 0; i < 1000; i++) {
        lh_reply r;
        lh_http(&r, "GET", s->port, "/slots", NULL, s->key, 1000);
        int busy = strstr(sbuf_str(&r.body), "\"is_processing\":true") != NULL;
        lh_reply_free(&r);
        if (busy)
            return;
        lh_nap_ms(10);
    }
    fail_msg("the request never started");
}

static void test_fake_sigterm_in_flight(void **state)
{
    (void)state;
    struct srv s;
    const char *env[] = {"FAKE_LLAMA_TOKEN_MS=20", NULL};

    /* Non-streaming: the server never exits while the client waits (§8);
     * it exits 0 once the client goes away. */
    fake_init(&s);
    start(&s, 4096, 1, 3, NULL, env);
    assert_int_equal(lh_wait_ready(&s.c, s.port, 20000, NULL), 200);
    struct bg_req b = {s.port,
                       s.key,
                       "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                       "\"max_tokens\":2000}",
                       3000,
                       {0},
                       0};
    assert_int_equal(pthread_create(&b.t, NULL, bg_main, &b), 0);
    wait_busy(&s);
    assert_int_equal(kill(s.c.pid, SIGTERM), 0);
    assert_false(lh_wait_exit(&s.c, 1000)); /* still up while the client waits */
    pthread_join(b.t, NULL);
    assert_int_not_equal(b.r.status, 200); /* the client timed out */
    lh_reply_free(&b.r);
    assert_true(lh_wait_exit(&s.c, 10000));
    assert_true(WIFEXITED(s.c.status) && WEXITSTATUS(s.c.status) == 0);
    lh_cleanup(&s.c);

    /* Same hang, then a second SIGTERM: exit 1 at once with the message. */
    fake_init(&s);
    start(&s, 4096, 1, 3, NULL, env);
    assert_int_equal(lh_wait_ready(&s.c, s.port, 20000, NULL), 200);
    b.port = s.port;
    b.key = s.key;
    b.timeout_ms = 20000;
    assert_int_equal(pthread_create(&b.t, NULL, bg_main, &b), 0);
    wait_busy(&s);
    assert_int_equal(kill(s.c.pid, SIGTERM), 0);
    assert_false(lh_wait_exit(&s.c, 300));
    assert_int_equal(kill(s.c.pid, SIGTERM), 0);
    assert_true(lh_wait_exit(&s.c, 10000));
    assert_true(WIFEXITED(s.c.status) && WEXITSTATUS(s.c.status) == 1);
    pthread_join(b.t, NULL);
    lh_reply_free(&b.r);
    char *err = lh_stderr(&s.c);
    assert_non_null(strstr(err, "\nReceived second interrupt, terminating immediately.\n"));
    mem_free(err);
    lh_cleanup(&s.c);

    /* Streaming: exit 0 and the stream is cut without [DONE]. */
    fake_init(&s);
    start(&s, 4096, 1, 3, NULL, env);
    assert_int_equal(lh_wait_ready(&s.c, s.port, 20000, NULL), 200);
    b.port = s.port;
    b.key = s.key;
    b.body = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":2000,"
             "\"stream\":true}";
    assert_int_equal(pthread_create(&b.t, NULL, bg_main, &b), 0);
    wait_busy(&s);
    assert_int_equal(kill(s.c.pid, SIGTERM), 0);
    assert_true(lh_wait_exit(&s.c, 10000));
    assert_true(WIFEXITED(s.c.status) && WEXITSTATUS(s.c.status) == 0);
    pthread_join(b.t, NULL);
    assert_int_equal(b.r.curl_rc, CURLE_PARTIAL_FILE);
    assert_non_null(strstr(sbuf_str(&b.r.body), "data: {"));
    assert_null(strstr(sbuf_str(&b.r.body), "[DONE]"));
    lh_reply_free(&b.r);
    lh_cleanup(&s.c);
}

static void test_fake_hang_on_sigterm(void **state)
{
    (void)state;
    struct srv s;
    fake_init(&s);
    const char *env[] = {"FAKE_LLAMA_HANG_ON_SIGTERM=1", NULL};
    start(&s, 512, 1, 3, NULL, env);
    assert_int_equal(lh_wait_ready(&s.c, s.port, 20000, NULL), 200);
    assert_int_equal(kill(s.c.pid, SIGTERM), 0);
    assert_false(lh_wait_exit(&s.c, 500)); /* the lost first signal (§8 deadlock) */
    lh_reply r;
    lh_http(&r, "GET", s.port, "/health", NULL, NULL, 2000);
    assert_int_equal(r.status, 200); /* /health stays 200 meanwhile */
    lh_reply_free(&r);
    assert_int_equal(kill(s.c.pid, SIGTERM), 0);
    assert_true(lh_wait_exit(&s.c, 10000));
    assert_true(WIFEXITED(s.c.status) && WEXITSTATUS(s.c.status) == 1);
    lh_cleanup(&s.c);
}

static void test_fake_port_zero_and_file(void **state)
{
    (void)state;
    lh_child c;
    lh_init(&c);
    char model[400], pf[400], env_pf[450];
    snprintf(model, sizeof(model), "%s/m.gguf", c.dir);
    snprintf(pf, sizeof(pf), "%s/port", c.dir);
    snprintf(env_pf, sizeof(env_pf), "FAKE_LLAMA_PORT_FILE=%s", pf);
    lh_write_gguf(model, 4096);
    char *argv[] = {fake_bin, "-m",      model, "--port", "0", "-np",
                    "2",      "-no-kvu", "-c",  "1000",   NULL};
    char **envp = NULL;
    const char *set[] = {env_pf, NULL};
    char home[PATHS_MAX];
    snprintf(home, sizeof(home), "%s/home", c.dir);
    assert_int_equal(llm_env_build((const char *const *)environ, home, set, &envp, NULL), 0);
    assert_int_equal(lh_spawn(&c, argv, envp), 0);
    llm_env_free(envp);
    char *text = NULL;
    for (int i = 0; i < 1000 && text == NULL; i++)
        if (paths_read_file(pf, 64, &text, NULL, NULL) < 0) {
            text = NULL;
            lh_nap_ms(10);
        }
    assert_non_null(text);
    int pid = 0;
    unsigned port = 0;
    assert_int_equal(sscanf(text, "%d %u", &pid, &port), 2);
    mem_free(text);
    assert_int_equal(pid, c.pid);
    assert_int_equal(lh_wait_ready(&c, port, 20000, NULL), 200);
    /* -c 1000 -np 2 -no-kvu: pad256(1000) = 1024, 512 per slot (§10). */
    lh_reply r;
    lh_http(&r, "GET", port, "/props", NULL, NULL, 2000);
    llm_props p;
    assert_int_equal(llm_props_parse(sbuf_str(&r.body), r.body.len, &p, NULL), 0);
    assert_int_equal(p.n_ctx_slot, 512);
    assert_int_equal(p.total_slots, 2);
    llm_props_free(&p);
    lh_reply_free(&r);
    assert_int_equal(kill(c.pid, SIGTERM), 0);
    assert_true(lh_wait_exit(&c, 10000));
    char *err = lh_stderr(&c), needle[64];
    snprintf(needle, sizeof(needle), "listening on http://127.0.0.1:%u\n", port);
    assert_non_null(strstr(err, needle));
    assert_non_null(strstr(err, "CORS is set to allow all origins"));
    mem_free(err);
    lh_cleanup(&c);
}

/* Creates a fake GPU file with one device of total bytes. */
static void make_gpu(const char *path, uint64_t total)
{
    fakegpu_device dev;
    memset(&dev, 0, sizeof(dev));
    snprintf(dev.name, sizeof(dev.name), "Fake GPU");
    snprintf(dev.uuid, sizeof(dev.uuid), "GPU-fake-0");
    snprintf(dev.pci_bus_id, sizeof(dev.pci_bus_id), "00000000:01:00.0");
    dev.total_bytes = total;
    fakegpu_state st;
    memset(&st, 0, sizeof(st));
    snprintf(st.driver_version, sizeof(st.driver_version), "fake-1.0");
    st.devices = &dev;
    st.n_devices = 1;
    assert_int_equal(fakegpu_write(path, &st, NULL), 0);
}

static uint64_t gpu_used(const char *path)
{
    fakegpu_state st;
    assert_int_equal(fakegpu_read(path, &st, NULL), 0);
    uint64_t used = st.devices[0].used_bytes;
    fakegpu_state_free(&st);
    return used;
}

static void test_fake_gpu(void **state)
{
    (void)state;
    struct srv s;
    fake_init(&s);
    char gpu[450], env_gpu[500];
    snprintf(gpu, sizeof(gpu), "%s/gpu.json", s.c.dir);
    snprintf(env_gpu, sizeof(env_gpu), "GENAI_FAKE_GPU=%s", gpu);
    make_gpu(gpu, 1ull << 30);
    const char *env[] = {env_gpu, NULL};
    start(&s, 512, 1, 4, NULL, env);
    assert_int_equal(lh_wait_ready(&s.c, s.port, 20000, NULL), 200);
    assert_int_equal(gpu_used(gpu), 0); /* launch defaults: -ngl 0 */
    check_sigterm_idle(&s);
    lh_cleanup(&s.c);

    fake_init(&s);
    snprintf(gpu, sizeof(gpu), "%s/gpu.json", s.c.dir);
    snprintf(env_gpu, sizeof(env_gpu), "GENAI_FAKE_GPU=%s", gpu);
    make_gpu(gpu, 1ull << 30);
    const char *env2[] = {env_gpu, "FAKE_LLAMA_GPU_HOLD_MS=300", "FAKE_LLAMA_MODEL_BYTES=3000000",
                          NULL};
    /* -ngl all puts the output layer and both blocks on the fake device. */
    char port[16];
    llm_port_range range;
    llm_port_range_system(&range);
    assert_int_equal(llm_port_pick(&range, &s.port, NULL), 0);
    snprintf(port, sizeof(port), "%u", s.port);
    char *argv[] = {fake_bin, "-m", s.model, "--port", port,  "-c", "512",
                    "-np",    "1",  "-ngl",  "all",    "-lv", "4",  NULL};
    char **envp = NULL;
    char home[PATHS_MAX];
    snprintf(home, sizeof(home), "%s/home", s.c.dir);
    assert_int_equal(llm_env_build((const char *const *)environ, home, env2, &envp, NULL), 0);
    assert_int_equal(lh_spawn(&s.c, argv, envp), 0);
    assert_int_equal(lh_wait_ready(&s.c, s.port, 20000, NULL), 200);
    uint64_t used = gpu_used(gpu);
    assert_true(used >= 3000000); /* weights + KV + compute */
    assert_int_equal(kill(s.c.pid, SIGTERM), 0);
    assert_true(lh_wait_exit(&s.c, 10000));
    assert_int_equal(WEXITSTATUS(s.c.status), 0);
    /* FAKE_LLAMA_GPU_HOLD_MS: still counted right after the exit, then freed. */
    assert_int_equal(gpu_used(gpu), used);
    int freed = 0;
    for (int i = 0; i < 500 && !freed; i++) {
        freed = gpu_used(gpu) == 0;
        if (!freed)
            lh_nap_ms(10);
    }
    assert_true(freed);
    char *err = lh_stderr(&s.c);
    llm_footprint fp;
    llm_footprint_init(&fp);
    for (char *save = NULL, *ln = strtok_r(err, "\n", &save); ln != NULL;
         ln = strtok_r(NULL, "\n", &save))
        llm_memlog_feed(&fp, ln, strlen(ln));
    assert_non_null(llm_footprint_find(&fp, "CUDA0"));
    /* The device lines add up to what the fake GPU was charged (±0.005 MiB
     * per line from the two-decimal print). */
    uint64_t logged = llm_footprint_sum(&fp, 0, LLM_BUF__COUNT);
    assert_true(logged + 3 * 5243 >= used && logged <= used + 3 * 5243);
    mem_free(err);
    lh_cleanup(&s.c);

    /* Too small a device: the CUDA OOM chain, exit 1, classified. */
    fake_init(&s);
    snprintf(gpu, sizeof(gpu), "%s/gpu.json", s.c.dir);
    snprintf(env_gpu, sizeof(env_gpu), "GENAI_FAKE_GPU=%s", gpu);
    make_gpu(gpu, 1000000);
    llm_env_free(envp);
    assert_int_equal(llm_env_build((const char *const *)environ, home, env2, &envp, NULL), 0);
    char *argv2[] = {fake_bin, "-m", s.model, "--port", port, "-c", "512", "-ngl", "all", NULL};
    expect_fail(argv2, (const char *const *)envp, "cudaMalloc failed: out of memory",
                LLM_CRASH_OUT_OF_MEMORY);
    llm_env_free(envp);
    assert_int_equal(gpu_used(gpu), 0);
    lh_cleanup(&s.c);
}

/* --- the real llama-server, when present -------------------------------- */

static void test_real_server(void **state)
{
    (void)state;
    char *bin = NULL;
    if (llm_find_server(NULL, &bin, NULL) < 0) {
        print_message("skipped: no real llama-server (set %s or PATH)\n", LLM_SERVER_ENV);
        skip();
    }
    const char *model = getenv("GENAI_LLAMA_TEST_MODEL");
    if (model == NULL || model[0] != '/') {
        mem_free(bin);
        print_message("skipped: GENAI_LLAMA_TEST_MODEL (absolute path of a small GGUF) unset\n");
        skip();
    }
    struct srv s;
    memset(&s, 0, sizeof(s));
    lh_init(&s.c);
    s.bin = bin;
    s.is_real = 1;
    snprintf(s.model, sizeof(s.model), "%s", model);
    start(&s, 512, 1, 3, NULL, no_env);
    check_ready_and_props(&s, 512, 1);
    check_chat(&s);
    check_sigterm_idle(&s);
    lh_cleanup(&s.c);
    mem_free(bin);
}

/* After every test: a failed assertion skips the test's own cleanup, and
 * a real llama-server left running would outlive the whole run. */
static int kill_leftovers(void **state)
{
    (void)state;
    int n = lh_cleanup_leftovers();
    if (n > 0)
        print_message("killed %d llama-server process(es) the test left running\n", n);
    return 0;
}

int main(void)
{
    const char *bdir = getenv("GENAI_BUILD_DIR");
    snprintf(fake_bin, sizeof(fake_bin), "%s/tests/doubles/llama/fake-llama-server",
             bdir != NULL ? bdir : ".");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fake_version, kill_leftovers),
        cmocka_unit_test_teardown(test_fake_usage_errors, kill_leftovers),
        cmocka_unit_test_teardown(test_fake_bad_model, kill_leftovers),
        cmocka_unit_test_teardown(test_fake_port_in_use, kill_leftovers),
        cmocka_unit_test_teardown(test_fake_lifecycle, kill_leftovers),
        cmocka_unit_test_teardown(test_fake_loading, kill_leftovers),
        cmocka_unit_test_teardown(test_fake_crash_switches, kill_leftovers),
        cmocka_unit_test_teardown(test_fake_sigterm_in_flight, kill_leftovers),
        cmocka_unit_test_teardown(test_fake_hang_on_sigterm, kill_leftovers),
        cmocka_unit_test_teardown(test_fake_port_zero_and_file, kill_leftovers),
        cmocka_unit_test_teardown(test_fake_gpu, kill_leftovers),
        cmocka_unit_test_teardown(test_real_server, kill_leftovers),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
