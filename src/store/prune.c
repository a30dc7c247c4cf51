/*
 * prune.c - remove the files under <data>/models that no model uses
 * (see prune.h).
 *
 * The walk holds one open folder per level (openat with O_NOFOLLOW, checked
 * against the lstat of its name, at most PRUNE_MAX_DEPTH deep) and removes
 * with unlinkat relative to that folder, so a symbolic link anywhere below
 * <data>/models is neither followed nor removed, and a folder swapped for a
 * link during the walk is not entered. A folder whose entries were all
 * removed is removed after its walk (never <data>/models itself).
 *
 * Why a pull never loses a file to prune. A pull of model X, in store.c:
 *   P1 takes locks/X.lock (M) and keeps it to the end;
 *   P2 per file F, under <F>.lock (L): writes <F>.partial, renames it to F,
 *      releases L;
 *   P3 registers X with all its files in one transaction, then releases M.
 * Registration happens under M, not under L. So prune, per candidate F:
 *   R1 takes L without waiting (busy: a pull writes or verifies F: skipped);
 *   R2 checks that no model lock in locks/ is held (held: skipped);
 *   R3 re-reads the registry (F listed: kept);
 *   R4 unlinks F and releases L.
 * If a pull fetched F before R1 and had not committed by R3, it held M from
 * before R1 until after R3, so R2 saw M held. If it committed before R3, R3
 * sees F. A pull that reaches F's L after R1 waits for R4 and then finds no
 * file and downloads it. M is found at R2 because a lock file stays linked
 * while it is held (lock.h) and readdir returns every entry that exists for
 * the whole scan. R2 tests each model lock with flock(LOCK_NB) on a
 * read-only descriptor, unlocked at once and never unlinked; a pull starting
 * at that instant sees it busy and polls again 100 ms later (lock.c).
 * A .partial is never registered; a pull writes it only under L, so R1 alone
 * protects it.
 *
 * `genai add` of model X (store_add) takes M without waiting before it reads
 * its files and keeps it until they are registered, so an add under way at
 * R2 keeps every candidate. An add that takes M after R2 of a file that lies
 * under <data>/models (an unregistered file, so prune's to remove) finds the
 * file gone, or has it refused by the registry as missing, exactly as if
 * prune had run first; nothing registered is lost. An empty folder is removed only when no model lock is
 * held; a pull that takes its model lock between that check and the rmdir
 * and then finds the folder gone when it opens its file's lock makes the
 * folder again (store.c fetch_item, up to four times).
 */
#include "store/prune.h"

#include "core/alloc.h"
#include "core/log.h"
#include "core/paths.h"
#include "store/lock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MOD "store"
/* Hugging Face paths are a few levels deep; this bounds the open folders. */
#define PRUNE_MAX_DEPTH 32

struct devino {
    dev_t dev;
    ino_t ino;
};

/* What the registry lists: the rows (for their paths) and the device and
 * inode of every listed file that exists. */
struct inuse {
    store_model *models;
    size_t n_models;
    struct devino *ids;
    size_t n_ids;
};

struct walk {
    store_db *db;
    const store_prune_opts *o;
    store_prune_report *r;
    size_t cap; /* allocated items */
    struct inuse in;
    char locks[PATHS_MAX]; /* <data>/locks */
    char path[PATHS_MAX];  /* the folder being walked, then "/name" */
    time_t now;
};

const char *store_prune_action_name(store_prune_action a)
{
    switch (a) {
    case STORE_PRUNE_REMOVED:
        return "removed";
    case STORE_PRUNE_KEPT_PARTIAL:
        return "kept_partial";
    case STORE_PRUNE_BUSY:
        return "busy";
    case STORE_PRUNE_PULLING:
        return "pulling";
    case STORE_PRUNE_FAILED:
        return "failed";
    }
    return "unknown";
}

void store_prune_report_free(store_prune_report *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_items; i++)
        mem_free(r->items[i].path);
    mem_free(r->items);
    r->items = NULL;
    r->n_items = 0;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

static void inuse_free(struct inuse *in)
{
    store_model_list_free(in->models, in->n_models);
    mem_free(in->ids);
    memset(in, 0, sizeof(*in));
}

