/*
 * config.c - the configuration table and its three sources (see config.h).
 *
 * Every key is one row of 'keys': its JSON name, its environment variable,
 * its type and bounds, and where it lives in genai_config. The file loader
 * converts each JSON value to the same text the environment would give and
 * calls config_set, so there is one parser per type. A file value of the
 * wrong JSON type (a string where a number belongs) is refused rather than
 * coerced, because a quoted port in a file is usually a mistake.
 */
#include "core/config.h"

#include "core/alloc.h"
#include "core/paths.h"
#include "core/sbuf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum cfg_type {
    CFG_HOST,
    CFG_SECRET,
    CFG_SECRET_FILE,
    CFG_UINT,
    CFG_SIZE,
    CFG_LIST,
    CFG_AMOUNT,  /* config_amount */
    CFG_AMOUNTS, /* config_amounts: one, or one per GPU, comma-separated */
    CFG_POLICY,  /* enum config_others_policy: "warn" | "offload" */
};

typedef struct cfg_key {
    const char *name;
    const char *env;
    enum cfg_type type;
    size_t offset; /* into genai_config; unused for CFG_SECRET_FILE */
    uint64_t min, max;
} cfg_key;

#define OFF(field) offsetof(genai_config, field)

/* Bounds: a timeout of a day, a body of 1 GiB and a depth of 10000 are
 * already absurd; the caps only stop typos from disabling a limit. */
static const cfg_key keys[] = {
    {"host", "GENAI_HOST", CFG_HOST, OFF(host), 0, 0},
    {"port", "GENAI_PORT", CFG_UINT, OFF(port), 0, 65535},
    {"api_key", "GENAI_API_KEY", CFG_SECRET, OFF(api_key), 0, 0},
    {"api_key_file", "GENAI_API_KEY_FILE", CFG_SECRET_FILE, 0, 0, 0},
    {"cors_origins", "GENAI_CORS_ORIGINS", CFG_LIST, OFF(cors_origins), 0, 0},
    {"allowed_hosts", "GENAI_ALLOWED_HOSTS", CFG_LIST, OFF(allowed_hosts), 0, 0},
    {"max_body_bytes", "GENAI_MAX_BODY_BYTES", CFG_SIZE, OFF(max_body_bytes), 1024,
     1024u * 1024u * 1024u},
    {"max_json_depth", "GENAI_MAX_JSON_DEPTH", CFG_UINT, OFF(max_json_depth), 1, 10000},
    {"idle_timeout_s", "GENAI_IDLE_TIMEOUT_S", CFG_UINT, OFF(idle_timeout_s), 1, 86400},
    {"max_connections", "GENAI_MAX_CONNECTIONS", CFG_UINT, OFF(max_connections), 1, 65536},
    {"queue_limit", "GENAI_QUEUE_LIMIT", CFG_UINT, OFF(queue_limit), 0, 100000},
    {"queue_timeout_s", "GENAI_QUEUE_TIMEOUT_S", CFG_UINT, OFF(queue_timeout_s), 1, 86400},
    {"sse_ping_s", "GENAI_SSE_PING_S", CFG_UINT, OFF(sse_ping_s), 1, 3600},
    {"budget.gpu", "GENAI_BUDGET_GPU", CFG_AMOUNTS, OFF(budget_gpu), 0, 0},
    {"budget.host", "GENAI_BUDGET_HOST", CFG_AMOUNT, OFF(budget_host), 0, 0},
    {"reserve.gpu", "GENAI_RESERVE_GPU", CFG_AMOUNTS, OFF(reserve_gpu), 0, 0},
    {"reserve.host", "GENAI_RESERVE_HOST", CFG_AMOUNT, OFF(reserve_host), 0, 0},
    {"other_programs.policy", "GENAI_OTHER_PROGRAMS_POLICY", CFG_POLICY, OFF(others_policy), 0, 0},
    /* A sample costs 0.13-0.3 ms (docs/system.md): even 10 ms is cheap, and
     * an hour between samples is as good as off. */
    {"watch.interval_ms", "GENAI_WATCH_INTERVAL_MS", CFG_UINT, OFF(watch_interval_ms), 10, 3600000},
    {"watch.fast_interval_ms", "GENAI_WATCH_FAST_INTERVAL_MS", CFG_UINT, OFF(watch_fast_ms), 10,
     60000},
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

/* Largest api key file: a key is a line of text. */
#define KEY_FILE_MAX 4096

void config_init(genai_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->host, sizeof(c->host), "%s", "127.0.0.1");
    c->port = CONFIG_DEFAULT_PORT;
    /* Request bodies are JSON prompts and image parameters: 16 MiB holds a
     * long chat with an inline image; the big payloads (b64 images) are
     * replies, which this limit does not touch. */
    c->max_body_bytes = 16u * 1024u * 1024u;
    /* Real chat requests nest 5-6 levels (messages, content parts, tool
     * schemas); 64 leaves room for deep tool schemas. */
    c->max_json_depth = 64;
    /* Long enough for a client that reads a slow non-streamed reply;
     * suspended connections (waiting on the loop) are exempt in MHD. */
    c->idle_timeout_s = 60;
    c->max_connections = 256;
    c->queue_limit = 64;
    c->queue_timeout_s = 300;
    /* Proxies commonly drop idle connections after 30-60 s. */
    c->sse_ping_s = 15;
    /* The plan adapts to other programs unless told to only warn. */
    c->others_policy = CONFIG_OTHERS_OFFLOAD;
    /* Once a second notices a game loading a level before its own
     * allocation fails on most engines' retry paths; 250 ms during a swap
     * matches the reclamation polls (memory.md §10: Ollama's 250 ms). */
    c->watch_interval_ms = 1000;
    c->watch_fast_ms = 250;
}

