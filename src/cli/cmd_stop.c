/*
 * cmd_stop.c - `genai stop`: asks the running daemon to shut down and waits
 * until it has.
 *
 * POST /api/shutdown (accepted from loopback only, with the API key when one
 * is set); the daemon then stops as on SIGTERM: requests in flight are
 * failed and drained, serve.json is removed. This command waits for the
 * process to be gone, polling every 50 ms up to a deadline (another
 * process's exit cannot be waited on without being its parent).
 */
#include "cli.h"

#include "cli/daemon_client.h"

#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The daemon's own stop takes at most its 2 s drain plus the runtimes'
 * stop escalation; 30 s leaves room for a slow machine. */
#define STOP_WAIT_S_DEFAULT 30

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: genai stop [--timeout SECONDS]\n\n"
            "Asks the running genai daemon to shut down and waits until it has (default\n"
            "%d s). Exits 1 when no daemon is running or it did not stop in time.\n",
            STOP_WAIT_S_DEFAULT);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int cmd_stop(int argc, char **argv)
{
    long timeout_s = STOP_WAIT_S_DEFAULT;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return CLI_OK;
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            char *end;
            timeout_s = strtol(argv[++i], &end, 10);
            if (*end != '\0' || timeout_s < 1 || timeout_s > 3600)
                return cli_usage_error("stop", "--timeout takes 1 to 3600 seconds");
        } else {
            return cli_usage_error("stop", "unexpected argument '%s'", argv[i]);
        }
    }
    genai_error err;
    genai_error_clear(&err);
    daemon_info d;
    int rc = daemon_find(&d, &err);
    if (rc < 0) {
        cli_report("stop", rc, &err);
        return CLI_FAIL;
    }
    if (rc == 0) {
        daemon_report_none("stop", &d);
        return CLI_FAIL;
    }
    long st = 0;
    json_t *reply = NULL;
    if ((rc = daemon_request(&d, "POST", "/api/shutdown", NULL, 30, &st, &reply, &err)) < 0) {
        cli_report("stop", rc, &err);
        return CLI_FAIL;
    }
    if (st != 202) {
        daemon_report_reply("stop", st, reply);
        json_decref(reply);
        return CLI_FAIL;
    }
    json_decref(reply);
    uint64_t deadline = now_ms() + (uint64_t)timeout_s * 1000u;
    while (daemon_pid_alive(d.pid)) {
        if (now_ms() >= deadline) {
            fprintf(stderr,
                    "genai stop: the daemon (pid %d) accepted the request but is still "
                    "running after %ld s\n",
                    (int)d.pid, timeout_s);
            return CLI_FAIL;
        }
        struct timespec nap = {0, 50 * 1000000L};
        nanosleep(&nap, NULL);
    }
    printf("genai daemon (pid %d) stopped\n", (int)d.pid);
    return CLI_OK;
}
