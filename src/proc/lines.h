/*
 * lines.h - turning a child's output bytes into lines, and keeping the last ones.
 *
 * proc_lines splits a byte stream on LF, CRLF and lone CR (progress bars
 * redraw with CR), across read boundaries, and cuts lines longer than its cap
 * into cap-sized pieces so that no child can make us buffer without bound.
 * Lines are handed over without their terminator; ANSI escapes are kept (use
 * proc_strip_ansi for display or matching).
 *
 * With eager_el set, a line that ends in ESC [ K ("erase to end of line") is
 * handed over at once, and the CR or LF that follows it ends nothing. Progress
 * bars redraw as "\r<bar>ESC[K" (stable-diffusion.cpp), so without this a
 * bar would wait in the buffer until the next redraw, one whole step later;
 * with it the lines are the same, only delivered when they are printed.
 *
 * proc_ring keeps copies of the last N lines of a stream: the stderr tail that
 * goes with a crash report.
 */
#ifndef GENAI_PROC_LINES_H
#define GENAI_PROC_LINES_H

#include "core/sbuf.h"

#include <stddef.h>

typedef void (*proc_line_fn)(void *arg, const char *line, size_t len);

typedef struct proc_lines {
    char *buf; /* the partial line so far; max_line bytes */
    size_t len;
    size_t max_line;
    int after_cr; /* the last byte seen was CR: a following LF is its pair */
    int eager_el; /* set by the owner: a line ending in ESC [ K is complete at once */
    int after_el; /* a line just ended at ESC [ K: a following CR or LF ends nothing */
} proc_lines;

/* Prepares a splitter for lines of at most max_line bytes (> 0). 0 or -ENOMEM. */
int proc_lines_init(proc_lines *pl, size_t max_line);

/* Feeds n bytes; calls fn for each completed line (line is not NUL-terminated
 * and valid only during the call). */
void proc_lines_feed(proc_lines *pl, const char *data, size_t n, proc_line_fn fn, void *arg);

/* At end of stream: hands over the unterminated last line, if any. */
void proc_lines_flush(proc_lines *pl, proc_line_fn fn, void *arg);

/* Releases the buffer. Accepts NULL and a zeroed struct. */
void proc_lines_free(proc_lines *pl);

typedef struct proc_ring {
    char **lines; /* cap slots of NUL-terminated copies (mem_alloc'd) */
    size_t cap;
    size_t count;
    size_t next; /* slot the next push writes */
} proc_ring;

/* Prepares a ring of cap (> 0) lines. 0 or -ENOMEM. */
int proc_ring_init(proc_ring *r, size_t cap);

/* Appends a copy of the line, dropping the oldest when full. On allocation
 * failure the line is dropped and -ENOMEM returned; the ring stays valid. */
int proc_ring_push(proc_ring *r, const char *line, size_t len);

/* Appends the last max_lines lines (all when 0), oldest first, each followed
 * by '\n', to out. */
void proc_ring_join(const proc_ring *r, size_t max_lines, sbuf *out);

/* Forgets every line. */
void proc_ring_clear(proc_ring *r);

/* Frees the lines and the slots. Accepts NULL and a zeroed struct. */
void proc_ring_free(proc_ring *r);

/*
 * Copies src (n bytes) to dst (dstsz > 0) without ANSI escape sequences: CSI
 * (ESC [ ... final byte), OSC (ESC ] ... BEL or ESC \), ESC + intermediates +
 * final byte (e.g. ESC ( B), and two-byte ESC x.
 * Always NUL-terminates; returns the length written.
 */
size_t proc_strip_ansi(char *dst, size_t dstsz, const char *src, size_t n);

#endif
