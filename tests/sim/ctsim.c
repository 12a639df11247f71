/* ctsim.c - deterministic simulator for the session-sync core
 * (src/core/ctsync.c), STYLE tests layer 3.
 *
 * One primary and 1..3 secondaries, each with a simulated kernel
 * connection-tracking table (key id → value bytes and stable_hash) that
 * APPLY and SWEEP actions change, over a network with loss, duplication,
 * reordering (random delays) and partitions, with secondary crashes and
 * restarts (the kernel table kept or wiped), kernel event-buffer overruns
 * (events lost, then ctsync_overrun), dumps that are stale snapshots or
 * live walks (the dump/event race), dumps that fail, and failovers (the
 * workload moves to another node, which must bulk-sync the others from
 * its own kernel table). All from one seed.
 *
 * Checked after every step:
 *   S1  a secondary that claims ctsync_in_sync() holds, in its kernel
 *       table, exactly (count and digest) the primary's kernel table as it
 *       was when the message the secondary has applied through was the
 *       latest one (recorded whenever the primary's batch was flushed);
 *   S2  every applied record is well formed (key pattern, stable_hash
 *       matches the value) and no node applies records while primary;
 *   S3  no action list overflowed, no error event.
 * Then the workload and faults stop and the cluster must converge within
 * a bound: every secondary's table equal to the primary's entry by entry,
 * every node in sync by its own and by the primary's account.
 *
 * `ctsimulate --seeds N`, `--seed S -v` replays one run with a trace
 * (-vv, -vvv: every event and apply), `--seed S --corpus DIR` writes seeds
 * for tests/fuzz/fuzz_ctsync.c,
 * `--bench N` measures the core's throughput: N records bulk-synced and N
 * incremental updates from a primary to one secondary with no loss. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <getopt.h>
#include "core/ctsync.h"
#include "core/rng.h"

#define KEYS_MAX 4096
#define NODES 4
#define NET_MAX 65536
#define HIST 65536

struct kent {
	bool present;
	uint8_t vlen;
	uint64_t sh;
	uint8_t val[CTREC_VAL_MAX];
};

struct msg {
	mono_t at;
	int from, to;
	size_t len;
	uint8_t pkt[WIRE_MTU];
};

struct cnode {
	struct ctsync *cs;
	bool up;
	mono_t down_until;
	uint64_t inc;
	struct kent kt[KEYS_MAX];
	uint64_t kcount, ksum;
	/* dump (as primary) */
	bool dumping, paused;
	int dump_mode, cursor;
	struct kent snap[KEYS_MAX];
	/* pending role change */
	mono_t role_at;
	int role_to;
	bool alive_seen[NODES];
};

struct hist {
	uint64_t mseq;
	uint32_t stream;
	int node;
	uint64_t inc, count, sum;
};

struct sim {
	uint64_t rng;
	int verbose;
	int n, keys;
	int prim;          /* node the workload drives */
	struct cnode *nd;
	struct msg *q;
	int nq;
	mono_t now;
	double loss, dup, rate;
	bool cut[NODES];   /* primary <-> node i cut (either direction) */
	mono_t cut_until[NODES];
	bool workload, faults;
	int drop_events;   /* events to lose (overrun) */
	/* Backpressure (some seeds): kernel events wait in a bounded queue
	 * (the event socket's buffer) and are handed to the core only while
	 * ctsync_log_room() says the log has room, as src/io/sessions.c does;
	 * a full queue loses events, and the driver then discards what is
	 * queued (older than the bulk that follows) and calls ctsync_overrun. */
	bool bp;
	struct ctrec *evq;
	int evq_max, evq_head, evq_n;
	bool ev_lost;
	long ev_deferred_max;
	struct hist *hist;
	struct ctsync_actions *acts;
	struct ctsync_params params;
	const char *corpus; /* write fuzz_ctsync seeds here */
	int corpus_n;
	long failures, checks, delivered, dropped, applied, crashes, failovers,
	     overruns, sweeps, bulks;
	uint64_t val_ver;
};

static uint64_t rnd(struct sim *s) { return rng_next(&s->rng); }
static double rndf(struct sim *s) { return (double)(rnd(s) >> 11) / (double)(1ULL << 53); }
static int rndi(struct sim *s, int n) { return (int)(rnd(s) % (uint64_t)n); }

static void fail(struct sim *s, const char *what, int node)
{
	printf("ctsim: VIOLATION at t=%.3fs node=%d: %s\n", (double)s->now / 1e9,
	       node, what);
	s->failures++;
}

/* Key bytes of id: 4 bytes of id, then a pattern; length 5..48. */
static uint8_t key_make(int id, uint8_t *k)
{
	uint8_t len = (uint8_t)(5 + id % 44);
	wire_put32(k, (uint32_t)id);
	for (int i = 4; i < len; i++)
		k[i] = (uint8_t)(id * 31 + i);
	return len;
}

static int key_id(const uint8_t *k, uint8_t len)
{
	if (len < 5)
		return -1;
	uint32_t id = wire_get32(k);
	if (id >= KEYS_MAX)
		return -1;
	uint8_t want[CTREC_KEY_MAX];
	if (key_make((int)id, want) != len || memcmp(want, k, len))
		return -1;
	return (int)id;
}

