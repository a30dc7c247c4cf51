/*
 * cmd_status.c - `genai status [--json]`: is a daemon running, and what is
 * it doing (pid, address, uptime, memory, runtimes).
 *
 * Asks GET /api/status of the daemon found through serve.json, then GET
 * /api/reservations for genai's share of the machine (budgets, reserves,
 * what it may still plan) and the active reservations (docs/budgets.md).
 * With no daemon it says so, naming the file it looked for, and exits 1.
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
            const char *kind = str_or(json_object_get(r, "kind"), "?");
            if (strcmp(kind, "image") == 0) {
                printf("  image  %lld job(s) queued or running\n",
                       (long long)json_integer_value(json_object_get(r, "jobs")));
                continue;
            }
            printf("  %s    %s %s", kind, str_or(json_object_get(r, "model"), "?"),
                   str_or(json_object_get(r, "state"), "?"));
            json_int_t pid = json_integer_value(json_object_get(r, "pid"));
            if (pid > 0)
                printf(" (pid %lld)", (long long)pid);
            const char *reason = json_string_value(json_object_get(r, "reason"));
            if (reason != NULL && reason[0] != '\0')
                printf(": %s", reason);
            printf("\n");
        }
    } else {
        const char *note = json_string_value(json_object_get(st, "runtimes_note"));
        printf("runtimes:     %s\n", note != NULL ? note : "unknown");
    }
}

static void print_place(const char *name, const json_t *p)
{
    char b[32], r[32], pr[32], u[32];
    const json_t *budget = json_object_get(p, "budget_bytes");
    printf(
        "  %-8s budget %s, reserve %s", name,
        json_is_integer(budget)
            ? cli_fmt_bytes(b, sizeof(b), (unsigned long long)json_integer_value(budget))
            : "none",
        cli_fmt_bytes(r, sizeof(r),
                      (unsigned long long)json_integer_value(json_object_get(p, "reserve_bytes"))));
    json_int_t promised = json_integer_value(json_object_get(p, "promised_bytes"));
    if (promised > 0)
        printf(" + %s reserved", cli_fmt_bytes(pr, sizeof(pr), (unsigned long long)promised));
    printf("; usable %s\n", cli_fmt_bytes(u, sizeof(u),
                                          (unsigned long long)json_integer_value(
                                              json_object_get(p, "usable_bytes"))));
}

/* The share and the active reservations of GET /api/reservations. */
static void print_sharing(const json_t *rs)
{
    const json_t *share = json_object_get(rs, "share");
    if (json_is_object(share)) {
        printf("share:\n");
        print_place("host", json_object_get(share, "host"));
        size_t i;
        json_t *g;
        json_array_foreach(json_object_get(share, "gpus"), i, g)
        {
            char name[32];
            snprintf(name, sizeof(name), "GPU %zu", i);
            print_place(name, g);
        }
    }
    printf("reservations: %lld active\n",
           (long long)json_integer_value(json_object_get(rs, "active")));
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(rs, "reservations"), i, r)
    {
        const char *st = str_or(json_object_get(r, "state"), "?");
        if (strcmp(st, "pending") != 0 && strcmp(st, "confirmed") != 0)
            continue;
        char b[32];
        const json_t *dev = json_object_get(r, "device");
        char place[16];
        if (json_is_integer(dev))
            snprintf(place, sizeof(place), "GPU %lld", (long long)json_integer_value(dev));
        else
            snprintf(place, sizeof(place), "host");
        printf("  #%lld %s of %s, %s: %s\n",
               (long long)json_integer_value(json_object_get(r, "id")),
               cli_fmt_bytes(b, sizeof(b),
                             (unsigned long long)json_integer_value(json_object_get(r, "bytes"))),
               place, st, str_or(json_object_get(r, "reason"), ""));
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
    /* Sharing the machine: a daemon without reservations (older, or not
     * running models) simply shows none. */
    long rst = 0;
    json_t *rs = NULL;
    genai_error rerr;
    genai_error_clear(&rerr);
    if (daemon_request(&d, "GET", "/api/reservations", NULL, 30, &rst, &rs, &rerr) < 0 ||
        rst != 200 || !json_is_object(rs)) {
        json_decref(rs);
        rs = NULL;
    }
    if (json) {
        json_object_set_new(reply, "url", json_string(d.url));
        json_object_set_new(reply, "state_file", json_string(d.state_path));
        if (rs != NULL) {
            json_object_set(reply, "share", json_object_get(rs, "share"));
            json_object_set(reply, "reservations", json_object_get(rs, "reservations"));
        }
        json_decref(rs);
        return cli_print_json(stdout, reply);
    }
    print_human(&d, reply);
    if (rs != NULL)
        print_sharing(rs);
    json_decref(rs);
    json_decref(reply);
    return CLI_OK;
}
