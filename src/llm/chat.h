/*
 * chat.h - a small blocking chat-completions client for a running
 * llama-server (the LLM runtime's endpoint), as `genai run` uses it.
 *
 * POST /v1/chat/completions with "stream": true and the conversation so
 * far; the reply arrives as server-sent events (contracts/llama-server.md
 * §6.4): "data: <chunk>\n\n" per event, ":" comment pings, "data: [DONE]"
 * at the end, and "data: {"error":...}" without [DONE] on a failure. Each
 * content delta reaches a callback as it arrives. A turn that completes is
 * appended to the conversation; one that fails leaves it unchanged.
 *
 * The client runs on the calling thread with its own curl easy handle
 * (sockets close-on-exec, environment proxies ignored). It shares nothing
 * with the loop thread but the port, key and model id it is given, so a
 * front end may call it while the loop thread supervises the server.
 */
#ifndef GENAI_LLM_CHAT_H
#define GENAI_LLM_CHAT_H

#include "core/error.h"
#include "core/sbuf.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Longest SSE line accepted (a chunk carries one token: far below). */
#define LLM_SSE_LINE_MAX (1u << 20)
/* Longest error body kept from a non-200 reply. */
#define LLM_CHAT_ERROR_BODY_MAX (64u * 1024u)

/* ---- the SSE parser (pure; exposed for tests and the fuzz target) ---- */

/* Called with the data of one event (data lines joined by "\n"). Returns 0
 * to go on, non-zero to stop parsing (the value is returned by feed). */
typedef int (*llm_sse_data_fn)(void *arg, const char *data, size_t len);

typedef struct llm_sse {
    sbuf line; /* the partial line */
    sbuf data; /* the event's data so far */
    int have_data;
    int after_cr; /* the last line ended with CR: an LF next is part of it */
} llm_sse;

void llm_sse_init(llm_sse *p);
void llm_sse_free(llm_sse *p);
/* Feeds bytes; dispatches every complete event. Lines end with LF, CRLF or
 * CR. Returns 0, the callback's non-zero value, GENAI_ETOO_LARGE for a line
 * above LLM_SSE_LINE_MAX, or -ENOMEM. */
int llm_sse_feed(llm_sse *p, const char *bytes, size_t len, llm_sse_data_fn fn, void *arg);

/* ---- the chat session ------------------------------------------------- */

typedef struct llm_chat llm_chat;

/* A new conversation, with a system message when system_prompt is not NULL
 * or empty. Free with llm_chat_free. */
int llm_chat_new(const char *system_prompt, llm_chat **out, genai_error *err);
void llm_chat_free(llm_chat *c);
/* Messages in the conversation (the system message included). */
size_t llm_chat_messages(const llm_chat *c);

/* Receives each content delta as it arrives; non-zero aborts the turn. */
typedef int (*llm_chat_token_fn)(void *arg, const char *text, size_t len);

typedef struct llm_chat_opts {
    uint16_t port;            /* 127.0.0.1:port */
    const char *api_key;      /* Bearer key; NULL: none */
    const char *model;        /* the "model" field; NULL: omitted */
    int32_t max_tokens;       /* 0: not sent (the server's default) */
    const atomic_int *cancel; /* non-zero aborts the turn; may be NULL */
    int connect_timeout_ms;   /* 0: 5000 */
} llm_chat_opts;

typedef struct llm_chat_result {
    char finish_reason[16]; /* "stop", "length", ... ("" when not given) */
    int64_t prompt_tokens;  /* -1 when the server did not say */
    int64_t completion_tokens;
    size_t content_bytes;
} llm_chat_result;

/*
 * Sends the user's message with the conversation and streams the answer to
 * fn. On success (the stream ended with [DONE] or a finish_reason) fills
 * *res (may be NULL) and appends both messages to the conversation.
 * Errors: GENAI_ECANCELLED (cancel flag or fn), GENAI_EHTTP with the
 * server's message for a non-200 reply or an error event, GENAI_EUNAVAILABLE
 * when the connection failed or the stream ended early (the server died),
 * GENAI_ECORRUPT for a chunk that is not JSON, -ENOMEM.
 */
int llm_chat_send(llm_chat *c, const llm_chat_opts *o, const char *user, llm_chat_token_fn fn,
                  void *arg, llm_chat_result *res, genai_error *err);

#endif
