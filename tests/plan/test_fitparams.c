/*
 * test_fitparams.c - llama-fit-params: the argv builder, the parser on the
 * exact --fit-print outputs of llama-server.md §11.2, and the DRY_RUN demand.
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "plan/fitparams.h"
#include "plan_fixtures.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1ull << 20)

static void join(const plan_argv *a, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t off = 0;
    for (size_t i = 0; i < a->argc; i++) {
        int n = snprintf(buf + off, len - off, "%s%s", i ? " " : "", a->argv[i]);
        assert_true(n > 0 && (size_t)n < len - off);
        off += (size_t)n;
    }
    assert_null(a->argv[a->argc]);
}

static void test_argv(void **state)
{
    (void)state;
    plan_llm_config cfg;
    plan_llm_config_init(&cfg);
    cfg.n_ctx = 8192;
    plan_argv a = {0};
    char line[1024];
    assert_int_equal(plan_fitparams_argv("llama-fit-params", "/m/ref-big.gguf", &cfg, &a, NULL), 0);
    join(&a, line, sizeof(line));
    assert_string_equal(line, "llama-fit-params -m /m/ref-big.gguf -c 8192 -np 4 -kvu -fa auto "
                              "-ctk f16 -ctv f16 -b 2048 -ub 512 -dev none -ngl 0 "
                              "--fit-print on");
    plan_argv_free(&a);

    cfg.n_ctx = 4096;
    cfg.n_parallel = 2;
    cfg.flash_attn = PLAN_FA_OFF;
    cfg.type_k = PLAN_CACHE_Q8_0;
    cfg.n_ubatch = 256;
    cfg.n_gpus = 2;
    cfg.n_gpu_layers = 33;
    cfg.tensor_split[0] = 3;
    cfg.tensor_split[1] = 1;
    cfg.no_kv_offload = 1;
    cfg.swa_full = 1;
    assert_int_equal(plan_fitparams_argv("/opt/fp", "m.gguf", &cfg, &a, NULL), 0);
    join(&a, line, sizeof(line));
    assert_string_equal(line, "/opt/fp -m m.gguf -c 4096 -np 2 -no-kvu -fa off -ctk q8_0 -ctv "
                              "f16 -b 2048 -ub 256 -ngl 33 -ts 3,1 -nkvo --swa-full "
                              "--fit-print on");
    plan_argv_free(&a);
    plan_argv_free(&a); /* idempotent */

    /* -ngl auto is left to llama.cpp. */
    cfg.n_gpu_layers = PLAN_NGL_AUTO;
    cfg.n_gpus = 1;
    assert_int_equal(plan_fitparams_argv("fp", "m.gguf", &cfg, &a, NULL), 0);
    join(&a, line, sizeof(line));
    assert_null(strstr(line, "-ngl"));
    plan_argv_free(&a);

    genai_error err;
    assert_int_equal(plan_fitparams_argv("fp", "", &cfg, &a, &err), GENAI_EBAD_ARG);
    for (unsigned long n = 1; n < 40; n++) {
        mem_fail_after(n, 0);
        int rc = plan_fitparams_argv("fp", "m.gguf", &cfg, &a, NULL);
        mem_fail_after(0, 0);
        if (rc == 0) {
            plan_argv_free(&a);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
    }
}

