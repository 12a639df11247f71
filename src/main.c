/* main.c - tandemd: process set-up and the driver around the protocol core.
 *
 * Owns: the daemon's start-up order (SPEC section 2), the event loop's
 * wiring (link sockets, netlink link events, the control socket, signals,
 * the core's timer) and the execution of the core's actions: sealing and
 * sending packets, adding and removing VIPs with their announcements,
 * starting hooks, logging events. The core decides; this file only does
 * what it is told, counts what fails and logs it with a rate limit.
 *
 * Start-up order matters: the incarnation is made durable before the
 * first packet leaves (peers drop anything older as a replay), and VIPs a
 * previous run may have left behind are removed before the core starts,
 * because a node that has only just started is not primary of anything.
 * systemd's Type=notify readiness (sd_notify(3) protocol: one datagram
 * "READY=1" to $NOTIFY_SOCKET) is spoken directly, without libsystemd. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/ctl.h"
#include "api/http.h"
#include "api/metrics.h"
#include "api/status.h"
#include "core/boot.h"
#include "conf/conf.h"
#include "conf/confdoc.h"
#include "core/cfgsync.h"
#include "core/node.h"
#include "core/upgrade.h"
#include "core/seal.h"
#include "core/wire.h"
#include "io/hooks.h"
#include "io/log.h"
#include "io/loop.h"
#include "io/nft.h"
#include "io/nl.h"
#include "io/sessions.h"
#include "io/slots.h"
#include "io/state.h"
#include "io/store.h"
#include "io/supervise.h"
#include "io/sysfacts.h"
#include "io/xferio.h"
#include "io/udp.h"

#define DEFAULT_CONFIG "/etc/tandem/tandem.yaml"
#define DEFAULT_STATE_DIR "/var/lib/tandem"
#define KEY_FILE_MAX_BYTES 4096
#define RX_BATCH_MAX 64              /* datagrams read per wake-up per link */
#define ANNOUNCE_REPEATS 2           /* after the first announcement */
#define ANNOUNCE_INTERVAL_MS 100
/* How long a node that gave up a group refuses new connections arriving
 * on the group's interfaces (the handoff guard, nft.h): well past the new
 * primary's announcements, short of a client's second SYN retry (3 s). */
#define HANDOFF_GUARD_MS 2500
#define RATELIMIT_INTERVAL_MS 5000   /* one log line per kind per 5 s */
#define SPIN_GUARD_MS 1              /* least time between two EV_TICKs for one wake */
#define STOP_GRANT_WAIT_MS 1500      /* a clean stop waits this long for sync barriers */
/* Injected sessions live at least this long: the primary's DESTROY events
 * remove them, and the periodic digest catches what those miss. */
#define SESSION_TIMEOUT_FLOOR_S 3600
#define HOOKS_TRACKED_MAX 64         /* running hooks remembered for their exit line */
#define CFG_ANSWERS_MAX 64           /* config-sync answers queued in one run */

enum rl_kind {
	RL_UNAUTH, RL_CLUSTER, RL_MALFORMED, RL_VERSION, RL_CORE_DROP,
	RL_SEND, RL_RECV, RL_NL, RL_MAX,
};

/* Event name of each kind's rate-limited line. */
static const char *const rl_event[RL_MAX] = {
	[RL_UNAUTH] = "rx.drop", [RL_CLUSTER] = "rx.drop", [RL_MALFORMED] = "rx.drop",
	[RL_VERSION] = "rx.drop", [RL_CORE_DROP] = "rx.drop", [RL_SEND] = "tx.error",
	[RL_RECV] = "rx.error", [RL_NL] = "netlink.error",
};

struct ratelimit {
	mono_t last_log; /* 0 = never logged */
	uint64_t count;  /* total */
	uint64_t suppressed; /* since the last line */
};

struct daemon;
struct link_ctx {
	struct daemon *d;
	int link;
};

struct daemon {
	struct tnd_conf *conf; /* running configuration (heap; replaced on apply) */
	struct conf_diags diags;
	int self;
	const char *conf_path, *state_dir, *sock_path;
	struct seal_key key;
	uint64_t incarnation;
	int lock_fd;

	struct node *node;
	struct nl *nl;
	struct loop *loop;
	struct ctl *ctl;
	struct http *http; /* NULL: no api.http, or it could not listen */
	bool http_restart; /* the api settings changed: restart from the timer */
	int n_links;
	int udp_fd[TND_LINKS_MAX];
	struct link_ctx lctx[TND_LINKS_MAX];
	struct actions acts;

	struct status_drv_counters ctr;
	struct ratelimit rl[RL_MAX];
	mono_t started;
	mono_t last_tick;
	/* Per group index: whether we hold its VIPs, and the pending
	 * repetitions of their announcement. */
	bool vips_on[TND_GROUPS_MAX];
	int announce_left[TND_GROUPS_MAX];
	mono_t announce_at[TND_GROUPS_MAX];
	/* The handoff guard (nft.h): whether its table could be set up, and
	 * until when a guard this process (or the one before it, until
	 * started + HANDOFF_GUARD_MS) put on an interface may still run. */
	bool guard_ok;
	int n_guards;
	struct {
		char ifname[TND_IFNAME_MAX];
		mono_t until;
	} guards[TND_GROUPS_MAX * TND_VIPS_MAX];
	bool stopping, stopped;
	mono_t stop_deadline; /* give up waiting for held grants then */

	/* Session sync (NULL when sessions.sync is off): the node primary of
	 * the session group feeds it; see sess_follow(). */
	struct sessions *sess;
	int sess_gi;           /* index of the session group */
	bool sess_synced;      /* last EV_SYNC fed to the core */
	bool in_follow;
	bool peer_alive[TND_NODES_MAX];
	struct node_status *st; /* scratch */
	/* Configuration sync (cfgsync.h): the store, the core, and what this
	 * daemon runs: the document (gen, digest) its d->conf came from and
	 * the ruleset text it last applied to the kernel. */
	struct store *store;
	struct cfgsync *cfg;
	struct cfgsync_actions *cfg_acts;
	bool in_cfg_run;
	uint8_t run_digest[CFGSYNC_DIGEST_LEN];
	uint8_t rs_digest[CFGSYNC_DIGEST_LEN];
	bool rs_applied;
	int cfg_coord;
	uint64_t cfg_epoch;
	uint32_t cfg_alive;
	bool cfg_view_set;
	/* Running hooks, so their exit is logged with what they were for.
	 * A hook beyond the bound still runs and is reaped, only unnamed. */
	struct {
		pid_t pid; /* 0 = free */
		uint8_t group_id;
		enum gstate state;
	} hooks[HOOKS_TRACKED_MAX];
	struct img *img; /* versions: see the section "versions" */
	struct upg_drv *upg; /* in-service upgrade: see its section */
};

/* ---- small helpers -------------------------------------------------- */

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fatal(const char *fmt, ...)
{
	char msg[400], q[420];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_event(LVL_ERROR, "daemon.fatal", "error=%s", log_kv_quote(msg, q, sizeof q));
	exit(1);
}

static const char *addr_str(const struct tnd_addr *a, char *buf, size_t len)
{
	return conf_addr_str(a, buf, len);
}

