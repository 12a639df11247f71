/* status.c - render the status document (see status.h).
 *
 * Times are relative ("since_s", "last_rx_ms_ago") because the core only
 * knows monotonic time, which means nothing to a reader on another host.
 * The upgrade section is the driver's (src/main.c, from the upgrade
 * journal): this file only reserves its place. */
#include "status.h"

#include <stdio.h>
#include <stdlib.h>

#include "../core/wire.h"

static json_int_t secs_since(mono_t t, mono_t now)
{
	return t > 0 && now > t ? (json_int_t)((now - t) / 1000000000LL) : 0;
}

static json_t *node_name_or_null(const struct tnd_conf *c, int idx)
{
	if (idx < 0 || idx >= c->n_nodes)
		return json_null();
	return json_string(c->nodes[idx].name);
}

static json_t *groups_json(const struct status_ctx *c, const struct node_status *st,
			   mono_t now)
{
	json_t *arr = json_array();

	for (int i = 0; i < st->n_groups; i++) {
		const struct node_group_status *g = &st->groups[i];
		int gi = conf_group_index(c->conf, g->id);
		json_t *o = json_object(), *vips = json_array();

		json_object_set_new(o, "id", json_integer(g->id));
		json_object_set_new(o, "state", json_string(gstate_name(g->state)));
		json_object_set_new(o, "priority", json_integer(g->priority));
		json_object_set_new(o, "eligible", json_boolean(g->eligible));
		if (!g->eligible)
			json_object_set_new(o, "why_ineligible", json_string(g->why_ineligible));
		json_object_set_new(o, "manual", json_boolean(g->manual));
		json_object_set_new(o, "manual_target",
				    g->manual ? node_name_or_null(c->conf, g->manual_target) : json_null());
		json_object_set_new(o, "since_s", json_integer(secs_since(g->since, now)));
		json_object_set_new(o, "epoch", json_integer((json_int_t)g->epoch));
		json_object_set_new(o, "primary", node_name_or_null(c->conf, g->primary));
		json_object_set_new(o, "preempt_suspended", json_boolean(g->preempt_suspended));
		if (gi >= 0) {
			const struct tnd_group_conf *gc = &c->conf->groups[gi];
			json_object_set_new(o, "preempt", json_boolean(gc->preempt));
			for (int v = 0; v < gc->n_vips; v++) {
				char a[64], s[96];
				conf_addr_str(&gc->vips[v].addr, a, sizeof a);
				snprintf(s, sizeof s, "%s/%u", a, gc->vips[v].prefix_len);
				json_t *vo = json_object();
				json_object_set_new(vo, "address", json_string(s));
				json_object_set_new(vo, "interface", json_string(gc->vips[v].ifname));
				json_array_append_new(vips, vo);
			}
		}
		json_object_set_new(o, "vips", vips);
		json_array_append_new(arr, o);
	}
	return arr;
}

static json_t *peers_json(const struct status_ctx *c, const struct node_status *st,
			  mono_t now)
{
	json_t *arr = json_array();

	for (int n = 0; n < c->conf->n_nodes; n++) {
		const struct node_peer_status *p = &st->peers[n];
		json_t *o, *links;

		if (n == c->self)
			continue;
		o = json_object();
		links = json_array();
		json_object_set_new(o, "node", json_string(c->conf->nodes[n].name));
		json_object_set_new(o, "state", json_string(p->alive ? "alive" : "lost"));
		json_object_set_new(o, "ever_seen", json_boolean(p->ever_seen));
		json_object_set_new(o, "version",
				    p->ever_seen && p->version[0] ? json_string(p->version) : json_null());
		json_object_set_new(o, "protocol",
				    p->ever_seen ? json_pack("{s:i,s:i}", "min", p->proto_min,
							     "max", p->proto_max)
						 : json_null());
		json_object_set_new(o, "since_s", json_integer(secs_since(p->since, now)));
		json_object_set_new(o, "maintenance", json_boolean(p->maint));
		for (int l = 0; l < c->conf->nodes[n].n_links && l < TND_LINKS_MAX; l++) {
			const struct node_link_status *ls = &p->links[l];
			char a[64];
			json_t *lo = json_object();
			json_object_set_new(lo, "index", json_integer(l));
			json_object_set_new(lo, "address",
					    json_string(conf_addr_str(&c->conf->nodes[n].links[l], a, sizeof a)));
			json_object_set_new(lo, "state", json_string(ls->up ? "up" : "down"));
			json_object_set_new(lo, "last_rx_ms_ago",
					    ls->last_rx > 0 && now >= ls->last_rx
						    ? json_integer((json_int_t)MONO_TO_MS(now - ls->last_rx))
						    : json_null());
			json_object_set_new(lo, "rx", json_integer((json_int_t)ls->rx));
			json_object_set_new(lo, "missed", json_integer((json_int_t)ls->missed));
			json_array_append_new(links, lo);
		}
		json_object_set_new(o, "links", links);
		json_array_append_new(arr, o);
	}
	return arr;
}