/* Host rows exactly as observed (trailing space before the newline). */
static void test_parse_observed(void **state)
{
    (void)state;
    static const struct {
        const char *out;
        uint64_t m, c, k;
    } obs[] = {
        {"Host 1 0 2 \n", 1, 0, 2},
        {"Host 1 1 4 \n", 1, 1, 4},
        {"Host 345 16 25 \n", 345, 16, 25},
        {"Host 345 128 32 \n", 345, 128, 32},
        {"Host 345 128 283 \n", 345, 128, 283},
        {"Host 345 68 30 \n", 345, 68, 30},
        {"Host 345 64 26 \n", 345, 64, 26},
        {"Host 345 512 56 \n", 345, 512, 56},
    };
    plan_fitparams_result r;
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++) {
        assert_int_equal(plan_fitparams_parse(obs[i].out, strlen(obs[i].out), &r, NULL), 0);
        assert_int_equal(r.n_gpus, 0);
        assert_string_equal(r.host.name, "Host");
        assert_int_equal(r.host.model_mib, obs[i].m);
        assert_int_equal(r.host.context_mib, obs[i].c);
        assert_int_equal(r.host.compute_mib, obs[i].k);
    }
    const char *gpus = "CUDA0 4000 512 300 \nCUDA1 3500 448 300 \nHost 600 0 40 \n";
    assert_int_equal(plan_fitparams_parse(gpus, strlen(gpus), &r, NULL), 0);
    assert_int_equal(r.n_gpus, 2);
    assert_string_equal(r.gpu[1].name, "CUDA1");
    assert_int_equal(r.gpu[1].context_mib, 448);
    assert_int_equal(r.host.model_mib, 600);
    /* CRLF and no final newline are fine too. */
    const char *crlf = "Vulkan0 1 2 3\r\nHost 4 5 6";
    assert_int_equal(plan_fitparams_parse(crlf, strlen(crlf), &r, NULL), 0);
    assert_int_equal(r.gpu[0].compute_mib, 3);
    assert_int_equal(r.host.compute_mib, 6);
}

static void expect_corrupt(const char *text, int code, const char *needle)
{
    plan_fitparams_result r;
    memset(&r, 0x5a, sizeof(r));
    plan_fitparams_result before = r;
    genai_error err;
    genai_error_clear(&err);
    assert_int_equal(plan_fitparams_parse(text, strlen(text), &r, &err), code);
    if (needle != NULL && strstr(err.detail, needle) == NULL)
        fail_msg("detail '%s' lacks '%s'", err.detail, needle);
    assert_memory_equal(&r, &before, sizeof(r)); /* untouched on failure */
}

static void test_parse_errors(void **state)
{
    (void)state;
    expect_corrupt("-c 0 -ngl -1\n", GENAI_ECORRUPT, "CLI arguments");
    expect_corrupt("", GENAI_ECORRUPT, "no Host row");
    expect_corrupt("CUDA0 1 2 3 \n", GENAI_ECORRUPT, "no Host row");
    expect_corrupt("Host 1 2\n", GENAI_ECORRUPT, "line 1");
    expect_corrupt("Host 1 2 3 4\n", GENAI_ECORRUPT, "line 1");
    expect_corrupt("\nHost 1 x 3\n", GENAI_ECORRUPT, "line 2");
    expect_corrupt("Host 1 -2 3\n", GENAI_ECORRUPT, "integer");
    expect_corrupt("Host 1 99999999999999999999999 3\n", GENAI_ECORRUPT, "integer");
    expect_corrupt("Host 1 2 3\nHost 1 2 3\n", GENAI_ECORRUPT, "after the Host row");
    expect_corrupt("Host 1 2 3\nCUDA0 1 2 3\n", GENAI_ECORRUPT, "after the Host row");
    char many[1024] = "";
    for (int i = 0; i <= PLAN_MAX_GPUS; i++)
        strncat(many, "CUDA 1 1 1\n", sizeof(many) - strlen(many) - 1);
    strncat(many, "Host 1 1 1\n", sizeof(many) - strlen(many) - 1);
    expect_corrupt(many, GENAI_ETOO_LARGE, "more than");
    char name[200];
    memset(name, 'a', sizeof(name));
    memcpy(name + sizeof(name) - 12, " 1 2 3\nHo\n", 11);
    expect_corrupt(name, GENAI_ECORRUPT, "too long");

    plan_fitparams_result r;
    char *big = mem_alloc(PLAN_FITPARAMS_OUTPUT_MAX + 1);
    assert_non_null(big);
    assert_int_equal(plan_fitparams_parse(big, PLAN_FITPARAMS_OUTPUT_MAX + 1, &r, NULL),
                     GENAI_ETOO_LARGE);
    mem_free(big);
    /* Embedded NUL bytes are just bad characters. */
    assert_int_equal(plan_fitparams_parse("Host 1\0 2 3\n", 12, &r, NULL), GENAI_ECORRUPT);
}

