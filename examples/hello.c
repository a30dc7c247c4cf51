/*
 * hello.c - the smallest program on genai's C library: create a context,
 * print the machine's snapshot and the registered models, free everything.
 *
 * Build against an installed genai:
 *   cc hello.c $(pkg-config --cflags --libs genai) -o hello
 * Run with GENAI_HOME=/some/folder to use a registry other than the
 * default one (docs/configuration.md).
 */
#include <genai.h>

#include <stdio.h>

static void on_event(const char *type, const char *json, void *userdata)
{
    (void)json;
    (void)userdata;
    fprintf(stderr, "event: %s\n", type);
}

int main(void)
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

    /* Chat needs the orchestrator; a build without it says so clearly. */
    char *reply = NULL;
    rc = genai_chat(g, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &reply, &err);
    if (rc < 0)
        printf("chat: %s (%s)\n", genai_err_name(rc), err.detail);
    else
        printf("chat: %s\n", reply);
    genai_free_string(reply);
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
