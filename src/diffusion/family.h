/*
 * family.h - which kind of diffusion model a set of files is, how sure genai
 * is, and what that means for the planner and for the files a job needs.
 *
 * Detection reads the tensor tables of the model's files (model_file.h) and
 * decides from structure, the way stable-diffusion.cpp's
 * ModelLoader::get_sd_version does, with the same name prefixes:
 *   - Flux: model.diffusion_model.double_blocks.* (with single_blocks.*);
 *     Flux.1-dev carries guidance_in.* (the distilled-guidance embedder),
 *     Flux.1-schnell does not;
 *   - SD3 / SD3.5: model.diffusion_model.joint_blocks.*;
 *   - UNet models (model.diffusion_model.input_blocks.*): the cross-attention
 *     width (attn2.to_k's input) or the text encoder's token-embedding width
 *     decides: 768 SD 1.x (CLIP-L), 1024 SD 2.x (OpenCLIP-H), 2048 SDXL
 *     (CLIP-L + OpenCLIP-bigG, also conditioner.embedders.1 and label_emb).
 * Metadata (GGUF general.architecture, safetensors modelspec.architecture)
 * and the file name are weaker hints, used only when the tensors do not
 * decide. Distilled variants (Lightning, Turbo, LCM, Hyper) leave no trace in
 * the tensor layout, so they come from the file name or the metadata title;
 * Flux Schnell is also seen from its tensors. An undecidable set stays
 * DM_FAMILY_UNKNOWN, and the evidence says why.
 *
 * Ownership: every struct here is plain data owned by the caller.
 */
#ifndef GENAI_DIFFUSION_FAMILY_H
#define GENAI_DIFFUSION_FAMILY_H

#include "diffusion/model_file.h"

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

struct plan_sd_model;
struct json_t;

enum dm_family {
    DM_FAMILY_UNKNOWN,
    DM_FAMILY_SD1,
    DM_FAMILY_SD2,
    DM_FAMILY_SDXL,
    DM_FAMILY_SD3,
    DM_FAMILY_FLUX,
    DM_FAMILY__COUNT
};

enum dm_variant {
    DM_VARIANT_BASE, /* the family's base model (Flux: dev) */
    DM_VARIANT_LIGHTNING,
    DM_VARIANT_TURBO,
    DM_VARIANT_LCM,
    DM_VARIANT_HYPER,
    DM_VARIANT_SCHNELL,
    DM_VARIANT__COUNT
};

enum dm_confidence {
    DM_CONF_NONE,   /* nothing decided */
    DM_CONF_LOW,    /* the file name only */
    DM_CONF_MEDIUM, /* metadata, or tensors that fit more than one reading */
    DM_CONF_HIGH,   /* the tensor layout */
};

#define DM_EVIDENCE_MAX 384

/* What the planner needs of the model's structure (see dm_plan_model). */
typedef struct dm_structure {
    uint64_t bytes[DM_COMP__COUNT]; /* tensor bytes per component, all files */
    uint64_t vae_decoder_bytes;     /* VAE decoder + post_quant_conv (txt2img) */
    uint64_t other_bytes;           /* tensors of no component (EMA, schedules) */
    uint32_t model_channels;        /* UNet base width; DiT hidden size */
    uint32_t context_dim;           /* cross-attention width (UNet) */
    uint32_t depth;                 /* DiT blocks (SD3 joint, Flux double + single) */
    uint32_t attn_heads;            /* heads at the largest attention */
    uint32_t attn_downsample;       /* attention tokens per side = latent side / this */
    uint32_t text_tokens;           /* tokens joined to the image tokens (DiT) */
    uint32_t vae_channels;          /* VAE decoder base width (conv_out input) */
    uint32_t in_channels;           /* diffusion input channels (9: inpaint) */
} dm_structure;

typedef struct dm_detection {
    enum dm_family family;
    enum dm_variant variant;
    enum dm_confidence confidence;         /* of the family */
    enum dm_confidence variant_confidence; /* DM_CONF_NONE for BASE without evidence */
    int inpaint;                           /* 9 input channels */
    uint32_t steps_hint;                   /* "4step" in a Lightning/Hyper name; 0 */
    uint32_t present;                      /* components found, 1u << DM_COMP_x */
    uint32_t in_model;                     /* of those, found in the DM_ROLE_MODEL file */
    char evidence[DM_EVIDENCE_MAX];        /* what decided the family, or why unknown */
    char variant_evidence[DM_EVIDENCE_MAX];
    char notes[DM_EVIDENCE_MAX]; /* conflicts between hints and tensors; "" */
    dm_structure st;
} dm_detection;

