/* fuzz_ctsync.c - libFuzzer target for the session-sync messages
 * (CTS_MSG_DATA and CTS_MSG_ACK) as ctsync_recv sees them after
 * authentication, fed to a secondary and to a primary.
 *
 * The input is a sequence of chunks: u16 length (big-endian), one mode
 * byte, then `length` bytes of message body. Mode bit 0 picks the target
 * (0: the secondary, node 1, following node 0; 1: the primary, node 0,
 * with node 1 admitted to its first bulk), bit 1 the type (DATA / ACK),
 * bits 2-3 the sender's offset (so some chunks come from a node that is
 * not the primary or not in the cluster), bit 4 a tick afterwards, bit 5
 * a local record or bulk record on the primary. A sequence lets the fuzzer
 * build state (adopt a stream, then attack it).
 *
 * Checked: no crash, leak or sanitizer report; a message that is rejected
 * (negative return) changes nothing but the drop counters, compared through
 * ctsync_status before and after; no action list ever overflows. */
#include <stdlib.h>
#include <string.h>
#include "core/ctsync.h"

static struct ctsync_actions *acts;

static void strip(struct ctsync_status *s)
{
	s->ctr.rx_malformed = s->ctr.rx_stale = s->ctr.rx_not_primary = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!acts)
		acts = calloc(1, sizeof(*acts));
	struct ctsync_params p;
	ctsync_params_default(&p);
	p.n_nodes = 3;
	p.cluster_id = 4;
	p.log_msgs_max = 32;
	p.window_msgs_max = 8;
	p.sessions_max = 256;
	p.incarnation = 7;
	struct ctsync *cs[2];
	mono_t now = MS_TO_MONO(100);
	for (int i = 0; i < 2; i++) {
		p.self = i;
		cs[i] = ctsync_new(&p, now);
		if (!cs[i])
			abort();
	}
	ctsync_set_role(cs[1], 0, now, acts);
	ctsync_actions_reset(acts);
	ctsync_set_role(cs[0], 0, now, acts);
	ctsync_peer(cs[0], 1, true, now, acts);
	ctsync_actions_reset(acts);
	static struct ctsync_status before, after;
	uint64_t seq = 0;
	size_t off = 0;
	while (off + 3 <= size) {
		size_t len = (size_t)data[off] << 8 | data[off + 1];
		uint8_t mode = data[off + 2];
		off += 3;
		if (len > size - off)
			len = size - off;
		const uint8_t *body = data + off;
		off += len;
		int t = mode & 1;
		struct wire_hdr h = {
			.version = 1,
			.cluster_id = 4,
			.sender = (uint8_t)((t ? 1 : 0) + ((mode >> 2) & 3)),
			.type = (mode & 2) ? CTS_MSG_ACK : CTS_MSG_DATA,
			.incarnation = 7,
			.seq = CTS_SEQ_SPACE | ++seq,
			.body_len = (uint16_t)len,
		};
		ctsync_status(cs[t], now, &before);
		int rc = ctsync_recv(cs[t], &h, body, len, now, acts);
		if (acts->n_dropped)
			abort();
		if (rc < 0) {
			ctsync_status(cs[t], now, &after);
			if (acts->n)
				abort(); /* a rejected message acts on nothing */
			strip(&before);
			strip(&after);
			if (memcmp(&before, &after, sizeof(before)))
				abort();
		}
		ctsync_actions_reset(acts);
		now += MS_TO_MONO(mode >> 6);
		if (mode & 16) {
			ctsync_tick(cs[t], now, acts);
			ctsync_actions_reset(acts);
		}
		if ((mode & 32) && len >= 1) {
			struct ctrec r;
			memset(&r, 0, sizeof(r));
			r.op = CTREC_UPSERT;
			r.key_len = (uint8_t)(1 + body[0] % CTREC_KEY_MAX);
			r.key[0] = body[0];
			r.val_len = (uint8_t)(body[0] % 64);
			r.stable_hash = body[0];
			if (body[0] & 1)
				ctsync_local(cs[0], &r, now, acts);
			else
				ctsync_bulk_rec(cs[0], &r, now, acts);
			if (acts->n_dropped)
				abort();
			ctsync_actions_reset(acts);
		}
	}
	ctsync_free(cs[0]);
	ctsync_free(cs[1]);
	return 0;
}
