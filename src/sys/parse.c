/*
 * parse.c - bounded parsers for /proc, sysfs and cgroup text (see parse.h).
 *
 * All of them walk the input with a (base, len, off) cursor one line at a
 * time and copy out only what fits. A line may end in '\n' or at len; a NUL
 * byte inside the text is treated as ordinary data, never as the end.
 */
#include "sys/parse.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cursor {
    const char *base;
    size_t len;
    size_t off;
} cursor;

typedef struct span {
    const char *p;
    size_t n;
} span;

/* Next line (without its '\n') into *line; 0 at the end of the input. */
static int next_line(cursor *c, span *line)
{
    if (c->off >= c->len)
        return 0;
    const char *start = c->base + c->off;
    size_t rest = c->len - c->off;
    const char *nl = memchr(start, '\n', rest);
    size_t n = nl ? (size_t)(nl - start) : rest;
    line->p = start;
    line->n = n;
    c->off += nl ? n + 1 : n;
    return 1;
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r';
}

static span trim(span s)
{
    while (s.n > 0 && is_space(s.p[0])) {
        s.p++;
        s.n--;
    }
    while (s.n > 0 && is_space(s.p[s.n - 1]))
        s.n--;
    return s;
}

static int span_eq(span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

/* Splits "key : value" at the first ':' into trimmed halves. */
static int split_colon(span line, span *key, span *value)
{
    const char *colon = memchr(line.p, ':', line.n);
    if (colon == NULL)
        return 0;
    key->p = line.p;
    key->n = (size_t)(colon - line.p);
    value->p = colon + 1;
    value->n = line.n - key->n - 1;
    *key = trim(*key);
    *value = trim(*value);
    return 1;
}

/* Decimal digits at the start of s (at most 20) into *out; returns how many
 * characters were used, 0 when none or on overflow. */
static size_t parse_u64(span s, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9') {
        unsigned d = (unsigned)(s.p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
        i++;
    }
    if (i == 0)
        return 0;
    *out = v;
    return i;
}

/* Hexadecimal "0x..." or decimal. */
static size_t parse_u64_any(span s, uint64_t *out)
{
    if (s.n > 2 && s.p[0] == '0' && (s.p[1] == 'x' || s.p[1] == 'X')) {
        uint64_t v = 0;
        size_t i = 2;
        while (i < s.n && i < 18) {
            char ch = s.p[i];
            unsigned d;
            if (ch >= '0' && ch <= '9')
                d = (unsigned)(ch - '0');
            else if (ch >= 'a' && ch <= 'f')
                d = (unsigned)(ch - 'a' + 10);
            else if (ch >= 'A' && ch <= 'F')
                d = (unsigned)(ch - 'A' + 10);
            else
                break;
            v = v * 16 + d;
            i++;
        }
        if (i == 2)
            return 0;
        *out = v;
        return i;
    }
    return parse_u64(s, out);
}

static void copy_span(char *dst, size_t dstsz, span s)
{
    size_t n = s.n < dstsz - 1 ? s.n : dstsz - 1;
    memcpy(dst, s.p, n);
    dst[n] = '\0';
    /* Keep the copy printable: the text is untrusted and ends up in JSON. */
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)dst[i];
        if (ch < 0x20 || ch == 0x7f)
            dst[i] = '?';
    }
}

static int has_word(span list, const char *word)
{
    size_t wn = strlen(word);
    size_t i = 0;
    while (i < list.n) {
        while (i < list.n && (is_space(list.p[i]) || list.p[i] == ','))
            i++;
        size_t start = i;
        while (i < list.n && !is_space(list.p[i]) && list.p[i] != ',')
            i++;
        if (i - start == wn && memcmp(list.p + start, word, wn) == 0)
            return 1;
    }
    return 0;
}

/* ---- /proc/meminfo --------------------------------------------------- */

