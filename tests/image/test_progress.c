#include "cmocka_all.h"

#include "image/progress.h"

#include <string.h>

/* contracts/stable-diffusion-cpp.md §4.1: sd-cli stdout, 64x64, 2 steps,
 * euler_a (paths shortened there too). */
static const char sample[] =
    "[INFO ] stable-diffusion.cpp:713  - loading model from '/models/tiny-sd1.safetensors'\n"
    "[INFO ] model_loader.cpp:242  - load /models/tiny-sd1.safetensors using safetensors format\n"
    "[INFO ] stable-diffusion.cpp:908  - Version: SD 1.x \n"
    "[INFO ] stable-diffusion.cpp:959  - Weight type stat:                      f32: 702  |     "
    "f16: 428  \n"
    "[INFO ] stable-diffusion.cpp:1512 - using VAE for encoding / decoding\n"
    "[INFO ] auto_encoder_kl.hpp:527  - vae decoder: ch = 32\n"
    "[INFO ] stable-diffusion.cpp:1745 - total params memory size = 326.07MB (VRAM 0.00MB, RAM "
    "326.07MB): text_encoders 235.06MB(RAM), diffusion_model 19.85MB(RAM), vae 71.15MB(RAM), "
    "controlnet 0.00MB(N/A), extensions 0.00MB(N/A)\n"
    "[INFO ] stable-diffusion.cpp:1849 - running in eps-prediction mode\n"
    "[INFO ] stable-diffusion.cpp:5628 - generate_image 64x64\n"
    "[INFO ] denoiser.hpp:1051 - get_sigmas with discrete scheduler\n"
    "[INFO ] stable-diffusion.cpp:4380 - sampling using Euler A method\n"
    "\r  |###############                                   | 57/196 - 562.81MB/s\x1b[K"
    "\r  |##################################################| 196/196 - 585.91MB/s\x1b[K\n"
    "[INFO ] model_loader.cpp:1304 - loading tensors completed, taking 0.40s (read: 0.37s, "
    "memcpy: 0.00s, convert: 0.00s, copy_to_backend: 0.00s)\n"
    "[INFO ] stable-diffusion.cpp:5296 - get_learned_condition completed, taking 4.41s\n"
    "[INFO ] stable-diffusion.cpp:5679 - generating image: 1/1 - seed 42\n"
    "\r  |##################################################| 686/686 - 97.30MB/s\x1b[K\n"
    "[INFO ] model_loader.cpp:1304 - loading tensors completed, taking 0.20s (read: 0.02s, "
    "memcpy: 0.00s, convert: 0.00s, copy_to_backend: 0.00s)\n"
    "\r  |=========================>                        | 1/2 - 1.66it/s\x1b[K"
    "\r  |==================================================| 2/2 - 1.11it/s\x1b[K\n"
    "[INFO ] stable-diffusion.cpp:5711 - sampling completed, taking 1.50s\n"
    "[INFO ] stable-diffusion.cpp:5723 - generating 1 latent images completed, taking 1.50s\n"
    "[INFO ] stable-diffusion.cpp:5321 - decoding 1 latents\n"
    "\r  |#                                                 | 1/140 - 0.00MB/s\x1b[K"
    "\r  |##################################################| 140/140 - 29.55MB/s\x1b[K\n"
    "[INFO ] model_loader.cpp:1304 - loading tensors completed, taking 0.20s (read: 0.01s, "
    "memcpy: 0.00s, convert: 0.00s, copy_to_backend: 0.00s)\n"
    "[INFO ] stable-diffusion.cpp:5387 - latent 1 decoded, taking 1.05s\n"
    "[INFO ] stable-diffusion.cpp:5391 - decode_first_stage completed, taking 1.05s\n"
    "[INFO ] stable-diffusion.cpp:5861 - generate_image completed in 6.97s\n"
    "[INFO ] main.cpp:490  - save result image 0 to '/out/cli_64_2steps.png' (success)\n"
    "[INFO ] main.cpp:562  - 1/1 images saved\n";

/* Splits on CR and LF like the supervisor and records what was seen. */
struct trace {
    int kinds[8];
    int max_percent_before_saving;
    int percents_monotonic;
    enum img_stage stages[64];
    int n_stages;
    enum img_module load_modules[16];
    int n_loads_done;
};

static void feed_all(img_progress *p, const char *text, struct trace *t)
{
    memset(t, 0, sizeof(*t));
    t->percents_monotonic = 1;
    int last = 0;
    const char *s = text;
    while (*s) {
        size_t n = strcspn(s, "\r\n");
        enum img_line_kind k = img_progress_feed(p, s, n);
        t->kinds[k]++;
        if (p->percent < last)
            t->percents_monotonic = 0;
        last = p->percent;
        if (p->stage < IMG_STAGE_SAVING && p->percent > t->max_percent_before_saving)
            t->max_percent_before_saving = p->percent;
        if (t->n_stages == 0 || t->stages[t->n_stages - 1] != p->stage)
            t->stages[t->n_stages++] = p->stage;
        if (k == IMG_LINE_LOAD_BAR && p->load_done == p->load_total && t->n_loads_done < 16)
            t->load_modules[t->n_loads_done++] = p->loading;
        s += n;
        if (*s)
            s++;
    }
}

