/*
 * gen_corpus.c - writes the seed corpus of the GGUF fuzz target: small valid
 * files made with the writer (a tiny llama, every value type, sliding-window,
 * MoE and per-layer-array models) and damaged copies (truncated, bad magic,
 * version 1, huge counts, nested array, n_dims 5, misaligned offset).
 *
 *   build-dir/tests/gguf/gguf_gen_corpus tests/data/gguf/corpus
 *
 * Not run by the test suite: the corpus is committed; rerun after a format
 * change. Output is deterministic.
 */
#include "core/alloc.h"
#include "gguf/gguf.h"
#include "gguf/writer.h"
#include "tiny_llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *out_dir;

static void die(const char *what)
{
    fprintf(stderr, "gguf_gen_corpus: %s\n", what);
    exit(1);
}

static void save(const char *name, const uint8_t *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", out_dir, name);
    FILE *f = fopen(path, "wbe");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0)
        die(path);
}

static void image(gguf_writer *w, uint8_t **p, size_t *n)
{
    if (gguf_writer_to_mem(w, p, n, NULL) != 0)
        die("to_mem");
    gguf_writer_free(w);
}

static gguf_writer *base(const char *arch, uint32_t n_layer)
{
    gguf_writer *w;
    char key[96];
    if (gguf_writer_new(&w) != 0)
        die("oom");
    gguf_writer_add_str(w, "general.architecture", arch);
    snprintf(key, sizeof(key), "%s.block_count", arch);
    gguf_writer_add_u32(w, key, n_layer);
    snprintf(key, sizeof(key), "%s.embedding_length", arch);
    gguf_writer_add_u32(w, key, 32);
    snprintf(key, sizeof(key), "%s.attention.head_count", arch);
    gguf_writer_add_u32(w, key, 4);
    return w;
}

