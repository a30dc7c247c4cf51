/*
 * isolate.c - port picking, API keys and the child's environment (see
 * isolate.h for why each exists).
 */
#include "llm/isolate.h"

#include "core/alloc.h"
#include "core/paths.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int llm_port_range_validate(uint32_t lo, uint32_t hi, genai_error *err)
{
    if (lo < LLM_PORT_FLOOR || hi > 65535u || lo > hi)
        return err_set(err, GENAI_EBAD_ARG,
                       "port range %u-%u is invalid (must lie within %u-65535, low <= high)", lo,
                       hi, LLM_PORT_FLOOR);
    return 0;
}

/* Parses "A<ws>B" with 1 <= A <= B <= 65535. */
static int parse_range(const char *text, uint32_t *a, uint32_t *b)
{
    uint32_t v[2] = {0, 0};
    const char *p = text;
    for (int i = 0; i < 2; i++) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p < '0' || *p > '9')
            return -1;
        while (*p >= '0' && *p <= '9') {
            v[i] = v[i] * 10 + (uint32_t)(*p - '0');
            if (v[i] > 65535)
                return -1;
            p++;
        }
    }
    if (v[0] == 0 || v[0] > v[1])
        return -1;
    *a = v[0];
    *b = v[1];
    return 0;
}

void llm_port_range_default(const char *ephemeral_text, llm_port_range *out)
{
    uint32_t lo = LLM_PORT_PRIVATE_LO, hi = LLM_PORT_PRIVATE_HI, a, b;
    if (ephemeral_text != NULL && parse_range(ephemeral_text, &a, &b) == 0 && a <= hi && b >= lo) {
        /* Keep the larger of the two pieces left outside [a, b]. */
        uint32_t below = a > lo ? a - lo : 0; /* lo .. a-1 */
        uint32_t above = b < hi ? hi - b : 0; /* b+1 .. hi */
        if (above >= below && above > 0)
            lo = b + 1;
        else if (below > 0)
            hi = a - 1;
    }
    out->lo = (uint16_t)lo;
    out->hi = (uint16_t)hi;
}

void llm_port_range_system(llm_port_range *out)
{
    char *text = NULL;
    if (paths_read_file("/proc/sys/net/ipv4/ip_local_port_range", 256, &text, NULL, NULL) < 0)
        text = NULL;
    llm_port_range_default(text, out);
    mem_free(text);
}

/* 0 when 127.0.0.1:port can be bound and listened on now. */
static int try_port(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* No SO_REUSEADDR: a port in TIME_WAIT is refused too, which only makes
     * the test stricter than the child's bind. */
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 1) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

int llm_port_pick(const llm_port_range *r, uint16_t *out, genai_error *err)
{
    int rc = llm_port_range_validate(r->lo, r->hi, err);
    if (rc < 0)
        return rc;
    uint32_t span = (uint32_t)r->hi - r->lo + 1, start = 0;
    if (getrandom(&start, sizeof(start), 0) != (ssize_t)sizeof(start))
        start = (uint32_t)getpid();
    uint32_t tries = span < 4096 ? span : 4096;
    for (uint32_t i = 0; i < tries; i++) {
        uint16_t port = (uint16_t)(r->lo + (start + i) % span);
        rc = try_port(port);
        if (rc == 0) {
            *out = port;
            return 0;
        }
        if (rc != -EADDRINUSE && rc != -EACCES)
            return err_errno(err, -rc, "cannot test port %u on 127.0.0.1", port);
    }
    return err_set(err, -EADDRINUSE, "no free loopback port in %u-%u after %u tries", r->lo, r->hi,
                   tries);
}

int llm_api_key_new(char out[LLM_API_KEY_LEN + 1], genai_error *err)
{
    unsigned char raw[LLM_API_KEY_BYTES];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return err_errno(err, errno, "getrandom");
        }
        got += (size_t)n;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[LLM_API_KEY_LEN] = '\0';
    return 0;
}

