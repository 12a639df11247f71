/* slots.c - software versions in the state directory (slots.h documents
 * the layout and why it has that shape).
 *
 * Every directory that becomes a version is filled under a dot-name and
 * renamed into place, then its parent is fsync'd (the same recipe as
 * state.h's files, applied to a directory). */
#include "slots.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/sched.h>
#include <sodium.h>

#ifndef P_PIDFD
#define P_PIDFD 3 /* waitid(2), Linux 5.4 */
#endif

#include "../core/wire.h"
#include "image.h"
#include "state.h"

#define COPY_BUF_BYTES (64 * 1024)
#define CHECK_OUT_MAX 4096 /* bytes of --check-config output kept */

static int64_t wall_s(void)
{
	return (int64_t)time(NULL);
}

static mono_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (mono_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int slots_path(const char *dir, const char *version, const char *rel, char *out, size_t len)
{
	int n;

	if (!boot_version_ok(version))
		return TND_EINVAL;
	n = snprintf(out, len, "%s/" SLOTS_VERSIONS_DIR "/%s%s%s", dir, version, rel ? "/" : "",
		     rel ? rel : "");
	return n < 0 || (size_t)n >= len ? TND_ENOSPC : 0;
}

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return TND_ESYS;
	r = fsync(fd);
	close(fd);
	return r == 0 ? 0 : TND_ESYS;
}

/* --- boot.json ------------------------------------------------------------ */

int slots_load(const char *dir, struct boot_state *b, char *why, size_t why_len)
{
	char buf[BOOT_JSON_BYTES_MAX + 1];
	size_t len;
	int r = state_read(dir, SLOTS_BOOT_FILE, buf, sizeof buf, &len);

	if (r == TND_ENOENT)
		return tnd_refuse(why, why_len, TND_ENOENT, "%s/%s does not exist", dir, SLOTS_BOOT_FILE);
	if (r == TND_ENOSPC)
		return tnd_refuse(why, why_len, TND_EINVAL, "%s/%s is larger than %d bytes", dir,
				  SLOTS_BOOT_FILE, BOOT_JSON_BYTES_MAX);
	if (r != 0)
		return tnd_refuse(why, why_len, r, "cannot read %s/%s: %s", dir, SLOTS_BOOT_FILE,
				  strerror(errno));
	return boot_parse(buf, len, b, why, why_len);
}

int slots_save(const char *dir, const struct boot_state *b)
{
	char *s;
	size_t len;
	int r = boot_emit(b, &s, &len);

	if (r != 0) {
		errno = ENOMEM;
		return TND_ESYS;
	}
	r = state_write_atomic(dir, SLOTS_BOOT_FILE, s, len);
	free(s);
	return r;
}

/* --- files ------------------------------------------------------------------ */

/* Copy src to dst (created, mode), fsync'd. TND_ESYS with errno, and a
 * sentence in why. */
static int copy_file(const char *src, const char *dst, mode_t mode, char *why, size_t why_len)
{
	char *buf = malloc(COPY_BUF_BYTES);
	int in = -1, out = -1, e;

	if (!buf)
		return tnd_refuse(why, why_len, TND_ESYS, "out of memory");
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		e = errno;
		tnd_refuse(why, why_len, 0, "cannot read %s: %s", src, strerror(e));
		goto fail;
	}
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (out < 0) {
		e = errno;
		tnd_refuse(why, why_len, 0, "cannot create %s: %s", dst, strerror(e));
		goto fail;
	}
	for (;;) {
		ssize_t n = read(in, buf, COPY_BUF_BYTES);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = errno;
			tnd_refuse(why, why_len, 0, "cannot read %s: %s", src, strerror(e));
			goto fail;
		}
		if (n == 0)
			break;
		if (state_write_all(out, buf, (size_t)n) != 0) {
			e = errno;
			tnd_refuse(why, why_len, 0, "cannot write %s: %s", dst, strerror(e));
			goto fail;
		}
	}
	if (fchmod(out, mode) != 0 || fsync(out) != 0) {
		e = errno;
		tnd_refuse(why, why_len, 0, "cannot write %s: %s", dst, strerror(e));
		goto fail;
	}
	if (close(out) != 0) {
		out = -1;
		e = errno;
		tnd_refuse(why, why_len, 0, "cannot write %s: %s", dst, strerror(e));
		goto fail;
	}
	close(in);
	free(buf);
	return 0;
fail:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	free(buf);
	errno = e;
	return TND_ESYS;
}

