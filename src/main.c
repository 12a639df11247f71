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
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/ctl.h"
#include "api/status.h"
#include "conf/conf.h"
#include "core/node.h"
#include "core/seal.h"
#include "core/wire.h"
#include "io/hooks.h"
#include "io/log.h"
#include "io/loop.h"
#include "io/nl.h"
#include "io/sessions.h"
#include "io/state.h"
#include "io/udp.h"

#define DEFAULT_CONFIG "/etc/tandem/tandem.yaml"
#define DEFAULT_STATE_DIR "/var/lib/tandem"
#define KEY_FILE_MAX_BYTES 4096
#define RX_BATCH_MAX 64              /* datagrams read per wake-up per link */
#define ANNOUNCE_REPEATS 2           /* after the first announcement */
#define ANNOUNCE_INTERVAL_MS 100
#define RATELIMIT_INTERVAL_MS 5000   /* one log line per kind per 5 s */
#define SPIN_GUARD_MS 1              /* least time between two EV_TICKs for one wake */
#define STOP_GRANT_WAIT_MS 1500      /* a clean stop waits this long for sync barriers */
/* Injected sessions live at least this long: the primary's DESTROY events
 * remove them, and the periodic digest catches what those miss. */
#define SESSION_TIMEOUT_FLOOR_S 3600
#define HOOKS_TRACKED_MAX 64         /* running hooks remembered for their exit line */

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
	struct tnd_conf conf;
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
	/* Running hooks, so their exit is logged with what they were for.
	 * A hook beyond the bound still runs and is reaped, only unnamed. */
	struct {
		pid_t pid; /* 0 = free */
		uint8_t group_id;
		enum gstate state;
	} hooks[HOOKS_TRACKED_MAX];
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

static void vips_add(struct daemon *d, int gi, mono_t now)
{
	const struct tnd_group_conf *g = &d->conf.groups[gi];
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
	d->announce_left[gi] = g->n_vips > 0 ? ANNOUNCE_REPEATS : 0;
	d->announce_at[gi] = now + MS_TO_MONO(ANNOUNCE_INTERVAL_MS);
}

static void vips_del(struct daemon *d, int gi)
{
	const struct tnd_group_conf *g = &d->conf.groups[gi];
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

	if (to < 0 || to >= d->conf.n_nodes || to == d->self || link < 0 || link >= d->n_links) {
		d->ctr.send_errors++;
		rl_log(d, RL_SEND, now, "to=%d link=%d error=\"core asked for a node or link that does not exist\"",
		       to, link);
		return;
	}
	if (seal_packet(&d->key, pkt, plen, out, sizeof out, &len) != 0) {
		d->ctr.send_errors++;
		rl_log(d, RL_SEND, now, "to=%s link=%d error=\"cannot seal packet\"",
		       d->conf.nodes[to].name, link);
		return;
	}
	if (udp_send(d->udp_fd[link], &d->conf.nodes[to].links[link], d->conf.port, out, len) != 0) {
		d->ctr.send_errors++;
		rl_log(d, RL_SEND, now, "to=%s link=%d address=%s error=\"%s\"", d->conf.nodes[to].name,
		       link, addr_str(&d->conf.nodes[to].links[link], addr, sizeof addr), strerror(errno));
	}
}

static void sess_follow(struct daemon *d, mono_t now);
static void rearm(struct daemon *d);

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
	int gi = conf_group_index(&d->conf, a->u.hook.group_id);
	const char *path;
	char q[TND_PATH_MAX + 8];
	pid_t pid;

	if (gi < 0)
		return;
	switch (a->u.hook.state) {
	case G_PRIMARY:
		path = d->conf.groups[gi].hook_primary;
		break;
	case G_SECONDARY:
	case G_INELIGIBLE:
		path = d->conf.groups[gi].hook_secondary;
		break;
	default:
		return;
	}
	if (!path[0])
		return;
	pid = hook_run(path, a->u.hook.group_id, gstate_name(a->u.hook.state),
		       d->conf.nodes[d->self].name, d->conf.cluster_name);
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
			gi = conf_group_index(&d->conf, a->u.vips.group_id);
			if (gi < 0)
				break;
			if (a->u.vips.add)
				vips_add(d, gi, now);
			else
				vips_del(d, gi);
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
	for (int gi = 0; gi < d->conf.n_groups; gi++)
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
	if (d->stopping && d->stop_deadline < at)
		at = d->stop_deadline;
	loop_timer_set(d->loop, at);
}

