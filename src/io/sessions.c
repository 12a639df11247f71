/* sessions.c - session-sync driver (see sessions.h).
 *
 * The core (ctsync.c) decides; this file performs: packets go out through
 * the daemon's send hook, records are injected with ct_apply, sweeps use
 * ct_sweep with ctsync_fresh as the keep test, and kernel events feed
 * ctsync_local while this node is the session primary (a secondary ignores
 * its own kernel's events: its table is written by the primary).
 *
 * Reading the kernel table (for a bulk on the primary, for the end-of-bulk
 * sweep on a secondary) takes about a second per 100k sessions: done in the
 * event loop it would stop the heartbeats for longer than the detection
 * time and the node would be declared dead. So a worker thread with its
 * own netlink handle reads the table into a compact buffer and signals an
 * eventfd; the loop then feeds the records to the core as its log has room
 * (ctsync_bulk_room, CTS_ACT_DUMP_RESUME), or deletes the stale ones of a
 * sweep, at most FEED_PER_STEP per step. The worker touches nothing but its
 * handle and its buffer; the core stays single-threaded.
 *
 * Sync barrier (SPEC section 1, planned failover): when the election core
 * releases a group to a target it asks for a barrier; staged records are
 * flushed, the log head is noted, and the barrier completes when the
 * target has acknowledged that head (or fails at once when the target is
 * gone). The core bounds the wait with its own timeout. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "sessions.h"

#define FEED_PER_STEP 8192 /* records handed to the core, or swept, per step */
#define DUMP_REC_HDR 11    /* op, key_len, val_len, stable_hash */

enum dump_kind { DK_NONE, DK_BULK, DK_SWEEP };

/* A table read: records as DUMP_REC_HDR + key + val, back to back. */
struct dumpbuf {
	uint8_t *b;
	size_t len, cap;
	uint64_t recs;
};

struct worker {
	pthread_t th;
	bool running;
	struct ct *ct; /* the worker's own netlink handle */
	int efd;       /* written when the read is done */
	enum dump_kind kind;
	struct dumpbuf buf;
	int rc;
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
	/* table reads and what is fed from them */
	struct worker w;
	enum dump_kind want;    /* a read asked for while one runs */
	enum dump_kind feeding; /* what `feed` holds */
	struct dumpbuf feed;
	size_t pos;
	uint64_t swept, sweep_seen;
	/* barriers */
	int n_barriers;
	struct barrier barriers[TND_GROUPS_MAX];
	int n_done;
	struct {
		uint8_t group_id;
		bool ok;
	} done[TND_GROUPS_MAX];
};

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

static void buf_free(struct dumpbuf *b)
{
	free(b->b);
	memset(b, 0, sizeof(*b));
}

