/*
 * test_sys_parse.c - the /proc, sysfs and cgroup text parsers (src/sys/parse.c)
 * on real-looking input and on broken input.
 */
#include "cmocka_all.h"

#include "sys/parse.h"

#include <errno.h>
#include <string.h>

#define S(lit) lit, sizeof(lit) - 1

static void test_meminfo_ok(void **state)
{
    (void)state;
    probe_host_memory m;
    memset(&m, 0, sizeof(m));
    const char text[] = "MemTotal:       16384000 kB\nMemFree:  100 kB\n"
                        "MemAvailable:   12000000 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n"
                        "HugePages_Total:       0\n";
    assert_int_equal(probe_parse_meminfo(S(text), &m), 0);
    assert_true(m.status.ok);
    assert_int_equal(m.total, 16384000ull * 1024);
    assert_int_equal(m.available, 12000000ull * 1024); /* MemAvailable, not MemFree */
    assert_int_equal(m.swap_total, 0);
    assert_int_equal(m.known, PROBE_MEM_TOTAL | PROBE_MEM_AVAILABLE | PROBE_MEM_SWAP_TOTAL |
                                  PROBE_MEM_SWAP_FREE);
}

static void test_meminfo_bad(void **state)
{
    (void)state;
    probe_host_memory m;
    memset(&m, 0, sizeof(m));
    /* No MemAvailable (a pre-3.14 kernel): partial, with a reason. */
    assert_int_equal(probe_parse_meminfo(S("MemTotal: 1000 kB\nMemFree: 10 kB\n"), &m),
                     GENAI_ECORRUPT);
    assert_false(m.status.ok);
    assert_int_equal(m.known, PROBE_MEM_TOTAL);
    assert_int_equal(m.total, 1024000);
    assert_non_null(strstr(m.status.reason, "MemAvailable"));
    /* Garbage value, wrong unit, overflow, truncated line. */
    memset(&m, 0, sizeof(m));
    assert_int_equal(probe_parse_meminfo(S("MemTotal: abc kB\nMemAvailable: 5 MB\n"), &m),
                     GENAI_ECORRUPT);
    assert_int_equal(m.known, 0);
    assert_non_null(strstr(m.status.reason, "malformed"));
    memset(&m, 0, sizeof(m));
    assert_int_equal(
        probe_parse_meminfo(S("MemTotal: 99999999999999999999 kB\nMemAvailable: 1 kB\n"), &m),
        GENAI_ECORRUPT);
    assert_int_equal(m.known, PROBE_MEM_AVAILABLE);
    memset(&m, 0, sizeof(m));
    assert_int_equal(probe_parse_meminfo(S("MemTotal: 18446744073709551 kB\nMemAvail"), &m),
                     GENAI_ECORRUPT);
    assert_int_equal(m.known, 0); /* 18446744073709551 * 1024 overflows */
    memset(&m, 0, sizeof(m));
    assert_int_equal(probe_parse_meminfo("", 0, &m), GENAI_ECORRUPT);
}

static void test_cpuinfo_x86(void **state)
{
    (void)state;
    const char text[] = "processor\t: 0\nmodel name\t: Test CPU\nphysical id\t: 0\n"
                        "core id\t\t: 0\nflags\t\t: fpu sse avx avx2 fma f16c\n\n"
                        "processor\t: 1\nmodel name\t: Test CPU\nphysical id\t: 0\n"
                        "core id\t\t: 0\nflags\t\t: fpu sse avx avx2 fma f16c\n\n"
                        "processor\t: 2\nmodel name\t: Test CPU\nphysical id\t: 1\n"
                        "core id\t\t: 0\nflags\t\t: fpu sse avx avx2 fma f16c\n";
    probe_cpu c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(probe_parse_cpuinfo(S(text), &c), 0);
    assert_string_equal(c.model, "Test CPU");
    assert_int_equal(c.logical, 3);
    assert_int_equal(c.physical, 2); /* (0,0) twice, (1,0) once: last block has no blank line */
    assert_true(c.avx && c.avx2 && c.fma && c.f16c);
    assert_false(c.avx512f);
    assert_false(c.neon);
}

