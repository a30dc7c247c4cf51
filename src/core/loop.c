/*
 * loop.c - the loop thread and its message queue (see loop.h).
 *
 * Wake-ups: a post from another thread appends under the mutex and calls
 * uv_async_send. A post from the loop thread itself appends and starts the
 * uv_idle handle instead, so the message runs on the next iteration without
 * a syscall. The idle handle is also how a drain that stopped at its batch
 * boundary says "run again now": libuv before 1.48 livelocks on a 0 ms timer
 * re-armed from its own callback (DESIGN.md traps), an idle handle does not.
 *
 * Each drain takes the whole queue at once and runs that batch; messages the
 * batch posts go to the next iteration, so a message that re-posts itself
 * cannot starve I/O.
 *
 * Shutdown: loop_stop sets 'stopping' under the mutex (later posts fail) and
 * wakes the loop; every uv_async_send happens under that mutex, so none can
 * reach the async handle after the loop closed it. The drain that finds 'stopping' with an empty
 * queue closes the async and idle handles and any handle left open; uv_run then returns because
 * nothing is active, and loop_stop joins the thread.
 */
#include "core/loop.h"

#include "core/alloc.h"
#include "core/log.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

typedef struct loop_msg {
    struct loop_msg *next;
    loop_fn fn;
    void *arg;
} loop_msg;

struct loop {
    uv_loop_t uv;
    uv_async_t wake;
    uv_idle_t again;
    pthread_t thread; /* written before the handshake, then read-only */
    pthread_mutex_t mu;
    pthread_cond_t started_cv;
    /* guarded by mu */
    loop_msg *head;
    loop_msg *tail;
    int stopping;
    int started;
    int start_rc;
    /* loop thread only */
    int closing;
};

static void close_leftover(uv_handle_t *h, void *arg)
{
    loop *l = arg;
    if (uv_is_closing(h) || h == (uv_handle_t *)&l->wake || h == (uv_handle_t *)&l->again)
        return;
    LOG_WARN("loop", "closing a %s handle left open at shutdown", uv_handle_type_name(h->type));
    uv_close(h, NULL);
}

static void on_again(uv_idle_t *h);

static void drain(loop *l)
{
    pthread_mutex_lock(&l->mu);
    loop_msg *batch = l->head;
    l->head = l->tail = NULL;
    pthread_mutex_unlock(&l->mu);

    while (batch != NULL) {
        loop_msg *m = batch;
        batch = m->next;
        m->fn(l, m->arg);
        mem_free(m);
    }

    pthread_mutex_lock(&l->mu);
    int more = l->head != NULL;
    int stop = l->stopping && !more;
    pthread_mutex_unlock(&l->mu);

    if (more) {
        uv_idle_start(&l->again, on_again);
    } else {
        uv_idle_stop(&l->again);
    }
    if (stop && !l->closing) {
        l->closing = 1;
        uv_close((uv_handle_t *)&l->wake, NULL);
        uv_close((uv_handle_t *)&l->again, NULL);
        uv_walk(&l->uv, close_leftover, l);
    }
}

static void on_wake(uv_async_t *h)
{
    drain(h->data);
}

static void on_again(uv_idle_t *h)
{
    drain(h->data);
}

static void *loop_main(void *arg)
{
    loop *l = arg;
    int rc = uv_loop_init(&l->uv);
    if (rc == 0) {
        rc = uv_async_init(&l->uv, &l->wake, on_wake);
        if (rc == 0) {
            uv_idle_init(&l->uv, &l->again);
            l->wake.data = l;
            l->again.data = l;
        } else {
            uv_loop_close(&l->uv);
        }
    }
    pthread_mutex_lock(&l->mu);
    l->started = 1;
    l->start_rc = rc;
    pthread_cond_signal(&l->started_cv);
    pthread_mutex_unlock(&l->mu);
    if (rc != 0)
        return NULL;

    uv_run(&l->uv, UV_RUN_DEFAULT);
    /* Handles closed by the final drain need one more pass for their close
     * callbacks when uv_run returned before running them. */
    uv_run(&l->uv, UV_RUN_NOWAIT);
    if (uv_loop_close(&l->uv) != 0)
        LOG_ERROR("loop", "libuv loop still busy at shutdown");
    return NULL;
}