static void test_contract_sample(void **state)
{
    (void)state;
    img_progress p;
    img_progress_init(&p, 1, 2);
    struct trace t;
    feed_all(&p, sample, &t);
    assert_int_equal(t.kinds[IMG_LINE_LOAD_BAR], 5);
    assert_int_equal(t.kinds[IMG_LINE_STEP_BAR], 2);
    assert_int_equal(t.kinds[IMG_LINE_TILE_BAR], 0);
    assert_int_equal(t.kinds[IMG_LINE_LOG], 24);
    assert_int_equal(t.kinds[IMG_LINE_OTHER], 0);
    /* starting, loading, encoding, sampling, decoding, saving, done */
    enum img_stage want[] = {IMG_STAGE_LOADING,  IMG_STAGE_ENCODING, IMG_STAGE_SAMPLING,
                             IMG_STAGE_DECODING, IMG_STAGE_SAVING,   IMG_STAGE_DONE};
    assert_int_equal(t.n_stages, 6);
    assert_memory_equal(t.stages, want, sizeof(want));
    /* Each '#' bar is attributed to the module whose stage runs. */
    assert_int_equal(t.n_loads_done, 3);
    assert_int_equal(t.load_modules[0], IMG_MODULE_TE);
    assert_int_equal(t.load_modules[1], IMG_MODULE_DIFFUSION);
    assert_int_equal(t.load_modules[2], IMG_MODULE_VAE);
    assert_int_equal(p.width, 64);
    assert_int_equal(p.height, 64);
    assert_int_equal(p.seed, 42);
    assert_int_equal(p.image, 1);
    assert_int_equal(p.images, 1);
    assert_int_equal(p.step, 2);
    assert_int_equal(p.steps, 2);
    assert_int_equal(p.latents_decoded, 1);
    assert_int_equal(p.saved, 1);
    assert_int_equal(p.percent, 100);
    assert_true(t.percents_monotonic);
    /* 2 sampling units + 1 decode unit: all sampling done = 66 %; never 100
     * before generate_image completed. */
    assert_int_equal(t.max_percent_before_saving, 99);
}

static void test_percent_from_steps(void **state)
{
    (void)state;
    img_progress p;
    img_progress_init(&p, 2, 4);
    const char *l1 = "[INFO ] stable-diffusion.cpp:5679 - generating image: 1/2 - seed 7";
    img_progress_feed(&p, l1, strlen(l1));
    assert_int_equal(p.stage, IMG_STAGE_SAMPLING);
    assert_int_equal(p.percent, 0);
    const char *b2 = "  |=========================>                        | 2/4 - 3.00it/s\x1b[K";
    assert_int_equal(img_progress_feed(&p, b2, strlen(b2)), IMG_LINE_STEP_BAR);
    /* 2 of 2*4+2 = 10 units */
    assert_int_equal(p.percent, 20);
    const char *l2 = "[INFO ] stable-diffusion.cpp:5679 - generating image: 2/2 - seed 8";
    img_progress_feed(&p, l2, strlen(l2));
    assert_int_equal(p.image, 2);
    assert_int_equal(p.step, 0);
    assert_int_equal(p.seed, 8);
    assert_int_equal(p.percent, 40);
    const char *b4 = "  |==================================================| 4/4 - 1.27s/it\x1b[K";
    img_progress_feed(&p, b4, strlen(b4));
    assert_int_equal(p.percent, 80);
    const char *dec = "[INFO ] stable-diffusion.cpp:5321 - decoding 2 latents";
    img_progress_feed(&p, dec, strlen(dec));
    assert_int_equal(p.stage, IMG_STAGE_DECODING);
    /* With --vae-tiling, '=' bars now count tiles, not steps. */
    const char *tile =
        "  |=========================>                        | 2/4 - 9.00it/s\x1b[K";
    assert_int_equal(img_progress_feed(&p, tile, strlen(tile)), IMG_LINE_TILE_BAR);
    assert_int_equal(p.tiles_done, 2);
    assert_int_equal(p.step, 4);
    const char *lat = "[INFO ] stable-diffusion.cpp:5387 - latent 1 decoded, taking 1.05s";
    img_progress_feed(&p, lat, strlen(lat));
    assert_int_equal(p.percent, 90);
    const char *done = "[INFO ] stable-diffusion.cpp:5861 - generate_image completed in 6.97s";
    img_progress_feed(&p, done, strlen(done));
    assert_int_equal(p.stage, IMG_STAGE_SAVING);
    assert_int_equal(p.percent, 100);
}

