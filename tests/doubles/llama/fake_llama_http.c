/*
 * fake_llama_http.c - the HTTP side of the fake llama-server, on
 * libmicrohttpd with its internal polling thread and one thread per
 * connection (so a handler may block the way llama-server's do).
 *
 * Order of checks for every request (contracts/llama-server.md §4, §6, §7):
 * OPTIONS is answered first (CORS, no key); while loading every path answers
 * the 503 loading body; then the API key unless the path is public; then the
 * route (unknown paths 404). JSON objects are built with jansson in insertion
 * order to copy llama.cpp's key order (§6.1).
 *
 * Generation is fake and deterministic: token i is "0" for i = 0, "rr" for odd
 * i and "=" for even i; a prompt costs one token per 4 bytes of its ChatML
 * rendering (rounded up). A request holds one of the n_slots slots while it
 * generates; extra requests wait for a free slot.
 *
 * FAKE_LLAMA_TOKEN_TIMES=FILE records when each stream event leaves: the
 * reader stamps CLOCK_MONOTONIC as it hands an event's last byte to MHD
 * (which writes it next) and again when MHD comes back for more (the event
 * has been written by then). The stamps are kept in memory and appended to
 * FILE in one write when the stream is freed, so the bytes sent and their
 * timing do not change.
 */
#include "fake_llama.h"

#include "core/alloc.h"
#include "core/sbuf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BODY_MAX (16u << 20)
#define JSON_CT "application/json; charset=utf-8"

static struct MHD_Daemon *daemon_;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int inflight;
static unsigned char *slot_busy;
static atomic_long m_prompt_tokens, m_predicted, m_requests;

enum gen_kind { GEN_CHAT, GEN_OAI_TEXT, GEN_NATIVE };

struct gen {
    enum gen_kind kind;
    int stream, include_usage;
    char id[48];
    long created;
    char *model; /* owned */
    long n_prompt, n_max, n_gen;
    const char *finish;
    int slot;
    int phase; /* stream: 0 role, 1 tokens, 2 final, 3 usage, 4 done, 5 end */
    struct timespec t0;
    double prompt_ms;
    sbuf content;
    sbuf pending; /* stream bytes not yet handed to MHD */
    size_t pending_off;
    /* FAKE_LLAMA_TOKEN_TIMES: per event {handed, written by} in ns */
    int64_t req_ns;
    int64_t (*times)[2];
    size_t n_times, cap_times;
    int unwritten; /* the last event was handed over, no "written by" yet */
};

struct req {
    sbuf body;
    int too_large;
};

static double ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) * 1e3 + (double)(now.tv_nsec - t->tv_nsec) / 1e6;
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static const char *model_id(void)
{
    if (fl_cfg.props_alias != NULL)
        return fl_cfg.props_alias; /* a server started with another configuration */
    if (fl_cfg.n_aliases > 0)
        return fl_cfg.aliases[0];
    return fl_cfg.model != NULL ? fl_cfg.model : "";
}

static const char *build_info(char *buf, size_t n)
{
    snprintf(buf, n, "b%u-%s", fl_cfg.build, fl_cfg.commit);
    return buf;
}

/* ---- responses --------------------------------------------------------- */

static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, const char *ct,
                                 const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Server", "llama.cpp");
    MHD_add_response_header(r, "Keep-Alive", "timeout=5, max=100");
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    if (ct != NULL)
        MHD_add_response_header(r, "Content-Type", ct);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* Sends v (consumed) as compact JSON. */
static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *v)
{
    char *text = v != NULL
                     ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10))
                     : NULL;
    json_decref(v);
    if (text == NULL)
        return MHD_NO;
    enum MHD_Result rc = send_body(c, status, JSON_CT, text, strlen(text));
    free(text);
    return rc;
}

/* Middleware errors (503 loading, 401, 404): message, type, code. */
static enum MHD_Result send_mw_error(struct MHD_Connection *c, unsigned code, const char *msg,
                                     const char *type)
{
    return send_json(
        c, code,
        json_pack("{s:{s:s,s:s,s:i}}", "error", "message", msg, "type", type, "code", (int)code));
}

