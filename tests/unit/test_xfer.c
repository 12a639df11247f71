/* test_xfer.c - unit tests of the image transfer core (src/core/xfer.c,
 * protocol in xfer.h; issue 5 "distribute the image over the control
 * link").
 *
 * A deterministic harness: a fetcher core (node 1) and a server core
 * (node 0) in one process, a manual clock that advances by one tick per
 * delivered packet, a queue of plaintext packets (as the cores emit them
 * before the driver seals them) with seeded loss, duplication and
 * reordering, and two small "drivers": the fetcher's writes chunks into a
 * buffer (and counts every write), the server's answers XFA_SERVE from an
 * image in memory (or NACKs when it has none). Each test asserts on the
 * bytes received, the END code and sentence, and the counters. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "core/rng.h"
#include "core/xfer.h"

#define MS(x) MS_TO_MONO(x)
#define Q_MAX 20000
#define FETCHER 1
#define SERVER 0
#define IMGS 3

/* TLV numbers of xfer.c: the wire format, pinned here on purpose. */
enum { T_DIGEST = 1, T_TOTAL, T_INDEX, T_DATA, T_RANGES, T_CODE, T_WHY };

struct pkt {
	int to;
	size_t len;
	uint8_t b[WIRE_MTU];
};

struct image {
	uint8_t *bytes;
	uint64_t len;
	uint8_t dg[XFER_DIGEST_LEN];
	uint8_t *got;       /* the fetcher's copy */
	uint32_t *writes;   /* per chunk */
	bool ended;
	int code;
	char why[XFER_WHY_LEN];
	mono_t ended_at;
	struct xfer_progress prog;
};

struct h {
	struct xfer *core[2];
	mono_t now;
	uint64_t rng;
	struct pkt *q;
	int qn;
	/* link behaviour */
	unsigned loss_pct, dup_pct;
	bool reorder, drop_all, server_missing;
	int drop_data_index; /* drop the first DATA of this chunk (-1: none) */
	mono_t trickle;      /* let one DATA through per this long (0: all) */
	mono_t trickle_next;
	bool dropped_once;
	int n_img;
	struct image img[IMGS];
	uint64_t gets, datas, nacks, writes_total;
	int last_get_chunks;
};

static struct h *H;

static void make_image(struct image *im, uint64_t len, uint64_t seed)
{
	im->len = len;
	im->bytes = malloc(len);
	im->got = calloc(1, len);
	im->writes = calloc(xfer_chunks(len), sizeof(uint32_t));
	assert_non_null(im->bytes);
	for (uint64_t i = 0; i < len; i++)
		im->bytes[i] = (uint8_t)rng_next(&seed);
	crypto_generichash(im->dg, XFER_DIGEST_LEN, im->bytes, len, NULL, 0);
}

static int setup(void **state)
{
	struct h *h = calloc(1, sizeof(*h));
	h->q = calloc(Q_MAX, sizeof(*h->q));
	h->rng = 0x9e3779b97f4a7c15ULL;
	h->drop_data_index = -1;
	for (int i = 0; i < 2; i++) {
		struct xfer_params p;
		xfer_params_default(&p);
		p.self = i;
		p.cluster_id = 7;
		p.proto = 1;
		p.incarnation = 100 + (uint64_t)i;
		h->core[i] = xfer_new(&p);
		assert_non_null(h->core[i]);
	}
	h->now = MS(1000);
	H = h;
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	struct h *h = *state;
	for (int i = 0; i < 2; i++)
		xfer_free(h->core[i]);
	for (int i = 0; i < IMGS; i++) {
		free(h->img[i].bytes);
		free(h->img[i].got);
		free(h->img[i].writes);
	}
	free(h->q);
	free(h);
	return 0;
}

static struct image *img_of(struct h *h, const uint8_t *dg)
{
	for (int i = 0; i < h->n_img; i++)
		if (memcmp(h->img[i].dg, dg, XFER_DIGEST_LEN) == 0)
			return &h->img[i];
	return NULL;
}

static void enqueue(struct h *h, int to, const uint8_t *b, size_t len)
{
	assert_true(h->qn < Q_MAX);
	struct pkt *p = &h->q[h->qn++];
	p->to = to;
	p->len = len;
	memcpy(p->b, b, len);
}

