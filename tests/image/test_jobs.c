#include "cmocka_all.h"

#include "core/alloc.h"
#include "image/jobs.h"

#include <errno.h>
#include <string.h>

static img_request req(uint32_t steps)
{
    img_request r;
    memset(&r, 0, sizeof(r));
    r.model = "/m/sd.safetensors";
    r.prompt = "a lovely cat";
    r.steps = steps;
    return r;
}

static img_result *one_result(int64_t seed)
{
    img_result *res = mem_calloc(1, sizeof(*res));
    assert_non_null(res);
    res->png = mem_alloc(16);
    assert_non_null(res->png);
    memset(res->png, 0x89, 16);
    res->png_len = 16;
    res->width = res->height = 64;
    res->seed = seed;
    return res;
}

static void test_lifecycle(void **state)
{
    (void)state;
    img_jobs q;
    assert_int_equal(img_jobs_init(&q, 3, 10, 600000), 0);
    uint64_t a, b, c, d;
    genai_error e;
    img_request r = req(2);
    assert_int_equal(img_jobs_submit(&q, &r, 1000, &a, &e), 0);
    r.has_seed = 1;
    r.seed = 99;
    assert_int_equal(img_jobs_submit(&q, &r, 1001, &b, &e), 0);
    assert_int_equal(img_jobs_submit(&q, &r, 1002, &c, &e), 0);
    assert_true(a < b && b < c);
    /* Bounded: the fourth pending job is refused. */
    assert_int_equal(img_jobs_submit(&q, &r, 1003, &d, &e), GENAI_EBUSY);
    assert_non_null(strstr(e.detail, "full"));
    assert_int_equal(img_jobs_pending(&q), 3);

    img_job *ja = img_jobs_get(&q, a);
    assert_non_null(ja);
    assert_int_equal(ja->state, IMG_JOB_QUEUED);
    assert_true(ja->req.has_seed);                  /* drawn at submit, reported from the start */
    assert_ptr_not_equal(ja->req.prompt, r.prompt); /* a deep copy */
    assert_int_equal(img_jobs_get(&q, b)->req.seed, 99);
    assert_int_equal(img_jobs_queue_position(&q, a), 1);
    assert_int_equal(img_jobs_queue_position(&q, c), 3);

    /* FIFO, one at a time. */
    img_job *run = img_jobs_start_next(&q, 2000);
    assert_ptr_equal(run, ja);
    assert_int_equal(ja->state, IMG_JOB_RUNNING);
    assert_null(img_jobs_start_next(&q, 2001));
    assert_int_equal(img_jobs_queue_position(&q, a), 0);
    assert_int_equal(img_jobs_queue_position(&q, b), 1);

    img_progress p;
    img_progress_init(&p, 1, 2);
    p.stage = IMG_STAGE_SAMPLING;
    p.percent = 33;
    assert_int_equal(img_jobs_set_progress(&q, a, &p), 0);
    assert_int_equal(ja->progress.percent, 33);
    assert_int_equal(img_jobs_set_progress(&q, b, &p), GENAI_EBAD_ARG); /* not running */

    assert_int_equal(img_jobs_succeed(&q, a, one_result(ja->req.seed), 1, 5000), 0);
    assert_int_equal(ja->state, IMG_JOB_SUCCEEDED);
    assert_int_equal(ja->n_results, 1);
    assert_int_equal(ja->results[0].seed, ja->req.seed);
    assert_int_equal(ja->progress.percent, 100);
    assert_int_equal(img_job_duration_ms(ja), 3000);
    /* A slot is free again. */
    assert_int_equal(img_jobs_submit(&q, &r, 5001, &d, &e), 0);

    /* b fails, c is cancelled while queued, d while running. */
    assert_int_equal(img_jobs_start_next(&q, 6000)->id, b);
    assert_int_equal(img_jobs_cancel(&q, c, 6001), IMG_CANCEL_DONE);
    assert_int_equal(img_jobs_get(&q, c)->state, IMG_JOB_CANCELLED);
    assert_int_equal(img_jobs_cancel(&q, c, 6002), IMG_CANCEL_FINISHED); /* repeat: same */
    assert_int_equal(img_jobs_fail(&q, b, GENAI_ENO_FIT, "out of memory", 7000), 0);
    img_job *jb = img_jobs_get(&q, b);
    assert_int_equal(jb->state, IMG_JOB_FAILED);
    assert_string_equal(jb->error, "out of memory");
    assert_int_equal(jb->error_code, GENAI_ENO_FIT);
    assert_int_equal(img_jobs_start_next(&q, 7001)->id, d);
    assert_int_equal(img_jobs_cancel(&q, d, 7002), IMG_CANCEL_PENDING);
    assert_true(img_jobs_get(&q, d)->cancel_requested);
    assert_int_equal(img_jobs_fail(&q, d, GENAI_ECANCELLED, NULL, 7100), 0);
    assert_int_equal(img_jobs_get(&q, d)->state, IMG_JOB_CANCELLED);
    assert_string_equal(img_jobs_get(&q, d)->error, "job cancelled by client");
    assert_int_equal(img_jobs_cancel(&q, 12345, 0), GENAI_ENOT_FOUND);
    assert_null(img_jobs_start_next(&q, 8000)); /* queue empty */
    /* Finishing a job that is not running is refused (and frees results). */
    assert_int_equal(img_jobs_succeed(&q, a, one_result(1), 1, 9000), GENAI_EBAD_ARG);
    assert_int_equal(img_jobs_fail(&q, a, GENAI_EINTERNAL, "x", 9000), GENAI_EBAD_ARG);
    assert_string_equal(img_job_state_name(IMG_JOB_SUCCEEDED), "succeeded");
    img_jobs_free(&q);
    img_jobs_free(NULL);
}

