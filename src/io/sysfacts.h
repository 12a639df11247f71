/* sysfacts.h - the host facts an upgrade pre-check needs (SPEC section 5
 * step 1): CPU load over the last 5 s and the free space of the state
 * directory.
 *
 * Owns: a ring of /proc/stat samples (proc(5): the aggregate "cpu" line,
 * in USER_HZ ticks), taken by the driver about once a second. Load is
 * 100 x (busy ticks / all ticks) between the oldest sample within the
 * window and the newest; iowait counts as idle, as top(1) does. */
#ifndef TND_SYSFACTS_H
#define TND_SYSFACTS_H

#include <stdint.h>
#include "../core/types.h"

#define SYSFACTS_SAMPLES 8            /* ring of samples, >= window / period + 1 */
#define SYSFACTS_WINDOW_MS 5000       /* CPU load is measured over this */
#define SYSFACTS_UNKNOWN 255          /* no measurement yet */

struct sysfacts {
	int n, head;
	struct {
		mono_t at;
		uint64_t busy, total;
	} s[SYSFACTS_SAMPLES];
};

/* Take one sample of /proc/stat (call about once a second). */
void sysfacts_sample(struct sysfacts *f, mono_t now);
/* CPU load in percent over the last SYSFACTS_WINDOW_MS (0..100), or
 * SYSFACTS_UNKNOWN until two samples at least 1 s apart exist. */
uint8_t sysfacts_cpu_percent(const struct sysfacts *f, mono_t now);
/* Bytes free for an unprivileged writer on the file system of `dir`
 * (statvfs f_bavail x f_frsize); 0 when it cannot be measured. */
uint64_t sysfacts_free_bytes(const char *dir);

#endif