/* Handler errors: code, message, type. */
static json_t *handler_error(unsigned code, const char *msg, const char *type)
{
    return json_pack("{s:{s:i,s:s,s:s}}", "error", "code", (int)code, "message", msg, "type", type);
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned code, const char *msg,
                                  const char *type)
{
    return send_json(c, code, handler_error(code, msg, type));
}

/* ---- auth -------------------------------------------------------------- */

static int authorized(struct MHD_Connection *c)
{
    if (fl_cfg.n_keys == 0)
        return 1;
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (v == NULL)
        v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Api-Key");
    if (v == NULL)
        return 0;
    if (strncmp(v, "Bearer ", 7) == 0)
        v += 7;
    for (int i = 0; i < fl_cfg.n_keys; i++)
        if (strcmp(v, fl_cfg.keys[i]) == 0)
            return 1;
    return 0;
}

static int is_public(const char *url)
{
    return strcmp(url, "/health") == 0 || strcmp(url, "/v1/health") == 0 ||
           strcmp(url, "/models") == 0 || strcmp(url, "/v1/models") == 0;
}

/* ---- slots and in-flight accounting ------------------------------------ */

static int slot_acquire(void)
{
    pthread_mutex_lock(&lock);
    int got = -1;
    while (got < 0 && !atomic_load(&fl_stopping)) {
        for (uint32_t i = 0; i < fl_rt.n_slots; i++) {
            if (!slot_busy[i]) {
                slot_busy[i] = 1;
                got = (int)i;
                break;
            }
        }
        if (got < 0)
            pthread_cond_wait(&cond, &lock);
    }
    if (got >= 0)
        inflight++;
    pthread_mutex_unlock(&lock);
    return got;
}

static void slot_release(int slot)
{
    pthread_mutex_lock(&lock);
    slot_busy[slot] = 0;
    inflight--;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

/* ---- fake generation --------------------------------------------------- */

static const char *piece(long i)
{
    return i == 0 ? "0" : (i % 2 ? "rr" : "=");
}

/* One more token, or 0 when generation is over (sets g->finish). Sleeps
 * FAKE_LLAMA_TOKEN_MS first, crashes when FAKE_LLAMA_CRASH_AFTER_TOKENS says. */
static int next_token(struct gen *g, const char **tok)
{
    if (g->n_gen >= g->n_max) {
        g->finish = "length";
        return 0;
    }
    if (fl_cfg.eos_after > 0 && g->n_gen >= fl_cfg.eos_after) {
        g->finish = "stop";
        return 0;
    }
    if (fl_cfg.token_ms > 0)
        sleep_ms(fl_cfg.token_ms);
    fl_count_token();
    *tok = piece(g->n_gen++);
    atomic_fetch_add(&m_predicted, 1);
    return 1;
}

static void make_id(char *out, size_t n)
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char raw[32];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        memset(raw, 7, sizeof(raw));
    size_t k = (size_t)snprintf(out, n, "chatcmpl-");
    for (size_t i = 0; i < sizeof(raw) && k + 1 < n; i++)
        out[k++] = al[raw[i] % (sizeof(al) - 1)];
    out[k] = '\0';
}

static json_t *usage_json(const struct gen *g)
{
    return json_pack("{s:i,s:i,s:i,s:{s:i}}", "completion_tokens", (int)g->n_gen, "prompt_tokens",
                     (int)g->n_prompt, "total_tokens", (int)(g->n_gen + g->n_prompt),
                     "prompt_tokens_details", "cached_tokens", 0);
}

static json_t *timings_json(const struct gen *g)
{
    double pred_ms = ms_since(&g->t0) - g->prompt_ms;
    double n = g->n_gen > 0 ? (double)g->n_gen : 1.0;
    double p = g->n_prompt > 0 ? (double)g->n_prompt : 1.0;
    return json_pack("{s:i,s:i,s:f,s:f,s:f,s:i,s:f,s:f,s:f}", "cache_n", 0, "prompt_n",
                     (int)g->n_prompt, "prompt_ms", g->prompt_ms, "prompt_per_token_ms",
                     g->prompt_ms / p, "prompt_per_second",
                     g->prompt_ms > 0 ? 1e3 * p / g->prompt_ms : 0.0, "predicted_n", (int)g->n_gen,
                     "predicted_ms", pred_ms, "predicted_per_token_ms", pred_ms / n,
                     "predicted_per_second", pred_ms > 0 ? 1e3 * n / pred_ms : 0.0);
}

