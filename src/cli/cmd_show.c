/*
 * cmd_show.c - `genai show ID [--json]`: one registered model, its files and
 * where they came from; for a diffusion model also its family detection
 * (family, variant, confidence, evidence) and its effective generation
 * settings (the built-in row merged with the registry's override); and the
 * memory the planner measured running it, per configuration. Also home of
 * cli_print_dm(). The --json shape is api_model_detail_json()
 * (src/api/shapes.h), the same GET /api/models/{id} gives.
 */
#include "cli.h"

#include "api/shapes.h"
#include "store/dmodel.h"
#include "store/footprint_db.h"
#include "store/store.h"

#include <string.h>
#include <time.h>

static void print_range_u(FILE *out, const char *what, uint32_t def, uint32_t lo, uint32_t hi)
{
    fprintf(out, "  %-16s %u (%u..%u)\n", what, def, lo, hi);
}

static void print_range_d(FILE *out, const char *what, double def, double lo, double hi)
{
    fprintf(out, "  %-16s %g (%g..%g)\n", what, def, lo, hi);
}

void cli_print_dm_settings(FILE *out, const dm_settings *s)
{
    fprintf(out, "  %-16s %ux%u (sides %u..%u, multiples of %u)\n", "size", s->width, s->height,
            s->side_min, s->side_max, s->side_multiple);
    print_range_u(out, "steps", s->steps, s->steps_min, s->steps_max);
    print_range_d(out, "cfg", s->cfg, s->cfg_min, s->cfg_max);
    if (s->guidance == 0 && s->guidance_min == 0 && s->guidance_max == 0)
        fprintf(out, "  %-16s none (no distilled-guidance input)\n", "guidance");
    else
        print_range_d(out, "guidance", s->guidance, s->guidance_min, s->guidance_max);
    fprintf(out, "  %-16s %s\n  %-16s %s\n  %-16s %s\n  %-16s %s\n", "sampler", s->sampler,
            "scheduler", s->scheduler, "negative prompt",
            s->negative_prompt ? "has an effect" : "no effect (runs at cfg 1)", "policy",
            dm_policy_name(s->policy));
}

void cli_print_dm(FILE *out, const struct store_model *m)
{
    dm_detection d;
    dm_settings st;
    genai_error e;
    genai_error_clear(&e);
    if (store_dm_detection(m, &d, &e) < 0) {
        fprintf(out, "family:    not known (%s)\n", e.detail);
        return;
    }
    fprintf(out, "family:    %s, variant %s (confidence %s", dm_family_display(d.family),
            dm_variant_name(d.variant), dm_confidence_name(d.confidence));
    if (d.variant != DM_VARIANT_BASE || d.variant_confidence != DM_CONF_NONE)
        fprintf(out, ", variant %s", dm_confidence_name(d.variant_confidence));
    fprintf(out, ")\nevidence:  %s\n", d.evidence);
    if (d.variant_evidence[0] != '\0')
        fprintf(out, "variant:   %s\n", d.variant_evidence);
    if (d.notes[0] != '\0')
        fprintf(out, "notes:     %s\n", d.notes);
    if (d.family == DM_FAMILY_UNKNOWN)
        return;
    if (store_dm_settings(m, &d, &st, &e) < 0) {
        fprintf(out, "settings:  cannot be applied: %s\n", e.detail);
        return;
    }
    fprintf(out, "settings:  %s\n",
            m->settings_json != NULL ? "built-in, with this model's override" : "built-in");
    cli_print_dm_settings(out, &st);
    if (m->settings_json != NULL)
        fprintf(out, "override:  %s\n", m->settings_json);
}

/* The footprints the planner measured, newest first: when, which build,
 * host and GPU bytes, the launch configuration. */
static void print_footprints(store_db *db, const char *id)
{
    store_footprint *fps = NULL;
    size_t n = 0;
    genai_error e;
    if (store_db_list_footprints(db, id, &fps, &n, &e) < 0) {
        printf("measured:  cannot be read: %s\n", e.detail);
        return;
    }
    if (n == 0) {
        printf("measured:  nothing yet (recorded the first time it runs)\n");
        return;
    }
    printf("measured:  %zu configuration(s), newest first\n", n);
    for (size_t i = 0; i < n; i++) {
        char when[64], a[32], f[32], g[32];
        time_t t = (time_t)fps[i].measured_at;
        struct tm tm;
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M", localtime_r(&t, &tm));
        plan_demand d;
        if (store_fpdb_from_row(&fps[i], &d, &e) < 0) {
            printf("  %s  refused: %s\n", when, e.detail);
            continue;
        }
        uint64_t gpu = 0;
        for (uint32_t k = 0; k < d.n_gpus; k++)
            gpu += d.gpu[k];
        printf("  %s  %s: host %s + %s mapped, GPU %s\n    %s\n", when,
               fps[i].runtime_build != NULL ? fps[i].runtime_build : "build unknown",
               cli_fmt_bytes(a, sizeof(a), d.host_anon), cli_fmt_bytes(f, sizeof(f), d.host_file),
               cli_fmt_bytes(g, sizeof(g), gpu), fps[i].config_key);
    }
    store_footprint_list_free(fps, n);
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: genai show ID [--json]\n\n"
                 "Shows a registered model: kind, size, digest, source, pinned revision and\n"
                 "its files; for a diffusion model also its family (with the evidence) and\n"
                 "the generation settings genai applies (see 'genai settings').\n");
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
        json_t *o = NULL;
        if ((rc = api_model_detail_json(store_registry(s), &m, &o, &e)) < 0) {
            cli_report("show", rc, &e);
            status = CLI_FAIL;
        } else {
            status = cli_print_json(stdout, o);
        }
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
        if (m.kind == STORE_KIND_DIFFUSION)
            cli_print_dm(stdout, &m);
        print_footprints(store_registry(s), m.id);
    }
    store_model_free(&m);
    store_close(s);
    return status;
}
