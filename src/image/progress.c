/*
 * progress.c - sd.cpp stdout fragments to job progress (see progress.h).
 *
 * Every fragment is untrusted text: numbers are parsed with a digit cap and
 * every read is bounded by the fragment's length.
 */
#include "image/progress.h"

#include <string.h>

#define BAR_CELLS 50
#define NUM_MAX_DIGITS 9 /* < 10^9 fits in uint32_t */

static const char esc_k[] = "\x1b[K";

/* Reads an unsigned decimal at *pos (at most 9 digits), advancing *pos. */
static int read_u32(const char *s, size_t len, size_t *pos, uint32_t *out)
{
    size_t i = *pos;
    uint32_t v = 0;
    size_t n = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (++n > NUM_MAX_DIGITS)
            return -1;
        v = v * 10 + (uint32_t)(s[i] - '0');
        i++;
    }
    if (n == 0)
        return -1;
    *pos = i;
    *out = v;
    return 0;
}

static int read_i64(const char *s, size_t len, size_t *pos, int64_t *out)
{
    size_t i = *pos;
    int64_t v = 0;
    size_t n = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (++n > 18)
            return -1;
        v = v * 10 + (s[i] - '0');
        i++;
    }
    if (n == 0)
        return -1;
    *pos = i;
    *out = v;
    return 0;
}

static int expect(const char *s, size_t len, size_t *pos, const char *lit)
{
    size_t n = strlen(lit);
    if (len - *pos < n || memcmp(s + *pos, lit, n) != 0)
        return -1;
    *pos += n;
    return 0;
}

static int starts_with(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len >= n && memcmp(s, lit, n) == 0;
}

static int contains(const char *s, size_t len, const char *lit)
{
    return memmem(s, len, lit, strlen(lit)) != NULL;
}

int img_bar_parse(const char *s, size_t len, img_bar *out)
{
    img_bar b;
    size_t pos = 0;
    memset(&b, 0, sizeof(b));
    if (expect(s, len, &pos, "  |") < 0 || len - pos < BAR_CELLS + 2)
        return -1;
    int hashes = 0, arrows = 0;
    for (int i = 0; i < BAR_CELLS; i++) {
        char c = s[pos + (size_t)i];
        if (c == '#')
            hashes++;
        else if (c == '=' || c == '>')
            arrows++;
        else if (c != ' ')
            return -1;
    }
    if (hashes && arrows)
        return -1;
    pos += BAR_CELLS;
    if (expect(s, len, &pos, "| ") < 0 || read_u32(s, len, &pos, &b.step) < 0 ||
        expect(s, len, &pos, "/") < 0 || read_u32(s, len, &pos, &b.steps) < 0 ||
        expect(s, len, &pos, " - ") < 0)
        return -1;
    if (b.steps == 0 || b.step > b.steps)
        return -1;
    /* Speed: digits with at most one '.', as printed by "%.2f". */
    double v = 0, scale = 0;
    size_t ndig = 0;
    while (pos < len && ((s[pos] >= '0' && s[pos] <= '9') || s[pos] == '.')) {
        if (s[pos] == '.') {
            if (scale != 0)
                return -1;
            scale = 1;
        } else {
            if (++ndig > 15)
                return -1;
            v = v * 10 + (s[pos] - '0');
            if (scale != 0)
                scale *= 10;
        }
        pos++;
    }
    if (ndig == 0)
        return -1;
    b.speed = scale != 0 ? v / scale : v;
    static const char *const units[] = {"it/s", "s/it", "MB/s", "GB/s"};
    int unit = -1;
    for (int i = 0; i < 4; i++) {
        if (len - pos >= 4 && memcmp(s + pos, units[i], 4) == 0) {
            unit = i;
            break;
        }
    }
    if (unit < 0)
        return -1;
    memcpy(b.unit, units[unit], 5);
    pos += 4;
    b.loading = unit >= 2;
    if ((b.loading && arrows) || (!b.loading && hashes))
        return -1;
    /* The erase-line escape ends every bar; accept a fragment whose escapes a
     * terminal filter already removed. */
    if (pos < len && expect(s, len, &pos, esc_k) < 0)
        return -1;
    if (pos != len)
        return -1;
    *out = b;
    return 0;
}