static void list_free(config_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        mem_free(l->items[i]);
    mem_free(l->items);
    l->items = NULL;
    l->n = 0;
}

static void secret_free(char *s)
{
    if (s == NULL)
        return;
    /* Keys should not linger in freed heap memory. */
    volatile char *p = s;
    while (*p != '\0')
        *p++ = '\0';
    mem_free(s);
}

void config_free(genai_config *c)
{
    if (c == NULL)
        return;
    secret_free(c->api_key);
    list_free(&c->cors_origins);
    list_free(&c->allowed_hosts);
    config_init(c);
}

static int list_copy(config_list *dst, const config_list *src)
{
    dst->items = NULL;
    dst->n = 0;
    if (src->n == 0)
        return 0;
    dst->items = mem_calloc(src->n, sizeof(char *));
    if (dst->items == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < src->n; i++) {
        dst->items[i] = mem_strdup(src->items[i]);
        if (dst->items[i] == NULL) {
            dst->n = i;
            list_free(dst);
            return -ENOMEM;
        }
    }
    dst->n = src->n;
    return 0;
}

int config_copy(genai_config *dst, const genai_config *src)
{
    *dst = *src;
    dst->api_key = NULL;
    dst->cors_origins = (config_list){NULL, 0};
    dst->allowed_hosts = (config_list){NULL, 0};
    if (src->api_key != NULL && (dst->api_key = mem_strdup(src->api_key)) == NULL)
        goto fail;
    if (list_copy(&dst->cors_origins, &src->cors_origins) < 0)
        goto fail;
    if (list_copy(&dst->allowed_hosts, &src->allowed_hosts) < 0)
        goto fail;
    return 0;
fail:
    config_free(dst);
    return -ENOMEM;
}

