/*
 * test_llm_parsers.c - the llama-server text parsers against the exact
 * samples of contracts/llama-server.md: --version (§1), /health and /props
 * (§4, §6.3), the memory lines (§5.3) and the failure signatures (§9).
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "llm/crash.h"
#include "llm/memlog.h"
#include "llm/status.h"
#include "llm/version.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MIB(x) ((uint64_t)((x)*1048576.0 + 0.5))

static void test_version(void **state)
{
    (void)state;
    const char *out = "version: 0.1.1-dev (build 10470, commit 34af94cd9)\n"
                      "built with GNU 12.2.0 for Linux x86_64\n";
    llm_version v;
    assert_int_equal(llm_version_parse(out, strlen(out), &v, NULL), 0);
    assert_int_equal(v.build, 10470);
    assert_string_equal(v.commit, "34af94cd9");
    assert_string_equal(v.version, "0.1.1-dev");

    /* A shared-library build may log before the version line; CRLF too. */
    const char *noisy = "load_backend: loaded CPU backend from /x/libggml-cpu.so\r\n"
                        "version: 0.1.1-dev (build 9000, commit abcdef0)\r\n";
    assert_int_equal(llm_version_parse(noisy, strlen(noisy), &v, NULL), 0);
    assert_int_equal(v.build, 9000);
    assert_string_equal(v.commit, "abcdef0");

    /* A packaged build names no git commit (Debian's llama.cpp-tools). */
    const char *debian = "version: 0.7.0 (build 11669, commit Debian)\n"
                         "built with GNU 16.2.0 for Linux x86_64\n";
    assert_int_equal(llm_version_parse(debian, strlen(debian), &v, NULL), 0);
    assert_int_equal(v.build, 11669);
    assert_string_equal(v.commit, "Debian");
    assert_string_equal(v.version, "0.7.0");

    genai_error e;
    llm_version untouched = {.build = 77};
    const char *bad[] = {
        "",
        "version: 0.1.1-dev (build , commit 34af94cd9)",
        "version: 0.1.1-dev (build 99999999999, commit 34af94cd9)",
        "version: 0.1.1-dev (build 10470, commit )",
        "version: 0.1.1-dev (build 10470, commit a b)",
        "version: 0.1.1-dev (build 10470, commit 0123456789012345678901234567890123456789a)",
        "version: 0.1.1-dev (build 10470, commit 34af94cd9",
        "Version: 0.1.1-dev (build 10470, commit 34af94cd9)",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(llm_version_parse(bad[i], strlen(bad[i]), &untouched, &e), GENAI_ECORRUPT);
        assert_int_equal(untouched.build, 77);
    }
    /* Length bounds the scan: the line after the cut is not seen. */
    assert_int_equal(llm_version_parse(out, 10, &v, NULL), GENAI_ECORRUPT);

    assert_int_equal(llm_build_info_parse("b10470-34af94cd9", &v, NULL), 0);
    assert_int_equal(v.build, 10470);
    assert_string_equal(v.commit, "34af94cd9");
    assert_int_equal(llm_build_info_parse("b11669-Debian", &v, NULL), 0);
    assert_int_equal(v.build, 11669);
    assert_string_equal(v.commit, "Debian");
    assert_int_equal(llm_build_info_parse("b11669-", &v, &e), GENAI_ECORRUPT);
    assert_int_equal(llm_build_info_parse("10470-34af94cd9", &v, &e), GENAI_ECORRUPT);
    assert_int_equal(llm_build_info_parse("b10470-34af94cd9 ", &v, &e), GENAI_ECORRUPT);
    assert_int_equal(llm_build_info_parse("b10470", &v, &e), GENAI_ECORRUPT);

    assert_true(llm_build_has(10470, LLM_FEAT_LOAD_MODE));
    assert_true(llm_build_has(0, LLM_FEAT_NO_UI));
    assert_false(llm_build_has(10469, LLM_FEAT_LOAD_MODE));
}

static void test_health(void **state)
{
    (void)state;
    enum llm_health h = (enum llm_health)42;
    const char *ok = "{\"status\":\"ok\"}";
    const char *loading =
        "{\"error\":{\"message\":\"Loading model\",\"type\":\"unavailable_error\",\"code\":503}}";
    assert_int_equal(llm_health_parse(200, ok, strlen(ok), &h, NULL), 0);
    assert_int_equal(h, LLM_HEALTH_OK);
    assert_int_equal(llm_health_parse(503, loading, strlen(loading), &h, NULL), 0);
    assert_int_equal(h, LLM_HEALTH_LOADING);

    genai_error e;
    h = (enum llm_health)42;
    assert_int_equal(llm_health_parse(200, "{\"status\":\"no\"}", 15, &h, &e), GENAI_ECORRUPT);
    assert_int_equal(llm_health_parse(200, "nonsense", 8, &h, &e), GENAI_ECORRUPT);
    assert_int_equal(llm_health_parse(404, ok, strlen(ok), &h, &e), GENAI_EHTTP);
    assert_int_equal(llm_health_parse(503, "", 0, &h, &e), GENAI_EHTTP);
    const char *other = "{\"error\":{\"code\":503,\"message\":\"x\",\"type\":\"server_error\"}}";
    assert_int_equal(llm_health_parse(503, other, strlen(other), &h, &e), GENAI_EHTTP);
    assert_int_equal(h, 42);
}

