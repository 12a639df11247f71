/* test_ctsync.c - unit tests of the session-sync core (src/core/ctsync.c).
 *
 * A deterministic two-node harness: node 0 is the primary, node 1 its
 * secondary; a manual clock; a queue of the CTS_ACT_SEND packets that the
 * test delivers, holds back, reorders, corrupts or drops one by one; and a
 * log of APPLY / DUMP_BEGIN / SWEEP / EVENT actions. Each test builds one
 * situation and checks exact numbers: records per message, apply order
 * across a gap, resend timing, overrun, digest mismatch, sweep, coalescing,
 * the bulk/event race, malformed and replayed messages. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctsync.h"

#define MS(x) MS_TO_MONO(x)
#define Q_MAX 256
#define LOG_MAX 4096

struct pkt {
	int from, to;
	size_t len;
	uint8_t b[WIRE_MTU];
};

struct h {
	struct ctsync *c[2];
	struct ctsync_actions *out;
	mono_t now;
	struct pkt q[Q_MAX];
	int nq;
	struct ctrec applied[LOG_MAX];
	int n_applied;
	int dump_begin, sweeps, resumes;
	char events[64][240];
	int n_events;
};

static struct h *H;

static void run(int i)
{
	struct ctsync_actions *o = H->out;
	assert_int_equal(o->n_dropped, 0);
	for (int k = 0; k < o->n; k++) {
		const struct ctsync_act *a = &o->a[k];
		switch (a->type) {
		case CTS_ACT_SEND:
			assert_true(H->nq < Q_MAX);
			H->q[H->nq].from = i;
			H->q[H->nq].to = a->u.send.to;
			H->q[H->nq].len = a->u.send.len;
			memcpy(H->q[H->nq].b, a->u.send.pkt, a->u.send.len);
			H->nq++;
			break;
		case CTS_ACT_APPLY:
			if (i == 1) /* node 0 applies only after a failover */
				H->applied[H->n_applied++] = a->u.apply;
			break;
		case CTS_ACT_DUMP_BEGIN:
			H->dump_begin++;
			break;
		case CTS_ACT_DUMP_RESUME:
			H->resumes++;
			break;
		case CTS_ACT_SWEEP:
			H->sweeps++;
			break;
		case CTS_ACT_EVENT:
			assert_int_not_equal(a->u.event.level, CTS_LVL_ERROR);
			snprintf(H->events[H->n_events++ % 64], 240, "n%d %s %s", i,
				 a->u.event.name, a->u.event.kv);
			break;
		}
	}
	ctsync_actions_reset(o);
}

static bool saw_event(const char *needle)
{
	int n = H->n_events < 64 ? H->n_events : 64;
	for (int k = 0; k < n; k++)
		if (strstr(H->events[k], needle))
			return true;
	return false;
}

static int deliver(int k)
{
	struct pkt p = H->q[k];
	memmove(&H->q[k], &H->q[k + 1], sizeof(H->q[0]) * (size_t)(H->nq - k - 1));
	H->nq--;
	struct wire_hdr h;
	assert_int_equal(wire_hdr_decode(p.b, p.len, &h), 0);
	int rc = ctsync_recv(H->c[p.to], &h, p.b + WIRE_HDR_LEN, h.body_len,
			     H->now, H->out);
	run(p.to);
	return rc;
}

/* Deliver the newest packet queued for node `to`. */
static void deliver_last_to(int to)
{
	for (int k = H->nq - 1; k >= 0; k--)
		if (H->q[k].to == to) {
			deliver(k);
			return;
		}
	fail_msg("no packet for node %d", to);
}

static void deliver_all(void)
{
	while (H->nq)
		deliver(0);
}

static void tick(int i)
{
	ctsync_tick(H->c[i], H->now, H->out);
	run(i);
	assert_true(ctsync_next_wake(H->c[i]) >= H->now ||
		    ctsync_next_wake(H->c[i]) == 0);
}

/* Let both sides run for `ms` with every packet delivered. */
static void settle(int ms)
{
	for (int t = 0; t < ms; t++) {
		deliver_all();
		H->now += MS(1);
		tick(0);
		tick(1);
		deliver_all();
	}
}

static int count_type(int to, uint8_t type)
{
	int n = 0;
	for (int k = 0; k < H->nq; k++)
		if (H->q[k].to == to && H->q[k].b[7] == type)
			n++;
	return n;
}

