/* sessions.c - session-sync driver (see sessions.h).
 *
 * The core (ctsync.c) decides; this file performs: packets go out through
 * the daemon's send hook, records are injected with ct_queue/ct_flush,
 * sweeps delete what ctsync_fresh() does not keep, and kernel events feed
 * ctsync_local while this node is the session primary.
 *
 * Injection. Writing a session into the kernel costs some microseconds of
 * kernel time per entry (more than everything else a secondary does), so
 * an injector thread with its own netlink handle does it, in batches of
 * many requests per system call (ct_queue/ct_flush), while the loop goes
 * on reading, checking and ordering the next messages. The loop hands
 * over every kernel write (CTS_ACT_APPLY records, sweep deletions) in its
 * own order through a bounded ring; the injector writes them in that
 * order. An ack tells the primary that records are applied, so an ack
 * the core emits is held until the injector has written every record
 * handed over before it (HELD_ACKS_MAX of them wait in order); this also
 * paces the primary (its congestion window) to what the kernel takes. A
 * sweep starts, and a role change or shutdown proceeds, only with the
 * ring drained. The ring holds at most the records of one send window
 * (window_msgs_max messages), a few tens of milliseconds of kernel work:
 * far below the silence after which a secondary takes over from a failed
 * primary, so the table is complete before the node could take over.
 *
 * Events. Only a primary needs its kernel's events: the event socket is
 * open only while this node is the session primary (a secondary would
 * otherwise read back an event for every session it injects).
 * sessions_events_fd() is an epoll descriptor of our own that holds the
 * event socket when there is one and when reading it is wanted, so the
 * daemon's loop sees one constant descriptor. Reading pauses while the
 * core's log has little room (ctsync_log_room): a secondary that is slow
 * but progressing then holds events back in the kernel's socket buffer
 * (64 MiB) instead of being evicted from the log and bulk-synced again;
 * only if that buffer overruns are events lost, and the loss (ENOBUFS)
 * is answered with a full resync, logged.
 *
 * Reading the kernel table (for a bulk on the primary, for the end-of-bulk
 * sweep on a secondary) is slow, about 3 us per entry in the kernel alone:
 * done in the event loop it would stop the heartbeats. So a reader thread
 * (one for the driver's life: the loop never waits for a thread to end)
 * with its own netlink handle reads the table into chunks of records and
 * hands each over as soon as it is full (a mutex-protected list and an
 * eventfd), at most CHUNKS_MAX ahead of the loop, which bounds the memory
 * of a read and lets the loop feed the first records to the core (or
 * delete the first stale ones) while the kernel is still dumping the
 * rest. The loop feeds at most FEED_PER_STEP records per step. A read that
 * is no longer wanted (a newer bulk, a role change, shutdown) is stopped
 * at the next chunk. The reader touches nothing but its handle, its chunk
 * in progress and, under the mutex, the request and hand-over list; the
 * core stays single-threaded. Any entry point that takes longer than
 * SLOW_CALL_MS is logged (sessions.slow).
 *
 * An overrun of the kernel's event buffer (ENOBUFS) is reported before
 * the events still queued from before the loss; those are older than the
 * table the resync reads, so the event socket is replaced (dropping them)
 * before ctsync_overrun.
 *
 * Sync barrier (SPEC section 1, planned failover): when the election core
 * releases a group to a target it asks for a barrier; staged records are
 * flushed, the log head is noted, and the barrier completes when the
 * target has acknowledged that head (or fails at once when the target is
 * gone). The core bounds the wait with its own timeout. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "sessions.h"

/* Records handed to the core, or checked by a sweep, per loop turn: a
 * few milliseconds of work, so a loaded machine stretching a turn several
 * times still stays far below the failure detector's patience. */
#define FEED_PER_STEP 2048
#define DUMP_REC_HDR 11        /* op, key_len, val_len, stable_hash */
#define CHUNK_BYTES (256 * 1024)
#define CHUNKS_MAX 8           /* read ahead of the feed: 2 MiB */
/* Log room (messages) below which kernel events are left in the kernel:
 * one read of CT_EVENT_BATCH_MAX events fills at most this many. */
#define EV_ROOM_MSGS 64
/* Kernel writes handed to the injector and not yet done: more than the
 * records of a full send window (256 messages of at most ~50 records). */
#define INJ_RING_RECS 16384
#define HELD_ACKS_MAX 8
#define PREFETCH_RECS 8
/* A call into this driver longer than this is logged (what it was, how
 * long; at most one line per second): a loop turn must stay short, and a
 * stall seen by the failure detector (core.tilt) is then either ours,
 * with its cause, or not. */
#define SLOW_CALL_MS 20

enum dump_kind { DK_NONE, DK_BULK, DK_SWEEP };

/* Records as DUMP_REC_HDR + key + val, back to back. */
struct chunk {
	struct chunk *next;
	size_t len;
	uint8_t b[CHUNK_BYTES];
};

/* The reader thread lives as long as the driver and reads the table when
 * asked: the loop never waits for a thread to end (a joined thread
 * preempted just before its exit would hold the loop on a busy machine). */
