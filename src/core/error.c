/*
 * error.c - error codes, names, messages and the detail object.
 *
 * The domain codes come from GENAI_ERRNO_MAP in genai.h, so the enum, the
 * names and the messages cannot drift apart. System errors are negative errno
 * values and are described by the C library.
 */
#include "core/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *genai_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define XX(name, value, msg)                                                                       \
    case value:                                                                                    \
        return msg;
        GENAI_ERRNO_MAP(XX)
#undef XX
    default:
        break;
    }
    if (err < 0 && err > GENAI_E__FIRST) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
        const char *s = strerrordesc_np(-err);
        if (s != NULL)
            return s;
#else
        return strerror(-err);
#endif
    }
    return "unknown error";
}

const char *genai_err_name(int err)
{
    switch (err) {
    case 0:
        return "OK";
#define XX(name, value, msg)                                                                       \
    case value:                                                                                    \
        return "GENAI_E" #name;
        GENAI_ERRNO_MAP(XX)
#undef XX
    default:
        break;
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    if (err < 0 && err > GENAI_E__FIRST) {
        const char *s = strerrorname_np(-err);
        if (s != NULL)
            return s;
    }
#endif
    return "UNKNOWN";
}

const char *genai_version(void)
{
#define GX_STR2(x) #x
#define GX_STR(x) GX_STR2(x)
    return GX_STR(GENAI_VERSION_MAJOR) "." GX_STR(GENAI_VERSION_MINOR) "." GX_STR(
        GENAI_VERSION_PATCH);
#undef GX_STR
#undef GX_STR2
}

void genai_error_clear(genai_error *err)
{
    if (err == NULL)
        return;
    err->code = 0;
    err->detail[0] = '\0';
}

int err_is_domain(int code)
{
    return code <= GENAI_E__FIRST && code >= GENAI_E__LAST;
}

int err_setv(genai_error *err, int code, const char *fmt, va_list ap)
{
    if (err == NULL)
        return code;
    err->code = code;
    if (fmt == NULL) {
        err->detail[0] = '\0';
        return code;
    }
    int n = vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
    if (n < 0)
        err->detail[0] = '\0';
    return code;
}

int err_set(genai_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int err_prefix(genai_error *err, const char *fmt, ...)
{
    if (err == NULL)
        return 0;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    if (n < 0)
        return err->code;
    /* Shift the old detail right and put "prefix: " in front, truncating the
     * tail when the whole does not fit. */
    size_t plen = (size_t)n < sizeof(prefix) ? (size_t)n : sizeof(prefix) - 1;
    size_t olen = strlen(err->detail);
    size_t sep = olen > 0 ? 2 : 0;
    size_t cap = sizeof(err->detail) - 1;
    if (plen > cap)
        plen = cap;
    if (sep > cap - plen)
        sep = cap - plen;
    if (olen > cap - plen - sep)
        olen = cap - plen - sep;
    memmove(err->detail + plen + sep, err->detail, olen);
    memcpy(err->detail, prefix, plen);
    memcpy(err->detail + plen, ": ", sep);
    err->detail[plen + sep + olen] = '\0';
    return err->code;
}

int err_errno(genai_error *err, int errno_value, const char *fmt, ...)
{
    int code = errno_value > 0 ? -errno_value : (errno_value < 0 ? errno_value : -EIO);
    if (err == NULL)
        return code;
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (n < 0)
        what[0] = '\0';
    return err_set(err, code, "%s: %s", what, genai_strerror(code));
}
