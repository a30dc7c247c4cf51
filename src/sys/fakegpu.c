/*
 * fakegpu.c - the fake GPU file (see fakegpu.h and docs/fake-gpu.md).
 *
 * Every operation is "lock, read, account, maybe modify, maybe write, unlock".
 * The JSON is untrusted: sizes, counts and strings are capped, integers must
 * be non-negative JSON integers, and an allocation must name an existing
 * device. Writing goes through a per-process temporary file and rename(2), so
 * a reader that ignores the lock still sees either the old or the new file.
 */
#include "sys/fakegpu.h"

#include "core/alloc.h"
#include "core/log.h"
#include "core/paths.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define MOD "fakegpu"

uint64_t fakegpu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* ---- parsing --------------------------------------------------------- */

/* Reads an optional non-negative integer member; *out untouched if absent. */
static int get_u64(const json_t *obj, const char *key, int required, uint64_t *out,
                   const char *where, genai_error *err)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        if (required)
            return err_set(err, GENAI_ECORRUPT, "%s: missing \"%s\"", where, key);
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return err_set(err, GENAI_ECORRUPT, "%s: \"%s\" is not a non-negative integer", where, key);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_str(const json_t *obj, const char *key, char *dst, size_t dstsz, const char *where,
                   genai_error *err)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return err_set(err, GENAI_ECORRUPT, "%s: \"%s\" is not a string", where, key);
    size_t n = json_string_length(v);
    if (n >= dstsz)
        return err_set(err, GENAI_ETOO_LARGE, "%s: \"%s\" longer than %zu bytes", where, key,
                       dstsz - 1);
    const char *s = json_string_value(v);
    if (memchr(s, '\0', n) != NULL)
        return err_set(err, GENAI_ECORRUPT, "%s: \"%s\" contains a NUL", where, key);
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

static int parse_device(const json_t *jd, uint32_t i, fakegpu_device *d, genai_error *err)
{
    char where[48];
    snprintf(where, sizeof(where), "devices[%u]", i);
    if (!json_is_object(jd))
        return err_set(err, GENAI_ECORRUPT, "%s is not an object", where);
    int rc;
    if ((rc = get_str(jd, "name", d->name, sizeof(d->name), where, err)) < 0 ||
        (rc = get_str(jd, "uuid", d->uuid, sizeof(d->uuid), where, err)) < 0 ||
        (rc = get_str(jd, "pci_bus_id", d->pci_bus_id, sizeof(d->pci_bus_id), where, err)) < 0 ||
        (rc = get_u64(jd, "total_bytes", 1, &d->total_bytes, where, err)) < 0 ||
        (rc = get_u64(jd, "base_used_bytes", 0, &d->base_used_bytes, where, err)) < 0 ||
        (rc = get_u64(jd, "release_delay_ms", 0, &d->release_delay_ms, where, err)) < 0)
        return rc;
    if (d->base_used_bytes > d->total_bytes)
        return err_set(err, GENAI_ECORRUPT, "%s: base_used_bytes %llu > total_bytes %llu", where,
                       (unsigned long long)d->base_used_bytes, (unsigned long long)d->total_bytes);
    return 0;
}

static int parse_alloc(const json_t *ja, uint32_t i, uint32_t n_devices, fakegpu_alloc *a,
                       genai_error *err)
{
    char where[48];
    snprintf(where, sizeof(where), "allocations[%u]", i);
    if (!json_is_object(ja))
        return err_set(err, GENAI_ECORRUPT, "%s is not an object", where);
    uint64_t dev = 0, pid = 0;
    int rc;
    if ((rc = get_u64(ja, "device", 1, &dev, where, err)) < 0 ||
        (rc = get_u64(ja, "pid", 1, &pid, where, err)) < 0 ||
        (rc = get_u64(ja, "bytes", 1, &a->bytes, where, err)) < 0 ||
        (rc = get_u64(ja, "released_at_ms", 0, &a->released_at_ms, where, err)) < 0)
        return rc;
    if (dev >= n_devices)
        return err_set(err, GENAI_ECORRUPT, "%s: device %llu does not exist", where,
                       (unsigned long long)dev);
    if (pid == 0 || pid > INT32_MAX)
        return err_set(err, GENAI_ECORRUPT, "%s: pid %llu out of range", where,
                       (unsigned long long)pid);
    a->device = (uint32_t)dev;
    a->pid = (int32_t)pid;
    return 0;
}

