/*
 * family.c - diffusion model family detection, component checks and the
 * planner's inputs (see family.h).
 *
 * How it works: one pass over every tensor of every file records the
 * structural markers (the first tensor seen of each kind, block counts, key
 * widths) and the bytes per component; decide_family() then applies the
 * rules in family.h in order, most specific first, and writes the tensor that
 * decided into the evidence. Names and metadata are consulted afterwards:
 * for the family only when the tensors said nothing, for the distilled
 * variant always (the tensors cannot show it, except for Flux Schnell).
 */
#include "diffusion/family.h"
#include "diffusion/settings.h"

#include "plan/diffusion.h"

#include "core/alloc.h"
#include "core/error.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define P_DIFF "model.diffusion_model."

static const char *const family_names[DM_FAMILY__COUNT] = {
    [DM_FAMILY_UNKNOWN] = "unknown", [DM_FAMILY_SD1] = "sd1", [DM_FAMILY_SD2] = "sd2",
    [DM_FAMILY_SDXL] = "sdxl",       [DM_FAMILY_SD3] = "sd3", [DM_FAMILY_FLUX] = "flux",
};
static const char *const family_display[DM_FAMILY__COUNT] = {
    [DM_FAMILY_UNKNOWN] = "unknown", [DM_FAMILY_SD1] = "SD 1.x", [DM_FAMILY_SD2] = "SD 2.x",
    [DM_FAMILY_SDXL] = "SDXL",       [DM_FAMILY_SD3] = "SD3",    [DM_FAMILY_FLUX] = "Flux",
};
static const char *const variant_names[DM_VARIANT__COUNT] = {
    [DM_VARIANT_BASE] = "base",   [DM_VARIANT_LIGHTNING] = "lightning",
    [DM_VARIANT_TURBO] = "turbo", [DM_VARIANT_LCM] = "lcm",
    [DM_VARIANT_HYPER] = "hyper", [DM_VARIANT_SCHNELL] = "schnell",
};
static const char *const conf_names[] = {"none", "low", "medium", "high"};

const char *dm_family_name(enum dm_family f)
{
    return (unsigned)f < DM_FAMILY__COUNT ? family_names[f] : "unknown";
}

const char *dm_family_display(enum dm_family f)
{
    return (unsigned)f < DM_FAMILY__COUNT ? family_display[f] : "unknown";
}

const char *dm_variant_name(enum dm_variant v)
{
    return (unsigned)v < DM_VARIANT__COUNT ? variant_names[v] : "unknown";
}

const char *dm_confidence_name(enum dm_confidence c)
{
    return (unsigned)c <= DM_CONF_HIGH ? conf_names[c] : "unknown";
}

int dm_family_parse(const char *text, enum dm_family *out, genai_error *err)
{
    for (unsigned i = 0; text != NULL && i < DM_FAMILY__COUNT; i++) {
        if (strcmp(text, family_names[i]) == 0) {
            *out = (enum dm_family)i;
            return 0;
        }
    }
    return err_set(err, GENAI_EBAD_ARG,
                   "family '%.64s': must be one of sd1, sd2, sdxl, sd3, flux, unknown",
                   text != NULL ? text : "(null)");
}

int dm_variant_parse(const char *text, enum dm_variant *out, genai_error *err)
{
    for (unsigned i = 0; text != NULL && i < DM_VARIANT__COUNT; i++) {
        if (strcmp(text, variant_names[i]) == 0) {
            *out = (enum dm_variant)i;
            return 0;
        }
    }
    return err_set(err, GENAI_EBAD_ARG,
                   "variant '%.64s': must be one of base, lightning, turbo, lcm, hyper, schnell",
                   text != NULL ? text : "(null)");
}

int dm_variant_valid(enum dm_family f, enum dm_variant v)
{
    switch (v) {
    case DM_VARIANT_BASE:
        return f != DM_FAMILY_UNKNOWN && (unsigned)f < DM_FAMILY__COUNT;
    case DM_VARIANT_LIGHTNING: /* ByteDance SDXL-Lightning */
        return f == DM_FAMILY_SDXL;
    case DM_VARIANT_TURBO: /* SD-Turbo (2.1), SDXL-Turbo, SD3.5 Large Turbo */
        return f == DM_FAMILY_SD2 || f == DM_FAMILY_SDXL || f == DM_FAMILY_SD3;
    case DM_VARIANT_LCM:   /* LCM Dreamshaper v7 / LCM-LoRA SD1.5 and SDXL */
    case DM_VARIANT_HYPER: /* ByteDance Hyper-SD 1.5 / XL */
        return f == DM_FAMILY_SD1 || f == DM_FAMILY_SDXL;
    case DM_VARIANT_SCHNELL:
        return f == DM_FAMILY_FLUX;
    default:
        return 0;
    }
}

/* ---- the tensor scan ---- */

