/*
 * test_loop.c - the loop thread and its message queue: many threads posting
 * at once (run under ThreadSanitizer in build-proc-tsan), per-producer FIFO
 * order, call-and-wait replies (immediate and deferred), self-posting chains,
 * and a shutdown that runs what was queued and closes leftover handles.
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "core/loop.h"
#include "proc_test_util.h"
#include "testutil/testutil.h"

#include <pthread.h>
#include <string.h>

enum { PRODUCERS = 8, PER_PRODUCER = 2000 };

/* Loop-owned state: only ever touched on the loop thread. */
typedef struct counters {
    long total;
    long last_seq[PRODUCERS];
    int order_broken;
} counters;

typedef struct post_arg {
    counters *st;
    int producer;
    long seq;
} post_arg;

static void on_post(loop *l, void *arg)
{
    post_arg *p = arg;
    assert_true(loop_on_thread(l));
    if (p->seq != p->st->last_seq[p->producer] + 1)
        p->st->order_broken = 1;
    p->st->last_seq[p->producer] = p->seq;
    p->st->total++;
}

typedef struct producer {
    loop *l;
    counters *st;
    int id;
    post_arg *args;
    int failures;
    int wrong_replies;
} producer;

static void double_it(loop *l, void *arg, loop_completion *c)
{
    (void)l;
    loop_complete(c, 2 * *(int *)arg);
}

static void *producer_main(void *arg)
{
    producer *p = arg;
    for (long i = 0; i < PER_PRODUCER; i++) {
        p->args[i] = (post_arg){p->st, p->id, i + 1};
        if (loop_post(p->l, on_post, &p->args[i]) != 0)
            p->failures++;
        if (i % 100 == 0) {
            int v = (int)i + p->id;
            if (loop_call_wait(p->l, double_it, &v) != 2 * v)
                p->wrong_replies++;
        }
    }
    return NULL;
}

static void read_total(loop *l, void *arg, loop_completion *c)
{
    (void)l;
    counters *st = arg;
    loop_complete(c, (int)st->total);
}

static void test_many_threads_post(void **state)
{
    (void)state;
    loop *l;
    assert_int_equal(loop_start(&l, NULL), 0);
    assert_false(loop_on_thread(l));
    counters st;
    memset(&st, 0, sizeof(st));
    producer ps[PRODUCERS];
    pthread_t th[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        ps[i] = (producer){.l = l, .st = &st, .id = i};
        ps[i].args = mem_calloc(PER_PRODUCER, sizeof(post_arg));
        assert_non_null(ps[i].args);
        assert_int_equal(pthread_create(&th[i], NULL, producer_main, &ps[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ps[i].failures, 0);
        assert_int_equal(ps[i].wrong_replies, 0);
    }
    /* FIFO: the call is queued after every post above, so it sees them all. */
    assert_int_equal(loop_call_wait(l, read_total, &st), PRODUCERS * PER_PRODUCER);
    loop_stop(l);
    assert_int_equal(st.order_broken, 0);
    for (int i = 0; i < PRODUCERS; i++) {
        assert_int_equal(st.last_seq[i], PER_PRODUCER);
        mem_free(ps[i].args);
    }
}

/* A reply given later, from a timer callback on the loop thread. */
typedef struct deferred {
    uv_timer_t timer;
    loop_completion *c;
    int value;
} deferred;

static void on_deferred_close(uv_handle_t *h)
{
    (void)h;
}

static void on_deferred_timer(uv_timer_t *t)
{
    deferred *d = t->data;
    loop_complete(d->c, d->value + 1);
    uv_close((uv_handle_t *)t, on_deferred_close);
}

static void start_deferred(loop *l, void *arg, loop_completion *c)
{
    deferred *d = arg;
    d->c = c;
    uv_timer_init(loop_uv(l), &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, on_deferred_timer, 5, 0);
}

static void test_deferred_reply(void **state)
{
    (void)state;
    loop *l;
    assert_int_equal(loop_start(&l, NULL), 0);
    deferred d = {.value = 41};
    assert_int_equal(loop_call_wait(l, start_deferred, &d), 42);
    loop_stop(l); /* the timer handle closed itself; nothing left */
}

/* A message that re-posts itself from the loop thread (idle path), raced
 * against a timer that must still fire (the chain does not starve I/O). */
typedef struct chain {
    int left;
    int timer_fired_midway;
    uv_timer_t timer;
    loop_completion *c;
} chain;

static void on_chain_timer(uv_timer_t *t)
{
    chain *ch = t->data;
    if (ch->left > 0)
        ch->timer_fired_midway = 1;
}

static void chain_step(loop *l, void *arg)
{
    chain *ch = arg;
    if (--ch->left > 0 && !ch->timer_fired_midway) {
        assert_int_equal(loop_post(l, chain_step, ch), 0);
        return;
    }
    ch->left = 0;
    uv_close((uv_handle_t *)&ch->timer, NULL);
    loop_complete(ch->c, ch->timer_fired_midway);
}

static void start_chain(loop *l, void *arg, loop_completion *c)
{
    chain *ch = arg;
    ch->c = c;
    uv_timer_init(loop_uv(l), &ch->timer);
    ch->timer.data = ch;
    uv_timer_start(&ch->timer, on_chain_timer, 1, 0);
    assert_int_equal(loop_post(l, chain_step, ch), 0);
}

static void test_self_post_does_not_starve_timers(void **state)
{
    (void)state;
    loop *l;
    assert_int_equal(loop_start(&l, NULL), 0);
    /* A chain far longer than 1 ms of work: the timer must fire inside it. */
    chain ch = {.left = 50 * 1000 * 1000};
    assert_int_equal(loop_call_wait(l, start_chain, &ch), 1);
    loop_stop(l);
}

static void inline_call(loop *l, void *arg, loop_completion *c)
{
    int v = 20;
    (void)arg;
    /* a call from the loop thread runs inline */
    loop_complete(c, loop_call_wait(l, double_it, &v));
}

static void test_call_from_loop_thread_runs_inline(void **state)
{
    (void)state;
    loop *l;
    assert_int_equal(loop_start(&l, NULL), 0);
    assert_int_equal(loop_call_wait(l, inline_call, NULL), 40);
    loop_stop(l);
}

static void count_msg(loop *l, void *arg)
{
    (void)l;
    (*(int *)arg)++;
}

static void never_fires(uv_timer_t *t)
{
    (void)t;
}

static void leave_timer_open(loop *l, void *arg)
{
    uv_timer_t *t = arg;
    uv_timer_init(loop_uv(l), t);
    uv_timer_start(t, never_fires, 100000, 0);
}

static void test_stop_drains_and_closes(void **state)
{
    (void)state;
    int fds_before = tu_fd_count();
    loop *l;
    assert_int_equal(loop_start(&l, NULL), 0);
    int ran = 0;
    uv_timer_t *leftover = mem_calloc(1, sizeof(*leftover));
    assert_non_null(leftover);
    assert_int_equal(loop_post(l, leave_timer_open, leftover), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(loop_post(l, count_msg, &ran), 0);
    loop_stop(l); /* returns only once the loop is closed: the timer too */
    assert_int_equal(ran, 1000);
    mem_free(leftover);
    assert_int_equal(tu_fd_count(), fds_before);
    loop_stop(NULL);
}

int main(void)
{
    ptu_fd_baseline();
    ptu_warm_up();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_threads_post),
        cmocka_unit_test(test_deferred_reply),
        cmocka_unit_test(test_self_post_does_not_starve_timers),
        cmocka_unit_test(test_call_from_loop_thread_runs_inline),
        cmocka_unit_test(test_stop_drains_and_closes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
