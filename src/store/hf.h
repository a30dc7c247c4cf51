/*
 * hf.h - Hugging Face references: parsing and resolution to files.
 *
 * Accepted forms:
 *   hf://owner/repo/path/to/file.gguf[@revision]   one file (or every shard
 *                                                  of a split model)
 *   owner/repo:QUANT[@revision]                    the GGUF file of that
 *                                                  quantization, e.g. Q4_K_M
 *   owner/repo[@revision]                          the same with Q4_K_M
 * The revision (branch, tag or commit; default "main") is pinned to a commit
 * at resolution time, and every file is then fetched from that commit, so a
 * push to the repository during a pull cannot mix two versions.
 *
 * Hub API used (see docs/store.md for the sources):
 *   GET {endpoint}/api/models/{repo}/revision/{rev}  -> {"sha": commit, ...}
 *   GET {endpoint}/api/models/{repo}/tree/{commit}?recursive=true
 *       -> [{"type":"file","path":..,"size":..,"lfs":{"oid":sha256,"size":..}}]
 *       paginated with a Link: <...>; rel="next" header
 *   GET {endpoint}/{repo}/resolve/{commit}/{path} -> the bytes (302 to a CDN
 *       for LFS files, with X-Repo-Commit and X-Linked-Etag headers)
 */
#ifndef GENAI_STORE_HF_H
#define GENAI_STORE_HF_H

#include "core/error.h"
#include "store/digest.h"
#include "store/download.h"

#include <stddef.h>
#include <stdint.h>

typedef struct store_hf_ref {
    char repo[256];     /* "owner/repo" */
    char path[1024];    /* file in the repo, "" for the QUANT form */
    char quant[64];     /* "Q4_K_M", "" for the path form */
    char revision[256]; /* "main" when not given */
    /* "" after parsing; the caller may set the commit `revision` already
     * resolved to in this pull, and store_hf_resolve then asks nothing
     * about the revision (two files of one repository, one commit). */
    char commit[41];
} store_hf_ref;

/* True when text looks like a Hugging Face reference rather than a URL or a
 * local path (hf:// prefix, or owner/repo with no scheme and no leading / or .). */
int store_hf_is_ref(const char *text);

/* Parses one of the forms above into *out. GENAI_EBAD_ARG with detail when
 * malformed (bad characters, "..", empty parts). */
int store_hf_parse(const char *text, store_hf_ref *out, genai_error *err);

typedef struct store_hf_file {
    char *path;                    /* path in the repo (validated: relative, no "..") */
    char *url;                     /* resolve URL pinned to the commit */
    uint64_t size;                 /* 0 when the listing gave none */
    char sha256[STORE_SHA256_HEX]; /* LFS digest, "" for non-LFS files */
} store_hf_file;

typedef struct store_hf_plan {
    char commit[41];
    store_hf_file *files; /* in order: shard 1..N */
    size_t n_files;
} store_hf_plan;

/* Releases the plan's members; accepts NULL. */
void store_hf_plan_free(store_hf_plan *p);

/* Asks the Hub which files ref means, pinned to a commit (ref->commit when
 * set, else the one ref->revision points at now). GENAI_ENOT_FOUND
 * when the repo, revision, file or quantization does not exist (the detail
 * lists the quantizations that do), GENAI_ECORRUPT for a malformed answer. */
int store_hf_resolve(const store_net *net, const store_hf_ref *ref, store_hf_plan *out,
                     genai_error *err);

/* Validates a path taken from a listing before it becomes a local path:
 * relative, no "." or ".." component, no backslash or control characters. */
int store_hf_path_safe(const char *path);

/* If name ends in "-NNNNN-of-MMMMM.gguf", writes the part before the shard
 * number into prefix (size prefixsz) and the shard index and count; 1 when it
 * is a shard, 0 when not. */
int store_hf_shard(const char *name, char *prefix, size_t prefixsz, unsigned *index,
                   unsigned *count);

#endif
