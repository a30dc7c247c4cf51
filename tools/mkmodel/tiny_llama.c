/*
 * tiny_llama.c - a tiny random-weight llama model (see tiny_llama.h).
 *
 * What llama.cpp needs to load a "llama" architecture file (src/llama-arch.cpp
 * key names, src/llama-model.cpp load_hparams / load_tensors, and
 * src/llama-vocab.cpp for the SentencePiece vocabulary):
 *   llama.block_count, embedding_length, feed_forward_length, context_length,
 *   attention.head_count, attention.head_count_kv,
 *   attention.layer_norm_rms_epsilon (required for llama), rope.dimension_count
 *   (defaults to the head size; written anyway), rope.freq_base;
 *   tokenizer.ggml.model = "llama" with tokens, scores and token_type, where
 *   every byte 0x00..0xFF has a "<0xXX>" token of type BYTE (the SentencePiece
 *   byte fallback; the loader looks up "<0x0A>" for the newline);
 *   tensors token_embd {n_embd, n_vocab}, output_norm {n_embd}, output
 *   {n_embd, n_vocab} and per layer attn_norm, attn_q, attn_k, attn_v,
 *   attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down (GGUF order: ne[0]
 *   first, i.e. {in, out} for a matrix).
 *
 * So that replies are readable text rather than control bytes, the weights
 * are not uniform noise: every token embedding has 1.0 in dimension 0 and
 * small noise elsewhere, the attention and feed-forward weights are small,
 * so after the final RMS norm dimension 0 dominates the hidden state; the
 * output row of each printable token (byte tokens 0x20..0x7E and the letter
 * pieces) has +1 there and every other token -1. Printable tokens then
 * out-score the rest by about 2 x sqrt(n_embd) logits whatever the context,
 * and the noise picks among them.
 */
#include "tiny_llama.h"

#include "core/alloc.h"
#include "core/error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define TOKEN_UNK 0u
#define TOKEN_BOS 1u
#define TOKEN_EOS 2u
#define FIRST_BYTE_TOKEN 3u
#define FIRST_PIECE (FIRST_BYTE_TOKEN + 256u)

/* llama_token_type (llama.h): NORMAL 1, UNKNOWN 2, CONTROL 3, BYTE 6. */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_BYTE = 6 };

static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
#define N_LETTERS 52u
/* U+2581 LOWER ONE EIGHTH BLOCK: SentencePiece's word-boundary marker. */
static const char sp_space[] = "\xe2\x96\x81";

void mkmodel_defaults(struct mkmodel_opts *o)
{
    o->n_layer = 2;
    o->n_embd = 128;
    o->n_head = 4;
    o->n_head_kv = 2;
    o->n_ff = 256;
    o->n_ctx = 2048;
    o->n_vocab = 312;
    o->type = GGUF_DT_F32;
    o->seed = 42;
}

int mkmodel_check(const struct mkmodel_opts *o, genai_error *err)
{
    if (o->n_layer == 0 || o->n_layer > 512)
        return err_set(err, GENAI_EBAD_ARG, "layers must be 1..512");
    if (o->n_embd == 0 || o->n_embd > 65536 || o->n_ff == 0 || o->n_ff > 1048576)
        return err_set(err, GENAI_EBAD_ARG, "embd must be 1..65536 and ff 1..1048576");
    if (o->n_head == 0 || o->n_embd % o->n_head != 0 || (o->n_embd / o->n_head) % 2 != 0)
        return err_set(err, GENAI_EBAD_ARG,
                       "heads must divide embd (%" PRIu32 ") into an even head size", o->n_embd);
    if (o->n_head_kv == 0 || o->n_head % o->n_head_kv != 0)
        return err_set(err, GENAI_EBAD_ARG, "kv-heads must divide heads (%" PRIu32 ")", o->n_head);
    if (o->n_vocab < MKMODEL_MIN_VOCAB || o->n_vocab > MKMODEL_MAX_VOCAB)
        return err_set(err, GENAI_EBAD_ARG, "vocab must be %u..%u", MKMODEL_MIN_VOCAB,
                       MKMODEL_MAX_VOCAB);
    if (o->n_ctx == 0)
        return err_set(err, GENAI_EBAD_ARG, "ctx must be positive");
    if (o->type != GGUF_DT_F32 && o->type != GGUF_DT_F16)
        return err_set(err, GENAI_EBAD_ARG, "type must be f32 or f16");
    return 0;
}

