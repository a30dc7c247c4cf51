/*
 * lock.h - advisory file locks that keep two processes off the same download.
 *
 * A lock is an flock(2)-ed file ("<target>.lock") opened close-on-exec. The
 * kernel drops it when the holder exits or is killed, so a crashed pull never
 * leaves a stale lock behind. The lock file itself is left in place: removing
 * it would race with a process that has it open and is about to lock it.
 */
#ifndef GENAI_STORE_LOCK_H
#define GENAI_STORE_LOCK_H

#include "core/error.h"

#include <stdatomic.h>

typedef struct store_lock {
    int fd; /* -1 when not held */
} store_lock;

#define STORE_LOCK_INIT                                                                            \
    {                                                                                              \
        -1                                                                                         \
    }

/* Called (about every 100 ms) while another process holds the lock. */
typedef void (*store_lock_wait_fn)(void *userdata);

/*
 * Takes an exclusive lock on path (created if missing). When another process
 * holds it, calls on_wait once and retries every 100 ms until it is free or
 * *cancel (optional) becomes non-zero (GENAI_ECANCELLED). The poll interval
 * is a compromise: flock has no timed or interruptible wait without signals.
 */
int store_lock_acquire(store_lock *lk, const char *path, const atomic_int *cancel,
                       store_lock_wait_fn on_wait, void *userdata, genai_error *err);

/* Releases the lock (closing its fd); accepts a lock that is not held. */
void store_lock_release(store_lock *lk);

#endif