struct scan {
    const dm_tensor *double_blk, *single_blk, *joint_blk, *unet, *input0, *attn2_k;
    const dm_tensor *label_emb, *second_te, *guidance_in, *chroma, *svd, *img_in;
    const dm_tensor *x_embedder, *tok_768, *tok_1024, *vae_conv_out, *first_diff;
    uint32_t n_double, n_single, n_joint; /* highest block index + 1 */
};

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* If name is prefix + "<digits>." ..., raises *count to index + 1. */
static void block_index(const char *name, const char *prefix, uint32_t *count)
{
    if (!starts_with(name, prefix))
        return;
    const char *p = name + strlen(prefix);
    uint32_t v = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 6) {
        v = v * 10 + (uint32_t)(*p - '0');
        p++;
        digits++;
    }
    if (digits > 0 && *p == '.' && v + 1 > *count)
        *count = v + 1;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

static void remember(const dm_tensor **slot, const dm_tensor *t)
{
    if (*slot == NULL)
        *slot = t;
}

static void scan_tensor(struct scan *s, dm_detection *d, const dm_file *f, const dm_tensor *t)
{
    const char *n = t->name;
    if (t->comp != DM_COMP_OTHER) {
        d->present |= 1u << t->comp;
        if (f->role == DM_ROLE_MODEL)
            d->in_model |= 1u << t->comp;
        d->st.bytes[t->comp] = sat_add(d->st.bytes[t->comp], t->n_bytes);
    } else {
        d->st.other_bytes = sat_add(d->st.other_bytes, t->n_bytes);
    }
    if (t->comp == DM_COMP_VAE &&
        (starts_with(n, "first_stage_model.decoder.") ||
         starts_with(n, "first_stage_model.post_quant_conv.") || starts_with(n, "vae.decoder.") ||
         starts_with(n, "vae.post_quant_conv.")))
        d->st.vae_decoder_bytes = sat_add(d->st.vae_decoder_bytes, t->n_bytes);
    if (strcmp(n, "first_stage_model.decoder.conv_out.weight") == 0)
        remember(&s->vae_conv_out, t);
    if (strcmp(n, "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight") ==
            0 ||
        strcmp(n, "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding."
                  "weight") == 0)
        remember(&s->tok_768, t);
    if (strcmp(n, "cond_stage_model.model.token_embedding.weight") == 0)
        remember(&s->tok_1024, t);
    if (starts_with(n, "conditioner.embedders.1.") || starts_with(n, "cond_stage_model.1.") ||
        starts_with(n, "te.1."))
        remember(&s->second_te, t);
    if (t->comp != DM_COMP_DIFFUSION)
        return;

    remember(&s->first_diff, t);
    if (starts_with(n, P_DIFF "double_blocks.")) {
        remember(&s->double_blk, t);
        block_index(n, P_DIFF "double_blocks.", &s->n_double);
    }
    if (starts_with(n, P_DIFF "single_blocks.")) {
        remember(&s->single_blk, t);
        block_index(n, P_DIFF "single_blocks.", &s->n_single);
    }
    if (starts_with(n, P_DIFF "joint_blocks.")) {
        remember(&s->joint_blk, t);
        block_index(n, P_DIFF "joint_blocks.", &s->n_joint);
    }
    if (starts_with(n, P_DIFF "input_blocks.") || starts_with(n, "unet.down_blocks."))
        remember(&s->unet, t);
    if (strcmp(n, P_DIFF "input_blocks.0.0.weight") == 0 || strcmp(n, "unet.conv_in.weight") == 0)
        remember(&s->input0, t);
    if (ends_with(n, "attn2.to_k.weight"))
        remember(&s->attn2_k, t);
    if (starts_with(n, P_DIFF "label_emb.") || starts_with(n, "unet.add_embedding."))
        remember(&s->label_emb, t);
    if (starts_with(n, P_DIFF "guidance_in."))
        remember(&s->guidance_in, t);
    if (starts_with(n, P_DIFF "distilled_guidance_layer."))
        remember(&s->chroma, t);
    if (strstr(n, "time_mixer") != NULL)
        remember(&s->svd, t);
    if (strcmp(n, P_DIFF "img_in.weight") == 0)
        remember(&s->img_in, t);
    if (strcmp(n, P_DIFF "x_embedder.proj.weight") == 0)
        remember(&s->x_embedder, t);
}

/* ---- hints from names and metadata ---- */

static void lower_copy(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src[i] != '\0' && i + 1 < cap; i++)
        dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] - 'A' + 'a') : src[i];
    dst[i] = '\0';
}

static enum dm_family family_hint(const char *text)
{
    char l[256];
    if (text == NULL)
        return DM_FAMILY_UNKNOWN;
    lower_copy(l, sizeof(l), text);
    if (strstr(l, "flux") != NULL)
        return DM_FAMILY_FLUX;
    if (strstr(l, "sdxl") != NULL || strstr(l, "stable-diffusion-xl") != NULL ||
        strstr(l, "sd_xl") != NULL)
        return DM_FAMILY_SDXL;
    if (strstr(l, "sd3") != NULL || strstr(l, "stable-diffusion-v3") != NULL ||
        strstr(l, "stable-diffusion-3") != NULL)
        return DM_FAMILY_SD3;
    if (strstr(l, "sd2") != NULL || strstr(l, "stable-diffusion-v2") != NULL ||
        strstr(l, "v2-1") != NULL || strstr(l, "sd-turbo") != NULL)
        return DM_FAMILY_SD2;
    if (strstr(l, "sd1") != NULL || strstr(l, "stable-diffusion-v1") != NULL ||
        strstr(l, "v1-5") != NULL || strstr(l, "sd15") != NULL)
        return DM_FAMILY_SD1;
    return DM_FAMILY_UNKNOWN;
}

