/*
 * log.h - leveled logging with a replaceable sink.
 *
 * Library code logs through these macros and never writes to stdout/stderr
 * itself; the program (CLI, daemon, embedding app) chooses the sink. The
 * default sink writes "genai: LEVEL: message" lines to stderr for messages at
 * or above the current level (GENAI_LOG_WARN unless GENAI_LOG_LEVEL says
 * otherwise: error, warn, info, debug, trace).
 */
#ifndef GENAI_CORE_LOG_H
#define GENAI_CORE_LOG_H

#include "core/error.h"

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
    LOG_LEVEL_TRACE = 4,
};

typedef void (*log_sink_fn)(enum log_level level, const char *module, const char *msg,
                            void *userdata);

/* Sets the sink (NULL restores the default stderr sink). Not thread-safe with
 * respect to concurrent logging: call it at start-up. */
void log_set_sink(log_sink_fn fn, void *userdata);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error".."trace" (case-insensitive) or a digit; -GENAI_EBAD_ARG-style
 * negative code on unknown text. */
int log_parse_level(const char *text, enum log_level *out);
const char *log_level_name(enum log_level level);
/* Reads GENAI_LOG_LEVEL from the environment, if set and valid. */
void log_init_from_env(void);

void log_write(enum log_level level, const char *module, const char *fmt, ...) GX_PRINTF(3, 4);

#define LOG_ERROR(mod, ...) log_write(LOG_LEVEL_ERROR, mod, __VA_ARGS__)
#define LOG_WARN(mod, ...) log_write(LOG_LEVEL_WARN, mod, __VA_ARGS__)
#define LOG_INFO(mod, ...) log_write(LOG_LEVEL_INFO, mod, __VA_ARGS__)
#define LOG_DEBUG(mod, ...) log_write(LOG_LEVEL_DEBUG, mod, __VA_ARGS__)
#define LOG_TRACE(mod, ...) log_write(LOG_LEVEL_TRACE, mod, __VA_ARGS__)

#endif
