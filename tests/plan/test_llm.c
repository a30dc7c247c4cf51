/*
 * test_llm.c - the LLM demand estimate against the OBS figures of
 * contracts/memory.md §3-§8 and the -ngl unit rule.
 */
#include "cmocka_all.h"

#include "plan/llm.h"
#include "plan_fixtures.h"

#include <math.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)

static double mib(uint64_t b)
{
    return (double)b / MIB;
}

/* |got / want - 1| <= tol */
static void assert_within(double got, double want, double tol)
{
    double r = got / want - 1.0;
    if (fabs(r) > tol)
        fail_msg("got %.3f, want %.3f (off by %.1f%%, tolerance %.1f%%)", got, want, r * 100.0,
                 tol * 100.0);
}

static void estimate_ok(const gguf_profile *p, const plan_llm_config *cfg, plan_demand *d,
                        plan_llm_shape *s)
{
    genai_error err;
    genai_error_clear(&err);
    int rc = plan_llm_estimate(p, cfg, d, s, &err);
    if (rc != 0)
        fail_msg("estimate failed: %d %s", rc, err.detail);
}

static void test_cache_types(void **state)
{
    (void)state;
    assert_int_equal(plan_cache_row_bytes(PLAN_CACHE_F16, 256), 512);
    assert_int_equal(plan_cache_row_bytes(PLAN_CACHE_Q8_0, 256), 272);
    assert_int_equal(plan_cache_row_bytes(PLAN_CACHE_Q4_0, 64), 36);
    assert_int_equal(plan_cache_row_bytes(PLAN_CACHE_Q5_1, 32), 24);
    assert_int_equal(plan_cache_row_bytes(PLAN_CACHE_IQ4_NL, 128), 72);
    assert_int_equal(plan_cache_row_bytes(PLAN_CACHE_F32, 10), 40);
    enum plan_cache_type t;
    assert_int_equal(plan_cache_type_parse("q8_0", &t), 0);
    assert_int_equal(t, PLAN_CACHE_Q8_0);
    assert_int_equal(plan_cache_type_parse("BF16", &t), 0);
    assert_int_equal(t, PLAN_CACHE_BF16);
    assert_int_equal(plan_cache_type_parse("q3_k", &t), GENAI_EBAD_ARG);
    assert_int_equal(plan_cache_type_parse("default", &t), GENAI_EBAD_ARG);
    assert_int_equal(plan_pad256(1), 256);
    assert_int_equal(plan_pad256(256), 256);
    assert_int_equal(plan_pad256(8193), 8448);
}

/* KV buffer sizes of memory.md §4 "Checked examples". */
static void test_kv_reference(void **state)
{
    (void)state;
    gguf_profile big, tiny;
    assert_int_equal(fixture_ref_big(&big), 0);
    assert_int_equal(fixture_ref_tiny(&tiny), 0);
    plan_llm_config cfg;
    plan_demand d;
    plan_llm_shape s;

    plan_llm_config_init(&cfg); /* no -c: n_ctx_train = 8192 */
    estimate_ok(&big, &cfg, &d, &s);
    assert_int_equal(s.n_ctx, 8192);
    assert_int_equal(s.n_seq, 4);
    assert_true(s.kv_unified);
    assert_int_equal(s.kv_bytes, 128ull << 20);
    assert_int_equal(d.host_parts.kv, 128ull << 20);

    cfg.type_k = PLAN_CACHE_Q8_0;
    cfg.type_v = PLAN_CACHE_Q8_0;
    estimate_ok(&big, &cfg, &d, &s);
    assert_int_equal(s.kv_bytes, 68ull << 20);

    plan_llm_config_init(&cfg);
    cfg.n_ctx = 4096;
    cfg.n_parallel = 2; /* -kvu defaults off with an explicit -np */
    estimate_ok(&big, &cfg, &d, &s);
    assert_false(s.kv_unified);
    assert_int_equal(s.n_stream, 2);
    assert_int_equal(s.cells, 2048);
    assert_int_equal(s.kv_bytes, 64ull << 20);

    plan_llm_config_init(&cfg);
    cfg.n_ctx = 1024;
    estimate_ok(&big, &cfg, &d, &s);
    assert_int_equal(s.kv_bytes, 16ull << 20);

    plan_llm_config_init(&cfg);
    cfg.n_ctx = 512;
    estimate_ok(&tiny, &cfg, &d, &s);
    assert_int_equal(s.kv_bytes, 256ull << 10);
    cfg.n_ctx = 2048;
    cfg.n_parallel = 1;
    estimate_ok(&tiny, &cfg, &d, &s);
    assert_int_equal(s.kv_bytes, 1ull << 20);

    /* -c 4096 -np 3: 1536 cells per slot, n_ctx raised to 4608. */
    plan_llm_config_init(&cfg);
    cfg.n_ctx = 4096;
    cfg.n_parallel = 3;
    estimate_ok(&big, &cfg, &d, &s);
    assert_int_equal(s.cells, 1536);
    assert_int_equal(s.n_ctx, 4608);
    /* -c 1000 pads to 1024. */
    cfg.n_ctx = 1000;
    cfg.n_parallel = PLAN_PARALLEL_AUTO;
    estimate_ok(&big, &cfg, &d, &s);
    assert_int_equal(s.n_ctx, 1024);
    fixture_profile_free(&big);
    fixture_profile_free(&tiny);
}

