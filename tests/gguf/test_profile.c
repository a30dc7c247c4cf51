/*
 * test_profile.c - gguf_profile values for fixtures built with the writer:
 * a llama-like dense model, GQA with per-layer arrays, sliding-window
 * patterns (gemma2/gemma3/cohere2/llama4/smallthinker seeds, the scalar,
 * bool-array and integer-array key forms), MoE expert bytes, tied output,
 * recurrent and hybrid layers, required keys, JSON, allocation failures.
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "gguf/gguf.h"
#include "gguf/profile.h"
#include "gguf/writer.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static int profile_of(gguf_writer *w, gguf_profile *p, genai_error *err)
{
    uint8_t *img;
    size_t len;
    assert_int_equal(gguf_writer_to_mem(w, &img, &len, NULL), 0);
    gguf_file *f;
    int rc = gguf_parse_buffer(img, len, &f, err);
    mem_free(img);
    if (rc < 0)
        fail_msg("parse: %s", err->detail);
    gguf_model *m;
    assert_int_equal(gguf_model_from_file(f, &m, NULL), 0);
    rc = gguf_profile_from_model(m, p, err);
    gguf_model_free(m);
    return rc;
}

/* Metadata every fixture needs: architecture, layers, width, heads. */
static gguf_writer *base(const char *arch, uint32_t n_layer, uint32_t n_embd, uint32_t n_head)
{
    gguf_writer *w;
    char key[96];
    assert_int_equal(gguf_writer_new(&w), 0);
    assert_int_equal(gguf_writer_add_str(w, "general.architecture", arch), 0);
    snprintf(key, sizeof(key), "%s.block_count", arch);
    assert_int_equal(gguf_writer_add_u32(w, key, n_layer), 0);
    snprintf(key, sizeof(key), "%s.embedding_length", arch);
    assert_int_equal(gguf_writer_add_u32(w, key, n_embd), 0);
    snprintf(key, sizeof(key), "%s.attention.head_count", arch);
    assert_int_equal(gguf_writer_add_u32(w, key, n_head), 0);
    return w;
}

static void tensor(gguf_writer *w, const char *name, uint32_t type, uint64_t a, uint64_t b,
                   uint64_t c)
{
    uint64_t ne[] = {a, b, c};
    uint32_t n = c > 1 ? 3 : b > 1 ? 2 : 1;
    if (gguf_writer_add_tensor(w, name, type, n, ne, NULL) != 0)
        fail_msg("add_tensor %s", name);
}

/* A llama block: F32 norms, matrices of type mt. */
static void llama_layer(gguf_writer *w, int il, uint32_t mt, uint64_t embd, uint64_t q, uint64_t kv,
                        uint64_t ff)
{
    char n[64];
#define L(suffix, type, a, b)                                                                      \
    do {                                                                                           \
        snprintf(n, sizeof(n), "blk.%d.%s", il, suffix);                                           \
        tensor(w, n, type, a, b, 1);                                                               \
    } while (0)
    L("attn_norm.weight", GGUF_DT_F32, embd, 1);
    L("attn_q.weight", mt, embd, q);
    L("attn_k.weight", mt, embd, kv);
    L("attn_v.weight", mt, embd, kv);
    L("attn_output.weight", mt, q, embd);
    L("ffn_norm.weight", GGUF_DT_F32, embd, 1);
    L("ffn_gate.weight", mt, embd, ff);
    L("ffn_up.weight", mt, embd, ff);
    L("ffn_down.weight", mt, ff, embd);
#undef L
}

