/*
 * test_mkmodel.c - genai-mkmodel's tiny llama model read back through the
 * GGUF reader: the ref-tiny shape of contracts/llama-server.md §2 with the
 * exact tensor shapes and byte sizes (1,501,696 B of tensor data = 1.43 MiB,
 * 375 k parameters), the keys llama.cpp requires, the SentencePiece byte
 * vocabulary, the output head's bias toward printable tokens, F16, seeds,
 * argument checks, and the command-line tool itself.
 */
#include "cmocka_all.h"

#include "gguf_testutil.h"

#include "core/alloc.h"
#include "gguf/gguf.h"
#include "gguf/profile.h"
#include "tiny_llama.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static gguf_file *build(const struct mkmodel_opts *o, uint8_t **img, size_t *len)
{
    gguf_writer *w;
    genai_error err;
    int rc = mkmodel_build(o, &w, &err);
    if (rc != 0)
        fail_msg("%s", err.detail);
    assert_int_equal(gguf_writer_to_mem(w, img, len, NULL), 0);
    gguf_writer_free(w);
    gguf_file *f;
    rc = gguf_parse_buffer(*img, *len, &f, &err);
    if (rc != 0)
        fail_msg("%s", err.detail);
    return f;
}

static float f32_at(const uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &v, sizeof(f));
    return f;
}