/* Worker thread side: only the worker's handle and buffer are touched. */
static int buf_collect(const struct ctrec *r, void *arg)
{
	struct dumpbuf *d = arg;
	size_t need = DUMP_REC_HDR + r->key_len + r->val_len;
	if (d->cap - d->len < need) {
		size_t cap = d->cap ? d->cap * 2 : 1 << 20;
		uint8_t *b = realloc(d->b, cap);
		if (!b)
			return 1; /* stop: reported as a failed read */
		d->b = b;
		d->cap = cap;
	}
	uint8_t *p = d->b + d->len;
	p[0] = r->op;
	p[1] = r->key_len;
	p[2] = r->val_len;
	wire_put64(p + 3, r->stable_hash);
	memcpy(p + DUMP_REC_HDR, r->key, r->key_len);
	memcpy(p + DUMP_REC_HDR + r->key_len, r->val, r->val_len);
	d->len += need;
	d->recs++;
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t one = 1;
	w->rc = ct_dump(w->ct, buf_collect, &w->buf);
	if (write(w->efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		w->rc = TND_ESYS; /* cannot happen on an eventfd; be loud */
	return NULL;
}

/* Records were written by buf_collect from validated ctrecs; the bounds
 * are checked anyway so a bookkeeping slip cannot read past the buffer. */
static bool buf_rec(const struct dumpbuf *b, size_t pos, struct ctrec *r)
{
	if (b->len - pos < DUMP_REC_HDR)
		return false;
	const uint8_t *p = b->b + pos;
	if (p[1] > CTREC_KEY_MAX || p[2] > CTREC_VAL_MAX ||
	    b->len - pos - DUMP_REC_HDR < (size_t)p[1] + p[2])
		return false;
	r->op = p[0];
	r->key_len = p[1];
	r->val_len = p[2];
	r->stable_hash = wire_get64(p + 3);
	memcpy(r->key, p + DUMP_REC_HDR, r->key_len);
	memcpy(r->val, p + DUMP_REC_HDR + r->key_len, r->val_len);
	return true;
}

static void s_perform(struct sessions *s, mono_t now);

/* Start reading the table for `kind`, or note it for when the running
 * read ends (the newest request wins: an older read is stale). */
static void read_table(struct sessions *s, enum dump_kind kind, mono_t now)
{
	if (s->w.running) {
		s->want = kind;
		return;
	}
	buf_free(&s->w.buf);
	s->w.kind = kind;
	s->w.rc = 0;
	int e = pthread_create(&s->w.th, NULL, worker_main, &s->w);
	if (e != 0) {
		s_log(s, LVL_ERROR, "sessions.dump", "error=\"cannot start the reader: %s\"",
		      strerror(e));
		if (kind == DK_BULK) {
			ctsync_bulk_fail(s->cs, now, s->acts);
			s_perform(s, now);
		}
		return;
	}
	s->w.running = true;
}

/* Do what the core asked for. */
static void s_perform(struct sessions *s, mono_t now)
{
	struct ctsync_actions *out = s->acts;
	for (int i = 0; i < out->n; i++) {
		const struct ctsync_act *a = &out->a[i];
		switch (a->type) {
		case CTS_ACT_SEND:
			s->p.hooks.send(s->p.hooks.arg, a->u.send.to, a->u.send.link,
					a->u.send.pkt, a->u.send.len);
			break;
		case CTS_ACT_APPLY:
			(void)ct_apply(s->ct, &a->u.apply); /* counted in ct_stats */
			break;
		case CTS_ACT_DUMP_BEGIN:
			if (s->feeding == DK_BULK) { /* a new bulk supersedes it */
				buf_free(&s->feed);
				s->feeding = DK_NONE;
			}
			read_table(s, DK_BULK, now);
			break;
		case CTS_ACT_DUMP_RESUME:
			break; /* the feed goes on whenever the core has room */
		case CTS_ACT_SWEEP:
			read_table(s, DK_SWEEP, now);
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

/* Feed the read table to the core (bulk) or delete what is stale (sweep),
 * a bounded number of records per step. */
static void feed_step(struct sessions *s, mono_t now)
{
	int done = 0;
	struct ctrec r;
	while (s->feeding != DK_NONE && s->pos < s->feed.len && done < FEED_PER_STEP) {
		if (!buf_rec(&s->feed, s->pos, &r)) {
			s_log(s, LVL_ERROR, "sessions.feed", "error=\"corrupt table buffer at %zu\"", s->pos);
			s->pos = s->feed.len;
			break;
		}
		size_t size = DUMP_REC_HDR + r.key_len + r.val_len; /* before r changes */
		if (s->feeding == DK_BULK) {
			int rc = ctsync_bulk_rec(s->cs, &r, now, s->acts);
			if (rc == TND_ENOSPC)
				break; /* not taken: wait for room */
			if (rc == TND_EREFUSED) { /* the core no longer wants it */
				buf_free(&s->feed);
				s->feeding = DK_NONE;
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
			if (ct_apply(s->ct, &r) == 0)
				s->swept++;
		}
		s->pos += size;
		done++;
	}
	if (s->feeding != DK_NONE && s->pos >= s->feed.len) {
		if (s->feeding == DK_BULK) {
			ctsync_bulk_end(s->cs, now, s->acts);
		} else {
			s_log(s, LVL_INFO, "sessions.sweep", "checked=%llu deleted=%llu",
			      (unsigned long long)s->sweep_seen, (unsigned long long)s->swept);
		}
		buf_free(&s->feed);
		s->feeding = DK_NONE;
	}
	s_perform(s, now);
}

/* After any call into the core: perform, then go on feeding. */
static void s_settle(struct sessions *s, mono_t now)
{
	s_perform(s, now);
	if (s->feeding != DK_NONE)
		feed_step(s, now);
}

int sessions_worker_fd(const struct sessions *s)
{
	return s->w.efd;
}

void sessions_on_worker(struct sessions *s, mono_t now)
{
	uint64_t n;
	if (read(s->w.efd, &n, sizeof(n)) != (ssize_t)sizeof(n) || !s->w.running)
		return;
	pthread_join(s->w.th, NULL);
	s->w.running = false;
	struct dumpbuf got = s->w.buf;
	memset(&s->w.buf, 0, sizeof(s->w.buf));
	enum dump_kind kind = s->w.kind;
	int rc = s->w.rc;

	if (s->want != DK_NONE) { /* asked again meanwhile: this read is stale */
		enum dump_kind next = s->want;
		s->want = DK_NONE;
		buf_free(&got);
		read_table(s, next, now);
		return;
	}
	bool wanted = kind == DK_BULK ? s->primary == s->p.self
				      : s->primary != s->p.self && s->primary != TND_NO_NODE;
	if (rc != 0 || !wanted) {
		if (rc != 0)
			s_log(s, LVL_WARN, "sessions.dump", "kind=%s error=%s",
			      kind == DK_BULK ? "bulk" : "sweep",
			      rc > 0 ? "out_of_memory" : "netlink");
		buf_free(&got);
		if (kind == DK_BULK && wanted)
			ctsync_bulk_fail(s->cs, now, s->acts);
		s_perform(s, now);
		return;
	}
	s_log(s, LVL_INFO, "sessions.dump", "kind=%s entries=%llu bytes=%zu",
	      kind == DK_BULK ? "bulk" : "sweep", (unsigned long long)got.recs, got.len);
	buf_free(&s->feed);
	s->feed = got;
	s->pos = 0;
	s->feeding = kind;
	s->swept = s->sweep_seen = 0;
	feed_step(s, now);
}

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
	s->w.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->acts = calloc(1, sizeof(*s->acts));
	s->ct = ct_open();
	s->w.ct = ct_open();
	if (s->w.efd < 0) {
		snprintf(err, err_len, "eventfd: %m");
		goto fail;
	}
	if (!s->acts || !s->ct || !s->w.ct) {
		snprintf(err, err_len, "cannot open conntrack netlink: %m");
		goto fail;
	}
	if (ct_events_open(s->ct) < 0) {
		snprintf(err, err_len, "cannot subscribe to conntrack events: %m");
		goto fail;
	}
	ct_set_timeout_floor(s->ct, p->timeout_floor_s);
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
	if (s->w.running)
		pthread_join(s->w.th, NULL); /* a read ends by itself */
	buf_free(&s->w.buf);
	buf_free(&s->feed);
	ctsync_free(s->cs);
	if (s->ct)
		ct_close(s->ct);
	if (s->w.ct)
		ct_close(s->w.ct);
	if (s->w.efd >= 0)
		close(s->w.efd);
	free(s->acts);
	free(s);
}

int sessions_events_fd(const struct sessions *s)
{
	return ct_events_fd(s->ct);
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

void sessions_on_events(struct sessions *s, mono_t now)
{
	struct ev_ctx c = { s, now };
	int rc = ct_events_read(s->ct, on_ct_event, &c);
	if (rc == TND_ENOSPC && s->primary == s->p.self) {
		/* Events were lost: only a full resync restores the truth. */
		s_log(s, LVL_WARN, "sessions.overrun", "action=resync");
		ctsync_overrun(s->cs, now, s->acts);
	}
	s_settle(s, now);
}

void sessions_set_primary(struct sessions *s, int node, mono_t now)
{
	if (node == s->primary)
		return;
	s->primary = node;
	if (s->feeding != DK_NONE) { /* fed for a role we no longer have */
		buf_free(&s->feed);
		s->feeding = DK_NONE;
	}
	ctsync_set_role(s->cs, node, now, s->acts);
	s_settle(s, now);
}

void sessions_peer(struct sessions *s, int node, bool alive, mono_t now)
{
	ctsync_peer(s->cs, node, alive, now, s->acts);
	s_settle(s, now);
}

int sessions_recv(struct sessions *s, const struct wire_hdr *h,
		  const uint8_t *body, size_t len, mono_t now)
{
	int rc = ctsync_recv(s->cs, h, body, len, now, s->acts);
	s_settle(s, now);
	return rc;
}

void sessions_tick(struct sessions *s, mono_t now)
{
	ctsync_tick(s->cs, now, s->acts);
	s_settle(s, now);
}

mono_t sessions_next_wake(const struct sessions *s)
{
	mono_t t = ctsync_next_wake(s->cs);
	if ((s->feeding == DK_BULK && ctsync_bulk_room(s->cs) > 0) ||
	    s->feeding == DK_SWEEP)
		t = 0; /* more to feed: as soon as possible */
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
	ctsync_status(s->cs, now, cs);
	ct_get_stats(s->ct, ct);
}