/* The common tail of OpenAI-style objects, in llama.cpp's order. */
static void add_meta(json_t *o, const struct gen *g, const char *object)
{
    char bi[64];
    json_object_set_new(o, "created", json_integer(g->created));
    json_object_set_new(o, "id", json_string(g->id));
    json_object_set_new(o, "model", json_string(g->model));
    json_object_set_new(o, "system_fingerprint", json_string(build_info(bi, sizeof(bi))));
    json_object_set_new(o, "object", json_string(object));
}

static json_t *chunk(const struct gen *g, const char *tok, int final)
{
    json_t *o = json_object(), *choice = json_object(), *delta = json_object();
    if (g->kind == GEN_CHAT) {
        json_object_set_new(choice, "finish_reason", final ? json_string(g->finish) : json_null());
        json_object_set_new(choice, "index", json_integer(0));
        if (g->phase == 0) {
            json_object_set_new(delta, "role", json_string("assistant"));
            json_object_set_new(delta, "content", json_null());
        } else if (tok != NULL) {
            json_object_set_new(delta, "content", json_string(tok));
        }
        json_object_set_new(choice, "delta", delta);
    } else {
        json_decref(delta);
        json_object_set_new(choice, "text", json_string(tok != NULL ? tok : ""));
        json_object_set_new(choice, "index", json_integer(0));
        json_object_set_new(choice, "logprobs", json_null());
        json_object_set_new(choice, "finish_reason", final ? json_string(g->finish) : json_null());
    }
    json_object_set_new(o, "choices", json_pack("[o]", choice));
    add_meta(o, g, g->kind == GEN_CHAT ? "chat.completion.chunk" : "text_completion");
    return o;
}

static json_t *native_chunk(const struct gen *g, const char *tok, int final)
{
    json_t *o = json_pack("{s:i,s:s,s:i,s:b}", "index", 0, "content", tok != NULL ? tok : "",
                          "id_slot", g->slot, "stop", final);
    if (final) {
        json_object_set_new(o, "model", json_string(g->model));
        json_object_set_new(o, "tokens_predicted", json_integer(g->n_gen));
        json_object_set_new(o, "tokens_evaluated", json_integer(g->n_prompt));
        json_object_set_new(o, "stop_type",
                            json_string(strcmp(g->finish, "stop") == 0 ? "eos" : "limit"));
        json_object_set_new(o, "timings", timings_json(g));
    }
    return o;
}

static void append_event(struct gen *g, json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(v);
    if (text != NULL) {
        sbuf_printf(&g->pending, "data: %s\n\n", text);
        free(text);
    }
}

/* Produces the next stream event into g->pending; 0 at the end. */
static int stream_step(struct gen *g)
{
    const char *tok = NULL;
    switch (g->phase) {
    case 0:
        if (g->kind == GEN_CHAT) {
            append_event(g, chunk(g, NULL, 0));
            g->phase = 1;
            return 1;
        }
        g->phase = 1;
        /* fall through */
    case 1:
        if (next_token(g, &tok)) {
            append_event(g, g->kind == GEN_NATIVE ? native_chunk(g, tok, 0) : chunk(g, tok, 0));
            return 1;
        }
        g->phase = 2;
        /* fall through */
    case 2:
        append_event(g, g->kind == GEN_NATIVE ? native_chunk(g, NULL, 1) : chunk(g, NULL, 1));
        g->phase = g->kind == GEN_NATIVE ? 5 : g->include_usage ? 3 : 4;
        return 1;
    case 3: {
        json_t *o = json_object();
        json_object_set_new(o, "choices", json_array());
        add_meta(o, g, g->kind == GEN_CHAT ? "chat.completion.chunk" : "text_completion");
        json_object_set_new(o, "usage", usage_json(g));
        json_object_set_new(o, "timings", timings_json(g));
        append_event(g, o);
        g->phase = 4;
        return 1;
    }
    case 4:
        sbuf_puts(&g->pending, "data: [DONE]\n\n");
        g->phase = 5;
        return 1;
    default:
        return 0;
    }
}

