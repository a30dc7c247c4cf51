/*
 * dm_fixtures.c - tensor layouts of each diffusion family (see dm_fixtures.h).
 *
 * Names and shapes follow the released checkpoints' tensor tables (SD 1.5
 * v1-5-pruned, SD 2.1 768-v, SDXL base 1.0 and refiner, SD3 medium, FLUX.1
 * dev and schnell, Chroma), reduced to a few tensors per component: the
 * first UNet conv, one cross-attention key projection, the text encoders'
 * token embeddings, a few DiT blocks, the VAE's ends. Dimensions that make
 * a tensor huge are kept real: the data is a hole in the file.
 */
#include "dm_fixtures.h"

#include "cmocka_all.h"
#include "st_writer.h"

#include "core/alloc.h"
#include "gguf/writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define UNET "model.diffusion_model."
/* clang-format off */
#define VAE_ROWS(p)                                                 \
    {p "decoder.conv_in.weight", 4, {512, 4, 3, 3}},                \
    {p "decoder.conv_out.weight", 4, {3, 128, 3, 3}},               \
    {p "decoder.up.3.block.0.conv1.weight", 4, {128, 256, 3, 3}},   \
    {p "encoder.conv_in.weight", 4, {128, 3, 3, 3}},                \
    {p "encoder.conv_out.weight", 4, {8, 512, 3, 3}},               \
    {p "post_quant_conv.weight", 4, {4, 4, 1, 1}}
/* clang-format on */

const dmt_row dmt_sd1[] = {
    {UNET "input_blocks.0.0.weight", 4, {320, 4, 3, 3}},
    {UNET "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", 2, {320, 768}},
    {UNET "middle_block.1.proj_in.weight", 4, {1280, 1280, 1, 1}},
    {UNET "out.2.weight", 4, {4, 320, 3, 3}},
    {"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", 2, {49408, 768}},
    {"cond_stage_model.transformer.text_model.final_layer_norm.weight", 1, {768}},
    {"model_ema.decay", 0, {0}},
    VAE_ROWS("first_stage_model."),
};
const size_t dmt_sd1_n = N(dmt_sd1);

const dmt_row dmt_sd2[] = {
    {UNET "input_blocks.0.0.weight", 4, {320, 4, 3, 3}},
    {UNET "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", 2, {320, 1024}},
    {UNET "middle_block.1.proj_in.weight", 2, {1280, 1280}},
    {"cond_stage_model.model.token_embedding.weight", 2, {49408, 1024}},
    {"cond_stage_model.model.ln_final.weight", 1, {1024}},
    VAE_ROWS("first_stage_model."),
};
const size_t dmt_sd2_n = N(dmt_sd2);

const dmt_row dmt_sdxl[] = {
    {UNET "input_blocks.0.0.weight", 4, {320, 4, 3, 3}},
    {UNET "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight", 2, {640, 2048}},
    {UNET "label_emb.0.0.weight", 2, {1280, 2816}},
    {UNET "middle_block.1.proj_in.weight", 2, {1280, 1280}},
    {"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
     2,
     {49408, 768}},
    {"conditioner.embedders.1.model.token_embedding.weight", 2, {49408, 1280}},
    {"conditioner.embedders.1.model.text_projection", 2, {1280, 1280}},
    VAE_ROWS("first_stage_model."),
};
const size_t dmt_sdxl_n = N(dmt_sdxl);

const dmt_row dmt_sdxl_refiner[] = {
    {UNET "input_blocks.0.0.weight", 4, {384, 4, 3, 3}},
    {UNET "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight", 2, {768, 1280}},
    {UNET "label_emb.0.0.weight", 2, {1536, 2560}},
    {"conditioner.embedders.0.model.token_embedding.weight", 2, {49408, 1280}},
    VAE_ROWS("first_stage_model."),
};
const size_t dmt_sdxl_refiner_n = N(dmt_sdxl_refiner);

const dmt_row dmt_sd3_bare[] = {
    {"x_embedder.proj.weight", 4, {1536, 16, 2, 2}},
    {"context_embedder.weight", 2, {1536, 4096}},
    {"joint_blocks.0.x_block.attn.qkv.weight", 2, {4608, 1536}},
    {"joint_blocks.12.x_block.attn.qkv.weight", 2, {4608, 1536}},
    {"joint_blocks.23.context_block.attn.qkv.weight", 2, {4608, 1536}},
    {"final_layer.linear.weight", 2, {64, 1536}},
};
const size_t dmt_sd3_bare_n = N(dmt_sd3_bare);

