/* xfer.c - image transfer core (the protocol is described in xfer.h).
 *
 * Owns: the table of fetches, each with its chunk bitmap (one bit per
 * chunk: 28 KiB for the largest image) and its window of outstanding
 * chunks with their send times, and the retransmission timer (RFC 6298).
 * The image bytes never pass through here except as pointers into a
 * received body: the driver writes them at their offsets.
 *
 * Invariant of a fetch: every chunk below next_new is either in the
 * bitmap or in the window (asked and not answered); chunks at or above
 * next_new were never asked, although some may already be in (a peer may
 * answer an older GET of the same image). So advancing next_new skips the
 * chunks that are in, and the fetch is complete exactly when have == n. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "xfer.h"

enum {
	T_DIGEST = 1, /* 32 bytes */
	T_TOTAL = 2,  /* u64 image bytes */
	T_INDEX = 3,  /* u32 chunk index */
	T_DATA = 4,   /* chunk bytes */
	T_RANGES = 5, /* n x (u32 first, u32 count), n in 1..XFER_GET_RANGES_MAX */
	T_CODE = 6,   /* u32: minus a tnd_err */
	T_WHY = 7,    /* sentence */
};

struct slot { /* one outstanding chunk */
	uint32_t idx;
	mono_t sent;
	uint32_t batch;  /* the GET that last asked it */
	uint16_t pos;    /* its place in that GET (the server's order) */
	uint8_t tries;   /* times asked; RTT samples only from tries == 1 */
	uint8_t skips;   /* later chunks of the same GET that arrived */
	bool fast;       /* ask again at the next GET */
};

struct fetch {
	bool used;
	uint8_t dg[XFER_DIGEST_LEN];
	uint64_t total, got_bytes;
	uint32_t n, have_n, next_new;
	int from;
	uint8_t *have;
	struct slot win[XFER_WINDOW_CHUNKS];
	int nwin;
	uint32_t batch;
	mono_t srtt, rttvar, rto;
	bool sampled;
	mono_t started, last_progress;
	uint64_t resent, fast_resent, dup, bad;
};

struct xfer {
	struct xfer_params p;
	uint64_t seq;
	struct fetch f[XFER_FETCHES_MAX];
	struct xfer_stats st;
	struct xfer_msgv m; /* scratch for recv (too large for the stack of a
			     * fuzzer's deep call chains, and reused) */
};

void xfer_params_default(struct xfer_params *p)
{
	memset(p, 0, sizeof(*p));
	p->rto_min_ms = 50;
	p->rto_max_ms = 1000;
	p->rto_init_ms = 200;
	p->idle_timeout_ms = 30000;
}

uint32_t xfer_chunks(uint64_t total)
{
	return (uint32_t)((total + XFER_CHUNK_BYTES - 1) / XFER_CHUNK_BYTES);
}

size_t xfer_chunk_len(uint64_t total, uint32_t index)
{
	uint64_t off = (uint64_t)index * XFER_CHUNK_BYTES;
	if (off >= total)
		return 0;
	return total - off < XFER_CHUNK_BYTES ? (size_t)(total - off) : XFER_CHUNK_BYTES;
}

void xfer_actions_reset(struct xfer_actions *out)
{
	out->n = 0;
	out->n_dropped = 0;
}

static struct xfer_act *act_add(struct xfer_actions *out, enum xfer_act_type t,
				const uint8_t *dg)
{
	if (out->n >= XFER_ACTIONS_MAX) {
		out->n_dropped++;
		return NULL;
	}
	struct xfer_act *a = &out->a[out->n++];
	a->type = t;
	memcpy(a->digest, dg, XFER_DIGEST_LEN);
	a->to = TND_NO_NODE;
	a->data = NULL;
	a->len = 0;
	a->n = 0;
	a->code = 0;
	a->why[0] = 0;
	return a;
}

/* --- encoding ---------------------------------------------------------------- */

/* Header and TLV writer for one message into pkt; finish with pkt_end. */
static void pkt_begin(struct xfer *x, uint8_t type, struct wire_hdr *h,
		      struct tlvw *w, uint8_t *pkt, size_t cap)
{
	memset(h, 0, sizeof(*h));
	h->version = x->p.proto;
	h->cluster_id = x->p.cluster_id;
	h->sender = (uint8_t)x->p.self;
	h->type = type;
	h->incarnation = x->p.incarnation;
	size_t room = cap < WIRE_MTU ? cap : WIRE_MTU;
	tlvw_init(w, pkt + WIRE_HDR_LEN, room - WIRE_HDR_LEN - WIRE_TAG_LEN);
}

