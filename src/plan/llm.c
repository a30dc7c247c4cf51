/*
 * llm.c - metadata estimate of a llama-server demand (see llm.h).
 *
 * The order of work in plan_llm_estimate: resolve the configuration into a
 * shape (context, slots, streams, cells, flash attention), place every -ngl
 * unit on a device, then charge weights, KV, compute and the fixed costs to
 * the place each lives in. Source references are to llama.cpp b10470 as
 * contracts/memory.md quotes them.
 */
#include "plan/llm.h"

#include <string.h>
#include <strings.h>

struct cache_type_info {
    const char *name;
    uint32_t block;       /* elements per block */
    uint32_t block_bytes; /* bytes per block */
};

/* ggml block sizes (memory.md §4), indexed by enum plan_cache_type. */
static const struct cache_type_info cache_types[] = {
    [PLAN_CACHE_DEFAULT] = {"default", 1, 0}, [PLAN_CACHE_F32] = {"f32", 1, 4},
    [PLAN_CACHE_F16] = {"f16", 1, 2},         [PLAN_CACHE_BF16] = {"bf16", 1, 2},
    [PLAN_CACHE_Q8_0] = {"q8_0", 32, 34},     [PLAN_CACHE_Q5_1] = {"q5_1", 32, 24},
    [PLAN_CACHE_Q5_0] = {"q5_0", 32, 22},     [PLAN_CACHE_Q4_1] = {"q4_1", 32, 20},
    [PLAN_CACHE_Q4_0] = {"q4_0", 32, 18},     [PLAN_CACHE_IQ4_NL] = {"iq4_nl", 32, 18},
};

#define N_CACHE_TYPES (sizeof(cache_types) / sizeof(cache_types[0]))

void plan_llm_config_init(plan_llm_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->n_gpu_layers = PLAN_NGL_AUTO;
    cfg->n_parallel = PLAN_PARALLEL_AUTO;
    cfg->kv_unified = PLAN_KVU_DEFAULT;
    cfg->type_k = PLAN_CACHE_DEFAULT;
    cfg->type_v = PLAN_CACHE_DEFAULT;
    cfg->flash_attn = PLAN_FA_AUTO;
    cfg->use_mmap = 1;
    cfg->cache_ram_mib = PLAN_DEFAULT_CACHE_RAM_MIB;
}

uint64_t plan_cache_row_bytes(enum plan_cache_type type, uint64_t n)
{
    if ((size_t)type >= N_CACHE_TYPES)
        return 0;
    const struct cache_type_info *t = &cache_types[type];
    return (n + t->block - 1) / t->block * t->block_bytes;
}

const char *plan_cache_type_name(enum plan_cache_type type)
{
    if ((size_t)type >= N_CACHE_TYPES)
        return "unknown";
    return cache_types[type].name;
}

int plan_cache_type_parse(const char *text, enum plan_cache_type *out)
{
    for (size_t i = 1; text != NULL && i < N_CACHE_TYPES; i++) {
        if (strcasecmp(text, cache_types[i].name) == 0) {
            *out = (enum plan_cache_type)i;
            return 0;
        }
    }
    return GENAI_EBAD_ARG;
}

int plan_cache_type_is_quantized(enum plan_cache_type type)
{
    return (size_t)type < N_CACHE_TYPES && cache_types[type].block > 1;
}

const char *plan_fa_name(enum plan_fa fa)
{
    switch (fa) {
    case PLAN_FA_AUTO:
        return "auto";
    case PLAN_FA_ON:
        return "on";
    case PLAN_FA_OFF:
        return "off";
    }
    return "unknown";
}

uint32_t plan_pad256(uint32_t x)
{
    if (x > UINT32_MAX - 255)
        return UINT32_MAX & ~(uint32_t)255;
    return (x + 255) & ~(uint32_t)255;
}

static int profile_check(const gguf_profile *p, genai_error *err)
{
    if (p->n_layer == 0)
        return err_set(err, GENAI_EBAD_ARG, "model has no layers (block_count = 0)");
    if (p->head_count == NULL || p->head_count_kv == NULL || p->swa_layer == NULL ||
        p->has_kv == NULL || p->layer_bytes == NULL)
        return err_set(err, GENAI_EBAD_ARG, "model profile lacks its per-layer arrays");
    return 0;
}

/* Device of -ngl unit il (0 .. n_layer, n_layer being the output layer), or
 * -1 for the host: the rule of llama-model.cpp load_tensors (memory.md §3). */