/* Appends g's event times to FAKE_LLAMA_TOKEN_TIMES in one write: a line
 * "<id> req <ns>" (the request was read), then "<id> <k> <handed ns>
 * <written-by ns>" per event k (0 is the first "data:" event). */
static void times_flush(const struct gen *g)
{
    if (fl_cfg.token_times == NULL || !g->stream || g->n_times == 0)
        return;
    sbuf out = SBUF_INIT;
    sbuf_printf(&out, "%s req %lld\n", g->id, (long long)g->req_ns);
    for (size_t k = 0; k < g->n_times; k++)
        sbuf_printf(&out, "%s %zu %lld %lld\n", g->id, k, (long long)g->times[k][0],
                    (long long)g->times[k][1]);
    int fd = sbuf_error(&out)
                 ? -1
                 : open(fl_cfg.token_times, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (write(fd, out.data, out.len) != (ssize_t)out.len)
            fl_log(1, 'E', "fake: writing %s: short write", fl_cfg.token_times);
        close(fd);
    }
    sbuf_free(&out);
}

/* Stamps event g->n_times as handed over now (FAKE_LLAMA_TOKEN_TIMES). */
static void times_handed(struct gen *g)
{
    if (g->n_times == g->cap_times) {
        size_t cap = g->cap_times ? 2 * g->cap_times : 64;
        void *t = mem_reallocarray(g->times, cap, sizeof(*g->times));
        if (t == NULL)
            return; /* stop recording; the stream goes on unchanged */
        g->times = t;
        g->cap_times = cap;
    }
    int64_t now = now_ns();
    g->times[g->n_times][0] = now;
    g->times[g->n_times][1] = now;
    g->n_times++;
    g->unwritten = 1;
}

static void gen_free(struct gen *g)
{
    if (g == NULL)
        return;
    times_flush(g);
    mem_free(g->times);
    if (g->slot >= 0)
        slot_release(g->slot);
    mem_free(g->model);
    sbuf_free(&g->content);
    sbuf_free(&g->pending);
    mem_free(g);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct gen *g = cls;
    if (g->unwritten) {
        /* MHD asks for more only once the last piece is on the socket. */
        g->times[g->n_times - 1][1] = now_ns();
        g->unwritten = 0;
    }
    while (g->pending_off >= g->pending.len) {
        sbuf_reset(&g->pending);
        g->pending_off = 0;
        /* §8: a stop cuts the stream without [DONE] and without an error. */
        if (atomic_load(&fl_stopping))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (!stream_step(g))
            return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = g->pending.len - g->pending_off;
    if (n > max)
        n = max;
    memcpy(buf, g->pending.data + g->pending_off, n);
    g->pending_off += n;
    /* One event per stream_step: its last byte leaves with this piece. */
    if (fl_cfg.token_times != NULL && g->pending_off == g->pending.len)
        times_handed(g);
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    gen_free(cls);
}

/* Waits, after a stop request, until the client of a non-streaming request
 * goes away: llama-server never answers it and never exits meanwhile (§8). */
static void hang_until_disconnect(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci == NULL)
        return;
    int fd = ci->connect_fd;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
        int n = poll(&p, 1, 100);
        if (n < 0 && errno != EINTR)
            return;
        if (n > 0) {
            char b;
            if (p.revents & (POLLHUP | POLLRDHUP | POLLERR))
                return;
            if (recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
                return;
        }
    }
}

/* ChatML rendering of the messages (the server's fallback template, §2),
 * or the prompt string. -1 when the body lacks them. */
