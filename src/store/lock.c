/*
 * lock.c - flock-based inter-process locks that clean up after themselves
 * (see lock.h for why the inode check makes unlinking safe).
 */
#include "store/lock.h"

#include "core/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* 1: fd is still the file linked at path; 0: it was unlinked or replaced. */
static int still_linked(int fd, const char *path, genai_error *err)
{
    struct stat held, named;
    if (fstat(fd, &held) != 0)
        return err_errno(err, errno, "cannot stat lock file %s", path);
    if (stat(path, &named) != 0) {
        if (errno == ENOENT)
            return 0;
        return err_errno(err, errno, "cannot stat lock file %s", path);
    }
    return held.st_dev == named.st_dev && held.st_ino == named.st_ino;
}

/* Locks fd without blocking, polling every 100 ms while another process
 * holds it if wait is set. 0 when taken (*waited tells whether it had to),
 * GENAI_EBUSY when busy and not waiting, GENAI_ECANCELLED, or an errno. */
static int lock_fd(int fd, const char *path, int wait, const atomic_int *cancel,
                   store_lock_wait_fn on_wait, void *userdata, int *waited, genai_error *err)
{
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK)
            return err_errno(err, errno, "cannot lock %s", path);
        if (!wait)
            return err_set(err, GENAI_EBUSY, "%s is held by another process", path);
        if (cancel != NULL && atomic_load(cancel))
            return err_set(err, GENAI_ECANCELLED, "cancelled while waiting for %s", path);
        if (on_wait != NULL && !*waited)
            on_wait(userdata);
        *waited = 1;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* store_lock_acquire and store_lock_try: open, lock, check the path still
 * names the locked file, else start over on the new one. */
static int take(store_lock *lk, const char *path, int wait, const atomic_int *cancel,
                store_lock_wait_fn on_wait, void *userdata, genai_error *err)
{
    int waited = 0, rc;
    char *copy = mem_strdup(path);
    if (copy == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    for (;;) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            rc = err_errno(err, errno, "cannot open lock file %s", path);
            break;
        }
        rc = lock_fd(fd, path, wait, cancel, on_wait, userdata, &waited, err);
        if (rc == 0)
            rc = still_linked(fd, path, err);
        if (rc > 0) {
            lk->fd = fd;
            lk->path = copy;
            return waited;
        }
        close(fd);
        if (rc < 0)
            break;
        /* The holder we waited for removed the file: lock the new one. */
    }
    mem_free(copy);
    return rc;
}

int store_lock_acquire(store_lock *lk, const char *path, const atomic_int *cancel,
                       store_lock_wait_fn on_wait, void *userdata, genai_error *err)
{
    return take(lk, path, 1, cancel, on_wait, userdata, err);
}

int store_lock_try(store_lock *lk, const char *path, genai_error *err)
{
    return take(lk, path, 0, NULL, NULL, NULL, err);
}

void store_lock_release(store_lock *lk)
{
    if (lk == NULL || lk->fd < 0)
        return;
    /* Unlink while still holding: a process that opened the old file wakes
     * on an unlinked inode, sees that, and starts over. */
    if (lk->path != NULL)
        (void)unlink(lk->path);
    close(lk->fd); /* closing the last fd of the open file drops the flock */
    mem_free(lk->path);
    lk->fd = -1;
    lk->path = NULL;
}