static int is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

/* Finds word (lowercase) in text case-insensitively where it is not glued to
 * lowercase letters on either side ("Hyper-SDXL", "sdxl_lightning",
 * "DreamShaperXLTurbo" match; "hyperrealism" does not). */
static int has_word(const char *text, const char *word)
{
    char l[256];
    lower_copy(l, sizeof(l), text);
    size_t wl = strlen(word), tl = strlen(l);
    for (const char *p = strstr(l, word); p != NULL; p = strstr(p + 1, word)) {
        size_t at = (size_t)(p - l);
        int before_ok = at == 0 || !is_lower(text[at - 1]);
        int after_ok = at + wl >= tl || !is_lower(text[at + wl]);
        if (before_ok && after_ok)
            return 1;
    }
    return 0;
}

static enum dm_variant variant_hint(const char *text)
{
    static const enum dm_variant order[] = {DM_VARIANT_SCHNELL, DM_VARIANT_LIGHTNING,
                                            DM_VARIANT_HYPER, DM_VARIANT_LCM, DM_VARIANT_TURBO};
    if (text == NULL)
        return DM_VARIANT_BASE;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (has_word(text, variant_names[order[i]]))
            return order[i];
    }
    return DM_VARIANT_BASE;
}

/* "4step", "8-steps", "2_step" in text: the step count, else 0. */
static uint32_t steps_hint(const char *text)
{
    char l[256];
    lower_copy(l, sizeof(l), text);
    for (const char *p = strstr(l, "step"); p != NULL; p = strstr(p + 1, "step")) {
        const char *q = p;
        if (q > l && (q[-1] == '-' || q[-1] == '_'))
            q--;
        const char *end = q;
        while (q > l && q[-1] >= '0' && q[-1] <= '9' && end - q < 2)
            q--;
        if (q == end)
            continue;
        uint32_t v = 0;
        for (const char *r = q; r < end; r++)
            v = v * 10 + (uint32_t)(*r - '0');
        if (v >= 1 && v <= 50)
            return v;
    }
    return 0;
}

/* ---- the decision ---- */

static void set_evidence(char *dst, const char *fmt, ...) GX_PRINTF(2, 3);
static void set_evidence(char *dst, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, DM_EVIDENCE_MAX, fmt, ap);
    va_end(ap);
}

static void add_note(dm_detection *d, const char *fmt, ...) GX_PRINTF(2, 3);
static void add_note(dm_detection *d, const char *fmt, ...)
{
    size_t len = strlen(d->notes);
    if (len + 3 >= DM_EVIDENCE_MAX)
        return;
    if (len > 0) {
        memcpy(d->notes + len, "; ", 3);
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->notes + len, DM_EVIDENCE_MAX - len, fmt, ap);
    va_end(ap);
}

static void decide_unet(const struct scan *s, dm_detection *d)
{
    uint32_t ctx = 0;
    const char *why = NULL;
    if (s->attn2_k != NULL) {
        ctx = (uint32_t)s->attn2_k->ne[0];
        why = s->attn2_k->name;
    } else if (s->tok_768 != NULL) {
        ctx = (uint32_t)s->tok_768->ne[0];
        why = s->tok_768->name;
    } else if (s->tok_1024 != NULL) {
        ctx = (uint32_t)s->tok_1024->ne[0];
        why = s->tok_1024->name;
    }
    d->st.context_dim = ctx;
    if (s->input0 != NULL) {
        d->st.model_channels = (uint32_t)s->input0->ne[3];
        d->st.in_channels = (uint32_t)s->input0->ne[2];
        d->inpaint = d->st.in_channels == 9;
    }
    if (s->svd != NULL) {
        set_evidence(d->evidence, "tensor '%s': a video UNet (SVD), not one of the image families",
                     s->svd->name);
        return;
    }
    if (ctx == 2048 || (ctx == 0 && (s->second_te != NULL || s->label_emb != NULL))) {
        d->family = DM_FAMILY_SDXL;
        d->confidence = ctx == 2048 ? DM_CONF_HIGH : DM_CONF_MEDIUM;
        if (ctx == 2048)
            set_evidence(d->evidence, "tensor '%s': 2048-wide cross-attention (SDXL)", why);
        else
            set_evidence(d->evidence, "tensor '%s': second text encoder / label_emb (SDXL)",
                         (s->second_te != NULL ? s->second_te : s->label_emb)->name);
        return;
    }
    if (ctx == 1024) {
        d->family = DM_FAMILY_SD2;
        d->confidence = DM_CONF_HIGH;
        set_evidence(d->evidence, "tensor '%s': 1024-wide context (OpenCLIP-H, SD 2.x)", why);
        return;
    }
    if (ctx == 768) {
        d->family = DM_FAMILY_SD1;
        d->confidence = DM_CONF_HIGH;
        set_evidence(d->evidence, "tensor '%s': 768-wide context (CLIP-L, SD 1.x)", why);
        return;
    }
    if (ctx != 0)
        set_evidence(d->evidence,
                     "tensor '%s': a UNet with %" PRIu32
                     "-wide cross-attention (1280 is the SDXL refiner), which no known family has",
                     why, ctx);
    else
        set_evidence(d->evidence,
                     "tensor '%s': a UNet, but no cross-attention or text-encoder tensor tells "
                     "its context width",
                     s->unet->name);
}