static int pkt_end(struct xfer *x, struct wire_hdr *h, struct tlvw *w,
		   uint8_t *pkt, size_t *len)
{
	size_t body = 0;
	if (tlvw_finish(w, &body) != 0)
		return TND_ENOSPC;
	/* the sequence number is taken only for a packet that goes out */
	h->seq = XFER_SEQ_SPACE | ++x->seq;
	h->body_len = (uint16_t)body;
	wire_hdr_encode(h, pkt);
	*len = WIRE_HDR_LEN + body;
	x->st.tx++;
	return 0;
}

int xfer_data_pkt(struct xfer *x, const uint8_t digest[XFER_DIGEST_LEN],
		  uint64_t total, uint32_t index, const uint8_t *data,
		  size_t len, uint8_t *pkt, size_t cap, size_t *pkt_len)
{
	if (cap < WIRE_MTU || total == 0 || total > XFER_BYTES_MAX ||
	    index >= xfer_chunks(total) || len != xfer_chunk_len(total, index))
		return TND_EINVAL;
	struct wire_hdr h;
	struct tlvw w;
	pkt_begin(x, XFER_MSG_DATA, &h, &w, pkt, cap);
	tlvw_put(&w, T_DIGEST, digest, XFER_DIGEST_LEN);
	tlvw_u64(&w, T_TOTAL, total);
	tlvw_u32(&w, T_INDEX, index);
	tlvw_put(&w, T_DATA, data, (uint16_t)len);
	int rc = pkt_end(x, &h, &w, pkt, pkt_len);
	if (rc == 0)
		x->st.served_chunks++;
	return rc;
}

int xfer_nack_pkt(struct xfer *x, const uint8_t digest[XFER_DIGEST_LEN],
		  int code, const char *why, uint8_t *pkt, size_t cap,
		  size_t *pkt_len)
{
	if (cap < WIRE_MTU || code >= 0)
		return TND_EINVAL;
	struct wire_hdr h;
	struct tlvw w;
	pkt_begin(x, XFER_MSG_NACK, &h, &w, pkt, cap);
	tlvw_put(&w, T_DIGEST, digest, XFER_DIGEST_LEN);
	tlvw_u32(&w, T_CODE, (uint32_t)-code);
	if (why && why[0]) {
		size_t n = strnlen(why, XFER_WHY_LEN - 1);
		tlvw_put(&w, T_WHY, why, (uint16_t)n);
	}
	return pkt_end(x, &h, &w, pkt, pkt_len);
}

/* --- decoding ---------------------------------------------------------------- */

#define HAS(t) (1u << (t))

int xfer_msg_decode(uint8_t type, const uint8_t *body, size_t len,
		    struct xfer_msgv *m)
{
	struct tlvr r;
	struct tlv t;
	unsigned has = 0;
	int rc;