static void run_actions(struct h *h, int node, struct xfer_actions *a)
{
	assert_int_equal(a->n_dropped, 0);
	for (int i = 0; i < a->n; i++) {
		struct xfer_act *x = &a->a[i];
		struct image *im = img_of(h, x->digest);
		switch (x->type) {
		case XFA_SEND:
			assert_int_equal(node, FETCHER);
			assert_int_equal(x->pkt[7], XFER_MSG_GET);
			h->gets++;
			enqueue(h, x->to, x->pkt, x->len);
			break;
		case XFA_WRITE:
			assert_int_equal(node, FETCHER);
			assert_non_null(im);
			assert_true(x->off + x->len <= im->len);
			assert_int_equal(x->off, (uint64_t)x->chunk * XFER_CHUNK_BYTES);
			memcpy(im->got + x->off, x->data, x->len);
			im->writes[x->chunk]++;
			h->writes_total++;
			break;
		case XFA_SERVE: {
			assert_int_equal(node, SERVER);
			uint8_t pkt[WIRE_MTU];
			size_t len;
			h->last_get_chunks = x->n;
			if (h->server_missing || !im) {
				assert_int_equal(xfer_nack_pkt(h->core[SERVER], x->digest, TND_ENOENT,
							       "no image here", pkt, sizeof(pkt), &len), 0);
				enqueue(h, x->to, pkt, len);
				break;
			}
			for (int k = 0; k < x->n; k++) {
				uint32_t c = x->index[k];
				size_t n = xfer_chunk_len(im->len, c);
				assert_int_equal(xfer_data_pkt(h->core[SERVER], x->digest, im->len, c,
							       im->bytes + (uint64_t)c * XFER_CHUNK_BYTES,
							       n, pkt, sizeof(pkt), &len), 0);
				enqueue(h, x->to, pkt, len);
			}
			break;
		}
		case XFA_END:
			assert_int_equal(node, FETCHER);
			assert_non_null(im);
			assert_false(im->ended); /* exactly once */
			im->ended = true;
			im->code = x->code;
			im->ended_at = h->now;
			im->prog = x->prog;
			snprintf(im->why, sizeof(im->why), "%s", x->why);
			break;
		}
	}
}

static int deliver(struct h *h, const struct pkt *p)
{
	struct wire_hdr hdr;
	assert_int_equal(wire_hdr_decode(p->b, p->len, &hdr), 0);
	struct xfer_actions a;
	xfer_actions_reset(&a);
	if (hdr.type == XFER_MSG_DATA)
		h->datas++;
	if (hdr.type == XFER_MSG_NACK)
		h->nacks++;
	int rc = xfer_recv(h->core[p->to], &hdr, p->b + WIRE_HDR_LEN, hdr.body_len, h->now, &a);
	run_actions(h, p->to, &a);
	return rc;
}

static bool all_ended(struct h *h)
{
	for (int i = 0; i < h->n_img; i++)
		if (!h->img[i].ended)
			return false;
	return true;
}

/* Deliver until every fetch ended (ticking the fetcher when the link is
 * idle), at most `max_ms` of simulated time. */
static void pump(struct h *h, int max_ms)
{
	mono_t limit = h->now + MS(max_ms);
	long steps = 0;
	while (!all_ended(h) && h->now < limit) {
		assert_true(++steps < 5000000);
		if (h->qn == 0) {
			mono_t w = xfer_next_wake(h->core[FETCHER]);
			assert_true(w != MONO_NEVER);
			if (w > h->now)
				h->now = w;
			struct xfer_actions a;
			xfer_actions_reset(&a);
			xfer_tick(h->core[FETCHER], h->now, &a);
			run_actions(h, FETCHER, &a);
			continue;
		}
		int i = h->reorder ? (int)(rng_next(&h->rng) % (uint64_t)h->qn) : 0;
		struct pkt p = h->q[i];
		memmove(&h->q[i], &h->q[i + 1], (size_t)(h->qn - i - 1) * sizeof(*h->q));
		h->qn--;
		h->now += 10000; /* 10 us per packet */
		if (h->drop_all || (h->loss_pct && rng_next(&h->rng) % 100 < h->loss_pct))
			continue;
		if (p.b[7] == XFER_MSG_DATA && h->drop_data_index >= 0 && !h->dropped_once) {
			struct xfer_msgv m;
			assert_int_equal(xfer_msg_decode(XFER_MSG_DATA, p.b + WIRE_HDR_LEN,
							 p.len - WIRE_HDR_LEN, &m), 0);
			if (m.index == (uint32_t)h->drop_data_index) {
				h->dropped_once = true;
				continue;
			}
		}
		if (p.b[7] == XFER_MSG_DATA && h->trickle) {
			if (h->now < h->trickle_next)
				continue;
			h->trickle_next = h->now + h->trickle;
		}
		if (h->dup_pct && rng_next(&h->rng) % 100 < h->dup_pct && h->qn < Q_MAX)
			h->q[h->qn++] = p;
		assert_int_equal(deliver(h, &p), 0);
	}
}