static uint64_t stable_hash(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
	uint64_t h = 0x84222325cbf29ce4ULL;
	for (size_t i = 0; i < kl; i++)
		h = (h ^ k[i]) * 0x100000001b3ULL;
	for (size_t i = 0; i < vl; i++)
		h = (h ^ v[i]) * 0x100000001b3ULL;
	return h ^ (h >> 29);
}

static void kt_set(struct cnode *c, int id, const uint8_t *v, uint8_t vl, uint64_t sh)
{
	struct kent *e = &c->kt[id];
	if (e->present) {
		c->ksum -= e->sh;
	} else {
		c->kcount++;
		e->present = true;
	}
	e->vlen = vl;
	memcpy(e->val, v, vl);
	e->sh = sh;
	c->ksum += sh;
}

static void kt_del(struct cnode *c, int id)
{
	struct kent *e = &c->kt[id];
	if (!e->present)
		return;
	e->present = false;
	c->kcount--;
	c->ksum -= e->sh;
}

static void rec_of(const struct kent *e, int id, struct ctrec *r)
{
	memset(r, 0, sizeof(*r));
	r->key_len = key_make(id, r->key);
	if (e && e->present) {
		r->op = CTREC_UPSERT;
		r->val_len = e->vlen;
		memcpy(r->val, e->val, e->vlen);
		r->stable_hash = e->sh;
	} else {
		r->op = CTREC_DELETE;
		r->stable_hash = stable_hash(r->key, r->key_len, NULL, 0);
	}
}

/* --- network ------------------------------------------------------------------ */

/* A seed for tests/fuzz/fuzz_ctsync.c: one chunk (u16 length, mode,
 * body) whose mode sends a DATA to its secondary or an ACK to its primary. */
static void write_corpus(struct sim *s, int from, const struct ctsync_act *a)
{
	uint8_t type = a->u.send.pkt[7];
	bool data = type == CTS_MSG_DATA;
	if ((data && from != 0) || (!data && from != 1) || a->u.send.to > 1)
		return;
	char path[512];
	snprintf(path, sizeof(path), "%s/%s-%02d", s->corpus, data ? "data" : "ack",
		 s->corpus_n++);
	FILE *f = fopen(path, "wb");
	if (!f)
		return;
	size_t len = a->u.send.len - WIRE_HDR_LEN;
	fputc((int)(len >> 8), f);
	fputc((int)(len & 0xff), f);
	fputc(data ? 0x10 : 0x13, f);
	fwrite(a->u.send.pkt + WIRE_HDR_LEN, 1, len, f);
	fclose(f);
}

static void net_send(struct sim *s, int from, const struct ctsync_act *a)
{
	int to = a->u.send.to;
	if (s->corpus && s->corpus_n < 48 && rndf(s) < 0.05)
		write_corpus(s, from, a);
	int sec = from == s->prim ? to : from;
	if (to < 0 || to >= s->n || !s->nd[to].up || s->cut[sec] ||
	    rndf(s) < s->loss) {
		s->dropped++;
		return;
	}
	int copies = rndf(s) < s->dup ? 2 : 1;
	for (int c = 0; c < copies && s->nq < NET_MAX; c++) {
		struct msg *m = &s->q[s->nq++];
		mono_t d = 50000 + (mono_t)rndi(s, 1500000);
		if (rndf(s) < 0.02)
			d += (mono_t)rndi(s, 20000000);
		m->at = s->now + d;
		m->from = from;
		m->to = to;
		m->len = a->u.send.len;
		memcpy(m->pkt, a->u.send.pkt, m->len);
	}
}

static void record_hist(struct sim *s)
{
	struct cnode *p = &s->nd[s->prim];
	if (!p->up)
		return;
	struct ctsync_status st;
	ctsync_status(p->cs, s->now, &st);
	if (st.role != CTS_PRIMARY || !st.head)
		return;
	struct hist *h = &s->hist[st.head % HIST];
	h->mseq = st.head;
	h->stream = st.stream;
	h->node = s->prim;
	h->inc = st.incarnation;
	h->count = p->kcount;
	h->sum = p->ksum;
}

static void run_actions(struct sim *s, int i);

static void dump_step(struct sim *s, int i, int budget)
{
	struct cnode *c = &s->nd[i];
	while (c->dumping && !c->paused && budget-- > 0) {
		while (c->cursor < s->keys &&
		       !(c->dump_mode ? c->kt : c->snap)[c->cursor].present)
			c->cursor++;
		int rc;
		if (c->cursor >= s->keys) {
			if (s->faults && rndf(s) < 0.03) {
				rc = ctsync_bulk_fail(c->cs, s->now, s->acts);
				if (s->verbose)
					printf("%10.4f n%d dump fails\n", (double)s->now / 1e9, i);
			} else {
				rc = ctsync_bulk_end(c->cs, s->now, s->acts);
			}
			c->dumping = false;
			run_actions(s, i);
			if (rc < 0 && rc != TND_EREFUSED)
				fail(s, "bulk_end refused", i);
			return;
		}
		struct ctrec r;
		rec_of(&(c->dump_mode ? c->kt : c->snap)[c->cursor], c->cursor, &r);
		rc = ctsync_bulk_rec(c->cs, &r, s->now, s->acts);
		if (rc == TND_ENOSPC) {
			c->paused = true;
		} else if (rc == TND_EREFUSED) {
			c->dumping = false; /* no longer primary */
		} else if (rc < 0) {
			fail(s, "bulk_rec rejected a valid record", i);
			c->dumping = false;
		} else {
			c->cursor++;
		}
		run_actions(s, i);
	}
}

