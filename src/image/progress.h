/*
 * progress.h - turns sd-cli / sd-server stdout into job progress.
 *
 * Input: stdout already split into fragments on '\r' and '\n' (the
 * supervisor's line splitter does that), ANSI escapes left in place. Each
 * fragment is a progress bar or a log line (contracts/stable-diffusion-cpp.md
 * §3, §4):
 *   - sampling / VAE-tile bar "  |=====>    | k/n - 1.66it/s ESC[K" (or s/it),
 *   - weight-loading bar     "  |#####      | k/n - 97.30MB/s ESC[K" (or GB/s;
 *     n counts tensors),
 *   - log line "[LEVEL] file:line - message".
 * Stage markers are matched on message text only (file:line changes between
 * builds): "loading model from" (loading), "sampling using" (text encoding;
 * printed at the start of a job), "generating image: i/N - seed S" (image i
 * sampling), "decoding N latents" (VAE), "latent i decoded",
 * "generate_image completed" (saving), "K/N images saved" (done), and
 * "generate failed" / "sampling for image ... failed" / "new_sd_ctx_t failed"
 * (failed). A '=' bar after "decoding" counts VAE tiles, not steps; a '#' bar
 * is attributed to the module whose stage is running (text encoder, diffusion
 * model, VAE).
 *
 * Percentage, from real step counts: each of the N images is worth `steps`
 * sampling units plus one decoding unit; done units / (N x (steps + 1)),
 * floored, and 100 only once generate_image completed.
 */
#ifndef GENAI_IMAGE_PROGRESS_H
#define GENAI_IMAGE_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

enum img_stage {
    IMG_STAGE_STARTING = 0,
    IMG_STAGE_LOADING,  /* reading headers, creating the context */
    IMG_STAGE_ENCODING, /* text encoder */
    IMG_STAGE_SAMPLING, /* image `image` of `images`, step `step` of `steps` */
    IMG_STAGE_DECODING, /* VAE */
    IMG_STAGE_SAVING,   /* generation finished; sd-cli writes files */
    IMG_STAGE_DONE,
    IMG_STAGE_FAILED,
};

enum img_module { IMG_MODULE_NONE = 0, IMG_MODULE_TE, IMG_MODULE_DIFFUSION, IMG_MODULE_VAE };

enum img_line_kind {
    IMG_LINE_EMPTY = 0,
    IMG_LINE_LOG,      /* a log line (level and message in img_log_line) */
    IMG_LINE_OTHER,    /* neither bar nor log line (exceptions, asserts) */
    IMG_LINE_LOAD_BAR, /* '#' bar */
    IMG_LINE_STEP_BAR, /* '=' bar counting sampling steps */
    IMG_LINE_TILE_BAR, /* '=' bar counting VAE tiles */
};

enum img_log_level {
    IMG_LOG_NONE = 0,
    IMG_LOG_DEBUG,
    IMG_LOG_INFO,
    IMG_LOG_WARN,
    IMG_LOG_ERROR,
};

typedef struct img_bar {
    int loading; /* 1 for a '#' weight-loading bar, 0 for '=' */
    uint32_t step;
    uint32_t steps;
    double speed; /* in `unit` */
    char unit[5]; /* "it/s", "s/it", "MB/s", "GB/s" */
} img_bar;

typedef struct img_log_line {
    enum img_log_level level;
    const char *msg; /* points into the fragment; not NUL-terminated */
    size_t msg_len;
} img_log_line;

typedef struct img_progress {
    enum img_stage stage;
    enum img_module loading; /* module whose weights the last '#' bar loaded */
    uint32_t load_done, load_total;
    uint32_t image, images; /* image is 1-based; 0 before the first */
    uint32_t step, steps;   /* of the current image */
    uint32_t tiles_done, tiles_total;
    uint32_t latents_decoded;
    uint32_t width, height; /* from "generate_image WxH", 0 until seen */
    int64_t seed;           /* of the current image, -1 until seen */
    uint32_t saved, save_failed;
    int percent; /* 0..100 */
} img_progress;

/* Starts a job of `images` images of `steps` steps each (as requested; the
 * log lines may correct both). */
void img_progress_init(img_progress *p, uint32_t images, uint32_t steps);

/* Feeds one fragment (len bytes, no '\r' or '\n'). Returns its kind. */
enum img_line_kind img_progress_feed(img_progress *p, const char *frag, size_t len);

/* Parses a bar fragment. 0 and *out on success, -1 when it is not a bar. */
int img_bar_parse(const char *frag, size_t len, img_bar *out);

/* Parses a log line "[LEVEL] file:line - message" (also with --color's
 * escapes around the tag). 0 and *out on success, -1 otherwise. */
int img_log_parse(const char *frag, size_t len, img_log_line *out);

/* Short lower-case name of a stage ("sampling"); static string. */
const char *img_stage_name(enum img_stage s);

#endif