static void decide_family(const struct scan *s, dm_detection *d)
{
    if (s->double_blk != NULL) {
        if (s->chroma != NULL) {
            set_evidence(d->evidence,
                         "tensor '%s': Chroma (a Flux derivative with its own guidance), which "
                         "has no settings in the table",
                         s->chroma->name);
            return;
        }
        d->family = DM_FAMILY_FLUX;
        d->confidence = DM_CONF_HIGH;
        set_evidence(d->evidence, "tensor '%s': Flux double-stream blocks", s->double_blk->name);
        d->st.depth = s->n_double + s->n_single;
        if (s->img_in != NULL) {
            d->st.in_channels = (uint32_t)s->img_in->ne[0];
            d->st.model_channels = (uint32_t)s->img_in->ne[1];
            d->inpaint = d->st.in_channels == 384; /* Flux Fill: image + mask latents */
        }
        return;
    }
    if (s->joint_blk != NULL) {
        d->family = DM_FAMILY_SD3;
        d->confidence = DM_CONF_HIGH;
        set_evidence(d->evidence, "tensor '%s': MMDiT joint blocks (SD3)", s->joint_blk->name);
        d->st.depth = s->n_joint;
        if (s->x_embedder != NULL)
            d->st.model_channels = (uint32_t)s->x_embedder->ne[3];
        return;
    }
    if (s->unet != NULL) {
        decide_unet(s, d);
        return;
    }
    if (s->first_diff != NULL) {
        set_evidence(d->evidence,
                     "tensor '%s': a diffusion model outside SD 1.x/2.x, SDXL, SD3 and Flux",
                     s->first_diff->name);
        return;
    }
    set_evidence(d->evidence, "no diffusion-model tensors (UNet input_blocks, SD3 joint_blocks "
                              "or Flux double_blocks) in the files");
}

/* Heads and token geometry per family, from the widths found or the
 * reference configurations (docs/diffusion-models.md, "Structure"). */
static void fill_structure(dm_detection *d)
{
    dm_structure *st = &d->st;
    switch (d->family) {
    case DM_FAMILY_SD1: /* num_heads = 8 at every level */
        st->attn_heads = 8;
        st->attn_downsample = 1;
        break;
    case DM_FAMILY_SD2: /* head width 64 at the first level (320 / 64 = 5) */
        st->attn_heads = (st->model_channels ? st->model_channels : 320) / 64;
        st->attn_downsample = 1;
        break;
    case DM_FAMILY_SDXL: /* no attention at level 0; level 1 is 2 x 320 wide, heads of 64 */
        st->attn_heads = 2 * (st->model_channels ? st->model_channels : 320) / 64;
        st->attn_downsample = 2;
        break;
    case DM_FAMILY_SD3: /* hidden = 64 x depth, one head per 64 */
        if (st->model_channels == 0 && st->depth != 0)
            st->model_channels = 64 * st->depth;
        st->attn_heads = st->model_channels ? st->model_channels / 64 : 24;
        st->attn_downsample = 2; /* 2 x 2 patches */
        st->text_tokens = 154;   /* 77 CLIP + 77 T5 */
        break;
    case DM_FAMILY_FLUX: /* heads of 128 */
        st->attn_heads = (st->model_channels ? st->model_channels : 3072) / 128;
        st->attn_downsample = 2;
        st->text_tokens = d->variant == DM_VARIANT_SCHNELL ? 256 : 512;
        break;
    default:
        break;
    }
    if (st->attn_heads == 0 && d->family != DM_FAMILY_UNKNOWN)
        st->attn_heads = 1;
}

static void decide_variant(const struct scan *s, const dm_file *const *files, size_t n,
                           dm_detection *d)
{
    enum dm_variant hv = DM_VARIANT_BASE;
    const char *hsrc = NULL;
    enum dm_confidence hconf = DM_CONF_NONE;
    for (size_t i = 0; i < n && hv == DM_VARIANT_BASE; i++) {
        if (files[i]->role != DM_ROLE_MODEL)
            continue;
        if ((hv = variant_hint(files[i]->title_hint)) != DM_VARIANT_BASE) {
            hsrc = files[i]->title_hint;
            hconf = DM_CONF_MEDIUM;
        } else if ((hv = variant_hint(files[i]->name)) != DM_VARIANT_BASE) {
            hsrc = files[i]->name;
            hconf = DM_CONF_LOW;
        }
    }
    if (hsrc != NULL)
        d->steps_hint = steps_hint(hsrc);

    if (d->family == DM_FAMILY_FLUX) {
        if (s->guidance_in == NULL) {
            d->variant = DM_VARIANT_SCHNELL;
            d->variant_confidence = hv == DM_VARIANT_SCHNELL ? DM_CONF_HIGH : DM_CONF_MEDIUM;
            set_evidence(d->variant_evidence,
                         "no guidance_in tensors: timestep-distilled without a guidance input "
                         "(Flux.1-schnell)%s",
                         hv == DM_VARIANT_SCHNELL ? ", and the name says schnell" : "");
        } else {
            d->variant = DM_VARIANT_BASE;
            d->variant_confidence = DM_CONF_HIGH;
            set_evidence(d->variant_evidence,
                         "tensor '%s': guidance-distilled with a guidance input (Flux.1-dev)",
                         s->guidance_in->name);
            if (hv == DM_VARIANT_SCHNELL)
                add_note(d, "the name says schnell but the tensors carry guidance_in (dev)");
        }
        return;
    }
    if (hv == DM_VARIANT_BASE)
        return;
    if (!dm_variant_valid(d->family, hv)) {
        add_note(d, "'%.100s' suggests %s, which does not exist for %s; ignored", hsrc,
                 variant_names[hv], family_display[d->family]);
        return;
    }
    d->variant = hv;
    d->variant_confidence = hconf;
    set_evidence(d->variant_evidence, "%s '%.200s' names %s",
                 hconf == DM_CONF_MEDIUM ? "metadata title" : "file name", hsrc, variant_names[hv]);
}