/* Reads the registry into *in (released first). */
static int inuse_load(store_db *db, struct inuse *in, genai_error *err)
{
    store_model *models = NULL;
    size_t n = 0, total = 0;
    int rc = store_db_list_models(db, &models, &n, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        total += models[i].n_files;
    struct devino *ids = total > 0 ? mem_calloc(total, sizeof(*ids)) : NULL;
    if (total > 0 && ids == NULL) {
        store_model_list_free(models, n);
        return err_set(err, -ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < models[i].n_files; j++) {
            struct stat st;
            /* stat, not lstat: a registered link keeps its target in use */
            if (stat(models[i].files[j].path, &st) == 0)
                ids[k++] = (struct devino){st.st_dev, st.st_ino};
        }
    }
    inuse_free(in);
    in->models = models;
    in->n_models = n;
    in->ids = ids;
    in->n_ids = k;
    return 0;
}

static int inuse_has(const struct inuse *in, const char *path, const struct stat *st)
{
    for (size_t i = 0; i < in->n_ids; i++) {
        if (in->ids[i].dev == st->st_dev && in->ids[i].ino == st->st_ino)
            return 1;
    }
    for (size_t i = 0; i < in->n_models; i++) {
        for (size_t j = 0; j < in->models[i].n_files; j++) {
            if (strcmp(in->models[i].files[j].path, path) == 0)
                return 1;
        }
    }
    return 0;
}

/* 1 when another open file holds the flock of dfd/name, without taking it
 * for longer than the test and without creating or unlinking anything; a
 * lock file that cannot be opened counts as held. */
static int probe_held(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno != ENOENT;
    int held = 0;
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            break;
        if (errno != EINTR) {
            held = 1;
            break;
        }
    }
    close(fd); /* drops the flock if we took it */
    return held;
}

/* 1 when a pull holds its model lock (locks/<id>.lock), which it keeps from
 * before its first download until its registration commits. An unreadable
 * locks folder counts as a pull running. */
static int pulls_running(const struct walk *w)
{
    int dfd = open(w->locks, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        if (errno == ENOENT)
            return 0;
        LOG_WARN(MOD, "prune: cannot read %s: %s", w->locks, strerror(errno));
        return 1;
    }
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        return 1;
    }
    int running = 0;
    struct dirent *de;
    while (!running && (de = readdir(d)) != NULL) {
        if (has_suffix(de->d_name, ".lock"))
            running = probe_held(dirfd(d), de->d_name);
    }
    closedir(d);
    return running;
}