static void sess_follow(struct daemon *d, mono_t now);
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
		for (int x = 0; x < d->conf.n_nodes; x++) {
			if (x == d->self || d->st->peers[x].alive == d->peer_alive[x])
				continue;
			d->peer_alive[x] = d->st->peers[x].alive;
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

/* ---- event sources ---------------------------------------------------- */

static void on_timer(struct loop *l, void *arg)
{
	struct daemon *d = arg;
	mono_t now = loop_now();

	for (int gi = 0; gi < d->conf.n_groups; gi++) {
		const struct tnd_group_conf *g = &d->conf.groups[gi];
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
		r = seal_open(&d->key, d->conf.cluster_id, pkt, len, &hdr, body, sizeof body, &body_len);
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
	for (int gi = 0; gi < d->conf.n_groups; gi++) {
		bool primary = false;
		for (int i = 0; st && i < st->n_groups; i++)
			if (st->groups[i].id == d->conf.groups[gi].id)
				primary = st->groups[i].state == G_PRIMARY;
		if (d->vips_on[gi] || primary)
			vips_del(d, gi);
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
			  "action=ignored reason=\"configuration reload is not implemented in this version\"");
		break;
	}
}

/* ---- control socket callbacks --------------------------------------- */

static json_t *ctl_status(void *arg)
{
	struct daemon *d = arg;
	struct nl_stats nls;
	struct status_ctx sc = {
		.conf = &d->conf, .self = d->self, .node = d->node, .version = TND_VERSION,
		.incarnation = d->incarnation, .started = d->started, .drv = &d->ctr,
		.nl = &nls, .sess = d->sess,
		.sess_group = d->conf.groups[d->sess_gi].id,
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
		snprintf(err, err_len, "no node in %s has a link address on this host; use --node NAME",
			 c->source);
	else
		snprintf(err, err_len, "several nodes in %s have link addresses on this host (%s); use --node NAME",
			 c->source, names);
	return -1;
}

static void load_key(struct daemon *d)
{
	uint8_t buf[KEY_FILE_MAX_BYTES];
	struct stat st;
	size_t n = 0;
	int fd = open(d->conf.key_file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		fatal("cannot read key file %s: %s", d->conf.key_file, strerror(errno));
	if (fstat(fd, &st) == 0 && (st.st_mode & 0077))
		log_event(LVL_WARN, "key.permissions",
			  "file=%s mode=%04o reason=\"readable by group or others; chmod 600 recommended\"",
			  d->conf.key_file, (unsigned)(st.st_mode & 07777));
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof buf - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fatal("cannot read key file %s: %s", d->conf.key_file, strerror(errno));
		if (r == 0 || (n += (size_t)r) == sizeof buf)
			break;
	}
	close(fd);
	if (n < SEAL_SECRET_MIN)
		fatal("key file %s holds %zu bytes; it needs at least %d random bytes "
		      "(head -c 32 /dev/urandom > %s)", d->conf.key_file, n, SEAL_SECRET_MIN,
		      d->conf.key_file);
	if (seal_key_derive(&d->key, buf, n) != 0)
		fatal("cannot derive the cluster key from %s", d->conf.key_file);
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
		"       tandemd --check-config [--config FILE]\n"
		"       tandemd --print-config [--config FILE]\n"
		"       tandemd --version\n"
		"defaults: --config %s, --node the node with a local link address,\n"
		"          --state-dir %s, --socket $TANDEM_SOCKET or %s\n",
		DEFAULT_CONFIG, DEFAULT_STATE_DIR, CTL_DEFAULT_PATH);
}

static void open_links(struct daemon *d)
{
	const struct tnd_node_conf *me = &d->conf.nodes[d->self];
	char a[64];

	d->n_links = me->n_links;
	for (int l = 0; l < d->n_links; l++) {
		if (udp_open(&me->links[l], d->conf.port, &d->udp_fd[l]) != 0)
			fatal("cannot open link %d socket on %s port %u: %s", l,
			      addr_str(&me->links[l], a, sizeof a), d->conf.port, strerror(errno));
		d->lctx[l] = (struct link_ctx){ .d = d, .link = l };
		if (loop_add(d->loop, d->udp_fd[l], EPOLLIN, on_udp, &d->lctx[l]) != 0)
			fatal("event loop full");
	}
}

/* VIPs left by a previous run: we are primary of nothing yet. */
static void remove_stale_vips(struct daemon *d)
{
	char a[64];

	for (int gi = 0; gi < d->conf.n_groups; gi++) {
		const struct tnd_group_conf *g = &d->conf.groups[gi];
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
	for (int gi = 0; gi < d->conf.n_groups; gi++) {
		const struct tnd_group_conf *g = &d->conf.groups[gi];
		for (int m = 0; m < g->n_monitors; m++) {
			bool dup = false;
			for (int pg = 0; pg <= gi && !dup; pg++)
				for (int pm = 0; pm < (pg == gi ? m : d->conf.groups[pg].n_monitors) && !dup; pm++)
					dup = strcmp(d->conf.groups[pg].monitors[pm], g->monitors[m]) == 0;
			if (dup)
				continue;
			int r = nl_link_is_up(d->nl, g->monitors[m]);
			if (r < 0)
				log_event(LVL_WARN, "iface.missing", "interface=%s group=%u", g->monitors[m], g->id);
			iface_cb(g->monitors[m], r == 1, d);
		}
	}
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
		{ NULL, 0, NULL, 0 },
	};
	static const int signals[] = { SIGTERM, SIGINT, SIGCHLD, SIGHUP };
	struct daemon *d = calloc(1, sizeof *d);
	const char *node_name = NULL;
	bool check = false, print = false;
	char err[512];
	struct node_params np;
	struct timespec rt;
	uint64_t seed;
	int o, r;

	if (!d) {
		fprintf(stderr, "tandemd: out of memory\n");
		return 1;
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
		default: usage(stderr); free(d); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tandemd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		free(d);
		return 2;
	}

	r = conf_load(d->conf_path, &d->conf, &d->diags);
	if (check || print) {
		if (r != 0 || d->diags.n > 0) {
			print_diags(&d->diags, d->conf_path);
			r = 1;
		} else if (print) {
			r = conf_print(&d->conf, stdout) == 0 && fflush(stdout) == 0 ? 0 : 1;
		} else {
			printf("%s: configuration valid\n", d->conf_path);
			r = 0;
		}
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
		d->self = conf_node_index(&d->conf, node_name);
		if (d->self < 0)
			fatal("no node named %s in %s", node_name, d->conf_path);
	} else {
		d->self = find_self(&d->conf, err, sizeof err);
		if (d->self < 0)
			fatal("%s", err);
	}
	log_set_node(d->conf.nodes[d->self].name);
	load_key(d);

	r = state_dir_open(d->state_dir, &d->lock_fd);
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

	d->nl = nl_open();
	if (!d->nl)
		fatal("cannot open netlink: %s", strerror(errno));
	remove_stale_vips(d);

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
		.conf = &d->conf, .self = d->self, .incarnation = d->incarnation, .seed = seed,
		.version = TND_VERSION, .proto_min = WIRE_PROTO_MIN, .proto_max = WIRE_PROTO_MAX,
		.sync_gate = d->conf.sessions_sync,
	};
	/* The session group: the lowest-numbered group with VIPs (the
	 * traffic group); its primary's table is the one replicated. */
	d->sess_gi = 0;
	for (int gi = 1; gi < d->conf.n_groups; gi++)
		if (d->conf.groups[gi].n_vips > 0) {
			d->sess_gi = gi;
			break;
		}
	np.sync_group_id = d->conf.groups[d->sess_gi].id;
	d->node = node_new(&np, d->started);
	d->st = calloc(1, sizeof *d->st);
	if (!d->node || !d->st)
		fatal("the protocol core refused its parameters");
	if (d->conf.sessions_sync) {
		struct sessions_params sp = {
			.self = d->self, .n_nodes = d->conf.n_nodes,
			.cluster_id = d->conf.cluster_id, .proto = WIRE_PROTO_MAX,
			.incarnation = d->incarnation, .timeout_floor_s = SESSION_TIMEOUT_FLOOR_S,
			.hooks = { .send = sess_send, .log = sess_log, .arg = d },
		};
		d->sess = sessions_open(&sp, d->started, err, sizeof err);
		if (!d->sess)
			fatal("session sync: %s", err);
		if (loop_add(d->loop, sessions_events_fd(d->sess), EPOLLIN, on_ct, d) != 0 ||
		    loop_add(d->loop, sessions_worker_fd(d->sess), EPOLLIN, on_sess_worker, d) != 0)
			fatal("event loop full");
	}

	{
		struct ctl_ops ops = { .status = ctl_status, .admin = ctl_admin, .arg = d };
		d->ctl = ctl_open(d->sock_path, d->loop, &d->conf, d->self, &ops, err, sizeof err);
		if (!d->ctl)
			fatal("control socket: %s", err);
		log_set_listener(on_log_event, d);
	}
	if (loop_add(d->loop, nl_link_fd(d->nl), EPOLLIN, on_nl, d) != 0)
		fatal("event loop full");

	log_event(LVL_INFO, "daemon.start",
		  "version=%s incarnation=%" PRIu64 " cluster=%s cluster_id=%u links=%d config=%s state_dir=%s socket=%s",
		  TND_VERSION, d->incarnation, d->conf.cluster_name, d->conf.cluster_id, d->n_links,
		  d->conf_path, d->state_dir, d->sock_path);
	feed_initial_ifaces(d);
	rearm(d);
	sd_notify_msg("READY=1");

	if (loop_run(d->loop) != 0)
		fatal("event loop failed: %s", strerror(errno));

	log_event(LVL_INFO, "daemon.exit", "incarnation=%" PRIu64, d->incarnation);
	log_set_listener(NULL, NULL);
	ctl_close(d->ctl);
	sessions_close(d->sess);
	free(d->st);
	node_free(d->node);
	for (int l = 0; l < d->n_links; l++)
		close(d->udp_fd[l]);
	nl_close(d->nl);
	loop_free(d->loop);
	log_close();
	sodium_memzero(&d->key, sizeof d->key);
	free(d);
	return 0;
}
