/*
 * bench_accuracy.c - how close the planner's ESTIMATE tier comes to the
 * buffers llama-server b10470 reported for the reference models
 * (contracts/llama-server.md §13, memory.md §5, §8), and the DRY_RUN tier
 * built from the observed llama-fit-params rows (§11.2).
 *
 * Prints one line per configuration and quantity with the ratio
 * estimate / observed. Targets: weights and KV within 2 %, total within 10 %;
 * the dry-run total is an upper bound by at most 3 MiB.
 * Exits 1 when a target is missed, so the table in docs/planner.md can be
 * re-checked with one command.
 */
#include "plan/fitparams.h"
#include "plan/llm.h"
#include "plan_fixtures.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)

struct ref_case {
    const char *label;
    int tiny;
    uint32_t n_ctx, np;
    enum plan_fa fa;
    enum plan_cache_type kv;
    int mmap;
    double model, kv_mib, compute; /* runtime buffer lines, MiB */
    double rss_anon, rss_file;     /* MB (kB / 1000), 0 = not measured */
    const char *fit_print;         /* llama-fit-params Host row, NULL = not run */
};

static const struct ref_case cases[] = {
    {"ref-tiny -c 512", 1, 512, 0, PLAN_FA_AUTO, PLAN_CACHE_F16, 1, 1.43, 0.25, 2.51, 4.7, 16.0,
     "Host 1 0 2 \n"},
    {"ref-tiny -c 2048 -np 1", 1, 2048, 1, PLAN_FA_AUTO, PLAN_CACHE_F16, 1, 1.43, 1.00, 4.01, 5.4,
     15.9, "Host 1 1 4 \n"},
    {"ref-big -c 1024", 0, 1024, 0, PLAN_FA_AUTO, PLAN_CACHE_F16, 1, 345.35, 16.00, 25.51, 21.5,
     368, "Host 345 16 25 \n"},
    {"ref-big -c 8192", 0, 8192, 0, PLAN_FA_AUTO, PLAN_CACHE_F16, 1, 345.35, 128.00, 32.51, 137,
     368, "Host 345 128 32 \n"},
    {"ref-big -c 8192 -fa off", 0, 8192, 0, PLAN_FA_OFF, PLAN_CACHE_F16, 1, 345.35, 128.00, 283.01,
     137, 368, "Host 345 128 283 \n"},
    {"ref-big -c 8192 q8_0", 0, 8192, 0, PLAN_FA_ON, PLAN_CACHE_Q8_0, 1, 345.35, 68.00, 30.54, 75,
     368, "Host 345 68 30 \n"},
    {"ref-big --no-mmap", 0, 0, 0, PLAN_FA_AUTO, PLAN_CACHE_F16, 0, 345.35, 128.00, 32.51, 490,
     14.5, "Host 345 128 32 \n"},
    {"ref-big -c 4096 -np 2", 0, 4096, 2, PLAN_FA_AUTO, PLAN_CACHE_F16, 1, 345.35, 64.00, 26.51, 71,
     368, "Host 345 64 26 \n"},
    {"ref-big -c 32768 (dry run)", 0, 32768, 0, PLAN_FA_AUTO, PLAN_CACHE_F16, 1, 345, 512, 56, 0, 0,
     "Host 345 512 56 \n"},
};

static int misses;

static void line(const char *what, double est, double obs, double target)
{
    double ratio = est / obs;
    int miss = target > 0 && fabs(ratio - 1.0) > target;
    misses += miss;
    printf("  %-10s est %10.2f  obs %10.2f  ratio %.3f%s\n", what, est, obs, ratio,
           miss ? "  MISSED TARGET" : "");
}

int main(void)
{
    gguf_profile big, tiny;
    if (fixture_ref_big(&big) < 0 || fixture_ref_tiny(&tiny) < 0)
        return 1;
    printf("planner accuracy, ESTIMATE and DRY_RUN tiers vs llama-server b10470 (MiB; RSS MB)\n");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct ref_case *c = &cases[i];
        const gguf_profile *p = c->tiny ? &tiny : &big;
        plan_llm_config cfg;
        plan_llm_config_init(&cfg);
        cfg.n_ctx = c->n_ctx;
        cfg.n_parallel = c->np;
        cfg.flash_attn = c->fa;
        cfg.type_k = cfg.type_v = c->kv;
        cfg.use_mmap = c->mmap;
        plan_demand d;
        plan_llm_shape s;
        genai_error err;
        if (plan_llm_estimate(p, &cfg, &d, &s, &err) < 0) {
            printf("%s: %s\n", c->label, err.detail);
            return 1;
        }
        printf("%s\n", c->label);
        double w = d.host_parts.weights / MIB, kv = d.host_parts.kv / MIB;
        double comp = d.host_parts.compute / MIB;
        line("weights", w, c->model, 0.02);
        line("kv", kv, c->kv_mib, 0.02);
        line("compute", comp, c->compute, 0);
        line("total", w + kv + comp, c->model + c->kv_mib + c->compute, 0.10);
        if (c->rss_anon > 0) {
            uint64_t anon, file;
            plan_demand_resident(&d, &anon, &file);
            line("rss anon", anon / 1e6, c->rss_anon, 0);
            line("rss file", file / 1e6, c->rss_file, 0);
        }
        plan_fitparams_result r;
        plan_demand dry;
        if (plan_fitparams_parse(c->fit_print, strlen(c->fit_print), &r, &err) < 0 ||
            plan_fitparams_demand(&r, p, &cfg, &dry, &err) < 0) {
            printf("%s: %s\n", c->label, err.detail);
            return 1;
        }
        double dry_total =
            (dry.host_parts.weights + dry.host_parts.kv + dry.host_parts.compute) / MIB;
        /* The dry run charges each floored value + 1 MiB: it must be an
         * upper bound, by at most 3 MiB (one per field). */
        double obs_total = c->model + c->kv_mib + c->compute;
        line("dry total", dry_total, obs_total, 0);
        if (dry_total < obs_total || dry_total - obs_total > 3.0) {
            printf("  dry total is not within [obs, obs + 3 MiB]  MISSED TARGET\n");
            misses++;
        }
    }
    fixture_profile_free(&big);
    fixture_profile_free(&tiny);
    printf("%s: %d target(s) missed\n", misses ? "FAIL" : "OK", misses);
    return misses ? 1 : 0;
}
