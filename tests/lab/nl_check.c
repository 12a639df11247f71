/* nl_check.c - checks the netlink driver (src/io/nl.c) and the hook runner
 * (src/io/hooks.c) against a real kernel. Run as root inside a network
 * namespace prepared by tests/lab/test_nl.sh:
 *
 *   nl_check test IFACE IF2 PEER2
 *       IFACE: a veth with carrier (VIPs are added to it);
 *       IF2/PEER2: a veth pair of its own, toggled for link events.
 *   nl_check announce IFACE ADDR/PREFIX
 *       adds the VIP and announces it once (gratuitous ARP or unsolicited
 *       NA), as a takeover does; the script checks the neighbour's cache.
 *
 * Every check prints what failed and exits 1 at the first failure; the
 * last line is "nl_check: N passed, 0 failed". */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>

#include "io/hooks.h"
#include "io/nl.h"

static int n_passed;

static void check_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "FAIL %s:%d: %s: ", file, line, expr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nnl_check: %d passed, 1 failed\n", n_passed);
	exit(1);
}

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond))                                                    \
			check_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);     \
		n_passed++;                                                     \
	} while (0)

static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("nl_check: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- recording link callbacks ------------------------------------------ */

#define REC_MAX 4096
struct rec {
	int n;
	int dropped;
	struct {
		char name[IFNAMSIZ];
		bool up;
	} ev[REC_MAX];
};
static struct rec rec;

static void rec_cb(const char *ifname, bool up, void *arg)
{
	struct rec *r = arg;
	if (r->n >= REC_MAX) {
		r->dropped++;
		return;
	}
	snprintf(r->ev[r->n].name, IFNAMSIZ, "%s", ifname);
	r->ev[r->n].up = up;
	r->n++;
}

static void rec_reset(void)
{
	rec.n = 0;
	rec.dropped = 0;
}

/* Index of the first record (name, up) at or after `from`, or -1. */
static int rec_find(int from, const char *name, bool up)
{
	for (int i = from; i < rec.n; i++)
		if (!strcmp(rec.ev[i].name, name) && rec.ev[i].up == up)
			return i;
	return -1;
}

static int rec_count(const char *name)
{
	int c = 0;
	for (int i = 0; i < rec.n; i++)
		c += !strcmp(rec.ev[i].name, name);
	return c;
}

/* Last state reported for `name`: 1 up, 0 down, -1 never reported. */
static int rec_last(const char *name)
{
	for (int i = rec.n - 1; i >= 0; i--)
		if (!strcmp(rec.ev[i].name, name))
			return rec.ev[i].up;
	return -1;
}

/* Process link events for up to `ms` milliseconds. */
static void pump(struct nl *nl, int ms)
{
	int64_t end = now_ms() + ms;
	for (;;) {
		int64_t left = end - now_ms();
		if (left <= 0)
			return;
		struct pollfd p = {nl_link_fd(nl), POLLIN, 0};
		int rc = poll(&p, 1, (int)left);
		if (rc > 0) {
			int erc = nl_link_events(nl, rec_cb, &rec);
			CHECK(erc == 0, "nl_link_events: %s (%s)", tnd_strerror(erc), strerror(errno));
		}
	}
}

/* Process events until (name, up) shows up, at most `ms` milliseconds. */
static bool wait_event(struct nl *nl, int from, const char *name, bool up, int ms)
{
	int64_t end = now_ms() + ms;
	while (rec_find(from, name, up) < 0) {
		int64_t left = end - now_ms();
		if (left <= 0)
			return false;
		struct pollfd p = {nl_link_fd(nl), POLLIN, 0};
		if (poll(&p, 1, (int)left) > 0) {
			int erc = nl_link_events(nl, rec_cb, &rec);
			CHECK(erc == 0, "nl_link_events: %s (%s)", tnd_strerror(erc), strerror(errno));
		}
	}
	return true;
}

/* ---- helpers ------------------------------------------------------------- */

static unsigned short if_flags(const char *ifname)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	CHECK(fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0, "SIOCGIFFLAGS %s: %s", ifname,
	      strerror(errno));
	close(fd);
	return (unsigned short)ifr.ifr_flags;
}

/* Set a link administratively up or down, as an operator's `ip link set`
 * would, through the ioctl rather than through the code under test. */
static void if_set_up(const char *ifname, bool up)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	CHECK(fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0, "SIOCGIFFLAGS %s: %s", ifname,
	      strerror(errno));
	if (up)
		ifr.ifr_flags |= IFF_UP;
	else
		ifr.ifr_flags &= ~IFF_UP;
	CHECK(ioctl(fd, SIOCSIFFLAGS, &ifr) == 0, "SIOCSIFFLAGS %s: %s", ifname, strerror(errno));
	close(fd);
}

static void if_set_mtu(const char *ifname, int mtu)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	ifr.ifr_mtu = mtu;
	CHECK(fd >= 0 && ioctl(fd, SIOCSIFMTU, &ifr) == 0, "SIOCSIFMTU %s: %s", ifname,
	      strerror(errno));
	close(fd);
}

