/* wire.c - Tandem control protocol header and TLV codec (see wire.h).
 *
 * Every read is checked against the remaining length before it happens; a
 * TLV whose length runs past its container is malformed, never truncated
 * silently. Nested TLVs are just TLVs whose value is again a TLV list. */
#include <string.h>
#include "wire.h"

void wire_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

void wire_put32(uint8_t *p, uint32_t v)
{
	wire_put16(p, (uint16_t)(v >> 16));
	wire_put16(p + 2, (uint16_t)v);
}

void wire_put64(uint8_t *p, uint64_t v)
{
	wire_put32(p, (uint32_t)(v >> 32));
	wire_put32(p + 4, (uint32_t)v);
}

uint16_t wire_get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

uint32_t wire_get32(const uint8_t *p)
{
	return ((uint32_t)wire_get16(p) << 16) | wire_get16(p + 2);
}

uint64_t wire_get64(const uint8_t *p)
{
	return ((uint64_t)wire_get32(p) << 32) | wire_get32(p + 4);
}

void wire_hdr_encode(const struct wire_hdr *h, uint8_t out[WIRE_HDR_LEN])
{
	wire_put32(out, WIRE_MAGIC);
	out[4] = h->version;
	out[5] = h->cluster_id;
	out[6] = h->sender;
	out[7] = h->type;
	wire_put64(out + 8, h->incarnation);
	wire_put64(out + 16, h->seq);
	wire_put16(out + 24, h->body_len);
}

int wire_hdr_decode(const uint8_t *buf, size_t len, struct wire_hdr *h)
{
	if (len < WIRE_HDR_LEN || wire_get32(buf) != WIRE_MAGIC)
		return TND_EINVAL;
	h->version = buf[4];
	h->cluster_id = buf[5];
	h->sender = buf[6];
	h->type = buf[7];
	h->incarnation = wire_get64(buf + 8);
	h->seq = wire_get64(buf + 16);
	h->body_len = wire_get16(buf + 24);
	if ((size_t)h->body_len > len - WIRE_HDR_LEN)
		return TND_EINVAL;
	return 0;
}

void tlvw_init(struct tlvw *w, uint8_t *buf, size_t cap)
{
	memset(w, 0, sizeof(*w));
	w->buf = buf;
	w->cap = cap;
}

static uint8_t *tlvw_reserve(struct tlvw *w, size_t n)
{
	if (w->err || w->cap - w->len < n) {
		w->err = TND_ENOSPC;
		return NULL;
	}
	uint8_t *p = w->buf + w->len;
	w->len += n;
	return p;
}

void tlvw_put(struct tlvw *w, uint16_t type, const void *val, uint16_t len)
{
	uint8_t *p = tlvw_reserve(w, 4u + len);
	if (!p)
		return;
	wire_put16(p, type);
	wire_put16(p + 2, len);
	if (len)
		memcpy(p + 4, val, len);
}

void tlvw_u8(struct tlvw *w, uint16_t type, uint8_t v)
{
	tlvw_put(w, type, &v, 1);
}

void tlvw_u16(struct tlvw *w, uint16_t type, uint16_t v)
{
	uint8_t b[2];
	wire_put16(b, v);
	tlvw_put(w, type, b, 2);
}

void tlvw_u32(struct tlvw *w, uint16_t type, uint32_t v)
{
	uint8_t b[4];
	wire_put32(b, v);
	tlvw_put(w, type, b, 4);
}

void tlvw_u64(struct tlvw *w, uint16_t type, uint64_t v)
{
	uint8_t b[8];
	wire_put64(b, v);
	tlvw_put(w, type, b, 8);
}

void tlvw_str(struct tlvw *w, uint16_t type, const char *s)
{
	size_t n = strlen(s);
	if (n > UINT16_MAX) {
		w->err = TND_EINVAL;
		return;
	}
	tlvw_put(w, type, s, (uint16_t)n);
}

void tlvw_open(struct tlvw *w, uint16_t type)
{
	if (w->depth >= (int)(sizeof(w->nest) / sizeof(w->nest[0]))) {
		w->err = TND_ENOSPC;
		return;
	}
	size_t at = w->len;
	uint8_t *p = tlvw_reserve(w, 4);
	if (!p)
		return;
	wire_put16(p, type);
	wire_put16(p + 2, 0);
	w->nest[w->depth++] = at;
}

void tlvw_close(struct tlvw *w)
{
	if (w->err)
		return;
	if (w->depth <= 0) {
		w->err = TND_EINVAL;
		return;
	}
	size_t at = w->nest[--w->depth];
	size_t inner = w->len - at - 4;
	if (inner > UINT16_MAX) {
		w->err = TND_ENOSPC;
		return;
	}
	wire_put16(w->buf + at + 2, (uint16_t)inner);
}

int tlvw_finish(struct tlvw *w, size_t *len)
{
	if (!w->err && w->depth != 0)
		w->err = TND_EINVAL;
	if (w->err)
		return w->err;
	*len = w->len;
	return 0;
}

void tlvr_init(struct tlvr *r, const uint8_t *buf, size_t len)
{
	r->buf = buf;
	r->len = len;
	r->off = 0;
}

int tlvr_next(struct tlvr *r, struct tlv *t)
{
	if (r->off == r->len)
		return 0;
	if (r->len - r->off < 4)
		return TND_EINVAL;
	const uint8_t *p = r->buf + r->off;
	uint16_t len = wire_get16(p + 2);
	if (r->len - r->off - 4 < len)
		return TND_EINVAL;
	t->type = wire_get16(p);
	t->len = len;
	t->val = p + 4;
	r->off += 4u + len;
	return 1;
}

int tlv_u8(const struct tlv *t, uint8_t *v)
{
	if (t->len != 1)
		return TND_EINVAL;
	*v = t->val[0];
	return 0;
}

int tlv_u16(const struct tlv *t, uint16_t *v)
{
	if (t->len != 2)
		return TND_EINVAL;
	*v = wire_get16(t->val);
	return 0;
}

int tlv_u32(const struct tlv *t, uint32_t *v)
{
	if (t->len != 4)
		return TND_EINVAL;
	*v = wire_get32(t->val);
	return 0;
}

int tlv_u64(const struct tlv *t, uint64_t *v)
{
	if (t->len != 8)
		return TND_EINVAL;
	*v = wire_get64(t->val);
	return 0;
}

int tlv_str(const struct tlv *t, char *out, size_t cap)
{
	if (cap == 0 || t->len >= cap || memchr(t->val, 0, t->len))
		return TND_EINVAL;
	memcpy(out, t->val, t->len);
	out[t->len] = 0;
	return 0;
}
