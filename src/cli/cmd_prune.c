/*
 * cmd_prune.c - `genai prune [--dry-run] [--partials] [--partials-older-than
 * DAYS] [--json]`: delete the files under the store's models folder that no
 * registered model lists (store_prune in src/store/prune.h), one line per
 * file and a total, or one JSON object.
 */
#include "cli.h"

#include "api/shapes.h"
#include "store/prune.h"
#include "store/store.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    printf("Usage: genai prune [--dry-run] [--partials] [--partials-older-than DAYS] [--json]\n"
           "\n"
           "Deletes the files under the store's models folder that no registered model\n"
           "lists: what an abandoned pull, a diffusion set refused as incomplete, a crash\n"
           "between download and registration, or a 'genai rm' that found a file busy\n"
           "left behind. Folders left empty go too.\n"
           "\n"
           "Kept, and why:\n"
           "  - every file a registered model lists (see 'genai list');\n"
           "  - files registered in place with 'genai add' outside the models folder:\n"
           "    prune never looks outside it, and follows no symbolic link;\n"
           "  - partial downloads (.partial): the next pull of the same file resumes\n"
           "    from them; --partials removes them, --partials-older-than DAYS only\n"
           "    those not written for that many days;\n"
           "  - a file a pull is downloading or verifying right now, and any finished\n"
           "    file no model lists while a pull runs (it may be about to register it):\n"
           "    reported as skipped; run prune again when the pull is done.\n"
           "A file of an incomplete diffusion set that prune removes is downloaded again\n"
           "by the next pull of the set.\n"
           "\n"
           "  --dry-run       list what would be removed and the bytes; remove nothing\n"
           "  --partials      also remove partial downloads no pull is writing\n"
           "  --partials-older-than DAYS\n"
           "                  also remove partial downloads last written DAYS ago or more\n"
           "  --json          print one JSON object\n");
}

static const char *line_verb(const store_prune_report *r, const store_prune_item *it)
{
    switch (it->action) {
    case STORE_PRUNE_REMOVED:
        return r->dry_run ? "would remove" : "removed";
    case STORE_PRUNE_KEPT_PARTIAL:
        return "kept";
    case STORE_PRUNE_BUSY:
    case STORE_PRUNE_PULLING:
        return "skipped";
    case STORE_PRUNE_FAILED:
        return "failed";
    }
    return "?";
}

static void print_human(const store_prune_report *r)
{
    char size[32];
    for (size_t i = 0; i < r->n_items; i++) {
        const store_prune_item *it = &r->items[i];
        cli_fmt_bytes(size, sizeof(size), it->size);
        printf("%s %s", line_verb(r, it), it->path);
        switch (it->action) {
        case STORE_PRUNE_REMOVED:
            printf(" (%s)\n", size);
            break;
        case STORE_PRUNE_KEPT_PARTIAL:
            printf(" (%s): partial download, resumable; --partials removes it\n", size);
            break;
        case STORE_PRUNE_BUSY:
            printf(": in use by a pull\n");
            break;
        case STORE_PRUNE_PULLING:
            printf(": a pull is running and may register it; run prune again when it ends\n");
            break;
        case STORE_PRUNE_FAILED:
            printf(": %s\n", genai_strerror(it->error));
            break;
        }
    }
    cli_fmt_bytes(size, sizeof(size), r->bytes_freed);
    printf("%s %zu file%s, %s", r->dry_run ? "would remove" : "removed", r->n_removed,
           r->n_removed == 1 ? "" : "s", size);
    if (r->n_dirs_removed > 0)
        printf(", %zu empty folder%s", r->n_dirs_removed, r->n_dirs_removed == 1 ? "" : "s");
    if (r->n_skipped > 0)
        printf("; %zu skipped", r->n_skipped);
    if (r->n_failed > 0)
        printf("; %zu failed", r->n_failed);
    if (r->n_kept_partial > 0) {
        cli_fmt_bytes(size, sizeof(size), r->bytes_partial);
        printf("; %zu partial download%s kept (%s)", r->n_kept_partial,
               r->n_kept_partial == 1 ? "" : "s", size);
    }
    printf("\n");
}

int cmd_prune(int argc, char **argv)
{
    store_prune_opts o;
    int json = 0;
    memset(&o, 0, sizeof(o));
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage();
            return CLI_OK;
        } else if (strcmp(argv[i], "--dry-run") == 0 || strcmp(argv[i], "-n") == 0) {
            o.dry_run = 1;
        } else if (strcmp(argv[i], "--partials") == 0) {
            o.include_partials = 1;
        } else if (strcmp(argv[i], "--partials-older-than") == 0) {
            if (++i == argc)
                return cli_usage_error("prune", "--partials-older-than needs a number of days");
            char *end = NULL;
            double days = strtod(argv[i], &end);
            /* 100 years bounds the product below INT64_MAX seconds */
            if (end == argv[i] || *end != '\0' || !isfinite(days) || days <= 0 || days > 36500)
                return cli_usage_error("prune", "'%s' is not a number of days (0 < DAYS <= 36500)",
                                       argv[i]);
            o.partial_min_age_s = (int64_t)(days * 86400.0);
            if (o.partial_min_age_s < 1)
                o.partial_min_age_s = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            return cli_usage_error("prune", "unexpected argument '%s'", argv[i]);
        }
    }
    store *s = NULL;
    store_prune_report r;
    genai_error e;
    genai_error_clear(&e);
    int rc = store_open(&s, &e);
    if (rc == 0)
        rc = store_prune(store_registry(s), store_data_dir(s), &o, &r, &e);
    store_close(s);
    if (rc < 0) {
        cli_report("prune", rc, &e);
        return CLI_FAIL;
    }
    int status = CLI_OK;
    if (json)
        status = cli_print_json(stdout, api_prune_json(&r));
    else
        print_human(&r);
    if (status == CLI_OK && r.n_failed > 0)
        status = CLI_FAIL;
    store_prune_report_free(&r);
    return status;
}
