/*
 * classify.c - crash cause tables and matching (see classify.h).
 *
 * The needles are message text only, never file:line locations, which change
 * between versions (contracts/stable-diffusion-cpp.md §3). For llama-server
 * the last line ("exiting due to ...") is sometimes lost by its asynchronous
 * logger, so the table matches the earlier E lines (llama-server.md §9).
 */
#include "proc/classify.h"

#include <string.h>

const proc_pattern proc_patterns_llama_server[] = {
    {"couldn't bind HTTP server socket", PROC_CAUSE_PORT},
    {"failed to open GGUF file", PROC_CAUSE_BAD_MODEL},
    {"invalid magic characters", PROC_CAUSE_BAD_MODEL},
    {"not within the file bounds", PROC_CAUSE_BAD_MODEL},
    {"insufficient memory", PROC_CAUSE_OOM},
    {"cudaMalloc failed", PROC_CAUSE_OOM},
    {"unable to allocate", PROC_CAUSE_OOM},
    {"failed to allocate", PROC_CAUSE_OOM},
    {"out of memory", PROC_CAUSE_OOM},
    {"error: invalid argument", PROC_CAUSE_BAD_ARG},
    {"error while handling argument", PROC_CAUSE_BAD_ARG},
    {NULL, PROC_CAUSE_UNKNOWN},
};

/* "does not fit" is classified whatever the exit status (§6): the same cause
 * gave exit 1 and SIGABRT. Memory comes before the model-file lines because
 * an allocation failure is followed by generic "failed" lines. */
const proc_pattern proc_patterns_sd[] = {
    {"insufficient memory", PROC_CAUSE_OOM},
    {"failed to allocate", PROC_CAUSE_OOM},
    {"alloc params backend buffer failed", PROC_CAUSE_OOM},
    {"alloc compute buffer failed", PROC_CAUSE_OOM},
    {"cudaMalloc failed", PROC_CAUSE_OOM},
    {"out of memory", PROC_CAUSE_OOM},
    {"ErrorOutOfDeviceMemory", PROC_CAUSE_OOM},
    {"not enough memory", PROC_CAUSE_OOM},
    {"init model loader from file failed", PROC_CAUSE_BAD_MODEL},
    {"get sd version from file failed", PROC_CAUSE_BAD_MODEL},
    {"data offsets out of bounds", PROC_CAUSE_BAD_MODEL},
    {"model metadata validation failed", PROC_CAUSE_BAD_MODEL},
    {"not in model metadata", PROC_CAUSE_BAD_MODEL},
    {"init control net model loader from file failed", PROC_CAUSE_BAD_MODEL},
    {"error: unknown argument", PROC_CAUSE_BAD_ARG},
    {"error: invalid parameter for argument", PROC_CAUSE_BAD_ARG},
    {"error: the following arguments are required", PROC_CAUSE_BAD_ARG},
    {"error: invalid mode", PROC_CAUSE_BAD_ARG},
    {"std::invalid_argument", PROC_CAUSE_BAD_ARG},
    {NULL, PROC_CAUSE_UNKNOWN},
};

proc_cause proc_classify(const proc_pattern *table, const char *text, size_t len)
{
    if (table == NULL || text == NULL)
        return PROC_CAUSE_UNKNOWN;
    for (const proc_pattern *p = table; p->needle != NULL; p++) {
        if (memmem(text, len, p->needle, strlen(p->needle)) != NULL)
            return p->cause;
    }
    return PROC_CAUSE_UNKNOWN;
}

const char *proc_cause_text(proc_cause cause)
{
    switch (cause) {
    case PROC_CAUSE_NONE:
        return "no failure";
    case PROC_CAUSE_UNKNOWN:
        return "unknown cause";
    case PROC_CAUSE_OOM:
        return "out of memory";
    case PROC_CAUSE_BAD_MODEL:
        return "bad model file";
    case PROC_CAUSE_PORT:
        return "port in use";
    case PROC_CAUSE_BAD_ARG:
        return "bad argument";
    case PROC_CAUSE_HANG:
        return "stopped answering its health check";
    case PROC_CAUSE_NOT_READY:
        return "not ready before the deadline";
    case PROC_CAUSE_EXEC:
        return "could not be executed";
    }
    return "unknown cause";
}

const char *proc_cause_name(proc_cause cause)
{
    static const char *const names[] = {"none",    "unknown", "oom",       "bad_model", "port",
                                        "bad_arg", "hang",    "not_ready", "exec"};
    if ((unsigned)cause < sizeof(names) / sizeof(names[0]))
        return names[cause];
    return "unknown";
}