static long count_prompt(json_t *body, enum gen_kind kind, const char **why)
{
    size_t bytes = 0;
    if (kind == GEN_CHAT) {
        json_t *msgs = json_object_get(body, "messages");
        if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
            *why = "'messages' is required";
            return -1;
        }
        size_t i;
        json_t *m;
        json_array_foreach(msgs, i, m)
        {
            const char *role = json_string_value(json_object_get(m, "role"));
            const char *content = json_string_value(json_object_get(m, "content"));
            bytes += strlen("<|im_start|>\n<|im_end|>\n") + (role ? strlen(role) : 0) +
                     (content ? strlen(content) : 0);
        }
        bytes += strlen("<|im_start|>assistant\n");
    } else {
        const char *p = json_string_value(json_object_get(body, "prompt"));
        if (p == NULL) {
            *why = "\"prompt\" must be provided";
            return -1;
        }
        bytes = strlen(p);
    }
    long n = (long)((bytes + 3) / 4);
    return n > 0 ? n : 1;
}

static enum MHD_Result generate(struct MHD_Connection *c, struct req *rq, enum gen_kind kind)
{
    int64_t req_ns = now_ns();
    json_error_t je;
    json_t *body = json_loadb(sbuf_str(&rq->body), rq->body.len, 0, &je);
    if (body == NULL || !json_is_object(body)) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "[json.exception.parse_error.101] parse error at line %d, column %d: %s", je.line,
                 je.column, body == NULL ? je.text : "not an object");
        json_decref(body);
        return send_error(c, 500, msg, "server_error");
    }
    const char *why = NULL;
    long n_prompt = count_prompt(body, kind, &why);
    if (n_prompt < 0) {
        json_decref(body);
        return send_error(c, 400, why, "invalid_request_error");
    }
    if (n_prompt >= (long)fl_rt.n_ctx_slot) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "request (%ld tokens) exceeds the available context size (%u tokens), try "
                 "increasing it",
                 n_prompt, fl_rt.n_ctx_slot);
        json_t *e = handler_error(400, msg, "exceed_context_size_error");
        json_t *inner = json_object_get(e, "error");
        json_object_set_new(inner, "n_prompt_tokens", json_integer(n_prompt));
        json_object_set_new(inner, "n_ctx", json_integer(fl_rt.n_ctx_slot));
        json_decref(body);
        return send_json(c, 400, e);
    }
    struct gen *g = mem_calloc(1, sizeof(*g));
    if (g == NULL) {
        json_decref(body);
        return MHD_NO;
    }
    g->kind = kind;
    g->req_ns = req_ns;
    g->slot = -1;
    g->n_prompt = n_prompt;
    json_t *mt = json_object_get(body, "max_tokens");
    if (mt == NULL)
        mt = json_object_get(body, "max_completion_tokens");
    if (mt == NULL)
        mt = json_object_get(body, "n_predict");
    long room = (long)fl_rt.n_ctx_slot - n_prompt;
    g->n_max = json_is_integer(mt) && json_integer_value(mt) >= 0 && json_integer_value(mt) < room
                   ? (long)json_integer_value(mt)
                   : room;
    g->stream = json_is_true(json_object_get(body, "stream"));
    g->include_usage =
        json_is_true(json_object_get(json_object_get(body, "stream_options"), "include_usage"));
    const char *req_model = json_string_value(json_object_get(body, "model"));
    (void)req_model; /* llama-server answers with its own alias, not the request's */
    g->model = mem_strdup(model_id());
    json_decref(body);
    make_id(g->id, sizeof(g->id));
    g->created = (long)time(NULL);
    clock_gettime(CLOCK_MONOTONIC, &g->t0);
    g->slot = slot_acquire();
    if (g->slot < 0) {
        gen_free(g);
        return send_error(c, 503, "server is shutting down", "unavailable_error");
    }
    atomic_fetch_add(&m_requests, 1);
    atomic_fetch_add(&m_prompt_tokens, n_prompt);
    g->prompt_ms = ms_since(&g->t0);

    if (g->stream) {
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
                                                                   stream_reader, g, stream_free);
        if (r == NULL) {
            gen_free(g);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Server", "llama.cpp");
        MHD_add_response_header(r, "Keep-Alive", "timeout=5, max=100");
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "X-Accel-Buffering", "no");
        enum MHD_Result rc = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return rc;
    }

    const char *tok;
    while (!atomic_load(&fl_stopping) && next_token(g, &tok))
        sbuf_puts(&g->content, tok);
    if (atomic_load(&fl_stopping)) {
        hang_until_disconnect(c);
        gen_free(g);
        return MHD_NO;
    }
    json_t *o;
    if (kind == GEN_NATIVE) {
        o = native_chunk(g, sbuf_str(&g->content), 1);
    } else {
        o = json_object();
        json_t *choice;
        if (kind == GEN_CHAT)
            choice = json_pack("{s:s,s:i,s:{s:s,s:s}}", "finish_reason", g->finish, "index", 0,
                               "message", "role", "assistant", "content", sbuf_str(&g->content));
        else
            choice = json_pack("{s:s,s:i,s:n,s:s}", "text", sbuf_str(&g->content), "index", 0,
                               "logprobs", "finish_reason", g->finish);
        json_object_set_new(o, "choices", json_pack("[o]", choice));
        char bi[64];
        json_object_set_new(o, "created", json_integer(g->created));
        json_object_set_new(o, "model", json_string(g->model));
        json_object_set_new(o, "system_fingerprint", json_string(build_info(bi, sizeof(bi))));
        json_object_set_new(o, "object",
                            json_string(kind == GEN_CHAT ? "chat.completion" : "text_completion"));
        json_object_set_new(o, "usage", usage_json(g));
        json_object_set_new(o, "id", json_string(g->id));
        json_object_set_new(o, "timings", timings_json(g));
    }
    gen_free(g);
    return send_json(c, 200, o);
}

