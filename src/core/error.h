/*
 * error.h - internal helpers around genai_error (see include/genai.h).
 *
 * Convention: functions that can fail return int, 0 or positive on success and
 * a negative code on failure (negative errno or GENAI_E*). When they take a
 * genai_error *, they record the detail there; err may be NULL when the caller
 * does not want detail.
 */
#ifndef GENAI_CORE_ERROR_H
#define GENAI_CORE_ERROR_H

#include "genai.h"

#include <stdarg.h>

#if defined(__GNUC__)
#define GX_PRINTF(fmt_idx, va_idx) __attribute__((format(printf, fmt_idx, va_idx)))
#else
#define GX_PRINTF(fmt_idx, va_idx)
#endif

/* Records code and a formatted detail in err (if not NULL) and returns code,
 * so that failures read "return err_set(err, GENAI_ECORRUPT, ...)". */
int err_set(genai_error *err, int code, const char *fmt, ...) GX_PRINTF(3, 4);
int err_setv(genai_error *err, int code, const char *fmt, va_list ap) GX_PRINTF(3, 0);

/* Prepends "context: " to err->detail (keeping the code) and returns err->code,
 * or 0 when err is NULL. Used by callers to say where a failure happened. */
int err_prefix(genai_error *err, const char *fmt, ...) GX_PRINTF(2, 3);

/* Records -errno_value with "what: strerror" as detail; returns -errno_value. */
int err_errno(genai_error *err, int errno_value, const char *fmt, ...) GX_PRINTF(3, 4);

/* True when code is one of genai's domain codes. */
int err_is_domain(int code);

#endif