/* Log at most one line per kind per RATELIMIT_INTERVAL_MS, with counts. */
static void rl_log(struct daemon *d, enum rl_kind k, mono_t now, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void rl_log(struct daemon *d, enum rl_kind k, mono_t now, const char *fmt, ...)
{
	struct ratelimit *r = &d->rl[k];
	char kv[ACT_EVENT_LEN];
	va_list ap;
	int n;

	r->count++;
	if (r->last_log != 0 && now - r->last_log < MS_TO_MONO(RATELIMIT_INTERVAL_MS)) {
		r->suppressed++;
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(kv, sizeof kv, fmt, ap);
	va_end(ap);
	if (n >= 0 && n < (int)sizeof kv)
		snprintf(kv + n, sizeof kv - n, " count=%" PRIu64 " suppressed=%" PRIu64,
			 r->count, r->suppressed);
	log_event_kv(LVL_WARN, rl_event[k], kv);
	r->last_log = now;
	r->suppressed = 0;
}

static void sd_notify_msg(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	size_t len;
	int fd;

	if (!path || !*path)
		return;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path)
		return;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract namespace */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		log_event(LVL_WARN, "daemon.notify_failed", "error=\"%s\"", strerror(errno));
	close(fd);
}

/* ---- performing the core's actions ---------------------------------- */

/* errno's text, with the kernel's own explanation when it gave one. */
static const char *vip_err(const struct daemon *d, char *buf, size_t len)
{
	char msg[200];
	const char *k = nl_last_error(d->nl);

	if (k && *k)
		snprintf(msg, sizeof msg, "%s: %s", strerror(errno), k);
	else
		snprintf(msg, sizeof msg, "%s", strerror(errno));
	return log_kv_quote(msg, buf, len);
}

/* ---- the handoff guard */

static void guard_setup(struct daemon *d)
{
	char err[512];

	d->guard_ok = nft_guard_setup(err, sizeof err) == 0;
	if (!d->guard_ok) {
		char q[600];
		log_event(LVL_WARN, "handoff.guard_unavailable", "error=%s", log_kv_quote(err, q, sizeof q));
	}
}

static mono_t *guard_slot(struct daemon *d, const char *ifname)
{
	for (int i = 0; i < d->n_guards; i++)
		if (strcmp(d->guards[i].ifname, ifname) == 0)
			return &d->guards[i].until;
	if (d->n_guards == (int)(sizeof d->guards / sizeof d->guards[0]))
		return NULL;
	snprintf(d->guards[d->n_guards].ifname, TND_IFNAME_MAX, "%s", ifname);
	d->guards[d->n_guards].until = d->started + MS_TO_MONO(HANDOFF_GUARD_MS);
	return &d->guards[d->n_guards++].until;
}

/* Whether another group this node holds has a VIP on interface `ifname`:
 * traffic arriving there is then its own, and is not guarded. */
static bool iface_held(const struct daemon *d, int gi, const char *ifname)
{
	for (int gj = 0; gj < d->conf->n_groups; gj++) {
		if (gj == gi || !d->vips_on[gj])
			continue;
		for (int v = 0; v < d->conf->groups[gj].n_vips; v++)
			if (strcmp(d->conf->groups[gj].vips[v].ifname, ifname) == 0)
				return true;
	}
	return false;
}

/* Guard (on) the interfaces of group gi's VIPs as this node gives the
 * group up, or lift (!on) the guards that may still run on them as it
 * takes the group. */
static void handoff_guard(struct daemon *d, int gi, bool on, mono_t now)
{
	const struct tnd_group_conf *g = &d->conf->groups[gi];
	const char *ifs[TND_VIPS_MAX];
	mono_t *until[TND_VIPS_MAX];
	char list[TND_VIPS_MAX * TND_IFNAME_MAX], err[512];
	size_t off = 0;
	int n = 0;

	if (!d->guard_ok)
		return;
	for (int v = 0; v < g->n_vips; v++) {
		const char *f = g->vips[v].ifname;
		bool dup = false;
		mono_t *u;

		for (int i = 0; i < n; i++)
			dup = dup || strcmp(ifs[i], f) == 0;
		if (dup || (on && iface_held(d, gi, f)) || !(u = guard_slot(d, f)))
			continue;
		if (!on && *u <= now)
			continue; /* nothing left to lift */
		until[n] = u;
		ifs[n++] = f;
		off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", off ? "," : "", f);
	}
	if (n == 0)
		return;
	mono_t t0 = loop_now();
	int r = nft_guard_set(ifs, n, on ? HANDOFF_GUARD_MS : 0, err, sizeof err);
	long took_us = (long)((loop_now() - t0) / 1000);
	if (r != 0) {
		char q[600];
		log_event(LVL_ERROR, "handoff.guard_error", "group=%u interfaces=%s error=%s", g->id, list,
			  log_kv_quote(err, q, sizeof q));
		return;
	}
	for (int i = 0; i < n; i++)
		*until[i] = on ? now + MS_TO_MONO(HANDOFF_GUARD_MS) : now;
	log_event(LVL_INFO, "handoff.guard", "group=%u op=%s interfaces=%s ms=%d took_us=%ld", g->id,
		  on ? "on" : "lift", list, on ? HANDOFF_GUARD_MS : 0, took_us);
}

static void vips_add(struct daemon *d, int gi, mono_t now)
{
	const struct tnd_group_conf *g = &d->conf->groups[gi];
	char a[64], e[240];

	for (int v = 0; v < g->n_vips; v++) {
		const struct tnd_vip *vip = &g->vips[v];
		int r = nl_vip_add(d->nl, vip), err = errno;
		addr_str(&vip->addr, a, sizeof a);
		errno = err;
		if (r != 0)
			log_event(LVL_ERROR, "vip.error", "group=%u op=add address=%s/%u interface=%s error=%s",
				  g->id, a, vip->prefix_len, vip->ifname,
				  vip_err(d, e, sizeof e));
		else
			log_event(LVL_INFO, "vip.add", "group=%u address=%s/%u interface=%s", g->id, a,
				  vip->prefix_len, vip->ifname);
	}
	/* Announce only after every address is in place, so a neighbour
	 * that answers the first announcement finds all of them. */
	for (int v = 0; v < g->n_vips; v++)
		if (nl_vip_announce(d->nl, &g->vips[v]) != 0)
			rl_log(d, RL_NL, now, "op=announce interface=%s error=\"%s\"",
			       g->vips[v].ifname, strerror(errno));
	d->vips_on[gi] = true;
	/* After the addresses and the first announcement: until the guard
	 * is lifted, new connections here are dropped (and sent again), not
	 * lost, while the flows already running do not wait for nftables. */
	handoff_guard(d, gi, false, now);
	d->announce_left[gi] = g->n_vips > 0 ? ANNOUNCE_REPEATS : 0;
	d->announce_at[gi] = now + MS_TO_MONO(ANNOUNCE_INTERVAL_MS);
}

static void vips_del(struct daemon *d, int gi)
{
	const struct tnd_group_conf *g = &d->conf->groups[gi];
	char a[64], e[240];

	for (int v = 0; v < g->n_vips; v++) {
		const struct tnd_vip *vip = &g->vips[v];
		int r = nl_vip_del(d->nl, vip), err = errno;
		addr_str(&vip->addr, a, sizeof a);
		errno = err;
		if (r != 0)
			log_event(LVL_ERROR, "vip.error", "group=%u op=del address=%s/%u interface=%s error=%s",
				  g->id, a, vip->prefix_len, vip->ifname,
				  vip_err(d, e, sizeof e));
		else if (d->vips_on[gi])
			log_event(LVL_INFO, "vip.del", "group=%u address=%s/%u interface=%s", g->id, a,
				  vip->prefix_len, vip->ifname);
	}
	d->vips_on[gi] = false;
	d->announce_left[gi] = 0;
}

/* Seal a plaintext packet and send it from our link `link` to node `to`'s
 * address on that link. */
static void send_plain(struct daemon *d, int to, int link, const uint8_t *pkt,
		       size_t plen, mono_t now)
{
	uint8_t out[WIRE_MTU + WIRE_TAG_LEN];
	size_t len;
	char addr[64];

	if (to < 0 || to >= d->conf->n_nodes || to == d->self || link < 0 || link >= d->n_links) {
		d->ctr.send_errors++;
		rl_log(d, RL_SEND, now, "to=%d link=%d error=\"core asked for a node or link that does not exist\"",
		       to, link);
		return;
	}
	if (seal_packet(&d->key, pkt, plen, out, sizeof out, &len) != 0) {
		d->ctr.send_errors++;
		rl_log(d, RL_SEND, now, "to=%s link=%d error=\"cannot seal packet\"",
		       d->conf->nodes[to].name, link);
		return;
	}
	if (udp_send(d->udp_fd[link], &d->conf->nodes[to].links[link], d->conf->port, out, len) != 0) {
		d->ctr.send_errors++;
		rl_log(d, RL_SEND, now, "to=%s link=%d address=%s error=\"%s\"", d->conf->nodes[to].name,
		       link, addr_str(&d->conf->nodes[to].links[link], addr, sizeof addr), strerror(errno));
	}
}

static void sess_follow(struct daemon *d, mono_t now);
static void rearm(struct daemon *d);
static void upg_install_done(struct daemon *d, bool ok, const char *why);
static bool upg_freeze_why(struct daemon *d, char *why, size_t len);
static void upg_tick(struct daemon *d, mono_t now);
static mono_t upg_wake(const struct daemon *d);
static void upg_recv(struct daemon *d, const struct wire_hdr *h, const uint8_t *body, size_t len,
		     mono_t now);
static void upg_slow_tick(struct daemon *d, mono_t now);
static json_t *upg_summary_json(struct daemon *d);
static json_t *ctl_upgrade(void *arg, json_t *req, uint32_t token, bool *deferred);
static void upg_init(struct daemon *d, uint64_t seed);
static void upg_conf_changed(struct daemon *d);
static void upg_close(struct daemon *d);

static void act_send(struct daemon *d, const struct act *a, mono_t now)
{
	send_plain(d, a->u.send.to, a->u.send.link, a->u.send.pkt, a->u.send.len, now);
}

static void sess_send(void *arg, int to, int link, const uint8_t *pkt, size_t len)
{
	send_plain(arg, to, link, pkt, len, loop_now());
}

static void sess_log(void *arg, enum ev_level level, const char *name, const char *kv)
{
	(void)arg;
	log_event_kv(level, name, kv);
}

static void on_sess_worker(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct daemon *d = arg;
	mono_t now = loop_now();

	sessions_on_worker(d->sess, now);
	sess_follow(d, now);
	rearm(d);
}

static void on_ct(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct daemon *d = arg;
	mono_t now = loop_now();

	sessions_on_events(d->sess, now);
	sess_follow(d, now);
	rearm(d);
}

static void act_hook(struct daemon *d, const struct act *a)
{
	int gi = conf_group_index(d->conf, a->u.hook.group_id);
	const char *path;
	char q[TND_PATH_MAX + 8];
	pid_t pid;

	if (gi < 0)
		return;
	switch (a->u.hook.state) {
	case G_PRIMARY:
		path = d->conf->groups[gi].hook_primary;
		break;
	case G_SECONDARY:
	case G_INELIGIBLE:
		path = d->conf->groups[gi].hook_secondary;
		break;
	default:
		return;
	}
	if (!path[0])
		return;
	pid = hook_run(path, a->u.hook.group_id, gstate_name(a->u.hook.state),
		       d->conf->nodes[d->self].name, d->conf->cluster_name);
	if (pid < 0) {
		log_event(LVL_ERROR, "hook.error", "group=%u state=%s path=%s error=\"%s\"",
			  a->u.hook.group_id, gstate_name(a->u.hook.state),
			  log_kv_quote(path, q, sizeof q), strerror(errno));
		return;
	}
	log_event(LVL_INFO, "hook.start", "group=%u state=%s path=%s pid=%d",
		  a->u.hook.group_id, gstate_name(a->u.hook.state),
		  log_kv_quote(path, q, sizeof q), (int)pid);
	for (int i = 0; i < HOOKS_TRACKED_MAX; i++)
		if (d->hooks[i].pid == 0) {
			d->hooks[i].pid = pid;
			d->hooks[i].group_id = a->u.hook.group_id;
			d->hooks[i].state = a->u.hook.state;
			break;
		}
}

static void perform(struct daemon *d, mono_t now)
{
	struct actions *acts = &d->acts;

	for (int i = 0; i < acts->n; i++) {
		const struct act *a = &acts->a[i];
		int gi;

		switch (a->type) {
		case ACT_SEND:
			act_send(d, a, now);
			break;
		case ACT_VIPS:
			gi = conf_group_index(d->conf, a->u.vips.group_id);
			if (gi < 0)
				break;
			if (a->u.vips.add) {
				vips_add(d, gi, now);
			} else {
				/* The guard first: a connection that reaches
				 * this node between the two is only delayed. */
				if (d->vips_on[gi])
					handoff_guard(d, gi, true, now);
				vips_del(d, gi);
			}
			break;
		case ACT_HOOK:
			act_hook(d, a);
			break;
		case ACT_EVENT:
			log_event_kv(a->u.event.level, a->u.event.name, a->u.event.kv);
			break;
		case ACT_BARRIER:
			/* Answered by sess_follow() through EV_BARRIER. Without
			 * session sync the core has sync_gate off and never asks. */
			if (d->sess)
				sessions_barrier(d->sess, a->u.barrier.group_id,
						 a->u.barrier.target, now);
			break;
		}
	}
	if (acts->n_dropped > 0)
		log_event(LVL_ERROR, "core.actions_dropped", "n=%d max=%d", acts->n_dropped, ACTIONS_MAX);
	actions_reset(acts);
}

/* Arm the timer at the earliest of the core's wake-up and the pending
 * announcements. A wake-up at or before the last tick has had its tick:
 * give it SPIN_GUARD_MS rather than spinning on a deadline the core keeps
 * in the past. */
static void rearm(struct daemon *d)
{
	mono_t at = node_next_wake(d->node);

	if (at != MONO_NEVER && at <= d->last_tick)
		at = d->last_tick + MS_TO_MONO(SPIN_GUARD_MS);
	for (int gi = 0; gi < d->conf->n_groups; gi++)
		if (d->announce_left[gi] > 0 && d->announce_at[gi] < at)
			at = d->announce_at[gi];
	if (d->sess) {
		/* Session sync may want to run at once (a bulk dump to feed):
		 * let the loop breathe between rounds. */
		mono_t sw = sessions_next_wake(d->sess), floor = loop_now() + 100000;
		if (sw < floor)
			sw = floor;
		if (sw < at)
			at = sw;
	}
	if (d->cfg) {
		/* cfg_tick() ran for anything due: a wake still in the past
		 * gets the spin guard. */
		mono_t cw = cfgsync_next_wake(d->cfg), floor = loop_now() + MS_TO_MONO(SPIN_GUARD_MS);
		if (cw < floor)
			cw = floor;
		if (cw < at)
			at = cw;
	}
	{
		mono_t uw = upg_wake(d), floor = loop_now() + MS_TO_MONO(SPIN_GUARD_MS);
		if (uw < floor)
			uw = floor;
		if (uw < at)
			at = uw;
	}
	if (d->stopping && d->stop_deadline < at)
		at = d->stop_deadline;
	loop_timer_set(d->loop, at);
}

static void sess_follow(struct daemon *d, mono_t now);
static void cfg_follow(struct daemon *d, mono_t now);
static void stop_if_done(struct daemon *d, mono_t now);
static void finish_stop(struct daemon *d);

/* Feed one event to the core and do what it says. */
static int drive(struct daemon *d, const struct ev *ev, mono_t now)
{
	int r;

	actions_reset(&d->acts);
	r = node_step(d->node, ev, now, &d->acts);
	perform(d, now);
	sess_follow(d, now);
	cfg_follow(d, now);
	rearm(d);
	return r;
}

/* Keep session sync and the election core in step: the session role
 * follows the session group's primary (a node releasing it stays the
 * source until its grant is given), peers' liveness follows the failure
 * detector, and the core hears when this node's table is in sync and when
 * a barrier completed. Bounded rounds: each answer may cause another. */
static void sess_follow(struct daemon *d, mono_t now)
{
	if (!d->sess || d->in_follow)
		return;
	d->in_follow = true;
	for (int round = 0; round < 8; round++) {
		bool again = false;
		node_status(d->node, now, d->st);
		const struct node_group_status *g = &d->st->groups[d->sess_gi];
		int src = g->state == G_PRIMARY || g->grant_held ? d->self : g->primary;
		sessions_set_primary(d->sess, src, now);
		for (int x = 0; x < d->conf->n_nodes; x++) {
			/* Only the members of the session group take part: a
			 * node that never serves it has no use for its table. */
			bool alive = d->st->peers[x].alive &&
				     d->conf->groups[d->sess_gi].priority[x] > 0;
			if (x == d->self || alive == d->peer_alive[x])
				continue;
			d->peer_alive[x] = alive;
			sessions_peer(d->sess, x, d->peer_alive[x], now);
		}
		bool sync = sessions_in_sync(d->sess, now);
		if (sync != d->sess_synced) {
			struct ev ev = { .type = EV_SYNC };
			d->sess_synced = sync;
			ev.u.sync.synced = sync;
			actions_reset(&d->acts);
			node_step(d->node, &ev, now, &d->acts);
			perform(d, now);
			again = true;
		}
		uint8_t gid;
		bool ok;
		while (sessions_barrier_poll(d->sess, now, &gid, &ok)) {
			struct ev ev = { .type = EV_BARRIER };
			ev.u.barrier.group_id = gid;
			ev.u.barrier.ok = ok;
			actions_reset(&d->acts);
			node_step(d->node, &ev, now, &d->acts);
			perform(d, now);
			again = true;
		}
		if (!again)
			break;
	}
	d->in_follow = false;
	stop_if_done(d, now);
}

/* A clean stop waits for its held grants (sync barriers), then ends. */
static void stop_if_done(struct daemon *d, mono_t now)
{
	bool held = false;

	if (!d->stopping || d->stopped)
		return;
	node_status(d->node, now, d->st);
	for (int gi = 0; gi < d->st->n_groups; gi++)
		held |= d->st->groups[gi].grant_held;
	if (!held)
		finish_stop(d);
}

/* The session group: the lowest-numbered group with VIPs (the traffic
 * group); its primary's table is the one replicated. */
/* The group whose sessions this node syncs: the first group with VIPs
 * that it is a member of (priority above 0), so in a cluster whose groups
 * have different members (gw1+gw2 serve group 1, gw3+gw4 group 2) every
 * pair syncs its own traffic; group 0 when it serves none. */
static int session_group_index(const struct tnd_conf *c, int self)
{
	for (int gi = 1; gi < c->n_groups; gi++)
		if (c->groups[gi].n_vips > 0 && c->groups[gi].priority[self] > 0)
			return gi;
	for (int gi = 1; gi < c->n_groups; gi++)
		if (c->groups[gi].n_vips > 0)
			return gi;
	return 0;
}

/* Session sync on (at start, or when a new configuration turns it on). */
static void sess_start(struct daemon *d, mono_t now)
{
	struct sessions_params sp = {
		.self = d->self, .n_nodes = d->conf->n_nodes,
		.cluster_id = d->conf->cluster_id, .proto = WIRE_PROTO_MAX,
		.incarnation = d->incarnation, .timeout_floor_s = SESSION_TIMEOUT_FLOOR_S,
		.hooks = { .send = sess_send, .log = sess_log, .arg = d },
	};
	char err[256];

	d->sess = sessions_open(&sp, now, err, sizeof err);
	if (!d->sess) {
		if (d->started == now)
			fatal("session sync: %s", err);
		log_event(LVL_ERROR, "sessions.error", "op=start error=\"%s\"", err);
		return;
	}
	if (loop_add(d->loop, sessions_events_fd(d->sess), EPOLLIN, on_ct, d) != 0 ||
	    loop_add(d->loop, sessions_worker_fd(d->sess), EPOLLIN, on_sess_worker, d) != 0)
		fatal("event loop full");
	memset(d->peer_alive, 0, sizeof d->peer_alive);
	d->sess_synced = false;
}

/* Session sync off (a new configuration turned it off or moved it to
 * another group: sess_start() then begins afresh). */
static void sess_stop(struct daemon *d)
{
	if (!d->sess)
		return;
	loop_del(d->loop, sessions_events_fd(d->sess));
	loop_del(d->loop, sessions_worker_fd(d->sess));
	sessions_close(d->sess);
	d->sess = NULL;
	log_event(LVL_INFO, "sessions.stop", "reason=config");
}

/* ---- configuration sync ------------------------------------------------ */

/* snprintf for sentences that may be cut short on purpose. */
static void say(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* The driver of cfgsync.c: it performs the core's actions (send, store in
 * SQLite, validate, apply) and answers each STORE/VALIDATE/APPLY with the
 * matching cfgsync_*() call. Answers are queued and given one at a time,
 * because an action's blob is valid only until the next call into the
 * core. */
struct cfg_answer {
	enum cfgsync_act_type type;
	enum cfgsync_store_op op;
	uint64_t gen;
	uint8_t digest[CFGSYNC_DIGEST_LEN];
	int code;
	char why[CFGSYNC_WHY_LEN];
};

/* Parse a document and check it against the running configuration: the
 * schema, the settings that cannot change in place, and the ruleset in
 * nftables dry run. 0, TND_EINVAL (bad document: diags and/or why) or
 * TND_EREFUSED (a change that cannot be made in place: why). `nc` gets
 * the parsed configuration. */
static int cfg_check(struct daemon *d, const char *source, const struct cfgsync_text *t,
		     struct tnd_conf *nc, struct conf_diags *dg, char *why, size_t why_len)
{
	char err[1024];

	why[0] = '\0';
	if (conf_parse(source, t->yaml, t->yaml_len, nc, dg) != 0 || dg->n > 0) {
		say(why, why_len, "%s", dg->n > 0 ? dg->msg[0] : "invalid configuration");
		return TND_EINVAL;
	}
	if (cfgsync_check_change(d->conf, nc, d->conf->nodes[d->self].name, why, why_len) != 0)
		return TND_EREFUSED;
	if (t->ruleset_len > 0 && !nc->firewall_ruleset[0]) {
		say(why, why_len, "%s: the document carries a ruleset but firewall.ruleset names none",
			 source);
		return TND_EINVAL;
	}
	if (nft_validate(t->ruleset, err, sizeof err) != 0) {
		say(why, why_len, "ruleset %s: %s", nc->firewall_ruleset, err);
		return TND_EINVAL;
	}
	return 0;
}

static bool vip_eq(const struct tnd_vip *a, const struct tnd_vip *b)
{
	return a->addr.family == b->addr.family && a->prefix_len == b->prefix_len &&
	       memcmp(a->addr.bytes, b->addr.bytes, sizeof a->addr.bytes) == 0 &&
	       strcmp(a->ifname, b->ifname) == 0;
}

static bool group_has_vip(const struct tnd_conf *c, int gi, const struct tnd_vip *v)
{
	if (gi < 0)
		return false;
	for (int i = 0; i < c->groups[gi].n_vips; i++)
		if (vip_eq(&c->groups[gi].vips[i], v))
			return true;
	return false;
}

static void vip_one(struct daemon *d, uint8_t gid, const struct tnd_vip *vip, bool add)
{
	char a[64], e[240];
	int r = add ? nl_vip_add(d->nl, vip) : nl_vip_del(d->nl, vip), err = errno;

	addr_str(&vip->addr, a, sizeof a);
	errno = err;
	if (r != 0)
		log_event(LVL_ERROR, "vip.error", "group=%u op=%s address=%s/%u interface=%s error=%s",
			  gid, add ? "add" : "del", a, vip->prefix_len, vip->ifname, vip_err(d, e, sizeof e));
	else
		log_event(LVL_INFO, add ? "vip.add" : "vip.del",
			  "group=%u address=%s/%u interface=%s reason=config", gid, a, vip->prefix_len,
			  vip->ifname);
	if (add && r == 0 && nl_vip_announce(d->nl, vip) != 0)
		rl_log(d, RL_NL, loop_now(), "op=announce interface=%s error=\"%s\"", vip->ifname,
		       strerror(errno));
}

static void sess_start(struct daemon *d, mono_t now);
static void sess_stop(struct daemon *d);
static bool api_conf_eq(const struct tnd_conf *a, const struct tnd_conf *b);
static void http_start(struct daemon *d);
static int session_group_index(const struct tnd_conf *c, int self);
static void feed_initial_ifaces(struct daemon *d);

/* Run configuration `nc` in place of d->conf (ownership passes). Order:
 * VIPs that leave are removed while the old lists are at hand; the core
 * switches (it keeps group state by id); VIPs that arrive in a group this
 * node holds are added and announced; session sync follows. */
static void cfg_switch(struct daemon *d, struct tnd_conf *nc, mono_t now)
{
	struct tnd_conf *old = d->conf;
	bool on[TND_GROUPS_MAX] = { 0 };
	int left[TND_GROUPS_MAX] = { 0 };
	mono_t at[TND_GROUPS_MAX] = { 0 };
	int sgi = session_group_index(nc, d->self);
	int r;

	for (int gi = 0; gi < old->n_groups; gi++) {
		const struct tnd_group_conf *g = &old->groups[gi];
		int ngi = conf_group_index(nc, g->id);
		if (!d->vips_on[gi])
			continue;
		for (int v = 0; v < g->n_vips; v++)
			if (!group_has_vip(nc, ngi, &g->vips[v]))
				vip_one(d, g->id, &g->vips[v], false);
		if (ngi >= 0) {
			on[ngi] = true;
			left[ngi] = d->announce_left[gi];
			at[ngi] = d->announce_at[gi];
		}
	}
	if (d->sess && (!nc->sessions_sync || nc->groups[sgi].id != old->groups[d->sess_gi].id))
		sess_stop(d);
	actions_reset(&d->acts);
	r = node_reconfigure(d->node, nc, nc->sessions_sync, nc->groups[sgi].id, now, &d->acts);
	if (r != 0) {
		/* cfg_check() passed, so this is a broken invariant: keep
		 * running the old configuration and say so. */
		log_event(LVL_ERROR, "config.switch_failed", "error=\"%s\"", tnd_strerror(r));
		free(nc);
		return;
	}
	d->conf = nc;
	d->sess_gi = sgi;
	ctl_set_conf(d->ctl, nc);
	/* Not here: this may run inside an HTTP request's handler. */
	d->http_restart |= !api_conf_eq(old, nc);
	upg_conf_changed(d); /* the upgrade core reads the upgrade settings */
	memcpy(d->vips_on, on, sizeof on);
	memcpy(d->announce_left, left, sizeof left);
	memcpy(d->announce_at, at, sizeof at);
	for (int gi = 0; gi < nc->n_groups; gi++) {
		const struct tnd_group_conf *g = &nc->groups[gi];
		int ogi = conf_group_index(old, g->id);
		if (!on[gi])
			continue;
		for (int v = 0; v < g->n_vips; v++)
			if (!group_has_vip(old, ogi, &g->vips[v]))
				vip_one(d, g->id, &g->vips[v], true);
	}
	free(old);
	perform(d, now);
	if (nc->sessions_sync && !d->sess)
		sess_start(d, now);
	/* Interfaces newly monitored: tell the core their state now. */
	feed_initial_ifaces(d);
}

/* CFA_APPLY: run this document. The ruleset goes first (one nftables
 * transaction), then the configuration; a document this daemon already
 * runs only has its ruleset applied when the kernel has not seen it yet
 * (the first apply after start). */
static int cfg_apply(struct daemon *d, uint64_t gen, const uint8_t *blob, size_t len,
		     char *why, size_t why_len)
{
	uint8_t dg[CFGSYNC_DIGEST_LEN], rdg[CFGSYNC_DIGEST_LEN];
	struct cfgsync_text t;
	struct tnd_conf *nc = NULL;
	struct conf_diags *dgs = NULL;
	char src[64], err[1024];
	bool same;
	int r;

	why[0] = '\0';
	if (cfgsync_doc_decode(blob, len, &t) != 0) {
		say(why, why_len, "generation %" PRIu64 " is not a well-formed document", gen);
		return TND_EINVAL;
	}
	cfgsync_digest(blob, len, dg);
	same = memcmp(dg, d->run_digest, sizeof dg) == 0;
	if (!same) {
		nc = malloc(sizeof *nc);
		dgs = malloc(sizeof *dgs);
		if (!nc || !dgs) {
			free(nc);
			free(dgs);
			say(why, why_len, "out of memory");
			return TND_ENOSPC;
		}
		snprintf(src, sizeof src, "generation %" PRIu64, gen);
		r = cfg_check(d, src, &t, nc, dgs, why, why_len);
		free(dgs);
		if (r != 0) {
			free(nc);
			return r;
		}
	}
	crypto_generichash(rdg, sizeof rdg, (const uint8_t *)t.ruleset, t.ruleset_len, NULL, 0);
	if (!d->rs_applied || memcmp(rdg, d->rs_digest, sizeof rdg) != 0) {
		if (t.ruleset_len > 0 && nft_apply(t.ruleset, err, sizeof err) != 0) {
			say(why, why_len, "ruleset: %s", err);
			free(nc);
			return TND_EIO;
		}
		if (t.ruleset_len > 0) {
			log_event(LVL_INFO, "config.ruleset", "gen=%" PRIu64 " bytes=%zu action=applied",
				  gen, t.ruleset_len);
			guard_setup(d); /* the ruleset may have flushed everything */
		}
		memcpy(d->rs_digest, rdg, sizeof rdg);
		d->rs_applied = true;
	}
	if (nc)
		cfg_switch(d, nc, loop_now());
	memcpy(d->run_digest, dg, sizeof dg);
	return 0;
}

/* TANDEMD_FAILPOINT=NAME makes this process die (as by SIGKILL: no
 * clean-up) at the named point, so the lab can show what a crash there
 * leaves behind (tests/lab/test_config_sync.sh). Points: config.commit.
 * before_store and config.commit.after_store, on the coordinator only. */
static void failpoint(struct daemon *d, const char *name)
{
	const char *fp = getenv("TANDEMD_FAILPOINT");
	struct cfgsync_report *r;

	if (!fp || strcmp(fp, name) != 0)
		return;
	r = malloc(sizeof *r);
	if (!r)
		return;
	cfgsync_report(d->cfg, r);
	if (r->coordinator == d->self) {
		log_event(LVL_WARN, "failpoint", "name=%s action=exit", name);
		_exit(137);
	}
	free(r);
}

static int cfg_store(struct daemon *d, const struct cfgsync_act *a)
{
	int r;

	if (a->op == CFS_COMMIT)
		failpoint(d, "config.commit.before_store");

	switch (a->op) {
	case CFS_PENDING:
		r = store_put_pending(d->store, a->gen, a->ballot, a->digest, a->blob, a->blob_len);
		break;
	case CFS_COMMIT:
		r = store_commit(d->store, a->gen, a->digest, a->blob, a->blob_len);
		break;
	default:
		r = store_drop_pending(d->store, a->gen);
		break;
	}
	if (r != 0)
		log_event(LVL_ERROR, "config.store_error", "op=%d gen=%" PRIu64 " error=\"%s\"",
			  (int)a->op, a->gen, store_errmsg(d->store));
	else if (a->op == CFS_COMMIT)
		failpoint(d, "config.commit.after_store");
	return r;
}

/* Link 0 carries sync; when it is down to that peer, the first link up. */
static int cfg_link(struct daemon *d, int to)
{
	if (to < 0 || to >= d->conf->n_nodes)
		return 0;
	for (int l = 0; l < d->n_links; l++)
		if (d->st->peers[to].links[l].up)
			return l;
	return 0;
}

static json_t *cfg_result_json(struct daemon *d, int code, const char *why)
{
	uint64_t gen = 0;
	size_t len;

	cfgsync_current(d->cfg, &gen, &len);
	if (code == 0)
		return json_pack("{s:b,s:I,s:b,s:s}", "ok", 1, "generation", (json_int_t)gen,
				 "changed", strncmp(why, "no change", 9) != 0, "message", why);
	return json_pack("{s:b,s:s,s:s}", "ok", 0,
			 "code", code == TND_EREFUSED ? "refused" : code == TND_EINVAL ? "invalid" : "failed",
			 "error", why && why[0] ? why : tnd_strerror(code));
}

static const enum ev_level cfg_lvl[] = {
	[CFG_LVL_DEBUG] = LVL_DEBUG, [CFG_LVL_INFO] = LVL_INFO,
	[CFG_LVL_WARN] = LVL_WARN, [CFG_LVL_ERROR] = LVL_ERROR,
};

/* Perform d->cfg_acts (filled by one call into the core), then answer
 * what needs answering, each answer's actions in turn. */
static void cfg_run(struct daemon *d, mono_t now)
{
	struct cfg_answer q[CFG_ANSWERS_MAX];
	int head = 0, tail = 0;

	if (d->in_cfg_run)
		return; /* an apply's perform() came back here: the outer run continues */
	d->in_cfg_run = true;
	node_status(d->node, now, d->st);
	for (;;) {
		struct cfgsync_actions *acts = d->cfg_acts;
		for (int i = 0; i < acts->n; i++) {
			const struct cfgsync_act *a = &acts->a[i];
			struct cfg_answer *an = NULL;
			if (a->type == CFA_STORE || a->type == CFA_VALIDATE || a->type == CFA_APPLY) {
				if (tail - head >= CFG_ANSWERS_MAX) {
					log_event(LVL_ERROR, "config.answers_dropped", "max=%d", CFG_ANSWERS_MAX);
					continue;
				}
				an = &q[tail++ % CFG_ANSWERS_MAX];
				*an = (struct cfg_answer){ .type = a->type, .op = a->op, .gen = a->gen };
				memcpy(an->digest, a->digest, sizeof an->digest);
			}
			switch (a->type) {
			case CFA_SEND:
				send_plain(d, a->to, cfg_link(d, a->to), a->pkt, a->len, now);
				break;
			case CFA_STORE:
				an->code = cfg_store(d, a);
				break;
			case CFA_VALIDATE: {
				struct cfgsync_text t;
				struct tnd_conf *nc = malloc(sizeof *nc);
				struct conf_diags *dg = malloc(sizeof *dg);
				if (!nc || !dg) {
					an->code = TND_ENOSPC;
					snprintf(an->why, sizeof an->why, "out of memory");
				} else if (upg_freeze_why(d, an->why, sizeof an->why)) {
					an->code = TND_EREFUSED; /* the coordinator holds the freeze too */
				} else if (cfgsync_doc_decode(a->blob, a->blob_len, &t) != 0) {
					an->code = TND_EINVAL;
					snprintf(an->why, sizeof an->why, "not a well-formed document");
				} else {
					an->code = cfg_check(d, "proposed configuration", &t, nc, dg,
							     an->why, sizeof an->why);
				}
				free(nc);
				free(dg);
				break;
			}
			case CFA_APPLY:
				an->code = cfg_apply(d, a->gen, a->blob, a->blob_len, an->why, sizeof an->why);
				if (an->code != 0)
					log_event(LVL_ERROR, "config.apply_error", "gen=%" PRIu64 " error=\"%s\"",
						  a->gen, an->why);
				break;
			case CFA_RESULT:
				ctl_reply(d->ctl, a->req, cfg_result_json(d, a->code, a->why));
				break;
			case CFA_EVENT:
				log_event_kv(cfg_lvl[a->level], a->name, a->kv);
				break;
			}
		}
		if (acts->n_dropped > 0)
			log_event(LVL_ERROR, "config.actions_dropped", "n=%d max=%d", acts->n_dropped,
				  CFGSYNC_ACTIONS_MAX);
		cfgsync_actions_reset(acts);
		if (head == tail)
			break;
		struct cfg_answer *an = &q[head++ % CFG_ANSWERS_MAX];
		switch (an->type) {
		case CFA_STORE:
			cfgsync_stored(d->cfg, an->op, an->gen, an->digest, an->code, now, acts);
			break;
		case CFA_VALIDATE:
			cfgsync_validated(d->cfg, an->digest, an->code, an->why, now, acts);
			break;
		default:
			cfgsync_applied(d->cfg, an->gen, an->code, an->why, now, acts);
			break;
		}
	}
	d->in_cfg_run = false;
}

/* Tell the core who coordinates (group 0's primary), under which epoch,
 * and who is alive, when any of it changed. */
static void cfg_follow(struct daemon *d, mono_t now)
{
	const struct node_group_status *g0;
	uint32_t alive = 0;

	if (!d->cfg || d->in_cfg_run)
		return;
	node_status(d->node, now, d->st);
	g0 = &d->st->groups[0];
	for (int x = 0; x < d->conf->n_nodes; x++)
		if (x != d->self && d->st->peers[x].alive)
			alive |= 1u << x;
	if (d->cfg_view_set && g0->primary == d->cfg_coord && g0->epoch == d->cfg_epoch &&
	    alive == d->cfg_alive)
		return;
	d->cfg_view_set = true;
	d->cfg_coord = g0->primary;
	d->cfg_epoch = g0->epoch;
	d->cfg_alive = alive;
	cfgsync_actions_reset(d->cfg_acts);
	cfgsync_view(d->cfg, g0->primary, g0->epoch, alive, now, d->cfg_acts);
	cfg_run(d, now);
}

static void cfg_recv(struct daemon *d, const struct wire_hdr *h, const uint8_t *body,
		     size_t len, mono_t now)
{
	cfgsync_actions_reset(d->cfg_acts);
	/* A drop is counted by the core (config status: rx_bad); only a
	 * malformed message is the driver's counter's business too. */
	if (cfgsync_recv(d->cfg, h, body, len, now, d->cfg_acts) == TND_EINVAL)
		d->ctr.malformed++;
	cfg_run(d, now);
}

static void cfg_tick(struct daemon *d, mono_t now)
{
	if (!d->cfg || now < cfgsync_next_wake(d->cfg))
		return;
	cfgsync_actions_reset(d->cfg_acts);
	cfgsync_tick(d->cfg, now, d->cfg_acts);
	cfg_run(d, now);
}

/* {"cmd":"config",...} from the control socket. */
static json_t *cfg_show(struct daemon *d, json_t *req)
{
	json_t *g = json_object_get(req, "generation"), *res;
	struct store_doc sd = { 0 };
	struct cfgsync_text t;
	const uint8_t *blob;
	uint64_t gen;
	size_t len;
	char dg[2 * CFGSYNC_DIGEST_LEN + 1], msg[160];
	const char *state = "committed";
	json_t *created = json_null();

	blob = cfgsync_current(d->cfg, &gen, &len);
	if (g && (!json_is_integer(g) || json_integer_value(g) < 0))
		return json_pack("{s:b,s:s,s:s}", "ok", 0, "code", "usage",
				 "error", "\"generation\" must be a non-negative integer");
	if (g && (uint64_t)json_integer_value(g) != gen) {
		if (store_get(d->store, (uint64_t)json_integer_value(g), &sd) != 0) {
			snprintf(msg, sizeof msg, "generation %" JSON_INTEGER_FORMAT " is not stored on %s "
				 "(it keeps the newest %d)", json_integer_value(g),
				 d->conf->nodes[d->self].name, STORE_KEEP_GENS);
			return json_pack("{s:b,s:s,s:s}", "ok", 0, "code", "failed", "error", msg);
		}
		blob = sd.blob;
		len = sd.len;
		gen = sd.gen;
		state = sd.state;
		created = json_integer(sd.created);
	} else if (gen == 0) {
		state = "seed";
	} else if (store_get(d->store, gen, &sd) == 0) {
		created = json_integer(sd.created);
	}
	if (!blob || cfgsync_doc_decode(blob, len, &t) != 0) {
		store_doc_free(&sd);
		json_decref(created);
		return json_pack("{s:b,s:s,s:s}", "ok", 0, "code", "failed",
				 "error", "the stored document is not well-formed");
	}
	cfgsync_digest(blob, len, (uint8_t *)msg);
	tnd_hex((const uint8_t *)msg, CFGSYNC_DIGEST_LEN, dg);
	res = json_pack("{s:b,s:I,s:s,s:s,s:o,s:s%,s:s%}", "ok", 1, "generation", (json_int_t)gen,
			"digest", dg, "state", state, "created", created, "yaml", t.yaml, t.yaml_len,
			"ruleset", t.ruleset, t.ruleset_len);
	store_doc_free(&sd);
	return res;
}

static json_t *cfg_apply_req(struct daemon *d, json_t *req, uint32_t token, bool *deferred)
{
	const char *yaml = json_string_value(json_object_get(req, "yaml"));
	json_t *rs = json_object_get(req, "ruleset"), *src = json_object_get(req, "source");
	json_t *fo = json_object_get(req, "force"), *res;
	struct cfgsync_text t = { 0 };
	struct tnd_conf *nc = NULL;
	struct conf_diags *dg = NULL;
	char why[CFGSYNC_WHY_LEN], q[300], source[TND_PATH_MAX];
	uint8_t *blob = NULL;
	size_t len = 0;
	mono_t now = loop_now();
	int r;

	if (!yaml)
		return json_pack("{s:b,s:s,s:s}", "ok", 0, "code", "usage", "error",
				 "apply needs \"yaml\" (the configuration text)");
	if ((rs && !json_is_string(rs)) || (src && !json_is_string(src)) || (fo && !json_is_boolean(fo)))
		return json_pack("{s:b,s:s,s:s}", "ok", 0, "code", "usage", "error",
				 "\"ruleset\" and \"source\" must be strings, \"force\" a boolean");
	snprintf(source, sizeof source, "%s", src ? json_string_value(src) : "request");
	t.yaml = yaml;
	t.yaml_len = json_string_length(json_object_get(req, "yaml"));
	t.ruleset = rs ? json_string_value(rs) : "";
	t.ruleset_len = rs ? json_string_length(rs) : 0;
	if (strlen(t.yaml) != t.yaml_len || strlen(t.ruleset) != t.ruleset_len)
		return json_pack("{s:b,s:s,s:s}", "ok", 0, "code", "usage", "error",
				 "the texts must not contain NUL characters");
	nc = malloc(sizeof *nc);
	dg = malloc(sizeof *dg);
	if (!nc || !dg) {
		free(nc);
		free(dg);
		return NULL;
	}
	if (d->stopping) {
		r = TND_EREFUSED;
		snprintf(why, sizeof why, "tandemd is shutting down");
	} else if (upg_freeze_why(d, why, sizeof why)) {
		r = TND_EREFUSED;
	} else {
		r = cfg_check(d, source, &t, nc, dg, why, sizeof why);
	}
	if (r == 0 && cfgsync_doc_encode(&t, &blob, &len) != 0) {
		r = TND_EINVAL;
		snprintf(why, sizeof why, "the configuration and ruleset exceed %d bytes", CFGSYNC_DOC_MAX);
	}
	if (r == 0) {
		cfgsync_actions_reset(d->cfg_acts);
		r = cfgsync_propose(d->cfg, token, blob, len, json_is_true(fo) ? CFGSYNC_FORCE : 0, now,
				    d->cfg_acts, why, sizeof why);
	}
	free(blob);
	log_event(r == 0 ? LVL_INFO : LVL_WARN, "admin.request", "cmd=config_apply source=%s result=%s%s%s",
		  log_kv_quote(source, q, sizeof q), r == 0 ? "proposed" : r == TND_EREFUSED ? "refused" : "error",
		  r == 0 ? "" : " reason=", r == 0 ? "" : log_kv_quote(why, q, sizeof q));
	if (r == 0) {
		free(nc);
		free(dg);
		*deferred = true;
		cfg_run(d, now);
		return NULL;
	}
	res = cfg_result_json(d, r, why);
	if (res && r == TND_EINVAL && dg->n > 0) {
		json_t *arr = json_array();
		for (int i = 0; i < dg->n; i++)
			json_array_append_new(arr, json_string(dg->msg[i]));
		json_object_set_new(res, "diagnostics", arr);
	}
	free(nc);
	free(dg);
	cfg_run(d, now); /* a refused propose may still have said something */
	return res;
}

static json_t *ctl_config(void *arg, json_t *req, uint32_t token, bool *deferred)
{
	struct daemon *d = arg;
	const char *op = json_string_value(json_object_get(req, "op"));
	char msg[96];

	if (!op)
		return json_pack("{s:b,s:s,s:s}", "ok", 0, "code", "usage", "error",
				 "config needs \"op\": status, show or apply");
	if (strcmp(op, "status") == 0) {
		struct status_ctx sc = { .conf = d->conf, .self = d->self, .cfg = d->cfg };
		json_t *res = json_pack("{s:b}", "ok", 1), *st = status_config_json(&sc, true);
		json_object_update(res, st);
		json_decref(st);
		return res;
	}
	if (strcmp(op, "show") == 0)
		return cfg_show(d, req);
	if (strcmp(op, "apply") == 0)
		return cfg_apply_req(d, req, token, deferred);
	snprintf(msg, sizeof msg, "unknown config op \"%.32s\"", op);
	return json_pack("{s:b,s:s,s:s}", "ok", 0, "code", "usage", "error", msg);
}

/* ---- event sources ---------------------------------------------------- */

static void on_timer(struct loop *l, void *arg)
{
	struct daemon *d = arg;
	mono_t now = loop_now();

	for (int gi = 0; gi < d->conf->n_groups; gi++) {
		const struct tnd_group_conf *g = &d->conf->groups[gi];
		if (d->announce_left[gi] <= 0 || now < d->announce_at[gi])
			continue;
		for (int v = 0; v < g->n_vips; v++)
			if (nl_vip_announce(d->nl, &g->vips[v]) != 0)
				rl_log(d, RL_NL, now, "op=announce interface=%s error=\"%s\"",
				       g->vips[v].ifname, strerror(errno));
		d->announce_left[gi]--;
		d->announce_at[gi] = now + MS_TO_MONO(ANNOUNCE_INTERVAL_MS);
	}
	if (d->stopping && now >= d->stop_deadline) {
		log_event(LVL_WARN, "daemon.stop_timeout", "reason=grants_still_held");
		finish_stop(d);
		return;
	}
	if (d->sess && now >= sessions_next_wake(d->sess)) {
		sessions_tick(d->sess, now);
		sess_follow(d, now);
	}
	cfg_tick(d, now);
	upg_tick(d, now);
	if (now >= node_next_wake(d->node)) {
		struct ev ev = { .type = EV_TICK };
		d->last_tick = now;
		drive(d, &ev, now);
	} else {
		rearm(d);
	}
}

static void on_udp(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct link_ctx *lc = arg;
	struct daemon *d = lc->d;
	uint8_t pkt[WIRE_MTU + 64], body[WIRE_MTU];

	for (int i = 0; i < RX_BATCH_MAX; i++) {
		struct tnd_addr from;
		struct wire_hdr hdr;
		size_t len, body_len;
		mono_t now;
		char fa[64];
		int r = udp_recv(fd, pkt, sizeof pkt, &len, &from);

		if (r == 0)
			return;
		now = loop_now();
		if (r < 0) {
			if (r == TND_ENOSPC) {
				d->ctr.rx_datagrams++;
				d->ctr.malformed++;
				rl_log(d, RL_MALFORMED, now, "link=%d reason=oversized", lc->link);
				continue;
			}
			rl_log(d, RL_RECV, now, "link=%d error=\"%s\"", lc->link, strerror(errno));
			return;
		}
		d->ctr.rx_datagrams++;
		r = seal_open(&d->key, d->conf->cluster_id, pkt, len, &hdr, body, sizeof body, &body_len);
		addr_str(&from, fa, sizeof fa);
		switch (r) {
		case 0: {
			if (hdr.type >= 16 && hdr.type <= 31) { /* session sync */
				if (d->sess) {
					sessions_recv(d->sess, &hdr, body, body_len, now);
					sess_follow(d, now);
					rearm(d);
				} else {
					rl_log(d, RL_CORE_DROP, now, "link=%d from=%s reason=session_sync_off",
					       lc->link, fa);
				}
				break;
			}
			if (hdr.type >= CFG_MSG_STATE && hdr.type <= CFG_MSG_RESULT) {
				cfg_recv(d, &hdr, body, body_len, now);
				rearm(d);
				break;
			}
			if (hdr.type >= UPG_MSG_STATE && hdr.type <= 58) { /* upgrade, image transfer */
				if (d->upg)
					upg_recv(d, &hdr, body, body_len, now);
				rearm(d);
				break;
			}
			struct ev ev = { .type = EV_RECV };
			ev.u.recv.link = lc->link;
			ev.u.recv.hdr = &hdr;
			ev.u.recv.body = body;
			ev.u.recv.body_len = body_len;
			r = drive(d, &ev, now);
			if (r < 0)
				rl_log(d, RL_CORE_DROP, now, "link=%d from=%s reason=%s", lc->link, fa,
				       r == TND_EREPLAY ? "replayed" : r == TND_EINVAL ? "malformed"
				       : r == TND_EVERSION ? "bad_version" : "rejected");
			break;
		}
		case TND_EAUTH:
			d->ctr.unauthenticated++;
			rl_log(d, RL_UNAUTH, now, "link=%d from=%s reason=unauthenticated", lc->link, fa);
			break;
		case TND_ECLUSTER:
			d->ctr.wrong_cluster++;
			rl_log(d, RL_CLUSTER, now, "link=%d from=%s reason=wrong_cluster", lc->link, fa);
			break;
		case TND_EVERSION:
			d->ctr.version++;
			rl_log(d, RL_VERSION, now, "link=%d from=%s reason=bad_version", lc->link, fa);
			break;
		default:
			d->ctr.malformed++;
			rl_log(d, RL_MALFORMED, now, "link=%d from=%s reason=malformed", lc->link, fa);
			break;
		}
	}
}

static void iface_cb(const char *ifname, bool up, void *arg)
{
	struct daemon *d = arg;
	struct ev ev = { .type = EV_IFACE };

	ev.u.iface.ifname = ifname;
	ev.u.iface.up = up;
	log_event(LVL_DEBUG, "iface.event", "interface=%s up=%s", ifname, up ? "true" : "false");
	drive(d, &ev, loop_now());
}

static void on_nl(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct daemon *d = arg;

	if (nl_link_events(d->nl, iface_cb, d) < 0)
		rl_log(d, RL_NL, loop_now(), "op=link_events error=\"%s\"", strerror(errno));
}

static void shutdown_daemon(struct daemon *d, int signo)
{
	struct ev ev = { .type = EV_SHUTDOWN };
	mono_t now = loop_now();

	d->stopping = true;
	sd_notify_msg("STOPPING=1");
	log_event(LVL_INFO, "daemon.stop", "signal=%s", sigabbrev_np(signo));
	/* The core hands its groups over (sends the hand-offs, emits the VIP
	 * removals); finish_stop() then releases what is left. */
	d->stop_deadline = now + MS_TO_MONO(STOP_GRANT_WAIT_MS);
	drive(d, &ev, now);
	stop_if_done(d, now); /* at once, unless a grant waits for a barrier */
}

/* The end of a clean stop: whatever this node still holds is released
 * here, because this process will not be around to answer for it. */
static void finish_stop(struct daemon *d)
{
	struct node_status *st;
	mono_t now = loop_now();

	if (d->stopped)
		return;
	d->stopped = true;
	st = calloc(1, sizeof *st);
	if (st)
		node_status(d->node, now, st);
	for (int gi = 0; gi < d->conf->n_groups; gi++) {
		bool primary = false;
		for (int i = 0; st && i < st->n_groups; i++)
			if (st->groups[i].id == d->conf->groups[gi].id)
				primary = st->groups[i].state == G_PRIMARY;
		if (d->vips_on[gi] || primary) {
			handoff_guard(d, gi, true, now);
			vips_del(d, gi);
		}
	}
	free(st);
	loop_stop(d->loop);
}

static void reap_children(struct daemon *d)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		char what[64] = "";
		for (int i = 0; i < HOOKS_TRACKED_MAX; i++)
			if (d->hooks[i].pid == pid) {
				snprintf(what, sizeof what, "group=%u state=%s ", d->hooks[i].group_id,
					 gstate_name(d->hooks[i].state));
				d->hooks[i].pid = 0;
			}
		if (WIFEXITED(status))
			log_event(WEXITSTATUS(status) ? LVL_WARN : LVL_INFO, "hook.exit", "%spid=%d exit=%d",
				  what, (int)pid, WEXITSTATUS(status));
		else if (WIFSIGNALED(status))
			log_event(LVL_WARN, "hook.exit", "%spid=%d signal=%s", what, (int)pid,
				  sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
	}
}