static struct image *add_image(struct h *h, uint64_t len)
{
	struct image *im = &h->img[h->n_img];
	make_image(im, len, 1000 + (uint64_t)h->n_img * 77 + len);
	h->n_img++;
	return im;
}

static void start(struct h *h, struct image *im)
{
	struct xfer_actions a;
	xfer_actions_reset(&a);
	assert_int_equal(xfer_start(h->core[FETCHER], im->dg, im->len, SERVER, h->now, &a), 0);
	run_actions(h, FETCHER, &a);
}

static void assert_copied(struct image *im)
{
	assert_true(im->ended);
	if (im->code != 0)
		fail_msg("fetch ended with %d: %s", im->code, im->why);
	assert_memory_equal(im->got, im->bytes, im->len);
	for (uint32_t c = 0; c < xfer_chunks(im->len); c++)
		assert_int_equal(im->writes[c], 1); /* every chunk written once */
	assert_int_equal(im->prog.got_bytes, im->len);
}

/* --- tests ----------------------------------------------------------------- */

static void test_in_order(void **state)
{
	struct h *h = *state;
	struct image *im = add_image(h, 1000 * XFER_CHUNK_BYTES + 345);
	start(h, im);
	pump(h, 5000);
	assert_copied(im);
	assert_int_equal(im->prog.resent, 0);
	assert_int_equal(im->prog.dup, 0);
	/* one GET per XFER_GET_BATCH_CHUNKS chunks, give or take */
	assert_true(h->gets >= 1001 / XFER_GET_CHUNKS_MAX);
	assert_true(h->gets <= 1001 / XFER_GET_BATCH_CHUNKS + 4);
	assert_int_equal(h->datas, 1001);
	/* a fast link: the timer came down to its floor */
	assert_int_equal(im->prog.rto_ms, 50);
	assert_int_equal(xfer_progress(h->core[FETCHER], im->dg, &im->prog), TND_ENOENT);
	assert_int_equal(xfer_next_wake(h->core[FETCHER]), MONO_NEVER);
}

static void test_sizes(void **state)
{
	struct h *h = *state;
	/* one byte, exactly one chunk, one chunk and one byte */
	struct image *a = add_image(h, 1);
	struct image *b = add_image(h, XFER_CHUNK_BYTES);
	struct image *c = add_image(h, XFER_CHUNK_BYTES + 1);
	start(h, a);
	start(h, b);
	start(h, c);
	pump(h, 1000);
	assert_copied(a);
	assert_copied(b);
	assert_copied(c);
	assert_int_equal(xfer_chunks(XFER_CHUNK_BYTES + 1), 2);
	assert_int_equal(xfer_chunk_len(XFER_CHUNK_BYTES + 1, 1), 1);
	assert_int_equal(xfer_chunk_len(XFER_CHUNK_BYTES + 1, 2), 0);
}

static void test_reordered(void **state)
{
	struct h *h = *state;
	h->reorder = true;
	struct image *im = add_image(h, 700 * XFER_CHUNK_BYTES + 1);
	start(h, im);
	pump(h, 20000);
	assert_copied(im);
}

static void test_lost(void **state)
{
	struct h *h = *state;
	h->loss_pct = 10;
	struct image *im = add_image(h, 800 * XFER_CHUNK_BYTES + 99);
	start(h, im);
	pump(h, 60000);
	assert_copied(im);
	assert_true(im->prog.resent > 0);
	assert_true(im->prog.fast_resent > 0);
}

static void test_lost_and_reordered_and_duplicated(void **state)
{
	struct h *h = *state;
	h->loss_pct = 20;
	h->dup_pct = 20;
	h->reorder = true;
	struct image *im = add_image(h, 400 * XFER_CHUNK_BYTES + 7);
	start(h, im);
	pump(h, 120000);
	assert_copied(im);
}

