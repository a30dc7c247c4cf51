/*
 * tiny_sd1.h - builds a small random-weight Stable Diffusion 1.x checkpoint
 * as GGUF that stable-diffusion.cpp's sd-cli and sd-server load, detect as
 * "SD 1.x" and run end to end (genai-mkmodel --sd1, and the tests that check
 * its layout). The shape is the reference model of
 * contracts/stable-diffusion-cpp.md §9.
 */
#ifndef GENAI_TOOLS_MKMODEL_TINY_SD1_H
#define GENAI_TOOLS_MKMODEL_TINY_SD1_H

#include "gguf/writer.h"

#include <stdint.h>

/* UNet width (real SD 1.x: 320) and VAE decoder width (real: 128). sd.cpp
 * reads both from the weights; the text encoder and the VAE encoder have
 * sizes fixed by sd.cpp and are written at full size. */
#define MKMODEL_SD1_MODEL_CHANNELS 32u
#define MKMODEL_SD1_VAE_DECODER_CH 32u

struct mkmodel_sd1_opts {
    uint32_t type;   /* GGUF_DT_F16 or GGUF_DT_F32: matrices, convolutions and
                      * the token embedding; norms, biases and the position
                      * embedding are always F32, as sd.cpp holds them */
    uint64_t seed;   /* weights are uniform in +-0.02 from this seed */
    int shapes_only; /* nonzero: no weights, every tensor reads as zeros (a
                      * hole in a written file), for layout tests */
};

/* What mkmodel_sd1_build() wrote: tensor count and parameters per part. */
struct mkmodel_sd1_stats {
    uint64_t n_tensors;
    uint64_t te_params;   /* cond_stage_model.transformer.text_model.* */
    uint64_t unet_params; /* model.diffusion_model.* */
    uint64_t vae_params;  /* first_stage_model.* (encoder at full width) */
};

/* F16, seed 42, with weights. */
void mkmodel_sd1_defaults(struct mkmodel_sd1_opts *o);

/* Builds the checkpoint into a new writer (caller frees with
 * gguf_writer_free()); fills *stats when stats is not NULL. GENAI_EBAD_ARG
 * for a type other than F16/F32, -ENOMEM. Needs about 350 MB of memory in F16
 * (twice that in F32) unless shapes_only is set. */
int mkmodel_sd1_build(const struct mkmodel_sd1_opts *o, gguf_writer **out,
                      struct mkmodel_sd1_stats *stats, genai_error *err);

#endif