static int unit_device(const gguf_profile *p, const plan_llm_shape *s, const double *splits,
                       uint32_t n_gpus, uint32_t il)
{
    uint32_t start = p->n_layer + 1 - s->gpu_units;
    if (s->gpu_units == 0 || il < start)
        return -1;
    double frac = (double)(il - start) / (double)s->gpu_units;
    uint32_t dev = 0;
    while (dev < n_gpus && splits[dev] <= frac)
        dev++;
    return dev < n_gpus ? (int)dev : (int)n_gpus - 1;
}

/* Cumulative, normalised split points as llama.cpp computes them. */
static void split_points(const plan_llm_config *cfg, double *splits)
{
    double sum = 0.0;
    int all_zero = 1;
    for (uint32_t i = 0; i < cfg->n_gpus; i++) {
        if (cfg->tensor_split[i] > 0.0f)
            all_zero = 0;
    }
    for (uint32_t i = 0; i < cfg->n_gpus; i++) {
        double w = all_zero ? 1.0 : (cfg->tensor_split[i] > 0.0f ? cfg->tensor_split[i] : 0.0);
        sum += w;
        splits[i] = sum;
    }
    for (uint32_t i = 0; i < cfg->n_gpus; i++)
        splits[i] /= sum;
}

int plan_llm_shape_resolve(const gguf_profile *p, const plan_llm_config *cfg, plan_llm_shape *shape,
                           genai_error *err)
{
    int rc = profile_check(p, err);
    if (rc < 0)
        return rc;
    if (cfg->n_gpus > PLAN_MAX_GPUS)
        return err_set(err, GENAI_EBAD_ARG, "%u GPUs requested, at most %d supported", cfg->n_gpus,
                       PLAN_MAX_GPUS);

    plan_llm_shape s;
    memset(&s, 0, sizeof(s));
    uint32_t n_ctx = cfg->n_ctx != 0 ? cfg->n_ctx : p->n_ctx_train;
    if (n_ctx == 0)
        return err_set(err, GENAI_EBAD_ARG,
                       "no context length: the model has no context_length, pass one");
    n_ctx = plan_pad256(n_ctx);

    s.n_seq = cfg->n_parallel != PLAN_PARALLEL_AUTO ? cfg->n_parallel : PLAN_AUTO_PARALLEL_SLOTS;
    if (cfg->kv_unified == PLAN_KVU_DEFAULT)
        s.kv_unified = cfg->n_parallel == PLAN_PARALLEL_AUTO;
    else
        s.kv_unified = cfg->kv_unified != 0;
    if (s.kv_unified) {
        s.n_stream = 1;
        s.cells = n_ctx;
        s.n_ctx = n_ctx;
    } else {
        s.n_stream = s.n_seq;
        s.cells = plan_pad256(n_ctx / s.n_seq);
        s.n_ctx = s.cells * s.n_seq; /* llama.cpp raises n_ctx to cells x slots */
    }

    s.type_k = cfg->type_k != PLAN_CACHE_DEFAULT ? cfg->type_k : PLAN_CACHE_F16;
    s.type_v = cfg->type_v != PLAN_CACHE_DEFAULT ? cfg->type_v : PLAN_CACHE_F16;
    if ((size_t)s.type_k >= N_CACHE_TYPES || (size_t)s.type_v >= N_CACHE_TYPES)
        return err_set(err, GENAI_EBAD_ARG, "unknown KV cache type");
    int quant = plan_cache_type_is_quantized(s.type_k) || plan_cache_type_is_quantized(s.type_v);
    if (cfg->flash_attn == PLAN_FA_OFF && plan_cache_type_is_quantized(s.type_v))
        return err_set(err, GENAI_EBAD_ARG,
                       "V cache type %s needs flash attention, but flash attention is off",
                       plan_cache_type_name(s.type_v));
    /* -fa auto resolves to on in the observed builds (llama-server.md §13),
     * and a quantized V cache forces it on. */
    s.flash_attn = cfg->flash_attn != PLAN_FA_OFF;
    if (s.flash_attn && quant && (p->key_length % 32 != 0 || p->value_length % 32 != 0))
        return err_set(err, GENAI_EBAD_ARG,
                       "a quantized KV cache with flash attention needs head dimensions "
                       "divisible by 32 (K %u, V %u)",
                       p->key_length, p->value_length);

    uint32_t n_batch = cfg->n_batch != 0 ? cfg->n_batch : PLAN_DEFAULT_BATCH;
    uint32_t n_ubatch = cfg->n_ubatch != 0 ? cfg->n_ubatch : PLAN_DEFAULT_UBATCH;
    if (n_ubatch > n_batch)
        n_ubatch = n_batch;
    s.n_ubatch = n_ubatch < s.n_ctx ? n_ubatch : s.n_ctx;

    int any_swa = 0;
    for (uint32_t l = 0; l < p->n_layer; l++)
        any_swa |= p->swa_layer[l] != 0;
    if (any_swa && p->n_swa > 0) {
        uint64_t want = (uint64_t)p->n_swa * (s.kv_unified ? s.n_seq : 1) + n_ubatch;
        s.swa_cells = cfg->swa_full || want >= s.cells ? s.cells : plan_pad256((uint32_t)want);
    } else if (any_swa) {
        s.swa_cells = s.cells; /* a pattern without a window size: price as full */
    }

    if (cfg->n_gpus == 0 || cfg->n_gpu_layers == 0)
        s.gpu_units = 0;
    else if (cfg->n_gpu_layers < 0 || (uint32_t)cfg->n_gpu_layers > p->n_layer + 1)
        s.gpu_units = p->n_layer + 1; /* auto prices as "all"; auto-config picks a number */
    else
        s.gpu_units = (uint32_t)cfg->n_gpu_layers;

    double splits[PLAN_MAX_GPUS];
    split_points(cfg, splits);
    for (uint32_t il = 0; il < p->n_layer; il++) {
        int dev = unit_device(p, &s, splits, cfg->n_gpus, il);
        if (dev >= 0)
            s.gpu_layers[dev]++;
    }
    s.output_device = unit_device(p, &s, splits, cfg->n_gpus, p->n_layer);
    *shape = s;
    return 0;
}