/* The session-sync section: what this node knows of the session table and
 * of every peer's sync (from the primary's side), all measured. */
static json_t *sessions_json(const struct status_ctx *c, mono_t now)
{
	if (!c->sess)
		return json_pack("{s:i,s:b,s:s}", "count", 0, "in_sync", 0,
				 "sync", "disabled");
	struct ctsync_status *st = calloc(1, sizeof(*st));
	struct ct_stats ct;
	if (!st)
		return json_null();
	sessions_status(c->sess, now, st, &ct);
	json_t *o = json_object();
	json_object_set_new(o, "sync", json_string("on"));
	json_object_set_new(o, "group", json_integer(c->sess_group));
	json_object_set_new(o, "role", json_string(ctsync_role_name(st->role)));
	json_object_set_new(o, "source", st->primary >= 0 && st->primary < c->conf->n_nodes ?
			    json_string(c->conf->nodes[st->primary].name) : json_null());
	json_object_set_new(o, "count", json_integer((json_int_t)st->count));
	json_object_set_new(o, "in_sync", json_boolean(st->in_sync));
	json_object_set_new(o, "last_digest", json_string(ctsync_digest_name(st->last_digest)));
	json_object_set_new(o, "bulk", json_pack("{s:b,s:I,s:I,s:b}", "active", st->bulk.active,
						 "records", (json_int_t)st->bulk.recs,
						 "total", (json_int_t)st->bulk.total,
						 "done", st->bulk.done));
	json_t *peers = json_array();
	if (st->role == CTS_PRIMARY) {
		for (int x = 0; x < c->conf->n_nodes; x++) {
			const struct ctsync_peer_status *p = &st->peers[x];
			if (x == c->self)
				continue;
			json_array_append_new(peers, json_pack(
				"{s:s,s:b,s:s,s:b,s:b,s:I,s:I,s:I,s:I}",
				"node", c->conf->nodes[x].name, "alive", p->alive,
				"state", ctsync_pstate_name(p->state), "in_sync", p->in_sync,
				"stalled", p->stalled, "count", (json_int_t)p->count,
				"backlog", (json_int_t)p->backlog_recs,
				"lag_ms", (json_int_t)p->lag_ms,
				"bulk_received", (json_int_t)p->bulk_rx));
		}
	}
	json_object_set_new(o, "peers", peers);
	json_object_set_new(o, "counters", json_pack(
		"{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
		"tx_msgs", (json_int_t)st->ctr.tx_msgs, "resent", (json_int_t)st->ctr.resent,
		"rx_msgs", (json_int_t)st->ctr.rx_msgs, "applied", (json_int_t)st->ctr.applied,
		"local_events", (json_int_t)st->ctr.local_recs, "bulks", (json_int_t)st->ctr.bulks,
		"resyncs", (json_int_t)st->ctr.resyncs, "digest_bad", (json_int_t)st->ctr.digest_bad,
		"overruns", (json_int_t)ct.overruns, "apply_errors", (json_int_t)ct.apply_errors,
		"injected", (json_int_t)(ct.created + ct.updated + ct.replaced)));
	free(st);
	return o;
}


json_t *status_config_json(const struct status_ctx *c, bool detail)
{
	struct cfgsync_report *r;
	json_t *o, *nodes;
	bool all = true;
	char dg[2 * CFGSYNC_DIGEST_LEN + 1];

	if (!c->cfg)
		return json_pack("{s:s}", "sync", "off");
	r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	cfgsync_report(c->cfg, r);
	nodes = json_array();
	for (int i = 0; i < r->n_nodes && i < c->conf->n_nodes; i++) {
		const struct cfgsync_node_report *nr = &r->nodes[i];
		/* A node that is down is not counted against "in sync": it
		 * catches up when it returns, and status shows it lost. */
		if (nr->alive || i == c->self)
			all &= nr->known && nr->in_sync;
		if (!detail)
			continue;
		tnd_hex(nr->committed_digest, CFGSYNC_DIGEST_LEN, dg);
		json_array_append_new(nodes, json_pack("{s:s,s:b,s:b,s:b,s:I,s:I,s:I,s:s,s:b,s:o}",
			"node", c->conf->nodes[i].name, "self", i == c->self, "alive", nr->alive || i == c->self,
			"known", nr->known, "committed", (json_int_t)nr->committed_gen,
			"pending", (json_int_t)nr->pending_gen, "applied", (json_int_t)nr->applied_gen,
			"digest", nr->known ? dg : "", "in_sync", nr->known && nr->in_sync,
			"error", nr->apply_ok || !nr->apply_err[0] ? json_null() : json_string(nr->apply_err)));
	}
	const struct cfgsync_node_report *me = &r->nodes[c->self];
	o = json_pack("{s:I,s:b,s:I,s:I,s:I,s:o,s:b,s:b,s:I}",
		      "generation", (json_int_t)r->cluster_gen, "in_sync", all,
		      "committed", (json_int_t)me->committed_gen, "applied", (json_int_t)me->applied_gen,
		      "pending", (json_int_t)me->pending_gen,
		      "coordinator", r->coordinator >= 0 && r->coordinator < c->conf->n_nodes ?
		      json_string(c->conf->nodes[r->coordinator].name) : json_null(),
		      "settled", r->settled, "busy", r->busy, "busy_generation", (json_int_t)r->busy_gen);
	if (o && !me->apply_ok && me->apply_err[0])
		json_object_set_new(o, "error", json_string(me->apply_err));
	if (o && detail) {
		json_object_set_new(o, "nodes", nodes);
		json_object_set_new(o, "counters", json_pack("{s:I,s:I,s:I}", "rx", (json_int_t)r->rx_ok,
			"rx_bad", (json_int_t)r->rx_bad, "tx", (json_int_t)r->tx));
	} else {
		json_decref(nodes);
	}
	free(r);
	return o;
}

