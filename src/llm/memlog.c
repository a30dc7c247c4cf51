/*
 * memlog.c - the memory-line parser (see memlog.h for the formats).
 *
 * Each line is copied into a bounded local buffer with ANSI escapes removed,
 * then matched with a cursor: find the function marker ("load_tensors:"), read
 * the buffer type word, match the literal tail, read a decimal "N.NN". No
 * sscanf: its %s and %f would accept far more than llama.cpp prints.
 */
#include "llm/memlog.h"

#include <string.h>

void llm_footprint_init(llm_footprint *fp)
{
    memset(fp, 0, sizeof(*fp));
    fp->projected_mib = -1;
    fp->projected_limit_mib = -1;
    fp->prompt_cache_mib = -1;
}

struct cur {
    const char *p, *end;
};

static void skip_spaces(struct cur *c)
{
    while (c->p < c->end && *c->p == ' ')
        c->p++;
}

static int lit(struct cur *c, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0)
        return -1;
    c->p += n;
    return 0;
}

/* A run of characters other than space, at most cap-1 long, into out. */
static int word(struct cur *c, char *out, size_t cap)
{
    const char *s = c->p;
    while (c->p < c->end && *c->p != ' ' && *c->p != ',' && *c->p != ')')
        c->p++;
    size_t n = (size_t)(c->p - s);
    if (n == 0 || n >= cap)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

static int uint_(struct cur *c, uint64_t *out)
{
    uint64_t v = 0;
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return -1;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*c->p - '0');
        c->p++;
    }
    *out = v;
    return 0;
}

/* "N.NN" MiB (any number of decimals, at most 6 used) into bytes, rounded. */
static int mib(struct cur *c, uint64_t *bytes)
{
    uint64_t whole, frac = 0, scale = 1;
    if (uint_(c, &whole) < 0 || whole > (UINT64_MAX >> 21))
        return -1;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return -1;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (scale < 1000000) {
                frac = frac * 10 + (uint64_t)(*c->p - '0');
                scale *= 10;
            }
            c->p++;
        }
    }
    *bytes = (whole << 20) + (frac * (1u << 20) + scale / 2) / scale;
    return 0;
}

static int is_host_name(const char *name)
{
    size_t n = strlen(name);
    return strncmp(name, "CPU", 3) == 0 || (n > 5 && strcmp(name + n - 5, "_Host") == 0);
}

static void record(llm_footprint *fp, const char *name, enum llm_buf_kind kind, uint64_t bytes)
{
    for (uint32_t i = 0; i < fp->n_types; i++) {
        if (strcmp(fp->types[i].name, name) == 0) {
            fp->types[i].bytes[kind] += bytes;
            return;
        }
    }
    if (fp->n_types == LLM_MEM_MAX_BUFTYPES) {
        fp->n_dropped++;
        return;
    }
    llm_mem_buftype *t = &fp->types[fp->n_types++];
    memset(t, 0, sizeof(*t));
    memcpy(t->name, name, strlen(name) + 1);
    t->is_host = is_host_name(name);
    t->bytes[kind] = bytes;
}

/* "<marker> <spaces><TYPE> <tail> = <N.NN> MiB" */
static const struct {
    const char *marker;
    const char *tail;
    enum llm_buf_kind kind;
} buffer_lines[] = {
    {"load_tensors: ", "model buffer size =", LLM_BUF_MODEL},
    {"llama_context: ", "output buffer size =", LLM_BUF_OUTPUT},
    {"llama_kv_cache: ", "KV buffer size =", LLM_BUF_KV},
    {"llama_memory_recurrent: ", "RS buffer size =", LLM_BUF_RS},
    {"sched_reserve: ", "compute buffer size =", LLM_BUF_COMPUTE},
};

static int match_buffer(llm_footprint *fp, const char *s, const char *end)
{
    for (size_t i = 0; i < sizeof(buffer_lines) / sizeof(buffer_lines[0]); i++) {
        struct cur c = {s, end};
        char name[LLM_MEM_NAME_MAX];
        uint64_t bytes;
        if (lit(&c, buffer_lines[i].marker) < 0)
            continue;
        skip_spaces(&c);
        if (word(&c, name, sizeof(name)) < 0 || lit(&c, " ") < 0)
            continue;
        skip_spaces(&c); /* the output line has two spaces before "output" */
        if (lit(&c, buffer_lines[i].tail) < 0)
            continue;
        skip_spaces(&c);
        if (mib(&c, &bytes) < 0 || lit(&c, " MiB") < 0)
            continue;
        record(fp, name, buffer_lines[i].kind, bytes);
        return 1;
    }
    return 0;
}