static void run(const char *cmd)
{
	int rc = system(cmd);
	CHECK(rc == 0, "`%s` exited %d", cmd, rc);
}

static struct tnd_vip vip(const char *text, const char *ifname)
{
	struct tnd_vip v;
	char buf[64];
	memset(&v, 0, sizeof v);
	snprintf(buf, sizeof buf, "%s", text);
	char *slash = strchr(buf, '/');
	CHECK(slash != NULL, "VIP %s has no /prefix", text);
	*slash = '\0';
	v.prefix_len = (uint8_t)atoi(slash + 1);
	if (inet_pton(AF_INET, buf, v.addr.bytes) == 1)
		v.addr.family = AF_INET;
	else if (inet_pton(AF_INET6, buf, v.addr.bytes) == 1)
		v.addr.family = AF_INET6;
	else
		CHECK(0, "VIP %s: not an address", text);
	snprintf(v.ifname, sizeof v.ifname, "%s", ifname);
	return v;
}

/* bind() to the address: 0 when the kernel considers it ours and usable
 * (an IPv6 address still tentative fails with EADDRNOTAVAIL), else errno. */
static int try_bind(const struct tnd_vip *v)
{
	int fd = socket(v->addr.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0, "socket: %s", strerror(errno));
	int rc;
	if (v->addr.family == AF_INET) {
		struct sockaddr_in sa = {.sin_family = AF_INET};
		memcpy(&sa.sin_addr, v->addr.bytes, 4);
		rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	} else {
		struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
		memcpy(&sa.sin6_addr, v->addr.bytes, 16);
		rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	}
	int e = rc == 0 ? 0 : errno;
	close(fd);
	return e;
}

/* ---- checks --------------------------------------------------------------- */

static void check_bad_input(struct nl *nl, const char *iface)
{
	int rc;
	CHECK((rc = nl_link_is_up(nl, "tnl-nosuch0")) == TND_ENOENT, "got %d", rc);
	CHECK((rc = nl_link_is_up(nl, "bad/name")) == TND_EINVAL, "got %d", rc);
	CHECK((rc = nl_link_is_up(nl, "abcdefghijklmnopq")) == TND_EINVAL, "got %d", rc);
	CHECK((rc = nl_link_is_up(nl, "")) == TND_EINVAL, "got %d", rc);
	CHECK((rc = nl_link_is_up(nl, NULL)) == TND_EINVAL, "got %d", rc);

	struct tnd_vip v = vip("192.0.2.70/24", "tnl-nosuch0");
	CHECK((rc = nl_vip_add(nl, &v)) == TND_ENOENT, "add on missing iface: %d", rc);
	CHECK((rc = nl_vip_present(nl, &v)) == TND_ENOENT, "present on missing iface: %d", rc);
	CHECK((rc = nl_vip_del(nl, &v)) == TND_ENOENT, "del on missing iface: %d", rc);
	CHECK((rc = nl_vip_announce(nl, &v)) == TND_ENOENT, "announce on missing iface: %d", rc);

	/* Malformed VIPs are refused before the kernel sees them, and leave
	 * nothing behind. */
	struct tnd_vip good = vip("192.0.2.70/24", iface);
	struct tnd_vip bad = good;
	bad.prefix_len = 33;
	CHECK((rc = nl_vip_add(nl, &bad)) == TND_EINVAL, "prefix 33: %d", rc);
	bad = good;
	bad.addr.family = 0;
	CHECK((rc = nl_vip_add(nl, &bad)) == TND_EINVAL, "family 0: %d", rc);
	bad = vip("224.0.0.5/24", iface);
	CHECK((rc = nl_vip_add(nl, &bad)) == TND_EINVAL, "multicast: %d", rc);
	bad = vip("0.0.0.0/0", iface);
	CHECK((rc = nl_vip_add(nl, &bad)) == TND_EINVAL, "0.0.0.0: %d", rc);
	bad = vip("ff02::1/64", iface);
	CHECK((rc = nl_vip_add(nl, &bad)) == TND_EINVAL, "ff02::1: %d", rc);
	bad = vip("2001:db8::70/129", iface);
	CHECK((rc = nl_vip_add(nl, &bad)) == TND_EINVAL, "prefix 129: %d", rc);
	bad = good;
	memset(bad.ifname, 'x', sizeof bad.ifname); /* not NUL-terminated */
	CHECK((rc = nl_vip_add(nl, &bad)) == TND_EINVAL, "unterminated ifname: %d", rc);
	CHECK((rc = nl_vip_add(nl, NULL)) == TND_EINVAL, "NULL vip: %d", rc);
	CHECK((rc = nl_vip_present(nl, &good)) == 0, "192.0.2.70 appeared: %d", rc);
	say("bad input: clear errors (ENOENT for missing interfaces, EINVAL otherwise), nothing changed");
}

