/*
 * logring.c - a bounded ring of recent log lines (see logring.h).
 *
 * The ring is an array of HTTP_LOGRING_LINES slots; 'next' is where the next
 * line goes and 'count' how many slots hold a line. Each slot owns its
 * message copy. A line that cannot be copied (out of memory) is dropped from
 * the ring but still reaches stderr: logging must never fail its caller.
 */
#include "http/logring.h"

#include "core/alloc.h"
#include "core/log.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct ring_line {
    int64_t time_ms;
    enum log_level level;
    char module[24];
    char *message;
} ring_line;

static pthread_mutex_t ring_mu = PTHREAD_MUTEX_INITIALIZER;
static ring_line *ring;   /* HTTP_LOGRING_LINES slots, under ring_mu */
static size_t ring_next;  /* under ring_mu */
static size_t ring_count; /* under ring_mu */
static enum log_level stderr_level = LOG_LEVEL_WARN;
static enum log_level level_before = LOG_LEVEL_WARN;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A JSON string of text; bytes that are not valid UTF-8 (a child's stderr
 * may hold anything) become '?' rather than losing the line. */
static json_t *text_json(const char *text)
{
    json_t *j = json_string(text);
    if (j != NULL)
        return j;
    char *copy = mem_strdup(text);
    if (copy == NULL)
        return NULL;
    for (char *p = copy; *p != '\0'; p++) {
        if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20)
            *p = '?';
    }
    j = json_string(copy);
    mem_free(copy);
    return j;
}

static void ring_sink(enum log_level level, const char *module, const char *msg, void *ud)
{
    (void)ud;
    char *copy = mem_strdup(msg);
    pthread_mutex_lock(&ring_mu);
    if (ring != NULL && copy != NULL) {
        ring_line *slot = &ring[ring_next];
        mem_free(slot->message);
        slot->time_ms = now_ms();
        slot->level = level;
        snprintf(slot->module, sizeof(slot->module), "%s", module);
        slot->message = copy;
        copy = NULL;
        ring_next = (ring_next + 1) % HTTP_LOGRING_LINES;
        if (ring_count < HTTP_LOGRING_LINES)
            ring_count++;
    }
    pthread_mutex_unlock(&ring_mu);
    mem_free(copy);
    if (level <= stderr_level)
        fprintf(stderr, "genai: %s: %s: %s\n", log_level_name(level), module, msg);
}

void http_logring_install(void)
{
    pthread_mutex_lock(&ring_mu);
    int already = ring != NULL;
    if (!already)
        ring = mem_calloc(HTTP_LOGRING_LINES, sizeof(*ring));
    int ok = ring != NULL;
    pthread_mutex_unlock(&ring_mu);
    if (already || !ok)
        return;
    level_before = log_get_level();
    stderr_level = level_before;
    if (level_before < LOG_LEVEL_INFO)
        log_set_level(LOG_LEVEL_INFO);
    log_set_sink(ring_sink, NULL);
}

void http_logring_uninstall(void)
{
    pthread_mutex_lock(&ring_mu);
    ring_line *old = ring;
    ring = NULL;
    ring_next = ring_count = 0;
    pthread_mutex_unlock(&ring_mu);
    if (old == NULL)
        return;
    log_set_sink(NULL, NULL);
    log_set_level(level_before);
    for (size_t i = 0; i < HTTP_LOGRING_LINES; i++)
        mem_free(old[i].message);
    mem_free(old);
}

int http_logring_installed(void)
{
    pthread_mutex_lock(&ring_mu);
    int on = ring != NULL;
    pthread_mutex_unlock(&ring_mu);
    return on;
}

json_t *http_logring_json(size_t max)
{
    json_t *arr = json_array();
    if (arr == NULL)
        return NULL;
    pthread_mutex_lock(&ring_mu);
    size_t n = ring_count;
    if (max != 0 && max < n)
        n = max;
    /* The oldest of the last n lines. */
    size_t start = (ring_next + HTTP_LOGRING_LINES - n) % HTTP_LOGRING_LINES;
    for (size_t i = 0; ring != NULL && i < n; i++) {
        const ring_line *l = &ring[(start + i) % HTTP_LOGRING_LINES];
        json_t *o = json_pack("{s:I, s:s, s:o, s:o}", "time_ms", (json_int_t)l->time_ms, "level",
                              log_level_name(l->level), "module", text_json(l->module), "message",
                              text_json(l->message));
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            pthread_mutex_unlock(&ring_mu);
            json_decref(arr);
            return NULL;
        }
    }
    pthread_mutex_unlock(&ring_mu);
    return arr;
}