uint16_t mkmodel_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof(x));
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t mant = x & 0x7fffffu;
    int32_t exp = (int32_t)((x >> 23) & 0xffu);
    if (exp == 0xff)
        return (uint16_t)(sign | 0x7c00u | (mant != 0 ? 0x200u : 0));
    exp = exp - 127 + 15;
    if (exp >= 0x1f)
        return (uint16_t)(sign | 0x7c00u);
    if (exp <= 0) {
        if (exp < -10)
            return (uint16_t)sign;
        mant |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t h = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (h & 1u)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* a carry into the exponent is the correct rounding */
    return (uint16_t)h;
}

/* Piece k (0-based, after the byte tokens): "▁", the 52 letters, "▁" + each
 * letter, then all 2-letter strings plain and with "▁", then 3 letters, ... */
static void piece_text(uint32_t k, char *buf, size_t cap)
{
    if (k == 0) {
        snprintf(buf, cap, "%s", sp_space);
        return;
    }
    if (k <= N_LETTERS) {
        snprintf(buf, cap, "%c", letters[k - 1]);
        return;
    }
    if (k <= 2 * N_LETTERS) {
        snprintf(buf, cap, "%s%c", sp_space, letters[k - 1 - N_LETTERS]);
        return;
    }
    uint64_t m = k - 1 - 2 * N_LETTERS, block = N_LETTERS * N_LETTERS;
    uint32_t len = 2;
    while (m >= 2 * block) {
        m -= 2 * block;
        block *= N_LETTERS;
        len++;
    }
    size_t at = 0;
    if (m >= block) {
        at = (size_t)snprintf(buf, cap, "%s", sp_space);
        m -= block;
    }
    char word[8];
    for (uint32_t i = len; i-- > 0;) {
        word[i] = letters[m % N_LETTERS];
        m /= N_LETTERS;
    }
    snprintf(buf + at, cap - at, "%.*s", (int)len, word);
}

const char *mkmodel_token(uint32_t id, char *buf, size_t cap)
{
    if (id == TOKEN_UNK)
        snprintf(buf, cap, "<unk>");
    else if (id == TOKEN_BOS)
        snprintf(buf, cap, "<s>");
    else if (id == TOKEN_EOS)
        snprintf(buf, cap, "</s>");
    else if (id < FIRST_PIECE)
        snprintf(buf, cap, "<0x%02X>", id - FIRST_BYTE_TOKEN);
    else
        piece_text(id - FIRST_PIECE, buf, cap);
    return buf;
}

/* Token ids whose text is printable: the output head favours them. */
static int printable(uint32_t id)
{
    if (id >= FIRST_PIECE)
        return 1;
    if (id < FIRST_BYTE_TOKEN)
        return 0;
    uint32_t byte = id - FIRST_BYTE_TOKEN;
    return byte >= 0x20 && byte <= 0x7e;
}

/* splitmix64: small, seedable, good enough for weights. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-scale, scale). */
static float uniform(uint64_t *s, float scale)
{
    float u = (float)(next_u64(s) >> 40) * (1.0f / 16777216.0f);
    return (2.0f * u - 1.0f) * scale;
}

enum fill { FILL_ONES, FILL_NOISE, FILL_EMBD, FILL_OUTPUT };

