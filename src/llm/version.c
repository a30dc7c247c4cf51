/*
 * version.c - parse llama-server's --version output and /props build_info.
 *
 * Format (contracts/llama-server.md §1, b10470):
 *   version: 0.1.1-dev (build 10470, commit 34af94cd9)
 *   built with GNU 12.2.0 for Linux x86_64
 * A packaged build names no git commit: Debian's llama.cpp-tools (b11669)
 * prints "version: 0.7.0 (build 11669, commit Debian)" and build_info
 * "b11669-Debian".
 * The text comes from a child process, so it is treated as untrusted: the
 * input is bounded, every field has a length cap, and numbers are parsed with
 * overflow checks.
 */
#include "llm/version.h"

#include <string.h>

/* Reads a decimal uint32 at *p, advancing past it. -1 when there is no digit
 * or the value overflows. */
static int read_u32(const char **p, const char *end, uint32_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (s >= end || *s < '0' || *s > '9')
        return -1;
    while (s < end && *s >= '0' && *s <= '9') {
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX)
            return -1;
        s++;
    }
    *p = s;
    *out = (uint32_t)v;
    return 0;
}

/* A commit as llama.cpp's build prints it: the short hash from git, or,
 * built outside a git checkout, whatever the builder passed as
 * LLAMA_BUILD_COMMIT ("unknown" upstream; Debian's package prints
 * "Debian"). */
static int is_commit_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '.' || c == '_' || c == '+' || c == '~';
}

/* Reads 1..40 commit characters into out (41 bytes). */
static int read_commit(const char **p, const char *end, char out[41])
{
    const char *s = *p;
    size_t n = 0;
    while (s + n < end && is_commit_char(s[n]))
        n++;
    if (n < 1 || n > 40)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    *p = s + n;
    return 0;
}

static int match(const char **p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
        return -1;
    *p += n;
    return 0;
}

/* Parses one line "version: V (build N, commit H)" into v. */
static int parse_line(const char *s, const char *end, llm_version *v)
{
    if (match(&s, end, "version: ") < 0)
        return -1;
    const char *ver = s;
    while (s < end && *s != ' ')
        s++;
    size_t vlen = (size_t)(s - ver);
    if (vlen == 0 || vlen >= sizeof(v->version))
        return -1;
    memcpy(v->version, ver, vlen);
    v->version[vlen] = '\0';
    if (match(&s, end, " (build ") < 0 || read_u32(&s, end, &v->build) < 0)
        return -1;
    if (match(&s, end, ", commit ") < 0 || read_commit(&s, end, v->commit) < 0)
        return -1;
    if (match(&s, end, ")") < 0)
        return -1;
    return 0;
}

int llm_version_parse(const char *text, size_t len, llm_version *out, genai_error *err)
{
    if (text == NULL)
        return err_set(err, GENAI_EBAD_ARG, "no --version text");
    if (len > LLM_VERSION_TEXT_MAX)
        len = LLM_VERSION_TEXT_MAX;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl != NULL ? nl : end;
        if (eol > p && eol[-1] == '\r')
            eol--;
        llm_version v;
        memset(&v, 0, sizeof(v));
        if (parse_line(p, eol, &v) == 0) {
            *out = v;
            return 0;
        }
        p = nl != NULL ? nl + 1 : end;
    }
    return err_set(err, GENAI_ECORRUPT,
                   "llama-server --version printed no 'version: V (build N, commit H)' line");
}

int llm_build_info_parse(const char *text, llm_version *out, genai_error *err)
{
    if (text == NULL)
        return err_set(err, GENAI_EBAD_ARG, "no build_info");
    const char *s = text, *end = text + strnlen(text, 128);
    llm_version v;
    memset(&v, 0, sizeof(v));
    if (match(&s, end, "b") < 0 || read_u32(&s, end, &v.build) < 0 || match(&s, end, "-") < 0 ||
        read_commit(&s, end, v.commit) < 0 || s != end)
        return err_set(err, GENAI_ECORRUPT, "build_info '%.64s' is not 'b<N>-<commit>'", text);
    *out = v;
    return 0;
}

int llm_build_has(uint32_t build, enum llm_feature feature)
{
    if (build == 0)
        build = LLM_BUILD_VERIFIED;
    switch (feature) {
    case LLM_FEAT_LOAD_MODE:
    case LLM_FEAT_NO_UI:
        return build >= LLM_BUILD_VERIFIED;
    }
    return 0;
}