/* llama_kv_cache: size = %7.2f MiB (%6u cells, %3d layers, %2u/%u seqs), K (%s): ... V (%s): */
static int match_kv_summary(llm_footprint *fp, const char *s, const char *end)
{
    struct cur c = {s, end};
    uint64_t bytes, cells, layers, seqs, streams;
    char tk[8], tv[8];
    if (lit(&c, "llama_kv_cache: size =") < 0)
        return 0;
    skip_spaces(&c);
    if (mib(&c, &bytes) < 0 || lit(&c, " MiB (") < 0)
        return 0;
    skip_spaces(&c);
    if (uint_(&c, &cells) < 0 || lit(&c, " cells,") < 0)
        return 0;
    skip_spaces(&c);
    if (uint_(&c, &layers) < 0 || lit(&c, " layers,") < 0)
        return 0;
    skip_spaces(&c);
    if (uint_(&c, &seqs) < 0 || lit(&c, "/") < 0 || uint_(&c, &streams) < 0 ||
        lit(&c, " seqs), K (") < 0 || word(&c, tk, sizeof(tk)) < 0 || lit(&c, "):") < 0)
        return 0;
    const char *v = NULL;
    for (const char *q = c.p; q + 4 <= end; q++) {
        if (memcmp(q, ", V (", 5) == 0) {
            v = q + 5;
            break;
        }
    }
    if (v == NULL)
        return 0;
    c.p = v;
    if (word(&c, tv, sizeof(tv)) < 0 || cells > UINT32_MAX || layers > UINT32_MAX ||
        seqs > UINT32_MAX || streams > UINT32_MAX)
        return 0;
    fp->kv_cells = (uint32_t)cells;
    fp->kv_layers = (uint32_t)layers;
    fp->kv_seqs = (uint32_t)seqs;
    fp->kv_streams = (uint32_t)streams;
    memcpy(fp->kv_type_k, tk, sizeof(tk));
    memcpy(fp->kv_type_v, tv, sizeof(tv));
    return 1;
}

static int match_projection(llm_footprint *fp, const char *s, const char *end)
{
    struct cur c = {s, end};
    uint64_t used, limit;
    int host;
    if (lit(&c, "common_params_fit_impl: projected to use ") < 0 || uint_(&c, &used) < 0)
        return 0;
    if (lit(&c, " MiB of host memory vs. ") == 0)
        host = 1;
    else if (lit(&c, " MiB of device memory vs. ") == 0)
        host = 0;
    else
        return 0;
    if (uint_(&c, &limit) < 0 || used > INT64_MAX || limit > INT64_MAX)
        return 0;
    fp->projected_mib = (int64_t)used;
    fp->projected_limit_mib = (int64_t)limit;
    fp->projected_is_host = host;
    return 1;
}

static int match_prompt_cache(llm_footprint *fp, const char *s, const char *end)
{
    struct cur c = {s, end};
    uint64_t limit;
    if (lit(&c, "srv") < 0)
        return 0;
    skip_spaces(&c);
    if (lit(&c, "load_model: prompt cache is enabled, size limit: ") < 0 || uint_(&c, &limit) < 0 ||
        lit(&c, " MiB") < 0 || limit > INT64_MAX)
        return 0;
    fp->prompt_cache_mib = (int64_t)limit;
    return 1;
}

/* Copies line into buf without ANSI CSI sequences and trailing CR/LF. */
static size_t clean(const char *line, size_t len, char *buf, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        if (line[i] == '\x1b' && i + 1 < len && line[i + 1] == '[') {
            i += 2;
            while (i < len && !((line[i] >= '@' && line[i] <= '~')))
                i++;
            continue;
        }
        buf[n++] = line[i];
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    return n;
}

/* Skips "M.SS.mmm.uuu " and "L " (level letter) when present. */
static const char *skip_prefix(const char *s, const char *end)
{
    const char *p = s;
    int dots = 0;
    while (p < end && ((*p >= '0' && *p <= '9') || *p == '.')) {
        dots += *p == '.';
        p++;
    }
    if (dots == 3 && p < end && *p == ' ')
        s = p + 1;
    if (end - s >= 2 && strchr("IWED", s[0]) != NULL && s[1] == ' ')
        s += 2;
    return s;
}

int llm_memlog_feed(llm_footprint *fp, const char *line, size_t len)
{
    char buf[LLM_MEMLOG_LINE_MAX];
    if (line == NULL || len >= sizeof(buf))
        return 0;
    size_t n = clean(line, len, buf, sizeof(buf));
    const char *end = buf + n;
    const char *s = skip_prefix(buf, end);
    int hit = match_buffer(fp, s, end) || match_kv_summary(fp, s, end) ||
              match_projection(fp, s, end) || match_prompt_cache(fp, s, end);
    if (hit)
        fp->n_lines++;
    return hit;
}

uint64_t llm_footprint_sum(const llm_footprint *fp, int host, enum llm_buf_kind kind)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < fp->n_types; i++) {
        const llm_mem_buftype *t = &fp->types[i];
        if ((t->is_host != 0) != (host != 0))
            continue;
        if (kind == LLM_BUF__COUNT) {
            for (int k = 0; k < LLM_BUF__COUNT; k++)
                sum += t->bytes[k];
        } else if ((unsigned)kind < LLM_BUF__COUNT) {
            sum += t->bytes[kind];
        }
    }
    return sum;
}

const llm_mem_buftype *llm_footprint_find(const llm_footprint *fp, const char *name)
{
    for (uint32_t i = 0; i < fp->n_types; i++)
        if (strcmp(fp->types[i].name, name) == 0)
            return &fp->types[i];
    return NULL;
}