/* Weights = tensor bytes; RSS split of §8 within 10 %. */
static void test_weights_and_rss(void **state)
{
    (void)state;
    gguf_profile big;
    assert_int_equal(fixture_ref_big(&big), 0);
    assert_int_equal(big.tensor_bytes, 362123264ull);
    plan_llm_config cfg;
    plan_demand d;
    plan_llm_shape s;
    uint64_t anon, file;
    static const struct {
        uint32_t n_ctx, np;
        enum plan_cache_type kv;
        int mmap;
        double rss_anon_mb, rss_file_mb;
    } cases[] = {
        {1024, 0, PLAN_CACHE_F16, 1, 21.5, 368}, {8192, 0, PLAN_CACHE_F16, 1, 137, 368},
        {8192, 0, PLAN_CACHE_Q8_0, 1, 75, 368},  {8192, 0, PLAN_CACHE_F16, 0, 490, 14.5},
        {4096, 2, PLAN_CACHE_F16, 1, 71, 368},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        plan_llm_config_init(&cfg);
        cfg.n_ctx = cases[i].n_ctx;
        cfg.n_parallel = cases[i].np;
        cfg.type_k = cfg.type_v = cases[i].kv;
        cfg.use_mmap = cases[i].mmap;
        estimate_ok(&big, &cfg, &d, &s);
        assert_int_equal(d.host_parts.weights, 362123264ull);
        assert_within(mib(d.host_parts.weights), 345.35, 0.0001);
        plan_demand_resident(&d, &anon, &file);
        assert_within((double)anon / 1e6, cases[i].rss_anon_mb, 0.10);
        assert_within((double)file / 1e6, cases[i].rss_file_mb, 0.10);
        /* The budget counts the whole compute buffer and the prompt cache. */
        assert_int_equal(d.host_growth, d.host_parts.compute + (8192ull << 20));
        assert_true(d.host_anon >= anon + d.host_growth);
        assert_int_equal(d.n_gpus, 0);
        assert_int_equal(d.tier, PLAN_TIER_ESTIMATE);
    }
    fixture_profile_free(&big);
}

/* Compute buffer model against memory.md §5. */
static void test_compute_reference(void **state)
{
    (void)state;
    gguf_profile big, tiny;
    assert_int_equal(fixture_ref_big(&big), 0);
    assert_int_equal(fixture_ref_tiny(&tiny), 0);
    plan_llm_config cfg;
    plan_demand d;
    plan_llm_shape s;

    plan_llm_config_init(&cfg);
    cfg.flash_attn = PLAN_FA_OFF;
    estimate_ok(&big, &cfg, &d, &s);
    assert_false(s.flash_attn);
    assert_within(mib(d.host_parts.compute), 283.01, 0.03);

    static const struct {
        uint32_t n_ctx, np;
        enum plan_cache_type kv;
        double obs;
    } fa[] = {{1024, 0, PLAN_CACHE_F16, 25.51},
              {8192, 0, PLAN_CACHE_F16, 32.51},
              {32768, 0, PLAN_CACHE_F16, 56},
              {4096, 2, PLAN_CACHE_F16, 26.51},
              {8192, 0, PLAN_CACHE_Q8_0, 30.54}};
    for (size_t i = 0; i < sizeof(fa) / sizeof(fa[0]); i++) {
        plan_llm_config_init(&cfg);
        cfg.n_ctx = fa[i].n_ctx;
        cfg.n_parallel = fa[i].np;
        cfg.type_k = cfg.type_v = fa[i].kv;
        estimate_ok(&big, &cfg, &d, &s);
        assert_true(s.flash_attn);
        assert_within(mib(d.host_parts.compute), fa[i].obs, 0.06);
    }
    plan_llm_config_init(&cfg);
    cfg.n_ctx = 512;
    estimate_ok(&tiny, &cfg, &d, &s);
    assert_within(mib(d.host_parts.compute), 2.51, 0.10);
    fixture_profile_free(&big);
    fixture_profile_free(&tiny);
}

