/*
 * store.c - pull, add and remove models (see store.h).
 *
 * store_pull in order:
 *   1. check every reference's form (the main one and a diffusion model's
 *      components), then resolve each to files (Hugging Face: pinned
 *      commit, LFS digests and sizes; URL: one file with the digest the
 *      user gave), so that a bad fourth reference fails before any
 *      download; the plan lists the main file(s), then one file per
 *      component in role order;
 *   2. take locks/<id>.lock; if the id is registered meanwhile, return it;
 *   3. per file, under <dest>.lock: keep an existing complete file whose
 *      digest matches, else store_download it (verify, fsync, rename);
 *   4. a diffusion model's files are inspected (with components given, a
 *      known family missing one is refused here: the files stay, verified,
 *      for the next pull), then every file is registered in one
 *      transaction (store_db_put_model), each with its role and its URL.
 * A crash anywhere leaves either nothing registered (and resumable partial
 * files) or a complete registration; never a row without its file.
 */
#include "store/store.h"

#include "core/alloc.h"
#include "core/log.h"
#include "core/paths.h"
#include "core/sbuf.h"
#include "gguf/gguf.h"
#include "gguf/profile.h"
#include "store/digest.h"
#include "store/dmodel.h"
#include "store/hf.h"
#include "store/lock.h"

#include <ctype.h>
#include <jansson.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MOD "store"
#define ID_MAX 128

struct store {
    char data[PATHS_MAX];
    store_db *db;
};

