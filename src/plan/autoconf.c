/*
 * autoconf.c - auto-configuration on top of plan_fit() (see autoconf.h).
 */
#include "plan/autoconf.h"

#include "core/log.h"

#include <string.h>

#define MOD "plan"

/* One candidate: estimate and fit; 1 when it fits, 0 when not, < 0 on an
 * estimate error. Keeps the closest miss in *best_miss. */
struct search {
    const gguf_profile *p;
    const plan_fit_env *env;
    plan_llm_choice best_miss;
    uint64_t best_miss_deficit;
    int have_miss;
};

static uint64_t total_deficit(const plan_fit_result *r)
{
    uint64_t sum = r->host_deficit;
    for (uint32_t i = 0; i < r->n_gpus; i++)
        sum += r->gpu_deficit[i];
    return sum;
}

static int try_config(struct search *s, const plan_llm_config *cfg, plan_llm_choice *out,
                      genai_error *err)
{
    plan_llm_choice c;
    c.cfg = *cfg;
    int rc = plan_llm_estimate(s->p, cfg, &c.demand, &c.shape, err);
    if (rc < 0)
        return rc;
    rc = plan_fit(s->env, &c.demand, &c.fit, NULL);
    if (rc == 0) {
        *out = c;
        return 1;
    }
    uint64_t def = total_deficit(&c.fit);
    if (!s->have_miss || def < s->best_miss_deficit) {
        s->best_miss = c;
        s->best_miss_deficit = def;
        s->have_miss = 1;
    }
    return 0;
}

static uint32_t pick_threads(const probe_snapshot *snap)
{
    const probe_cpu *cpu = &snap->cpu;
    uint32_t n = cpu->physical != 0 ? cpu->physical : cpu->usable;
    if (n == 0)
        n = cpu->logical;
    if (cpu->usable != 0 && n > cpu->usable)
        n = cpu->usable;
    return n != 0 ? n : 1;
}

/* Sets n_gpus and, unless base fixed it, tensor_split from usable memory. */
static void pick_gpus(const plan_fit_env *env, const plan_llm_config *base, plan_llm_config *cfg)
{
    uint32_t n = env->snap->n_gpus < PLAN_MAX_GPUS ? env->snap->n_gpus : PLAN_MAX_GPUS;
    cfg->n_gpus = n;
    int fixed = 0;
    for (uint32_t i = 0; i < PLAN_MAX_GPUS; i++)
        fixed |= base->tensor_split[i] > 0.0f;
    if (fixed || n < 2)
        return;
    for (uint32_t i = 0; i < n; i++)
        cfg->tensor_split[i] = (float)((double)plan_gpu_usable(env, i) / (double)PLAN_MIB);
}