static void mkrec(struct ctrec *r, int id, int ver, uint8_t op)
{
	memset(r, 0, sizeof(*r));
	r->op = op;
	r->key_len = 16;
	wire_put32(r->key, (uint32_t)id);
	memset(r->key + 4, 0xab, 12);
	if (op == CTREC_UPSERT) {
		r->val_len = 72;
		memset(r->val, ver, 72);
	}
	r->stable_hash = 0x1000003ULL * (uint64_t)(id + 1) + (uint64_t)ver * 7919 +
			 (op == CTREC_DELETE);
}

static void local(int id, int ver, uint8_t op)
{
	struct ctrec r;
	mkrec(&r, id, ver, op);
	assert_int_equal(ctsync_local(H->c[0], &r, H->now, H->out), 0);
	run(0);
}

static int setup(void **state)
{
	H = calloc(1, sizeof(*H));
	H->out = calloc(1, sizeof(*H->out));
	struct ctsync_params p;
	ctsync_params_default(&p);
	p.n_nodes = 2;
	p.cluster_id = 5;
	p.log_msgs_max = 16;
	p.window_msgs_max = 8;
	p.sessions_max = 1024;
	p.resend_ms = 50;
	p.keepalive_ms = 500;
	p.ack_delay_ms = 2;
	p.digest_interval_ms = 1000;
	H->now = MS(1000);
	for (int i = 0; i < 2; i++) {
		p.self = i;
		p.incarnation = 10 + (uint64_t)i;
		H->c[i] = ctsync_new(&p, H->now);
		assert_non_null(H->c[i]);
	}
	*state = H;
	return 0;
}

static int teardown(void **state)
{
	ctsync_free(H->c[0]);
	ctsync_free(H->c[1]);
	free(H->out);
	free(H);
	return 0;
}

/* Primary 0 with an empty kernel, secondary 1 synced to it. */
static void sync_pair(void)
{
	ctsync_set_role(H->c[0], 0, H->now, H->out);
	run(0);
	assert_int_equal(H->dump_begin, 1);
	ctsync_set_role(H->c[1], 0, H->now, H->out);
	run(1);
	deliver_all(); /* the hello: the primary lets 1 in at the bulk's begin */
	assert_int_equal(ctsync_bulk_end(H->c[0], H->now, H->out), 0);
	run(0);
	settle(10);
	assert_true(ctsync_in_sync(H->c[1], H->now));
	struct ctsync_status st;
	ctsync_status(H->c[0], H->now, &st);
	assert_true(st.peers[1].in_sync);
	assert_int_equal(st.peers[1].state, CTS_P_SYNC);
	H->n_applied = 0;
	H->sweeps = 0;
}

static void test_params_refused(void **state)
{
	struct ctsync_params p;
	ctsync_params_default(&p);
	p.n_nodes = 2;
	p.self = 2;
	assert_null(ctsync_new(&p, 0));
	p.self = 0;
	p.window_msgs_max = p.log_msgs_max; /* more than half the log */
	assert_null(ctsync_new(&p, 0));
}

/* 99-byte records (11 + 16 + 72): 12 fit in one message's RECS room. */
static void test_packing(void **state)
{
	sync_pair();
	for (int id = 0; id < 25; id++)
		local(id, 1, CTREC_UPSERT);
	assert_int_equal(count_type(1, CTS_MSG_DATA), 2); /* two full ones */
	tick(0);
	assert_int_equal(count_type(1, CTS_MSG_DATA), 3);
	deliver_all();
	assert_int_equal(H->n_applied, 25);
	for (int k = 0; k < 25; k++)
		assert_int_equal(wire_get32(H->applied[k].key), k);
	struct ctsync_status st;
	ctsync_status(H->c[0], H->now, &st);
	assert_int_equal(st.ctr.local_recs, 25);
	assert_int_equal(st.count, 25);
}

static void test_in_order_with_gap(void **state)
{
	sync_pair();
	for (int id = 0; id < 36; id++)
		local(id, 1, CTREC_UPSERT);
	tick(0);
	assert_int_equal(H->nq, 3);
	deliver(0);                 /* m1 */
	assert_int_equal(H->n_applied, 12);
	deliver(1);                 /* m3 arrives before m2: held back */
	assert_int_equal(H->n_applied, 12);
	deliver(0);                 /* m2: m2 and m3 applied, in order */
	assert_int_equal(H->n_applied, 36);
	for (int k = 0; k < 36; k++)
		assert_int_equal(wire_get32(H->applied[k].key), k);
}

