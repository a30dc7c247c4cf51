/*
 * model_file.h - one file of a diffusion model (a full checkpoint, a
 * standalone diffusion model, a text encoder or a VAE) reduced to what family
 * detection and the planner need: tensor names, shapes and byte sizes, the
 * component each tensor belongs to, and a few metadata strings.
 *
 * Both formats stable-diffusion.cpp reads for these models are accepted: GGUF
 * (through the GGUF reader, gguf.h) and safetensors (safetensors.h), told
 * apart by the "GGUF" magic. Tensor names are normalised the way
 * stable-diffusion.cpp prefixes them when it loads a file given by role
 * (src/stable-diffusion.cpp, new_sd_ctx: "--diffusion-model" files get
 * "model.diffusion_model.", "--vae" files "first_stage_model.", "--clip_l"
 * files "text_encoders.clip_l.transformer.", ...), so detection sees one name
 * space whatever the packaging. Shapes are given in ggml order: ne[0] is the
 * contiguous dimension (a safetensors shape reversed).
 *
 * Ownership: dm_file_open()/dm_file_parse_buffer() return a dm_file that
 * dm_file_free() releases with everything it points to.
 */
#ifndef GENAI_DIFFUSION_MODEL_FILE_H
#define GENAI_DIFFUSION_MODEL_FILE_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

#define DM_MAX_DIMS 8u

/* What a file was registered as: the registry's file roles (store/registry.h)
 * that stable-diffusion.cpp takes as separate flags. DM_ROLE_MODEL is either a
 * full checkpoint (-m) or a standalone diffusion model (--diffusion-model);
 * the tensor names tell which. */
enum dm_role {
    DM_ROLE_MODEL,
    DM_ROLE_CLIP_L,
    DM_ROLE_CLIP_G,
    DM_ROLE_T5XXL,
    DM_ROLE_VAE,
    DM_ROLE__COUNT
};

/* The parts of a model; a bit each in masks (1u << DM_COMP_x). */
enum dm_comp {
    DM_COMP_DIFFUSION,  /* UNet or DiT */
    DM_COMP_CLIP_L,     /* CLIP ViT-L/14 text encoder (SD1, SDXL, SD3, Flux) */
    DM_COMP_CLIP_G,     /* OpenCLIP ViT-bigG text encoder (SDXL, SD3) */
    DM_COMP_OPENCLIP_H, /* OpenCLIP ViT-H text encoder (SD2) */
    DM_COMP_T5XXL,      /* T5-XXL encoder (SD3, Flux) */
    DM_COMP_VAE,        /* autoencoder (the decoder is what txt2img uses) */
    DM_COMP__COUNT,
    DM_COMP_OTHER = DM_COMP__COUNT /* EMA copies, schedules, unknown names */
};

enum dm_format { DM_FORMAT_GGUF, DM_FORMAT_SAFETENSORS };

typedef struct dm_tensor {
    char *name; /* normalised, NUL-terminated */
    uint32_t n_dims;
    uint64_t ne[DM_MAX_DIMS]; /* ggml order; unused dimensions are 1 */
    uint64_t n_bytes;
    enum dm_comp comp;
} dm_tensor;

typedef struct dm_file {
    enum dm_role role;
    enum dm_format format;
    char *name;    /* base name of the path (or the name given for a buffer) */
    uint64_t size; /* file size */
    int bare;      /* 1: a DM_ROLE_MODEL file without checkpoint prefixes */
    dm_tensor *tensors;
    size_t n_tensors;
    char *arch_hint;  /* GGUF general.architecture or modelspec.architecture; NULL */
    char *title_hint; /* GGUF general.name or modelspec.title; NULL */
} dm_file;

/* "model", "clip_l", "clip_g", "t5xxl", "vae"; static. */
const char *dm_role_name(enum dm_role role);
/* Parses a role name; GENAI_EBAD_ARG (with the name in err) when unknown. */
int dm_role_parse(const char *text, enum dm_role *out, genai_error *err);
/* "diffusion_model", "clip_l", "clip_g", "openclip_h", "t5xxl", "vae", "other". */
const char *dm_comp_name(enum dm_comp comp);

/* Opens path (GGUF or safetensors, header only) as a file of the given role.
 * Errors come from the format readers (negative errno, GENAI_ECORRUPT,
 * GENAI_ETOO_LARGE, GENAI_EUNSUPPORTED), the detail naming the path. */
int dm_file_open(const char *path, enum dm_role role, dm_file **out, genai_error *err);

/* The same over a whole file image in memory; name stands for the file name. */
int dm_file_parse_buffer(const void *data, size_t len, const char *name, enum dm_role role,
                         dm_file **out, genai_error *err);

/* Releases f and everything it owns. Accepts NULL. */
void dm_file_free(dm_file *f);

/* The tensor with this normalised name; NULL when absent (linear search). */
const dm_tensor *dm_file_find(const dm_file *f, const char *name);

/* The component a normalised tensor name belongs to. */
enum dm_comp dm_comp_of(const char *name);

#endif
