/*
 * digest.c - SHA-256 through OpenSSL's EVP interface (see digest.h).
 *
 * The EVP context is kept behind a void pointer so that the rest of the store
 * does not include OpenSSL headers. Files are read with pread in 1 MiB blocks.
 */
#include "store/digest.h"

#include "core/alloc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIGEST_BLOCK (1u << 20)

int store_sha256_init(store_sha256 *h)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return -ENOMEM;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return GENAI_EINTERNAL;
    }
    h->ctx = ctx;
    return 0;
}

int store_sha256_update(store_sha256 *h, const void *bytes, size_t n)
{
    if (n == 0)
        return 0;
    return EVP_DigestUpdate(h->ctx, bytes, n) == 1 ? 0 : GENAI_EINTERNAL;
}

int store_sha256_final(store_sha256 *h, char hex[STORE_SHA256_HEX])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_DigestFinal_ex(h->ctx, md, &mdlen) != 1 || mdlen != 32)
        return GENAI_EINTERNAL;
    for (unsigned i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
    if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
        return GENAI_EINTERNAL;
    return 0;
}

void store_sha256_free(store_sha256 *h)
{
    if (h == NULL || h->ctx == NULL)
        return;
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}

int store_sha256_fd(store_sha256 *h, int fd, uint64_t len, genai_error *err)
{
    unsigned char *buf = mem_alloc(DIGEST_BLOCK);
    if (buf == NULL)
        return err_set(err, -ENOMEM, "out of memory hashing a file");
    int rc = 0;
    uint64_t off = 0;
    while (off < len) {
        size_t want = len - off < DIGEST_BLOCK ? (size_t)(len - off) : DIGEST_BLOCK;
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = err_errno(err, errno, "reading at offset %llu", (unsigned long long)off);
            goto out;
        }
        if (n == 0) {
            rc = err_set(err, GENAI_ECORRUPT, "file ends at %llu bytes, expected %llu",
                         (unsigned long long)off, (unsigned long long)len);
            goto out;
        }
        if ((rc = store_sha256_update(h, buf, (size_t)n)) < 0) {
            err_set(err, rc, "SHA-256 update failed");
            goto out;
        }
        off += (uint64_t)n;
    }
out:
    mem_free(buf);
    return rc;
}

int store_sha256_file(const char *path, char hex[STORE_SHA256_HEX], uint64_t *size_out,
                      genai_error *err)
{
    store_sha256 h = {0};
    struct stat st;
    char out[STORE_SHA256_HEX];
    int rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_errno(err, errno, "%s", path);
    if (fstat(fd, &st) != 0) {
        rc = err_errno(err, errno, "%s", path);
        goto close_fd;
    }
    if ((rc = store_sha256_init(&h)) < 0) {
        err_set(err, rc, "cannot start SHA-256");
        goto close_fd;
    }
    if ((rc = store_sha256_fd(&h, fd, (uint64_t)st.st_size, err)) < 0) {
        err_prefix(err, "%s", path);
        goto free_hash;
    }
    if ((rc = store_sha256_final(&h, out)) < 0) {
        err_set(err, rc, "SHA-256 failed");
        goto free_hash;
    }
    memcpy(hex, out, sizeof(out));
    if (size_out != NULL)
        *size_out = (uint64_t)st.st_size;
free_hash:
    store_sha256_free(&h);
close_fd:
    close(fd);
    return rc;
}

int store_sha256_is_hex(const char *s)
{
    if (s == NULL)
        return 0;
    for (int i = 0; i < 64; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return 0;
    }
    return s[64] == '\0';
}

int store_sha256_normalize(const char *s, char out[STORE_SHA256_HEX])
{
    if (!store_sha256_is_hex(s))
        return GENAI_EBAD_ARG;
    for (int i = 0; i < 64; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[64] = '\0';
    return 0;
}