static void test_duplicated(void **state)
{
	struct h *h = *state;
	h->dup_pct = 30;
	struct image *im = add_image(h, 500 * XFER_CHUNK_BYTES);
	start(h, im);
	pump(h, 20000);
	assert_copied(im); /* and no chunk written twice */
	assert_true(im->prog.dup > 0);
	struct xfer_stats st;
	xfer_stats(h->core[FETCHER], &st);
	assert_true(st.rx_dup > 0);
	assert_int_equal(h->writes_total, 500);
}

/* One lost chunk is asked again as soon as three later chunks of the same
 * GET arrived, long before the retransmission timeout. */
static void test_fast_resend(void **state)
{
	struct h *h = *state;
	h->drop_data_index = 5;
	struct image *im = add_image(h, 200 * XFER_CHUNK_BYTES);
	mono_t t0 = h->now;
	start(h, im);
	pump(h, 5000);
	assert_copied(im);
	assert_true(h->dropped_once);
	assert_int_equal(im->prog.fast_resent, 1);
	assert_int_equal(im->prog.resent, 1);
	assert_true(im->ended_at - t0 < MS(20)); /* well below rto_min (50 ms) */
}

static void test_nack(void **state)
{
	struct h *h = *state;
	h->server_missing = true;
	struct image *im = add_image(h, 10 * XFER_CHUNK_BYTES);
	mono_t t0 = h->now;
	start(h, im);
	pump(h, 60000);
	assert_true(im->ended);
	assert_int_equal(im->code, TND_ENOENT);
	assert_non_null(strstr(im->why, "node 0"));
	assert_non_null(strstr(im->why, "no image here"));
	assert_true(im->ended_at - t0 < MS(1)); /* at once, not after a timeout */
	assert_int_equal(h->writes_total, 0);
}

/* A NACK from a node we do not fetch from changes nothing. */
static void test_nack_from_other_node_ignored(void **state)
{
	struct h *h = *state;
	struct image *im = add_image(h, 10 * XFER_CHUNK_BYTES);
	start(h, im);
	h->qn = 0; /* the GET is lost */
	struct xfer *third;
	struct xfer_params p;
	xfer_params_default(&p);
	p.self = 2;
	p.cluster_id = 7;
	third = xfer_new(&p);
	uint8_t pkt[WIRE_MTU];
	size_t len;
	assert_int_equal(xfer_nack_pkt(third, im->dg, TND_ENOENT, "not here", pkt, sizeof(pkt), &len), 0);
	xfer_free(third);
	enqueue(h, FETCHER, pkt, len);
	struct pkt q = h->q[0];
	h->qn = 0;
	assert_int_equal(deliver(h, &q), 0);
	assert_false(im->ended);
	pump(h, 5000);
	assert_copied(im);
}

static void test_timeout(void **state)
{
	struct h *h = *state;
	h->drop_all = true;
	struct image *im = add_image(h, 100 * XFER_CHUNK_BYTES);
	mono_t t0 = h->now;
	start(h, im);
	pump(h, 40000);
	assert_true(im->ended);
	assert_int_equal(im->code, TND_ETIMEDOUT);
	assert_non_null(strstr(im->why, "30000 ms"));
	assert_true(im->ended_at - t0 >= MS(30000));
	assert_true(im->ended_at - t0 < MS(30000) + MS(100));
	/* backed off: one GET per rto, the rto doubling to its 1 s bound */
	assert_true(h->gets > 25 && h->gets < 50);
	assert_int_equal(im->prog.rto_ms, 1000);
}

/* One chunk every 20 s: each one is progress, so a fetch that takes far
 * longer than the idle timeout still completes. */
static void test_slow_but_alive(void **state)
{
	struct h *h = *state;
	h->trickle = MS(20000);
	struct image *im = add_image(h, 5 * XFER_CHUNK_BYTES);
	mono_t t0 = h->now;
	start(h, im);
	pump(h, 600000);
	assert_copied(im);
	assert_true(im->ended_at - t0 >= MS(80000));
}