static void test_dry_run_demand(void **state)
{
    (void)state;
    gguf_profile p;
    assert_int_equal(fixture_ref_big(&p), 0);
    plan_llm_config cfg;
    plan_llm_config_init(&cfg);
    cfg.n_ctx = 8192;
    cfg.cache_ram_mib = 512;
    plan_fitparams_result r;
    const char *out = "Host 345 128 32 \n";
    assert_int_equal(plan_fitparams_parse(out, strlen(out), &r, NULL), 0);
    plan_demand d;
    assert_int_equal(plan_fitparams_demand(&r, &p, &cfg, &d, NULL), 0);
    assert_int_equal(d.tier, PLAN_TIER_DRY_RUN);
    assert_int_equal(d.n_gpus, 0);
    /* Each truncated value is charged + 1 MiB: an upper bound. */
    assert_int_equal(d.host_parts.weights, 346 * MIB);
    assert_int_equal(d.host_parts.kv, 129 * MIB);
    assert_int_equal(d.host_parts.compute, 33 * MIB);
    assert_true(d.host_parts.weights >= p.tensor_bytes);
    assert_int_equal(d.host_parts.prompt_cache, 512 * MIB);
    assert_int_equal(d.host_parts.output, 312ull * 4 * 4);
    assert_int_equal(d.host_file, 346 * MIB + PLAN_LLM_RUNTIME_FILE);
    assert_int_equal(d.host_growth, 33 * MIB + 512 * MIB);
    cfg.use_mmap = 0;
    assert_int_equal(plan_fitparams_demand(&r, &p, &cfg, &d, NULL), 0);
    assert_int_equal(d.host_file, PLAN_LLM_RUNTIME_FILE);

    const char *gpu = "CUDA0 4000 512 300 \nCUDA1 0 0 0 \nHost 600 0 40 \n";
    assert_int_equal(plan_fitparams_parse(gpu, strlen(gpu), &r, NULL), 0);
    cfg.mmproj_bytes = 100 * MIB;
    assert_int_equal(plan_fitparams_demand(&r, &p, &cfg, &d, NULL), 0);
    assert_int_equal(d.n_gpus, 2);
    assert_int_equal(d.gpu[0], (4001 + 513 + 301) * MIB + PLAN_DRIVER_GPU_BYTES + 100 * MIB);
    assert_int_equal(d.gpu[1], 0); /* an unused device costs nothing */
    assert_int_equal(d.host_parts.driver, PLAN_DRIVER_HOST_BYTES);
    fixture_profile_free(&p);
}

/* Writes an executable shell script: a llama-fit-params double following
 * llama-server.md §11.2 (stdout rows, E line on stderr and exit 1). */
static void write_script(const char *path, const char *body)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, 0700), 0);
}