static void run_actions(struct sim *s, int i)
{
	struct ctsync_actions *out = s->acts;
	struct cnode *c = &s->nd[i];
	if (out->n_dropped)
		fail(s, "action list overflowed", i);
	/* copy: handlers below may call the core again */
	int n = out->n;
	static struct ctsync_act acts[CTS_ACTIONS_MAX];
	memcpy(acts, out->a, sizeof(acts[0]) * (size_t)n);
	ctsync_actions_reset(out);
	for (int k = 0; k < n; k++) {
		const struct ctsync_act *a = &acts[k];
		switch (a->type) {
		case CTS_ACT_SEND:
			net_send(s, i, a);
			break;
		case CTS_ACT_APPLY: {
			const struct ctrec *r = &a->u.apply;
			int id = key_id(r->key, r->key_len);
			if (id < 0 || id >= s->keys) {
				fail(s, "applied a malformed key", i);
				break;
			}
			if (r->op == CTREC_UPSERT) {
				if (stable_hash(r->key, r->key_len, r->val, r->val_len) != r->stable_hash)
					fail(s, "applied a record whose stable_hash does not match", i);
				kt_set(c, id, r->val, r->val_len, r->stable_hash);
			} else {
				kt_del(c, id);
			}
			s->applied++;
			if (s->verbose > 2)
				printf("%10.4f n%d apply key %d %s\n", (double)s->now / 1e9, i, id,
				       r->op == CTREC_UPSERT ? "upsert" : "delete");
			break;
		}
		case CTS_ACT_DUMP_BEGIN:
			c->dumping = true;
			c->paused = false;
			c->cursor = 0;
			c->dump_mode = rndi(s, 2);
			if (!c->dump_mode)
				memcpy(c->snap, c->kt, sizeof(c->kt[0]) * (size_t)s->keys);
			s->bulks++;
			break;
		case CTS_ACT_DUMP_RESUME:
			c->paused = false;
			break;
		case CTS_ACT_SWEEP:
			s->sweeps++;
			for (int id = 0; id < s->keys; id++) {
				if (!c->kt[id].present)
					continue;
				uint8_t kb[CTREC_KEY_MAX];
				uint8_t kl = key_make(id, kb);
				if (!ctsync_fresh(c->cs, kb, kl)) {
					if (s->verbose > 2)
						printf("%10.4f n%d sweep key %d\n", (double)s->now / 1e9, i, id);
					kt_del(c, id);
				}
			}
			break;
		case CTS_ACT_EVENT:
			if (s->verbose || a->u.event.level == CTS_LVL_ERROR)
				printf("%10.4f n%d %s %s\n", (double)s->now / 1e9, i,
				       a->u.event.name, a->u.event.kv);
			if (a->u.event.level == CTS_LVL_ERROR)
				fail(s, "error event", i);
			break;
		}
	}
}

/* --- nodes ------------------------------------------------------------------- */

static void node_boot(struct sim *s, int i)
{
	struct cnode *c = &s->nd[i];
	struct ctsync_params p = s->params;
	p.self = i;
	p.incarnation = ++c->inc;
	c->cs = ctsync_new(&p, s->now);
	if (!c->cs) {
		fail(s, "ctsync_new failed", i);
		exit(2);
	}
	c->up = true;
	c->dumping = false;
	c->role_at = NET_MAX; /* none */
	c->role_at = -1;
	memset(c->alive_seen, 0, sizeof(c->alive_seen));
	/* The failure detector reports the others alive. */
	for (int x = 0; x < s->n; x++)
		if (x != i && s->nd[x].up) {
			ctsync_peer(c->cs, x, true, s->now, s->acts);
			run_actions(s, i);
			if (s->nd[x].cs) {
				ctsync_peer(s->nd[x].cs, i, true, s->now, s->acts);
				run_actions(s, x);
			}
		}
	ctsync_set_role(c->cs, s->prim, s->now, s->acts);
	run_actions(s, i);
}

static void node_crash(struct sim *s, int i, mono_t for_ns, bool wipe)
{
	struct cnode *c = &s->nd[i];
	if (s->verbose)
		printf("%10.4f n%d CRASH for %lld ms%s\n", (double)s->now / 1e9, i,
		       (long long)MONO_TO_MS(for_ns), wipe ? " (kernel table wiped)" : "");
	ctsync_free(c->cs);
	c->cs = NULL;
	c->up = false;
	c->down_until = s->now + for_ns;
	if (wipe) {
		memset(c->kt, 0, sizeof(c->kt[0]) * (size_t)s->keys);
		c->kcount = c->ksum = 0;
	}
	for (int x = 0; x < s->n; x++)
		if (x != i && s->nd[x].up) {
			ctsync_peer(s->nd[x].cs, i, false, s->now, s->acts);
			run_actions(s, x);
		}
	s->crashes++;
}

