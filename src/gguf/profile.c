/*
 * profile.c - derives a gguf_profile (profile.h) from a model's metadata and
 * tensor table, the way llama.cpp's load_hparams reads them
 * (contracts/memory.md §2).
 *
 * Keys are "<arch>.<name>" with <arch> = general.architecture. Per-layer
 * values (head counts, feed-forward length) may be a scalar or an array of
 * block_count entries, as in llama.cpp's get_key_or_arr; a wrong-length array
 * is an error. Sizes come from the tensor table only: blk.<i>.* to layer i,
 * *_exps.* inside a layer also to its expert bytes, token_embd.weight,
 * output.weight plus output_norm.*, and everything else to other_bytes.
 *
 * Sliding-window attention (which layers use the window) follows llama.cpp:
 * an architecture may seed a period P ("every P-th layer is full"), and the
 * key <arch>.attention.sliding_window_pattern overrides it, as a scalar period
 * or as a per-layer array of bools or integers (non-zero = sliding). With a
 * period, layer i slides when i % P < P - 1 (the full layer is last), or, for
 * "dense first" architectures, when i % P != 0; P = 0 means every layer
 * slides. Architectures without a seed and without the key get no sliding
 * layers: pricing a window layer as full overestimates, never underestimates.
 * docs/gguf.md lists the seeds.
 */
#include "gguf/profile.h"
#include "gguf/gguf.h"

#include "core/alloc.h"
#include "core/error.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* llama.cpp caps n_layer at LLAMA_MAX_LAYERS (512); leave room for growth. */
#define PROFILE_MAX_LAYERS 4096u

struct swa_seed {
    const char *arch;
    uint32_t period;
    uint8_t dense_first;
    uint32_t default_window; /* used when the file has no sliding_window key */
};

/* Architectures whose period llama.cpp hardcodes (src/llama-model.cpp and
 * src/models/<arch>.cpp at the contract's commit). */
static const struct swa_seed swa_seeds[] = {
    {"gemma2", 2, 0, 4096}, {"gemma3", 6, 0, 0},  {"gemma3n", 5, 0, 0}, {"cohere2", 4, 0, 0},
    {"llama4", 4, 0, 8192}, {"gpt-oss", 2, 0, 0}, {"exaone4", 4, 0, 0}, {"smallthinker", 4, 1, 0},
};

/* Architectures whose every layer is recurrent (no KV cache). */
static const char *const recurrent_archs[] = {
    "mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7",
};

struct ctx {
    const gguf_model *m;
    const gguf_file *f;
    gguf_profile *p;
    genai_error *err;
    char key[GGUF_ARCH_MAX + 64];
};

static const char *arch_key(struct ctx *c, const char *suffix)
{
    snprintf(c->key, sizeof(c->key), "%s.%s", c->p->architecture, suffix);
    return c->key;
}

/* Optional scalar <arch>.suffix as uint32; *out untouched when absent. */
static int opt_u32(struct ctx *c, const char *suffix, uint32_t *out)
{
    int rc = gguf_get_u32(c->f, arch_key(c, suffix), out, c->err);
    return rc == GENAI_ENOT_FOUND ? 0 : rc;
}

static int req_u32(struct ctx *c, const char *suffix, uint32_t *out)
{
    int rc = gguf_get_u32(c->f, arch_key(c, suffix), out, c->err);
    if (rc == GENAI_ENOT_FOUND)
        return err_set(c->err, GENAI_ECORRUPT, "required key '%s' is missing", c->key);
    return rc;
}

/* <arch>.suffix as a scalar (expanded) or an n_layer array into dst. Returns
 * 1 when found, 0 when absent (dst untouched), negative on error. */