static void test_run(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    char dir[256], script[300];
    snprintf(dir, sizeof(dir), "%s/genai-fit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(script, sizeof(script), "%s/llama-fit-params", dir);
    gguf_profile p;
    assert_int_equal(fixture_ref_big(&p), 0);
    plan_llm_config cfg;
    plan_llm_config_init(&cfg);
    cfg.n_ctx = 8192;
    plan_demand d;
    genai_error err;

    /* Answers only the exact command line the builder makes. */
    write_script(script, "echo \"I llama_fit_params: fitting\" >&2\n"
                         "case \" $* \" in\n"
                         "*\" -m /m/ref-big.gguf -c 8192 -np 4 -kvu -fa auto -ctk f16 -ctv f16 "
                         "\"*\"--fit-print on \"*) printf 'Host 345 128 32 \\n' ;;\n"
                         "*) echo \"unexpected: $*\" >&2; exit 3 ;;\nesac");
    assert_int_equal(plan_fitparams_run(script, "/m/ref-big.gguf", &p, &cfg, 10000, &d, &err), 0);
    assert_int_equal(d.tier, PLAN_TIER_DRY_RUN);
    assert_int_equal(d.host_parts.kv, 129 * MIB);

    /* A build that no longer takes -kvu (b11669): asked again without it;
     * the unified cache as one sequence of all the cells, a per-sequence
     * cache as it is. */
    write_script(script, "case \" $* \" in\n"
                         "*\" -kvu \"*|*\" -no-kvu \"*) echo 'error: invalid argument: -kvu' >&2; "
                         "exit 1 ;;\n"
                         "*\" -c 8192 -np 1 -fa auto \"*) printf 'Host 345 128 34 \\n' ;;\n"
                         "*\" -c 4096 -np 2 -fa auto \"*) printf 'Host 345 64 26 \\n' ;;\n"
                         "*) echo \"unexpected: $*\" >&2; exit 3 ;;\nesac");
    assert_int_equal(plan_fitparams_run(script, "/m/ref-big.gguf", &p, &cfg, 10000, &d, &err), 0);
    assert_int_equal(d.host_parts.kv, 129 * MIB);
    assert_int_equal(d.host_parts.compute, 35 * MIB);
    cfg.n_ctx = 4096;
    cfg.n_parallel = 2;
    assert_int_equal(plan_fitparams_run(script, "/m/ref-big.gguf", &p, &cfg, 10000, &d, &err), 0);
    assert_int_equal(d.host_parts.kv, 65 * MIB);
    assert_int_equal(d.host_parts.compute, 27 * MIB);
    cfg.n_ctx = 8192;
    cfg.n_parallel = PLAN_PARALLEL_AUTO;
    /* Any other refusal is not retried. */
    write_script(script, "echo 'error: invalid argument: -ctk' >&2; exit 1");
    assert_int_equal(plan_fitparams_run(script, "/m/ref-big.gguf", &p, &cfg, 10000, &d, &err),
                     GENAI_ECHILD_EXITED);
    assert_non_null(strstr(err.detail, "invalid argument: -ctk"));

    write_script(script, "echo \"unexpected: $*\" >&2; exit 3");
    cfg.n_ctx = 4096; /* the double refuses other arguments */
    assert_int_equal(plan_fitparams_run(script, "/m/ref-big.gguf", &p, &cfg, 10000, &d, &err),
                     GENAI_ECHILD_EXITED);
    assert_non_null(strstr(err.detail, "exited with 3"));
    assert_non_null(strstr(err.detail, "unexpected:"));

    write_script(script, "echo 'E llama_fit_params: failed to fit CLI arguments to free memory, "
                         "exiting...' >&2\nexit 1");
    assert_int_equal(plan_fitparams_run(script, "/m/ref-big.gguf", &p, &cfg, 10000, &d, &err),
                     GENAI_ECHILD_EXITED);
    assert_non_null(strstr(err.detail, "failed to fit"));

    write_script(script, "echo '-c 0 -ngl -1'");
    assert_int_equal(plan_fitparams_run(script, "/m/ref-big.gguf", &p, &cfg, 10000, &d, &err),
                     GENAI_ECORRUPT);

    write_script(script, "kill -9 $$");
    assert_int_equal(plan_fitparams_run(script, "/m/ref-big.gguf", &p, &cfg, 10000, &d, &err),
                     GENAI_ECHILD_EXITED);
    assert_non_null(strstr(err.detail, "signal 9"));

    assert_int_equal(unlink(script), 0);
    assert_int_equal(plan_fitparams_run(script, "/m/ref-big.gguf", &p, &cfg, 10000, &d, &err),
                     -ENOENT);
    assert_int_equal(rmdir(dir), 0);
    fixture_profile_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argv),         cmocka_unit_test(test_parse_observed),
        cmocka_unit_test(test_parse_errors), cmocka_unit_test(test_dry_run_demand),
        cmocka_unit_test(test_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
