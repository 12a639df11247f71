/* fuzz_upgrade.c - libFuzzer target for the upgrade coordinator core
 * (src/core/upgrade.c): the journal decoder and the receive path of every
 * UPG_MSG_*, as if authenticated.
 *
 * The first byte picks the mode. Even: the rest is a journal file for
 * upg_journal_decode; what decodes must encode and decode again to the
 * same journal and the same bytes. Odd: the rest is a sequence of turns
 * [sender][type][role][len hi][len lo][body...] fed to a 3-node instance
 * (self = 0): role picks the coordinator (self, the sender, the third
 * node) so both sides' handlers are reached; a type past UPG_MSG_RESP is
 * a local command (start with a healthy image, abort, rollback,
 * finalize) instead; node actions are answered (failing when the body's
 * last byte is odd). The core must never crash, leak, overflow its
 * action list, emit a packet longer than the MTU, emit two STOREs in one
 * action list, or store a journal that does not read back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "conf/conf.h"
#include "core/upgrade.h"

static struct tnd_conf conf;
static struct upg_journal j1, j2;
static uint8_t b1[UPG_JOURNAL_BYTES_MAX], b2[UPG_JOURNAL_BYTES_MAX];

static void check_actions(const struct upg_actions *a)
{
	int stores = 0;
	if (a->n_dropped)
		abort(); /* a bound was broken */
	for (int i = 0; i < a->n; i++)
		stores += a->a[i].type == UPG_ACT_STORE;
	if (stores > 1)
		abort(); /* one write of the final state per action list */
	for (int i = 0; i < a->n; i++) {
		const struct upg_act *x = &a->a[i];
		size_t l1, l2;
		switch (x->type) {
		case UPG_ACT_SEND:
			if (x->len < WIRE_HDR_LEN || x->len > WIRE_MTU - WIRE_TAG_LEN ||
			    x->to < 0 || x->to >= conf.n_nodes || x->to == 0)
				abort();
			break;
		case UPG_ACT_STORE:
			if (!x->journal || upg_journal_encode(x->journal, b1, sizeof(b1), &l1) != 0 ||
			    upg_journal_decode(b1, l1, &j1) != 0 ||
			    upg_journal_encode(&j1, b2, sizeof(b2), &l2) != 0 || l1 != l2 ||
			    memcmp(b1, b2, l1) != 0)
				abort();
			break;
		default:
			break;
		}
	}
}

