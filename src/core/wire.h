/* wire.h - Tandem control protocol: message header and TLV codec.
 *
 * Every packet (UDP datagram, or TCP frame later) is
 *
 *   offset size field
 *   0      4    magic "TNDM"
 *   4      1    protocol version of this message's encoding
 *   5      1    cluster id
 *   6      1    sender node index
 *   7      1    message type (WIRE_MSG_*)
 *   8      8    sender incarnation (grows at every daemon start)
 *   16     8    sequence number (per sender and incarnation, from 1)
 *   24     2    body length (ciphertext incl. the 16-byte tag)
 *   26     ...  body
 *
 * all integers big-endian. The body is a sequence of TLVs (type u16,
 * length u16, value), encrypted and authenticated with the cluster key
 * (seal.h); the 26 header bytes are the associated data. A receiver skips
 * TLVs whose type it does not know, so protocol level N and N+1 talk to
 * each other (STYLE, "Wire protocol"); a receiver drops a message type it
 * does not know (counted). Decoding is bounds-checked and never reads past
 * the given length. */
#ifndef TND_WIRE_H
#define TND_WIRE_H

#include "types.h"

#define WIRE_MAGIC 0x544e444dU /* "TNDM" */
#define WIRE_HDR_LEN 26
#define WIRE_TAG_LEN 16
#define WIRE_MTU 1400          /* largest datagram we send, bytes */
#define WIRE_BODY_MAX (WIRE_MTU - WIRE_HDR_LEN - WIRE_TAG_LEN)

/* Protocol levels this build speaks. */
#define WIRE_PROTO_MIN 1
#define WIRE_PROTO_MAX 1

enum wire_msg {
	WIRE_MSG_HEARTBEAT = 1, /* liveness + group states + orders */
	WIRE_MSG_HANDOFF = 2,   /* planned transfer of a group's primary role */
	/* reserved for later protocol work: 16.. session sync, 32.. config
	 * sync, 48.. upgrade coordinator */
};

struct wire_hdr {
	uint8_t version;
	uint8_t cluster_id;
	uint8_t sender;
	uint8_t type;
	uint64_t incarnation;
	uint64_t seq;
	uint16_t body_len;
};

void wire_hdr_encode(const struct wire_hdr *h, uint8_t out[WIRE_HDR_LEN]);
/* Checks magic and that body_len fits in len - WIRE_HDR_LEN. */
int wire_hdr_decode(const uint8_t *buf, size_t len, struct wire_hdr *h);

/* TLV writer over a caller's buffer. Errors are sticky: after an overflow
 * every put is ignored and tlvw_finish() returns TND_ENOSPC. */
struct tlvw {
	uint8_t *buf;
	size_t cap, len;
	int err;
	size_t nest[4]; /* offsets of open nested TLV headers */
	int depth;
};
void tlvw_init(struct tlvw *w, uint8_t *buf, size_t cap);
void tlvw_put(struct tlvw *w, uint16_t type, const void *val, uint16_t len);
void tlvw_u8(struct tlvw *w, uint16_t type, uint8_t v);
void tlvw_u16(struct tlvw *w, uint16_t type, uint16_t v);
void tlvw_u32(struct tlvw *w, uint16_t type, uint32_t v);
void tlvw_u64(struct tlvw *w, uint16_t type, uint64_t v);
void tlvw_str(struct tlvw *w, uint16_t type, const char *s);
void tlvw_open(struct tlvw *w, uint16_t type);  /* nested TLV */
void tlvw_close(struct tlvw *w);
int tlvw_finish(struct tlvw *w, size_t *len);

/* TLV reader. tlvr_next() returns 1 with the next TLV, 0 at a clean end,
 * TND_EINVAL on a truncated TLV. */
struct tlvr {
	const uint8_t *buf;
	size_t len, off;
};
struct tlv {
	uint16_t type;
	uint16_t len;
	const uint8_t *val;
};
void tlvr_init(struct tlvr *r, const uint8_t *buf, size_t len);
int tlvr_next(struct tlvr *r, struct tlv *t);
/* Typed getters: TND_EINVAL unless the length is exactly right. */
int tlv_u8(const struct tlv *t, uint8_t *v);
int tlv_u16(const struct tlv *t, uint16_t *v);
int tlv_u32(const struct tlv *t, uint32_t *v);
int tlv_u64(const struct tlv *t, uint64_t *v);
/* Copies a string of at most cap-1 bytes with no NUL inside. */
int tlv_str(const struct tlv *t, char *out, size_t cap);

/* Byte order helpers. */
void wire_put16(uint8_t *p, uint16_t v);
void wire_put32(uint8_t *p, uint32_t v);
void wire_put64(uint8_t *p, uint64_t v);
uint16_t wire_get16(const uint8_t *p);
uint32_t wire_get32(const uint8_t *p);
uint64_t wire_get64(const uint8_t *p);

#endif