static void check_dump(struct nl *nl, const char *iface, const char *if2, const char *peer2)
{
	rec_reset();
	int rc = nl_link_dump(nl, rec_cb, &rec);
	CHECK(rc == 0, "nl_link_dump: %s", tnd_strerror(rc));
	const char *names[] = {"lo", iface, if2, peer2};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		CHECK(rec_count(names[i]) == 1, "%s reported %d times by the dump", names[i],
		      rec_count(names[i]));
		CHECK(rec_last(names[i]) == 1, "%s not reported up by the dump", names[i]);
		CHECK((rc = nl_link_is_up(nl, names[i])) == 1, "nl_link_is_up(%s) = %d", names[i], rc);
	}
	say("link dump: %d links, lo %s %s %s all up; nl_link_is_up agrees", rec.n, iface, if2,
	    peer2);
}

static void check_vip_v4(struct nl *nl, const char *iface)
{
	struct tnd_vip v = vip("192.0.2.60/24", iface);
	int rc;
	CHECK(nl_vip_present(nl, &v) == 0, "192.0.2.60 present before the test");
	CHECK(try_bind(&v) == EADDRNOTAVAIL, "bind to an absent address did not fail");
	CHECK((rc = nl_vip_add(nl, &v)) == 0, "add: %s (%s) %s", tnd_strerror(rc), strerror(errno),
	      nl_last_error(nl));
	CHECK(nl_vip_present(nl, &v) == 1, "not present after add");
	CHECK((rc = try_bind(&v)) == 0, "kernel does not own it: bind: %s", strerror(rc));
	CHECK((rc = nl_vip_add(nl, &v)) == 0, "second add not idempotent: %s (%s)",
	      tnd_strerror(rc), strerror(errno));
	CHECK(nl_vip_present(nl, &v) == 1, "not present after second add");
	CHECK((rc = nl_vip_del(nl, &v)) == 0, "del: %s (%s)", tnd_strerror(rc), strerror(errno));
	CHECK(nl_vip_present(nl, &v) == 0, "still present after del");
	CHECK(try_bind(&v) == EADDRNOTAVAIL, "kernel still owns it after del");
	CHECK((rc = nl_vip_del(nl, &v)) == 0, "second del not idempotent: %s (%s)",
	      tnd_strerror(rc), strerror(errno));

	/* A host route VIP, and deletion when the prefix in hand differs. */
	struct tnd_vip h = vip("192.0.2.61/32", iface);
	CHECK(nl_vip_add(nl, &h) == 0 && nl_vip_present(nl, &h) == 1, "/32 VIP not added");
	struct tnd_vip h24 = vip("192.0.2.61/24", iface);
	CHECK((rc = nl_vip_del(nl, &h24)) == 0, "del /24 of a /32: %d", rc);
	CHECK(nl_vip_present(nl, &h) == 0, "/32 VIP survived deletion by address");
	say("IPv4 VIP: add -> present and bindable; add again ok; del -> absent; del again ok");
}

static void check_vip_v6(struct nl *nl, const char *iface)
{
	struct tnd_vip v = vip("2001:db8::60/64", iface);
	int rc;
	CHECK(nl_vip_present(nl, &v) == 0, "2001:db8::60 present before the test");
	CHECK((rc = nl_vip_add(nl, &v)) == 0, "add: %s (%s) %s", tnd_strerror(rc), strerror(errno),
	      nl_last_error(nl));
	/* At once, no sleep: a tentative address would refuse bind(). */
	CHECK((rc = try_bind(&v)) == 0, "not usable at once (tentative?): bind: %s", strerror(rc));
	CHECK(nl_vip_present(nl, &v) == 1, "not present after add");
	CHECK((rc = nl_vip_add(nl, &v)) == 0, "second add: %s (%s)", tnd_strerror(rc),
	      strerror(errno));
	CHECK((rc = nl_vip_del(nl, &v)) == 0, "del: %s (%s)", tnd_strerror(rc), strerror(errno));
	CHECK(nl_vip_present(nl, &v) == 0, "still present after del");
	CHECK(try_bind(&v) == EADDRNOTAVAIL, "kernel still owns it after del");
	CHECK((rc = nl_vip_del(nl, &v)) == 0, "second del: %s (%s)", tnd_strerror(rc),
	      strerror(errno));

	/* Control: the same kind of address added with DAD is tentative, so
	 * the bind check above can tell. nl_vip_add then makes it usable. */
	char cmd[160];
	struct tnd_vip t = vip("2001:db8::77/64", iface);
	snprintf(cmd, sizeof cmd, "ip -6 addr add 2001:db8::77/64 dev %s", iface);
	run(cmd);
	CHECK(try_bind(&t) == EADDRNOTAVAIL, "control failed: an address under DAD was bindable");
	CHECK((rc = nl_vip_add(nl, &t)) == 0, "add over tentative: %s (%s)", tnd_strerror(rc),
	      strerror(errno));
	CHECK((rc = try_bind(&t)) == 0, "tentative address not replaced: bind: %s", strerror(rc));
	CHECK(nl_vip_del(nl, &t) == 0 && nl_vip_present(nl, &t) == 0, "::77 not deleted");

	/* IPv6 deletion matches the prefix length: a VIP whose prefix changed
	 * in the configuration must still be removed. */
	struct tnd_vip p64 = vip("2001:db8::61/64", iface);
	struct tnd_vip p128 = vip("2001:db8::61/128", iface);
	CHECK(nl_vip_add(nl, &p64) == 0 && nl_vip_present(nl, &p64) == 1, "::61/64 not added");
	CHECK((rc = nl_vip_del(nl, &p128)) == 0, "del ::61/128: %d", rc);
	CHECK(nl_vip_present(nl, &p64) == 0, "::61/64 survived deletion as /128");
	say("IPv6 VIP: NODAD add usable at once (control: DAD address tentative, then fixed); "
	    "idempotent add/del; prefix mismatch handled");
}

