/* fuzz_xfer.c - libFuzzer target for the image transfer's message decoder
 * and receive path (src/core/xfer.c): XFER_MSG_GET, DATA and NACK, as if
 * authenticated.
 *
 * The input is a sequence of messages: [sender][type][ms][len hi][len lo]
 * [body...]; type is taken modulo 4 from 56 (so 59, not ours, is tried
 * too), ms advances the clock before the message. The core (node 1) is
 * fetching two images from node 0: A (5000 bytes, digest 32 x 0x11) and B
 * (100 chunks, digest 32 x 0x22); it serves anything asked. After every
 * message the clock moves and the core ticks. Checked: no crash, leak or
 * read past a body; no action list overflows; a WRITE lies inside its
 * image and is exactly its chunk's length, and each chunk is written at
 * most once per fetch; a SERVE asks at most XFER_GET_CHUNKS_MAX chunks,
 * all inside the image; a fetch ends at most once; a decoded DATA encodes
 * again to the same fields; after a tick nothing is due (no spinning). */
#include <stdlib.h>
#include <string.h>
#include "core/xfer.h"

#define A_TOTAL 5000u
#define B_TOTAL (100u * XFER_CHUNK_BYTES)

struct img {
	uint8_t dg[XFER_DIGEST_LEN];
	uint64_t total;
	uint8_t written[(B_TOTAL / XFER_CHUNK_BYTES + 7) / 8];
	bool ended;
};

static struct img *img_of(struct img *im, const uint8_t *dg)
{
	for (int i = 0; i < 2; i++)
		if (memcmp(im[i].dg, dg, XFER_DIGEST_LEN) == 0)
			return &im[i];
	return NULL;
}

static void check(struct img *im, const struct xfer_actions *a)
{
	if (a->n_dropped)
		abort();
	for (int i = 0; i < a->n; i++) {
		const struct xfer_act *x = &a->a[i];
		struct img *m = img_of(im, x->digest);
		switch (x->type) {
		case XFA_WRITE:
			if (!m || m->ended || x->off != (uint64_t)x->chunk * XFER_CHUNK_BYTES ||
			    x->len != xfer_chunk_len(m->total, x->chunk) || x->len == 0 ||
			    (m->written[x->chunk / 8] & (1u << (x->chunk % 8))))
				abort();
			m->written[x->chunk / 8] |= (uint8_t)(1u << (x->chunk % 8));
			break;
		case XFA_END:
			if (!m || m->ended)
				abort();
			m->ended = true;
			if (x->code == 0) /* complete: every chunk written */
				for (uint32_t c = 0; c < xfer_chunks(m->total); c++)
					if (!(m->written[c / 8] & (1u << (c % 8))))
						abort();
			break;
		case XFA_SERVE:
			if (x->n < 0 || x->n > XFER_GET_CHUNKS_MAX || x->to < 0 || x->to > 3 || x->to == 1)
				abort();
			for (int k = 0; k < x->n; k++)
				if (x->index[k] >= xfer_chunks(x->total))
					abort();
			break;
		case XFA_SEND:
			if (x->len < WIRE_HDR_LEN || x->len + WIRE_TAG_LEN > WIRE_MTU)
				abort();
			break;
		}
	}
}

static void roundtrip(struct xfer *x, const uint8_t *body, size_t len)
{
	struct xfer_msgv *m = malloc(sizeof(*m)), *m2 = malloc(sizeof(*m2));
	uint8_t pkt[WIRE_MTU];
	size_t n;
	if (xfer_msg_decode(XFER_MSG_DATA, body, len, m) == 0) {
		if (xfer_data_pkt(x, m->digest, m->total, m->index, m->data, m->data_len, pkt,
				  sizeof(pkt), &n) != 0)
			abort();
		if (xfer_msg_decode(XFER_MSG_DATA, pkt + WIRE_HDR_LEN, n - WIRE_HDR_LEN, m2) != 0 ||
		    m2->total != m->total || m2->index != m->index ||
		    m2->data_len != m->data_len || memcmp(m2->data, m->data, m->data_len) ||
		    memcmp(m2->digest, m->digest, XFER_DIGEST_LEN))
			abort();
	}
	free(m);
	free(m2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xfer_params p;
	xfer_params_default(&p);
	p.self = 1;
	p.cluster_id = 3;
	p.proto = 1;
	struct xfer *x = xfer_new(&p);
	struct xfer_actions *a = malloc(sizeof(*a));
	struct img im[2];
	memset(im, 0, sizeof(im));
	memset(im[0].dg, 0x11, XFER_DIGEST_LEN);
	im[0].total = A_TOTAL;
	memset(im[1].dg, 0x22, XFER_DIGEST_LEN);
	im[1].total = B_TOTAL;
	mono_t now = MS_TO_MONO(1000);
	for (int i = 0; i < 2; i++) {
		xfer_actions_reset(a);
		if (xfer_start(x, im[i].dg, im[i].total, 0, now, a) != 0)
			abort();
		check(im, a);
	}
	size_t off = 0;
	while (size - off >= 5) {
		struct wire_hdr h = { .version = 1, .cluster_id = 3 };
		h.sender = data[off] % 4; /* 1 is self: dropped */
		h.type = (uint8_t)(XFER_MSG_GET + data[off + 1] % 4);
		now += MS_TO_MONO(data[off + 2]);
		size_t len = (size_t)data[off + 3] << 8 | data[off + 4];
		off += 5;
		if (len > size - off)
			len = size - off;
		uint8_t *body = malloc(len ? len : 1); /* exact size: ASan sees overreads */
		memcpy(body, data + off, len);
		off += len;
		h.body_len = (uint16_t)len;
		xfer_actions_reset(a);
		xfer_recv(x, &h, body, len, now, a);
		check(im, a);
		roundtrip(x, body, len);
		free(body);
		struct xfer_progress pr;
		for (int i = 0; i < 2; i++)
			if (xfer_progress(x, im[i].dg, &pr) == 0 &&
			    (pr.got_bytes > pr.total || pr.have > pr.chunks ||
			     pr.outstanding > XFER_WINDOW_CHUNKS || im[i].ended))
				abort();
		now += MS_TO_MONO(100);
		xfer_actions_reset(a);
		xfer_tick(x, now, a);
		check(im, a);
		/* a tick does what is due: nothing is left due at `now` (else
		 * the driver's loop would spin) */
		if (xfer_next_wake(x) <= now)
			abort();
	}
	free(a);
	xfer_free(x);
	return 0;
}