static void on_signal(struct loop *l, int signo, void *arg)
{
	struct daemon *d = arg;

	switch (signo) {
	case SIGTERM:
	case SIGINT:
		if (!d->stopping)
			shutdown_daemon(d, signo);
		break;
	case SIGCHLD:
		reap_children(d);
		break;
	case SIGHUP:
		log_event(LVL_WARN, "daemon.sighup",
			  "action=ignored reason=\"the configuration is the cluster's: change it with "
			  "tandemctl config apply FILE\"");
		break;
	}
}

/* ---- control socket callbacks --------------------------------------- */

static json_t *ctl_status(void *arg)
{
	struct daemon *d = arg;
	struct nl_stats nls;
	struct status_ctx sc = {
		.conf = d->conf, .self = d->self, .node = d->node, .version = TND_VERSION,
		.incarnation = d->incarnation, .started = d->started, .drv = &d->ctr,
		.nl = &nls, .sess = d->sess, .cfg = d->cfg,
		.sess_group = d->conf->groups[d->sess_gi].id,
	};

	nl_get_stats(d->nl, &nls);
	return status_json(&sc, loop_now());
}

static int ctl_admin(void *arg, const struct admin_req *req, char *why, size_t why_len)
{
	struct daemon *d = arg;
	mono_t now = loop_now();
	int r;

	if (d->stopping) {
		snprintf(why, why_len, "tandemd is shutting down");
		return TND_EREFUSED;
	}
	actions_reset(&d->acts);
	r = node_admin(d->node, req, now, &d->acts, why, why_len);
	perform(d, now);
	rearm(d);
	return r;
}

