/*
 * lines.c - line splitting, the line ring, ANSI stripping (see lines.h).
 *
 * The splitter treats CR as a terminator and remembers it (after_cr), so the
 * LF of a CRLF split across two reads is recognised and swallowed instead of
 * producing an empty line.
 */
#include "proc/lines.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>

int proc_lines_init(proc_lines *pl, size_t max_line)
{
    memset(pl, 0, sizeof(*pl));
    if (max_line == 0)
        return -EINVAL;
    pl->buf = mem_alloc(max_line);
    if (pl->buf == NULL)
        return -ENOMEM;
    pl->max_line = max_line;
    return 0;
}

void proc_lines_feed(proc_lines *pl, const char *data, size_t n, proc_line_fn fn, void *arg)
{
    for (size_t i = 0; i < n; i++) {
        char c = data[i];
        if (pl->after_el) {
            pl->after_el = 0;
            if (c == '\n' || c == '\r') {
                pl->after_cr = c == '\r'; /* ESC[K CR LF: the LF ends nothing either */
                continue;
            }
        }
        if (c == '\n' && pl->after_cr) {
            pl->after_cr = 0; /* second half of CRLF */
            continue;
        }
        pl->after_cr = c == '\r';
        if (c == '\n' || c == '\r') {
            fn(arg, pl->buf, pl->len);
            pl->len = 0;
            continue;
        }
        if (pl->len == pl->max_line) {
            fn(arg, pl->buf, pl->len);
            pl->len = 0;
        }
        pl->buf[pl->len++] = c;
        if (pl->eager_el && c == 'K' && pl->len >= 3 && pl->buf[pl->len - 2] == '[' &&
            pl->buf[pl->len - 3] == '\x1b') {
            fn(arg, pl->buf, pl->len);
            pl->len = 0;
            pl->after_el = 1;
        }
    }
}

void proc_lines_flush(proc_lines *pl, proc_line_fn fn, void *arg)
{
    if (pl->len > 0)
        fn(arg, pl->buf, pl->len);
    pl->len = 0;
    pl->after_cr = 0;
    pl->after_el = 0;
}

void proc_lines_free(proc_lines *pl)
{
    if (pl == NULL)
        return;
    mem_free(pl->buf);
    memset(pl, 0, sizeof(*pl));
}

int proc_ring_init(proc_ring *r, size_t cap)
{
    memset(r, 0, sizeof(*r));
    if (cap == 0)
        return -EINVAL;
    r->lines = mem_calloc(cap, sizeof(char *));
    if (r->lines == NULL)
        return -ENOMEM;
    r->cap = cap;
    return 0;
}

int proc_ring_push(proc_ring *r, const char *line, size_t len)
{
    char *copy = mem_strndup(line, len);
    if (copy == NULL)
        return -ENOMEM;
    mem_free(r->lines[r->next]);
    r->lines[r->next] = copy;
    r->next = (r->next + 1) % r->cap;
    if (r->count < r->cap)
        r->count++;
    return 0;
}

void proc_ring_join(const proc_ring *r, size_t max_lines, sbuf *out)
{
    size_t n = r->count;
    if (max_lines != 0 && max_lines < n)
        n = max_lines;
    size_t first = (r->next + r->cap - n) % r->cap;
    for (size_t k = 0; k < n; k++) {
        sbuf_puts(out, r->lines[(first + k) % r->cap]);
        sbuf_append(out, "\n", 1);
    }
}

void proc_ring_clear(proc_ring *r)
{
    for (size_t i = 0; i < r->cap; i++) {
        mem_free(r->lines[i]);
        r->lines[i] = NULL;
    }
    r->count = 0;
    r->next = 0;
}

void proc_ring_free(proc_ring *r)
{
    if (r == NULL || r->lines == NULL)
        return;
    proc_ring_clear(r);
    mem_free(r->lines);
    memset(r, 0, sizeof(*r));
}

size_t proc_strip_ansi(char *dst, size_t dstsz, const char *src, size_t n)
{
    size_t o = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)src[i];
        if (c != 0x1b) {
            if (o + 1 < dstsz)
                dst[o++] = (char)c;
            i++;
            continue;
        }
        if (i + 1 >= n) {
            i++;
            break;
        }
        unsigned char k = (unsigned char)src[i + 1];
        i += 2;
        if (k == '[') { /* CSI: parameters and intermediates, then 0x40..0x7e */
            while (i < n && !((unsigned char)src[i] >= 0x40 && (unsigned char)src[i] <= 0x7e))
                i++;
            if (i < n)
                i++;
        } else if (k == ']') { /* OSC: until BEL or ST (ESC \) */
            while (i < n && src[i] != '\a' && !(src[i] == 0x1b && i + 1 < n && src[i + 1] == '\\'))
                i++;
            if (i < n)
                i += src[i] == '\a' ? 1 : 2;
        } else if (k >= 0x20 && k <= 0x2f) { /* nF: intermediates, then a final byte */
            while (i < n && (unsigned char)src[i] >= 0x20 && (unsigned char)src[i] <= 0x2f)
                i++;
            if (i < n)
                i++;
        }
    }
    dst[o] = '\0';
    return o;
}