static void check_link_events(struct nl *nl, const char *if2, const char *peer2)
{
	int from, rc;
	pump(nl, 200); /* settle anything left from earlier steps */

	from = rec.n;
	if_set_up(if2, false);
	CHECK(wait_event(nl, from, if2, false, 3000), "no down event for %s", if2);
	CHECK(wait_event(nl, from, peer2, false, 3000), "no down event for %s (lost carrier)",
	      peer2);
	CHECK((rc = nl_link_is_up(nl, if2)) == 0, "nl_link_is_up(%s) = %d after down", if2, rc);

	from = rec.n;
	if_set_up(if2, true);
	CHECK(wait_event(nl, from, if2, true, 3000), "no up event for %s", if2);
	CHECK(wait_event(nl, from, peer2, true, 3000), "no up event for %s", peer2);
	CHECK((rc = nl_link_is_up(nl, if2)) == 1, "nl_link_is_up(%s) = %d after up", if2, rc);

	/* Admin up but no carrier is down: IFF_RUNNING / operstate count. */
	from = rec.n;
	if_set_up(peer2, false);
	CHECK(wait_event(nl, from, if2, false, 3000), "%s without carrier not reported down", if2);
	CHECK(if_flags(if2) & IFF_UP, "%s lost IFF_UP", if2);
	CHECK((rc = nl_link_is_up(nl, if2)) == 0, "nl_link_is_up(%s) = %d without carrier", if2, rc);
	from = rec.n;
	if_set_up(peer2, true);
	CHECK(wait_event(nl, from, if2, true, 3000), "%s carrier back not reported", if2);
	CHECK(wait_event(nl, from, peer2, true, 3000), "%s up not reported", peer2);
	say("link events: %s down/up, %s down/up (carrier) seen; nl_link_is_up follows", if2, peer2);

	/* A message that changes nothing we report (MTU) gives no callback. */
	pump(nl, 300);
	from = rec.n;
	if_set_mtu(if2, 1400);
	pump(nl, 400);
	CHECK(rec.n == from, "%d callbacks for an MTU change (first: %s %d)", rec.n - from,
	      rec.ev[from].name, rec.ev[from].up);
	if_set_mtu(if2, 1500);
	pump(nl, 200);

	/* New and deleted links. */
	from = rec.n;
	run("ip link add tnl-f0 type veth peer name tnl-f1");
	CHECK(wait_event(nl, from, "tnl-f0", false, 3000), "new link tnl-f0 not reported");
	CHECK(wait_event(nl, from, "tnl-f1", false, 3000), "new link tnl-f1 not reported");
	if_set_up("tnl-f0", true);
	if_set_up("tnl-f1", true);
	CHECK(wait_event(nl, from, "tnl-f0", true, 3000), "tnl-f0 up not reported");
	CHECK(wait_event(nl, from, "tnl-f1", true, 3000), "tnl-f1 up not reported");
	from = rec.n;
	run("ip link del tnl-f0");
	CHECK(wait_event(nl, from, "tnl-f0", false, 3000), "deleted tnl-f0 not reported down");
	CHECK(wait_event(nl, from, "tnl-f1", false, 3000), "deleted tnl-f1 not reported down");
	CHECK((rc = nl_link_is_up(nl, "tnl-f0")) == TND_ENOENT, "deleted link: %d", rc);

	/* Rename: the new name appears with the link's state. */
	run("ip link add tnl-g0 type veth peer name tnl-g1");
	run("ip link set tnl-g1 up");
	run("ip link set tnl-g0 up");
	CHECK(wait_event(nl, from, "tnl-g0", true, 3000), "tnl-g0 up not reported");
	from = rec.n;
	run("ip link set tnl-g0 down && ip link set tnl-g0 name tnl-g2 && ip link set tnl-g2 up");
	CHECK(wait_event(nl, from, "tnl-g0", false, 3000), "old name tnl-g0 not reported down");
	CHECK(wait_event(nl, from, "tnl-g2", true, 3000), "new name tnl-g2 not reported up");
	run("ip link del tnl-g2");
	pump(nl, 200);
	say("link events: creation, deletion (down), rename reported; MTU change silent");
}