int probe_parse_meminfo(const char *text, size_t len, probe_host_memory *mem)
{
    static const struct {
        const char *key;
        unsigned bit;
        size_t offset;
    } keys[] = {
        {"MemTotal", PROBE_MEM_TOTAL, offsetof(probe_host_memory, total)},
        {"MemAvailable", PROBE_MEM_AVAILABLE, offsetof(probe_host_memory, available)},
        {"SwapTotal", PROBE_MEM_SWAP_TOTAL, offsetof(probe_host_memory, swap_total)},
        {"SwapFree", PROBE_MEM_SWAP_FREE, offsetof(probe_host_memory, swap_free)},
    };
    cursor c = {text, len, 0};
    span line, key, value;
    unsigned known = 0, bad = 0;
    while (next_line(&c, &line)) {
        if (!split_colon(line, &key, &value))
            continue;
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            if (!span_eq(key, keys[k].key) || (known & keys[k].bit))
                continue;
            uint64_t v = 0, bytes;
            size_t used = parse_u64(value, &v);
            span unit = {value.p + used, value.n - used};
            unit = trim(unit);
            /* Every field we read is in kB (KiB) per proc(5). */
            if (used == 0 || !span_eq(unit, "kB") || __builtin_mul_overflow(v, 1024u, &bytes)) {
                bad |= keys[k].bit;
                break;
            }
            *(uint64_t *)(void *)((char *)mem + keys[k].offset) = bytes;
            known |= keys[k].bit;
        }
    }
    mem->known = known;
    bad &= ~known;
    const unsigned all =
        PROBE_MEM_TOTAL | PROBE_MEM_AVAILABLE | PROBE_MEM_SWAP_TOTAL | PROBE_MEM_SWAP_FREE;
    if (known == all) {
        mem->status.ok = 1;
        mem->status.reason[0] = '\0';
    } else {
        char reason[PROBE_REASON_MAX] = "meminfo:";
        size_t off = strlen(reason);
        for (int pass = 0; pass < 2; pass++) {
            unsigned set = pass == 0 ? bad : ~(known | bad);
            const char *sep = pass == 0 ? " malformed " : " missing ";
            for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
                if (!(set & keys[k].bit))
                    continue;
                int n = snprintf(reason + off, sizeof(reason) - off, "%s%s", sep, keys[k].key);
                if (n > 0 && (size_t)n < sizeof(reason) - off)
                    off += (size_t)n;
                sep = ", ";
            }
        }
        mem->status.ok = 0;
        memcpy(mem->status.reason, reason, sizeof(reason));
    }
    return (known & PROBE_MEM_TOTAL) && (known & PROBE_MEM_AVAILABLE) ? 0 : GENAI_ECORRUPT;
}

/* ---- /proc/cpuinfo --------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void apply_flags(probe_cpu *cpu, span list)
{
    cpu->avx |= has_word(list, "avx");
    cpu->avx2 |= has_word(list, "avx2");
    cpu->avx512f |= has_word(list, "avx512f");
    cpu->fma |= has_word(list, "fma");
    cpu->f16c |= has_word(list, "f16c");
    /* 32-bit ARM says "neon"; on AArch64 Advanced SIMD is "asimd". */
    cpu->neon |= has_word(list, "neon") || has_word(list, "asimd");
}