static void test_llama_like(void **state)
{
    (void)state;
    gguf_writer *w = base("llama", 4, 256, 8);
    gguf_writer_add_str(w, "general.name", "Fixture Llama");
    gguf_writer_add_u32(w, "general.file_type", 1);
    gguf_writer_add_u32(w, "llama.context_length", 4096);
    gguf_writer_add_u32(w, "llama.feed_forward_length", 512);
    gguf_writer_add_u32(w, "llama.attention.head_count_kv", 2);
    static const char *toks[1000];
    for (int i = 0; i < 1000; i++)
        toks[i] = "t";
    gguf_writer_add_str_array(w, "tokenizer.ggml.tokens", toks, 1000);
    tensor(w, "token_embd.weight", GGUF_DT_F16, 256, 1000, 1);
    for (int il = 0; il < 4; il++)
        llama_layer(w, il, GGUF_DT_F16, 256, 256, 64, 512);
    tensor(w, "output_norm.weight", GGUF_DT_F32, 256, 1, 1);
    tensor(w, "output.weight", GGUF_DT_Q8_0, 256, 1000, 1);
    tensor(w, "rope_freqs.weight", GGUF_DT_F32, 16, 1, 1);
    uint64_t file = gguf_writer_size(w);

    gguf_profile p;
    genai_error err;
    assert_int_equal(profile_of(w, &p, &err), 0);
    assert_string_equal(p.architecture, "llama");
    assert_string_equal(p.name, "Fixture Llama");
    assert_int_equal(p.file_type, 1);
    assert_int_equal(p.n_split, 1);
    assert_int_equal(p.file_bytes, file);
    assert_int_equal(p.n_layer, 4);
    assert_int_equal(p.n_ctx_train, 4096);
    assert_int_equal(p.n_embd, 256);
    assert_int_equal(p.n_ff, 512);
    assert_int_equal(p.n_head, 8);
    assert_int_equal(p.n_vocab, 1000); /* from the token list */
    assert_int_equal(p.key_length, 32);
    assert_int_equal(p.value_length, 32);
    assert_int_equal(p.n_expert, 0);
    assert_int_equal(p.n_swa, 0);
    const uint64_t matrices = 256 * 256 + 2 * 256 * 64 + 256 * 256 + 3 * 256 * 512;
    const uint64_t layer = 2 * 256 * 4 + matrices * 2;
    for (int il = 0; il < 4; il++) {
        assert_int_equal(p.head_count[il], 8);
        assert_int_equal(p.head_count_kv[il], 2);
        assert_int_equal(p.swa_layer[il], 0);
        assert_int_equal(p.has_kv[il], 1);
        assert_int_equal(p.layer_bytes[il], layer);
        assert_int_equal(p.layer_expert_bytes[il], 0);
    }
    assert_int_equal(p.token_embd_bytes, 256 * 1000 * 2);
    assert_int_equal(p.output_bytes, 1000 * (256 / 32 * 34) + 256 * 4);
    assert_int_equal(p.output_tied, 0);
    assert_int_equal(p.other_bytes, 64);
    assert_int_equal(p.tensor_bytes,
                     4 * layer + p.token_embd_bytes + p.output_bytes + p.other_bytes);
    assert_int_equal(p.n_tensors, 4 * 9 + 4);
    assert_int_equal(p.n_params, 4 * (2 * 256 + matrices) + 2 * 256000 + 256 + 16);

    json_t *j = gguf_profile_to_json(&p);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "architecture")), "llama");
    assert_int_equal(json_integer_value(json_object_get(j, "n_layer")), 4);
    assert_int_equal(json_integer_value(json_object_get(j, "tensor_bytes")), p.tensor_bytes);
    assert_int_equal(json_integer_value(json_object_get(j, "file_type")), 1);
    json_t *lb = json_object_get(j, "layer_bytes");
    assert_int_equal(json_array_size(lb), 4);
    assert_int_equal(json_integer_value(json_array_get(lb, 3)), layer);
    assert_true(json_is_false(json_object_get(j, "output_tied")));
    assert_int_equal(json_array_size(json_object_get(j, "swa_layer")), 4);
    json_decref(j);

    /* Allocation failure anywhere in the profile: -ENOMEM, nothing leaked. */
    uint8_t *img;
    size_t len;
    assert_int_equal(gguf_writer_to_mem(w, &img, &len, NULL), 0);
    gguf_file *f;
    gguf_model *m;
    assert_int_equal(gguf_parse_buffer(img, len, &f, NULL), 0);
    assert_int_equal(gguf_model_from_file(f, &m, NULL), 0);
    unsigned long n;
    for (n = 1; n < 100; n++) {
        gguf_profile q;
        mem_fail_after(n, 0);
        int rc = gguf_profile_from_model(m, &q, NULL);
        mem_fail_after(0, 0);
        if (rc == 0) {
            assert_int_equal(q.tensor_bytes, p.tensor_bytes);
            gguf_profile_free(&q);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
    }
    assert_true(n > 6 && n < 100);
    gguf_model_free(m);
    mem_free(img);

    gguf_profile_free(&p);
    assert_null(p.head_count);
    gguf_profile_free(&p);
    gguf_profile_free(NULL);
    gguf_writer_free(w);
}