	memset(m, 0, offsetof(struct xfer_msgv, ranges));
	m->why[0] = 0;
	m->type = type;
	if (type < XFER_MSG_GET || type > XFER_MSG_NACK)
		return TND_EINVAL;
	tlvr_init(&r, body, len);
	while ((rc = tlvr_next(&r, &t)) == 1) {
		int e = 0;
		switch (t.type) {
		case T_DIGEST:
			if (t.len != XFER_DIGEST_LEN)
				return TND_EINVAL;
			memcpy(m->digest, t.val, XFER_DIGEST_LEN);
			break;
		case T_TOTAL: e = tlv_u64(&t, &m->total); break;
		case T_INDEX: e = tlv_u32(&t, &m->index); break;
		case T_DATA:
			m->data = t.val;
			m->data_len = t.len;
			break;
		case T_RANGES: {
			if (has & HAS(T_RANGES) || t.len == 0 || t.len % 8 ||
			    t.len / 8 > XFER_GET_RANGES_MAX)
				return TND_EINVAL;
			m->n_ranges = t.len / 8;
			for (int i = 0; i < m->n_ranges; i++) {
				m->ranges[i].first = wire_get32(t.val + 8 * i);
				m->ranges[i].count = wire_get32(t.val + 8 * i + 4);
			}
			break;
		}
		case T_CODE: {
			uint32_t c;
			e = tlv_u32(&t, &c);
			/* an unknown code from a newer peer still means "no" */
			m->code = c >= 1 && c <= (uint32_t)-TND_ETIMEDOUT ? -(int)c : TND_ENOENT;
			break;
		}
		case T_WHY: {
			size_t n = t.len < XFER_WHY_LEN - 1 ? t.len : XFER_WHY_LEN - 1;
			if (memchr(t.val, 0, n))
				return TND_EINVAL;
			memcpy(m->why, t.val, n);
			m->why[n] = 0;
			break;
		}
		default:
			continue; /* unknown TLVs are skipped (STYLE) */
		}
		if (e)
			return TND_EINVAL;
		has |= HAS(t.type);
	}
	if (rc < 0)
		return rc;
	if (!(has & HAS(T_DIGEST)))
		return TND_EINVAL;
	switch (type) {
	case XFER_MSG_GET: {
		if ((has & (HAS(T_TOTAL) | HAS(T_RANGES))) != (HAS(T_TOTAL) | HAS(T_RANGES)) ||
		    m->total == 0 || m->total > XFER_BYTES_MAX)
			return TND_EINVAL;
		uint64_t n = xfer_chunks(m->total);
		for (int i = 0; i < m->n_ranges; i++)
			if (m->ranges[i].count == 0 ||
			    (uint64_t)m->ranges[i].first + m->ranges[i].count > n)
				return TND_EINVAL;
		break;
	}
	case XFER_MSG_DATA:
		if ((has & (HAS(T_TOTAL) | HAS(T_INDEX) | HAS(T_DATA))) !=
		    (HAS(T_TOTAL) | HAS(T_INDEX) | HAS(T_DATA)) ||
		    m->total == 0 || m->total > XFER_BYTES_MAX ||
		    m->index >= xfer_chunks(m->total) ||
		    m->data_len != xfer_chunk_len(m->total, m->index))
			return TND_EINVAL;
		break;
	case XFER_MSG_NACK:
		if (!(has & HAS(T_CODE)))
			return TND_EINVAL;
		break;
	}
	return 0;
}

/* --- fetches ----------------------------------------------------------------- */

static void progress_of(const struct fetch *f, struct xfer_progress *out);

static bool dg_eq(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, XFER_DIGEST_LEN) == 0;
}

static struct fetch *find(const struct xfer *x, const uint8_t *dg)
{
	for (int i = 0; i < XFER_FETCHES_MAX; i++)
		if (x->f[i].used && dg_eq(x->f[i].dg, dg))
			return (struct fetch *)&x->f[i];
	return NULL;
}

static bool bit(const uint8_t *b, uint32_t i)
{
	return b[i / 8] & (1u << (i % 8));
}

static void fetch_clear(struct fetch *f)
{
	free(f->have);
	memset(f, 0, sizeof(*f));
}

static void clamp_rto(const struct xfer *x, struct fetch *f)
{
	mono_t lo = MS_TO_MONO(x->p.rto_min_ms), hi = MS_TO_MONO(x->p.rto_max_ms);
	if (f->rto < lo)
		f->rto = lo;
	if (f->rto > hi)
		f->rto = hi;
}

/* RFC 6298 section 2, with the clock granularity G taken as 1 ms. */
static void rtt_sample(const struct xfer *x, struct fetch *f, mono_t r)
{
	if (r < 0)
		r = 0;
	if (!f->sampled) {
		f->srtt = r;
		f->rttvar = r / 2;
		f->sampled = true;
	} else {
		mono_t d = f->srtt > r ? f->srtt - r : r - f->srtt;
		f->rttvar = (3 * f->rttvar + d) / 4;
		f->srtt = (7 * f->srtt + r) / 8;
	}
	mono_t k = 4 * f->rttvar;
	f->rto = f->srtt + (k > MS_TO_MONO(1) ? k : MS_TO_MONO(1));
	clamp_rto(x, f);
}

