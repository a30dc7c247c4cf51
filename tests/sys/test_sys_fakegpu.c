/*
 * test_sys_fakegpu.c - the fake GPU file (src/sys/fakegpu.c) and the probe's
 * fake provider: parsing, late release with exact times, allocation and
 * release through the file, dead and zombie pids, and several processes
 * writing at once.
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "sys/fakegpu.h"
#include "testutil/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024ull * 1024)
#define GIB (1024ull * MIB)

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/genai-fakegpu-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/gpu.json", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char p[192];
    unlink(path);
    snprintf(p, sizeof(p), "%s.lock", path);
    unlink(p);
    rmdir(dir);
    return 0;
}

static void write_text(const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void make_gpu(uint64_t total, uint64_t base_used, uint64_t delay_ms)
{
    char text[512];
    snprintf(text, sizeof(text),
             "{\"driver_version\":\"fake-1.0\",\"cuda_version\":\"12.4\",\"devices\":"
             "[{\"name\":\"Fake GPU\",\"uuid\":\"GPU-fake-0\",\"pci_bus_id\":\"00000000:01:00.0\","
             "\"total_bytes\":%llu,\"base_used_bytes\":%llu,\"release_delay_ms\":%llu}]}",
             (unsigned long long)total, (unsigned long long)base_used,
             (unsigned long long)delay_ms);
    write_text(text);
}

static uint64_t used_now(void)
{
    fakegpu_state st;
    assert_int_equal(fakegpu_read(path, &st, NULL), 0);
    uint64_t u = st.devices[0].used_bytes;
    fakegpu_state_free(&st);
    return u;
}

/* Polls until used_now() == want or the deadline passes; returns the time
 * it took in ms, or -1 at the deadline. */
static long wait_used(uint64_t want, uint64_t deadline_ms)
{
    uint64_t start = tu_now_ms();
    struct timespec tick = {0, 5 * 1000 * 1000};
    while (tu_now_ms() - start < deadline_ms) {
        if (used_now() == want)
            return (long)(tu_now_ms() - start);
        nanosleep(&tick, NULL);
    }
    return -1;
}

static void test_parse_and_format(void **state)
{
    (void)state;
    const char text[] = "{\"driver_version\":\"fake-1.0\",\"cuda_version\":\"12.4\","
                        "\"devices\":[{\"name\":\"Fake GPU 8GB\",\"uuid\":\"GPU-fake-0\","
                        "\"pci_bus_id\":\"00000000:01:00.0\",\"total_bytes\":8589934592,"
                        "\"base_used_bytes\":100,\"release_delay_ms\":250}],"
                        "\"allocations\":[{\"device\":0,\"pid\":1234,\"bytes\":7060000000,"
                        "\"released_at_ms\":0}]}";
    fakegpu_state st, again;
    assert_int_equal(fakegpu_parse(text, sizeof(text) - 1, &st, NULL), 0);
    assert_string_equal(st.cuda_version, "12.4");
    assert_int_equal(st.n_devices, 1);
    assert_int_equal(st.devices[0].total_bytes, 8589934592ull);
    assert_int_equal(st.devices[0].release_delay_ms, 250);
    assert_int_equal(st.n_allocs, 1);
    assert_int_equal(st.allocs[0].pid, 1234);
    char *out = fakegpu_format(&st);
    assert_non_null(out);
    assert_int_equal(fakegpu_parse(out, strlen(out), &again, NULL), 0);
    assert_string_equal(again.devices[0].name, "Fake GPU 8GB");
    assert_int_equal(again.devices[0].base_used_bytes, 100);
    assert_int_equal(again.allocs[0].bytes, 7060000000ull);
    mem_free(out);
    fakegpu_state_free(&again);
    fakegpu_state_free(&st);
    fakegpu_state_free(NULL);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "[]",
        "{}",
        "{\"devices\":{}}",
        "{\"devices\":[{}]}",
        "{\"devices\":[{\"total_bytes\":-1}]}",
        "{\"devices\":[{\"total_bytes\":1e3}]}",
        "{\"devices\":[{\"total_bytes\":\"8\"}]}",
        "{\"devices\":[{\"total_bytes\":10,\"base_used_bytes\":11}]}",
        "{\"devices\":[{\"total_bytes\":10}],\"allocations\":[{\"device\":1,\"pid\":1,"
        "\"bytes\":1}]}",
        "{\"devices\":[{\"total_bytes\":10}],\"allocations\":[{\"device\":0,\"pid\":0,"
        "\"bytes\":1}]}",
        "{\"devices\":[{\"total_bytes\":10}],\"allocations\":[{\"device\":0,\"pid\":4294967296,"
        "\"bytes\":1}]}",
        "{\"devices\":[{\"total_bytes\":10}],\"allocations\":\"x\"}",
        "{\"devices\":[{\"total_bytes\":10,\"total_bytes\":11}]}",
        "{\"devices\":[{\"total_bytes\":10,\"name\":\"" /* unterminated */,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fakegpu_state st;
        genai_error e;
        int rc = fakegpu_parse(bad[i], strlen(bad[i]), &st, &e);
        if (rc != GENAI_ECORRUPT)
            fail_msg("input %zu: rc %d, want GENAI_ECORRUPT", i, rc);
        assert_true(e.detail[0] != '\0');
    }
    /* Too many devices. */
    char big[8192] = "{\"devices\":[";
    for (int i = 0; i < 65; i++)
        strncat(big, i ? ",{\"total_bytes\":1}" : "{\"total_bytes\":1}",
                sizeof(big) - strlen(big) - 1);
    strncat(big, "]}", sizeof(big) - strlen(big) - 1);
    fakegpu_state st;
    assert_int_equal(fakegpu_parse(big, strlen(big), &st, NULL), GENAI_ETOO_LARGE);
}