/* Uses metadata and names when the files hold no diffusion-model tensors at
 * all (a diffusion model the rules do not know stays unknown: a name must not
 * turn Chroma into Flux); notes conflicts when the tensors decided. */
static void apply_family_hints(const dm_file *const *files, size_t n, int saw_diffusion,
                               dm_detection *d)
{
    for (size_t i = 0; i < n; i++) {
        const dm_file *f = files[i];
        if (f->role != DM_ROLE_MODEL)
            continue;
        struct {
            const char *text, *what;
            enum dm_confidence conf;
        } hints[] = {
            {f->arch_hint, "metadata architecture", DM_CONF_MEDIUM},
            {f->title_hint, "metadata title", DM_CONF_LOW},
            {f->name, "file name", DM_CONF_LOW},
        };
        for (size_t k = 0; k < sizeof(hints) / sizeof(hints[0]); k++) {
            enum dm_family hf = family_hint(hints[k].text);
            if (hf == DM_FAMILY_UNKNOWN)
                continue;
            if (d->family == DM_FAMILY_UNKNOWN && !saw_diffusion) {
                char why[DM_EVIDENCE_MAX];
                snprintf(why, sizeof(why), "%s", d->evidence);
                d->family = hf;
                d->confidence = hints[k].conf;
                set_evidence(d->evidence, "%s '%.120s' names %s (tensors: %.200s)", hints[k].what,
                             hints[k].text, family_display[hf], why);
            } else if (d->family != DM_FAMILY_UNKNOWN && hf != d->family) {
                add_note(d, "%s '%.100s' suggests %s, but the tensors say %s", hints[k].what,
                         hints[k].text, family_display[hf], family_display[d->family]);
            }
            break;
        }
    }
}

int dm_detect(const dm_file *const *files, size_t n, dm_detection *out, genai_error *err)
{
    if (files == NULL || n == 0)
        return err_set(err, GENAI_EBAD_ARG, "no model files");
    unsigned roles = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned bit = 1u << files[i]->role;
        if (roles & bit)
            return err_set(err, GENAI_EBAD_ARG, "two files with role %s",
                           dm_role_name(files[i]->role));
        roles |= bit;
    }
    if (!(roles & (1u << DM_ROLE_MODEL)))
        return err_set(err, GENAI_EBAD_ARG,
                       "no file with role model (the checkpoint or the "
                       "diffusion model)");
    dm_detection d;
    struct scan s;
    memset(&d, 0, sizeof(d));
    memset(&s, 0, sizeof(s));
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < files[i]->n_tensors; k++)
            scan_tensor(&s, &d, files[i], &files[i]->tensors[k]);
    }
    decide_family(&s, &d);
    apply_family_hints(files, n, s.first_diff != NULL, &d);
    decide_variant(&s, files, n, &d);
    fill_structure(&d);
    if (s.vae_conv_out != NULL)
        d.st.vae_channels = (uint32_t)s.vae_conv_out->ne[2];
    *out = d;
    return 0;
}

int dm_detect_paths(const dm_component *comps, size_t n, dm_detection *out, genai_error *err)
{
    if (comps == NULL || n == 0 || n > DM_ROLE__COUNT)
        return err_set(err, GENAI_EBAD_ARG, "between 1 and %d component files", DM_ROLE__COUNT);
    dm_file *files[DM_ROLE__COUNT] = {0};
    int rc = 0;
    size_t opened = 0;
    for (; opened < n; opened++) {
        if ((rc = dm_file_open(comps[opened].path, comps[opened].role, &files[opened], err)) < 0)
            goto out;
    }
    rc = dm_detect((const dm_file *const *)files, n, out, err);
out:
    for (size_t i = 0; i < opened; i++)
        dm_file_free(files[i]);
    return rc;
}