static void on_log_event(const struct log_entry *e, void *arg)
{
	struct daemon *d = arg;

	ctl_publish(d->ctl, e);
	http_publish(d->http, e);
}

/* ---- versions: images, A/B, restart, self-confirmation (issue 4) ---------
 *
 * The worker's half of src/io/supervise.h: the control socket's
 * {"cmd":"image",...} (list, install, activate), the restart into the
 * active version (a clean stop, then exit BOOT_EXIT_RESTART for the
 * supervisor) and the "confirmed good" mark of a version on trial.
 *
 * A restart takes the clean-stop path the daemon already has: with a peer
 * alive, every group is handed over (sessions synced, VIPs moved) and the
 * node comes back as a secondary; alone, its VIPs are released for the
 * restart. They are not kept across the restart on purpose: the new
 * process starts as primary of nothing (remove_stale_vips) because it
 * cannot prove that no other node took a group while nothing answered;
 * an in-service upgrade moves every group off a node before restarting
 * it, so no VIP is down then. Conntrack entries and the ruleset stay in
 * the kernel untouched.
 *
 * Confirmation (core/boot.h): the version on trial writes confirmed=true
 * once, at one check, all of these hold: it has run IMG_CONFIRM_MIN_HB
 * heartbeats (and at least IMG_CONFIRM_MIN_MS) and is not in TILT; every
 * group has left init; every peer that was alive when the version was
 * activated is alive again; the session table is in sync (sessions.sync)
 * and so is the configuration of every live node. Until then it records
 * what it waits for, which is what a revert on the hold timer reports. */

#define IMG_TICK_MS 250                 /* confirmation checks, helper watchdog */
#define IMG_CONFIRM_MIN_HB 10           /* heartbeats run before a version may confirm */
#define IMG_CONFIRM_MIN_MS 2000
#define IMG_HELPER_TIMEOUT_MS 300000    /* an install that takes longer is killed */
#define IMG_CHECK_CONF ".check-config.yaml" /* the running configuration, for --check-config */

struct img {
	bool supervised;   /* started by the supervisor (--worker) */
	bool trial;        /* this process is the active version, unconfirmed */
	int timer_fd;
	int exit_code;     /* main()'s: BOOT_EXIT_RESTART after a restart request */
	char waiting[BOOT_REASON_LEN];
	/* The helper in flight (one at a time): install or check. */
	pid_t h_pid;       /* 0 = none */
	int h_pidfd, h_out;
	uint32_t h_token;
	bool h_activate, h_restart, h_install;
	bool h_for_upg;    /* asked by the upgrade core, not a client */
	char h_version[TND_VERSION_MAX], h_file[TND_PATH_MAX];
	mono_t h_started, h_deadline;
};

static json_t *img_err(const char *code, const char *msg)
{
	return json_pack("{s:b,s:s,s:s}", "ok", 0, "code", code, "error", msg);
}

/* What the version on trial still waits for ("" = nothing: healthy). */
static void img_waiting_for(struct daemon *d, mono_t now, const struct boot_state *b,
			    char *out, size_t len)
{
	mono_t min_up = MS_TO_MONO((int64_t)d->conf->heartbeat_ms * IMG_CONFIRM_MIN_HB);
	struct node_status *st = d->st;

	out[0] = '\0';
	if (min_up < MS_TO_MONO(IMG_CONFIRM_MIN_MS))
		min_up = MS_TO_MONO(IMG_CONFIRM_MIN_MS);
	if (now - d->started < min_up) {
		say(out, len, "%d heartbeats of uptime", IMG_CONFIRM_MIN_HB);
		return;
	}
	node_status(d->node, now, st);
	if (st->tilt) {
		say(out, len, "the end of TILT (observing after a stall)");
		return;
	}
	for (int gi = 0; gi < st->n_groups; gi++)
		if (st->groups[gi].state == G_INIT) {
			say(out, len, "group %u to leave init", st->groups[gi].id);
			return;
		}
	for (int i = 0; i < b->n_peers; i++) {
		int x = conf_node_index(d->conf, b->peers[i]);
		if (x >= 0 && x != d->self && !st->peers[x].alive) {
			say(out, len, "peer %s alive", b->peers[i]);
			return;
		}
	}
	if (d->sess && !sessions_in_sync(d->sess, now)) {
		say(out, len, "the session table in sync");
		return;
	}
	if (d->cfg) {
		struct cfgsync_report *r = calloc(1, sizeof *r);
		bool all = true;
		if (!r) {
			say(out, len, "memory");
			return;
		}
		cfgsync_report(d->cfg, r);
		for (int i = 0; i < r->n_nodes && i < d->conf->n_nodes; i++)
			if (r->nodes[i].alive || i == d->self)
				all &= r->nodes[i].known && r->nodes[i].in_sync;
		free(r);
		if (!all) {
			say(out, len, "the configuration in sync");
			return;
		}
	}
}

static void img_confirm_check(struct daemon *d, mono_t now)
{
	struct img *im = d->img;
	struct boot_state b;
	char why[256], w[BOOT_REASON_LEN], qw[BOOT_REASON_LEN + 8];

	if (!im->trial || d->stopping)
		return;
	if (slots_load(d->state_dir, &b, why, sizeof why) != 0)
		return;
	if (strcmp(b.active, TND_VERSION) != 0 || b.confirmed) {
		im->trial = false; /* reverted or confirmed meanwhile: nothing to do */
		return;
	}
	img_waiting_for(d, now, &b, w, sizeof w);
	if (w[0]) {
		if (strcmp(w, im->waiting) != 0) {
			snprintf(im->waiting, sizeof im->waiting, "%s", w);
			log_event(LVL_INFO, "version.waiting", "version=%s for=%s", TND_VERSION,
				  log_kv_quote(w, qw, sizeof qw));
			if (boot_set_waiting(&b, w) && slots_save(d->state_dir, &b) != 0)
				log_event(LVL_WARN, "boot.write_failed", "error=\"%s\"", strerror(errno));
		}
		return;
	}
	uint32_t tries = b.tries;
	if (boot_confirm(&b, TND_VERSION, (int64_t)time(NULL)) != 0)
		return;
	if (slots_save(d->state_dir, &b) != 0) {
		log_event(LVL_ERROR, "boot.write_failed", "op=confirm error=\"%s\"", strerror(errno));
		return;
	}
	im->trial = false;
	if (im->supervised)
		supervise_notify();
	log_event(LVL_INFO, "version.confirmed", "version=%s after_ms=%" PRId64 " try=%u",
		  TND_VERSION, (int64_t)MONO_TO_MS(now - d->started), tries);
}

/* Make `version` active for the next start (boot.h boot_activate), with
 * the peers alive now as those it must see again. */
static int img_activate(struct daemon *d, const char *version, char *why, size_t len)
{
	const char *peers[TND_NODES_MAX];
	struct boot_state b;
	mono_t now = loop_now();
	int n = 0, r;

	r = slots_load(d->state_dir, &b, why, len);
	if (r != 0)
		return r;
	node_status(d->node, now, d->st);
	for (int x = 0; x < d->conf->n_nodes; x++)
		if (x != d->self && d->st->peers[x].alive)
			peers[n++] = d->conf->nodes[x].name;
	r = boot_activate(&b, version, d->conf->upgrade_hold_timer_s, peers, n, (int64_t)time(NULL),
			  why, len);
	if (r != 0)
		return r;
	if (slots_save(d->state_dir, &b) != 0) {
		say(why, len, "cannot write %s/%s: %s", d->state_dir, SLOTS_BOOT_FILE, strerror(errno));
		return TND_ESYS;
	}
	(void)slots_gc(d->state_dir, &b, NULL);
	if (d->img->supervised)
		supervise_notify();
	log_event(LVL_INFO, "version.activate", "version=%s previous=%s hold_timer_s=%u expect_peers=%d",
		  version, b.previous, b.hold_timer_s, n);
	return 0;
}

/* A clean stop, then the supervisor starts the active version. */
static void img_restart(struct daemon *d, const char *to)
{
	log_event(LVL_INFO, "daemon.restart", "from=%s to=%s", TND_VERSION, to);
	d->img->exit_code = BOOT_EXIT_RESTART;
	if (!d->stopping)
		shutdown_daemon(d, SIGTERM);
}

static void img_helper_done(struct daemon *d, bool kill_it)
{
	struct img *im = d->img;
	json_t *res;
	char why[512], q1[600];
	bool ok;

	loop_del(d->loop, im->h_pidfd);
	res = slots_helper_reap(im->h_pid, im->h_pidfd, im->h_out, kill_it);
	if (kill_it) {
		/* Its partial copy (slots.h: versions/.incoming-PID). */
		snprintf(why, sizeof why, "%s/%s/.incoming-%d", d->state_dir, SLOTS_VERSIONS_DIR,
			 (int)im->h_pid);
		(void)slots_rmtree(why);
	}
	im->h_pid = 0;
	snprintf(why, sizeof why, "%s/%s", d->state_dir, IMG_CHECK_CONF);
	(void)unlink(why);
	ok = json_is_true(json_object_get(res, "ok"));
	if (ok && !im->h_install)
		json_object_set_new(res, "checked", json_true());
	if (ok && im->h_install)
		snprintf(im->h_version, sizeof im->h_version, "%s",
			 json_string_value(json_object_get(res, "version")) ?: "");
	log_event(ok ? LVL_INFO : LVL_WARN, im->h_install ? "image.install" : "image.check",
		  "version=%s file=%s result=%s took_ms=%" PRId64 "%s%s", im->h_version[0] ? im->h_version : "-",
		  im->h_install ? log_kv_quote(im->h_file, q1, sizeof q1) : "-", ok ? "ok" : "refused",
		  (int64_t)MONO_TO_MS(loop_now() - im->h_started), ok ? "" : " error=",
		  ok ? "" : log_kv_quote(json_string_value(json_object_get(res, "error")) ?: "?", why,
					 sizeof why));
	if (ok && im->h_activate) {
		int r = img_activate(d, im->h_version, why, sizeof why);
		if (r != 0) {
			json_t *e = img_err(r == TND_EREFUSED ? "refused" : "failed", why);
			json_object_set_new(e, "installed", json_boolean(im->h_install));
			json_object_set_new(e, "version", json_string(im->h_version));
			json_decref(res);
			res = e;
			ok = false;
		} else {
			json_object_set_new(res, "activated", json_true());
		}
	}
	if (ok && im->h_restart) {
		json_object_set_new(res, "restarting", json_true());
		json_object_set_new(res, "hold_timer_s", json_integer(d->conf->upgrade_hold_timer_s));
		json_object_set_new(res, "tries_max", json_integer(BOOT_TRIES_MAX));
	}
	if (im->h_for_upg) {
		im->h_for_upg = false;
		upg_install_done(d, ok, json_string_value(json_object_get(res, "error")) ?: "failed");
		json_decref(res);
	} else {
		ctl_reply(d->ctl, im->h_token, res);
	}
	if (ok && im->h_restart)
		img_restart(d, im->h_version);
}

static void on_img_helper(struct loop *l, int fd, uint32_t events, void *arg)
{
	img_helper_done(arg, false);
}

static void on_img_tick(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct daemon *d = arg;
	uint64_t n;
	mono_t now = loop_now();

	if (read(fd, &n, sizeof n) < 0)
		(void)0;
	if (d->img->h_pid && now >= d->img->h_deadline)
		img_helper_done(d, true);
	img_confirm_check(d, now);
	upg_slow_tick(d, now);
	if (d->http_restart) {
		d->http_restart = false;
		http_close(d->http);
		d->http = NULL;
		http_start(d);
	}
}

/* Write the configuration this node runs (the cluster's committed
 * generation, not necessarily the file) to `path` for a new binary's
 * --check-config. A scratch file: written without fsync, which could hold
 * the event loop (and the heartbeats) for a long time on a busy disk. */