static int alive_7_only(int32_t pid)
{
    return pid == 7;
}

static void test_account_late_release(void **state)
{
    (void)state;
    fakegpu_device dev = {"d", "u", "p", 1000, 10, 500, 0};
    fakegpu_alloc allocs[3] = {
        {0, 7, 100, 0},    /* held by a live pid */
        {0, 8, 200, 0},    /* held by a dead pid: stamped at "now" */
        {0, 9, 300, 1000}, /* released at t=1000, counts until t=1500 */
    };
    fakegpu_state st = {"", "", &dev, 1, allocs, 3};
    assert_int_equal(fakegpu_account(&st, 1499, alive_7_only), 1);
    assert_int_equal(st.n_allocs, 3);
    assert_int_equal(st.allocs[1].released_at_ms, 1499);
    assert_int_equal(dev.used_bytes, 10 + 100 + 200 + 300);
    /* At 1500 the release of pid 9 takes effect; pid 8's at 1999. */
    assert_int_equal(fakegpu_account(&st, 1500, alive_7_only), 1);
    assert_int_equal(st.n_allocs, 2);
    assert_int_equal(dev.used_bytes, 10 + 100 + 200);
    assert_int_equal(fakegpu_account(&st, 1998, alive_7_only), 0); /* nothing changed */
    assert_int_equal(dev.used_bytes, 310);
    assert_int_equal(fakegpu_account(&st, 1999, alive_7_only), 1);
    assert_int_equal(st.n_allocs, 1);
    assert_int_equal(dev.used_bytes, 110);
}

static void test_alloc_and_release(void **state)
{
    (void)state;
    make_gpu(8 * GIB, 0, 0);
    int32_t me = (int32_t)getpid();
    uint64_t free_b = 0;
    assert_int_equal(fakegpu_try_alloc(path, 0, me, 7 * GIB, &free_b, NULL), 0);
    assert_int_equal(free_b, 8 * GIB); /* what was free before */
    genai_error e;
    assert_int_equal(fakegpu_try_alloc(path, 0, me, 2 * GIB, &free_b, &e), GENAI_ENO_FIT);
    assert_int_equal(free_b, 1 * GIB);
    assert_non_null(strstr(e.detail, "cannot allocate"));
    assert_int_equal(fakegpu_try_alloc(path, 3, me, 1, &free_b, NULL), GENAI_ENO_DEVICE);
    assert_int_equal(fakegpu_try_alloc(path, 0, me, 512 * MIB, NULL, NULL), 0);
    assert_int_equal(used_now(), 7 * GIB + 512 * MIB);

    /* The probe's fake provider sees the device and this process. */
    probe_options o;
    memset(&o, 0, sizeof(o));
    o.fake_gpu_path = path;
    probe_snapshot s;
    assert_int_equal(probe_take(&o, &s, NULL), 0);
    assert_int_equal(s.n_providers, 1);
    assert_string_equal(s.providers[0].name, "fake");
    assert_true(s.providers[0].status.ok);
    assert_string_equal(s.providers[0].runtime_version, "12.4");
    assert_int_equal(s.n_gpus, 1);
    assert_int_equal(s.gpus[0].vendor, PROBE_GPU_FAKE);
    assert_int_equal(s.gpus[0].total, 8 * GIB);
    assert_int_equal(s.gpus[0].free, 512 * MIB);
    assert_int_equal(s.gpus[0].n_processes, 1);
    assert_int_equal(s.gpus[0].processes[0].pid, me);
    assert_int_equal(s.gpus[0].processes[0].used_bytes, 7 * GIB + 512 * MIB);
    assert_string_equal(probe_runtime_variant(&s, NULL), "cuda");
    probe_snapshot_free(&s);

    assert_int_equal(fakegpu_release(path, me, NULL), 2);
    assert_int_equal(fakegpu_release(path, me, NULL), 0);
    assert_int_equal(used_now(), 0);

    /* A missing or broken file is a provider reason, not a failure. */
    write_text("{broken");
    assert_int_equal(probe_take(&o, &s, NULL), 0);
    assert_false(s.providers[0].status.ok);
    assert_int_equal(s.n_gpus, 0);
    probe_snapshot_free(&s);
    assert_int_equal(fakegpu_try_alloc(path, 0, me, 1, NULL, NULL), GENAI_ECORRUPT);
}

