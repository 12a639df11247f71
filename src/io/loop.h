/* loop.h - the daemon's event loop: epoll, one timerfd, one signalfd.
 *
 * Owns: the epoll set and the dispatch of ready descriptors to their
 * callbacks, a single absolute CLOCK_MONOTONIC deadline (the driver keeps
 * it at the earliest of the core's next wake-up and its own timers), and
 * the signals the daemon handles synchronously through signalfd (they are
 * blocked for normal delivery, so no handler ever runs in the middle of
 * the core). Callbacks may add and remove descriptors, including their
 * own, while the loop dispatches: stale events are recognised by a
 * generation number and skipped. */
#ifndef TND_LOOP_H
#define TND_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>
#include "../core/types.h"

#define LOOP_FDS_MAX 96 /* registered descriptors */

struct loop;
typedef void (*loop_fd_cb)(struct loop *l, int fd, uint32_t events, void *arg);

/* The current CLOCK_MONOTONIC time. */
mono_t loop_now(void);

struct loop *loop_new(void);
void loop_free(struct loop *l);

/* Watch fd for EPOLLIN / EPOLLOUT etc. 0, TND_ENOSPC or TND_ESYS. */
int loop_add(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *arg);
int loop_mod(struct loop *l, int fd, uint32_t events);
/* Stop watching fd (does not close it). */
int loop_del(struct loop *l, int fd);

/* Block `signals` and deliver them to cb from the loop. Call once. */
int loop_signals(struct loop *l, const int *signals, int n,
		 void (*cb)(struct loop *l, int signo, void *arg), void *arg);

/* The timer: cb runs once the monotonic clock reaches `at`. MONO_NEVER
 * disarms. A deadline already passed fires at the next loop turn. */
int loop_timer_init(struct loop *l, void (*cb)(struct loop *l, void *arg), void *arg);
int loop_timer_set(struct loop *l, mono_t at);

/* Run until loop_stop(). 0, or TND_ESYS if epoll_wait fails. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

#endif