uint64_t plan_llm_compute_bytes(const gguf_profile *p, const plan_llm_shape *s)
{
    /* Worst-case graph: n_ubatch tokens against n_kv cells (one stream). The
     * allocator reuses memory between ops, so the non-attention part is the
     * larger of the logits and a layer's FFN working set, not their sum
     * (INF, fitted: ref-big FA 25.0/32.0/56.0 MiB vs OBS 25.51/32.51/56). */
    uint64_t tok = s->n_ubatch;
    uint64_t logits = (uint64_t)p->n_vocab * tok * 4;
    uint64_t ffn = tok * 4 * (4 * (uint64_t)p->n_ff + p->n_embd);
    uint64_t base = logits > ffn ? logits : ffn;
    uint64_t n_kv = s->cells;
    uint64_t attn;
    if (s->flash_attn)
        attn = n_kv * tok * 2; /* the f16 KQ mask: 1 KiB per cell at ub 512 */
    else
        attn = n_kv * tok * (uint64_t)(p->n_head ? p->n_head : 1) * 4; /* f32 KQ scores */
    return base + attn;
}

/* Bytes per cell of layer l (K + V rows), with V widths padded to the widest
 * layer when flash attention is off (memory.md §4). */
static uint64_t kv_layer_cell_bytes(const gguf_profile *p, const plan_llm_shape *s, uint32_t l,
                                    uint64_t max_v_width)
{
    uint64_t wk = (uint64_t)p->key_length * p->head_count_kv[l];
    uint64_t wv = (uint64_t)p->value_length * p->head_count_kv[l];
    if (!s->flash_attn)
        wv = max_v_width;
    return plan_cache_row_bytes(s->type_k, wk) + plan_cache_row_bytes(s->type_v, wv);
}

static plan_breakdown *place(plan_demand *d, int dev)
{
    return dev < 0 ? &d->host_parts : &d->gpu_parts[dev];
}

