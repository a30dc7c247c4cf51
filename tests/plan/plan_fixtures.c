/*
 * plan_fixtures.c - in-memory profiles and snapshots (see plan_fixtures.h).
 */
#include "plan_fixtures.h"

#include "core/alloc.h"

#include <stdio.h>
#include <string.h>

static int alloc_layers(gguf_profile *p, uint32_t n)
{
    p->n_layer = n;
    p->head_count = mem_calloc(n, sizeof(uint32_t));
    p->head_count_kv = mem_calloc(n, sizeof(uint32_t));
    p->swa_layer = mem_calloc(n, 1);
    p->has_kv = mem_calloc(n, 1);
    p->layer_bytes = mem_calloc(n, sizeof(uint64_t));
    p->layer_expert_bytes = mem_calloc(n, sizeof(uint64_t));
    if (!p->head_count || !p->head_count_kv || !p->swa_layer || !p->has_kv || !p->layer_bytes ||
        !p->layer_expert_bytes) {
        fixture_profile_free(p);
        return -1;
    }
    return 0;
}

int fixture_llama(gguf_profile *p, uint32_t n_layer, uint32_t n_embd, uint32_t n_head,
                  uint32_t n_head_kv, uint32_t n_ff, uint32_t n_ctx_train, uint32_t n_vocab,
                  uint32_t dtype_bytes)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->architecture, sizeof(p->architecture), "llama");
    if (alloc_layers(p, n_layer) < 0)
        return -1;
    uint64_t head_dim = n_embd / n_head;
    uint64_t kv_width = head_dim * n_head_kv;
    uint64_t e = n_embd, b = dtype_bytes;
    /* attn_norm + ffn_norm (F32), q, k, v, o, gate, up, down. */
    uint64_t layer = 2 * e * 4 + (e * e + 2 * e * kv_width + e * e) * b + 3 * e * n_ff * b;
    for (uint32_t l = 0; l < n_layer; l++) {
        p->head_count[l] = n_head;
        p->head_count_kv[l] = n_head_kv;
        p->has_kv[l] = 1;
        p->layer_bytes[l] = layer;
    }
    p->n_ctx_train = n_ctx_train;
    p->n_embd = n_embd;
    p->n_ff = n_ff;
    p->n_head = n_head;
    p->n_vocab = n_vocab;
    p->key_length = (uint32_t)head_dim;
    p->value_length = (uint32_t)head_dim;
    p->file_type = dtype_bytes == 2 ? 1 : 0;
    p->n_split = 1;
    p->token_embd_bytes = (uint64_t)n_vocab * e * b;
    p->output_bytes = (uint64_t)n_vocab * e * b + e * 4;
    p->tensor_bytes = layer * n_layer + p->token_embd_bytes + p->output_bytes;
    p->n_tensors = 9ull * n_layer + 3;
    return 0;
}

int fixture_ref_big(gguf_profile *p)
{
    if (fixture_llama(p, 16, 1024, 16, 4, 2816, 8192, 312, 2) < 0)
        return -1;
    snprintf(p->name, sizeof(p->name), "ref-big");
    p->file_bytes = 362139712;
    return 0;
}

int fixture_ref_tiny(gguf_profile *p)
{
    if (fixture_llama(p, 2, 128, 4, 2, 256, 2048, 312, 4) < 0)
        return -1;
    snprintf(p->name, sizeof(p->name), "ref-tiny");
    p->file_bytes = 1510688;
    return 0;
}

int fixture_12b(gguf_profile *p)
{
    if (fixture_llama(p, 48, 5120, 40, 8, 13824, 32768, 152064, 2) < 0)
        return -1;
    snprintf(p->name, sizeof(p->name), "12b-like Q4_K_M");
    /* Q4_K_M-sized tensors: ~4.8 bits per weight in the blocks, q4_K
     * embeddings and a q6_K output. */
    for (uint32_t l = 0; l < p->n_layer; l++)
        p->layer_bytes[l] = 135000000;
    p->token_embd_bytes = 438000000;
    p->output_bytes = 639000000;
    p->tensor_bytes = 48ull * 135000000 + p->token_embd_bytes + p->output_bytes;
    p->file_bytes = p->tensor_bytes + 8000000;
    return 0;
}

void fixture_profile_free(gguf_profile *p)
{
    gguf_profile_free(p);
}

int fixture_snapshot(probe_snapshot *s, uint32_t n_gpus, uint64_t gpu_total, uint64_t host_avail)
{
    memset(s, 0, sizeof(*s));
    s->cpu.status.ok = 1;
    s->cpu.logical = 16;
    s->cpu.physical = 8;
    s->cpu.usable = 16;
    s->mem.status.ok = 1;
    s->mem.total = host_avail * 2;
    s->mem.available = host_avail;
    s->mem.effective_available = host_avail;
    s->mem.cgroup_limit = UINT64_MAX;
    if (n_gpus > 0) {
        s->gpus = mem_calloc(n_gpus, sizeof(probe_gpu));
        if (s->gpus == NULL)
            return -1;
    }
    s->n_gpus = n_gpus;
    for (uint32_t i = 0; i < n_gpus; i++) {
        probe_gpu *g = &s->gpus[i];
        g->vendor = PROBE_GPU_FAKE;
        g->index = i;
        snprintf(g->name, sizeof(g->name), "Fake GPU %u", i);
        g->total = gpu_total;
        g->free = gpu_total;
        g->memory.ok = 1;
        g->processes_status.ok = 1;
    }
    return 0;
}

void fixture_snapshot_free(probe_snapshot *s)
{
    for (uint32_t i = 0; s->gpus != NULL && i < s->n_gpus; i++)
        mem_free(s->gpus[i].processes);
    mem_free(s->gpus);
    memset(s, 0, sizeof(*s));
}