static int add_item(struct walk *w, const char *path, uint64_t size, int partial,
                    store_prune_action action, int error, genai_error *err)
{
    store_prune_report *r = w->r;
    if (r->n_items == w->cap) {
        size_t cap = w->cap != 0 ? w->cap * 2 : 16;
        store_prune_item *items = mem_reallocarray(r->items, cap, sizeof(*items));
        if (items == NULL)
            return err_set(err, -ENOMEM, "out of memory");
        r->items = items;
        w->cap = cap;
    }
    char *copy = mem_strdup(path);
    if (copy == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    r->items[r->n_items++] = (store_prune_item){copy, size, partial, action, error};
    switch (action) {
    case STORE_PRUNE_REMOVED:
        r->n_removed++;
        r->bytes_freed += size;
        break;
    case STORE_PRUNE_KEPT_PARTIAL:
        r->n_kept_partial++;
        r->bytes_partial += size;
        break;
    case STORE_PRUNE_BUSY:
    case STORE_PRUNE_PULLING:
        r->n_skipped++;
        break;
    case STORE_PRUNE_FAILED:
        r->n_failed++;
        break;
    }
    return 0;
}

/*
 * Removes the candidate dfd/name (w->path) under its lock, steps R1-R4 at
 * the top of this file. Returns 0 when it is gone, 1 when it stays, < 0 on
 * a failure that ends the walk.
 */
static int prune_file(struct walk *w, int dfd, const char *name, const struct stat *seen,
                      int partial, genai_error *err)
{
    char lockname[NAME_MAX + 8], lockpath[PATHS_MAX + 8];
    size_t stem = strlen(name) - (partial ? strlen(".partial") : 0);
    size_t dirlen = (size_t)(strrchr(w->path, '/') - w->path);
    store_lock lk = STORE_LOCK_INIT;
    int rc;
    snprintf(lockname, sizeof(lockname), "%.*s.lock", (int)stem, name);
    if ((size_t)snprintf(lockpath, sizeof(lockpath), "%.*s/%s", (int)dirlen, w->path, lockname) >=
        sizeof(lockpath)) {
        rc = add_item(w, w->path, (uint64_t)seen->st_size, partial, STORE_PRUNE_FAILED,
                      -ENAMETOOLONG, err);
        return rc < 0 ? rc : 1;
    }
    if (w->o->dry_run) {
        /* A dry run changes nothing, not even a lock file left by a dead
         * pull: test the lock instead of taking it. */
        if (probe_held(dfd, lockname)) {
            rc = add_item(w, w->path, (uint64_t)seen->st_size, partial, STORE_PRUNE_BUSY, 0, err);
            return rc < 0 ? rc : 1;
        }
    } else {
        genai_error lerr;
        int lrc = store_lock_try(&lk, lockpath, &lerr);
        if (lrc < 0) {
            store_prune_action a = lrc == GENAI_EBUSY ? STORE_PRUNE_BUSY : STORE_PRUNE_FAILED;
            if (a == STORE_PRUNE_FAILED)
                LOG_WARN(MOD, "prune: left %s: %s", w->path, lerr.detail);
            rc = add_item(w, w->path, (uint64_t)seen->st_size, partial, a,
                          a == STORE_PRUNE_FAILED ? lrc : 0, err);
            return rc < 0 ? rc : 1;
        }
    }
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        rc = errno == ENOENT ? 0 : 1;
        goto unlock;
    }
    rc = 1;
    if (!S_ISREG(st.st_mode) || st.st_dev != seen->st_dev || st.st_ino != seen->st_ino)
        goto unlock; /* replaced since the walk saw it: leave it to the next prune */
    if (!partial && pulls_running(w)) {
        rc = add_item(w, w->path, (uint64_t)st.st_size, 0, STORE_PRUNE_PULLING, 0, err);
        rc = rc < 0 ? rc : 1;
        goto unlock;
    }
    if (w->o->on_locked != NULL)
        w->o->on_locked(w->path, w->o->userdata);
    if ((rc = inuse_load(w->db, &w->in, err)) < 0)
        goto unlock;
    if (inuse_has(&w->in, w->path, &st)) {
        rc = 1; /* registered since the walk saw it */
        goto unlock;
    }
    if (!w->o->dry_run && unlinkat(dfd, name, 0) != 0) {
        int e = errno;
        LOG_WARN(MOD, "prune: cannot remove %s: %s", w->path, strerror(e));
        rc = add_item(w, w->path, (uint64_t)st.st_size, partial, STORE_PRUNE_FAILED, -e, err);
        rc = rc < 0 ? rc : 1;
        goto unlock;
    }
    LOG_INFO(MOD, "prune: %s %s (%llu bytes)", w->o->dry_run ? "would remove" : "removed", w->path,
             (unsigned long long)st.st_size);
    rc = add_item(w, w->path, (uint64_t)st.st_size, partial, STORE_PRUNE_REMOVED, 0, err);
unlock:
    store_lock_release(&lk);
    return rc;
}

static int walk_dir(struct walk *w, int dfd, int depth, size_t *left, genai_error *err);

/* Removes (dry run: counts) the now empty folder dfd/name. 0 when gone, 1
 * when it stays. */
static int remove_empty_dir(struct walk *w, int dfd, const char *name)
{
    /* A pull creates its file's folder and then the lock file in it: keep
     * empty folders while any pull runs (see the top of this file). */
    if (pulls_running(w))
        return 1;
    if (!w->o->dry_run && unlinkat(dfd, name, AT_REMOVEDIR) != 0)
        return errno == ENOENT ? 0 : 1; /* ENOTEMPTY: something arrived meanwhile */
    w->r->n_dirs_removed++;
    return 0;
}

/* A .partial goes when all were asked for, or when it was last written at
 * least partial_min_age_s ago (a running download holds its lock anyway). */
static int partial_wanted(const struct walk *w, const struct stat *st)
{
    if (w->o->include_partials)
        return 1;
    int64_t age = (int64_t)w->now - (int64_t)st->st_mtime;
    return w->o->partial_min_age_s > 0 && age >= w->o->partial_min_age_s;
}