static void failover(struct sim *s)
{
	int to;
	do
		to = rndi(s, s->n);
	while (to == s->prim || !s->nd[to].up);
	if (s->verbose)
		printf("%10.4f FAILOVER n%d -> n%d\n", (double)s->now / 1e9, s->prim, to);
	s->prim = to;
	s->failovers++;
	s->evq_n = 0; /* the old primary's unread events: its kernel is not the source now */
	s->ev_lost = false;
	for (int i = 0; i < s->n; i++) {
		if (!s->nd[i].up)
			continue;
		s->nd[i].role_to = to;
		s->nd[i].role_at = i == to ? s->now : s->now + (mono_t)rndi(s, 20000000);
	}
	for (int i = 0; i < s->n; i++)
		s->cut[i] = false;
}

static void workload_event(struct sim *s)
{
	struct cnode *p = &s->nd[s->prim];
	int id = rndi(s, s->keys);
	struct kent *e = &p->kt[id];
	if (e->present && rndf(s) < 0.4) {
		kt_del(p, id);
	} else {
		uint8_t k[CTREC_KEY_MAX], v[CTREC_VAL_MAX];
		uint8_t kl = key_make(id, k);
		uint8_t vl = (uint8_t)rndi(s, CTREC_VAL_MAX + 1);
		s->val_ver++;
		for (int j = 0; j < vl; j++)
			v[j] = (uint8_t)(s->val_ver >> (8 * (j % 8))) ^ (uint8_t)j;
		kt_set(p, id, v, vl, stable_hash(k, kl, v, vl));
	}
	if (!p->cs)
		return; /* before boot: the kernel table only */
	if (s->drop_events > 0) {
		s->drop_events--;
		if (!s->drop_events) {
			if (s->verbose)
				printf("%10.4f n%d kernel event buffer overrun\n",
				       (double)s->now / 1e9, s->prim);
			s->overruns++;
			ctsync_overrun(p->cs, s->now, s->acts);
			run_actions(s, s->prim);
		}
		return;
	}
	struct ctrec r;
	rec_of(e, id, &r);
	if (s->verbose > 1)
		printf("%10.4f n%d event key %d %s %016llx\n", (double)s->now / 1e9, s->prim,
		       id, e->present ? "upsert" : "delete", (unsigned long long)r.stable_hash);
	if (s->bp) {
		if (s->evq_n >= s->evq_max) {
			s->ev_lost = true; /* the socket buffer overran */
			return;
		}
		s->evq[(s->evq_head + s->evq_n) % s->evq_max] = r;
		s->evq_n++;
		if (s->evq_n > s->ev_deferred_max)
			s->ev_deferred_max = s->evq_n;
		return;
	}
	int rc = ctsync_local(p->cs, &r, s->now, s->acts);
	if (rc < 0 && rc != TND_EREFUSED)
		fail(s, "ctsync_local rejected a valid record", s->prim);
	run_actions(s, s->prim);
}

/* The driver's event reading under backpressure (see struct sim). */
static void ev_drain(struct sim *s)
{
	struct cnode *p = &s->nd[s->prim];
	if (!s->bp || !p->up || !p->cs)
		return;
	if (s->ev_lost) {
		if (s->verbose)
			printf("%10.4f n%d event queue overran: %d queued discarded, resync\n",
			       (double)s->now / 1e9, s->prim, s->evq_n);
		s->evq_n = 0;
		s->ev_lost = false;
		s->overruns++;
		ctsync_overrun(p->cs, s->now, s->acts);
		run_actions(s, s->prim);
	}
	uint32_t low = s->params.log_msgs_max / 16 < 2 ? 2 : s->params.log_msgs_max / 16;
	while (s->evq_n && ctsync_log_room(p->cs) >= low) {
		struct ctrec r = s->evq[s->evq_head];
		s->evq_head = (s->evq_head + 1) % s->evq_max;
		s->evq_n--;
		int rc = ctsync_local(p->cs, &r, s->now, s->acts);
		if (rc < 0 && rc != TND_EREFUSED)
			fail(s, "ctsync_local rejected a valid record", s->prim);
		run_actions(s, s->prim);
	}
}