static void test_props(void **state)
{
    (void)state;
    const char *body =
        "{\"default_generation_settings\":{\"params\":{\"n_predict\":-1},\"n_ctx\":8192},"
        "\"total_slots\":4,\"model_alias\":\"ref\",\"model_ftype\":\"F16\","
        "\"model_path\":\"/models/ref-big.gguf\",\"modalities\":{\"vision\":false},"
        "\"chat_template\":\"{{x}}\",\"build_info\":\"b10470-34af94cd9\",\"is_sleeping\":true,"
        "\"cors_proxy_enabled\":false}";
    llm_props p;
    assert_int_equal(llm_props_parse(body, strlen(body), &p, NULL), 0);
    assert_int_equal(p.n_ctx_slot, 8192);
    assert_int_equal(p.total_slots, 4);
    assert_string_equal(p.model_alias, "ref");
    assert_string_equal(p.model_path, "/models/ref-big.gguf");
    assert_string_equal(p.build_info, "b10470-34af94cd9");
    assert_int_equal(p.build.build, 10470);
    assert_true(p.is_sleeping);
    llm_props_free(&p);
    assert_null(p.model_path);
    llm_props_free(NULL);

    genai_error e;
    const char *missing = "{\"total_slots\":4}";
    assert_int_equal(llm_props_parse(missing, strlen(missing), &p, &e), GENAI_ECORRUPT);
    const char *neg = "{\"default_generation_settings\":{\"n_ctx\":-1},\"total_slots\":4}";
    assert_int_equal(llm_props_parse(neg, strlen(neg), &p, &e), GENAI_ECORRUPT);
    assert_int_equal(llm_props_parse("[1]", 3, &p, &e), GENAI_ECORRUPT);
    assert_int_equal(llm_props_parse("{", 1, &p, &e), GENAI_ECORRUPT);
    assert_non_null(strstr(e.detail, "/props"));
    assert_int_equal(llm_props_parse(body, LLM_STATUS_BODY_MAX + 1u, &p, &e), GENAI_ETOO_LARGE);

    /* Every allocation failing in turn ends in -ENOMEM or success, never a leak. */
    for (unsigned long n = 1; n < 64; n++) {
        mem_fail_after(n, 0);
        int rc = llm_props_parse(body, strlen(body), &p, NULL);
        mem_fail_after(0, 0);
        if (rc == 0) {
            llm_props_free(&p);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
    }
}

/* The -lv 4 sample of llama-server.md §5.3 (ref-big, -c 8192), with the
 * timestamp prefix a real log carries. */
static const char *const sample_big[] = {
    "0.00.010.000 I load_tensors:   CPU_Mapped model buffer size =   345.35 MiB",
    "0.00.011.000 I llama_context:        CPU  output buffer size =     0.00 MiB",
    "0.00.012.000 I llama_kv_cache:        CPU KV buffer size =   128.00 MiB",
    "0.00.012.100 I llama_kv_cache: size =  128.00 MiB (  8192 cells,  16 layers,  4/1 seqs), "
    "K (f16):   64.00 MiB, V (f16):   64.00 MiB",
    "0.00.013.000 I sched_reserve:        CPU compute buffer size =    32.51 MiB",
};

static void test_memlog_sample(void **state)
{
    (void)state;
    llm_footprint fp;
    llm_footprint_init(&fp);
    for (size_t i = 0; i < sizeof(sample_big) / sizeof(sample_big[0]); i++)
        assert_int_equal(llm_memlog_feed(&fp, sample_big[i], strlen(sample_big[i])), 1);
    assert_int_equal(fp.n_lines, 5);
    const llm_mem_buftype *mapped = llm_footprint_find(&fp, "CPU_Mapped");
    const llm_mem_buftype *cpu = llm_footprint_find(&fp, "CPU");
    assert_non_null(mapped);
    assert_non_null(cpu);
    assert_true(mapped->is_host && cpu->is_host);
    assert_int_equal(mapped->bytes[LLM_BUF_MODEL], MIB(345.35));
    assert_int_equal(cpu->bytes[LLM_BUF_KV], 128ull << 20);
    assert_int_equal(cpu->bytes[LLM_BUF_COMPUTE], MIB(32.51));
    assert_int_equal(cpu->bytes[LLM_BUF_OUTPUT], 0);
    assert_int_equal(fp.kv_cells, 8192);
    assert_int_equal(fp.kv_layers, 16);
    assert_int_equal(fp.kv_seqs, 4);
    assert_int_equal(fp.kv_streams, 1);
    assert_string_equal(fp.kv_type_k, "f16");
    assert_string_equal(fp.kv_type_v, "f16");
    assert_int_equal(llm_footprint_sum(&fp, 1, LLM_BUF__COUNT),
                     MIB(345.35) + (128ull << 20) + MIB(32.51));
    assert_int_equal(llm_footprint_sum(&fp, 0, LLM_BUF__COUNT), 0);
}

static void test_memlog_variants(void **state)
{
    (void)state;
    llm_footprint fp;
    llm_footprint_init(&fp);
    const char *lines[] = {
        /* no prefix, as with --no-log-prefix; GPU buffers; pinned host output */
        "load_tensors:        CUDA0 model buffer size =  3200.00 MiB",
        "load_tensors:   CPU_Mapped model buffer size =   100.50 MiB",
        "load_tensors:   CPU_Mapped model buffer size =     0.50 MiB\n",
        "llama_context:  CUDA_Host  output buffer size =     2.31 MiB",
        "llama_kv_cache:      CUDA0 KV buffer size =  1024.00 MiB",
        "llama_memory_recurrent:        CPU RS buffer size =    16.00 MiB",
        "sched_reserve:      CUDA0 compute buffer size =   300.01 MiB",
        "sched_reserve:  CUDA_Host compute buffer size =    12.01 MiB",
        /* colours on a terminal */
        "\x1b[32m0.00.002.000\x1b[0m \x1b[32mI\x1b[0m common_params_fit_impl: projected to use "
        "505 MiB of host memory vs. 24105 MiB of total host memory",
        "0.00.002.100 I srv    load_model: prompt cache is enabled, size limit: 8192 MiB",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        assert_int_equal(llm_memlog_feed(&fp, lines[i], strlen(lines[i])), 1);
    const llm_mem_buftype *cuda = llm_footprint_find(&fp, "CUDA0");
    assert_non_null(cuda);
    assert_false(cuda->is_host);
    assert_int_equal(cuda->bytes[LLM_BUF_MODEL], 3200ull << 20);
    assert_int_equal(llm_footprint_find(&fp, "CPU_Mapped")->bytes[LLM_BUF_MODEL], 101ull << 20);
    assert_true(llm_footprint_find(&fp, "CUDA_Host")->is_host);
    assert_int_equal(llm_footprint_sum(&fp, 0, LLM_BUF__COUNT),
                     (3200ull << 20) + (1024ull << 20) + MIB(300.01));
    assert_int_equal(llm_footprint_sum(&fp, 1, LLM_BUF_RS), 16ull << 20);
    assert_int_equal(llm_footprint_sum(&fp, 1, LLM_BUF_OUTPUT), MIB(2.31));
    assert_int_equal(fp.projected_mib, 505);
    assert_int_equal(fp.projected_limit_mib, 24105);
    assert_true(fp.projected_is_host);
    assert_int_equal(fp.prompt_cache_mib, 8192);

    /* Look-alikes and garbage are not recognised and change nothing. */
    llm_footprint before = fp;
    const char *junk[] = {
        "",
        "load_tensors: offloaded 17/17 layers to GPU",
        "load_tensors:   CPU_Mapped model buffer size =   abc MiB",
        "load_tensors:   CPU_Mapped model buffer size =   1.5 GiB",
        "load_tensors:  model buffer size = 1.00 MiB",
        "llama_kv_cache: size = 1.00 MiB (12 cells", /* truncated */
        "sched_reserve:        CPU compute buffer size =   99999999999999999999.00 MiB",
        "print_info: file size   = 345.35 MiB (16.00 BPW)",
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        assert_int_equal(llm_memlog_feed(&fp, junk[i], strlen(junk[i])), 0);
    assert_memory_equal(&before, &fp, sizeof(fp));
    assert_int_equal(llm_memlog_feed(&fp, NULL, 3), 0);

    /* More buffer types than the table holds are counted as dropped. */
    llm_footprint_init(&fp);
    char line[128];
    for (int i = 0; i < LLM_MEM_MAX_BUFTYPES + 3; i++) {
        snprintf(line, sizeof(line), "sched_reserve:      CUDA%d compute buffer size = 1.00 MiB",
                 i);
        llm_memlog_feed(&fp, line, strlen(line));
    }
    assert_int_equal(fp.n_types, LLM_MEM_MAX_BUFTYPES);
    assert_int_equal(fp.n_dropped, 3);
}

static void test_crash(void **state)
{
    (void)state;
    /* §9, model file missing, with the last line lost (async logger). */
    const char *missing[] = {
        "0.00.005.000 E gguf_init_from_file: failed to open GGUF file '/m.gguf' (No such file "
        "or directory)",
        "0.00.005.100 E llama_model_load: error loading model: llama_model_loader: failed to "
        "load model from /m.gguf",
        "0.00.006.000 E srv    load_model: failed to load model, '/m.gguf'",
    };
    size_t at = 99;
    assert_int_equal(llm_crash_classify(missing, 3, &at), LLM_CRASH_BAD_MODEL);
    assert_int_equal(at, 0);

    const char *oom[] = {
        "0.00.200.000 W llama_context: n_ctx_seq (131072) > n_ctx_train (8192) -- possible "
        "training context overflow",
        "0.00.210.000 E ggml_aligned_malloc: insufficient memory (attempted to allocate 2048.00 "
        "MB)",
        "0.00.210.100 E alloc_tensor_range: failed to allocate CPU buffer of size 2147483648",
    };
    assert_int_equal(llm_crash_classify(oom, 3, &at), LLM_CRASH_OUT_OF_MEMORY);
    assert_int_equal(at, 1);

    const char *cuda[] = {"ggml_backend_cuda_buffer_type_alloc_buffer: allocating 512.00 MiB on "
                          "device 0: cudaMalloc failed: out of memory"};
    assert_int_equal(llm_crash_classify(cuda, 1, NULL), LLM_CRASH_OUT_OF_MEMORY);

    const char *port[] = {
        NULL,
        "0.00.016.000 E srv         start: couldn't bind HTTP server socket, hostname: "
        "127.0.0.1, port: 8080",
        "0.00.016.100 E srv  llama_server: exiting due to HTTP server error",
    };
    assert_int_equal(llm_crash_classify(port, 3, &at), LLM_CRASH_PORT_IN_USE);
    assert_int_equal(at, 1);

    const char *arg[] = {"error while handling argument \"-c\": stoi", "", "usage:"};
    assert_int_equal(llm_crash_classify(arg, 3, NULL), LLM_CRASH_BAD_ARGUMENT);
    const char *unk[] = {"error: invalid argument: --bogus-flag"};
    assert_int_equal(llm_crash_classify(unk, 1, NULL), LLM_CRASH_BAD_ARGUMENT);
    const char *magic[] = {"E gguf_init_from_reader: invalid magic characters: 'abcd', expected "
                           "'GGUF'"};
    assert_int_equal(llm_crash_classify(magic, 1, NULL), LLM_CRASH_BAD_MODEL);
    const char *trunc[] = {"E llama_model_load: error loading model: tensor "
                           "'blk.0.ffn_up.weight' data is not within the file bounds, model is "
                           "corrupted or incomplete"};
    assert_int_equal(llm_crash_classify(trunc, 1, NULL), LLM_CRASH_BAD_MODEL);

    const char *nothing[] = {"I srv  llama_server: model loaded", "segfault?"};
    assert_int_equal(llm_crash_classify(nothing, 2, &at), LLM_CRASH_UNKNOWN);
    assert_int_equal(at, 2);
    assert_int_equal(llm_crash_classify(NULL, 0, NULL), LLM_CRASH_UNKNOWN);

    assert_string_equal(llm_crash_cause_name(LLM_CRASH_PORT_IN_USE), "port in use");
    assert_int_equal(llm_crash_cause_code(LLM_CRASH_OUT_OF_MEMORY), GENAI_ENO_FIT);
    assert_int_equal(llm_crash_cause_code(LLM_CRASH_PORT_IN_USE), -EADDRINUSE);
    assert_int_equal(llm_crash_cause_code(LLM_CRASH_UNKNOWN), GENAI_ECHILD_EXITED);
    /* Every table entry names a real cause. */
    for (size_t i = 0; i < llm_crash_signatures_count; i++) {
        assert_true(llm_crash_signatures[i].cause > LLM_CRASH_UNKNOWN);
        assert_true(llm_crash_signatures[i].cause < LLM_CRASH__COUNT);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),         cmocka_unit_test(test_health),
        cmocka_unit_test(test_props),           cmocka_unit_test(test_memlog_sample),
        cmocka_unit_test(test_memlog_variants), cmocka_unit_test(test_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