/* -ngl N: the output layer first, then the LAST N-1 repeating layers. */
static void test_ngl_units(void **state)
{
    (void)state;
    gguf_profile big;
    assert_int_equal(fixture_ref_big(&big), 0);
    plan_llm_config cfg;
    plan_demand d;
    plan_llm_shape s;
    uint64_t layer = big.layer_bytes[0];
    uint64_t kv_layer = 8192ull * 1024; /* 16 KiB per cell over 16 layers */

    plan_llm_config_init(&cfg);
    cfg.n_gpus = 1;
    cfg.n_gpu_layers = 1;
    estimate_ok(&big, &cfg, &d, &s);
    assert_int_equal(s.output_device, 0);
    assert_int_equal(s.gpu_layers[0], 0);
    assert_int_equal(d.gpu_parts[0].weights, big.output_bytes);
    assert_int_equal(d.gpu_parts[0].kv, 0);
    assert_int_equal(d.host_parts.weights, big.tensor_bytes - big.output_bytes);

    cfg.n_gpu_layers = 2;
    estimate_ok(&big, &cfg, &d, &s);
    assert_int_equal(s.gpu_layers[0], 1);
    assert_int_equal(d.gpu_parts[0].weights, big.output_bytes + layer);
    assert_int_equal(d.gpu_parts[0].kv, kv_layer); /* KV follows its layer */
    assert_int_equal(d.host_parts.kv, 15 * kv_layer);
    assert_int_equal(d.gpu_parts[0].driver, PLAN_DRIVER_GPU_BYTES);
    assert_int_equal(d.gpu[0], d.gpu_parts[0].weights + d.gpu_parts[0].kv + d.gpu_parts[0].compute +
                                   d.gpu_parts[0].driver);

    cfg.n_gpu_layers = 17;
    estimate_ok(&big, &cfg, &d, &s);
    assert_int_equal(s.gpu_units, 17);
    assert_int_equal(s.gpu_layers[0], 16);
    assert_int_equal(d.host_parts.weights, big.token_embd_bytes); /* token_embd stays */
    assert_int_equal(d.host_parts.kv, 0);
    /* Everything offloaded: the host compute buffer is the small one. */
    assert_true(d.host_parts.compute < d.gpu_parts[0].compute);
    /* mmap: the host-resident weights are file-backed. */
    assert_int_equal(d.host_file, big.token_embd_bytes + PLAN_LLM_RUNTIME_FILE);

    cfg.n_gpu_layers = 99; /* more than n_layer + 1 clamps */
    estimate_ok(&big, &cfg, &d, &s);
    assert_int_equal(s.gpu_units, 17);

    cfg.no_kv_offload = 1;
    estimate_ok(&big, &cfg, &d, &s);
    assert_int_equal(d.gpu_parts[0].kv, 0);
    assert_int_equal(d.host_parts.kv, 128ull << 20);

    /* No GPU: -ngl is ignored, as on a build without offload. */
    plan_llm_config_init(&cfg);
    cfg.n_gpu_layers = 10;
    estimate_ok(&big, &cfg, &d, &s);
    assert_int_equal(s.gpu_units, 0);
    assert_int_equal(d.host_parts.driver, 0);

    /* Two GPUs, even split: 9 layers on GPU 0, 7 + output on GPU 1. */
    plan_llm_config_init(&cfg);
    cfg.n_gpus = 2;
    cfg.n_gpu_layers = 17;
    estimate_ok(&big, &cfg, &d, &s);
    assert_int_equal(s.gpu_layers[0], 9);
    assert_int_equal(s.gpu_layers[1], 7);
    assert_int_equal(s.output_device, 1);
    assert_int_equal(d.gpu_parts[0].weights, 9 * layer);
    assert_int_equal(d.gpu_parts[1].weights, 7 * layer + big.output_bytes);
    /* A 3:1 split puts 3/4 of the units on GPU 0. */
    cfg.tensor_split[0] = 3.0f;
    cfg.tensor_split[1] = 1.0f;
    estimate_ok(&big, &cfg, &d, &s);
    assert_int_equal(s.gpu_layers[0], 13);
    assert_int_equal(s.gpu_layers[1], 3);
    fixture_profile_free(&big);
}