static void test_cpuinfo_words(void **state)
{
    (void)state;
    probe_cpu c;
    memset(&c, 0, sizeof(c));
    /* "avx512" words must not set avx/avx2 by prefix. */
    assert_int_equal(probe_parse_cpuinfo(S("processor: 0\nflags: avx512f avx512bw\n"), &c), 0);
    assert_true(c.avx512f);
    assert_false(c.avx);
    assert_false(c.avx2);
    assert_int_equal(c.physical, 0);
    assert_string_equal(c.model, "");
    memset(&c, 0, sizeof(c));
    assert_int_equal(probe_parse_cpuinfo(S("processor : 0\nFeatures : fp asimd crc32\n"
                                           "CPU implementer : 0x41\nCPU part : 0xd08\n"),
                                         &c),
                     0);
    assert_true(c.neon);
    assert_string_equal(c.model, "ARM implementer 0x41 part 0xd08");
    memset(&c, 0, sizeof(c));
    assert_int_equal(probe_parse_cpuinfo(S("garbage\x01\x02 no colon\n::::\n"), &c),
                     GENAI_ECORRUPT);
    assert_int_equal(c.logical, 0);
}

static void test_cpu_list(void **state)
{
    (void)state;
    uint32_t n = 99;
    assert_int_equal(probe_parse_cpu_list(S("0-3,8,10-11\n"), &n), 0);
    assert_int_equal(n, 7);
    assert_int_equal(probe_parse_cpu_list(S("0\n"), &n), 0);
    assert_int_equal(n, 1);
    n = 99;
    assert_int_equal(probe_parse_cpu_list(S("0-\n"), &n), GENAI_ECORRUPT);
    assert_int_equal(probe_parse_cpu_list(S("3-1"), &n), GENAI_ECORRUPT);
    assert_int_equal(probe_parse_cpu_list(S("0,"), &n), GENAI_ECORRUPT);
    assert_int_equal(probe_parse_cpu_list(S("a"), &n), GENAI_ECORRUPT);
    assert_int_equal(probe_parse_cpu_list(S(""), &n), GENAI_ECORRUPT);
    assert_int_equal(probe_parse_cpu_list(S("0-99999999"), &n), GENAI_ECORRUPT);
    assert_int_equal(n, 99); /* untouched on failure */
}

static void test_proc_cgroup(void **state)
{
    (void)state;
    probe_cgroup_paths p;
    assert_int_equal(probe_parse_proc_cgroup(S("0::/user.slice/a.scope\n"), &p), 0);
    assert_true(p.has_v2);
    assert_false(p.has_memory);
    assert_string_equal(p.v2, "/user.slice/a.scope");
    assert_int_equal(probe_parse_proc_cgroup(S("11:cpu,cpuacct:/x\n4:memory:/docker/ab:c\n"
                                               "1:name=systemd:/\n0::/\n"),
                                             &p),
                     0);
    assert_true(p.has_memory && p.has_cpu && p.has_v2);
    assert_string_equal(p.memory, "/docker/ab:c"); /* ':' inside the path is kept */
    assert_string_equal(p.cpu, "/x");
    /* "cpuset" or "cpuacct" alone is not "cpu". */
    assert_int_equal(probe_parse_proc_cgroup(S("3:cpuset:/\n2:cpuacct:/\n"), &p), 0);
    assert_false(p.has_cpu);
    assert_int_equal(probe_parse_proc_cgroup(S("garbage\n"), &p), GENAI_ECORRUPT);
    assert_int_equal(probe_parse_proc_cgroup(S("x::/\n"), &p), GENAI_ECORRUPT);
    assert_int_equal(probe_parse_proc_cgroup(S("0::relative\n"), &p), GENAI_ECORRUPT);
}

