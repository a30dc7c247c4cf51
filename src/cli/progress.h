/*
 * progress.h - progress output for long CLI operations (pull, and later
 * model loads and image jobs).
 *
 * Two renderings of the same updates:
 *   terminal  one line redrawn in place with \r: label, a bar, bytes done of
 *             total, speed and ETA; at most 10 redraws a second;
 *   JSON      one JSON object per line ("JSON lines") on the stream, for
 *             scripts: {"event":"progress","phase":..,"name":..,"done":..,
 *             "total":..,"bytes_per_s":..,"eta_s":..}; at most 4 a second for
 *             "progress" events, every phase change at once.
 * Speed is an exponential moving average over the updates, so the ETA does
 * not jump with every chunk.
 */
#ifndef GENAI_CLI_PROGRESS_H
#define GENAI_CLI_PROGRESS_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

typedef struct cli_progress cli_progress;

enum progress_mode { PROGRESS_NONE, PROGRESS_TTY, PROGRESS_JSON };

/* Creates a progress writer on out (not owned). Free with progress_free. */
cli_progress *progress_new(FILE *out, enum progress_mode mode);
/* Picks TTY when fd is a terminal, JSON when json is set, else NONE. */
enum progress_mode progress_mode_for(int fd, int json);

/* Reports the state of one item: phase is a short word ("downloading"),
 * name what it is about, done/total in bytes (total 0 when unknown). */
void progress_update(cli_progress *p, const char *phase, const char *name, uint64_t done,
                     uint64_t total);
/* Prints a one-off note: a line of text on a terminal, or the JSON object
 * {"event": event, "message": text} plus the fields of extra (a JSON object,
 * reference stolen; may be NULL). */
void progress_note(cli_progress *p, const char *event, const char *text, json_t *extra);
/* Ends the current line on a terminal (after the last update). */
void progress_finish(cli_progress *p);
/* Releases p (ending its line); accepts NULL. */
void progress_free(cli_progress *p);

/* Formats seconds as "1h02m", "3m05s" or "42s" into buf. */
const char *progress_fmt_eta(char *buf, size_t bufsz, double seconds);

#endif