static void test_validity(void **state)
{
    (void)state;
    gguf_profile big;
    assert_int_equal(fixture_ref_big(&big), 0);
    plan_llm_config cfg;
    plan_demand d;
    genai_error err;

    plan_llm_config_init(&cfg);
    cfg.type_v = PLAN_CACHE_Q8_0;
    cfg.flash_attn = PLAN_FA_OFF;
    assert_int_equal(plan_llm_estimate(&big, &cfg, &d, NULL, &err), GENAI_EBAD_ARG);
    assert_non_null(strstr(err.detail, "flash attention"));

    /* A quantized K cache alone works without FA. */
    cfg.type_v = PLAN_CACHE_F16;
    cfg.type_k = PLAN_CACHE_Q8_0;
    assert_int_equal(plan_llm_estimate(&big, &cfg, &d, NULL, &err), 0);

    /* -fa auto with a quantized V cache: FA is forced on. */
    plan_llm_config_init(&cfg);
    cfg.type_v = PLAN_CACHE_Q4_0;
    plan_llm_shape s;
    assert_int_equal(plan_llm_estimate(&big, &cfg, &d, &s, &err), 0);
    assert_true(s.flash_attn);

    /* Head dimension 40 with FA and a quantized cache is refused. */
    big.key_length = big.value_length = 40;
    assert_int_equal(plan_llm_estimate(&big, &cfg, &d, NULL, &err), GENAI_EBAD_ARG);
    assert_non_null(strstr(err.detail, "divisible by 32"));
    big.key_length = big.value_length = 64;

    /* No context length anywhere. */
    plan_llm_config_init(&cfg);
    big.n_ctx_train = 0;
    assert_int_equal(plan_llm_estimate(&big, &cfg, &d, NULL, &err), GENAI_EBAD_ARG);
    big.n_ctx_train = 8192;

    cfg.n_gpus = PLAN_MAX_GPUS + 1;
    assert_int_equal(plan_llm_estimate(&big, &cfg, &d, NULL, &err), GENAI_EBAD_ARG);

    uint64_t *lb = big.layer_bytes;
    big.layer_bytes = NULL;
    plan_llm_config_init(&cfg);
    assert_int_equal(plan_llm_estimate(&big, &cfg, &d, NULL, NULL), GENAI_EBAD_ARG);
    big.layer_bytes = lb;
    fixture_profile_free(&big);
}

