/* types.h - basic types shared by every Tandem module.
 *
 * Owns: the monotonic time type, the project-wide error codes and the
 * compile-time bounds of the cluster. Nothing here performs I/O. */
#ifndef TND_TYPES_H
#define TND_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Monotonic time in nanoseconds. Only drivers read the clock; the core is
 * handed `now` with every event. */
typedef int64_t mono_t;
#define MONO_NEVER INT64_MAX
#define MS_TO_MONO(ms) ((mono_t)(ms) * 1000000LL)
#define MONO_TO_MS(t) ((t) / 1000000LL)

/* Bounds. Each names its unit or what it counts. */
#define TND_NODES_MAX 32
#define TND_LINKS_MAX 4
#define TND_GROUPS_MAX 32
#define TND_VIPS_MAX 16     /* per group */
#define TND_MONITORS_MAX 16 /* per group */
#define TND_NAME_MAX 64     /* bytes incl. NUL: cluster and node names */
#define TND_IFNAME_MAX 16   /* IFNAMSIZ */
#define TND_PATH_MAX 256    /* bytes incl. NUL */
#define TND_VERSION_MAX 32  /* bytes incl. NUL */
#define TND_NO_NODE (-1)

/* Project-wide result codes: 0 or one of these (negative). */
enum tnd_err {
	TND_OK = 0,
	TND_EINVAL = -1,   /* malformed input */
	TND_ENOSPC = -2,   /* a bounded buffer or table is full */
	TND_EAUTH = -3,    /* authentication failed */
	TND_EREPLAY = -4,  /* replayed or stale message */
	TND_ECLUSTER = -5, /* message for another cluster */
	TND_EVERSION = -6, /* protocol version not spoken */
	TND_ENOENT = -7,   /* no such node, group, file */
	TND_EREFUSED = -8, /* refused by cluster state */
	TND_ESYS = -9,     /* a system call failed (errno kept by caller) */
	TND_EIO = -10,     /* I/O error */
	TND_ETIMEDOUT = -11,
};

const char *tnd_strerror(int err);

#include <stdarg.h>
/* Shared by the core modules (node, ctsync, cfgsync), whose action lists
 * differ but whose events and refusals are written the same way. */
/* An event's name and key=value text, truncated to the buffers. */
void tnd_event_vfmt(char *name, size_t name_len, const char *ev_name,
		    char *kv, size_t kv_len, const char *fmt, va_list ap);
/* Write the reason (when `why` is given) and return `code`. */
int tnd_refuse(char *why, size_t len, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Lower-case hex of n bytes into out (2n + 1 bytes); returns out. */
char *tnd_hex(const uint8_t *b, size_t n, char *out);

/* Address of a link or a virtual IP. */
struct tnd_addr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t bytes[16];
};

#endif