/* A hand-made DATA from the server (node 0) to the fetcher. */
static void lying_data(struct h *h, const uint8_t *dg, uint64_t total, uint32_t index,
		       size_t len, uint8_t fill, int want_rc)
{
	uint8_t pkt[WIRE_MTU], data[XFER_CHUNK_BYTES + 10];
	memset(data, fill, sizeof(data));
	struct wire_hdr hd = { .version = 1, .cluster_id = 7, .sender = SERVER,
			       .type = XFER_MSG_DATA, .incarnation = 100, .seq = XFER_SEQ_SPACE | 999 };
	struct tlvw w;
	tlvw_init(&w, pkt + WIRE_HDR_LEN, WIRE_BODY_MAX);
	tlvw_put(&w, T_DIGEST, dg, XFER_DIGEST_LEN);
	tlvw_u64(&w, T_TOTAL, total);
	tlvw_u32(&w, T_INDEX, index);
	tlvw_put(&w, T_DATA, data, (uint16_t)len);
	size_t body;
	assert_int_equal(tlvw_finish(&w, &body), 0);
	hd.body_len = (uint16_t)body;
	wire_hdr_encode(&hd, pkt);
	struct pkt p = { .to = FETCHER, .len = WIRE_HDR_LEN + body };
	memcpy(p.b, pkt, p.len);
	assert_int_equal(deliver(h, &p), want_rc);
}

static void test_lying_data(void **state)
{
	struct h *h = *state;
	struct image *im = add_image(h, 50 * XFER_CHUNK_BYTES + 10);
	start(h, im);
	struct xfer_stats st0, st1;
	xfer_stats(h->core[FETCHER], &st0);
	/* wrong total for this digest: well formed, dropped, counted */
	lying_data(h, im->dg, im->len + XFER_CHUNK_BYTES, 3, XFER_CHUNK_BYTES, 0xee, 0);
	/* index out of range: malformed */
	lying_data(h, im->dg, im->len, 51, 10, 0xee, TND_EINVAL);
	lying_data(h, im->dg, im->len, 0xffffffffu, 10, 0xee, TND_EINVAL);
	/* wrong length for the chunk (short middle chunk, long last one) */
	lying_data(h, im->dg, im->len, 3, 100, 0xee, TND_EINVAL);
	lying_data(h, im->dg, im->len, 50, 11, 0xee, TND_EINVAL);
	/* a digest we do not fetch */
	uint8_t other[XFER_DIGEST_LEN];
	memset(other, 0x42, sizeof(other));
	lying_data(h, other, im->len, 3, XFER_CHUNK_BYTES, 0xee, 0);
	/* total 0 and above the bound: malformed */
	lying_data(h, im->dg, 0, 0, 0, 0xee, TND_EINVAL);
	lying_data(h, im->dg, XFER_BYTES_MAX + 1, 0, XFER_CHUNK_BYTES, 0xee, TND_EINVAL);
	assert_int_equal(h->writes_total, 0);
	xfer_stats(h->core[FETCHER], &st1);
	assert_int_equal(st1.rx_bad - st0.rx_bad, 7);
	assert_int_equal(st1.rx_stray - st0.rx_stray, 1);
	struct xfer_progress pr;
	assert_int_equal(xfer_progress(h->core[FETCHER], im->dg, &pr), 0);
	assert_int_equal(pr.bad, 1);
	assert_int_equal(pr.have, 0);
	assert_false(im->ended);
	/* the honest transfer still completes with the right bytes */
	pump(h, 5000);
	assert_copied(im);
}

/* The same DATA from any node is taken once; from self or another
 * cluster it is dropped. */
static void test_foreign_headers(void **state)
{
	struct h *h = *state;
	struct image *im = add_image(h, 3 * XFER_CHUNK_BYTES);
	start(h, im);
	uint8_t pkt[WIRE_MTU];
	size_t len;
	assert_int_equal(xfer_data_pkt(h->core[SERVER], im->dg, im->len, 0, im->bytes,
				       XFER_CHUNK_BYTES, pkt, sizeof(pkt), &len), 0);
	struct wire_hdr hd;
	assert_int_equal(wire_hdr_decode(pkt, len, &hd), 0);
	struct xfer_actions a;
	hd.cluster_id = 8;
	xfer_actions_reset(&a);
	assert_int_equal(xfer_recv(h->core[FETCHER], &hd, pkt + WIRE_HDR_LEN, hd.body_len, h->now, &a),
			 TND_EINVAL);
	assert_int_equal(a.n, 0);
	hd.cluster_id = 7;
	hd.sender = FETCHER;
	assert_int_equal(xfer_recv(h->core[FETCHER], &hd, pkt + WIRE_HDR_LEN, hd.body_len, h->now, &a),
			 TND_EINVAL);
	hd.sender = TND_NODES_MAX;
	assert_int_equal(xfer_recv(h->core[FETCHER], &hd, pkt + WIRE_HDR_LEN, hd.body_len, h->now, &a),
			 TND_EINVAL);
	hd.type = 59;
	hd.sender = SERVER;
	assert_int_equal(xfer_recv(h->core[FETCHER], &hd, pkt + WIRE_HDR_LEN, hd.body_len, h->now, &a),
			 TND_EINVAL);
	assert_int_equal(a.n, 0);
	pump(h, 1000);
	assert_copied(im);
}