static void test_ack_and_resend_timing(void **state)
{
	sync_pair();
	local(7, 1, CTREC_UPSERT);
	tick(0);
	assert_int_equal(count_type(1, CTS_MSG_DATA), 1);
	H->nq = 0; /* lost */
	mono_t sent = H->now;
	H->now = sent + MS(49);
	tick(0);
	assert_int_equal(count_type(1, CTS_MSG_DATA), 0);
	H->now = sent + MS(50);
	tick(0);
	assert_int_equal(count_type(1, CTS_MSG_DATA), 1);
	struct ctsync_status st;
	ctsync_status(H->c[0], H->now, &st);
	assert_int_equal(st.ctr.resent, 1);
	assert_int_equal(st.peers[1].backlog_recs, 1);
	deliver_all();
	assert_int_equal(H->n_applied, 1);
	/* the ack waits ack_delay_ms, then is cumulative */
	tick(1);
	assert_int_equal(count_type(0, CTS_MSG_ACK), 0);
	H->now += MS(2);
	tick(1);
	assert_int_equal(count_type(0, CTS_MSG_ACK), 1);
	deliver_all();
	ctsync_status(H->c[0], H->now, &st);
	assert_int_equal(st.peers[1].acked, st.head);
	assert_int_equal(st.peers[1].backlog_recs, 0);
	H->now += MS(200);
	tick(0);
	assert_int_equal(count_type(1, CTS_MSG_DATA), 0); /* nothing to resend */
}

static void test_overrun_bulk(void **state)
{
	sync_pair();
	/* the secondary hears nothing while 20 one-record messages go out:
	 * the 16-slot log must evict one it still needs */
	for (int k = 0; k < 20; k++) {
		local(k, 1, CTREC_UPSERT);
		tick(0);
		H->nq = 0;
	}
	assert_true(saw_event("reason=overrun"));
	assert_int_equal(H->dump_begin, 2);
	struct ctsync_status st;
	ctsync_status(H->c[0], H->now, &st);
	assert_int_equal(st.peers[1].state, CTS_P_BULK);
	assert_false(st.peers[1].in_sync);
	assert_true(st.ctr.overruns >= 1);
	/* the dump brings it back: 20 entries, then the end */
	for (int k = 0; k < 20; k++) {
		struct ctrec r;
		mkrec(&r, k, 1, CTREC_UPSERT);
		assert_int_equal(ctsync_bulk_rec(H->c[0], &r, H->now, H->out), 0);
		run(0);
	}
	ctsync_bulk_end(H->c[0], H->now, H->out);
	run(0);
	settle(20); /* the first copies of the bulk's start were lost: resent at 50 ms */
	assert_false(ctsync_in_sync(H->c[1], H->now));
	settle(60);
	struct ctsync_status s1;
	ctsync_status(H->c[1], H->now, &s1);
	if (!ctsync_in_sync(H->c[1], H->now))
		printf("overrun: st=%d need? applied=%llu head=%llu count=%llu bulk active=%d done=%d digest=%d\n",
		       s1.role, (unsigned long long)s1.applied_mseq, (unsigned long long)s1.head,
		       (unsigned long long)s1.count, s1.bulk.active, s1.bulk.done, s1.last_digest);
	{
		struct ctsync_status s0;
		ctsync_status(H->c[0], H->now, &s0);
		printf("primary: head %llu tail %llu peer state %d base %llu acked %llu stalled %d bulk active %d\n",
		       (unsigned long long)s0.head, (unsigned long long)s0.tail, s0.peers[1].state,
		       (unsigned long long)s0.peers[1].base, (unsigned long long)s0.peers[1].acked,
		       s0.peers[1].stalled, s0.bulk.active);
		for (int k = 0; k < (H->n_events < 64 ? H->n_events : 64); k++)
			printf("  %s\n", H->events[k]);
	}
	assert_true(ctsync_in_sync(H->c[1], H->now));
	assert_int_equal(s1.count, 20);
	assert_int_equal(s1.last_digest, CTS_DIGEST_OK);
}