static void test_late_release_in_time(void **state)
{
    (void)state;
    make_gpu(8 * GIB, 1 * GIB, 300);
    int32_t me = (int32_t)getpid();
    assert_int_equal(fakegpu_try_alloc(path, 0, me, 4 * GIB, NULL, NULL), 0);
    uint64_t released = tu_now_ms();
    assert_int_equal(fakegpu_release(path, me, NULL), 1);
    /* Still counted right after the release... */
    assert_int_equal(used_now(), 5 * GIB);
    /* ...and given back about release_delay_ms later. */
    long waited = wait_used(1 * GIB, 5000);
    assert_true(waited >= 0);
    assert_true(tu_now_ms() - released >= 290); /* wall and monotonic clocks: small slack */
}

static void test_dead_and_zombie_pids(void **state)
{
    (void)state;
    make_gpu(8 * GIB, 0, 200);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        /* A double that allocates and dies without releasing (as with SIGKILL). */
        int rc = fakegpu_try_alloc(path, 0, (int32_t)getpid(), 3 * GIB, NULL, NULL);
        _exit(rc == 0 ? 0 : 1);
    }
    /* Not reaped yet: a zombie, which no longer holds GPU memory. */
    for (int i = 0; i < 500 && fakegpu_pid_alive((int32_t)child); i++) {
        struct timespec tick = {0, 2 * 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    assert_false(fakegpu_pid_alive((int32_t)child));
    assert_true(fakegpu_pid_alive((int32_t)getpid()));
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The first reader stamps the release; the memory comes back late. */
    assert_int_equal(used_now(), 3 * GIB);
    fakegpu_state st;
    assert_int_equal(fakegpu_read(path, &st, NULL), 0);
    assert_int_equal(st.n_allocs, 1);
    assert_true(st.allocs[0].released_at_ms != 0);
    fakegpu_state_free(&st);
    assert_true(wait_used(0, 5000) >= 0);
}

#define WORKERS 4
#define ALLOCS 30
#define UNIT 1000ull

static void test_concurrent_writers(void **state)
{
    (void)state;
    make_gpu(1 * GIB, 0, 0);
    int go[2], ready[2];
    assert_int_equal(pipe2(go, O_CLOEXEC), 0);
    assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
    pid_t kids[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        kids[w] = fork();
        assert_true(kids[w] >= 0);
        if (kids[w] != 0)
            continue;
        close(go[1]);
        close(ready[0]);
        int32_t me = (int32_t)getpid();
        int ok = 1;
        /* Allocate ALLOCS units (reading now and then, which may rewrite
         * the file too), release them all, allocate half as many again. */
        for (int i = 0; i < ALLOCS; i++) {
            ok &= fakegpu_try_alloc(path, 0, me, UNIT * (uint64_t)(w + 1), NULL, NULL) == 0;
            if (i % 3 == 0) {
                fakegpu_state st;
                ok &= fakegpu_read(path, &st, NULL) == 0;
                fakegpu_state_free(&st);
            }
        }
        ok &= fakegpu_release(path, me, NULL) == ALLOCS;
        for (int i = 0; i < ALLOCS / 2; i++)
            ok &= fakegpu_try_alloc(path, 0, me, UNIT * (uint64_t)(w + 1), NULL, NULL) == 0;
        char byte = ok ? 'y' : 'n';
        ok &= write(ready[1], &byte, 1) == 1;
        /* Stay alive (holding the memory) until the parent has checked. */
        ok &= read(go[0], &byte, 1) >= 0;
        _exit(ok ? 0 : 1);
    }
    close(go[0]);
    close(ready[1]);
    for (int w = 0; w < WORKERS; w++) {
        char byte = 0;
        assert_int_equal(read(ready[0], &byte, 1), 1);
        assert_int_equal(byte, 'y');
    }
    /* No allocation lost to a concurrent read-modify-write. */
    uint64_t want = 0;
    for (int w = 0; w < WORKERS; w++)
        want += (ALLOCS / 2) * UNIT * (uint64_t)(w + 1);
    fakegpu_state st;
    assert_int_equal(fakegpu_read(path, &st, NULL), 0);
    assert_int_equal(st.n_allocs, WORKERS * (ALLOCS / 2));
    assert_int_equal(st.devices[0].used_bytes, want);
    fakegpu_state_free(&st);
    close(go[1]);
    for (int w = 0; w < WORKERS; w++) {
        int status;
        assert_int_equal(waitpid(kids[w], &status, 0), kids[w]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    close(ready[0]);
    /* The workers are gone: the next reader stamps them, no delay: all free. */
    assert_int_equal(used_now(), 0);
    assert_int_equal(fakegpu_read(path, &st, NULL), 0);
    assert_int_equal(st.n_allocs, 0);
    fakegpu_state_free(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_format),     cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_account_late_release), cmocka_unit_test(test_alloc_and_release),
        cmocka_unit_test(test_late_release_in_time), cmocka_unit_test(test_dead_and_zombie_pids),
        cmocka_unit_test(test_concurrent_writers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