static void check(struct sim *s)
{
	for (int i = 0; i < s->n; i++) {
		struct cnode *c = &s->nd[i];
		if (!c->up || !ctsync_in_sync(c->cs, s->now))
			continue;
		struct ctsync_status st;
		ctsync_status(c->cs, s->now, &st);
		if (st.role != CTS_SECONDARY)
			continue;
		struct hist *h = &s->hist[st.applied_mseq % HIST];
		if (h->mseq != st.applied_mseq || h->node != st.primary ||
		    h->stream != st.stream || h->inc != st.stream_incarnation)
			continue;
		s->checks++;
		if (h->count != c->kcount || h->sum != c->ksum) {
			char why[200];
			snprintf(why, sizeof(why),
				 "S1: claims in sync at mseq %llu with %llu sessions, primary had %llu (digest %s)",
				 (unsigned long long)st.applied_mseq,
				 (unsigned long long)c->kcount,
				 (unsigned long long)h->count,
				 h->sum == c->ksum ? "equal" : "differs");
			fail(s, why, i);
			if (s->verbose)
				for (int id = 0; id < s->keys; id++) {
					const struct kent *a = &s->nd[s->prim].kt[id], *b = &c->kt[id];
					if (a->present != b->present || (a->present && a->sh != b->sh))
						printf("  key %d: primary now %s %016llx, n%d %s %016llx\n", id,
						       a->present ? "has" : "lacks", (unsigned long long)a->sh, i,
						       b->present ? "has" : "lacks", (unsigned long long)b->sh);
				}
		}
	}
}

static void step(struct sim *s)
{
	/* deliver due messages */
	for (int k = 0; k < s->nq;) {
		struct msg *m = &s->q[k];
		if (m->at > s->now) {
			k++;
			continue;
		}
		struct msg mm = *m;
		s->q[k] = s->q[--s->nq];
		if (!s->nd[mm.to].up)
			continue;
		struct wire_hdr h;
		if (wire_hdr_decode(mm.pkt, mm.len, &h) < 0) {
			fail(s, "undecodable header", mm.from);
			continue;
		}
		s->delivered++;
		ctsync_recv(s->nd[mm.to].cs, &h, mm.pkt + WIRE_HDR_LEN, h.body_len,
			    s->now, s->acts);
		run_actions(s, mm.to);
	}
	/* role changes */
	for (int i = 0; i < s->n; i++) {
		struct cnode *c = &s->nd[i];
		if (c->up && c->role_at >= 0 && c->role_at <= s->now) {
			c->role_at = -1;
			ctsync_set_role(c->cs, c->role_to, s->now, s->acts);
			run_actions(s, i);
		}
	}
	/* workload */
	if (s->workload && s->nd[s->prim].up) {
		int k = (int)(s->rate * rndf(s) * 2);
		for (int j = 0; j < k; j++)
			workload_event(s);
	}
	ev_drain(s);
	/* dumps */
	for (int i = 0; i < s->n; i++)
		if (s->nd[i].up && s->nd[i].dumping)
			dump_step(s, i, 1 + rndi(s, 60));
	/* timers */
	for (int i = 0; i < s->n; i++) {
		struct cnode *c = &s->nd[i];
		if (!c->up)
			continue;
		if (ctsync_next_wake(c->cs) <= s->now) {
			ctsync_tick(c->cs, s->now, s->acts);
			run_actions(s, i);
		}
	}
	/* The primary's batch is flushed at its tick with batch_ms 0: if the
	 * tick ran, its table as of the latest message is its kernel table. */
	if (s->nd[s->prim].up && ctsync_next_wake(s->nd[s->prim].cs) > s->now &&
	    !s->evq_n && !s->ev_lost) /* and the core has seen every event */
		record_hist(s);
	check(s);
}

static void faults(struct sim *s)
{
	if (!s->faults)
		return;
	for (int i = 0; i < s->n; i++) {
		struct cnode *c = &s->nd[i];
		if (!c->up && s->now >= c->down_until) {
			if (s->verbose)
				printf("%10.4f n%d RESTART\n", (double)s->now / 1e9, i);
			node_boot(s, i);
		}
		if (s->cut[i] && s->now >= s->cut_until[i])
			s->cut[i] = false;
	}
	double r = rndf(s);
	if (r < 0.0004) {
		int i = rndi(s, s->n);
		if (i != s->prim && s->nd[i].up)
			node_crash(s, i, MS_TO_MONO(50 + rndi(s, 2000)), rndi(s, 2));
	} else if (r < 0.0008) {
		int i = rndi(s, s->n);
		if (i != s->prim) {
			s->cut[i] = true;
			s->cut_until[i] = s->now + MS_TO_MONO(20 + rndi(s, 3000));
			if (s->verbose)
				printf("%10.4f cut n%d for %lld ms\n", (double)s->now / 1e9, i,
				       (long long)MONO_TO_MS(s->cut_until[i] - s->now));
		}
	} else if (r < 0.00095 && !s->drop_events && !s->bp) {
		/* lose the next few kernel events: flush first so the loss
		 * falls between two messages, as the kernel reports it */
		ctsync_tick(s->nd[s->prim].cs, s->now, s->acts);
		run_actions(s, s->prim);
		record_hist(s);
		/* the kernel reports the loss right after it (before the
		 * next check): the window between is not the core's to see */
		s->drop_events = 1 + rndi(s, 20);
		while (s->drop_events)
			workload_event(s);
	} else if (r < 0.00105) {
		int up = 0;
		for (int i = 0; i < s->n; i++)
			up += s->nd[i].up;
		if (up >= 2)
			failover(s);
	}
}

