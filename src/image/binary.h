/*
 * binary.h - finding stable-diffusion.cpp's programs and reading their version.
 *
 * Discovery order for a program (sd-cli, sd-server): the path configured by
 * the user, then an environment variable (GENAI_SD_CLI, GENAI_SD_SERVER), then
 * the directories of PATH. A configured path or variable that does not name
 * an executable file is an error, not a reason to look further: the user asked
 * for that binary. (Before master-411 sd-cli was called plain "sd"; that name
 * is too generic to look up in PATH, so old builds must be configured.)
 *
 * Version text (contracts/stable-diffusion-cpp.md §1), printed by --version on
 * stdout: "stable-diffusion.cpp version <branch>-<count>-<sha7>[+], commit
 * <sha8>". The count is the number of commits on master and is what decides
 * which flag spellings a build understands (request.h).
 */
#ifndef GENAI_IMAGE_BINARY_H
#define GENAI_IMAGE_BINARY_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct img_sd_version {
    char branch[64]; /* "master" */
    uint32_t count;  /* commits on master: 827; 0 when unknown */
    char sha7[16];   /* "97d2990" */
    int modified;    /* the build tree had local changes ('+') */
    char commit[16]; /* "97d29908" */
} img_sd_version;

/*
 * Finds the program: configured (may be NULL or "") first, then the variable
 * env_var (may be NULL), then name in PATH. Writes the path to out (outsz
 * bytes). GENAI_ENOT_FOUND when nothing was found (err lists what was tried),
 * -EACCES / -ENOENT when a configured path or the variable is not an
 * executable file, -ENAMETOOLONG when the path does not fit in out.
 */
int img_bin_find(const char *configured, const char *env_var, const char *name, char *out,
                 size_t outsz, genai_error *err);

/*
 * Parses the output of `sd-cli --version` (len bytes, any number of lines; the
 * version line is found among them). GENAI_ECORRUPT when no line has the
 * expected shape. *out is written only on success.
 */
int img_version_parse(const char *text, size_t len, img_sd_version *out, genai_error *err);

/* True when the build is master-<count> or newer. An unknown version (count
 * 0) counts as new: genai targets the current release and says so in logs. */
int img_version_at_least(const img_sd_version *v, uint32_t count);

#endif