static void answer(struct upg *u, struct upg_actions *a, struct upg_actions *b, bool fail,
		   mono_t now)
{
	for (int round = 0; round < 4 && a->n; round++) {
		struct { uint64_t id; int step; enum upg_do op; } d[UPG_ACTIONS_MAX];
		int n = 0;
		check_actions(a);
		for (int i = 0; i < a->n; i++)
			if (a->a[i].type == UPG_ACT_DO) {
				d[n].id = a->a[i].id;
				d[n].step = a->a[i].step;
				d[n].op = a->a[i].op;
				n++;
			}
		upg_actions_reset(b);
		for (int i = 0; i < n; i++) {
			struct upg_ev e = { .type = UPG_EV_DONE, .id = d[i].id, .step = d[i].step,
					    .done_op = d[i].op, .rc = fail ? TND_EIO : 0 };
			if (fail)
				strcpy(e.code, "E_X");
			upg_step(u, &e, now, b);
		}
		struct upg_actions *t = a;
		a = b;
		b = t;
	}
	check_actions(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (!(data[0] & 1)) {
		size_t l1, l2;
		if (upg_journal_decode(data + 1, size - 1, &j1) != 0)
			return 0;
		if (upg_journal_encode(&j1, b1, sizeof(b1), &l1) != 0 ||
		    upg_journal_decode(b1, l1, &j2) != 0 || memcmp(&j1, &j2, sizeof(j1)) != 0 ||
		    upg_journal_encode(&j2, b2, sizeof(b2), &l2) != 0 || l1 != l2 ||
		    memcmp(b1, b2, l1) != 0)
			abort();
		return 0;
	}
	data++;
	size--;
	memset(&conf, 0, sizeof(conf));
	conf.cluster_id = 1;
	conf.n_nodes = 3;
	for (int x = 0; x < 3; x++) {
		conf.nodes[x].name[0] = (char)('a' + x);
		conf.nodes[x].n_links = 1;
	}
	conf.n_groups = 2;
	conf.groups[0].id = 0;
	conf.groups[0].priority[0] = 100;
	conf.groups[0].priority[1] = 90;
	conf.groups[0].priority[2] = 80;
	conf.groups[1].id = 1;
	conf.groups[1].priority[1] = 100;
	conf.groups[1].priority[2] = 50;
	conf.upgrade_hold_timer_s = 2;
	conf.upgrade_sync_timeout_s = 2;
	conf.upgrade_cpu_max_percent = 80;
	conf.upgrade_failback = true;
	struct upg_params p = { .conf = &conf, .self = 0, .incarnation = 1, .seed = 1,
				.cluster_id = 1, .proto = 1 };
	mono_t now = MS_TO_MONO(1000);
	struct upg *u = upg_new(&p, now);
	struct upg_actions *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	struct upg_facts f;
	memset(&f, 0, sizeof(f));
	strcpy(f.version, "1.0.0");
	f.confirmed = f.links_all_up = f.config_in_sync = f.sessions_in_sync = true;
	f.proto_min = f.proto_max = 1;
	f.free_bytes = 1ULL << 40;
	f.cpu_percent = 5;
	f.n_groups = 1;
	f.groups[0].id = 0;
	f.groups[0].state = UPG_G_PRIMARY;
	struct upg_image img;
	memset(&img, 0, sizeof(img));
	img.present = img.intact = img.signed_ok = img.trusted = img.config_ok = true;
	strcpy(img.version, "1.1.0");
	strcpy(img.min_upgrade_from, "1.0.0");
	img.proto_min = 1;
	img.proto_max = 2;
	img.bytes = 1000;
	uint32_t token = 0;
	uint64_t seq = 1;
	while (size >= 5) {
		int sender = 1 + data[0] % 2;
		uint8_t type = (uint8_t)(UPG_MSG_STATE + data[1] % 12);
		int role = data[2] % 3;
		size_t len = ((size_t)data[3] << 8) | data[4];
		data += 5;
		size -= 5;
		if (len > size)
			len = size;
		uint8_t d0 = len ? data[0] : 0;
		struct upg_view v;
		memset(&v, 0, sizeof(v));
		v.coordinator = role == 0 ? 0 : role == 1 ? sender : 3 - sender;
		for (int x = 0; x < 3; x++)
			v.alive[x] = v.links_up[x] = true;
		v.primary[0] = v.coordinator;
		v.primary[1] = 1 + (d0 & 1);
		v.wall_ms = 1700000000000LL;
		upg_set_local(u, &f, now);
		upg_set_view(u, &v, now);
		upg_actions_reset(a);
		bool fail = len && (data[len - 1] & 1);
		if (type <= UPG_MSG_RESP) {
			struct wire_hdr h = { .version = 1, .cluster_id = 1, .sender = (uint8_t)sender,
					      .type = type, .incarnation = 1 + (d0 >> 6),
					      .seq = UPG_SEQ_SPACE | seq++, .body_len = (uint16_t)len };
			struct upg_ev e = { .type = UPG_EV_RECV, .hdr = &h, .body = data, .body_len = len };
			upg_step(u, &e, now, a);
		} else {
			struct upg_ev e = { .type = UPG_EV_CMD, .token = ++token,
					    .op = (enum upg_cmd_op)(1 + (type - UPG_MSG_RESP - 1) % 4),
					    .image = &img, .node = TND_NO_NODE };
			e.opts.disruptive = d0 & 2;
			upg_step(u, &e, now, a);
		}
		answer(u, a, b, fail, now);
		now += MS_TO_MONO(len ? 1 + d0 * 40 : 300);
		upg_actions_reset(a);
		struct upg_ev t = { .type = UPG_EV_TICK };
		upg_step(u, &t, now, a);
		answer(u, a, b, false, now);
		char why[200];
		upg_frozen(u, why, sizeof(why));
		upg_preempt_suspended(u);
		upg_cluster_proto(u);
		for (int x = 0; x < 3; x++)
			upg_node_detail(u, x);
		if (upg_next_wake(u) < now)
			abort();
		data += len;
		size -= len;
	}
#ifdef UPG_FUZZ_DEBUG
	fprintf(stderr, "journal id=%llu seq=%llu state=%s cursor=%d/%d\n",
		(unsigned long long)upg_journal_get(u)->id,
		(unsigned long long)upg_journal_get(u)->seq,
		upg_state_name(upg_journal_get(u)->state), upg_journal_get(u)->cursor,
		upg_journal_get(u)->n_steps);
#endif
	upg_free(u);
	free(a);
	free(b);
	return 0;
}