static int write_running_conf(struct daemon *d, const char *path, char *why, size_t why_len)
{
	struct cfgsync_text t;
	const uint8_t *blob;
	uint64_t gen;
	size_t len;
	int fd, e = 0;
	bool ok;

	blob = cfgsync_current(d->cfg, &gen, &len);
	if (!blob || cfgsync_doc_decode(blob, len, &t) != 0) {
		snprintf(why, why_len, "the running configuration is not available");
		return TND_ENOENT;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	errno = 0;
	ok = fd >= 0 && write(fd, t.yaml, t.yaml_len) == (ssize_t)t.yaml_len;
	if (!ok)
		e = fd >= 0 && errno == 0 ? ENOSPC : errno; /* a short write: the disk is full */
	if (fd >= 0 && close(fd) != 0 && ok) {
		ok = false;
		e = errno;
	}
	if (!ok) {
		snprintf(why, why_len, "cannot write %s: %s", path, strerror(e));
		return TND_ESYS;
	}
	return 0;
}

/* Start the helper for an install (file) or an activation check
 * (version), answered later through ctl_reply(token). */
static json_t *img_start_helper(struct daemon *d, uint32_t token, const char *file,
				const char *version, bool activate, bool restart, bool *deferred)
{
	struct img *im = d->img;
	char conf[TND_PATH_MAX + 32], msg[TND_PATH_MAX + 96];
	char *args[8];
	int n = 0;

	if (d->stopping)
		return img_err("refused", "tandemd is shutting down");
	if (im->h_pid)
		return img_err("refused", "another image install or activation is in progress on this node");
	if (restart && !im->supervised)
		return img_err("refused", "this tandemd runs without its supervisor (--no-supervise): "
			       "activate without --restart, then restart it yourself");
	snprintf(conf, sizeof conf, "%s/%s", d->state_dir, IMG_CHECK_CONF);
	if (write_running_conf(d, conf, msg, sizeof msg) != 0)
		return img_err("failed", msg);
	args[n++] = (char *)(file ? "install" : "check");
	args[n++] = (char *)d->state_dir;
	args[n++] = (char *)(file ? file : version);
	if (file)
		args[n++] = d->conf->upgrade_trusted_keys;
	args[n++] = conf;
	args[n] = NULL;
	im->h_started = loop_now(); /* the helper may be done before spawn returns */
	if (slots_helper_spawn(args, &im->h_pid, &im->h_pidfd, &im->h_out) != 0) {
		im->h_pid = 0;
		return img_err("failed", strerror(errno));
	}
	if (loop_add(d->loop, im->h_pidfd, EPOLLIN, on_img_helper, d) != 0) {
		json_decref(slots_helper_reap(im->h_pid, im->h_pidfd, im->h_out, true));
		im->h_pid = 0;
		return img_err("failed", "event loop full");
	}
	im->h_token = token;
	im->h_install = file != NULL;
	im->h_activate = activate || restart;
	im->h_restart = restart;
	snprintf(im->h_file, sizeof im->h_file, "%s", file ? file : "");
	snprintf(im->h_version, sizeof im->h_version, "%s", version ? version : "");
	im->h_deadline = im->h_started + MS_TO_MONO(IMG_HELPER_TIMEOUT_MS);
	*deferred = true;
	return NULL;
}

/* `image list` and the status section: this node's boot record. */
static json_t *img_boot_json(struct daemon *d, const struct boot_state *b)
{
	json_t *o = json_pack("{s:s,s:s,s:s?,s:b,s:I,s:i,s:I,s:b}", "running", TND_VERSION,
			      "active", b->active, "previous", b->previous[0] ? b->previous : NULL,
			      "confirmed", b->confirmed, "tries", (json_int_t)b->tries,
			      "tries_max", BOOT_TRIES_MAX, "hold_timer_s", (json_int_t)b->hold_timer_s,
			      "supervised", d->img->supervised);

	if (!o)
		return NULL;
	json_object_set_new(o, "waiting_for", b->confirmed || !b->waiting_for[0] ? json_null()
							: json_string(b->waiting_for));
	json_object_set_new(o, "last_failure", b->last_failure[0] ? json_string(b->last_failure)
								   : json_null());
	json_object_set_new(o, "last_revert", b->reverted ?
		json_pack("{s:s,s:s,s:s,s:I}", "from", b->last_revert.from, "to", b->last_revert.to,
			  "reason", b->last_revert.reason, "at", (json_int_t)b->last_revert.at_s)
		: json_null());
	return o;
}

static json_t *img_list(struct daemon *d)
{
	struct boot_state b;
	char why[256];
	json_t *res, *peers;

	if (slots_load(d->state_dir, &b, why, sizeof why) != 0)
		return img_err("failed", why);
	res = img_boot_json(d, &b);
	if (!res)
		return NULL;
	json_object_set_new(res, "ok", json_true());
	json_object_set_new(res, "node", json_string(d->conf->nodes[d->self].name));
	json_object_set_new(res, "installed", slots_list_json(d->state_dir, &b));
	json_object_set_new(res, "install_in_progress", json_boolean(d->img->h_pid != 0));
	node_status(d->node, loop_now(), d->st);
	peers = json_array();
	for (int x = 0; x < d->conf->n_nodes; x++) {
		const struct node_peer_status *p = &d->st->peers[x];
		if (x == d->self)
			continue;
		json_array_append_new(peers, json_pack("{s:s,s:s,s:s?}", "node", d->conf->nodes[x].name,
						       "state", p->alive ? "alive" : "lost",
						       "version", p->ever_seen && p->version[0] ? p->version : NULL));
	}
	json_object_set_new(res, "peers", peers);
	return res;
}

static bool img_bool(json_t *req, const char *key, bool *out)
{
	json_t *v = json_object_get(req, key);

	if (v && !json_is_boolean(v))
		return false;
	*out = json_is_true(v);
	return true;
}

/* {"cmd":"image","op":"list"|"install"|"activate",...} */
static json_t *ctl_image(void *arg, json_t *req, uint32_t token, bool *deferred)
{
	struct daemon *d = arg;
	const char *op = json_string_value(json_object_get(req, "op"));
	bool activate = false, restart = false;
	char msg[TND_PATH_MAX + 128];

	if (!op)
		return img_err("usage", "image needs \"op\": list, install or activate");
	if (strcmp(op, "list") == 0)
		return img_list(d);
	if (!img_bool(req, "activate", &activate) || !img_bool(req, "restart", &restart))
		return img_err("usage", "\"activate\" and \"restart\" must be true or false");
	if (strcmp(op, "install") == 0) {
		const char *file = json_string_value(json_object_get(req, "file"));
		if (!file || file[0] != '/' || strlen(file) >= TND_PATH_MAX)
			return img_err("usage", "install needs \"file\": the image's absolute path");
		log_event(LVL_INFO, "admin.request", "cmd=image_install file=%s activate=%s restart=%s",
			  log_kv_quote(file, msg, sizeof msg), activate ? "true" : "false",
			  restart ? "true" : "false");
		return img_start_helper(d, token, file, NULL, activate, restart, deferred);
	}
	if (strcmp(op, "activate") == 0) {
		const char *v = json_string_value(json_object_get(req, "version"));
		struct boot_state b;
		char why[BOOT_REASON_LEN + 64];
		if (!v || !boot_version_ok(v))
			return img_err("usage", "activate needs \"version\": an installed version");
		log_event(LVL_INFO, "admin.request", "cmd=image_activate version=%s restart=%s", v,
			  restart ? "true" : "false");
		if (!slots_installed(d->state_dir, v)) {
			snprintf(msg, sizeof msg, "version %s is not installed on %s (see tandemctl image list)",
				 v, d->conf->nodes[d->self].name);
			return img_err("failed", msg);
		}
		/* Refuse what boot_activate would refuse before running the
		 * check: the answer is the same, and quicker. */
		if (slots_load(d->state_dir, &b, why, sizeof why) != 0)
			return img_err("failed", why);
		if (boot_activate(&b, v, 0, NULL, 0, 0, why, sizeof why) != 0)
			return img_err("refused", why);
		return img_start_helper(d, token, NULL, v, true, restart, deferred);
	}
	snprintf(msg, sizeof msg, "unknown image op \"%.32s\" (list, install, activate)", op);
	return img_err("usage", msg);
}

/* status, with this node's versions under "image". */
static json_t *img_status(void *arg)
{
	struct daemon *d = arg;
	json_t *st = ctl_status(arg);
	struct boot_state b;
	char why[256];

	if (st && slots_load(d->state_dir, &b, why, sizeof why) == 0)
		json_object_set_new(st, "image", img_boot_json(d, &b));
	if (st && d->upg)
		json_object_set_new(st, "upgrade", upg_summary_json(d));
	return st;
}

/* ---- the HTTP API (src/api/http.h) ------------------------------------ */

static json_t *upg_status_json(struct daemon *d);

/* GET /metrics: the status document, with the configuration report in
 * its `config status` detail, and the upgrade's status. */
static char *http_metrics(void *arg, size_t *len)
{
	struct daemon *d = arg;
	json_t *st = img_status(d), *up = d->upg ? upg_status_json(d) : NULL;
	struct status_ctx sc = { .conf = d->conf, .self = d->self, .cfg = d->cfg };
	char *text = NULL;

	if (st) {
		json_object_set_new(st, "config", status_config_json(&sc, true));
		text = metrics_render(st, up, len);
	}
	json_decref(st);
	json_decref(up);
	return text;
}

/* Listen when api.http is set. The API failing to start never stops the
 * node: the cluster matters more than its web page; the event says why. */
static void http_start(struct daemon *d)
{
	struct http_ops ops = { .metrics = http_metrics, .arg = d };
	char err[TND_PATH_MAX + 200];

	if (!d->conf->api_http[0])
		return;
	d->http = http_open(d->conf, d->loop, d->ctl, &ops, err, sizeof err);
	if (!d->http) {
		char q[TND_PATH_MAX + 240];
		log_event(LVL_ERROR, "api.error", "address=%s error=%s", d->conf->api_http,
			  log_kv_quote(err, q, sizeof q));
	} else {
		log_event(LVL_INFO, "api.listen", "address=%s tls=%s", d->conf->api_http,
			  d->conf->api_tls_cert[0] ? "yes" : "no");
	}
}

static bool api_conf_eq(const struct tnd_conf *a, const struct tnd_conf *b)
{
	return strcmp(a->api_http, b->api_http) == 0 && strcmp(a->api_token_file, b->api_token_file) == 0 &&
	       strcmp(a->api_tls_cert, b->api_tls_cert) == 0 && strcmp(a->api_tls_key, b->api_tls_key) == 0 &&
	       strcmp(a->api_images_dir, b->api_images_dir) == 0 &&
	       strcmp(a->api_probe_file, b->api_probe_file) == 0;
}

/* ---- in-service upgrade (issue 5) ----------------------------------------
 *
 * The driver of src/core/upgrade.h: it gives the core this node's facts
 * (version and boot record, links, group states, configuration and
 * session sync, free space, CPU) and the election's view, and performs
 * what the core decides: messages, the journal file (STATE_DIR/
 * upgrade.journal, written atomically before the core goes on), node
 * actions (configuration backup, image fetch through src/io/xferio.h,
 * install + restart and revert + restart through the version helper of
 * the section above), group moves through node_admin(), and the answers
 * to `tandemctl upgrade`. The pre-check of an image runs in the version
 * helper process (slots.h "precheck") so the loop keeps its heartbeats. */

#define UPG_JOURNAL_FILE "upgrade.journal"
#define UPG_BACKUP_DIR "backups"
#define UPG_PRECHECK_TIMEOUT_MS 120000
#define UPG_DONE_QUEUE 16
#define UPG_IMAGE_KEEP_MS 60000 /* images/ kept this long after their last use */

struct upg_drv {
	struct upg *core;
	struct upg_actions *acts;
	struct xferio *xfer;
	struct sysfacts sys;
	mono_t sys_next;
	uint64_t free_bytes;   /* state directory, sampled with sys */
	bool in_run;
	bool suspended;        /* preemption suspended in the node core */
	struct boot_state boot; /* cached, refreshed on the version tick */
	bool boot_ok;
	/* Local node actions in flight. */
	struct { bool busy; uint64_t id; int step; uint8_t digest[UPG_DIGEST_LEN]; } fetch;
	struct { bool busy; uint64_t id; int step; enum upg_do op; } inst;
	/* Answers queued for the core (performed after the current batch). */
	int n_done;
	struct upg_ev done[UPG_DONE_QUEUE];
	/* A pre-check helper for `upgrade plan|start` (one at a time). */
	pid_t pc_pid;
	int pc_pidfd, pc_out;
	uint32_t pc_token;
	bool pc_start;
	struct upg_opts pc_opts;
	char pc_file[TND_PATH_MAX];
	mono_t pc_deadline;
	uint64_t auto_finalized; /* journal id finalized by upgrade.auto_finalize */
	mono_t images_used;      /* last time images/ was needed; 0 = cleaned */
};

static void upg_run(struct daemon *d, mono_t now);

static const char *upg_node_name(const struct daemon *d, int x)
{
	return x >= 0 && x < d->conf->n_nodes ? d->conf->nodes[x].name : "?";
}

/* This node's facts for the core. */
static void upg_local_facts(struct daemon *d, mono_t now, struct upg_facts *f)
{
	struct upg_drv *u = d->upg;
	const struct upg_journal *j = upg_journal_get(u->core);
	struct node_status *st = d->st;

	memset(f, 0, sizeof *f);
	f->known = true;
	f->heard = now;
	f->incarnation = d->incarnation;
	snprintf(f->version, sizeof f->version, "%s", TND_VERSION);
	f->proto_min = WIRE_PROTO_MIN;
	f->proto_max = WIRE_PROTO_MAX;
	if (u->boot_ok) {
		snprintf(f->previous, sizeof f->previous, "%s", u->boot.previous);
		f->confirmed = strcmp(u->boot.active, TND_VERSION) == 0 && u->boot.confirmed;
		if (u->boot.reverted) {
			snprintf(f->revert_reason, sizeof f->revert_reason, "%.*s", (int)sizeof f->revert_reason - 1,
				 u->boot.last_revert.reason);
			snprintf(f->revert_from, sizeof f->revert_from, "%s", u->boot.last_revert.from);
			f->revert_at_s = u->boot.last_revert.at_s;
		}
	}
	f->journal_id = j->id;
	f->journal_seq = j->seq;
	node_status(d->node, now, st);
	f->links_all_up = true;
	for (int x = 0; x < d->conf->n_nodes; x++) {
		if (x == d->self)
			continue;
		if (!st->peers[x].alive)
			f->links_all_up = false;
		for (int l = 0; l < d->n_links; l++)
			if (!st->peers[x].links[l].up)
				f->links_all_up = false;
	}
	f->maint = st->maint;
	f->n_groups = st->n_groups;
	for (int gi = 0; gi < st->n_groups && gi < TND_GROUPS_MAX; gi++) {
		f->groups[gi].id = st->groups[gi].id;
		f->groups[gi].state = st->groups[gi].state == G_PRIMARY ? UPG_G_PRIMARY
				      : st->groups[gi].state == G_SECONDARY ? UPG_G_SECONDARY : UPG_G_OTHER;
	}
	if (d->cfg) {
		struct cfgsync_report *r = calloc(1, sizeof *r);
		if (r) {
			cfgsync_report(d->cfg, r);
			f->config_in_sync = r->nodes[d->self].in_sync;
			f->config_gen = r->nodes[d->self].committed_gen;
			free(r);
		}
	}
	f->sessions_in_sync = d->sess ? sessions_in_sync(d->sess, now) : true;
	f->free_bytes = u->free_bytes; /* sampled with the CPU, once a second */
	f->cpu_percent = sysfacts_cpu_percent(&u->sys, now);
	f->has_image = j->id != 0 && xferio_have(u->xfer, j->digest, NULL);
}

static void upg_build_view(struct daemon *d, mono_t now, struct upg_view *v)
{
	struct node_status *st = d->st;
	struct timespec rt;

	memset(v, 0, sizeof *v);
	node_status(d->node, now, st);
	v->coordinator = st->groups[0].state == G_PRIMARY ? d->self : st->groups[0].primary;
	for (int x = 0; x < d->conf->n_nodes; x++) {
		if (x == d->self) {
			v->alive[x] = v->links_up[x] = true;
			continue;
		}
		v->alive[x] = st->peers[x].alive;
		v->links_up[x] = st->peers[x].alive;
		for (int l = 0; l < d->n_links; l++)
			if (!st->peers[x].links[l].up)
				v->links_up[x] = false;
	}
	for (int gi = 0; gi < st->n_groups && gi < TND_GROUPS_MAX; gi++)
		v->primary[gi] = st->groups[gi].state == G_PRIMARY ? d->self : st->groups[gi].primary;
	for (int gi = st->n_groups; gi < TND_GROUPS_MAX; gi++)
		v->primary[gi] = TND_NO_NODE;
	clock_gettime(CLOCK_REALTIME, &rt);
	v->wall_ms = (int64_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000;
}

/* Facts and view into the core (before each of its steps). */
static void upg_feed(struct daemon *d, mono_t now)
{
	struct upg_facts f;
	struct upg_view v;

	upg_local_facts(d, now, &f);
	upg_set_local(d->upg->core, &f, now);
	upg_build_view(d, now, &v);
	upg_set_view(d->upg->core, &v, now);
}

static void upg_queue_done(struct daemon *d, uint64_t id, int step, enum upg_do op, int rc,
			   const char *code, const char *msg)
{
	struct upg_drv *u = d->upg;
	struct upg_ev *e;

	if (u->n_done >= UPG_DONE_QUEUE) {
		log_event(LVL_ERROR, "upgrade.answers_dropped", "max=%d", UPG_DONE_QUEUE);
		return;
	}
	e = &u->done[u->n_done++];
	memset(e, 0, sizeof *e);
	e->type = UPG_EV_DONE;
	e->id = id;
	e->step = step;
	e->done_op = op;
	e->rc = rc;
	snprintf(e->code, sizeof e->code, "%s", code ? code : "");
	snprintf(e->message, sizeof e->message, "%s", msg ? msg : "");
}

/* Save the configuration this node runs as STATE_DIR/backups/
 * pre-upgrade-<id>.doc (the cluster document: YAML and ruleset), the
 * format `tandemctl config restore` reads back through config show. */
static int upg_backup(struct daemon *d, uint64_t id, char *why, size_t len)
{
	char dir[TND_PATH_MAX + 16], name[64];
	const uint8_t *blob;
	uint64_t gen;
	size_t blen;

	blob = cfgsync_current(d->cfg, &gen, &blen);
	if (!blob) {
		say(why, len, "the running configuration is not available");
		return TND_ENOENT;
	}
	snprintf(dir, sizeof dir, "%s/%s", d->state_dir, UPG_BACKUP_DIR);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		say(why, len, "cannot create %s: %s", dir, strerror(errno));
		return TND_ESYS;
	}
	snprintf(name, sizeof name, "pre-upgrade-%" PRIu64 ".doc", id);
	if (state_write_atomic(dir, name, blob, blen) != 0) {
		say(why, len, "cannot write %s/%s: %s", dir, name, strerror(errno));
		return TND_ESYS;
	}
	log_event(LVL_INFO, "upgrade.backup", "id=%" PRIu64 " generation=%" PRIu64 " file=%s/%s", id, gen,
		  dir, name);
	return 0;
}

/* One UPG_ACT_DO: answered now (queued) or later (fetch, install). */
static void upg_do(struct daemon *d, const struct upg_act *a, mono_t now)
{
	struct upg_drv *u = d->upg;
	char why[512], path[TND_PATH_MAX + 96];
	bool deferred = false;
	json_t *res;
	int r;

	switch (a->op) {
	case UPG_DO_BACKUP:
		r = upg_backup(d, a->id, why, sizeof why);
		upg_queue_done(d, a->id, a->step, a->op, r, r ? "E_BACKUP" : "", r ? why : "saved");
		return;
	case UPG_DO_FETCH:
		if (u->fetch.busy && memcmp(u->fetch.digest, a->digest, UPG_DIGEST_LEN) == 0)
			return; /* in flight */
		r = xferio_fetch(u->xfer, a->digest, a->bytes, a->node, now);
		if (r == 1) {
			upg_queue_done(d, a->id, a->step, a->op, 0, "", "already here");
		} else if (r < 0) {
			say(why, sizeof why, "cannot fetch the image from %s: %s", upg_node_name(d, a->node),
			    tnd_strerror(r));
			upg_queue_done(d, a->id, a->step, a->op, r, "E_FETCH", why);
		} else {
			u->fetch.busy = true;
			u->fetch.id = a->id;
			u->fetch.step = a->step;
			memcpy(u->fetch.digest, a->digest, UPG_DIGEST_LEN);
		}
		return;
	case UPG_DO_INSTALL:
	case UPG_DO_REVERT:
		if (strcmp(a->version, TND_VERSION) == 0) {
			upg_queue_done(d, a->id, a->step, a->op, 0, "", "running it already");
			return;
		}
		if (u->inst.busy) {
			if (u->inst.id == a->id && u->inst.step == a->step && u->inst.op == a->op)
				return; /* in flight */
			upg_queue_done(d, a->id, a->step, a->op, TND_EREFUSED, "E_INSTALL",
				       "another install is in progress on this node");
			return;
		}
		if (a->op == UPG_DO_INSTALL) {
			if (xferio_path(u->xfer, a->digest, path, sizeof path) != 0 ||
			    !xferio_have(u->xfer, a->digest, NULL)) {
				upg_queue_done(d, a->id, a->step, a->op, TND_ENOENT, "E_INSTALL",
					       "the image is not on this node");
				return;
			}
			res = img_start_helper(d, 0, path, NULL, true, true, &deferred);
		} else {
			if (!slots_installed(d->state_dir, a->version)) {
				say(why, sizeof why, "version %s is not installed on this node", a->version);
				upg_queue_done(d, a->id, a->step, a->op, TND_ENOENT, "E_REVERT", why);
				return;
			}
			res = img_start_helper(d, 0, NULL, a->version, true, true, &deferred);
		}
		if (!deferred) {
			const char *e = json_string_value(json_object_get(res, "error"));
			upg_queue_done(d, a->id, a->step, a->op, TND_EREFUSED,
				       a->op == UPG_DO_INSTALL ? "E_INSTALL" : "E_REVERT", e ? e : "failed");
			json_decref(res);
			return;
		}
		d->img->h_for_upg = true;
		u->inst.busy = true;
		u->inst.id = a->id;
		u->inst.step = a->step;
		u->inst.op = a->op;
		return;
	}
}

/* The version helper ended an install or revert the upgrade asked for. */
static void upg_install_done(struct daemon *d, bool ok, const char *why)
{
	struct upg_drv *u = d->upg;

	if (!u->inst.busy)
		return;
	u->inst.busy = false;
	upg_queue_done(d, u->inst.id, u->inst.step, u->inst.op, ok ? 0 : TND_EREFUSED,
		       ok ? "" : u->inst.op == UPG_DO_INSTALL ? "E_INSTALL" : "E_REVERT",
		       ok ? "installed; restarting" : why);
	upg_run(d, loop_now());
}

static void upg_xfer_done(void *arg, const uint8_t digest[32], int rc, const char *why)
{
	struct daemon *d = arg;
	struct upg_drv *u = d->upg;

	if (!u->fetch.busy || memcmp(u->fetch.digest, digest, UPG_DIGEST_LEN) != 0)
		return;
	u->fetch.busy = false;
	log_event(rc == 0 ? LVL_INFO : LVL_WARN, "upgrade.fetch", "id=%" PRIu64 " result=%s%s%s%s",
		  u->fetch.id, rc == 0 ? "ok" : "failed", rc ? " error=\"" : "", rc ? why : "",
		  rc ? "\"" : "");
	upg_queue_done(d, u->fetch.id, u->fetch.step, UPG_DO_FETCH, rc, rc ? "E_FETCH" : "",
		       rc ? why : "fetched and verified");
	upg_run(d, loop_now());
}

static void upg_xfer_send(void *arg, int to, const uint8_t *pkt, size_t len)
{
	struct daemon *d = arg;

	send_plain(d, to, cfg_link(d, to), pkt, len, loop_now());
}

static int upg_store(struct daemon *d, const struct upg_journal *j)
{
	uint8_t *buf = malloc(UPG_JOURNAL_BYTES_MAX);
	size_t len;
	int r;

	if (!buf)
		return TND_ENOSPC;
	r = upg_journal_encode(j, buf, UPG_JOURNAL_BYTES_MAX, &len);
	if (r == 0 && state_write_atomic(d->state_dir, UPG_JOURNAL_FILE, buf, len) != 0)
		r = TND_ESYS;
	free(buf);
	return r;
}

static json_t *upg_reply_json(struct daemon *d, const struct upg_act *a)
{
	json_t *o;

	if (a->rc == 0) {
		o = json_pack("{s:b,s:s}", "ok", 1, "message", a->message);
		if (a->id) /* the coordinator's: this node's copy may be older */
			json_object_set_new(o, "id", json_integer((json_int_t)a->id));
		return o;
	}
	o = json_pack("{s:b,s:s,s:s}", "ok", 0, "code",
		      a->rc == TND_EREFUSED ? "refused" : a->rc == TND_EINVAL ? "usage" : "failed",
		      "error", a->message);
	if (a->code[0])
		json_object_set_new(o, "upgrade_code", json_string(a->code));
	return o;
}

static const enum ev_level upg_lvl[] = {
	[UPG_LVL_DEBUG] = LVL_DEBUG, [UPG_LVL_INFO] = LVL_INFO,
	[UPG_LVL_WARN] = LVL_WARN, [UPG_LVL_ERROR] = LVL_ERROR,
};

/* Perform the core's actions, then feed the queued answers, each
 * answer's actions in turn. */
static void upg_run(struct daemon *d, mono_t now)
{
	struct upg_drv *u = d->upg;

	if (!u || u->in_run)
		return;
	u->in_run = true;
	for (int round = 0; round < 64; round++) {
		struct upg_actions *acts = u->acts;
		for (int i = 0; i < acts->n; i++) {
			const struct upg_act *a = &acts->a[i];
			switch (a->type) {
			case UPG_ACT_SEND:
				send_plain(d, a->to, cfg_link(d, a->to), a->pkt, a->len, now);
				break;
			case UPG_ACT_STORE:
				/* The journal is the promise that nothing is done twice
				 * or left half-done: a node that cannot keep it stops. */
				if (upg_store(d, a->journal) != 0)
					fatal("cannot write %s/%s: %s", d->state_dir, UPG_JOURNAL_FILE,
					      strerror(errno));
				failpoint(d, "upgrade.journal.after_store");
				/* upgrade.step.N: the coordinator dies right after
				 * recording step N as running, before doing it. */
				if (a->journal->cursor >= 0 && a->journal->cursor < a->journal->n_steps &&
				    a->journal->steps[a->journal->cursor].status == UPG_ST_RUNNING) {
					char fp[32];
					snprintf(fp, sizeof fp, "upgrade.step.%d", a->journal->cursor);
					failpoint(d, fp);
				}
				break;
			case UPG_ACT_DO:
				upg_do(d, a, now);
				break;
			case UPG_ACT_FAILOVER:
			case UPG_ACT_RESET: {
				struct admin_req rq = { .op = a->type == UPG_ACT_FAILOVER ? ADM_FAILOVER
											 : ADM_FAILOVER_RESET,
							.group_id = a->group, .target = a->node };
				char why[200];
				actions_reset(&d->acts);
				int r = node_admin(d->node, &rq, now, &d->acts, why, sizeof why);
				perform(d, now);
				if (r != 0)
					log_event(LVL_WARN, "upgrade.move_refused", "group=%u to=%s error=\"%s\"",
						  a->group, upg_node_name(d, a->node), why);
				break;
			}
			case UPG_ACT_REPLY:
				if (a->token)
					ctl_reply(d->ctl, a->token, upg_reply_json(d, a));
				break;
			case UPG_ACT_EVENT:
				log_event_kv(upg_lvl[a->level], a->name, a->kv);
				break;
			}
		}
		if (acts->n_dropped > 0)
			log_event(LVL_ERROR, "upgrade.actions_dropped", "n=%d max=%d", acts->n_dropped,
				  UPG_ACTIONS_MAX);
		upg_actions_reset(acts);
		if (u->n_done == 0)
			break;
		struct upg_ev ev = u->done[0];
		memmove(&u->done[0], &u->done[1], (size_t)(u->n_done - 1) * sizeof u->done[0]);
		u->n_done--;
		upg_feed(d, now);
		upg_step(u->core, &ev, now, acts);
	}
	bool sus = upg_preempt_suspended(u->core);
	if (sus != u->suspended) {
		u->suspended = sus;
		node_suspend_preempt(d->node, sus);
		log_event(LVL_INFO, "upgrade.preempt", "suspended=%s", sus ? "true" : "false");
	}
	u->in_run = false;
}

/* Time passed: the core's timers, the transfers, the CPU samples. */
static void upg_tick(struct daemon *d, mono_t now)
{
	struct upg_drv *u = d->upg;

	if (!u)
		return;
	if (now >= u->sys_next) {
		sysfacts_sample(&u->sys, now);
		u->free_bytes = sysfacts_free_bytes(d->state_dir);
		u->sys_next = now + MS_TO_MONO(1000);
	}
	if (now >= xferio_next_wake(u->xfer))
		xferio_tick(u->xfer, now);
	if (now >= upg_next_wake(u->core)) {
		struct upg_ev ev = { .type = UPG_EV_TICK };
		upg_actions_reset(u->acts);
		upg_feed(d, now);
		upg_step(u->core, &ev, now, u->acts);
		upg_run(d, now);
	}
	/* upgrade.auto_finalize: the coordinator finalizes a completed
	 * upgrade itself (once per journal id; a refusal is logged). */
	const struct upg_journal *j = upg_journal_get(u->core);
	if (d->conf->upgrade_auto_finalize && j->id && j->state == UPG_COMPLETED && !j->finalized &&
	    j->id != u->auto_finalized && upg_is_coordinator(u->core)) {
		struct upg_ev ev = { .type = UPG_EV_CMD, .op = UPG_CMD_FINALIZE, .node = TND_NO_NODE };
		u->auto_finalized = j->id;
		log_event(LVL_INFO, "upgrade.auto_finalize", "id=%" PRIu64, j->id);
		upg_actions_reset(u->acts);
		upg_feed(d, now);
		upg_step(u->core, &ev, now, u->acts);
		upg_run(d, now);
	}
}

static mono_t upg_wake(const struct daemon *d)
{
	const struct upg_drv *u = d->upg;
	mono_t at, x;

	if (!u)
		return MONO_NEVER;
	at = upg_next_wake(u->core);
	x = xferio_next_wake(u->xfer);
	if (x < at)
		at = x;
	if (u->sys_next < at)
		at = u->sys_next;
	return at;
}

static void upg_recv(struct daemon *d, const struct wire_hdr *h, const uint8_t *body, size_t len,
		     mono_t now)
{
	struct upg_drv *u = d->upg;

	if (h->type >= 56 && h->type <= 58) {
		xferio_recv(u->xfer, h, body, len, now);
		return;
	}
	struct upg_ev ev = { .type = UPG_EV_RECV, .hdr = h, .body = body, .body_len = len };
	upg_actions_reset(u->acts);
	upg_feed(d, now);
	if (upg_step(u->core, &ev, now, u->acts) == TND_EINVAL)
		d->ctr.malformed++;
	upg_run(d, now);
}

/* Configuration changes wait while an upgrade runs (SPEC section 5). */
static bool upg_freeze_why(struct daemon *d, char *why, size_t len)
{
	return d->upg && upg_frozen(d->upg->core, why, len);
}

/* ---- status documents ---- */

static void upg_step_text(const struct daemon *d, const struct upg_journal *j,
			  const struct upg_step *s, char *out, size_t len)
{
	char nodes[TND_NODES_MAX * (TND_NAME_MAX + 2)] = "";
	size_t o = 0;

	for (int x = 0; x < d->conf->n_nodes && x < 32; x++)
		if (s->nodes & (1u << x))
			o += (size_t)snprintf(nodes + o, sizeof nodes - o, "%s%s", o ? ", " : "",
					      d->conf->nodes[x].name);
	switch (s->kind) {
	case UPG_K_FREEZE: say(out, len, "freeze configuration changes"); break;
	case UPG_K_BACKUP: say(out, len, "back up the configuration on every node"); break;
	case UPG_K_PREEMPT_OFF: say(out, len, "suspend preemption"); break;
	case UPG_K_MOVE: say(out, len, "move group %u to %s", s->group, upg_node_name(d, s->node)); break;
	case UPG_K_DISTRIBUTE:
		say(out, len, "distribute the image from %s to %s", upg_node_name(d, s->node), nodes);
		break;
	case UPG_K_UPGRADE: say(out, len, "upgrade %s to %s", nodes, j->to); break;
	case UPG_K_REVERT: say(out, len, "revert %s to %s", nodes, j->from); break;
	case UPG_K_PREEMPT_ON: say(out, len, "restore preemption"); break;
	case UPG_K_FAILBACK: {
		/* The preferred node: the highest priority (the first on a tie). */
		int gi = conf_group_index(d->conf, s->group), best = s->node;
		for (int x = 0; s->node < 0 && gi >= 0 && x < d->conf->n_nodes; x++)
			if (d->conf->groups[gi].priority[x] > 0 &&
			    (best < 0 || d->conf->groups[gi].priority[x] > d->conf->groups[gi].priority[best]))
				best = x;
		say(out, len, "fail group %u back to %s", s->group, upg_node_name(d, best));
		break;
	}
	case UPG_K_RELEASE: say(out, len, "keep group %u where it is (no failback: manual flag held)", s->group); break;
	case UPG_K_UNFREEZE: say(out, len, "lift the configuration freeze"); break;
	default: say(out, len, "step %u", s->kind); break;
	}
}

static json_t *upg_steps_json(const struct daemon *d, const struct upg_journal *j)
{
	json_t *arr = json_array();

	for (int i = 0; i < j->n_steps; i++) {
		const struct upg_step *s = &j->steps[i];
		char text[TND_NODES_MAX * (TND_NAME_MAX + 2) + 64];
		json_t *o, *nodes;

		upg_step_text(d, j, s, text, sizeof text);
		o = json_pack("{s:i,s:s,s:s,s:s,s:b}", "index", i, "kind", upg_kind_name(s->kind),
			      "status", upg_step_status_name(s->status), "text", text,
			      "rollback", s->rollback);
		if (s->kind == UPG_K_MOVE || s->kind == UPG_K_FAILBACK || s->kind == UPG_K_RELEASE)
			json_object_set_new(o, "group", json_integer(s->group));
		if (s->node >= 0 && s->node < d->conf->n_nodes)
			json_object_set_new(o, "node", json_string(d->conf->nodes[s->node].name));
		if (s->nodes) {
			nodes = json_array();
			for (int x = 0; x < d->conf->n_nodes && x < 32; x++)
				if (s->nodes & (1u << x))
					json_array_append_new(nodes, json_string(d->conf->nodes[x].name));
			json_object_set_new(o, "nodes", nodes);
		}
		if (s->status != UPG_ST_PENDING) {
			json_object_set_new(o, "start_ms", json_integer(s->t_start_ms));
			json_object_set_new(o, "wall_start_ms", json_integer(s->wall_start_ms));
		}
		if (s->status == UPG_ST_DONE || s->status == UPG_ST_FAILED || s->status == UPG_ST_SKIPPED) {
			json_object_set_new(o, "end_ms", json_integer(s->t_end_ms));
			json_object_set_new(o, "wall_end_ms", json_integer(s->wall_end_ms));
		}
		json_array_append_new(arr, o);
	}
	return arr;
}

/* `upgrade status --json` (SPEC section 4). */
static json_t *upg_status_json(struct daemon *d)
{
	const struct upg_journal *j = upg_journal_get(d->upg->core);
	mono_t now = loop_now();
	char why[UPG_MSG_LEN], text[TND_NODES_MAX * (TND_NAME_MAX + 2) + 64];
	json_t *o, *nodes;
	bool frozen = upg_frozen(d->upg->core, why, sizeof why);
	uint8_t lvl = upg_cluster_proto(d->upg->core);

	o = json_pack("{s:b,s:s}", "ok", 1, "state", upg_state_name(j->id ? j->state : UPG_IDLE));
	json_object_set_new(o, "frozen", json_boolean(frozen));
	json_object_set_new(o, "protocol", json_pack("{s:i,s:i,s:i}", "level", lvl, "from",
						     j->id ? j->from_proto : lvl, "to", j->id ? j->to_proto : lvl));
	if (!j->id)
		return o;
	if (j->cursor >= 0 && j->cursor < j->n_steps &&
	    (j->state == UPG_RUNNING || j->state == UPG_ABORTING)) {
		upg_step_text(d, j, &j->steps[j->cursor], text, sizeof text);
		json_object_set_new(o, "phase", json_string(text));
	} else {
		json_object_set_new(o, "phase", json_string(upg_state_name(j->state)));
	}
	json_object_set_new(o, "id", json_integer((json_int_t)j->id));
	json_object_set_new(o, "from", json_string(j->from));
	json_object_set_new(o, "to", json_string(j->to));
	json_object_set_new(o, "coordinator", json_string(upg_node_name(d, j->coordinator)));
	json_object_set_new(o, "elapsed_s", json_real(j->elapsed_ms / 1000.0));
	json_object_set_new(o, "wall_start_ms", json_integer(j->wall_start_ms));
	json_object_set_new(o, "finalized", json_boolean(j->finalized));
	json_object_set_new(o, "force", json_boolean(j->force));
	json_object_set_new(o, "disruptive", json_boolean(j->disruptive));
	json_object_set_new(o, "no_failback", json_boolean(j->no_failback));
	json_object_set_new(o, "cursor", json_integer(j->cursor));
	json_object_set_new(o, "journal_seq", json_integer((json_int_t)j->seq));
	{
		char hex[2 * UPG_DIGEST_LEN + 1];
		json_object_set_new(o, "image", json_pack("{s:s,s:I,s:s}", "digest",
				    tnd_hex(j->digest, UPG_DIGEST_LEN, hex), "bytes", (json_int_t)j->image_bytes,
				    "source", upg_node_name(d, j->source)));
	}
	nodes = json_array();
	node_status(d->node, now, d->st);
	for (int x = 0; x < d->conf->n_nodes; x++) {
		const struct upg_facts *f = upg_facts_of(d->upg->core, x);
		const char *ver = x == d->self ? TND_VERSION
				  : d->st->peers[x].ever_seen ? d->st->peers[x].version : "";
		bool alive = x == d->self || d->st->peers[x].alive;
		json_t *n = json_pack("{s:s,s:s,s:s,s:b,s:s}", "node", d->conf->nodes[x].name,
				      "state", upg_node_state_name(x < j->n_nodes ? j->node_state[x] : 0),
				      "version", f && f->known && f->version[0] ? f->version : ver,
				      "alive", alive, "detail", upg_node_detail(d->upg->core, x));
		json_array_append_new(nodes, n);
	}
	json_object_set_new(o, "nodes", nodes);
	json_object_set_new(o, "steps", upg_steps_json(d, j));
	if (j->error.code[0])
		json_object_set_new(o, "error", json_pack("{s:s,s:s,s:s,s:i}", "code", j->error.code,
							  "message", j->error.message, "recovery",
							  j->error.recovery, "step", j->error.step));
	return o;
}

/* The status document's "upgrade" section. */
static json_t *upg_summary_json(struct daemon *d)
{
	const struct upg_journal *j = upg_journal_get(d->upg->core);
	json_t *o = json_pack("{s:s}", "state", upg_state_name(j->id ? j->state : UPG_IDLE));
	char why[UPG_MSG_LEN];

	json_object_set_new(o, "frozen", json_boolean(upg_frozen(d->upg->core, why, sizeof why)));
	json_object_set_new(o, "protocol", json_integer(upg_cluster_proto(d->upg->core)));
	if (j->id) {
		json_object_set_new(o, "id", json_integer((json_int_t)j->id));
		json_object_set_new(o, "from", json_string(j->from));
		json_object_set_new(o, "to", json_string(j->to));
		json_object_set_new(o, "finalized", json_boolean(j->finalized));
	}
	return o;
}

/* ---- commands ---- */

static json_t *upg_err(const char *code, const char *msg)
{
	return json_pack("{s:b,s:s,s:s}", "ok", 0, "code", code, "error", msg);
}

static void upg_image_from_json(json_t *r, struct upg_image *img)
{
	const char *s;

	memset(img, 0, sizeof *img);
	if (!json_is_true(json_object_get(r, "ok"))) {
		s = json_string_value(json_object_get(r, "image_code"));
		snprintf(img->check_code, sizeof img->check_code, "%s", s ? s : "E_IMAGE_CORRUPT");
		s = json_string_value(json_object_get(r, "error"));
		snprintf(img->check_message, sizeof img->check_message, "%s", s ? s : "the image check failed");
		img->present = strcmp(img->check_code, "E_IMAGE_MISSING") != 0;
		return;
	}
	img->present = img->intact = img->signed_ok = img->trusted = true;
	snprintf(img->version, sizeof img->version, "%s",
		 json_string_value(json_object_get(r, "version")) ?: "");
	snprintf(img->min_upgrade_from, sizeof img->min_upgrade_from, "%s",
		 json_string_value(json_object_get(r, "min_upgrade_from")) ?: "");
	img->proto_min = (uint8_t)json_integer_value(json_object_get(r, "proto_min"));
	img->proto_max = (uint8_t)json_integer_value(json_object_get(r, "proto_max"));
	img->bytes = (uint64_t)json_integer_value(json_object_get(r, "bytes"));
	img->config_ok = json_is_true(json_object_get(r, "config_ok"));
	snprintf(img->config_message, sizeof img->config_message, "%s",
		 json_string_value(json_object_get(r, "config_message")) ?: "");
	s = json_string_value(json_object_get(r, "digest"));
	if (s && strlen(s) == 2 * UPG_DIGEST_LEN)
		for (int i = 0; i < UPG_DIGEST_LEN; i++) {
			unsigned v;
			if (sscanf(s + 2 * i, "%2x", &v) == 1)
				img->digest[i] = (uint8_t)v;
		}
}

static json_t *upg_checks_json(const struct upg_checks *c)
{
	json_t *arr = json_array();

	for (int i = 0; i < c->n; i++)
		json_array_append_new(arr, json_pack("{s:s,s:b,s:s}", "code", c->c[i].code, "ok", c->c[i].ok,
						     "message", c->c[i].message));
	return arr;
}

/* The pre-check helper ended: answer `plan`, or hand `start` to the core. */
static void upg_precheck_done(struct daemon *d, bool kill_it)
{
	struct upg_drv *u = d->upg;
	struct upg_image img;
	mono_t now = loop_now();
	json_t *r, *res;
	char cf[TND_PATH_MAX + 32];

	loop_del(d->loop, u->pc_pidfd);
	r = slots_helper_reap(u->pc_pid, u->pc_pidfd, u->pc_out, kill_it);
	u->pc_pid = 0;
	snprintf(cf, sizeof cf, "%s/.upgrade-check.yaml", d->state_dir);
	(void)unlink(cf);
	if (!json_object_get(r, "image_code") && !json_is_true(json_object_get(r, "ok"))) {
		/* Not a verdict on the image: the check itself failed. */
		const char *e = json_string_value(json_object_get(r, "error"));
		ctl_reply(d->ctl, u->pc_token, upg_err("failed", e ? e : "the image check failed"));
		json_decref(r);
		return;
	}
	upg_image_from_json(r, &img);
	json_decref(r);
	upg_feed(d, now);
	if (!u->pc_start) {
		struct upg_checks *c = calloc(1, sizeof *c);
		struct upg_journal *j = calloc(1, sizeof *j);
		char hex[2 * UPG_DIGEST_LEN + 1];
		if (!c || !j) {
			free(c);
			free(j);
			ctl_reply(d->ctl, u->pc_token, upg_err("failed", "out of memory"));
			return;
		}
		upg_precheck(u->core, &img, &u->pc_opts, now, c);
		res = json_pack("{s:b,s:b,s:b,s:s}", "ok", 1, "all_ok", c->all_ok, "disruptive",
				c->disruptive || u->pc_opts.disruptive, "from", TND_VERSION);
		json_object_set_new(res, "image", json_pack("{s:s,s:I,s:s}", "version", img.version,
				    "bytes", (json_int_t)img.bytes, "digest",
				    tnd_hex(img.digest, UPG_DIGEST_LEN, hex)));
		json_object_set_new(res, "checks", upg_checks_json(c));
		j->n_nodes = d->conf->n_nodes;
		snprintf(j->from, sizeof j->from, "%s", TND_VERSION);
		snprintf(j->to, sizeof j->to, "%s", img.version);
		j->source = (int8_t)d->self;
		if (upg_plan_build(u->core, &u->pc_opts, c->disruptive || u->pc_opts.disruptive, j) == 0)
			json_object_set_new(res, "steps", upg_steps_json(d, j));
		else
			json_object_set_new(res, "steps", json_array());
		ctl_reply(d->ctl, u->pc_token, res);
		free(c);
		free(j);
		return;
	}
	struct upg_ev ev = { .type = UPG_EV_CMD, .op = UPG_CMD_START, .token = u->pc_token,
			     .image = &img, .opts = u->pc_opts, .node = TND_NO_NODE };
	upg_actions_reset(u->acts);
	upg_step(u->core, &ev, now, u->acts);
	upg_run(d, now);
}

static void on_upg_precheck(struct loop *l, int fd, uint32_t events, void *arg)
{
	upg_precheck_done(arg, false);
}

static json_t *upg_start_precheck(struct daemon *d, uint32_t token, const char *file, bool start,
				  const struct upg_opts *o, bool *deferred)
{
	struct upg_drv *u = d->upg;
	char conf[TND_PATH_MAX + 32], msg[TND_PATH_MAX + 96];
	char *args[8];
	int n = 0;

	if (u->pc_pid)
		return upg_err("refused", "another upgrade plan or start is being checked on this node");
	snprintf(conf, sizeof conf, "%s/.upgrade-check.yaml", d->state_dir);
	if (write_running_conf(d, conf, msg, sizeof msg) != 0)
		return upg_err("failed", msg);
	args[n++] = "precheck";
	args[n++] = (char *)d->state_dir;
	args[n++] = (char *)file;
	args[n++] = d->conf->upgrade_trusted_keys;
	args[n++] = conf;
	args[n++] = start ? "1" : "0";
	args[n] = NULL;
	if (slots_helper_spawn(args, &u->pc_pid, &u->pc_pidfd, &u->pc_out) != 0) {
		u->pc_pid = 0;
		return upg_err("failed", strerror(errno));
	}
	if (loop_add(d->loop, u->pc_pidfd, EPOLLIN, on_upg_precheck, d) != 0) {
		json_decref(slots_helper_reap(u->pc_pid, u->pc_pidfd, u->pc_out, true));
		u->pc_pid = 0;
		return upg_err("failed", "event loop full");
	}
	u->pc_token = token;
	u->pc_start = start;
	u->pc_opts = *o;
	snprintf(u->pc_file, sizeof u->pc_file, "%s", file);
	u->pc_deadline = loop_now() + MS_TO_MONO(UPG_PRECHECK_TIMEOUT_MS);
	*deferred = true;
	return NULL;
}

/* {"cmd":"upgrade","op":...} from the control socket. */
static json_t *ctl_upgrade(void *arg, json_t *req, uint32_t token, bool *deferred)
{
	struct daemon *d = arg;
	const char *op = json_string_value(json_object_get(req, "op"));
	struct upg_opts o = { 0 };
	char msg[TND_PATH_MAX + 128];
	mono_t now = loop_now();

	if (!op)
		return upg_err("usage", "upgrade needs \"op\": plan, start, status, abort, rollback or finalize");
	if (strcmp(op, "status") == 0)
		return upg_status_json(d);
	if (d->stopping)
		return upg_err("refused", "tandemd is shutting down");
	if (strcmp(op, "plan") == 0 || strcmp(op, "start") == 0) {
		const char *file = json_string_value(json_object_get(req, "image"));
		if (!img_bool(req, "force", &o.force) || !img_bool(req, "disruptive", &o.disruptive) ||
		    !img_bool(req, "no_failback", &o.no_failback))
			return upg_err("usage", "\"force\", \"disruptive\" and \"no_failback\" must be true or false");
		if (!file || file[0] != '/' || strlen(file) >= TND_PATH_MAX)
			return upg_err("usage", "upgrade plan and start need \"image\": the image's absolute path");
		/* A start while one runs is refused at once, not after the
		 * image check: this node may be restarted by the running
		 * upgrade before that check ends. */
		const struct upg_journal *rj = upg_journal_get(d->upg->core);
		if (op[0] == 's' && (rj->state == UPG_RUNNING || rj->state == UPG_ABORTING)) {
			json_t *res;
			snprintf(msg, sizeof msg, "upgrade %llu is %s", (unsigned long long)rj->id,
				 upg_state_name(rj->state));
			res = upg_err("refused", msg);
			json_object_set_new(res, "upgrade_code", json_string("E_UPGRADE_RUNNING"));
			json_object_set_new(res, "checks", json_pack("[{s:s,s:b,s:s}]", "code", "E_UPGRADE_RUNNING",
								     "ok", 0, "message", msg));
			return res;
		}
		log_event(LVL_INFO, "admin.request", "cmd=upgrade_%s image=%s force=%d disruptive=%d no_failback=%d",
			  op, log_kv_quote(file, msg, sizeof msg), o.force, o.disruptive, o.no_failback);
		if (!d->conf->upgrade_failback)
			o.no_failback = true; /* upgrade.failback: false is the cluster's default */
		return upg_start_precheck(d, token, file, op[0] == 's', &o, deferred);
	}
	struct upg_ev ev = { .type = UPG_EV_CMD, .token = token, .node = TND_NO_NODE };
	if (strcmp(op, "abort") == 0) {
		ev.op = UPG_CMD_ABORT;
	} else if (strcmp(op, "rollback") == 0) {
		const char *node = json_string_value(json_object_get(req, "node"));
		ev.op = UPG_CMD_ROLLBACK;
		if (node) {
			ev.node = conf_node_index(d->conf, node);
			if (ev.node < 0) {
				snprintf(msg, sizeof msg, "no node named %.64s", node);
				return upg_err("usage", msg);
			}
		}
	} else if (strcmp(op, "finalize") == 0) {
		ev.op = UPG_CMD_FINALIZE;
	} else {
		snprintf(msg, sizeof msg, "unknown upgrade op \"%.32s\"", op);
		return upg_err("usage", msg);
	}
	log_event(LVL_INFO, "admin.request", "cmd=upgrade_%s", op);
	upg_actions_reset(d->upg->acts);
	upg_feed(d, now);
	upg_step(d->upg->core, &ev, now, d->upg->acts);
	*deferred = true;
	upg_run(d, now);
	return NULL;
}

/* The version timer (IMG_TICK_MS): refresh the boot record the facts
 * carry, and watch the pre-check helper. */
static void upg_slow_tick(struct daemon *d, mono_t now)
{
	struct upg_drv *u = d->upg;
	char why[256];

	if (!u)
		return;
	u->boot_ok = slots_load(d->state_dir, &u->boot, why, sizeof why) == 0;
	if (u->pc_pid && now >= u->pc_deadline)
		upg_precheck_done(d, true);
	/* Images are only needed while an upgrade distributes them (a
	 * rollback returns to the previous version kept in versions/): once
	 * nothing has used them for UPG_IMAGE_KEEP_MS they are removed. */
	const struct upg_journal *j = upg_journal_get(u->core);
	if (u->pc_pid || u->fetch.busy || j->state == UPG_RUNNING || j->state == UPG_ABORTING)
		u->images_used = now;
	else if (u->images_used && now - u->images_used >= MS_TO_MONO(UPG_IMAGE_KEEP_MS)) {
		int n = xferio_gc(u->xfer, NULL);
		if (n > 0)
			log_event(LVL_INFO, "upgrade.images_removed", "n=%d", n);
		u->images_used = 0;
	}
}

static void upg_init(struct daemon *d, uint64_t seed)
{
	struct upg_drv *u = calloc(1, sizeof *u);
	struct upg_journal *j = calloc(1, sizeof *j);
	uint8_t *buf = malloc(UPG_JOURNAL_BYTES_MAX + 1);
	struct upg_params p;
	size_t len = 0;
	char why[256];
	int r;

	if (!u || !j || !buf)
		fatal("out of memory");
	u->acts = calloc(1, sizeof *u->acts);
	if (!u->acts)
		fatal("out of memory");
	r = state_read(d->state_dir, UPG_JOURNAL_FILE, (char *)buf, UPG_JOURNAL_BYTES_MAX + 1, &len);
	if (r != 0 && r != TND_ENOENT)
		fatal("cannot read %s/%s: %s", d->state_dir, UPG_JOURNAL_FILE, r == TND_ENOSPC ? "too large" : strerror(errno));
	if (r == 0 && upg_journal_decode(buf, len, j) != 0)
		fatal("%s/%s does not decode; it records an upgrade: move it away only if no upgrade is "
		      "in progress", d->state_dir, UPG_JOURNAL_FILE);
	p = (struct upg_params){ .conf = d->conf, .self = d->self, .incarnation = d->incarnation,
				 .seed = seed, .cluster_id = d->conf->cluster_id, .proto = WIRE_PROTO_MAX,
				 .journal = r == 0 ? j : NULL };
	u->core = upg_new(&p, loop_now());
	if (!u->core)
		fatal("the upgrade core refused its parameters");
	u->xfer = xferio_new(d->state_dir, d->self, d->conf->cluster_id, WIRE_PROTO_MAX, d->incarnation,
			     upg_xfer_send, upg_xfer_done, d);
	if (!u->xfer)
		fatal("cannot set up the image transfer in %s/images: %s", d->state_dir, strerror(errno));
	u->boot_ok = slots_load(d->state_dir, &u->boot, why, sizeof why) == 0;
	sysfacts_sample(&u->sys, loop_now());
	u->free_bytes = sysfacts_free_bytes(d->state_dir);
	u->sys_next = loop_now() + MS_TO_MONO(1000);
	u->images_used = loop_now(); /* leftovers of an earlier run: cleaned after the delay */
	d->upg = u;
	if (r == 0)
		log_event(LVL_INFO, "upgrade.journal", "id=%" PRIu64 " seq=%" PRIu64 " state=%s", j->id, j->seq,
			  upg_state_name(j->state));
	free(j);
	free(buf);
}

static void upg_conf_changed(struct daemon *d)
{
	if (d->upg)
		upg_reconfigure(d->upg->core, d->conf);
}

static void upg_close(struct daemon *d)
{
	struct upg_drv *u = d->upg;

	if (!u)
		return;
	if (u->pc_pid) {
		loop_del(d->loop, u->pc_pidfd);
		json_decref(slots_helper_reap(u->pc_pid, u->pc_pidfd, u->pc_out, true));
	}
	xferio_free(u->xfer);
	upg_free(u->core);
	free(u->acts);
	free(u);
	d->upg = NULL;
}

static void print_diags(const struct conf_diags *dg, const char *path);
static int find_self(const struct tnd_conf *c, char *err, size_t err_len);

/* Before the supervisor of a node's first start (no boot.json yet): the
 * started binary is the version that will run, so it judges the
 * configuration and the node name here, as the worker would, and a start
 * that cannot succeed leaves nothing behind in the state directory (not
 * even the copy of itself). Later starts leave that to the active
 * version, which may accept what this binary does not know. */
static void img_first_start_check(const char *conf_path, const char *state_dir, const char *node)
{
	struct tnd_conf *c = calloc(1, sizeof *c);
	struct conf_diags *dg = calloc(1, sizeof *dg);
	struct confdoc doc = { 0 };
	char path[TND_PATH_MAX + 16], err[512];
	int r;

	snprintf(path, sizeof path, "%s/%s", state_dir, SLOTS_BOOT_FILE);
	if (!c || !dg || access(path, F_OK) == 0) {
		free(c);
		free(dg);
		return;
	}
	r = confdoc_read(conf_path, &doc, c, dg);
	confdoc_free(&doc);
	if (r != 0 || dg->n > 0) {
		print_diags(dg, conf_path);
		fatal("configuration %s is invalid; not starting", conf_path);
	}
	if (node ? conf_node_index(c, node) < 0 : find_self(c, err, sizeof err) < 0) {
		if (node)
			fatal("no node named %s in %s", node, conf_path);
		fatal("%s", err);
	}
	free(c);
	free(dg);
}

/* At start, once the loop exists. Unsupervised, this process adopts
 * itself the way the supervisor would have. */
static void img_init(struct daemon *d, bool supervised)
{
	struct img *im = calloc(1, sizeof *im);
	struct itimerspec its = { .it_interval = { 0, IMG_TICK_MS * 1000000L },
				  .it_value = { 0, IMG_TICK_MS * 1000000L } };
	struct boot_state b;
	char why[512];
	int r;

	if (!im)
		fatal("out of memory");
	d->img = im;
	im->supervised = supervised;
	im->timer_fd = -1;
	r = supervised ? slots_load(d->state_dir, &b, why, sizeof why)
		       : slots_boot(d->state_dir, TND_VERSION, &b, why, sizeof why);
	if (r != 0) {
		log_event(LVL_ERROR, "version.boot_record", "error=\"%s\"", why);
		return;
	}
	im->trial = strcmp(b.active, TND_VERSION) == 0 && !b.confirmed;
	if (strcmp(b.active, TND_VERSION) != 0)
		log_event(LVL_WARN, "version.not_active", "running=%s active=%s supervised=%s", TND_VERSION,
			  b.active, supervised ? "true" : "false");
	if (im->trial)
		log_event(LVL_INFO, "version.trial", "version=%s try=%u of=%d hold_timer_s=%u expect_peers=%d",
			  TND_VERSION, b.tries, BOOT_TRIES_MAX, b.hold_timer_s, b.n_peers);
	im->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (im->timer_fd < 0 || timerfd_settime(im->timer_fd, 0, &its, NULL) != 0 ||
	    loop_add(d->loop, im->timer_fd, EPOLLIN, on_img_tick, d) != 0)
		fatal("cannot set up the version timer: %s", strerror(errno));
}

/* At exit: a helper still running is killed (its partial version is a
 * dot-directory the next start removes). Returns main()'s exit status. */
static int img_close(struct daemon *d)
{
	struct img *im = d->img;
	int code;

	if (!im)
		return 0;
	if (im->h_pid) {
		loop_del(d->loop, im->h_pidfd);
		json_decref(slots_helper_reap(im->h_pid, im->h_pidfd, im->h_out, true));
	}
	if (im->timer_fd >= 0) {
		loop_del(d->loop, im->timer_fd);
		close(im->timer_fd);
	}
	code = im->exit_code;
	free(im);
	d->img = NULL;
	return code;
}

/* ---- start-up ------------------------------------------------------- */

static bool addr_eq(const struct tnd_addr *a, const struct sockaddr *sa)
{
	if (!sa || sa->sa_family != a->family)
		return false;
	if (a->family == AF_INET)
		return memcmp(a->bytes, &((const struct sockaddr_in *)sa)->sin_addr, 4) == 0;
	return memcmp(a->bytes, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16) == 0;
}

/* SPEC section 2: without --node, we are the node whose links include a
 * local address. More than one such node (a lab on one host) is an
 * error, not a guess. */
static int find_self(const struct tnd_conf *c, char *err, size_t err_len)
{
	struct ifaddrs *ifa, *p;
	int found = -1, n_found = 0;
	char names[256] = "";

	if (getifaddrs(&ifa) != 0) {
		snprintf(err, err_len, "cannot list local addresses: %s; use --node", strerror(errno));
		return -1;
	}
	for (int n = 0; n < c->n_nodes; n++) {
		bool mine = false;
		for (int l = 0; l < c->nodes[n].n_links && !mine; l++)
			for (p = ifa; p && !mine; p = p->ifa_next)
				mine = addr_eq(&c->nodes[n].links[l], p->ifa_addr);
		if (mine) {
			found = n;
			n_found++;
			size_t used = strlen(names);
			snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "",
				 c->nodes[n].name);
		}
	}
	freeifaddrs(ifa);
	if (n_found == 1)
		return found;
	if (n_found == 0)
		say(err, err_len, "no node in %s has a link address on this host; use --node NAME",
		    c->source);
	else
		say(err, err_len, "several nodes in %s have link addresses on this host (%s); use --node NAME",
			 c->source, names);
	return -1;
}

