/*
 * log.c - leveled logging (see log.h).
 *
 * Messages are formatted into a bounded stack buffer (long messages are
 * truncated, never allocated) and handed to the sink with the level checked
 * first, so disabled levels cost one atomic load.
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

static atomic_int current_level = LOG_LEVEL_WARN;
static log_sink_fn sink_fn;
static void *sink_userdata;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

const char *log_level_name(enum log_level level)
{
    if ((int)level < 0 || (int)level > LOG_LEVEL_TRACE)
        return "?";
    return level_names[level];
}

void log_set_sink(log_sink_fn fn, void *userdata)
{
    sink_fn = fn;
    sink_userdata = userdata;
}

void log_set_level(enum log_level level)
{
    atomic_store(&current_level, (int)level);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load(&current_level);
}

int log_parse_level(const char *text, enum log_level *out)
{
    if (text == NULL)
        return GENAI_EBAD_ARG;
    for (int i = 0; i <= LOG_LEVEL_TRACE; i++) {
        if (strcasecmp(text, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (text[0] >= '0' && text[0] <= '4' && text[1] == '\0') {
        *out = (enum log_level)(text[0] - '0');
        return 0;
    }
    return GENAI_EBAD_ARG;
}

void log_init_from_env(void)
{
    enum log_level level;
    const char *env = getenv("GENAI_LOG_LEVEL");
    if (env != NULL && log_parse_level(env, &level) == 0)
        log_set_level(level);
}

static void default_sink(enum log_level level, const char *module, const char *msg, void *ud)
{
    (void)ud;
    fprintf(stderr, "genai: %s: %s: %s\n", log_level_name(level), module, msg);
}

void log_write(enum log_level level, const char *module, const char *fmt, ...)
{
    if ((int)level > atomic_load(&current_level))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (sink_fn != NULL)
        sink_fn(level, module != NULL ? module : "-", msg, sink_userdata);
    else
        default_sink(level, module != NULL ? module : "-", msg, NULL);
}
