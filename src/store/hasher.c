/*
 * hasher.c - hashing a file one step behind its writer (see hasher.h).
 *
 * Shared state, under mu: `written` (bytes the writer published), `hashed`
 * (bytes in the hash), `busy` (the thread is hashing a range outside the
 * lock), the first error. The thread takes [hashed, written) in slices of at
 * most STORE_HASHER_SLICE so the writer is woken every few MiB; once the
 * prefix that was on disk at the start is hashed, the writer waits on `less`
 * while written - hashed exceeds the lag. (While the prefix is being hashed
 * the writer does not wait: a resumed download of a big file would otherwise
 * stall for the whole re-hash.) Restart and drain wait until hashed ==
 * written and the thread is idle, which is what makes truncating the file
 * afterwards safe. The hash context is touched by the thread alone while it
 * runs; the writer reads it (store_sha256_final) only after a drain.
 */
#include "store/hasher.h"

#include "core/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>

#define STORE_HASHER_SLICE (8u << 20)

struct store_hasher {
    store_sha256 *hash;
    int fd;
    int threaded;
    uint64_t written, hashed;
    uint64_t flushed; /* without a thread: writeback started up to here */
    uint64_t prefix;  /* bytes on disk at start or restart: no lag limit while hashing them */
    int busy, closing;
    int rc;            /* first error of the thread, 0 when none */
    genai_error error; /* its detail */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t more, less;
};

/* Queues the dirty pages of a range for writing to disk. It returns once
 * they are queued, which can take as long as the device needs to make room
 * in its queue: that wait belongs on this thread, not the receiving one. */
static void start_writeback(int fd, uint64_t off, uint64_t len)
{
#ifdef SYNC_FILE_RANGE_WRITE
    (void)sync_file_range(fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd;
    (void)off;
    (void)len;
#endif
}

static void *hasher_main(void *arg)
{
    store_hasher *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->closing && (h->hashed == h->written || h->rc < 0))
            pthread_cond_wait(&h->more, &h->mu);
        if (h->closing)
            break;
        uint64_t off = h->hashed;
        uint64_t len = h->written - off;
        if (len > STORE_HASHER_SLICE)
            len = STORE_HASHER_SLICE;
        h->busy = 1;
        pthread_mutex_unlock(&h->mu);
        genai_error e;
        genai_error_clear(&e);
        int rc = store_sha256_range(h->hash, h->fd, off, len, &e);
        if (rc == 0)
            start_writeback(h->fd, off, len);
        pthread_mutex_lock(&h->mu);
        h->busy = 0;
        if (rc < 0 && h->rc == 0) {
            h->rc = rc;
            h->error = e;
        } else if (rc == 0) {
            h->hashed = off + len;
        }
        pthread_cond_broadcast(&h->less);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

int store_hasher_start(store_hasher **out, store_sha256 *hash, int fd, uint64_t have,
                       genai_error *err)
{
    store_hasher *h = mem_calloc(1, sizeof(*h));
    if (h == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    h->hash = hash;
    h->fd = fd;
    h->written = have;
    h->prefix = have;
    if (pthread_mutex_init(&h->mu, NULL) == 0) {
        if (pthread_cond_init(&h->more, NULL) == 0) {
            if (pthread_cond_init(&h->less, NULL) == 0) {
                if (pthread_create(&h->thread, NULL, hasher_main, h) == 0) {
                    h->threaded = 1;
                    *out = h;
                    return 0;
                }
                pthread_cond_destroy(&h->less);
            }
            pthread_cond_destroy(&h->more);
        }
        pthread_mutex_destroy(&h->mu);
    }
    /* No thread: the same results, hashed on the caller's thread. */
    int rc = store_sha256_range(hash, fd, 0, have, err);
    if (rc < 0) {
        mem_free(h);
        return rc;
    }
    h->hashed = h->flushed = have;
    *out = h;
    return 0;
}

/* Called with mu held: the thread's error, copied out. */
static int thread_error(const store_hasher *h, genai_error *err)
{
    if (err != NULL)
        *err = h->error;
    return h->rc;
}

int store_hasher_wrote(store_hasher *h, const void *buf, size_t len, genai_error *err)
{
    if (len == 0)
        return 0;
    if (!h->threaded) {
        int rc = store_sha256_update(h->hash, buf, len);
        if (rc < 0)
            return err_set(err, rc, "SHA-256 update failed");
        h->written += len;
        h->hashed = h->written;
        if (h->written - h->flushed >= STORE_HASHER_SLICE) {
            start_writeback(h->fd, h->flushed, h->written - h->flushed);
            h->flushed = h->written;
        }
        return 0;
    }
    pthread_mutex_lock(&h->mu);
    h->written += len;
    pthread_cond_signal(&h->more);
    while (h->rc == 0 && h->hashed >= h->prefix && h->written - h->hashed > STORE_HASHER_LAG)
        pthread_cond_wait(&h->less, &h->mu);
    int rc = h->rc < 0 ? thread_error(h, err) : 0;
    pthread_mutex_unlock(&h->mu);
    return rc;
}

int store_hasher_drain(store_hasher *h, genai_error *err)
{
    if (!h->threaded)
        return 0;
    pthread_mutex_lock(&h->mu);
    while (h->rc == 0 && (h->hashed < h->written || h->busy))
        pthread_cond_wait(&h->less, &h->mu);
    /* After an error the thread may still be inside a range: wait it out. */
    while (h->busy)
        pthread_cond_wait(&h->less, &h->mu);
    int rc = h->rc < 0 ? thread_error(h, err) : 0;
    pthread_mutex_unlock(&h->mu);
    return rc;
}

int store_hasher_restart(store_hasher *h, genai_error *err)
{
    int rc = store_hasher_drain(h, err);
    if (rc < 0)
        return rc;
    char scratch[STORE_SHA256_HEX];
    if ((rc = store_sha256_final(h->hash, scratch)) < 0) /* final() restarts the context */
        return err_set(err, rc, "SHA-256 failed");
    if (h->threaded)
        pthread_mutex_lock(&h->mu);
    h->written = h->hashed = h->prefix = h->flushed = 0;
    if (h->threaded)
        pthread_mutex_unlock(&h->mu);
    return 0;
}

uint64_t store_hasher_written(const store_hasher *h)
{
    return h->written; /* only the writer thread changes it */
}

void store_hasher_stop(store_hasher *h)
{
    if (h == NULL)
        return;
    if (h->threaded) {
        pthread_mutex_lock(&h->mu);
        h->closing = 1;
        pthread_cond_signal(&h->more);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->thread, NULL);
        pthread_mutex_destroy(&h->mu);
        pthread_cond_destroy(&h->more);
        pthread_cond_destroy(&h->less);
    }
    mem_free(h);
}
