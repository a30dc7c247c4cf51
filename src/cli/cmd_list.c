/*
 * cmd_list.c - `genai list [--json]`: the registered models.
 */
#include "cli.h"
#include "api/shapes.h"

#include "store/store.h"

#include <string.h>

int cmd_list(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("Usage: genai list [--json]\n\nLists the registered models.\n");
            return CLI_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            return cli_usage_error("list", "unexpected argument '%s'", argv[i]);
        }
    }
    store *s = NULL;
    store_model *v = NULL;
    size_t n = 0;
    genai_error e;
    genai_error_clear(&e);
    int rc = store_open(&s, &e);
    if (rc == 0)
        rc = store_db_list_models(store_registry(s), &v, &n, &e);
    if (rc < 0) {
        cli_report("list", rc, &e);
        store_close(s);
        return CLI_FAIL;
    }
    int status = CLI_OK;
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < n; i++)
            json_array_append_new(arr, api_model_json(&v[i]));
        status = cli_print_json(stdout, arr);
    } else if (n == 0) {
        printf("No models yet. Try 'genai pull owner/repo:Q4_K_M'.\n");
    } else {
        printf("%-32s %-9s %11s %5s  %s\n", "ID", "KIND", "SIZE", "FILES", "SOURCE");
        for (size_t i = 0; i < n; i++) {
            char size[32];
            const char *src = v[i].source_url != NULL ? v[i].source_url : v[i].files[0].path;
            printf("%-32s %-9s %11s %5zu  %s\n", v[i].id, store_kind_name(v[i].kind),
                   cli_fmt_bytes(size, sizeof(size), v[i].size), v[i].n_files, src);
        }
    }
    store_model_list_free(v, n);
    store_close(s);
    return status;
}