/* Per-layer head counts, a zero KV head count (a layer without attention),
 * explicit key/value lengths, per-layer feed-forward lengths. */
static void test_gqa_per_layer(void **state)
{
    (void)state;
    gguf_writer *w;
    assert_int_equal(gguf_writer_new(&w), 0);
    gguf_writer_add_str(w, "general.architecture", "granitehybrid");
    gguf_writer_add_u32(w, "granitehybrid.block_count", 4);
    gguf_writer_add_u32(w, "granitehybrid.embedding_length", 512);
    uint32_t heads[] = {8, 8, 16, 16};
    int32_t kv[] = {2, 4, 0, 8};
    uint16_t ff[] = {100, 200, 300, 400};
    gguf_writer_add_array(w, "granitehybrid.attention.head_count", GGUF_VAL_UINT32, heads, 4);
    gguf_writer_add_array(w, "granitehybrid.attention.head_count_kv", GGUF_VAL_INT32, kv, 4);
    gguf_writer_add_array(w, "granitehybrid.feed_forward_length", GGUF_VAL_UINT16, ff, 4);
    gguf_writer_add_u32(w, "granitehybrid.attention.key_length", 64);
    gguf_writer_add_u32(w, "granitehybrid.attention.value_length", 48);
    gguf_writer_add_u32(w, "granitehybrid.vocab_size", 49152);
    gguf_profile p;
    genai_error err;
    int rc = profile_of(w, &p, &err);
    if (rc != 0)
        fail_msg("%s", err.detail);
    assert_int_equal(p.n_head, 16);
    assert_int_equal(p.n_ff, 100);
    assert_int_equal(p.key_length, 64);
    assert_int_equal(p.value_length, 48);
    assert_int_equal(p.n_vocab, 49152);
    for (int il = 0; il < 4; il++) {
        assert_int_equal(p.head_count[il], heads[il]);
        assert_int_equal(p.head_count_kv[il], (uint32_t)kv[il]);
        assert_int_equal(p.has_kv[il], kv[il] != 0);
    }
    gguf_profile_free(&p);
    gguf_writer_free(w);

    /* An array of the wrong length, a negative count. */
    w = base("llama", 4, 64, 4);
    int32_t three[] = {1, 1, 1};
    gguf_writer_add_array(w, "llama.attention.head_count_kv", GGUF_VAL_INT32, three, 3);
    assert_int_equal(profile_of(w, &p, &err), GENAI_ECORRUPT);
    assert_non_null(strstr(err.detail, "llama.attention.head_count_kv"));
    assert_non_null(strstr(err.detail, "3 entries for 4 layers"));
    gguf_writer_free(w);
    w = base("llama", 2, 64, 4);
    int32_t negative[] = {1, -1};
    gguf_writer_add_array(w, "llama.attention.head_count_kv", GGUF_VAL_INT32, negative, 2);
    assert_int_equal(profile_of(w, &p, &err), GENAI_ECORRUPT);
    gguf_writer_free(w);
}