int probe_parse_cpuinfo(const char *text, size_t len, probe_cpu *cpu)
{
    cursor c = {text, len, 0};
    span line, key, value;
    uint64_t *pairs = NULL; /* (physical id << 32) | core id */
    size_t n_pairs = 0, cap_pairs = 0;
    uint32_t processors = 0;
    uint64_t phys = 0, core = 0;
    int have_phys = 0, have_core = 0, have_model = 0;
    char fallback[PROBE_NAME_MAX] = "";
    uint64_t implementer = 0, part = 0;
    int have_impl = 0, have_part = 0;
    int rc = 0;
    int more = 1;

    cpu->avx = cpu->avx2 = cpu->avx512f = cpu->fma = cpu->f16c = cpu->neon = 0;
    while (more) {
        more = next_line(&c, &line);
        span t = more ? trim(line) : (span){NULL, 0};
        if (t.n == 0) {
            /* End of one processor's block. */
            if (have_phys && have_core) {
                if (n_pairs == cap_pairs) {
                    size_t nc = cap_pairs ? cap_pairs * 2 : 64;
                    if (nc > PROBE_MAX_CPUS) {
                        have_phys = have_core = 0;
                        continue;
                    }
                    uint64_t *np = mem_reallocarray(pairs, nc, sizeof(*pairs));
                    if (np == NULL) {
                        rc = -ENOMEM;
                        goto out;
                    }
                    pairs = np;
                    cap_pairs = nc;
                }
                pairs[n_pairs++] = (phys << 32) | (core & 0xffffffffu);
            }
            have_phys = have_core = 0;
            continue;
        }
        if (!split_colon(t, &key, &value))
            continue;
        uint64_t v;
        if (span_eq(key, "processor")) {
            if (processors < PROBE_MAX_CPUS)
                processors++;
        } else if (span_eq(key, "model name") && !have_model && value.n > 0) {
            copy_span(cpu->model, sizeof(cpu->model), value);
            have_model = 1;
        } else if ((span_eq(key, "Hardware") || span_eq(key, "Model")) && fallback[0] == '\0') {
            copy_span(fallback, sizeof(fallback), value);
        } else if (span_eq(key, "CPU implementer") && parse_u64_any(value, &v)) {
            implementer = v;
            have_impl = 1;
        } else if (span_eq(key, "CPU part") && parse_u64_any(value, &v)) {
            part = v;
            have_part = 1;
        } else if (span_eq(key, "flags") || span_eq(key, "Features")) {
            apply_flags(cpu, value);
        } else if (span_eq(key, "physical id") && parse_u64(value, &v) == value.n &&
                   v <= UINT32_MAX) {
            phys = v;
            have_phys = 1;
        } else if (span_eq(key, "core id") && parse_u64(value, &v) == value.n && v <= UINT32_MAX) {
            core = v;
            have_core = 1;
        }
    }
    if (!have_model) {
        if (fallback[0] != '\0')
            snprintf(cpu->model, sizeof(cpu->model), "%s", fallback);
        else if (have_impl && have_part)
            snprintf(cpu->model, sizeof(cpu->model), "ARM implementer 0x%02llx part 0x%03llx",
                     (unsigned long long)implementer, (unsigned long long)part);
        else
            cpu->model[0] = '\0';
    }
    cpu->logical = processors;
    cpu->physical = 0;
    if (n_pairs > 0) {
        qsort(pairs, n_pairs, sizeof(*pairs), cmp_u64);
        uint32_t distinct = 1;
        for (size_t i = 1; i < n_pairs; i++)
            distinct += pairs[i] != pairs[i - 1];
        cpu->physical = distinct;
    }
    if (processors == 0)
        rc = GENAI_ECORRUPT;
out:
    mem_free(pairs);
    return rc;
}

/* ---- CPU lists ------------------------------------------------------- */

int probe_parse_cpu_list(const char *text, size_t len, uint32_t *count)
{
    span s = trim((span){text, len});
    /* A trailing newline is part of the sysfs format. */
    while (s.n > 0 && s.p[s.n - 1] == '\n')
        s.n--;
    if (s.n == 0)
        return GENAI_ECORRUPT;
    uint64_t total = 0;
    size_t i = 0;
    while (i < s.n) {
        uint64_t a, b;
        size_t used = parse_u64((span){s.p + i, s.n - i}, &a);
        if (used == 0 || a >= PROBE_MAX_CPUS)
            return GENAI_ECORRUPT;
        i += used;
        b = a;
        if (i < s.n && s.p[i] == '-') {
            i++;
            used = parse_u64((span){s.p + i, s.n - i}, &b);
            if (used == 0 || b < a || b >= PROBE_MAX_CPUS)
                return GENAI_ECORRUPT;
            i += used;
        }
        total += b - a + 1;
        if (total > PROBE_MAX_CPUS)
            return GENAI_ECORRUPT;
        if (i < s.n) {
            if (s.p[i] != ',')
                return GENAI_ECORRUPT;
            i++;
            if (i == s.n)
                return GENAI_ECORRUPT;
        }
    }
    *count = (uint32_t)total;
    return 0;
}