int plan_llm_estimate(const gguf_profile *p, const plan_llm_config *cfg, plan_demand *out,
                      plan_llm_shape *shape, genai_error *err)
{
    plan_llm_shape s;
    int rc = plan_llm_shape_resolve(p, cfg, &s, err);
    if (rc < 0)
        return rc;

    plan_demand d;
    memset(&d, 0, sizeof(d));
    d.n_gpus = cfg->n_gpus;
    d.tier = PLAN_TIER_ESTIMATE;

    double splits[PLAN_MAX_GPUS];
    split_points(cfg, splits);

    /* Weights. token_embd and tensors outside blk.* stay on the host. */
    uint64_t host_weights = p->token_embd_bytes + p->other_bytes;
    uint64_t gpu_weights = 0;
    uint64_t max_v_width = 0;
    for (uint32_t l = 0; l < p->n_layer; l++) {
        uint64_t wv = (uint64_t)p->value_length * p->head_count_kv[l];
        if (p->has_kv[l] && wv > max_v_width)
            max_v_width = wv;
    }
    int used[PLAN_MAX_GPUS] = {0};
    for (uint32_t l = 0; l < p->n_layer; l++) {
        int dev = unit_device(p, &s, splits, cfg->n_gpus, l);
        if (dev >= 0) {
            d.gpu_parts[dev].weights += p->layer_bytes[l];
            gpu_weights += p->layer_bytes[l];
            used[dev] = 1;
        } else {
            host_weights += p->layer_bytes[l];
        }
        if (p->has_kv[l]) {
            uint64_t cells = p->swa_layer[l] ? s.swa_cells : s.cells;
            uint64_t kv = (uint64_t)s.n_stream * cells * kv_layer_cell_bytes(p, &s, l, max_v_width);
            place(&d, cfg->no_kv_offload ? -1 : dev)->kv += kv;
            s.kv_bytes += kv;
        }
    }
    if (s.output_device >= 0) {
        d.gpu_parts[s.output_device].weights += p->output_bytes;
        used[s.output_device] = 1;
    } else {
        /* With tied embeddings the output reuses token_embd: on the host both
         * share one mapping, so only the output norm is extra. Never count
         * more than the file holds. */
        uint64_t extra = p->output_bytes;
        if (p->output_tied)
            extra = extra > p->token_embd_bytes ? extra - p->token_embd_bytes : 0;
        host_weights += extra;
        if (p->tensor_bytes > 0 && host_weights > p->tensor_bytes - gpu_weights)
            host_weights = p->tensor_bytes - gpu_weights;
    }
    d.host_parts.weights = host_weights;

    /* Compute: every backend that runs part of the graph reserves its own
     * buffer for the worst case. With everything offloaded the host buffer
     * only holds the input embeddings and a few activations (INF: ~3 rows
     * of n_embd per token, e.g. 24 MiB for a 4096-wide model at ub 512). */
    uint64_t compute = plan_llm_compute_bytes(p, &s);
    int host_runs_layers = s.gpu_units < p->n_layer + 1;
    for (uint32_t i = 0; i < cfg->n_gpus; i++) {
        if (used[i])
            d.gpu_parts[i].compute = compute;
    }
    if (host_runs_layers) {
        d.host_parts.compute = compute;
    } else {
        uint64_t small = (uint64_t)s.n_ubatch * p->n_embd * 4 * 3;
        d.host_parts.compute = small < compute ? small : compute;
    }

    /* Output (logits) buffer: host memory, pinned when a GPU holds the
     * output layer (memory.md §6). */
    d.host_parts.output = (uint64_t)p->n_vocab * (s.n_seq ? s.n_seq : 1) * 4;
    d.host_parts.prompt_cache = (uint64_t)cfg->cache_ram_mib * PLAN_MIB;
    d.host_parts.runtime = PLAN_LLM_RUNTIME_ANON + PLAN_LLM_RUNTIME_FILE;

    if (cfg->mmproj_bytes > 0) {
        if (s.gpu_units > 0) {
            d.gpu_parts[0].weights += cfg->mmproj_bytes;
            used[0] = 1;
        } else {
            d.host_parts.weights += cfg->mmproj_bytes;
        }
    }

    int any_gpu = 0;
    for (uint32_t i = 0; i < cfg->n_gpus; i++) {
        if (used[i]) {
            d.gpu_parts[i].driver = PLAN_DRIVER_GPU_BYTES;
            any_gpu = 1;
        }
        d.gpu[i] = plan_breakdown_total(&d.gpu_parts[i]);
    }
    if (any_gpu)
        d.host_parts.driver = PLAN_DRIVER_HOST_BYTES;

    /* Host: mmap-ed model weights are file-backed, as are the libraries.
     * The mmproj is read into an anonymous buffer. */
    uint64_t model_host = host_weights;
    d.host_file = PLAN_LLM_RUNTIME_FILE + (cfg->use_mmap ? model_host : 0);
    d.host_anon = plan_breakdown_total(&d.host_parts) - d.host_file;
    d.host_growth = d.host_parts.compute + d.host_parts.prompt_cache;

    plan_demand_set_note(&d,
                         "metadata estimate: ctx %u, %u slot%s%s, KV %s/%s, FA %s, -ngl %u/%u; "
                         "compute buffer is a rough model",
                         s.n_ctx, s.n_seq, s.n_seq == 1 ? "" : "s", s.kv_unified ? " unified" : "",
                         plan_cache_type_name(s.type_k), plan_cache_type_name(s.type_v),
                         s.flash_attn ? "on" : "off", s.gpu_units, p->n_layer + 1);
    *out = d;
    if (shape != NULL)
        *shape = s;
    return 0;
}