/* Whether two files have the same bytes (false when either is missing). */
static bool same_file(const char *a, const char *b)
{
	char *x = malloc(COPY_BUF_BYTES), *y = malloc(COPY_BUF_BYTES);
	struct stat sa, sb;
	int fa = -1, fb = -1;
	bool same = false;

	if (!x || !y)
		goto out;
	fa = open(a, O_RDONLY | O_CLOEXEC);
	fb = open(b, O_RDONLY | O_CLOEXEC);
	if (fa < 0 || fb < 0 || fstat(fa, &sa) != 0 || fstat(fb, &sb) != 0 || sa.st_size != sb.st_size)
		goto out;
	for (;;) {
		ssize_t n = read(fa, x, COPY_BUF_BYTES), m;
		size_t got = 0;
		if (n < 0)
			goto out;
		if (n == 0) {
			same = true;
			break;
		}
		while (got < (size_t)n) {
			m = read(fb, y + got, (size_t)n - got);
			if (m <= 0)
				goto out;
			got += (size_t)m;
		}
		if (memcmp(x, y, (size_t)n) != 0)
			break;
	}
out:
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	free(x);
	free(y);
	return same;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
	return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

int slots_rmtree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : TND_ESYS;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) == 0 ? 0 : TND_ESYS;
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : TND_ESYS;
}

static int versions_dir(const char *dir, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/" SLOTS_VERSIONS_DIR, dir);

	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return TND_ESYS;
	}
	if (mkdir(out, 0755) != 0 && errno != EEXIST)
		return TND_ESYS;
	return 0;
}

/* Put the complete directory `tmp` in place as versions/<version>: an
 * existing one is moved aside first and removed after, so there is no
 * moment without a complete version directory under that name once the
 * new one is there. */
static int install_dir(const char *dir, const char *tmp, const char *version, char *why, size_t why_len)
{
	char vdir[TND_PATH_MAX + 64], dst[TND_PATH_MAX + 64], old[TND_PATH_MAX + 96];
	struct stat st;
	int e;

	if (versions_dir(dir, vdir, sizeof vdir) != 0 ||
	    slots_path(dir, version, NULL, dst, sizeof dst) != 0)
		return tnd_refuse(why, why_len, TND_ESYS, "path of version %s too long", version);
	snprintf(old, sizeof old, "%s/.old-%s-%d", vdir, version, (int)getpid());
	if (lstat(dst, &st) == 0) {
		if (rename(dst, old) != 0) {
			e = errno;
			return tnd_refuse(why, why_len, TND_ESYS, "cannot move %s aside: %s", dst, strerror(e));
		}
	}
	if (rename(tmp, dst) != 0) {
		e = errno;
		(void)rename(old, dst);
		return tnd_refuse(why, why_len, TND_ESYS, "cannot rename %s to %s: %s", tmp, dst,
				  strerror(e));
	}
	if (fsync_path(vdir) != 0) {
		e = errno;
		return tnd_refuse(why, why_len, TND_ESYS, "cannot sync %s: %s", vdir, strerror(e));
	}
	(void)slots_rmtree(old);
	return 0;
}

static int write_info(const char *vdir, json_t *info, char *why, size_t why_len)
{
	char *s = json_dumps(info, JSON_INDENT(1) | JSON_SORT_KEYS);
	int r;

	if (!s)
		return tnd_refuse(why, why_len, TND_ESYS, "out of memory");
	r = state_write_atomic(vdir, SLOTS_INFO_FILE, s, strlen(s));
	free(s);
	if (r != 0)
		return tnd_refuse(why, why_len, errno == ENOSPC ? TND_ENOSPC : TND_ESYS,
				  "cannot write %s/%s: %s", vdir, SLOTS_INFO_FILE, strerror(errno));
	return 0;
}

/* --- adopting the started binary --------------------------------------------- */

