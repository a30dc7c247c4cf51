/*
 * hf.c - Hugging Face reference parsing and resolution (see hf.h).
 *
 * The Hub's answers are untrusted: every string is length-checked, paths are
 * validated before they name local files, digests must be 64 hex digits, and
 * the listing is capped in size (TREE_MAX_BYTES per page, TREE_MAX_PAGES).
 */
#include "store/hf.h"

#include "core/alloc.h"
#include "core/log.h"
#include "core/sbuf.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MOD "store"
#define INFO_MAX_BYTES (4u << 20)
#define TREE_MAX_BYTES (16u << 20)
#define TREE_MAX_PAGES 64
#define MAX_SHARDS 1024
#define DEFAULT_QUANT "Q4_K_M"

static int repo_char(int c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.';
}

/* "owner/repo": two non-empty parts of [A-Za-z0-9._-], not "." or "..". */
static int repo_valid(const char *s, size_t n)
{
    const char *slash = memchr(s, '/', n);
    if (slash == NULL || slash == s || slash == s + n - 1)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s + i != slash && !repo_char((unsigned char)s[i]))
            return 0;
    }
    if (memchr(slash + 1, '/', (size_t)(s + n - slash - 1)) != NULL)
        return 0;
    size_t a = (size_t)(slash - s), b = (size_t)(s + n - slash - 1);
    if ((a <= 2 && strncmp(s, "..", a) == 0) || (b <= 2 && strncmp(slash + 1, "..", b) == 0))
        return 0;
    return 1;
}

int store_hf_path_safe(const char *path)
{
    if (path == NULL || path[0] == '\0' || path[0] == '/' || strlen(path) >= 1024)
        return 0;
    const char *seg = path;
    for (const char *p = path;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - seg);
            if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return 0;
            if (*p == '\0')
                return 1;
            seg = p + 1;
        } else if ((unsigned char)*p < 0x20 || *p == '\\' || *p == 0x7f) {
            return 0;
        }
    }
}

int store_hf_is_ref(const char *text)
{
    if (strncmp(text, "hf://", 5) == 0)
        return 1;
    if (strstr(text, "://") != NULL || text[0] == '/' || text[0] == '.')
        return 0;
    size_t n = strcspn(text, ":@");
    return repo_valid(text, n);
}

int store_hf_parse(const char *text, store_hf_ref *out, genai_error *err)
{
    store_hf_ref r;
    memset(&r, 0, sizeof(r));
    snprintf(r.revision, sizeof(r.revision), "main");
    char buf[2048];
    if ((size_t)snprintf(buf, sizeof(buf), "%s", text) >= sizeof(buf))
        return err_set(err, GENAI_EBAD_ARG, "reference too long");
    char *at = strrchr(buf, '@');
    if (at != NULL) {
        *at = '\0';
        const char *rev = at + 1;
        if (rev[0] == '\0' || strlen(rev) >= sizeof(r.revision) || strstr(rev, "..") != NULL)
            return err_set(err, GENAI_EBAD_ARG, "bad revision in '%s'", text);
        for (const char *p = rev; *p; p++) {
            if (!repo_char((unsigned char)*p) && *p != '/')
                return err_set(err, GENAI_EBAD_ARG, "bad revision in '%s'", text);
        }
        snprintf(r.revision, sizeof(r.revision), "%s", rev);
    }
    if (strncmp(buf, "hf://", 5) == 0) {
        const char *s = buf + 5;
        const char *s1 = strchr(s, '/');
        const char *s2 = s1 != NULL ? strchr(s1 + 1, '/') : NULL;
        if (s2 == NULL || !repo_valid(s, (size_t)(s2 - s)) || !store_hf_path_safe(s2 + 1))
            return err_set(err, GENAI_EBAD_ARG,
                           "'%s' is not hf://owner/repo/path/to/file[@revision]", text);
        snprintf(r.repo, sizeof(r.repo), "%.*s", (int)(s2 - s), s);
        snprintf(r.path, sizeof(r.path), "%s", s2 + 1);
    } else {
        char *colon = strchr(buf, ':');
        const char *quant = DEFAULT_QUANT;
        if (colon != NULL) {
            *colon = '\0';
            quant = colon + 1;
        }
        size_t ql = strlen(quant);
        if (ql == 0 || ql >= sizeof(r.quant))
            return err_set(err, GENAI_EBAD_ARG, "bad quantization in '%s'", text);
        for (size_t i = 0; i < ql; i++) {
            if (!repo_char((unsigned char)quant[i]))
                return err_set(err, GENAI_EBAD_ARG, "bad quantization in '%s'", text);
        }
        size_t bl = strlen(buf);
        if (!repo_valid(buf, bl) || bl >= sizeof(r.repo))
            return err_set(err, GENAI_EBAD_ARG, "'%s' is not owner/repo[:QUANT][@revision]", text);
        memcpy(r.repo, buf, bl + 1);
        snprintf(r.quant, sizeof(r.quant), "%s", quant);
    }
    *out = r;
    return 0;
}