/* One file of a model set, for dm_detect_paths(). */
typedef struct dm_component {
    enum dm_role role;
    const char *path;
} dm_component;

/* Static names: "sd1", "sd2", "sdxl", "sd3", "flux", "unknown"; display names
 * "SD 1.x" ... ; variants "base", "lightning", "turbo", "lcm", "hyper",
 * "schnell"; confidences "none", "low", "medium", "high". */
const char *dm_family_name(enum dm_family f);
const char *dm_family_display(enum dm_family f);
const char *dm_variant_name(enum dm_variant v);
const char *dm_confidence_name(enum dm_confidence c);
/* Parses dm_family_name / dm_variant_name text; GENAI_EBAD_ARG otherwise. */
int dm_family_parse(const char *text, enum dm_family *out, genai_error *err);
int dm_variant_parse(const char *text, enum dm_variant *out, genai_error *err);
/* True when variant v exists for family f (e.g. Schnell only for Flux). */
int dm_variant_valid(enum dm_family f, enum dm_variant v);

/*
 * Detects the family of the model made of files[0..n) (at most one file per
 * role; the DM_ROLE_MODEL file is required). Always fills *out on success,
 * with DM_FAMILY_UNKNOWN and the reason in evidence when undecidable.
 * GENAI_EBAD_ARG when there is no file, no model file or a role twice.
 */
int dm_detect(const dm_file *const *files, size_t n, dm_detection *out, genai_error *err);

/* dm_file_open() on each component, then dm_detect(). File errors are
 * returned as they come, with the path in the detail. */
int dm_detect_paths(const dm_component *comps, size_t n, dm_detection *out, genai_error *err);

/*
 * Family from the version stable-diffusion.cpp reports in its
 * "Version: SD 1.x " log line (the message or just the version text, spaces
 * trimmed): "SD 1.x", "SD 1.x Inpaint", "SD 2.x", "SDXL", "SDXL Inpaint",
 * "SD3.x", "Flux", "Flux Fill", ... *inpaint (may be NULL) is set for the
 * inpaint forms. GENAI_ENOT_FOUND (and *out untouched) for versions outside
 * the five families (SVD, Wan, Qwen Image, ...).
 */
int dm_family_from_sdcpp(const char *text, enum dm_family *out, int *inpaint);

/*
 * Checks that the detected set holds every component the family needs
 * before a job starts. GENAI_ENOT_FOUND naming each missing component, its
 * registry role and its sd-cli flag ("Flux needs t5xxl (role t5xxl,
 * --t5xxl)"); GENAI_EUNSUPPORTED for an unknown family or an SD 1.x/2.x text
 * encoder given as a separate file (stable-diffusion.cpp loads those only
 * from a full checkpoint).
 */
int dm_check_components(const dm_detection *d, genai_error *err);

/* The components family f requires, 1u << DM_COMP_x each; 0 for unknown. */
uint32_t dm_required_components(enum dm_family f);

/*
 * Fills the planner's model description (plan/diffusion.h) from the
 * detection: diffusion, text-encoder and VAE-decoder bytes, and the
 * coefficients that follow from the family's structure (attention heads of
 * the largest attention, the VAE decoder width). Coefficients the structure
 * does not give stay 0 (= the planner's defaults). GENAI_EBAD_ARG for an
 * unknown family.
 */
int dm_plan_model(const dm_detection *d, struct plan_sd_model *out, genai_error *err);

/* The detection as a JSON object (family, variant, confidence, evidence,
 * components, structure); a new reference, NULL when out of memory. */
struct json_t *dm_detection_to_json(const dm_detection *d);

/*
 * The reverse of dm_detection_to_json, for a detection stored in the
 * registry: fills *out (written only on success) from the object. Unknown
 * keys are ignored, missing ones stay 0; GENAI_ECORRUPT naming the key when
 * a family, variant or confidence name is unknown or a value has the wrong
 * type (the text is the registry's, but a registry can be edited by hand).
 */
int dm_detection_from_json(const struct json_t *o, dm_detection *out, genai_error *err);

#endif