int dm_family_from_sdcpp(const char *text, enum dm_family *out, int *inpaint)
{
    static const struct {
        const char *version;
        enum dm_family family;
        int inpaint;
    } map[] = {
        /* model_version_to_str in src/stable-diffusion.cpp */
        {"SD 1.x", DM_FAMILY_SD1, 0},
        {"SD 1.x Inpaint", DM_FAMILY_SD1, 1},
        {"SD 1.x Tiny UNet", DM_FAMILY_SD1, 0},
        {"SD 2.x", DM_FAMILY_SD2, 0},
        {"SD 2.x Inpaint", DM_FAMILY_SD2, 1},
        {"SDXL", DM_FAMILY_SDXL, 0},
        {"SDXL Inpaint", DM_FAMILY_SDXL, 1},
        {"SDXL (SSD1B)", DM_FAMILY_SDXL, 0},
        {"SD3.x", DM_FAMILY_SD3, 0},
        {"SD3", DM_FAMILY_SD3, 0},
        {"SD3 2B", DM_FAMILY_SD3, 0},
        {"Flux", DM_FAMILY_FLUX, 0},
        {"Flux Fill", DM_FAMILY_FLUX, 1},
    };
    if (text == NULL)
        return GENAI_ENOT_FOUND;
    const char *p = strstr(text, "Version: ");
    p = p != NULL ? p + 9 : text;
    while (*p == ' ')
        p++;
    size_t len = strlen(p);
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\n' || p[len - 1] == '\r'))
        len--;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strlen(map[i].version) == len && memcmp(map[i].version, p, len) == 0) {
            *out = map[i].family;
            if (inpaint != NULL)
                *inpaint = map[i].inpaint;
            return 0;
        }
    }
    return GENAI_ENOT_FOUND;
}

/* ---- components ---- */

uint32_t dm_required_components(enum dm_family f)
{
    const uint32_t D = 1u << DM_COMP_DIFFUSION, V = 1u << DM_COMP_VAE;
    const uint32_t L = 1u << DM_COMP_CLIP_L, G = 1u << DM_COMP_CLIP_G;
    const uint32_t H = 1u << DM_COMP_OPENCLIP_H, T = 1u << DM_COMP_T5XXL;
    switch (f) {
    case DM_FAMILY_SD1:
        return D | L | V;
    case DM_FAMILY_SD2:
        return D | H | V;
    case DM_FAMILY_SDXL:
        return D | L | G | V;
    case DM_FAMILY_SD3:
        return D | L | G | T | V;
    case DM_FAMILY_FLUX:
        return D | L | T | V;
    default:
        return 0;
    }
}

static const struct {
    const char *what, *role, *flag;
} comp_help[DM_COMP__COUNT] = {
    [DM_COMP_DIFFUSION] = {"the diffusion model", "model", "-m / --diffusion-model"},
    [DM_COMP_CLIP_L] = {"the CLIP-L text encoder", "clip_l", "--clip_l"},
    [DM_COMP_CLIP_G] = {"the OpenCLIP-bigG text encoder", "clip_g", "--clip_g"},
    [DM_COMP_OPENCLIP_H] = {"the OpenCLIP-H text encoder (inside the checkpoint)", "model", "-m"},
    [DM_COMP_T5XXL] = {"the T5-XXL text encoder", "t5xxl", "--t5xxl"},
    [DM_COMP_VAE] = {"the VAE", "vae", "--vae"},
};

int dm_check_components(const dm_detection *d, genai_error *err)
{
    if (d->family == DM_FAMILY_UNKNOWN)
        return err_set(err, GENAI_EUNSUPPORTED, "unknown model family: %s", d->evidence);
    uint32_t need = dm_required_components(d->family);
    uint32_t missing = need & ~d->present;
    if (missing != 0) {
        char list[1024];
        size_t len = 0;
        list[0] = '\0';
        for (unsigned c = 0; c < DM_COMP__COUNT; c++) {
            if (!(missing & (1u << c)))
                continue;
            int w = snprintf(list + len, sizeof(list) - len, "%s%s (%s: role %s, sd-cli %s)",
                             len > 0 ? ", " : "", dm_comp_name((enum dm_comp)c), comp_help[c].what,
                             comp_help[c].role, comp_help[c].flag);
            if (w < 0 || (size_t)w >= sizeof(list) - len)
                break;
            len += (size_t)w;
        }
        return err_set(err, GENAI_ENOT_FOUND, "%s needs %s: missing %s", family_display[d->family],
                       __builtin_popcount(missing) > 1 ? "more components" : "a component", list);
    }
    /* stable-diffusion.cpp detects SD 1.x/2.x only from a full checkpoint
     * (contracts/stable-diffusion-cpp.md §2.1: split files fail with "get sd
     * version from file failed"). */
    if (d->family == DM_FAMILY_SD1 || d->family == DM_FAMILY_SD2) {
        uint32_t te = d->family == DM_FAMILY_SD1 ? 1u << DM_COMP_CLIP_L : 1u << DM_COMP_OPENCLIP_H;
        uint32_t in = (1u << DM_COMP_DIFFUSION) | te;
        if ((d->in_model & in) != in)
            return err_set(err, GENAI_EUNSUPPORTED,
                           "%s runs only from a full checkpoint (role model) holding the diffusion "
                           "model and its text encoder; stable-diffusion.cpp cannot assemble it "
                           "from separate files",
                           family_display[d->family]);
    }
    return 0;
}

/* ---- planner inputs ---- */