/* ---- other endpoints --------------------------------------------------- */

static json_t *models_json(void)
{
    if (fl_cfg.model == NULL)
        return json_pack("{s:[],s:s}", "data", "object", "list");
    const char *id = model_id();
    json_t *aliases = json_array();
    for (int i = 0; i < fl_cfg.n_aliases; i++)
        json_array_append_new(aliases, json_string(fl_cfg.aliases[i]));
    json_t *details =
        json_pack("{s:s,s:s,s:s,s:[s],s:s,s:s}", "parent_model", "", "format", "gguf", "family", "",
                  "families", "", "parameter_size", "", "quantization_level", "");
    json_t *ollama =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:[s],s:[s],s:s,s:o}", "name", id, "model", id,
                  "modified_at", "", "size", "", "digest", "", "type", "model", "description", "",
                  "tags", "", "capabilities", "completion", "parameters", "", "details", details);
    json_t *meta = json_pack("{s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:s}", "vocab_type", 1, "n_vocab",
                             (int)fl_cfg.n_vocab, "n_ctx", (int)fl_rt.n_ctx, "n_ctx_train",
                             (int)fl_cfg.n_ctx_train, "n_embd", (int)fl_cfg.n_embd, "n_params",
                             (json_int_t)fl_cfg.n_params, "size", (json_int_t)fl_cfg.model_bytes,
                             "ftype", fl_cfg.ftype);
    json_t *data =
        json_pack("{s:s,s:o,s:[],s:s,s:I,s:s,s:o}", "id", id, "aliases", aliases, "tags", "object",
                  "model", "created", (json_int_t)time(NULL), "owned_by", "llamacpp", "meta", meta);
    return json_pack("{s:[o],s:s,s:[o]}", "models", ollama, "object", "list", "data", data);
}

