/*
 * lock.c - flock-based inter-process locks (see lock.h).
 */
#include "store/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

int store_lock_acquire(store_lock *lk, const char *path, const atomic_int *cancel,
                       store_lock_wait_fn on_wait, void *userdata, genai_error *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_errno(err, errno, "cannot open lock file %s", path);
    int waited = 0;
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK) {
            int e = errno;
            close(fd);
            return err_errno(err, e, "cannot lock %s", path);
        }
        if (cancel != NULL && atomic_load(cancel)) {
            close(fd);
            return err_set(err, GENAI_ECANCELLED, "cancelled while waiting for %s", path);
        }
        if (on_wait != NULL && !waited)
            on_wait(userdata);
        waited = 1;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    lk->fd = fd;
    return waited;
}

void store_lock_release(store_lock *lk)
{
    if (lk == NULL || lk->fd < 0)
        return;
    close(lk->fd); /* closing the last fd of the open file drops the flock */
    lk->fd = -1;
}