int dm_plan_model(const dm_detection *d, plan_sd_model *out, genai_error *err)
{
    if (d->family == DM_FAMILY_UNKNOWN)
        return err_set(err, GENAI_EBAD_ARG, "unknown model family: %s", d->evidence);
    const dm_structure *st = &d->st;
    plan_sd_model m;
    memset(&m, 0, sizeof(m));
    m.diffusion_bytes = st->bytes[DM_COMP_DIFFUSION];
    m.te_bytes[PLAN_SD_TE_CLIP_L] = st->bytes[DM_COMP_CLIP_L];
    m.te_bytes[PLAN_SD_TE_CLIP_G] = st->bytes[DM_COMP_CLIP_G];
    m.te_bytes[PLAN_SD_TE_OPENCLIP_H] = st->bytes[DM_COMP_OPENCLIP_H];
    m.te_bytes[PLAN_SD_TE_T5XXL] = st->bytes[DM_COMP_T5XXL];
    m.text_encoder_bytes =
        sat_add(sat_add(st->bytes[DM_COMP_CLIP_L], st->bytes[DM_COMP_CLIP_G]),
                sat_add(st->bytes[DM_COMP_OPENCLIP_H], st->bytes[DM_COMP_T5XXL]));
    m.vae_bytes = st->vae_decoder_bytes != 0 ? st->vae_decoder_bytes : st->bytes[DM_COMP_VAE];
    /*
     * The largest attention of the family (plan/diffusion.h): its heads, the
     * divisor from latent pixels to its image tokens (SDXL's first attention
     * level is at half the latent side; DiTs attend over 2x2 patches), and
     * the text tokens a DiT joins to the image tokens.
     */
    m.attn_heads = st->attn_heads != 0 ? st->attn_heads : 1;
    m.attn_token_divisor = st->attn_downsample != 0 ? st->attn_downsample : 1;
    m.attn_text_tokens = st->text_tokens;
    /* VAE decoder compute: 1664 B per output pixel at width 32 (OBS,
     * memory.md §9.2), taken as linear in the width (INF): 52 B per channel. */
    if (st->vae_channels != 0 && st->vae_channels <= 4096)
        m.vae_per_pixel = 52ull * st->vae_channels;
    *out = m;
    return 0;
}

/* ---- JSON ---- */

