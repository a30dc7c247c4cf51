/*
 * cli_util.c - helpers shared by the subcommands (see cli.h).
 */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_report(const char *cmd, int code, const genai_error *err)
{
    if (err != NULL && err->detail[0] != '\0')
        fprintf(stderr, "genai %s: %s (%s)\n", cmd, err->detail, genai_err_name(code));
    else
        fprintf(stderr, "genai %s: %s (%s)\n", cmd, genai_strerror(code), genai_err_name(code));
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "genai %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'genai %s --help'.\n", cmd);
    return CLI_USAGE;
}

int cli_print_json(FILE *out, json_t *value)
{
    if (value == NULL)
        return CLI_FAIL;
    int rc = json_dumpf(value, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(value);
    if (rc != 0 || fputc('\n', out) == EOF || fflush(out) != 0)
        return CLI_FAIL;
    return CLI_OK;
}

int cli_is_tty(int fd)
{
    const char *term = getenv("TERM");
    if (getenv("NO_COLOR") != NULL || (term != NULL && strcmp(term, "dumb") == 0))
        return 0;
    return isatty(fd);
}

const char *cli_fmt_bytes(char *buf, size_t bufsz, unsigned long long bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 5) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, bufsz, "%llu B", bytes);
    else
        snprintf(buf, bufsz, "%.2f %s", v, units[u]);
    return buf;
}
