/*
 * chat.c - blocking streaming chat client and SSE parser (see chat.h).
 *
 * The SSE parser follows the WHATWG "server-sent events" event-stream
 * grammar, reduced to what llama-server sends: "data:" fields (one optional
 * space after the colon), ":" comments, blank lines ending events; other
 * fields (event, id, retry) are ignored. The chunk handler reads the
 * OpenAI-style chat.completion.chunk objects of contracts/llama-server.md
 * §6.4. Everything from the child is bounded: lines, the error body.
 */
#include "llm/chat.h"

#include "core/alloc.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- SSE ------------------------------------------------------------------ */

void llm_sse_init(llm_sse *p)
{
    memset(p, 0, sizeof(*p));
}

void llm_sse_free(llm_sse *p)
{
    if (p == NULL)
        return;
    sbuf_free(&p->line);
    sbuf_free(&p->data);
    memset(p, 0, sizeof(*p));
}

static int sse_line(llm_sse *p, const char *s, size_t n, llm_sse_data_fn fn, void *arg)
{
    if (n == 0) { /* end of event */
        if (!p->have_data)
            return 0;
        int rc = fn(arg, sbuf_str(&p->data), p->data.len);
        sbuf_reset(&p->data);
        p->have_data = 0;
        return rc;
    }
    if (s[0] == ':')
        return 0; /* comment (llama-server's ping) */
    if (n < 5 || memcmp(s, "data:", 5) != 0)
        return 0; /* event:, id:, retry: and unknown fields */
    s += 5;
    n -= 5;
    if (n > 0 && s[0] == ' ') {
        s++;
        n--;
    }
    if (p->have_data)
        sbuf_append(&p->data, "\n", 1);
    sbuf_append(&p->data, s, n);
    p->have_data = 1;
    if (sbuf_error(&p->data) < 0)
        return -ENOMEM;
    if (p->data.len > LLM_SSE_LINE_MAX)
        return GENAI_ETOO_LARGE;
    return 0;
}

int llm_sse_feed(llm_sse *p, const char *bytes, size_t len, llm_sse_data_fn fn, void *arg)
{
    size_t i = 0;
    while (i < len) {
        char c = bytes[i];
        if (c == '\n' && p->after_cr) { /* the LF of a CRLF */
            p->after_cr = 0;
            i++;
            continue;
        }
        p->after_cr = 0;
        if (c == '\n' || c == '\r') {
            p->after_cr = c == '\r';
            int rc = sse_line(p, sbuf_str(&p->line), p->line.len, fn, arg);
            sbuf_reset(&p->line);
            if (rc != 0)
                return rc;
            i++;
            continue;
        }
        size_t k = i;
        while (k < len && bytes[k] != '\n' && bytes[k] != '\r')
            k++;
        if (p->line.len + (k - i) > LLM_SSE_LINE_MAX)
            return GENAI_ETOO_LARGE;
        if (sbuf_append(&p->line, bytes + i, k - i) < 0)
            return -ENOMEM;
        i = k;
    }
    return 0;
}

/* ---- the session ------------------------------------------------------- */

struct llm_chat {
    json_t *messages; /* array of {"role","content"} */
};

int llm_chat_new(const char *system_prompt, llm_chat **out, genai_error *err)
{
    llm_chat *c = mem_calloc(1, sizeof(*c));
    if (c == NULL)
        return err_set(err, -ENOMEM, "allocating a chat");
    c->messages = json_array();
    if (c->messages == NULL)
        goto nomem;
    if (system_prompt != NULL && system_prompt[0] != '\0' &&
        json_array_append_new(
            c->messages, json_pack("{s:s,s:s}", "role", "system", "content", system_prompt)) != 0)
        goto nomem;
    *out = c;
    return 0;
nomem:
    llm_chat_free(c);
    return err_set(err, -ENOMEM, "allocating a chat");
}

void llm_chat_free(llm_chat *c)
{
    if (c == NULL)
        return;
    json_decref(c->messages);
    mem_free(c);
}

size_t llm_chat_messages(const llm_chat *c)
{
    return json_array_size(c->messages);
}

/* One turn in flight. */
typedef struct turn {
    CURL *curl;
    llm_sse sse;
    llm_chat_token_fn fn;
    void *arg;
    const atomic_int *cancel;
    sbuf answer;
    sbuf error_body;
    long status;
    int done;      /* [DONE] seen */
    int finished;  /* a finish_reason seen */
    int cancelled; /* by fn or the flag */
    int rc;        /* first error of the chunk handler */
    genai_error *err;
    llm_chat_result res;
} turn;