static void end(struct xfer *x, struct fetch *f, struct xfer_actions *out,
		int code, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void end(struct xfer *x, struct fetch *f, struct xfer_actions *out,
		int code, const char *fmt, ...)
{
	(void)x;
	struct xfer_act *a = act_add(out, XFA_END, f->dg);
	if (a) {
		a->code = code;
		a->total = f->total;
		progress_of(f, &a->prog);
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(a->why, sizeof(a->why), fmt, ap);
		va_end(ap);
	}
	/* With no room for the END the fetch is still forgotten: the
	 * driver's action list is sized so this cannot happen (at most one
	 * END per fetch per call), and a lost END must not leave a fetch
	 * that can never end. */
	fetch_clear(f);
}

static bool expired(const struct fetch *f, const struct slot *s, mono_t now)
{
	return now - s->sent >= f->rto;
}

static bool more_new(struct fetch *f)
{
	while (f->next_new < f->n && bit(f->have, f->next_new))
		f->next_new++;
	return f->next_new < f->n;
}

/* Ask again for the chunks that timed out or were skipped, then for new
 * ones up to the window; one GET of at most XFER_GET_CHUNKS_MAX chunks. */
static void send_get(struct xfer *x, struct fetch *f, mono_t now,
		     struct xfer_actions *out)
{
	uint32_t idx[XFER_GET_CHUNKS_MAX];
	int k = 0;
	bool timed_out = false;
	uint32_t b = f->batch + 1;

	for (int i = 0; i < f->nwin && k < XFER_GET_CHUNKS_MAX; i++) {
		struct slot *s = &f->win[i];
		if (!s->fast && !expired(f, s, now))
			continue;
		if (s->fast)
			f->fast_resent++;
		else
			timed_out = true;
		f->resent++;
		s->sent = now;
		s->batch = b;
		s->pos = (uint16_t)k;
		if (s->tries < UINT8_MAX)
			s->tries++;
		s->skips = 0;
		s->fast = false;
		idx[k++] = s->idx;
	}
	while (f->nwin < XFER_WINDOW_CHUNKS && k < XFER_GET_CHUNKS_MAX && more_new(f)) {
		struct slot *s = &f->win[f->nwin++];
		s->idx = f->next_new++;
		s->sent = now;
		s->batch = b;
		s->pos = (uint16_t)k;
		s->tries = 1;
		s->skips = 0;
		s->fast = false;
		idx[k++] = s->idx;
	}
	if (k == 0)
		return;
	/* RFC 6298 5.5: back off on an expiry; only one doubling per GET,
	 * since the chunks of one window time out together. */
	if (timed_out) {
		f->rto *= 2;
		clamp_rto(x, f);
	}
	struct xfer_act *a = act_add(out, XFA_SEND, f->dg);
	if (!a)
		return; /* the slots' timers ask again */
	f->batch = b;
	a->to = f->from;
	uint8_t ranges[XFER_GET_RANGES_MAX * 8];
	int nr = 0;
	for (int i = 0; i < k;) {
		int j = i + 1;
		while (j < k && idx[j] == idx[j - 1] + 1)
			j++;
		wire_put32(ranges + 8 * nr, idx[i]);
		wire_put32(ranges + 8 * nr + 4, (uint32_t)(j - i));
		nr++;
		i = j;
	}
	struct wire_hdr h;
	struct tlvw w;
	pkt_begin(x, XFER_MSG_GET, &h, &w, a->pkt, sizeof(a->pkt));
	tlvw_put(&w, T_DIGEST, f->dg, XFER_DIGEST_LEN);
	tlvw_u64(&w, T_TOTAL, f->total);
	tlvw_put(&w, T_RANGES, ranges, (uint16_t)(8 * nr));
	if (pkt_end(x, &h, &w, a->pkt, &a->len) != 0)
		out->n--; /* unreachable: 64 ranges take 512 bytes */
}

static bool any_due(const struct fetch *f, mono_t now)
{
	for (int i = 0; i < f->nwin; i++)
		if (f->win[i].fast || expired(f, &f->win[i], now))
			return true;
	return false;
}

struct xfer *xfer_new(const struct xfer_params *p)
{
	struct xfer *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->p = *p;
	if (!x->p.rto_min_ms)
		x->p.rto_min_ms = 50;
	if (x->p.rto_max_ms < x->p.rto_min_ms)
		x->p.rto_max_ms = x->p.rto_min_ms;
	if (!x->p.rto_init_ms)
		x->p.rto_init_ms = 200;
	if (!x->p.idle_timeout_ms)
		x->p.idle_timeout_ms = 30000;
	return x;
}

void xfer_free(struct xfer *x)
{
	if (!x)
		return;
	for (int i = 0; i < XFER_FETCHES_MAX; i++)
		fetch_clear(&x->f[i]);
	free(x);
}

int xfer_start(struct xfer *x, const uint8_t digest[XFER_DIGEST_LEN],
	       uint64_t bytes, int from, mono_t now, struct xfer_actions *out)
{
	if (bytes == 0 || bytes > XFER_BYTES_MAX || from < 0 ||
	    from >= TND_NODES_MAX || from == x->p.self)
		return TND_EINVAL;
	if (find(x, digest))
		return TND_EREFUSED;
	struct fetch *f = NULL;
	for (int i = 0; i < XFER_FETCHES_MAX && !f; i++)
		if (!x->f[i].used)
			f = &x->f[i];
	if (!f)
		return TND_ENOSPC;
	memset(f, 0, sizeof(*f));
	f->n = xfer_chunks(bytes);
	f->have = calloc((f->n + 7) / 8, 1);
	if (!f->have)
		return TND_ENOSPC;
	f->used = true;
	memcpy(f->dg, digest, XFER_DIGEST_LEN);
	f->total = bytes;
	f->from = from;
	f->rto = MS_TO_MONO(x->p.rto_init_ms);
	clamp_rto(x, f);
	f->started = f->last_progress = now;
	send_get(x, f, now, out);
	return 0;
}

int xfer_cancel(struct xfer *x, const uint8_t digest[XFER_DIGEST_LEN])
{
	struct fetch *f = find(x, digest);
	if (!f)
		return TND_ENOENT;
	fetch_clear(f);
	return 0;
}

static void serve(struct xfer *x, int to, const struct xfer_msgv *m,
		  struct xfer_actions *out)
{
	struct xfer_act *a = act_add(out, XFA_SERVE, m->digest);
	if (!a)
		return;
	a->to = to;
	a->total = m->total;
	/* at most XFER_GET_CHUNKS_MAX per GET, whatever it asks: the
	 * fetcher asks the rest again, so one message costs a bounded
	 * amount of reading and sending */
	for (int r = 0; r < m->n_ranges && a->n < XFER_GET_CHUNKS_MAX; r++)
		for (uint32_t i = 0; i < m->ranges[r].count && a->n < XFER_GET_CHUNKS_MAX; i++)
			a->index[a->n++] = m->ranges[r].first + i;
}

static void on_data(struct xfer *x, struct fetch *f, const struct xfer_msgv *m,
		    mono_t now, struct xfer_actions *out)
{
	if (m->total != f->total) {
		f->bad++;
		x->st.rx_bad++;
		return;
	}
	uint32_t i = m->index;
	if (bit(f->have, i)) {
		f->dup++;
		x->st.rx_dup++;
		return;
	}
	struct xfer_act *a = act_add(out, XFA_WRITE, f->dg);
	if (!a)
		return; /* not taken: it will be asked again */
	a->off = (uint64_t)i * XFER_CHUNK_BYTES;
	a->data = m->data;
	a->len = m->data_len;
	a->chunk = i;
	a->total = f->total;
	f->have[i / 8] |= (uint8_t)(1u << (i % 8));
	f->have_n++;
	f->got_bytes += m->data_len;
	f->last_progress = now;
	x->st.rx_ok++;
	for (int k = 0; k < f->nwin; k++) {
		struct slot *s = &f->win[k];
		if (s->idx != i)
			continue;
		if (s->tries == 1)
			rtt_sample(x, f, now - s->sent);
		/* earlier chunks of the same GET that are still missing
		 * were probably lost (the server answers in order) */
		for (int j = 0; j < f->nwin; j++) {
			struct slot *o = &f->win[j];
			if (j != k && o->batch == s->batch && o->pos < s->pos && !o->fast &&
			    ++o->skips >= XFER_FAST_RESEND_SKIPS)
				o->fast = true;
		}
		f->win[k] = f->win[--f->nwin];
		break;
	}
	if (f->have_n == f->n) {
		end(x, f, out, 0, "all %u chunks in", f->n);
		return;
	}
	bool refill = XFER_WINDOW_CHUNKS - f->nwin >= XFER_GET_BATCH_CHUNKS && more_new(f);
	if (refill || f->nwin == 0 || any_due(f, now))
		send_get(x, f, now, out);
}

int xfer_recv(struct xfer *x, const struct wire_hdr *h, const uint8_t *body,
	      size_t len, mono_t now, struct xfer_actions *out)
{
	struct xfer_msgv *m = &x->m;
	if (h->sender >= TND_NODES_MAX || h->sender == x->p.self ||
	    h->cluster_id != x->p.cluster_id ||
	    xfer_msg_decode(h->type, body, len, m) != 0) {
		x->st.rx_bad++;
		return TND_EINVAL;
	}
	struct fetch *f;
	switch (h->type) {
	case XFER_MSG_GET:
		x->st.rx_ok++;
		serve(x, h->sender, m, out);
		break;
	case XFER_MSG_DATA:
		f = find(x, m->digest);
		if (!f) {
			x->st.rx_stray++; /* late: the fetch ended or never was */
			break;
		}
		on_data(x, f, m, now, out);
		break;
	case XFER_MSG_NACK:
		f = find(x, m->digest);
		/* only the node we fetch from can tell us it has nothing */
		if (!f || f->from != h->sender) {
			x->st.rx_stray++;
			break;
		}
		x->st.rx_ok++;
		end(x, f, out, m->code, "node %d cannot serve the image: %s", h->sender,
		    m->why[0] ? m->why : tnd_strerror(m->code));
		break;
	}
	return 0;
}

int xfer_tick(struct xfer *x, mono_t now, struct xfer_actions *out)
{
	for (int i = 0; i < XFER_FETCHES_MAX; i++) {
		struct fetch *f = &x->f[i];
		if (!f->used)
			continue;
		if (now - f->last_progress >= MS_TO_MONO(x->p.idle_timeout_ms)) {
			end(x, f, out, TND_ETIMEDOUT,
			    "no chunk from node %d for %u ms (%u of %u chunks in)", f->from,
			    x->p.idle_timeout_ms, f->have_n, f->n);
			continue;
		}
		if (any_due(f, now) || (f->nwin < XFER_WINDOW_CHUNKS && more_new(f)))
			send_get(x, f, now, out);
	}
	return 0;
}

mono_t xfer_next_wake(const struct xfer *x)
{
	mono_t w = MONO_NEVER;
	for (int i = 0; i < XFER_FETCHES_MAX; i++) {
		const struct fetch *f = &x->f[i];
		if (!f->used)
			continue;
		mono_t t = f->last_progress + MS_TO_MONO(x->p.idle_timeout_ms);
		if (t < w)
			w = t;
		for (int k = 0; k < f->nwin; k++) {
			t = f->win[k].fast ? f->win[k].sent : f->win[k].sent + f->rto;
			if (t < w)
				w = t;
		}
		/* window not full with chunks left to ask (an action list
		 * was full): at once */
		if (f->nwin == 0 && f->have_n < f->n && f->last_progress < w)
			w = f->last_progress;
	}
	return w;
}

bool xfer_has_chunk(const struct xfer *x, const uint8_t digest[XFER_DIGEST_LEN],
		    uint32_t index)
{
	const struct fetch *f = find(x, digest);
	return f && index < f->n && bit(f->have, index);
}

static void progress_of(const struct fetch *f, struct xfer_progress *out)
{
	out->from = f->from;
	out->total = f->total;
	out->got_bytes = f->got_bytes;
	out->chunks = f->n;
	out->have = f->have_n;
	out->outstanding = (uint32_t)f->nwin;
	out->rto_ms = (uint32_t)MONO_TO_MS(f->rto);
	out->resent = f->resent;
	out->fast_resent = f->fast_resent;
	out->dup = f->dup;
	out->bad = f->bad;
	out->started = f->started;
}

int xfer_progress(const struct xfer *x, const uint8_t digest[XFER_DIGEST_LEN],
		  struct xfer_progress *out)
{
	const struct fetch *f = find(x, digest);
	if (!f)
		return TND_ENOENT;
	progress_of(f, out);
	return 0;
}

void xfer_stats(const struct xfer *x, struct xfer_stats *out)
{
	*out = x->st;
}