struct worker {
	pthread_t th;
	bool started;          /* the thread exists (joined at close) */
	bool running;          /* loop's view: a read is asked and not yet ended */
	struct ct *ct;         /* the worker's own netlink handle */
	int efd;               /* written when a chunk is ready or the read ended */
	struct chunk *cur;     /* worker only: being filled */
	int wrc;               /* worker only: failure inside the callback */
	pthread_mutex_t mu;
	pthread_cond_t cv;     /* the worker waits for a request or for room */
	/* under mu */
	bool req, quit;        /* a read is asked / the driver closes */
	struct chunk *ready, *ready_tail;
	int outstanding;       /* chunks handed over and not yet freed by the loop */
	bool stop;             /* the loop no longer wants this read */
	bool done;             /* the read ended; rc and recs are its result */
	int rc;
	uint64_t recs;
};

struct injector {
	pthread_t th;
	bool running;
	struct ct *ct;         /* the injector's own netlink handle */
	int efd;               /* the reader's eventfd, written after each batch */
	struct ctrec *ring;    /* INJ_RING_RECS */
	pthread_mutex_t mu;
	pthread_cond_t work, space;
	/* under mu */
	uint64_t produced, done; /* records handed over / written */
	bool stop, waiting;    /* waiting: the injector sleeps for work */
	struct ct_stats st;    /* the injector's counters after its last batch */
};

struct held_ack {
	uint64_t need;         /* send once done >= need */
	int to, link;
	size_t len;
	uint8_t pkt[WIRE_MTU];
};

struct barrier {
	uint8_t group_id;
	int target;
	uint64_t head;
};

struct sessions {
	struct sessions_params p;
	struct ct *ct;
	struct ctsync *cs;
	struct ctsync_actions *acts;
	int primary; /* node followed, TND_NO_NODE when idle */
	/* events */
	int epfd;              /* sessions_events_fd() */
	bool ev_open, ev_armed, ev_failed;
	mono_t ev_retry_at;    /* after a failed subscription */
	mono_t slow_logged;    /* last sessions.slow line (CLOCK_MONOTONIC) */
	/* kernel writes */
	struct injector inj;
	int n_held;
	struct held_ack held[HELD_ACKS_MAX];
	bool sweep_pending;    /* a sweep waits for the injector... */
	uint64_t sweep_need;   /* ...to have written this many records */
	/* table reads and what is fed from them */
	struct worker w;
	enum dump_kind want;   /* read to start once the running one is joined */
	enum dump_kind feeding; /* what the current read is for (DK_NONE: discarded) */
	struct chunk *feed;    /* chunks taken from the worker, in order */
	size_t pos;            /* in feed's first chunk */
	size_t pf_pos;         /* read-ahead for ctsync_prefetch, same chunk */
	bool read_done;        /* the worker has ended; read_rc is its result */
	int read_rc;
	uint64_t read_recs, swept, sweep_seen;
	/* barriers */
	int n_barriers;
	struct barrier barriers[TND_GROUPS_MAX];
	int n_done;
	struct {
		uint8_t group_id;
		bool ok;
	} done[TND_GROUPS_MAX];
};

