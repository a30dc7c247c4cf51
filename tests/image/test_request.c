#include "cmocka_all.h"

#include "core/alloc.h"
#include "image/request.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static img_request base(void)
{
    img_request r;
    memset(&r, 0, sizeof(r));
    r.model = "/models/tiny-sd1.safetensors";
    r.prompt = "a lovely cat";
    return r;
}

static void expect_bad(const img_request *r, const char *field)
{
    genai_error e;
    assert_int_equal(img_request_validate(r, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, field));
}

static void test_validate_bounds(void **state)
{
    (void)state;
    img_request r = base();
    assert_int_equal(img_request_validate(&r, NULL), 0);
    assert_int_equal(img_request_width(&r), 512);
    assert_int_equal(img_request_steps(&r), 20);
    assert_int_equal(img_request_batch(&r), 1);

    r.width = 100; /* sd-cli would align up to 128; genai refuses */
    expect_bad(&r, "width 100");
    r.width = 4096 + 64;
    expect_bad(&r, "width");
    r.width = 32;
    expect_bad(&r, "width");
    r.width = 64;
    r.height = 4096;
    assert_int_equal(img_request_validate(&r, NULL), 0);
    r.height = 0;

    r.steps = 101;
    expect_bad(&r, "steps");
    r.steps = 100;
    assert_int_equal(img_request_validate(&r, NULL), 0);

    r.has_cfg = 1;
    r.cfg_scale = NAN;
    expect_bad(&r, "cfg_scale");
    r.cfg_scale = -1;
    expect_bad(&r, "cfg_scale");
    r.cfg_scale = 7.5;
    assert_int_equal(img_request_validate(&r, NULL), 0);

    r.has_guidance = 1;
    r.guidance = NAN;
    expect_bad(&r, "guidance");
    r.guidance = 30.5;
    expect_bad(&r, "guidance");
    r.guidance = 3.5;
    assert_int_equal(img_request_validate(&r, NULL), 0);
    r.policy = 3;
    expect_bad(&r, "policy");
    r.policy = 2;
    assert_int_equal(img_request_validate(&r, NULL), 0);

    r.has_seed = 1;
    r.seed = -1;
    expect_bad(&r, "seed");
    r.seed = 42;

    r.sampler = "nope";
    expect_bad(&r, "sampler 'nope'");
    r.sampler = "dpm++2m";
    r.scheduler = "normal"; /* sd.cpp's alias of discrete */
    assert_int_equal(img_request_validate(&r, NULL), 0);
    r.scheduler = "schedule";
    expect_bad(&r, "scheduler");
    r.scheduler = "karras";

    r.batch_count = 9;
    expect_bad(&r, "batch_count");
    r.batch_count = 8;
    r.threads = -2;
    expect_bad(&r, "threads");
    r.threads = 4;
    assert_int_equal(img_request_validate(&r, NULL), 0);

    r.prompt = "";
    expect_bad(&r, "prompt");
    char *big = mem_alloc(IMG_PROMPT_MAX + 2);
    memset(big, 'x', IMG_PROMPT_MAX + 1);
    big[IMG_PROMPT_MAX + 1] = '\0';
    r.prompt = big;
    expect_bad(&r, "prompt");
    mem_free(big);
    r.prompt = "cat";

    r.diffusion_model = "/m/unet.gguf"; /* both */
    expect_bad(&r, "model");
    r.model = NULL; /* only components */
    assert_int_equal(img_request_validate(&r, NULL), 0);
    r.diffusion_model = NULL; /* neither */
    expect_bad(&r, "model");
    r.model = "";
    expect_bad(&r, "model");
    assert_int_equal(img_request_validate(NULL, NULL), GENAI_EBAD_ARG);
}

static void test_seed(void **state)
{
    (void)state;
    img_request r = base();
    assert_int_equal(img_request_resolve_seed(&r, NULL), 0);
    assert_true(r.has_seed);
    assert_true(r.seed >= 0 && r.seed <= (int64_t)IMG_SEED_RANDOM_MASK);
    /* A given seed is kept. */
    r.seed = 7;
    assert_int_equal(img_request_resolve_seed(&r, NULL), 0);
    assert_int_equal(r.seed, 7);
    /* Random seeds vary: 16 draws from 2^31 values are not all equal. */
    int64_t first = -1;
    int differ = 0;
    for (int i = 0; i < 16; i++) {
        img_request q = base();
        assert_int_equal(img_request_resolve_seed(&q, NULL), 0);
        if (first < 0)
            first = q.seed;
        differ |= q.seed != first;
    }
    assert_true(differ);
}