static void test_mountinfo(void **state)
{
    (void)state;
    const char text[] =
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw shared:15 - cgroup cgroup rw,cpu,cpuacct\n"
        "36 30 0:32 /docker/x /sys/fs/cgroup/my\\040mem rw shared:16 master:2 - cgroup cgroup "
        "rw,memory\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
    probe_mount m;
    assert_int_equal(probe_parse_mountinfo(S(text), "cgroup", "memory", &m), 1);
    assert_string_equal(m.root, "/docker/x");
    assert_string_equal(m.point, "/sys/fs/cgroup/my mem");
    assert_int_equal(probe_parse_mountinfo(S(text), "cgroup", "cpu", &m), 1);
    assert_string_equal(m.point, "/sys/fs/cgroup/cpu,cpuacct");
    assert_int_equal(probe_parse_mountinfo(S(text), "cgroup2", NULL, &m), 1);
    assert_string_equal(m.point, "/sys/fs/cgroup/unified");
    assert_int_equal(probe_parse_mountinfo(S(text), "cgroup", "pids", &m), 0);
    assert_int_equal(probe_parse_mountinfo(S("1 2 3\n"), "cgroup2", NULL, &m), GENAI_ECORRUPT);
    assert_int_equal(probe_parse_mountinfo(S("1 2 3 / /x rw shared:1\n"), "cgroup2", NULL, &m),
                     GENAI_ECORRUPT); /* no " - " separator */

    char dir[256];
    assert_int_equal(probe_cgroup_dir(&m, "/a/b", dir, sizeof(dir)), 0);
    assert_string_equal(dir, "/sys/fs/cgroup/unified/a/b");
    assert_int_equal(probe_cgroup_dir(&m, "/", dir, sizeof(dir)), 0);
    assert_string_equal(dir, "/sys/fs/cgroup/unified");
    probe_mount c = {"/docker/x", "/sys/fs/cgroup/memory"};
    assert_int_equal(probe_cgroup_dir(&c, "/docker/x", dir, sizeof(dir)), 0);
    assert_string_equal(dir, "/sys/fs/cgroup/memory");
    assert_int_equal(probe_cgroup_dir(&c, "/docker/x/y", dir, sizeof(dir)), 0);
    assert_string_equal(dir, "/sys/fs/cgroup/memory/y");
    assert_int_equal(probe_cgroup_dir(&c, "/docker/xy", dir, sizeof(dir)), GENAI_ENOT_FOUND);
    assert_int_equal(probe_cgroup_dir(&c, "/other", dir, sizeof(dir)), GENAI_ENOT_FOUND);
    assert_int_equal(probe_cgroup_dir(&c, "/docker/x/y", dir, 8), -ENAMETOOLONG);
}

static void test_cgroup_values(void **state)
{
    (void)state;
    uint64_t v = 0, q = 0, p = 0;
    assert_int_equal(probe_parse_cgroup_value(S("max\n"), &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(probe_parse_cgroup_value(S("4294967296\n"), &v), 0);
    assert_true(v == 4294967296ull);
    assert_int_equal(probe_parse_cgroup_value(S("9223372036854771712\n"), &v), 0);
    assert_true(v == UINT64_MAX); /* v1 "no limit" */
    assert_int_equal(probe_parse_cgroup_value(S("12x34\n"), &v), GENAI_ECORRUPT);
    assert_int_equal(probe_parse_cgroup_value(S("-1\n"), &v), GENAI_ECORRUPT);
    assert_int_equal(probe_parse_cgroup_value(S(""), &v), GENAI_ECORRUPT);
    assert_int_equal(probe_parse_cgroup_value(S("maxx"), &v), GENAI_ECORRUPT);

    assert_int_equal(probe_parse_cpu_max(S("max 100000\n"), &q, &p), 0);
    assert_true(q == UINT64_MAX);
    assert_true(p == 100000);
    assert_int_equal(probe_parse_cpu_max(S("150000 100000\n"), &q, &p), 0);
    assert_true(q == 150000);
    assert_int_equal(probe_parse_cpu_max(S("150000 0\n"), &q, &p), GENAI_ECORRUPT);
    assert_int_equal(probe_parse_cpu_max(S("150000\n"), &q, &p), GENAI_ECORRUPT);
    assert_int_equal(probe_parse_cpu_max(S("x 100\n"), &q, &p), GENAI_ECORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meminfo_ok),  cmocka_unit_test(test_meminfo_bad),
        cmocka_unit_test(test_cpuinfo_x86), cmocka_unit_test(test_cpuinfo_words),
        cmocka_unit_test(test_cpu_list),    cmocka_unit_test(test_proc_cgroup),
        cmocka_unit_test(test_mountinfo),   cmocka_unit_test(test_cgroup_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