static const cfg_key *find_key(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static int parse_u64(const char *text, uint64_t *out)
{
    if (text[0] < '0' || text[0] > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int has_ctl(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* Splits "a, b,c" into a new list; empty items are dropped. */
static int parse_list(const char *text, config_list *out, const cfg_key *k, const char *origin,
                      genai_error *err)
{
    config_list l = {NULL, 0};
    const char *p = text;
    int rc = 0;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *s = p;
        while (n > 0 && (*s == ' ' || *s == '\t')) {
            s++;
            n--;
        }
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n > 0) {
            if (l.n == CONFIG_LIST_MAX) {
                rc = err_set(err, GENAI_EBAD_ARG, "%s: %s has more than %d entries", origin,
                             k->name, CONFIG_LIST_MAX);
                goto fail;
            }
            char **items = mem_reallocarray(l.items, l.n + 1, sizeof(char *));
            if (items == NULL)
                goto nomem;
            l.items = items;
            if ((l.items[l.n] = mem_strndup(s, n)) == NULL)
                goto nomem;
            l.n++;
            if (has_ctl(l.items[l.n - 1])) {
                rc =
                    err_set(err, GENAI_EBAD_ARG, "%s: %s has a control character", origin, k->name);
                goto fail;
            }
        }
        p = comma ? comma + 1 : p + strlen(p);
    }
    *out = l;
    return 0;
nomem:
    rc = err_set(err, -ENOMEM, "%s: reading %s", origin, k->name);
fail:
    list_free(&l);
    return rc;
}

/* Reads an api key file: the first line, trailing whitespace removed. */
static int read_key_file(const char *path, char **out, genai_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = paths_read_file(path, KEY_FILE_MAX, &buf, &len, err);
    if (rc < 0)
        return rc;
    char *nl = strchr(buf, '\n');
    if (nl != NULL)
        *nl = '\0';
    len = strlen(buf);
    while (len > 0 && (buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        buf[--len] = '\0';
    if (len == 0 || has_ctl(buf)) {
        secret_free(buf);
        return err_set(err, GENAI_EBAD_ARG, "api key file %s: %s", path,
                       len == 0 ? "empty" : "the key has a control character");
    }
    *out = buf;
    return 0;
}

/* Unit suffixes of an amount: binary for K/M/G/T, KiB.., decimal for KB... */
static const struct {
    const char *name;
    uint64_t mult;
} units[] = {
    {"b", 1},
    {"k", 1ull << 10},
    {"kib", 1ull << 10},
    {"kb", 1000ull},
    {"m", 1ull << 20},
    {"mib", 1ull << 20},
    {"mb", 1000000ull},
    {"g", 1ull << 30},
    {"gib", 1ull << 30},
    {"gb", 1000000000ull},
    {"t", 1ull << 40},
    {"tib", 1ull << 40},
    {"tb", 1000000000000ull},
};

/* Digits after the point that are kept (more are refused). */
#define AMOUNT_FRAC_DIGITS 9

int config_parse_amount(const char *text, config_amount *out, genai_error *err)
{
    const char *p = text;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0 || (n == 4 && strncasecmp(p, "none", 4) == 0)) {
        *out = (config_amount){CONFIG_AMOUNT_NONE, 0, 0};
        return 0;
    }
    const char *end = p + n;
    uint64_t ip = 0, frac = 0, scale = 1; /* value = ip + frac / scale */
    int digits = 0, point = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
        if (ip > (UINT64_MAX - 9) / 10)
            goto bad;
        ip = ip * 10 + (uint64_t)(*p - '0');
    }
    if (p < end && *p == '.') {
        point = 1;
        for (p++; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
            if (scale == 1000000000ull)
                goto bad; /* more than AMOUNT_FRAC_DIGITS */
            frac = frac * 10 + (uint64_t)(*p - '0');
            scale *= 10;
        }
    }
    if (digits == 0)
        goto bad;
    while (p < end && *p == ' ')
        p++;
    size_t ulen = (size_t)(end - p);
    if (ulen == 1 && *p == '%') {
        /* percent -> ppm: (ip + frac/scale) * 10^4 */
        if (ip > 100)
            goto range;
        uint64_t ppm = ip * 10000u + frac * 10000u / scale;
        if (ppm > CONFIG_PPM)
            goto range;
        *out = (config_amount){CONFIG_AMOUNT_FRACTION, 0, (uint32_t)ppm};
        return 0;
    }
    if (ulen == 0 && point) {
        if (ip > 1)
            goto range;
        uint64_t ppm = ip * CONFIG_PPM + frac * CONFIG_PPM / scale;
        if (ppm > CONFIG_PPM)
            goto range;
        *out = (config_amount){CONFIG_AMOUNT_FRACTION, 0, (uint32_t)ppm};
        return 0;
    }
    uint64_t mult = 1;
    if (ulen > 0) {
        size_t k;
        for (k = 0; k < sizeof(units) / sizeof(units[0]); k++)
            if (strlen(units[k].name) == ulen && strncasecmp(units[k].name, p, ulen) == 0)
                break;
        if (k == sizeof(units) / sizeof(units[0]))
            goto bad;
        mult = units[k].mult;
    }
    if (ip > UINT64_MAX / mult)
        goto range;
    uint64_t bytes = ip * mult;
    /* frac / scale of a unit; frac < scale <= 10^9 and mult <= 2^40 could
     * overflow, so divide first where needed. */
    uint64_t part =
        mult <= UINT64_MAX / 1000000000ull ? frac * mult / scale : frac * (mult / scale);
    if (bytes > UINT64_MAX - part)
        goto range;
    *out = (config_amount){CONFIG_AMOUNT_BYTES, bytes + part, 0};
    return 0;
range:
    return err_set(err, GENAI_EBAD_ARG,
                   "\"%s\" is out of range (a fraction is at most 100%% or 1.0)", text);
bad:
    return err_set(err, GENAI_EBAD_ARG,
                   "\"%s\" is not an amount (bytes like 6GiB, 512MiB, 8GB; a fraction like 75%% "
                   "or 0.75; or none)",
                   text);
}

void config_format_amount(const config_amount *a, char *buf, size_t bufsz)
{
    if (a->kind == CONFIG_AMOUNT_BYTES)
        snprintf(buf, bufsz, "%" PRIu64, a->bytes);
    else if (a->kind == CONFIG_AMOUNT_FRACTION && a->ppm % 10000u == 0)
        snprintf(buf, bufsz, "%u%%", (unsigned)(a->ppm / 10000u));
    else if (a->kind == CONFIG_AMOUNT_FRACTION)
        snprintf(buf, bufsz, "%u.%04u%%", (unsigned)(a->ppm / 10000u), (unsigned)(a->ppm % 10000u));
    else
        snprintf(buf, bufsz, "none");
}

/* "6GiB" or "6GiB, 4GiB" (one per GPU) into *out. */
static int parse_amounts(const char *text, config_amounts *out, const cfg_key *k,
                         const char *origin, genai_error *err)
{
    config_amounts l;
    memset(&l, 0, sizeof(l));
    const char *p = text;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char item[64];
        if (n >= sizeof(item))
            return err_set(err, GENAI_EBAD_ARG, "%s: %s: an entry is too long", origin, k->name);
        memcpy(item, p, n);
        item[n] = '\0';
        if (l.n == CONFIG_MAX_GPUS)
            return err_set(err, GENAI_EBAD_ARG, "%s: %s has more than %d entries", origin, k->name,
                           CONFIG_MAX_GPUS);
        int rc = config_parse_amount(item, &l.v[l.n], err);
        if (rc < 0)
            return err_prefix(err, "%s: %s", origin, k->name);
        l.n++;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    /* A single "none" means no entries at all. */
    if (l.n == 1 && l.v[0].kind == CONFIG_AMOUNT_NONE)
        l.n = 0;
    *out = l;
    return 0;
}

int config_set(genai_config *c, const char *key, const char *value, const char *origin,
               genai_error *err)
{
    const cfg_key *k = find_key(key);
    if (k == NULL)
        return err_set(err, GENAI_EBAD_ARG, "%s: unknown configuration key \"%s\"", origin, key);
    char *field = (char *)c + k->offset;
    uint64_t v = 0;
    switch (k->type) {
    case CFG_HOST:
        if (value[0] == '\0' || strlen(value) >= CONFIG_HOST_MAX || has_ctl(value))
            return err_set(err, GENAI_EBAD_ARG, "%s: bad %s \"%s\"", origin, k->name, value);
        snprintf(field, CONFIG_HOST_MAX, "%s", value);
        return 0;
    case CFG_SECRET: {
        if (has_ctl(value))
            return err_set(err, GENAI_EBAD_ARG, "%s: %s has a control character", origin, k->name);
        char *copy = NULL;
        if (value[0] != '\0' && (copy = mem_strdup(value)) == NULL)
            return err_set(err, -ENOMEM, "%s: %s", origin, k->name);
        secret_free(c->api_key);
        c->api_key = copy; /* "" clears the key */
        return 0;
    }
    case CFG_SECRET_FILE: {
        char *secret = NULL;
        int rc = read_key_file(value, &secret, err);
        if (rc < 0)
            return err_prefix(err, "%s", origin);
        secret_free(c->api_key);
        c->api_key = secret;
        return 0;
    }
    case CFG_UINT:
    case CFG_SIZE:
        if (parse_u64(value, &v) < 0 || v < k->min || v > k->max)
            return err_set(err, GENAI_EBAD_ARG,
                           "%s: %s must be a whole number from %" PRIu64 " to %" PRIu64
                           ", not \"%s\"",
                           origin, k->name, k->min, k->max, value);
        if (k->type == CFG_UINT)
            *(unsigned *)(void *)field = (unsigned)v;
        else
            *(size_t *)(void *)field = (size_t)v;
        return 0;
    case CFG_LIST: {
        config_list l;
        int rc = parse_list(value, &l, k, origin, err);
        if (rc < 0)
            return rc;
        config_list *dst = (config_list *)(void *)field;
        list_free(dst);
        *dst = l;
        return 0;
    }
    case CFG_AMOUNT: {
        config_amount a;
        int rc = config_parse_amount(value, &a, err);
        if (rc < 0)
            return err_prefix(err, "%s: %s", origin, k->name);
        *(config_amount *)(void *)field = a;
        return 0;
    }
    case CFG_AMOUNTS:
        return parse_amounts(value, (config_amounts *)(void *)field, k, origin, err);
    case CFG_POLICY:
        if (strcmp(value, "warn") == 0)
            *(unsigned *)(void *)field = CONFIG_OTHERS_WARN;
        else if (strcmp(value, "offload") == 0)
            *(unsigned *)(void *)field = CONFIG_OTHERS_OFFLOAD;
        else
            return err_set(err, GENAI_EBAD_ARG,
                           "%s: %s must be \"warn\" or \"offload\", not \"%s\"", origin, k->name,
                           value);
        return 0;
    }
    return err_set(err, GENAI_EINTERNAL, "config key %s has no type", k->name);
}

/* The JSON value of one file key as config_set text; *text is owned by the
 * caller (mem_free). */
static int json_to_text(const cfg_key *k, json_t *v, const char *path, char **text,
                        genai_error *err)
{
    sbuf b = SBUF_INIT;
    switch (k->type) {
    case CFG_HOST:
    case CFG_SECRET:
    case CFG_SECRET_FILE:
    case CFG_POLICY:
        if (!json_is_string(v))
            goto wrong;
        sbuf_puts(&b, json_string_value(v));
        break;
    case CFG_AMOUNT:
    case CFG_AMOUNTS: {
        /* A string as in the environment, a byte count, a fraction as a
         * real, or (per GPU) an array of those. */
        size_t n = json_is_array(v) && k->type == CFG_AMOUNTS ? json_array_size(v) : 1;
        for (size_t i = 0; i < n; i++) {
            json_t *item = json_is_array(v) ? json_array_get(v, i) : v;
            if (i > 0)
                sbuf_puts(&b, ",");
            if (json_is_string(item) && strchr(json_string_value(item), ',') == NULL)
                sbuf_puts(&b, json_string_value(item));
            else if (json_is_integer(item) && json_integer_value(item) >= 0)
                sbuf_printf(&b, "%" JSON_INTEGER_FORMAT, json_integer_value(item));
            else if (json_is_real(item) && json_real_value(item) >= 0 && json_real_value(item) <= 1)
                sbuf_printf(&b, "%.6f", json_real_value(item));
            else
                goto wrong;
        }
        break;
    }
    case CFG_UINT:
    case CFG_SIZE:
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            goto wrong;
        sbuf_printf(&b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case CFG_LIST: {
        if (!json_is_array(v))
            goto wrong;
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            const char *s = json_string_value(item);
            if (s == NULL || strchr(s, ',') != NULL) {
                sbuf_free(&b);
                return err_set(err, GENAI_EBAD_ARG,
                               "%s: %s must be an array of strings without commas", path, k->name);
            }
            if (i > 0)
                sbuf_puts(&b, ",");
            sbuf_puts(&b, s);
        }
        break;
    }
    }
    if (sbuf_error(&b) < 0) {
        sbuf_free(&b);
        return err_set(err, -ENOMEM, "%s: %s", path, k->name);
    }
    *text = b.data != NULL ? sbuf_take(&b) : mem_strdup("");
    if (*text == NULL)
        return err_set(err, -ENOMEM, "%s: %s", path, k->name);
    return 0;
wrong:
    sbuf_free(&b);
    return err_set(err, GENAI_EBAD_ARG, "%s: \"%s\" must be %s", path, k->name,
                   k->type == CFG_LIST      ? "an array of strings"
                   : k->type == CFG_UINT    ? "a non-negative integer"
                   : k->type == CFG_SIZE    ? "a non-negative integer (bytes)"
                   : k->type == CFG_AMOUNT  ? "an amount (\"6GiB\", \"75%\", bytes, or 0..1)"
                   : k->type == CFG_AMOUNTS ? "an amount or an array of amounts, one per GPU"
                                            : "a string");
}

int config_load_file(genai_config *c, const char *path, int must_exist, genai_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    genai_error local;
    int rc = paths_read_file(path, CONFIG_FILE_MAX, &buf, &len, &local);
    if (rc == -ENOENT && !must_exist)
        return 0;
    if (rc < 0)
        return err_set(err, rc, "%s", local.detail);

    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    mem_free(buf);
    if (root == NULL)
        return err_set(err, GENAI_EBAD_ARG, "%s:%d:%d: %s", path, jerr.line, jerr.column,
                       jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return err_set(err, GENAI_EBAD_ARG, "%s: the configuration must be a JSON object", path);
    }
    const char *name;
    json_t *v;
    json_object_foreach(root, name, v)
    {
        const cfg_key *k = find_key(name);
        if (k == NULL) {
            rc = err_set(err, GENAI_EBAD_ARG, "%s: unknown key \"%s\" (see docs/configuration.md)",
                         path, name);
            break;
        }
        char *text = NULL;
        rc = json_to_text(k, v, path, &text, err);
        if (rc < 0)
            break;
        rc = config_set(c, name, text, path, err);
        if (k->type == CFG_SECRET)
            secret_free(text);
        else
            mem_free(text);
        if (rc < 0)
            break;
    }
    json_decref(root);
    return rc < 0 ? rc : 0;
}

int config_load_env(genai_config *c, genai_error *err)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *v = getenv(keys[i].env);
        if (v == NULL)
            continue;
        int rc = config_set(c, keys[i].name, v, keys[i].env, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int config_load(genai_config *c, const char *path, genai_error *err)
{
    config_init(c);
    int rc;
    int must_exist = 1;
    char def[PATHS_MAX];
    if (path == NULL)
        path = getenv("GENAI_CONFIG");
    if (path == NULL || path[0] == '\0') {
        genai_paths p;
        rc = paths_resolve(&p, err);
        if (rc < 0)
            return rc;
        if (paths_join(def, sizeof(def), p.config, "genai.json") < 0)
            return err_set(err, -ENAMETOOLONG, "config path under %s", p.config);
        path = def;
        must_exist = 0;
    }
    rc = config_load_file(c, path, must_exist, err);
    if (rc == 0)
        rc = config_load_env(c, err);
    if (rc < 0)
        config_free(c);
    return rc;
}

int config_host_is_loopback(const char *host)
{
    if (strcasecmp(host, "localhost") == 0)
        return 1;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}

int config_validate(const genai_config *c, genai_error *err)
{
    if (!config_host_is_loopback(c->host) && c->api_key == NULL)
        return err_set(err, GENAI_EBAD_ARG,
                       "refusing to listen on %s without an API key: set api_key_file "
                       "(or GENAI_API_KEY) or bind to 127.0.0.1",
                       c->host);
    return 0;
}