static void load_key(struct daemon *d)
{
	uint8_t buf[KEY_FILE_MAX_BYTES];
	struct stat st;
	size_t n = 0;
	int fd = open(d->conf->key_file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		fatal("cannot read key file %s: %s", d->conf->key_file, strerror(errno));
	if (fstat(fd, &st) == 0 && (st.st_mode & 0077))
		log_event(LVL_WARN, "key.permissions",
			  "file=%s mode=%04o reason=\"readable by group or others; chmod 600 recommended\"",
			  d->conf->key_file, (unsigned)(st.st_mode & 07777));
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof buf - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fatal("cannot read key file %s: %s", d->conf->key_file, strerror(errno));
		if (r == 0 || (n += (size_t)r) == sizeof buf)
			break;
	}
	close(fd);
	if (n < SEAL_SECRET_MIN)
		fatal("key file %s holds %zu bytes; it needs at least %d random bytes "
		      "(head -c 32 /dev/urandom > %s)", d->conf->key_file, n, SEAL_SECRET_MIN,
		      d->conf->key_file);
	if (seal_key_derive(&d->key, buf, n) != 0)
		fatal("cannot derive the cluster key from %s", d->conf->key_file);
	sodium_memzero(buf, sizeof buf);
}

static void print_diags(const struct conf_diags *dg, const char *path)
{
	for (int i = 0; i < dg->n; i++)
		fprintf(stderr, "%s\n", dg->msg[i]);
	if (dg->n_dropped > 0)
		fprintf(stderr, "... and %d more\n", dg->n_dropped);
	if (dg->n == 0)
		fprintf(stderr, "%s: configuration invalid\n", path);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tandemd [--config FILE] [--node NAME] [--state-dir DIR] [--socket PATH] [--debug]\n"
		"               [--no-supervise]\n"
		"       tandemd --check-config [--config FILE]\n"
		"       tandemd --print-config [--config FILE]\n"
		"       tandemd --version\n"
		"defaults: --config %s, --node the node with a local link address,\n"
		"          --state-dir %s, --socket $TANDEM_SOCKET or %s\n"
		"tandemd runs the version active in the state directory under a supervisor that\n"
		"restarts and reverts it; --no-supervise runs the started binary by itself.\n",
		DEFAULT_CONFIG, DEFAULT_STATE_DIR, CTL_DEFAULT_PATH);
}

