/*
 * logfile.c - the rotating per-process log (see logfile.h).
 */
#include "proc/logfile.h"

#include "core/alloc.h"
#include "core/log.h"
#include "core/paths.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

enum { LOGFILE_DEFAULT_MAX = 8 << 20, LOGFILE_MAX_KEEP = 2 };

static int open_current(proc_logfile *lf)
{
    lf->fd = open(lf->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (lf->fd < 0)
        return -errno;
    struct stat st;
    lf->size = fstat(lf->fd, &st) == 0 ? (size_t)st.st_size : 0;
    return 0;
}

int proc_logfile_open(proc_logfile *lf, const char *dir, const char *name, size_t max_bytes,
                      int keep, genai_error *err)
{
    memset(lf, 0, sizeof(*lf));
    lf->fd = -1;
    int rc = paths_mkdirs(dir, 0700, err);
    if (rc < 0)
        return rc;
    char path[PATHS_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s.log", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path) - 4) /* room for ".1"/".2" */
        return err_set(err, -ENAMETOOLONG, "log path for '%s' is too long", name);
    lf->path = mem_strdup(path);
    if (lf->path == NULL)
        return err_set(err, -ENOMEM, "allocating the log path");
    lf->max_bytes = max_bytes != 0 ? max_bytes : LOGFILE_DEFAULT_MAX;
    lf->keep = keep < 0 ? 0 : (keep > LOGFILE_MAX_KEEP ? LOGFILE_MAX_KEEP : keep);
    rc = open_current(lf);
    if (rc < 0) {
        err_errno(err, -rc, "opening %s", lf->path);
        mem_free(lf->path);
        lf->path = NULL;
        return rc;
    }
    return 0;
}

static void rotate(proc_logfile *lf)
{
    char from[PATHS_MAX], to[PATHS_MAX];
    close(lf->fd);
    lf->fd = -1;
    if (lf->keep == 0) {
        unlink(lf->path);
    } else {
        for (int k = lf->keep; k >= 1; k--) {
            if (k == 1)
                snprintf(from, sizeof(from), "%s", lf->path);
            else
                snprintf(from, sizeof(from), "%s.%d", lf->path, k - 1);
            snprintf(to, sizeof(to), "%s.%d", lf->path, k);
            if (rename(from, to) != 0 && errno != ENOENT)
                LOG_WARN("proc", "rotating %s: %s", from, strerror(errno));
        }
    }
    if (open_current(lf) < 0)
        LOG_WARN("proc", "reopening %s: %s; logging to it stops", lf->path, strerror(errno));
}

void proc_logfile_write(proc_logfile *lf, const char *prefix, const char *line, size_t len)
{
    if (lf == NULL || lf->fd < 0)
        return;
    size_t plen = strlen(prefix);
    size_t total = plen + len + 1;
    if (lf->size > 0 && lf->size + total > lf->max_bytes) {
        rotate(lf);
        if (lf->fd < 0)
            return;
    }
    struct iovec iov[3] = {{(void *)prefix, plen}, {(void *)line, len}, {"\n", 1}};
    ssize_t w = writev(lf->fd, iov, 3);
    if (w < 0) {
        LOG_WARN("proc", "writing %s: %s; logging to it stops", lf->path, strerror(errno));
        close(lf->fd);
        lf->fd = -1;
        return;
    }
    lf->size += (size_t)w;
}

void proc_logfile_close(proc_logfile *lf)
{
    if (lf == NULL)
        return;
    if (lf->fd >= 0)
        close(lf->fd);
    lf->fd = -1;
    mem_free(lf->path);
    lf->path = NULL;
}