int img_log_parse(const char *s, size_t len, img_log_line *out)
{
    static const struct {
        const char *tag;
        enum img_log_level level;
    } tags[] = {{"[DEBUG]", IMG_LOG_DEBUG},
                {"[INFO ]", IMG_LOG_INFO},
                {"[WARN ]", IMG_LOG_WARN},
                {"[ERROR]", IMG_LOG_ERROR}};
    size_t pos = 0;
    /* --color: ESC[<c>;1m before the tag and ESC[0m after it. */
    if (len >= 2 && s[0] == '\x1b' && s[1] == '[') {
        pos = 2;
        while (pos < len && s[pos] != 'm' && pos < 10)
            pos++;
        if (pos >= len || s[pos] != 'm')
            return -1;
        pos++;
    }
    enum img_log_level level = IMG_LOG_NONE;
    for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
        if (len - pos >= 7 && memcmp(s + pos, tags[i].tag, 7) == 0) {
            level = tags[i].level;
            break;
        }
    }
    if (level == IMG_LOG_NONE)
        return -1;
    pos += 7;
    if (len - pos >= 4 && memcmp(s + pos, "\x1b[0m", 4) == 0)
        pos += 4;
    if (expect(s, len, &pos, " ") < 0)
        return -1;
    /* "<file>:<line padded to 4> - " */
    const char *dash = memmem(s + pos, len - pos, " - ", 3);
    if (dash == NULL)
        return -1;
    const char *colon = memchr(s + pos, ':', (size_t)(dash - (s + pos)));
    if (colon == NULL)
        return -1;
    size_t p2 = (size_t)(colon - s) + 1;
    uint32_t line;
    if (read_u32(s, len, &p2, &line) < 0)
        return -1;
    while (p2 < (size_t)(dash - s) && s[p2] == ' ')
        p2++;
    if (p2 != (size_t)(dash - s))
        return -1;
    out->level = level;
    out->msg = dash + 3;
    out->msg_len = len - (size_t)(dash + 3 - s);
    return 0;
}

static void update_percent(img_progress *p)
{
    if (p->stage == IMG_STAGE_SAVING || p->stage == IMG_STAGE_DONE) {
        p->percent = 100;
        return;
    }
    uint64_t images = p->images ? p->images : 1;
    uint64_t steps = p->steps ? p->steps : 1;
    uint64_t total = images * steps + images;
    uint64_t done = 0;
    if (p->stage == IMG_STAGE_SAMPLING && p->image > 0)
        done = (uint64_t)(p->image - 1) * steps + (p->step < steps ? p->step : steps);
    else if (p->stage == IMG_STAGE_DECODING)
        done = images * steps + (p->latents_decoded < images ? p->latents_decoded : images);
    else if (p->stage == IMG_STAGE_FAILED)
        return; /* keep the last figure */
    int pct = (int)(done * 100 / total);
    if (pct > 99)
        pct = 99;
    /* Never move backwards: a retried phase must not make a bar jump back. */
    if (pct > p->percent)
        p->percent = pct;
}