int fakegpu_parse(const char *text, size_t len, fakegpu_state *out, genai_error *err)
{
    if (len > FAKEGPU_MAX_BYTES)
        return err_set(err, GENAI_ETOO_LARGE, "fake GPU file larger than %u bytes",
                       FAKEGPU_MAX_BYTES);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return err_set(err, GENAI_ECORRUPT, "fake GPU JSON, line %d column %d: %s", jerr.line,
                       jerr.column, jerr.text);
    fakegpu_state st;
    memset(&st, 0, sizeof(st));
    int rc = 0;
    if (!json_is_object(root)) {
        rc = err_set(err, GENAI_ECORRUPT, "fake GPU JSON is not an object");
        goto out;
    }
    if ((rc = get_str(root, "driver_version", st.driver_version, sizeof(st.driver_version),
                      "fake GPU", err)) < 0 ||
        (rc = get_str(root, "cuda_version", st.cuda_version, sizeof(st.cuda_version), "fake GPU",
                      err)) < 0)
        goto out;

    const json_t *jdevs = json_object_get(root, "devices");
    if (!json_is_array(jdevs)) {
        rc = err_set(err, GENAI_ECORRUPT, "fake GPU: \"devices\" missing or not an array");
        goto out;
    }
    size_t nd = json_array_size(jdevs);
    if (nd > FAKEGPU_MAX_DEVICES) {
        rc = err_set(err, GENAI_ETOO_LARGE, "fake GPU: %zu devices (max %u)", nd,
                     FAKEGPU_MAX_DEVICES);
        goto out;
    }
    if (nd > 0) {
        st.devices = mem_calloc(nd, sizeof(*st.devices));
        if (st.devices == NULL) {
            rc = err_set(err, -ENOMEM, "fake GPU devices");
            goto out;
        }
    }
    for (size_t i = 0; i < nd; i++) {
        if ((rc = parse_device(json_array_get(jdevs, i), (uint32_t)i, &st.devices[i], err)) < 0)
            goto out;
        st.n_devices++;
    }

    const json_t *jallocs = json_object_get(root, "allocations");
    if (jallocs != NULL && !json_is_array(jallocs)) {
        rc = err_set(err, GENAI_ECORRUPT, "fake GPU: \"allocations\" is not an array");
        goto out;
    }
    size_t na = json_array_size(jallocs); /* 0 for NULL */
    if (na > FAKEGPU_MAX_ALLOCS) {
        rc = err_set(err, GENAI_ETOO_LARGE, "fake GPU: %zu allocations (max %u)", na,
                     FAKEGPU_MAX_ALLOCS);
        goto out;
    }
    if (na > 0) {
        st.allocs = mem_calloc(na, sizeof(*st.allocs));
        if (st.allocs == NULL) {
            rc = err_set(err, -ENOMEM, "fake GPU allocations");
            goto out;
        }
    }
    for (size_t i = 0; i < na; i++) {
        if ((rc = parse_alloc(json_array_get(jallocs, i), (uint32_t)i, st.n_devices, &st.allocs[i],
                              err)) < 0)
            goto out;
        st.n_allocs++;
    }
    *out = st;
    memset(&st, 0, sizeof(st));
out:
    fakegpu_state_free(&st);
    json_decref(root);
    return rc;
}

void fakegpu_state_free(fakegpu_state *st)
{
    if (st == NULL)
        return;
    mem_free(st->devices);
    mem_free(st->allocs);
    memset(st, 0, sizeof(*st));
}

/* ---- formatting ------------------------------------------------------ */

static int set_int(json_t *obj, const char *key, uint64_t v)
{
    /* Parsed values are <= INT64_MAX; clamp anything a caller built by hand. */
    json_int_t i = v > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)v;
    return json_object_set_new(obj, key, json_integer(i));
}

char *fakegpu_format(const fakegpu_state *st)
{
    char *text = NULL;
    json_t *root = json_object();
    json_t *devs = json_array();
    json_t *allocs = json_array();
    if (root == NULL || devs == NULL || allocs == NULL)
        goto out;
    if (json_object_set_new(root, "driver_version", json_string(st->driver_version)) != 0 ||
        json_object_set_new(root, "cuda_version", json_string(st->cuda_version)) != 0)
        goto out;
    for (uint32_t i = 0; i < st->n_devices; i++) {
        const fakegpu_device *d = &st->devices[i];
        json_t *o = json_object();
        if (o == NULL || json_array_append_new(devs, o) != 0)
            goto out;
        if (json_object_set_new(o, "name", json_string(d->name)) != 0 ||
            json_object_set_new(o, "uuid", json_string(d->uuid)) != 0 ||
            json_object_set_new(o, "pci_bus_id", json_string(d->pci_bus_id)) != 0 ||
            set_int(o, "total_bytes", d->total_bytes) != 0 ||
            set_int(o, "base_used_bytes", d->base_used_bytes) != 0 ||
            set_int(o, "release_delay_ms", d->release_delay_ms) != 0)
            goto out;
    }
    for (uint32_t i = 0; i < st->n_allocs; i++) {
        const fakegpu_alloc *a = &st->allocs[i];
        json_t *o = json_object();
        if (o == NULL || json_array_append_new(allocs, o) != 0)
            goto out;
        if (set_int(o, "device", a->device) != 0 || set_int(o, "pid", (uint64_t)a->pid) != 0 ||
            set_int(o, "bytes", a->bytes) != 0 ||
            set_int(o, "released_at_ms", a->released_at_ms) != 0)
            goto out;
    }
    if (json_object_set(root, "devices", devs) != 0 ||
        json_object_set(root, "allocations", allocs) != 0)
        goto out;
    {
        /* Dump into our own buffer so the caller frees with mem_free(). */
        size_t flags = JSON_INDENT(1) | JSON_PRESERVE_ORDER;
        size_t need = json_dumpb(root, NULL, 0, flags);
        if (need == 0)
            goto out;
        text = mem_alloc(need + 1);
        if (text == NULL)
            goto out;
        if (json_dumpb(root, text, need, flags) != need) {
            mem_free(text);
            text = NULL;
            goto out;
        }
        text[need] = '\0';
    }
out:
    json_decref(devs);
    json_decref(allocs);
    json_decref(root);
    return text;
}