static void test_digest_mismatch_resync(void **state)
{
	sync_pair();
	local(1, 1, CTREC_UPSERT);
	H->now += MS(1001); /* a digest marker is due */
	tick(0);
	assert_int_equal(H->nq, 1);
	/* corrupt the marker's count as a drifted table would look */
	struct tlvr r;
	struct tlv t;
	uint8_t *body = H->q[0].b + WIRE_HDR_LEN;
	tlvr_init(&r, body, H->q[0].len - WIRE_HDR_LEN);
	bool found = false;
	while (tlvr_next(&r, &t) == 1)
		if (t.type == CTS_T_DIGEST) {
			uint8_t *v = (uint8_t *)t.val;
			wire_put64(v, wire_get64(v) + 1);
			found = true;
		}
	assert_true(found);
	deliver_all();
	struct ctsync_status st;
	ctsync_status(H->c[1], H->now, &st);
	assert_int_equal(st.ctr.digest_bad, 1);
	assert_int_equal(st.last_digest, CTS_DIGEST_MISMATCH);
	assert_false(ctsync_in_sync(H->c[1], H->now));
	H->now += MS(2);
	tick(1); /* its ack asks for a bulk */
	deliver_all();
	assert_int_equal(H->dump_begin, 2);
	assert_true(saw_event("reason=digest_mismatch"));
	struct ctrec rec;
	mkrec(&rec, 1, 1, CTREC_UPSERT);
	assert_int_equal(ctsync_bulk_rec(H->c[0], &rec, H->now, H->out), 0);
	run(0);
	ctsync_bulk_end(H->c[0], H->now, H->out);
	run(0);
	settle(10);
	ctsync_status(H->c[1], H->now, &st);
	assert_int_equal(st.last_digest, CTS_DIGEST_OK);
	assert_true(ctsync_in_sync(H->c[1], H->now));
}

static void test_bulk_end_sweep(void **state)
{
	sync_pair();
	local(1, 1, CTREC_UPSERT);
	local(2, 1, CTREC_UPSERT);
	tick(0);
	settle(5);
	struct ctrec a, b;
	mkrec(&a, 1, 1, CTREC_UPSERT);
	mkrec(&b, 2, 1, CTREC_UPSERT);
	assert_true(ctsync_fresh(H->c[1], b.key, b.key_len));
	/* key 2 vanished from the kernel with its event lost */
	assert_int_equal(ctsync_overrun(H->c[0], H->now, H->out), 0);
	run(0);
	assert_int_equal(H->dump_begin, 2);
	assert_int_equal(ctsync_bulk_rec(H->c[0], &a, H->now, H->out), 0);
	run(0);
	ctsync_bulk_end(H->c[0], H->now, H->out);
	run(0);
	deliver_all();
	assert_int_equal(H->sweeps, 1);
	assert_true(ctsync_fresh(H->c[1], a.key, a.key_len));
	assert_false(ctsync_fresh(H->c[1], b.key, b.key_len));
	settle(10);
	struct ctsync_status s0, s1;
	ctsync_status(H->c[0], H->now, &s0);
	ctsync_status(H->c[1], H->now, &s1);
	assert_int_equal(s0.count, 1);
	assert_int_equal(s1.count, 1);
	assert_true(ctsync_in_sync(H->c[1], H->now));
}

static void test_coalescing(void **state)
{
	sync_pair();
	local(9, 1, CTREC_UPSERT);
	local(9, 2, CTREC_UPSERT);
	local(9, 0, CTREC_DELETE);
	tick(0);
	assert_int_equal(count_type(1, CTS_MSG_DATA), 1);
	deliver_all();
	assert_int_equal(H->n_applied, 1);
	assert_int_equal(H->applied[0].op, CTREC_DELETE);
	struct ctsync_status st;
	ctsync_status(H->c[0], H->now, &st);
	assert_int_equal(st.ctr.coalesced, 2);
	assert_int_equal(st.count, 0);
}

/* The dump copy of a key read before an event but handed over after it
 * must not overwrite the event's newer state. */
