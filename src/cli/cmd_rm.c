/*
 * cmd_rm.c - `genai rm ID [--json]`: unregister a model and delete the files
 * the store downloaded for it. Asks nothing; files added in place with
 * `genai add` stay on disk.
 */
#include "cli.h"
#include "api/shapes.h"

#include "store/store.h"

#include <string.h>

int cmd_rm(int argc, char **argv)
{
    const char *id = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("Usage: genai rm ID [--json]\n\nRemoves a model from the registry and "
                   "deletes its downloaded files\n(files registered in place with 'genai add' "
                   "are left alone).\n");
            return CLI_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (argv[i][0] == '-') {
            return cli_usage_error("rm", "unknown flag '%s'", argv[i]);
        } else if (id == NULL) {
            id = argv[i];
        } else {
            return cli_usage_error("rm", "one model id at a time");
        }
    }
    if (id == NULL)
        return cli_usage_error("rm", "which model? (see 'genai list')");
    store *s = NULL;
    store_model m;
    genai_error e;
    genai_error_clear(&e);
    int rc = store_open(&s, &e);
    if (rc == 0)
        rc = store_remove(s, id, &m, &e);
    store_close(s);
    if (rc < 0) {
        cli_report("rm", rc, &e);
        return CLI_FAIL;
    }
    int status = CLI_OK;
    if (json) {
        json_t *o = json_pack("{s:s, s:o}", "removed", m.id, "model", api_model_json(&m));
        status = cli_print_json(stdout, o);
    } else {
        size_t kept = 0;
        for (size_t i = 0; i < m.n_files; i++)
            kept += !m.files[i].managed;
        printf("removed %s", m.id);
        if (kept > 0)
            printf(" (%zu file%s added in place left on disk)", kept, kept == 1 ? "" : "s");
        printf("\n");
    }
    store_model_free(&m);
    return status;
}
