/*
 * test_registry.c - the SQLite model registry: rows in and out, the refusal
 * of files that are not on disk, migrations from older schemas (1 -> 3 and
 * 2 -> 3, with the role vocabulary and the diffusion columns), a schema
 * from the future, and two processes writing at the same time.
 */
#include "cmocka_all.h"

#include "testutil/testutil.h"

#include "diffusion/model_file.h"
#include "store/digest.h"
#include "store/registry.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct fx {
    char dir[128];
    char db[256];
    char file_a[256];
    char file_b[256];
    char sha_a[STORE_SHA256_HEX];
    char sha_b[STORE_SHA256_HEX];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(tu_mkdtemp(f->dir, sizeof(f->dir), "reg"), 0);
    snprintf(f->db, sizeof(f->db), "%s/registry.db", f->dir);
    snprintf(f->file_a, sizeof(f->file_a), "%s/a.gguf", f->dir);
    snprintf(f->file_b, sizeof(f->file_b), "%s/vae.safetensors", f->dir);
    assert_int_equal(tu_write(f->file_a, "GGUFaaaa", 8), 0);
    assert_int_equal(tu_write(f->file_b, "vae-bytes", 9), 0);
    assert_int_equal(store_sha256_file(f->file_a, f->sha_a, NULL, NULL), 0);
    assert_int_equal(store_sha256_file(f->file_b, f->sha_b, NULL, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tu_rm_rf(f->dir);
    free(f);
    return 0;
}

static store_model model_of(struct fx *f, const char *id, store_file *files, size_t n)
{
    store_model m = {0};
    m.id = (char *)id;
    m.name = (char *)"Test Model";
    m.kind = n > 1 ? STORE_KIND_DIFFUSION : STORE_KIND_LLM;
    m.source_url = (char *)"hf://o/r/a.gguf";
    m.hf_repo = (char *)"o/r";
    m.hf_revision = (char *)"0123456789abcdef0123456789abcdef01234567";
    m.sha256 = f->sha_a;
    m.files = files;
    m.n_files = n;
    for (size_t i = 0; i < n; i++)
        m.size += files[i].size;
    return m;
}

static void test_put_get_list_remove(void **state)
{
    struct fx *f = *state;
    store_db *db = NULL;
    genai_error e;
    assert_int_equal(store_db_open(f->db, &db, &e), 0);
    assert_int_equal(store_db_version(db, &e), STORE_SCHEMA_VERSION);

    store_file files[2] = {
        {.role = "model",
         .path = f->file_a,
         .sha256 = f->sha_a,
         .size = 8,
         .url = "u",
         .managed = 1},
        {.role = "vae", .path = f->file_b, .sha256 = f->sha_b, .size = 9},
    };
    store_model m = model_of(f, "sd", files, 2);
    assert_int_equal(store_db_put_model(db, &m, &e), 0);
    assert_int_equal(store_db_put_model(db, &m, &e), GENAI_EBUSY);

    store_model got;
    assert_int_equal(store_db_get_model(db, "sd", &got, &e), 0);
    assert_string_equal(got.id, "sd");
    assert_int_equal(got.kind, STORE_KIND_DIFFUSION);
    assert_int_equal(got.size, 17);
    assert_true(got.added_at > 0);
    assert_string_equal(got.hf_revision, m.hf_revision);
    assert_null(got.profile_json);
    assert_int_equal(got.n_files, 2);
    assert_string_equal(got.files[0].role, "model");
    assert_int_equal(got.files[0].managed, 1);
    assert_string_equal(got.files[1].role, "vae");
    assert_string_equal(got.files[1].sha256, f->sha_b);
    assert_null(got.files[1].url);
    store_model_free(&got);
    store_model_free(&got); /* idempotent on a cleared struct */

    assert_int_equal(store_db_set_profile(db, "sd", "{\"n_layer\":2}", &e), 0);
    assert_int_equal(store_db_set_profile(db, "nope", "{}", &e), GENAI_ENOT_FOUND);
    char id[64];
    assert_int_equal(store_db_find_by_sha(db, f->sha_b, id, sizeof(id), &e), 0);
    assert_string_equal(id, "sd");

    store_file one = {.role = "model", .path = f->file_a, .sha256 = f->sha_a, .size = 8};
    store_model m2 = model_of(f, "llm", &one, 1);
    assert_int_equal(store_db_put_model(db, &m2, &e), 0);

    store_model *list = NULL;
    size_t n = 0;
    assert_int_equal(store_db_list_models(db, &list, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, "llm");
    assert_string_equal(list[1].id, "sd");
    assert_string_equal(list[1].profile_json, "{\"n_layer\":2}");
    store_model_list_free(list, n);

    store_footprint fp = {.model_id = "llm",
                          .config_key = "ngl=99 ctx=4096",
                          .device_bytes_json = "{\"cuda0\":123}",
                          .host_anon = 5,
                          .host_file = 6,
                          .runtime_build = "b1"};
    assert_int_equal(store_db_put_footprint(db, &fp, &e), 0);
    fp.host_anon = 7; /* replaces */
    assert_int_equal(store_db_put_footprint(db, &fp, &e), 0);
    store_footprint gf;
    assert_int_equal(store_db_get_footprint(db, "llm", "ngl=99 ctx=4096", &gf, &e), 0);
    assert_int_equal(gf.host_anon, 7);
    assert_int_equal(gf.host_file, 6);
    assert_string_equal(gf.device_bytes_json, "{\"cuda0\":123}");
    assert_string_equal(gf.runtime_build, "b1");
    store_footprint_free(&gf);
    /* Listed newest first; a model without any lists none. */
    store_footprint older = {.model_id = "llm",
                             .config_key = "ngl=0 ctx=512",
                             .device_bytes_json = "{}",
                             .host_anon = 1,
                             .host_file = 2,
                             .measured_at = 1000};
    assert_int_equal(store_db_put_footprint(db, &older, &e), 0);
    store_footprint *fl = NULL;
    size_t nf = 0;
    assert_int_equal(store_db_list_footprints(db, "llm", &fl, &nf, &e), 0);
    assert_int_equal(nf, 2);
    assert_string_equal(fl[0].config_key, "ngl=99 ctx=4096");
    assert_string_equal(fl[0].runtime_build, "b1");
    assert_int_equal(fl[0].host_anon, 7);
    assert_string_equal(fl[1].config_key, "ngl=0 ctx=512");
    assert_null(fl[1].runtime_build);
    assert_int_equal(fl[1].measured_at, 1000);
    store_footprint_list_free(fl, nf);
    assert_int_equal(store_db_list_footprints(db, "sd", &fl, &nf, &e), 0);
    assert_int_equal(nf, 0);
    store_footprint_list_free(fl, nf);
    fp.model_id = "ghost";
    assert_int_equal(store_db_put_footprint(db, &fp, &e), GENAI_ENOT_FOUND);

    store_model removed;
    /* "sd" owns file_a (managed), but "llm" lists the same file: removing
     * "sd" must not hand file_a back for deletion. */
    assert_int_equal(store_db_remove_model(db, "sd", &removed, &e), 0);
    assert_string_equal(removed.files[0].path, f->file_a);
    assert_int_equal(removed.files[0].managed, 0);
    assert_int_equal(removed.files[1].managed, 0);
    store_model_free(&removed);
    assert_int_equal(store_db_remove_model(db, "llm", &removed, &e), 0);
    assert_string_equal(removed.files[0].path, f->file_a);
    store_model_free(&removed);
    assert_int_equal(store_db_remove_model(db, "llm", NULL, &e), GENAI_ENOT_FOUND);
    /* the footprint went with the model */
    assert_int_equal(store_db_get_footprint(db, "llm", "ngl=99 ctx=4096", &gf, &e),
                     GENAI_ENOT_FOUND);
    assert_int_equal(store_db_get_model(db, "llm", &got, &e), GENAI_ENOT_FOUND);
    store_db_close(db);
    store_db_close(NULL);
}

static void test_refuses_missing_or_wrong_files(void **state)
{
    struct fx *f = *state;
    store_db *db = NULL;
    genai_error e;
    assert_int_equal(store_db_open(f->db, &db, &e), 0);
    store_file bad = {.role = "model", .path = f->file_a, .sha256 = f->sha_a, .size = 9};
    store_model m = model_of(f, "x", &bad, 1);
    assert_int_equal(store_db_put_model(db, &m, &e), GENAI_ECORRUPT); /* size differs */
    char gone[300];
    snprintf(gone, sizeof(gone), "%s/gone.gguf", f->dir);
    bad.path = gone;
    bad.size = 8;
    assert_int_equal(store_db_put_model(db, &m, &e), GENAI_ECORRUPT);
    bad.path = f->file_a;
    bad.role = "lora";
    assert_int_equal(store_db_put_model(db, &m, &e), GENAI_EBAD_ARG);
    bad.role = "model";
    bad.sha256 = "xyz";
    assert_int_equal(store_db_put_model(db, &m, &e), GENAI_EBAD_ARG);
    store_model *list = NULL;
    size_t n = 7;
    assert_int_equal(store_db_list_models(db, &list, &n, &e), 0);
    assert_int_equal(n, 0); /* nothing half-registered */
    store_db_close(db);
}

static void test_migration_from_v1(void **state)
{
    struct fx *f = *state;
    store_db *db = NULL;
    genai_error e;
    assert_int_equal(store_db_open_at(f->db, 1, &db, &e), 0);
    assert_int_equal(store_db_version(db, &e), 1);
    store_file one = {.role = "model", .path = f->file_a, .sha256 = f->sha_a, .size = 8};
    store_model m = model_of(f, "old", &one, 1);
    assert_int_equal(store_db_put_model(db, &m, &e), 0);
    store_footprint fp = {.model_id = "old", .config_key = "k", .device_bytes_json = "{}"};
    assert_int_not_equal(store_db_put_footprint(db, &fp, &e), 0); /* no table yet */
    store_db_close(db);

    assert_int_equal(store_db_open(f->db, &db, &e), 0);
    assert_int_equal(store_db_version(db, &e), STORE_SCHEMA_VERSION);
    store_model got;
    assert_int_equal(store_db_get_model(db, "old", &got, &e), 0); /* rows survive */
    store_model_free(&got);
    assert_int_equal(store_db_put_footprint(db, &fp, &e), 0);
    store_db_close(db);

    /* a database from a newer genai is refused, not downgraded */
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(f->db, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    assert_int_equal(store_db_open(f->db, &db, &e), GENAI_EUNSUPPORTED);
    assert_non_null(strstr(e.detail, "99"));
}

static void test_wal_mode(void **state)
{
    struct fx *f = *state;
    store_db *db = NULL;
    assert_int_equal(store_db_open(f->db, &db, NULL), 0);
    sqlite3 *raw = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(f->db, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(raw);
    store_db_close(db);
}

/* Two processes, each with its own connection, register 40 models each at
 * the same time; every row must land and no call may fail with "busy". */
static void test_two_processes_write_at_once(void **state)
{
    struct fx *f = *state;
    store_db *db = NULL;
    assert_int_equal(store_db_open(f->db, &db, NULL), 0);
    store_db_close(db);
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            char c;
            close(go[1]);
            if (read(go[0], &c, 1) != 0) /* wait until both exist */
                _exit(3);
            store_db *mine = NULL;
            if (store_db_open(f->db, &mine, NULL) < 0)
                _exit(1);
            for (int i = 0; i < 40; i++) {
                char id[32];
                snprintf(id, sizeof(id), "p%d-m%02d", k, i);
                store_file one = {
                    .role = "model", .path = f->file_a, .sha256 = f->sha_a, .size = 8};
                store_model m = model_of(f, id, &one, 1);
                store_model *list = NULL;
                size_t n = 0;
                if (store_db_put_model(mine, &m, NULL) < 0 ||
                    store_db_list_models(mine, &list, &n, NULL) < 0)
                    _exit(2);
                store_model_list_free(list, n);
            }
            store_db_close(mine);
            _exit(0);
        }
    }
    close(go[0]);
    close(go[1]); /* releases both children at once */
    for (int k = 0; k < 2; k++) {
        int status = 0;
        assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(store_db_open(f->db, &db, NULL), 0);
    store_model *list = NULL;
    size_t n = 0;
    assert_int_equal(store_db_list_models(db, &list, &n, NULL), 0);
    assert_int_equal(n, 80);
    store_model_list_free(list, n);
    store_db_close(db);
}

static void test_kind_and_roles(void **state)
{
    (void)state;
    store_kind k;
    assert_int_equal(store_kind_parse("diffusion", &k), 0);
    assert_int_equal(k, STORE_KIND_DIFFUSION);
    assert_string_equal(store_kind_name(k), "diffusion");
    assert_int_equal(store_kind_parse("LLM", &k), GENAI_EBAD_ARG);
    assert_true(store_role_valid("t5xxl"));
    /* One vocabulary with the diffusion module: every dm role, nothing else
     * ("text_encoder" named no encoder and is gone since version 3). */
    for (int r = 0; r < DM_ROLE__COUNT; r++)
        assert_true(store_role_valid(dm_role_name((enum dm_role)r)));
    assert_false(store_role_valid("text_encoder"));
    assert_false(store_role_valid("weights"));
    assert_false(store_role_valid(NULL));
}

/* Version 2 -> 3: rows written by the previous version (including a role
 * that version accepted) survive; the new columns start empty and can be
 * written; a database opened at version 2 refuses them instead of writing
 * a column it lacks. */
static void test_migration_from_v2(void **state)
{
    struct fx *f = *state;
    store_db *db = NULL;
    genai_error e;
    assert_int_equal(store_db_open_at(f->db, 2, &db, &e), 0);
    assert_int_equal(store_db_version(db, &e), 2);
    store_file files[2] = {
        {.role = "model", .path = f->file_a, .sha256 = f->sha_a, .size = 8},
        {.role = "vae", .path = f->file_b, .sha256 = f->sha_b, .size = 9},
    };
    store_model m = model_of(f, "sdxl", files, 2);
    assert_int_equal(store_db_put_model(db, &m, &e), 0);
    assert_int_equal(store_db_set_settings(db, "sdxl", "{}", &e), GENAI_EUNSUPPORTED);
    m.id = (char *)"with-detection";
    m.detection_json = (char *)"{\"family\":\"sdxl\"}";
    assert_int_equal(store_db_put_model(db, &m, &e), GENAI_EUNSUPPORTED);
    store_db_close(db);
    /* Version 2 accepted "text_encoder"; write such a row as it did. */
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(f->db, &raw), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(raw, "UPDATE files SET role = 'text_encoder' WHERE idx = 1", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(raw);

    assert_int_equal(store_db_open(f->db, &db, &e), 0);
    assert_int_equal(store_db_version(db, &e), 3);
    store_model got;
    assert_int_equal(store_db_get_model(db, "sdxl", &got, &e), 0);
    assert_int_equal(got.n_files, 2);
    assert_string_equal(got.files[1].role, "text_encoder"); /* kept as written */
    assert_null(got.detection_json);
    assert_null(got.settings_json);
    store_model_free(&got);
    assert_int_equal(store_db_get_model(db, "with-detection", &got, &e), GENAI_ENOT_FOUND);
    assert_int_equal(store_db_set_detection(db, "sdxl", "{\"family\":\"sdxl\"}", &e), 0);
    assert_int_equal(store_db_set_settings(db, "sdxl", "{\"steps\":{\"default\":6}}", &e), 0);
    assert_int_equal(store_db_set_settings(db, "nope", "{}", &e), GENAI_ENOT_FOUND);
    assert_int_equal(store_db_get_model(db, "sdxl", &got, &e), 0);
    assert_string_equal(got.detection_json, "{\"family\":\"sdxl\"}");
    assert_string_equal(got.settings_json, "{\"steps\":{\"default\":6}}");
    store_model_free(&got);
    /* Cleared with NULL; new rows carry both columns in one transaction. */
    assert_int_equal(store_db_set_settings(db, "sdxl", NULL, &e), 0);
    m.id = (char *)"with-detection";
    m.files[1].role = (char *)"vae";
    assert_int_equal(store_db_put_model(db, &m, &e), 0);
    store_model *all = NULL;
    size_t n = 0;
    assert_int_equal(store_db_list_models(db, &all, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_null(all[0].settings_json); /* "sdxl" */
    assert_string_equal(all[1].detection_json, "{\"family\":\"sdxl\"}");
    store_model_list_free(all, n);
    store_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_and_roles),
        cmocka_unit_test_setup_teardown(test_put_get_list_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_missing_or_wrong_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_v2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_processes_write_at_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