static void test_bulk_copy_older_than_event(void **state)
{
	ctsync_set_role(H->c[0], 0, H->now, H->out);
	run(0);
	ctsync_set_role(H->c[1], 0, H->now, H->out);
	run(1);
	deliver_all();
	local(3, 2, CTREC_UPSERT);          /* event: version 2 */
	struct ctrec old;
	mkrec(&old, 3, 1, CTREC_UPSERT);    /* dump copy: version 1 */
	assert_int_equal(ctsync_bulk_rec(H->c[0], &old, H->now, H->out), 0);
	run(0);
	local(4, 1, CTREC_UPSERT);
	local(4, 0, CTREC_DELETE);          /* deleted during the bulk */
	struct ctrec gone;
	mkrec(&gone, 4, 1, CTREC_UPSERT);
	assert_int_equal(ctsync_bulk_rec(H->c[0], &gone, H->now, H->out), 0);
	run(0);
	ctsync_bulk_end(H->c[0], H->now, H->out);
	run(0);
	settle(10);
	struct ctsync_status st;
	ctsync_status(H->c[0], H->now, &st);
	assert_int_equal(st.ctr.bulk_skipped, 2);
	assert_int_equal(st.count, 1);
	int n3 = 0;
	for (int k = 0; k < H->n_applied; k++)
		if (wire_get32(H->applied[k].key) == 3) {
			n3++;
			assert_int_equal(H->applied[k].val[0], 2);
		}
	assert_int_equal(n3, 1);
	assert_true(ctsync_in_sync(H->c[1], H->now));
	ctsync_status(H->c[1], H->now, &st);
	assert_int_equal(st.count, 1);
}

static void test_malformed_and_replay(void **state)
{
	sync_pair();
	local(5, 1, CTREC_UPSERT);
	tick(0);
	assert_int_equal(H->nq, 1);
	struct pkt saved = H->q[0];
	struct ctsync_status before, after;
	ctsync_status(H->c[1], H->now, &before);
	/* a truncated TLV */
	struct wire_hdr h;
	wire_hdr_decode(saved.b, saved.len, &h);
	assert_int_equal(ctsync_recv(H->c[1], &h, saved.b + WIRE_HDR_LEN, 3,
				     H->now, H->out), TND_EINVAL);
	run(1);
	/* a record whose key length runs past the TLV */
	uint8_t bad[WIRE_BODY_MAX];
	memcpy(bad, saved.b + WIRE_HDR_LEN, h.body_len);
	struct tlvr r;
	struct tlv t;
	tlvr_init(&r, bad, h.body_len);
	while (tlvr_next(&r, &t) == 1)
		if (t.type == CTS_T_RECS)
			((uint8_t *)t.val)[1] = 48;
	assert_int_equal(ctsync_recv(H->c[1], &h, bad, h.body_len, H->now, H->out),
			 TND_EINVAL);
	run(1);
	ctsync_status(H->c[1], H->now, &after);
	assert_int_equal(after.ctr.rx_malformed, before.ctr.rx_malformed + 2);
	after.ctr.rx_malformed = before.ctr.rx_malformed;
	assert_memory_equal(&before, &after, sizeof(before));
	assert_int_equal(H->n_applied, 0);
	/* the real one, then its replay */
	assert_int_equal(deliver(0), 0);
	assert_int_equal(H->n_applied, 1);
	H->q[H->nq++] = saved;
	assert_int_equal(deliver(H->nq - 1), TND_EREPLAY);
	assert_int_equal(H->n_applied, 1);
	/* from a node that is not the primary */
	h.sender = 0;
	h.cluster_id = 6;
	assert_int_equal(ctsync_recv(H->c[1], &h, saved.b + WIRE_HDR_LEN,
				     h.body_len, H->now, H->out), TND_EINVAL);
	run(1);
}