static void on_message(img_progress *p, const char *m, size_t n)
{
    size_t pos;
    if (starts_with(m, n, "loading model from")) {
        if (p->stage < IMG_STAGE_LOADING)
            p->stage = IMG_STAGE_LOADING;
    } else if (starts_with(m, n, "generate_image completed")) {
        p->stage = IMG_STAGE_SAVING;
    } else if (starts_with(m, n, "generate_image ")) {
        uint32_t w, h;
        pos = strlen("generate_image ");
        if (read_u32(m, n, &pos, &w) == 0 && expect(m, n, &pos, "x") == 0 &&
            read_u32(m, n, &pos, &h) == 0) {
            p->width = w;
            p->height = h;
        }
    } else if (starts_with(m, n, "sampling using ")) {
        p->stage = IMG_STAGE_ENCODING;
    } else if (starts_with(m, n, "generating image: ")) {
        uint32_t i, total;
        int64_t seed;
        pos = strlen("generating image: ");
        if (read_u32(m, n, &pos, &i) == 0 && expect(m, n, &pos, "/") == 0 &&
            read_u32(m, n, &pos, &total) == 0 && total > 0 && i >= 1 && i <= total) {
            p->stage = IMG_STAGE_SAMPLING;
            p->image = i;
            p->images = total;
            p->step = 0;
            p->seed = -1;
            if (expect(m, n, &pos, " - seed ") == 0 && read_i64(m, n, &pos, &seed) == 0)
                p->seed = seed;
        }
    } else if (starts_with(m, n, "decoding ") && contains(m, n, " latents")) {
        p->stage = IMG_STAGE_DECODING;
        p->tiles_done = p->tiles_total = 0;
    } else if (starts_with(m, n, "latent ") && contains(m, n, " decoded")) {
        uint32_t i;
        pos = strlen("latent ");
        if (read_u32(m, n, &pos, &i) == 0 && i > p->latents_decoded)
            p->latents_decoded = i;
    } else if (contains(m, n, " images saved")) {
        uint32_t k = 0;
        pos = 0;
        if (read_u32(m, n, &pos, &k) == 0) {
            p->saved = k;
            p->stage = k > 0 ? IMG_STAGE_DONE : IMG_STAGE_FAILED;
        }
    } else if (starts_with(m, n, "save result image ") && contains(m, n, "(failure)")) {
        p->save_failed++;
    } else if (starts_with(m, n, "generate failed") || starts_with(m, n, "new_sd_ctx_t failed") ||
               (starts_with(m, n, "sampling for image ") && contains(m, n, " failed"))) {
        p->stage = IMG_STAGE_FAILED;
    }
}

void img_progress_init(img_progress *p, uint32_t images, uint32_t steps)
{
    memset(p, 0, sizeof(*p));
    p->images = images;
    p->steps = steps;
    p->seed = -1;
}

enum img_line_kind img_progress_feed(img_progress *p, const char *frag, size_t len)
{
    img_bar bar;
    img_log_line log;
    if (len == 0)
        return IMG_LINE_EMPTY;
    if (img_bar_parse(frag, len, &bar) == 0) {
        if (bar.loading) {
            p->load_done = bar.step;
            p->load_total = bar.steps;
            p->loading = p->stage == IMG_STAGE_ENCODING   ? IMG_MODULE_TE
                         : p->stage == IMG_STAGE_SAMPLING ? IMG_MODULE_DIFFUSION
                         : p->stage == IMG_STAGE_DECODING ? IMG_MODULE_VAE
                                                          : IMG_MODULE_NONE;
            return IMG_LINE_LOAD_BAR;
        }
        if (p->stage == IMG_STAGE_DECODING) {
            p->tiles_done = bar.step;
            p->tiles_total = bar.steps;
            return IMG_LINE_TILE_BAR;
        }
        p->step = bar.step;
        p->steps = bar.steps;
        update_percent(p);
        return IMG_LINE_STEP_BAR;
    }
    if (img_log_parse(frag, len, &log) == 0) {
        on_message(p, log.msg, log.msg_len);
        update_percent(p);
        return IMG_LINE_LOG;
    }
    return IMG_LINE_OTHER;
}

const char *img_stage_name(enum img_stage s)
{
    switch (s) {
    case IMG_STAGE_STARTING:
        return "starting";
    case IMG_STAGE_LOADING:
        return "loading";
    case IMG_STAGE_ENCODING:
        return "encoding";
    case IMG_STAGE_SAMPLING:
        return "sampling";
    case IMG_STAGE_DECODING:
        return "decoding";
    case IMG_STAGE_SAVING:
        return "saving";
    case IMG_STAGE_DONE:
        return "done";
    case IMG_STAGE_FAILED:
        return "failed";
    }
    return "unknown";
}
