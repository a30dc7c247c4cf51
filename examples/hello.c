/*
 * hello.c - the smallest program on genai's C library: create a context,
 * print the machine's snapshot and the registered models, ask the LLM
 * named on the command line (if any) one question, free everything.
 *
 * Build against an installed genai:
 *   cc hello.c $(pkg-config --cflags --libs genai) -o hello
 * Run with GENAI_HOME=/some/folder to use a registry other than the
 * default one (docs/configuration.md):
 *   ./hello [MODEL_ID]
 */
#include <genai.h>

#include <stdio.h>

static void on_event(const char *type, const char *json, void *userdata)
{
    (void)json;
    (void)userdata;
    fprintf(stderr, "event: %s\n", type);
}

int main(int argc, char **argv)
{
    genai_error err;
    genai_error_clear(&err);
    genai_config *cfg = NULL;
    genai *g = NULL;
    char *system = NULL, *models = NULL;
    int status = 1;

    int rc = genai_config_load(&cfg, NULL, &err);
    if (rc < 0)
        goto fail;
    if ((rc = genai_new(cfg, &g, &err)) < 0)
        goto fail;
    if ((rc = genai_set_event_callback(g, on_event, NULL, &err)) < 0)
        goto fail;
    if ((rc = genai_system(g, &system, &err)) < 0)
        goto fail;
    if ((rc = genai_models_list(g, &models, &err)) < 0)
        goto fail;
    printf("genai %s\nsystem: %s\nmodels: %s\n", genai_version(), system, models);

    /* One question to a registered LLM: genai loads it on demand. */
    if (argc > 1) {
        char request[512];
        snprintf(request, sizeof(request),
                 "{\"model\":\"%s\",\"max_tokens\":8,"
                 "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                 argv[1]);
        char *reply = NULL;
        rc = genai_chat(g, request, &reply, &err);
        if (rc < 0)
            goto fail;
        printf("chat: %s\n", reply);
        genai_free_string(reply);
    }
    status = 0;
    goto out;

fail:
    fprintf(stderr, "hello: %s: %s\n", genai_err_name(rc),
            err.detail[0] != '\0' ? err.detail : genai_strerror(rc));
out:
    genai_free_string(models);
    genai_free_string(system);
    genai_free(g);
    genai_config_free(cfg);
    return status;
}