json_t *status_json(const struct status_ctx *c, mono_t now)
{
	struct node_status *st = calloc(1, sizeof *st);
	json_t *o, *alarms, *ctr;

	if (!st)
		return NULL;
	node_status(c->node, now, st);
	o = json_object();
	json_object_set_new(o, "node", json_string(c->conf->nodes[c->self].name));
	json_object_set_new(o, "cluster", json_string(c->conf->cluster_name));
	json_object_set_new(o, "cluster_id", json_integer(c->conf->cluster_id));
	json_object_set_new(o, "version", json_string(c->version));
	json_object_set_new(o, "incarnation", json_integer((json_int_t)c->incarnation));
	json_object_set_new(o, "uptime_s", json_integer(secs_since(c->started, now)));
	json_object_set_new(o, "maintenance", json_boolean(st->maint));
	json_object_set_new(o, "tilt", json_boolean(st->tilt));
	json_object_set_new(o, "protocol", json_pack("{s:i,s:i,s:i}", "level", st->cluster_proto,
						     "min", WIRE_PROTO_MIN, "max", WIRE_PROTO_MAX));
	json_object_set_new(o, "groups", groups_json(c, st, now));
	json_object_set_new(o, "peers", peers_json(c, st, now));

	alarms = json_array();
	for (int i = 0; i < st->n_alarms && i < 8; i++)
		json_array_append_new(alarms, json_string(st->alarms[i]));
	json_object_set_new(o, "alarms", alarms);

	ctr = json_object();
	json_object_set_new(ctr, "rx", json_integer((json_int_t)st->ctr.rx_ok));
	json_object_set_new(ctr, "tx", json_integer((json_int_t)st->ctr.tx));
	json_object_set_new(ctr, "rx_datagrams", json_integer((json_int_t)c->drv->rx_datagrams));
	json_object_set_new(ctr, "malformed",
			    json_integer((json_int_t)(st->ctr.rx_malformed + c->drv->malformed)));
	json_object_set_new(ctr, "replayed", json_integer((json_int_t)st->ctr.rx_replayed));
	json_object_set_new(ctr, "unauthenticated", json_integer((json_int_t)c->drv->unauthenticated));
	json_object_set_new(ctr, "wrong_cluster", json_integer((json_int_t)c->drv->wrong_cluster));
	json_object_set_new(ctr, "bad_version", json_integer((json_int_t)c->drv->version));
	json_object_set_new(ctr, "unknown_type", json_integer((json_int_t)st->ctr.rx_unknown_type));
	json_object_set_new(ctr, "send_errors", json_integer((json_int_t)c->drv->send_errors));
	if (c->nl) {
		json_t *nl = json_object();
		json_object_set_new(nl, "malformed", json_integer((json_int_t)c->nl->malformed));
		json_object_set_new(nl, "overruns", json_integer((json_int_t)c->nl->overruns));
		json_object_set_new(nl, "resyncs", json_integer((json_int_t)c->nl->resyncs));
		json_object_set_new(nl, "stale", json_integer((json_int_t)c->nl->stale));
		json_object_set_new(nl, "links_untracked",
				    json_integer((json_int_t)c->nl->links_untracked));
		json_object_set_new(ctr, "netlink", nl);
	}
	json_object_set_new(o, "counters", ctr);

	json_object_set_new(o, "config", status_config_json(c, false));
	json_object_set_new(o, "sessions", sessions_json(c, now));
	/* The driver replaces it with the upgrade journal's summary. */
	json_object_set_new(o, "upgrade", json_pack("{s:s}", "state", "idle"));
	free(st);
	return o;
}
