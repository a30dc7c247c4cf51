/*
 * test_prune.c - store_prune and `genai prune` (through store_cli) on a real
 * data folder: registered files kept (also when the registry spells the path
 * differently), unregistered files removed with the folders they leave
 * empty, partial downloads kept unless asked for (all, or by age), a file
 * whose lock another process holds skipped and reported, finished files
 * kept while another process holds a model lock (a pull that may be about
 * to register them) and a file registered while prune held its lock,
 * symbolic links inside models/ never followed, files registered in place
 * outside models/ never looked at, a dry run that removes nothing and
 * reports what the real run then does, every allocation failing in turn,
 * and the command's human and JSON output.
 */
#include "cmocka_all.h"

#include "testutil/testutil.h"

#include "core/alloc.h"
#include "core/paths.h"
#include "store/digest.h"
#include "store/lock.h"
#include "store/prune.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct fx {
    char dir[128];
    char home[256];
    char data[300];
    char models[320];
    char outside[256];
    store *s;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(tu_mkdtemp(f->dir, sizeof(f->dir), "prune"), 0);
    snprintf(f->home, sizeof(f->home), "%s/home", f->dir);
    snprintf(f->data, sizeof(f->data), "%s/data", f->home);
    snprintf(f->models, sizeof(f->models), "%s/models", f->data);
    snprintf(f->outside, sizeof(f->outside), "%s/outside", f->dir);
    assert_int_equal(paths_mkdirs(f->models, 0755, NULL), 0);
    assert_int_equal(paths_mkdirs(f->outside, 0755, NULL), 0);
    assert_int_equal(store_open_at(f->data, &f->s, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    tu_rm_rf(f->dir);
    free(f);
    return 0;
}

/* <models>/rel into out. */
static void mpath(struct fx *f, const char *rel, char *out, size_t outsz)
{
    assert_true((size_t)snprintf(out, outsz, "%s/%s", f->models, rel) < outsz);
}

/* Writes len bytes (seeded) at path, creating its folder. */
static void put(const char *path, size_t len, uint32_t seed)
{
    char dir[PATHS_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    *strrchr(dir, '/') = '\0';
    assert_int_equal(paths_mkdirs(dir, 0755, NULL), 0);
    unsigned char *b = malloc(len + 1);
    assert_non_null(b);
    tu_fill(b, len, seed);
    assert_int_equal(tu_write(path, b, len), 0);
    free(b);
}

/* Registers one file as model id, managed (pulled) or in place. */
static void reg(struct fx *f, const char *id, const char *path, int managed)
{
    char sha[STORE_SHA256_HEX];
    uint64_t size = 0;
    assert_int_equal(store_sha256_file(path, sha, &size, NULL), 0);
    store_file file = {
        (char *)"model", (char *)path, sha, size, managed ? (char *)"https://example.test/x" : NULL,
        managed};
    store_model m;
    memset(&m, 0, sizeof(m));
    m.id = (char *)id;
    m.name = (char *)id;
    m.kind = STORE_KIND_LLM;
    m.sha256 = sha;
    m.size = size;
    m.files = &file;
    m.n_files = 1;
    genai_error e;
    assert_int_equal(store_db_put_model(store_registry(f->s), &m, &e), 0);
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int prune(struct fx *f, int dry, int partials, int64_t min_age, store_prune_report *r)
{
    store_prune_opts o = {dry, partials, min_age, NULL, NULL};
    genai_error e;
    genai_error_clear(&e);
    int rc = store_prune(store_registry(f->s), f->data, &o, r, &e);
    if (rc < 0)
        fprintf(stderr, "store_prune: %s\n", e.detail);
    return rc;
}

static const store_prune_item *item(const store_prune_report *r, const char *path)
{
    for (size_t i = 0; i < r->n_items; i++) {
        if (strcmp(r->items[i].path, path) == 0)
            return &r->items[i];
    }
    return NULL;
}

/* A child process that holds the store locks at paths until release_locks. */
struct holder {
    pid_t pid;
    int release_fd;
};

static struct holder hold_locks(const char *const *paths, size_t n)
{
    int ready[2], hold[2];
    assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
    assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        store_lock lk[4] = {STORE_LOCK_INIT, STORE_LOCK_INIT, STORE_LOCK_INIT, STORE_LOCK_INIT};
        close(ready[0]);
        close(hold[1]);
        for (size_t i = 0; i < n && i < 4; i++) {
            if (store_lock_acquire(&lk[i], paths[i], NULL, NULL, NULL, NULL) < 0)
                _exit(2);
        }
        if (write(ready[1], "r", 1) != 1)
            _exit(3);
        char c;
        while (read(hold[0], &c, 1) < 0 && errno == EINTR)
            ;
        for (size_t i = 0; i < n && i < 4; i++)
            store_lock_release(&lk[i]);
        _exit(0);
    }
    close(ready[1]);
    close(hold[0]);
    char c;
    ssize_t got;
    while ((got = read(ready[0], &c, 1)) < 0 && errno == EINTR)
        ;
    assert_int_equal(got, 1); /* the child holds every lock */
    close(ready[0]);
    return (struct holder){pid, hold[1]};
}

static void release_locks(struct holder h)
{
    int st = 0;
    close(h.release_fd);
    while (waitpid(h.pid, &st, 0) < 0 && errno == EINTR)
        ;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- what is kept, what goes ------------------------------------------- */

struct layout {
    char kept[PATHS_MAX], spelled[PATHS_MAX], spelled_reg[PATHS_MAX], orphan[PATHS_MAX];
    char deep[PATHS_MAX], deep_dir[PATHS_MAX], url[PATHS_MAX], url_dir[PATHS_MAX];
    char partial[PATHS_MAX], stale_lock[PATHS_MAX], link[PATHS_MAX], target[PATHS_MAX];
    char dirlink[PATHS_MAX], victim[PATHS_MAX], inplace[PATHS_MAX], loose[PATHS_MAX];
};

static void build_layout(struct fx *f, struct layout *l)
{
    char tmp[PATHS_MAX];
    mpath(f, "hf/o/r/kept.gguf", l->kept, sizeof(l->kept));
    put(l->kept, 3000, 1);
    reg(f, "kept", l->kept, 1);
    /* registered through another spelling of the same file */
    mpath(f, "hf/o/r/spelled.gguf", l->spelled, sizeof(l->spelled));
    put(l->spelled, 1500, 2);
    snprintf(l->spelled_reg, sizeof(l->spelled_reg), "%s/./models/hf/o/../o/r/spelled.gguf",
             f->data);
    reg(f, "spelled", l->spelled_reg, 1);
    mpath(f, "hf/o/r/orphan.gguf", l->orphan, sizeof(l->orphan));
    put(l->orphan, 5000, 3);
    mpath(f, "hf/o/r/sub/deeper/other.bin", l->deep, sizeof(l->deep));
    put(l->deep, 700, 4);
    mpath(f, "hf/o/r/sub", l->deep_dir, sizeof(l->deep_dir));
    mpath(f, "url/host.test/x.gguf", l->url, sizeof(l->url));
    put(l->url, 900, 5);
    mpath(f, "url", l->url_dir, sizeof(l->url_dir));
    mpath(f, "hf/o/r/big.gguf.partial", l->partial, sizeof(l->partial));
    put(l->partial, 2500, 6);
    /* a lock file a killed pull left: not a candidate */
    mpath(f, "hf/o/r/stale.lock", l->stale_lock, sizeof(l->stale_lock));
    put(l->stale_lock, 0, 7);
    /* links inside models/ pointing outside: never followed */
    snprintf(l->target, sizeof(l->target), "%s/target.bin", f->outside);
    put(l->target, 111, 8);
    mpath(f, "hf/o/r/link.gguf", l->link, sizeof(l->link));
    assert_int_equal(symlink(l->target, l->link), 0);
    snprintf(tmp, sizeof(tmp), "%s/dir", f->outside);
    snprintf(l->victim, sizeof(l->victim), "%s/dir/victim.bin", f->outside);
    put(l->victim, 222, 9);
    mpath(f, "hf/evil", l->dirlink, sizeof(l->dirlink));
    assert_int_equal(symlink(tmp, l->dirlink), 0);
    /* registered in place outside models/, and a loose file next to it */
    snprintf(l->inplace, sizeof(l->inplace), "%s/inplace.gguf", f->outside);
    put(l->inplace, 333, 10);
    reg(f, "inplace", l->inplace, 0);
    snprintf(l->loose, sizeof(l->loose), "%s/loose.gguf", f->outside);
    put(l->loose, 444, 11);
}

static void assert_kept_files_there(const struct layout *l)
{
    assert_int_equal(tu_size(l->kept), 3000);
    assert_int_equal(tu_size(l->spelled), 1500);
    assert_int_equal(tu_size(l->partial), 2500);
    assert_true(exists(l->stale_lock));
    assert_true(exists(l->link));
    assert_true(exists(l->dirlink));
    assert_int_equal(tu_size(l->target), 111);
    assert_int_equal(tu_size(l->victim), 222);
    assert_int_equal(tu_size(l->inplace), 333);
    assert_int_equal(tu_size(l->loose), 444);
}

static void assert_report(const store_prune_report *r, const struct layout *l, int dry)
{
    assert_int_equal(r->dry_run, dry);
    assert_int_equal(r->n_removed, 3);
    assert_int_equal(r->bytes_freed, 5000 + 700 + 900);
    assert_int_equal(r->n_skipped, 0);
    assert_int_equal(r->n_failed, 0);
    assert_int_equal(r->n_kept_partial, 1);
    assert_int_equal(r->bytes_partial, 2500);
    /* sub/deeper, sub, url/host.test, url */
    assert_int_equal(r->n_dirs_removed, 4);
    assert_int_equal(r->n_items, 4);
    const char *gone[] = {l->orphan, l->deep, l->url};
    for (size_t i = 0; i < 3; i++) {
        const store_prune_item *it = item(r, gone[i]);
        assert_non_null(it);
        assert_int_equal(it->action, STORE_PRUNE_REMOVED);
        assert_int_equal(it->partial, 0);
    }
    const store_prune_item *p = item(r, l->partial);
    assert_non_null(p);
    assert_int_equal(p->action, STORE_PRUNE_KEPT_PARTIAL);
    assert_int_equal(p->partial, 1);
    assert_int_equal(p->size, 2500);
    assert_null(item(r, l->kept));
    assert_null(item(r, l->spelled));
}

static void test_dry_run_then_prune(void **state)
{
    struct fx *f = *state;
    struct layout l;
    build_layout(f, &l);
    int fds = tu_fd_count();

    store_prune_report dry;
    assert_int_equal(prune(f, 1, 0, 0, &dry), 0);
    assert_report(&dry, &l, 1);
    assert_kept_files_there(&l);
    assert_int_equal(tu_size(l.orphan), 5000); /* a dry run removes nothing */
    assert_int_equal(tu_size(l.deep), 700);
    assert_int_equal(tu_size(l.url), 900);

    store_prune_report r;
    assert_int_equal(prune(f, 0, 0, 0, &r), 0);
    assert_report(&r, &l, 0);
    for (size_t i = 0; i < r.n_items; i++) { /* the dry run's report */
        const store_prune_item *d = item(&dry, r.items[i].path);
        assert_non_null(d);
        assert_int_equal(d->action, r.items[i].action);
        assert_int_equal(d->size, r.items[i].size);
    }
    assert_kept_files_there(&l);
    assert_false(exists(l.orphan));
    assert_false(exists(l.deep));
    assert_false(exists(l.deep_dir));
    assert_false(exists(l.url));
    assert_false(exists(l.url_dir));
    assert_true(exists(f->models));
    assert_int_equal(tu_fd_count(), fds);
    store_prune_report_free(&dry);
    store_prune_report_free(&r);

    /* nothing left to do; the lock files prune took are gone */
    char lock[PATHS_MAX + 8];
    snprintf(lock, sizeof(lock), "%s.lock", l.orphan);
    assert_false(exists(lock));
    assert_int_equal(prune(f, 0, 0, 0, &r), 0);
    assert_int_equal(r.n_removed, 0);
    assert_int_equal(r.n_dirs_removed, 0);
    store_prune_report_free(&r);

    /* an empty models/ stays; a missing one is an empty report */
    tu_rm_rf(f->models);
    assert_int_equal(prune(f, 0, 1, 0, &r), 0);
    assert_int_equal(r.n_items, 0);
    store_prune_report_free(&r);
}

static void test_partials(void **state)
{
    struct fx *f = *state;
    char old[PATHS_MAX], fresh[PATHS_MAX];
    mpath(f, "url/h/old.gguf.partial", old, sizeof(old));
    mpath(f, "url/h/fresh.gguf.partial", fresh, sizeof(fresh));
    put(old, 400, 1);
    put(fresh, 600, 2);
    /* last written ten days ago */
    struct timespec ts[2] = {{time(NULL) - 10 * 86400, 0}, {time(NULL) - 10 * 86400, 0}};
    assert_int_equal(utimensat(AT_FDCWD, old, ts, 0), 0);

    store_prune_report r;
    assert_int_equal(prune(f, 0, 0, 0, &r), 0); /* default: kept */
    assert_int_equal(r.n_removed, 0);
    assert_int_equal(r.n_kept_partial, 2);
    assert_int_equal(r.bytes_partial, 1000);
    store_prune_report_free(&r);

    assert_int_equal(prune(f, 0, 0, 11 * 86400, &r), 0); /* not that old */
    assert_int_equal(r.n_removed, 0);
    store_prune_report_free(&r);

    assert_int_equal(prune(f, 0, 0, 9 * 86400, &r), 0);
    assert_int_equal(r.n_removed, 1);
    assert_int_equal(r.bytes_freed, 400);
    assert_non_null(item(&r, old));
    assert_int_equal(item(&r, old)->action, STORE_PRUNE_REMOVED);
    assert_int_equal(item(&r, old)->partial, 1);
    assert_int_equal(item(&r, fresh)->action, STORE_PRUNE_KEPT_PARTIAL);
    assert_false(exists(old));
    assert_int_equal(tu_size(fresh), 600);
    store_prune_report_free(&r);

    assert_int_equal(prune(f, 0, 1, 0, &r), 0); /* --partials */
    assert_int_equal(r.n_removed, 1);
    assert_int_equal(r.n_dirs_removed, 2); /* url/h, url */
    assert_false(exists(fresh));
    store_prune_report_free(&r);
}

/* Another process holds <orphan>.lock and the lock of the file a partial
 * becomes: both skipped as busy, in a dry run too; removed once it lets go. */
static void test_busy_lock_skipped(void **state)
{
    struct fx *f = *state;
    char orphan[PATHS_MAX], partial[PATHS_MAX], l1[PATHS_MAX + 8], l2[PATHS_MAX + 8];
    mpath(f, "hf/o/r/orphan.gguf", orphan, sizeof(orphan));
    mpath(f, "hf/o/r/big.gguf.partial", partial, sizeof(partial));
    put(orphan, 1000, 1);
    put(partial, 2000, 2);
    snprintf(l1, sizeof(l1), "%s.lock", orphan);
    mpath(f, "hf/o/r/big.gguf.lock", l2, sizeof(l2));
    const char *locks[] = {l1, l2};
    struct holder h = hold_locks(locks, 2);

    for (int dry = 1; dry >= 0; dry--) {
        store_prune_report r;
        assert_int_equal(prune(f, dry, 1, 0, &r), 0);
        assert_int_equal(r.n_removed, 0);
        assert_int_equal(r.n_skipped, 2);
        assert_int_equal(r.n_dirs_removed, 0);
        assert_int_equal(item(&r, orphan)->action, STORE_PRUNE_BUSY);
        assert_int_equal(item(&r, partial)->action, STORE_PRUNE_BUSY);
        store_prune_report_free(&r);
        assert_int_equal(tu_size(orphan), 1000);
        assert_int_equal(tu_size(partial), 2000);
        assert_true(exists(l1)); /* the holder's lock files untouched */
        assert_true(exists(l2));
    }
    release_locks(h);
    assert_false(exists(l1)); /* the holder removed them on release */

    store_prune_report r;
    assert_int_equal(prune(f, 0, 1, 0, &r), 0);
    assert_int_equal(r.n_removed, 2);
    assert_int_equal(r.bytes_freed, 3000);
    assert_int_equal(r.n_skipped, 0);
    store_prune_report_free(&r);
    assert_false(exists(orphan));
    assert_false(exists(partial));
}

/* While another process holds a model lock (a pull that may register what
 * it fetched), finished unregistered files and empty folders stay; a
 * partial nobody writes goes when asked for. */
static void test_running_pull_keeps_finished_files(void **state)
{
    struct fx *f = *state;
    char done[PATHS_MAX], partial[PATHS_MAX], empty[PATHS_MAX], mlock[PATHS_MAX];
    mpath(f, "hf/o/r/done.gguf", done, sizeof(done));
    mpath(f, "hf/o/q/next.gguf.partial", partial, sizeof(partial));
    mpath(f, "hf/o/empty", empty, sizeof(empty));
    put(done, 1234, 1);
    put(partial, 99, 2);
    assert_int_equal(paths_mkdirs(empty, 0755, NULL), 0);
    snprintf(mlock, sizeof(mlock), "%s/locks/done.lock", f->data);
    const char *locks[] = {mlock};
    struct holder h = hold_locks(locks, 1);

    store_prune_report r;
    assert_int_equal(prune(f, 0, 1, 0, &r), 0);
    assert_int_equal(item(&r, done)->action, STORE_PRUNE_PULLING);
    assert_int_equal(item(&r, partial)->action, STORE_PRUNE_REMOVED);
    assert_int_equal(r.n_removed, 1);
    assert_int_equal(r.n_skipped, 1);
    assert_int_equal(r.n_dirs_removed, 0);
    store_prune_report_free(&r);
    assert_int_equal(tu_size(done), 1234);
    assert_true(exists(empty));
    assert_true(exists(mlock));

    /* the pull registers its file and lets go: kept for good */
    reg(f, "done", done, 1);
    release_locks(h);
    assert_int_equal(prune(f, 0, 1, 0, &r), 0);
    assert_null(item(&r, done));
    assert_int_equal(r.n_removed, 0);
    assert_int_equal(r.n_dirs_removed, 2); /* hf/o/empty, hf/o/q */
    store_prune_report_free(&r);
    assert_int_equal(tu_size(done), 1234);
    assert_false(exists(empty));
}

struct late {
    struct fx *f;
    const char *path, *id;
    int calls;
};

static void register_late(const char *path, void *ud)
{
    struct late *l = ud;
    if (strcmp(path, l->path) == 0 && l->calls++ == 0)
        reg(l->f, l->id, path, 1);
}

/* A file registered after the walk saw it unregistered, but before prune
 * reads the registry again under the file's lock (a pull committing at that
 * moment), stays; the file next to it goes. Dry run and real run. */
static void test_registered_meanwhile_is_kept(void **state)
{
    struct fx *f = *state;
    char late[2][PATHS_MAX], other[PATHS_MAX];
    mpath(f, "hf/o/r/late0.gguf", late[0], sizeof(late[0]));
    mpath(f, "hf/o/r/late1.gguf", late[1], sizeof(late[1]));
    mpath(f, "hf/o/r/other.gguf", other, sizeof(other));
    put(late[0], 4096, 1);
    put(late[1], 2048, 2);
    put(other, 10, 3);
    for (int dry = 1; dry >= 0; dry--) {
        struct late l = {f, late[dry], dry ? "late-dry" : "late-real", 0};
        store_prune_opts o = {dry, 0, 0, register_late, &l};
        store_prune_report r;
        assert_int_equal(store_prune(store_registry(f->s), f->data, &o, &r, NULL), 0);
        assert_int_equal(l.calls, 1);
        assert_null(item(&r, late[dry]));
        assert_non_null(item(&r, other));
        store_prune_report_free(&r);
        assert_true(exists(late[dry]));
    }
    assert_true(exists(late[0]));
    assert_true(exists(late[1]));
    assert_false(exists(other));
}

/* Every allocation failing in turn: -ENOMEM or success, never a leak (the
 * sanitizer build checks) and never a half-written report. */
static void test_out_of_memory(void **state)
{
    struct fx *f = *state;
    struct layout l;
    build_layout(f, &l);
    int done = 0;
    for (unsigned long n = 1; n < 2000 && !done; n++) {
        store_prune_report r;
        store_prune_opts o = {1, 0, 0, NULL, NULL};
        memset(&r, 0xa5, sizeof(r));
        mem_fail_after(n, 0);
        int rc = store_prune(store_registry(f->s), f->data, &o, &r, NULL);
        mem_fail_after(0, 0);
        if (rc == 0) {
            assert_int_equal(r.n_removed, 3);
            store_prune_report_free(&r);
            done = 1;
        } else {
            assert_int_equal(rc, -ENOMEM);
            assert_int_equal(r.n_items, (size_t)0xa5a5a5a5a5a5a5a5ULL); /* untouched */
        }
    }
    assert_true(done);
    assert_kept_files_there(&l);
}

/* ---- the command -------------------------------------------------------- */

static int run_cli(struct fx *f, const char *tag, const char *const *args)
{
    char cli[512], out[256], errp[256], home_env[300];
    const char *bd = getenv("GENAI_BUILD_DIR"); /* set by ctest (genai_test) */
    assert_non_null(bd);
    snprintf(cli, sizeof(cli), "%s/tests/store/store_cli", bd);
    snprintf(out, sizeof(out), "%s/%s.out", f->dir, tag);
    snprintf(errp, sizeof(errp), "%s/%s.err", f->dir, tag);
    snprintf(home_env, sizeof(home_env), "GENAI_HOME=%s", f->home);
    char *env[] = {home_env, "PATH=/usr/bin:/bin", NULL};
    char *argv[8];
    int n = 0;
    argv[n++] = cli;
    for (; args[n - 1] != NULL && n < 7; n++)
        argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    assert_int_equal(posix_spawn(&pid, cli, &fa, NULL, argv, env), 0);
    posix_spawn_file_actions_destroy(&fa);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static char *slurp(struct fx *f, const char *tag)
{
    char p[256];
    size_t n = 0;
    snprintf(p, sizeof(p), "%s/%s.out", f->dir, tag);
    unsigned char *b = tu_read(p, &n);
    assert_non_null(b);
    return (char *)b;
}

static void test_cli_human_and_json(void **state)
{
    struct fx *f = *state;
    char kept[PATHS_MAX], orphan[PATHS_MAX], busy[PATHS_MAX], lock[PATHS_MAX + 8];
    char line[PATHS_MAX + 64];
    mpath(f, "hf/o/r/kept.gguf", kept, sizeof(kept));
    mpath(f, "hf/o/r/orphan.gguf", orphan, sizeof(orphan));
    mpath(f, "url/h/busy.gguf", busy, sizeof(busy));
    put(kept, 100, 1);
    reg(f, "kept", kept, 1);
    put(orphan, 2048, 2);
    put(busy, 10, 3);
    snprintf(lock, sizeof(lock), "%s.lock", busy);
    struct holder h = hold_locks((const char *const[]){lock}, 1);

    const char *help[] = {"prune", "--help", NULL};
    assert_int_equal(run_cli(f, "help", help), 0);
    char *out = slurp(f, "help");
    assert_non_null(strstr(out, "--partials"));
    assert_non_null(strstr(out, "genai add"));
    mem_free(out);

    const char *dry[] = {"prune", "--dry-run", NULL};
    assert_int_equal(run_cli(f, "dry", dry), 0);
    out = slurp(f, "dry");
    snprintf(line, sizeof(line), "would remove %s (2.00 KiB)\n", orphan);
    assert_non_null(strstr(out, line));
    snprintf(line, sizeof(line), "skipped %s: in use by a pull\n", busy);
    assert_non_null(strstr(out, line));
    assert_non_null(strstr(out, "would remove 1 file, 2.00 KiB; 1 skipped\n"));
    assert_null(strstr(out, kept));
    mem_free(out);
    assert_int_equal(tu_size(orphan), 2048);

    const char *bad[] = {"prune", "--partials-older-than", "soon", NULL};
    assert_int_equal(run_cli(f, "bad", bad), 2);

    const char *js[] = {"prune", "--json", NULL};
    assert_int_equal(run_cli(f, "json", js), 0);
    out = slurp(f, "json");
    json_t *j = json_loads(out, 0, NULL);
    mem_free(out);
    assert_non_null(j);
    assert_true(json_is_false(json_object_get(j, "dry_run")));
    assert_int_equal(json_integer_value(json_object_get(j, "removed")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes_freed")), 2048);
    assert_int_equal(json_integer_value(json_object_get(j, "skipped")), 1);
    json_t *files = json_object_get(j, "files");
    assert_int_equal(json_array_size(files), 2);
    int seen = 0;
    for (size_t i = 0; i < json_array_size(files); i++) {
        json_t *it = json_array_get(files, i);
        const char *p = json_string_value(json_object_get(it, "path"));
        const char *a = json_string_value(json_object_get(it, "action"));
        assert_non_null(p);
        assert_non_null(a);
        if (strcmp(p, orphan) == 0) {
            assert_string_equal(a, "removed");
            assert_int_equal(json_integer_value(json_object_get(it, "size")), 2048);
            seen |= 1;
        } else if (strcmp(p, busy) == 0) {
            assert_string_equal(a, "busy");
            seen |= 2;
        }
    }
    assert_int_equal(seen, 3);
    json_decref(j);
    assert_false(exists(orphan));
    assert_int_equal(tu_size(busy), 10);
    assert_int_equal(tu_size(kept), 100);
    release_locks(h);

    const char *real[] = {"prune", NULL};
    assert_int_equal(run_cli(f, "real", real), 0);
    out = slurp(f, "real");
    snprintf(line, sizeof(line), "removed %s (10 B)\n", busy);
    assert_non_null(strstr(out, line));
    assert_non_null(strstr(out, "removed 1 file, 10 B, 2 empty folders\n"));
    mem_free(out);
    assert_false(exists(busy));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dry_run_then_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_lock_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_running_pull_keeps_finished_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registered_meanwhile_is_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_human_and_json, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