static bool converged(struct sim *s, bool report)
{
	struct cnode *p = &s->nd[s->prim];
	bool ok = true;
	for (int i = 0; i < s->n; i++) {
		struct cnode *c = &s->nd[i];
		if (i == s->prim)
			continue;
		if (!ctsync_in_sync(c->cs, s->now)) {
			if (report)
				printf("ctsim: n%d does not claim in sync\n", i);
			ok = false;
		}
		struct ctsync_status st;
		ctsync_status(p->cs, s->now, &st);
		if (!st.peers[i].in_sync) {
			if (report)
				printf("ctsim: primary n%d does not count n%d in sync (state %s backlog %llu)\n",
				       s->prim, i, ctsync_pstate_name(st.peers[i].state),
				       (unsigned long long)st.peers[i].backlog_msgs);
			ok = false;
		}
		int diff = 0;
		for (int id = 0; id < s->keys; id++) {
			const struct kent *a = &p->kt[id], *b = &c->kt[id];
			if (a->present != b->present ||
			    (a->present && (a->vlen != b->vlen || a->sh != b->sh ||
					    memcmp(a->val, b->val, a->vlen))))
				diff++;
		}
		if (diff) {
			if (report)
				printf("ctsim: n%d differs from primary n%d in %d sessions (%llu vs %llu)\n",
				       i, s->prim, diff, (unsigned long long)c->kcount,
				       (unsigned long long)p->kcount);
			ok = false;
		}
	}
	return ok;
}

static const char *corpus_dir;

static int run_seed(uint64_t seed, int verbose)
{
	struct sim *s = calloc(1, sizeof(*s));
	s->nd = calloc(NODES, sizeof(*s->nd));
	s->q = malloc(sizeof(*s->q) * NET_MAX);
	s->hist = calloc(HIST, sizeof(*s->hist));
	s->acts = calloc(1, sizeof(*s->acts));
	s->rng = seed * 0x9E3779B97F4A7C15ULL + 1;
	s->verbose = verbose;
	s->corpus = corpus_dir;
	s->n = 2 + rndi(s, 3);
	s->keys = 200 + rndi(s, 3000);
	s->loss = rndi(s, 3) ? rndf(s) * 0.15 : 0;
	s->dup = rndf(s) * 0.05;
	s->rate = 0.2 + rndf(s) * 8; /* events per ms */
	ctsync_params_default(&s->params);
	s->params.n_nodes = s->n;
	s->params.cluster_id = 3;
	s->params.sessions_max = KEYS_MAX;
	s->params.log_msgs_max = 64 + (uint32_t)rndi(s, 1024);
	s->params.window_msgs_max = 4 + (uint32_t)rndi(s, (int)s->params.log_msgs_max / 2 - 4);
	s->params.resend_ms = 10 + (uint32_t)rndi(s, 40);
	s->params.digest_interval_ms = 20 + (uint32_t)rndi(s, 300);
	s->params.keepalive_ms = 100 + (uint32_t)rndi(s, 300);
	s->params.retries_max = 5 + (uint32_t)rndi(s, 10);
	s->bp = rndi(s, 2);
	s->evq_max = rndi(s, 2) ? 8 + rndi(s, 64) : 16 + rndi(s, 2000);
	s->evq = calloc((size_t)s->evq_max, sizeof(*s->evq));
	s->prim = 0;
	s->workload = s->faults = true;
	/* the primary starts with some sessions already in its kernel */
	for (int k = 0; k < s->keys / 2; k++)
		workload_event(s);
	for (int i = 0; i < s->n; i++)
		node_boot(s, i);
	if (verbose)
		printf("seed %llu: nodes=%d keys=%d loss=%.3f dup=%.3f rate=%.1f/ms log=%u window=%u resend=%ums backpressure=%d queue=%d\n",
		       (unsigned long long)seed, s->n, s->keys, s->loss, s->dup, s->rate,
		       s->params.log_msgs_max, s->params.window_msgs_max, s->params.resend_ms,
		       s->bp, s->bp ? s->evq_max : 0);
	mono_t run_for = MS_TO_MONO(3000 + rndi(s, 5000));
	for (; s->now < run_for; s->now += MS_TO_MONO(1)) {
		faults(s);
		step(s);
		if (s->failures > 20)
			break;
	}
	/* heal */
	s->workload = s->faults = false;
	s->loss = s->dup = 0;
	for (int i = 0; i < s->n; i++)
		s->cut[i] = false;
	if (s->drop_events) {
		s->drop_events = 0;
		ctsync_overrun(s->nd[s->prim].cs, s->now, s->acts);
		run_actions(s, s->prim);
	}
	ev_drain(s); /* what is queued keeps flowing as the log drains (step) */
	for (int i = 0; i < s->n; i++)
		if (!s->nd[i].up)
			node_boot(s, i);
	mono_t heal_end = s->now + MS_TO_MONO(30000);
	mono_t ok_since = -1;
	for (; s->now < heal_end; s->now += MS_TO_MONO(1)) {
		step(s);
		if (converged(s, false)) {
			if (ok_since < 0)
				ok_since = s->now;
			if (s->now - ok_since > MS_TO_MONO(200))
				break;
		} else {
			ok_since = -1;
		}
	}
	if (!converged(s, true))
		fail(s, "did not converge after healing", -1);
	if (verbose || s->failures) {
		struct ctsync_status st;
		ctsync_status(s->nd[s->prim].cs, s->now, &st);
		printf("seed %llu: %s primary=n%d sessions=%llu delivered=%ld dropped=%ld applied=%ld "
		       "bulks=%ld sweeps=%ld crashes=%ld failovers=%ld overruns=%ld checks=%ld "
		       "resent=%llu coalesced=%llu bulk_skipped=%llu events_deferred_max=%ld healed_in=%lldms\n",
		       (unsigned long long)seed, s->failures ? "FAIL" : "ok", s->prim,
		       (unsigned long long)s->nd[s->prim].kcount, s->delivered, s->dropped,
		       s->applied, s->bulks, s->sweeps, s->crashes, s->failovers,
		       s->overruns, s->checks, (unsigned long long)st.ctr.resent,
		       (unsigned long long)st.ctr.coalesced,
		       (unsigned long long)st.ctr.bulk_skipped, s->ev_deferred_max,
		       (long long)MONO_TO_MS(s->now - run_for));
	}
	long f = s->failures;
	static long tot_checks, tot_fo, tot_ov, tot_cr;
	tot_checks += s->checks;
	tot_fo += s->failovers;
	tot_ov += s->overruns;
	tot_cr += s->crashes;
	if (seed == (uint64_t)-1)
		printf("%ld %ld %ld %ld\n", tot_checks, tot_fo, tot_ov, tot_cr);
	for (int i = 0; i < s->n; i++)
		ctsync_free(s->nd[i].cs);
	free(s->nd);
	free(s->q);
	free(s->hist);
	free(s->acts);
	free(s->evq);
	free(s);
	return f ? 1 : 0;
}

