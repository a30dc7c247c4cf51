/*
 * discover.c - executable discovery for llama-server and llama-fit-params
 * (see discover.h for the search order).
 *
 * PATH entries that are empty or relative are skipped: POSIX reads them as
 * the current directory, and a daemon must not run whatever binary happens to
 * sit in its working directory.
 */
#include "llm/discover.h"

#include "core/alloc.h"
#include "core/paths.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 0 when path is a regular file we may execute, else a negative errno. */
static int check_exec(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EISDIR;
    if (access(path, X_OK) != 0)
        return -errno;
    return 0;
}

static int take_explicit(const char *path, const char *what, char **out, genai_error *err)
{
    int rc = check_exec(path);
    if (rc < 0)
        return err_set(err, GENAI_EBAD_ARG, "%s '%s' is not an executable file: %s", what, path,
                       genai_strerror(rc));
    char *copy = mem_strdup(path);
    if (copy == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    *out = copy;
    return 0;
}

/* Searches the absolute entries of PATH for name. 1 and *out on success, 0
 * when not found, negative on allocation failure. */
static int search_path(const char *name, char **out)
{
    const char *path = getenv("PATH");
    if (path == NULL)
        return 0;
    const char *p = path;
    while (*p != '\0') {
        const char *colon = strchr(p, ':');
        size_t n = colon != NULL ? (size_t)(colon - p) : strlen(p);
        if (n > 0 && p[0] == '/' && n < PATHS_MAX) {
            char dir[PATHS_MAX], full[PATHS_MAX];
            memcpy(dir, p, n);
            dir[n] = '\0';
            if (paths_join(full, sizeof(full), dir, name) == 0 && check_exec(full) == 0) {
                char *copy = mem_strdup(full);
                if (copy == NULL)
                    return -ENOMEM;
                *out = copy;
                return 1;
            }
        }
        if (colon == NULL)
            break;
        p = colon + 1;
    }
    return 0;
}

int llm_find_server(const char *explicit_path, char **out, genai_error *err)
{
    if (explicit_path != NULL && explicit_path[0] != '\0')
        return take_explicit(explicit_path, "configured llama-server", out, err);
    const char *env = getenv(LLM_SERVER_ENV);
    if (env != NULL && env[0] != '\0')
        return take_explicit(env, LLM_SERVER_ENV, out, err);
    int rc = search_path("llama-server", out);
    if (rc < 0)
        return err_set(err, rc, "out of memory");
    if (rc == 0)
        return err_set(err, GENAI_ENOT_FOUND,
                       "llama-server not found: set %s or add its directory to PATH",
                       LLM_SERVER_ENV);
    return 0;
}

int llm_find_fit_params(const char *explicit_path, const char *server_path, char **out,
                        genai_error *err)
{
    if (explicit_path != NULL && explicit_path[0] != '\0')
        return take_explicit(explicit_path, "configured llama-fit-params", out, err);
    const char *env = getenv(LLM_FIT_PARAMS_ENV);
    if (env != NULL && env[0] != '\0')
        return take_explicit(env, LLM_FIT_PARAMS_ENV, out, err);
    if (server_path != NULL) {
        const char *slash = strrchr(server_path, '/');
        if (slash != NULL && (size_t)(slash - server_path) < PATHS_MAX) {
            char dir[PATHS_MAX], full[PATHS_MAX];
            size_t n = slash == server_path ? 1 : (size_t)(slash - server_path);
            memcpy(dir, server_path, n);
            dir[n] = '\0';
            if (paths_join(full, sizeof(full), dir, "llama-fit-params") == 0 &&
                check_exec(full) == 0) {
                char *copy = mem_strdup(full);
                if (copy == NULL)
                    return err_set(err, -ENOMEM, "out of memory");
                *out = copy;
                return 0;
            }
        }
    }
    int rc = search_path("llama-fit-params", out);
    if (rc < 0)
        return err_set(err, rc, "out of memory");
    if (rc == 0)
        return err_set(err, GENAI_ENOT_FOUND,
                       "llama-fit-params not found: set %s, install it next to llama-server or "
                       "add its directory to PATH",
                       LLM_FIT_PARAMS_ENV);
    return 0;
}
