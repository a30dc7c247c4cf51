/*
 * gen_corpus.c - writes the seed corpus of the safetensors fuzz target:
 * small valid files with each family's naming (tiny shapes, with and
 * without metadata) and damaged copies (cut short, length past the file,
 * bad JSON, duplicate keys, overlapping offsets, wrong sizes, odd dtypes).
 *
 *   build-dir/tests/diffusion/dm_gen_corpus tests/data/diffusion/corpus
 *
 * Not run by the test suite: the corpus is committed; rerun after a format
 * change. Output is deterministic.
 */
#include "st_writer.h"

#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *out_dir;

static void die(const char *what)
{
    fprintf(stderr, "dm_gen_corpus: %s\n", what);
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

static void save_writer(const char *name, st_writer *w, size_t cut)
{
    size_t n;
    uint8_t *p = stw_to_mem(w, &n);
    if (p == NULL)
        die("to_mem");
    save(name, p, cut != 0 && cut < n ? cut : n);
    mem_free(p);
}

static void save_raw(const char *name, const char *header, uint64_t declared, size_t data)
{
    size_t n;
    uint8_t *p = st_raw(header, declared, data, &n);
    if (p == NULL)
        die("raw");
    save(name, p, n);
    mem_free(p);
}

static void add(st_writer *w, const char *name, uint64_t a, uint64_t b)
{
    uint64_t sh[2] = {a, b};
    if (stw_tensor(w, name, "F16", b != 0 ? 2 : 1, sh) != 0)
        die(name);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        die("usage: dm_gen_corpus OUT_DIR");
    out_dir = argv[1];

    st_writer *w = stw_new();
    add(w, "model.diffusion_model.input_blocks.0.0.weight", 8, 4);
    add(w, "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", 8, 768);
    add(w, "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", 4, 768);
    add(w, "first_stage_model.decoder.conv_out.weight", 3, 32);
    save_writer("valid_sd1.safetensors", w, 0);
    save_writer("trunc_data.safetensors", w, 200);
    stw_free(w);

    w = stw_new();
    add(w, "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight", 8,
        2048);
    add(w, "model.diffusion_model.label_emb.0.0.weight", 8, 16);
    add(w, "conditioner.embedders.1.model.token_embedding.weight", 4, 1280);
    stw_meta(w, "modelspec.architecture", "stable-diffusion-xl-v1-base");
    stw_meta(w, "modelspec.title", "SDXL Lightning 4-step");
    save_writer("valid_sdxl_meta.safetensors", w, 0);
    stw_free(w);

    w = stw_new();
    add(w, "double_blocks.0.img_attn.qkv.weight", 16, 8);
    add(w, "single_blocks.3.linear1.weight", 16, 8);
    add(w, "img_in.weight", 8, 64);
    add(w, "guidance_in.in_layer.weight", 8, 4);
    save_writer("valid_flux_bare.safetensors", w, 0);
    stw_free(w);

    w = stw_new();
    add(w, "joint_blocks.0.x_block.attn.qkv.weight", 12, 4);
    add(w, "joint_blocks.23.x_block.attn.qkv.weight", 12, 4);
    add(w, "decoder.conv_out.weight", 3, 128);
    save_writer("valid_sd3_bare.safetensors", w, 0);
    stw_free(w);

#define T(n, dt, shape, off)                                                                       \
    "\"" n "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" off "}"
    save_raw("len_past_end.safetensors", "{}", 1 << 20, 0);
    save_raw("len_huge.safetensors", "{}", UINT64_MAX - 1, 0);
    save_raw("not_object.safetensors", "[1,2,3]", UINT64_MAX, 0);
    save_raw("bad_json.safetensors", "{\"a\":{\"dtype\":", UINT64_MAX, 0);
    save_raw("dup_key.safetensors",
             "{" T("a", "F16", "[2]", "[0,4]") "," T("a", "F16", "[2]", "[4,8]") "}", UINT64_MAX,
             8);
    save_raw("overlap.safetensors",
             "{" T("a", "F32", "[2]", "[0,8]") "," T("b", "F32", "[2]", "[4,12]") "}", UINT64_MAX,
             16);
    save_raw("size_mismatch.safetensors", "{" T("a", "F16", "[3]", "[0,4]") "}", UINT64_MAX, 4);
    save_raw("offset_past_end.safetensors", "{" T("a", "F16", "[2]", "[8,12]") "}", UINT64_MAX, 4);
    save_raw("neg_shape.safetensors", "{" T("a", "F16", "[-1]", "[0,0]") "}", UINT64_MAX, 0);
    save_raw("overflow_shape.safetensors",
             "{" T("a", "F64", "[4294967296,4294967296,4294967296]", "[0,8]") "}", UINT64_MAX, 8);
    save_raw("odd_dtypes.safetensors",
             "{" T("a", "F4", "[3]", "[0,2]") "," T("b", "F6_E2M3", "[4]", "[2,5]") "," T(
                 "c", "F8_E4M3", "[]", "[5,6]") "}",
             UINT64_MAX, 6);
    save_raw("meta_not_string.safetensors", "{\"__metadata__\":{\"k\":[1]}}", UINT64_MAX, 0);
    save_raw("deep_json.safetensors",
             "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
             UINT64_MAX, 0);
    save_raw("gguf_magic.safetensors", "GGUF\x03", UINT64_MAX, 0);
    return 0;
}
