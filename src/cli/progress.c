/*
 * progress.c - terminal progress bar and JSON lines events (see progress.h).
 */
#include "progress.h"

#include "cli.h"
#include "core/alloc.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#define TTY_INTERVAL_NS (100 * 1000 * 1000LL)
#define JSON_INTERVAL_NS (250 * 1000 * 1000LL)
#define BAR_WIDTH 24

struct cli_progress {
    FILE *out;
    enum progress_mode mode;
    char phase[32];
    char name[256];
    int64_t last_emit;
    int64_t last_sample_t;
    uint64_t last_sample_done;
    double speed; /* bytes per second, moving average */
    int line_open;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

enum progress_mode progress_mode_for(int fd, int json)
{
    if (json)
        return PROGRESS_JSON;
    return cli_is_tty(fd) ? PROGRESS_TTY : PROGRESS_NONE;
}

cli_progress *progress_new(FILE *out, enum progress_mode mode)
{
    cli_progress *p = mem_calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->out = out;
    p->mode = mode;
    return p;
}

const char *progress_fmt_eta(char *buf, size_t bufsz, double s)
{
    if (s < 0 || s > 360000.0) {
        snprintf(buf, bufsz, "--");
        return buf;
    }
    unsigned long t = (unsigned long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, bufsz, "%luh%02lum", t / 3600, (t % 3600) / 60);
    else if (t >= 60)
        snprintf(buf, bufsz, "%lum%02lus", t / 60, t % 60);
    else
        snprintf(buf, bufsz, "%lus", t);
    return buf;
}

static void sample_speed(cli_progress *p, uint64_t done, int64_t now)
{
    if (p->last_sample_t == 0 || done < p->last_sample_done) {
        p->last_sample_t = now;
        p->last_sample_done = done;
        return;
    }
    int64_t dt = now - p->last_sample_t;
    if (dt < 200 * 1000 * 1000LL)
        return;
    double inst = (double)(done - p->last_sample_done) * 1e9 / (double)dt;
    p->speed = p->speed == 0 ? inst : 0.7 * p->speed + 0.3 * inst;
    p->last_sample_t = now;
    p->last_sample_done = done;
}

static void emit_tty(cli_progress *p, uint64_t done, uint64_t total)
{
    char a[32], b[32], sp[32], eta[32], bar[BAR_WIDTH + 1];
    int fill = total > 0 ? (int)((double)done / (double)total * BAR_WIDTH) : 0;
    if (fill > BAR_WIDTH)
        fill = BAR_WIDTH;
    memset(bar, '#', (size_t)fill);
    memset(bar + fill, '.', (size_t)(BAR_WIDTH - fill));
    bar[BAR_WIDTH] = '\0';
    cli_fmt_bytes(a, sizeof(a), done);
    if (total > 0)
        cli_fmt_bytes(b, sizeof(b), total);
    else
        snprintf(b, sizeof(b), "?");
    cli_fmt_bytes(sp, sizeof(sp), (unsigned long long)p->speed);
    double left = p->speed > 0 && total > done ? (double)(total - done) / p->speed : -1;
    progress_fmt_eta(eta, sizeof(eta), left);
    /* \033[K clears what a longer previous line left behind. */
    fprintf(p->out, "\r%-11s %.40s [%s] %s / %s  %s/s  ETA %s\033[K", p->phase, p->name, bar, a, b,
            sp, eta);
    fflush(p->out);
    p->line_open = 1;
}

static void emit_json(cli_progress *p, uint64_t done, uint64_t total)
{
    double left = p->speed > 0 && total > done ? (double)(total - done) / p->speed : -1;
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "event", "progress", "phase", p->phase,
                          "name", p->name, "done", (json_int_t)done, "total", (json_int_t)total,
                          "bytes_per_s", (json_int_t)p->speed);
    if (o == NULL)
        return;
    if (left >= 0)
        json_object_set_new(o, "eta_s", json_integer((json_int_t)(left + 0.5)));
    json_dumpf(o, p->out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    fputc('\n', p->out);
    fflush(p->out);
}

void progress_update(cli_progress *p, const char *phase, const char *name, uint64_t done,
                     uint64_t total)
{
    if (p == NULL || p->mode == PROGRESS_NONE)
        return;
    int64_t now = mono_ns();
    int changed = strcmp(p->phase, phase) != 0 || strcmp(p->name, name) != 0;
    if (changed) {
        if (p->mode == PROGRESS_TTY && p->line_open && strcmp(p->name, name) != 0) {
            fputc('\n', p->out);
            p->line_open = 0;
        }
        if (strcmp(p->name, name) != 0) {
            p->speed = 0;
            p->last_sample_t = 0;
        }
        snprintf(p->phase, sizeof(p->phase), "%s", phase);
        snprintf(p->name, sizeof(p->name), "%s", name);
    }
    sample_speed(p, done, now);
    int64_t interval = p->mode == PROGRESS_TTY ? TTY_INTERVAL_NS : JSON_INTERVAL_NS;
    if (!changed && now - p->last_emit < interval)
        return;
    p->last_emit = now;
    if (p->mode == PROGRESS_TTY)
        emit_tty(p, done, total);
    else
        emit_json(p, done, total);
}

void progress_note(cli_progress *p, const char *event, const char *text, json_t *extra)
{
    if (p == NULL || p->mode == PROGRESS_NONE) {
        json_decref(extra);
        return;
    }
    if (p->mode == PROGRESS_TTY) {
        if (p->line_open)
            fputc('\n', p->out);
        p->line_open = 0;
        fprintf(p->out, "%s\n", text);
        fflush(p->out);
        json_decref(extra);
        return;
    }
    json_t *o = json_pack("{s:s, s:s}", "event", event, "message", text);
    if (o != NULL && extra != NULL)
        json_object_update(o, extra);
    json_decref(extra);
    if (o == NULL)
        return;
    json_dumpf(o, p->out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    fputc('\n', p->out);
    fflush(p->out);
}

void progress_finish(cli_progress *p)
{
    if (p != NULL && p->mode == PROGRESS_TTY && p->line_open) {
        fputc('\n', p->out);
        fflush(p->out);
        p->line_open = 0;
    }
}

void progress_free(cli_progress *p)
{
    if (p == NULL)
        return;
    progress_finish(p);
    mem_free(p);
}