static int layer_u32(struct ctx *c, const char *suffix, uint32_t *dst)
{
    const gguf_kv *kv = gguf_find_kv(c->f, arch_key(c, suffix));
    uint32_t n_layer = c->p->n_layer;
    if (kv == NULL)
        return 0;
    if (kv->type == GGUF_VAL_ARRAY && kv->n != n_layer)
        return err_set(c->err, GENAI_ECORRUPT,
                       "key '%s' at byte %" PRIu64 ": %" PRIu64 " entries for %" PRIu32 " layers",
                       c->key, kv->key_off, kv->n, n_layer);
    for (uint32_t il = 0; il < n_layer; il++) {
        uint64_t v;
        int rc = gguf_kv_u64(kv, kv->type == GGUF_VAL_ARRAY ? il : 0, &v, c->err);
        if (rc < 0)
            return rc;
        if (v > UINT32_MAX)
            return err_set(c->err, GENAI_ECORRUPT, "key '%s': %" PRIu64 " exceeds uint32", c->key,
                           v);
        dst[il] = (uint32_t)v;
    }
    return 1;
}

/* Copies s into a fixed buffer, cutting at a UTF-8 boundary when too long. */
static void copy_text(char *dst, size_t cap, gguf_str s)
{
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    if (n < s.len)
        while (n > 0 && ((unsigned char)s.ptr[n] & 0xC0) == 0x80)
            n--;
    memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

static int read_arch(struct ctx *c)
{
    gguf_str s;
    int rc = gguf_get_str(c->f, "general.architecture", &s, c->err);
    if (rc == GENAI_ENOT_FOUND)
        return err_set(c->err, GENAI_EUNSUPPORTED,
                       "no general.architecture: not a model llama.cpp can load");
    if (rc < 0)
        return rc;
    if (s.len == 0 || s.len >= GGUF_ARCH_MAX)
        return err_set(c->err, GENAI_ECORRUPT,
                       "general.architecture has %" PRIu64 " bytes (1 to %d allowed)", s.len,
                       GGUF_ARCH_MAX - 1);
    for (uint64_t i = 0; i < s.len; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return err_set(c->err, GENAI_ECORRUPT, "general.architecture contains byte 0x%02x", ch);
    }
    copy_text(c->p->architecture, sizeof(c->p->architecture), s);
    if (gguf_get_str(c->f, "general.name", &s, NULL) == 0)
        copy_text(c->p->name, sizeof(c->p->name), s);
    uint32_t ft;
    rc = gguf_get_u32(c->f, "general.file_type", &ft, c->err);
    if (rc == 0)
        c->p->file_type = ft;
    else if (rc != GENAI_ENOT_FOUND)
        return rc;
    return 0;
}

static int alloc_layers(gguf_profile *p)
{
    uint32_t n = p->n_layer ? p->n_layer : 1;
    p->head_count = mem_calloc(n, sizeof(*p->head_count));
    p->head_count_kv = mem_calloc(n, sizeof(*p->head_count_kv));
    p->swa_layer = mem_calloc(n, sizeof(*p->swa_layer));
    p->has_kv = mem_calloc(n, sizeof(*p->has_kv));
    p->layer_bytes = mem_calloc(n, sizeof(*p->layer_bytes));
    p->layer_expert_bytes = mem_calloc(n, sizeof(*p->layer_expert_bytes));
    if (p->head_count == NULL || p->head_count_kv == NULL || p->swa_layer == NULL ||
        p->has_kv == NULL || p->layer_bytes == NULL || p->layer_expert_bytes == NULL)
        return -ENOMEM;
    return 0;
}

static int read_shape(struct ctx *c)
{
    gguf_profile *p = c->p;
    int rc;
    if ((rc = req_u32(c, "block_count", &p->n_layer)) < 0 ||
        (rc = req_u32(c, "embedding_length", &p->n_embd)) < 0 ||
        (rc = opt_u32(c, "context_length", &p->n_ctx_train)) < 0)
        return rc;
    if (p->n_layer > PROFILE_MAX_LAYERS)
        return err_set(c->err, GENAI_ETOO_LARGE, "%s = %" PRIu32 " exceeds %u layers",
                       arch_key(c, "block_count"), p->n_layer, PROFILE_MAX_LAYERS);
    if (alloc_layers(p) < 0)
        return err_set(c->err, -ENOMEM, "out of memory");
    if (p->n_layer == 0)
        return 0;

    /* feed_forward_length: the profile keeps layer 0's value. */
    uint32_t *tmp = mem_calloc(p->n_layer, sizeof(*tmp));
    if (tmp == NULL)
        return err_set(c->err, -ENOMEM, "out of memory");
    rc = layer_u32(c, "feed_forward_length", tmp);
    if (rc > 0)
        p->n_ff = tmp[0];
    mem_free(tmp);
    if (rc < 0)
        return rc;

    rc = layer_u32(c, "attention.head_count", p->head_count);
    if (rc == 0)
        return err_set(c->err, GENAI_ECORRUPT, "required key '%s' is missing", c->key);
    if (rc < 0)
        return rc;
    if ((rc = layer_u32(c, "attention.head_count_kv", p->head_count_kv)) < 0)
        return rc;
    if (rc == 0)
        memcpy(p->head_count_kv, p->head_count, p->n_layer * sizeof(*p->head_count));
    for (uint32_t il = 0; il < p->n_layer; il++)
        if (p->head_count[il] > p->n_head)
            p->n_head = p->head_count[il];

    /* llama.cpp: n_embd_head_k = n_embd / n_head(layer 0) unless key_length. */
    uint32_t h0 = p->head_count[0] ? p->head_count[0] : p->n_head;
    p->key_length = h0 ? p->n_embd / h0 : 0;
    p->value_length = p->key_length;
    if ((rc = opt_u32(c, "attention.key_length", &p->key_length)) < 0 ||
        (rc = opt_u32(c, "attention.value_length", &p->value_length)) < 0)
        return rc;
    return 0;
}

static int read_misc(struct ctx *c)
{
    gguf_profile *p = c->p;
    int rc;
    if ((rc = opt_u32(c, "expert_count", &p->n_expert)) < 0 ||
        (rc = opt_u32(c, "expert_used_count", &p->n_expert_used)) < 0 ||
        (rc = opt_u32(c, "expert_shared_count", &p->n_expert_shared)) < 0 ||
        (rc = opt_u32(c, "expert_feed_forward_length", &p->n_ff_expert)) < 0 ||
        (rc = opt_u32(c, "attention.kv_lora_rank", &p->kv_lora_rank)) < 0 ||
        (rc = opt_u32(c, "attention.key_length_mla", &p->key_length_mla)) < 0 ||
        (rc = opt_u32(c, "attention.value_length_mla", &p->value_length_mla)) < 0)
        return rc;

    /* Vocabulary: vocab_size, else the token list, else token_embd's rows. */
    rc = opt_u32(c, "vocab_size", &p->n_vocab);
    if (rc < 0)
        return rc;
    if (p->n_vocab == 0) {
        const gguf_kv *kv = gguf_find_kv(c->f, "tokenizer.ggml.tokens");
        const gguf_tensor *te = gguf_find_tensor(c->f, "token_embd.weight");
        if (kv != NULL && kv->type == GGUF_VAL_ARRAY && kv->n <= UINT32_MAX)
            p->n_vocab = (uint32_t)kv->n;
        else if (te != NULL && te->n_dims >= 2 && te->ne[1] <= UINT32_MAX)
            p->n_vocab = (uint32_t)te->ne[1];
    }
    return 0;
}

static void set_period(gguf_profile *p, uint32_t period, int dense_first)
{
    for (uint32_t il = 0; il < p->n_layer; il++) {
        if (period == 0)
            p->swa_layer[il] = 1;
        else if (dense_first)
            p->swa_layer[il] = il % period != 0;
        else
            p->swa_layer[il] = il % period < period - 1;
    }
}

static int read_swa(struct ctx *c)
{
    gguf_profile *p = c->p;
    const struct swa_seed *seed = NULL;
    for (size_t i = 0; i < sizeof(swa_seeds) / sizeof(swa_seeds[0]); i++)
        if (strcmp(p->architecture, swa_seeds[i].arch) == 0)
            seed = &swa_seeds[i];

    uint32_t window = 0;
    int rc = gguf_get_u32(c->f, arch_key(c, "attention.sliding_window"), &window, c->err);
    int have_window = rc == 0;
    if (rc < 0 && rc != GENAI_ENOT_FOUND)
        return rc;
    if (!have_window && seed != NULL)
        window = seed->default_window;
    /* llama4: the file's window, when given, only switches chunking off (0);
     * otherwise the chunk is the fixed 8192. */
    if (seed != NULL && strcmp(seed->arch, "llama4") == 0 && !(have_window && window == 0))
        window = seed->default_window;
    if (window == 0 || p->n_layer == 0)
        return 0;
    p->n_swa = window;

    const gguf_kv *kv = gguf_find_kv(c->f, arch_key(c, "attention.sliding_window_pattern"));
    if (kv == NULL) {
        if (seed != NULL)
            set_period(p, seed->period, seed->dense_first);
        return 0;
    }
    if (kv->type != GGUF_VAL_ARRAY) {
        uint64_t period;
        if ((rc = gguf_kv_u64(kv, 0, &period, c->err)) < 0)
            return rc;
        if (period > UINT32_MAX)
            return err_set(c->err, GENAI_ECORRUPT, "%s = %" PRIu64 " out of range", c->key, period);
        set_period(p, (uint32_t)period, seed != NULL && seed->dense_first);
        return 0;
    }
    if (kv->n != p->n_layer)
        return err_set(c->err, GENAI_ECORRUPT,
                       "key '%s' at byte %" PRIu64 ": %" PRIu64 " entries for %" PRIu32 " layers",
                       c->key, kv->key_off, kv->n, p->n_layer);
    for (uint32_t il = 0; il < p->n_layer; il++) {
        uint64_t v;
        if ((rc = gguf_kv_u64(kv, il, &v, c->err)) < 0)
            return rc;
        p->swa_layer[il] = v != 0;
    }
    return 0;
}

/* has_kv: recurrent layers (Mamba, RWKV, hybrid) keep a state, not a KV cache. */
static int read_has_kv(struct ctx *c)
{
    gguf_profile *p = c->p;
    for (size_t i = 0; i < sizeof(recurrent_archs) / sizeof(recurrent_archs[0]); i++)
        if (strcmp(p->architecture, recurrent_archs[i]) == 0)
            return 0; /* has_kv stays all 0 */
    uint32_t interval = 0, shared = 0;
    int rc;
    if ((rc = opt_u32(c, "full_attention_interval", &interval)) < 0 ||
        (rc = opt_u32(c, "attention.shared_kv_layers", &shared)) < 0)
        return rc;
    for (uint32_t il = 0; il < p->n_layer; il++) {
        if (interval > 0)
            p->has_kv[il] = (il + 1) % interval == 0;
        else
            p->has_kv[il] = p->head_count_kv[il] > 0;
        /* Gemma 3n: the last 'shared' layers reuse earlier layers' caches. */
        if (shared > 0 && il >= (shared < p->n_layer ? p->n_layer - shared : 0))
            p->has_kv[il] = 0;
    }
    return 0;
}

/* "blk.<i>." prefix: 1 and *il set, 0 otherwise. */
static int layer_of(gguf_str name, uint32_t *il)
{
    if (name.len < 6 || memcmp(name.ptr, "blk.", 4) != 0)
        return 0;
    uint64_t v = 0, i = 4;
    while (i < name.len && name.ptr[i] >= '0' && name.ptr[i] <= '9' && v <= UINT32_MAX) {
        v = v * 10 + (uint64_t)(name.ptr[i] - '0');
        i++;
    }
    if (i == 4 || i >= name.len || name.ptr[i] != '.' || v > UINT32_MAX)
        return 0;
    *il = (uint32_t)v;
    return 1;
}

static int has_prefix(gguf_str s, const char *pre)
{
    size_t n = strlen(pre);
    return s.len >= n && memcmp(s.ptr, pre, n) == 0;
}

static int contains(gguf_str s, const char *needle)
{
    size_t n = strlen(needle);
    for (uint64_t i = 0; i + n <= s.len; i++)
        if (memcmp(s.ptr + i, needle, n) == 0)
            return 1;
    return 0;
}

static void read_tensors(struct ctx *c)
{
    gguf_profile *p = c->p;
    int have_output = 0;
    p->n_tensors = gguf_model_n_tensors(c->m);
    for (uint64_t i = 0; i < p->n_tensors; i++) {
        const gguf_tensor *t = gguf_model_tensor(c->m, i);
        uint32_t il;
        p->tensor_bytes += t->n_bytes;
        p->n_params += t->n_elements;
        if (layer_of(t->name, &il) && il < p->n_layer) {
            p->layer_bytes[il] += t->n_bytes;
            if (contains(t->name, "_exps."))
                p->layer_expert_bytes[il] += t->n_bytes;
        } else if (gguf_str_eq(t->name, "token_embd.weight")) {
            p->token_embd_bytes += t->n_bytes;
        } else if (has_prefix(t->name, "output.") || has_prefix(t->name, "output_norm.")) {
            p->output_bytes += t->n_bytes;
            have_output |= gguf_str_eq(t->name, "output.weight");
        } else {
            p->other_bytes += t->n_bytes;
        }
    }
    /* llama.cpp loads token_embd a second time as the output when the model
     * ties them (TENSOR_DUPLICATED), so the output unit costs that much. */
    if (!have_output && p->token_embd_bytes > 0) {
        p->output_tied = 1;
        p->output_bytes += p->token_embd_bytes;
    }
}

int gguf_profile_from_model(const gguf_model *m, gguf_profile *out, genai_error *err)
{
    gguf_profile p;
    memset(&p, 0, sizeof(p));
    p.file_type = UINT32_MAX;
    struct ctx c = {.m = m, .f = gguf_model_file(m, 0), .p = &p, .err = err};
    int rc;
    if ((rc = read_arch(&c)) < 0 || (rc = read_shape(&c)) < 0 || (rc = read_misc(&c)) < 0 ||
        (rc = read_swa(&c)) < 0 || (rc = read_has_kv(&c)) < 0) {
        gguf_profile_free(&p);
        return rc;
    }
    p.n_split = gguf_model_n_files(m);
    p.file_bytes = gguf_model_file_bytes(m);
    read_tensors(&c);
    *out = p;
    return 0;
}

int gguf_profile_load(const char *path, gguf_profile *out, genai_error *err)
{
    gguf_model *m;
    int rc = gguf_model_open(path, &m, err);
    if (rc < 0)
        return rc;
    rc = gguf_profile_from_model(m, out, err);
    if (rc < 0)
        err_prefix(err, "%s", path);
    gguf_model_free(m);
    return rc;
}

void gguf_profile_free(gguf_profile *p)
{
    if (p == NULL)
        return;
    mem_free(p->head_count);
    mem_free(p->head_count_kv);
    mem_free(p->swa_layer);
    mem_free(p->has_kv);
    mem_free(p->layer_bytes);
    mem_free(p->layer_expert_bytes);
    memset(p, 0, sizeof(*p));
}

/* ---- JSON ------------------------------------------------------------- */

static void put(json_t *o, const char *k, json_t *v, int *bad)
{
    if (v == NULL || json_object_set_new(o, k, v) != 0)
        *bad = 1;
}

static json_t *jint(uint64_t v)
{
    return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

enum arr_kind { ARR_U8, ARR_U32, ARR_U64 };

static json_t *jarr(const void *data, uint32_t n, enum arr_kind kind)
{
    json_t *a = json_array();
    if (a == NULL)
        return NULL;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t v = kind == ARR_U8    ? ((const uint8_t *)data)[i]
                     : kind == ARR_U32 ? ((const uint32_t *)data)[i]
                                       : ((const uint64_t *)data)[i];
        if (json_array_append_new(a, jint(v)) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* A JSON string of text; bytes that are not valid UTF-8 (general.name comes
 * from the file) become '?' rather than failing the whole object. */
static json_t *jtext(const char *text)
{
    json_t *s = json_string(text);
    if (s != NULL)
        return s;
    char *copy = mem_strdup(text);
    if (copy == NULL)
        return NULL;
    for (char *q = copy; *q != '\0'; q++)
        if ((unsigned char)*q >= 0x80)
            *q = '?';
    s = json_string(copy);
    mem_free(copy);
    return s;
}

json_t *gguf_profile_to_json(const gguf_profile *p)
{
    json_t *o = json_object();
    int bad = 0;
    if (o == NULL)
        return NULL;
    uint32_t n = p->head_count != NULL ? p->n_layer : 0;
    put(o, "architecture", jtext(p->architecture), &bad);
    put(o, "name", jtext(p->name), &bad);
    put(o, "file_type", p->file_type == UINT32_MAX ? json_null() : jint(p->file_type), &bad);
    put(o, "n_split", jint(p->n_split), &bad);
    put(o, "file_bytes", jint(p->file_bytes), &bad);
    put(o, "tensor_bytes", jint(p->tensor_bytes), &bad);
    put(o, "n_params", jint(p->n_params), &bad);
    put(o, "n_tensors", jint(p->n_tensors), &bad);
    put(o, "n_layer", jint(p->n_layer), &bad);
    put(o, "n_ctx_train", jint(p->n_ctx_train), &bad);
    put(o, "n_embd", jint(p->n_embd), &bad);
    put(o, "n_ff", jint(p->n_ff), &bad);
    put(o, "n_head", jint(p->n_head), &bad);
    put(o, "n_vocab", jint(p->n_vocab), &bad);
    put(o, "key_length", jint(p->key_length), &bad);
    put(o, "value_length", jint(p->value_length), &bad);
    put(o, "n_expert", jint(p->n_expert), &bad);
    put(o, "n_expert_used", jint(p->n_expert_used), &bad);
    put(o, "n_expert_shared", jint(p->n_expert_shared), &bad);
    put(o, "n_ff_expert", jint(p->n_ff_expert), &bad);
    put(o, "n_swa", jint(p->n_swa), &bad);
    put(o, "kv_lora_rank", jint(p->kv_lora_rank), &bad);
    put(o, "key_length_mla", jint(p->key_length_mla), &bad);
    put(o, "value_length_mla", jint(p->value_length_mla), &bad);
    put(o, "head_count", jarr(p->head_count, n, ARR_U32), &bad);
    put(o, "head_count_kv", jarr(p->head_count_kv, n, ARR_U32), &bad);
    put(o, "swa_layer", jarr(p->swa_layer, n, ARR_U8), &bad);
    put(o, "has_kv", jarr(p->has_kv, n, ARR_U8), &bad);
    put(o, "layer_bytes", jarr(p->layer_bytes, n, ARR_U64), &bad);
    put(o, "layer_expert_bytes", jarr(p->layer_expert_bytes, n, ARR_U64), &bad);
    put(o, "token_embd_bytes", jint(p->token_embd_bytes), &bad);
    put(o, "output_bytes", jint(p->output_bytes), &bad);
    put(o, "output_tied", json_boolean(p->output_tied), &bad);
    put(o, "other_bytes", jint(p->other_bytes), &bad);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}