/* clang-format off */
#define FLUX_ROWS                                                   \
    {"img_in.weight", 2, {3072, 64}},                               \
    {"txt_in.weight", 2, {3072, 4096}},                             \
    {"time_in.in_layer.weight", 2, {3072, 256}},                    \
    {"double_blocks.0.img_attn.qkv.weight", 2, {9216, 3072}},       \
    {"double_blocks.18.txt_attn.qkv.weight", 2, {9216, 3072}},      \
    {"single_blocks.0.linear1.weight", 2, {21504, 3072}},           \
    {"single_blocks.37.linear2.weight", 2, {3072, 15360}}
/* clang-format on */

const dmt_row dmt_flux_dev_bare[] = {
    FLUX_ROWS,
    {"guidance_in.in_layer.weight", 2, {3072, 256}},
};
const size_t dmt_flux_dev_bare_n = N(dmt_flux_dev_bare);

const dmt_row dmt_flux_schnell_bare[] = {FLUX_ROWS};
const size_t dmt_flux_schnell_bare_n = N(dmt_flux_schnell_bare);

const dmt_row dmt_chroma_bare[] = {
    FLUX_ROWS,
    {"distilled_guidance_layer.in_proj.weight", 2, {5120, 64}},
};
const size_t dmt_chroma_bare_n = N(dmt_chroma_bare);

const dmt_row dmt_sd1_unet_bare[] = {
    {"input_blocks.0.0.weight", 4, {320, 4, 3, 3}},
    {"input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", 2, {320, 768}},
    {"out.2.weight", 4, {4, 320, 3, 3}},
};
const size_t dmt_sd1_unet_bare_n = N(dmt_sd1_unet_bare);

const dmt_row dmt_clip_l[] = {
    {"text_model.embeddings.token_embedding.weight", 2, {49408, 768}},
    {"text_model.encoder.layers.0.self_attn.q_proj.weight", 2, {768, 768}},
    {"text_model.final_layer_norm.weight", 1, {768}},
};
const size_t dmt_clip_l_n = N(dmt_clip_l);

const dmt_row dmt_clip_g[] = {
    {"text_model.embeddings.token_embedding.weight", 2, {49408, 1280}},
    {"text_model.encoder.layers.0.self_attn.q_proj.weight", 2, {1280, 1280}},
};
const size_t dmt_clip_g_n = N(dmt_clip_g);

const dmt_row dmt_t5xxl[] = {
    {"shared.weight", 2, {32128, 4096}},
    {"encoder.block.0.layer.0.SelfAttention.q.weight", 2, {4096, 4096}},
    {"encoder.final_layer_norm.weight", 1, {4096}},
};
const size_t dmt_t5xxl_n = N(dmt_t5xxl);

const dmt_row dmt_vae[] = {VAE_ROWS("")};
const size_t dmt_vae_n = N(dmt_vae);

char *dmt_write_st(const char *dir, const char *name, const dmt_row *rows, size_t n,
                   const char *const *meta, size_t n_meta)
{
    st_writer *w = stw_new();
    assert_non_null(w);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(stw_tensor(w, rows[i].name, rows[i].n_dims ? "F16" : "F32", rows[i].n_dims,
                                    rows[i].shape),
                         0);
    for (size_t i = 0; i < n_meta; i++)
        assert_int_equal(stw_meta(w, meta[2 * i], meta[2 * i + 1]), 0);
    char *path = tu_path(dir, name);
    assert_int_equal(stw_write(w, path), 0);
    stw_free(w);
    return path;
}

char *dmt_write_gguf(const char *dir, const char *name, const dmt_row *rows, size_t n,
                     const char *arch)
{
    gguf_writer *w;
    assert_int_equal(gguf_writer_new(&w), 0);
    if (arch != NULL)
        assert_int_equal(gguf_writer_add_str(w, "general.architecture", arch), 0);
    for (size_t i = 0; i < n; i++) {
        uint64_t ne[4] = {1, 1, 1, 1};
        uint32_t nd = rows[i].n_dims ? rows[i].n_dims : 1;
        for (uint32_t k = 0; k < rows[i].n_dims; k++)
            ne[k] = rows[i].shape[rows[i].n_dims - 1 - k];
        assert_int_equal(gguf_writer_add_tensor(w, rows[i].name,
                                                rows[i].n_dims ? GGUF_DT_F16 : GGUF_DT_F32, nd, ne,
                                                NULL),
                         0);
    }
    char *path = tu_path(dir, name);
    assert_int_equal(gguf_writer_write(w, path, NULL), 0);
    gguf_writer_free(w);
    return path;
}
