/*
 * test_hasher.c - hashing a file one step behind its writer (hasher.h) and
 * hashing a range of a file (store_sha256_range): the digest of a file
 * written in uneven chunks, with a prefix already on disk, after a restart,
 * past the writer's lag limit, and the errors when the file is shorter than
 * what was published.
 */
#include "cmocka_all.h"

#include "testutil/testutil.h"

#include "store/digest.h"
#include "store/hasher.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fx {
    char dir[128];
    char path[256];
    int fd;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(tu_mkdtemp(f->dir, sizeof(f->dir), "hasher"), 0);
    snprintf(f->path, sizeof(f->path), "%s/file", f->dir);
    f->fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(f->fd >= 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    close(f->fd);
    tu_rm_rf(f->dir);
    free(f);
    return 0;
}

static void digest_of(const unsigned char *b, size_t n, char out[STORE_SHA256_HEX])
{
    store_sha256 h = {0};
    assert_int_equal(store_sha256_init(&h), 0);
    assert_int_equal(store_sha256_update(&h, b, n), 0);
    assert_int_equal(store_sha256_final(&h, out), 0);
    store_sha256_free(&h);
}

/* Writes b[from..to) in pieces of the given sizes (cycled), publishing each. */
/* Drains the hasher and checks the digest it built against want. */
static void assert_hashed(store_hasher *hs, store_sha256 *h, const char *want)
{
    genai_error e;
    char got[STORE_SHA256_HEX];
    assert_int_equal(store_hasher_drain(hs, &e), 0);
    assert_int_equal(store_sha256_final(h, got), 0);
    assert_string_equal(got, want);
}

static void write_published(struct fx *f, store_hasher *hs, const unsigned char *b, size_t from,
                            size_t to)
{
    static const size_t pieces[] = {1, 4095, 4097, 65536, 1 << 20, 3, 777777};
    size_t i = 0;
    while (from < to) {
        size_t n = pieces[i++ % (sizeof(pieces) / sizeof(pieces[0]))];
        if (n > to - from)
            n = to - from;
        assert_int_equal(pwrite(f->fd, b + from, n, (off_t)from), (ssize_t)n);
        genai_error e;
        assert_int_equal(store_hasher_wrote(hs, b + from, n, &e), 0);
        from += n;
    }
}

static void test_chunks_and_prefix(void **state)
{
    struct fx *f = *state;
    size_t len = (9u << 20) + 12345; /* more than one slice, not page aligned */
    unsigned char *b = malloc(len);
    assert_non_null(b);
    tu_fill(b, len, 7);
    char want[STORE_SHA256_HEX];
    digest_of(b, len, want);

    /* a third of it already on disk, as a resumed download has it */
    size_t have = len / 3;
    assert_int_equal(pwrite(f->fd, b, have, 0), (ssize_t)have);
    store_sha256 h = {0};
    assert_int_equal(store_sha256_init(&h), 0);
    store_hasher *hs = NULL;
    genai_error e;
    assert_int_equal(store_hasher_start(&hs, &h, f->fd, have, &e), 0);
    assert_int_equal(store_hasher_written(hs), have);
    write_published(f, hs, b, have, len);
    assert_hashed(hs, &h, want);
    assert_int_equal(store_hasher_written(hs), len);

    /* restart: an empty file, then other content */
    assert_int_equal(store_hasher_restart(hs, &e), 0);
    assert_int_equal(store_hasher_written(hs), 0);
    assert_int_equal(ftruncate(f->fd, 0), 0);
    tu_fill(b, len, 8);
    digest_of(b, len / 2, want);
    write_published(f, hs, b, 0, len / 2);
    assert_hashed(hs, &h, want);
    store_hasher_stop(hs);
    store_sha256_free(&h);
    free(b);
}

/* The writer runs ahead by more than the lag limit: it is held back, and
 * the digest is still right. */
