/*
 * test_bus.c - the metrics registry's exposition text and the event bus's
 * ordering and unsubscribe-during-delivery rules.
 */
#include "cmocka_all.h"

#include "core/events.h"
#include "core/metrics.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static void test_metrics_render(void **state)
{
    (void)state;
    metrics *m;
    assert_int_equal(metrics_new(&m), 0);
    assert_int_equal(
        metrics_counter_add(m, "genai_x_total", "Things.\nDone \\ here.", "route=\"/a\"", 2), 0);
    metrics_counter_add(m, "genai_x_total", NULL, "route=\"/a\"", 1);
    metrics_counter_add(m, "genai_x_total", NULL, "route=\"/b\"", 1);
    metrics_gauge_set(m, "genai_g", "A gauge.", NULL, 5);
    metrics_gauge_add(m, "genai_g", NULL, NULL, -2);
    metrics_observe(m, "genai_s_seconds", "A summary.", NULL, 0.5);
    metrics_observe(m, "genai_s_seconds", NULL, NULL, 0.25);
    assert_int_equal(metrics_counter_add(m, "bad name", "x", NULL, 1), GENAI_EBAD_ARG);
    sbuf out = SBUF_INIT;
    assert_int_equal(metrics_render(m, &out), 0);
    assert_string_equal(sbuf_str(&out),
                        "# HELP genai_x_total Things.\\nDone \\\\ here.\n"
                        "# TYPE genai_x_total counter\n"
                        "genai_x_total{route=\"/a\"} 3\n"
                        "genai_x_total{route=\"/b\"} 1\n"
                        "# HELP genai_g A gauge.\n"
                        "# TYPE genai_g gauge\n"
                        "genai_g 3\n"
                        "# HELP genai_s_seconds A summary.\n"
                        "# TYPE genai_s_seconds summary\n"
                        "genai_s_seconds_sum 0.75\n"
                        "genai_s_seconds_count 2\n"
                        "# HELP genai_metrics_dropped_total Metric updates dropped because a "
                        "family reached its series limit.\n"
                        "# TYPE genai_metrics_dropped_total counter\n"
                        "genai_metrics_dropped_total 0\n");
    assert_true(metrics_value(m, "genai_x_total", "route=\"/a\"") == 3);
    assert_true(metrics_value(m, "genai_s_seconds", NULL) == 2);
    sbuf_free(&out);
    /* The series cap. */
    char labels[32];
    for (int i = 0; i < METRICS_MAX_SERIES; i++) {
        snprintf(labels, sizeof(labels), "i=\"%d\"", i);
        assert_int_equal(metrics_counter_add(m, "genai_many_total", "x", labels, 1), 0);
    }
    assert_int_equal(metrics_counter_add(m, "genai_many_total", "x", "i=\"new\"", 1),
                     GENAI_ETOO_LARGE);
    metrics_free(m);
}

typedef struct rec {
    events *bus;
    char log[512];
    events_sub *other;
    int nested;
} rec;

static void sub_a(void *arg, const event *ev)
{
    rec *r = arg;
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof(r->log) - n, "a%llu:%s ", (unsigned long long)ev->id, ev->type);
    if (r->nested == 0 && strcmp(ev->type, "first") == 0) {
        r->nested = 1;
        /* Publish from a callback, and drop the other subscriber mid-delivery. */
        events_publish(r->bus, "nested", NULL);
        events_unsubscribe(r->other);
    }
}

static void sub_b(void *arg, const event *ev)
{
    rec *r = arg;
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof(r->log) - n, "b%llu ", (unsigned long long)ev->id);
}

static void test_events(void **state)
{
    (void)state;
    rec r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(events_new(&r.bus), 0);
    assert_true(events_publish(r.bus, "Bad Type", NULL) == GENAI_EBAD_ARG);
    assert_true(events_publish(r.bus, "x", json_integer(1)) == GENAI_EBAD_ARG);
    assert_int_equal(events_subscribe(r.bus, sub_a, &r, NULL), 0);
    assert_int_equal(events_subscribe(r.bus, sub_b, &r, &r.other), 0);
    assert_int_equal(events_subscribers(r.bus), 2);
    assert_true(events_publish(r.bus, "first", json_pack("{s:i}", "k", 7)) == 1);
    /* b was dropped during "first" (after a ran): it sees neither event,
     * and "nested" comes after "first" for everyone. */
    assert_string_equal(r.log, "a1:first a2:nested ");
    assert_int_equal(events_subscribers(r.bus), 1);
    assert_int_equal(events_last_id(r.bus), 2);
    events_free(r.bus);
}

static void json_of(void *arg, const event *ev)
{
    snprintf(arg, 256, "%s", ev->json);
}

static void test_event_json(void **state)
{
    (void)state;
    events *b;
    char got[256] = "";
    assert_int_equal(events_new(&b), 0);
    events_subscribe(b, json_of, got, NULL);
    events_publish(b, "llm.ready", json_pack("{s:s}", "model", "m"));
    json_t *j = json_loads(got, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "llm.ready");
    assert_true(json_integer_value(json_object_get(j, "time_ms")) > 1600000000000LL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "data"), "model")),
                        "m");
    json_decref(j);
    events_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_render),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_event_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
