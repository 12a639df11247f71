/* state.c - state directory, lock, incarnation, atomic durable writes.
 *
 * The write rule follows the usual POSIX recipe for crash-safe
 * replacement (as in SQLite's and Postgres's documentation of rename(2)):
 * write DIR/.name.tmp, fsync it, rename it over DIR/name, fsync DIR so the
 * rename itself is durable. */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkdir -p with mode 0700 for the directories we create. */
static int mkdir_p(const char *dir)
{
	char path[TND_PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof path) {
		errno = ENAMETOOLONG;
		return TND_ESYS;
	}
	memcpy(path, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char c = path[i];
		path[i] = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return TND_ESYS;
		path[i] = c;
	}
	struct stat st;
	if (stat(dir, &st) != 0)
		return TND_ESYS;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return TND_ESYS;
	}
	return 0;
}

int state_dir_open(const char *dir, int *lock_fd)
{
	char path[TND_PATH_MAX + 8];
	int fd;

	if (mkdir_p(dir) != 0)
		return TND_ESYS;
	if (snprintf(path, sizeof path, "%s/lock", dir) >= (int)sizeof path) {
		errno = ENAMETOOLONG;
		return TND_ESYS;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return TND_ESYS;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return e == EWOULDBLOCK ? TND_EREFUSED : TND_ESYS;
	}
	*lock_fd = fd;
	return 0;
}

int state_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return TND_ESYS;
	r = fsync(fd);
	close(fd);
	return r == 0 ? 0 : TND_ESYS;
}

int state_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return TND_ESYS;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int state_write_atomic(const char *dir, const char *name, const void *data,
		       size_t len)
{
	char tmp[TND_PATH_MAX + 80], dst[TND_PATH_MAX + 80];
	const uint8_t *p = data;
	int fd, e;

	if (snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= (int)sizeof tmp ||
	    snprintf(dst, sizeof dst, "%s/%s", dir, name) >= (int)sizeof dst) {
		errno = ENAMETOOLONG;
		return TND_ESYS;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return TND_ESYS;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, dst) != 0)
		goto fail;
	return state_fsync_dir(dir);
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	(void)unlink(tmp);
	errno = e;
	return TND_ESYS;
}

int state_read(const char *dir, const char *name, char *buf, size_t cap,
	       size_t *len)
{
	char path[TND_PATH_MAX + 80];
	size_t n = 0;
	int fd;

	if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
		errno = ENAMETOOLONG;
		return TND_ESYS;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? TND_ENOENT : TND_ESYS;
	for (;;) {
		ssize_t r;
		if (n + 1 >= cap) {
			char extra;
			r = read(fd, &extra, 1);
			close(fd);
			return r == 0 ? (buf[n] = '\0', *len = n, 0) : TND_ENOSPC;
		}
		r = read(fd, buf + n, cap - 1 - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			errno = e;
			return TND_ESYS;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*len = n;
	return 0;
}

int state_incarnation_next(const char *dir, uint64_t now_us, uint64_t *out)
{
	char buf[64], *end;
	size_t len;
	uint64_t old = 0, next;
	int r;

	r = state_read(dir, "incarnation", buf, sizeof buf, &len);
	if (r == 0) {
		while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
			buf[--len] = '\0';
		errno = 0;
		unsigned long long v = strtoull(buf, &end, 10);
		if (len == 0 || *end != '\0' || errno != 0 || buf[0] == '-' ||
		    v == ULLONG_MAX)
			return TND_EINVAL;
		old = v;
	} else if (r == TND_ENOSPC) {
		return TND_EINVAL;
	} else if (r != TND_ENOENT) {
		return r;
	}
	next = old + 1 > now_us ? old + 1 : now_us;
	len = (size_t)snprintf(buf, sizeof buf, "%" PRIu64 "\n", next);
	r = state_write_atomic(dir, "incarnation", buf, len);
	if (r != 0)
		return r;
	*out = next;
	return 0;
}