static void test_expiry_without_sleeping(void **state)
{
    (void)state;
    img_jobs q;
    assert_int_equal(img_jobs_init(&q, 8, 100, 600000), 0); /* sd-server's 600 s */
    uint64_t a, b;
    img_request r = req(1);
    assert_int_equal(img_jobs_submit(&q, &r, 0, &a, NULL), 0);
    assert_int_equal(img_jobs_submit(&q, &r, 0, &b, NULL), 0);
    img_jobs_start_next(&q, 10);
    assert_int_equal(img_jobs_succeed(&q, a, one_result(1), 1, 1000), 0);
    /* Pending jobs never expire; finished ones after keep_ms. */
    assert_int_equal(img_jobs_expire(&q, 600999), 0);
    assert_non_null(img_jobs_get(&q, a));
    assert_int_equal(img_jobs_expire(&q, 601000), 1);
    assert_null(img_jobs_get(&q, a));
    assert_non_null(img_jobs_get(&q, b));
    assert_int_equal(img_jobs_expire(&q, 99999999), 0);
    assert_int_equal(img_jobs_get(&q, b)->state, IMG_JOB_QUEUED);
    img_jobs_free(&q);
}

static void test_finished_cap(void **state)
{
    (void)state;
    img_jobs q;
    assert_int_equal(img_jobs_init(&q, 2, 3, 600000), 0);
    uint64_t ids[6];
    img_request r = req(1);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(img_jobs_submit(&q, &r, (uint64_t)i * 10, &ids[i], NULL), 0);
        img_job *j = img_jobs_start_next(&q, (uint64_t)i * 10 + 1);
        assert_int_equal(j->id, ids[i]);
        assert_int_equal(img_jobs_succeed(&q, ids[i], one_result(i), 1, (uint64_t)i * 10 + 5), 0);
    }
    /* Only the 3 newest finished jobs remain. */
    for (int i = 0; i < 3; i++)
        assert_null(img_jobs_get(&q, ids[i]));
    for (int i = 3; i < 6; i++)
        assert_non_null(img_jobs_get(&q, ids[i]));
    assert_int_equal(img_jobs_init(&q, 0, 1, 0), GENAI_EBAD_ARG);
    img_jobs_free(&q);
}

static void test_submit_errors(void **state)
{
    (void)state;
    img_jobs q;
    assert_int_equal(img_jobs_init(&q, 4, 4, 1000), 0);
    uint64_t id = 777;
    genai_error e;
    img_request r = req(1000); /* steps out of range */
    assert_int_equal(img_jobs_submit(&q, &r, 0, &id, &e), GENAI_EBAD_ARG);
    assert_int_equal(id, 777);
    r = req(1);
    for (unsigned long n = 1; n < 30; n++) {
        mem_fail_after(n, 1);
        int rc = img_jobs_submit(&q, &r, 0, &id, &e);
        mem_fail_after(0, 0);
        if (rc == 0)
            break;
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(img_jobs_pending(&q), 0);
    }
    assert_int_equal(img_jobs_pending(&q), 1);
    img_jobs_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_expiry_without_sleeping),
        cmocka_unit_test(test_finished_cap),
        cmocka_unit_test(test_submit_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