static void test_ref_tiny(void **state)
{
    (void)state;
    struct mkmodel_opts o;
    mkmodel_defaults(&o);
    uint8_t *img;
    size_t len;
    gguf_file *f = build(&o, &img, &len);

    static const struct {
        const char *name;
        uint64_t ne0, ne1;
    } shapes[] = {
        {"token_embd.weight", 128, 312},   {"output_norm.weight", 128, 1},
        {"output.weight", 128, 312},       {"blk.0.attn_norm.weight", 128, 1},
        {"blk.0.attn_q.weight", 128, 128}, {"blk.0.attn_k.weight", 128, 64},
        {"blk.0.attn_v.weight", 128, 64},  {"blk.1.attn_output.weight", 128, 128},
        {"blk.1.ffn_norm.weight", 128, 1}, {"blk.1.ffn_gate.weight", 128, 256},
        {"blk.1.ffn_up.weight", 128, 256}, {"blk.1.ffn_down.weight", 256, 128},
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        const gguf_tensor *t = gguf_find_tensor(f, shapes[i].name);
        if (t == NULL)
            fail_msg("missing %s", shapes[i].name);
        assert_int_equal(t->type, GGUF_DT_F32);
        assert_int_equal(t->n_dims, shapes[i].ne1 > 1 ? 2 : 1);
        assert_int_equal(t->ne[0], shapes[i].ne0);
        assert_int_equal(t->ne[1], shapes[i].ne1);
        assert_int_equal(t->n_bytes, shapes[i].ne0 * shapes[i].ne1 * 4);
    }
    assert_int_equal(gguf_n_tensors(f), 3 + 2 * 9);
    /* contracts/llama-server.md §2: model buffer 1.43 MiB, 375 k parameters. */
    assert_int_equal(gguf_tensor_bytes(f), 1501696);
    assert_int_equal(gguf_file_size(f), len);
    assert_int_equal(gguf_data_offset(f) + gguf_tensor_bytes(f), len);

    uint32_t v;
    double d;
    gguf_str s;
    static const struct {
        const char *key;
        uint32_t value;
    } u32s[] = {
        {"llama.block_count", 2},           {"llama.embedding_length", 128},
        {"llama.attention.head_count", 4},  {"llama.attention.head_count_kv", 2},
        {"llama.feed_forward_length", 256}, {"llama.context_length", 2048},
        {"llama.rope.dimension_count", 32}, {"llama.vocab_size", 312},
        {"general.file_type", 0},           {"tokenizer.ggml.bos_token_id", 1},
        {"tokenizer.ggml.eos_token_id", 2}, {"tokenizer.ggml.unknown_token_id", 0},
    };
    for (size_t i = 0; i < sizeof(u32s) / sizeof(u32s[0]); i++) {
        if (gguf_get_u32(f, u32s[i].key, &v, NULL) != 0)
            fail_msg("missing %s", u32s[i].key);
        assert_int_equal(v, u32s[i].value);
    }
    assert_int_equal(gguf_get_f64(f, "llama.attention.layer_norm_rms_epsilon", &d, NULL), 0);
    assert_true(d > 0.99e-5 && d < 1.01e-5);
    assert_int_equal(gguf_get_str(f, "general.architecture", &s, NULL), 0);
    assert_true(gguf_str_eq(s, "llama"));
    assert_int_equal(gguf_get_str(f, "tokenizer.ggml.model", &s, NULL), 0);
    assert_true(gguf_str_eq(s, "llama"));

    const gguf_kv *toks = gguf_find_kv(f, "tokenizer.ggml.tokens");
    const gguf_kv *types = gguf_find_kv(f, "tokenizer.ggml.token_type");
    const gguf_kv *scores = gguf_find_kv(f, "tokenizer.ggml.scores");
    assert_int_equal(toks->n, 312);
    assert_int_equal(types->n, 312);
    assert_int_equal(types->arr_type, GGUF_VAL_INT32);
    assert_int_equal(scores->n, 312);
    assert_int_equal(scores->arr_type, GGUF_VAL_FLOAT32);
    static const struct {
        uint32_t id;
        const char *text;
        int64_t type;
    } vocab[] = {
        {0, "<unk>", 2},
        {1, "<s>", 3},
        {2, "</s>", 3},
        {3, "<0x00>", 6},
        {13, "<0x0A>", 6},
        {258, "<0xFF>", 6},
        {259, "\xe2\x96\x81", 1},
        {260, "a", 1},
        {285, "z", 1},
        {286, "A", 1},
        {311, "Z", 1},
    };
    for (size_t i = 0; i < sizeof(vocab) / sizeof(vocab[0]); i++) {
        int64_t t;
        assert_int_equal(gguf_kv_str(toks, vocab[i].id, &s, NULL), 0);
        if (!gguf_str_eq(s, vocab[i].text))
            fail_msg("token %u is '%.*s'", vocab[i].id, (int)s.len, s.ptr);
        assert_int_equal(gguf_kv_i64(types, vocab[i].id, &t, NULL), 0);
        assert_int_equal(t, vocab[i].type);
    }

    /* The output head: +1 in dimension 0 for printable tokens, -1 otherwise;
     * every embedding has 1 there. */
    const gguf_tensor *out = gguf_find_tensor(f, "output.weight");
    const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    int printable = 0;
    for (uint32_t id = 0; id < 312; id++) {
        float w0 = f32_at(img + out->file_offset + (uint64_t)id * 128 * 4);
        int want = id >= 259 || (id >= 3 + 0x20 && id <= 3 + 0x7e);
        assert_true(w0 == (want ? 1.0f : -1.0f));
        printable += want;
        assert_true(f32_at(img + emb->file_offset + (uint64_t)id * 128 * 4) == 1.0f);
    }
    assert_int_equal(printable, 95 + 53);

    gguf_model *m;
    assert_int_equal(gguf_model_from_file(f, &m, NULL), 0);
    gguf_profile p;
    assert_int_equal(gguf_profile_from_model(m, &p, NULL), 0);
    assert_int_equal(p.n_vocab, 312);
    assert_int_equal(p.key_length, 32);
    assert_int_equal(p.head_count_kv[0] * p.key_length, 64); /* "KV width 2 x 32" */
    assert_int_equal(p.n_params, 375424);
    assert_int_equal(p.tensor_bytes, 1501696);
    assert_int_equal((uint64_t)(p.tensor_bytes / 1048576.0 * 100 + 0.5), 143);
    assert_int_equal(p.layer_bytes[0] + p.layer_bytes[1] + p.token_embd_bytes + p.output_bytes,
                     p.tensor_bytes);
    gguf_profile_free(&p);
    gguf_model_free(m);
    mem_free(img);
}

