/*
 * paths.c - XDG directories and small filesystem helpers (see paths.h).
 */
#include "core/paths.h"

#include "core/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int paths_join(char *out, size_t outsz, const char *a, const char *b)
{
    size_t la = strlen(a);
    while (la > 1 && a[la - 1] == '/')
        la--;
    while (*b == '/')
        b++;
    int n = snprintf(out, outsz, "%.*s/%s", (int)la, a, b);
    if (n < 0 || (size_t)n >= outsz)
        return -ENAMETOOLONG;
    return 0;
}

static const char *abs_env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] != '/')
        return NULL;
    return v;
}

static int xdg_dir(char *out, const char *env, const char *home, const char *fallback)
{
    const char *base = abs_env(env);
    if (base != NULL)
        return paths_join(out, PATHS_MAX, base, "genai");
    char tmp[PATHS_MAX];
    int rc = paths_join(tmp, sizeof(tmp), home, fallback);
    if (rc < 0)
        return rc;
    return paths_join(out, PATHS_MAX, tmp, "genai");
}

int paths_resolve(genai_paths *out, genai_error *err)
{
    genai_paths p;
    int rc;
    const char *ghome = getenv("GENAI_HOME");
    if (ghome != NULL && ghome[0] != '\0') {
        if (ghome[0] != '/')
            return err_set(err, GENAI_EBAD_ARG, "GENAI_HOME must be an absolute path, got '%s'",
                           ghome);
        if ((rc = paths_join(p.data, PATHS_MAX, ghome, "data")) < 0 ||
            (rc = paths_join(p.config, PATHS_MAX, ghome, "config")) < 0 ||
            (rc = paths_join(p.cache, PATHS_MAX, ghome, "cache")) < 0 ||
            (rc = paths_join(p.runtime, PATHS_MAX, ghome, "run")) < 0)
            return err_set(err, rc, "GENAI_HOME is too long");
        *out = p;
        return 0;
    }
    const char *home = abs_env("HOME");
    if (home == NULL)
        return err_set(err, GENAI_EBAD_ARG,
                       "cannot place genai's files: neither GENAI_HOME nor HOME is an absolute "
                       "path");
    if ((rc = xdg_dir(p.data, "XDG_DATA_HOME", home, ".local/share")) < 0 ||
        (rc = xdg_dir(p.config, "XDG_CONFIG_HOME", home, ".config")) < 0 ||
        (rc = xdg_dir(p.cache, "XDG_CACHE_HOME", home, ".cache")) < 0)
        return err_set(err, rc, "a home or XDG directory path is too long");
    const char *rt = abs_env("XDG_RUNTIME_DIR");
    rc = rt != NULL ? paths_join(p.runtime, PATHS_MAX, rt, "genai")
                    : paths_join(p.runtime, PATHS_MAX, p.cache, "run");
    if (rc < 0)
        return err_set(err, rc, "runtime directory path is too long");
    *out = p;
    return 0;
}

int paths_mkdirs(const char *path, mode_t mode, genai_error *err)
{
    char tmp[PATHS_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(tmp))
        return err_set(err, -ENAMETOOLONG, "bad directory path '%s'", path);
    memcpy(tmp, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        char saved = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return err_errno(err, errno, "creating directory %s", tmp);
        tmp[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return err_errno(err, errno, "checking directory %s", path);
    if (!S_ISDIR(st.st_mode))
        return err_set(err, -ENOTDIR, "%s exists and is not a directory", path);
    return 0;
}

int paths_read_file(const char *path, size_t max_bytes, char **out, size_t *len_out,
                    genai_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_errno(err, errno, "opening %s", path);
    /* /proc and sysfs report st_size 0, so read until EOF instead of trusting it. */
    size_t cap = 4096, len = 0;
    char *buf = mem_alloc(cap);
    int rc = 0;
    if (buf == NULL) {
        rc = err_set(err, -ENOMEM, "reading %s", path);
        goto out_close;
    }
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max_bytes) {
                rc = err_set(err, GENAI_ETOO_LARGE, "%s is larger than %zu bytes", path, max_bytes);
                goto out_free;
            }
            char *nb = mem_realloc(buf, cap * 2);
            if (nb == NULL) {
                rc = err_set(err, -ENOMEM, "reading %s", path);
                goto out_free;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = err_errno(err, errno, "reading %s", path);
            goto out_free;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max_bytes) {
            rc = err_set(err, GENAI_ETOO_LARGE, "%s is larger than %zu bytes", path, max_bytes);
            goto out_free;
        }
    }
    buf[len] = '\0';
    close(fd);
    *out = buf;
    if (len_out != NULL)
        *len_out = len;
    return 0;
out_free:
    mem_free(buf);
out_close:
    close(fd);
    return rc;
}
