/*
 * test_llm_launch.c - the argv builder, the child environment, the port
 * picker, API keys and binary discovery.
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "core/paths.h"
#include "llm/discover.h"
#include "llm/isolate.h"
#include "llm/launch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Joins argv with single spaces for readable comparisons. */
static void join(char **argv, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (char **p = argv; *p != NULL; p++) {
        int w = snprintf(out + n, cap - n, "%s%s", p == argv ? "" : " ", *p);
        assert_true(w > 0 && (size_t)w < cap - n);
        n += (size_t)w;
    }
}

static void base_launch(llm_launch *l)
{
    llm_launch_defaults(l);
    l->binary = "/opt/llama/llama-server";
    l->model = "/m/model-00001-of-00002.gguf";
    l->port = 61234;
    l->ctx = 8192;
    l->ngl = 33;
}

static void test_argv_defaults(void **state)
{
    (void)state;
    llm_launch l;
    base_launch(&l);
    char **argv = NULL;
    char buf[2048];
    assert_int_equal(llm_launch_argv(&l, 10470, &argv, NULL), 0);
    join(argv, buf, sizeof(buf));
    assert_string_equal(buf, "/opt/llama/llama-server -m /m/model-00001-of-00002.gguf "
                             "--host 127.0.0.1 --port 61234 -c 8192 -np 1 -kvu -ngl 33 -fa auto "
                             "-ctk f16 -ctv f16 -lm auto -cram 0 --fit off -lv 3 --no-ui");
    llm_argv_free(argv);
    llm_argv_free(NULL);
}

static void test_argv_full(void **state)
{
    (void)state;
    llm_launch l;
    base_launch(&l);
    const char *extra[] = {"--swa-full", "--jinja", NULL};
    l.api_key = "k";
    l.api_key_file = "/run/genai/key";
    l.alias = "qwen";
    l.parallel = 2;
    l.kv_unified = 0;
    l.ngl = LLM_NGL_ALL;
    l.fa = LLM_FA_ON;
    l.ctk = LLM_CACHE_Q8_0;
    l.ctv = LLM_CACHE_Q4_0;
    l.threads = 6;
    l.load_mode = LLM_LOAD_NONE;
    l.cache_ram_mib = -1;
    l.batch = 2048;
    l.ubatch = 512;
    l.verbosity = 4;
    l.sse_ping_s = 2;
    l.metrics = 1;
    l.extra = extra;
    char **argv = NULL;
    char buf[2048];
    assert_int_equal(llm_launch_argv(&l, 0, &argv, NULL), 0);
    join(argv, buf, sizeof(buf));
    assert_string_equal(buf, "/opt/llama/llama-server -m /m/model-00001-of-00002.gguf "
                             "--host 127.0.0.1 --port 61234 --api-key-file /run/genai/key "
                             "-a qwen -c 8192 -np 2 -no-kvu -ngl all -fa on -ctk q8_0 -ctv q4_0 "
                             "-b 2048 -ub 512 -t 6 -lm none -cram -1 --fit off -lv 4 "
                             "--sse-ping-interval 2 --metrics --no-ui --swa-full --jinja");
    llm_argv_free(argv);

    /* Without a key file the key goes on argv; older builds get the older
     * spellings. */
    l.api_key_file = NULL;
    l.extra = NULL;
    assert_int_equal(llm_launch_argv(&l, 9000, &argv, NULL), 0);
    join(argv, buf, sizeof(buf));
    assert_non_null(strstr(buf, " --api-key k "));
    assert_non_null(strstr(buf, " --no-mmap "));
    assert_null(strstr(buf, "-lm"));
    assert_non_null(strstr(buf, " --no-webui"));
    llm_argv_free(argv);
}

