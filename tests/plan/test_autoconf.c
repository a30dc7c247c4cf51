/*
 * test_autoconf.c - auto-configuration for LLMs (layers, context, KV type,
 * threads) and the diffusion placement ladder, on fake machines.
 */
#include "cmocka_all.h"

#include "plan/autoconf.h"
#include "plan_fixtures.h"

#include <string.h>

#define GIB (1ull << 30)
#define MIB (1ull << 20)

/* The scenario of the brief: a 12B-like model (48 layers) on an 8 GB GPU
 * with a desktop holding 300 MiB; about 44 of 48 layers go to the GPU. */
static void test_12b_on_8gb(void **state)
{
    (void)state;
    gguf_profile p;
    assert_int_equal(fixture_12b(&p), 0);
    probe_snapshot snap;
    assert_int_equal(fixture_snapshot(&snap, 1, 8 * GIB, 4 * GIB), 0);
    snap.gpus[0].free = 8 * GIB - 300 * MIB;
    plan_fit_env env;
    plan_fit_env_init(&env, &snap);

    plan_llm_config base;
    plan_llm_config_init(&base);
    base.cache_ram_mib = 256;
    plan_llm_choice c;
    genai_error err;
    genai_error_clear(&err);
    int rc = plan_llm_autoconfig(&p, &base, &env, 0, &c, &err);
    if (rc != 0)
        fail_msg("autoconfig: %d %s", rc, err.detail);
    print_message("12b-like on 8 GiB: -ngl %d (%u layers) -c %u, GPU %.2f GB, host %.2f GB\n",
                  c.cfg.n_gpu_layers, c.shape.gpu_layers[0], c.shape.n_ctx,
                  (double)c.demand.gpu[0] / 1e9,
                  (double)(c.demand.host_anon + c.demand.host_file) / 1e9);
    assert_true(c.fit.fits);
    assert_int_equal(c.cfg.n_gpus, 1);
    assert_in_range(c.shape.gpu_layers[0], 40, 47);
    assert_int_equal(c.shape.output_device, 0);
    assert_true(c.demand.gpu[0] > 6500000000ull && c.demand.gpu[0] < 8 * GIB);
    assert_true(c.shape.n_ctx >= PLAN_DEFAULT_CTX_FLOOR);
    assert_int_equal(c.shape.type_k, PLAN_CACHE_F16);
    assert_int_equal(c.cfg.threads, 8); /* physical cores */

    /* One more unit does not fit, even at the floor context: the choice is
     * the most layers. */
    plan_llm_config more = c.cfg;
    more.n_gpu_layers++;
    more.n_ctx = PLAN_DEFAULT_CTX_FLOOR;
    plan_demand d;
    plan_fit_result r;
    assert_int_equal(plan_llm_estimate(&p, &more, &d, NULL, NULL), 0);
    assert_int_equal(plan_fit(&env, &d, &r, NULL), GENAI_ENO_FIT);
    assert_true(r.gpu_deficit[0] > 0);

    /* The reload check charges only the CPU-side layers to host RAM: the
     * model (7.6 GB) is larger than the 4 GiB host, yet it fits. */
    uint64_t host = c.demand.host_anon + c.demand.host_file;
    assert_true(p.tensor_bytes > plan_host_usable(&env));
    assert_true(host < plan_host_usable(&env));
    assert_true(c.demand.host_parts.weights <
                p.tensor_bytes - (uint64_t)c.shape.gpu_layers[0] * p.layer_bytes[0]);
    /* Charged to the host alone (no GPU), the same model does not fit. */
    plan_llm_config cpu = c.cfg;
    cpu.n_gpus = 0;
    cpu.n_ctx = PLAN_DEFAULT_CTX_FLOOR;
    assert_int_equal(plan_llm_estimate(&p, &cpu, &d, NULL, NULL), 0);
    assert_int_equal(plan_fit(&env, &d, &r, NULL), GENAI_ENO_FIT);
    assert_true(r.host_deficit > 0);

    fixture_snapshot_free(&snap);
    fixture_profile_free(&p);
}

/* Plenty of memory: all layers and the full trained context. */
static void test_big_gpu_full_context(void **state)
{
    (void)state;
    gguf_profile p;
    assert_int_equal(fixture_12b(&p), 0);
    probe_snapshot snap;
    assert_int_equal(fixture_snapshot(&snap, 1, 80 * GIB, 64 * GIB), 0);
    plan_fit_env env;
    plan_fit_env_init(&env, &snap);
    plan_llm_config base;
    plan_llm_config_init(&base);
    plan_llm_choice c;
    assert_int_equal(plan_llm_autoconfig(&p, &base, &env, 0, &c, NULL), 0);
    assert_int_equal(c.cfg.n_gpu_layers, 49);
    assert_int_equal(c.shape.n_ctx, 32768);

    /* A fixed context and fixed layers are kept. */
    base.n_ctx = 5000;
    base.n_gpu_layers = 20;
    assert_int_equal(plan_llm_autoconfig(&p, &base, &env, 0, &c, NULL), 0);
    assert_int_equal(c.cfg.n_gpu_layers, 20);
    assert_int_equal(c.shape.n_ctx, 5120);
    fixture_snapshot_free(&snap);
    fixture_profile_free(&p);
}

