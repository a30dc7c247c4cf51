/*
 * download.h - the download engine of the model store (libcurl easy API).
 *
 * store_download() fetches one URL into "<dest>.partial", hashing the bytes
 * with SHA-256 as they arrive, and on success verifies size and digest,
 * fsyncs, and renames the file to <dest>. It resumes an existing partial file
 * with a Range request after re-hashing the prefix already on disk; a server
 * that ignores Range (200) makes it start over, a 416 on a complete partial
 * is taken as "already complete". Transient failures (connection errors, a
 * cut body, a stall, 408/429/5xx) are retried with exponential backoff from
 * where the file stands; permanent ones (4xx, a redirect loop, a refused
 * scheme, ENOSPC, a wrong digest) end the call. A failed digest deletes the
 * partial file (its bytes are known bad); every other failure keeps it for the
 * next attempt.
 *
 * Threads: the calls are blocking and keep no global state besides
 * curl_global_init (done once, thread-safely), so they may run on any thread,
 * e.g. a worker of the daemon's loop. Progress is reported through a callback
 * on the calling thread; cancellation is an atomic flag polled by the
 * transfer (at least once a second) and by the backoff waits.
 *
 * Credentials: the Hugging Face token is sent only to the configured Hugging
 * Face endpoint host and to huggingface.co hosts, never to another host
 * (curl drops the Authorization header on a redirect to a different host).
 * Plain http is refused, for the URL and for redirects, unless allow_http.
 */
#ifndef GENAI_STORE_DOWNLOAD_H
#define GENAI_STORE_DOWNLOAD_H

#include "core/error.h"
#include "store/digest.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef enum store_phase {
    STORE_PHASE_RESOLVING,   /* asking Hugging Face what to fetch */
    STORE_PHASE_WAITING,     /* another process is pulling the same thing */
    STORE_PHASE_DOWNLOADING, /* bytes arriving */
    STORE_PHASE_RETRYING,    /* waiting out a backoff after a transient error */
    STORE_PHASE_VERIFYING,   /* digest checked, fsync, rename */
    STORE_PHASE_DONE,        /* file complete and in place */
} store_phase;

/* Name of a phase ("downloading"); static. */
const char *store_phase_name(store_phase phase);

typedef struct store_progress {
    store_phase phase;
    const char *name;    /* the file being fetched (display name) */
    uint64_t done;       /* bytes in the partial file */
    uint64_t total;      /* expected size, 0 when unknown */
    unsigned attempt;    /* 1-based attempt number */
    unsigned file_index; /* 1-based position of this file in the pull */
    unsigned file_count;
    const char *reason; /* RETRYING: why the last attempt failed; else NULL */
} store_progress;

/* Progress callback; runs on the downloading thread, must not block long. */
typedef void (*store_progress_fn)(const store_progress *p, void *userdata);

/* Network settings shared by every request of one pull. */
typedef struct store_net {
    const char *hf_endpoint; /* Hugging Face base URL, no trailing slash */
    const char *hf_token;    /* NULL: no token */
    int allow_http;          /* permit http:// URLs and redirects */
    long max_redirects;      /* redirect limit per request */
    long stall_seconds;      /* abort an attempt when no byte arrived for this long */
    long connect_timeout_s;
    unsigned max_attempts; /* consecutive failed attempts without progress */
    unsigned backoff_ms;   /* first backoff; doubles up to 30 s */
    const atomic_int *cancel;
    store_progress_fn progress;
    void *userdata;
} store_net;

/*
 * Fills n with defaults: endpoint from GENAI_HF_ENDPOINT (default
 * https://huggingface.co), token from HF_TOKEN, 10 redirects, 30 s stall,
 * 30 s connect timeout, 6 attempts, 1 s first backoff. The strings point into
 * the environment (or static text) and must outlive n's use.
 */
void store_net_defaults(store_net *n);

/* True when a request to url may carry the Hugging Face token (see above). */
int store_net_token_allowed(const store_net *n, const char *url);

typedef struct store_fetch {
    const char *url;
    const char *dest;            /* final path; the partial is dest + ".partial" */
    const char *name;            /* display name for progress */
    const char *expected_sha256; /* hex, or NULL: use X-Linked-Etag when sent */
    uint64_t expected_size;      /* 0 when unknown */
    unsigned file_index, file_count;
} store_fetch;

typedef struct store_fetch_result {
    char sha256[STORE_SHA256_HEX]; /* digest of the file now at dest */
    uint64_t size;
    char repo_commit[41]; /* X-Repo-Commit seen on the way, "" when none */
    int resumed;          /* 1 when it continued an existing partial file */
    unsigned requests;    /* transfers started (attempts) */
} store_fetch_result;

/* 0 when url may be fetched: https, or http when net->allow_http;
 * GENAI_EHTTP for refused http, GENAI_EBAD_ARG for any other scheme. The
 * store checks every reference with it before a pull's first request. */
int store_url_scheme_allowed(const store_net *net, const char *url, genai_error *err);

/*
 * Downloads f->url to f->dest as described at the top. On success *out is
 * filled and dest holds the verified file. Errors: GENAI_ECHECKSUM (digest or
 * size mismatch; partial deleted), GENAI_EHTTP (status, redirect limit,
 * refused scheme), GENAI_ENOT_FOUND (404), GENAI_ECANCELLED, -ENOSPC (not
 * enough space before starting or while writing; partial kept),
 * GENAI_EUNAVAILABLE (transient errors outlasted max_attempts; partial kept).
 */
int store_download(const store_net *net, const store_fetch *f, store_fetch_result *out,
                   genai_error *err);

/*
 * GETs a small document (API JSON) into memory, following redirects and
 * retrying transient errors like store_download. Refuses bodies larger than
 * max_bytes (GENAI_ETOO_LARGE). *body is NUL-terminated and freed by the
 * caller with mem_free. When next_link is not NULL it receives the URL of a
 * `Link: <...>; rel="next"` header (or NULL), also freed with mem_free.
 */
int store_http_get(const store_net *net, const char *url, size_t max_bytes, char **body,
                   size_t *len, char **next_link, genai_error *err);

#endif