static void test_start_refusals(void **state)
{
	struct h *h = *state;
	struct xfer_actions a;
	uint8_t dg[XFER_DIGEST_LEN] = { 1 };
	struct xfer *f = h->core[FETCHER];
	xfer_actions_reset(&a);
	assert_int_equal(xfer_start(f, dg, 0, SERVER, h->now, &a), TND_EINVAL);
	assert_int_equal(xfer_start(f, dg, XFER_BYTES_MAX + 1, SERVER, h->now, &a), TND_EINVAL);
	assert_int_equal(xfer_start(f, dg, 100, FETCHER, h->now, &a), TND_EINVAL);
	assert_int_equal(xfer_start(f, dg, 100, -1, h->now, &a), TND_EINVAL);
	assert_int_equal(xfer_start(f, dg, 100, TND_NODES_MAX, h->now, &a), TND_EINVAL);
	assert_int_equal(a.n, 0);
	/* the largest image is accepted: a 28 KiB bitmap */
	assert_int_equal(xfer_start(f, dg, XFER_BYTES_MAX, SERVER, h->now, &a), 0);
	assert_int_equal(a.n, 1);
	assert_int_equal(xfer_start(f, dg, XFER_BYTES_MAX, SERVER, h->now, &a), TND_EREFUSED);
	for (int i = 1; i < XFER_FETCHES_MAX; i++) {
		dg[0] = (uint8_t)(i + 1);
		assert_int_equal(xfer_start(f, dg, 100, SERVER, h->now, &a), 0);
	}
	dg[0] = 99;
	assert_int_equal(xfer_start(f, dg, 100, SERVER, h->now, &a), TND_ENOSPC);
	dg[0] = 2;
	assert_int_equal(xfer_cancel(f, dg), 0);
	assert_int_equal(xfer_cancel(f, dg), TND_ENOENT);
	dg[0] = 99;
	assert_int_equal(xfer_start(f, dg, 100, SERVER, h->now, &a), 0);
	struct xfer_progress pr;
	dg[0] = 1;
	assert_int_equal(xfer_progress(f, dg, &pr), 0);
	assert_int_equal(pr.total, XFER_BYTES_MAX);
	assert_int_equal(pr.chunks, XFER_CHUNKS_MAX);
	assert_int_equal(pr.outstanding, XFER_WINDOW_CHUNKS);
}

/* Build a GET body by hand. */
static size_t get_body(uint8_t *buf, size_t cap, const uint8_t *dg, uint64_t total,
		       const struct xfer_range *r, int nr, bool with_dg)
{
	struct tlvw w;
	uint8_t ranges[8 * 80];
	tlvw_init(&w, buf, cap);
	tlvw_u16(&w, 999, 7); /* unknown: skipped */
	if (with_dg)
		tlvw_put(&w, T_DIGEST, dg, XFER_DIGEST_LEN);
	tlvw_u64(&w, T_TOTAL, total);
	for (int i = 0; i < nr; i++) {
		wire_put32(ranges + 8 * i, r[i].first);
		wire_put32(ranges + 8 * i + 4, r[i].count);
	}
	tlvw_put(&w, T_RANGES, ranges, (uint16_t)(8 * nr));
	size_t len;
	assert_int_equal(tlvw_finish(&w, &len), 0);
	return len;
}