/* CPU only: the context shrinks towards the floor, then q8_0 KV with FA,
 * then NO_FIT with the deficit of the closest configuration. */
static void test_cpu_context_and_kv(void **state)
{
    (void)state;
    gguf_profile p;
    assert_int_equal(fixture_12b(&p), 0);
    plan_llm_config base;
    plan_llm_config_init(&base);
    base.cache_ram_mib = 0;
    plan_llm_choice c;
    genai_error err;
    uint64_t kv_per_token = 48ull * 8 * 128 * 2 * 2; /* 192 KiB at f16 */

    /* Compute the host need at a given context to size the machine. */
    plan_llm_config probe_cfg = base;
    probe_cfg.n_ctx = 16384;
    probe_cfg.type_k = probe_cfg.type_v = PLAN_CACHE_F16;
    plan_demand d;
    assert_int_equal(plan_llm_estimate(&p, &probe_cfg, &d, NULL, NULL), 0);
    uint64_t need16k = d.host_anon + d.host_file;

    probe_snapshot snap;
    assert_int_equal(fixture_snapshot(&snap, 0, 0, need16k + PLAN_DEFAULT_HOST_RESERVE + 1), 0);
    plan_fit_env env;
    plan_fit_env_init(&env, &snap);
    assert_int_equal(plan_llm_autoconfig(&p, &base, &env, 0, &c, &err), 0);
    assert_int_equal(c.cfg.n_gpu_layers, 0);
    /* 16384 fits with one byte to spare; the next step (16640) needs 48 MiB more. */
    assert_int_equal(c.shape.n_ctx, 16384);
    assert_int_equal(c.shape.type_k, PLAN_CACHE_F16);

    /* Too small for f16 at the 4096 floor, big enough for q8_0. */
    probe_cfg.n_ctx = 4096;
    assert_int_equal(plan_llm_estimate(&p, &probe_cfg, &d, NULL, NULL), 0);
    uint64_t need4k = d.host_anon + d.host_file;
    snap.mem.effective_available = need4k + PLAN_DEFAULT_HOST_RESERVE - kv_per_token * 1024;
    assert_int_equal(plan_llm_autoconfig(&p, &base, &env, 0, &c, &err), 0);
    assert_int_equal(c.shape.type_k, PLAN_CACHE_Q8_0);
    assert_int_equal(c.shape.type_v, PLAN_CACHE_Q8_0);
    assert_int_equal(c.cfg.flash_attn, PLAN_FA_ON);
    assert_true(c.shape.n_ctx >= 4096);

    /* A lower floor lets f16 fit with a smaller context. */
    assert_int_equal(plan_llm_autoconfig(&p, &base, &env, 2048, &c, &err), 0);
    assert_int_equal(c.shape.type_k, PLAN_CACHE_F16);
    assert_in_range(c.shape.n_ctx, 2048, 4095);

    /* FA forced off: no q8_0 fallback, so nothing fits. */
    base.flash_attn = PLAN_FA_OFF;
    snap.mem.effective_available = 2 * GIB;
    assert_int_equal(plan_llm_autoconfig(&p, &base, &env, 0, &c, &err), GENAI_ENO_FIT);
    assert_false(c.fit.fits);
    assert_true(c.fit.host_deficit > 0);
    assert_non_null(strstr(err.detail, "short by"));
    fixture_snapshot_free(&snap);
    fixture_profile_free(&p);
}

/* Two GPUs: layers split by usable memory, all layers when they fit. */
static void test_two_gpus(void **state)
{
    (void)state;
    gguf_profile p;
    assert_int_equal(fixture_12b(&p), 0);
    probe_snapshot snap;
    assert_int_equal(fixture_snapshot(&snap, 2, 6 * GIB, 16 * GIB), 0);
    snap.gpus[1].free = 3 * GIB;
    plan_fit_env env;
    plan_fit_env_init(&env, &snap);
    plan_llm_config base;
    plan_llm_config_init(&base);
    plan_llm_choice c;
    genai_error err;
    int rc = plan_llm_autoconfig(&p, &base, &env, 0, &c, &err);
    if (rc != 0)
        fail_msg("autoconfig: %d %s", rc, err.detail);
    assert_int_equal(c.cfg.n_gpus, 2);
    assert_true(c.cfg.tensor_split[0] > c.cfg.tensor_split[1]);
    assert_true(c.shape.gpu_layers[0] > c.shape.gpu_layers[1]);
    assert_true(c.demand.gpu[0] <= plan_gpu_usable(&env, 0));
    assert_true(c.demand.gpu[1] <= plan_gpu_usable(&env, 1));
    fixture_snapshot_free(&snap);
    fixture_profile_free(&p);
}

