/*
 * digest.h - SHA-256 for the model store (OpenSSL libcrypto EVP).
 *
 * Downloads hash their partial file behind the writer (store_sha256_range,
 * through hasher.h), and `genai add` hashes local files whole
 * (store_sha256_file). Digests travel as 64 lowercase hex characters plus a
 * NUL.
 */
#ifndef GENAI_STORE_DIGEST_H
#define GENAI_STORE_DIGEST_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

#define STORE_SHA256_HEX 65 /* 64 hex digits and a NUL */

typedef struct store_sha256 {
    void *ctx; /* EVP_MD_CTX *, owned */
} store_sha256;

/* Starts a new hash in h; 0 or -ENOMEM. Release with store_sha256_free. */
int store_sha256_init(store_sha256 *h);
/* Adds n bytes; 0 or GENAI_EINTERNAL when libcrypto fails. */
int store_sha256_update(store_sha256 *h, const void *bytes, size_t n);
/* Writes the digest as lowercase hex into hex and restarts h for new data. */
int store_sha256_final(store_sha256 *h, char hex[STORE_SHA256_HEX]);
/* Releases the context; accepts NULL and a zeroed struct. */
void store_sha256_free(store_sha256 *h);

/* Hashes bytes [off, off + len) of the open file fd into h, mapped (read
 * with pread where the file cannot be mapped). Fails with GENAI_ECORRUPT
 * when the file is shorter than off + len. Only for a file no other process
 * may truncate meanwhile (a download's partial, under the store's lock): a
 * mapped page past a new end of file raises SIGBUS. */
int store_sha256_range(store_sha256 *h, int fd, uint64_t off, uint64_t len, genai_error *err);

/* Hashes the first len bytes of fd into h with pread, safe on a file that
 * changes meanwhile. Fails with GENAI_ECORRUPT when the file is shorter. */
int store_sha256_fd(store_sha256 *h, int fd, uint64_t len, genai_error *err);

/* Hashes the whole file at path; writes the digest and (optional) size. */
int store_sha256_file(const char *path, char hex[STORE_SHA256_HEX], uint64_t *size_out,
                      genai_error *err);

/* True when s is exactly 64 hex digits (either case). */
int store_sha256_is_hex(const char *s);

/* Copies a 64-digit hex digest to out in lowercase; GENAI_EBAD_ARG if s is not one. */
int store_sha256_normalize(const char *s, char out[STORE_SHA256_HEX]);

#endif