int store_hf_shard(const char *name, char *prefix, size_t prefixsz, unsigned *index,
                   unsigned *count)
{
    /* llama.cpp's split naming: <prefix>-00001-of-00003.gguf */
    static const char tail[] = "-00000-of-00000.gguf";
    size_t n = strlen(name), t = sizeof(tail) - 1;
    if (n <= t)
        return 0;
    const char *s = name + n - t;
    for (size_t i = 0; i < t; i++) {
        if (tail[i] == '0' ? !isdigit((unsigned char)s[i]) : tail[i] != s[i])
            return 0;
    }
    unsigned a = 0, b = 0;
    for (int i = 1; i <= 5; i++)
        a = a * 10 + (unsigned)(s[i] - '0');
    for (int i = 10; i <= 14; i++)
        b = b * 10 + (unsigned)(s[i] - '0');
    if (a == 0 || b == 0 || a > b || n - t >= prefixsz)
        return 0;
    memcpy(prefix, name, n - t);
    prefix[n - t] = '\0';
    *index = a;
    *count = b;
    return 1;
}

void store_hf_plan_free(store_hf_plan *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n_files; i++) {
        mem_free(p->files[i].path);
        mem_free(p->files[i].url);
    }
    mem_free(p->files);
    memset(p, 0, sizeof(*p));
}

struct entry {
    const char *path;
    uint64_t size;
    const char *sha256; /* NULL for non-LFS files */
};

struct listing {
    json_t *pages[TREE_MAX_PAGES];
    size_t n_pages;
    struct entry *v;
    size_t n;
};

static void listing_free(struct listing *l)
{
    for (size_t i = 0; i < l->n_pages; i++)
        json_decref(l->pages[i]);
    mem_free(l->v);
}

static int fetch_json(const store_net *net, const char *url, size_t max, json_t **out, char **next,
                      genai_error *err)
{
    char *body = NULL;
    size_t len = 0;
    int rc = store_http_get(net, url, max, &body, &len, next, err);
    if (rc < 0)
        return rc;
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je);
    mem_free(body);
    if (j == NULL) {
        if (next != NULL) {
            mem_free(*next);
            *next = NULL;
        }
        return err_set(err, GENAI_ECORRUPT, "%s: not JSON (%s at line %d)", url, je.text, je.line);
    }
    *out = j;
    return 0;
}

static int resolve_commit(const store_net *net, const store_hf_ref *ref, char commit[41],
                          genai_error *err)
{
    char url[2048];
    json_t *j = NULL;
    if ((size_t)snprintf(url, sizeof(url), "%s/api/models/%s/revision/%s", net->hf_endpoint,
                         ref->repo, ref->revision) >= sizeof(url))
        return err_set(err, GENAI_EBAD_ARG, "URL too long");
    int rc = fetch_json(net, url, INFO_MAX_BYTES, &j, NULL, err);
    if (rc == GENAI_ENOT_FOUND)
        return err_set(err, rc, "no repository %s at revision %s on %s", ref->repo, ref->revision,
                       net->hf_endpoint);
    if (rc < 0)
        return rc;
    const char *sha = json_string_value(json_object_get(j, "sha"));
    int ok = sha != NULL && strlen(sha) == 40;
    for (int i = 0; ok && i < 40; i++)
        ok = isxdigit((unsigned char)sha[i]) != 0;
    if (!ok) {
        json_decref(j);
        return err_set(err, GENAI_ECORRUPT, "%s: no commit \"sha\" in the answer", url);
    }
    memcpy(commit, sha, 41);
    json_decref(j);
    return 0;
}