static void open_links(struct daemon *d)
{
	const struct tnd_node_conf *me = &d->conf->nodes[d->self];
	char a[64];

	d->n_links = me->n_links;
	for (int l = 0; l < d->n_links; l++) {
		if (udp_open(&me->links[l], d->conf->port, &d->udp_fd[l]) != 0)
			fatal("cannot open link %d socket on %s port %u: %s", l,
			      addr_str(&me->links[l], a, sizeof a), d->conf->port, strerror(errno));
		d->lctx[l] = (struct link_ctx){ .d = d, .link = l };
		if (loop_add(d->loop, d->udp_fd[l], EPOLLIN, on_udp, &d->lctx[l]) != 0)
			fatal("event loop full");
	}
}

/* VIPs left by a previous run: we are primary of nothing yet. */
static void remove_stale_vips(struct daemon *d)
{
	char a[64];

	for (int gi = 0; gi < d->conf->n_groups; gi++) {
		const struct tnd_group_conf *g = &d->conf->groups[gi];
		for (int v = 0; v < g->n_vips; v++)
			if (nl_vip_present(d->nl, &g->vips[v]) == 1)
				log_event(LVL_WARN, "vip.stale", "group=%u address=%s/%u interface=%s action=remove",
					  g->id, addr_str(&g->vips[v].addr, a, sizeof a), g->vips[v].prefix_len,
					  g->vips[v].ifname);
		vips_del(d, gi);
	}
}

