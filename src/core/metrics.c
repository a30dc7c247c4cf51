/*
 * metrics.c - the metrics registry (see metrics.h).
 *
 * Families and series are small arrays searched linearly: a daemon has a few
 * dozen families with a handful of series each, and /metrics is scraped every
 * few seconds, so a hash table would buy nothing measurable. Values are
 * doubles, printed with %.17g so counters stay exact up to 2^53.
 */
#include "core/metrics.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>

enum metric_type { M_COUNTER, M_GAUGE, M_SUMMARY };

typedef struct series {
    char *labels; /* "" when none */
    double value; /* counter/gauge value; summary sum */
    double count; /* summary count */
} series;

typedef struct family {
    char *name;
    char *help;
    enum metric_type type;
    series *s;
    size_t n, cap;
} family;

struct metrics {
    family *f;
    size_t n, cap;
    double dropped;
};

int metrics_new(metrics **out)
{
    metrics *m = mem_calloc(1, sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    *out = m;
    return 0;
}

void metrics_free(metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++) {
        for (size_t k = 0; k < m->f[i].n; k++)
            mem_free(m->f[i].s[k].labels);
        mem_free(m->f[i].s);
        mem_free(m->f[i].name);
        mem_free(m->f[i].help);
    }
    mem_free(m->f);
    mem_free(m);
}

static int valid_name(const char *s)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s != '\0'; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == ':'))
            return 0;
    }
    return 1;
}

static family *find_family(const metrics *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->f[i].name, name) == 0)
            return &m->f[i];
    return NULL;
}

static series *find_series(const family *f, const char *labels)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->s[i].labels, labels) == 0)
            return &f->s[i];
    return NULL;
}

/* Finds or creates the series; NULL with *rc set on failure. */
static series *get(metrics *m, const char *name, const char *help, enum metric_type type,
                   const char *labels, int *rc)
{
    if (labels == NULL)
        labels = "";
    if (!valid_name(name) || strchr(labels, '\n') != NULL) {
        *rc = GENAI_EBAD_ARG;
        return NULL;
    }
    family *f = find_family(m, name);
    if (f == NULL) {
        if (m->n == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 16;
            family *nf = mem_reallocarray(m->f, cap, sizeof(*nf));
            if (nf == NULL)
                goto nomem;
            m->f = nf;
            m->cap = cap;
        }
        f = &m->f[m->n];
        memset(f, 0, sizeof(*f));
        f->name = mem_strdup(name);
        f->help = mem_strdup(help ? help : "");
        if (f->name == NULL || f->help == NULL) {
            mem_free(f->name);
            mem_free(f->help);
            goto nomem;
        }
        f->type = type;
        m->n++;
    } else if (f->type != type) {
        *rc = GENAI_EBAD_ARG;
        return NULL;
    }
    series *s = find_series(f, labels);
    if (s != NULL)
        return s;
    if (f->n == METRICS_MAX_SERIES) {
        m->dropped += 1;
        *rc = GENAI_ETOO_LARGE;
        return NULL;
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        series *ns = mem_reallocarray(f->s, cap, sizeof(*ns));
        if (ns == NULL)
            goto nomem;
        f->s = ns;
        f->cap = cap;
    }
    s = &f->s[f->n];
    s->labels = mem_strdup(labels);
    if (s->labels == NULL)
        goto nomem;
    s->value = 0;
    s->count = 0;
    f->n++;
    return s;
nomem:
    *rc = -ENOMEM;
    return NULL;
}

int metrics_counter_add(metrics *m, const char *name, const char *help, const char *labels,
                        double v)
{
    int rc = 0;
    series *s = get(m, name, help, M_COUNTER, labels, &rc);
    if (s == NULL)
        return rc;
    if (v < 0)
        return GENAI_EBAD_ARG; /* counters only go up */
    s->value += v;
    return 0;
}

int metrics_gauge_set(metrics *m, const char *name, const char *help, const char *labels, double v)
{
    int rc = 0;
    series *s = get(m, name, help, M_GAUGE, labels, &rc);
    if (s == NULL)
        return rc;
    s->value = v;
    return 0;
}

int metrics_gauge_add(metrics *m, const char *name, const char *help, const char *labels, double v)
{
    int rc = 0;
    series *s = get(m, name, help, M_GAUGE, labels, &rc);
    if (s == NULL)
        return rc;
    s->value += v;
    return 0;
}

int metrics_observe(metrics *m, const char *name, const char *help, const char *labels, double v)
{
    int rc = 0;
    series *s = get(m, name, help, M_SUMMARY, labels, &rc);
    if (s == NULL)
        return rc;
    s->value += v;
    s->count += 1;
    return 0;
}

double metrics_value(const metrics *m, const char *name, const char *labels)
{
    const family *f = find_family(m, name);
    if (f == NULL)
        return 0;
    const series *s = find_series(f, labels ? labels : "");
    if (s == NULL)
        return 0;
    return f->type == M_SUMMARY ? s->count : s->value;
}

/* HELP text escapes backslash and newline (exposition format 0.0.4). */
static void put_help(sbuf *out, const char *help)
{
    for (; *help != '\0'; help++) {
        if (*help == '\\')
            sbuf_puts(out, "\\\\");
        else if (*help == '\n')
            sbuf_puts(out, "\\n");
        else
            sbuf_append(out, help, 1);
    }
}

static void put_sample(sbuf *out, const char *name, const char *suffix, const char *labels,
                       double v)
{
    sbuf_printf(out, "%s%s", name, suffix);
    if (labels[0] != '\0')
        sbuf_printf(out, "{%s}", labels);
    sbuf_printf(out, " %.17g\n", v);
}

int metrics_render(const metrics *m, sbuf *out)
{
    static const char *const type_names[] = {"counter", "gauge", "summary"};
    for (size_t i = 0; i < m->n; i++) {
        const family *f = &m->f[i];
        sbuf_printf(out, "# HELP %s ", f->name);
        put_help(out, f->help);
        sbuf_printf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
        for (size_t k = 0; k < f->n; k++) {
            const series *s = &f->s[k];
            if (f->type == M_SUMMARY) {
                put_sample(out, f->name, "_sum", s->labels, s->value);
                put_sample(out, f->name, "_count", s->labels, s->count);
            } else {
                put_sample(out, f->name, "", s->labels, s->value);
            }
        }
    }
    sbuf_puts(out, "# HELP genai_metrics_dropped_total Metric updates dropped because a family "
                   "reached its series limit.\n"
                   "# TYPE genai_metrics_dropped_total counter\n");
    sbuf_printf(out, "genai_metrics_dropped_total %.17g\n", m->dropped);
    return sbuf_error(out);
}
