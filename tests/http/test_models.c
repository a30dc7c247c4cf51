/*
 * test_models.c - the model routes and the daemon's native routes against
 * the real server over loopback, with a real registry in a temporary
 * GENAI_HOME and, for pulls, the store tests' scripted HTTP server as the
 * model host.
 *
 * Covers: GET /v1/models in the OpenAI shape, GET/DELETE /api/models/{id},
 * POST /api/models/pull as Server-Sent Events (progress, done, error), a
 * diffusion set pulled with "components" and that member's 400s, a
 * client that disconnects mid-pull with and without ?cancel_on_disconnect=1,
 * a server stopped in the middle of a stalled pull, the request checks
 * (malformed JSON, oversized body, wrong Host, missing or wrong key, unknown
 * model), /api/status, /api/logs, /api/system and /api/shutdown. Every test
 * checks that the process holds the same number of fds afterwards.
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/paths.h"
#include "http/logring.h"
#include "http/routes.h"
#include "http/server.h"
#include "http_test_util.h"
#include "store/digest.h"
#include "store/store.h"

#include "../store/script_server.h"
#include "testutil/testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char g_home[96];
static char g_data[PATHS_MAX];
static unsigned char *g_gguf; /* valid_tiny_llama.gguf */
static size_t g_gguf_len;
static char g_gguf_sha[STORE_SHA256_HEX];

typedef struct srv {
    loop *l;
    http_server *s;
    char base[64];
    unsigned port;
} srv;

static void srv_start(srv *h, const genai_config *cfg)
{
    assert_int_equal(loop_start(&h->l, NULL), 0);
    http_server_opts o = {.loop = h->l, .config = cfg};
    genai_error e;
    if (http_server_start(&o, &h->s, &e) < 0)
        fail_msg("server start: %s", e.detail);
    h->port = http_server_port(h->s);
    snprintf(h->base, sizeof(h->base), "http://127.0.0.1:%u", h->port);
}

static void srv_stop(srv *h)
{
    http_server_stop(h->s);
    loop_stop(h->l);
}

static void cfg_default(genai_config *c)
{
    config_init(c);
    c->port = 0;
}

static long get(const srv *h, const char *method, const char *path, const char *body,
                const char *const *headers, json_t **out)
{
    char u[512];
    snprintf(u, sizeof(u), "%s%s", h->base, path);
    tresp r;
    treq(method, u, headers, body, body != NULL ? strlen(body) : 0, 0, &r);
    long st = r.status;
    if (out != NULL) {
        *out = json_loads(sbuf_str(&r.body), 0, NULL);
        if (*out == NULL)
            fail_msg("%s %s: %ld, body not JSON: %s", method, path, st, sbuf_str(&r.body));
    }
    tresp_free(&r);
    return st;
}