/* Sliding-window cells, layers without KV, per-layer KV heads. */
static void test_swa_and_layers(void **state)
{
    (void)state;
    gguf_profile p;
    assert_int_equal(fixture_llama(&p, 6, 1024, 16, 4, 2816, 131072, 1000, 2), 0);
    p.n_swa = 1024;
    for (uint32_t l = 0; l < 6; l++)
        p.swa_layer[l] = (l % 3) != 2; /* layers 2 and 5 are global */
    plan_llm_config cfg;
    plan_demand d;
    plan_llm_shape s;
    uint64_t cell = 256 * 2 * 2; /* 4 heads x 64, K and V, f16 */

    plan_llm_config_init(&cfg);
    cfg.n_ctx = 32768;
    estimate_ok(&p, &cfg, &d, &s);
    /* n_swa x 4 slots (unified) + ub 512 = 4608. */
    assert_int_equal(s.swa_cells, 4608);
    assert_int_equal(s.kv_bytes, 2 * 32768 * cell + 4 * 4608 * cell);

    cfg.swa_full = 1;
    estimate_ok(&p, &cfg, &d, &s);
    assert_int_equal(s.swa_cells, 32768);
    assert_int_equal(s.kv_bytes, 6 * 32768 * cell);

    /* Not unified: per stream, n_swa x 1 + ub. */
    plan_llm_config_init(&cfg);
    cfg.n_ctx = 8192;
    cfg.n_parallel = 2;
    estimate_ok(&p, &cfg, &d, &s);
    assert_int_equal(s.cells, 4096);
    assert_int_equal(s.swa_cells, 1536);
    assert_int_equal(s.kv_bytes, 2 * (2 * 4096 * cell + 4 * 1536 * cell));

    /* A window wider than the context uses the context. */
    plan_llm_config_init(&cfg);
    cfg.n_ctx = 2048;
    estimate_ok(&p, &cfg, &d, &s);
    assert_int_equal(s.swa_cells, 2048);

    /* Recurrent layers have no KV; per-layer KV heads count per layer. */
    memset(p.swa_layer, 0, 6);
    p.has_kv[0] = 0;
    p.head_count_kv[1] = 8;
    plan_llm_config_init(&cfg);
    cfg.n_ctx = 1024;
    estimate_ok(&p, &cfg, &d, &s);
    assert_int_equal(s.kv_bytes, 1024 * (4 * cell + 2 * cell));

    /* FA off: V rows are padded to the widest layer (8 heads). */
    cfg.flash_attn = PLAN_FA_OFF;
    estimate_ok(&p, &cfg, &d, &s);
    uint64_t k4 = 256 * 2, k8 = 512 * 2, v8 = 512 * 2;
    assert_int_equal(s.kv_bytes, 1024 * (4 * (k4 + v8) + (k8 + v8)));
    fixture_profile_free(&p);
}

static void test_extras(void **state)
{
    (void)state;
    gguf_profile p;
    assert_int_equal(fixture_llama(&p, 4, 1024, 16, 4, 2816, 4096, 150000, 2), 0);
    plan_llm_config cfg;
    plan_demand d;
    plan_llm_shape s;
    plan_llm_config_init(&cfg);
    cfg.cache_ram_mib = 0;
    estimate_ok(&p, &cfg, &d, &s);
    /* 150k vocabulary x 4 slots x 4 B = 2.3 MiB (memory.md §6). */
    assert_int_equal(d.host_parts.output, 150000ull * 4 * 4);
    assert_int_equal(d.host_parts.prompt_cache, 0);
    assert_int_equal(d.host_growth, d.host_parts.compute);
    /* The logits dominate the compute buffer of a large vocabulary. */
    assert_true(d.host_parts.compute >= 150000ull * 512 * 4);

    cfg.cache_ram_mib = 1024;
    cfg.n_gpus = 1;
    cfg.n_gpu_layers = 5;
    cfg.mmproj_bytes = 600ull << 20;
    estimate_ok(&p, &cfg, &d, &s);
    assert_int_equal(d.host_parts.prompt_cache, 1024ull << 20);
    assert_int_equal(d.host_parts.driver, PLAN_DRIVER_HOST_BYTES);
    assert_int_equal(d.gpu_parts[0].weights,
                     4 * p.layer_bytes[0] + p.output_bytes + (600ull << 20));
    /* Tied embeddings on the host share token_embd's mapping. */
    plan_llm_config_init(&cfg);
    p.output_tied = 1;
    p.output_bytes = p.token_embd_bytes + 4096;
    p.tensor_bytes = 4 * p.layer_bytes[0] + p.token_embd_bytes + 4096;
    estimate_ok(&p, &cfg, &d, &s);
    assert_int_equal(d.host_parts.weights, p.tensor_bytes);
    fixture_profile_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_types),     cmocka_unit_test(test_kv_reference),
        cmocka_unit_test(test_weights_and_rss), cmocka_unit_test(test_compute_reference),
        cmocka_unit_test(test_ngl_units),       cmocka_unit_test(test_validity),
        cmocka_unit_test(test_swa_and_layers),  cmocka_unit_test(test_extras),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
