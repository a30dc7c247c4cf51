/*
 * tiny_sd1.c - a small random-weight SD 1.x checkpoint (see tiny_sd1.h).
 *
 * What stable-diffusion.cpp needs from a GGUF checkpoint (read in its source
 * at the commit of contracts/stable-diffusion-cpp.md: src/model_io/gguf_io.cpp,
 * src/model_loader.cpp get_sd_version, src/model_manager.cpp,
 * src/model/te/clip.hpp, src/model/diffusion/unet.hpp,
 * src/model/common/block.hpp, src/model/vae/auto_encoder_kl.hpp):
 *   - no metadata: only the tensor table is read, names taken as they are
 *     (general.name and general.file_type are written for genai and people);
 *     the original (LDM) checkpoint names pass its name conversion unchanged;
 *   - every tensor of every model it builds must be present with the exact
 *     shape ("not in model metadata" / "wrong shape" otherwise), including
 *     the VAE encoder, which txt2img never runs;
 *   - the version is "SD 1.x" when the CLIP token embedding is 768 wide, a
 *     UNet (model.diffusion_model.input_blocks.*) is present with
 *     middle_block.1 and output_blocks.7.1, and input_blocks.0.0 takes 4
 *     channels;
 *   - widths read from the weights: UNet model_channels from
 *     input_blocks.0.0.weight (time embedding 4x that), context width from
 *     attn2.to_k, VAE decoder width from decoder.conv_in.weight / 4. Fixed in
 *     code: CLIP ViT-L/14 (12 layers, 768 wide, MLP 3072, 12 heads, vocabulary
 *     49408, 77 positions), UNet channel_mult 1,2,4,4 with 2 res blocks, 8
 *     heads and attention at downsampling 1, 2, 4, VAE encoder width 128,
 *     z 4 channels, embed 4.
 *
 * GGUF shapes list ne[0] first: a linear layer is {in, out}, a convolution
 * {kw, kh, in, out}. The walk below mirrors the block structure of those
 * sources (same loops, same channel bookkeeping), so a change of width only
 * changes the constants. Weights are uniform noise in +-0.02, norm scales 1,
 * biases 0: every activation stays finite and the output is noise, not a
 * picture.
 */
#include "tiny_sd1.h"

#include "tiny_llama.h"

#include "core/alloc.h"
#include "core/error.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NOISE_SCALE 0.02f
#define NAME_CAP ((int)GGUF_MAX_TENSOR_NAME + 1)

/* CLIP ViT-L/14 text model (fixed by sd.cpp for SD 1.x). */
#define CLIP_VOCAB 49408u
#define CLIP_POSITIONS 77u
#define CLIP_WIDTH 768u
#define CLIP_MLP 3072u
#define CLIP_LAYERS 12u

/* UNet topology of SD 1.x. */
#define UNET_IN_CH 4u
#define UNET_OUT_CH 4u
#define UNET_RES_BLOCKS 2u
#define UNET_LEVELS 4u
static const uint32_t unet_mult[UNET_LEVELS] = {1, 2, 4, 4};
/* Levels whose downsampling factor (1, 2, 4, 8) gets a SpatialTransformer. */
static const int unet_attn[UNET_LEVELS] = {1, 1, 1, 0};
#define UNET_CONTEXT CLIP_WIDTH

/* AutoencoderKL of SD 1.x. */
#define VAE_LEVELS 4u
static const uint32_t vae_mult[VAE_LEVELS] = {1, 2, 4, 4};
#define VAE_RES_BLOCKS 2u
#define VAE_ENCODER_CH 128u
#define VAE_Z_CH 4u
#define VAE_EMBED 4u
#define VAE_IMAGE_CH 3u

#define PREFIX_TE "cond_stage_model.transformer.text_model"
#define PREFIX_UNET "model.diffusion_model"
#define PREFIX_VAE "first_stage_model"

enum fill { FILL_ZEROS, FILL_ONES, FILL_NOISE };

/* Build state. Helpers do nothing once rc < 0, so the walk reads straight. */
struct sd1 {
    gguf_writer *w;
    uint32_t type;
    int shapes_only;
    uint64_t rng;
    uint64_t *params; /* counter of the part being written */
    uint64_t n_tensors;
    int rc;
};

/* buf = prefix "." formatted suffix; returns buf. A name over the GGUF limit
 * sets b->rc, which turns every later step into a no-op. */
