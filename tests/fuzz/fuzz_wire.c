/* fuzz_wire.c - libFuzzer target for everything a peer's packet reaches:
 * the header decoder, packet authentication (seal_open), and, as if it had
 * authenticated, the heartbeat TLV decoder and the node core that applies
 * it. The first byte picks the path; the rest is the input.
 *
 * The core must never crash, leak, or act on a malformed message: a body
 * that is rejected must leave the node's state exactly as it was, which
 * the target checks by comparing node_status before and after. */
#include <stdlib.h>
#include <string.h>
#include "core/node.h"
#include "core/seal.h"

static struct tnd_conf conf;
static struct actions *acts;

static void setup(void)
{
	memset(&conf, 0, sizeof(conf));
	conf.cluster_id = 9;
	conf.heartbeat_ms = 100;
	conf.dead_after = 3;
	conf.n_nodes = 3;
	for (int i = 0; i < 3; i++) {
		conf.nodes[i].name[0] = (char)('a' + i);
		conf.nodes[i].n_links = 2;
	}
	conf.n_groups = 2;
	for (int g = 0; g < 2; g++) {
		conf.groups[g].id = (uint8_t)g;
		for (int i = 0; i < 3; i++)
			conf.groups[g].priority[i] = (uint8_t)(100 + i);
	}
	acts = calloc(1, sizeof(*acts));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!acts)
		setup();
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;

	if (mode & 1) {
		/* A raw packet: header, then authentication. */
		struct seal_key key;
		uint8_t secret[32] = { 1, 2, 3 };
		uint8_t body[WIRE_MTU];
		size_t blen = 0;
		struct wire_hdr h;
		seal_key_derive(&key, secret, sizeof(secret));
		wire_hdr_decode(data, size, &h);
		int rc = seal_open(&key, 9, data, size, &h, body, sizeof(body), &blen);
		if (rc == 0)
			abort(); /* forging a tag by chance is not plausible */
		return 0;
	}

	/* An authenticated body from peer 1 to node 0. */
	struct node_params p = { .conf = &conf, .self = 0, .incarnation = 5,
				 .seed = 1, .version = "f", .proto_min = 1,
				 .proto_max = 1 };
	struct node *n = node_new(&p, 1000);
	struct node_status before, after;
	node_status(n, 2000, &before);
	struct wire_hdr h = { .version = 1, .cluster_id = 9, .sender = 1,
			      .type = (mode & 2) ? WIRE_MSG_HEARTBEAT : (uint8_t)(mode >> 2),
			      .incarnation = 7, .seq = 1,
			      .body_len = (uint16_t)(size > 65535 ? 65535 : size) };
	struct ev ev = { .type = EV_RECV };
	ev.u.recv.link = (mode >> 2) & 1;
	ev.u.recv.hdr = &h;
	ev.u.recv.body = data;
	ev.u.recv.body_len = h.body_len;
	actions_reset(acts);
	int rc = node_step(n, &ev, 2000, acts);
	node_status(n, 2000, &after);
	if (rc < 0) {
		/* Dropped: only the drop counters may differ. */
		before.ctr = after.ctr;
		if (memcmp(&before, &after, sizeof(before)) != 0)
			abort();
	}
	/* A second, replayed copy must be refused. */
	if (rc == 0) {
		actions_reset(acts);
		if (node_step(n, &ev, 2001, acts) != TND_EREPLAY)
			abort();
	}
	node_free(n);
	return 0;
}
