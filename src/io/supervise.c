/* supervise.c - the supervisor and its worker (supervise.h documents the
 * steps and why they are in that order).
 *
 * The supervisor is single-threaded and handles its signals synchronously:
 * every signal it cares about is blocked and taken with sigtimedwait(2),
 * so there is no handler and no race between a SIGCHLD and the decision
 * that follows it. It writes boot.json and events.log only while no worker
 * is running; a running worker is the only writer then (it confirms and
 * activates), so the two never write at the same time. */
#include "supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../core/boot.h"
#include "log.h"
#include "slots.h"
#include "state.h"

#define SUP_ARGS_MAX 64

struct sup {
	const struct supervise_args *a;
	int lock_fd;
	sigset_t blocked, orig;
	struct boot_state b;
	pid_t worker;      /* 0 = none */
	char running[TND_VERSION_MAX]; /* the worker's version */
	bool stopping;     /* SIGTERM/SIGINT received */
	int stop_signal;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An event: stderr always; events.log too while no worker runs (the
 * worker appends to it meanwhile, and loads it at its start, so `tandemctl
 * events` shows what the supervisor did). */
static void sup_log(struct sup *s, enum ev_level lvl, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void sup_log(struct sup *s, enum ev_level lvl, const char *name, const char *fmt, ...)
{
	char kv[ACT_EVENT_LEN], path[TND_PATH_MAX + 16];
	bool file = false;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(kv, sizeof kv, fmt, ap);
	va_end(ap);
	if (!s->worker) {
		snprintf(path, sizeof path, "%s/events.log", s->a->state_dir);
		file = log_open_file(path) == 0;
	}
	log_event_kv(lvl, name, kv);
	if (file)
		log_close();
}

static const char *q(const char *s, char *buf, size_t len)
{
	return log_kv_quote(s, buf, len);
}

static void reload(struct sup *s)
{
	struct boot_state b;
	char why[256];

	if (slots_load(s->a->state_dir, &b, why, sizeof why) == 0)
		s->b = b;
}

static int save(struct sup *s)
{
	char e[160];

	if (slots_save(s->a->state_dir, &s->b) == 0)
		return 0;
	sup_log(s, LVL_ERROR, "boot.write_failed", "file=%s/%s error=%s", s->a->state_dir,
		SLOTS_BOOT_FILE, q(strerror(errno), e, sizeof e));
	return TND_ESYS;
}

static int lock_dir(struct sup *s)
{
	int64_t deadline = mono_ms() + SUPERVISE_LOCK_WAIT_MS;
	char e[160];

	for (;;) {
		int r = state_dir_open(s->a->state_dir, &s->lock_fd);
		if (r == 0)
			return 0;
		if (r != TND_EREFUSED) {
			sup_log(s, LVL_ERROR, "daemon.fatal", "error=%s",
				q(strerror(errno), e, sizeof e));
			fprintf(stderr, "tandemd: cannot open state directory %s: %s\n", s->a->state_dir,
				strerror(errno));
			return TND_ESYS;
		}
		if (mono_ms() >= deadline) {
			sup_log(s, LVL_ERROR, "daemon.fatal",
				"error=\"state directory %s is in use by another tandemd\"", s->a->state_dir);
			return TND_EREFUSED;
		}
		usleep(20 * 1000);
	}
}

/* argv for a tandemd of `path`: the started command line, plus extra. */
static void build_argv(struct sup *s, const char *path, const char *extra1, const char *extra2,
		       char **out)
{
	int n = 0;

	out[n++] = (char *)path;
	for (int i = 1; i < s->a->argc && n < SUP_ARGS_MAX - 3; i++)
		out[n++] = s->a->argv[i];
	if (extra1)
		out[n++] = (char *)extra1;
	if (extra2)
		out[n++] = (char *)extra2;
	out[n] = NULL;
}

/* Step 2: become the active version's tandemd. Returns only on failure. */
static void exec_active(struct sup *s)
{
	char path[TND_PATH_MAX + 64], e[160];
	char *argv[SUP_ARGS_MAX];

	if (slots_path(s->a->state_dir, s->b.active, "bin/tandemd", path, sizeof path) != 0 ||
	    access(path, X_OK) != 0) {
		sup_log(s, LVL_ERROR, "version.exec_failed", "from=%s to=%s path=%s error=%s", TND_VERSION,
			s->b.active, path, q(strerror(errno), e, sizeof e));
		return;
	}
	sup_log(s, LVL_INFO, "version.exec", "from=%s to=%s path=%s reason=active_in_state_dir",
		TND_VERSION, s->b.active, path);
	build_argv(s, path, NULL, NULL, argv);
	setenv(SUPERVISE_EXEC_ENV, TND_VERSION, 1);
	sigprocmask(SIG_SETMASK, &s->orig, NULL);
	execv(path, argv); /* the lock is close-on-exec: the new image takes it again */
	sigprocmask(SIG_SETMASK, &s->blocked, NULL);
	unsetenv(SUPERVISE_EXEC_ENV);
	sup_log(s, LVL_ERROR, "version.exec_failed", "from=%s to=%s path=%s error=%s", TND_VERSION,
		s->b.active, path, q(strerror(errno), e, sizeof e));
}

static int spawn_worker(struct sup *s)
{
	char path[TND_PATH_MAX + 64], fd[16], e[160];
	char *argv[SUP_ARGS_MAX];
	pid_t me = getpid(), pid;

	slots_path(s->a->state_dir, s->b.active, "bin/tandemd", path, sizeof path);
	snprintf(fd, sizeof fd, "%d", s->lock_fd);
	build_argv(s, path, SUPERVISE_WORKER_OPT, fd, argv);
	pid = fork();
	if (pid < 0) {
		sup_log(s, LVL_ERROR, "worker.spawn_failed", "error=%s", q(strerror(errno), e, sizeof e));
		return TND_ESYS;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &s->orig, NULL);
		/* Survives exec; checked after setting it, since the parent
		 * may have died between fork and prctl. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != me)
			_exit(1);
		if (fcntl(s->lock_fd, F_SETFD, 0) != 0)
			_exit(1);
		execv(path, argv);
		dprintf(2, "ts=- level=error event=worker.exec_failed path=%s error=\"%s\"\n", path,
			strerror(errno));
		_exit(127);
	}
	s->worker = pid;
	snprintf(s->running, sizeof s->running, "%s", s->b.active);
	return 0;
}

/* Wait for the worker's end, forwarding signals; while the version is on
 * trial, watch its hold timer. *hold_why is set when the supervisor
 * stopped it for that. */
static void wait_worker(struct sup *s, int64_t started_ms, struct boot_exit *ex, bool *hold,
			char *hold_why, size_t hold_len)
{
	int64_t kill_at = 0;
	char e[64];

	*hold = false;
	for (;;) {
		struct timespec ts, *tp = NULL;
		siginfo_t si;
		int status, sig;
		pid_t p;

		if (!s->b.confirmed || kill_at) {
			int64_t wait_ms = SUPERVISE_POLL_MS;
			if (kill_at && kill_at - mono_ms() < wait_ms)
				wait_ms = kill_at - mono_ms();
			if (wait_ms < 1)
				wait_ms = 1;
			ts.tv_sec = wait_ms / 1000;
			ts.tv_nsec = (wait_ms % 1000) * 1000000;
			tp = &ts;
		}
		sig = tp ? sigtimedwait(&s->blocked, &si, tp) : sigwaitinfo(&s->blocked, &si);
		if (sig == SIGTERM || sig == SIGINT) {
			if (!s->stopping)
				sup_log(s, LVL_INFO, "supervisor.stop", "signal=%s worker=%d", sigabbrev_np(sig),
					(int)s->worker);
			s->stopping = true;
			s->stop_signal = sig;
			kill(s->worker, sig);
		} else if (sig == SIGHUP) {
			kill(s->worker, sig);
		} else if (sig == SIGUSR1) {
			reload(s);
		}
		p = waitpid(s->worker, &status, WNOHANG);
		if (p == s->worker) {
			ex->signaled = WIFSIGNALED(status);
			ex->code = ex->signaled ? WTERMSIG(status) : WEXITSTATUS(status);
			return;
		}
		if (kill_at && mono_ms() >= kill_at) {
			sup_log(s, LVL_WARN, "worker.kill", "pid=%d reason=\"no exit %d ms after SIGTERM\"",
				(int)s->worker, SUPERVISE_STOP_WAIT_MS);
			kill(s->worker, SIGKILL);
			kill_at = 0;
			continue;
		}
		if (s->b.confirmed || *hold || s->stopping)
			continue;
		if (sig < 0 || sig == SIGUSR1)
			reload(s);
		/* The hold timer is the running version's: a worker that has
		 * just activated another one is not on trial itself. */
		if (!s->b.confirmed && strcmp(s->b.active, s->running) == 0 &&
		    boot_hold_expired(&s->b, mono_ms() - started_ms, hold_why, hold_len)) {
			*hold = true;
			sup_log(s, LVL_WARN, "version.hold_expired", "version=%s hold_timer_s=%u action=stop "
				"waiting_for=%s", s->b.active, s->b.hold_timer_s,
				q(s->b.waiting_for[0] ? s->b.waiting_for : "-", e, sizeof e));
			kill(s->worker, SIGTERM);
			kill_at = mono_ms() + SUPERVISE_STOP_WAIT_MS;
		}
	}
}

static const char *exit_str(const struct boot_exit *ex, char *buf, size_t len)
{
	if (ex->signaled)
		snprintf(buf, len, "signal=%s", sigabbrev_np(ex->code) ? sigabbrev_np(ex->code) : "?");
	else
		snprintf(buf, len, "status=%d", ex->code);
	return buf;
}

static int do_revert(struct sup *s, const char *reason)
{
	char why[BOOT_REASON_LEN + 64], qr[BOOT_REASON_LEN + 16], failed[TND_VERSION_MAX];

	snprintf(failed, sizeof failed, "%s", s->b.active);
	if (boot_revert(&s->b, reason, (int64_t)time(NULL), why, sizeof why) != 0) {
		sup_log(s, LVL_ERROR, "version.revert_impossible", "version=%s reason=%s", failed,
			q(why, qr, sizeof qr));
		return TND_ENOENT;
	}
	if (save(s) != 0)
		return TND_ESYS;
	sup_log(s, LVL_ERROR, "version.revert", "from=%s to=%s reason=%s", failed, s->b.active,
		q(reason, qr, sizeof qr));
	return 0;
}

/* Sleep up to ms, still answering SIGTERM/SIGINT (true: stop now). */
static bool backoff(struct sup *s, uint32_t ms)
{
	int64_t until = mono_ms() + ms;

	while (mono_ms() < until) {
		int64_t left = until - mono_ms();
		struct timespec ts = { .tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000 };
		siginfo_t si;
		int sig = sigtimedwait(&s->blocked, &si, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			s->stopping = true;
			return true;
		}
	}
	return false;
}

int supervise_main(const struct supervise_args *a)
{
	struct sup s = { .a = a, .lock_fd = -1 };
	const char *from_env = getenv(SUPERVISE_EXEC_ENV);
	char from[TND_VERSION_MAX] = "", why[BOOT_REASON_LEN + 256], qw[BOOT_REASON_LEN + 300];
	struct boot_exit ex = { 0 };
	int status = 1;

	if (from_env) {
		snprintf(from, sizeof from, "%s", from_env);
		unsetenv(SUPERVISE_EXEC_ENV);
	}
	if (a->node)
		log_set_node(a->node);
	sigemptyset(&s.blocked);
	sigaddset(&s.blocked, SIGTERM);
	sigaddset(&s.blocked, SIGINT);
	sigaddset(&s.blocked, SIGHUP);
	sigaddset(&s.blocked, SIGCHLD);
	sigaddset(&s.blocked, SIGUSR1);
	sigprocmask(SIG_BLOCK, &s.blocked, &s.orig);

	if (lock_dir(&s) != 0)
		return 1;
	if (slots_boot(a->state_dir, TND_VERSION, &s.b, why, sizeof why) != 0) {
		sup_log(&s, LVL_ERROR, "daemon.fatal", "error=%s", q(why, qw, sizeof qw));
		goto out;
	}
	if (strcmp(s.b.active, TND_VERSION) != 0 && s.b.confirmed) {
		if (!from[0])
			exec_active(&s); /* returns only when it failed */
		else
			sup_log(&s, LVL_WARN, "version.exec_mismatch",
				"expected=%s running=%s exec_from=%s action=supervise_anyway",
				s.b.active, TND_VERSION, from);
	}
	sup_log(&s, LVL_INFO, "supervisor.start", "version=%s active=%s confirmed=%s pid=%d%s%s",
		TND_VERSION, s.b.active, s.b.confirmed ? "true" : "false", (int)getpid(),
		from[0] ? " exec_from=" : "", from);

	for (;;) {
		enum boot_next next;
		uint32_t tries0 = s.b.tries, delay = 0;
		int64_t t0;
		bool hold;
		char es[32];

		reload(&s);
		next = boot_before_start(&s.b, why, sizeof why);
		if (next == BOOT_REVERT) {
			if (do_revert(&s, why) != 0)
				goto out;
			continue;
		}
		if (s.b.tries != tries0 && save(&s) != 0)
			sup_log(&s, LVL_WARN, "boot.tries_not_durable", "version=%s tries=%u", s.b.active,
				s.b.tries);
		if (!s.b.confirmed)
			sup_log(&s, LVL_INFO, "version.trial_start", "version=%s try=%u of=%d hold_timer_s=%u",
				s.b.active, s.b.tries, BOOT_TRIES_MAX, s.b.hold_timer_s);
		if (spawn_worker(&s) != 0)
			goto out;
		t0 = mono_ms();
		wait_worker(&s, t0, &ex, &hold, why, sizeof why);
		s.worker = 0;
		reload(&s);
		sup_log(&s, ex.signaled || (ex.code != 0 && ex.code != BOOT_EXIT_RESTART) ? LVL_WARN : LVL_INFO,
			"worker.exit", "version=%s %s ran_ms=%" PRId64 " active=%s confirmed=%s", s.running,
			exit_str(&ex, es, sizeof es), mono_ms() - t0, s.b.active,
			s.b.confirmed ? "true" : "false");
		status = boot_exit_status(&ex);
		if (hold && !s.b.confirmed) {
			if (do_revert(&s, why) != 0)
				goto out;
			continue;
		}
		if (hold && !s.stopping)
			continue; /* confirmed while being stopped: start it again */
		if (strcmp(s.running, s.b.active) != 0)
			/* The worker activated another version: start it if
			 * asked to, else end as that worker did; the next start
			 * of the service brings the new version up. */
			next = !ex.signaled && ex.code == BOOT_EXIT_RESTART && !s.stopping ? BOOT_START
											    : BOOT_EXIT;
		else
			next = boot_after_exit(&s.b, &ex, s.stopping, &delay);
		if (next == BOOT_EXIT)
			break;
		if (s.b.last_failure[0] && !s.b.confirmed)
			(void)save(&s);
		if (delay > 0) {
			sup_log(&s, LVL_INFO, "version.retry", "version=%s after_ms=%u last=%s", s.b.active,
				delay, q(s.b.last_failure, qw, sizeof qw));
			if (backoff(&s, delay))
				break;
		}
	}
	sup_log(&s, LVL_INFO, "supervisor.exit", "status=%d", status);
out:
	if (s.lock_fd >= 0)
		close(s.lock_fd);
	log_close();
	return status;
}

int supervise_worker_lock(const char *state_dir, int fd)
{
	char path[TND_PATH_MAX + 8];
	struct stat a, b;

	if (snprintf(path, sizeof path, "%s/lock", state_dir) >= (int)sizeof path ||
	    fstat(fd, &a) != 0 || stat(path, &b) != 0)
		return TND_EINVAL;
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		errno = EBADF;
		return TND_EINVAL;
	}
	/* The supervisor's lock is on this very open file: taking it again
	 * through the inherited descriptor succeeds; any other holder fails. */
	if (flock(fd, LOCK_EX | LOCK_NB) != 0)
		return TND_EINVAL;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
		return TND_EINVAL;
	return 0;
}

void supervise_notify(void)
{
	pid_t p = getppid();

	if (p > 1)
		kill(p, SIGUSR1);
}
