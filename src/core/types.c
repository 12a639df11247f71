/* types.c - names of the project-wide error codes. */
#include "types.h"

const char *tnd_strerror(int err)
{
	switch (err) {
	case TND_OK: return "ok";
	case TND_EINVAL: return "malformed input";
	case TND_ENOSPC: return "no space left in a bounded table";
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