static void test_decode(void **state)
{
	(void)state;
	uint8_t body[1400], dg[XFER_DIGEST_LEN];
	memset(dg, 5, sizeof(dg));
	struct xfer_msgv m;
	struct xfer_range r[70];
	uint64_t total = 100 * XFER_CHUNK_BYTES;
	r[0] = (struct xfer_range){ 0, 10 };
	r[1] = (struct xfer_range){ 90, 10 };
	size_t n = get_body(body, sizeof(body), dg, total, r, 2, true);
	assert_int_equal(xfer_msg_decode(XFER_MSG_GET, body, n, &m), 0);
	assert_int_equal(m.n_ranges, 2);
	assert_int_equal(m.ranges[1].first, 90);
	assert_memory_equal(m.digest, dg, XFER_DIGEST_LEN);
	/* every truncation is refused, never read past */
	for (size_t k = 0; k < n; k++)
		assert_int_equal(xfer_msg_decode(XFER_MSG_GET, body, k, &m), TND_EINVAL);
	/* a range past the end, an empty range, too many ranges, no digest */
	r[1] = (struct xfer_range){ 91, 10 };
	n = get_body(body, sizeof(body), dg, total, r, 2, true);
	assert_int_equal(xfer_msg_decode(XFER_MSG_GET, body, n, &m), TND_EINVAL);
	r[1] = (struct xfer_range){ 0xffffffffu, 2 };
	n = get_body(body, sizeof(body), dg, total, r, 2, true);
	assert_int_equal(xfer_msg_decode(XFER_MSG_GET, body, n, &m), TND_EINVAL);
	r[1] = (struct xfer_range){ 5, 0 };
	n = get_body(body, sizeof(body), dg, total, r, 2, true);
	assert_int_equal(xfer_msg_decode(XFER_MSG_GET, body, n, &m), TND_EINVAL);
	for (int i = 0; i < 65; i++)
		r[i] = (struct xfer_range){ (uint32_t)i, 1 };
	n = get_body(body, sizeof(body), dg, total, r, 65, true);
	assert_int_equal(xfer_msg_decode(XFER_MSG_GET, body, n, &m), TND_EINVAL);
	n = get_body(body, sizeof(body), dg, total, r, 64, true);
	assert_int_equal(xfer_msg_decode(XFER_MSG_GET, body, n, &m), 0);
	n = get_body(body, sizeof(body), dg, total, r, 2, false);
	assert_int_equal(xfer_msg_decode(XFER_MSG_GET, body, n, &m), TND_EINVAL);
	/* a type that is not ours */
	n = get_body(body, sizeof(body), dg, total, r, 2, true);
	assert_int_equal(xfer_msg_decode(55, body, n, &m), TND_EINVAL);
	/* NACK: code required; an unknown code still means "no" */
	struct tlvw w;
	tlvw_init(&w, body, sizeof(body));
	tlvw_put(&w, T_DIGEST, dg, XFER_DIGEST_LEN);
	tlvw_u32(&w, T_CODE, 200);
	tlvw_put(&w, T_WHY, "gone", 4);
	assert_int_equal(tlvw_finish(&w, &n), 0);
	assert_int_equal(xfer_msg_decode(XFER_MSG_NACK, body, n, &m), 0);
	assert_int_equal(m.code, TND_ENOENT);
	assert_string_equal(m.why, "gone");
	tlvw_init(&w, body, sizeof(body));
	tlvw_put(&w, T_DIGEST, dg, XFER_DIGEST_LEN);
	assert_int_equal(tlvw_finish(&w, &n), 0);
	assert_int_equal(xfer_msg_decode(XFER_MSG_NACK, body, n, &m), TND_EINVAL);
	/* a NUL inside the sentence */
	tlvw_init(&w, body, sizeof(body));
	tlvw_put(&w, T_DIGEST, dg, XFER_DIGEST_LEN);
	tlvw_u32(&w, T_CODE, 7);
	tlvw_put(&w, T_WHY, "a\0b", 3);
	assert_int_equal(tlvw_finish(&w, &n), 0);
	assert_int_equal(xfer_msg_decode(XFER_MSG_NACK, body, n, &m), TND_EINVAL);
}

/* The server answers at most XFER_GET_CHUNKS_MAX chunks per GET, in the
 * order asked, whatever the GET asks. */
