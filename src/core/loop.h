/*
 * loop.h - the one event-loop thread that owns genai's runtime state.
 *
 * DESIGN.md principle 3: a single libuv loop thread owns every process, job,
 * plan and connection; other threads post messages to it and either get a
 * callback on the loop thread or wait for a reply. Nothing else touches the
 * uv_loop_t or the state hanging off it, so that state needs no locks.
 *
 * Posting from any thread (loop thread included) appends to a FIFO under a
 * mutex and wakes the loop with uv_async_send; since wake-ups merge, the loop
 * drains whatever the queue holds, never counts wake-ups. Messages run in
 * the order they were posted.
 *
 * Lifetime: loop_start() starts the thread; loop_stop() refuses new messages,
 * runs the ones already queued, closes every handle still open (owners should
 * have closed theirs: leftovers are closed and logged), and joins the thread.
 */
#ifndef GENAI_CORE_LOOP_H
#define GENAI_CORE_LOOP_H

#include "core/error.h"

#include <pthread.h>
#include <uv.h>

typedef struct loop loop;

/* A message: runs on the loop thread with the arg given to loop_post. */
typedef void (*loop_fn)(loop *l, void *arg);

/*
 * A reply slot for loop_call_wait: the loop-side function calls
 * loop_complete() exactly once, now or in a later callback.
 */
typedef struct loop_completion {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int result;
} loop_completion;

typedef void (*loop_call_fn)(loop *l, void *arg, loop_completion *c);

/* Creates the loop and starts its thread. *out is released by loop_stop(). */
int loop_start(loop **out, genai_error *err);

/*
 * Stops the loop: new posts fail with GENAI_ECANCELLED, queued messages run,
 * handles still open are closed, the thread is joined and l is freed. Must
 * not be called from the loop thread. Accepts NULL.
 */
void loop_stop(loop *l);

/* Queues fn(l, arg) to run on the loop thread. Any thread. Returns 0,
 * -ENOMEM, or GENAI_ECANCELLED once loop_stop has begun (fn will not run; the
 * caller still owns arg). */
int loop_post(loop *l, loop_fn fn, void *arg);

/*
 * Runs fn(l, arg, c) on the loop thread and blocks until it calls
 * loop_complete(c, result); returns result. Called on the loop thread itself
 * it runs fn inline, and fn must then complete before returning (a deferred
 * completion would deadlock). Returns GENAI_ECANCELLED when the loop is
 * stopping, -ENOMEM when the message cannot be queued.
 */
int loop_call_wait(loop *l, loop_call_fn fn, void *arg);

/* Hands the result to the thread waiting in loop_call_wait. Exactly once. */
void loop_complete(loop_completion *c, int result);

/* The libuv loop, for creating handles. Loop thread only. */
uv_loop_t *loop_uv(loop *l);

/* True when called on l's loop thread. */
int loop_on_thread(const loop *l);

#endif