/* Adds one tensor {ne0, ne1} filled as asked, converted to type. */
static int add_tensor(gguf_writer *w, const char *name, uint32_t type, uint64_t ne0, uint64_t ne1,
                      enum fill fill, float scale, uint64_t *rng)
{
    size_t n;
    if (mem_mul_size((size_t)ne0, (size_t)ne1, &n) != 0)
        return GENAI_EBAD_ARG;
    float *v = mem_calloc(n, sizeof(float));
    if (v == NULL)
        return -ENOMEM;
    for (uint64_t row = 0; row < ne1; row++) {
        for (uint64_t col = 0; col < ne0; col++) {
            float x;
            if (fill == FILL_ONES)
                x = 1.0f;
            else if (col == 0 && fill == FILL_EMBD)
                x = 1.0f;
            else if (col == 0 && fill == FILL_OUTPUT)
                x = printable((uint32_t)row) ? 1.0f : -1.0f;
            else
                x = uniform(rng, scale);
            v[row * ne0 + col] = x;
        }
    }
    const void *data = v;
    uint16_t *h = NULL;
    if (type == GGUF_DT_F16) {
        h = mem_calloc(n, sizeof(*h));
        if (h == NULL) {
            mem_free(v);
            return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
            h[i] = mkmodel_f16(v[i]);
        data = h;
    }
    uint64_t ne[2] = {ne0, ne1};
    int rc = gguf_writer_add_tensor(w, name, type, ne1 > 1 ? 2 : 1, ne, data);
    mem_free(h);
    mem_free(v);
    return rc;
}

static int add_vocab(gguf_writer *w, uint32_t n_vocab)
{
    int rc = -ENOMEM;
    char **tokens = mem_calloc(n_vocab, sizeof(*tokens));
    float *scores = mem_calloc(n_vocab, sizeof(*scores));
    int32_t *types = mem_calloc(n_vocab, sizeof(*types));
    if (tokens == NULL || scores == NULL || types == NULL)
        goto out;
    for (uint32_t id = 0; id < n_vocab; id++) {
        char buf[32];
        tokens[id] = mem_strdup(mkmodel_token(id, buf, sizeof(buf)));
        if (tokens[id] == NULL)
            goto out;
        if (id == TOKEN_UNK)
            types[id] = TT_UNKNOWN;
        else if (id < FIRST_BYTE_TOKEN)
            types[id] = TT_CONTROL;
        else if (id < FIRST_PIECE)
            types[id] = TT_BYTE;
        else
            types[id] = TT_NORMAL;
        /* SentencePiece scores: log-probability-like, higher merges first. */
        scores[id] = id < FIRST_PIECE ? 0.0f : -(float)(id - FIRST_PIECE);
    }
    if ((rc = gguf_writer_add_str(w, "tokenizer.ggml.model", "llama")) < 0 ||
        (rc = gguf_writer_add_str_array(w, "tokenizer.ggml.tokens", (const char *const *)tokens,
                                        n_vocab)) < 0 ||
        (rc = gguf_writer_add_array(w, "tokenizer.ggml.scores", GGUF_VAL_FLOAT32, scores,
                                    n_vocab)) < 0 ||
        (rc = gguf_writer_add_array(w, "tokenizer.ggml.token_type", GGUF_VAL_INT32, types,
                                    n_vocab)) < 0 ||
        (rc = gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", TOKEN_BOS)) < 0 ||
        (rc = gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", TOKEN_EOS)) < 0 ||
        (rc = gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", TOKEN_UNK)) < 0 ||
        (rc = gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", 1)) < 0 ||
        (rc = gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", 0)) < 0)
        goto out;
out:
    if (tokens != NULL)
        for (uint32_t id = 0; id < n_vocab; id++)
            mem_free(tokens[id]);
    mem_free(tokens);
    mem_free(scores);
    mem_free(types);
    return rc;
}

static int add_hparams(gguf_writer *w, const struct mkmodel_opts *o)
{
    uint32_t head = o->n_embd / o->n_head;
    int rc;
    if ((rc = gguf_writer_add_str(w, "general.architecture", "llama")) < 0 ||
        (rc = gguf_writer_add_str(w, "general.name", "genai tiny llama")) < 0 ||
        (rc = gguf_writer_add_u32(w, "general.file_type", o->type == GGUF_DT_F16 ? 1 : 0)) < 0 ||
        (rc = gguf_writer_add_u32(w, "llama.context_length", o->n_ctx)) < 0 ||
        (rc = gguf_writer_add_u32(w, "llama.embedding_length", o->n_embd)) < 0 ||
        (rc = gguf_writer_add_u32(w, "llama.block_count", o->n_layer)) < 0 ||
        (rc = gguf_writer_add_u32(w, "llama.feed_forward_length", o->n_ff)) < 0 ||
        (rc = gguf_writer_add_u32(w, "llama.rope.dimension_count", head)) < 0 ||
        (rc = gguf_writer_add_f32(w, "llama.rope.freq_base", 10000.0f)) < 0 ||
        (rc = gguf_writer_add_u32(w, "llama.attention.head_count", o->n_head)) < 0 ||
        (rc = gguf_writer_add_u32(w, "llama.attention.head_count_kv", o->n_head_kv)) < 0 ||
        (rc = gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f)) < 0 ||
        (rc = gguf_writer_add_u32(w, "llama.vocab_size", o->n_vocab)) < 0)
        return rc;
    return add_vocab(w, o->n_vocab);
}

static int add_layers(gguf_writer *w, const struct mkmodel_opts *o, uint64_t *rng)
{
    uint32_t head = o->n_embd / o->n_head;
    uint64_t q = (uint64_t)head * o->n_head, kv = (uint64_t)head * o->n_head_kv;
    const float s = 0.02f; /* small, so token_embd's dimension 0 stays dominant */
    for (uint32_t il = 0; il < o->n_layer; il++) {
        char name[64];
        int rc = 0;
#define T(suffix, ne0, ne1, fill, type)                                                            \
    do {                                                                                           \
        snprintf(name, sizeof(name), "blk.%" PRIu32 ".%s", il, suffix);                            \
        if (rc == 0)                                                                               \
            rc = add_tensor(w, name, type, ne0, ne1, fill, s, rng);                                \
    } while (0)
        T("attn_norm.weight", o->n_embd, 1, FILL_ONES, GGUF_DT_F32);
        T("attn_q.weight", o->n_embd, q, FILL_NOISE, o->type);
        T("attn_k.weight", o->n_embd, kv, FILL_NOISE, o->type);
        T("attn_v.weight", o->n_embd, kv, FILL_NOISE, o->type);
        T("attn_output.weight", q, o->n_embd, FILL_NOISE, o->type);
        T("ffn_norm.weight", o->n_embd, 1, FILL_ONES, GGUF_DT_F32);
        T("ffn_gate.weight", o->n_embd, o->n_ff, FILL_NOISE, o->type);
        T("ffn_up.weight", o->n_embd, o->n_ff, FILL_NOISE, o->type);
        T("ffn_down.weight", o->n_ff, o->n_embd, FILL_NOISE, o->type);
#undef T
        if (rc < 0)
            return rc;
    }
    return 0;
}

int mkmodel_build(const struct mkmodel_opts *o, gguf_writer **out, genai_error *err)
{
    int rc = mkmodel_check(o, err);
    if (rc < 0)
        return rc;
    gguf_writer *w;
    if ((rc = gguf_writer_new(&w)) < 0)
        return err_set(err, rc, "out of memory");
    uint64_t rng = o->seed;
    if ((rc = add_hparams(w, o)) < 0 ||
        (rc = add_tensor(w, "token_embd.weight", o->type, o->n_embd, o->n_vocab, FILL_EMBD, 0.1f,
                         &rng)) < 0 ||
        (rc = add_tensor(w, "output_norm.weight", GGUF_DT_F32, o->n_embd, 1, FILL_ONES, 0, &rng)) <
            0 ||
        (rc = add_tensor(w, "output.weight", o->type, o->n_embd, o->n_vocab, FILL_OUTPUT, 0.5f,
                         &rng)) < 0 ||
        (rc = add_layers(w, o, &rng)) < 0) {
        gguf_writer_free(w);
        return err_set(err, rc, "building the model: %s", genai_strerror(rc));
    }
    *out = w;
    return 0;
}