/* Runs a fixture and compares swa_layer with the expected string of 0/1. */
static void expect_swa(gguf_writer *w, uint32_t n_swa, const char *layers)
{
    gguf_profile p;
    genai_error err;
    int rc = profile_of(w, &p, &err);
    if (rc != 0)
        fail_msg("%s", err.detail);
    char got[64];
    for (uint32_t il = 0; il < p.n_layer; il++)
        got[il] = (char)('0' + p.swa_layer[il]);
    got[p.n_layer] = '\0';
    assert_string_equal(got, layers);
    assert_int_equal(p.n_swa, n_swa);
    gguf_profile_free(&p);
    gguf_writer_free(w);
}

static void test_swa_patterns(void **state)
{
    (void)state;
    gguf_writer *w;
    /* gemma2: every other layer, window from the file or 4096. */
    w = base("gemma2", 6, 64, 4);
    gguf_writer_add_u32(w, "gemma2.attention.sliding_window", 2048);
    expect_swa(w, 2048, "101010");
    expect_swa(base("gemma2", 4, 64, 4), 4096, "1010");
    /* gemma3: five sliding layers, then one full. */
    w = base("gemma3", 12, 64, 4);
    gguf_writer_add_u32(w, "gemma3.attention.sliding_window", 1024);
    expect_swa(w, 1024, "111110111110");
    /* The key overrides the seed: a scalar period... */
    w = base("gemma3", 6, 64, 4);
    gguf_writer_add_u32(w, "gemma3.attention.sliding_window", 512);
    gguf_writer_add_u32(w, "gemma3.attention.sliding_window_pattern", 3);
    expect_swa(w, 512, "110110");
    /* cohere2: period 4. */
    w = base("cohere2", 8, 64, 4);
    gguf_writer_add_u32(w, "cohere2.attention.sliding_window", 4096);
    expect_swa(w, 4096, "11101110");
    /* llama4: chunked attention, 8192, three chunked then one full... */
    expect_swa(base("llama4", 8, 64, 4), 8192, "11101110");
    w = base("llama4", 4, 64, 4);
    gguf_writer_add_u32(w, "llama4.attention.sliding_window", 1234);
    expect_swa(w, 8192, "1110");
    /* ...unless the file says sliding_window = 0. */
    w = base("llama4", 4, 64, 4);
    gguf_writer_add_u32(w, "llama4.attention.sliding_window", 0);
    expect_swa(w, 0, "0000");
    /* smallthinker puts the full layer first. */
    w = base("smallthinker", 8, 64, 4);
    gguf_writer_add_u32(w, "smallthinker.attention.sliding_window", 4096);
    expect_swa(w, 4096, "01110111");
    /* Any architecture: per-layer bool and integer arrays, period 0 and 1. */
    w = base("foo", 4, 64, 4);
    uint8_t bools[] = {1, 0, 0, 1};
    gguf_writer_add_u32(w, "foo.attention.sliding_window", 512);
    gguf_writer_add_array(w, "foo.attention.sliding_window_pattern", GGUF_VAL_BOOL, bools, 4);
    expect_swa(w, 512, "1001");
    w = base("foo", 4, 64, 4);
    uint32_t ints[] = {0, 1, 1, 0};
    gguf_writer_add_u32(w, "foo.attention.sliding_window", 512);
    gguf_writer_add_array(w, "foo.attention.sliding_window_pattern", GGUF_VAL_UINT32, ints, 4);
    expect_swa(w, 512, "0110");
    w = base("foo", 3, 64, 4);
    gguf_writer_add_u32(w, "foo.attention.sliding_window", 128);
    gguf_writer_add_u32(w, "foo.attention.sliding_window_pattern", 0);
    expect_swa(w, 128, "111");
    w = base("foo", 3, 64, 4);
    gguf_writer_add_u32(w, "foo.attention.sliding_window", 128);
    gguf_writer_add_u32(w, "foo.attention.sliding_window_pattern", 1);
    expect_swa(w, 128, "000");
    /* Unknown architecture, window but no pattern: priced as full. */
    w = base("foo", 3, 64, 4);
    gguf_writer_add_u32(w, "foo.attention.sliding_window", 128);
    expect_swa(w, 128, "000");
    expect_swa(base("foo", 2, 64, 4), 0, "00");

    /* A pattern array of the wrong length. */
    w = base("foo", 4, 64, 4);
    gguf_writer_add_u32(w, "foo.attention.sliding_window", 512);
    gguf_writer_add_array(w, "foo.attention.sliding_window_pattern", GGUF_VAL_BOOL, bools, 3);
    gguf_profile p;
    genai_error err;
    assert_int_equal(profile_of(w, &p, &err), GENAI_ECORRUPT);
    gguf_writer_free(w);
}