static void test_failure_markers(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "[ERROR] stable-diffusion.cpp:5706 - sampling for image 1/1 failed after 0.28s",
        "[ERROR] main.cpp:952  - generate failed",
        "[INFO ] main.cpp:910  - new_sd_ctx_t failed",
    };
    for (size_t i = 0; i < 3; i++) {
        img_progress p;
        img_progress_init(&p, 1, 20);
        assert_int_equal(img_progress_feed(&p, lines[i], strlen(lines[i])), IMG_LINE_LOG);
        assert_int_equal(p.stage, IMG_STAGE_FAILED);
    }
    img_progress p;
    img_progress_init(&p, 1, 20);
    const char *none = "[INFO ] main.cpp:562  - 0/1 images saved";
    img_progress_feed(&p, none, strlen(none));
    assert_int_equal(p.stage, IMG_STAGE_FAILED);
    const char *other = "terminate called after throwing an instance of 'std::invalid_argument'";
    assert_int_equal(img_progress_feed(&p, other, strlen(other)), IMG_LINE_OTHER);
    assert_int_equal(img_progress_feed(&p, "", 0), IMG_LINE_EMPTY);
}

static void test_bar_parse(void **state)
{
    (void)state;
    img_bar b;
    const char *ok =
        "  |#                                                 | 1/140 - 0.00MB/s\x1b[K";
    assert_int_equal(img_bar_parse(ok, strlen(ok), &b), 0);
    assert_true(b.loading);
    assert_int_equal(b.step, 1);
    assert_int_equal(b.steps, 140);
    assert_string_equal(b.unit, "MB/s");
    const char *gb = "  |##################################################| 686/686 - 1.50GB/s";
    assert_int_equal(img_bar_parse(gb, strlen(gb), &b), 0); /* ESC[K stripped */
    assert_true(b.speed > 1.49 && b.speed < 1.51);
    const char *slow =
        "  |>                                                 | 1/200 - 1.27s/it\x1b[K";
    assert_int_equal(img_bar_parse(slow, strlen(slow), &b), 0);
    assert_false(b.loading);
    assert_string_equal(b.unit, "s/it");

    static const char *const bad[] = {
        "  |=====| 1/2 - 1.66it/s\x1b[K",                                              /* short */
        "  |=========================>                        | 3/2 - 1.66it/s\x1b[K", /* k > n */
        "  |=========================>                        | 1/0 - 1.66it/s\x1b[K",
        "  |#########################>                        | 1/2 - 1.66it/s\x1b[K", /* mixed */
        "  |=========================>                        | 1/2 - 1.66MB/s\x1b[K", /* = MB */
        "  |#########################                         | 1/2 - 1.66it/s\x1b[K", /* # it */
        "  |=========================>                        | 1/2 - 1.66it/s\x1b[Kx",
        "  |=========================>                        | 1/2 - 1..6it/s\x1b[K",
        "  |=========================>                        | 1/2 - it/s\x1b[K",
        "  |=========================x                        | 1/2 - 1.66it/s\x1b[K",
        "  |=========================>                        | 1/9999999999 - 1it/s",
        "[INFO ] x.cpp:1    - 1/2",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(img_bar_parse(bad[i], strlen(bad[i]), &b), -1);
    /* Length is honoured: a valid bar cut short is not a bar. */
    assert_int_equal(img_bar_parse(ok, 40, &b), -1);
}

static void test_log_parse(void **state)
{
    (void)state;
    img_log_line l;
    const char *a = "[WARN ] stable-diffusion.cpp:4154 - align generation request up 100x100 to "
                    "128x128 (multiple=64)";
    assert_int_equal(img_log_parse(a, strlen(a), &l), 0);
    assert_int_equal(l.level, IMG_LOG_WARN);
    assert_int_equal(l.msg_len, strlen("align generation request up 100x100 to 128x128 "
                                       "(multiple=64)"));
    assert_memory_equal(l.msg, "align generation", 16);
    const char *e = "[ERROR] common.cpp:325  - error: unknown argument: --bogus-flag";
    assert_int_equal(img_log_parse(e, strlen(e), &l), 0);
    assert_int_equal(l.level, IMG_LOG_ERROR);
    const char *c = "\x1b[34;1m[INFO ]\x1b[0m main.cpp:148  - listening on: http://127.0.0.1:1";
    assert_int_equal(img_log_parse(c, strlen(c), &l), 0);
    assert_int_equal(l.level, IMG_LOG_INFO);
    assert_memory_equal(l.msg, "listening on:", 13);
    const char *d = "[DEBUG] ggml_extend.hpp:2241 - unet compute buffer size: 0.96 MB(RAM)";
    assert_int_equal(img_log_parse(d, strlen(d), &l), 0);
    assert_int_equal(l.level, IMG_LOG_DEBUG);
    static const char *const bad[] = {
        "[INFO] x.cpp:1 - m",
        "[INFO ] no line - m",
        "[INFO ] x.cpp:1x - m",
        "[INFO ] x.cpp:1",
        "[FATAL] x.cpp:1 - m",
        "INFO x.cpp:1 - m",
        "\x1b[34;1",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(img_log_parse(bad[i], strlen(bad[i]), &l), -1);
    assert_string_equal(img_stage_name(IMG_STAGE_SAMPLING), "sampling");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contract_sample), cmocka_unit_test(test_percent_from_steps),
        cmocka_unit_test(test_failure_markers), cmocka_unit_test(test_bar_parse),
        cmocka_unit_test(test_log_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