static json_t *props_json(void)
{
    char bi[64];
    json_t *params = json_pack("{s:i,s:f,s:i,s:f}", "n_predict", -1, "temperature", 0.8, "top_k",
                               40, "top_p", 0.95);
    json_t *o = json_object();
    json_object_set_new(o, "default_generation_settings",
                        json_pack("{s:o,s:i}", "params", params, "n_ctx", (int)fl_rt.n_ctx_slot));
    json_object_set_new(o, "total_slots", json_integer(fl_rt.n_slots));
    json_object_set_new(o, "model_alias", json_string(model_id()));
    json_object_set_new(o, "model_ftype", json_string(fl_cfg.ftype));
    json_object_set_new(o, "model_path", json_string(fl_cfg.model != NULL ? fl_cfg.model : ""));
    json_object_set_new(o, "modalities",
                        json_pack("{s:b,s:b,s:b}", "vision", 0, "video", 0, "audio", 0));
    json_object_set_new(o, "media_marker", json_string("<__media__>"));
    json_object_set_new(o, "endpoint_slots", json_boolean(fl_cfg.slots));
    json_object_set_new(o, "endpoint_props", json_boolean(fl_cfg.props));
    json_object_set_new(o, "endpoint_metrics", json_boolean(fl_cfg.metrics));
    json_object_set_new(o, "ui", json_false());
    json_object_set_new(o, "ui_settings", json_object());
    json_object_set_new(o, "chat_template", json_string("chatml"));
    json_object_set_new(o, "chat_template_caps", json_object());
    json_object_set_new(o, "bos_token", json_string("<s>"));
    json_object_set_new(o, "eos_token", json_string("</s>"));
    json_object_set_new(o, "build_info", json_string(build_info(bi, sizeof(bi))));
    json_object_set_new(o, "is_sleeping", json_false());
    json_object_set_new(o, "cors_proxy_enabled", json_false());
    return o;
}

static json_t *slots_json(void)
{
    json_t *a = json_array();
    pthread_mutex_lock(&lock);
    for (uint32_t i = 0; i < fl_rt.n_slots; i++)
        json_array_append_new(a, json_pack("{s:i,s:i,s:b,s:b}", "id", (int)i, "n_ctx",
                                           (int)fl_rt.n_ctx_slot, "speculative", 0, "is_processing",
                                           slot_busy[i]));
    pthread_mutex_unlock(&lock);
    return a;
}