static void check_overrun(struct nl *nl, const char *if2)
{
	int fd = nl_link_fd(nl), small = 0, big = 1 << 20, rc;
	struct nl_stats before, after;
	pump(nl, 200);
	nl_get_stats(nl, &before);

	/* Shrink the event socket's buffer to the kernel's minimum and flap
	 * the link without reading: the kernel must drop events (ENOBUFS).
	 * The link ends down; the driver must still report that. */
	CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0, "SO_RCVBUF: %s",
	      strerror(errno));
	for (int i = 0; i < 20; i++) {
		if_set_up(if2, false);
		if_set_up(if2, true);
	}
	if_set_up(if2, false);
	int from = rec.n;
	CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) == 0,
	      "SO_RCVBUFFORCE: %s", strerror(errno));
	CHECK(wait_event(nl, from, if2, false, 3000), "final down of %s not reported", if2);
	pump(nl, 300);
	nl_get_stats(nl, &after);
	CHECK(after.overruns > before.overruns, "no overrun seen (test did not provoke one)");
	CHECK(after.resyncs > before.resyncs, "overrun without a re-dump");
	CHECK(rec_last(if2) == 0, "last report for %s is up, but it is down", if2);
	CHECK((rc = nl_link_is_up(nl, if2)) == 0, "nl_link_is_up(%s) = %d", if2, rc);
	say("overrun: %llu ENOBUFS, %llu re-dumps; final state (down) reported, %d callbacks",
	    (unsigned long long)(after.overruns - before.overruns),
	    (unsigned long long)(after.resyncs - before.resyncs), rec.n - from);

	from = rec.n;
	if_set_up(if2, true);
	CHECK(wait_event(nl, from, if2, true, 3000), "%s up after overrun not reported", if2);
}

/* ---- crafted messages through nl_link_feed ------------------------------- */

struct msg {
	char buf[1024] __attribute__((aligned(8)));
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;
};

static void msg_start(struct msg *m, uint16_t type, int family, int ifindex, unsigned flags)
{
	memset(m->buf, 0, sizeof m->buf);
	m->nlh = mnl_nlmsg_put_header(m->buf);
	m->nlh->nlmsg_type = type;
	m->ifi = mnl_nlmsg_put_extra_header(m->nlh, sizeof(*m->ifi));
	m->ifi->ifi_family = (unsigned char)family;
	m->ifi->ifi_index = ifindex;
	m->ifi->ifi_flags = flags;
}

/* Feed one crafted message; return the number of callbacks it caused and
 * the growth of the malformed counter. */
static int feed(struct nl *nl, const void *buf, size_t len, uint64_t *bad)
{
	struct nl_stats a, b;
	int from = rec.n;
	nl_get_stats(nl, &a);
	int rc = nl_link_feed(nl, buf, len, rec_cb, &rec);
	CHECK(rc == 0, "nl_link_feed: %d", rc);
	nl_get_stats(nl, &b);
	*bad = b.malformed - a.malformed;
	return rec.n - from;
}