static int argv_has(const img_argv *a, const char *flag, const char *value)
{
    for (size_t i = 0; i < a->argc; i++) {
        if (strcmp(a->argv[i], flag) == 0)
            return value == NULL || (i + 1 < a->argc && strcmp(a->argv[i + 1], value) == 0);
    }
    return 0;
}

static img_sd_version ver(uint32_t count)
{
    img_sd_version v;
    memset(&v, 0, sizeof(v));
    snprintf(v.branch, sizeof(v.branch), "master");
    v.count = count;
    return v;
}

static void test_argv_current(void **state)
{
    (void)state;
    img_request r = base();
    r.negative_prompt = "blurry";
    r.width = 768;
    r.height = 512;
    r.steps = 4;
    r.has_cfg = 1;
    r.cfg_scale = 5.5;
    r.has_guidance = 1;
    r.guidance = 3.5;
    r.has_seed = 1;
    r.seed = 1234;
    r.sampler = "euler";
    r.scheduler = "karras";
    r.batch_count = 2;
    r.threads = 2;
    r.te_on_cpu = 1;
    r.vae_on_cpu = 1;
    r.vae_tiling = 1;
    r.diffusion_fa = 1;
    r.offload_to_cpu = 1;
    r.verbose = 1;
    img_sd_version v = ver(827);
    img_argv a;
    genai_error e;
    assert_int_equal(img_argv_build(&r, &v, "/opt/sd/sd-cli", "/run/g/sd-abc", &a, &e), 0);
    assert_string_equal(a.argv[0], "/opt/sd/sd-cli");
    assert_null(a.argv[a.argc]);
    assert_true(argv_has(&a, "-m", "/models/tiny-sd1.safetensors"));
    assert_true(argv_has(&a, "-p", "a lovely cat"));
    assert_true(argv_has(&a, "-n", "blurry"));
    assert_true(argv_has(&a, "-W", "768"));
    assert_true(argv_has(&a, "-H", "512"));
    assert_true(argv_has(&a, "--steps", "4"));
    assert_true(argv_has(&a, "--cfg-scale", "5.5"));
    assert_true(argv_has(&a, "--guidance", "3.5"));
    assert_true(argv_has(&a, "-s", "1234"));
    assert_true(argv_has(&a, "--sampling-method", "euler"));
    assert_true(argv_has(&a, "--scheduler", "karras"));
    assert_true(argv_has(&a, "-b", "2"));
    assert_true(argv_has(&a, "-t", "2"));
    assert_true(argv_has(&a, "--backend", "te=cpu,vae=cpu"));
    assert_true(argv_has(&a, "--vae-tiling", NULL));
    assert_true(argv_has(&a, "--offload-to-cpu", NULL));
    assert_true(argv_has(&a, "--diffusion-fa", NULL));
    assert_true(argv_has(&a, "-v", NULL));
    assert_true(argv_has(&a, "-o", "/run/g/sd-abc/out.png"));
    /* Never the deprecated spellings, the colour flag or a mode. */
    assert_false(argv_has(&a, "--clip-on-cpu", NULL));
    assert_false(argv_has(&a, "--color", NULL));
    assert_false(argv_has(&a, "-M", NULL));
    img_argv_free(&a);
    img_argv_free(&a); /* idempotent */

    /* Only the text encoder; defaults leave optional flags out. */
    img_request q = base();
    q.has_seed = 1;
    q.seed = 0;
    q.te_on_cpu = 1;
    assert_int_equal(img_argv_build(&q, NULL, "sd-cli", "/d", &a, &e), 0);
    assert_true(argv_has(&a, "--backend", "te=cpu"));
    assert_true(argv_has(&a, "-W", "512"));
    assert_true(argv_has(&a, "--steps", "20"));
    assert_false(argv_has(&a, "-b", NULL));
    assert_false(argv_has(&a, "-t", NULL));
    assert_false(argv_has(&a, "--cfg-scale", NULL));
    assert_false(argv_has(&a, "--guidance", NULL));
    assert_false(argv_has(&a, "-n", NULL));
    img_argv_free(&a);
}