/* One entry dfd/name (w->path): 0 when it is gone, 1 when it stays, < 0 on
 * a failure that ends the walk. */
static int walk_entry(struct walk *w, int dfd, const char *name, int depth, genai_error *err)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            return 0;
        LOG_WARN(MOD, "prune: cannot stat %s: %s", w->path, strerror(errno));
        return 1;
    }
    if (S_ISDIR(st.st_mode)) {
        if (depth >= PRUNE_MAX_DEPTH) {
            LOG_WARN(MOD, "prune: %s is deeper than %d folders: left alone", w->path,
                     PRUNE_MAX_DEPTH);
            return 1;
        }
        int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT)
                return 0;
            LOG_WARN(MOD, "prune: cannot open %s: %s", w->path, strerror(errno));
            return 1;
        }
        struct stat fst;
        if (fstat(fd, &fst) != 0 || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino) {
            close(fd); /* swapped since the lstat */
            return 1;
        }
        size_t left = 0;
        int rc = walk_dir(w, fd, depth + 1, &left, err);
        if (rc < 0)
            return rc;
        return left > 0 ? 1 : remove_empty_dir(w, dfd, name);
    }
    /* Symbolic links, fifos, sockets: never followed, never removed. */
    if (!S_ISREG(st.st_mode) || has_suffix(name, ".lock"))
        return 1;
    if (inuse_has(&w->in, w->path, &st))
        return 1;
    int partial = has_suffix(name, ".partial");
    if (partial && !partial_wanted(w, &st)) {
        int rc = add_item(w, w->path, (uint64_t)st.st_size, 1, STORE_PRUNE_KEPT_PARTIAL, 0, err);
        return rc < 0 ? rc : 1;
    }
    return prune_file(w, dfd, name, &st, partial, err);
}

/* Walks the open folder dfd (its path in w->path; the fd is consumed) and
 * sets *left to the number of entries that stay. */
static int walk_dir(struct walk *w, int dfd, int depth, size_t *left, genai_error *err)
{
    size_t base = strlen(w->path);
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        int e = errno;
        close(dfd);
        return err_errno(err, e, "cannot read %s", w->path);
    }
    size_t stay = 0;
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0)
                rc = err_errno(err, errno, "cannot read %s", w->path);
            break;
        }
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        if ((size_t)snprintf(w->path + base, sizeof(w->path) - base, "/%s", name) >=
            sizeof(w->path) - base) {
            w->path[base] = '\0';
            LOG_WARN(MOD, "prune: a name in %s is too long: left alone", w->path);
            stay++;
            continue;
        }
        if ((rc = walk_entry(w, dirfd(d), name, depth, err)) < 0)
            break;
        stay += (size_t)rc;
        rc = 0;
    }
    closedir(d);
    w->path[base] = '\0';
    if (rc == 0)
        *left = stay;
    return rc;
}

int store_prune(store_db *db, const char *data_dir, const store_prune_opts *o,
                store_prune_report *out, genai_error *err)
{
    static const store_prune_opts defaults = {0, 0, 0, NULL, NULL};
    struct walk *w = mem_calloc(1, sizeof(*w));
    store_prune_report r;
    int rc;
    if (w == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    memset(&r, 0, sizeof(r));
    w->db = db;
    w->o = o != NULL ? o : &defaults;
    w->r = &r;
    w->now = time(NULL);
    r.dry_run = w->o->dry_run;
    if ((rc = paths_join(w->locks, sizeof(w->locks), data_dir, "locks")) < 0 ||
        (rc = paths_join(w->path, sizeof(w->path), data_dir, "models")) < 0) {
        rc = err_set(err, rc, "data folder path too long");
        goto done;
    }
    if ((rc = inuse_load(db, &w->in, err)) < 0)
        goto done;
    /* <data>/models itself may be a link (to another disk): the store
     * writes through it too. Nothing below it is followed. */
    int fd = open(w->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            rc = 0;
            goto done;
        }
        rc = err_errno(err, errno, "cannot open %s", w->path);
        goto done;
    }
    size_t left = 0;
    rc = walk_dir(w, fd, 0, &left, err);
done:
    inuse_free(&w->in);
    mem_free(w);
    if (rc < 0) {
        store_prune_report_free(&r);
        return rc;
    }
    *out = r;
    return 0;
}
