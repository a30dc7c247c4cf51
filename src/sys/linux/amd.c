/*
 * amd.c - the AMD GPU provider: the amdgpu driver's sysfs files.
 *
 * For each /sys/class/drm/card<N> (connectors such as card0-DP-1 are
 * skipped) whose device/vendor is 0x1002: device/mem_info_vram_total and
 * device/mem_info_vram_used (bytes), device/product_name when the board
 * exposes it (else "AMD GPU 0x<device id>"), and the PCI address from
 * PCI_SLOT_NAME in device/uevent (else the device symlink's target name).
 * Everything is read under the root prefix, so fixture trees work.
 *
 * Per-process VRAM (DRM fdinfo "drm-memory-vram" under /proc/<pid>/fdinfo)
 * is not read yet; processes_status says so.
 */
#include "sys/provider.h"

#include "core/alloc.h"
#include "core/paths.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SMALL_MAX 4096u
#define MAX_CARDS 64

typedef struct amd_state {
    char *root;
} amd_state;

static int read_small(const char *root, const char *card, const char *file, char **text,
                      size_t *len)
{
    char rel[256];
    int n = snprintf(rel, sizeof(rel), "/sys/class/drm/%s/device/%s", card, file);
    if (n < 0 || (size_t)n >= sizeof(rel))
        return -ENAMETOOLONG;
    return probe_read_text(root, rel, SMALL_MAX, text, len, NULL);
}

/* Reads a file holding one decimal (or 0x-hex for ids) number. */
static int read_number(const char *root, const char *card, const char *file, int hex, uint64_t *out)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_small(root, card, file, &text, &len);
    if (rc < 0)
        return rc;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, hex ? 16 : 10);
    rc = (errno != 0 || end == text || text[0] == '-') ? GENAI_ECORRUPT : 0;
    while (rc == 0 && *end != '\0') {
        if (*end != '\n' && *end != ' ')
            rc = GENAI_ECORRUPT;
        end++;
    }
    mem_free(text);
    if (rc == 0)
        *out = v;
    return rc;
}

static void trim_copy(char *dst, size_t dstsz, const char *src)
{
    size_t n = strcspn(src, "\n");
    while (n > 0 && src[n - 1] == ' ')
        n--;
    if (n >= dstsz)
        n = dstsz - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    dst[n] = '\0';
}

static void read_pci_id(const char *root, const char *card, probe_gpu *g)
{
    char *text = NULL;
    size_t len = 0;
    if (read_small(root, card, "uevent", &text, &len) == 0) {
        const char *key = "PCI_SLOT_NAME=";
        for (char *line = text; line != NULL && *line != '\0';) {
            char *nl = strchr(line, '\n');
            if (strncmp(line, key, strlen(key)) == 0) {
                if (nl != NULL)
                    *nl = '\0';
                trim_copy(g->pci_bus_id, sizeof(g->pci_bus_id), line + strlen(key));
                break;
            }
            line = nl ? nl + 1 : NULL;
        }
        mem_free(text);
    }
    if (g->pci_bus_id[0] != '\0')
        return;
    char path[PATHS_MAX], target[PATHS_MAX];
    int n = snprintf(path, sizeof(path), "%s/sys/class/drm/%s/device", root, card);
    if (n < 0 || (size_t)n >= sizeof(path))
        return;
    ssize_t tn = readlink(path, target, sizeof(target) - 1);
    if (tn <= 0)
        return;
    target[tn] = '\0';
    const char *base = strrchr(target, '/');
    trim_copy(g->pci_bus_id, sizeof(g->pci_bus_id), base ? base + 1 : target);
}

static int is_card_name(const char *nm)
{
    if (strncmp(nm, "card", 4) != 0 || nm[4] == '\0')
        return 0;
    return strspn(nm + 4, "0123456789") == strlen(nm + 4) && strlen(nm) < 12;
}

static int cmp_name(const void *a, const void *b)
{
    /* "card10" after "card9": compare by length first, then text. */
    const char *x = a, *y = b;
    size_t lx = strlen(x), ly = strlen(y);
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return strcmp(x, y);
}