static void test_failover(void **state)
{
	sync_pair();
	for (int id = 0; id < 5; id++)
		local(id, 1, CTREC_UPSERT);
	tick(0);
	settle(5);
	/* node 1 takes over with its own kernel table (the 5 sessions) */
	H->n_applied = 0;
	ctsync_set_role(H->c[1], 1, H->now, H->out);
	run(1);
	ctsync_set_role(H->c[0], 1, H->now, H->out);
	run(0);
	deliver_all(); /* its hello: node 0 joins the new primary's first bulk */
	struct ctsync_status st;
	ctsync_status(H->c[1], H->now, &st);
	assert_int_equal(st.role, CTS_PRIMARY);
	assert_true(st.bulk.active);
	assert_false(ctsync_in_sync(H->c[0], H->now));
	for (int id = 0; id < 5; id++) {
		struct ctrec r;
		mkrec(&r, id, 1, CTREC_UPSERT);
		assert_int_equal(ctsync_bulk_rec(H->c[1], &r, H->now, H->out), 0);
		run(1);
	}
	/* the old primary is no longer allowed to feed */
	struct ctrec x;
	mkrec(&x, 9, 1, CTREC_UPSERT);
	assert_int_equal(ctsync_local(H->c[0], &x, H->now, H->out), TND_EREFUSED);
	ctsync_bulk_end(H->c[1], H->now, H->out);
	run(1);
	/* deliver with roles swapped: the harness logs APPLY only for node 1,
	 * so count node 0's applies through its status instead */
	for (int t = 0; t < 100; t++) {
		while (H->nq) {
			struct pkt p = H->q[0];
			memmove(&H->q[0], &H->q[1], sizeof(H->q[0]) * (size_t)(H->nq - 1));
			H->nq--;
			struct wire_hdr h;
			wire_hdr_decode(p.b, p.len, &h);
			ctsync_recv(H->c[p.to], &h, p.b + WIRE_HDR_LEN, h.body_len,
				    H->now, H->out);
			for (int k = 0; k < H->out->n; k++)
				if (H->out->a[k].type == CTS_ACT_APPLY)
					H->out->a[k].type = CTS_ACT_DUMP_RESUME;
			run(p.to);
		}
		H->now += MS(1);
		ctsync_tick(H->c[0], H->now, H->out);
		run(0);
		ctsync_tick(H->c[1], H->now, H->out);
		run(1);
	}
	ctsync_status(H->c[0], H->now, &st);
	if (!ctsync_in_sync(H->c[0], H->now)) {
		printf("failover: role %d applied %llu head %llu count %llu done %d\n", st.role,
		       (unsigned long long)st.applied_mseq, (unsigned long long)st.head,
		       (unsigned long long)st.count, st.bulk.done);
		for (int k = 0; k < (H->n_events < 64 ? H->n_events : 64); k++)
			printf("  %s\n", H->events[k]);
	}
	assert_true(ctsync_in_sync(H->c[0], H->now));
	assert_int_equal(st.count, 5);
	assert_int_equal(st.primary, 1);
}


static void drop(int k)
{
	memmove(&H->q[k], &H->q[k + 1], sizeof(H->q[0]) * (size_t)(H->nq - k - 1));
	H->nq--;
}

static uint64_t pkt_mseq(int k)
{
	/* DATA body: CTL TLV first (type, len, stream u32, mseq u64). */
	return wire_get64(H->q[k].b + WIRE_HDR_LEN + 8);
}

/* A lost message with three later ones received is resent at once (the
 * secondary's immediate selective ack), not after the resend timer, and
 * the primary halves its window. */
static void test_fast_resend(void **state)
{
	sync_pair();
	for (int k = 0; k < 5; k++) {
		local(k, 1, CTREC_UPSERT);
		tick(0);
	}
	assert_int_equal(count_type(1, CTS_MSG_DATA), 5);
	uint64_t lost = pkt_mseq(0);
	drop(0);
	/* m2, m3, m4 arrive: the third out-of-order one triggers an ack */
	for (int k = 0; k < 3; k++)
		deliver(0);
	assert_int_equal(H->n_applied, 0);
	assert_int_equal(count_type(0, CTS_MSG_ACK), 1);
	deliver_last_to(0);
	/* no time passed: the hole went out again at once */
	assert_int_equal(count_type(1, CTS_MSG_DATA), 2); /* m5 and the resend */
	bool resent = false;
	for (int k = 0; k < H->nq; k++)
		if (H->q[k].to == 1 && pkt_mseq(k) == lost)
			resent = true;
	assert_true(resent);
	struct ctsync_status st;
	ctsync_status(H->c[0], H->now, &st);
	assert_int_equal(st.ctr.resent, 1);
	assert_int_equal(st.ctr.losses, 1);
	assert_int_equal(st.peers[1].cwnd, 4); /* the window of 8 halved */
	deliver_all();
	assert_int_equal(H->n_applied, 5);
	for (int k = 0; k < 5; k++)
		assert_int_equal(wire_get32(H->applied[k].key), k);
	settle(5);
	ctsync_status(H->c[0], H->now, &st);
	assert_int_equal(st.peers[1].acked, st.head);
	assert_int_equal(st.ctr.resent, 1); /* nothing more */
}

/* The log's room for events shrinks with what a live secondary has not
 * acknowledged, and comes back with its acks. */
