/* loop.c - epoll event loop with timerfd and signalfd (see loop.h). */
#include "loop.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define LOOP_EVENTS_BATCH 32

struct loop_slot {
	int fd; /* -1 = free */
	uint32_t gen;
	loop_fd_cb cb;
	void *arg;
};

struct loop {
	int epfd;
	bool stop;
	struct loop_slot slots[LOOP_FDS_MAX];
	uint32_t gen;

	int tfd;
	mono_t timer_at;
	void (*timer_cb)(struct loop *l, void *arg);
	void *timer_arg;

	int sfd;
	void (*sig_cb)(struct loop *l, int signo, void *arg);
	void *sig_arg;
};

mono_t loop_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (mono_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct loop *loop_new(void)
{
	struct loop *l = calloc(1, sizeof *l);

	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return NULL;
	}
	for (int i = 0; i < LOOP_FDS_MAX; i++)
		l->slots[i].fd = -1;
	l->tfd = -1;
	l->sfd = -1;
	l->timer_at = MONO_NEVER;
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	if (l->tfd >= 0)
		close(l->tfd);
	if (l->sfd >= 0)
		close(l->sfd);
	close(l->epfd);
	free(l);
}

static int slot_find(const struct loop *l, int fd)
{
	for (int i = 0; i < LOOP_FDS_MAX; i++)
		if (l->slots[i].fd == fd)
			return i;
	return -1;
}

int loop_add(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *arg)
{
	int i = slot_find(l, -1);
	struct epoll_event ev;

	if (i < 0)
		return TND_ENOSPC;
	l->slots[i] = (struct loop_slot){ .fd = fd, .gen = ++l->gen, .cb = cb, .arg = arg };
	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.u64 = (uint64_t)l->slots[i].gen << 32 | (uint32_t)i;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		l->slots[i].fd = -1;
		return TND_ESYS;
	}
	return 0;
}

int loop_mod(struct loop *l, int fd, uint32_t events)
{
	int i = slot_find(l, fd);
	struct epoll_event ev;

	if (i < 0)
		return TND_ENOENT;
	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.u64 = (uint64_t)l->slots[i].gen << 32 | (uint32_t)i;
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) == 0 ? 0 : TND_ESYS;
}

int loop_del(struct loop *l, int fd)
{
	int i = slot_find(l, fd);

	if (i < 0)
		return TND_ENOENT;
	(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	l->slots[i].fd = -1;
	l->slots[i].gen = 0;
	return 0;
}

static void on_timerfd(struct loop *l, int fd, uint32_t events, void *arg)
{
	uint64_t expirations;

	if (read(fd, &expirations, sizeof expirations) < 0 && errno == EAGAIN)
		return;
	/* A deadline set again before we got here may lie in the future:
	 * then this expiry is stale and the timerfd is already re-armed. */
	if (l->timer_at == MONO_NEVER || loop_now() < l->timer_at)
		return;
	l->timer_at = MONO_NEVER;
	if (l->timer_cb)
		l->timer_cb(l, l->timer_arg);
}

int loop_timer_init(struct loop *l, void (*cb)(struct loop *l, void *arg), void *arg)
{
	int r;

	l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (l->tfd < 0)
		return TND_ESYS;
	l->timer_cb = cb;
	l->timer_arg = arg;
	r = loop_add(l, l->tfd, EPOLLIN, on_timerfd, NULL);
	return r;
}

int loop_timer_set(struct loop *l, mono_t at)
{
	struct itimerspec its;

	memset(&its, 0, sizeof its);
	l->timer_at = at;
	if (at != MONO_NEVER) {
		/* it_value 0 would disarm: a past deadline becomes 1 ns, which
		 * an absolute timer treats as already expired. */
		if (at <= 0)
			at = 1;
		its.it_value.tv_sec = at / 1000000000LL;
		its.it_value.tv_nsec = at % 1000000000LL;
	}
	return timerfd_settime(l->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0 ? 0 : TND_ESYS;
}

static void on_signalfd(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof si) == (ssize_t)sizeof si)
		if (l->sig_cb)
			l->sig_cb(l, (int)si.ssi_signo, l->sig_arg);
}

int loop_signals(struct loop *l, const int *signals, int n,
		 void (*cb)(struct loop *l, int signo, void *arg), void *arg)
{
	sigset_t set;

	sigemptyset(&set);
	for (int i = 0; i < n; i++)
		sigaddset(&set, signals[i]);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return TND_ESYS;
	l->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (l->sfd < 0)
		return TND_ESYS;
	l->sig_cb = cb;
	l->sig_arg = arg;
	return loop_add(l, l->sfd, EPOLLIN, on_signalfd, NULL);
}

int loop_run(struct loop *l)
{
	struct epoll_event evs[LOOP_EVENTS_BATCH];

	l->stop = false;
	while (!l->stop) {
		int n = epoll_wait(l->epfd, evs, LOOP_EVENTS_BATCH, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return TND_ESYS;
		}
		for (int i = 0; i < n && !l->stop; i++) {
			uint32_t idx = (uint32_t)evs[i].data.u64;
			uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
			struct loop_slot *s;

			if (idx >= LOOP_FDS_MAX)
				continue;
			s = &l->slots[idx];
			if (s->fd < 0 || s->gen != gen)
				continue; /* removed earlier in this batch */
			s->cb(l, s->fd, evs[i].events, s->arg);
		}
	}
	return 0;
}

void loop_stop(struct loop *l)
{
	l->stop = true;
}
