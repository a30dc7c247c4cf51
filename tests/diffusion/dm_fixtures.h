/*
 * dm_fixtures.h - model files with each family's tensor layout, for the
 * diffusion tests: the tensors that detection and the planner look at, with
 * real shapes, zero (sparse) data, in safetensors (st_writer.h) or GGUF
 * (gguf/writer.h), as checkpoints or as separate components, written into the
 * temporary folders of tests/testutil/testutil.h (included here).
 *
 * Every function aborts the test (cmocka) on failure; each returned path is
 * mem_free'd by the caller.
 */
#ifndef GENAI_TESTS_DIFFUSION_FIXTURES_H
#define GENAI_TESTS_DIFFUSION_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

#include "testutil/testutil.h"

typedef struct dmt_row {
    const char *name;
    uint32_t n_dims;
    uint64_t shape[4]; /* row-major (torch order) */
} dmt_row;

/* Writes rows (F16; F32 for 0-dimensional) as dir/name in safetensors, with
 * optional metadata pairs meta[0..2*n_meta). */
char *dmt_write_st(const char *dir, const char *name, const dmt_row *rows, size_t n,
                   const char *const *meta, size_t n_meta);
/* The same as GGUF (shapes reversed into ggml order), with an optional
 * general.architecture. */
char *dmt_write_gguf(const char *dir, const char *name, const dmt_row *rows, size_t n,
                     const char *arch);

/* Layouts. */
extern const dmt_row dmt_sd1[];
extern const size_t dmt_sd1_n;
extern const dmt_row dmt_sd2[];
extern const size_t dmt_sd2_n;
extern const dmt_row dmt_sdxl[];
extern const size_t dmt_sdxl_n;
extern const dmt_row dmt_sdxl_refiner[];
extern const size_t dmt_sdxl_refiner_n;
extern const dmt_row dmt_sd3_bare[]; /* DiT only, no prefix (city96 GGUF style) */
extern const size_t dmt_sd3_bare_n;
extern const dmt_row dmt_flux_dev_bare[]; /* DiT only, no prefix (BFL release) */
extern const size_t dmt_flux_dev_bare_n;
extern const dmt_row dmt_flux_schnell_bare[];
extern const size_t dmt_flux_schnell_bare_n;
extern const dmt_row dmt_chroma_bare[];
extern const size_t dmt_chroma_bare_n;
extern const dmt_row dmt_sd1_unet_bare[]; /* an SD1 UNet alone */
extern const size_t dmt_sd1_unet_bare_n;
extern const dmt_row dmt_clip_l[]; /* HF CLIPTextModel names */
extern const size_t dmt_clip_l_n;
extern const dmt_row dmt_clip_g[];
extern const size_t dmt_clip_g_n;
extern const dmt_row dmt_t5xxl[];
extern const size_t dmt_t5xxl_n;
extern const dmt_row dmt_vae[]; /* ae.safetensors / sdxl_vae names */
extern const size_t dmt_vae_n;

#endif