static int on_chunk(void *arg, const char *data, size_t len)
{
    turn *t = arg;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        t->done = 1;
        return 1; /* nothing follows [DONE] */
    }
    json_error_t je;
    json_t *o = json_loadb(data, len, 0, &je);
    if (o == NULL || !json_is_object(o)) {
        json_decref(o);
        return t->rc = err_set(t->err, GENAI_ECORRUPT,
                               "llama-server sent a chunk that is not a "
                               "JSON object: %.200s",
                               data);
    }
    json_t *error = json_object_get(o, "error");
    if (error != NULL) {
        const char *msg = json_string_value(json_object_get(error, "message"));
        t->rc =
            err_set(t->err, GENAI_EHTTP, "llama-server reported an error during the answer: %.400s",
                    msg != NULL ? msg : "(no message)");
        json_decref(o);
        return t->rc;
    }
    json_t *choice = json_array_get(json_object_get(o, "choices"), 0);
    const char *text =
        json_string_value(json_object_get(json_object_get(choice, "delta"), "content"));
    const char *fin = json_string_value(json_object_get(choice, "finish_reason"));
    json_t *usage = json_object_get(o, "usage");
    if (json_is_object(usage)) {
        json_t *pt = json_object_get(usage, "prompt_tokens");
        json_t *ct = json_object_get(usage, "completion_tokens");
        if (json_is_integer(pt))
            t->res.prompt_tokens = json_integer_value(pt);
        if (json_is_integer(ct))
            t->res.completion_tokens = json_integer_value(ct);
    }
    if (fin != NULL) {
        t->finished = 1;
        snprintf(t->res.finish_reason, sizeof(t->res.finish_reason), "%s", fin);
    }
    int rc = 0;
    if (text != NULL && text[0] != '\0') {
        size_t n = strlen(text);
        sbuf_append(&t->answer, text, n);
        t->res.content_bytes += n;
        if (sbuf_error(&t->answer) < 0)
            rc = t->rc = err_set(t->err, -ENOMEM, "keeping the answer");
        else if (t->fn != NULL && t->fn(t->arg, text, n) != 0)
            rc = t->cancelled = 1;
    }
    json_decref(o);
    return rc;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    turn *t = userdata;
    size_t n = size * nmemb;
    if (t->status == 0)
        curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->status);
    if (t->status != 200) {
        if (t->error_body.len + n <= LLM_CHAT_ERROR_BODY_MAX)
            sbuf_append(&t->error_body, ptr, n);
        return n;
    }
    if (t->done)
        return n;
    int rc = llm_sse_feed(&t->sse, ptr, n, on_chunk, t);
    if (rc == 1 && t->done)
        return n;
    if (rc != 0) {
        if (rc < 0 && t->rc == 0)
            t->rc = err_set(t->err, rc, "reading the answer stream");
        return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    return n;
}

static int on_progress(void *userdata, curl_off_t dlt, curl_off_t dln, curl_off_t ult,
                       curl_off_t uln)
{
    (void)dlt;
    (void)dln;
    (void)ult;
    (void)uln;
    turn *t = userdata;
    if (t->cancel != NULL && atomic_load(t->cancel) != 0) {
        t->cancelled = 1;
        return 1;
    }
    return 0;
}

