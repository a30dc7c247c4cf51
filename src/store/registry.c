/*
 * registry.c - the SQLite model registry (see registry.h).
 *
 * Migrations are an array of SQL scripts; migration i brings the schema from
 * version i to i + 1. On open, each pending one runs in its own BEGIN
 * IMMEDIATE transaction that re-reads user_version first, so two processes
 * opening an old database at once upgrade it exactly once.
 */
#include "store/registry.h"

#include "core/alloc.h"
#include "core/log.h"
#include "diffusion/model_file.h"
#include "store/digest.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MOD "store"
#define BUSY_TIMEOUT_MS 5000

struct store_db {
    sqlite3 *sql;
    pthread_mutex_t mu;
    int version; /* the schema version once opened: columns that exist */
};

static const char *const migrations[STORE_SCHEMA_VERSION] = {
    /* 0 -> 1: models and their files */
    "CREATE TABLE models ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  name TEXT NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('llm', 'diffusion')),"
    "  source_url TEXT,"
    "  hf_repo TEXT,"
    "  hf_revision TEXT,"
    "  sha256 TEXT NOT NULL,"
    "  size INTEGER NOT NULL CHECK (size >= 0),"
    "  added_at INTEGER NOT NULL,"
    "  profile_json TEXT"
    ");"
    "CREATE TABLE files ("
    "  model_id TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    "  idx INTEGER NOT NULL,"
    "  role TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  sha256 TEXT NOT NULL,"
    "  size INTEGER NOT NULL CHECK (size >= 0),"
    "  url TEXT,"
    "  managed INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (model_id, idx)"
    ");"
    "CREATE INDEX files_sha256 ON files(sha256);",
    /* 1 -> 2: learned memory footprints */
    "CREATE TABLE footprints ("
    "  model_id TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    "  config_key TEXT NOT NULL,"
    "  device_bytes_json TEXT NOT NULL,"
    "  host_anon INTEGER NOT NULL,"
    "  host_file INTEGER NOT NULL,"
    "  measured_at INTEGER NOT NULL,"
    "  runtime_build TEXT,"
    "  PRIMARY KEY (model_id, config_key)"
    ");",
    /* 2 -> 3: diffusion models' detection and settings override */
    "ALTER TABLE models ADD COLUMN detection_json TEXT;"
    "ALTER TABLE models ADD COLUMN settings_json TEXT;",
};

const char *store_kind_name(store_kind kind)
{
    return kind == STORE_KIND_DIFFUSION ? "diffusion" : "llm";
}

int store_kind_parse(const char *text, store_kind *out)
{
    if (text != NULL && strcmp(text, "llm") == 0) {
        *out = STORE_KIND_LLM;
        return 0;
    }
    if (text != NULL && strcmp(text, "diffusion") == 0) {
        *out = STORE_KIND_DIFFUSION;
        return 0;
    }
    return GENAI_EBAD_ARG;
}

int store_role_valid(const char *role)
{
    /* One vocabulary: the diffusion module's roles (see registry.h). */
    enum dm_role r;
    return dm_role_parse(role, &r, NULL) == 0;
}

void store_model_free(store_model *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_files; i++) {
        mem_free(m->files[i].role);
        mem_free(m->files[i].path);
        mem_free(m->files[i].sha256);
        mem_free(m->files[i].url);
    }
    mem_free(m->files);
    mem_free(m->id);
    mem_free(m->name);
    mem_free(m->source_url);
    mem_free(m->hf_repo);
    mem_free(m->hf_revision);
    mem_free(m->sha256);
    mem_free(m->profile_json);
    mem_free(m->detection_json);
    mem_free(m->settings_json);
    memset(m, 0, sizeof(*m));
}

