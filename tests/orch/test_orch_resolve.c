/*
 * test_orch_resolve.c - orch_image_submit applies the model's settings
 * before admission (image/resolve.h): a request that leaves the size out
 * is planned and run at the family's native size (SDXL: 1024x1024), the
 * resolution stays with the job for the responses, the runner does not
 * resolve a second time, and a model missing a component or a strict-policy
 * refusal fails the submit with the resolver's error naming the role or
 * field. Also the LLM selection hooks the HTTP service uses:
 * orch_llm_configure (only while no LLM is in use) and orch_llm_unload
 * (drain, stop, reclaim, then absent until asked again).
 *
 * Fixtures: family tensor layouts in sparse safetensors files
 * (tests/diffusion/dm_fixtures.h); the doubles and the fake GPU through the
 * orchestrator harness.
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "diffusion/dm_fixtures.h"
#include "orch_harness.h"

#include <jansson.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static int job_left_waiting(oh *h, void *arg)
{
    const orch_job *j = orch_image_job(h->o, *(uint64_t *)arg);
    return j == NULL || j->state != ORCH_JOB_WAITING;
}

static int job_done(oh *h, void *arg)
{
    const orch_job *j = orch_image_job(h->o, *(uint64_t *)arg);
    return j == NULL || j->state == ORCH_JOB_DONE;
}

static void test_submit_resolves(void **state)
{
    (void)state;
    oh h;
    oh_setup(&h);
    oh_fake_gpu(&h, 24ull << 30);
    char *dir = tu_tmpdir("orchres");
    char *sdxl = dmt_write_st(dir, "sd_xl_base_1.0.safetensors", dmt_sdxl, dmt_sdxl_n, NULL, 0);
    char *lightning =
        dmt_write_st(dir, "sdxl_lightning_4step.safetensors", dmt_sdxl, dmt_sdxl_n, NULL, 0);
    char *flux =
        dmt_write_st(dir, "flux1-dev.safetensors", dmt_flux_dev_bare, dmt_flux_dev_bare_n, NULL, 0);
    orch_opts o;
    oh_opts(&h, &o);
    o.image.size_model = NULL; /* sizes from the files: the resolution's plan */
    oh_start(&h, &o);

    /* Size, steps and CFG left out: the model's (SDXL base: 1024^2, 20, 7). */
    img_request r;
    memset(&r, 0, sizeof(r));
    r.model = sdxl;
    r.prompt = (char *)"a lighthouse";
    r.has_seed = 1;
    r.seed = 7;
    uint64_t id = 0;
    genai_error e;
    genai_error_clear(&e);
    assert_int_equal(orch_image_submit(h.o, &r, NULL, &id, &e), 0);
    const orch_job *j = orch_image_job(h.o, id);
    assert_non_null(j);
    assert_non_null(j->resolution);
    assert_true(j->resolution->known);
    assert_int_equal(j->resolution->detection.family, DM_FAMILY_SDXL);
    assert_int_equal(j->resolution->resolved.width, 1024);
    assert_int_equal(j->resolution->resolved.height, 1024);
    assert_int_equal(j->resolution->resolved.steps, 20);
    json_t *js = img_resolution_to_json(j->resolution);
    assert_non_null(js);
    assert_string_equal(json_string_value(json_object_get(json_object_get(js, "model"), "family")),
                        "sdxl");
    json_decref(js);

    /* The runner got the resolved request and did not resolve again. */
    assert_int_equal(oh_run_until(&h, job_left_waiting, &id, 10000), 0);
    j = orch_image_job(h.o, id);
    assert_non_null(j);
    assert_true(j->runner_id > 0); /* finished runner jobs are kept */
    const img_job *rj = img_runner_job(orch_runner(h.o), j->runner_id);
    assert_non_null(rj);
    assert_int_equal(rj->req.width, 1024);
    assert_int_equal(rj->req.height, 1024);
    assert_int_equal(rj->req.steps, 20);
    assert_true(rj->req.settings_applied);
    const img_run_info *info = img_runner_info(orch_runner(h.o), j->runner_id);
    assert_non_null(info);
    assert_null(info->resolution);
    assert_int_equal(oh_run_until(&h, job_done, &id, 30000), 0);

    /* A Flux DiT without its encoders and VAE: refused at submit, the
     * missing roles named, nothing queued. */
    memset(&r, 0, sizeof(r));
    r.diffusion_model = flux;
    r.prompt = (char *)"x";
    size_t before = orch_images_pending(h.o);
    genai_error_clear(&e);
    assert_int_equal(orch_image_submit(h.o, &r, NULL, &id, &e), GENAI_ENOT_FOUND);
    assert_non_null(strstr(e.detail, "role t5xxl"));
    assert_non_null(strstr(e.detail, "role vae"));
    assert_int_equal(orch_images_pending(h.o), before);

    /* Strict policy and steps outside the model's range: refused with the
     * field and the range. */
    memset(&r, 0, sizeof(r));
    r.model = lightning;
    r.prompt = (char *)"x";
    r.steps = 30;
    r.policy = DM_POLICY_STRICT;
    genai_error_clear(&e);
    assert_int_equal(orch_image_submit(h.o, &r, NULL, &id, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "steps 30"));
    assert_non_null(strstr(e.detail, "1..8"));

    /* Under adjust, the same request is queued with a warning kept. */
    r.policy = DM_POLICY_ADJUST;
    assert_int_equal(orch_image_submit(h.o, &r, NULL, &id, &e), 0);
    j = orch_image_job(h.o, id);
    assert_true(j->resolution->resolved.n_warnings > 0);
    assert_int_equal(j->resolution->resolved.steps, 8);
    assert_int_equal(oh_run_until(&h, job_done, &id, 30000), 0);

    oh_done(&h);
    mem_free(sdxl);
    mem_free(lightning);
    mem_free(flux);
    tu_rmdir(dir);
    mem_free(dir);
}