static void test_log_room(void **state)
{
	sync_pair();
	uint32_t room0 = ctsync_log_room(H->c[0]);
	assert_true(room0 > 5);
	for (int k = 0; k < 5; k++) {
		local(k, 1, CTREC_UPSERT);
		tick(0);
	}
	assert_int_equal(ctsync_log_room(H->c[0]), room0 - 5);
	settle(5);
	assert_int_equal(ctsync_log_room(H->c[0]), room0);
	assert_int_equal(ctsync_log_room(H->c[1]), 0); /* not primary */
	/* a secondary that stops answering and is stalled no longer holds
	 * the log back */
	for (int k = 0; k < 5; k++) {
		local(10 + k, 1, CTREC_UPSERT);
		tick(0);
	}
	H->nq = 0;
	for (int t = 0; t < 3000; t++) {
		H->now += MS(1);
		tick(0);
		H->nq = 0;
	}
	struct ctsync_status st;
	ctsync_status(H->c[0], H->now, &st);
	assert_true(st.peers[1].stalled);
	assert_true(ctsync_log_room(H->c[0]) >= room0);
}

/* The resend timer follows the measured round trip: a secondary that
 * answers in 80 ms is not resent to at 50 ms. */
static void test_resend_follows_rtt(void **state)
{
	sync_pair();
	for (int r = 0; r < 6; r++) {
		local(r, 1, CTREC_UPSERT);
		tick(0);
		deliver_all();          /* the data */
		H->now += MS(80);
		tick(1);                /* the delayed ack, 80 ms late */
		deliver_all();
	}
	struct ctsync_status st;
	ctsync_status(H->c[0], H->now, &st);
	uint64_t resent0 = st.ctr.resent;
	local(50, 1, CTREC_UPSERT);
	tick(0);
	drop(0);                        /* lost */
	H->now += MS(60);
	tick(0);
	assert_int_equal(count_type(1, CTS_MSG_DATA), 0);
	H->now += MS(300);
	tick(0);
	assert_int_equal(count_type(1, CTS_MSG_DATA), 1);
	ctsync_status(H->c[0], H->now, &st);
	assert_int_equal(st.ctr.resent, resent0 + 1);
}

/* A secondary that stops answering without being declared dead is rebased
 * once the log wraps, and then costs no table read until it answers. */
static void test_silent_secondary_no_bulk_loop(void **state)
{
	sync_pair();
	int dumps0 = H->dump_begin;
	/* one message per 100 ms: stalled (20 resends) before the 16-slot
	 * log wraps, as a driver's backpressure would also ensure */
	for (int t = 0; t < 4000; t++) {
		H->now += MS(1);
		if (t % 100 == 0)
			local(t / 100, 1, CTREC_UPSERT);
		tick(0);
		H->nq = 0; /* nothing reaches the secondary, and it says nothing */
	}
	assert_true(saw_event("reason=overrun"));
	struct ctsync_status st;
	ctsync_status(H->c[0], H->now, &st);
	assert_int_equal(st.peers[1].state, CTS_P_WAIT);
	assert_true(st.peers[1].stalled);
	assert_int_equal(H->dump_begin, dumps0); /* no bulk for a silent peer */
	/* it answers (its hello): its bulk begins */
	H->now += MS(1000);
	tick(1);
	assert_int_equal(count_type(0, CTS_MSG_ACK), 1);
	deliver_all();
	assert_true(saw_event("answering=1"));
	assert_int_equal(H->dump_begin, dumps0 + 1);
	for (int t = 0; t < 40; t++) {
		struct ctrec r;
		mkrec(&r, t, 1, CTREC_UPSERT);
		assert_int_equal(ctsync_bulk_rec(H->c[0], &r, H->now, H->out), 0);
		run(0);
		settle(1);
	}
	assert_int_equal(ctsync_bulk_end(H->c[0], H->now, H->out), 0);
	run(0);
	settle(100);
	assert_true(ctsync_in_sync(H->c[1], H->now));
	ctsync_status(H->c[1], H->now, &st);
	assert_int_equal(st.count, 40);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_params_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_packing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_order_with_gap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_and_resend_timing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overrun_bulk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_digest_mismatch_resync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bulk_end_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coalescing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bulk_copy_older_than_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_and_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fast_resend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resend_follows_rtt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_silent_secondary_no_bulk_loop, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
