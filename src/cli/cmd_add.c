/*
 * cmd_add.c - `genai add PATH [--kind diffusion --vae FILE ...]`: register
 * local files in place (nothing is copied; `genai rm` leaves them on disk).
 * Each file is hashed; a GGUF file without the GGUF magic is refused. A
 * diffusion model's family is detected from its files and stored; a set
 * that lacks a component its family needs is refused, naming the role and
 * the flag that adds it (src/store/dmodel.h).
 */
#include "cli.h"
#include "api/shapes.h"

#include "store/dmodel.h"
#include "store/store.h"

#include <string.h>

#define ADD_MAX_FILES 8

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: genai add PATH [--name ID] [--display-name TEXT] [--kind llm|diffusion]\n"
            "                      [--vae FILE] [--clip-l FILE] [--clip-g FILE] [--t5xxl FILE]\n"
            "                      [--json]\n\n"
            "Registers local model files where they are. PATH is the LLM (first shard\n"
            "of a split model) or the diffusion model (a checkpoint, or the diffusion\n"
            "model alone); the other flags name the components of a diffusion model\n"
            "(registry roles vae, clip_l, clip_g, t5xxl). A diffusion model's family is\n"
            "detected from its files; a set missing a part its family needs (Flux: the\n"
            "CLIP-L and T5-XXL encoders and the VAE) is refused.\n");
}

int cmd_add(int argc, char **argv)
{
    static const struct {
        const char *flag;
        const char *role;
    } roles[] = {
        {"--vae", "vae"}, {"--clip-l", "clip_l"}, {"--clip-g", "clip_g"}, {"--t5xxl", "t5xxl"}};
    store_add_file files[ADD_MAX_FILES];
    size_t n = 1;
    const char *path = NULL, *id = NULL, *name = NULL, *kind_text = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        int matched = 0;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return CLI_OK;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
            continue;
        }
        for (size_t r = 0; r < sizeof(roles) / sizeof(roles[0]); r++) {
            if (strcmp(argv[i], roles[r].flag) == 0) {
                if (i + 1 >= argc)
                    return cli_usage_error("add", "%s needs a file", argv[i]);
                if (n == ADD_MAX_FILES)
                    return cli_usage_error("add", "too many files");
                files[n].role = roles[r].role;
                files[n].path = argv[++i];
                n++;
                matched = 1;
                break;
            }
        }
        if (matched)
            continue;
        if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            id = argv[++i];
        else if (strcmp(argv[i], "--display-name") == 0 && i + 1 < argc)
            name = argv[++i];
        else if (strcmp(argv[i], "--kind") == 0 && i + 1 < argc)
            kind_text = argv[++i];
        else if (argv[i][0] == '-')
            return cli_usage_error("add", "unknown or incomplete flag '%s'", argv[i]);
        else if (path == NULL)
            path = argv[i];
        else
            return cli_usage_error("add", "one model at a time (components go with --vae ...)");
    }
    if (path == NULL)
        return cli_usage_error("add", "which file?");
    store_kind kind = n > 1 ? STORE_KIND_DIFFUSION : STORE_KIND_LLM;
    if (kind_text != NULL && store_kind_parse(kind_text, &kind) < 0)
        return cli_usage_error("add", "--kind is llm or diffusion, not '%s'", kind_text);
    if (kind == STORE_KIND_LLM && n > 1)
        return cli_usage_error("add", "components (--vae ...) belong to --kind diffusion");
    files[0].role = "model";
    files[0].path = path;

    store *s = NULL;
    store_model m;
    genai_error e;
    genai_error_clear(&e);
    int rc = store_open(&s, &e);
    if (rc == 0)
        rc = store_add(s, id, name, kind, files, n, &m, &e);
    store_close(s);
    if (rc < 0) {
        cli_report("add", rc, &e);
        if (rc == GENAI_ENOT_FOUND && kind == STORE_KIND_DIFFUSION)
            fprintf(stderr, "Give the missing parts with --clip-l, --clip-g, --t5xxl or --vae.\n");
        return CLI_FAIL;
    }
    int status = CLI_OK;
    if (json) {
        status = cli_print_json(stdout, api_model_json(&m));
    } else {
        char size[32];
        printf("added %s (%s, %zu file%s, in place)\n", m.id,
               cli_fmt_bytes(size, sizeof(size), m.size), m.n_files, m.n_files == 1 ? "" : "s");
        dm_detection d;
        if (kind == STORE_KIND_DIFFUSION && store_dm_detection(&m, &d, NULL) == 0)
            printf("family: %s %s (%s confidence: %s)\n", dm_family_display(d.family),
                   dm_variant_name(d.variant), dm_confidence_name(d.confidence), d.evidence);
    }
    store_model_free(&m);
    return status;
}