static void test_f16_custom_shape(void **state)
{
    (void)state;
    struct mkmodel_opts o;
    mkmodel_defaults(&o);
    o.n_layer = 3;
    o.n_embd = 64;
    o.n_head = 4;
    o.n_head_kv = 1;
    o.n_ff = 96;
    o.n_vocab = 400;
    o.type = GGUF_DT_F16;
    uint8_t *img;
    size_t len;
    gguf_file *f = build(&o, &img, &len);
    const gguf_tensor *t = gguf_find_tensor(f, "blk.2.attn_k.weight");
    assert_int_equal(t->type, GGUF_DT_F16);
    assert_int_equal(t->ne[1], 16);
    assert_int_equal(gguf_find_tensor(f, "blk.2.ffn_norm.weight")->type, GGUF_DT_F32);
    const uint64_t layer = 2 * 64 * 4 + 2 * (64 * 64 * 2 + 64 * 16 * 2 + 3 * 64 * 96);
    assert_int_equal(gguf_tensor_bytes(f), 3 * layer + 2 * 64 * 400 * 2 + 64 * 4);
    uint32_t v;
    assert_int_equal(gguf_get_u32(f, "general.file_type", &v, NULL), 0);
    assert_int_equal(v, 1);
    const gguf_kv *toks = gguf_find_kv(f, "tokenizer.ggml.tokens");
    gguf_str s;
    char buf[32];
    assert_int_equal(gguf_kv_str(toks, 399, &s, NULL), 0);
    assert_true(gguf_str_eq(s, mkmodel_token(399, buf, sizeof(buf))));
    gguf_close(f);
    mem_free(img);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_vocab_unique(void **state)
{
    (void)state;
    enum { N = 6000 };
    char **t = mem_calloc(N, sizeof(*t));
    for (uint32_t i = 0; i < N; i++) {
        char buf[32];
        t[i] = mem_strdup(mkmodel_token(i, buf, sizeof(buf)));
    }
    qsort(t, N, sizeof(*t), cmp_str);
    for (uint32_t i = 1; i < N; i++)
        if (strcmp(t[i - 1], t[i]) == 0)
            fail_msg("duplicate token '%s'", t[i]);
    for (uint32_t i = 0; i < N; i++)
        mem_free(t[i]);
    mem_free(t);
    char buf[32];
    assert_string_equal(mkmodel_token(259 + 53, buf, sizeof(buf)), "\xe2\x96\x81"
                                                                   "a");
    assert_string_equal(mkmodel_token(259 + 105, buf, sizeof(buf)), "aa");
    assert_true(strlen(mkmodel_token(MKMODEL_MAX_VOCAB - 1, buf, sizeof(buf))) > 0);
}

static void test_seed_and_f16(void **state)
{
    (void)state;
    struct mkmodel_opts o;
    mkmodel_defaults(&o);
    o.n_vocab = 300;
    uint8_t *a, *b, *c;
    size_t la, lb, lc;
    gguf_close(build(&o, &a, &la));
    gguf_close(build(&o, &b, &lb));
    o.seed = 43;
    gguf_close(build(&o, &c, &lc));
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    assert_int_equal(la, lc);
    assert_memory_not_equal(a, c, la);
    mem_free(a);
    mem_free(b);
    mem_free(c);

    assert_int_equal(mkmodel_f16(1.0f), 0x3c00);
    assert_int_equal(mkmodel_f16(-2.0f), 0xc000);
    assert_int_equal(mkmodel_f16(0.5f), 0x3800);
    assert_int_equal(mkmodel_f16(65504.0f), 0x7bff);
    assert_int_equal(mkmodel_f16(1e6f), 0x7c00);
    assert_int_equal(mkmodel_f16(0.0f), 0x0000);
    assert_int_equal(mkmodel_f16(-0.0f), 0x8000);
    assert_int_equal(mkmodel_f16(5.9604645e-8f), 0x0001); /* smallest subnormal */
    assert_int_equal(mkmodel_f16(1e-9f), 0x0000);
    assert_int_equal(mkmodel_f16(0.1f), 0x2e66);
    assert_int_equal(mkmodel_f16(1.0f + 1.0f / 2048), 0x3c00); /* tie rounds to even */
    assert_int_equal(mkmodel_f16(1.0f + 3.0f / 2048), 0x3c02);
}

static void test_check(void **state)
{
    (void)state;
    struct mkmodel_opts o;
    genai_error err;
    mkmodel_defaults(&o);
    assert_int_equal(mkmodel_check(&o, &err), 0);
    o.n_head = 3;
    assert_int_equal(mkmodel_check(&o, &err), GENAI_EBAD_ARG);
    mkmodel_defaults(&o);
    o.n_head_kv = 3;
    assert_int_equal(mkmodel_check(&o, &err), GENAI_EBAD_ARG);
    mkmodel_defaults(&o);
    o.n_vocab = 258;
    assert_int_equal(mkmodel_check(&o, &err), GENAI_EBAD_ARG);
    mkmodel_defaults(&o);
    o.type = GGUF_DT_Q4_0;
    assert_int_equal(mkmodel_check(&o, &err), GENAI_EBAD_ARG);
    gguf_writer *w = NULL;
    assert_int_equal(mkmodel_build(&o, &w, &err), GENAI_EBAD_ARG);
    assert_null(w);
}

/* Runs the tool with argv (argv[0] is replaced by the binary) and returns
 * its exit status. */
static int run_tool(char **argv)
{
    const char *build_dir = getenv("GENAI_BUILD_DIR");
    assert_non_null(build_dir);
    char *bin = tu_path(build_dir, "tools/mkmodel/genai-mkmodel");
    argv[0] = bin;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execv(bin, argv);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    mem_free(bin);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_tool(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("gguf");
    char *path = tu_path(dir, "tiny.gguf");
    char *args[] = {NULL,  path,     "--layers", "3",          "--vocab", "400", "--type",
                    "f16", "--seed", "7",        "--kv-heads", "4",       NULL};
    assert_int_equal(run_tool(args), 0);
    gguf_profile p;
    genai_error err;
    assert_int_equal(gguf_profile_load(path, &p, &err), 0);
    assert_int_equal(p.n_layer, 3);
    assert_int_equal(p.n_vocab, 400);
    assert_int_equal(p.file_type, 1);
    assert_int_equal(p.head_count_kv[2], 4);
    gguf_profile_free(&p);

    char *defaults[] = {NULL, path, NULL};
    assert_int_equal(run_tool(defaults), 0);
    assert_int_equal(gguf_profile_load(path, &p, &err), 0);
    assert_int_equal(p.tensor_bytes, 1501696);
    gguf_profile_free(&p);

    char *bad_flag[] = {NULL, path, "--bogus", "1", NULL};
    assert_int_equal(run_tool(bad_flag), 2);
    char *bad_value[] = {NULL, path, "--layers", "x", NULL};
    assert_int_equal(run_tool(bad_value), 2);
    char *bad_type[] = {NULL, path, "--type", "q4", NULL};
    assert_int_equal(run_tool(bad_type), 2);
    char *bad_shape[] = {NULL, path, "--heads", "3", NULL};
    assert_int_equal(run_tool(bad_shape), 2);
    char *no_out[] = {NULL, NULL};
    assert_int_equal(run_tool(no_out), 2);
    char *unwritable[] = {NULL, "/nonexistent-dir/x.gguf", NULL};
    assert_int_equal(run_tool(unwritable), 1);

    unlink(path);
    mem_free(path);
    tu_rmdir(dir);
    mem_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_tiny),     cmocka_unit_test(test_f16_custom_shape),
        cmocka_unit_test(test_vocab_unique), cmocka_unit_test(test_seed_and_f16),
        cmocka_unit_test(test_check),        cmocka_unit_test(test_tool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