static mono_t wall_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (mono_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void s_log(struct sessions *s, enum ev_level lvl, const char *name,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void s_log(struct sessions *s, enum ev_level lvl, const char *name,
		  const char *fmt, ...)
{
	char kv[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(kv, sizeof(kv), fmt, ap);
	va_end(ap);
	s->p.hooks.log(s->p.hooks.arg, lvl, name, kv);
}

static uint64_t inj_done(struct sessions *s, uint64_t *produced);

static void slow_check(struct sessions *s, const char *what, mono_t t0)
{
	mono_t t1 = wall_mono(), d = t1 - t0;
	if (d > MS_TO_MONO(SLOW_CALL_MS) && t1 - s->slow_logged >= MS_TO_MONO(1000)) {
		s->slow_logged = t1;
		uint64_t produced, done = inj_done(s, &produced);
		s_log(s, LVL_WARN, "sessions.slow", "call=%s ms=%lld feeding=%d ring=%llu",
		      what, (long long)MONO_TO_MS(d), (int)s->feeding,
		      (unsigned long long)(produced - done));
	}
}

static enum ev_level level_of(enum ctsync_level l)
{
	switch (l) {
	case CTS_LVL_DEBUG: return LVL_DEBUG;
	case CTS_LVL_INFO: return LVL_INFO;
	case CTS_LVL_WARN: return LVL_WARN;
	case CTS_LVL_ERROR: return LVL_ERROR;
	}
	return LVL_INFO;
}

static void chunks_free(struct chunk *c)
{
	while (c) {
		struct chunk *n = c->next;
		free(c);
		c = n;
	}
}

/* ---- threads ------------------------------------------------------------------ */

/* The reader and the injector do bulk work. They run SCHED_BATCH: the
 * same share of the CPU as normal threads, but a waking batch thread does
 * not preempt a running one, while the loop, waking for a heartbeat,
 * preempts them (on a busy machine the loop otherwise waits for its turn
 * behind the bulk threads; tens of milliseconds were seen). Set
 * explicitly, so that a daemon raising its loop to real-time scheduling
 * (as HA daemons do for heartbeats) does not make them real-time too. */
static int thread_start(pthread_t *th, void *(*fn)(void *), void *arg)
{
	pthread_attr_t at;
	struct sched_param sp = { .sched_priority = 0 };
	int e = pthread_attr_init(&at);
	if (e)
		return e;
	(void)pthread_attr_setinheritsched(&at, PTHREAD_EXPLICIT_SCHED);
	(void)pthread_attr_setschedpolicy(&at, SCHED_OTHER);
	(void)pthread_attr_setschedparam(&at, &sp);
	e = pthread_create(th, &at, fn, arg);
	pthread_attr_destroy(&at);
	return e;
}

/* First thing in each bulk thread (glibc's thread attributes do not take
 * SCHED_BATCH; the system call does, per thread). */
static void thread_batch(void)
{
	struct sched_param sp = { .sched_priority = 0 };
	(void)sched_setscheduler(0, SCHED_BATCH, &sp); /* a hint: ignore refusal */
}

/* ---- the worker thread ---------------------------------------------------- */

/* Hand the chunk being filled to the loop. false when the loop stopped the
 * read. Waits while CHUNKS_MAX are outstanding: the kernel's dump simply
 * waits in its socket meanwhile. */
static bool w_publish(struct worker *w)
{
	uint64_t one = 1;
	bool stop;
	pthread_mutex_lock(&w->mu);
	while (w->outstanding >= CHUNKS_MAX && !w->stop && !w->quit)
		pthread_cond_wait(&w->cv, &w->mu);
	stop = w->stop || w->quit;
	if (!stop && w->cur && w->cur->len) {
		w->cur->next = NULL;
		if (w->ready_tail)
			w->ready_tail->next = w->cur;
		else
			w->ready = w->cur;
		w->ready_tail = w->cur;
		w->outstanding++;
		w->cur = NULL;
	}
	pthread_mutex_unlock(&w->mu);
	if (!stop)
		(void)!write(w->efd, &one, sizeof(one));
	return !stop;
}

static int w_collect(const struct ctrec *r, void *arg)
{
	struct worker *w = arg;
	size_t need = DUMP_REC_HDR + r->key_len + r->val_len;
	if (w->cur && CHUNK_BYTES - w->cur->len < need && !w_publish(w))
		return 1; /* stopped */
	if (!w->cur) {
		w->cur = malloc(sizeof(*w->cur));
		if (!w->cur) {
			w->wrc = TND_ENOSPC;
			return 1;
		}
		w->cur->len = 0;
		w->cur->next = NULL;
	}
	uint8_t *p = w->cur->b + w->cur->len;
	p[0] = r->op;
	p[1] = r->key_len;
	p[2] = r->val_len;
	wire_put64(p + 3, r->stable_hash);
	memcpy(p + DUMP_REC_HDR, r->key, r->key_len);
	memcpy(p + DUMP_REC_HDR + r->key_len, r->val, r->val_len);
	w->cur->len += need;
	return 0;
}

/* Counts records between chunks (w_collect) without the mutex. */
static __thread uint64_t w_recs;

static int w_collect_counted(const struct ctrec *r, void *arg)
{
	int rc = w_collect(r, arg);
	if (!rc)
		w_recs++;
	return rc;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t one = 1;
	thread_batch();
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->req && !w->quit)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->quit)
			break;
		w->req = false;
		bool stopped = w->stop; /* abandoned before it began */
		pthread_mutex_unlock(&w->mu);
		w->wrc = 0;
		w_recs = 0;
		int rc = stopped ? 1 : ct_dump(w->ct, w_collect_counted, w);
		if (rc == 0 && !w_publish(w))
			rc = 1;
		free(w->cur);
		w->cur = NULL;
		pthread_mutex_lock(&w->mu);
		w->rc = w->wrc ? w->wrc : rc < 0 ? rc : rc > 0 ? TND_EREFUSED : 0;
		w->recs = w_recs;
		w->done = true;
		pthread_mutex_unlock(&w->mu);
		(void)!write(w->efd, &one, sizeof(one));
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* ---- reads, seen from the loop ---------------------------------------------- */

static void s_perform(struct sessions *s, mono_t now);

static void read_start(struct sessions *s, enum dump_kind kind, mono_t now)
{
	struct worker *w = &s->w;
	s->feeding = kind;
	s->feed = NULL;
	s->pos = s->pf_pos = 0;
	s->read_done = false;
	s->read_rc = 0;
	s->read_recs = s->swept = s->sweep_seen = 0;
	if (!w->started) { /* cannot happen: sessions_open starts it */
		s->feeding = DK_NONE;
		if (kind == DK_BULK) {
			ctsync_bulk_fail(s->cs, now, s->acts);
			s_perform(s, now);
		}
		return;
	}
	pthread_mutex_lock(&w->mu);
	w->ready = w->ready_tail = NULL;
	w->outstanding = 0;
	w->stop = w->done = false;
	w->rc = 0;
	w->recs = 0;
	w->req = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	w->running = true;
}

/* Stop feeding the current read and stop the worker at its next record;
 * the read counts as running until the worker says it has ended
 * (sessions_on_worker). */
static void read_abandon(struct sessions *s)
{
	chunks_free(s->feed);
	s->feed = NULL;
	s->pos = s->pf_pos = 0;
	s->feeding = DK_NONE;
	if (s->w.running) {
		pthread_mutex_lock(&s->w.mu);
		s->w.stop = true;
		chunks_free(s->w.ready);
		s->w.ready = s->w.ready_tail = NULL;
		s->w.outstanding = 0;
		pthread_cond_signal(&s->w.cv);
		pthread_mutex_unlock(&s->w.mu);
	}
}

/* Start reading the table for `kind`. A read already running is stale
 * (the newest request wins): it is stopped and this one starts when the
 * worker has ended it. */
static void read_table(struct sessions *s, enum dump_kind kind, mono_t now)
{
	if (s->w.running) {
		read_abandon(s);
		s->want = kind;
		return;
	}
	read_abandon(s);
	read_start(s, kind, now);
}

/* Records were written by w_collect from validated ctrecs; the bounds are
 * checked anyway so a bookkeeping slip cannot read past the chunk. */
static bool chunk_rec(const struct chunk *c, size_t pos, struct ctrec *r, size_t *size)
{
	if (c->len - pos < DUMP_REC_HDR)
		return false;
	const uint8_t *p = c->b + pos;
	if (p[1] > CTREC_KEY_MAX || p[2] > CTREC_VAL_MAX ||
	    c->len - pos - DUMP_REC_HDR < (size_t)p[1] + p[2])
		return false;
	r->op = p[0];
	r->key_len = p[1];
	r->val_len = p[2];
	r->stable_hash = wire_get64(p + 3);
	memcpy(r->key, p + DUMP_REC_HDR, r->key_len);
	memcpy(r->val, p + DUMP_REC_HDR + r->key_len, r->val_len);
	*size = DUMP_REC_HDR + r->key_len + r->val_len;
	return true;
}

/* The loop is done with the first chunk: free it and let the worker on. */
static void feed_pop(struct sessions *s)
{
	struct chunk *c = s->feed;
	s->feed = c->next;
	s->pos = s->pf_pos = 0;
	free(c);
	pthread_mutex_lock(&s->w.mu);
	if (s->w.outstanding > 0)
		s->w.outstanding--;
	pthread_cond_signal(&s->w.cv);
	pthread_mutex_unlock(&s->w.mu);
}

/* ---- the injector thread ------------------------------------------------------ */

static void *injector_main(void *arg)
{
	struct injector *j = arg;
	uint64_t one = 1;
	thread_batch();
	pthread_mutex_lock(&j->mu);
	for (;;) {
		while (j->done == j->produced && !j->stop) {
			j->waiting = true;
			pthread_cond_wait(&j->work, &j->mu);
			j->waiting = false;
		}
		if (j->done == j->produced && j->stop)
			break;
		uint64_t from = j->done, n = j->produced - j->done;
		if (n > CT_QUEUE_MAX)
			n = CT_QUEUE_MAX;
		pthread_mutex_unlock(&j->mu);
		/* Slots [from, from + n) are ours until done moves past them. */
		for (uint64_t k = 0; k < n; k++)
			(void)ct_queue(j->ct, &j->ring[(from + k) % INJ_RING_RECS]);
		(void)ct_flush(j->ct); /* failures are counted in its ct_stats */
		pthread_mutex_lock(&j->mu);
		j->done += n;
		ct_get_stats(j->ct, &j->st);
		pthread_cond_broadcast(&j->space);
		pthread_mutex_unlock(&j->mu);
		(void)!write(j->efd, &one, sizeof(one));
		pthread_mutex_lock(&j->mu);
	}
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

/* Hand one kernel write to the injector. Waits only if the ring is full,
 * which a send window's worth of records cannot make it. */
static void inj_push(struct sessions *s, const struct ctrec *r)
{
	struct injector *j = &s->inj;
	pthread_mutex_lock(&j->mu);
	if (j->produced - j->done >= INJ_RING_RECS) {
		s_log(s, LVL_WARN, "sessions.inject", "ring=full records=%d", INJ_RING_RECS);
		while (j->produced - j->done >= INJ_RING_RECS)
			pthread_cond_wait(&j->space, &j->mu);
	}
	j->ring[j->produced % INJ_RING_RECS] = *r;
	j->produced++;
	if (j->waiting)
		pthread_cond_signal(&j->work);
	pthread_mutex_unlock(&j->mu);
}

/* Records the ring takes without waiting. */
static uint64_t inj_room(struct sessions *s)
{
	uint64_t r;
	pthread_mutex_lock(&s->inj.mu);
	r = INJ_RING_RECS - (s->inj.produced - s->inj.done);
	pthread_mutex_unlock(&s->inj.mu);
	return r;
}

static uint64_t inj_done(struct sessions *s, uint64_t *produced)
{
	uint64_t d;
	pthread_mutex_lock(&s->inj.mu);
	d = s->inj.done;
	if (produced)
		*produced = s->inj.produced;
	pthread_mutex_unlock(&s->inj.mu);
	return d;
}

/* Wait until every kernel write handed over is done: before a role change
 * and at shutdown (bounded: the ring holds tens of milliseconds of work). */
static void inj_drain(struct sessions *s)
{
	struct injector *j = &s->inj;
	if (!j->running)
		return;
	pthread_mutex_lock(&j->mu);
	while (j->done != j->produced)
		pthread_cond_wait(&j->space, &j->mu);
	pthread_mutex_unlock(&j->mu);
}

/* Send the held acks whose records are all written, in order. */
static void acks_release(struct sessions *s)
{
	if (!s->n_held)
		return;
	uint64_t done = inj_done(s, NULL);
	int k = 0;
	while (k < s->n_held && s->held[k].need <= done) {
		const struct held_ack *h = &s->held[k];
		s->p.hooks.send(s->p.hooks.arg, h->to, h->link, h->pkt, h->len);
		k++;
	}
	if (k) {
		memmove(&s->held[0], &s->held[k], sizeof(s->held[0]) * (size_t)(s->n_held - k));
		s->n_held -= k;
	}
}

/* A packet the core wants sent: at once, or (an ack covering records not
 * yet in the kernel) once the injector has written them. A full queue
 * replaces its newest entry: acks are cumulative. */
static void send_or_hold(struct sessions *s, const struct ctsync_act *a)
{
	uint64_t produced, done = inj_done(s, &produced);
	if (done == produced && !s->n_held) {
		s->p.hooks.send(s->p.hooks.arg, a->u.send.to, a->u.send.link,
				a->u.send.pkt, a->u.send.len);
		return;
	}
	struct held_ack *h = &s->held[s->n_held < HELD_ACKS_MAX ? s->n_held++ : HELD_ACKS_MAX - 1];
	h->need = produced;
	h->to = a->u.send.to;
	h->link = a->u.send.link;
	h->len = a->u.send.len;
	memcpy(h->pkt, a->u.send.pkt, a->u.send.len);
}

/* ---- events ----------------------------------------------------------------- */

/* Want kernel events read now? Only as primary, and only while the log
 * has room for what one read brings. */
static void ev_arm(struct sessions *s)
{
	bool want = s->ev_open && s->primary == s->p.self &&
		    ctsync_log_room(s->cs) >= EV_ROOM_MSGS;
	if (want == s->ev_armed)
		return;
	struct epoll_event ev = { .events = want ? EPOLLIN : 0 };
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, ct_events_fd(s->ct), &ev) == 0)
		s->ev_armed = want;
}

/* Open or close the event socket for the role. Opened before the core
 * becomes primary, so no event after its bulk's dump can be missed. */
#define EV_RETRY_MS 1000

static int ev_follow(struct sessions *s, bool primary, mono_t now)
{
	if (primary && !s->ev_open) {
		struct epoll_event ev = { .events = 0 };
		if (ct_events_open(s->ct) < 0 ||
		    epoll_ctl(s->epfd, EPOLL_CTL_ADD, ct_events_fd(s->ct), &ev) < 0) {
			if (!s->ev_failed)
				s_log(s, LVL_ERROR, "sessions.events",
				      "error=\"cannot subscribe to conntrack events: %s\"",
				      strerror(errno));
			ct_events_close(s->ct);
			s->ev_failed = true;
			s->ev_retry_at = now + MS_TO_MONO(EV_RETRY_MS);
			return TND_ESYS;
		}
		if (s->ev_failed)
			s_log(s, LVL_INFO, "sessions.events", "state=subscribed");
		s->ev_failed = false;
		s->ev_open = true;
		s->ev_armed = false;
	} else if (!primary && s->ev_open) {
		(void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, ct_events_fd(s->ct), NULL);
		ct_events_close(s->ct);
		s->ev_open = s->ev_armed = false;
	}
	return 0;
}

/* ---- performing the core's actions -------------------------------------------- */

static void s_perform(struct sessions *s, mono_t now)
{
	struct ctsync_actions *out = s->acts;
	for (int i = 0; i < out->n; i++) {
		const struct ctsync_act *a = &out->a[i];
		switch (a->type) {
		case CTS_ACT_APPLY:
			inj_push(s, &a->u.apply);
			break;
		case CTS_ACT_SEND:
			send_or_hold(s, a);
			break;
		case CTS_ACT_DUMP_BEGIN:
			read_table(s, DK_BULK, now);
			break;
		case CTS_ACT_DUMP_RESUME:
			break; /* the feed goes on whenever the core has room */
		case CTS_ACT_SWEEP:
			/* Its table read must see every record handed over
			 * so far written. */
			s->sweep_pending = true;
			(void)inj_done(s, &s->sweep_need);
			break;
		case CTS_ACT_EVENT:
			s->p.hooks.log(s->p.hooks.arg, level_of(a->u.event.level),
				       a->u.event.name, a->u.event.kv);
			break;
		}
	}
	if (out->n_dropped)
		s_log(s, LVL_ERROR, "sessions.actions_dropped", "n=%d", out->n_dropped);
	ctsync_actions_reset(out);
}

/* The read ended and everything was fed: finish it. */
static void read_finish(struct sessions *s, mono_t now)
{
	enum dump_kind kind = s->feeding;
	s->feeding = DK_NONE;
	if (s->read_rc != 0) {
		s_log(s, LVL_WARN, "sessions.dump", "kind=%s error=%s entries=%llu",
		      kind == DK_BULK ? "bulk" : "sweep",
		      s->read_rc == TND_ENOSPC ? "out_of_memory" : "netlink",
		      (unsigned long long)s->read_recs);
		if (kind == DK_BULK)
			ctsync_bulk_fail(s->cs, now, s->acts);
		return;
	}
	if (kind == DK_BULK) {
		s_log(s, LVL_INFO, "sessions.dump", "kind=bulk entries=%llu",
		      (unsigned long long)s->read_recs);
		ctsync_bulk_end(s->cs, now, s->acts);
	} else {
		s_log(s, LVL_INFO, "sessions.sweep", "checked=%llu deleted=%llu",
		      (unsigned long long)s->sweep_seen, (unsigned long long)s->swept);
	}
}

/* Feed what was read to the core (bulk) or delete what is stale (sweep),
 * a bounded number of records per step. */
static void feed_step(struct sessions *s, mono_t now)
{
	int done = 0, limit = FEED_PER_STEP;
	struct ctrec r;
	size_t size;
	if (s->feeding == DK_SWEEP) {
		/* Deletions go through the injector: keep half its ring for
		 * the primary's records (the injector's progress wakes us). */
		uint64_t room = inj_room(s);
		room = room > INJ_RING_RECS / 2 ? room - INJ_RING_RECS / 2 : 0;
		if (room < (uint64_t)limit)
			limit = (int)room;
	}
	while (s->feeding != DK_NONE && s->feed && done < limit) {
		if (s->pos >= s->feed->len) {
			feed_pop(s);
			continue;
		}
		if (!chunk_rec(s->feed, s->pos, &r, &size)) {
			s_log(s, LVL_ERROR, "sessions.feed", "error=\"corrupt table chunk at %zu\"",
			      s->pos);
			s->pos = s->feed->len;
			continue;
		}
		if (s->feeding == DK_BULK) {
			/* Prefetch the core's map slots PREFETCH_RECS records
			 * ahead (within this chunk): the map is larger than the
			 * caches, and the core waits for each slot otherwise. */
			if (s->pf_pos < s->pos)
				s->pf_pos = s->pos;
			for (int k = 0; k < PREFETCH_RECS && s->pf_pos + DUMP_REC_HDR <= s->feed->len; k++) {
				const uint8_t *p = s->feed->b + s->pf_pos;
				size_t sz = DUMP_REC_HDR + (size_t)p[1] + p[2];
				if (s->pf_pos + sz > s->feed->len)
					break;
				if (s->pf_pos > s->pos + PREFETCH_RECS * 128)
					break; /* far enough ahead */
				ctsync_prefetch(s->cs, p + DUMP_REC_HDR, p[1]);
				s->pf_pos += sz;
			}
			int rc = ctsync_bulk_rec(s->cs, &r, now, s->acts);
			if (rc == TND_ENOSPC)
				break; /* not taken: wait for room */
			if (rc == TND_EREFUSED) { /* the core no longer wants it */
				read_abandon(s);
				break;
			}
			s->pos += size;
			done++;
			if (s->acts->n > CTS_ACTIONS_MAX / 2)
				s_perform(s, now);
			if (ctsync_bulk_room(s->cs) == 0)
				break;
			continue;
		}
		s->sweep_seen++;
		if (!ctsync_fresh(s->cs, r.key, r.key_len)) {
			r.op = CTREC_DELETE;
			r.val_len = 0;
			inj_push(s, &r);
			s->swept++;
		}
		s->pos += size;
		done++;
	}
	if (s->feeding != DK_NONE && !s->feed && s->read_done)
		read_finish(s, now);
	s_perform(s, now);
}

/* After any call into the core: perform, go on feeding, and read events
 * or not as the log's room says. */
static void s_settle(struct sessions *s, mono_t now)
{
	s_perform(s, now);
	if (s->feeding != DK_NONE)
		feed_step(s, now);
	acks_release(s);
	if (s->sweep_pending && inj_done(s, NULL) >= s->sweep_need) {
		s->sweep_pending = false;
		read_table(s, DK_SWEEP, now);
	}
	ev_arm(s);
}

int sessions_worker_fd(const struct sessions *s)
{
	return s->w.efd;
}

static void on_worker(struct sessions *s, mono_t now)
{
	uint64_t n;
	struct chunk *got;
	bool ended;
	int rc;

	if (read(s->w.efd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return;
	if (!s->w.running) { /* the injector's progress */
		s_settle(s, now);
		return;
	}
	uint64_t recs;
	pthread_mutex_lock(&s->w.mu);
	got = s->w.ready;
	s->w.ready = s->w.ready_tail = NULL;
	ended = s->w.done;
	rc = s->w.rc;
	recs = s->w.recs;
	pthread_mutex_unlock(&s->w.mu);
	if (s->feeding == DK_NONE) { /* abandoned: nothing of it is wanted */
		chunks_free(got);
	} else if (got) {
		struct chunk **tail = &s->feed;
		while (*tail)
			tail = &(*tail)->next;
		*tail = got;
	}
	if (!ended) {
		s_settle(s, now);
		return;
	}
	s->w.running = false;
	if (s->want != DK_NONE) { /* asked again meanwhile: start the new read */
		enum dump_kind next = s->want;
		s->want = DK_NONE;
		read_abandon(s);
		read_start(s, next, now);
		s_settle(s, now);
		return;
	}
	if (s->feeding != DK_NONE) {
		s->read_done = true;
		s->read_rc = rc;
		s->read_recs = recs;
		bool wanted = s->feeding == DK_BULK ? s->primary == s->p.self
			: s->primary != s->p.self && s->primary != TND_NO_NODE;
		if (!wanted)
			read_abandon(s);
		else if (rc != 0) { /* what was read of a failed read is no use */
			chunks_free(s->feed);
			s->feed = NULL;
		}
	}
	s_settle(s, now);
}

void sessions_on_worker(struct sessions *s, mono_t now)
{
	mono_t t0 = wall_mono();
	on_worker(s, now);
	slow_check(s, "on_worker", t0);
}

/* ---- life --------------------------------------------------------------------- */

struct sessions *sessions_open(const struct sessions_params *p, mono_t now,
			       char *err, size_t err_len)
{
	struct sessions *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	s->p = *p;
	s->primary = TND_NO_NODE;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->w.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&s->w.mu, NULL);
	pthread_cond_init(&s->w.cv, NULL);
	pthread_mutex_init(&s->inj.mu, NULL);
	pthread_cond_init(&s->inj.work, NULL);
	pthread_cond_init(&s->inj.space, NULL);
	s->acts = calloc(1, sizeof(*s->acts));
	s->ct = ct_open();
	s->w.ct = ct_open();
	s->inj.ct = ct_open();
	s->inj.ring = malloc(sizeof(*s->inj.ring) * INJ_RING_RECS);
	if (s->w.efd < 0 || s->epfd < 0) {
		snprintf(err, err_len, "eventfd/epoll: %m");
		goto fail;
	}
	if (!s->acts || !s->ct || !s->w.ct || !s->inj.ct || !s->inj.ring) {
		snprintf(err, err_len, "cannot open conntrack netlink: %m");
		goto fail;
	}
	/* Subscribed only while primary; check now that we may. */
	if (ct_events_open(s->ct) < 0) {
		snprintf(err, err_len, "cannot subscribe to conntrack events: %m");
		goto fail;
	}
	ct_events_close(s->ct);
	ct_set_timeout_floor(s->inj.ct, p->timeout_floor_s);
	s->inj.efd = s->w.efd;
	int e = thread_start(&s->inj.th, injector_main, &s->inj);
	if (e != 0) {
		snprintf(err, err_len, "cannot start the injector thread: %s", strerror(e));
		goto fail;
	}
	s->inj.running = true;
	e = thread_start(&s->w.th, worker_main, &s->w);
	if (e != 0) {
		snprintf(err, err_len, "cannot start the table reader thread: %s", strerror(e));
		goto fail;
	}
	s->w.started = true;
	struct ctsync_params cp;
	ctsync_params_default(&cp);
	cp.self = p->self;
	cp.n_nodes = p->n_nodes;
	cp.cluster_id = p->cluster_id;
	cp.proto = p->proto;
	cp.incarnation = p->incarnation;
	s->cs = ctsync_new(&cp, now);
	if (!s->cs) {
		snprintf(err, err_len, "cannot allocate the session-sync tables");
		goto fail;
	}
	return s;
fail:
	sessions_close(s);
	return NULL;
}

void sessions_close(struct sessions *s)
{
	if (!s)
		return;
	read_abandon(s); /* a running read stops at its next record */
	if (s->w.started) {
		pthread_mutex_lock(&s->w.mu);
		s->w.quit = true;
		pthread_cond_signal(&s->w.cv);
		pthread_mutex_unlock(&s->w.mu);
		pthread_join(s->w.th, NULL);
	}
	chunks_free(s->w.ready);
	if (s->inj.running) { /* what was handed over is written, then it ends */
		pthread_mutex_lock(&s->inj.mu);
		s->inj.stop = true;
		pthread_cond_signal(&s->inj.work);
		pthread_mutex_unlock(&s->inj.mu);
		pthread_join(s->inj.th, NULL);
	}
	if (s->inj.ct)
		ct_close(s->inj.ct);
	free(s->inj.ring);
	pthread_mutex_destroy(&s->inj.mu);
	pthread_cond_destroy(&s->inj.work);
	pthread_cond_destroy(&s->inj.space);
	if (s->ct)
		ct_close(s->ct);
	ctsync_free(s->cs);
	if (s->w.ct)
		ct_close(s->w.ct);
	if (s->w.efd >= 0)
		close(s->w.efd);
	if (s->epfd >= 0)
		close(s->epfd);
	pthread_mutex_destroy(&s->w.mu);
	pthread_cond_destroy(&s->w.cv);
	free(s->acts);
	free(s);
}

int sessions_events_fd(const struct sessions *s)
{
	return s->epfd;
}

struct ev_ctx {
	struct sessions *s;
	mono_t now;
};

static void on_ct_event(const struct ctrec *r, void *arg)
{
	struct ev_ctx *c = arg;
	if (c->s->primary != c->s->p.self)
		return; /* a secondary's table is written by the primary */
	ctsync_local(c->s->cs, r, c->now, c->s->acts);
	if (c->s->acts->n > CTS_ACTIONS_MAX / 2)
		s_perform(c->s, c->now);
}

static void on_events(struct sessions *s, mono_t now)
{
	struct ev_ctx c = { s, now };
	if (!s->ev_open || !s->ev_armed)
		return;
	int rc = ct_events_read(s->ct, on_ct_event, &c);
	if (rc == TND_ENOSPC && s->primary == s->p.self) {
		/* Events were lost: only a full resync restores the truth. The
		 * kernel reports the loss before the events still queued from
		 * before it; those are older than the table the resync will
		 * read, and handed over after its start they would overwrite
		 * newer state (ctsim shows it): a fresh socket drops them. */
		s_log(s, LVL_WARN, "sessions.overrun", "action=resync queued_events=dropped");
		(void)ev_follow(s, false, now);
		if (ev_follow(s, true, now) == 0)
			ctsync_overrun(s->cs, now, s->acts);
		/* else: sessions_tick resubscribes and then resyncs */
	}
	s_settle(s, now);
}

void sessions_on_events(struct sessions *s, mono_t now)
{
	mono_t t0 = wall_mono();
	on_events(s, now);
	slow_check(s, "on_events", t0);
}

static void set_primary(struct sessions *s, int node, mono_t now)
{
	if (node == s->primary)
		return;
	inj_drain(s); /* what was received from the old primary goes in first */
	s->primary = node;
	if (s->feeding != DK_NONE || s->w.running) /* read for a role we no longer have */
		read_abandon(s);
	s->want = DK_NONE;
	s->sweep_pending = false;
	acks_release(s); /* all written now: acks to the old primary, harmless */
	(void)ev_follow(s, node == s->p.self, now);
	ctsync_set_role(s->cs, node, now, s->acts);
	s_settle(s, now);
}

void sessions_set_primary(struct sessions *s, int node, mono_t now)
{
	mono_t t0 = wall_mono();
	set_primary(s, node, now);
	slow_check(s, "set_primary", t0);
}

void sessions_peer(struct sessions *s, int node, bool alive, mono_t now)
{
	ctsync_peer(s->cs, node, alive, now, s->acts);
	s_settle(s, now);
}

int sessions_recv(struct sessions *s, const struct wire_hdr *h,
		  const uint8_t *body, size_t len, mono_t now)
{
	mono_t t0 = wall_mono();
	int rc = ctsync_recv(s->cs, h, body, len, now, s->acts);
	s_settle(s, now);
	slow_check(s, "recv", t0);
	return rc;
}

static void tick(struct sessions *s, mono_t now)
{
	if (s->primary == s->p.self && !s->ev_open && now >= s->ev_retry_at &&
	    ev_follow(s, true, now) == 0) {
		/* Subscribed late: what happened meanwhile is unknown. */
		ctsync_overrun(s->cs, now, s->acts);
	}
	ctsync_tick(s->cs, now, s->acts);
	s_settle(s, now);
}

void sessions_tick(struct sessions *s, mono_t now)
{
	mono_t t0 = wall_mono();
	tick(s, now);
	slow_check(s, "tick", t0);
}

mono_t sessions_next_wake(const struct sessions *s)
{
	mono_t t = ctsync_next_wake(s->cs);
	if ((s->feeding == DK_BULK && s->feed && ctsync_bulk_room(s->cs) > 0) ||
	    (s->feeding == DK_SWEEP && s->feed &&
	     inj_room((struct sessions *)s) > INJ_RING_RECS / 2) ||
	    (s->feeding != DK_NONE && !s->feed && s->read_done))
		t = 0; /* more to do: as soon as possible */
	if (s->ev_failed && s->primary == s->p.self && s->ev_retry_at < t)
		t = s->ev_retry_at;
	return t;
}

bool sessions_in_sync(const struct sessions *s, mono_t now)
{
	return ctsync_in_sync(s->cs, now);
}

void sessions_barrier(struct sessions *s, uint8_t group_id, int target,
		      mono_t now)
{
	if (s->primary != s->p.self || target < 0 || target >= s->p.n_nodes ||
	    s->n_barriers >= TND_GROUPS_MAX) {
		/* Not the session source: there is nothing to wait for. */
		if (s->n_done < TND_GROUPS_MAX) {
			s->done[s->n_done].group_id = group_id;
			s->done[s->n_done].ok = true;
			s->n_done++;
		}
		return;
	}
	ctsync_tick(s->cs, now, s->acts); /* send what is staged */
	s_settle(s, now);
	struct ctsync_status *st = malloc(sizeof(*st));
	if (!st)
		return; /* the core's barrier timeout covers it */
	ctsync_status(s->cs, now, st);
	struct barrier *b = &s->barriers[s->n_barriers++];
	b->group_id = group_id;
	b->target = target;
	b->head = st->head;
	s_log(s, LVL_INFO, "sessions.barrier", "group=%u target=%d head=%llu",
	      group_id, target, (unsigned long long)b->head);
	free(st);
}

int sessions_barrier_poll(struct sessions *s, mono_t now, uint8_t *group_id,
			  bool *ok)
{
	if (s->n_barriers) {
		struct ctsync_status *st = malloc(sizeof(*st));
		if (st) {
			ctsync_status(s->cs, now, st);
			for (int i = 0; i < s->n_barriers && s->n_done < TND_GROUPS_MAX;) {
				struct barrier *b = &s->barriers[i];
				const struct ctsync_peer_status *ps = &st->peers[b->target];
				bool lost = !ps->alive || st->role != CTS_PRIMARY;
				if (lost || ps->acked >= b->head) {
					s->done[s->n_done].group_id = b->group_id;
					s->done[s->n_done].ok = !lost;
					s->n_done++;
					*b = s->barriers[--s->n_barriers];
				} else {
					i++;
				}
			}
			free(st);
		}
	}
	if (!s->n_done)
		return 0;
	*group_id = s->done[0].group_id;
	*ok = s->done[0].ok;
	memmove(&s->done[0], &s->done[1], (size_t)(--s->n_done) * sizeof(s->done[0]));
	return 1;
}

void sessions_status(const struct sessions *s, mono_t now,
		     struct ctsync_status *cs, struct ct_stats *ct)
{
	struct ct_stats inj;
	ctsync_status(s->cs, now, cs);
	ct_get_stats(s->ct, ct); /* events; the writes are the injector's */
	pthread_mutex_lock((pthread_mutex_t *)&s->inj.mu);
	inj = s->inj.st;
	pthread_mutex_unlock((pthread_mutex_t *)&s->inj.mu);
	ct->created = inj.created;
	ct->updated = inj.updated;
	ct->replaced = inj.replaced;
	ct->deleted = inj.deleted;
	ct->delete_absent = inj.delete_absent;
	ct->apply_errors = inj.apply_errors;
	ct->rec_invalid = inj.rec_invalid;
	ct->coalesced = inj.coalesced;
	ct->batches = inj.batches;
}