static void test_serve_bounded(void **state)
{
	struct h *h = *state;
	uint8_t pkt[WIRE_MTU], dg[XFER_DIGEST_LEN];
	memset(dg, 9, sizeof(dg));
	struct xfer_range r[3] = { { 500, 10 }, { 0, 60 }, { 1000, 60 } };
	size_t n = get_body(pkt + WIRE_HDR_LEN, WIRE_BODY_MAX, dg, 2000 * XFER_CHUNK_BYTES, r, 3, true);
	struct wire_hdr hd = { .version = 1, .cluster_id = 7, .sender = FETCHER,
			       .type = XFER_MSG_GET, .incarnation = 101, .seq = XFER_SEQ_SPACE | 1,
			       .body_len = (uint16_t)n };
	struct xfer_actions a;
	xfer_actions_reset(&a);
	assert_int_equal(xfer_recv(h->core[SERVER], &hd, pkt + WIRE_HDR_LEN, n, h->now, &a), 0);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.a[0].type, XFA_SERVE);
	assert_int_equal(a.a[0].to, FETCHER);
	assert_int_equal(a.a[0].n, XFER_GET_CHUNKS_MAX);
	assert_int_equal(a.a[0].index[0], 500);
	assert_int_equal(a.a[0].index[9], 509);
	assert_int_equal(a.a[0].index[10], 0);
	assert_int_equal(a.a[0].index[63], 53);
	/* a DATA of the wrong length is not encoded */
	size_t len;
	uint8_t chunk[XFER_CHUNK_BYTES] = { 0 };
	assert_int_equal(xfer_data_pkt(h->core[SERVER], dg, 2 * XFER_CHUNK_BYTES - 1, 1, chunk,
				       XFER_CHUNK_BYTES, pkt, sizeof(pkt), &len), TND_EINVAL);
	assert_int_equal(xfer_data_pkt(h->core[SERVER], dg, 2 * XFER_CHUNK_BYTES - 1, 1, chunk,
				       XFER_CHUNK_BYTES - 1, pkt, sizeof(pkt), &len), 0);
	assert_true(len <= WIRE_HDR_LEN + WIRE_BODY_MAX);
	/* sequence numbers live in their own space */
	struct wire_hdr out;
	assert_int_equal(wire_hdr_decode(pkt, len, &out), 0);
	assert_true(out.seq & XFER_SEQ_SPACE);
	assert_int_equal(out.seq & ~XFER_SEQ_SPACE, 1);
	assert_int_equal(out.incarnation, 100);
}

/* A full-size DATA fits the MTU with its tag. */
static void test_mtu(void **state)
{
	struct h *h = *state;
	uint8_t pkt[WIRE_MTU], dg[XFER_DIGEST_LEN] = { 0 }, chunk[XFER_CHUNK_BYTES] = { 0 };
	size_t len;
	assert_int_equal(xfer_data_pkt(h->core[SERVER], dg, XFER_BYTES_MAX, XFER_CHUNKS_MAX - 2, chunk,
				       XFER_CHUNK_BYTES, pkt, sizeof(pkt), &len), 0);
	assert_true(len + WIRE_TAG_LEN <= WIRE_MTU);
}

static void test_several_at_once(void **state)
{
	struct h *h = *state;
	h->loss_pct = 5;
	h->reorder = true;
	struct image *a = add_image(h, 300 * XFER_CHUNK_BYTES + 1);
	struct image *b = add_image(h, 200 * XFER_CHUNK_BYTES + 2);
	struct image *c = add_image(h, 100 * XFER_CHUNK_BYTES + 3);
	start(h, a);
	start(h, b);
	start(h, c);
	pump(h, 60000);
	assert_copied(a);
	assert_copied(b);
	assert_copied(c);
}

/* After a cancel, late DATA of that image is stray, and the same image
 * can be fetched again. */
static void test_cancel_then_again(void **state)
{
	struct h *h = *state;
	struct image *im = add_image(h, 200 * XFER_CHUNK_BYTES);
	start(h, im);
	struct pkt p = h->q[0];
	h->qn = 0;
	assert_int_equal(deliver(h, &p), 0); /* the server answers 64 DATA */
	assert_int_equal(h->qn, XFER_WINDOW_CHUNKS);
	assert_int_equal(xfer_cancel(h->core[FETCHER], im->dg), 0);
	struct xfer_stats st;
	p = h->q[0];
	assert_int_equal(deliver(h, &p), 0);
	xfer_stats(h->core[FETCHER], &st);
	assert_int_equal(st.rx_stray, 1);
	assert_int_equal(h->writes_total, 0);
	/* the rest arrives after the new start: taken (same bytes) */
	start(h, im);
	pump(h, 5000);
	assert_copied(im);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reordered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_and_reordered_and_duplicated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fast_resend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nack_from_other_node_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_but_alive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lying_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_serve_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mtu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_several_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_then_again, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