/* ---- /proc/self/cgroup ----------------------------------------------- */

static int set_path(char *dst, span path)
{
    if (path.n == 0 || path.n >= PROBE_CGPATH_MAX || path.p[0] != '/' ||
        memchr(path.p, '\0', path.n) != NULL)
        return GENAI_ECORRUPT;
    memcpy(dst, path.p, path.n);
    dst[path.n] = '\0';
    return 0;
}

int probe_parse_proc_cgroup(const char *text, size_t len, probe_cgroup_paths *out)
{
    probe_cgroup_paths r;
    memset(&r, 0, sizeof(r));
    cursor c = {text, len, 0};
    span line;
    while (next_line(&c, &line)) {
        if (line.n == 0)
            continue;
        /* hierarchy-ID:controller-list:cgroup-path; the path may hold ':'. */
        const char *c1 = memchr(line.p, ':', line.n);
        if (c1 == NULL)
            return GENAI_ECORRUPT;
        size_t rest = line.n - (size_t)(c1 + 1 - line.p);
        const char *c2 = memchr(c1 + 1, ':', rest);
        if (c2 == NULL)
            return GENAI_ECORRUPT;
        span id = {line.p, (size_t)(c1 - line.p)};
        span ctl = {c1 + 1, (size_t)(c2 - c1 - 1)};
        span path = {c2 + 1, line.n - (size_t)(c2 + 1 - line.p)};
        uint64_t idv = 0;
        if (parse_u64(id, &idv) != id.n)
            return GENAI_ECORRUPT;
        if (idv == 0 && ctl.n == 0) {
            if (set_path(r.v2, path) != 0)
                return GENAI_ECORRUPT;
            r.has_v2 = 1;
            continue;
        }
        if (has_word(ctl, "memory") && !r.has_memory) {
            if (set_path(r.memory, path) != 0)
                return GENAI_ECORRUPT;
            r.has_memory = 1;
        }
        if (has_word(ctl, "cpu") && !r.has_cpu) {
            if (set_path(r.cpu, path) != 0)
                return GENAI_ECORRUPT;
            r.has_cpu = 1;
        }
    }
    *out = r;
    return 0;
}

/* ---- /proc/self/mountinfo -------------------------------------------- */

/* Copies a mountinfo path field, decoding the \ooo octal escapes. */
static int copy_escaped(char *dst, size_t dstsz, span s)
{
    size_t o = 0;
    for (size_t i = 0; i < s.n; i++) {
        char ch = s.p[i];
        if (ch == '\\' && i + 3 < s.n && s.p[i + 1] >= '0' && s.p[i + 1] <= '3' &&
            s.p[i + 2] >= '0' && s.p[i + 2] <= '7' && s.p[i + 3] >= '0' && s.p[i + 3] <= '7') {
            ch = (char)((s.p[i + 1] - '0') * 64 + (s.p[i + 2] - '0') * 8 + (s.p[i + 3] - '0'));
            i += 3;
        }
        if (ch == '\0' || o + 1 >= dstsz)
            return GENAI_ECORRUPT;
        dst[o++] = ch;
    }
    dst[o] = '\0';
    return 0;
}

#define MOUNTINFO_MAX_FIELDS 64

