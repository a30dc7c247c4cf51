/*
 * prune.h - give back the disk space of files under <data>/models that no
 * registered model lists.
 *
 * Files end up there unregistered when a pull is abandoned (its .partial), a
 * diffusion set is refused as incomplete (its verified files stay for the
 * next pull), `genai rm` finds a file busy, or a pull dies between the rename
 * and the registration. store_prune walks <data>/models without following a
 * symbolic link and removes, each under the file's own lock (lock.h), every
 * regular file that is not a lock file, not a .partial (unless asked), and
 * not listed by a registered model (by path, and by device and inode so a
 * path spelled differently still counts). Folders left empty go too, never
 * <data>/models itself. Files registered in place by `genai add` outside
 * <data>/models are never looked at. See prune.c for why a file a pull is
 * about to register is never removed.
 */
#ifndef GENAI_STORE_PRUNE_H
#define GENAI_STORE_PRUNE_H

#include "core/error.h"
#include "store/registry.h"

#include <stddef.h>
#include <stdint.h>

typedef struct store_prune_opts {
    int dry_run;          /* report what would go; remove nothing */
    int include_partials; /* remove every .partial no pull holds */
    /* > 0: also remove a .partial nobody holds whose last write is at least
     * this many seconds old (a resumable download that was given up). */
    int64_t partial_min_age_s;
    /* Optional test hook: called with a candidate's path once its lock is
     * held, before the registry is read again (a test registers the file
     * there to play a pull that commits at that moment). */
    void (*on_locked)(const char *path, void *userdata);
    void *userdata;
} store_prune_opts;

typedef enum store_prune_action {
    STORE_PRUNE_REMOVED,      /* removed (dry run: would be removed) */
    STORE_PRUNE_KEPT_PARTIAL, /* a .partial kept: resumable, not asked for */
    STORE_PRUNE_BUSY,         /* skipped: its lock is held (a pull writes or verifies it) */
    STORE_PRUNE_PULLING,      /* skipped: a pull is running and may register it */
    STORE_PRUNE_FAILED,       /* could not be removed: error holds the code */
} store_prune_action;

typedef struct store_prune_item {
    char *path; /* absolute path (owned by the report) */
    uint64_t size;
    int partial; /* 1 for a .partial file */
    store_prune_action action;
    int error; /* negative errno or GENAI_E* for STORE_PRUNE_FAILED, else 0 */
} store_prune_item;

typedef struct store_prune_report {
    int dry_run;
    store_prune_item *items; /* in walk order */
    size_t n_items;
    size_t n_removed;       /* files removed (dry run: that would be) */
    uint64_t bytes_freed;   /* their sizes */
    size_t n_skipped;       /* STORE_PRUNE_BUSY and STORE_PRUNE_PULLING */
    size_t n_failed;        /* STORE_PRUNE_FAILED */
    size_t n_kept_partial;  /* STORE_PRUNE_KEPT_PARTIAL */
    uint64_t bytes_partial; /* their sizes */
    size_t n_dirs_removed;  /* empty folders removed (dry run: that would be) */
} store_prune_report;

/* Name of an action for JSON and logs: "removed", "kept_partial", "busy",
 * "pulling", "failed"; static. */
const char *store_prune_action_name(store_prune_action a);

/*
 * Prunes <data_dir>/models against the registry db (the store's connection:
 * store_registry). *out receives the report (free with
 * store_prune_report_free) when the walk completed; a file that could not be
 * removed is reported there (STORE_PRUNE_FAILED), not as a failure of the
 * call. Fails with a negative errno when the registry cannot be read or
 * <data_dir>/models cannot be opened; a missing folder is an empty report.
 */
int store_prune(store_db *db, const char *data_dir, const store_prune_opts *o,
                store_prune_report *out, genai_error *err);

/* Releases the report's items (not r itself); accepts NULL. */
void store_prune_report_free(store_prune_report *r);

#endif