static const char *sub(struct sd1 *b, char buf[NAME_CAP], const char *prefix, const char *fmt, ...)
    GX_PRINTF(4, 5);
static const char *sub(struct sd1 *b, char buf[NAME_CAP], const char *prefix, const char *fmt, ...)
{
    buf[0] = '\0';
    if (b->rc < 0)
        return buf;
    int n = snprintf(buf, NAME_CAP, "%s.", prefix);
    if (n < 0 || n >= NAME_CAP) {
        b->rc = GENAI_EBAD_ARG;
        return buf;
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, (size_t)(NAME_CAP - n), fmt, ap);
    va_end(ap);
    if (m < 0 || m >= NAME_CAP - n)
        b->rc = GENAI_EBAD_ARG;
    return buf;
}

/* splitmix64, as tiny_llama.c: small, seedable, good enough for weights. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float noise(uint64_t *s)
{
    float u = (float)(next_u64(s) >> 40) * (1.0f / 16777216.0f);
    return (2.0f * u - 1.0f) * NOISE_SCALE;
}

/* Element i of a tensor of type, little-endian, whatever the host order. */
static void put(uint8_t *p, uint32_t type, size_t i, float x)
{
    if (type == GGUF_DT_F16) {
        uint16_t h = mkmodel_f16(x);
        p[2 * i] = (uint8_t)h;
        p[2 * i + 1] = (uint8_t)(h >> 8);
        return;
    }
    uint32_t v;
    memcpy(&v, &x, sizeof(v));
    for (int k = 0; k < 4; k++)
        p[4 * i + (size_t)k] = (uint8_t)(v >> (8 * k));
}

/* Adds prefix.suffix with n_dims dimensions ne[0..n_dims-1], filled as asked. */
static void tensor(struct sd1 *b, const char *prefix, const char *suffix, enum fill fill,
                   uint32_t type, uint32_t n_dims, const uint64_t ne[4])
{
    char name[NAME_CAP];
    sub(b, name, prefix, "%s", suffix);
    if (b->rc < 0)
        return;
    size_t n = 1, bytes;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (mem_mul_size(n, (size_t)ne[d], &n) != 0) {
            b->rc = GENAI_EBAD_ARG;
            return;
        }
    }
    if (mem_mul_size(n, type == GGUF_DT_F16 ? 2 : 4, &bytes) != 0) {
        b->rc = GENAI_EBAD_ARG;
        return;
    }
    uint8_t *data = NULL;
    if (!b->shapes_only && fill != FILL_ZEROS) {
        data = mem_alloc(bytes);
        if (data == NULL) {
            b->rc = -ENOMEM;
            return;
        }
        for (size_t i = 0; i < n; i++)
            put(data, type, i, fill == FILL_ONES ? 1.0f : noise(&b->rng));
    }
    int rc = gguf_writer_add_tensor(b->w, name, type, n_dims, ne, data);
    mem_free(data);
    if (rc < 0) {
        b->rc = rc;
        return;
    }
    *b->params += n;
    b->n_tensors++;
}

/* torch.nn.Linear: weight {in, out}, optional bias {out}. */
static void linear(struct sd1 *b, const char *p, uint64_t in, uint64_t out, int bias)
{
    tensor(b, p, "weight", FILL_NOISE, b->type, 2, (const uint64_t[4]){in, out, 1, 1});
    if (bias)
        tensor(b, p, "bias", FILL_ZEROS, GGUF_DT_F32, 1, (const uint64_t[4]){out, 1, 1, 1});
}

/* torch.nn.Conv2d with a square kernel k and a bias. */
static void conv(struct sd1 *b, const char *p, uint64_t in, uint64_t out, uint64_t k)
{
    tensor(b, p, "weight", FILL_NOISE, b->type, 4, (const uint64_t[4]){k, k, in, out});
    tensor(b, p, "bias", FILL_ZEROS, GGUF_DT_F32, 1, (const uint64_t[4]){out, 1, 1, 1});
}

/* LayerNorm or GroupNorm over c channels: scale 1, shift 0. */
static void norm(struct sd1 *b, const char *p, uint64_t c)
{
    tensor(b, p, "weight", FILL_ONES, GGUF_DT_F32, 1, (const uint64_t[4]){c, 1, 1, 1});
    tensor(b, p, "bias", FILL_ZEROS, GGUF_DT_F32, 1, (const uint64_t[4]){c, 1, 1, 1});
}