/* Initial state of every monitored interface. nl_link_dump may report
 * through the callback (synchronously or via later link events); the
 * explicit query below makes sure a monitored interface that does not
 * exist at all is reported down rather than never mentioned. */
static void feed_initial_ifaces(struct daemon *d)
{
	if (nl_link_dump(d->nl, iface_cb, d) < 0)
		log_event(LVL_WARN, "iface.dump_failed", "error=\"%s\"", strerror(errno));
	for (int gi = 0; gi < d->conf->n_groups; gi++) {
		const struct tnd_group_conf *g = &d->conf->groups[gi];
		for (int m = 0; m < g->n_monitors; m++) {
			bool dup = false;
			for (int pg = 0; pg <= gi && !dup; pg++)
				for (int pm = 0; pm < (pg == gi ? m : d->conf->groups[pg].n_monitors) && !dup; pm++)
					dup = strcmp(d->conf->groups[pg].monitors[pm], g->monitors[m]) == 0;
			if (dup)
				continue;
			int r = nl_link_is_up(d->nl, g->monitors[m]);
			if (r < 0)
				log_event(LVL_WARN, "iface.missing", "interface=%s group=%u", g->monitors[m], g->id);
			iface_cb(g->monitors[m], r == 1, d);
		}
	}
}

/* Configuration at start: the cluster's committed generation from the
 * store when there is one (the file may be older: the cluster decides),
 * else the file itself as the seed (generation 0), whose ruleset is
 * applied here, before any VIP can arrive. */
static void cfg_boot(struct daemon *d, const struct confdoc *doc)
{
	struct cfgsync_text t = { doc->yaml, doc->yaml_len, doc->ruleset, doc->ruleset_len };
	struct store_state ss = { 0 };
	struct cfgsync_params cp;
	uint8_t *seed = NULL, fdg[CFGSYNC_DIGEST_LEN];
	size_t seed_len = 0;
	char path[TND_PATH_MAX + 16], err[1024];
	uint64_t rseed;

	snprintf(path, sizeof path, "%s/config.db", d->state_dir);
	if (store_open(path, &d->store, err, sizeof err) != 0)
		fatal("%s", err);
	if (store_load(d->store, &ss) != 0)
		fatal("cannot read %s: %s", path, store_errmsg(d->store));
	if (cfgsync_doc_encode(&t, &seed, &seed_len) != 0)
		fatal("%s and its ruleset exceed %d bytes", d->conf_path, CFGSYNC_DOC_MAX);
	cfgsync_digest(seed, seed_len, fdg);
	if (ss.committed.gen > 0) {
		struct tnd_conf *sc = calloc(1, sizeof *sc);
		struct conf_diags *dg = calloc(1, sizeof *dg);
		struct cfgsync_text st;
		char src[TND_PATH_MAX + 48];
		if (!sc || !dg)
			fatal("out of memory");
		snprintf(src, sizeof src, "%s generation %" PRIu64, path, ss.committed.gen);
		if (cfgsync_doc_decode(ss.committed.blob, ss.committed.len, &st) != 0 ||
		    conf_parse(src, st.yaml, st.yaml_len, sc, dg) != 0 || dg->n > 0)
			fatal("%s: the stored configuration does not parse (%s)", src,
			      dg->n > 0 ? dg->msg[0] : "malformed document");
		if (cfgsync_check_change(d->conf, sc, d->conf->nodes[d->self].name, err, sizeof err) != 0)
			fatal("%s belongs to another cluster than %s: %s; to join this node to the cluster "
			      "of %s, stop it and remove %s", src, d->conf_path, err, d->conf_path, path);
		if (memcmp(fdg, ss.committed.digest, sizeof fdg) != 0)
			log_event(LVL_WARN, "config.file_differs",
				  "file=%s gen=%" PRIu64 " action=ignored reason=\"the cluster configuration is "
				  "generation %" PRIu64 "; compare with tandemctl config diff %s\"",
				  d->conf_path, ss.committed.gen, ss.committed.gen, d->conf_path);
		free(d->conf);
		d->conf = sc;
		free(dg);
		memcpy(d->run_digest, ss.committed.digest, sizeof d->run_digest);
		/* Its ruleset goes in with the core's first CFA_APPLY. */
	} else {
		if (doc->ruleset_len > 0 && nft_apply(doc->ruleset, err, sizeof err) != 0)
			fatal("ruleset %s: %s", d->conf->firewall_ruleset, err);
		crypto_generichash(d->rs_digest, sizeof d->rs_digest, (const uint8_t *)doc->ruleset,
				   doc->ruleset_len, NULL, 0);
		d->rs_applied = true;
		memcpy(d->run_digest, fdg, sizeof d->run_digest);
	}
	if (getenv("TANDEMD_FAILPOINT"))
		log_event(LVL_WARN, "failpoint.armed", "name=%s", getenv("TANDEMD_FAILPOINT"));
	log_event(LVL_INFO, "config.boot", "gen=%" PRIu64 " source=%s pending=%" PRIu64,
		  ss.committed.gen, ss.committed.gen > 0 ? "store" : "file", ss.pending.gen);

	cfgsync_params_default(&cp);
	if (getrandom(&rseed, sizeof rseed, 0) != (ssize_t)sizeof rseed)
		fatal("getrandom: %s", strerror(errno));
	cp.self = d->self;
	cp.n_nodes = d->conf->n_nodes;
	cp.cluster_id = d->conf->cluster_id;
	cp.proto = WIRE_PROTO_MAX;
	cp.incarnation = d->incarnation;
	cp.seed = rseed;
	cp.committed_gen = ss.committed.gen;
	cp.committed_blob = ss.committed.gen > 0 ? ss.committed.blob : seed;
	cp.committed_len = ss.committed.gen > 0 ? ss.committed.len : seed_len;
	cp.pending_gen = ss.pending.gen;
	cp.pending_ballot = ss.pending.ballot;
	cp.pending_blob = ss.pending.blob;
	cp.pending_len = ss.pending.len;
	cp.gen_floor = ss.floor;
	d->cfg = cfgsync_new(&cp, loop_now());
	d->cfg_acts = calloc(1, sizeof *d->cfg_acts);
	if (!d->cfg || !d->cfg_acts)
		fatal("configuration sync refused its parameters");
	free(seed);
	store_state_free(&ss);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "node", required_argument, NULL, 'n' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "socket", required_argument, NULL, 'S' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "print-config", no_argument, NULL, 'P' },
		{ "debug", no_argument, NULL, 'd' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "worker", required_argument, NULL, 'W' },       /* from the supervisor */
		{ "no-supervise", no_argument, NULL, 'N' },
		{ NULL, 0, NULL, 0 },
	};
	static const int signals[] = { SIGTERM, SIGINT, SIGCHLD, SIGHUP };
	struct daemon *d = calloc(1, sizeof *d);
	const char *node_name = NULL;
	bool check = false, print = false, no_supervise = false;
	int worker_fd = -1;
	char err[512];
	struct node_params np;
	struct confdoc doc = { 0 };
	struct timespec rt;
	uint64_t seed;
	int o, r;

	if (!d) {
		fprintf(stderr, "tandemd: out of memory\n");
		return 1;
	}
	/* The image install helper (src/io/slots.h), started by a worker. */
	if (argc > 1 && strcmp(argv[1], SLOTS_HELPER_ARG) == 0) {
		free(d);
		return slots_helper_main(argc, argv);
	}
	/* A log reader that went away (stderr to a closed pipe) must cost
	 * log lines, not the daemon: write(2) then fails with EPIPE. */
	signal(SIGPIPE, SIG_IGN);
	d->conf_path = DEFAULT_CONFIG;
	d->state_dir = DEFAULT_STATE_DIR;
	d->sock_path = ctl_default_path();
	d->lock_fd = -1;
	while ((o = getopt_long(argc, argv, "c:n:s:S:CPdVh", opts, NULL)) != -1) {
		switch (o) {
		case 'c': d->conf_path = optarg; break;
		case 'n': node_name = optarg; break;
		case 's': d->state_dir = optarg; break;
		case 'S': d->sock_path = optarg; break;
		case 'C': check = true; break;
		case 'P': print = true; break;
		case 'd': log_set_debug(true); break;
		case 'V': printf("tandemd %s (protocol %d..%d)\n", TND_VERSION, WIRE_PROTO_MIN, WIRE_PROTO_MAX);
			  free(d);
			  return 0;
		case 'h': usage(stdout); free(d); return 0;
		case 'W': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 3 || v > 65535) {
				fprintf(stderr, "tandemd: --worker takes the supervisor's lock descriptor\n");
				free(d);
				return 2;
			}
			worker_fd = (int)v;
			break;
		}
		case 'N': no_supervise = true; break;
		default: usage(stderr); free(d); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tandemd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		free(d);
		return 2;
	}
	/* The started process supervises (src/io/supervise.h): it runs the
	 * version active in the state directory as its worker. It reads no
	 * configuration: the active version judges that. */
	if (!check && !print && worker_fd < 0 && !no_supervise) {
		struct supervise_args sa = { .state_dir = d->state_dir, .node = node_name,
					     .argc = argc, .argv = argv };
		img_first_start_check(d->conf_path, d->state_dir, node_name);
		free(d);
		return supervise_main(&sa);
	}

	d->conf = calloc(1, sizeof *d->conf);
	if (!d->conf) {
		fprintf(stderr, "tandemd: out of memory\n");
		return 1;
	}
	/* --check-config and --print-config judge the file itself; a start
	 * also reads the ruleset it names (confdoc_read). */
	if (check || print)
		r = conf_load(d->conf_path, d->conf, &d->diags);
	else
		r = confdoc_read(d->conf_path, &doc, d->conf, &d->diags);
	if (check || print) {
		if (r != 0 || d->diags.n > 0) {
			print_diags(&d->diags, d->conf_path);
			r = 1;
		} else if (print) {
			r = conf_print(d->conf, stdout) == 0 && fflush(stdout) == 0 ? 0 : 1;
		} else {
			printf("%s: configuration valid\n", d->conf_path);
			r = 0;
		}
		free(d->conf);
		free(d);
		return r;
	}
	if (r != 0 || d->diags.n > 0) {
		print_diags(&d->diags, d->conf_path);
		fatal("configuration %s is invalid; not starting", d->conf_path);
	}
	if (sodium_init() < 0)
		fatal("libsodium failed to initialise");

	if (node_name) {
		d->self = conf_node_index(d->conf, node_name);
		if (d->self < 0)
			fatal("no node named %s in %s", node_name, d->conf_path);
	} else {
		d->self = find_self(d->conf, err, sizeof err);
		if (d->self < 0)
			fatal("%s", err);
	}
	log_set_node(d->conf->nodes[d->self].name);
	load_key(d);

	if (worker_fd >= 0) {
		r = supervise_worker_lock(d->state_dir, worker_fd);
		if (r != 0)
			fatal("--worker %d is not the lock of %s held by a supervisor: %s", worker_fd,
			      d->state_dir, strerror(errno));
		d->lock_fd = worker_fd;
	} else {
		r = state_dir_open(d->state_dir, &d->lock_fd);
	}
	if (r == TND_EREFUSED)
		fatal("state directory %s is in use by another tandemd", d->state_dir);
	if (r != 0)
		fatal("cannot open state directory %s: %s", d->state_dir, strerror(errno));
	clock_gettime(CLOCK_REALTIME, &rt);
	r = state_incarnation_next(d->state_dir, (uint64_t)rt.tv_sec * 1000000ULL + (uint64_t)rt.tv_nsec / 1000,
				   &d->incarnation);
	if (r == TND_EINVAL)
		fatal("%s/incarnation is not a number; remove it only if this host's clock is right",
		      d->state_dir);
	if (r != 0)
		fatal("cannot write %s/incarnation: %s", d->state_dir, strerror(errno));
	{
		char path[TND_PATH_MAX + 16];
		snprintf(path, sizeof path, "%s/events.log", d->state_dir);
		if (log_open_file(path) != 0)
			log_event(LVL_WARN, "events.file_error", "file=%s error=\"%s\"", path, strerror(errno));
	}

	cfg_boot(d, &doc);
	confdoc_free(&doc);

	d->nl = nl_open();
	if (!d->nl)
		fatal("cannot open netlink: %s", strerror(errno));
	remove_stale_vips(d);
	guard_setup(d);

	d->loop = loop_new();
	if (!d->loop)
		fatal("cannot create the event loop: %s", strerror(errno));
	if (loop_signals(d->loop, signals, (int)(sizeof signals / sizeof signals[0]), on_signal, d) != 0 ||
	    loop_timer_init(d->loop, on_timer, d) != 0)
		fatal("cannot set up signals and timer: %s", strerror(errno));
	open_links(d);

	if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
		fatal("getrandom: %s", strerror(errno));
	d->started = loop_now();
	np = (struct node_params){
		.conf = d->conf, .self = d->self, .incarnation = d->incarnation, .seed = seed,
		.version = TND_VERSION, .proto_min = WIRE_PROTO_MIN, .proto_max = WIRE_PROTO_MAX,
		.sync_gate = d->conf->sessions_sync,
	};
	d->sess_gi = session_group_index(d->conf, d->self);
	np.sync_group_id = d->conf->groups[d->sess_gi].id;
	d->node = node_new(&np, d->started);
	d->st = calloc(1, sizeof *d->st);
	if (!d->node || !d->st)
		fatal("the protocol core refused its parameters");
	if (d->conf->sessions_sync)
		sess_start(d, d->started);

	{
		struct ctl_ops ops = { .status = img_status, .admin = ctl_admin,
				       .config = ctl_config, .image = ctl_image, .upgrade = ctl_upgrade,
				       .arg = d };
		d->ctl = ctl_open(d->sock_path, d->loop, d->conf, d->self, &ops, err, sizeof err);
		if (!d->ctl)
			fatal("control socket: %s", err);
		log_set_listener(on_log_event, d);
	}
	http_start(d);
	img_init(d, worker_fd >= 0);
	upg_init(d, seed ^ 0x5bd1e995u);
	if (loop_add(d->loop, nl_link_fd(d->nl), EPOLLIN, on_nl, d) != 0)
		fatal("event loop full");

	log_event(LVL_INFO, "daemon.start",
		  "version=%s incarnation=%" PRIu64 " cluster=%s cluster_id=%u links=%d config=%s state_dir=%s socket=%s",
		  TND_VERSION, d->incarnation, d->conf->cluster_name, d->conf->cluster_id, d->n_links,
		  d->conf_path, d->state_dir, d->sock_path);
	feed_initial_ifaces(d);
	rearm(d);
	sd_notify_msg("READY=1");

	if (loop_run(d->loop) != 0)
		fatal("event loop failed: %s", strerror(errno));

	log_event(LVL_INFO, "daemon.exit", "incarnation=%" PRIu64, d->incarnation);
	upg_close(d);
	r = img_close(d);
	log_set_listener(NULL, NULL);
	http_close(d->http);
	ctl_close(d->ctl);
	sessions_close(d->sess);
	cfgsync_free(d->cfg);
	free(d->cfg_acts);
	store_close(d->store);
	free(d->st);
	node_free(d->node);
	for (int l = 0; l < d->n_links; l++)
		close(d->udp_fd[l]);
	nl_close(d->nl);
	nft_guard_close();
	loop_free(d->loop);
	log_close();
	sodium_memzero(&d->key, sizeof d->key);
	free(d->conf);
	free(d);
	return r;
}
