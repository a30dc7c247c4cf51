/*
 * binary.c - program discovery and --version parsing (see binary.h).
 */
#include "image/binary.h"

#include "core/paths.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_executable_file(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EACCES;
    if (access(path, X_OK) != 0)
        return -errno;
    return 0;
}

static int take_path(const char *path, const char *what, char *out, size_t outsz, genai_error *err)
{
    int rc = is_executable_file(path);
    if (rc < 0)
        return err_errno(err, -rc, "%s '%s' is not an executable file", what, path);
    size_t n = strlen(path);
    if (n >= outsz)
        return err_set(err, -ENAMETOOLONG, "%s '%s' is too long", what, path);
    memcpy(out, path, n + 1);
    return 0;
}

int img_bin_find(const char *configured, const char *env_var, const char *name, char *out,
                 size_t outsz, genai_error *err)
{
    if (configured != NULL && configured[0] != '\0')
        return take_path(configured, "configured program", out, outsz, err);
    if (env_var != NULL) {
        const char *v = getenv(env_var);
        if (v != NULL && v[0] != '\0')
            return take_path(v, env_var, out, outsz, err);
    }
    if (name == NULL || name[0] == '\0' || strchr(name, '/') != NULL)
        return err_set(err, GENAI_EBAD_ARG, "bad program name");
    const char *path = getenv("PATH");
    if (path == NULL || path[0] == '\0')
        path = "/usr/local/bin:/usr/bin:/bin";
    char cand[PATHS_MAX];
    const char *p = path;
    while (*p != '\0') {
        const char *colon = strchr(p, ':');
        size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
        /* An empty PATH element means the current directory; genai never runs
         * a program from wherever it happens to be started. */
        if (dlen > 0 && p[0] == '/' && dlen < sizeof(cand)) {
            char dir[PATHS_MAX];
            memcpy(dir, p, dlen);
            dir[dlen] = '\0';
            if (paths_join(cand, sizeof(cand), dir, name) == 0 && is_executable_file(cand) == 0) {
                if (strlen(cand) >= outsz)
                    return err_set(err, -ENAMETOOLONG, "'%s' is too long", cand);
                memcpy(out, cand, strlen(cand) + 1);
                return 0;
            }
        }
        if (colon == NULL)
            break;
        p = colon + 1;
    }
    return err_set(err, GENAI_ENOT_FOUND,
                   "%s not found: no configured path, %s not set, not in PATH; build "
                   "stable-diffusion.cpp or set %s",
                   name, env_var ? env_var : "no variable", env_var ? env_var : "its path");
}

static int all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return n > 0;
}

/* Parses one line (not NUL-terminated, len bytes) or returns -1. */
static int parse_line(const char *line, size_t len, img_sd_version *v)
{
    static const char prefix[] = "stable-diffusion.cpp version ";
    static const char sep[] = ", commit ";
    size_t plen = sizeof(prefix) - 1, slen = sizeof(sep) - 1;
    if (len < plen || memcmp(line, prefix, plen) != 0)
        return -1;
    const char *tok = line + plen;
    size_t rest = len - plen;
    const char *comma = NULL;
    for (size_t i = 0; i + slen <= rest; i++) {
        if (memcmp(tok + i, sep, slen) == 0) {
            comma = tok + i;
            break;
        }
    }
    if (comma == NULL)
        return -1;
    size_t tlen = (size_t)(comma - tok);
    const char *commit = comma + slen;
    size_t clen = len - (size_t)(commit - line);
    while (clen > 0 && (commit[clen - 1] == ' ' || commit[clen - 1] == '\r'))
        clen--;
    if (clen == 0 || clen >= sizeof(v->commit) || !all_hex(commit, clen))
        return -1;

    memset(v, 0, sizeof(*v));
    if (tlen > 0 && tok[tlen - 1] == '+') {
        v->modified = 1;
        tlen--;
    }
    /* <branch>-<count>-<sha7>: split at the last two dashes, so a branch name
     * may itself contain dashes. */
    const char *d2 = NULL, *d1 = NULL;
    for (size_t i = tlen; i-- > 0;) {
        if (tok[i] == '-') {
            if (d2 == NULL) {
                d2 = tok + i;
            } else {
                d1 = tok + i;
                break;
            }
        }
    }
    if (d1 == NULL || d1 == tok)
        return -1;
    size_t blen = (size_t)(d1 - tok);
    size_t nlen = (size_t)(d2 - d1 - 1);
    size_t hlen = tlen - (size_t)(d2 + 1 - tok);
    if (blen >= sizeof(v->branch) || nlen == 0 || nlen > 9 || hlen >= sizeof(v->sha7) ||
        !all_hex(d2 + 1, hlen))
        return -1;
    uint32_t count = 0;
    for (size_t i = 0; i < nlen; i++) {
        char c = d1[1 + i];
        if (c < '0' || c > '9')
            return -1;
        count = count * 10 + (uint32_t)(c - '0');
    }
    memcpy(v->branch, tok, blen);
    v->count = count;
    memcpy(v->sha7, d2 + 1, hlen);
    memcpy(v->commit, commit, clen);
    return 0;
}

int img_version_parse(const char *text, size_t len, img_sd_version *out, genai_error *err)
{
    size_t off = 0;
    while (text != NULL && off < len) {
        size_t end = off;
        while (end < len && text[end] != '\n')
            end++;
        img_sd_version v;
        if (parse_line(text + off, end - off, &v) == 0) {
            *out = v;
            return 0;
        }
        off = end + 1;
    }
    return err_set(err, GENAI_ECORRUPT,
                   "no 'stable-diffusion.cpp version <branch>-<count>-<sha>, commit <sha>' "
                   "line in the --version output");
}

int img_version_at_least(const img_sd_version *v, uint32_t count)
{
    return v == NULL || v->count == 0 || v->count >= count;
}