static void clip_text_model(struct sd1 *b)
{
    static const char *const proj[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    char s[NAME_CAP], layer[NAME_CAP];
    tensor(b, PREFIX_TE, "embeddings.token_embedding.weight", FILL_NOISE, b->type, 2,
           (const uint64_t[4]){CLIP_WIDTH, CLIP_VOCAB, 1, 1});
    tensor(b, PREFIX_TE, "embeddings.position_embedding.weight", FILL_NOISE, GGUF_DT_F32, 2,
           (const uint64_t[4]){CLIP_WIDTH, CLIP_POSITIONS, 1, 1});
    for (unsigned l = 0; l < CLIP_LAYERS; l++) {
        sub(b, layer, PREFIX_TE, "encoder.layers.%u", l);
        for (size_t i = 0; i < sizeof(proj) / sizeof(proj[0]); i++)
            linear(b, sub(b, s, layer, "self_attn.%s", proj[i]), CLIP_WIDTH, CLIP_WIDTH, 1);
        norm(b, sub(b, s, layer, "layer_norm1"), CLIP_WIDTH);
        linear(b, sub(b, s, layer, "mlp.fc1"), CLIP_WIDTH, CLIP_MLP, 1);
        linear(b, sub(b, s, layer, "mlp.fc2"), CLIP_MLP, CLIP_WIDTH, 1);
        norm(b, sub(b, s, layer, "layer_norm2"), CLIP_WIDTH);
    }
    norm(b, sub(b, s, PREFIX_TE, "final_layer_norm"), CLIP_WIDTH);
}

/* openaimodel ResBlock: GroupNorm, conv, time embedding, GroupNorm, conv,
 * and a 1x1 convolution on the skip path when the width changes. */
static void unet_resblock(struct sd1 *b, const char *p, uint64_t in, uint64_t out, uint64_t emb)
{
    char s[NAME_CAP];
    norm(b, sub(b, s, p, "in_layers.0"), in);
    conv(b, sub(b, s, p, "in_layers.2"), in, out, 3);
    linear(b, sub(b, s, p, "emb_layers.1"), emb, out, 1);
    norm(b, sub(b, s, p, "out_layers.0"), out);
    conv(b, sub(b, s, p, "out_layers.3"), out, out, 3);
    if (in != out)
        conv(b, sub(b, s, p, "skip_connection"), in, out, 1);
}

/* CrossAttention: query from dim, keys and values from ctx, no q/k/v bias. */
static void unet_attention(struct sd1 *b, const char *p, uint64_t dim, uint64_t ctx)
{
    char s[NAME_CAP];
    linear(b, sub(b, s, p, "to_q"), dim, dim, 0);
    linear(b, sub(b, s, p, "to_k"), ctx, dim, 0);
    linear(b, sub(b, s, p, "to_v"), ctx, dim, 0);
    linear(b, sub(b, s, p, "to_out.0"), dim, dim, 1);
}

/* SpatialTransformer of depth 1 with 1x1-convolution projections (SD 1.x
 * has no linear projections) and a GEGLU feed-forward of 4x width. */
static void unet_transformer(struct sd1 *b, const char *p, uint64_t ch)
{
    char s[NAME_CAP];
    norm(b, sub(b, s, p, "norm"), ch);
    conv(b, sub(b, s, p, "proj_in"), ch, ch, 1);
    unet_attention(b, sub(b, s, p, "transformer_blocks.0.attn1"), ch, ch);
    unet_attention(b, sub(b, s, p, "transformer_blocks.0.attn2"), ch, UNET_CONTEXT);
    linear(b, sub(b, s, p, "transformer_blocks.0.ff.net.0.proj"), ch, ch * 4 * 2, 1);
    linear(b, sub(b, s, p, "transformer_blocks.0.ff.net.2"), ch * 4, ch, 1);
    for (unsigned i = 1; i <= 3; i++)
        norm(b, sub(b, s, p, "transformer_blocks.0.norm%u", i), ch);
    conv(b, sub(b, s, p, "proj_out"), ch, ch, 1);
}

static void unet(struct sd1 *b)
{
    char s[NAME_CAP];
    const uint64_t mc = MKMODEL_SD1_MODEL_CHANNELS, emb = 4 * mc;
    /* Width of each input block's output, consumed in reverse by the output
     * blocks' skip connections: input conv, res blocks, downsamplers. */
    uint64_t skip[1 + UNET_LEVELS * UNET_RES_BLOCKS + UNET_LEVELS - 1];
    size_t n_skip = 0;

    linear(b, sub(b, s, PREFIX_UNET, "time_embed.0"), mc, emb, 1);
    linear(b, sub(b, s, PREFIX_UNET, "time_embed.2"), emb, emb, 1);
    conv(b, sub(b, s, PREFIX_UNET, "input_blocks.0.0"), UNET_IN_CH, mc, 3);
    skip[n_skip++] = mc;

    uint64_t ch = mc;
    unsigned idx = 0;
    for (unsigned lv = 0; lv < UNET_LEVELS; lv++) {
        for (unsigned j = 0; j < UNET_RES_BLOCKS; j++) {
            idx++;
            uint64_t out = unet_mult[lv] * mc;
            unet_resblock(b, sub(b, s, PREFIX_UNET, "input_blocks.%u.0", idx), ch, out, emb);
            ch = out;
            if (unet_attn[lv])
                unet_transformer(b, sub(b, s, PREFIX_UNET, "input_blocks.%u.1", idx), ch);
            skip[n_skip++] = ch;
        }
        if (lv + 1 < UNET_LEVELS) {
            idx++;
            conv(b, sub(b, s, PREFIX_UNET, "input_blocks.%u.0.op", idx), ch, ch, 3);
            skip[n_skip++] = ch;
        }
    }

    assert(n_skip == sizeof(skip) / sizeof(skip[0]));
    unet_resblock(b, sub(b, s, PREFIX_UNET, "middle_block.0"), ch, ch, emb);
    unet_transformer(b, sub(b, s, PREFIX_UNET, "middle_block.1"), ch);
    unet_resblock(b, sub(b, s, PREFIX_UNET, "middle_block.2"), ch, ch, emb);

    idx = 0;
    for (unsigned lv = UNET_LEVELS; lv-- > 0;) {
        for (unsigned j = 0; j <= UNET_RES_BLOCKS; j++, idx++) {
            uint64_t out = unet_mult[lv] * mc, in = ch + skip[--n_skip];
            unet_resblock(b, sub(b, s, PREFIX_UNET, "output_blocks.%u.0", idx), in, out, emb);
            ch = out;
            /* The upsampler follows the transformer when there is one. */
            unsigned up = 1;
            if (unet_attn[lv]) {
                unet_transformer(b, sub(b, s, PREFIX_UNET, "output_blocks.%u.1", idx), ch);
                up = 2;
            }
            if (lv > 0 && j == UNET_RES_BLOCKS)
                conv(b, sub(b, s, PREFIX_UNET, "output_blocks.%u.%u.conv", idx, up), ch, ch, 3);
        }
    }

    assert(n_skip == 0);
    norm(b, sub(b, s, PREFIX_UNET, "out.0"), ch);
    conv(b, sub(b, s, PREFIX_UNET, "out.2"), ch, UNET_OUT_CH, 3);
}

/* ldm ResnetBlock: GroupNorm, conv, GroupNorm, conv, 1x1 shortcut. */
static void vae_resnet(struct sd1 *b, const char *p, uint64_t in, uint64_t out)
{
    char s[NAME_CAP];
    norm(b, sub(b, s, p, "norm1"), in);
    conv(b, sub(b, s, p, "conv1"), in, out, 3);
    norm(b, sub(b, s, p, "norm2"), out);
    conv(b, sub(b, s, p, "conv2"), out, out, 3);
    if (in != out)
        conv(b, sub(b, s, p, "nin_shortcut"), in, out, 1);
}

/* The middle of an encoder or decoder: resnet, attention (1x1 convs), resnet. */
static void vae_mid(struct sd1 *b, const char *p, uint64_t ch)
{
    static const char *const proj[] = {"q", "k", "v", "proj_out"};
    char s[NAME_CAP];
    vae_resnet(b, sub(b, s, p, "mid.block_1"), ch, ch);
    norm(b, sub(b, s, p, "mid.attn_1.norm"), ch);
    for (size_t i = 0; i < sizeof(proj) / sizeof(proj[0]); i++)
        conv(b, sub(b, s, p, "mid.attn_1.%s", proj[i]), ch, ch, 1);
    vae_resnet(b, sub(b, s, p, "mid.block_2"), ch, ch);
}

static void vae_encoder(struct sd1 *b, const char *p)
{
    char s[NAME_CAP];
    const uint64_t c = VAE_ENCODER_CH;
    uint64_t ch = c;
    conv(b, sub(b, s, p, "conv_in"), VAE_IMAGE_CH, c, 3);
    for (unsigned lv = 0; lv < VAE_LEVELS; lv++) {
        for (unsigned j = 0; j < VAE_RES_BLOCKS; j++) {
            vae_resnet(b, sub(b, s, p, "down.%u.block.%u", lv, j), ch, c * vae_mult[lv]);
            ch = c * vae_mult[lv];
        }
        if (lv + 1 < VAE_LEVELS)
            conv(b, sub(b, s, p, "down.%u.downsample.conv", lv), ch, ch, 3);
    }
    vae_mid(b, p, ch);
    norm(b, sub(b, s, p, "norm_out"), ch);
    conv(b, sub(b, s, p, "conv_out"), ch, 2 * VAE_Z_CH, 3);
}

static void vae_decoder(struct sd1 *b, const char *p)
{
    char s[NAME_CAP];
    const uint64_t c = MKMODEL_SD1_VAE_DECODER_CH;
    uint64_t ch = c * vae_mult[VAE_LEVELS - 1];
    conv(b, sub(b, s, p, "conv_in"), VAE_Z_CH, ch, 3);
    vae_mid(b, p, ch);
    for (unsigned lv = VAE_LEVELS; lv-- > 0;) {
        for (unsigned j = 0; j <= VAE_RES_BLOCKS; j++) {
            vae_resnet(b, sub(b, s, p, "up.%u.block.%u", lv, j), ch, c * vae_mult[lv]);
            ch = c * vae_mult[lv];
        }
        if (lv > 0)
            conv(b, sub(b, s, p, "up.%u.upsample.conv", lv), ch, ch, 3);
    }
    norm(b, sub(b, s, p, "norm_out"), ch);
    conv(b, sub(b, s, p, "conv_out"), ch, VAE_IMAGE_CH, 3);
}

static void vae(struct sd1 *b)
{
    char s[NAME_CAP];
    vae_encoder(b, sub(b, s, PREFIX_VAE, "encoder"));
    conv(b, sub(b, s, PREFIX_VAE, "quant_conv"), 2 * VAE_EMBED, 2 * VAE_Z_CH, 1);
    conv(b, sub(b, s, PREFIX_VAE, "post_quant_conv"), VAE_Z_CH, VAE_EMBED, 1);
    vae_decoder(b, sub(b, s, PREFIX_VAE, "decoder"));
}

void mkmodel_sd1_defaults(struct mkmodel_sd1_opts *o)
{
    o->type = GGUF_DT_F16;
    o->seed = 42;
    o->shapes_only = 0;
}

int mkmodel_sd1_build(const struct mkmodel_sd1_opts *o, gguf_writer **out,
                      struct mkmodel_sd1_stats *stats, genai_error *err)
{
    if (o->type != GGUF_DT_F16 && o->type != GGUF_DT_F32)
        return err_set(err, GENAI_EBAD_ARG, "type must be f16 or f32");
    struct mkmodel_sd1_stats st = {0};
    struct sd1 b = {.type = o->type, .shapes_only = o->shapes_only, .rng = o->seed};
    int rc = gguf_writer_new(&b.w);
    if (rc < 0)
        return err_set(err, rc, "out of memory");
    /* general.file_type as llama.cpp numbers it: 0 all F32, 1 mostly F16. */
    if ((rc = gguf_writer_add_str(b.w, "general.name", "genai tiny SD 1.x")) < 0 ||
        (rc = gguf_writer_add_u32(b.w, "general.file_type", o->type == GGUF_DT_F16 ? 1 : 0)) < 0)
        goto fail;
    b.params = &st.te_params;
    clip_text_model(&b);
    b.params = &st.unet_params;
    unet(&b);
    b.params = &st.vae_params;
    vae(&b);
    if ((rc = b.rc) < 0)
        goto fail;
    st.n_tensors = b.n_tensors;
    if (stats != NULL)
        *stats = st;
    *out = b.w;
    return 0;
fail:
    gguf_writer_free(b.w);
    return err_set(err, rc, "building the SD 1.x model: %s", genai_strerror(rc));
}