/* Children are forked while this thread may hold a socket open. */
static curl_socket_t open_cloexec(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)clientp;
    (void)purpose;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void init_curl(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int server_error(turn *t, genai_error *err)
{
    const char *msg = NULL;
    json_t *o = json_loadb(sbuf_str(&t->error_body), t->error_body.len, 0, NULL);
    if (o != NULL)
        msg = json_string_value(json_object_get(json_object_get(o, "error"), "message"));
    int rc = err_set(err, GENAI_EHTTP, "llama-server answered HTTP %ld: %.400s", t->status,
                     msg != NULL ? msg : sbuf_str(&t->error_body));
    json_decref(o);
    return rc;
}

int llm_chat_send(llm_chat *c, const llm_chat_opts *o, const char *user, llm_chat_token_fn fn,
                  void *arg, llm_chat_result *res, genai_error *err)
{
    if (c == NULL || o == NULL || user == NULL || o->port == 0)
        return err_set(err, GENAI_EBAD_ARG, "llm_chat_send: missing argument");
    pthread_once(&curl_once, init_curl);
    if (curl_init_rc != CURLE_OK)
        return err_set(err, GENAI_EINTERNAL, "curl_global_init: %s",
                       curl_easy_strerror(curl_init_rc));

    int rc = -ENOMEM;
    turn t;
    memset(&t, 0, sizeof(t));
    llm_sse_init(&t.sse);
    t.fn = fn;
    t.arg = arg;
    t.cancel = o->cancel;
    t.err = err;
    t.res.prompt_tokens = t.res.completion_tokens = -1;
    struct curl_slist *hdrs = NULL;
    char *body = NULL;
    json_t *req = json_object();
    json_t *msgs = json_deep_copy(c->messages);
    if (req == NULL || msgs == NULL ||
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", user)) != 0)
        goto nomem;
    if (o->model != NULL)
        json_object_set_new(req, "model", json_string(o->model));
    json_object_set(req, "messages", msgs);
    json_object_set_new(req, "stream", json_true());
    /* Without it the stream carries no token counts (contract §6.4). */
    json_object_set_new(req, "stream_options", json_pack("{s:b}", "include_usage", 1));
    if (o->max_tokens > 0)
        json_object_set_new(req, "max_tokens", json_integer(o->max_tokens));
    body = json_dumps(req, JSON_COMPACT);
    if (body == NULL)
        goto nomem;

    char url[64], auth[160];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/chat/completions", (unsigned)o->port);
    t.curl = curl_easy_init();
    if (t.curl == NULL)
        goto nomem;
    struct curl_slist *h1 = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = h1;
    if (hdrs != NULL)
        hdrs = curl_slist_append(hdrs, "Accept: text/event-stream");
    if (hdrs != NULL && o->api_key != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %.100s", o->api_key);
        hdrs = curl_slist_append(hdrs, auth);
    }
    if (hdrs == NULL) {
        curl_slist_free_all(h1);
        goto nomem;
    }
    curl_easy_setopt(t.curl, CURLOPT_URL, url);
    curl_easy_setopt(t.curl, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(t.curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t.curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(t.curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(t.curl, CURLOPT_OPENSOCKETFUNCTION, open_cloexec);
    curl_easy_setopt(t.curl, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(t.curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(t.curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(t.curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(t.curl, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(t.curl, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000));
    /* No total timeout: an answer may take minutes. A server that sends
     * nothing, not even its SSE ping (2 s here), for 120 s is gone. */
    curl_easy_setopt(t.curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(t.curl, CURLOPT_LOW_SPEED_TIME, 120L);

    CURLcode cc = curl_easy_perform(t.curl);
    if (t.status == 0)
        curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &t.status);
    if (t.cancelled) {
        rc = err_set(err, GENAI_ECANCELLED, "answer interrupted");
    } else if (t.rc < 0) {
        rc = t.rc;
    } else if (t.status != 0 && t.status != 200 && (cc == CURLE_OK || t.error_body.len > 0)) {
        rc = server_error(&t, err);
    } else if (cc != CURLE_OK && !t.done) {
        rc = err_set(err, GENAI_EUNAVAILABLE, "connection to llama-server on port %u lost: %s",
                     (unsigned)o->port, curl_easy_strerror(cc));
    } else if (!t.done && !t.finished) {
        rc = err_set(err, GENAI_EUNAVAILABLE, "llama-server ended the answer early (no [DONE])");
    } else {
        json_t *reply = json_pack("{s:s,s:s}", "role", "assistant", "content", sbuf_str(&t.answer));
        if (reply == NULL || json_array_append_new(msgs, reply) != 0) {
            rc = err_set(err, -ENOMEM, "keeping the conversation");
        } else {
            json_decref(c->messages);
            c->messages = msgs;
            msgs = NULL;
            if (res != NULL)
                *res = t.res;
            rc = 0;
        }
    }
    goto out;

nomem:
    rc = err_set(err, -ENOMEM, "building a chat request");
out:
    if (t.curl != NULL)
        curl_easy_cleanup(t.curl);
    curl_slist_free_all(hdrs);
    free(body); /* jansson's allocator */
    json_decref(req);
    json_decref(msgs);
    llm_sse_free(&t.sse);
    sbuf_free(&t.answer);
    sbuf_free(&t.error_body);
    return rc;
}