int loop_start(loop **out, genai_error *err)
{
    loop *l = mem_calloc(1, sizeof(*l));
    if (l == NULL)
        return err_set(err, -ENOMEM, "allocating the event loop");
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->started_cv, NULL);

    int rc = pthread_create(&l->thread, NULL, loop_main, l);
    if (rc != 0) {
        rc = err_errno(err, rc, "starting the loop thread");
        goto fail;
    }
    pthread_mutex_lock(&l->mu);
    while (!l->started)
        pthread_cond_wait(&l->started_cv, &l->mu);
    rc = l->start_rc;
    pthread_mutex_unlock(&l->mu);
    if (rc != 0) {
        pthread_join(l->thread, NULL);
        rc = err_set(err, rc, "initialising libuv: %s", uv_strerror(rc));
        goto fail;
    }
    *out = l;
    return 0;

fail:
    pthread_cond_destroy(&l->started_cv);
    pthread_mutex_destroy(&l->mu);
    mem_free(l);
    return rc;
}

void loop_stop(loop *l)
{
    if (l == NULL)
        return;
    assert(!loop_on_thread(l));
    pthread_mutex_lock(&l->mu);
    l->stopping = 1;
    uv_async_send(&l->wake);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    pthread_cond_destroy(&l->started_cv);
    pthread_mutex_destroy(&l->mu);
    mem_free(l);
}

int loop_post(loop *l, loop_fn fn, void *arg)
{
    loop_msg *m = mem_alloc(sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    m->next = NULL;
    m->fn = fn;
    m->arg = arg;

    int on_thread = loop_on_thread(l);
    if (on_thread && l->closing) {
        mem_free(m);
        return GENAI_ECANCELLED;
    }
    pthread_mutex_lock(&l->mu);
    if (l->stopping && !on_thread) {
        pthread_mutex_unlock(&l->mu);
        mem_free(m);
        return GENAI_ECANCELLED;
    }
    if (l->tail != NULL)
        l->tail->next = m;
    else
        l->head = m;
    l->tail = m;
    /* Wake under the mutex: once the loop has seen 'stopping' with an empty
     * queue it closes the async handle, and no send may come after that. */
    if (!on_thread)
        uv_async_send(&l->wake);
    pthread_mutex_unlock(&l->mu);

    /* On the loop thread the idle handle picks the message up on the next
     * iteration; stopping does not refuse it, since the final drain runs
     * until the queue is empty. */
    if (on_thread)
        uv_idle_start(&l->again, on_again);
    return 0;
}

typedef struct call_msg {
    loop_call_fn fn;
    void *arg;
    loop_completion *c;
} call_msg;

static void run_call(loop *l, void *arg)
{
    call_msg *cm = arg;
    cm->fn(l, cm->arg, cm->c);
}

int loop_call_wait(loop *l, loop_call_fn fn, void *arg)
{
    loop_completion c = {.done = 0, .result = 0};
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    call_msg cm = {fn, arg, &c};
    int rc;
    if (loop_on_thread(l)) {
        run_call(l, &cm);
        assert(c.done);
        rc = c.result;
        goto out;
    }
    rc = loop_post(l, run_call, &cm);
    if (rc < 0)
        goto out;
    pthread_mutex_lock(&c.mu);
    while (!c.done)
        pthread_cond_wait(&c.cv, &c.mu);
    rc = c.result;
    pthread_mutex_unlock(&c.mu);
out:
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);
    return rc;
}

void loop_complete(loop_completion *c, int result)
{
    pthread_mutex_lock(&c->mu);
    assert(!c->done);
    c->result = result;
    c->done = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

uv_loop_t *loop_uv(loop *l)
{
    return &l->uv;
}

int loop_on_thread(const loop *l)
{
    return pthread_equal(pthread_self(), l->thread);
}
