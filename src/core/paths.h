/*
 * paths.h - where genai keeps its files, and small filesystem helpers.
 *
 * Layout (XDG Base Directory specification, with one override):
 *   GENAI_HOME set:  data = $GENAI_HOME/data, config = $GENAI_HOME/config,
 *                    cache = $GENAI_HOME/cache, runtime = $GENAI_HOME/run
 *   otherwise:       data    = ${XDG_DATA_HOME:-$HOME/.local/share}/genai
 *                    config  = ${XDG_CONFIG_HOME:-$HOME/.config}/genai
 *                    cache   = ${XDG_CACHE_HOME:-$HOME/.cache}/genai
 *                    runtime = ${XDG_RUNTIME_DIR}/genai, else <cache>/run
 * Relative values of the XDG variables are ignored, as the specification says.
 */
#ifndef GENAI_CORE_PATHS_H
#define GENAI_CORE_PATHS_H

#include "core/error.h"

#include <stddef.h>
#include <sys/types.h>

#define PATHS_MAX 4096

typedef struct genai_paths {
    char data[PATHS_MAX];
    char config[PATHS_MAX];
    char cache[PATHS_MAX];
    char runtime[PATHS_MAX];
} genai_paths;

/* Resolves the directories from the environment (does not create them).
 * Fails with GENAI_EBAD_ARG when neither GENAI_HOME nor HOME is usable. */
int paths_resolve(genai_paths *out, genai_error *err);

/* mkdir -p with the given mode for each created component. */
int paths_mkdirs(const char *path, mode_t mode, genai_error *err);

/* Joins a and b with one '/', into out (size outsz). -ENAMETOOLONG when it
 * does not fit. */
int paths_join(char *out, size_t outsz, const char *a, const char *b);

/*
 * Reads a whole small file into a NUL-terminated buffer (caller frees with
 * mem_free). Refuses files larger than max_bytes with GENAI_ETOO_LARGE. Used
 * for /proc, sysfs and configuration files; never for model files.
 * *len_out (optional) gets the byte count without the NUL.
 */
int paths_read_file(const char *path, size_t max_bytes, char **out, size_t *len_out,
                    genai_error *err);

#endif