int slots_adopt(const char *dir, const char *version, bool *changed, char *why, size_t why_len)
{
	char exe[PATH_MAX], ctl[PATH_MAX + 16], vdir[TND_PATH_MAX + 64], tmp[TND_PATH_MAX + 96];
	char have_d[TND_PATH_MAX + 96], have_c[TND_PATH_MAX + 96], p[TND_PATH_MAX + 128];
	ssize_t n;
	bool with_ctl;
	json_t *info;
	int r;

	*changed = false;
	if (!boot_version_ok(version))
		return tnd_refuse(why, why_len, TND_EINVAL, "\"%s\" cannot name a version directory", version);
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return tnd_refuse(why, why_len, TND_ESYS, "cannot find the started binary: %s", strerror(errno));
	exe[n] = '\0';
	snprintf(ctl, sizeof ctl, "%s", exe);
	{
		char *slash = strrchr(ctl, '/');
		snprintf(slash ? slash + 1 : ctl, sizeof ctl - (size_t)(slash ? slash + 1 - ctl : 0),
			 "tandemctl");
	}
	with_ctl = access(ctl, X_OK) == 0;
	slots_path(dir, version, "bin/tandemd", have_d, sizeof have_d);
	slots_path(dir, version, "bin/tandemctl", have_c, sizeof have_c);
	if (same_file(exe, have_d) && (!with_ctl || same_file(ctl, have_c)))
		return 0;
	if (versions_dir(dir, vdir, sizeof vdir) != 0)
		return tnd_refuse(why, why_len, TND_ESYS, "cannot create %s/%s: %s", dir,
				  SLOTS_VERSIONS_DIR, strerror(errno));
	snprintf(tmp, sizeof tmp, "%s/.adopt-%d", vdir, (int)getpid());
	(void)slots_rmtree(tmp);
	snprintf(p, sizeof p, "%s/bin", tmp);
	if (mkdir(tmp, 0755) != 0 || mkdir(p, 0755) != 0) {
		r = tnd_refuse(why, why_len, TND_ESYS, "cannot create %s: %s", p, strerror(errno));
		goto fail;
	}
	snprintf(p, sizeof p, "%s/bin/tandemd", tmp);
	if ((r = copy_file(exe, p, 0755, why, why_len)) != 0)
		goto fail;
	if (with_ctl) {
		snprintf(p, sizeof p, "%s/bin/tandemctl", tmp);
		if ((r = copy_file(ctl, p, 0755, why, why_len)) != 0)
			goto fail;
	}
	info = json_pack("{s:s,s:s,s:s,s:I,s:i,s:i}", "version", version, "source", "adopted",
			 "from", exe, "installed_at", (json_int_t)wall_s(), "proto_min", WIRE_PROTO_MIN,
			 "proto_max", WIRE_PROTO_MAX);
	r = write_info(tmp, info, why, why_len);
	json_decref(info);
	if (r != 0)
		goto fail;
	snprintf(p, sizeof p, "%s/bin", tmp);
	if (fsync_path(p) != 0 || fsync_path(tmp) != 0) {
		r = tnd_refuse(why, why_len, TND_ESYS, "cannot sync %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if ((r = install_dir(dir, tmp, version, why, why_len)) != 0)
		goto fail;
	*changed = true;
	return 0;
fail:
	(void)slots_rmtree(tmp);
	return r;
}

int slots_boot(const char *dir, const char *own_version, struct boot_state *b,
	       char *why, size_t why_len)
{
	bool changed;
	int r = slots_load(dir, b, why, why_len);

	if (r == TND_ENOENT) {
		r = slots_adopt(dir, own_version, &changed, why, why_len);
		if (r != 0)
			return r;
		boot_init(b, own_version, wall_s());
		if (slots_save(dir, b) != 0)
			return tnd_refuse(why, why_len, TND_ESYS, "cannot write %s/%s: %s", dir,
					  SLOTS_BOOT_FILE, strerror(errno));
		return 0;
	}
	if (r != 0)
		return r;
	if (strcmp(b->active, own_version) == 0) {
		r = slots_adopt(dir, own_version, &changed, why, why_len);
		if (r != 0)
			return r;
	}
	(void)slots_gc(dir, b, NULL);
	return 0;
}

/* --- listing and clean-up ------------------------------------------------------ */

bool slots_installed(const char *dir, const char *version)
{
	char p[TND_PATH_MAX + 64];

	return slots_path(dir, version, "bin/tandemd", p, sizeof p) == 0 && access(p, X_OK) == 0;
}

int slots_gc(const char *dir, const struct boot_state *b, const char *keep)
{
	char vdir[TND_PATH_MAX + 64], p[TND_PATH_MAX + 400];
	struct dirent *de;
	DIR *dh;
	int n = 0;

	if (snprintf(vdir, sizeof vdir, "%s/" SLOTS_VERSIONS_DIR, dir) >= (int)sizeof vdir)
		return TND_ENOSPC;
	dh = opendir(vdir);
	if (!dh)
		return errno == ENOENT ? 0 : TND_ESYS;
	while ((de = readdir(dh)) != NULL) {
		const char *v = de->d_name;
		if (strcmp(v, ".") == 0 || strcmp(v, "..") == 0)
			continue;
		if (v[0] != '.' && (strcmp(v, b->active) == 0 || strcmp(v, b->previous) == 0 ||
				    (keep && strcmp(v, keep) == 0)))
			continue;
		snprintf(p, sizeof p, "%s/%s", vdir, v);
		if (slots_rmtree(p) == 0)
			n++;
	}
	closedir(dh);
	return n;
}

static int role_rank(const char *role)
{
	return strcmp(role, "active") == 0 ? 0 : strcmp(role, "previous") == 0 ? 1 : 2;
}

static int cmp_entries(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int d = role_rank(json_string_value(json_object_get(x, "role"))) -
		role_rank(json_string_value(json_object_get(y, "role")));

	if (d != 0)
		return d;
	return strcmp(json_string_value(json_object_get(x, "version")),
		      json_string_value(json_object_get(y, "version")));
}

json_t *slots_list_json(const char *dir, const struct boot_state *b)
{
	char vdir[TND_PATH_MAX + 64], p[TND_PATH_MAX + 400];
	json_t *items[SLOTS_VERSIONS_MAX], *arr = json_array();
	struct dirent *de;
	int n = 0;
	DIR *dh;

	if (!arr)
		return NULL;
	snprintf(vdir, sizeof vdir, "%s/" SLOTS_VERSIONS_DIR, dir);
	dh = opendir(vdir);
	if (!dh)
		return arr;
	while ((de = readdir(dh)) != NULL && n < SLOTS_VERSIONS_MAX) {
		json_t *info, *o;
		if (de->d_name[0] == '.' || !boot_version_ok(de->d_name))
			continue;
		snprintf(p, sizeof p, "%s/%s/" SLOTS_INFO_FILE, vdir, de->d_name);
		info = json_load_file(p, JSON_REJECT_DUPLICATES, NULL);
		o = json_is_object(info) ? info : json_object();
		if (info && o != info)
			json_decref(info);
		json_object_set_new(o, "version", json_string(de->d_name));
		json_object_set_new(o, "role", json_string(boot_role(b, de->d_name)));
		json_object_set_new(o, "runnable", json_boolean(slots_installed(dir, de->d_name)));
		items[n++] = o;
	}
	closedir(dh);
	qsort(items, (size_t)n, sizeof items[0], cmp_entries);
	for (int i = 0; i < n; i++)
		json_array_append_new(arr, items[i]);
	return arr;
}

/* --- the new binary's --check-config -------------------------------------------- */

int slots_check_config(const char *tandemd, const char *conf, char *why, size_t why_len)
{
	char out[CHECK_OUT_MAX + 1];
	size_t got = 0;
	int pfd[2], status = 0, e;
	mono_t deadline;
	pid_t pid;

	if (access(tandemd, X_OK) != 0)
		return tnd_refuse(why, why_len, TND_EINVAL, "%s is not executable: %s", tandemd,
				  strerror(errno));
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return tnd_refuse(why, why_len, TND_ESYS, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		e = errno;
		close(pfd[0]);
		close(pfd[1]);
		return tnd_refuse(why, why_len, TND_ESYS, "fork: %s", strerror(e));
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execl(tandemd, tandemd, "--check-config", "--config", conf, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	deadline = mono_ms() + SLOTS_CHECK_TIMEOUT_MS;
	for (;;) {
		struct pollfd pf = { .fd = pfd[0], .events = POLLIN };
		mono_t left = deadline - mono_ms();
		char sink[512];
		ssize_t n;
		if (left <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		if (poll(&pf, 1, (int)left) < 0 && errno != EINTR)
			break;
		if (got < CHECK_OUT_MAX)
			n = read(pfd[0], out + got, CHECK_OUT_MAX - got);
		else
			n = read(pfd[0], sink, sizeof sink);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (got < CHECK_OUT_MAX)
			got += (size_t)n;
	}
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	out[got] = '\0';
	while (got > 0 && (out[got - 1] == '\n' || out[got - 1] == ' '))
		out[--got] = '\0';
	for (char *c = out; *c; c++)
		if (*c == '\n')
			*c = ';';
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (mono_ms() >= deadline)
		return tnd_refuse(why, why_len, TND_EINVAL, "%s --check-config did not finish within %d s",
				  tandemd, SLOTS_CHECK_TIMEOUT_MS / 1000);
	if (WIFSIGNALED(status))
		return tnd_refuse(why, why_len, TND_EINVAL, "%s --check-config was killed by signal %d%s%s",
				  tandemd, WTERMSIG(status), got ? ": " : "", out);
	return tnd_refuse(why, why_len, TND_EINVAL, "%s --check-config exited with status %d%s%s",
			  tandemd, WEXITSTATUS(status), got ? ": " : "", got ? out : "");
}

/* --- the helper process ------------------------------------------------------- */

int slots_helper_spawn(char *const args[], pid_t *pid, int *pidfd, int *out_fd)
{
	struct clone_args ca;
	int pfd[2], fd = -1;
	char *argv[16];
	int n = 0;
	long r;
	sigset_t none;

	argv[n++] = (char *)"tandemd";
	argv[n++] = (char *)SLOTS_HELPER_ARG;
	for (int i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return TND_ESYS;
	sigemptyset(&none);
	memset(&ca, 0, sizeof ca);
	ca.flags = CLONE_PIDFD;
	ca.pidfd = (uint64_t)(uintptr_t)&fd;
	ca.exit_signal = 0; /* a "clone" child: waitpid(-1) of hooks never takes it */
	r = syscall(SYS_clone3, &ca, sizeof ca);
	if (r < 0) {
		int e = errno;
		close(pfd[0]);
		close(pfd[1]);
		errno = e;
		return TND_ESYS;
	}
	if (r == 0) {
		/* The child of a process that may have threads: only raw
		 * system calls until exec. Its signal mask is the daemon's
		 * (signalfd blocks them); the helper needs the defaults. */
		syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(uint64_t));
		syscall(SYS_dup3, pfd[1], 1, 0);
		syscall(SYS_execve, "/proc/self/exe", argv, environ);
		syscall(SYS_exit, 127);
	}
	close(pfd[1]);
	if (fcntl(pfd[0], F_SETFL, O_NONBLOCK) != 0) {
		/* Still readable after the child's end: blocking is harmless. */
	}
	*pid = (pid_t)r;
	*pidfd = fd;
	*out_fd = pfd[0];
	return 0;
}

json_t *slots_helper_reap(pid_t pid, int pidfd, int out_fd, bool kill_it)
{
	char buf[SLOTS_HELPER_OUT_MAX + 1];
	size_t got = 0;
	siginfo_t si;
	json_t *res;
	char msg[160];

	if (kill_it)
		syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
	memset(&si, 0, sizeof si);
	while (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED | __WALL) < 0 && errno == EINTR)
		;
	for (;;) {
		ssize_t n = read(out_fd, buf + got, SLOTS_HELPER_OUT_MAX - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == SLOTS_HELPER_OUT_MAX)
			break;
	}
	buf[got] = '\0';
	close(out_fd);
	close(pidfd);
	(void)pid;
	res = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
	if (json_is_object(res) && json_is_boolean(json_object_get(res, "ok")))
		return res;
	json_decref(res);
	if (si.si_code == CLD_EXITED)
		snprintf(msg, sizeof msg, "the install helper exited with status %d without an answer",
			 si.si_status);
	else
		snprintf(msg, sizeof msg, "the install helper was killed by signal %d%s", si.si_status,
			 kill_it ? " (it ran too long)" : "");
	return json_pack("{s:b,s:s,s:s}", "ok", 0, "code", "failed", "error", msg);
}

/* The helper's answer on stdout. */
static int answer(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	int ok = json_is_true(json_object_get(o, "ok"));

	if (s) {
		fputs(s, stdout);
		fputc('\n', stdout);
		free(s);
	}
	json_decref(o);
	fflush(stdout);
	return ok ? 0 : 1;
}

static int refuse(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return answer(json_pack("{s:b,s:s,s:s}", "ok", 0, "code", code, "error", msg));
}

/* A full file system: said as such (errno "ENOSPC"), with the promise
 * the caller then keeps: the partial version is removed. */
static int no_space(const char *why)
{
	char msg[1200];

	snprintf(msg, sizeof msg, "%s; the install was undone and the running version is intact", why);
	return answer(json_pack("{s:b,s:s,s:s,s:s}", "ok", 0, "code", "failed", "errno", "ENOSPC",
				"error", msg));
}

/* TANDEMD_FAILPOINT=image.install.fill_disk: right after the free-space
 * check, fill the state directory's file system until half the image's
 * size is left, as another program writing to that disk at that moment
 * would; the extraction then meets a real ENOSPC from the kernel. The
 * filler file STATE_DIR/.failpoint-fill stays (the test removes it). */
static void failpoint_fill(const char *dir, off_t image_size)
{
	const char *fp = getenv("TANDEMD_FAILPOINT");
	char p[TND_PATH_MAX + 32];
	struct statvfs sv;
	int fd;

	if (!fp || strcmp(fp, "image.install.fill_disk") != 0 || statvfs(dir, &sv) != 0)
		return;
	off_t avail = (off_t)sv.f_bavail * (off_t)sv.f_frsize, want = avail - image_size / 2;
	snprintf(p, sizeof p, "%s/.failpoint-fill", dir);
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || want <= 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (posix_fallocate(fd, 0, want) != 0)
		(void)0;
	close(fd);
	fprintf(stderr, "ts=- level=warn event=failpoint name=image.install.fill_disk bytes=%lld\n",
		(long long)want);
}

static int helper_install(const char *dir, const char *image, const char *keys, const char *conf)
{
	char why[1024], vdir[TND_PATH_MAX + 64], tmp[TND_PATH_MAX + 96], bin[TND_PATH_MAX + 128];
	char key_id[2 * MANIFEST_KEY_ID_LEN + 1];
	struct image_keyring *kr = NULL;
	struct boot_state b;
	struct manifest *m;
	struct statvfs sv;
	struct stat st;
	json_t *info;
	uint64_t avail, need;
	int r;

	if (stat(image, &st) != 0)
		return refuse("failed", "cannot read the image %s: %s", image, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return refuse("failed", "the image %s is not a regular file", image);
	if (versions_dir(dir, vdir, sizeof vdir) != 0)
		return refuse("failed", "cannot create %s/%s: %s", dir, SLOTS_VERSIONS_DIR, strerror(errno));
	if (statvfs(vdir, &sv) != 0)
		return refuse("failed", "cannot measure the free space of %s: %s", vdir, strerror(errno));
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	need = SLOTS_FREE_FACTOR * (uint64_t)st.st_size;
	if (avail < need) {
		snprintf(why, sizeof why, "not enough free space in %s: %" PRIu64 " bytes free, the "
			 "install needs %d x the image's %lld bytes = %" PRIu64 " bytes; nothing was "
			 "changed", vdir, avail, SLOTS_FREE_FACTOR, (long long)st.st_size, need);
		return answer(json_pack("{s:b,s:s,s:s,s:I,s:I}", "ok", 0, "code", "refused",
					"error", why, "free_bytes", (json_int_t)avail,
					"needed_bytes", (json_int_t)need));
	}
	if (slots_load(dir, &b, why, sizeof why) != 0)
		return refuse("failed", "%s", why);
	r = image_keyring_load(keys, &kr, why, sizeof why);
	if (r != 0)
		return refuse("failed", "trusted keys (upgrade.trusted_keys): %s", why);
	failpoint_fill(dir, st.st_size);
	m = calloc(1, sizeof *m);
	if (!m) {
		image_keyring_free(kr);
		return refuse("failed", "out of memory");
	}
	snprintf(tmp, sizeof tmp, "%s/.incoming-%d", vdir, (int)getpid());
	(void)slots_rmtree(tmp);
	r = image_extract(image, kr, tmp, m, why, sizeof why);
	image_keyring_free(kr);
	if (r == TND_ENOSPC) {
		free(m);
		return no_space(why);
	}
	if (r != 0) {
		free(m);
		return refuse(r == TND_EINVAL || r == TND_EAUTH ? "invalid" : "failed", "%s", why);
	}
	/* From here on the version is in tmp: every refusal removes it. */
	if (!boot_version_ok(m->version)) {
		r = refuse("invalid", "the image's version \"%s\" cannot name a directory", m->version);
		goto drop;
	}
	if (strcmp(m->version, b.active) == 0) {
		r = refuse("refused", "%s is the active version of this node; nothing was changed",
			   m->version);
		goto drop;
	}
	snprintf(bin, sizeof bin, "%s/bin/tandemd", tmp);
	if (slots_check_config(bin, conf, why, sizeof why) != 0) {
		r = refuse("invalid", "version %s does not accept the running configuration: %s",
			   m->version, why);
		goto drop;
	}
	info = json_pack("{s:s,s:s,s:s,s:I,s:s,s:i,s:i,s:I,s:s,s:I}", "version", m->version,
			 "source", "image", "from", image, "installed_at", (json_int_t)wall_s(),
			 "min_upgrade_from", m->min_upgrade_from, "proto_min", m->proto_min,
			 "proto_max", m->proto_max, "built", (json_int_t)m->built,
			 "key_id", tnd_hex(m->key_id, MANIFEST_KEY_ID_LEN, key_id),
			 "bytes", (json_int_t)st.st_size);
	r = write_info(tmp, info, why, sizeof why);
	json_decref(info);
	if (r != 0) {
		r = r == TND_ENOSPC ? no_space(why) : refuse("failed", "%s", why);
		goto drop;
	}
	if (install_dir(dir, tmp, m->version, why, sizeof why) != 0) {
		r = refuse("failed", "%s", why);
		goto drop;
	}
	r = answer(json_pack("{s:b,s:s,s:s,s:i,s:i,s:I,s:I}", "ok", 1, "version", m->version,
			     "min_upgrade_from", m->min_upgrade_from, "proto_min", m->proto_min,
			     "proto_max", m->proto_max, "bytes", (json_int_t)st.st_size,
			     "free_bytes", (json_int_t)avail));
	free(m);
	return r;
drop:
	(void)slots_rmtree(tmp);
	free(m);
	return r;
}

static int helper_check(const char *dir, const char *version, const char *conf)
{
	char bin[TND_PATH_MAX + 64], why[1024];

	if (slots_path(dir, version, "bin/tandemd", bin, sizeof bin) != 0)
		return refuse("usage", "\"%s\" is not a version", version);
	if (!slots_installed(dir, version))
		return refuse("failed", "version %s is not installed on this node", version);
	if (slots_check_config(bin, conf, why, sizeof why) != 0)
		return refuse("invalid", "version %s does not accept the running configuration: %s",
			      version, why);
	return answer(json_pack("{s:b,s:s}", "ok", 1, "version", version));
}

/* The pre-check of an upgrade image (SPEC section 5 step 1), which
 * changes nothing the node runs: verify the image against the trusted
 * keys, extract it into a scratch directory to run its tandemd's
 * --check-config on the running configuration, remove the scratch. With
 * import = "1", the image is then also copied to STATE_DIR/images/
 * <BLAKE2b-256 hex>.img (tmp, fsync, rename, fsync of the directory),
 * where the image transfer serves it to the other nodes. The answer names
 * an image problem by its upgrade error code: E_IMAGE_MISSING,
 * E_IMAGE_UNSIGNED, E_IMAGE_UNTRUSTED, E_IMAGE_CORRUPT. */
static int image_code(int r, const char *why)
{
	(void)r;
	if (strstr(why, "is not signed"))
		return 1;
	if (strstr(why, "not trusted"))
		return 2;
	return 3;
}

static int import_image(const char *dir, const char *image, char *hex, size_t hex_len,
			char *why, size_t why_len)
{
	char idir[TND_PATH_MAX + 16], tmp[TND_PATH_MAX + 120], dst[TND_PATH_MAX + 120];
	uint8_t buf[COPY_BUF_BYTES], digest[32];
	crypto_generichash_state h;
	int in, out;
	ssize_t n;

	snprintf(idir, sizeof idir, "%s/images", dir);
	if (mkdir(idir, 0700) != 0 && errno != EEXIST) {
		snprintf(why, why_len, "cannot create %s: %s", idir, strerror(errno));
		return TND_ESYS;
	}
	in = open(image, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		snprintf(why, why_len, "cannot read %s: %s", image, strerror(errno));
		return TND_ESYS;
	}
	snprintf(tmp, sizeof tmp, "%s/.import-%d", idir, (int)getpid());
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		snprintf(why, why_len, "cannot create %s: %s", tmp, strerror(errno));
		close(in);
		return TND_ESYS;
	}
	crypto_generichash_init(&h, NULL, 0, sizeof digest);
	while ((n = read(in, buf, sizeof buf)) > 0) {
		crypto_generichash_update(&h, buf, (unsigned long long)n);
		if (state_write_all(out, buf, (size_t)n) != 0) {
			snprintf(why, why_len, "cannot write %s: %s", tmp, strerror(errno));
			n = -1;
			break;
		}
	}
	if (n == 0 && fsync(out) != 0) {
		snprintf(why, why_len, "cannot fsync %s: %s", tmp, strerror(errno));
		n = -1;
	} else if (n < 0 && !why[0]) {
		snprintf(why, why_len, "cannot read %s: %s", image, strerror(errno));
	}
	close(in);
	if (close(out) != 0 && n == 0) {
		snprintf(why, why_len, "cannot write %s: %s", tmp, strerror(errno));
		n = -1;
	}
	if (n < 0) {
		(void)unlink(tmp);
		return TND_ESYS;
	}
	crypto_generichash_final(&h, digest, sizeof digest);
	tnd_hex(digest, sizeof digest, hex);
	(void)hex_len;
	snprintf(dst, sizeof dst, "%s/%s.img", idir, hex);
	if (rename(tmp, dst) != 0 || state_fsync_dir(idir) != 0) {
		snprintf(why, why_len, "cannot rename %s: %s", tmp, strerror(errno));
		(void)unlink(tmp);
		return TND_ESYS;
	}
	return 0;
}

/* The BLAKE2b-256 of a file, as hex (the name images/ gives it). */
static int hash_file(const char *path, char hex[2 * 32 + 1], char *why, size_t why_len)
{
	uint8_t buf[COPY_BUF_BYTES], digest[32];
	crypto_generichash_state h;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(why, why_len, "cannot read %s: %s", path, strerror(errno));
		return TND_ESYS;
	}
	crypto_generichash_init(&h, NULL, 0, sizeof digest);
	while ((n = read(fd, buf, sizeof buf)) > 0)
		crypto_generichash_update(&h, buf, (unsigned long long)n);
	close(fd);
	if (n < 0) {
		snprintf(why, why_len, "cannot read %s: %s", path, strerror(errno));
		return TND_ESYS;
	}
	crypto_generichash_final(&h, digest, sizeof digest);
	tnd_hex(digest, sizeof digest, hex);
	return 0;
}

static int helper_precheck(const char *dir, const char *image, const char *keys, const char *conf,
			   bool import)
{
	static const char *const codes[] = { "", "E_IMAGE_UNSIGNED", "E_IMAGE_UNTRUSTED", "E_IMAGE_CORRUPT" };
	char why[1024], vdir[TND_PATH_MAX + 64], tmp[TND_PATH_MAX + 96], bin[TND_PATH_MAX + 128];
	char cwhy[1024] = "", hex[2 * 32 + 1] = "";
	struct image_keyring *kr = NULL;
	struct manifest *m;
	struct stat st;
	bool config_ok;
	json_t *o;
	int r;

	if (stat(image, &st) != 0 || !S_ISREG(st.st_mode))
		return answer(json_pack("{s:b,s:s,s:s,s:s}", "ok", 0, "code", "failed", "image_code",
					"E_IMAGE_MISSING", "error", st.st_mode && !S_ISREG(st.st_mode) ?
					"the image is not a regular file" : strerror(errno)));
	if (versions_dir(dir, vdir, sizeof vdir) != 0)
		return refuse("failed", "cannot create %s/%s: %s", dir, SLOTS_VERSIONS_DIR, strerror(errno));
	r = image_keyring_load(keys, &kr, why, sizeof why);
	if (r != 0)
		return answer(json_pack("{s:b,s:s,s:s,s:s}", "ok", 0, "code", "failed", "image_code",
					"E_IMAGE_UNTRUSTED", "error", why));
	m = calloc(1, sizeof *m);
	if (!m) {
		image_keyring_free(kr);
		return refuse("failed", "out of memory");
	}
	snprintf(tmp, sizeof tmp, "%s/.precheck-%d", vdir, (int)getpid());
	(void)slots_rmtree(tmp);
	r = image_extract(image, kr, tmp, m, why, sizeof why);
	image_keyring_free(kr);
	if (r == TND_EINVAL || r == TND_EAUTH) {
		free(m);
		return answer(json_pack("{s:b,s:s,s:s,s:s}", "ok", 0, "code", "invalid", "image_code",
					codes[r == TND_EINVAL ? 3 : image_code(r, why)], "error", why));
	}
	if (r != 0) {
		free(m);
		return refuse("failed", "%s", why);
	}
	snprintf(bin, sizeof bin, "%s/bin/tandemd", tmp);
	config_ok = slots_check_config(bin, conf, cwhy, sizeof cwhy) == 0;
	(void)slots_rmtree(tmp);
	if (import && import_image(dir, image, hex, sizeof hex, why, sizeof why) != 0) {
		free(m);
		return refuse("failed", "%s", why);
	}
	if (!import && hash_file(image, hex, why, sizeof why) != 0) {
		free(m);
		return refuse("failed", "%s", why);
	}
	o = json_pack("{s:b,s:s,s:s,s:i,s:i,s:I,s:b,s:s}", "ok", 1, "version", m->version,
		      "min_upgrade_from", m->min_upgrade_from, "proto_min", m->proto_min,
		      "proto_max", m->proto_max, "bytes", (json_int_t)st.st_size,
		      "config_ok", config_ok, "config_message", cwhy);
	if (hex[0])
		json_object_set_new(o, "digest", json_string(hex));
	free(m);
	return answer(o);
}

int slots_helper_main(int argc, char **argv)
{
	/* A helper outliving its daemon would go on writing into a state
	 * directory that the next start cleans up: it dies with it. */
	pid_t parent = getppid();
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent || parent == 1)
		return refuse("failed", "the install helper lost its daemon");
	/* The daemon's stderr is the log: the helper's own messages stay
	 * out of it; its one answer goes to stdout. */
	if (argc == 7 && strcmp(argv[2], "install") == 0)
		return helper_install(argv[3], argv[4], argv[5], argv[6]);
	if (argc == 6 && strcmp(argv[2], "check") == 0)
		return helper_check(argv[3], argv[4], argv[5]);
	if (argc == 8 && strcmp(argv[2], "precheck") == 0)
		return helper_precheck(argv[3], argv[4], argv[5], argv[6], strcmp(argv[7], "1") == 0);
	return refuse("usage", "usage: tandemd %s install DIR IMAGE KEYS CONF | check DIR VERSION CONF | "
		      "precheck DIR IMAGE KEYS CONF IMPORT",
		      SLOTS_HELPER_ARG);
}