static void add(gguf_writer *w, const char *name, uint32_t type, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t ne[] = {a, b, c};
    if (gguf_writer_add_tensor(w, name, type, c > 1 ? 3 : b > 1 ? 2 : 1, ne, NULL) != 0)
        die(name);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gguf_gen_corpus DIR\n");
        return 2;
    }
    out_dir = argv[1];
    uint8_t *p;
    size_t n;

    struct mkmodel_opts o;
    mkmodel_defaults(&o);
    o.n_layer = 1;
    o.n_embd = 8;
    o.n_head = 2;
    o.n_head_kv = 1;
    o.n_ff = 16;
    o.n_vocab = MKMODEL_MIN_VOCAB;
    o.type = GGUF_DT_F16;
    gguf_writer *w;
    if (mkmodel_build(&o, &w, NULL) != 0)
        die("mkmodel");
    image(w, &p, &n);
    save("valid_tiny_llama.gguf", p, n);
    save("trunc_data.gguf", p, n - 10);
    save("trunc_header.gguf", p, 700);
    gguf_file *f;
    if (gguf_parse_buffer(p, n, &f, NULL) != 0)
        die("reparse");
    const gguf_tensor *t1 = gguf_tensor_at(f, 1);
    uint64_t ndims_at = t1->info_off + 8 + t1->name.len;
    uint64_t offset_at = ndims_at + 4 + 8 * t1->n_dims + 4;
    gguf_close(f);
    p[ndims_at] = 5;
    save("bad_ndims.gguf", p, n);
    p[ndims_at] = 1;
    p[offset_at] ^= 1;
    save("misaligned.gguf", p, n);
    mem_free(p);

    if (gguf_writer_new(&w) != 0)
        die("oom");
    uint8_t u8 = 7;
    int8_t i8 = -7;
    uint16_t u16 = 700;
    int16_t i16 = -700;
    int64_t i64 = -7000000000LL;
    double f64 = 0.7;
    int32_t ai[] = {1, -2, 3};
    uint8_t ab[] = {1, 0};
    const char *as[] = {"", "x", "yz"};
    gguf_writer_add_u32(w, "general.alignment", 64);
    gguf_writer_add_scalar(w, "v.u8", GGUF_VAL_UINT8, &u8);
    gguf_writer_add_scalar(w, "v.i8", GGUF_VAL_INT8, &i8);
    gguf_writer_add_scalar(w, "v.u16", GGUF_VAL_UINT16, &u16);
    gguf_writer_add_scalar(w, "v.i16", GGUF_VAL_INT16, &i16);
    gguf_writer_add_i32(w, "v.i32", -70000);
    gguf_writer_add_u64(w, "v.u64", 70000000000ull);
    gguf_writer_add_scalar(w, "v.i64", GGUF_VAL_INT64, &i64);
    gguf_writer_add_f32(w, "v.f32", 0.5f);
    gguf_writer_add_scalar(w, "v.f64", GGUF_VAL_FLOAT64, &f64);
    gguf_writer_add_bool(w, "v.bool", 1);
    gguf_writer_add_str(w, "v.str", "hello");
    gguf_writer_add_array(w, "a.i32", GGUF_VAL_INT32, ai, 3);
    gguf_writer_add_array(w, "a.bool", GGUF_VAL_BOOL, ab, 2);
    gguf_writer_add_str_array(w, "a.str", as, 3);
    add(w, "q4k", GGUF_DT_Q4_K, 256, 1, 1);
    add(w, "iq2", GGUF_DT_IQ2_XXS, 256, 1, 1);
    add(w, "mx", GGUF_DT_MXFP4, 32, 2, 1);
    add(w, "bf", GGUF_DT_BF16, 4, 2, 2);
    image(w, &p, &n);
    save("valid_types.gguf", p, n);
    memcpy(p, "GGUX", 4);
    save("bad_magic.gguf", p, n);
    memcpy(p, "GGUF", 4);
    p[4] = 1;
    save("version1.gguf", p, n);
    p[4] = 3;
    p[15] = 0x10; /* tensor count 2^60 */
    save("huge_count.gguf", p, n);
    mem_free(p);

    w = base("gemma3", 6);
    gguf_writer_add_u32(w, "gemma3.attention.sliding_window", 512);
    uint8_t pattern[] = {1, 1, 0, 1, 1, 0};
    gguf_writer_add_array(w, "gemma3.attention.sliding_window_pattern", GGUF_VAL_BOOL, pattern, 6);
    for (int il = 0; il < 6; il++) {
        char name[64];
        snprintf(name, sizeof(name), "blk.%d.attn_k.weight", il);
        add(w, name, GGUF_DT_F16, 32, 8, 1);
    }
    add(w, "token_embd.weight", GGUF_DT_Q8_0, 32, 10, 1);
    image(w, &p, &n);
    save("valid_swa.gguf", p, n);
    mem_free(p);

    w = base("qwen3moe", 2);
    gguf_writer_add_u32(w, "qwen3moe.expert_count", 4);
    gguf_writer_add_u32(w, "qwen3moe.expert_used_count", 2);
    for (int il = 0; il < 2; il++) {
        char name[64];
        snprintf(name, sizeof(name), "blk.%d.ffn_up_exps.weight", il);
        add(w, name, GGUF_DT_Q4_0, 32, 8, 4);
        snprintf(name, sizeof(name), "blk.%d.ffn_gate_inp.weight", il);
        add(w, name, GGUF_DT_F32, 32, 4, 1);
    }
    add(w, "output.weight", GGUF_DT_F16, 32, 10, 1);
    image(w, &p, &n);
    save("valid_moe.gguf", p, n);
    mem_free(p);

    if (gguf_writer_new(&w) != 0)
        die("oom");
    gguf_writer_add_str(w, "general.architecture", "jamba");
    gguf_writer_add_u32(w, "jamba.block_count", 4);
    gguf_writer_add_u32(w, "jamba.embedding_length", 64);
    uint32_t heads[] = {8, 8, 8, 8};
    int32_t kv[] = {0, 2, 0, 2};
    gguf_writer_add_array(w, "jamba.attention.head_count", GGUF_VAL_UINT32, heads, 4);
    gguf_writer_add_array(w, "jamba.attention.head_count_kv", GGUF_VAL_INT32, kv, 4);
    gguf_writer_add_array(w, "jamba.feed_forward_length", GGUF_VAL_INT32, kv, 4);
    image(w, &p, &n);
    save("valid_gqa_arrays.gguf", p, n);
    /* Turn the first array's element type into ARRAY: a nested array. */
    static const char needle[] = "jamba.attention.head_count";
    for (size_t i = 0; i + sizeof(needle) < n; i++) {
        if (memcmp(p + i, needle, sizeof(needle) - 1) == 0 && p[i + sizeof(needle) - 1] == 9) {
            p[i + sizeof(needle) - 1 + 4] = 9;
            break;
        }
    }
    save("nested_array.gguf", p, n);
    mem_free(p);
    return 0;
}
