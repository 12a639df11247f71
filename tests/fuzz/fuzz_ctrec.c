/* fuzz_ctrec.c - libFuzzer target for the conntrack driver's two parsers
 * of outside input, chosen by the first byte:
 *
 *  < 0x80: the session record decoder (ct_from_rec / ct_rec_hash: what a
 *    secondary does with every record a peer sends before injecting it).
 *    Input: op, key_len, val_len, then key and value bytes. A record that
 *    does not decode must be refused by both functions alike; one that
 *    decodes must survive the round trip ct_from_rec -> ct_to_rec with the
 *    same key and stable hash.
 *  >= 0x80: the kernel message parser (ct_msg_to_rec: every dump entry and
 *    event). Bit 0 picks the op (DELETE when set); the rest is the netlink
 *    message. A message it accepts gives a record that decodes, whose
 *    stable hash ct_rec_hash recomputes equal, and which survives the round
 *    trip through ct_from_rec -> ct_to_rec.
 *
 * No crash, no leak, no read out of bounds (the message is copied to a
 * buffer of exactly its size). */
#include <stdlib.h>
#include <string.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include "io/ct.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctrec r, back;
	struct nf_conntrack *c;
	uint64_t h;
	int rc, rh;

	if (size >= 1 && data[0] >= 0x80) {
		uint8_t op = (data[0] & 1) ? CTREC_DELETE : CTREC_UPSERT;
		uint8_t *m = malloc(size - 1 ? size - 1 : 1);
		if (!m)
			abort();
		memcpy(m, data + 1, size - 1);
		rc = ct_msg_to_rec(m, size - 1, op, &r);
		free(m);
		if (rc == 0) {
			if (r.op != op || r.key_len < 1 || r.key_len > CTREC_KEY_MAX ||
			    r.val_len > CTREC_VAL_MAX || (op == CTREC_DELETE && r.val_len))
				abort();
			if (ct_rec_hash(&r, &h) != 0 || h != r.stable_hash)
				abort(); /* the record it made does not decode the same */
			c = nfct_new();
			if (!c || ct_from_rec(&r, c) != 0 || ct_to_rec(c, op, &back) != 0)
				abort();
			if (back.key_len != r.key_len || memcmp(back.key, r.key, r.key_len) ||
			    back.stable_hash != r.stable_hash)
				abort();
			nfct_destroy(c);
		} else if (rc != TND_EINVAL && rc != TND_ENOENT) {
			abort();
		}
		return 0;
	}
	if (size < 3)
		return 0;
	memset(&r, 0, sizeof(r));
	r.op = data[0];
	r.key_len = data[1];
	r.val_len = data[2];
	data += 3;
	size -= 3;
	/* Lengths as given (possibly lying, up to 255); the bytes present are
	 * copied, the rest stays zero. */
	memcpy(r.key, data, size < CTREC_KEY_MAX ? size : CTREC_KEY_MAX);
	if (size > CTREC_KEY_MAX)
		memcpy(r.val, data + CTREC_KEY_MAX,
		       size - CTREC_KEY_MAX < CTREC_VAL_MAX ? size - CTREC_KEY_MAX : CTREC_VAL_MAX);

	c = nfct_new();
	if (!c)
		abort();
	rc = ct_from_rec(&r, c);
	rh = ct_rec_hash(&r, &h);
	if ((rc == 0) != (rh == 0))
		abort(); /* the two decoders disagree */
	if (rc == 0) {
		if (r.key_len > CTREC_KEY_MAX || r.val_len > CTREC_VAL_MAX)
			abort(); /* accepted an impossible length */
		if (ct_to_rec(c, r.op, &back) != 0)
			abort(); /* decoded but cannot be encoded again */
		if (back.key_len != r.key_len || memcmp(back.key, r.key, r.key_len))
			abort();
		if (back.stable_hash != h)
			abort();
		/* And the re-encoded record decodes the same. */
		nfct_destroy(c);
		c = nfct_new();
		if (!c || ct_from_rec(&back, c) != 0)
			abort();
	} else if (rc != TND_EINVAL) {
		abort();
	}
	nfct_destroy(c);
	return 0;
}