static int list_tree(const store_net *net, const store_hf_ref *ref, const char *commit,
                     struct listing *l, genai_error *err)
{
    char first[2048];
    if ((size_t)snprintf(first, sizeof(first), "%s/api/models/%s/tree/%s?recursive=true",
                         net->hf_endpoint, ref->repo, commit) >= sizeof(first))
        return err_set(err, GENAI_EBAD_ARG, "URL too long");
    char *url = mem_strdup(first);
    if (url == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    int rc = 0;
    while (url != NULL) {
        if (l->n_pages == TREE_MAX_PAGES) {
            rc = err_set(err, GENAI_ETOO_LARGE, "%s: more than %d pages of files", ref->repo,
                         TREE_MAX_PAGES);
            break;
        }
        char *next = NULL;
        json_t *page = NULL;
        if ((rc = fetch_json(net, url, TREE_MAX_BYTES, &page, &next, err)) < 0)
            break;
        mem_free(url);
        url = next;
        l->pages[l->n_pages++] = page;
        if (!json_is_array(page)) {
            rc = err_set(err, GENAI_ECORRUPT, "%s: file listing is not an array", ref->repo);
            break;
        }
        size_t i;
        json_t *it;
        json_array_foreach(page, i, it)
        {
            const char *type = json_string_value(json_object_get(it, "type"));
            const char *path = json_string_value(json_object_get(it, "path"));
            if (type == NULL || strcmp(type, "file") != 0 || path == NULL)
                continue;
            json_t *lfs = json_object_get(it, "lfs");
            json_t *size = json_object_get(lfs != NULL ? lfs : it, "size");
            const char *oid = lfs != NULL ? json_string_value(json_object_get(lfs, "oid")) : NULL;
            struct entry *nv = mem_reallocarray(l->v, l->n + 1, sizeof(*nv));
            if (nv == NULL) {
                rc = err_set(err, -ENOMEM, "out of memory");
                break;
            }
            l->v = nv;
            l->v[l->n].path = path;
            l->v[l->n].size = json_is_integer(size) && json_integer_value(size) >= 0
                                  ? (uint64_t)json_integer_value(size)
                                  : 0;
            l->v[l->n].sha256 = store_sha256_is_hex(oid) ? oid : NULL;
            l->n++;
        }
        if (rc < 0)
            break;
    }
    mem_free(url);
    return rc;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s != NULL ? s + 1 : path;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

/* True when name contains quant as a whole token, case-insensitively: not
 * preceded by a letter or digit and followed by '.', '-' or the end, so that
 * "Q4_K" does not pick "model-Q4_K_M.gguf". */
static int has_quant(const char *name, const char *quant)
{
    size_t ql = strlen(quant);
    for (const char *p = name; *p; p++) {
        if (strncasecmp(p, quant, ql) != 0)
            continue;
        int before = p == name || !isalnum((unsigned char)p[-1]);
        char after = p[ql];
        int after_ok = after == '.' || after == '-' || after == '\0';
        if (before && after_ok)
            return 1;
    }
    return 0;
}

static const struct entry *find_path(const struct listing *l, const char *path)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i].path, path) == 0)
            return &l->v[i];
    }
    return NULL;
}

