/*
 * provider.h - the inside of the probe: CPU and memory readers and the GPU
 * providers behind one interface. Not used outside src/sys/ and its tests.
 *
 * A GPU provider is opened once per probe context (where the expensive setup
 * happens: dlopen + nvmlInit for NVML) and then sampled many times. Opening
 * never fails the probe: a provider that cannot work says why in its
 * probe_provider_status and is skipped.
 */
#ifndef GENAI_SYS_PROVIDER_H
#define GENAI_SYS_PROVIDER_H

#include "sys/probe.h"

#include <stddef.h>

/* A growing array of GPUs, handed to the snapshot at the end of a sample. */
typedef struct probe_gpu_list {
    probe_gpu *v;
    uint32_t n, cap;
} probe_gpu_list;

/* Appends a zeroed GPU and points *slot at it. -ENOMEM or GENAI_ETOO_LARGE
 * past PROBE_MAX_GPUS. */
#define PROBE_MAX_GPUS 64u
int probe_gpus_push(probe_gpu_list *l, probe_gpu **slot);

/* Frees the processes of every GPU in the list and the list. */
void probe_gpus_free(probe_gpu_list *l);

/* Records bytes for pid on g. A pid seen twice keeps the larger figure (NVML
 * lists a process with both a compute and a graphics context in both lists,
 * each with its total use). UINT64_MAX means "not available". -ENOMEM,
 * or GENAI_ETOO_LARGE past PROBE_MAX_GPU_PROCESSES. */
#define PROBE_MAX_GPU_PROCESSES 4096u
int probe_gpu_add_process(probe_gpu *g, int32_t pid, uint64_t bytes);

/* Writes "why" into f and marks it unknown; ok fields get probe_field_ok(). */
void probe_field_fail(probe_field *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void probe_field_ok(probe_field *f);

/* Appends a formatted clause to the reason text in buf (size bytes), after
 * "; " when buf is not empty; truncates silently. */
void probe_reason_add(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef struct probe_provider {
    const char *name; /* static */
    void *state;      /* owned; released by close */
    /* Appends this provider's GPUs to out and refreshes st. 0 or -ENOMEM; a
     * provider error is recorded in st or in the GPU's fields instead. */
    int (*sample)(void *state, probe_provider_status *st, probe_gpu_list *out);
    void (*close)(void *state);
} probe_provider;

/* Each open fills *p and *st. Returns 0 when the provider is usable, 1 when
 * it is not (st->status says why; *p has no state), -ENOMEM on failure. */
int probe_nvml_open(const char *lib_path, probe_provider *p, probe_provider_status *st);
int probe_amd_open(const char *root, probe_provider *p, probe_provider_status *st);
int probe_fake_open(const char *path, probe_provider *p, probe_provider_status *st);

/* Reads root + rel (rel starts with '/') into a NUL-terminated buffer the
 * caller frees with mem_free(). Same errors as paths_read_file(). */
int probe_read_text(const char *root, const char *rel, size_t max_bytes, char **out, size_t *len,
                    genai_error *err);

/* Fill the CPU and host memory parts of a snapshot from root (a prefix for
 * /proc and /sys, "" for this machine). Problems go into the status fields;
 * only -ENOMEM is returned. real_machine = 1 also asks the kernel for this
 * process's CPU affinity (a fixture tree cannot express it). */
int probe_read_cpu(const char *root, int real_machine, probe_cpu *cpu);
int probe_read_memory(const char *root, probe_host_memory *mem);

#endif