static const char *err_code(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

static const char *const json_ct[] = {"Content-Type: application/json", NULL};

/* Registers tests/data's tiny GGUF in place as id "tiny". */
static void add_tiny(void)
{
    char path[PATHS_MAX];
    snprintf(path, sizeof(path), "%s/gguf/corpus/valid_tiny_llama.gguf", getenv("GENAI_TEST_DATA"));
    store *s = NULL;
    genai_error e;
    assert_int_equal(store_open(&s, &e), 0);
    store_add_file f = {.role = "model", .path = path};
    int rc = store_add(s, "tiny", "Tiny", STORE_KIND_LLM, &f, 1, NULL, &e);
    if (rc < 0)
        fail_msg("store_add: %s", e.detail);
    store_close(s);
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(tu_mkdtemp(g_home, sizeof(g_home), "models"), 0);
    setenv("GENAI_HOME", g_home, 1);
    snprintf(g_data, sizeof(g_data), "%s/data", g_home);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rm_rf(g_home);
    return 0;
}

/* ---- registry-backed listing ------------------------------------------ */

static void test_list_show_delete(void **state)
{
    (void)state;
    int fds = t_count_fds();
    genai_config c;
    cfg_default(&c);
    srv h;
    srv_start(&h, &c);
    json_t *j;

    assert_int_equal(get(&h, "GET", "/v1/models", NULL, NULL, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "list");
    assert_int_equal(json_array_size(json_object_get(j, "data")), 0);
    json_decref(j);

    add_tiny();

    assert_int_equal(get(&h, "GET", "/v1/models", NULL, NULL, &j), 200);
    json_t *m = json_array_get(json_object_get(j, "data"), 0);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 1);
    assert_string_equal(json_string_value(json_object_get(m, "id")), "tiny");
    assert_string_equal(json_string_value(json_object_get(m, "object")), "model");
    assert_string_equal(json_string_value(json_object_get(m, "owned_by")), "genai");
    assert_true(json_integer_value(json_object_get(m, "created")) > 1600000000);
    json_decref(j);

    assert_int_equal(get(&h, "GET", "/v1/models/tiny", NULL, NULL, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "tiny");
    assert_string_equal(json_string_value(json_object_get(j, "object")), "model");
    json_decref(j);
    assert_int_equal(get(&h, "GET", "/v1/models/nope", NULL, NULL, &j), 404);
    assert_string_equal(err_code(j), "model_not_found");
    json_decref(j);

    assert_int_equal(get(&h, "GET", "/api/models", NULL, NULL, &j), 200);
    m = json_array_get(json_object_get(j, "models"), 0);
    assert_string_equal(json_string_value(json_object_get(m, "kind")), "llm");
    assert_int_equal(json_integer_value(json_object_get(m, "size")), 16928);
    json_decref(j);

    assert_int_equal(get(&h, "GET", "/api/models/tiny", NULL, NULL, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "tiny");
    assert_string_equal(json_string_value(json_object_get(j, "name")), "Tiny");
    assert_true(json_is_object(json_object_get(j, "profile")));
    json_t *f = json_array_get(json_object_get(j, "files"), 0);
    assert_string_equal(json_string_value(json_object_get(f, "role")), "model");
    assert_false(json_is_true(json_object_get(f, "managed")));
    char path[PATHS_MAX];
    snprintf(path, sizeof(path), "%s", json_string_value(json_object_get(f, "path")));
    json_decref(j);

    assert_int_equal(get(&h, "GET", "/api/models/nope", NULL, NULL, &j), 404);
    assert_string_equal(err_code(j), "model_not_found");
    json_decref(j);
    assert_int_equal(get(&h, "GET", "/api/models/..x", NULL, NULL, &j), 400);
    assert_string_equal(err_code(j), "bad_request");
    json_decref(j);

    assert_int_equal(get(&h, "DELETE", "/api/models/tiny", NULL, NULL, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "deleted")), "tiny");
    json_decref(j);
    assert_int_equal(get(&h, "DELETE", "/api/models/tiny", NULL, NULL, &j), 404);
    assert_string_equal(err_code(j), "model_not_found");
    json_decref(j);
    assert_int_equal(get(&h, "GET", "/api/models/tiny", NULL, NULL, &j), 404);
    json_decref(j);
    /* Added in place: the file stays. */
    assert_true(tu_size(path) == 16928);

    assert_int_equal(get(&h, "GET", "/api/system", NULL, NULL, &j), 200);
    assert_true(json_is_object(json_object_get(j, "cpu")));
    json_decref(j);

    srv_stop(&h);
    config_free(&c);
    assert_int_equal(t_count_fds(), fds);
}

/* ---- the request checks on these routes -------------------------------- */

static void test_request_checks(void **state)
{
    (void)state;
    int fds = t_count_fds();
    genai_config c;
    cfg_default(&c);
    c.max_body_bytes = 4096;
    c.api_key = mem_strdup("s3cret");
    srv h;
    srv_start(&h, &c);
    json_t *j;
    const char *const auth[] = {"Authorization: Bearer s3cret", "Content-Type: application/json",
                                NULL};
    const char *const wrong[] = {"Authorization: Bearer nope", NULL};
    const char *const host[] = {"Authorization: Bearer s3cret", "Host: evil.example:80", NULL};

    assert_int_equal(get(&h, "GET", "/api/models", NULL, NULL, &j), 401);
    assert_string_equal(err_code(j), "unauthorized");
    json_decref(j);
    assert_int_equal(get(&h, "GET", "/v1/models", NULL, wrong, &j), 401);
    assert_string_equal(err_code(j), "unauthorized");
    json_decref(j);
    assert_int_equal(get(&h, "GET", "/api/models", NULL, host, &j), 403);
    assert_string_equal(err_code(j), "host_not_allowed");
    json_decref(j);
    assert_int_equal(get(&h, "GET", "/api/models", NULL, auth, &j), 200);
    json_decref(j);
    assert_int_equal(get(&h, "GET", "/api/models/ghost", NULL, auth, &j), 404);
    assert_string_equal(err_code(j), "model_not_found");
    json_decref(j);

    assert_int_equal(get(&h, "POST", "/api/models/pull", "{\"ref\": ", auth, &j), 400);
    assert_string_equal(err_code(j), "invalid_json");
    json_decref(j);
    assert_int_equal(get(&h, "POST", "/api/models/pull", "[1]", auth, &j), 400);
    assert_string_equal(err_code(j), "bad_request");
    json_decref(j);
    assert_int_equal(get(&h, "POST", "/api/models/pull", "{\"ref\": 5}", auth, &j), 400);
    assert_string_equal(err_code(j), "bad_request");
    json_decref(j);
    assert_int_equal(get(&h, "POST", "/api/models/pull", "{}", auth, &j), 400);
    assert_string_equal(err_code(j), "bad_request");
    json_decref(j);
    assert_int_equal(
        get(&h, "POST", "/api/models/pull", "{\"ref\":\"a/b\",\"sha256\":\"xyz\"}", auth, &j), 400);
    json_decref(j);
    assert_int_equal(
        get(&h, "POST", "/api/models/pull", "{\"ref\":\"a/b\",\"kind\":\"video\"}", auth, &j), 400);
    json_decref(j);

    char *big = malloc(8192);
    memset(big, ' ', 8191);
    big[0] = '{';
    big[8190] = '}';
    big[8191] = '\0';
    assert_int_equal(get(&h, "POST", "/api/models/pull", big, auth, &j), 413);
    assert_string_equal(err_code(j), "body_too_large");
    json_decref(j);
    free(big);

    assert_int_equal(get(&h, "POST", "/api/models/pull", "{\"ref\":\"a/b\"}", json_ct, &j), 401);
    json_decref(j);

    srv_stop(&h);
    config_free(&c);
    assert_int_equal(t_count_fds(), fds);
}

/* ---- pulls -------------------------------------------------------------- */

/* The SSE event types of a finished stream, in order, as "progress,done". */
static void sse_types(const char *text, char *out, size_t n, json_t **last_data)
{
    out[0] = '\0';
    *last_data = NULL;
    const char *p = text;
    while ((p = strstr(p, "event: ")) != NULL) {
        p += 7;
        const char *eol = strchr(p, '\n');
        assert_non_null(eol);
        size_t used = strlen(out);
        snprintf(out + used, n - used, "%s%.*s", used ? "," : "", (int)(eol - p), p);
        const char *d = strstr(eol, "data: ");
        assert_non_null(d);
        const char *dend = strchr(d, '\n');
        json_decref(*last_data);
        *last_data = json_loadb(d + 6, (size_t)(dend - d - 6), 0, NULL);
        assert_non_null(*last_data);
        p = dend;
    }
}

static void test_pull_sse(void **state)
{
    (void)state;
    int fds = t_count_fds();
    ss_server *ss = ss_start();
    struct ss_route rt = ss_route_file("/tiny.gguf", g_gguf, g_gguf_len);
    ss_route_add(ss, &rt);
    struct ss_route missing = ss_route_file("/missing.gguf", "", 0);
    missing.status = 404;
    ss_route_add(ss, &missing);
    genai_config c;
    cfg_default(&c);
    srv h;
    srv_start(&h, &c);

    char body[512], u[128], types[512];
    snprintf(body, sizeof(body),
             "{\"ref\":\"http://127.0.0.1:%d/tiny.gguf\",\"sha256\":\"%s\",\"allow_http\":true}",
             ss_port(ss), g_gguf_sha);
    snprintf(u, sizeof(u), "%s/api/models/pull", h.base);
    tresp r;
    treq("POST", u, json_ct, body, strlen(body), 0, &r);
    assert_int_equal(r.status, 200);
    char ct[64];
    assert_string_equal(tresp_header(&r, "Content-Type", ct, sizeof(ct)), "text/event-stream");
    json_t *last;
    sse_types(sbuf_str(&r.body), types, sizeof(types), &last);
    assert_non_null(strstr(types, "progress"));
    assert_non_null(strstr(sbuf_str(&r.body), "\"phase\":\"downloading\""));
    assert_non_null(strstr(sbuf_str(&r.body), "\"phase\":\"done\""));
    assert_true(strlen(types) >= 4 && strcmp(types + strlen(types) - 4, "done") == 0);
    assert_string_equal(json_string_value(json_object_get(last, "status")), "downloaded");
    json_t *model = json_object_get(last, "model");
    assert_string_equal(json_string_value(json_object_get(model, "id")), "tiny");
    assert_string_equal(json_string_value(json_object_get(model, "sha256")), g_gguf_sha);
    json_decref(last);
    tresp_free(&r);

    json_t *j;
    assert_int_equal(get(&h, "GET", "/api/models/tiny", NULL, NULL, &j), 200);
    json_decref(j);

    /* Again: already registered, nothing downloaded. */
    ss_log_clear(ss);
    treq("POST", u, json_ct, body, strlen(body), 0, &r);
    sse_types(sbuf_str(&r.body), types, sizeof(types), &last);
    assert_string_equal(json_string_value(json_object_get(last, "status")), "already_present");
    assert_int_equal(ss_count(ss, "/tiny.gguf"), 0);
    json_decref(last);
    tresp_free(&r);

    /* A wrong digest: an error event, nothing registered. */
    snprintf(body, sizeof(body),
             "{\"ref\":\"http://127.0.0.1:%d/tiny.gguf\",\"id\":\"other\",\"sha256\":\"%064d\","
             "\"allow_http\":true}",
             ss_port(ss), 0);
    treq("POST", u, json_ct, body, strlen(body), 0, &r);
    assert_int_equal(r.status, 200);
    sse_types(sbuf_str(&r.body), types, sizeof(types), &last);
    assert_true(strcmp(types + strlen(types) - 5, "error") == 0);
    assert_string_equal(err_code(last), "checksum_mismatch");
    json_decref(last);
    tresp_free(&r);
    assert_int_equal(get(&h, "GET", "/api/models/other", NULL, NULL, &j), 404);
    json_decref(j);

    /* Not on the host. */
    snprintf(body, sizeof(body),
             "{\"ref\":\"http://127.0.0.1:%d/missing.gguf\",\"allow_http\":true}", ss_port(ss));
    treq("POST", u, json_ct, body, strlen(body), 0, &r);
    sse_types(sbuf_str(&r.body), types, sizeof(types), &last);
    assert_string_equal(types + strlen(types) - 5, "error");
    assert_string_equal(err_code(last), "model_not_found");
    json_decref(last);
    tresp_free(&r);

    srv_stop(&h);
    ss_stop(ss);
    config_free(&c);
    assert_int_equal(t_count_fds(), fds);
}

/* A diffusion model with "components": every file fetched under one
 * progress count, registered with its role and its own URL; the member's
 * refusals are 400s that name the key. */
static void test_pull_components(void **state)
{
    (void)state;
    int fds = t_count_fds();
    static const char vae[] = "vae bytes", t5[] = "t5 bytes";
    ss_server *ss = ss_start();
    struct ss_route rt = ss_route_file("/tiny.gguf", g_gguf, g_gguf_len);
    ss_route_add(ss, &rt);
    rt = ss_route_file("/ae.safetensors", vae, sizeof(vae) - 1);
    ss_route_add(ss, &rt);
    rt = ss_route_file("/t5xxl.safetensors", t5, sizeof(t5) - 1);
    ss_route_add(ss, &rt);
    genai_config c;
    cfg_default(&c);
    srv h;
    srv_start(&h, &c);
    json_t *j;

    static const char *const bad[][2] = {
        {"{\"ref\":\"a/b\",\"components\":[\"hf://o/r/ae.safetensors\"]}", "\"components\""},
        {"{\"ref\":\"a/b\",\"components\":{\"unet\":\"hf://o/r/u.safetensors\"}}", "unet"},
        {"{\"ref\":\"a/b\",\"components\":{\"model\":\"hf://o/r/u.safetensors\"}}", "model"},
        {"{\"ref\":\"a/b\",\"components\":{\"vae\":5}}", "vae"},
        {"{\"ref\":\"a/b\",\"kind\":\"llm\",\"components\":{\"vae\":\"hf://o/r/v\"}}", "diffusion"},
        {"{\"ref\":\"a/b\",\"components\":{\"vae\":{\"sha256\":\"00\"}}}", "vae"},
        {"{\"ref\":\"a/b\",\"components\":{\"vae\":{\"ref\":\"hf://o/r/v\",\"sha256\":\"xyz\"}}}",
         "sha256"},
        {"{\"ref\":\"a/b\",\"components\":{\"vae\":{\"ref\":5}}}", "vae"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(get(&h, "POST", "/api/models/pull", bad[i][0], json_ct, &j), 400);
        assert_string_equal(err_code(j), "bad_request");
        const char *msg =
            json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        assert_non_null(msg);
        if (strstr(msg, bad[i][1]) == NULL)
            fail_msg("%s: '%s' does not name %s", bad[i][0], msg, bad[i][1]);
        json_decref(j);
    }

    char body[1024], u[128], types[2048], vae_url[128], t5_url[128];
    snprintf(vae_url, sizeof(vae_url), "http://127.0.0.1:%d/ae.safetensors", ss_port(ss));
    snprintf(t5_url, sizeof(t5_url), "http://127.0.0.1:%d/t5xxl.safetensors", ss_port(ss));
    snprintf(u, sizeof(u), "%s/api/models/pull", h.base);
    tresp r;

    /* The VAE's URL with a digest its bytes do not have: checksum_mismatch,
     * nothing registered. */
    snprintf(body, sizeof(body),
             "{\"ref\":\"http://127.0.0.1:%d/tiny.gguf\",\"sha256\":\"%s\",\"allow_http\":true,"
             "\"components\":{\"vae\":{\"ref\":\"%s\",\"sha256\":\"%s\"},\"t5xxl\":\"%s\"}}",
             ss_port(ss), g_gguf_sha, vae_url, g_gguf_sha, t5_url);
    treq("POST", u, json_ct, body, strlen(body), 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(sbuf_str(&r.body), "event: error"));
    assert_non_null(strstr(sbuf_str(&r.body), "checksum_mismatch"));
    tresp_free(&r);
    assert_int_equal(get(&h, "GET", "/api/models", NULL, NULL, &j), 200);
    assert_int_equal(json_array_size(json_object_get(j, "models")), 0);
    json_decref(j);

    char vae_sha[STORE_SHA256_HEX];
    store_sha256 hs = {0};
    assert_int_equal(store_sha256_init(&hs), 0);
    assert_int_equal(store_sha256_update(&hs, vae, sizeof(vae) - 1), 0);
    assert_int_equal(store_sha256_final(&hs, vae_sha), 0);
    store_sha256_free(&hs);
    snprintf(body, sizeof(body),
             "{\"ref\":\"http://127.0.0.1:%d/tiny.gguf\",\"sha256\":\"%s\",\"allow_http\":true,"
             "\"components\":{\"vae\":{\"ref\":\"%s\",\"sha256\":\"%s\"},\"t5xxl\":\"%s\"}}",
             ss_port(ss), g_gguf_sha, vae_url, vae_sha, t5_url);
    treq("POST", u, json_ct, body, strlen(body), 0, &r);
    assert_int_equal(r.status, 200);
    json_t *last;
    sse_types(sbuf_str(&r.body), types, sizeof(types), &last);
    assert_true(strlen(types) >= 4 && strcmp(types + strlen(types) - 4, "done") == 0);
    /* One count over the whole set: the third of three files is the VAE. */
    assert_non_null(strstr(sbuf_str(&r.body), "\"file_index\":3,\"file_count\":3"));
    assert_string_equal(json_string_value(json_object_get(last, "status")), "downloaded");
    json_t *model = json_object_get(last, "model");
    assert_string_equal(json_string_value(json_object_get(model, "kind")), "diffusion");
    json_t *files = json_object_get(model, "files");
    assert_int_equal(json_array_size(files), 3);
    static const char *const roles[] = {"model", "t5xxl", "vae"};
    const char *urls[] = {NULL, t5_url, vae_url};
    for (size_t i = 0; i < 3; i++) {
        json_t *f = json_array_get(files, i);
        assert_string_equal(json_string_value(json_object_get(f, "role")), roles[i]);
        if (urls[i] != NULL)
            assert_string_equal(json_string_value(json_object_get(f, "url")), urls[i]);
    }
    assert_int_equal(json_integer_value(json_object_get(json_array_get(files, 2), "size")),
                     sizeof(vae) - 1);
    json_decref(last);
    tresp_free(&r);
    /* Each twice: the refused VAE was deleted (its bytes are known bad), and
     * the T5 file, with no digest to check the copy on disk against, was
     * fetched again. */
    assert_int_equal(ss_count(ss, "/ae.safetensors"), 2);
    assert_int_equal(ss_count(ss, "/t5xxl.safetensors"), 2);

    srv_stop(&h);
    ss_stop(ss);
    config_free(&c);
    assert_int_equal(t_count_fds(), fds);
}

/* POST /api/models/prune: the body checked before anything happens (400
 * naming the key), a dry run that removes nothing, then the real one. */
static void test_prune_route(void **state)
{
    (void)state;
    int fds = t_count_fds();
    add_tiny();
    char dir[PATHS_MAX + 32], orphan[PATHS_MAX + 48];
    snprintf(dir, sizeof(dir), "%s/models/hf/o/r", g_data);
    assert_int_equal(paths_mkdirs(dir, 0755, NULL), 0);
    snprintf(orphan, sizeof(orphan), "%s/left.gguf", dir);
    assert_int_equal(tu_write(orphan, "left behind", 11), 0);
    genai_config c;
    cfg_default(&c);
    srv h;
    srv_start(&h, &c);
    json_t *j;
    static const char *const bad[][2] = {
        {"[]", "object"},
        {"{\"dry_run\":1}", "dry_run"},
        {"{\"partials\":\"yes\"}", "partials"},
        {"{\"partials_older_than_days\":0}", "partials_older_than_days"},
        {"{\"partials_older_than_days\":\"7\"}", "partials_older_than_days"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(get(&h, "POST", "/api/models/prune", bad[i][0], json_ct, &j), 400);
        const char *msg =
            json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        if (msg == NULL || strstr(msg, bad[i][1]) == NULL)
            fail_msg("%s: '%s' does not name %s", bad[i][0], msg ? msg : "", bad[i][1]);
        json_decref(j);
    }
    assert_int_equal(tu_size(orphan), 11);

    assert_int_equal(get(&h, "POST", "/api/models/prune", "{\"dry_run\":true}", json_ct, &j), 200);
    assert_true(json_is_true(json_object_get(j, "dry_run")));
    assert_int_equal(json_integer_value(json_object_get(j, "removed")), 1);
    json_t *f = json_array_get(json_object_get(j, "files"), 0);
    assert_string_equal(json_string_value(json_object_get(f, "path")), orphan);
    json_decref(j);
    assert_int_equal(tu_size(orphan), 11);

    assert_int_equal(get(&h, "POST", "/api/models/prune", "{}", json_ct, &j), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes_freed")), 11);
    json_decref(j);
    assert_int_equal(tu_size(orphan), -1);
    assert_int_equal(get(&h, "GET", "/api/models", NULL, NULL, &j), 200);
    assert_int_equal(json_array_size(json_object_get(j, "models")), 1); /* tiny stays */
    json_decref(j);
    srv_stop(&h);
    config_free(&c);
    assert_int_equal(t_count_fds(), fds);
}

/* Sends a pull on a raw socket and reads until the first progress event
 * with phase "downloading"; returns the socket. */
static int raw_pull(const srv *h, const char *query, const char *ref)
{
    int fd = t_connect(h->port);
    assert_true(fd >= 0);
    char body[256], req[1024];
    int bl = snprintf(body, sizeof(body), "{\"ref\":\"%s\",\"allow_http\":true}", ref);
    int rl = snprintf(req, sizeof(req),
                      "POST /api/models/pull%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                      query, bl, body);
    assert_int_equal(send(fd, req, (size_t)rl, MSG_NOSIGNAL), rl);
    char buf[8192];
    size_t got = 0;
    uint64_t end = t_now_ms() + 10000;
    while (t_now_ms() < end && got < sizeof(buf) - 1) {
        ssize_t k = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        assert_true(k > 0);
        got += (size_t)k;
        buf[got] = '\0';
        if (strstr(buf, "\"phase\":\"downloading\"") != NULL)
            return fd;
    }
    fail_msg("no downloading progress: %s", buf);
    return -1;
}

typedef struct log_wait {
    const char *needle;
} log_wait;

static int log_has(void *arg)
{
    const log_wait *w = arg;
    json_t *lines = http_logring_json(0);
    char *text = json_dumps(lines, JSON_COMPACT);
    int found = text != NULL && strstr(text, w->needle) != NULL;
    free(text);
    json_decref(lines);
    return found;
}

static int model_registered(void *arg)
{
    store *s = NULL;
    store_model m;
    if (store_open_at(g_data, &s, NULL) < 0)
        return 0;
    int ok = store_db_get_model(store_registry(s), arg, &m, NULL) == 0;
    if (ok)
        store_model_free(&m);
    store_close(s);
    return ok;
}

static void test_pull_disconnect(void **state)
{
    (void)state;
    int fds = t_count_fds();
    http_logring_install();
    ss_server *ss = ss_start();
    /* Slow: 1 KiB every 20 ms, the whole file in about a third of a second. */
    struct ss_route slow = ss_route_file("/slow.gguf", g_gguf, g_gguf_len);
    slow.trickle_bytes = 1024;
    slow.trickle_ms = 20;
    ss_route_add(ss, &slow);
    /* Stalls after 4 KiB until the client hangs up. */
    struct ss_route stall = ss_route_file("/stall.gguf", g_gguf, g_gguf_len);
    stall.stall_at = 4096;
    stall.stall_times = 100;
    ss_route_add(ss, &stall);
    struct ss_route stall2 = stall;
    stall2.path = "/stall2.gguf";
    ss_route_add(ss, &stall2);
    genai_config c;
    cfg_default(&c);
    srv h;
    srv_start(&h, &c);
    char ref[128];

    /* Default: the client leaves, the download goes on and registers. */
    snprintf(ref, sizeof(ref), "http://127.0.0.1:%d/slow.gguf", ss_port(ss));
    int fd = raw_pull(&h, "", ref);
    close(fd);
    assert_true(tu_wait(model_registered, "slow", 20000));
    log_wait w1 = {"client went away; the download goes on"};
    assert_true(log_has(&w1));

    /* cancel_on_disconnect=1: the stalled download is cancelled at once
     * (without it, the stall detector would wait 30 s). */
    snprintf(ref, sizeof(ref), "http://127.0.0.1:%d/stall.gguf", ss_port(ss));
    fd = raw_pull(&h, "?cancel_on_disconnect=1", ref);
    close(fd);
    log_wait w3 = {"cancelled (client went away)"};
    assert_true(tu_wait(log_has, &w3, 10000));
    log_wait w4 = {"stall.gguf failed"};
    assert_true(tu_wait(log_has, &w4, 10000));
    assert_false(model_registered("stall"));

    /* A server stop cancels a stalled pull instead of waiting for it. */
    snprintf(ref, sizeof(ref), "http://127.0.0.1:%d/stall2.gguf", ss_port(ss));
    fd = raw_pull(&h, "", ref);
    srv_stop(&h);
    char buf[256];
    while (recv(fd, buf, sizeof(buf), 0) > 0)
        ;
    close(fd);
    log_wait w5 = {"cancelled (server stopping)"};
    assert_true(log_has(&w5));
    assert_false(model_registered("stall2"));

    ss_stop(ss);
    config_free(&c);
    http_logring_uninstall();
    assert_int_equal(t_count_fds(), fds);
}

/* ---- daemon routes ------------------------------------------------------ */

static void test_status_logs_shutdown(void **state)
{
    (void)state;
    int fds = t_count_fds();
    genai_config c;
    cfg_default(&c);
    srv h;
    srv_start(&h, &c);
    json_t *j;

    assert_int_equal(get(&h, "GET", "/api/status", NULL, NULL, &j), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "pid")), getpid());
    assert_string_equal(json_string_value(json_object_get(j, "version")), genai_version());
    assert_true(json_integer_value(json_object_get(j, "rss_bytes")) > 0);
    assert_true(json_is_object(json_object_get(j, "memory")));
    assert_true(json_is_null(json_object_get(j, "runtimes"))); /* no runtime service here */
    assert_string_equal(json_string_value(json_object_get(j, "runtimes_note")),
                        "this server runs no models");
    json_decref(j);

    /* No ring in this process yet: 503, not an empty list. */
    assert_int_equal(get(&h, "GET", "/api/logs", NULL, NULL, &j), 503);
    json_decref(j);
    http_logring_install();
    LOG_WARN("test", "marker %d", 4242);
    assert_int_equal(get(&h, "GET", "/api/logs?limit=5", NULL, NULL, &j), 200);
    json_t *lines = json_object_get(j, "lines");
    assert_true(json_array_size(lines) >= 1 && json_array_size(lines) <= 5);
    json_t *l = json_array_get(lines, json_array_size(lines) - 1);
    assert_string_equal(json_string_value(json_object_get(l, "message")), "marker 4242");
    assert_string_equal(json_string_value(json_object_get(l, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(l, "module")), "test");
    json_decref(j);
    assert_int_equal(get(&h, "GET", "/api/logs?limit=0", NULL, NULL, &j), 400);
    json_decref(j);
    assert_int_equal(get(&h, "GET", "/api/logs?limit=x", NULL, NULL, &j), 400);
    json_decref(j);
    http_logring_uninstall();

    /* This process never called http_native_init: refused, not killed. */
    assert_int_equal(get(&h, "POST", "/api/shutdown", NULL, NULL, &j), 503);
    json_decref(j);
    assert_int_equal(get(&h, "GET", "/api/shutdown", NULL, NULL, &j), 405);
    json_decref(j);

    srv_stop(&h);
    config_free(&c);
    assert_int_equal(t_count_fds(), fds);
}

int main(void)
{
    char path[PATHS_MAX];
    snprintf(path, sizeof(path), "%s/gguf/corpus/valid_tiny_llama.gguf", getenv("GENAI_TEST_DATA"));
    g_gguf = tu_read(path, &g_gguf_len);
    if (g_gguf == NULL || store_sha256_file(path, g_gguf_sha, NULL, NULL) < 0) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    t_cloexec_baseline();
    /* libuv opens a process-wide pipe pair with its first loop (the signal
     * lock) and keeps it; open it now so the per-test fd counts compare
     * like with like. */
    loop *warm = NULL;
    if (loop_start(&warm, NULL) < 0)
        return 1;
    loop_stop(warm);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_show_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_sse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_components, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_disconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_logs_shutdown, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(g_gguf);
    return rc;
}