/* ---- accounting ------------------------------------------------------ */

int fakegpu_pid_alive(int32_t pid)
{
    if (pid <= 0)
        return 0;
    if (kill(pid, 0) != 0 && errno != EPERM)
        return 0;
    /* kill() succeeds on a zombie; a zombie has closed its GPU context. */
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    char buf[512];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : 1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 1;
    buf[n] = '\0';
    /* "pid (comm) S ...": comm may hold spaces and ')', so use the last ')'. */
    const char *rp = strrchr(buf, ')');
    if (rp == NULL || rp[1] != ' ')
        return 1;
    return !(rp[2] == 'Z' || rp[2] == 'X');
}

int fakegpu_alloc_counts(const fakegpu_state *st, const fakegpu_alloc *a, uint64_t now_ms)
{
    if (a->device >= st->n_devices)
        return 0;
    if (a->released_at_ms == 0)
        return 1;
    return now_ms < sat_add(a->released_at_ms, st->devices[a->device].release_delay_ms);
}

int fakegpu_account(fakegpu_state *st, uint64_t now_ms, int (*is_alive)(int32_t pid))
{
    if (is_alive == NULL)
        is_alive = fakegpu_pid_alive;
    int changed = 0;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < st->n_allocs; i++) {
        fakegpu_alloc *a = &st->allocs[i];
        if (a->released_at_ms == 0 && !is_alive(a->pid)) {
            /* 0 means "held", so a release stamped at time 0 becomes 1. */
            a->released_at_ms = now_ms ? now_ms : 1;
            changed = 1;
        }
        if (!fakegpu_alloc_counts(st, a, now_ms)) {
            changed = 1;
            continue;
        }
        st->allocs[kept++] = *a;
    }
    st->n_allocs = kept;
    for (uint32_t d = 0; d < st->n_devices; d++)
        st->devices[d].used_bytes = st->devices[d].base_used_bytes;
    for (uint32_t i = 0; i < st->n_allocs; i++) {
        fakegpu_device *d = &st->devices[st->allocs[i].device];
        d->used_bytes = sat_add(d->used_bytes, st->allocs[i].bytes);
    }
    return changed;
}

/* ---- file access ----------------------------------------------------- */

static int lock_file(const char *path, int *fd_out, genai_error *err)
{
    char lock_path[PATHS_MAX];
    int n = snprintf(lock_path, sizeof(lock_path), "%s.lock", path);
    if (n < 0 || (size_t)n >= sizeof(lock_path))
        return err_set(err, -ENAMETOOLONG, "fake GPU path too long: %s", path);
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_errno(err, errno, "opening %s", lock_path);
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            return err_errno(err, e, "locking %s", lock_path);
        }
    }
    *fd_out = fd;
    return 0;
}

static void unlock_file(int fd)
{
    /* Closing the descriptor drops the flock. */
    close(fd);
}

static int load_locked(const char *path, fakegpu_state *st, genai_error *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = paths_read_file(path, FAKEGPU_MAX_BYTES, &text, &len, err);
    if (rc < 0)
        return rc;
    rc = fakegpu_parse(text, len, st, err);
    mem_free(text);
    if (rc < 0)
        err_prefix(err, "%s", path);
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int store_locked(const char *path, const fakegpu_state *st, genai_error *err)
{
    char tmp[PATHS_MAX];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return err_set(err, -ENAMETOOLONG, "fake GPU path too long: %s", path);
    char *text = fakegpu_format(st);
    if (text == NULL)
        return err_set(err, -ENOMEM, "formatting %s", path);
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = err_errno(err, errno, "creating %s", tmp);
        goto out;
    }
    rc = write_all(fd, text, strlen(text));
    if (rc == 0)
        rc = write_all(fd, "\n", 1);
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc < 0) {
        err_errno(err, -rc, "writing %s", tmp);
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        rc = err_errno(err, errno, "renaming %s to %s", tmp, path);
        unlink(tmp);
    }
