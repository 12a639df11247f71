/* state.h - the state directory (SPEC section 2, --state-dir).
 *
 * Owns: DIR itself, its lock (one daemon per directory), the incarnation
 * counter, and the rule by which every durable file in it is written:
 * temporary file, fsync, rename over the old one, fsync the directory
 * (STYLE, "Durable files"), so a crash at any moment leaves either the old
 * or the new content, never a mix. */
#ifndef TND_STATE_H
#define TND_STATE_H

#include <stddef.h>
#include <stdint.h>
#include "../core/types.h"

#define STATE_FILE_MAX_BYTES (1024 * 1024) /* largest file state_read reads */

/* Create DIR (and parents, mode 0700) if missing and take an exclusive
 * lock on DIR/lock, held until the process exits. TND_EREFUSED when
 * another process holds it; TND_ESYS otherwise (errno kept). */
int state_dir_open(const char *dir, int *lock_fd);

/* Write all n bytes to fd (retrying short writes and EINTR); 0 or
 * TND_ESYS with errno kept. */
int state_write_all(int fd, const void *p, size_t n);
/* fsync a directory, so a rename or create in it is durable; 0 or
 * TND_ESYS with errno kept. */
int state_fsync_dir(const char *dir);

/* Replace DIR/name with `data` atomically and durably. */
int state_write_atomic(const char *dir, const char *name, const void *data,
		       size_t len);
/* Read DIR/name into buf (NUL-terminated, so cap must exceed the size).
 * TND_ENOENT when it does not exist, TND_ENOSPC when it is too large. */
int state_read(const char *dir, const char *name, char *buf, size_t cap,
	       size_t *len);

/* The incarnation of this start: max(previous + 1, now_us), written to
 * DIR/incarnation before it is returned, so that no two starts ever share
 * one (message nonces and peers' replay windows rely on it). TND_EINVAL
 * when the stored counter is unreadable: we cannot then prove the new one
 * is greater, and refuse rather than guess. */
int state_incarnation_next(const char *dir, uint64_t now_us, uint64_t *out);

#endif