static void test_moe(void **state)
{
    (void)state;
    gguf_writer *w = base("qwen3moe", 2, 128, 4);
    gguf_writer_add_u32(w, "qwen3moe.expert_count", 8);
    gguf_writer_add_u32(w, "qwen3moe.expert_used_count", 2);
    gguf_writer_add_u32(w, "qwen3moe.expert_shared_count", 1);
    gguf_writer_add_u32(w, "qwen3moe.expert_feed_forward_length", 64);
    tensor(w, "token_embd.weight", GGUF_DT_Q4_K, 256, 100, 1);
    for (int il = 0; il < 2; il++) {
        char n[64];
        snprintf(n, sizeof(n), "blk.%d.attn_q.weight", il);
        tensor(w, n, GGUF_DT_F16, 128, 128, 1);
        snprintf(n, sizeof(n), "blk.%d.ffn_gate_inp.weight", il);
        tensor(w, n, GGUF_DT_F32, 128, 8, 1);
        snprintf(n, sizeof(n), "blk.%d.ffn_gate_exps.weight", il);
        tensor(w, n, GGUF_DT_Q8_0, 128, 64, 8);
        snprintf(n, sizeof(n), "blk.%d.ffn_up_exps.weight", il);
        tensor(w, n, GGUF_DT_Q8_0, 128, 64, 8);
        snprintf(n, sizeof(n), "blk.%d.ffn_down_exps.weight", il);
        tensor(w, n, GGUF_DT_Q8_0, 64, 128, 8);
        snprintf(n, sizeof(n), "blk.%d.ffn_gate_shexp.weight", il);
        tensor(w, n, GGUF_DT_F16, 128, 64, 1);
    }
    tensor(w, "blk.7.nextn.weight", GGUF_DT_F32, 32, 1, 1); /* past block_count */
    gguf_profile p;
    genai_error err;
    assert_int_equal(profile_of(w, &p, &err), 0);
    assert_int_equal(p.n_expert, 8);
    assert_int_equal(p.n_expert_used, 2);
    assert_int_equal(p.n_expert_shared, 1);
    assert_int_equal(p.n_ff_expert, 64);
    const uint64_t experts = 3 * (128 * 64 * 8 / 32 * 34);
    const uint64_t dense = 128 * 128 * 2 + 128 * 8 * 4 + 128 * 64 * 2;
    for (int il = 0; il < 2; il++) {
        assert_int_equal(p.layer_expert_bytes[il], experts);
        assert_int_equal(p.layer_bytes[il], experts + dense);
    }
    /* No output.weight: llama.cpp reuses token_embd as the output. */
    assert_int_equal(p.output_tied, 1);
    assert_int_equal(p.token_embd_bytes, 100 * 144);
    assert_int_equal(p.output_bytes, 100 * 144);
    assert_int_equal(p.other_bytes, 128);
    assert_int_equal(p.n_vocab, 100); /* from token_embd's rows */
    gguf_profile_free(&p);
    gguf_writer_free(w);
}