out:
    mem_free(text);
    return rc;
}

int fakegpu_read(const char *path, fakegpu_state *out, genai_error *err)
{
    int lfd;
    int rc = lock_file(path, &lfd, err);
    if (rc < 0)
        return rc;
    fakegpu_state st;
    memset(&st, 0, sizeof(st));
    rc = load_locked(path, &st, err);
    if (rc < 0)
        goto out;
    if (fakegpu_account(&st, fakegpu_now_ms(), NULL)) {
        genai_error werr;
        /* A read-only file still gives a correct answer; the next writer
         * stamps and prunes. */
        if (store_locked(path, &st, &werr) < 0)
            LOG_DEBUG(MOD, "not rewriting %s: %s", path, werr.detail);
    }
    *out = st;
    memset(&st, 0, sizeof(st));
out:
    fakegpu_state_free(&st);
    unlock_file(lfd);
    return rc;
}

int fakegpu_write(const char *path, const fakegpu_state *st, genai_error *err)
{
    int lfd;
    int rc = lock_file(path, &lfd, err);
    if (rc < 0)
        return rc;
    rc = store_locked(path, st, err);
    unlock_file(lfd);
    return rc;
}

int fakegpu_try_alloc(const char *path, uint32_t device, int32_t pid, uint64_t bytes,
                      uint64_t *free_out, genai_error *err)
{
    if (pid <= 0 || bytes > (uint64_t)INT64_MAX)
        return err_set(err, GENAI_EBAD_ARG, "fake GPU allocation: bad pid %d or size %llu",
                       (int)pid, (unsigned long long)bytes);
    int lfd;
    int rc = lock_file(path, &lfd, err);
    if (rc < 0)
        return rc;
    fakegpu_state st;
    memset(&st, 0, sizeof(st));
    rc = load_locked(path, &st, err);
    if (rc < 0)
        goto out;
    fakegpu_account(&st, fakegpu_now_ms(), NULL);
    if (device >= st.n_devices) {
        rc = err_set(err, GENAI_ENO_DEVICE, "fake GPU %u does not exist (%u devices)", device,
                     st.n_devices);
        goto out;
    }
    const fakegpu_device *d = &st.devices[device];
    uint64_t free_bytes = d->used_bytes >= d->total_bytes ? 0 : d->total_bytes - d->used_bytes;
    if (free_out != NULL)
        *free_out = free_bytes;
    if (bytes > free_bytes) {
        rc = err_set(err, GENAI_ENO_FIT,
                     "fake GPU %u: cannot allocate %llu bytes, %llu free of %llu", device,
                     (unsigned long long)bytes, (unsigned long long)free_bytes,
                     (unsigned long long)d->total_bytes);
        goto out;
    }
    if (st.n_allocs >= FAKEGPU_MAX_ALLOCS) {
        rc = err_set(err, GENAI_ETOO_LARGE, "fake GPU: %u allocations held", st.n_allocs);
        goto out;
    }
    fakegpu_alloc *na = mem_reallocarray(st.allocs, (size_t)st.n_allocs + 1, sizeof(*na));
    if (na == NULL) {
        rc = err_set(err, -ENOMEM, "fake GPU allocation");
        goto out;
    }
    st.allocs = na;
    st.allocs[st.n_allocs++] = (fakegpu_alloc){device, pid, bytes, 0};
    rc = store_locked(path, &st, err);
out:
    fakegpu_state_free(&st);
    unlock_file(lfd);
    return rc;
}

int fakegpu_release(const char *path, int32_t pid, genai_error *err)
{
    return fakegpu_release_after(path, pid, 0, err);
}

int fakegpu_release_after(const char *path, int32_t pid, uint64_t hold_ms, genai_error *err)
{
    int lfd;
    int rc = lock_file(path, &lfd, err);
    if (rc < 0)
        return rc;
    fakegpu_state st;
    memset(&st, 0, sizeof(st));
    rc = load_locked(path, &st, err);
    if (rc < 0)
        goto out;
    uint64_t now = fakegpu_now_ms();
    int released = 0;
    for (uint32_t i = 0; i < st.n_allocs; i++) {
        if (st.allocs[i].pid == pid && st.allocs[i].released_at_ms == 0) {
            st.allocs[i].released_at_ms = now + hold_ms ? now + hold_ms : 1;
            released++;
        }
    }
    int changed = fakegpu_account(&st, now, NULL);
    if (released > 0 || changed)
        rc = store_locked(path, &st, err);
    if (rc == 0)
        rc = released;
out:
    fakegpu_state_free(&st);
    unlock_file(lfd);
    return rc;
}
