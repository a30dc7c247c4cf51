/*
 * fakegpu.h - the fake GPU: a JSON file that plays the part of a GPU driver's
 * memory accounting, shared by the probe's fake provider and the test doubles
 * (fake llama-server, fake sd-cli) that "allocate" GPU memory.
 *
 * The file (path in env GENAI_FAKE_GPU; format in docs/fake-gpu.md):
 *   {"driver_version":"fake-1.0","cuda_version":"12.4",
 *    "devices":[{"name":"Fake GPU 8GB","uuid":"GPU-fake-0",
 *                "pci_bus_id":"00000000:01:00.0","total_bytes":8589934592,
 *                "base_used_bytes":0,"release_delay_ms":0}],
 *    "allocations":[{"device":0,"pid":1234,"bytes":7060000000,
 *                    "released_at_ms":0}]}
 *
 * used = base_used_bytes + the allocations that still count. An allocation
 * counts while its pid is alive and released_at_ms == 0; once released
 * (released_at_ms = wall-clock ms of the release) it still counts until
 * released_at_ms + release_delay_ms, which models a driver that gives memory
 * back late. Whoever reads the file and finds a dead pid (or a zombie) with
 * released_at_ms == 0 stamps it with the current time, so a double killed with
 * SIGKILL still releases late. Allocations whose release has taken effect are
 * dropped when the file is rewritten, so it stays small.
 *
 * Every access takes an exclusive flock on the sibling file "<path>.lock" and
 * rewrites through "<path>.tmp.<pid>" + rename(2), so any number of processes
 * can share one file. (The lock is on a sibling because rename replaces the
 * inode a lock on the file itself would be held on.)
 */
#ifndef GENAI_SYS_FAKEGPU_H
#define GENAI_SYS_FAKEGPU_H

#include "core/error.h"
#include "sys/probe.h"

#include <stddef.h>
#include <stdint.h>

/* Caps on what a file may hold (untrusted input). */
#define FAKEGPU_MAX_BYTES (1u << 20)
#define FAKEGPU_MAX_DEVICES 64u
#define FAKEGPU_MAX_ALLOCS 16384u

typedef struct fakegpu_device {
    char name[PROBE_NAME_MAX];
    char uuid[PROBE_NAME_MAX];
    char pci_bus_id[32];
    uint64_t total_bytes;
    uint64_t base_used_bytes;
    uint64_t release_delay_ms;
    uint64_t used_bytes; /* computed by fakegpu_account(), not stored */
} fakegpu_device;

typedef struct fakegpu_alloc {
    uint32_t device;
    int32_t pid;
    uint64_t bytes;
    uint64_t released_at_ms; /* 0 while held */
} fakegpu_alloc;

typedef struct fakegpu_state {
    char driver_version[64];
    char cuda_version[64];
    fakegpu_device *devices; /* n_devices entries, owned */
    uint32_t n_devices;
    fakegpu_alloc *allocs; /* n_allocs entries, owned */
    uint32_t n_allocs;
} fakegpu_state;

/* Wall-clock milliseconds (CLOCK_REALTIME), the time base of released_at_ms. */
uint64_t fakegpu_now_ms(void);

/* Parses the JSON text (len bytes, need not be NUL-terminated) into *out.
 * GENAI_ECORRUPT / GENAI_ETOO_LARGE on bad input, with the field in err.
 * The caller frees *out with fakegpu_state_free(). */
int fakegpu_parse(const char *text, size_t len, fakegpu_state *out, genai_error *err);

/* Serializes st to a NUL-terminated JSON string the caller frees with
 * mem_free(); NULL when out of memory. */
char *fakegpu_format(const fakegpu_state *st);

/* Releases the arrays of st and zeroes it. Accepts NULL. */
void fakegpu_state_free(fakegpu_state *st);

/* True when allocation a counts toward its device's use at now_ms. */
int fakegpu_alloc_counts(const fakegpu_state *st, const fakegpu_alloc *a, uint64_t now_ms);

/*
 * Housekeeping at now_ms, with no file access: stamps released_at_ms = now_ms
 * on held allocations whose pid is_alive(pid) says is gone (is_alive NULL: the
 * real process table), drops allocations that no longer count, and sets every
 * device's used_bytes. Returns 1 when st changed (so it must be written back),
 * 0 when not.
 */
int fakegpu_account(fakegpu_state *st, uint64_t now_ms, int (*is_alive)(int32_t pid));

/* True when pid names a live process that is not a zombie. */
int fakegpu_pid_alive(int32_t pid);

/*
 * Reads the file at path under its lock, does the housekeeping of
 * fakegpu_account() (writing the file back when that changed it) and returns
 * the state in *out with used_bytes computed. The caller frees *out with
 * fakegpu_state_free(). -ENOENT etc. when the file cannot be read.
 */
int fakegpu_read(const char *path, fakegpu_state *out, genai_error *err);

/* Replaces the file at path with st (under the lock). Used by tests and tools
 * to create a fake GPU. */
int fakegpu_write(const char *path, const fakegpu_state *st, genai_error *err);

/*
 * Allocates bytes on device for pid if they fit. *free_out (optional) gets the
 * free bytes before the allocation in both outcomes, so a double can print the
 * driver-style OOM message. Returns 0, GENAI_ENO_FIT when the bytes do not
 * fit, GENAI_ENO_DEVICE for an unknown device, or a read/parse/write error.
 */
int fakegpu_try_alloc(const char *path, uint32_t device, int32_t pid, uint64_t bytes,
                      uint64_t *free_out, genai_error *err);

/* Stamps released_at_ms = now on every held allocation of pid. Returns the
 * number of allocations released (0 when pid held none) or a negative code. */
int fakegpu_release(const char *path, int32_t pid, genai_error *err);

/* Like fakegpu_release, but stamps released_at_ms = now + hold_ms, in one
 * locked step: the memory keeps counting for hold_ms plus the device's
 * release_delay_ms. Lets a double model a driver that gives memory back late
 * without a racy read-modify-write. */
int fakegpu_release_after(const char *path, int32_t pid, uint64_t hold_ms, genai_error *err);

#endif
