/*
 * test_footprint.c - learned footprints: record, replace, evict, the tier
 * order measured > dry run > estimate, and allocation failures.
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "plan/footprint.h"
#include "plan_fixtures.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static plan_demand demand_of(uint64_t host)
{
    plan_demand d;
    memset(&d, 0, sizeof(d));
    d.host_anon = host;
    d.tier = PLAN_TIER_ESTIMATE;
    return d;
}

static void test_record_lookup(void **state)
{
    (void)state;
    plan_footprints *fp = plan_footprints_new();
    assert_non_null(fp);
    plan_demand d = demand_of(100), out;
    assert_int_equal(plan_footprints_lookup(fp, "m", "k", &out), 0);
    assert_int_equal(plan_footprints_record(fp, "m", "k", &d, NULL), 0);
    assert_int_equal(plan_footprints_lookup(fp, "m", "k", &out), 1);
    assert_int_equal(out.host_anon, 100);
    assert_int_equal(out.tier, PLAN_TIER_MEASURED);
    assert_int_equal(plan_footprints_lookup(fp, "m", "other", &out), 0);
    assert_int_equal(plan_footprints_lookup(fp, "other", "k", &out), 0);

    /* The latest measurement replaces the old one. */
    d = demand_of(200);
    assert_int_equal(plan_footprints_record(fp, "m", "k", &d, NULL), 0);
    assert_int_equal(plan_footprints_count(fp), 1);
    assert_int_equal(plan_footprints_lookup(fp, "m", "k", &out), 1);
    assert_int_equal(out.host_anon, 200);

    genai_error err;
    assert_int_equal(plan_footprints_record(fp, "", "k", &d, &err), GENAI_EBAD_ARG);
    assert_int_equal(plan_footprints_record(fp, "m", NULL, &d, &err), GENAI_EBAD_ARG);
    char longkey[PLAN_KEY_MAX + 1];
    memset(longkey, 'x', PLAN_KEY_MAX);
    longkey[PLAN_KEY_MAX] = '\0';
    assert_int_equal(plan_footprints_record(fp, "m", longkey, &d, &err), GENAI_EBAD_ARG);
    plan_footprints_free(fp);
    plan_footprints_free(NULL);
}

static void test_eviction(void **state)
{
    (void)state;
    plan_footprints *fp = plan_footprints_new();
    assert_non_null(fp);
    char key[32];
    for (unsigned i = 0; i < PLAN_FOOTPRINTS_MAX; i++) {
        plan_demand d = demand_of(i);
        snprintf(key, sizeof(key), "k%u", i);
        assert_int_equal(plan_footprints_record(fp, "m", key, &d, NULL), 0);
    }
    /* Refresh k0 so that k1 becomes the oldest. */
    plan_demand d = demand_of(1000);
    assert_int_equal(plan_footprints_record(fp, "m", "k0", &d, NULL), 0);
    assert_int_equal(plan_footprints_record(fp, "m", "new", &d, NULL), 0);
    assert_int_equal(plan_footprints_count(fp), PLAN_FOOTPRINTS_MAX);
    plan_demand out;
    assert_int_equal(plan_footprints_lookup(fp, "m", "k1", &out), 0);
    assert_int_equal(plan_footprints_lookup(fp, "m", "k0", &out), 1);
    assert_int_equal(plan_footprints_lookup(fp, "m", "k2", &out), 1);
    assert_int_equal(plan_footprints_lookup(fp, "m", "new", &out), 1);
    plan_footprints_free(fp);
}

static void test_oom(void **state)
{
    (void)state;
    plan_footprints *fp = plan_footprints_new();
    assert_non_null(fp);
    plan_demand d = demand_of(1);
    for (unsigned long n = 1; n <= 3; n++) {
        mem_fail_after(n, 0);
        int rc = plan_footprints_record(fp, "m", "k", &d, NULL);
        mem_fail_after(0, 0);
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(plan_footprints_count(fp), 0);
    }
    assert_int_equal(plan_footprints_record(fp, "m", "k", &d, NULL), 0);
    plan_footprints_free(fp);
}