static void test_argv_rejects(void **state)
{
    (void)state;
    llm_launch l;
    genai_error e;
    char **argv = (char **)0x1;
    const char *dup[] = {"--port=9", NULL};

    base_launch(&l);
    l.port = 70000; /* the server would wrap it to 4464 (§10) */
    assert_int_equal(llm_launch_argv(&l, 0, &argv, &e), GENAI_EBAD_ARG);
    base_launch(&l);
    l.port = 0;
    assert_int_equal(llm_launch_argv(&l, 0, &argv, &e), GENAI_EBAD_ARG);
    base_launch(&l);
    l.model = NULL; /* router mode */
    assert_int_equal(llm_launch_argv(&l, 0, &argv, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "router"));
    base_launch(&l);
    l.ctx = 0;
    assert_int_equal(llm_launch_argv(&l, 0, &argv, &e), GENAI_EBAD_ARG);
    base_launch(&l);
    l.parallel = 0;
    assert_int_equal(llm_launch_argv(&l, 0, &argv, &e), GENAI_EBAD_ARG);
    base_launch(&l);
    l.ctv = LLM_CACHE_Q8_0;
    l.fa = LLM_FA_OFF;
    assert_int_equal(llm_launch_argv(&l, 0, &argv, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "flash attention"));
    base_launch(&l);
    l.extra = dup;
    assert_int_equal(llm_launch_argv(&l, 0, &argv, &e), GENAI_EBAD_ARG);
    base_launch(&l);
    l.batch = 256;
    l.ubatch = 512;
    assert_int_equal(llm_launch_argv(&l, 0, &argv, &e), GENAI_EBAD_ARG);
    base_launch(&l);
    l.ngl = -2;
    assert_int_equal(llm_launch_argv(&l, 0, &argv, &e), GENAI_EBAD_ARG);
    assert_ptr_equal(argv, (char **)0x1); /* untouched on failure */

    /* Allocation failures at every step: -ENOMEM and nothing leaked (ASan). */
    base_launch(&l);
    for (unsigned long n = 1; n < 200; n++) {
        mem_fail_after(n, 0);
        int rc = llm_launch_argv(&l, 0, &argv, NULL);
        mem_fail_after(0, 0);
        if (rc == 0) {
            llm_argv_free(argv);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
    }
}

static void test_cache_types(void **state)
{
    (void)state;
    enum llm_cache_type t;
    assert_int_equal(llm_cache_type_parse("q8_0", &t), 0);
    assert_int_equal(t, LLM_CACHE_Q8_0);
    assert_int_equal(llm_cache_type_bytes32(t), 34);
    assert_int_equal(llm_cache_type_parse("iq4_nl", &t), 0);
    assert_int_equal(llm_cache_type_bytes32(t), 18);
    assert_int_equal(llm_cache_type_parse("q2_k", &t), GENAI_EBAD_ARG);
    assert_null(llm_cache_type_name(LLM_CACHE__COUNT));
    assert_string_equal(llm_load_mode_name(LLM_LOAD_MMAP_MLOCK), "mmap+mlock");
}

static int has(char **env, const char *entry)
{
    for (char **p = env; *p != NULL; p++)
        if (strcmp(*p, entry) == 0)
            return 1;
    return 0;
}

static int count_prefix(char **env, const char *prefix)
{
    int n = 0;
    for (char **p = env; *p != NULL; p++)
        n += strncmp(*p, prefix, strlen(prefix)) == 0;
    return n;
}

static void test_env(void **state)
{
    (void)state;
    const char *base[] = {
        "PATH=/usr/bin",
        "LLAMA_ARG_CTX_SIZE=99",
        "LLAMA_ARG_PORT=1",
        "LLAMA_API_KEY=leak",
        "HF_TOKEN=hf_secret",
        "AIP_MODE=PREDICTION",
        "AIP_HTTP_PORT=8080",
        "HOME=/home/u",
        "XDG_CONFIG_HOME=/home/u/.config",
        "LLAMA_CACHE=/c",
        "CUDA_VISIBLE_DEVICES=1",
        "noequals",
        "HF_TOKEN_PATH=/keep",
        NULL,
    };
    const char *set[] = {"CUDA_VISIBLE_DEVICES=0", "LLAMA_API_KEY=genai-key", NULL};
    char **env = NULL;
    assert_int_equal(llm_env_build(base, "/var/lib/genai/llama", set, &env, NULL), 0);
    assert_true(has(env, "PATH=/usr/bin"));
    assert_true(has(env, "LLAMA_CACHE=/c"));
    assert_true(has(env, "HF_TOKEN_PATH=/keep"));
    assert_true(has(env, "HOME=/var/lib/genai/llama"));
    assert_true(has(env, "XDG_CONFIG_HOME=/var/lib/genai/llama/.config"));
    assert_true(has(env, "CUDA_VISIBLE_DEVICES=0"));
    assert_true(has(env, "LLAMA_API_KEY=genai-key"));
    assert_int_equal(count_prefix(env, "LLAMA_ARG_"), 0);
    assert_int_equal(count_prefix(env, "AIP_"), 0);
    assert_int_equal(count_prefix(env, "HF_TOKEN="), 0);
    assert_int_equal(count_prefix(env, "CUDA_VISIBLE_DEVICES="), 1);
    assert_int_equal(count_prefix(env, "LLAMA_API_KEY="), 1);
    assert_int_equal(count_prefix(env, "HOME="), 1);
    assert_false(has(env, "noequals"));
    llm_env_free(env);

    genai_error e;
    env = NULL;
    assert_int_equal(llm_env_build(base, "relative", NULL, &env, &e), GENAI_EBAD_ARG);
    const char *bad_set[] = {"HOME=/x", NULL};
    assert_int_equal(llm_env_build(base, "/h", bad_set, &env, &e), GENAI_EBAD_ARG);
    const char *no_eq[] = {"FOO", NULL};
    assert_int_equal(llm_env_build(base, "/h", no_eq, &env, &e), GENAI_EBAD_ARG);
    assert_null(env);

    /* A config.ini in the child's home is refused. */
    char dir[] = "/tmp/genai-llm-env-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[PATHS_MAX], ini[PATHS_MAX];
    assert_int_equal(paths_join(sub, sizeof(sub), dir, ".config/llama.cpp"), 0);
    assert_int_equal(paths_mkdirs(sub, 0700, NULL), 0);
    assert_int_equal(llm_env_build(NULL, dir, NULL, &env, NULL), 0);
    llm_env_free(env);
    assert_int_equal(paths_join(ini, sizeof(ini), sub, "config.ini"), 0);
    int fd = open(ini, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(llm_env_build(NULL, dir, NULL, &env, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "config.ini"));
    unlink(ini);
    rmdir(sub);
    assert_int_equal(paths_join(sub, sizeof(sub), dir, ".config"), 0);
    rmdir(sub);
    assert_int_equal(rmdir(dir), 0);

    for (unsigned long n = 1; n < 64; n++) {
        mem_fail_after(n, 0);
        int rc = llm_env_build(base, "/h", set, &env, NULL);
        mem_fail_after(0, 0);
        if (rc == 0) {
            llm_env_free(env);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
    }
}

static void test_port_range(void **state)
{
    (void)state;
    llm_port_range r;
    llm_port_range_default("32768\t60999\n", &r);
    assert_int_equal(r.lo, 61000);
    assert_int_equal(r.hi, 65535);
    llm_port_range_default("50000 65535", &r); /* only the low piece is left */
    assert_int_equal(r.lo, 49152);
    assert_int_equal(r.hi, 49999);
    llm_port_range_default("1024 65535", &r); /* nothing left: whole range */
    assert_int_equal(r.lo, 49152);
    assert_int_equal(r.hi, 65535);
    llm_port_range_default("10000 20000", &r); /* no overlap */
    assert_int_equal(r.lo, 49152);
    llm_port_range_default("garbage", &r);
    assert_int_equal(r.hi, 65535);
    llm_port_range_default(NULL, &r);
    assert_int_equal(r.lo, 49152);
    llm_port_range_system(&r);
    assert_int_equal(llm_port_range_validate(r.lo, r.hi, NULL), 0);

    genai_error e;
    assert_int_equal(llm_port_range_validate(80, 90, &e), GENAI_EBAD_ARG);
    assert_int_equal(llm_port_range_validate(5000, 4000, &e), GENAI_EBAD_ARG);
    assert_int_equal(llm_port_range_validate(5000, 70000, &e), GENAI_EBAD_ARG);
}

static int listen_on(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 1) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void test_port_pick(void **state)
{
    (void)state;
    llm_port_range r;
    llm_port_range_system(&r);
    uint16_t port = 0;
    assert_int_equal(llm_port_pick(&r, &port, NULL), 0);
    assert_true(port >= r.lo && port <= r.hi);
    /* The picked port really is free: we can listen on it. */
    int fd = listen_on(port);
    assert_true(fd >= 0);
    /* A one-port range whose port is taken reports EADDRINUSE. */
    llm_port_range one = {port, port};
    uint16_t other = 7;
    genai_error e;
    assert_int_equal(llm_port_pick(&one, &other, &e), -EADDRINUSE);
    assert_int_equal(other, 7);
    close(fd);
    assert_int_equal(llm_port_pick(&one, &other, NULL), 0);
    assert_int_equal(other, port);
    llm_port_range bad = {80, 81};
    assert_int_equal(llm_port_pick(&bad, &other, &e), GENAI_EBAD_ARG);
}

static void test_api_key(void **state)
{
    (void)state;
    char a[LLM_API_KEY_LEN + 1], b[LLM_API_KEY_LEN + 1];
    assert_int_equal(llm_api_key_new(a, NULL), 0);
    assert_int_equal(llm_api_key_new(b, NULL), 0);
    assert_int_equal(strlen(a), LLM_API_KEY_LEN);
    assert_int_equal(strspn(a, "0123456789abcdef"), LLM_API_KEY_LEN);
    assert_string_not_equal(a, b);
}

/* Creates dir/name with the given mode. */
static void touch(const char *dir, const char *name, mode_t mode)
{
    char p[PATHS_MAX];
    assert_int_equal(paths_join(p, sizeof(p), dir, name), 0);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(chmod(p, mode), 0);
}

static void test_discover(void **state)
{
    (void)state;
    char a[] = "/tmp/genai-llm-binA-XXXXXX", b[] = "/tmp/genai-llm-binB-XXXXXX";
    assert_non_null(mkdtemp(a));
    assert_non_null(mkdtemp(b));
    touch(a, "llama-server", 0755);
    touch(a, "llama-fit-params", 0644); /* not executable */
    touch(b, "llama-server", 0755);
    touch(b, "llama-fit-params", 0755);
    char sa[PATHS_MAX], sb[PATHS_MAX], fb[PATHS_MAX], path_env[2 * PATHS_MAX];
    paths_join(sa, sizeof(sa), a, "llama-server");
    paths_join(sb, sizeof(sb), b, "llama-server");
    paths_join(fb, sizeof(fb), b, "llama-fit-params");
    char *old_path = mem_strdup(getenv("PATH"));

    unsetenv(LLM_SERVER_ENV);
    unsetenv(LLM_FIT_PARAMS_ENV);
    /* PATH order, skipping relative and empty entries. */
    snprintf(path_env, sizeof(path_env), "relative::%s:%s", a, b);
    setenv("PATH", path_env, 1);
    char *found = NULL;
    assert_int_equal(llm_find_server(NULL, &found, NULL), 0);
    assert_string_equal(found, sa);
    /* Next to llama-server the fit tool is not executable: PATH finds b's. */
    char *fit = NULL;
    assert_int_equal(llm_find_fit_params(NULL, found, &fit, NULL), 0);
    assert_string_equal(fit, fb);
    mem_free(fit);
    mem_free(found);

    /* The variable beats PATH; an explicit path beats the variable. */
    setenv(LLM_SERVER_ENV, sb, 1);
    assert_int_equal(llm_find_server(NULL, &found, NULL), 0);
    assert_string_equal(found, sb);
    assert_int_equal(llm_find_fit_params(NULL, found, &fit, NULL), 0);
    assert_string_equal(fit, fb); /* next to the server */
    mem_free(fit);
    mem_free(found);
    assert_int_equal(llm_find_server(sa, &found, NULL), 0);
    assert_string_equal(found, sa);
    mem_free(found);

    /* Unusable explicit choices are errors, not fall-throughs. */
    genai_error e;
    found = NULL;
    setenv(LLM_SERVER_ENV, "/nonexistent/llama-server", 1);
    assert_int_equal(llm_find_server(NULL, &found, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, LLM_SERVER_ENV));
    assert_int_equal(llm_find_server(a, &found, &e), GENAI_EBAD_ARG); /* a directory */
    char fa[PATHS_MAX];
    paths_join(fa, sizeof(fa), a, "llama-fit-params");
    setenv(LLM_FIT_PARAMS_ENV, fa, 1);
    assert_int_equal(llm_find_fit_params(NULL, sb, &found, &e), GENAI_EBAD_ARG);
    assert_null(found);
    unsetenv(LLM_SERVER_ENV);
    unsetenv(LLM_FIT_PARAMS_ENV);

    setenv("PATH", "/nonexistent-genai", 1);
    assert_int_equal(llm_find_server(NULL, &found, &e), GENAI_ENOT_FOUND);
    assert_int_equal(llm_find_fit_params(NULL, NULL, &found, &e), GENAI_ENOT_FOUND);
    assert_null(found);

    if (old_path != NULL)
        setenv("PATH", old_path, 1);
    mem_free(old_path);
    const char *names[] = {"llama-server", "llama-fit-params"};
    for (int i = 0; i < 2; i++) {
        char p[PATHS_MAX];
        paths_join(p, sizeof(p), a, names[i]);
        unlink(p);
        paths_join(p, sizeof(p), b, names[i]);
        unlink(p);
    }
    assert_int_equal(rmdir(a), 0);
    assert_int_equal(rmdir(b), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argv_defaults), cmocka_unit_test(test_argv_full),
        cmocka_unit_test(test_argv_rejects),  cmocka_unit_test(test_cache_types),
        cmocka_unit_test(test_env),           cmocka_unit_test(test_port_range),
        cmocka_unit_test(test_port_pick),     cmocka_unit_test(test_api_key),
        cmocka_unit_test(test_discover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