static void check_malformed(struct nl *nl)
{
	struct msg m;
	uint64_t bad;
	int n;
	const unsigned up = IFF_UP | IFF_RUNNING;

	/* Well-formed, with an attribute type this code does not know. */
	msg_start(&m, RTM_NEWLINK, AF_UNSPEC, 99999, up);
	mnl_attr_put_strz(m.nlh, IFLA_IFNAME, "tnl-fake0");
	mnl_attr_put_u8(m.nlh, IFLA_OPERSTATE, 6);
	mnl_attr_put_u32(m.nlh, 2000, 7);
	n = feed(nl, m.buf, m.nlh->nlmsg_len, &bad);
	CHECK(n == 1 && bad == 0 && rec_last("tnl-fake0") == 1, "good message: %d cb, %llu bad", n,
	      (unsigned long long)bad);
	n = feed(nl, m.buf, m.nlh->nlmsg_len, &bad);
	CHECK(n == 0 && bad == 0, "repeat of an unchanged link: %d callbacks", n);

	/* Flags up but operstate DOWN: down. Up but not running: down. */
	msg_start(&m, RTM_NEWLINK, AF_UNSPEC, 99998, up);
	mnl_attr_put_strz(m.nlh, IFLA_IFNAME, "tnl-fake1");
	mnl_attr_put_u8(m.nlh, IFLA_OPERSTATE, 2);
	n = feed(nl, m.buf, m.nlh->nlmsg_len, &bad);
	CHECK(n == 1 && bad == 0 && rec_last("tnl-fake1") == 0, "operstate DOWN taken as up");
	msg_start(&m, RTM_NEWLINK, AF_UNSPEC, 99998, IFF_UP);
	mnl_attr_put_strz(m.nlh, IFLA_IFNAME, "tnl-fake1");
	mnl_attr_put_u8(m.nlh, IFLA_OPERSTATE, 0);
	n = feed(nl, m.buf, m.nlh->nlmsg_len, &bad);
	CHECK(n == 0 && bad == 0 && rec_last("tnl-fake1") == 0, "not running taken as up");

	static const char *const cases[] = {
		"name not NUL-terminated",
		"operstate of 4 bytes",
		"payload shorter than ifinfomsg",
		"attribute longer than the message",
		"no IFLA_IFNAME",
		"ifindex 0",
		"name longer than IFNAMSIZ",
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		msg_start(&m, RTM_NEWLINK, AF_UNSPEC, 99997, up);
		switch (i) {
		case 0:
			mnl_attr_put(m.nlh, IFLA_IFNAME, 4, "abcd");
			break;
		case 1:
			mnl_attr_put_strz(m.nlh, IFLA_IFNAME, "tnl-fake2");
			mnl_attr_put_u32(m.nlh, IFLA_OPERSTATE, 6);
			break;
		case 2:
			m.nlh->nlmsg_len = sizeof(struct nlmsghdr) + 8;
			break;
		case 3: {
			mnl_attr_put_strz(m.nlh, IFLA_IFNAME, "tnl-fake2");
			struct nlattr *a = mnl_nlmsg_get_payload_tail(m.nlh);
			mnl_attr_put_u32(m.nlh, IFLA_MTU, 1500);
			a->nla_len = 200; /* runs past nlmsg_len */
			break;
		}
		case 4:
			mnl_attr_put_u8(m.nlh, IFLA_OPERSTATE, 6);
			break;
		case 5:
			m.ifi->ifi_index = 0;
			mnl_attr_put_strz(m.nlh, IFLA_IFNAME, "tnl-fake2");
			break;
		case 6:
			mnl_attr_put_strz(m.nlh, IFLA_IFNAME, "tnl-fake2-much-too-long");
			break;
		}
		n = feed(nl, m.buf, m.nlh->nlmsg_len, &bad);
		CHECK(n == 0 && bad == 1, "%s: %d callbacks, malformed +%llu", cases[i], n,
		      (unsigned long long)bad);
	}

	/* A header claiming more bytes than were received. */
	msg_start(&m, RTM_NEWLINK, AF_UNSPEC, 99997, up);
	mnl_attr_put_strz(m.nlh, IFLA_IFNAME, "tnl-fake2");
	size_t real = m.nlh->nlmsg_len;
	m.nlh->nlmsg_len = 4000;
	n = feed(nl, m.buf, real, &bad);
	CHECK(n == 0 && bad == 1, "overlong nlmsg_len: %d callbacks, malformed +%llu", n,
	      (unsigned long long)bad);
	CHECK(rec_count("tnl-fake2") == 0, "a malformed message reached the callback");

	/* AF_BRIDGE RTM_DELLINK means "left a bridge", not "deleted". */
	msg_start(&m, RTM_DELLINK, AF_BRIDGE, 99999, up);
	mnl_attr_put_strz(m.nlh, IFLA_IFNAME, "tnl-fake0");
	n = feed(nl, m.buf, m.nlh->nlmsg_len, &bad);
	CHECK(n == 0 && bad == 0, "AF_BRIDGE DELLINK caused %d callbacks", n);
	/* Two messages in one buffer, the real deletion last. */
	struct msg m2;
	msg_start(&m, RTM_NEWLINK, AF_UNSPEC, 99998, up);
	mnl_attr_put_strz(m.nlh, IFLA_IFNAME, "tnl-fake1");
	msg_start(&m2, RTM_DELLINK, AF_UNSPEC, 99999, up);
	mnl_attr_put_strz(m2.nlh, IFLA_IFNAME, "tnl-fake0");
	size_t l1 = m.nlh->nlmsg_len;
	memcpy(m.buf + l1, m2.buf, m2.nlh->nlmsg_len);
	int from = rec.n;
	n = feed(nl, m.buf, l1 + m2.nlh->nlmsg_len, &bad);
	CHECK(n == 2 && bad == 0, "two messages: %d callbacks, malformed +%llu", n,
	      (unsigned long long)bad);
	CHECK(rec_find(from, "tnl-fake1", true) == from && rec_find(from, "tnl-fake0", false) == from + 1,
	      "wrong callbacks for the two messages");
	msg_start(&m, RTM_DELLINK, AF_UNSPEC, 99998, 0);
	mnl_attr_put_strz(m.nlh, IFLA_IFNAME, "tnl-fake1");
	feed(nl, m.buf, m.nlh->nlmsg_len, &bad);
	say("crafted messages: 8 malformed kinds dropped and counted one each; unknown attributes "
	    "skipped; AF_BRIDGE ignored; up = UP+RUNNING+operstate");
}

static void check_announce_errors(struct nl *nl, const char *iface, const char *if2)
{
	int rc;
	struct tnd_vip v4 = vip("192.0.2.80/24", iface);
	CHECK((rc = nl_vip_add(nl, &v4)) == 0, "add: %d", rc);
	CHECK((rc = nl_vip_announce(nl, &v4)) == 0, "IPv4 announce: %s (%s)", tnd_strerror(rc),
	      strerror(errno));
	CHECK(nl_vip_del(nl, &v4) == 0, "del");
	struct tnd_vip v6 = vip("2001:db8::80/64", iface);
	CHECK((rc = nl_vip_add(nl, &v6)) == 0, "add: %d", rc);
	CHECK((rc = nl_vip_announce(nl, &v6)) == 0, "IPv6 announce: %s (%s)", tnd_strerror(rc),
	      strerror(errno));
	CHECK(nl_vip_del(nl, &v6) == 0, "del");
	/* The NA is sent from the VIP: announcing one we do not hold fails. */
	CHECK((rc = nl_vip_announce(nl, &v6)) < 0, "NA for an absent VIP sent: %d", rc);
	/* Loopback has no neighbour cache to update: nothing to send. */
	struct tnd_vip lo = vip("192.0.2.81/32", "lo");
	CHECK((rc = nl_vip_announce(nl, &lo)) == 0, "announce on lo: %d", rc);
	/* A down interface cannot send. */
	struct tnd_vip d = vip("192.0.2.82/24", if2);
	if_set_up(if2, false);
	rc = nl_vip_announce(nl, &d);
	int e = errno;
	if_set_up(if2, true);
	CHECK(rc == TND_ESYS && e == ENETDOWN, "announce on a down link: %d (%s)", rc, strerror(e));
	pump(nl, 300);
	say("announce: IPv4/IPv6 sent; absent IPv6 VIP refused; lo skipped; down link -> ENETDOWN");
}