static int amd_sample(void *state, probe_provider_status *st, probe_gpu_list *out)
{
    amd_state *s = state;
    char dir[PATHS_MAX];
    int n = snprintf(dir, sizeof(dir), "%s/sys/class/drm", s->root);
    if (n < 0 || (size_t)n >= sizeof(dir)) {
        probe_field_fail(&st->status, "path too long");
        return 0;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        probe_field_fail(&st->status, "no DRM devices (%s: %s)", dir, strerror(errno));
        return 0;
    }
    char cards[MAX_CARDS][16];
    size_t n_cards = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n_cards < MAX_CARDS) {
        size_t nl = strlen(de->d_name);
        if (is_card_name(de->d_name) && nl < sizeof(cards[0]))
            memcpy(cards[n_cards++], de->d_name, nl + 1);
    }
    closedir(d);
    qsort(cards, n_cards, sizeof(cards[0]), cmp_name);

    uint32_t found = 0;
    for (size_t i = 0; i < n_cards; i++) {
        uint64_t vendor, devid = 0, total, used;
        if (read_number(s->root, cards[i], "vendor", 1, &vendor) != 0 || vendor != 0x1002)
            continue;
        probe_gpu *g;
        int rc = probe_gpus_push(out, &g);
        if (rc == -ENOMEM)
            return rc;
        if (rc < 0)
            break;
        g->vendor = PROBE_GPU_AMD;
        g->index = found++;
        char *text = NULL;
        size_t len = 0;
        if (read_small(s->root, cards[i], "product_name", &text, &len) == 0) {
            trim_copy(g->name, sizeof(g->name), text);
            mem_free(text);
        }
        if (g->name[0] == '\0') {
            if (read_number(s->root, cards[i], "device", 1, &devid) == 0)
                snprintf(g->name, sizeof(g->name), "AMD GPU 0x%04llx", (unsigned long long)devid);
            else
                snprintf(g->name, sizeof(g->name), "AMD GPU (%.15s)", cards[i]);
        }
        read_pci_id(s->root, cards[i], g);
        int trc = read_number(s->root, cards[i], "mem_info_vram_total", 0, &total);
        int urc = read_number(s->root, cards[i], "mem_info_vram_used", 0, &used);
        if (trc != 0 || urc != 0)
            probe_field_fail(&g->memory, "%s: mem_info_vram_%s %s", cards[i],
                             trc != 0 ? "total" : "used",
                             (trc != 0 ? trc : urc) == GENAI_ECORRUPT ? "malformed" : "unreadable");
        else if (total == 0 || used > total)
            probe_field_fail(&g->memory, "%s: absurd VRAM figures (total %llu, used %llu)",
                             cards[i], (unsigned long long)total, (unsigned long long)used);
        else {
            g->total = total;
            g->used = used;
            g->free = total - used;
            probe_field_ok(&g->memory);
        }
        probe_field_fail(&g->processes_status,
                         "per-process VRAM is not read for AMD GPUs (DRM fdinfo)");
    }
    if (found == 0)
        probe_field_fail(&st->status, "no AMD GPU (no DRM card with vendor 0x1002)");
    else
        probe_field_ok(&st->status);
    return 0;
}

static void amd_close(void *state)
{
    amd_state *s = state;
    if (s == NULL)
        return;
    mem_free(s->root);
    mem_free(s);
}

int probe_amd_open(const char *root, probe_provider *p, probe_provider_status *st)
{
    memset(p, 0, sizeof(*p));
    memset(st, 0, sizeof(*st));
    p->name = st->name = "amd-sysfs";
    amd_state *s = mem_calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->root = mem_strdup(root);
    if (s->root == NULL) {
        mem_free(s);
        return -ENOMEM;
    }
    char *text = NULL;
    size_t len = 0;
    /* The driver version, when the amdgpu module says it (DKMS builds do). */
    if (probe_read_text(root, "/sys/module/amdgpu/version", SMALL_MAX, &text, &len, NULL) == 0) {
        trim_copy(st->driver_version, sizeof(st->driver_version), text);
        mem_free(text);
    }
    probe_field_fail(&st->status, "not sampled yet");
    p->state = s;
    p->sample = amd_sample;
    p->close = amd_close;
    return 0;
}
