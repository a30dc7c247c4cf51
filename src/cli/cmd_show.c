/*
 * cmd_show.c - `genai show ID [--json]`: one registered model, its files and
 * where they came from. Also home of cli_model_json(), the JSON shape of a
 * model shared by pull, list, show, rm and add.
 */
#include "cli.h"

#include "store/store.h"

#include <string.h>
#include <time.h>

json_t *cli_model_json(const struct store_model *m)
{
    json_t *files = json_array();
    json_t *o = json_object();
    if (files == NULL || o == NULL) {
        json_decref(files);
        json_decref(o);
        return NULL;
    }
    for (size_t i = 0; i < m->n_files; i++) {
        const store_file *f = &m->files[i];
        json_t *jf =
            json_pack("{s:s, s:s, s:s, s:I, s:b}", "role", f->role, "path", f->path, "sha256",
                      f->sha256, "size", (json_int_t)f->size, "managed", f->managed);
        if (jf != NULL && f->url != NULL)
            json_object_set_new(jf, "url", json_string(f->url));
        json_array_append_new(files, jf);
    }
    json_object_set_new(o, "id", json_string(m->id));
    json_object_set_new(o, "name", json_string(m->name));
    json_object_set_new(o, "kind", json_string(store_kind_name(m->kind)));
    json_object_set_new(o, "size", json_integer((json_int_t)m->size));
    json_object_set_new(o, "sha256", json_string(m->sha256));
    json_object_set_new(o, "source", m->source_url ? json_string(m->source_url) : json_null());
    json_object_set_new(o, "hf_repo", m->hf_repo ? json_string(m->hf_repo) : json_null());
    json_object_set_new(o, "hf_revision",
                        m->hf_revision ? json_string(m->hf_revision) : json_null());
    json_object_set_new(o, "added_at", json_integer((json_int_t)m->added_at));
    json_t *profile = NULL;
    if (m->profile_json != NULL)
        profile = json_loads(m->profile_json, 0, NULL);
    json_object_set_new(o, "profile", profile != NULL ? profile : json_null());
    json_object_set_new(o, "files", files);
    return o;
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: genai show ID [--json]\n\n"
                 "Shows a registered model: kind, size, digest, source, pinned revision and\n"
                 "its files.\n");
}

int cmd_show(int argc, char **argv)
{
    const char *id = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return CLI_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (argv[i][0] == '-') {
            return cli_usage_error("show", "unknown flag '%s'", argv[i]);
        } else if (id == NULL) {
            id = argv[i];
        } else {
            return cli_usage_error("show", "one model id at a time");
        }
    }
    if (id == NULL)
        return cli_usage_error("show", "which model? (see 'genai list')");
    store *s = NULL;
    store_model m;
    genai_error e;
    genai_error_clear(&e);
    int rc = store_open(&s, &e);
    if (rc == 0)
        rc = store_db_get_model(store_registry(s), id, &m, &e);
    if (rc < 0) {
        cli_report("show", rc, &e);
        store_close(s);
        return CLI_FAIL;
    }
    int status = CLI_OK;
    if (json) {
        status = cli_print_json(stdout, cli_model_json(&m));
    } else {
        char size[32], when[64];
        time_t t = (time_t)m.added_at;
        struct tm tm;
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
        printf("id:        %s\nname:      %s\nkind:      %s\nsize:      %s\nsha256:    %s\n"
               "added:     %s\n",
               m.id, m.name, store_kind_name(m.kind), cli_fmt_bytes(size, sizeof(size), m.size),
               m.sha256, when);
        if (m.source_url != NULL)
            printf("source:    %s\n", m.source_url);
        if (m.hf_repo != NULL)
            printf("hf repo:   %s @ %s\n", m.hf_repo, m.hf_revision ? m.hf_revision : "?");
        printf("files:\n");
        for (size_t i = 0; i < m.n_files; i++) {
            const store_file *f = &m.files[i];
            printf("  %-12s %s (%s)%s\n", f->role, f->path,
                   cli_fmt_bytes(size, sizeof(size), f->size),
                   f->managed ? "" : " [added in place]");
        }
    }
    store_model_free(&m);
    store_close(s);
    return status;
}
