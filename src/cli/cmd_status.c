/*
 * cmd_status.c - `genai status [--json]`: is a daemon running, and what is
 * it doing (pid, address, uptime, memory, runtimes).
 *
 * Asks GET /api/status of the daemon found through serve.json. With no
 * daemon it says so, naming the file it looked for, and exits 1.
 */
#include "cli.h"

#include "cli/daemon_client.h"

#include <string.h>

/* The string value of j, or dflt when j is not a string. */
static const char *str_or(const json_t *j, const char *dflt)
{
    const char *s = json_string_value(j);
    return s != NULL ? s : dflt;
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: genai status [--json]\n\n"
                 "Shows whether a genai daemon (genai serve) is running, its address, uptime,\n"
                 "memory and runtimes. Exits 1 when none is running.\n");
}

static void fmt_uptime(char *buf, size_t n, long long s)
{
    if (s >= 86400)
        snprintf(buf, n, "%lldd %lldh %lldm", s / 86400, s % 86400 / 3600, s % 3600 / 60);
    else if (s >= 3600)
        snprintf(buf, n, "%lldh %lldm %llds", s / 3600, s % 3600 / 60, s % 60);
    else if (s >= 60)
        snprintf(buf, n, "%lldm %llds", s / 60, s % 60);
    else
        snprintf(buf, n, "%llds", s);
}

static void print_human(const daemon_info *d, json_t *st)
{
    char up[64], rss[32], avail[32], total[32];
    fmt_uptime(up, sizeof(up), (long long)json_integer_value(json_object_get(st, "uptime_s")));
    printf("genai daemon: running (pid %lld, version %s)\n",
           (long long)json_integer_value(json_object_get(st, "pid")),
           str_or(json_object_get(st, "version"), d->version));
    printf("address:      %s\n", d->url);
    printf("uptime:       %s\n", up);
    cli_fmt_bytes(rss, sizeof(rss),
                  (unsigned long long)json_integer_value(json_object_get(st, "rss_bytes")));
    json_t *mem = json_object_get(st, "memory");
    json_t *av = json_object_get(mem, "effective_available_bytes");
    if (!json_is_integer(av))
        av = json_object_get(mem, "available_bytes");
    json_t *tot = json_object_get(mem, "total_bytes");
    if (json_is_integer(av) && json_is_integer(tot))
        printf("memory:       daemon %s; host %s available of %s\n", rss,
               cli_fmt_bytes(avail, sizeof(avail), (unsigned long long)json_integer_value(av)),
               cli_fmt_bytes(total, sizeof(total), (unsigned long long)json_integer_value(tot)));
    else
        printf("memory:       daemon %s\n", rss);
    json_t *rt = json_object_get(st, "runtimes");
    if (json_is_array(rt)) {
        printf("runtimes:     %zu\n", json_array_size(rt));
        size_t i;
        json_t *r;
        json_array_foreach(rt, i, r)
        {
            printf("  %s %s %s\n", str_or(json_object_get(r, "kind"), "?"),
                   str_or(json_object_get(r, "model"), "?"),
                   str_or(json_object_get(r, "state"), "?"));
        }
    } else {
        const char *note = json_string_value(json_object_get(st, "runtimes_note"));
        printf("runtimes:     %s\n", note != NULL ? note : "unknown");
    }
}

int cmd_status(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return CLI_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            return cli_usage_error("status", "unexpected argument '%s'", argv[i]);
        }
    }
    genai_error err;
    genai_error_clear(&err);
    daemon_info d;
    int rc = daemon_find(&d, &err);
    if (rc < 0) {
        cli_report("status", rc, &err);
        return CLI_FAIL;
    }
    if (rc == 0) {
        daemon_report_none("status", &d);
        return CLI_FAIL;
    }
    long st = 0;
    json_t *reply = NULL;
    if ((rc = daemon_request(&d, "GET", "/api/status", NULL, 30, &st, &reply, &err)) < 0) {
        cli_report("status", rc, &err);
        return CLI_FAIL;
    }
    if (st != 200 || !json_is_object(reply)) {
        daemon_report_reply("status", st, reply);
        json_decref(reply);
        return CLI_FAIL;
    }
    if (json) {
        json_object_set_new(reply, "url", json_string(d.url));
        json_object_set_new(reply, "state_file", json_string(d.state_path));
        return cli_print_json(stdout, reply);
    }
    print_human(&d, reply);
    json_decref(reply);
    return CLI_OK;
}