json_t *dm_detection_to_json(const dm_detection *d)
{
    json_t *o = json_object();
    json_t *comps = json_object();
    json_t *inm = json_array();
    json_t *st = json_object();
    if (o == NULL || comps == NULL || inm == NULL || st == NULL)
        goto fail;
    int bad = 0;
    bad |= json_object_set_new(o, "family", json_string(family_names[d->family]));
    bad |= json_object_set_new(o, "family_name", json_string(family_display[d->family]));
    bad |= json_object_set_new(o, "variant", json_string(variant_names[d->variant]));
    bad |= json_object_set_new(o, "confidence", json_string(dm_confidence_name(d->confidence)));
    bad |= json_object_set_new(o, "variant_confidence",
                               json_string(dm_confidence_name(d->variant_confidence)));
    bad |= json_object_set_new(o, "evidence", json_string(d->evidence));
    if (d->variant_evidence[0] != '\0')
        bad |= json_object_set_new(o, "variant_evidence", json_string(d->variant_evidence));
    if (d->notes[0] != '\0')
        bad |= json_object_set_new(o, "notes", json_string(d->notes));
    bad |= json_object_set_new(o, "inpaint", json_boolean(d->inpaint));
    if (d->steps_hint != 0)
        bad |= json_object_set_new(o, "steps_hint", json_integer(d->steps_hint));
    for (unsigned c = 0; c < DM_COMP__COUNT; c++) {
        if (!(d->present & (1u << c)))
            continue;
        bad |= json_object_set_new(comps, dm_comp_name((enum dm_comp)c),
                                   json_integer((json_int_t)(d->st.bytes[c] & INT64_MAX)));
        if (d->in_model & (1u << c))
            bad |= json_array_append_new(inm, json_string(dm_comp_name((enum dm_comp)c)));
    }
    const struct {
        const char *key;
        uint64_t v;
    } fields[] = {
        {"vae_decoder_bytes", d->st.vae_decoder_bytes},
        {"other_bytes", d->st.other_bytes},
        {"model_channels", d->st.model_channels},
        {"context_dim", d->st.context_dim},
        {"depth", d->st.depth},
        {"attn_heads", d->st.attn_heads},
        {"attn_downsample", d->st.attn_downsample},
        {"text_tokens", d->st.text_tokens},
        {"vae_channels", d->st.vae_channels},
        {"in_channels", d->st.in_channels},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        bad |= json_object_set_new(st, fields[i].key,
                                   json_integer((json_int_t)(fields[i].v & INT64_MAX)));
    bad |= json_object_set_new(o, "components", comps);
    comps = NULL;
    bad |= json_object_set_new(o, "in_model_file", inm);
    inm = NULL;
    bad |= json_object_set_new(o, "structure", st);
    st = NULL;
    if (bad)
        goto fail;
    return o;
fail:
    json_decref(o);
    json_decref(comps);
    json_decref(inm);
    json_decref(st);
    return NULL;
}

/* Copies a string member into buf (bounded); absent is "". */
static int json_str_into(const json_t *o, const char *key, char *buf, size_t n, genai_error *err)
{
    const json_t *v = json_object_get(o, key);
    buf[0] = '\0';
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return err_set(err, GENAI_ECORRUPT, "stored detection: '%s' is not a string", key);
    snprintf(buf, n, "%s", json_string_value(v));
    return 0;
}

static int json_u64(const json_t *v, const char *key, uint64_t *out, genai_error *err)
{
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return err_set(err, GENAI_ECORRUPT, "stored detection: '%s' is not a count", key);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int conf_parse(const json_t *v, const char *key, enum dm_confidence *out, genai_error *err)
{
    if (v == NULL)
        return 0;
    for (unsigned i = 0; json_is_string(v) && i <= DM_CONF_HIGH; i++) {
        if (strcmp(json_string_value(v), conf_names[i]) == 0) {
            *out = (enum dm_confidence)i;
            return 0;
        }
    }
    return err_set(err, GENAI_ECORRUPT, "stored detection: '%s' is not a confidence", key);
}

static int comp_parse(const char *name, enum dm_comp *out)
{
    for (unsigned c = 0; c < DM_COMP__COUNT; c++) {
        if (strcmp(name, dm_comp_name((enum dm_comp)c)) == 0) {
            *out = (enum dm_comp)c;
            return 0;
        }
    }
    return -1;
}

int dm_detection_from_json(const json_t *o, dm_detection *out, genai_error *err)
{
    if (!json_is_object(o))
        return err_set(err, GENAI_ECORRUPT, "stored detection: not a JSON object");
    dm_detection d;
    memset(&d, 0, sizeof(d));
    const json_t *v;
    int rc;
    if ((v = json_object_get(o, "family")) != NULL &&
        (!json_is_string(v) || dm_family_parse(json_string_value(v), &d.family, NULL) < 0))
        return err_set(err, GENAI_ECORRUPT, "stored detection: 'family' is not a family name");
    if ((v = json_object_get(o, "variant")) != NULL &&
        (!json_is_string(v) || dm_variant_parse(json_string_value(v), &d.variant, NULL) < 0 ||
         (d.family != DM_FAMILY_UNKNOWN && !dm_variant_valid(d.family, d.variant))))
        return err_set(err, GENAI_ECORRUPT, "stored detection: 'variant' is not a variant of %s",
                       family_display[d.family]);
    if ((rc = conf_parse(json_object_get(o, "confidence"), "confidence", &d.confidence, err)) < 0 ||
        (rc = conf_parse(json_object_get(o, "variant_confidence"), "variant_confidence",
                         &d.variant_confidence, err)) < 0 ||
        (rc = json_str_into(o, "evidence", d.evidence, sizeof(d.evidence), err)) < 0 ||
        (rc = json_str_into(o, "variant_evidence", d.variant_evidence, sizeof(d.variant_evidence),
                            err)) < 0 ||
        (rc = json_str_into(o, "notes", d.notes, sizeof(d.notes), err)) < 0)
        return rc;
    d.inpaint = json_is_true(json_object_get(o, "inpaint"));
    uint64_t hint = 0;
    if ((rc = json_u64(json_object_get(o, "steps_hint"), "steps_hint", &hint, err)) < 0)
        return rc;
    d.steps_hint = hint <= DM_STEPS_HARD_MAX ? (uint32_t)hint : 0;
    const json_t *comps = json_object_get(o, "components");
    const char *key;
    json_t *val;
    if (comps != NULL && !json_is_object(comps))
        return err_set(err, GENAI_ECORRUPT, "stored detection: 'components' is not an object");
    json_object_foreach((json_t *)comps, key, val)
    {
        enum dm_comp c;
        if (comp_parse(key, &c) < 0)
            continue;
        if ((rc = json_u64(val, key, &d.st.bytes[c], err)) < 0)
            return rc;
        d.present |= 1u << c;
    }
    const json_t *inm = json_object_get(o, "in_model_file");
    size_t i;
    json_array_foreach(inm, i, val)
    {
        enum dm_comp c;
        if (json_is_string(val) && comp_parse(json_string_value(val), &c) == 0)
            d.in_model |= 1u << c;
    }
    const json_t *st = json_object_get(o, "structure");
    const struct {
        const char *key;
        uint64_t *u64;
        uint32_t *u32;
    } fields[] = {
        {"vae_decoder_bytes", &d.st.vae_decoder_bytes, NULL},
        {"other_bytes", &d.st.other_bytes, NULL},
        {"model_channels", NULL, &d.st.model_channels},
        {"context_dim", NULL, &d.st.context_dim},
        {"depth", NULL, &d.st.depth},
        {"attn_heads", NULL, &d.st.attn_heads},
        {"attn_downsample", NULL, &d.st.attn_downsample},
        {"text_tokens", NULL, &d.st.text_tokens},
        {"vae_channels", NULL, &d.st.vae_channels},
        {"in_channels", NULL, &d.st.in_channels},
    };
    for (size_t f = 0; json_is_object(st) && f < sizeof(fields) / sizeof(fields[0]); f++) {
        uint64_t x = 0;
        if ((rc = json_u64(json_object_get(st, fields[f].key), fields[f].key, &x, err)) < 0)
            return rc;
        if (fields[f].u64 != NULL)
            *fields[f].u64 = x;
        else if (x > UINT32_MAX)
            return err_set(err, GENAI_ECORRUPT, "stored detection: '%s' out of range",
                           fields[f].key);
        else
            *fields[f].u32 = (uint32_t)x;
    }
    *out = d;
    return 0;
}