/* --- benchmark ------------------------------------------------------------------- */

static double wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct bench {
	struct ctsync *p, *q;
	struct ctsync_actions *ap, *aq;
	mono_t now;
	uint64_t applied, bytes, msgs;
	bool dumping, paused;
};

static void bench_flush(struct bench *b);

static void bench_deliver(struct bench *b, struct ctsync *to,
			  struct ctsync_actions *out, const struct ctsync_act *a)
{
	struct wire_hdr h;
	wire_hdr_decode(a->u.send.pkt, a->u.send.len, &h);
	b->bytes += a->u.send.len;
	b->msgs++;
	ctsync_recv(to, &h, a->u.send.pkt + WIRE_HDR_LEN, h.body_len, b->now, out);
}

/* Run both cores until neither has anything to do now. */
static void bench_flush(struct bench *b)
{
	static struct ctsync_act tmp[CTS_ACTIONS_MAX];
	for (int round = 0; round < 1000000; round++) {
		int n = b->ap->n + b->aq->n;
		if (!n) {
			bool idle = true;
			if (ctsync_next_wake(b->p) <= b->now) {
				ctsync_tick(b->p, b->now, b->ap);
				idle = false;
			}
			if (ctsync_next_wake(b->q) <= b->now) {
				ctsync_tick(b->q, b->now, b->aq);
				idle = false;
			}
			if (idle || !(b->ap->n + b->aq->n))
				return;
			continue;
		}
		int np = b->ap->n;
		memcpy(tmp, b->ap->a, sizeof(tmp[0]) * (size_t)np);
		ctsync_actions_reset(b->ap);
		for (int k = 0; k < np; k++) {
			if (tmp[k].type == CTS_ACT_SEND)
				bench_deliver(b, b->q, b->aq, &tmp[k]);
			else if (tmp[k].type == CTS_ACT_DUMP_RESUME)
				b->paused = false;
		}
		int nq = b->aq->n;
		memcpy(tmp, b->aq->a, sizeof(tmp[0]) * (size_t)nq);
		ctsync_actions_reset(b->aq);
		for (int k = 0; k < nq; k++) {
			if (tmp[k].type == CTS_ACT_SEND)
				bench_deliver(b, b->p, b->ap, &tmp[k]);
			else if (tmp[k].type == CTS_ACT_APPLY)
				b->applied++;
		}
	}
}

static void bench_rec(uint64_t i, struct ctrec *r, uint64_t ver)
{
	/* an IPv4 TCP session: 13-byte tuple+zone key, ~70-byte value */
	memset(r, 0, sizeof(*r));
	r->op = CTREC_UPSERT;
	r->key_len = 16;
	wire_put64(r->key, i);
	wire_put64(r->key + 8, 0xc0000200c6336400ULL);
	r->val_len = 72;
	for (int k = 0; k < 72; k++)
		r->val[k] = (uint8_t)(i + ver + (uint64_t)k);
	r->stable_hash = stable_hash(r->key, r->key_len, r->val, r->val_len);
}