static void test_argv_by_version(void **state)
{
    (void)state;
    img_request r = base();
    r.has_seed = 1;
    r.seed = 1;
    r.scheduler = "discrete";
    r.te_on_cpu = 1;
    r.vae_on_cpu = 1;
    img_argv a;
    genai_error e;
    /* Before master-611: the --*-on-cpu flags. */
    img_sd_version v = ver(610);
    assert_int_equal(img_argv_build(&r, &v, "sd", "/d", &a, &e), 0);
    assert_true(argv_has(&a, "--clip-on-cpu", NULL));
    assert_true(argv_has(&a, "--vae-on-cpu", NULL));
    assert_false(argv_has(&a, "--backend", NULL));
    assert_true(argv_has(&a, "--scheduler", "discrete"));
    img_argv_free(&a);
    v = ver(611);
    assert_int_equal(img_argv_build(&r, &v, "sd", "/d", &a, &e), 0);
    assert_true(argv_has(&a, "--backend", "te=cpu,vae=cpu"));
    img_argv_free(&a);
    /* Before master-263: --schedule. */
    v = ver(262);
    assert_int_equal(img_argv_build(&r, &v, "sd", "/d", &a, &e), 0);
    assert_true(argv_has(&a, "--schedule", "discrete"));
    assert_false(argv_has(&a, "--scheduler", NULL));
    img_argv_free(&a);
    /* Older than img_gen: refused. */
    v = ver(239);
    a.argv = NULL;
    assert_int_equal(img_argv_build(&r, &v, "sd", "/d", &a, &e), GENAI_EUNSUPPORTED);
    assert_null(a.argv);
    assert_non_null(strstr(e.detail, "master-239"));
    /* An unresolved seed or an invalid request is refused. */
    v = ver(827);
    r.has_seed = 0;
    assert_int_equal(img_argv_build(&r, &v, "sd", "/d", &a, &e), GENAI_EBAD_ARG);
    r.has_seed = 1;
    r.width = 65;
    assert_int_equal(img_argv_build(&r, &v, "sd", "/d", &a, &e), GENAI_EBAD_ARG);
}

static void test_argv_out_of_memory(void **state)
{
    (void)state;
    img_request r = base();
    r.has_seed = 1;
    r.seed = 3;
    r.batch_count = 2;
    r.te_on_cpu = 1;
    /* Every allocation failing in turn must fail cleanly (ASan checks leaks). */
    for (unsigned long n = 1; n < 200; n++) {
        img_argv a = {NULL, 0};
        mem_fail_after(n, 1);
        int rc = img_argv_build(&r, NULL, "sd", "/d", &a, NULL);
        mem_fail_after(0, 0);
        if (rc == 0) {
            img_argv_free(&a);
            return;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_null(a.argv);
    }
    fail_msg("argv never built");
}

static void test_copy_and_free(void **state)
{
    (void)state;
    img_request r = base();
    r.negative_prompt = "ugly";
    r.vae = "/m/vae.safetensors";
    r.sampler = "euler_a";
    r.settings_json = "{\"steps\":{\"default\":6}}";
    r.width = 128;
    img_request c;
    assert_int_equal(img_request_copy(&c, &r), 0);
    assert_ptr_not_equal(c.settings_json, r.settings_json);
    assert_string_equal(c.settings_json, r.settings_json);
    assert_ptr_not_equal(c.prompt, r.prompt);
    assert_string_equal(c.prompt, "a lovely cat");
    assert_string_equal(c.vae, "/m/vae.safetensors");
    assert_null(c.clip_l);
    assert_int_equal(c.width, 128);
    img_request_free(&c);
    assert_null(c.prompt);
    img_request_free(NULL);
    for (unsigned long n = 1; n < 10; n++) {
        img_request d;
        memset(&d, 0xab, sizeof(d));
        mem_fail_after(n, 1);
        int rc = img_request_copy(&d, &r);
        mem_fail_after(0, 0);
        if (rc == 0) {
            img_request_free(&d);
            return;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(d.width, 0xabababab); /* untouched */
    }
    fail_msg("copy never succeeded");
}

static void test_output_paths_and_workdir(void **state)
{
    (void)state;
    char buf[256];
    assert_int_equal(img_output_path("/w", 1, 0, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/w/out.png");
    assert_int_equal(img_output_path("/w", 3, 2, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/w/out_2.png");
    assert_int_equal(img_output_path("/w", 1, 0, buf, 5), -ENAMETOOLONG);

    char dir[PATH_MAX];
    genai_error e;
    assert_int_equal(img_workdir_create("/tmp", dir, sizeof(dir), &e), 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    char f[PATH_MAX + 16];
    snprintf(f, sizeof(f), "%s/out_0.png", dir);
    FILE *fp = fopen(f, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(img_workdir_remove(dir, &e), 0);
    assert_int_not_equal(stat(dir, &st), 0);
    assert_int_equal(img_workdir_remove(dir, &e), 0); /* already gone */
    assert_int_equal(img_workdir_create("/nonexistent/x", dir, sizeof(dir), &e), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_bounds),
        cmocka_unit_test(test_seed),
        cmocka_unit_test(test_argv_current),
        cmocka_unit_test(test_argv_by_version),
        cmocka_unit_test(test_argv_out_of_memory),
        cmocka_unit_test(test_copy_and_free),
        cmocka_unit_test(test_output_paths_and_workdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
