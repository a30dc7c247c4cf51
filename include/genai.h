/*
 * genai.h - the public C API of genai, a runtime that supervises llama.cpp's
 * llama-server and stable-diffusion.cpp on one machine and shares its memory
 * between them.
 *
 * This is the only installed header. Every exported symbol starts with
 * "genai_". Functions that can fail return int: 0 or a positive value on
 * success, a negative code on failure. System errors are negative errno
 * values; genai's own errors live in the reserved range GENAI_E__FIRST ..
 * GENAI_E__LAST (below -30000, far from any errno).
 *
 * Ownership rules are written on each function.
 */
#ifndef GENAI_H
#define GENAI_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define GENAI_EXPORT __declspec(dllexport)
#elif defined(__GNUC__)
#define GENAI_EXPORT __attribute__((visibility("default")))
#else
#define GENAI_EXPORT
#endif

#define GENAI_VERSION_MAJOR 0
#define GENAI_VERSION_MINOR 1
#define GENAI_VERSION_PATCH 0

/*
 * Domain error codes. The table is an X-macro so that the enum, the names and
 * the messages come from one place: XX(NAME, value, "message").
 * Append new codes at the end; values are part of the ABI and never reused.
 */
#define GENAI_ERRNO_MAP(XX)                                                                        \
    XX(CORRUPT, -30001, "corrupt or malformed input")                                             \
    XX(UNSUPPORTED, -30002, "unsupported format or version")                                      \
    XX(NOT_FOUND, -30003, "not found")                                                            \
    XX(TOO_LARGE, -30004, "value exceeds a limit")                                                \
    XX(CHECKSUM, -30005, "checksum mismatch")                                                     \
    XX(NOT_READY, -30006, "process did not become ready")                                         \
    XX(NO_FIT, -30007, "does not fit in the available memory")                                    \
    XX(CHILD_EXITED, -30008, "child process exited unexpectedly")                                 \
    XX(TIMEOUT, -30009, "timed out")                                                              \
    XX(CANCELLED, -30010, "cancelled")                                                            \
    XX(BAD_ARG, -30011, "invalid argument")                                                       \
    XX(NO_DEVICE, -30012, "no such device or provider unavailable")                               \
    XX(PROVIDER, -30013, "hardware provider reported an error")                                   \
    XX(BUSY, -30014, "resource busy")                                                             \
    XX(UNAVAILABLE, -30015, "temporarily unavailable")                                            \
    XX(HTTP, -30016, "HTTP error")                                                                \
    XX(INTERNAL, -30017, "internal error")

enum genai_errno {
    GENAI_E__FIRST = -30000,
#define GENAI_XX_ENUM(name, value, msg) GENAI_E##name = (value),
    GENAI_ERRNO_MAP(GENAI_XX_ENUM)
#undef GENAI_XX_ENUM
    GENAI_E__LAST = -39999
};

/* Message for any error code (negative errno or GENAI_E*). Never NULL; the
 * returned string is static and must not be freed. */
GENAI_EXPORT const char *genai_strerror(int err);

/* Symbolic name ("ENOENT", "GENAI_ECORRUPT"); "UNKNOWN" when unknown. Static. */
GENAI_EXPORT const char *genai_err_name(int err);

/* The library version as "MAJOR.MINOR.PATCH". Static. */
GENAI_EXPORT const char *genai_version(void);

/*
 * Detail that goes with an error code: which file, which offset, the child's
 * last stderr lines. The caller owns the object (usually on its stack); genai
 * fills it on failure and leaves it untouched on success.
 */
#define GENAI_ERROR_DETAIL_MAX 2048
typedef struct genai_error {
    int code;                            /* 0, negative errno or GENAI_E* */
    char detail[GENAI_ERROR_DETAIL_MAX]; /* NUL-terminated; "" when none */
} genai_error;

/* Resets err to "no error". Accepts NULL. */
GENAI_EXPORT void genai_error_clear(genai_error *err);

#ifdef __cplusplus
}
#endif
#endif /* GENAI_H */