static void test_recurrent_and_hybrid(void **state)
{
    (void)state;
    gguf_profile p;
    genai_error err;
    gguf_writer *w = base("mamba", 3, 64, 0);
    assert_int_equal(profile_of(w, &p, &err), 0);
    for (int il = 0; il < 3; il++)
        assert_int_equal(p.has_kv[il], 0);
    assert_int_equal(p.key_length, 0);
    gguf_profile_free(&p);
    gguf_writer_free(w);

    w = base("qwen3next", 8, 64, 4);
    gguf_writer_add_u32(w, "qwen3next.full_attention_interval", 4);
    assert_int_equal(profile_of(w, &p, &err), 0);
    for (int il = 0; il < 8; il++)
        assert_int_equal(p.has_kv[il], il == 3 || il == 7);
    gguf_profile_free(&p);
    gguf_writer_free(w);

    w = base("gemma3n", 6, 64, 4);
    gguf_writer_add_u32(w, "gemma3n.attention.shared_kv_layers", 2);
    assert_int_equal(profile_of(w, &p, &err), 0);
    for (int il = 0; il < 6; il++)
        assert_int_equal(p.has_kv[il], il < 4);
    gguf_profile_free(&p);
    gguf_writer_free(w);
}

static void test_required_keys(void **state)
{
    (void)state;
    gguf_profile p;
    genai_error err;
    gguf_writer *w;
    assert_int_equal(gguf_writer_new(&w), 0);
    gguf_writer_add_u32(w, "general.alignment", 32);
    assert_int_equal(profile_of(w, &p, &err), GENAI_EUNSUPPORTED);
    assert_non_null(strstr(err.detail, "general.architecture"));
    gguf_writer_free(w);

    assert_int_equal(gguf_writer_new(&w), 0);
    gguf_writer_add_str(w, "general.architecture", "llama");
    gguf_writer_add_u32(w, "llama.embedding_length", 64);
    assert_int_equal(profile_of(w, &p, &err), GENAI_ECORRUPT);
    assert_string_equal(err.detail, "required key 'llama.block_count' is missing");
    gguf_writer_free(w);

    assert_int_equal(gguf_writer_new(&w), 0);
    gguf_writer_add_str(w, "general.architecture", "llama");
    gguf_writer_add_u32(w, "llama.block_count", 2);
    gguf_writer_add_u32(w, "llama.embedding_length", 64);
    assert_int_equal(profile_of(w, &p, &err), GENAI_ECORRUPT);
    assert_string_equal(err.detail, "required key 'llama.attention.head_count' is missing");
    gguf_writer_free(w);

    w = base("llama", 5000, 64, 4);
    assert_int_equal(profile_of(w, &p, &err), GENAI_ETOO_LARGE);
    gguf_writer_free(w);
    w = base("bad arch", 2, 64, 4);
    assert_int_equal(profile_of(w, &p, &err), GENAI_ECORRUPT);
    gguf_writer_free(w);
    w = base("llama", 2, 64, 4);
    gguf_writer_add_str(w, "llama.context_length", "4096");
    assert_int_equal(profile_of(w, &p, &err), GENAI_ECORRUPT);
    gguf_writer_free(w);

    /* An invalid UTF-8 name still gives JSON. */
    w = base("llama", 1, 64, 4);
    gguf_writer_add_str(w, "general.name", "bad \xff name");
    assert_int_equal(profile_of(w, &p, &err), 0);
    json_t *j = gguf_profile_to_json(&p);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "bad ? name");
    assert_true(json_is_null(json_object_get(j, "file_type")));
    json_decref(j);
    gguf_profile_free(&p);
    gguf_writer_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_like),           cmocka_unit_test(test_gqa_per_layer),
        cmocka_unit_test(test_swa_patterns),         cmocka_unit_test(test_moe),
        cmocka_unit_test(test_recurrent_and_hybrid), cmocka_unit_test(test_required_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
