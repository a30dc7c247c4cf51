/*
 * failure.c - failure classification table (see failure.h).
 */
#include "image/failure.h"

#include <signal.h>
#include <string.h>

/* Earlier rows win when several lines match: the first cause in the table
 * that any line proves is the answer. */
static const struct rule {
    enum img_cause cause;
    const char *fragment;
} rules[] = {
    /* Host allocations (OBS) and ggml's device backends (SRC, EXT). */
    {IMG_CAUSE_OUT_OF_MEMORY, "insufficient memory"},
    {IMG_CAUSE_OUT_OF_MEMORY, "failed to allocate"},
    {IMG_CAUSE_OUT_OF_MEMORY, "alloc params backend buffer failed"},
    {IMG_CAUSE_OUT_OF_MEMORY, "alloc compute buffer failed"},
    {IMG_CAUSE_OUT_OF_MEMORY, "cudaMalloc failed"},
    {IMG_CAUSE_OUT_OF_MEMORY, "out of memory"},
    {IMG_CAUSE_OUT_OF_MEMORY, "ErrorOutOfDeviceMemory"},
    {IMG_CAUSE_OUT_OF_MEMORY, "not enough memory"},
    /* Model files. A truncated file also prints the two "failed" lines below,
     * and a missing tensor prints "model metadata validation failed". */
    {IMG_CAUSE_MODEL_CORRUPT, "data offsets out of bounds for tensor"},
    {IMG_CAUSE_MISSING_TENSOR, "not in model metadata"},
    {IMG_CAUSE_MISSING_TENSOR, "model metadata validation failed"},
    /* Neither safetensors nor GGUF: also prints the two lines below
     * (master-827, OBS). */
    {IMG_CAUSE_MODEL_UNKNOWN, "- unknown format "},
    {IMG_CAUSE_MODEL_MISSING, "init model loader from file failed"},
    {IMG_CAUSE_MODEL_MISSING, "init control net model loader from file failed"},
    {IMG_CAUSE_MODEL_UNKNOWN, "get sd version from file failed"},
    /* Command line: the specific complaint before the generic follow-up. */
    {IMG_CAUSE_BAD_ARGUMENT, "error: unknown argument"},
    {IMG_CAUSE_BAD_ARGUMENT, "error: invalid mode"},
    {IMG_CAUSE_BAD_ARGUMENT, "error: the following arguments are required"},
    {IMG_CAUSE_BAD_ARGUMENT, "error: invalid sample method"},
    {IMG_CAUSE_BAD_ARGUMENT, "error: invalid scheduler"},
    {IMG_CAUSE_BAD_ARGUMENT, "'std::invalid_argument'"},
    {IMG_CAUSE_BAD_ARGUMENT, "'std::out_of_range'"},
    {IMG_CAUSE_BAD_ARGUMENT, "error: invalid parameter for argument"},
    /* Output. */
    {IMG_CAUSE_OUTPUT, "failed to create directory"},
    {IMG_CAUSE_OUTPUT, "(failure)"},
};

img_failure img_failure_classify(int exited, int exit_code, int term_signal,
                                 const char *const *lines, const size_t *lens, size_t n)
{
    img_failure f = {IMG_CAUSE_NONE, NULL, 0};
    size_t nrules = sizeof(rules) / sizeof(rules[0]);
    size_t best = nrules;
    if (exited && exit_code == 0)
        return f;
    for (size_t i = 0; i < n; i++) {
        /* With -v the parameter dump echoes the prompt: a [DEBUG] line and
         * indented continuation lines. A prompt is not evidence. */
        if (lines[i] == NULL || lens[i] == 0 || lines[i][0] == ' ' || lines[i][0] == '\t' ||
            (lens[i] >= 7 && memcmp(lines[i], "[DEBUG]", 7) == 0))
            continue;
        for (size_t r = 0; r < best; r++) {
            if (memmem(lines[i], lens[i], rules[r].fragment, strlen(rules[r].fragment))) {
                best = r;
                f.evidence = lines[i];
                f.evidence_len = lens[i];
                break;
            }
        }
    }
    /* Any failed status: exit 1 and SIGABRT both come with memory lines. */
    if (best < nrules) {
        f.cause = rules[best].cause;
        return f;
    }
    f.evidence = NULL;
    f.evidence_len = 0;
    if (exited)
        f.cause = IMG_CAUSE_UNKNOWN;
    else if (term_signal == SIGTERM || term_signal == SIGKILL || term_signal == SIGINT)
        f.cause = IMG_CAUSE_KILLED;
    else
        f.cause = IMG_CAUSE_CRASH;
    return f;
}

const char *img_cause_name(enum img_cause c)
{
    switch (c) {
    case IMG_CAUSE_NONE:
        return "none";
    case IMG_CAUSE_OUT_OF_MEMORY:
        return "out_of_memory";
    case IMG_CAUSE_MODEL_MISSING:
        return "model_missing";
    case IMG_CAUSE_MODEL_UNKNOWN:
        return "model_unknown";
    case IMG_CAUSE_MODEL_CORRUPT:
        return "model_corrupt";
    case IMG_CAUSE_MISSING_TENSOR:
        return "missing_tensor";
    case IMG_CAUSE_BAD_ARGUMENT:
        return "bad_argument";
    case IMG_CAUSE_OUTPUT:
        return "output_failed";
    case IMG_CAUSE_KILLED:
        return "killed";
    case IMG_CAUSE_CRASH:
        return "crashed";
    case IMG_CAUSE_UNKNOWN:
        return "unknown";
    }
    return "unknown";
}

const char *img_cause_message(enum img_cause c)
{
    switch (c) {
    case IMG_CAUSE_NONE:
        return "no failure";
    case IMG_CAUSE_OUT_OF_MEMORY:
        return "the image job did not fit in memory (try a smaller size, VAE tiling, or the "
               "text encoder on the CPU)";
    case IMG_CAUSE_MODEL_MISSING:
        return "the model file does not exist or cannot be read";
    case IMG_CAUSE_MODEL_UNKNOWN:
        return "stable-diffusion.cpp does not recognise this model (a full checkpoint is "
               "needed for SD 1.x)";
    case IMG_CAUSE_MODEL_CORRUPT:
        return "the model file is truncated or corrupt";
    case IMG_CAUSE_MISSING_TENSOR:
        return "the model file lacks tensors its architecture needs";
    case IMG_CAUSE_BAD_ARGUMENT:
        return "stable-diffusion.cpp refused the command line";
    case IMG_CAUSE_OUTPUT:
        return "the image could not be written";
    case IMG_CAUSE_KILLED:
        return "the image process was stopped";
    case IMG_CAUSE_CRASH:
        return "the image process crashed";
    case IMG_CAUSE_UNKNOWN:
        return "the image process failed for an unrecognised reason";
    }
    return "unknown";
}