/* ---- hooks ---------------------------------------------------------------- */

static char *slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

static void expect_line(const char *text, const char *line)
{
	char want[512];
	snprintf(want, sizeof want, "%s\n", line);
	CHECK(strstr(text, want) != NULL, "hook output lacks \"%s\":\n%s", line, text);
}

static char hook_dir[] = "/tmp/tnl-hook.XXXXXX";
static bool hook_dir_made;

/* Remove the hook's scratch directory however the test ends. */
static void hook_dir_remove(void)
{
	char cmd[64];
	if (!hook_dir_made)
		return;
	snprintf(cmd, sizeof cmd, "rm -rf %s", hook_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "nl_check: could not remove %s\n", hook_dir);
}

static void check_hooks(void)
{
	const char *dir = hook_dir;
	CHECK(mkdtemp(hook_dir) != NULL, "mkdtemp: %s", strerror(errno));
	hook_dir_made = true;
	atexit(hook_dir_remove);
	char script[128], out[128], tmp[128], text[2048], line[256];
	snprintf(script, sizeof script, "%s/hook.sh", dir);
	snprintf(out, sizeof out, "%s/out", dir);
	snprintf(tmp, sizeof tmp, "%s/out.tmp", dir);

	/* Daemon-like state the hook must not inherit: a descriptor without
	 * CLOEXEC, stdin with data in it, a blocked and an ignored signal,
	 * an extra environment variable. */
	int leak = open("/dev/null", O_RDONLY);
	CHECK(leak > 2, "open: %s", strerror(errno));
	int pfd[2];
	CHECK(pipe(pfd) == 0, "pipe");
	CHECK(write(pfd[1], "data\n", 5) == 5, "write");
	close(pfd[1]);
	int saved_stdin = dup(0);
	CHECK(dup2(pfd[0], 0) == 0, "dup2");
	close(pfd[0]);
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &old);
	signal(SIGUSR1, SIG_IGN);
	setenv("TNL_LEAK", "1", 1);

	int len = snprintf(text, sizeof text,
		"#!/bin/sh\n"
		"exec >%s\n"
		"echo \"argc=$#\"\n"
		"echo \"arg0=$0\"\n"
		"echo \"arg1=$1\"\n"
		"echo \"arg2=$2\"\n"
		"echo \"group=$TANDEM_GROUP\"\n"
		"echo \"state=$TANDEM_STATE\"\n"
		"echo \"node=$TANDEM_NODE\"\n"
		"echo \"cluster=$TANDEM_CLUSTER\"\n"
		"echo \"path=$PATH\"\n"
		"echo \"leak=${TNL_LEAK:-none}\"\n"
		"if [ -e /proc/$$/fd/%d ]; then echo fd=leaked; else echo fd=closed; fi\n"
		"if read x; then echo stdin=data; else echo stdin=eof; fi\n"
		"echo \"sigblk=$(grep SigBlk /proc/$$/status | cut -f2)\"\n"
		"echo \"sigign=$(grep SigIgn /proc/$$/status | cut -f2)\"\n"
		"echo \"pgid=$(cut -d' ' -f5 /proc/$$/stat)\"\n"
		"echo \"pid=$$\"\n"
		"sleep 1\n"
		"mv %s %s\n",
		tmp, leak, tmp, out);
	CHECK(len > 0 && (size_t)len < sizeof text, "script too long");
	int fd = open(script, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	CHECK(fd >= 0 && write(fd, text, (size_t)len) == len, "write script: %s", strerror(errno));
	close(fd);

	int64_t t0 = now_ms();
	pid_t pid = hook_run(script, 3, "primary", "fw-a", "edge1");
	int64_t dt = now_ms() - t0;
	CHECK(pid > 0, "hook_run: %d (%s)", (int)pid, strerror(errno));
	CHECK(dt < 500, "hook_run took %lld ms: it waited for the hook", (long long)dt);
	CHECK(getpgid(pid) == pid, "hook not in its own process group");

	/* Restore our own state before anything else can fail. */
	dup2(saved_stdin, 0);
	close(saved_stdin);
	close(leak);
	sigprocmask(SIG_SETMASK, &old, NULL);
	signal(SIGUSR1, SIG_DFL);
	unsetenv("TNL_LEAK");

	int st = 0;
	alarm(10); /* bound the wait: the hook sleeps 1 s */
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
	alarm(0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "hook exited with status 0x%x", st);
	CHECK(slurp(out, text, sizeof text) != NULL, "hook wrote no output");
	expect_line(text, "argc=2");
	snprintf(line, sizeof line, "arg0=%s", script);
	expect_line(text, line);
	expect_line(text, "arg1=primary");
	expect_line(text, "arg2=3");
	expect_line(text, "group=3");
	expect_line(text, "state=primary");
	expect_line(text, "node=fw-a");
	expect_line(text, "cluster=edge1");
	expect_line(text, "path=/usr/sbin:/usr/bin:/sbin:/bin");
	expect_line(text, "leak=none");
	expect_line(text, "fd=closed");
	expect_line(text, "stdin=eof");
	expect_line(text, "sigblk=0000000000000000");
	/* No signal ignored, except glibc's two internal ones (32, 33): its
	 * posix_spawn sets those to SIG_IGN in every child, which exec keeps;
	 * they matter to no program (glibc reinstalls its own handlers). */
	const char *ign = strstr(text, "sigign=");
	CHECK(ign != NULL, "no sigign line");
	unsigned long long ign_mask = strtoull(ign + 7, NULL, 16);
	CHECK((ign_mask & ~0x180000000ULL) == 0, "hook inherited ignored signals: %llx", ign_mask);
	snprintf(line, sizeof line, "pgid=%d", (int)pid);
	expect_line(text, line);
	snprintf(line, sizeof line, "pid=%d", (int)pid);
	expect_line(text, line);

	/* Errors. */
	int rc;
	CHECK((rc = hook_run("/nonexistent/tnl-hook", 1, "primary", "n", "c")) == TND_ENOENT,
	      "missing hook: %d", rc);
	CHECK((rc = hook_run("hook.sh", 1, "primary", "n", "c")) == TND_EINVAL,
	      "relative path: %d", rc);
	CHECK((rc = hook_run(script, 1, NULL, "n", "c")) == TND_EINVAL, "NULL state: %d", rc);
	char longname[200];
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	CHECK((rc = hook_run(script, 1, "primary", longname, "c")) == TND_EINVAL,
	      "overlong node name: %d", rc);
	CHECK(chmod(script, 0644) == 0, "chmod");
	rc = hook_run(script, 1, "primary", "n", "c");
	CHECK(rc == TND_ESYS && errno == EACCES, "non-executable hook: %d (%s)", rc,
	      strerror(errno));

	unlink(out);
	unlink(script);
	if (rmdir(dir) == 0)
		hook_dir_made = false;
	say("hooks: argv/env exact, stdin /dev/null, no fd/mask/ignore leak, own process group, "
	    "returned in %lld ms while the hook ran 1 s; errors clear", (long long)dt);
}