/* 1 when entry is "NAME=..." or exactly "NAME". */
static int is_var(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && (entry[n] == '=' || entry[n] == '\0');
}

int llm_env_is_scrubbed(const char *entry)
{
    return strncmp(entry, "LLAMA_ARG_", 10) == 0 || strncmp(entry, "AIP_", 4) == 0 ||
           is_var(entry, "LLAMA_API_KEY") || is_var(entry, "HF_TOKEN");
}

/* Length of the NAME part of "NAME=value". */
static size_t name_len(const char *entry)
{
    const char *eq = strchr(entry, '=');
    return eq != NULL ? (size_t)(eq - entry) : strlen(entry);
}

static int overridden(const char *entry, const char *const *set)
{
    size_t n = name_len(entry);
    for (const char *const *s = set; s != NULL && *s != NULL; s++)
        if (name_len(*s) == n && strncmp(*s, entry, n) == 0)
            return 1;
    return 0;
}

void llm_env_free(char **env)
{
    if (env == NULL)
        return;
    for (char **p = env; *p != NULL; p++)
        mem_free(*p);
    mem_free(env);
}

int llm_env_build(const char *const *base, const char *home_dir, const char *const *set,
                  char ***out, genai_error *err)
{
    if (home_dir == NULL || home_dir[0] != '/')
        return err_set(err, GENAI_EBAD_ARG, "child home directory must be an absolute path");
    char config[PATHS_MAX], ini[PATHS_MAX];
    if (paths_join(config, sizeof(config), home_dir, ".config") < 0 ||
        paths_join(ini, sizeof(ini), config, "llama.cpp/config.ini") < 0)
        return err_set(err, GENAI_EBAD_ARG, "child home directory path is too long");
    struct stat st;
    if (stat(ini, &st) == 0)
        return err_set(err, GENAI_EBAD_ARG,
                       "%s exists; llama-server would read it, so genai refuses to use this home",
                       ini);

    size_t n = 0;
    for (const char *const *b = base; b != NULL && *b != NULL; b++)
        n++;
    for (const char *const *s = set; s != NULL && *s != NULL; s++) {
        if (strchr(*s, '=') == NULL)
            return err_set(err, GENAI_EBAD_ARG, "environment entry '%s' has no '='", *s);
        if (is_var(*s, "HOME") || is_var(*s, "XDG_CONFIG_HOME"))
            return err_set(err, GENAI_EBAD_ARG,
                           "environment entry '%s' would replace the "
                           "child's controlled home",
                           *s);
        n++;
    }
    char **env = mem_calloc(n + 3, sizeof(*env));
    if (env == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    size_t k = 0;
    int rc = 0;
    for (const char *const *b = base; b != NULL && *b != NULL; b++) {
        if (llm_env_is_scrubbed(*b) || is_var(*b, "HOME") || is_var(*b, "XDG_CONFIG_HOME") ||
            strchr(*b, '=') == NULL || overridden(*b, set))
            continue;
        if ((env[k++] = mem_strdup(*b)) == NULL)
            goto oom;
    }
    size_t hl = strlen("HOME=") + strlen(home_dir) + 1;
    size_t cl = strlen("XDG_CONFIG_HOME=") + strlen(config) + 1;
    if ((env[k] = mem_alloc(hl)) == NULL)
        goto oom;
    snprintf(env[k++], hl, "HOME=%s", home_dir);
    if ((env[k] = mem_alloc(cl)) == NULL)
        goto oom;
    snprintf(env[k++], cl, "XDG_CONFIG_HOME=%s", config);
    for (const char *const *s = set; s != NULL && *s != NULL; s++)
        if ((env[k++] = mem_strdup(*s)) == NULL)
            goto oom;
    *out = env;
    return 0;
oom:
    rc = err_set(err, -ENOMEM, "out of memory");
    llm_env_free(env);
    return rc;
}
