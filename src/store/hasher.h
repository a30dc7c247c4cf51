/*
 * hasher.h - SHA-256 of a file while it is being written, one step behind
 * the writer.
 *
 * The download writes each received chunk to the partial file and tells the
 * hasher how far the file now reaches (store_hasher_wrote). A thread of the
 * hasher's own hashes the file from the page cache up to that point
 * (store_sha256_range: mapped, no copy), so the receiving thread does no
 * hashing and no extra copy, and a resumed download hashes the prefix already
 * on disk while the rest arrives instead of before asking for it.
 *
 * Once the prefix that was on disk at the start is hashed, the writer may
 * run at most STORE_HASHER_LAG bytes ahead; past that store_hasher_wrote
 * waits, so the bytes are still in memory when hashed. While the prefix is
 * being hashed the writer never waits (the backlog may then grow past the
 * lag, and is hashed from disk if the page cache let it go).
 * Behind the hash it also starts the writeback of what it hashed
 * (sync_file_range, SYNC_FILE_RANGE_WRITE), so the writer's final fsync has
 * little left to do and the writer never waits for the disk's queue.
 *
 * Without a thread (none could be started) every call hashes inline and the
 * results are the same.
 *
 * Ordering the writer must keep: bytes are published only once written, and
 * the file is truncated only after store_hasher_restart returned (no range
 * is being read then). Not thread-safe beyond one writer thread.
 */
#ifndef GENAI_STORE_HASHER_H
#define GENAI_STORE_HASHER_H

#include "core/error.h"
#include "store/digest.h"

#include <stddef.h>
#include <stdint.h>

#define STORE_HASHER_LAG (64u << 20)

typedef struct store_hasher store_hasher;

/*
 * Starts hashing fd into hash (owned by the caller, outliving the hasher)
 * from byte 0, where the first `have` bytes are already on disk. With no
 * thread, those bytes are hashed before it returns. *out is freed with
 * store_hasher_stop. Errors: -ENOMEM, or the read error of the prefix.
 */
int store_hasher_start(store_hasher **out, store_sha256 *hash, int fd, uint64_t have,
                       genai_error *err);

/* The writer appended buf[0..len) to the file: hashes it (inline) or
 * publishes it to the thread, waiting while the thread lags too far. */
int store_hasher_wrote(store_hasher *h, const void *buf, size_t len, genai_error *err);

/* Waits until every byte published is in the hash; the first read or hash
 * error of the thread, with its detail, if one happened. */
int store_hasher_drain(store_hasher *h, genai_error *err);

/* Drains, then starts the hash over for an empty file. */
int store_hasher_restart(store_hasher *h, genai_error *err);

/* Bytes published so far (the file's length as the hasher knows it). */
uint64_t store_hasher_written(const store_hasher *h);

/* Stops the thread (without finishing the hash) and frees h; accepts NULL. */
void store_hasher_stop(store_hasher *h);

#endif