static enum MHD_Result send_metrics(struct MHD_Connection *c)
{
    sbuf b = SBUF_INIT;
    const struct {
        const char *name, *type;
        long value;
    } rows[] = {
        {"prompt_tokens_total", "counter", atomic_load(&m_prompt_tokens)},
        {"tokens_predicted_total", "counter", atomic_load(&m_predicted)},
        {"n_decode_total", "counter", atomic_load(&m_requests)},
        {"requests_processing", "gauge", inflight},
        {"requests_deferred", "gauge", 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        sbuf_printf(&b, "# HELP llamacpp:%s %s\n# TYPE llamacpp:%s %s\nllamacpp:%s %ld\n",
                    rows[i].name, rows[i].name, rows[i].name, rows[i].type, rows[i].name,
                    rows[i].value);
    enum MHD_Result rc = send_body(c, 200, "text/plain; version=0.0.4", sbuf_str(&b), b.len);
    sbuf_free(&b);
    return rc;
}

static enum MHD_Result send_embeddings(struct MHD_Connection *c, struct req *rq)
{
    json_error_t je;
    json_t *body = json_loadb(sbuf_str(&rq->body), rq->body.len, 0, &je);
    const char *input = json_string_value(json_object_get(body, "input"));
    if (input == NULL) {
        json_decref(body);
        return send_error(c, 400, "\"input\" must be provided", "invalid_request_error");
    }
    long n = (long)(strlen(input) + 3) / 4;
    json_t *vec = json_array();
    double norm = 1.0 / (fl_cfg.n_embd > 0 ? (double)fl_cfg.n_embd : 1.0);
    for (uint32_t i = 0; i < fl_cfg.n_embd; i++)
        json_array_append_new(vec, json_real((i % 2 ? -1.0 : 1.0) * norm));
    json_t *o = json_pack("{s:s,s:s,s:{s:i,s:i},s:[{s:o,s:i,s:s}]}", "model", model_id(), "object",
                          "list", "usage", "prompt_tokens", (int)n, "total_tokens", (int)n, "data",
                          "embedding", vec, "index", 0, "object", "embedding");
    json_decref(body);
    return send_json(c, 200, o);
}

static enum MHD_Result route(struct MHD_Connection *c, const char *url, const char *method,
                             struct req *rq)
{
    int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(method, "OPTIONS") == 0) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST");
        MHD_add_response_header(r, "Access-Control-Allow-Headers", "*");
        enum MHD_Result rc = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return rc;
    }
    if (!atomic_load(&fl_ready))
        return send_mw_error(c, 503, "Loading model", "unavailable_error");
    if (!is_public(url) && !authorized(c)) {
        fl_log(2, 'W', "srv  %12.12s: unauthorized: Invalid API Key", "operator()");
        return send_mw_error(c, 401, "Invalid API Key", "authentication_error");
    }
    if (get && (strcmp(url, "/health") == 0 || strcmp(url, "/v1/health") == 0))
        return send_json(c, 200, json_pack("{s:s}", "status", "ok"));
    if (get && (strcmp(url, "/v1/models") == 0 || strcmp(url, "/models") == 0))
        return send_json(c, 200, models_json());
    if (fl_cfg.model != NULL) {
        if (get && strcmp(url, "/props") == 0)
            return send_json(c, 200, props_json());
        if (post && strcmp(url, "/props") == 0)
            return fl_cfg.props ? send_json(c, 200, json_pack("{s:b}", "success", 1))
                                : send_error(c, 501,
                                             "This server does not support changing global "
                                             "properties. Start it with `--props`",
                                             "not_supported_error");
        if (get && strcmp(url, "/slots") == 0)
            return fl_cfg.slots ? send_json(c, 200, slots_json())
                                : send_error(c, 501,
                                             "This server does not support slots endpoint. Start "
                                             "it with `--slots`",
                                             "not_supported_error");
        if (get && strcmp(url, "/metrics") == 0)
            return fl_cfg.metrics ? send_metrics(c)
                                  : send_error(c, 501,
                                               "This server does not support metrics endpoint. "
                                               "Start it with `--metrics`",
                                               "not_supported_error");
        if (post &&
            (strcmp(url, "/v1/chat/completions") == 0 || strcmp(url, "/chat/completions") == 0))
            return generate(c, rq, GEN_CHAT);
        if (post && (strcmp(url, "/v1/completions") == 0 || strcmp(url, "/completions") == 0))
            return generate(c, rq, GEN_OAI_TEXT);
        if (post && strcmp(url, "/completion") == 0)
            return generate(c, rq, GEN_NATIVE);
        if (post && (strcmp(url, "/v1/embeddings") == 0 || strcmp(url, "/embeddings") == 0))
            return fl_cfg.embeddings ? send_embeddings(c, rq)
                                     : send_error(c, 501,
                                                  "This server does not support embeddings. "
                                                  "Start it with `--embeddings`",
                                                  "not_supported_error");
    }
    return send_mw_error(c, 404, "File Not Found", "not_found_error");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct req *rq = *con_cls;
    if (rq == NULL) {
        rq = mem_calloc(1, sizeof(*rq));
        if (rq == NULL)
            return MHD_NO;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (rq->body.len + *upload_data_size > BODY_MAX)
            rq->too_large = 1;
        else
            sbuf_append(&rq->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rq->too_large || sbuf_error(&rq->body) != 0)
        return send_error(c, 413, "request body too large", "invalid_request_error");
    return route(c, url, method, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct req *rq = *con_cls;
    if (rq == NULL)
        return;
    sbuf_free(&rq->body);
    mem_free(rq);
    *con_cls = NULL;
}

int fl_http_start(uint16_t port, uint16_t *bound)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, strcmp(fl_cfg.host, "localhost") == 0 ? "127.0.0.1" : fl_cfg.host,
                  &sa.sin_addr) != 1)
        return -1;
    slot_busy = mem_calloc(fl_rt.n_slots > 0 ? fl_rt.n_slots : 1, 1);
    if (slot_busy == NULL)
        return -1;
    daemon_ = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL, port, NULL,
        NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)fl_cfg.timeout_s,
        MHD_OPTION_END);
    if (daemon_ == NULL)
        return -1;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
    *bound = di != NULL ? di->port : port;
    return 0;
}

void fl_http_stop(void)
{
    pthread_mutex_lock(&lock);
    pthread_cond_broadcast(&cond); /* wake requests waiting for a slot */
    while (inflight > 0)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    if (daemon_ != NULL)
        MHD_stop_daemon(daemon_);
    daemon_ = NULL;
}
