/*
 * cmd_logs.c - `genai logs [-n N] [--json]`: the running daemon's recent
 * log lines (GET /api/logs), oldest first.
 *
 * The daemon keeps its last lines at level info and above in memory
 * (src/http/logring.c); the runtimes' own logs are files per process.
 */
#include "cli.h"

#include "cli/daemon_client.h"

#include <stdlib.h>
#include <string.h>

/* The string value of j, or dflt when j is not a string. */
static const char *str_or(const json_t *j, const char *dflt)
{
    const char *s = json_string_value(j);
    return s != NULL ? s : dflt;
}
#include <time.h>

static void usage(FILE *out)
{
    fprintf(out, "Usage: genai logs [-n LINES] [--json]\n\n"
                 "Prints the running genai daemon's recent log lines (default the last 200,\n"
                 "at most 1000). Exits 1 when no daemon is running.\n");
}

int cmd_logs(int argc, char **argv)
{
    int json = 0;
    const char *lines = "200";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return CLI_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            lines = argv[++i];
            char *end;
            long v = strtol(lines, &end, 10);
            if (*end != '\0' || v < 1 || v > 1000)
                return cli_usage_error("logs", "-n takes 1 to 1000 lines");
        } else {
            return cli_usage_error("logs", "unexpected argument '%s'", argv[i]);
        }
    }
    genai_error err;
    genai_error_clear(&err);
    daemon_info d;
    int rc = daemon_find(&d, &err);
    if (rc < 0) {
        cli_report("logs", rc, &err);
        return CLI_FAIL;
    }
    if (rc == 0) {
        daemon_report_none("logs", &d);
        return CLI_FAIL;
    }
    char path[64];
    snprintf(path, sizeof(path), "/api/logs?limit=%s", lines);
    long st = 0;
    json_t *reply = NULL;
    if ((rc = daemon_request(&d, "GET", path, NULL, 30, &st, &reply, &err)) < 0) {
        cli_report("logs", rc, &err);
        return CLI_FAIL;
    }
    json_t *arr = json_object_get(reply, "lines");
    if (st != 200 || !json_is_array(arr)) {
        daemon_report_reply("logs", st, reply);
        json_decref(reply);
        return CLI_FAIL;
    }
    if (json)
        return cli_print_json(stdout, reply);
    size_t i;
    json_t *l;
    json_array_foreach(arr, i, l)
    {
        time_t t = (time_t)(json_integer_value(json_object_get(l, "time_ms")) / 1000);
        int ms = (int)(json_integer_value(json_object_get(l, "time_ms")) % 1000);
        struct tm tm;
        char when[32];
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
        printf("%s.%03d %-5s %s: %s\n", when, ms, str_or(json_object_get(l, "level"), "?"),
               str_or(json_object_get(l, "module"), "?"),
               str_or(json_object_get(l, "message"), ""));
    }
    json_decref(reply);
    return CLI_OK;
}