static void test_tiers(void **state)
{
    (void)state;
    gguf_profile p;
    assert_int_equal(fixture_ref_big(&p), 0);
    plan_llm_config cfg;
    plan_llm_config_init(&cfg);
    cfg.n_ctx = 1024;
    char key[PLAN_KEY_MAX];
    assert_int_equal(plan_llm_config_key(&p, &cfg, key, sizeof(key), NULL), 0);
    assert_non_null(strstr(key, "c=1024"));
    assert_non_null(strstr(key, "np=4 kvu=1"));

    /* Two spellings of the same launch share a key (-c 1000 pads to 1024,
     * explicit -np 4 -kvu equals auto). */
    plan_llm_config same = cfg;
    same.n_ctx = 1000;
    same.n_parallel = 4;
    same.kv_unified = 1;
    char key2[PLAN_KEY_MAX];
    assert_int_equal(plan_llm_config_key(&p, &same, key2, sizeof(key2), NULL), 0);
    assert_string_equal(key, key2);
    same.type_k = PLAN_CACHE_Q8_0;
    assert_int_equal(plan_llm_config_key(&p, &same, key2, sizeof(key2), NULL), 0);
    assert_string_not_equal(key, key2);
    char tiny[8];
    assert_int_equal(plan_llm_config_key(&p, &cfg, tiny, sizeof(tiny), NULL), GENAI_ETOO_LARGE);

    plan_demand out, dry = demand_of(5);
    assert_int_equal(plan_llm_demand(NULL, NULL, &p, &cfg, NULL, &out, NULL), PLAN_TIER_ESTIMATE);
    assert_int_equal(out.tier, PLAN_TIER_ESTIMATE);
    dry.tier = PLAN_TIER_DRY_RUN;
    assert_int_equal(plan_llm_demand(NULL, NULL, &p, &cfg, &dry, &out, NULL), PLAN_TIER_DRY_RUN);
    assert_int_equal(out.host_anon, 5);

    plan_footprints *fp = plan_footprints_new();
    assert_non_null(fp);
    plan_demand measured = demand_of(7);
    assert_int_equal(plan_footprints_record(fp, "sha256:abc", key, &measured, NULL), 0);
    assert_int_equal(plan_llm_demand(fp, "sha256:abc", &p, &cfg, &dry, &out, NULL),
                     PLAN_TIER_MEASURED);
    assert_int_equal(out.host_anon, 7);
    /* Another model or configuration falls back. */
    assert_int_equal(plan_llm_demand(fp, "sha256:def", &p, &cfg, &dry, &out, NULL),
                     PLAN_TIER_DRY_RUN);
    cfg.n_ctx = 2048;
    assert_int_equal(plan_llm_demand(fp, "sha256:abc", &p, &cfg, NULL, &out, NULL),
                     PLAN_TIER_ESTIMATE);
    plan_footprints_free(fp);
    fixture_profile_free(&p);
}

/* A backing store for the hooks test: remembers what the sink saw and
 * answers the source from one slot. */
typedef struct backing {
    int sunk, asked;
    char sunk_key[64];
    uint64_t sunk_host;
    int have;
    plan_demand answer;
} backing;

static void test_sink(void *arg, const char *model_id, const char *config_key, const plan_demand *d)
{
    backing *b = arg;
    b->sunk++;
    snprintf(b->sunk_key, sizeof(b->sunk_key), "%s|%s", model_id, config_key);
    b->sunk_host = d->host_anon;
    assert_int_equal(d->tier, PLAN_TIER_MEASURED);
}

static int test_source(void *arg, const char *model_id, const char *config_key, plan_demand *out)
{
    backing *b = arg;
    b->asked++;
    if (!b->have || strcmp(model_id, "m") != 0 || strcmp(config_key, "stored") != 0)
        return 0;
    *out = b->answer;
    return 1;
}

static void test_backing_hooks(void **state)
{
    (void)state;
    plan_footprints *fp = plan_footprints_new();
    assert_non_null(fp);
    backing b;
    memset(&b, 0, sizeof(b));
    plan_footprints_set_backing(fp, test_source, test_sink, &b);

    /* a record reaches the sink once, as stored (tier MEASURED) */
    plan_demand d = demand_of(300), out;
    assert_int_equal(plan_footprints_record(fp, "m", "k", &d, NULL), 0);
    assert_int_equal(b.sunk, 1);
    assert_string_equal(b.sunk_key, "m|k");
    assert_int_equal(b.sunk_host, 300);
    /* a refused record does not */
    assert_int_equal(plan_footprints_record(fp, "", "k", &d, NULL), GENAI_EBAD_ARG);
    assert_int_equal(b.sunk, 1);
    /* a load does not either: it came from the store */
    assert_int_equal(plan_footprints_load(fp, "m", "loaded", &d, NULL), 0);
    assert_int_equal(b.sunk, 1);

    /* the table answers first; the source only for what it lacks */
    assert_int_equal(plan_footprints_lookup(fp, "m", "k", &out), 1);
    assert_int_equal(plan_footprints_lookup(fp, "m", "loaded", &out), 1);
    assert_int_equal(b.asked, 0);
    assert_int_equal(plan_footprints_lookup(fp, "m", "stored", &out), 0);
    assert_int_equal(b.asked, 1);
    b.have = 1;
    b.answer = demand_of(900); /* the store's tier is not trusted: MEASURED */
    assert_int_equal(plan_footprints_lookup(fp, "m", "stored", &out), 1);
    assert_int_equal(out.host_anon, 900);
    assert_int_equal(out.tier, PLAN_TIER_MEASURED);
    assert_int_equal(b.asked, 2);

    /* detached: neither hook runs */
    plan_footprints_set_backing(fp, NULL, NULL, &b);
    assert_int_equal(plan_footprints_record(fp, "m", "k2", &d, NULL), 0);
    assert_int_equal(plan_footprints_lookup(fp, "m", "stored", &out), 0);
    assert_int_equal(b.sunk, 1);
    assert_int_equal(b.asked, 2);
    plan_footprints_free(fp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_lookup), cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_oom),           cmocka_unit_test(test_tiers),
        cmocka_unit_test(test_backing_hooks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