/* ---- modes -------------------------------------------------------------- */

static int mode_test(const char *iface, const char *if2, const char *peer2)
{
	struct nl *nl = nl_open();
	CHECK(nl != NULL, "nl_open: %s", strerror(errno));
	check_bad_input(nl, iface);
	check_dump(nl, iface, if2, peer2);
	check_vip_v4(nl, iface);
	check_vip_v6(nl, iface);
	check_link_events(nl, if2, peer2);
	check_overrun(nl, if2);
	check_malformed(nl);
	check_announce_errors(nl, iface, if2);
	struct nl_stats s;
	nl_get_stats(nl, &s);
	say("stats: malformed=%llu overruns=%llu resyncs=%llu stale=%llu",
	    (unsigned long long)s.malformed, (unsigned long long)s.overruns,
	    (unsigned long long)s.resyncs, (unsigned long long)s.stale);
	CHECK(s.stale == 0, "stale replies seen: %llu", (unsigned long long)s.stale);
	CHECK(s.malformed == 8, "malformed count %llu, expected the 8 crafted ones",
	      (unsigned long long)s.malformed);
	nl_close(nl);
	check_hooks();
	printf("nl_check: %d passed, 0 failed\n", n_passed);
	return 0;
}

static int mode_announce(const char *iface, const char *addr)
{
	struct nl *nl = nl_open();
	CHECK(nl != NULL, "nl_open: %s", strerror(errno));
	struct tnd_vip v = vip(addr, iface);
	int rc = nl_vip_add(nl, &v);
	CHECK(rc == 0, "add %s: %s (%s)", addr, tnd_strerror(rc), strerror(errno));
	CHECK(nl_vip_present(nl, &v) == 1, "%s not present", addr);
	rc = nl_vip_announce(nl, &v);
	CHECK(rc == 0, "announce %s: %s (%s)", addr, tnd_strerror(rc), strerror(errno));
	say("added and announced %s on %s", addr, iface);
	nl_close(nl);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 5 && !strcmp(argv[1], "test"))
		return mode_test(argv[2], argv[3], argv[4]);
	if (argc == 4 && !strcmp(argv[1], "announce"))
		return mode_announce(argv[2], argv[3]);
	fprintf(stderr, "usage: %s test IFACE IF2 PEER2\n"
			"       %s announce IFACE ADDR/PREFIX\n", argv[0], argv[0]);
	return 2;
}