/* SD1-like: 1.6 GiB of params at 512x512 on small GPUs. */
static void test_sd_ladder(void **state)
{
    (void)state;
    plan_sd_model m = {
        .diffusion_bytes = 1640 * MIB, .text_encoder_bytes = 235 * MIB, .vae_bytes = 95 * MIB};
    plan_sd_request req = {.width = 512, .height = 512, .batch = 1};
    plan_sd_placement base = {.gpu = 0};
    probe_snapshot snap;
    assert_int_equal(fixture_snapshot(&snap, 1, 8 * GIB, 16 * GIB), 0);
    plan_fit_env env;
    plan_fit_env_init(&env, &snap);
    plan_sd_choice c;
    genai_error err;

    /* Everything fits on 8 GiB: no flag needed. */
    assert_int_equal(plan_sd_autoconfig(&m, &req, &base, &env, &c, &err), 0);
    assert_false(c.placement.diffusion_fa);
    assert_false(c.placement.te_on_cpu);

    /* Size the GPU to each step's need: the ladder must stop at the first
     * step that fits. A step can save nothing (FA when the VAE buffer is the
     * peak; offload with one module left on the GPU): then an earlier,
     * equally small step is the answer. */
    plan_sd_placement pl = base;
    plan_demand d;
    uint64_t need[6];
    for (int step = 0; step < 6; step++) {
        if (step == 1)
            pl.diffusion_fa = 1;
        if (step == 2)
            pl.vae_tiling = 1;
        if (step == 3)
            pl.te_on_cpu = 1;
        if (step == 4)
            pl.vae_on_cpu = 1;
        if (step == 5)
            pl.offload_to_cpu = 1;
        assert_int_equal(plan_sd_estimate(&m, &req, &pl, &d, NULL), 0);
        need[step] = d.gpu[0];
        if (step > 0)
            assert_true(need[step] <= need[step - 1]);
    }
    /* At 512x512 the default VAE buffer (1.6 GiB) is the peak: FA alone
     * saves nothing, tiling does, and so does each CPU placement. */
    assert_int_equal(need[1], need[0]);
    assert_true(need[2] < need[1]);
    assert_true(need[3] < need[2]);
    assert_true(need[4] < need[3]);
    static const char *const want[] = {"gpu",
                                       "gpu,fa",
                                       "gpu,fa,vae-tiling",
                                       "gpu,fa,vae-tiling,te=cpu",
                                       "gpu,fa,vae-tiling,te=cpu,vae=cpu",
                                       "gpu,fa,vae-tiling,te=cpu,vae=cpu,offload-to-cpu"};
    for (int step = 0; step < 6; step++) {
        int first = step;
        while (first > 0 && need[first - 1] <= need[step])
            first--;
        snap.gpus[0].free = need[step] + PLAN_DEFAULT_GPU_RESERVE;
        assert_int_equal(plan_sd_autoconfig(&m, &req, &base, &env, &c, &err), 0);
        char s[96];
        plan_sd_placement_str(&c.placement, s, sizeof(s));
        assert_string_equal(s, want[first]);
        assert_int_equal(c.demand.gpu[0], need[step]);
    }
    /* Below the last step: NO_FIT with the deficit of the most frugal one. */
    snap.gpus[0].free = need[5] + PLAN_DEFAULT_GPU_RESERVE - 1;
    assert_int_equal(plan_sd_autoconfig(&m, &req, &base, &env, &c, &err), GENAI_ENO_FIT);
    assert_int_equal(c.fit.gpu_deficit[0], 1);
    assert_true(c.placement.offload_to_cpu);
    assert_true(need[5] < need[0]);

    /* No GPU in the snapshot: CPU placement, FA first. */
    snap.n_gpus = 0;
    assert_int_equal(plan_sd_autoconfig(&m, &req, &base, &env, &c, &err), 0);
    assert_int_equal(c.placement.gpu, -1);
    assert_int_equal(c.demand.n_gpus, 0);
    snap.n_gpus = 1;
    fixture_snapshot_free(&snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_12b_on_8gb),         cmocka_unit_test(test_big_gpu_full_context),
        cmocka_unit_test(test_cpu_context_and_kv), cmocka_unit_test(test_two_gpus),
        cmocka_unit_test(test_sd_ladder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
