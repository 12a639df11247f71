/* sessions.c - session-sync driver (see sessions.h).
 *
 * The core (ctsync.c) decides; this file performs: packets go out through
 * the daemon's send hook, records are injected with ct_apply, sweeps use
 * ct_sweep with ctsync_fresh as the keep test, and kernel events feed
 * ctsync_local while this node is the session primary (a secondary ignores
 * its own kernel's events: its table is written by the primary).
 *
 * A bulk dump cannot be paused half-way through a netlink dump, so the
 * table is read into a compact transient buffer first and fed to the core
 * as its log has room (ctsync_bulk_room, CTS_ACT_DUMP_RESUME), at most
 * DUMP_FEED_PER_STEP records per step so the event loop stays responsive
 * with a million sessions. The buffer is freed when the bulk ends.
 *
 * Sync barrier (SPEC section 1, planned failover): when the election core
 * releases a group to a target it asks for a barrier; staged records are
 * flushed, the log head is noted, and the barrier completes when the
 * target has acknowledged that head (or fails at once when the target is
 * gone). The core bounds the wait with its own timeout. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sessions.h"

#define DUMP_FEED_PER_STEP 8192 /* records handed to the core per step */
#define DUMP_REC_HDR 11         /* op, key_len, val_len, stable_hash */

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
	/* bulk dump */
	bool dump_begin, dump_loaded;
	uint8_t *dump;
	size_t dump_len, dump_cap, dump_pos;
	uint64_t dump_recs;
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

static bool keep_fresh(const struct ctrec *r, void *arg)
{
	struct sessions *s = arg;
	return ctsync_fresh(s->cs, r->key, r->key_len);
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

/* Do what the core asked for; dumps are only noted here and run by
 * s_settle(), outside the loop over the action list. */
static void s_perform(struct sessions *s, mono_t now)
{
	struct ctsync_actions *out = s->acts;
	for (int i = 0; i < out->n; i++) {
		const struct ctsync_act *a = &out->a[i];
		uint64_t deleted = 0;
		switch (a->type) {
		case CTS_ACT_SEND:
			s->p.hooks.send(s->p.hooks.arg, a->u.send.to, a->u.send.link,
					a->u.send.pkt, a->u.send.len);
			break;
		case CTS_ACT_APPLY:
			(void)ct_apply(s->ct, &a->u.apply); /* counted in ct_stats */
			break;
		case CTS_ACT_DUMP_BEGIN:
			s->dump_begin = true;
			break;
		case CTS_ACT_DUMP_RESUME:
			break; /* s_settle feeds whenever the core has room */
		case CTS_ACT_SWEEP:
			if (ct_sweep(s->ct, keep_fresh, s, &deleted) < 0)
				s_log(s, LVL_WARN, "sessions.sweep", "gen=%u error=failed",
				      a->u.gen);
			else
				s_log(s, LVL_INFO, "sessions.sweep", "gen=%u deleted=%llu",
				      a->u.gen, (unsigned long long)deleted);
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
	(void)now;
}

static int dump_collect(const struct ctrec *r, void *arg)
{
	struct sessions *s = arg;
	size_t need = DUMP_REC_HDR + r->key_len + r->val_len;
	if (s->dump_cap - s->dump_len < need) {
		size_t cap = s->dump_cap ? s->dump_cap * 2 : 1 << 20;
		uint8_t *b = realloc(s->dump, cap);
		if (!b)
			return 1; /* stop: reported as a failed dump below */
		s->dump = b;
		s->dump_cap = cap;
	}
	uint8_t *p = s->dump + s->dump_len;
	p[0] = r->op;
	p[1] = r->key_len;
	p[2] = r->val_len;
	wire_put64(p + 3, r->stable_hash);
	memcpy(p + DUMP_REC_HDR, r->key, r->key_len);
	memcpy(p + DUMP_REC_HDR + r->key_len, r->val, r->val_len);
	s->dump_len += need;
	s->dump_recs++;
	return 0;
}

static void dump_free(struct sessions *s)
{
	free(s->dump);
	s->dump = NULL;
	s->dump_len = s->dump_cap = s->dump_pos = 0;
	s->dump_recs = 0;
	s->dump_loaded = false;
}

static void dump_load(struct sessions *s, mono_t now)
{
	dump_free(s);
	int rc = ct_dump(s->ct, dump_collect, s);
	if (rc != 0) {
		dump_free(s);
		s_log(s, LVL_WARN, "sessions.dump", "error=%s",
		      rc > 0 ? "out_of_memory" : "netlink");
		ctsync_bulk_fail(s->cs, now, s->acts);
		s_perform(s, now);
		return;
	}
	s->dump_loaded = true;
	s_log(s, LVL_INFO, "sessions.dump", "entries=%llu bytes=%zu",
	      (unsigned long long)s->dump_recs, s->dump_len);
}

/* Feed the loaded dump while the core has room. */
static void dump_feed(struct sessions *s, mono_t now)
{
	int fed = 0;
	while (s->dump_loaded && s->dump_pos < s->dump_len &&
	       fed < DUMP_FEED_PER_STEP && ctsync_bulk_room(s->cs) > 0) {
		const uint8_t *p = s->dump + s->dump_pos;
		struct ctrec r;
		r.op = p[0];
		r.key_len = p[1];
		r.val_len = p[2];
		r.stable_hash = wire_get64(p + 3);
		memcpy(r.key, p + DUMP_REC_HDR, r.key_len);
		memcpy(r.val, p + DUMP_REC_HDR + r.key_len, r.val_len);
		int rc = ctsync_bulk_rec(s->cs, &r, now, s->acts);
		if (rc == TND_ENOSPC)
			break; /* wait for room */
		s->dump_pos += DUMP_REC_HDR + r.key_len + r.val_len;
		fed++;
		if (rc == TND_EREFUSED) { /* the core no longer wants it */
			dump_free(s);
			break;
		}
		if (s->acts->n > CTS_ACTIONS_MAX / 2)
			s_perform(s, now);
	}
	if (s->dump_loaded && s->dump_pos >= s->dump_len) {
		dump_free(s);
		ctsync_bulk_end(s->cs, now, s->acts);
	}
	s_perform(s, now);
}

/* After any call into the core: perform, then run dumps it asked for. */
static void s_settle(struct sessions *s, mono_t now)
{
	s_perform(s, now);
	if (s->dump_begin) {
		s->dump_begin = false;
		dump_load(s, now);
	}
	if (s->dump_loaded)
		dump_feed(s, now);
	if (s->dump_begin) { /* a new bulk was asked while feeding */
		s->dump_begin = false;
		dump_load(s, now);
		if (s->dump_loaded)
			dump_feed(s, now);
	}
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
	s->acts = calloc(1, sizeof(*s->acts));
	s->ct = ct_open();
	if (!s->acts || !s->ct) {
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
	dump_free(s);
	ctsync_free(s->cs);
	if (s->ct)
		ct_close(s->ct);
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
	if (node != s->p.self && s->dump_loaded)
		dump_free(s); /* a bulk we no longer feed */
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
	if (s->dump_loaded && ctsync_bulk_room(s->cs) > 0)
		t = 0; /* more of the dump to feed: as soon as possible */
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
