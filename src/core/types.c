/* types.c - names of the project-wide error codes. */
#include <stdio.h>
#include "types.h"

const char *tnd_strerror(int err)
{
	switch (err) {
	case TND_OK: return "ok";
	case TND_EINVAL: return "malformed input";
	case TND_ENOSPC: return "no space left (a bounded table, buffer or disk is full)";
	case TND_EAUTH: return "authentication failed";
	case TND_EREPLAY: return "replayed or stale message";
	case TND_ECLUSTER: return "message for another cluster";
	case TND_EVERSION: return "protocol version not spoken";
	case TND_ENOENT: return "not found";
	case TND_EREFUSED: return "refused by cluster state";
	case TND_ESYS: return "system call failed";
	case TND_EIO: return "input/output error";
	case TND_ETIMEDOUT: return "timed out";
	}
	return "unknown error";
}

void tnd_event_vfmt(char *name, size_t name_len, const char *ev_name,
		    char *kv, size_t kv_len, const char *fmt, va_list ap)
{
	snprintf(name, name_len, "%s", ev_name);
	vsnprintf(kv, kv_len, fmt, ap);
}

int tnd_refuse(char *why, size_t len, int code, const char *fmt, ...)
{
	if (why && len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return code;
}

char *tnd_hex(const uint8_t *b, size_t n, char *out)
{
	static const char dig[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = dig[b[i] >> 4];
		out[2 * i + 1] = dig[b[i] & 15];
	}
	out[2 * n] = '\0';
	return out;
}