int plan_llm_autoconfig(const gguf_profile *p, const plan_llm_config *base, const plan_fit_env *env,
                        uint32_t ctx_floor, plan_llm_choice *out, genai_error *err)
{
    if (p == NULL || base == NULL || env == NULL || env->snap == NULL || out == NULL)
        return err_set(err, GENAI_EBAD_ARG, "plan_llm_autoconfig: missing argument");

    plan_llm_config cfg = *base;
    pick_gpus(env, base, &cfg);
    if (cfg.threads == PLAN_THREADS_AUTO)
        cfg.threads = pick_threads(env->snap);

    /* Context range in units of 256 tokens. */
    uint32_t ctx_max = p->n_ctx_train & ~(uint32_t)255;
    if (ctx_max == 0)
        ctx_max = 256;
    uint32_t floor = ctx_floor != 0 ? ctx_floor : PLAN_DEFAULT_CTX_FLOOR;
    floor = plan_pad256(floor);
    if (floor > ctx_max)
        floor = ctx_max;
    int ctx_fixed = base->n_ctx != 0;
    cfg.n_ctx = ctx_fixed ? base->n_ctx : floor;

    /* KV candidates: f16, then q8_0 with flash attention. */
    int kv_fixed = base->type_k != PLAN_CACHE_DEFAULT || base->type_v != PLAN_CACHE_DEFAULT;
    int q8_ok =
        base->flash_attn != PLAN_FA_OFF && p->key_length % 32 == 0 && p->value_length % 32 == 0;
    int n_kv_candidates = kv_fixed ? 1 : (q8_ok ? 2 : 1);

    int ngl_fixed = base->n_gpu_layers != PLAN_NGL_AUTO;
    int32_t ngl_top = cfg.n_gpus == 0 ? 0 : (int32_t)p->n_layer + 1;

    struct search s = {.p = p, .env = env};
    plan_llm_choice found;
    int have = 0;
    for (int k = 0; k < n_kv_candidates && !have; k++) {
        if (!kv_fixed) {
            cfg.type_k = k == 0 ? PLAN_CACHE_F16 : PLAN_CACHE_Q8_0;
            cfg.type_v = cfg.type_k;
            if (k == 1 && cfg.flash_attn == PLAN_FA_AUTO)
                cfg.flash_attn = PLAN_FA_ON;
        }
        int32_t lo = ngl_fixed ? base->n_gpu_layers : 0;
        int32_t hi = ngl_fixed ? base->n_gpu_layers : ngl_top;
        for (int32_t ngl = hi; ngl >= lo && !have; ngl--) {
            cfg.n_gpu_layers = ngl;
            int rc = try_config(&s, &cfg, &found, err);
            if (rc < 0)
                return rc;
            have = rc;
        }
    }
    if (!have) {
        *out = s.best_miss;
        return err_set(err, GENAI_ENO_FIT,
                       "no configuration fits: closest is -ngl %d -c %u (KV %s), short by "
                       "%llu MiB",
                       s.best_miss.cfg.n_gpu_layers, s.best_miss.shape.n_ctx,
                       plan_cache_type_name(s.best_miss.shape.type_k),
                       (unsigned long long)((s.best_miss_deficit + PLAN_MIB - 1) / PLAN_MIB));
    }

    if (!ctx_fixed) {
        /* Largest k in [floor/256, ctx_max/256] that fits; floor fits. */
        uint32_t lo = floor / 256, hi = ctx_max / 256;
        cfg = found.cfg;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo + 1) / 2;
            cfg.n_ctx = mid * 256;
            plan_llm_choice c;
            int rc = try_config(&s, &cfg, &c, err);
            if (rc < 0)
                return rc;
            if (rc == 1) {
                lo = mid;
                found = c;
            } else {
                hi = mid - 1;
            }
        }
    }
    LOG_DEBUG(MOD, "auto-config: -ngl %d -c %u -ctk %s -fa %s -t %u", found.cfg.n_gpu_layers,
              found.cfg.n_ctx, plan_cache_type_name(found.shape.type_k),
              plan_fa_name(found.cfg.flash_attn), found.cfg.threads);
    *out = found;
    return 0;
}

int plan_sd_autoconfig(const plan_sd_model *m, const plan_sd_request *req,
                       const plan_sd_placement *base, const plan_fit_env *env, plan_sd_choice *out,
                       genai_error *err)
{
    if (m == NULL || req == NULL || base == NULL || env == NULL || env->snap == NULL || out == NULL)
        return err_set(err, GENAI_EBAD_ARG, "plan_sd_autoconfig: missing argument");

    plan_sd_placement pl = *base;
    if (pl.gpu >= 0 && (uint32_t)pl.gpu >= env->snap->n_gpus)
        pl.gpu = -1;
    plan_sd_choice c;
    for (int step = 0; step <= 5; step++) {
        switch (step) {
        case 1:
            pl.diffusion_fa = 1;
            break;
        case 2:
            pl.vae_tiling = 1;
            break;
        case 3:
            pl.te_on_cpu = 1;
            break;
        case 4:
            pl.vae_on_cpu = 1;
            break;
        case 5:
            pl.offload_to_cpu = 1;
            break;
        default:
            break;
        }
        /* On the CPU the GPU-only steps change nothing; skip them. */
        if (pl.gpu < 0 && step >= 3)
            break;
        int rc = plan_sd_estimate(m, req, &pl, &c.demand, err);
        if (rc < 0)
            return rc;
        c.placement = pl;
        rc = plan_fit(env, &c.demand, &c.fit, NULL);
        if (rc == 0) {
            *out = c;
            return 0;
        }
    }
    *out = c;
    return err_set(err, GENAI_ENO_FIT,
                   "image %ux%u does not fit with any placement: short by %llu MiB", req->width,
                   req->height,
                   (unsigned long long)((total_deficit(&c.fit) + PLAN_MIB - 1) / PLAN_MIB));
}