static void test_writer_past_the_lag(void **state)
{
    struct fx *f = *state;
    size_t len = STORE_HASHER_LAG + (STORE_HASHER_LAG / 2);
    unsigned char *b = malloc(len);
    assert_non_null(b);
    tu_fill(b, len, 9);
    char want[STORE_SHA256_HEX];
    digest_of(b, len, want);
    store_sha256 h = {0};
    assert_int_equal(store_sha256_init(&h), 0);
    store_hasher *hs = NULL;
    genai_error e;
    assert_int_equal(store_hasher_start(&hs, &h, f->fd, 0, &e), 0);
    size_t step = 16u << 20;
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        assert_int_equal(pwrite(f->fd, b + off, n, (off_t)off), (ssize_t)n);
        assert_int_equal(store_hasher_wrote(hs, b + off, n, &e), 0);
    }
    assert_hashed(hs, &h, want);
    store_hasher_stop(hs);
    store_sha256_free(&h);
    free(b);
}

/* Bytes published that are not on disk: the thread's read fails, and the
 * writer hears of it with the detail (at the latest when draining). */
static void test_published_past_the_end(void **state)
{
    struct fx *f = *state;
    unsigned char b[8192];
    tu_fill(b, sizeof(b), 3);
    assert_int_equal(pwrite(f->fd, b, 4096, 0), 4096);
    store_sha256 h = {0};
    assert_int_equal(store_sha256_init(&h), 0);
    store_hasher *hs = NULL;
    genai_error e;
    assert_int_equal(store_hasher_start(&hs, &h, f->fd, 0, &e), 0);
    int rc = store_hasher_wrote(hs, b, sizeof(b), &e);
    if (rc == 0)
        rc = store_hasher_drain(hs, &e);
    assert_int_equal(rc, GENAI_ECORRUPT);
    assert_non_null(strstr(e.detail, "file ends at 4096 bytes"));
    assert_int_equal(store_hasher_drain(hs, &e), GENAI_ECORRUPT); /* stays failed */
    store_hasher_stop(hs);
    store_sha256_free(&h);

    /* and a prefix longer than the file fails at start when hashed inline,
     * or at the first drain on the thread */
    assert_int_equal(store_sha256_init(&h), 0);
    rc = store_hasher_start(&hs, &h, f->fd, 10000, &e);
    if (rc == 0) {
        rc = store_hasher_drain(hs, &e);
        store_hasher_stop(hs);
    }
    assert_int_equal(rc, GENAI_ECORRUPT);
    store_sha256_free(&h);
    store_hasher_stop(NULL);
}

static void test_range(void **state)
{
    struct fx *f = *state;
    size_t len = (8u << 20) * 2 + 5000; /* crosses mapping windows */
    unsigned char *b = malloc(len);
    assert_non_null(b);
    tu_fill(b, len, 11);
    assert_int_equal(pwrite(f->fd, b, len, 0), (ssize_t)len);
    static const size_t cuts[][2] = {
        {0, 1}, {1, 4095}, {4095, 2}, {12345, (8u << 20) + 3}, {(8u << 20) - 1, (8u << 20) + 5001}};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        char want[STORE_SHA256_HEX], got[STORE_SHA256_HEX];
        digest_of(b + cuts[i][0], cuts[i][1], want);
        store_sha256 h = {0};
        genai_error e;
        assert_int_equal(store_sha256_init(&h), 0);
        assert_int_equal(store_sha256_range(&h, f->fd, cuts[i][0], cuts[i][1], &e), 0);
        assert_int_equal(store_sha256_final(&h, got), 0);
        assert_string_equal(got, want);
        store_sha256_free(&h);
    }
    store_sha256 h = {0};
    genai_error e;
    assert_int_equal(store_sha256_init(&h), 0);
    assert_int_equal(store_sha256_range(&h, f->fd, len - 10, 11, &e), GENAI_ECORRUPT);
    assert_int_equal(store_sha256_range(&h, f->fd, UINT64_MAX, 2, &e), GENAI_EBAD_ARG);
    store_sha256_free(&h);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chunks_and_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_past_the_lag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_published_past_the_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
