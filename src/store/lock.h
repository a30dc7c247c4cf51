/*
 * lock.h - advisory file locks that keep two processes off the same download.
 *
 * A lock is an flock(2)-ed file ("<target>.lock") opened close-on-exec. The
 * kernel drops it when the holder exits or is killed, so a crashed pull never
 * leaves a held lock behind.
 *
 * The lock file exists only while somebody holds or waits for it: the holder
 * unlinks it before it lets go. That would race with a process that opened
 * the file and is about to lock it, so store_lock_acquire checks, once it has
 * the lock, that the path still names the file it locked (same device and
 * inode); if not, the file was unlinked under it and it starts over on a new
 * one. Two holders at once would need two files both linked at the path,
 * which cannot be. A process killed while holding leaves its lock file (the
 * kernel drops the flock, not the name); the next holder removes it.
 */
#ifndef GENAI_STORE_LOCK_H
#define GENAI_STORE_LOCK_H

#include "core/error.h"

#include <stdatomic.h>

typedef struct store_lock {
    int fd;     /* -1 when not held */
    char *path; /* the lock file, owned; NULL when not held */
} store_lock;

#define STORE_LOCK_INIT                                                                            \
    {                                                                                              \
        -1, NULL                                                                                   \
    }

/* Called (about every 100 ms) while another process holds the lock. */
typedef void (*store_lock_wait_fn)(void *userdata);

/*
 * Takes an exclusive lock on path (created if missing). When another process
 * holds it, calls on_wait once and retries every 100 ms until it is free or
 * *cancel (optional) becomes non-zero (GENAI_ECANCELLED). The poll interval
 * is a compromise: flock has no timed or interruptible wait without signals.
 * Returns 0 when taken at once, 1 after waiting; lk is written only then.
 */
int store_lock_acquire(store_lock *lk, const char *path, const atomic_int *cancel,
                       store_lock_wait_fn on_wait, void *userdata, genai_error *err);

/* Takes the lock only when it is free now: GENAI_EBUSY while another process
 * holds it. */
int store_lock_try(store_lock *lk, const char *path, genai_error *err);

/* Removes the lock file and releases the lock; accepts a lock not held. */
void store_lock_release(store_lock *lk);

#endif
