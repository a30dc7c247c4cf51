/*
 * logfile.h - a size-capped, rotating log file per supervised process.
 *
 * DIR/NAME.log receives every line of the child's stdout and stderr, each
 * prefixed with "out: " or "err: ". When the next line would pass max_bytes the
 * file is rotated: NAME.log.(k-1) -> NAME.log.k ... NAME.log -> NAME.log.1,
 * keeping at most 'keep' old files (0..2), and a fresh NAME.log is started.
 * Writes are synchronous appends of small lines; a write error disables the
 * file (logged once) rather than failing the child.
 */
#ifndef GENAI_PROC_LOGFILE_H
#define GENAI_PROC_LOGFILE_H

#include "core/error.h"

#include <stddef.h>

typedef struct proc_logfile {
    int fd;      /* -1 when closed or disabled */
    char *path;  /* DIR/NAME.log, mem_alloc'd */
    size_t size; /* bytes in the current file */
    size_t max_bytes;
    int keep;
} proc_logfile;

/* Opens (appending to) DIR/NAME.log, creating DIR if needed. keep is clamped
 * to 0..2; max_bytes of 0 means 8 MiB. On failure lf is left closed. */
int proc_logfile_open(proc_logfile *lf, const char *dir, const char *name, size_t max_bytes,
                      int keep, genai_error *err);

/* Appends prefix, the line and '\n', rotating first when needed. No-op when closed. */
void proc_logfile_write(proc_logfile *lf, const char *prefix, const char *line, size_t len);

/* Closes the file and frees the path. Accepts NULL and a closed log. */
void proc_logfile_close(proc_logfile *lf);

#endif