int probe_parse_mountinfo(const char *text, size_t len, const char *fstype, const char *want_option,
                          probe_mount *out)
{
    cursor c = {text, len, 0};
    span line;
    while (next_line(&c, &line)) {
        span f[MOUNTINFO_MAX_FIELDS];
        size_t nf = 0, i = 0;
        while (i < line.n && nf < MOUNTINFO_MAX_FIELDS) {
            while (i < line.n && line.p[i] == ' ')
                i++;
            if (i == line.n)
                break;
            size_t start = i;
            while (i < line.n && line.p[i] != ' ')
                i++;
            f[nf++] = (span){line.p + start, i - start};
        }
        if (nf == 0)
            continue;
        /* id parent maj:min root point options [optional...] - fstype source superopts */
        size_t sep = 6;
        while (sep < nf && !span_eq(f[sep], "-"))
            sep++;
        if (nf < 7 || sep + 2 >= nf)
            return GENAI_ECORRUPT;
        span type = f[sep + 1];
        if (!span_eq(type, fstype))
            continue;
        if (want_option != NULL && (sep + 3 >= nf || !has_word(f[sep + 3], want_option)))
            continue;
        probe_mount m;
        if (copy_escaped(m.root, sizeof(m.root), f[3]) != 0 ||
            copy_escaped(m.point, sizeof(m.point), f[4]) != 0)
            return GENAI_ECORRUPT;
        *out = m;
        return 1;
    }
    return 0;
}

int probe_cgroup_dir(const probe_mount *m, const char *cgpath, char *out, size_t outsz)
{
    const char *rel = cgpath;
    size_t rn = strlen(m->root);
    if (!(rn == 1 && m->root[0] == '/')) {
        /* The mount shows only the subtree at m->root (a container's view). */
        if (strncmp(cgpath, m->root, rn) != 0 || (cgpath[rn] != '\0' && cgpath[rn] != '/'))
            return GENAI_ENOT_FOUND;
        rel = cgpath + rn;
    }
    if (rel[0] == '/' && rel[1] == '\0')
        rel = "";
    int n = snprintf(out, outsz, "%s%s", m->point, rel);
    if (n < 0 || (size_t)n >= outsz)
        return -ENAMETOOLONG;
    return 0;
}

/* ---- single values --------------------------------------------------- */

/* The kernel's "no limit" for v1 is PAGE_COUNTER_MAX pages rounded, just
 * under 2^63; treat anything from 2^62 up as unlimited. */
#define CGROUP_V1_UNLIMITED (UINT64_C(1) << 62)

int probe_parse_cgroup_value(const char *text, size_t len, uint64_t *value)
{
    span s = trim((span){text, len});
    while (s.n > 0 && (s.p[s.n - 1] == '\n' || is_space(s.p[s.n - 1])))
        s.n--;
    if (span_eq(s, "max")) {
        *value = UINT64_MAX;
        return 0;
    }
    uint64_t v = 0;
    if (s.n == 0 || parse_u64(s, &v) != s.n)
        return GENAI_ECORRUPT;
    *value = v >= CGROUP_V1_UNLIMITED ? UINT64_MAX : v;
    return 0;
}

int probe_parse_cpu_max(const char *text, size_t len, uint64_t *quota, uint64_t *period)
{
    span s = trim((span){text, len});
    while (s.n > 0 && (s.p[s.n - 1] == '\n' || is_space(s.p[s.n - 1])))
        s.n--;
    const char *sp = memchr(s.p, ' ', s.n);
    if (s.n == 0 || sp == NULL)
        return GENAI_ECORRUPT;
    span a = {s.p, (size_t)(sp - s.p)};
    span b = trim((span){sp + 1, s.n - a.n - 1});
    uint64_t q = 0, p = 0;
    if (span_eq(a, "max"))
        q = UINT64_MAX;
    else if (a.n == 0 || parse_u64(a, &q) != a.n)
        return GENAI_ECORRUPT;
    if (b.n == 0 || parse_u64(b, &p) != b.n || p == 0)
        return GENAI_ECORRUPT;
    *quota = q;
    *period = p;
    return 0;
}