void store_model_list_free(store_model *models, size_t n)
{
    if (models == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        store_model_free(&models[i]);
    mem_free(models);
}

void store_footprint_free(store_footprint *f)
{
    if (f == NULL)
        return;
    mem_free(f->model_id);
    mem_free(f->config_key);
    mem_free(f->device_bytes_json);
    mem_free(f->runtime_build);
    memset(f, 0, sizeof(*f));
}

static int sql_fail(store_db *db, genai_error *err, const char *what)
{
    int ec = sqlite3_extended_errcode(db->sql);
    int code = (ec & 0xff) == SQLITE_BUSY || (ec & 0xff) == SQLITE_LOCKED      ? GENAI_EBUSY
               : (ec & 0xff) == SQLITE_NOMEM                                   ? -ENOMEM
               : (ec & 0xff) == SQLITE_CORRUPT || (ec & 0xff) == SQLITE_NOTADB ? GENAI_ECORRUPT
               : (ec & 0xff) == SQLITE_FULL                                    ? -ENOSPC
                                                                               : GENAI_EINTERNAL;
    return err_set(err, code, "registry: %s: %s", what, sqlite3_errmsg(db->sql));
}

static int exec(store_db *db, const char *sql, genai_error *err)
{
    if (sqlite3_exec(db->sql, sql, NULL, NULL, NULL) != SQLITE_OK)
        return sql_fail(db, err, sql);
    return 0;
}

static void rollback(store_db *db)
{
    if (!sqlite3_get_autocommit(db->sql))
        sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
}

static int read_version(store_db *db, int *out, genai_error *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->sql, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return sql_fail(db, err, "reading the schema version");
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return sql_fail(db, err, "reading the schema version");
    }
    *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static int migrate(store_db *db, int target, genai_error *err)
{
    for (;;) {
        int v, rc;
        if ((rc = exec(db, "BEGIN IMMEDIATE", err)) < 0)
            return rc;
        if ((rc = read_version(db, &v, err)) < 0)
            goto fail;
        if (v > STORE_SCHEMA_VERSION) {
            rc = err_set(err, GENAI_EUNSUPPORTED,
                         "registry schema version %d is newer than this genai (%d)", v,
                         STORE_SCHEMA_VERSION);
            goto fail;
        }
        if (v >= target)
            return exec(db, "COMMIT", err);
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
        if ((rc = exec(db, migrations[v], err)) < 0 || (rc = exec(db, pragma, err)) < 0 ||
            (rc = exec(db, "COMMIT", err)) < 0)
            goto fail;
        LOG_INFO(MOD, "registry schema upgraded to version %d", v + 1);
        continue;
    fail:
        rollback(db);
        return rc;
    }
}

int store_db_open_at(const char *path, int target, store_db **out, genai_error *err)
{
    if (target < 1 || target > STORE_SCHEMA_VERSION)
        return err_set(err, GENAI_EBAD_ARG, "schema version %d out of range", target);
    store_db *db = mem_calloc(1, sizeof(*db));
    if (db == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    int rc;
    /* FULLMUTEX: the handle may be used from several threads of a process. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(path, &db->sql, flags, NULL) != SQLITE_OK) {
        rc = db->sql != NULL ? sql_fail(db, err, path)
                             : err_set(err, -ENOMEM, "registry: cannot open %s", path);
        goto close_sql;
    }
    sqlite3_extended_result_codes(db->sql, 1);
    sqlite3_busy_timeout(db->sql, BUSY_TIMEOUT_MS);
    /* WAL lets readers run beside a writer (CLI and daemon); synchronous
     * NORMAL is durable across application crashes in WAL mode. */
    if ((rc = exec(db, "PRAGMA journal_mode = WAL", err)) < 0 ||
        (rc = exec(db, "PRAGMA synchronous = NORMAL", err)) < 0 ||
        (rc = exec(db, "PRAGMA foreign_keys = ON", err)) < 0)
        goto close_sql;
    if ((rc = migrate(db, target, err)) < 0) {
        err_prefix(err, "%s", path);
        goto close_sql;
    }
    if ((rc = read_version(db, &db->version, err)) < 0)
        goto close_sql;
    pthread_mutex_init(&db->mu, NULL);
    *out = db;
    return 0;
close_sql:
    sqlite3_close(db->sql);
    mem_free(db);
    return rc;
}

int store_db_open(const char *path, store_db **out, genai_error *err)
{
    return store_db_open_at(path, STORE_SCHEMA_VERSION, out, err);
}

void store_db_close(store_db *db)
{
    if (db == NULL)
        return;
    sqlite3_close(db->sql);
    pthread_mutex_destroy(&db->mu);
    mem_free(db);
}

int store_db_version(store_db *db, genai_error *err)
{
    int v = 0;
    pthread_mutex_lock(&db->mu);
    int rc = read_version(db, &v, err);
    pthread_mutex_unlock(&db->mu);
    return rc < 0 ? rc : v;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s != NULL ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static int check_model(const store_model *m, genai_error *err)
{
    if (m->id == NULL || m->id[0] == '\0' || m->name == NULL || m->n_files == 0)
        return err_set(err, GENAI_EBAD_ARG, "a model needs an id, a name and at least one file");
    if (m->kind != STORE_KIND_LLM && m->kind != STORE_KIND_DIFFUSION)
        return err_set(err, GENAI_EBAD_ARG, "model %s: bad kind", m->id);
    if (!store_sha256_is_hex(m->sha256))
        return err_set(err, GENAI_EBAD_ARG, "model %s: bad SHA-256", m->id);
    for (size_t i = 0; i < m->n_files; i++) {
        const store_file *f = &m->files[i];
        struct stat st;
        if (!store_role_valid(f->role))
            return err_set(err, GENAI_EBAD_ARG, "model %s: unknown file role '%s'", m->id,
                           f->role != NULL ? f->role : "(null)");
        if (f->path == NULL || f->path[0] != '/' || !store_sha256_is_hex(f->sha256))
            return err_set(err, GENAI_EBAD_ARG,
                           "model %s: file %zu needs an absolute path "
                           "and a SHA-256",
                           m->id, i);
        if (stat(f->path, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size)
            return err_set(err, GENAI_ECORRUPT,
                           "model %s: %s is missing or not %llu bytes; refusing to register it",
                           m->id, f->path, (unsigned long long)f->size);
    }
    return 0;
}

/* UPDATE models SET <column> = text WHERE id = id; the mutex is held.
 * GENAI_EUNSUPPORTED when the schema predates the column (a database opened
 * at an older version by store_db_open_at). */
static int update_text(store_db *db, const char *id, const char *column, const char *text,
                       genai_error *err)
{
    if (db->version < 3)
        return err_set(err, GENAI_EUNSUPPORTED, "registry: schema version %d has no %s",
                       db->version, column);
    char sql[128];
    sqlite3_stmt *st = NULL;
    snprintf(sql, sizeof(sql), "UPDATE models SET %s = ? WHERE id = ?", column);
    if (sqlite3_prepare_v2(db->sql, sql, -1, &st, NULL) != SQLITE_OK)
        return sql_fail(db, err, "preparing update");
    bind_text(st, 1, text);
    bind_text(st, 2, id);
    int rc = 0;
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sql_fail(db, err, "updating a model");
    else if (sqlite3_changes(db->sql) == 0)
        rc = err_set(err, GENAI_ENOT_FOUND, "no model '%s' in the registry", id);
    sqlite3_finalize(st);
    return rc;
}

int store_db_put_model(store_db *db, const store_model *m, genai_error *err)
{
    int rc;
    if ((rc = check_model(m, err)) < 0)
        return rc;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&db->mu);
    if ((rc = exec(db, "BEGIN IMMEDIATE", err)) < 0)
        goto unlock;
    if (sqlite3_prepare_v2(db->sql,
                           "INSERT INTO models (id, name, kind, source_url, hf_repo, "
                           "hf_revision, sha256, size, added_at, profile_json) VALUES "
                           "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(db, err, "preparing insert");
        goto rollback;
    }
    bind_text(st, 1, m->id);
    bind_text(st, 2, m->name);
    bind_text(st, 3, store_kind_name(m->kind));
    bind_text(st, 4, m->source_url);
    bind_text(st, 5, m->hf_repo);
    bind_text(st, 6, m->hf_revision);
    bind_text(st, 7, m->sha256);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)m->size);
    sqlite3_bind_int64(st, 9, m->added_at != 0 ? m->added_at : (sqlite3_int64)time(NULL));
    bind_text(st, 10, m->profile_json);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    st = NULL;
    if (s == SQLITE_CONSTRAINT_PRIMARYKEY) {
        rc = err_set(err, GENAI_EBUSY, "a model named '%s' is already registered", m->id);
        goto rollback;
    }
    if (s != SQLITE_DONE) {
        rc = sql_fail(db, err, "inserting a model");
        goto rollback;
    }
    if (sqlite3_prepare_v2(db->sql,
                           "INSERT INTO files (model_id, idx, role, path, sha256, size, url, "
                           "managed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(db, err, "preparing insert");
        goto rollback;
    }
    for (size_t i = 0; i < m->n_files; i++) {
        const store_file *f = &m->files[i];
        char sha[STORE_SHA256_HEX];
        store_sha256_normalize(f->sha256, sha);
        sqlite3_reset(st);
        bind_text(st, 1, m->id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
        bind_text(st, 3, f->role);
        bind_text(st, 4, f->path);
        sqlite3_bind_text(st, 5, sha, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)f->size);
        bind_text(st, 7, f->url);
        sqlite3_bind_int(st, 8, f->managed ? 1 : 0);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = sql_fail(db, err, "inserting a file");
            goto rollback;
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((m->detection_json != NULL || m->settings_json != NULL) &&
        (rc = update_text(db, m->id, "detection_json", m->detection_json, err)) == 0)
        rc = update_text(db, m->id, "settings_json", m->settings_json, err);
    if (rc < 0)
        goto rollback;
    rc = exec(db, "COMMIT", err);
    if (rc == 0)
        goto unlock;
rollback:
    sqlite3_finalize(st);
    rollback(db);
unlock:
    pthread_mutex_unlock(&db->mu);
    return rc;
}

static char *col_dup(sqlite3_stmt *st, int i, int *oom)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    if (t == NULL)
        return NULL;
    char *s = mem_strdup((const char *)t);
    if (s == NULL)
        *oom = 1;
    return s;
}

static int load_files(store_db *db, store_model *m, genai_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = 0, oom = 0, s;
    if (sqlite3_prepare_v2(db->sql,
                           "SELECT role, path, sha256, size, url, managed FROM files "
                           "WHERE model_id = ? ORDER BY idx",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_fail(db, err, "preparing select");
    bind_text(st, 1, m->id);
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        store_file *nf = mem_reallocarray(m->files, m->n_files + 1, sizeof(*nf));
        if (nf == NULL) {
            oom = 1;
            break;
        }
        m->files = nf;
        store_file *f = &m->files[m->n_files++];
        memset(f, 0, sizeof(*f));
        f->role = col_dup(st, 0, &oom);
        f->path = col_dup(st, 1, &oom);
        f->sha256 = col_dup(st, 2, &oom);
        f->size = (uint64_t)sqlite3_column_int64(st, 3);
        f->url = col_dup(st, 4, &oom);
        f->managed = sqlite3_column_int(st, 5);
    }
    if (oom)
        rc = err_set(err, -ENOMEM, "out of memory");
    else if (s != SQLITE_DONE && s != SQLITE_ROW)
        rc = sql_fail(db, err, "reading files");
    sqlite3_finalize(st);
    return rc;
}

/* The columns of models, by schema version (a database opened below the
 * current version by store_db_open_at lacks the newer ones). */
static const char *model_cols(const store_db *db)
{
    return db->version >= 3 ? "SELECT id, name, kind, source_url, hf_repo, hf_revision, "
                              "sha256, size, added_at, profile_json, detection_json, "
                              "settings_json FROM models"
                            : "SELECT id, name, kind, source_url, hf_repo, hf_revision, "
                              "sha256, size, added_at, profile_json FROM models";
}

static int row_to_model(store_db *db, sqlite3_stmt *st, store_model *m, genai_error *err)
{
    int oom = 0;
    memset(m, 0, sizeof(*m));
    m->id = col_dup(st, 0, &oom);
    m->name = col_dup(st, 1, &oom);
    const unsigned char *kind = sqlite3_column_text(st, 2);
    if (kind == NULL || store_kind_parse((const char *)kind, &m->kind) < 0)
        m->kind = STORE_KIND_LLM;
    m->source_url = col_dup(st, 3, &oom);
    m->hf_repo = col_dup(st, 4, &oom);
    m->hf_revision = col_dup(st, 5, &oom);
    m->sha256 = col_dup(st, 6, &oom);
    m->size = (uint64_t)sqlite3_column_int64(st, 7);
    m->added_at = sqlite3_column_int64(st, 8);
    m->profile_json = col_dup(st, 9, &oom);
    if (db->version >= 3) {
        m->detection_json = col_dup(st, 10, &oom);
        m->settings_json = col_dup(st, 11, &oom);
    }
    int rc = oom || m->id == NULL ? err_set(err, -ENOMEM, "out of memory") : load_files(db, m, err);
    if (rc < 0)
        store_model_free(m);
    return rc;
}

static int get_model_locked(store_db *db, const char *id, store_model *out, genai_error *err)
{
    char sql[512];
    sqlite3_stmt *st = NULL;
    snprintf(sql, sizeof(sql), "%s WHERE id = ?", model_cols(db));
    if (sqlite3_prepare_v2(db->sql, sql, -1, &st, NULL) != SQLITE_OK)
        return sql_fail(db, err, "preparing select");
    bind_text(st, 1, id);
    int s = sqlite3_step(st), rc;
    store_model m;
    if (s == SQLITE_DONE)
        rc = err_set(err, GENAI_ENOT_FOUND, "no model '%s' in the registry", id);
    else if (s != SQLITE_ROW)
        rc = sql_fail(db, err, "reading a model");
    else if ((rc = row_to_model(db, st, &m, err)) == 0)
        *out = m;
    sqlite3_finalize(st);
    return rc;
}

int store_db_get_model(store_db *db, const char *id, store_model *out, genai_error *err)
{
    pthread_mutex_lock(&db->mu);
    int rc = get_model_locked(db, id, out, err);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int store_db_list_models(store_db *db, store_model **out, size_t *n, genai_error *err)
{
    char sql[512];
    sqlite3_stmt *st = NULL;
    store_model *v = NULL;
    size_t count = 0;
    int rc = 0, s;
    snprintf(sql, sizeof(sql), "%s ORDER BY id", model_cols(db));
    pthread_mutex_lock(&db->mu);
    /* A read transaction so the models and their files are one snapshot. */
    if ((rc = exec(db, "BEGIN", err)) < 0)
        goto unlock;
    if (sqlite3_prepare_v2(db->sql, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(db, err, "preparing select");
        goto end;
    }
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        store_model *nv = mem_reallocarray(v, count + 1, sizeof(*nv));
        if (nv == NULL) {
            rc = err_set(err, -ENOMEM, "out of memory");
            goto end;
        }
        v = nv;
        if ((rc = row_to_model(db, st, &v[count], err)) < 0)
            goto end;
        count++;
    }
    if (s != SQLITE_DONE)
        rc = sql_fail(db, err, "listing models");
end:
    sqlite3_finalize(st);
    rollback(db); /* ends the read transaction */
    if (rc == 0) {
        *out = v;
        *n = count;
    } else {
        store_model_list_free(v, count);
    }
unlock:
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int store_db_remove_model(store_db *db, const char *id, store_model *removed, genai_error *err)
{
    store_model m;
    sqlite3_stmt *st = NULL;
    int rc;
    pthread_mutex_lock(&db->mu);
    if ((rc = exec(db, "BEGIN IMMEDIATE", err)) < 0)
        goto unlock;
    if ((rc = get_model_locked(db, id, &m, err)) < 0)
        goto rollback;
    if (sqlite3_prepare_v2(db->sql, "DELETE FROM models WHERE id = ?", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = sql_fail(db, err, "preparing delete");
        goto free_model;
    }
    bind_text(st, 1, id);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = sql_fail(db, err, "deleting a model");
        goto free_model;
    }
    sqlite3_finalize(st);
    st = NULL;
    /* A file another model still lists (the same download registered twice,
     * or a shared VAE) must survive this removal: report it unmanaged. */
    if (sqlite3_prepare_v2(db->sql, "SELECT 1 FROM files WHERE path = ? LIMIT 1", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = sql_fail(db, err, "preparing the shared-file check");
        goto free_model;
    }
    for (size_t i = 0; i < m.n_files; i++) {
        if (!m.files[i].managed)
            continue;
        sqlite3_reset(st);
        bind_text(st, 1, m.files[i].path);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            m.files[i].managed = 0;
        } else if (step != SQLITE_DONE) {
            rc = sql_fail(db, err, "checking for shared files");
            goto free_model;
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = exec(db, "COMMIT", err)) < 0)
        goto free_model;
    if (removed != NULL)
        *removed = m;
    else
        store_model_free(&m);
    goto unlock;
free_model:
    sqlite3_finalize(st);
    store_model_free(&m);
rollback:
    rollback(db);
unlock:
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int store_db_set_profile(store_db *db, const char *id, const char *profile_json, genai_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;
    pthread_mutex_lock(&db->mu);
    if (sqlite3_prepare_v2(db->sql, "UPDATE models SET profile_json = ? WHERE id = ?", -1, &st,
                           NULL) != SQLITE_OK) {
        rc = sql_fail(db, err, "preparing update");
        goto unlock;
    }
    bind_text(st, 1, profile_json);
    bind_text(st, 2, id);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sql_fail(db, err, "updating a profile");
    else if (sqlite3_changes(db->sql) == 0)
        rc = err_set(err, GENAI_ENOT_FOUND, "no model '%s' in the registry", id);
    sqlite3_finalize(st);
unlock:
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int store_db_set_detection(store_db *db, const char *id, const char *detection_json,
                           genai_error *err)
{
    pthread_mutex_lock(&db->mu);
    int rc = update_text(db, id, "detection_json", detection_json, err);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int store_db_set_settings(store_db *db, const char *id, const char *settings_json, genai_error *err)
{
    pthread_mutex_lock(&db->mu);
    int rc = update_text(db, id, "settings_json", settings_json, err);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int store_db_find_by_sha(store_db *db, const char *sha256, char *out, size_t outsz,
                         genai_error *err)
{
    char sha[STORE_SHA256_HEX];
    sqlite3_stmt *st = NULL;
    int rc;
    if (store_sha256_normalize(sha256, sha) < 0)
        return err_set(err, GENAI_EBAD_ARG, "not a SHA-256 digest");
    pthread_mutex_lock(&db->mu);
    if (sqlite3_prepare_v2(db->sql, "SELECT model_id FROM files WHERE sha256 = ? LIMIT 1", -1, &st,
                           NULL) != SQLITE_OK) {
        rc = sql_fail(db, err, "preparing select");
        goto unlock;
    }
    sqlite3_bind_text(st, 1, sha, -1, SQLITE_TRANSIENT);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        rc = (size_t)snprintf(out, outsz, "%s", id != NULL ? id : "") < outsz
                 ? 0
                 : err_set(err, GENAI_ETOO_LARGE, "model id too long");
    } else if (s == SQLITE_DONE) {
        rc = err_set(err, GENAI_ENOT_FOUND, "no registered file has SHA-256 %s", sha);
    } else {
        rc = sql_fail(db, err, "searching by digest");
    }
    sqlite3_finalize(st);
unlock:
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int store_db_put_footprint(store_db *db, const store_footprint *f, genai_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (f->model_id == NULL || f->config_key == NULL || f->device_bytes_json == NULL)
        return err_set(err, GENAI_EBAD_ARG, "a footprint needs a model, a key and device bytes");
    pthread_mutex_lock(&db->mu);
    if ((rc = exec(db, "BEGIN IMMEDIATE", err)) < 0)
        goto unlock;
    if (sqlite3_prepare_v2(db->sql,
                           "INSERT OR REPLACE INTO footprints (model_id, config_key, "
                           "device_bytes_json, host_anon, host_file, measured_at, runtime_build) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(db, err, "preparing insert");
        goto rollback;
    }
    bind_text(st, 1, f->model_id);
    bind_text(st, 2, f->config_key);
    bind_text(st, 3, f->device_bytes_json);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)f->host_anon);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)f->host_file);
    sqlite3_bind_int64(st, 6, f->measured_at != 0 ? f->measured_at : (sqlite3_int64)time(NULL));
    bind_text(st, 7, f->runtime_build);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s == SQLITE_CONSTRAINT_FOREIGNKEY) {
        rc = err_set(err, GENAI_ENOT_FOUND, "no model '%s' for this footprint", f->model_id);
        goto rollback;
    }
    if (s != SQLITE_DONE) {
        rc = sql_fail(db, err, "storing a footprint");
        goto rollback;
    }
    rc = exec(db, "COMMIT", err);
    if (rc == 0)
        goto unlock;
rollback:
    rollback(db);
unlock:
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* Fills f's model id and, from column `first` on, device_bytes_json,
 * host_anon, host_file, measured_at, runtime_build (the order both selects
 * below use). -ENOMEM when a copy failed; f is then partly filled, for
 * store_footprint_free. */
static int footprint_columns(sqlite3_stmt *st, int first, const char *model_id,
                             store_footprint *f)
{
    int oom = 0;
    f->model_id = mem_strdup(model_id);
    f->device_bytes_json = col_dup(st, first, &oom);
    f->host_anon = (uint64_t)sqlite3_column_int64(st, first + 1);
    f->host_file = (uint64_t)sqlite3_column_int64(st, first + 2);
    f->measured_at = sqlite3_column_int64(st, first + 3);
    f->runtime_build = col_dup(st, first + 4, &oom);
    return oom || f->model_id == NULL || f->device_bytes_json == NULL ? -ENOMEM : 0;
}

/* Bounds a listing: a model has one row per configuration it ran with. */
#define FOOTPRINTS_LIST_MAX 1024

int store_db_list_footprints(store_db *db, const char *model_id, store_footprint **out, size_t *n,
                             genai_error *err)
{
    sqlite3_stmt *st = NULL;
    store_footprint *list = NULL;
    size_t len = 0, cap = 0;
    int rc = 0, oom = 0;
    pthread_mutex_lock(&db->mu);
    if (sqlite3_prepare_v2(db->sql,
                           "SELECT config_key, device_bytes_json, host_anon, host_file, "
                           "measured_at, runtime_build FROM footprints WHERE model_id = ? "
                           "ORDER BY measured_at DESC, config_key",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(db, err, "preparing select");
        goto unlock;
    }
    bind_text(st, 1, model_id);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW && len < FOOTPRINTS_LIST_MAX) {
        if (len == cap) {
            size_t nc = cap ? cap * 2 : 8;
            store_footprint *p = mem_reallocarray(list, nc, sizeof(*p));
            if (p == NULL) {
                oom = 1;
                break;
            }
            list = p;
            cap = nc;
        }
        store_footprint *f = &list[len++];
        memset(f, 0, sizeof(*f));
        f->config_key = col_dup(st, 0, &oom);
        if (footprint_columns(st, 1, model_id, f) < 0 || f->config_key == NULL || oom) {
            oom = 1;
            break;
        }
    }
    if (oom)
        rc = err_set(err, -ENOMEM, "out of memory");
    else if (s != SQLITE_ROW && s != SQLITE_DONE)
        rc = sql_fail(db, err, "reading footprints");
    sqlite3_finalize(st);
unlock:
    pthread_mutex_unlock(&db->mu);
    if (rc < 0) {
        store_footprint_list_free(list, len);
        return rc;
    }
    *out = list;
    *n = len;
    return 0;
}

void store_footprint_list_free(store_footprint *list, size_t n)
{
    for (size_t i = 0; list != NULL && i < n; i++)
        store_footprint_free(&list[i]);
    mem_free(list);
}

int store_db_get_footprint(store_db *db, const char *model_id, const char *config_key,
                           store_footprint *out, genai_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc;
    pthread_mutex_lock(&db->mu);
    if (sqlite3_prepare_v2(db->sql,
                           "SELECT device_bytes_json, host_anon, host_file, measured_at, "
                           "runtime_build FROM footprints WHERE model_id = ? AND config_key = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(db, err, "preparing select");
        goto unlock;
    }
    bind_text(st, 1, model_id);
    bind_text(st, 2, config_key);
    int s = sqlite3_step(st);
    if (s == SQLITE_DONE) {
        rc = err_set(err, GENAI_ENOT_FOUND, "no footprint for %s [%s]", model_id, config_key);
    } else if (s != SQLITE_ROW) {
        rc = sql_fail(db, err, "reading a footprint");
    } else {
        store_footprint f = {0};
        f.config_key = mem_strdup(config_key);
        if (footprint_columns(st, 0, model_id, &f) < 0 || f.config_key == NULL) {
            store_footprint_free(&f);
            rc = err_set(err, -ENOMEM, "out of memory");
        } else {
            *out = f;
            rc = 0;
        }
    }
    sqlite3_finalize(st);
unlock:
    pthread_mutex_unlock(&db->mu);
    return rc;
}
