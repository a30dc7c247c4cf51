/*
 * test_reserve_api.c - genai_reserve and genai_reservation_release through a
 * library context (include/genai.h), with the 8 GiB fake GPU and nothing
 * loaded: memory that is free already is confirmed at once with nothing
 * moved, from two threads at the same time; releasing twice says the second
 * time that the reservation has ended; requests that can never be met are
 * refused with their codes. The reservation that moves the LLM aside is
 * pinned through the daemon (test_reserve_http.c) and the book itself
 * (tests/orch/test_budget.c).
 */
#include "cmocka_all.h"

#include "genai.h"

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GIB (1ull << 30)
#define MIB (1ull << 20)

static char g_dir[64];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static genai *open_ctx(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/genai-rsvapi-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    char p[128];
    snprintf(p, sizeof(p), "%s/gpu.json", g_dir);
    FILE *f = fopen(p, "we");
    assert_non_null(f);
    fputs("{\"devices\":[{\"name\":\"Fake GPU 8GB\",\"total_bytes\":8589934592}]}\n", f);
    fclose(f);
    setenv("GENAI_FAKE_GPU", p, 1);
    setenv("GENAI_HOME", g_dir, 1);
    genai *g = NULL;
    genai_error e;
    genai_error_clear(&e);
    if (genai_new(NULL, &g, &e) != 0)
        fail_msg("genai_new: %s", e.detail);
    return g;
}

static void close_ctx(genai *g)
{
    genai_free(g);
    unsetenv("GENAI_FAKE_GPU");
    nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

typedef struct th {
    genai *g;
    int device;
    int rc;
    uint64_t id;
} th;

static void *reserve_thread(void *arg)
{
    th *t = arg;
    genai_error e;
    t->rc = genai_reserve(t->g, t->device, 64 * MIB, 60, "a thread", 10000, &t->id, &e);
    return NULL;
}

static void test_reserve_free_memory(void **state)
{
    (void)state;
    genai *g = open_ctx();
    th a = {g, GENAI_RESERVE_HOST, -1, 0}, b = {g, 0, -1, 0};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, reserve_thread, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, reserve_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_true(a.id > 0 && b.id > 0 && a.id != b.id);
    genai_error e;
    assert_int_equal(genai_reservation_release(g, a.id, &e), 0);
    assert_int_equal(genai_reservation_release(g, b.id, &e), 0);
    assert_int_equal(genai_reservation_release(g, b.id, &e), GENAI_ENOT_FOUND);
    close_ctx(g);
}

static void test_reserve_refused(void **state)
{
    (void)state;
    genai *g = open_ctx();
    genai_error e;
    uint64_t id = 0;
    assert_int_equal(genai_reserve(g, 0, 0, 10, "x", 0, &id, &e), GENAI_EBAD_ARG);
    assert_int_equal(genai_reserve(g, 0, GIB, 0, "x", 0, &id, &e), GENAI_EBAD_ARG);
    assert_int_equal(genai_reserve(g, 3, GIB, 10, "x", 0, &id, &e), GENAI_EBAD_ARG);
    assert_int_equal(genai_reserve(g, -2, GIB, 10, "x", 0, &id, &e), GENAI_EBAD_ARG);
    assert_int_equal(genai_reserve(g, 0, 9 * GIB, 10, "x", 0, &id, &e), GENAI_ENO_FIT);
    assert_int_equal(genai_reserve(g, 0, GIB, 10, NULL, 0, NULL, &e), GENAI_EBAD_ARG);
    assert_int_equal(id, 0);
    assert_int_equal(genai_reservation_release(g, 12345, &e), GENAI_ENOT_FOUND);
    assert_int_equal(genai_reservation_release(NULL, 1, &e), GENAI_EBAD_ARG);
    close_ctx(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserve_free_memory),
        cmocka_unit_test(test_reserve_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