static int add_file(store_hf_plan *p, const store_net *net, const store_hf_ref *ref,
                    const struct entry *e, genai_error *err)
{
    if (!store_hf_path_safe(e->path))
        return err_set(err, GENAI_ECORRUPT, "%s: unsafe file path '%s' in the listing", ref->repo,
                       e->path);
    store_hf_file *nf = mem_reallocarray(p->files, p->n_files + 1, sizeof(*nf));
    if (nf == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    p->files = nf;
    store_hf_file *f = &p->files[p->n_files];
    memset(f, 0, sizeof(*f));
    sbuf u = SBUF_INIT;
    sbuf_printf(&u, "%s/%s/resolve/%s/%s", net->hf_endpoint, ref->repo, p->commit, e->path);
    f->path = mem_strdup(e->path);
    f->url = sbuf_take(&u);
    if (f->path == NULL || f->url == NULL) {
        mem_free(f->path);
        mem_free(f->url);
        return err_set(err, -ENOMEM, "out of memory");
    }
    f->size = e->size;
    if (e->sha256 != NULL)
        store_sha256_normalize(e->sha256, f->sha256);
    p->n_files++;
    return 0;
}

/* Adds path, or all shards of the split it belongs to, in shard order. */
static int add_with_shards(store_hf_plan *p, const store_net *net, const store_hf_ref *ref,
                           const struct listing *l, const char *path, genai_error *err)
{
    char prefix[1024];
    unsigned idx, count;
    if (!store_hf_shard(path, prefix, sizeof(prefix), &idx, &count)) {
        const struct entry *e = find_path(l, path);
        if (e == NULL)
            return err_set(err, GENAI_ENOT_FOUND, "%s has no file %s at %s", ref->repo, path,
                           ref->revision);
        return add_file(p, net, ref, e, err);
    }
    if (count > MAX_SHARDS)
        return err_set(err, GENAI_ETOO_LARGE, "%s: %u shards", path, count);
    for (unsigned i = 1; i <= count; i++) {
        char name[1100];
        snprintf(name, sizeof(name), "%s-%05u-of-%05u.gguf", prefix, i, count);
        const struct entry *e = find_path(l, name);
        if (e == NULL)
            return err_set(err, GENAI_ENOT_FOUND, "%s: shard %s is missing from the repository",
                           ref->repo, name);
        int rc = add_file(p, net, ref, e, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int pick_quant(const struct listing *l, const store_hf_ref *ref, const char **out,
                      genai_error *err)
{
    const char *best = NULL;
    for (size_t i = 0; i < l->n; i++) {
        const char *path = l->v[i].path;
        const char *name = base_name(path);
        char prefix[1024];
        unsigned idx, count;
        if (!ends_with(name, ".gguf") || strncasecmp(name, "mmproj", 6) == 0 ||
            !has_quant(name, ref->quant))
            continue;
        if (store_hf_shard(name, prefix, sizeof(prefix), &idx, &count) && idx != 1)
            continue;
        /* Prefer files at the top of the repo, then the shortest name. */
        if (best == NULL || strlen(path) < strlen(best) ||
            (strlen(path) == strlen(best) && strcmp(path, best) < 0))
            best = path;
    }
    if (best != NULL) {
        *out = best;
        return 0;
    }
    sbuf have = SBUF_INIT;
    for (size_t i = 0; i < l->n; i++) {
        if (ends_with(l->v[i].path, ".gguf"))
            sbuf_printf(&have, "%s%s", have.len ? ", " : "", base_name(l->v[i].path));
    }
    int rc = err_set(err, GENAI_ENOT_FOUND, "%s has no %s GGUF file (GGUF files: %s)", ref->repo,
                     ref->quant, have.len ? sbuf_str(&have) : "none");
    sbuf_free(&have);
    return rc;
}

int store_hf_resolve(const store_net *net, const store_hf_ref *ref, store_hf_plan *out,
                     genai_error *err)
{
    store_hf_plan p;
    struct listing l;
    memset(&p, 0, sizeof(p));
    memset(&l, 0, sizeof(l));
    int rc;
    if (ref->commit[0] != '\0') {
        memcpy(p.commit, ref->commit, sizeof(p.commit));
        p.commit[40] = '\0';
    } else {
        if ((rc = resolve_commit(net, ref, p.commit, err)) < 0)
            return rc;
        LOG_INFO(MOD, "%s@%s is commit %s", ref->repo, ref->revision, p.commit);
    }
    if ((rc = list_tree(net, ref, p.commit, &l, err)) < 0)
        goto fail;
    const char *path = ref->path;
    if (ref->quant[0] != '\0' && (rc = pick_quant(&l, ref, &path, err)) < 0)
        goto fail;
    if ((rc = add_with_shards(&p, net, ref, &l, path, err)) < 0)
        goto fail;
    listing_free(&l);
    *out = p;
    return 0;
fail:
    listing_free(&l);
    store_hf_plan_free(&p);
    return rc;
}
