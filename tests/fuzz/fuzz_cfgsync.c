/* fuzz_cfgsync.c - libFuzzer target for the configuration-sync receive
 * path (src/core/cfgsync.c): every CFG_MSG_* type, as if authenticated.
 *
 * The input is a sequence of messages: [sender][type][role][len hi][len
 * lo][body...]. role picks who is coordinator (self, the sender, another)
 * so both the coordinator's and a member's handlers are reached; stores,
 * validations and applies are answered (successfully, or failing when the
 * body's last byte is odd), so the fuzzer can walk through prepare, fetch,
 * commit and abort. The core must never crash, leak, overflow its action
 * list, or read past a body. */
#include <stdlib.h>
#include <string.h>
#include "core/cfgsync.h"

static void answer(struct cfgsync *cs, struct cfgsync_actions *a, int fail_bit)
{
	struct cfgsync_actions *b = malloc(sizeof(*b));
	for (int round = 0; round < 8 && a->n; round++) {
		struct { int kind; enum cfgsync_store_op op; uint64_t gen;
			 uint8_t dg[CFGSYNC_DIGEST_LEN]; } cb[CFGSYNC_ACTIONS_MAX];
		int n = 0;
		if (a->n_dropped)
			abort(); /* a bound was broken */
		for (int i = 0; i < a->n; i++) {
			struct cfgsync_act *x = &a->a[i];
			if (x->type == CFA_STORE || x->type == CFA_APPLY || x->type == CFA_VALIDATE) {
				cb[n].kind = x->type;
				cb[n].op = x->op;
				cb[n].gen = x->gen;
				memcpy(cb[n].dg, x->digest, CFGSYNC_DIGEST_LEN);
				n++;
			}
		}
		cfgsync_actions_reset(b);
		for (int i = 0; i < n; i++) {
			if (cb[i].kind == CFA_STORE)
				cfgsync_stored(cs, cb[i].op, cb[i].gen, cb[i].dg,
					       fail_bit ? TND_ENOSPC : 0, 1000, b);
			else if (cb[i].kind == CFA_APPLY)
				cfgsync_applied(cs, cb[i].gen, fail_bit ? TND_EIO : 0, "x", 1000, b);
			else
				cfgsync_validated(cs, cb[i].dg, fail_bit ? TND_EINVAL : 0, "bad", 1000, b);
		}
		*a = *b;
	}
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char yaml[] = "cluster: {name: f, id: 1}\n";
	struct cfgsync_text t = { yaml, sizeof(yaml) - 1, "", 0 };
	uint8_t *seed;
	size_t seed_len;
	if (cfgsync_doc_encode(&t, &seed, &seed_len) != 0)
		abort();
	struct cfgsync_params p;
	cfgsync_params_default(&p);
	p.self = 0;
	p.n_nodes = 3;
	p.cluster_id = 1;
	p.incarnation = 1;
	p.committed_gen = 0;
	p.committed_blob = seed;
	p.committed_len = seed_len;
	struct cfgsync *cs = cfgsync_new(&p, 0);
	free(seed);
	struct cfgsync_actions *a = malloc(sizeof(*a));
	cfgsync_actions_reset(a);
	mono_t now = 1000;
	while (size >= 5) {
		int sender = 1 + data[0] % 2;
		uint8_t type = (uint8_t)(CFG_MSG_STATE + data[1] % 10); /* one past: unknown */
		int role = data[2] % 3;
		size_t len = ((size_t)data[3] << 8) | data[4];
		data += 5;
		size -= 5;
		if (len > size)
			len = size;
		int coord = role == 0 ? 0 : role == 1 ? sender : 3 - sender;
		cfgsync_actions_reset(a);
		cfgsync_view(cs, coord, 5, 0x7, now, a);
		answer(cs, a, 0);
		struct wire_hdr h = { .version = 1, .cluster_id = 1, .sender = (uint8_t)sender,
				      .type = type, .incarnation = 1, .seq = 1,
				      .body_len = (uint16_t)len };
		cfgsync_actions_reset(a);
		cfgsync_recv(cs, &h, data, len, now, a);
		answer(cs, a, len && (data[len - 1] & 1));
		now += MS_TO_MONO(50);
		cfgsync_actions_reset(a);
		cfgsync_tick(cs, now, a);
		answer(cs, a, 0);
		struct cfgsync_report r;
		cfgsync_report(cs, &r);
		data += len;
		size -= len;
	}
	cfgsync_free(cs);
	free(a);
	return 0;
}