static int bench(uint64_t n)
{
	struct bench b = { 0 };
	struct ctsync_params p;
	ctsync_params_default(&p);
	p.n_nodes = 2;
	p.cluster_id = 1;
	p.sessions_max = (uint32_t)(n + n / 4 + 16);
	p.self = 0;
	p.incarnation = 1;
	b.p = ctsync_new(&p, 0);
	p.self = 1;
	b.q = ctsync_new(&p, 0);
	b.ap = calloc(1, sizeof(*b.ap));
	b.aq = calloc(1, sizeof(*b.aq));
	if (!b.p || !b.q || !b.ap || !b.aq)
		return 2;
	ctsync_set_role(b.q, 0, b.now, b.aq);
	ctsync_set_role(b.p, 0, b.now, b.ap);
	ctsync_peer(b.p, 1, true, b.now, b.ap);
	bench_flush(&b);
	/* bulk: the primary's kernel holds n sessions */
	double t0 = wall();
	struct ctrec r;
	uint64_t i = 0, pauses = 0;
	while (i < n) {
		bench_rec(i, &r, 0);
		int rc = ctsync_bulk_rec(b.p, &r, b.now, b.ap);
		if (rc == TND_ENOSPC) {
			pauses++;
			b.paused = true;
			bench_flush(&b);
			b.now += MS_TO_MONO(1);
			continue;
		}
		if (rc < 0) {
			printf("bench: bulk_rec: %s\n", tnd_strerror(rc));
			return 1;
		}
		i++;
		if (b.ap->n > CTS_ACTIONS_MAX / 2)
			bench_flush(&b);
	}
	ctsync_bulk_end(b.p, b.now, b.ap);
	bench_flush(&b);
	b.now += MS_TO_MONO(5);
	bench_flush(&b);
	double t1 = wall();
	bool ok = ctsync_in_sync(b.q, b.now) && b.applied == n;
	printf("bench bulk: %llu records in %.3f s = %.0f records/s, %.1f bytes/record on the wire, "
	       "%llu msgs, %llu pauses, applied %llu, secondary in sync: %s\n",
	       (unsigned long long)n, t1 - t0, (double)n / (t1 - t0),
	       (double)b.bytes / (double)n, (unsigned long long)b.msgs,
	       (unsigned long long)pauses, (unsigned long long)b.applied,
	       ok ? "yes" : "NO");
	/* incremental: n updates of existing sessions */
	uint64_t applied0 = b.applied, bytes0 = b.bytes;
	t0 = wall();
	for (i = 0; i < n; i++) {
		bench_rec(i, &r, 1);
		ctsync_local(b.p, &r, b.now, b.ap);
		if ((i & 63) == 63) { /* a driver batch: flush at its end */
			ctsync_tick(b.p, b.now, b.ap);
			bench_flush(&b);
			b.now += 10000; /* 10 us */
		}
	}
	ctsync_tick(b.p, b.now, b.ap);
	bench_flush(&b);
	b.now += MS_TO_MONO(5);
	bench_flush(&b);
	t1 = wall();
	struct ctsync_status sp, sq;
	ctsync_status(b.p, b.now, &sp);
	ctsync_status(b.q, b.now, &sq);
	bool ok2 = b.applied - applied0 == n && sp.digest == sq.digest &&
		   sp.count == sq.count && ctsync_in_sync(b.q, b.now);
	printf("bench incremental: %llu updates in %.3f s = %.0f updates/s, %.1f bytes/record, "
	       "tables equal: %s\n",
	       (unsigned long long)n, t1 - t0, (double)n / (t1 - t0),
	       (double)(b.bytes - bytes0) / (double)n, ok2 ? "yes" : "NO");
	ctsync_free(b.p);
	ctsync_free(b.q);
	free(b.ap);
	free(b.aq);
	return ok && ok2 ? 0 : 1;
}

int main(int argc, char **argv)
{
	uint64_t seed = 0, seeds = 0, bench_n = 0;
	int verbose = 0, have_seed = 0;
	static const struct option opts[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "seeds", required_argument, NULL, 'n' },
		{ "bench", required_argument, NULL, 'b' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "corpus", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	int o;
	while ((o = getopt_long(argc, argv, "s:n:b:vc:", opts, NULL)) != -1) {
		switch (o) {
		case 'c': corpus_dir = optarg; break;
		case 's': seed = strtoull(optarg, NULL, 0); have_seed = 1; break;
		case 'n': seeds = strtoull(optarg, NULL, 0); break;
		case 'b': bench_n = strtoull(optarg, NULL, 0); break;
		case 'v': verbose++; break;
		default:
			fprintf(stderr, "usage: ctsimulate [--seeds N | --seed S [-v] | --bench N]\n");
			return 2;
		}
	}
	if (bench_n)
		return bench(bench_n);
	if (have_seed)
		return run_seed(seed, verbose);
	if (!seeds)
		seeds = 100;
	int bad = 0;
	for (uint64_t sd = 1; sd <= seeds; sd++) {
		if (run_seed(sd, 0)) {
			printf("ctsim: seed %llu FAILED; replay with: ctsimulate --seed %llu -v\n",
			       (unsigned long long)sd, (unsigned long long)sd);
			bad++;
		}
	}
	printf("ctsim: %llu seeds, %d failed\n", (unsigned long long)seeds, bad);
	return bad ? 1 : 0;
}