int store_open_at(const char *data_dir, store **out, genai_error *err)
{
    char sub[PATHS_MAX];
    int rc;
    store *s = mem_calloc(1, sizeof(*s));
    if (s == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    if ((size_t)snprintf(s->data, sizeof(s->data), "%s", data_dir) >= sizeof(s->data)) {
        rc = err_set(err, -ENAMETOOLONG, "data folder path too long");
        goto fail;
    }
    if ((rc = paths_mkdirs(data_dir, 0755, err)) < 0)
        goto fail;
    if ((rc = paths_join(sub, sizeof(sub), data_dir, "locks")) < 0 ||
        (rc = paths_mkdirs(sub, 0755, err)) < 0)
        goto fail;
    if ((rc = paths_join(sub, sizeof(sub), data_dir, "registry.db")) < 0) {
        err_set(err, rc, "data folder path too long");
        goto fail;
    }
    if ((rc = store_db_open(sub, &s->db, err)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    mem_free(s);
    return rc;
}

int store_open(store **out, genai_error *err)
{
    genai_paths p;
    int rc = paths_resolve(&p, err);
    if (rc < 0)
        return rc;
    return store_open_at(p.data, out, err);
}

void store_close(store *s)
{
    if (s == NULL)
        return;
    store_db_close(s->db);
    mem_free(s);
}

store_db *store_registry(store *s)
{
    return s->db;
}

const char *store_data_dir(const store *s)
{
    return s->data;
}

int store_id_valid(const char *id)
{
    size_t n = id != NULL ? strlen(id) : 0;
    if (n == 0 || n > ID_MAX || id[0] == '.' || id[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return 0;
    }
    return 1;
}

int store_id_from_name(const char *file, char *out, size_t outsz)
{
    const char *base = strrchr(file, '/');
    base = base != NULL ? base + 1 : file;
    char tmp[1024];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s", base) >= sizeof(tmp))
        return GENAI_EBAD_ARG;
    char prefix[1024];
    unsigned idx, count;
    if (store_hf_shard(tmp, prefix, sizeof(prefix), &idx, &count))
        snprintf(tmp, sizeof(tmp), "%s", prefix);
    char *dot = strrchr(tmp, '.');
    if (dot != NULL && dot != tmp)
        *dot = '\0';
    size_t j = 0;
    for (size_t i = 0; tmp[i] != '\0' && j + 1 < outsz && j < ID_MAX; i++) {
        unsigned char c = (unsigned char)tmp[i];
        if (isalnum(c) || c == '.' || c == '_' || c == '-')
            out[j++] = (char)tolower(c);
        else if (j > 0 && out[j - 1] != '-')
            out[j++] = '-';
    }
    while (j > 0 && (out[j - 1] == '-' || out[j - 1] == '.'))
        j--;
    out[j] = '\0';
    return store_id_valid(out) ? 0 : GENAI_EBAD_ARG;
}

/* One file of a pull plan. */
struct item {
    const char *role; /* static: dm_role_name() */
    char *url;
    char *dest;
    char *name;
    char sha256[STORE_SHA256_HEX]; /* expected, "" when unknown */
    uint64_t size;
    char got_sha[STORE_SHA256_HEX];
    uint64_t got_size;
};

/* A repository revision resolved in this pull: later references to the same
 * repository and revision use the same commit without asking again. */
struct pin {
    char repo[256];
    char revision[256];
    char commit[41];
};

struct plan {
    struct item *items;
    size_t n;
    char *hf_repo;
    char commit[41];
    struct pin pins[DM_ROLE__COUNT]; /* one reference per role at most */
    size_t n_pins;
};

static void plan_free(struct plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        mem_free(p->items[i].url);
        mem_free(p->items[i].dest);
        mem_free(p->items[i].name);
    }
    mem_free(p->items);
    mem_free(p->hf_repo);
}

static int plan_add(struct plan *p, enum dm_role role, const char *url, const char *dest,
                    const char *name, const char *sha, uint64_t size, genai_error *err)
{
    struct item *nv = mem_reallocarray(p->items, p->n + 1, sizeof(*nv));
    if (nv == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    p->items = nv;
    struct item *it = &p->items[p->n];
    memset(it, 0, sizeof(*it));
    it->role = dm_role_name(role);
    it->url = mem_strdup(url);
    it->dest = mem_strdup(dest);
    it->name = mem_strdup(name);
    if (it->url == NULL || it->dest == NULL || it->name == NULL) {
        mem_free(it->url);
        mem_free(it->dest);
        mem_free(it->name);
        return err_set(err, -ENOMEM, "out of memory");
    }
    if (sha != NULL && sha[0] != '\0')
        store_sha256_normalize(sha, it->sha256);
    it->size = size;
    p->n++;
    return 0;
}

/* Adds the files ref names. The main reference (role model) may be a split
 * model and gives the model row its repository and commit; a component is
 * exactly one file. */
static int plan_hf(store *s, const store_net *net, const char *ref, enum dm_role role,
                   struct plan *p, genai_error *err)
{
    store_hf_ref r;
    store_hf_plan hp;
    int rc;
    if ((rc = store_hf_parse(ref, &r, err)) < 0)
        return rc;
    const struct pin *pin = NULL;
    for (size_t i = 0; i < p->n_pins && pin == NULL; i++) {
        if (strcmp(p->pins[i].repo, r.repo) == 0 && strcmp(p->pins[i].revision, r.revision) == 0)
            pin = &p->pins[i];
    }
    if (pin != NULL)
        memcpy(r.commit, pin->commit, sizeof(r.commit));
    if ((rc = store_hf_resolve(net, &r, &hp, err)) < 0)
        return rc;
    if (pin == NULL && p->n_pins < sizeof(p->pins) / sizeof(p->pins[0])) {
        struct pin *np = &p->pins[p->n_pins++];
        snprintf(np->repo, sizeof(np->repo), "%s", r.repo);
        snprintf(np->revision, sizeof(np->revision), "%s", r.revision);
        memcpy(np->commit, hp.commit, sizeof(np->commit));
    }
    if (role != DM_ROLE_MODEL) {
        if (hp.n_files != 1) {
            rc = err_set(err, GENAI_EBAD_ARG,
                         "component %s: %s is one shard of a split model; a component is one file",
                         dm_role_name(role), ref);
            goto out;
        }
    } else {
        memcpy(p->commit, hp.commit, sizeof(p->commit));
        if ((p->hf_repo = mem_strdup(r.repo)) == NULL) {
            rc = err_set(err, -ENOMEM, "out of memory");
            goto out;
        }
    }
    for (size_t i = 0; i < hp.n_files; i++) {
        char dest[PATHS_MAX];
        const store_hf_file *f = &hp.files[i];
        if ((size_t)snprintf(dest, sizeof(dest), "%s/models/hf/%s/%s", s->data, r.repo, f->path) >=
            sizeof(dest)) {
            rc = err_set(err, -ENAMETOOLONG, "path too long for %s", f->path);
            goto out;
        }
        if ((rc = plan_add(p, role, f->url, dest, f->path, f->sha256, f->size, err)) < 0)
            goto out;
    }
out:
    store_hf_plan_free(&hp);
    return rc;
}

/* Adds the one file a URL names, with the digest the caller gave (or NULL).
 * A "#sha256=HEX" fragment, as pip reads one, gives the digest too (where
 * the caller has no field for it: a component of the C API); the fragment
 * is never sent (curl drops it) and is not part of the stored URL. */
static int plan_url(store *s, const char *u, const char *sha256, enum dm_role role, struct plan *p,
                    genai_error *err)
{
    const char *frag = strchr(u, '#');
    if (frag != NULL) {
        if (strncmp(frag + 1, "sha256=", 7) == 0) {
            const char *hex = frag + 8;
            if (!store_sha256_is_hex(hex))
                return err_set(err, GENAI_EBAD_ARG, "'#sha256=' in '%s' needs 64 hex digits", u);
            if (sha256 != NULL && strcasecmp(sha256, hex) != 0)
                return err_set(err, GENAI_EBAD_ARG, "two different digests given for %s", u);
            sha256 = hex;
        }
        char *bare = mem_strndup(u, (size_t)(frag - u));
        if (bare == NULL)
            return err_set(err, -ENOMEM, "out of memory");
        int rc = plan_url(s, bare, sha256, role, p, err);
        mem_free(bare);
        return rc;
    }
    const char *host = strstr(u, "://");
    if (host == NULL)
        return err_set(err, GENAI_EBAD_ARG, "'%s' is neither a URL nor a Hugging Face reference",
                       u);
    host += 3;
    size_t hl = strcspn(host, "/?#");
    const char *path = host + hl;
    size_t pl = strcspn(path, "?#");
    const char *base = path;
    for (size_t i = 0; i < pl; i++) {
        if (path[i] == '/')
            base = path + i + 1;
    }
    size_t bl = (size_t)(path + pl - base);
    char hostname[256], file[512], dest[PATHS_MAX];
    if (hl == 0 || hl >= sizeof(hostname) || bl == 0 || bl >= sizeof(file))
        return err_set(err, GENAI_EBAD_ARG, "cannot name a local file after '%s'", u);
    memcpy(hostname, host, hl);
    hostname[hl] = '\0';
    memcpy(file, base, bl);
    file[bl] = '\0';
    /* host may carry user:pass@ or :port; keep it to [A-Za-z0-9.-] for a folder */
    for (char *c = hostname; *c; c++) {
        if (!isalnum((unsigned char)*c) && *c != '.' && *c != '-')
            *c = '_';
    }
    if (!store_hf_path_safe(file) || strchr(file, '/') != NULL || file[0] == '.')
        return err_set(err, GENAI_EBAD_ARG, "unsafe file name in '%s'", u);
    if ((size_t)snprintf(dest, sizeof(dest), "%s/models/url/%s/%s", s->data, hostname, file) >=
        sizeof(dest))
        return err_set(err, -ENAMETOOLONG, "path too long");
    if (sha256 != NULL && !store_sha256_is_hex(sha256))
        return err_set(err, GENAI_EBAD_ARG, "--sha256 needs 64 hex digits");
    return plan_add(p, role, u, dest, file, sha256, 0, err);
}

/* A component's reference without asking the network: one Hub file
 * (hf://owner/repo/path/file[@rev], not the owner/repo:QUANT form) or an
 * http(s) URL the scheme rule allows. */
static int check_component_ref(const store_net *net, const store_pull_component *c,
                               genai_error *err)
{
    if (c->ref == NULL || c->ref[0] == '\0')
        return err_set(err, GENAI_EBAD_ARG, "no reference given");
    if (c->sha256 != NULL && !store_sha256_is_hex(c->sha256))
        return err_set(err, GENAI_EBAD_ARG, "the expected digest needs 64 hex digits");
    if (!store_hf_is_ref(c->ref))
        return store_url_scheme_allowed(net, c->ref, err);
    store_hf_ref r;
    int rc = store_hf_parse(c->ref, &r, err);
    if (rc < 0)
        return rc;
    if (r.path[0] == '\0')
        return err_set(err, GENAI_EBAD_ARG,
                       "'%s' picks a quantization; a component is one file: "
                       "hf://owner/repo/path/file or a URL",
                       c->ref);
    return 0;
}

/*
 * Checks o's components before any request: kind diffusion, known roles
 * other than model, one reference per role, each well formed. order[k]
 * receives the index in o->components of the k-th component to fetch (role
 * order) and *n how many.
 */
static int check_components(const store_pull_opts *o, const store_net *net,
                            size_t order[DM_ROLE__COUNT], size_t *n, genai_error *err)
{
    size_t slot[DM_ROLE__COUNT];
    int used[DM_ROLE__COUNT] = {0};
    *n = 0;
    if (o->n_components == 0)
        return 0;
    if (o->components == NULL)
        return err_set(err, GENAI_EBAD_ARG, "components counted but not given");
    if (o->kind != STORE_KIND_DIFFUSION)
        return err_set(err, GENAI_EBAD_ARG,
                       "components (%s, ...) belong to a diffusion model; pull it with kind "
                       "diffusion",
                       o->components[0].role != NULL ? o->components[0].role : "?");
    for (size_t i = 0; i < o->n_components; i++) {
        const store_pull_component *c = &o->components[i];
        enum dm_role role;
        if (c->role == NULL || dm_role_parse(c->role, &role, NULL) < 0 || role == DM_ROLE_MODEL)
            return err_set(err, GENAI_EBAD_ARG,
                           "'%.64s' is not a component role (clip_l, clip_g, t5xxl or vae)",
                           c->role != NULL ? c->role : "");
        if (used[role])
            return err_set(err, GENAI_EBAD_ARG, "two components with role %s", c->role);
        used[role] = 1;
        slot[role] = i;
        int rc = check_component_ref(net, c, err);
        if (rc < 0) {
            err_prefix(err, "component %s", c->role);
            return rc;
        }
    }
    for (unsigned r = 0; r < DM_ROLE__COUNT; r++) {
        if (used[r])
            order[(*n)++] = slot[r];
    }
    return 0;
}

/* The whole plan: the main reference, then each component; every reference
 * is resolved here, before anything is downloaded. */
static int plan_all(store *s, const store_net *net, const store_pull_opts *o, const size_t *order,
                    size_t n_order, struct plan *p, genai_error *err)
{
    int rc = 0;
    if (!store_hf_is_ref(o->ref) && strstr(o->ref, "://") != NULL)
        rc = store_url_scheme_allowed(net, o->ref, err);
    if (rc == 0)
        rc = store_hf_is_ref(o->ref) ? plan_hf(s, net, o->ref, DM_ROLE_MODEL, p, err)
                                     : plan_url(s, o->ref, o->sha256, DM_ROLE_MODEL, p, err);
    for (size_t k = 0; rc >= 0 && k < n_order; k++) {
        const store_pull_component *c = &o->components[order[k]];
        enum dm_role role;
        dm_role_parse(c->role, &role, NULL); /* checked by check_components */
        if (net->progress != NULL) {
            store_progress pr = {.phase = STORE_PHASE_RESOLVING, .name = c->ref, .attempt = 1};
            net->progress(&pr, net->userdata);
        }
        if (store_hf_is_ref(c->ref))
            rc = plan_hf(s, net, c->ref, role, p, err);
        else
            rc = plan_url(s, c->ref, c->sha256, role, p, err);
        if (rc < 0)
            err_prefix(err, "component %s", c->role);
    }
    if (rc < 0)
        return rc;
    /* Two references that would land on one local file (two URLs ending in
     * the same name on one host) would overwrite each other. */
    for (size_t i = 0; i < p->n; i++) {
        for (size_t j = i + 1; j < p->n; j++) {
            if (strcmp(p->items[i].dest, p->items[j].dest) == 0)
                return err_set(err, GENAI_EBAD_ARG, "%s and %s would both be stored as %s",
                               p->items[i].url, p->items[j].url, p->items[i].dest);
        }
    }
    return 0;
}

static int parent_mkdirs(const char *path, genai_error *err)
{
    char dir[PATHS_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return 0;
    *slash = '\0';
    return paths_mkdirs(dir, 0755, err);
}

struct wait_ctx {
    const store_net *net;
    const char *name;
};

static void on_lock_wait(void *ud)
{
    struct wait_ctx *w = ud;
    if (w->net->progress == NULL)
        return;
    store_progress p = {.phase = STORE_PHASE_WAITING, .name = w->name, .attempt = 1};
    w->net->progress(&p, w->net->userdata);
}

/* Already there (a crash after the rename, or a file shared with another
 * model)? Keep it when its digest is the expected one. */
static int reuse_existing(struct item *it, genai_error *err)
{
    struct stat st;
    if (stat(it->dest, &st) != 0)
        return 0;
    if (it->sha256[0] == '\0' || (it->size != 0 && (uint64_t)st.st_size != it->size))
        return 0;
    char sha[STORE_SHA256_HEX];
    uint64_t size = 0;
    int rc = store_sha256_file(it->dest, sha, &size, err);
    if (rc < 0)
        return rc;
    if (strcmp(sha, it->sha256) != 0)
        return 0;
    memcpy(it->got_sha, sha, sizeof(sha));
    it->got_size = size;
    return 1;
}

static int fetch_item(const store_net *net, struct item *it, unsigned idx, unsigned count,
                      genai_error *err)
{
    char lockpath[PATHS_MAX + 8];
    store_lock lk = STORE_LOCK_INIT;
    int rc;
    snprintf(lockpath, sizeof(lockpath), "%s.lock", it->dest);
    struct wait_ctx w = {net, it->name};
    /* `genai prune` removes folders it finds empty: one can go between the
     * mkdir and the lock file that keeps it. Once the lock file is in it,
     * the folder is not empty and stays; so make it again, a few times. */
    for (int tries = 0;; tries++) {
        if ((rc = parent_mkdirs(it->dest, err)) < 0)
            return rc;
        rc = store_lock_acquire(&lk, lockpath, net->cancel, on_lock_wait, &w, err);
        if (rc != -ENOENT || tries == 3)
            break;
        genai_error_clear(err);
    }
    if (rc < 0)
        return rc;
    if ((rc = reuse_existing(it, err)) != 0) {
        if (rc > 0)
            LOG_INFO(MOD, "%s is already complete", it->dest);
        rc = rc > 0 ? 0 : rc;
        goto unlock;
    }
    if (unlink(it->dest) != 0 && errno != ENOENT) {
        rc = err_errno(err, errno, "removing stale %s", it->dest);
        goto unlock;
    }
    store_fetch f = {.url = it->url,
                     .dest = it->dest,
                     .name = it->name,
                     .expected_sha256 = it->sha256[0] != '\0' ? it->sha256 : NULL,
                     .expected_size = it->size,
                     .file_index = idx,
                     .file_count = count};
    store_fetch_result res;
    if ((rc = store_download(net, &f, &res, err)) < 0)
        goto unlock;
    memcpy(it->got_sha, res.sha256, sizeof(res.sha256));
    it->got_size = res.size;
unlock:
    store_lock_release(&lk);
    return rc;
}

/* The GGUF profile of an LLM (first shard) as compact JSON text into *out
 * (mem_free), for the registry's cache. Fails with the reader's error. */
static int profile_json_for(const char *path, char **out, genai_error *err)
{
    gguf_profile prof;
    memset(&prof, 0, sizeof(prof));
    int rc = gguf_profile_load(path, &prof, err);
    if (rc < 0)
        return rc;
    json_t *j = gguf_profile_to_json(&prof);
    gguf_profile_free(&prof);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (text == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    *out = mem_strdup(text);
    free(text); /* jansson allocates with malloc */
    return *out != NULL ? 0 : err_set(err, -ENOMEM, "out of memory");
}

/* Appends text to err's detail (truncated to fit); no-op when err is NULL. */
static void err_append(genai_error *err, const char *fmt, ...) GX_PRINTF(2, 3);
static void err_append(genai_error *err, const char *fmt, ...)
{
    if (err == NULL)
        return;
    size_t len = strlen(err->detail);
    if (len + 1 >= sizeof(err->detail))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->detail + len, sizeof(err->detail) - len, fmt, ap);
    va_end(ap);
}

/*
 * 1 when the registered model have is what this pull would register: the
 * same main file, and, when the pull names components (strict), the same
 * files role by role (by digest, or by URL where no digest is known).
 */
static int same_model(const store_model *have, const struct plan *p, int strict)
{
    if (p->items[0].sha256[0] != '\0' && strcmp(have->sha256, p->items[0].sha256) != 0)
        return 0;
    if (!strict)
        return 1;
    if (have->n_files != p->n)
        return 0;
    for (size_t i = 0; i < p->n; i++) {
        const struct item *it = &p->items[i];
        int found = 0;
        for (size_t j = 0; !found && j < have->n_files; j++) {
            const store_file *f = &have->files[j];
            if (strcmp(f->role, it->role) != 0)
                continue;
            if (it->sha256[0] != '\0')
                found = f->sha256 != NULL && strcmp(f->sha256, it->sha256) == 0;
            else
                found = f->url != NULL && strcmp(f->url, it->url) == 0;
        }
        if (!found)
            return 0;
    }
    return 1;
}

/* "model, clip_l, vae": the roles of m's files, for a message. */
static const char *roles_text(const store_model *m, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < m->n_files && len < size; i++) {
        int w = snprintf(buf + len, size - len, "%s%s", i ? ", " : "", m->files[i].role);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    return buf;
}

static int register_plan(store *s, const store_pull_opts *o, const char *id, const struct plan *p,
                         store_model *out, genai_error *err)
{
    store_model m;
    memset(&m, 0, sizeof(m));
    store_file *files = mem_calloc(p->n, sizeof(*files));
    if (files == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < p->n; i++) {
        files[i].role = (char *)p->items[i].role;
        files[i].path = p->items[i].dest;
        files[i].sha256 = (char *)p->items[i].got_sha;
        files[i].size = p->items[i].got_size;
        files[i].url = p->items[i].url;
        files[i].managed = 1;
        m.size += p->items[i].got_size;
    }
    char name[512];
    if (o->name != NULL)
        snprintf(name, sizeof(name), "%s", o->name);
    else if (p->hf_repo != NULL)
        snprintf(name, sizeof(name), "%s/%s", p->hf_repo, p->items[0].name);
    else
        snprintf(name, sizeof(name), "%s", p->items[0].name);
    m.id = (char *)id;
    m.name = name;
    m.kind = o->kind;
    m.source_url = (char *)o->ref;
    m.hf_repo = p->hf_repo;
    m.hf_revision = p->commit[0] != '\0' ? (char *)p->commit : NULL;
    m.sha256 = (char *)p->items[0].got_sha;
    m.files = files;
    m.n_files = p->n;
    genai_error perr;
    char *profile = NULL;
    /* The digest proved these are the publisher's bytes; a profile the reader
     * cannot build is worth a warning, not a failed pull. */
    if (o->kind == STORE_KIND_LLM && profile_json_for(files[0].path, &profile, &perr) < 0)
        LOG_WARN(MOD, "no GGUF profile for %s: %s", id, perr.detail);
    m.profile_json = profile;
    char *detection = NULL;
    int rc = 0;
    if (o->kind == STORE_KIND_DIFFUSION) {
        /* The first file is the model (the first shard of a split one); the
         * components follow. Without components, what else the model needs
         * is a warning here and an error when a job starts; with them, the
         * set must be whole, as for store_add. */
        dm_component comps[DM_ROLE__COUNT];
        size_t nc = 0;
        comps[nc++] = (dm_component){DM_ROLE_MODEL, files[0].path};
        for (size_t i = 1; i < p->n && nc < DM_ROLE__COUNT; i++) {
            enum dm_role role;
            if (dm_role_parse(files[i].role, &role, NULL) == 0 && role != DM_ROLE_MODEL)
                comps[nc++] = (dm_component){role, files[i].path};
        }
        int check = o->n_components > 0;
        rc = store_dm_inspect(comps, nc, check, &detection, err);
        if (rc < 0 && check)
            err_append(err,
                       "; nothing registered, the %zu file%s pulled stay%s on disk, verified, "
                       "for a pull with every component",
                       p->n, p->n == 1 ? "" : "s", p->n == 1 ? "s" : "");
        m.detection_json = detection;
    }
    if (rc == 0)
        rc = store_db_put_model(s->db, &m, err);
    mem_free(detection);
    mem_free(profile);
    mem_free(files);
    if (rc == 0 && out != NULL)
        rc = store_db_get_model(s->db, id, out, err);
    return rc;
}

/* locks/<id>.lock: held by a pull from before it looks the id up until it
 * registered it, and by an add while it checks and registers its files;
 * prune leaves every file alone while any of these is held. */
static int model_lock_path(const store *s, const char *id, char *buf, size_t size,
                           genai_error *err)
{
    int rc = paths_join(buf, size, s->data, "locks");
    if (rc < 0)
        return err_set(err, rc, "data folder path too long");
    size_t used = strlen(buf);
    if ((size_t)snprintf(buf + used, size - used, "/%s.lock", id) >= size - used)
        return err_set(err, -ENAMETOOLONG, "path too long");
    return 0;
}

int store_pull(store *s, const store_net *net, const store_pull_opts *o, store_model *out,
               genai_error *err)
{
    struct plan p;
    memset(&p, 0, sizeof(p));
    char id[ID_MAX + 1], lockpath[PATHS_MAX];
    size_t order[DM_ROLE__COUNT], n_order = 0;
    char roles[128];
    store_lock lk = STORE_LOCK_INIT;
    int rc;
    if (o->ref == NULL || o->ref[0] == '\0')
        return err_set(err, GENAI_EBAD_ARG, "no reference to pull");
    if ((rc = check_components(o, net, order, &n_order, err)) < 0)
        return rc;
    if (net->progress != NULL) {
        store_progress pr = {.phase = STORE_PHASE_RESOLVING, .name = o->ref, .attempt = 1};
        net->progress(&pr, net->userdata);
    }
    if ((rc = plan_all(s, net, o, order, n_order, &p, err)) < 0)
        goto out;
    if (o->id != NULL) {
        if (!store_id_valid(o->id)) {
            rc = err_set(err, GENAI_EBAD_ARG, "'%s' is not a valid model id ([A-Za-z0-9._-])",
                         o->id);
            goto out;
        }
        snprintf(id, sizeof(id), "%s", o->id);
    } else if (store_id_from_name(p.items[0].name, id, sizeof(id)) < 0) {
        rc = err_set(err, GENAI_EBAD_ARG, "cannot derive an id from '%s'; give one with --name",
                     p.items[0].name);
        goto out;
    }
    if ((rc = model_lock_path(s, id, lockpath, sizeof(lockpath), err)) < 0)
        goto out;
    struct wait_ctx w = {net, id};
    if ((rc = store_lock_acquire(&lk, lockpath, net->cancel, on_lock_wait, &w, err)) < 0)
        goto out;
    store_model have;
    rc = store_db_get_model(s->db, id, &have, err);
    if (rc == 0) {
        if (!same_model(&have, &p, n_order > 0)) {
            if (p.items[0].sha256[0] != '\0' && strcmp(have.sha256, p.items[0].sha256) != 0)
                rc = err_set(err, GENAI_EBUSY,
                             "a different model is registered as '%s'; pick another id with --name",
                             id);
            else
                rc = err_set(err, GENAI_EBUSY,
                             "'%s' is registered with another set of files (%s); remove it "
                             "first (genai rm %s) or pick another id with --name",
                             id, roles_text(&have, roles, sizeof(roles)), id);
            store_model_free(&have);
            goto unlock;
        }
        if (out != NULL)
            *out = have;
        else
            store_model_free(&have);
        rc = 1;
        goto unlock;
    }
    if (rc != GENAI_ENOT_FOUND)
        goto unlock;
    genai_error_clear(err);
    for (size_t i = 0; i < p.n; i++) {
        if ((rc = fetch_item(net, &p.items[i], (unsigned)i + 1, (unsigned)p.n, err)) < 0)
            goto unlock;
    }
    rc = register_plan(s, o, id, &p, out, err);
unlock:
    store_lock_release(&lk);
out:
    plan_free(&p);
    return rc;
}

/* Runs the bounded GGUF reader over the file; its error names the path and
 * where the file is broken. */
static int check_gguf(const char *path, genai_error *err)
{
    gguf_file *g = NULL;
    int rc = gguf_open(path, &g, err);
    gguf_close(g);
    return rc;
}

int store_add(store *s, const char *id, const char *name, store_kind kind,
              const store_add_file *files, size_t n, store_model *out, genai_error *err)
{
    if (n == 0)
        return err_set(err, GENAI_EBAD_ARG, "no file to add");
    char idbuf[ID_MAX + 1], lockpath[PATHS_MAX];
    char *profile = NULL, *detection = NULL;
    store_lock lk = STORE_LOCK_INIT;
    int rc = 0;
    store_file *rows = mem_calloc(n, sizeof(*rows));
    char(*shas)[STORE_SHA256_HEX] = mem_calloc(n, sizeof(*shas));
    if (rows == NULL || shas == NULL) {
        rc = err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    store_model m;
    memset(&m, 0, sizeof(m));
    for (size_t i = 0; i < n; i++) {
        if (!store_role_valid(files[i].role)) {
            rc = err_set(err, GENAI_EBAD_ARG, "unknown role '%s'", files[i].role);
            goto out;
        }
        char *abs = realpath(files[i].path, NULL); /* libc allocates: free() below */
        if (abs == NULL) {
            rc = err_errno(err, errno, "%s", files[i].path);
            goto out;
        }
        rows[i].path = mem_strdup(abs);
        free(abs);
        if (rows[i].path == NULL) {
            rc = err_set(err, -ENOMEM, "out of memory");
            goto out;
        }
    }
    if (id == NULL) {
        if (store_id_from_name(rows[0].path, idbuf, sizeof(idbuf)) < 0) {
            rc = err_set(err, GENAI_EBAD_ARG, "cannot derive an id from %s; give --name",
                         rows[0].path);
            goto out;
        }
        id = idbuf;
    } else if (!store_id_valid(id)) {
        rc = err_set(err, GENAI_EBAD_ARG, "'%s' is not a valid model id ([A-Za-z0-9._-])", id);
        goto out;
    }
    /* Held from before the files are read until they are registered: a pull
     * of the same id waits for it, and prune leaves the files alone (a file
     * under <data>/models is not registered yet while it is hashed). Not
     * waited for: a pull holding it can take as long as a download. */
    if ((rc = model_lock_path(s, id, lockpath, sizeof(lockpath), err)) < 0)
        goto out;
    if ((rc = store_lock_try(&lk, lockpath, err)) < 0) {
        if (rc == GENAI_EBUSY)
            err_set(err, rc, "'%s' is being pulled or added by another process; try again "
                             "when it is done", id);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(rows[i].path, &st) != 0 || !S_ISREG(st.st_mode)) {
            rc = err_set(err, GENAI_EBAD_ARG, "%s is not a regular file", rows[i].path);
            goto out;
        }
        size_t pl = strlen(rows[i].path);
        if (pl > 5 && strcasecmp(rows[i].path + pl - 5, ".gguf") == 0 &&
            (rc = check_gguf(rows[i].path, err)) < 0)
            goto out;
        if ((rc = store_sha256_file(rows[i].path, shas[i], &rows[i].size, err)) < 0)
            goto out;
        rows[i].role = (char *)files[i].role;
        rows[i].sha256 = shas[i];
        m.size += rows[i].size;
    }
    const char *base = strrchr(rows[0].path, '/');
    m.id = (char *)id;
    m.name = (char *)(name != NULL ? name : base + 1);
    m.kind = kind;
    m.sha256 = shas[0];
    m.files = rows;
    m.n_files = n;
    if (kind == STORE_KIND_LLM && (rc = profile_json_for(rows[0].path, &profile, err)) < 0)
        goto out;
    m.profile_json = profile;
    if (kind == STORE_KIND_DIFFUSION) {
        dm_component comps[DM_ROLE__COUNT];
        size_t nc = 0;
        for (size_t i = 0; i < n; i++) {
            enum dm_role role;
            if (nc == DM_ROLE__COUNT || dm_role_parse(files[i].role, &role, err) < 0) {
                rc = err_set(err, GENAI_EBAD_ARG, "a diffusion model has one file per role");
                goto out;
            }
            comps[nc++] = (dm_component){role, rows[i].path};
        }
        /* Refuses a known family with a component missing, naming it. */
        if ((rc = store_dm_inspect(comps, nc, 1, &detection, err)) < 0)
            goto out;
        m.detection_json = detection;
    }
    if ((rc = store_db_put_model(s->db, &m, err)) == 0 && out != NULL)
        rc = store_db_get_model(s->db, id, out, err);
out:
    store_lock_release(&lk);
    for (size_t i = 0; rows != NULL && i < n; i++)
        mem_free(rows[i].path);
    mem_free(rows);
    mem_free(shas);
    mem_free(profile);
    mem_free(detection);
    return rc;
}

int store_remove(store *s, const char *id, store_model *removed, genai_error *err)
{
    store_model m;
    int rc = store_db_remove_model(s->db, id, &m, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < m.n_files; i++) {
        const store_file *f = &m.files[i];
        if (!f->managed)
            continue;
        /* Under the file's lock: a pull of another model that downloads or
         * verifies this file right now keeps it, and its lock file. */
        char extra[PATHS_MAX + 16];
        store_lock lk = STORE_LOCK_INIT;
        genai_error lerr;
        snprintf(extra, sizeof(extra), "%s.lock", f->path);
        if (store_lock_try(&lk, extra, &lerr) < 0) {
            LOG_WARN(MOD, "left %s in place: %s", f->path, lerr.detail);
            continue;
        }
        if (unlink(f->path) != 0 && errno != ENOENT)
            LOG_WARN(MOD, "cannot remove %s: %s", f->path, strerror(errno));
        snprintf(extra, sizeof(extra), "%s.partial", f->path);
        if (unlink(extra) != 0 && errno != ENOENT)
            LOG_WARN(MOD, "cannot remove %s: %s", extra, strerror(errno));
        store_lock_release(&lk);
    }
    if (removed != NULL)
        *removed = m;
    else
        store_model_free(&m);
    return 0;
}