static int llm_is(oh *h, void *arg)
{
    return orch_llm_status(h->o, NULL) == *(orch_llm_state *)arg;
}

static void test_configure_and_unload(void **state)
{
    (void)state;
    oh h;
    oh_setup(&h);
    oh_fake_gpu(&h, 24ull << 30);
    oh_write_llm(&h, 13824);
    orch_opts o;
    oh_opts(&h, &o);
    oh_start(&h, &o); /* no LLM configured */
    genai_error e;
    assert_null(orch_llm_model_id(h.o));
    assert_int_equal(orch_llm_unload(h.o, &e), GENAI_ENOT_FOUND);

    llm_rt_config cfg;
    oh_llm_config(&h, &cfg);
    cfg.model_id = "first";
    assert_int_equal(orch_llm_configure(h.o, &cfg, &e), 0);
    assert_string_equal(orch_llm_model_id(h.o), "first");
    assert_int_equal(orch_llm_load(h.o, &e), 0);
    assert_int_equal(oh_wait_llm(&h, ORCH_LLM_READY, 30000), 0);
    pid_t pid = orch_llm_pid(h.o);
    assert_true(pid > 0);
    oh_note_pid(&h, pid);

    /* In use: another model is refused and the first stays. */
    cfg.model_id = "second";
    assert_int_equal(orch_llm_configure(h.o, &cfg, &e), GENAI_EBUSY);
    assert_non_null(strstr(e.detail, "first"));
    assert_string_equal(orch_llm_model_id(h.o), "first");

    /* Unload: drained, stopped (reaped), reclaimed, then absent. */
    size_t reclaimed = oh_count(&h, ORCH_EV_RECLAIMED);
    assert_int_equal(orch_llm_unload(h.o, &e), 0);
    assert_int_equal(oh_wait_events(&h, ORCH_EV_RECLAIMED, reclaimed + 1, 30000), 0);
    orch_llm_state absent = ORCH_LLM_ABSENT;
    assert_int_equal(oh_run_until(&h, llm_is, &absent, 5000), 0);
    assert_true(kill(pid, 0) != 0 && errno == ESRCH);
    assert_int_equal(orch_llm_unload(h.o, &e), 1); /* nothing left to unload */

    /* Now another model may take its place. */
    assert_int_equal(orch_llm_configure(h.o, &cfg, &e), 0);
    assert_string_equal(orch_llm_model_id(h.o), "second");
    assert_int_equal(orch_llm_status(h.o, NULL), ORCH_LLM_ABSENT);
    oh_done(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit_resolves),
        cmocka_unit_test(test_configure_and_unload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
