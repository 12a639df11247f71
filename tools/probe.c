/*
 * tools/probe.c - tandem-probe, the traffic probe of the lab tests and the
 * benchmarks.
 *
 * It proves that a failover keeps traffic flowing through a cluster's
 * virtual addresses, and measures how long it did not:
 *
 *   tandem-probe server --bind ADDR [--port 7000] [--duration-ms 3600000]
 *       UDP and TCP echo on ADDR:port (epoll, non-blocking, thousands of
 *       connections).
 *   tandem-probe client --target ADDR --duration-ms D [...]
 *       a UDP stream at a fixed rate (flow 0, whose gaps time the failover),
 *       optionally more UDP flows from their own source ports at a low rate
 *       each, N long-lived TCP connections that each exchange a small
 *       message every interval, optionally a new TCP connection every M ms;
 *       then one report (key=value lines or JSON); with --events FILE also
 *       a log of what happened when, as JSON lines stamped with the wall
 *       clock, so another program can lay it over its own timeline
 *       (`tandemctl upgrade report --probe-log FILE`); with --status-file
 *       FILE also its live counters, rewritten every 250 ms, for a
 *       dashboard (the HTTP API's GET /api/probe serves that file).
 *
 * Standalone on purpose: it links no project library, so a bug in Tandem
 * cannot hide itself from the tool that measures it. Time is CLOCK_MONOTONIC
 * for every measurement; CLOCK_REALTIME is read only to stamp the events
 * log, which is compared with other programs' logs. Every load is bounded by
 * the duration and every table by a named bound. TCP and UDP follow RFC 9293 and RFC 768 as implemented by the
 * kernel; the probe adds only its own 32-byte TCP frame and a UDP payload
 * carrying a sequence number and the send time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROBE_EXIT_OK 0
#define PROBE_EXIT_FAIL 1
#define PROBE_EXIT_USAGE 2

#define PROBE_NS_PER_MS 1000000LL
#define PROBE_NS_PER_S 1000000000LL
#define PROBE_PORT_DEFAULT 7000
#define PROBE_DURATION_MS_MAX 86400000LL /* one day: a probe is a test, not a service */
#define PROBE_SERVER_DURATION_MS_DEFAULT 3600000LL
#define PROBE_UDP_HZ_MAX 100000
#define PROBE_UDP_LEN_MIN 24   /* magic, pad, sequence, send time */
#define PROBE_UDP_LEN_MAX 1400 /* fits a 1500-byte MTU with room for tunnels */
#define PROBE_UDP_BURST_MAX 64 /* datagrams sent per wake-up when catching up */
#define PROBE_UDP_RX_BURST_MAX 256
#define PROBE_UDP_WINDOW 1048576u /* sequences remembered for duplicate detection */
#define PROBE_TCP_CONNS_MAX 100000
#define PROBE_FRAME_LEN 32
#define PROBE_LL_RING 32 /* unanswered frames per long-lived connection */
#define PROBE_NEW_SLOTS_MAX 4096
#define PROBE_GAPS_MAX 1000
#define PROBE_REASONS_MAX 16
#define PROBE_UNREACH_CHECK_MS 2000
#define PROBE_SURVIVE_ECHO_MS 2000
#define PROBE_READY_UDP_FRESH_MS 200
#define PROBE_CHECK_EVERY_MS 20
#define PROBE_EVENTS_MAX 256
#define PROBE_SERVER_NOFILE_WANT 262144
#define PROBE_SERVER_BUF_LEN 4096
#define PROBE_SERVER_BACKLOG 65535 /* the kernel caps it at somaxconn */
#define PROBE_ACCEPT_PAUSE_MS 100
#define PROBE_RT_PRIORITY 10
#define PROBE_UDP_FLOWS_MAX 4096 /* flow 0 included: one socket, so one descriptor, each */
#define PROBE_UDP_FLOW_HZ_DEFAULT 10
#define PROBE_FLOW_WINDOW 1024u	/* sequences per extra flow remembered for duplicate detection */
#define PROBE_FLOW_SEND_BURST_MAX 1024 /* extra-flow datagrams sent per wake-up when catching up */
#define PROBE_FLOW_RX_BURST_MAX 16     /* datagrams read from one flow's socket per wake-up */
#define PROBE_FLOW_ALIVE_MS 1000       /* an alive flow had an echo this close to the end of the load */
#define PROBE_EVENT_GAP_MS 5           /* --events: UDP gaps longer than this are logged */
#define PROBE_EVENT_LINE_MAX 512       /* one event line, summary excepted */
#define PROBE_EVENTS_FILE_BYTES_MAX (4u << 20) /* events past this are counted, not written */
#define PROBE_STATUS_EVERY_MS 250      /* --status-file: rewritten this often */

#define PROBE_MAGIC_UDP 0x54505544u /* "TPUD" */
#define PROBE_MAGIC_TCP 0x54505443u /* "TPTC" */

/* ------------------------------------------------------------------ common */

static int64_t probe_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * PROBE_NS_PER_S + ts.tv_nsec;
}

static double probe_ms(int64_t ns)
{
	return (double)ns / (double)PROBE_NS_PER_MS;
}

static int64_t probe_min(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static const char *probe_errname(int err)
{
	const char *n = strerrorname_np(err);

	return n ? n : "EUNKNOWN";
}

static int probe_parse_int(const char *opt, const char *s, long long min, long long max, long long *out)
{
	char *end = NULL;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0') {
		fprintf(stderr, "tandem-probe: %s: '%s' is not an integer\n", opt, s);
		return -1;
	}
	if (v < min || v > max) {
		fprintf(stderr, "tandem-probe: %s: %lld is out of range [%lld, %lld]\n", opt, v, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

static int probe_parse_ms_real(const char *opt, const char *s, double *out)
{
	char *end = NULL;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= 0.0) || v > (double)PROBE_DURATION_MS_MAX) {
		fprintf(stderr, "tandem-probe: %s: '%s' is not a number of ms in [0, %lld]\n", opt, s,
			PROBE_DURATION_MS_MAX);
		return -1;
	}
	*out = v;
	return 0;
}

/* A numeric IPv4 or IPv6 address: the probe never resolves names, so a test
 * cannot send traffic anywhere it did not spell out. */
static int probe_parse_addr(const char *opt, const char *s, uint16_t port, struct sockaddr_storage *ss,
			    socklen_t *len)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		*len = sizeof(*a4);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		*len = sizeof(*a6);
		return 0;
	}
	fprintf(stderr, "tandem-probe: %s: '%s' is not a numeric IPv4 or IPv6 address\n", opt, s);
	return -1;
}

static bool probe_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a, *y = (const struct sockaddr_in6 *)b;

		return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

/* Raise the open-file limit to at least `want` if we may (root may raise the
 * hard limit too); returns the soft limit in force afterwards. */
static uint64_t probe_raise_nofile(uint64_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		struct rlimit up = { .rlim_cur = want, .rlim_max = want };

		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max >= want)
			up.rlim_max = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &up) < 0) {
			rl.rlim_cur = rl.rlim_max;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
}

/* SIGINT and SIGTERM arrive as readable data on a signalfd, so the event
 * loop handles them between two events and never in the middle of one. */
static int probe_signalfd(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* Real-time priority (SCHED_FIFO) when allowed: on a small, busy machine a
 * probe at normal priority measures the scheduler (gaps of 10-25 ms behind a
 * CPU-bound neighbour), not the network. Every loop of the probe sleeps in
 * epoll and is bounded, and the kernel's RT throttling bounds the rest. */
static bool probe_realtime(bool want)
{
	struct sched_param sp = { .sched_priority = PROBE_RT_PRIORITY };

	return want && sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
}

/* The ready file appears whole or not at all: tests poll for it. */
static int probe_write_ready(const char *path, const char *text)
{
	char tmp[4096];
	FILE *f;
	int n;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -1;
	f = fopen(tmp, "w");
	if (!f)
		return -1;
	fputs(text, f);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int probe_epoll_add(int ep, int fd, uint32_t events, uint64_t key)
{
	struct epoll_event e = { .events = events, .data.u64 = key };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
}

/* ------------------------------------------------------------------ server */

struct probe_srv_conn {
	int fd;
	uint32_t len; /* bytes in buf still to echo */
	uint32_t off; /* of which already sent */
	struct probe_srv_conn *prev, *next;
	uint8_t buf[PROBE_SERVER_BUF_LEN];
};

struct probe_srv {
	int ep, udp_fd, tcp_fd, sig_fd, spare_fd;
	int64_t accept_resume_ns; /* non-zero: accepting paused until then */
	struct probe_srv_conn *conns;
	uint64_t udp_echoed, udp_errors;
	uint64_t tcp_accepted, tcp_open, tcp_open_max, tcp_bytes, tcp_errors, tcp_resets, accept_errors;
};

/* Epoll keys of the server's fixed descriptors; connections use pointers,
 * which are never this small. */
#define PROBE_SRV_KEY_UDP 1u
#define PROBE_SRV_KEY_TCP 2u
#define PROBE_SRV_KEY_SIG 3u

static void probe_srv_usage(FILE *f)
{
	fprintf(f, "usage: tandem-probe server --bind ADDR [--port %d] [--duration-ms %lld] [--ready-file PATH]\n"
		   "                           [--no-realtime]\n"
		   "  UDP and TCP echo on ADDR:port until SIGTERM/SIGINT or the duration ends.\n",
		PROBE_PORT_DEFAULT, PROBE_SERVER_DURATION_MS_DEFAULT);
}

static void probe_srv_close(struct probe_srv *s, struct probe_srv_conn *c)
{
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
	s->tcp_open--;
}

static void probe_srv_conn_error(struct probe_srv *s, struct probe_srv_conn *c, int err)
{
	if (err == ECONNRESET || err == EPIPE)
		s->tcp_resets++;
	else
		s->tcp_errors++;
	probe_srv_close(s, c);
}

static int probe_srv_set_events(struct probe_srv *s, struct probe_srv_conn *c, uint32_t events)
{
	struct epoll_event e = { .events = events, .data.ptr = c };

	return epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* Echo back what is pending; returns 1 when all was sent, 0 when the socket
 * is full (the caller waits for EPOLLOUT), -1 when the connection is gone. */
static int probe_srv_flush(struct probe_srv *s, struct probe_srv_conn *c)
{
	while (c->off < c->len) {
		ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			c->off += (uint32_t)n;
			s->tcp_bytes += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		probe_srv_conn_error(s, c, n < 0 ? errno : EIO);
		return -1;
	}
	c->off = c->len = 0;
	return 1;
}

static void probe_srv_conn_io(struct probe_srv *s, struct probe_srv_conn *c, uint32_t events)
{
	int round;

	if (c->len > 0) {
		/* Back-pressure: while an echo is pending we read nothing more. */
		int r = probe_srv_flush(s, c);

		if (r < 0)
			return;
		if (r == 0) {
			if (events & (EPOLLERR | EPOLLHUP)) {
				int err = 0;
				socklen_t el = sizeof(err);

				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
				probe_srv_conn_error(s, c, err ? err : EIO);
			}
			return;
		}
		if (probe_srv_set_events(s, c, EPOLLIN) < 0) {
			probe_srv_conn_error(s, c, errno);
			return;
		}
	}
	for (round = 0; round < 16; round++) {
		ssize_t n = recv(c->fd, c->buf, sizeof(c->buf), MSG_DONTWAIT);
		int r;

		if (n == 0) {
			probe_srv_close(s, c);
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			probe_srv_conn_error(s, c, errno);
			return;
		}
		c->len = (uint32_t)n;
		c->off = 0;
		r = probe_srv_flush(s, c);
		if (r < 0)
			return;
		if (r == 0) {
			if (probe_srv_set_events(s, c, EPOLLOUT) < 0)
				probe_srv_conn_error(s, c, errno);
			return;
		}
	}
}

/* A listener that cannot accept stays readable: stop watching it for a
 * while instead of spinning on it (at real-time priority, above all). */
static void probe_srv_pause_accept(struct probe_srv *s)
{
	struct epoll_event e = { .events = 0, .data.u64 = PROBE_SRV_KEY_TCP };

	if (epoll_ctl(s->ep, EPOLL_CTL_MOD, s->tcp_fd, &e) == 0)
		s->accept_resume_ns = probe_now_ns() + PROBE_ACCEPT_PAUSE_MS * PROBE_NS_PER_MS;
}

static void probe_srv_resume_accept(struct probe_srv *s)
{
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = PROBE_SRV_KEY_TCP };

	if (epoll_ctl(s->ep, EPOLL_CTL_MOD, s->tcp_fd, &e) == 0)
		s->accept_resume_ns = 0;
}

static void probe_srv_accept(struct probe_srv *s)
{
	int round;

	for (round = 0; round < 256; round++) {
		int one = 1;
		struct probe_srv_conn *c;
		int fd = accept4(s->tcp_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			s->accept_errors++;
			if ((errno == EMFILE || errno == ENFILE) && s->spare_fd >= 0) {
				/* Out of descriptors: accept and close one connection
				 * with the spare, so the listener does not spin on a
				 * backlog it can never drain. */
				close(s->spare_fd);
				fd = accept4(s->tcp_fd, NULL, NULL, SOCK_CLOEXEC);
				if (fd >= 0)
					close(fd);
				s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
				continue;
			}
			probe_srv_pause_accept(s);
			return;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			s->accept_errors++;
			continue;
		}
		c->fd = fd;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (probe_epoll_add(s->ep, fd, EPOLLIN, (uint64_t)(uintptr_t)c) < 0) {
			close(fd);
			free(c);
			s->accept_errors++;
			continue;
		}
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		s->tcp_accepted++;
		s->tcp_open++;
		if (s->tcp_open > s->tcp_open_max)
			s->tcp_open_max = s->tcp_open;
	}
}

static void probe_srv_udp(struct probe_srv *s)
{
	uint8_t buf[65536];
	int round;

	/* Bounded per wake-up so the TCP side is served even under a flood. */
	for (round = 0; round < PROBE_UDP_RX_BURST_MAX; round++) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(s->udp_fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno != EINTR)
				s->udp_errors++;
			continue;
		}
		if (sendto(s->udp_fd, buf, (size_t)n, MSG_DONTWAIT, (struct sockaddr *)&from, fl) == n)
			s->udp_echoed++;
		else
			s->udp_errors++;
	}
}

static int probe_srv_sockets(struct probe_srv *s, const struct sockaddr_storage *addr, socklen_t alen)
{
	int one = 1;
	int fam = addr->ss_family;
	int lvl = fam == AF_INET ? IPPROTO_IP : IPPROTO_IPV6;
	int opt = fam == AF_INET ? IP_FREEBIND : IPV6_FREEBIND;

	s->udp_fd = socket(fam, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	s->tcp_fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->udp_fd < 0 || s->tcp_fd < 0) {
		fprintf(stderr, "tandem-probe server: socket: %s\n", strerror(errno));
		return -1;
	}
	/* FREEBIND: the address may be a virtual address that is not (yet)
	 * on this node; the server must still be able to wait for it. */
	setsockopt(s->udp_fd, lvl, opt, &one, sizeof(one));
	setsockopt(s->tcp_fd, lvl, opt, &one, sizeof(one));
	setsockopt(s->tcp_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->udp_fd, (const struct sockaddr *)addr, alen) < 0) {
		fprintf(stderr, "tandem-probe server: bind udp: %s\n", strerror(errno));
		return -1;
	}
	if (bind(s->tcp_fd, (const struct sockaddr *)addr, alen) < 0 || listen(s->tcp_fd, PROBE_SERVER_BACKLOG) < 0) {
		fprintf(stderr, "tandem-probe server: bind/listen tcp: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static int probe_server(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bind", required_argument, NULL, 'b' },
		{ "port", required_argument, NULL, 'p' },
		{ "duration-ms", required_argument, NULL, 'd' },
		{ "ready-file", required_argument, NULL, 'r' },
		{ "no-realtime", no_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *bind_s = NULL, *ready_file = NULL;
	bool realtime = true;
	long long port = PROBE_PORT_DEFAULT, duration_ms = PROBE_SERVER_DURATION_MS_DEFAULT, v;
	struct sockaddr_storage addr;
	socklen_t alen;
	struct probe_srv s = { .ep = -1, .udp_fd = -1, .tcp_fd = -1, .sig_fd = -1, .spare_fd = -1 };
	struct epoll_event evs[PROBE_EVENTS_MAX];
	int64_t start, deadline;
	uint64_t nofile;
	bool stop = false;
	int c, rc = PROBE_EXIT_FAIL;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			bind_s = optarg;
			break;
		case 'p':
			if (probe_parse_int("--port", optarg, 1, 65535, &port) < 0)
				return PROBE_EXIT_USAGE;
			break;
		case 'd':
			if (probe_parse_int("--duration-ms", optarg, 1, PROBE_DURATION_MS_MAX, &v) < 0)
				return PROBE_EXIT_USAGE;
			duration_ms = v;
			break;
		case 'r':
			ready_file = optarg;
			break;
		case 'R':
			realtime = false;
			break;
		case 'h':
			probe_srv_usage(stdout);
			return PROBE_EXIT_OK;
		default:
			probe_srv_usage(stderr);
			return PROBE_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "tandem-probe server: unexpected argument '%s'\n", argv[optind]);
		probe_srv_usage(stderr);
		return PROBE_EXIT_USAGE;
	}
	if (!bind_s) {
		fprintf(stderr, "tandem-probe server: --bind is required\n");
		probe_srv_usage(stderr);
		return PROBE_EXIT_USAGE;
	}
	if (probe_parse_addr("--bind", bind_s, (uint16_t)port, &addr, &alen) < 0)
		return PROBE_EXIT_USAGE;

	nofile = probe_raise_nofile(PROBE_SERVER_NOFILE_WANT);
	s.sig_fd = probe_signalfd();
	s.ep = epoll_create1(EPOLL_CLOEXEC);
	s.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (s.sig_fd < 0 || s.ep < 0) {
		fprintf(stderr, "tandem-probe server: setup: %s\n", strerror(errno));
		goto out;
	}
	if (probe_srv_sockets(&s, &addr, alen) < 0)
		goto out;
	if (probe_epoll_add(s.ep, s.udp_fd, EPOLLIN, PROBE_SRV_KEY_UDP) < 0 ||
	    probe_epoll_add(s.ep, s.tcp_fd, EPOLLIN, PROBE_SRV_KEY_TCP) < 0 ||
	    probe_epoll_add(s.ep, s.sig_fd, EPOLLIN, PROBE_SRV_KEY_SIG) < 0) {
		fprintf(stderr, "tandem-probe server: epoll: %s\n", strerror(errno));
		goto out;
	}
	realtime = probe_realtime(realtime);
	fprintf(stderr,
		"tandem-probe server: echo on %s port %lld (udp+tcp) for %lld ms, nofile %" PRIu64 ", realtime %s\n",
		bind_s, port, duration_ms, nofile, realtime ? "yes" : "no");
	if (ready_file && probe_write_ready(ready_file, "listening\n") < 0) {
		fprintf(stderr, "tandem-probe server: cannot write %s: %s\n", ready_file, strerror(errno));
		goto out;
	}

	start = probe_now_ns();
	deadline = start + duration_ms * PROBE_NS_PER_MS;
	while (!stop) {
		int64_t now = probe_now_ns(), left = deadline - now;
		int n, i;

		if (left <= 0)
			break;
		if (s.accept_resume_ns != 0) {
			if (now >= s.accept_resume_ns)
				probe_srv_resume_accept(&s);
			else if (s.accept_resume_ns - now < left)
				left = s.accept_resume_ns - now;
		}
		n = epoll_wait(s.ep, evs, PROBE_EVENTS_MAX, (int)((left + PROBE_NS_PER_MS - 1) / PROBE_NS_PER_MS));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "tandem-probe server: epoll_wait: %s\n", strerror(errno));
			goto out;
		}
		for (i = 0; i < n; i++) {
			uint64_t key = evs[i].data.u64;

			if (key == PROBE_SRV_KEY_UDP) {
				probe_srv_udp(&s);
			} else if (key == PROBE_SRV_KEY_TCP) {
				probe_srv_accept(&s);
			} else if (key == PROBE_SRV_KEY_SIG) {
				struct signalfd_siginfo si;

				if (read(s.sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
					stop = true;
			} else {
				probe_srv_conn_io(&s, evs[i].data.ptr, evs[i].events);
			}
		}
	}
	printf("server udp_echoed=%" PRIu64 " udp_errors=%" PRIu64 " tcp_accepted=%" PRIu64
	       " tcp_open=%" PRIu64 " tcp_open_max=%" PRIu64 " tcp_bytes=%" PRIu64 " tcp_resets=%" PRIu64
	       " tcp_errors=%" PRIu64 " accept_errors=%" PRIu64 " elapsed_ms=%.1f\n",
	       s.udp_echoed, s.udp_errors, s.tcp_accepted, s.tcp_open, s.tcp_open_max, s.tcp_bytes, s.tcp_resets,
	       s.tcp_errors, s.accept_errors, probe_ms(probe_now_ns() - start));
	fflush(stdout);
	rc = PROBE_EXIT_OK;
out:
	while (s.conns) {
		struct probe_srv_conn *next = s.conns->next;

		close(s.conns->fd);
		free(s.conns);
		s.conns = next;
	}
	if (s.udp_fd >= 0)
		close(s.udp_fd);
	if (s.tcp_fd >= 0)
		close(s.tcp_fd);
	if (s.sig_fd >= 0)
		close(s.sig_fd);
	if (s.spare_fd >= 0)
		close(s.spare_fd);
	if (s.ep >= 0)
		close(s.ep);
	return rc;
}

/* ------------------------------------------------------------------ client */

/* A long-lived connection moves only forward through these states. */
enum probe_ll_state {
	PROBE_LL_CONNECTING,
	PROBE_LL_OPEN,
	PROBE_LL_PEER_CLOSED, /* FIN seen: we keep writing, so a peer that is gone answers with a reset */
	PROBE_LL_RESET,
	PROBE_LL_FAILED,
};

struct probe_ll {
	int fd;
	uint32_t id;
	enum probe_ll_state state;
	uint32_t ev; /* epoll interest in force */
	bool established;
	bool echoed; /* at least one echo came back */
	bool lost_logged; /* its conn_lost event is in the events log */
	int64_t start_ns;
	int64_t last_echo_ns;
	uint64_t write_seq; /* frames queued */
	uint64_t echo_seq;  /* frames echoed back */
	uint32_t out_off, out_len, in_len;
	const char *why;
	int64_t sent_ns[PROBE_LL_RING];
	uint8_t out[PROBE_LL_RING * PROBE_FRAME_LEN];
	uint8_t in[PROBE_FRAME_LEN];
};

enum probe_new_state { PROBE_NEW_FREE, PROBE_NEW_CONNECTING, PROBE_NEW_WAIT_ECHO };

struct probe_new {
	int fd;
	uint32_t gen; /* changes on every reuse: stale epoll events are ignored */
	enum probe_new_state state;
	int64_t start_ns, sent_ns;
	uint64_t seq;
	uint32_t in_len;
	uint8_t in[PROBE_FRAME_LEN];
};

struct probe_gap {
	int64_t start_ns; /* from the client's start */
	int64_t len_ns;
};

struct probe_reason {
	const char *what;
	uint64_t count;
};

/* One of the extra UDP flows (1..N-1): its own socket, so its own source
 * port and its own conntrack entry, sending at --udp-flow-hz. Its payload
 * carries its flow number where flow 0 has zero, so an echo that comes back
 * to the wrong socket is caught. */
struct probe_flow {
	int fd;
	uint64_t sent, received, max_seq;
	int64_t last_rx, max_gap, max_gap_start; /* max_gap: between two echoes */
	uint64_t seen[PROBE_FLOW_WINDOW / 64];	 /* bit per sequence, modulo the window */
};

struct probe_client_opts {
	const char *target_s, *bind_s, *ready_file, *events_file, *status_file;
	long long port, duration_ms, udp_hz, udp_len, tcp, tcp_interval_ms, tcp_timeout_ms;
	long long connect_timeout_ms, new_every_ms, new_timeout_ms, drain_ms, udp_flows, udp_flow_hz;
	double gaps_over_ms; /* < 0: not asked */
	bool json, realtime;
};

struct probe_client {
	struct probe_client_opts o;
	struct sockaddr_storage target, bind;
	socklen_t target_len, bind_len;
	int ep, udp_fd, sig_fd;
	int64_t t0, end_ns, drain_end_ns, hard_end_ns, next_check_ns, ready_ns;
	bool loading, interrupted, unreach_checked, realtime;

	/* --events: the log, lines written and left out past the bound */
	FILE *ev;
	uint64_t ev_bytes, ev_lines, ev_dropped, ev_errors;
	bool ev_dirty;

	/* --status-file: the next rewrite, failures (reported once) */
	int64_t status_next_ns;
	uint64_t status_errors;

	/* UDP stream */
	uint64_t udp_total, udp_sent, udp_send_errors, udp_received, udp_dup, udp_late, udp_bad;
	uint64_t udp_foreign, udp_rx_errors, udp_reordered, udp_max_seq;
	int64_t udp_first_rx, udp_last_rx, udp_max_gap, udp_max_gap_start, udp_rtt_sum, udp_rtt_max;
	int64_t udp_ready_max_gap, udp_ready_max_gap_start; /* gaps that began once ready */
	int64_t udp_last_gap; /* the latest gap over the gap threshold (probe_gap_threshold_ms) */
	uint8_t *udp_seen; /* bit per sequence, modulo PROBE_UDP_WINDOW */
	struct probe_gap *gaps;
	size_t gaps_n;
	uint64_t gaps_dropped;

	/* extra UDP flows 1..N-1, in fl[0..fl_n-1]; flow 0 is the stream above */
	struct probe_flow *fl;
	uint32_t fl_n, fl_echoed, fl_cur_i;
	uint64_t fl_cur_k; /* send schedule cursor: round k, flow fl_cur_i */
	uint64_t fl_sent, fl_received, fl_send_errors, fl_dup, fl_late, fl_bad, fl_rx_errors;

	/* long-lived TCP */
	struct probe_ll *ll;
	uint32_t ll_n, ll_established, ll_echoed, ll_cur_i;
	uint64_t ll_cur_k; /* write schedule cursor: round k, connection i */
	uint64_t tcp_echoes, tcp_write_skipped, tcp_resets, tcp_connect_failed;
	int64_t tcp_rtt_max;
	struct probe_reason ll_why[PROBE_REASONS_MAX];

	/* new connections */
	struct probe_new *nw;
	uint32_t nw_slots, nw_pending;
	uint32_t *nw_free;
	uint32_t nw_free_n;
	uint64_t new_total, new_attempted, new_ok, new_refused, new_resets, new_timeouts, new_other;
	int64_t new_rtt_max;
	struct probe_reason new_why[PROBE_REASONS_MAX];
};

#define PROBE_EV_UDP 1ull
#define PROBE_EV_SIG 2ull
#define PROBE_EV_LL 3ull
#define PROBE_EV_NEW 4ull
#define PROBE_EV_FLOW 5ull

static uint64_t probe_key(uint64_t type, uint32_t gen, uint32_t idx)
{
	return type << 60 | (uint64_t)(gen & 0x0fffffffu) << 32 | idx;
}

static int64_t probe_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / PROBE_NS_PER_MS;
}

/* The wall-clock time of a past monotonic instant `then`: the wall clock
 * now, less the monotonic time elapsed since. */
static int64_t probe_wall_at(int64_t then, int64_t now)
{
	return probe_wall_ms() - (now - then) / PROBE_NS_PER_MS;
}

/* One line of the events log, {"t_ms":T,"kind":"K"<extra>}, where `fmt`
 * makes the extra keys (empty, or starting with a comma; only numbers,
 * booleans and errno or reason names, which need no escaping). Lines past
 * PROBE_EVENTS_FILE_BYTES_MAX are counted, not written: the log of a long
 * outage stays bounded and its summary says what was left out. */
__attribute__((format(printf, 4, 5))) static void probe_event(struct probe_client *c, int64_t t_ms,
							       const char *kind, const char *fmt, ...)
{
	char line[PROBE_EVENT_LINE_MAX], extra[PROBE_EVENT_LINE_MAX];
	va_list ap;
	int n = 0;

	if (!c->ev)
		return;
	extra[0] = '\0';
	if (fmt) {
		va_start(ap, fmt);
		n = vsnprintf(extra, sizeof(extra), fmt, ap);
		va_end(ap);
	}
	if (n >= 0 && (size_t)n < sizeof(extra))
		n = snprintf(line, sizeof(line), "{\"t_ms\":%" PRId64 ",\"kind\":\"%s\"%s}\n", t_ms, kind, extra);
	/* A truncated line would not be JSON: left out and counted. */
	if (n < 0 || (size_t)n >= sizeof(line) || c->ev_bytes + (uint64_t)n > PROBE_EVENTS_FILE_BYTES_MAX) {
		c->ev_dropped++;
		return;
	}
	if (fwrite(line, 1, (size_t)n, c->ev) != (size_t)n) {
		c->ev_errors++;
		return;
	}
	c->ev_bytes += (uint64_t)n;
	c->ev_lines++;
	c->ev_dirty = true;
}

/* A long-lived connection is lost (once per connection in the log). */
static void probe_event_lost(struct probe_client *c, struct probe_ll *l, int64_t t_ms, const char *why)
{
	if (l->lost_logged)
		return;
	l->lost_logged = true;
	probe_event(c, t_ms, "conn_lost", ",\"id\":%u,\"why\":\"%s\",\"established\":%s", l->id, why,
		    l->established ? "true" : "false");
}

static void probe_reason_add(struct probe_reason *t, const char *what)
{
	int i;

	for (i = 0; i < PROBE_REASONS_MAX && t[i].what; i++) {
		if (strcmp(t[i].what, what) == 0) {
			t[i].count++;
			return;
		}
	}
	if (i < PROBE_REASONS_MAX) {
		t[i].what = what;
		t[i].count = 1;
	} else {
		t[PROBE_REASONS_MAX - 1].count++; /* the last slot absorbs the rest */
	}
}

/* The 32-byte TCP frame: magic, connection id, sequence, send time and a
 * check word, so that an echo from the wrong connection or a corrupted or
 * reordered stream is caught, not counted. */
static uint64_t probe_frame_check(uint32_t id, uint64_t seq, int64_t sent)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ id;

	h ^= seq * 0xbf58476d1ce4e5b9ull;
	h ^= (uint64_t)sent * 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

static void probe_frame_put(uint8_t *p, uint32_t id, uint64_t seq, int64_t sent)
{
	uint32_t magic = PROBE_MAGIC_TCP;
	uint64_t check = probe_frame_check(id, seq, sent);

	memcpy(p, &magic, 4);
	memcpy(p + 4, &id, 4);
	memcpy(p + 8, &seq, 8);
	memcpy(p + 16, &sent, 8);
	memcpy(p + 24, &check, 8);
}

static bool probe_frame_is(const uint8_t *p, uint32_t id, uint64_t seq, int64_t sent)
{
	uint8_t want[PROBE_FRAME_LEN];

	probe_frame_put(want, id, seq, sent);
	return memcmp(p, want, PROBE_FRAME_LEN) == 0;
}

static int probe_tcp_connect(struct probe_client *c, int *err)
{
	int one = 1;
	int fd = socket(c->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		*err = errno;
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (c->o.bind_s) {
		/* Pick the port at connect time, so thousands of connections
		 * to one target do not exhaust the ports at bind time. */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&c->bind, c->bind_len) < 0) {
			*err = errno;
			close(fd);
			return -1;
		}
	}
	if (connect(fd, (struct sockaddr *)&c->target, c->target_len) < 0 && errno != EINPROGRESS) {
		*err = errno;
		close(fd);
		return -1;
	}
	return fd;
}

static int probe_sock_error(int fd)
{
	int err = 0;
	socklen_t el = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
		return errno;
	return err;
}

/* Bind a UDP socket to the wildcard address and a port of the kernel's
 * choosing: the flow's source port is then fixed before it sends. */
static int probe_bind_any(int fd, int family)
{
	struct sockaddr_storage ss;
	socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)family;
	return bind(fd, (struct sockaddr *)&ss, len);
}

/* ---- long-lived connections */

static void probe_ll_set_ev(struct probe_client *c, struct probe_ll *l, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.u64 = probe_key(PROBE_EV_LL, 0, l->id) };

	if (l->fd < 0 || l->ev == ev)
		return;
	if (epoll_ctl(c->ep, EPOLL_CTL_MOD, l->fd, &e) == 0)
		l->ev = ev;
}

/* End a long-lived connection: a reset (ECONNRESET/EPIPE) or a failure with
 * an errno name or a fixed reason. */
static void probe_ll_end(struct probe_client *c, struct probe_ll *l, int err, const char *why)
{
	int64_t wall = c->ev ? probe_wall_ms() : 0;

	if (l->state == PROBE_LL_CONNECTING)
		c->tcp_connect_failed++;
	if (err == ECONNRESET || err == EPIPE) {
		l->state = PROBE_LL_RESET;
		c->tcp_resets++;
		probe_event(c, wall, "reset", ",\"conn\":\"long\",\"id\":%u", l->id);
	} else {
		l->state = PROBE_LL_FAILED;
	}
	l->why = why ? why : probe_errname(err);
	probe_event_lost(c, l, wall, l->why);
	if (l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
	}
}

static void probe_ll_flush(struct probe_client *c, struct probe_ll *l)
{
	while (l->out_off < l->out_len) {
		ssize_t n = send(l->fd, l->out + l->out_off, l->out_len - l->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			l->out_off += (uint32_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			probe_ll_set_ev(c, l, l->ev | EPOLLOUT);
			return;
		}
		probe_ll_end(c, l, n < 0 ? errno : EIO, NULL);
		return;
	}
	l->out_off = l->out_len = 0;
	probe_ll_set_ev(c, l, l->ev & ~(uint32_t)EPOLLOUT);
}

static void probe_ll_write(struct probe_client *c, struct probe_ll *l, int64_t now)
{
	if (l->state != PROBE_LL_OPEN && l->state != PROBE_LL_PEER_CLOSED)
		return;
	if (l->write_seq - l->echo_seq >= PROBE_LL_RING) {
		/* Too many unanswered frames: skip this beat rather than
		 * queue without bound; the echo timeout judges the stall. */
		c->tcp_write_skipped++;
		return;
	}
	if (l->out_off > 0) {
		memmove(l->out, l->out + l->out_off, l->out_len - l->out_off);
		l->out_len -= l->out_off;
		l->out_off = 0;
	}
	/* Unsent bytes belong to unanswered frames, fewer than the ring. */
	probe_frame_put(l->out + l->out_len, l->id, l->write_seq, now);
	l->out_len += PROBE_FRAME_LEN;
	l->sent_ns[l->write_seq % PROBE_LL_RING] = now;
	l->write_seq++;
	probe_ll_flush(c, l);
}

static int probe_ll_consume(struct probe_client *c, struct probe_ll *l, const uint8_t *p, size_t n, int64_t now)
{
	while (n > 0) {
		size_t take = PROBE_FRAME_LEN - l->in_len;
		int64_t sent;

		if (take > n)
			take = n;
		memcpy(l->in + l->in_len, p, take);
		l->in_len += (uint32_t)take;
		p += take;
		n -= take;
		if (l->in_len < PROBE_FRAME_LEN)
			break;
		l->in_len = 0;
		sent = l->sent_ns[l->echo_seq % PROBE_LL_RING];
		if (l->echo_seq >= l->write_seq || !probe_frame_is(l->in, l->id, l->echo_seq, sent)) {
			probe_ll_end(c, l, 0, "bad_echo");
			return -1;
		}
		l->echo_seq++;
		l->last_echo_ns = now;
		c->tcp_echoes++;
		if (now - sent > c->tcp_rtt_max)
			c->tcp_rtt_max = now - sent;
		if (!l->echoed) {
			l->echoed = true;
			c->ll_echoed++;
		}
	}
	return 0;
}

static void probe_ll_read(struct probe_client *c, struct probe_ll *l)
{
	uint8_t buf[4096];
	int round;

	for (round = 0; round < 8; round++) {
		ssize_t n = recv(l->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0) {
			if (probe_ll_consume(c, l, buf, (size_t)n, probe_now_ns()) < 0)
				return;
			continue;
		}
		if (n == 0) {
			/* Stop reading (EOF stays readable forever) but keep the
			 * socket: the next write tells a half-closed peer from a
			 * vanished one, which answers with a reset. */
			l->state = PROBE_LL_PEER_CLOSED;
			probe_event_lost(c, l, c->ev ? probe_wall_ms() : 0, "peer_closed");
			probe_ll_set_ev(c, l, l->ev & ~(uint32_t)EPOLLIN);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		probe_ll_end(c, l, errno, NULL);
		return;
	}
}

static void probe_ll_event(struct probe_client *c, uint32_t idx, uint32_t events, int64_t now)
{
	struct probe_ll *l;

	if (idx >= c->ll_n)
		return;
	l = &c->ll[idx];
	if (l->fd < 0)
		return;
	if (l->state == PROBE_LL_CONNECTING) {
		int err = probe_sock_error(l->fd);

		if (err == 0 && !(events & EPOLLOUT))
			err = ECONNABORTED;
		if (err != 0) {
			probe_ll_end(c, l, err, NULL);
			return;
		}
		l->state = PROBE_LL_OPEN;
		l->established = true;
		c->ll_established++;
		probe_ll_set_ev(c, l, EPOLLIN);
		probe_ll_write(c, l, now); /* the first frame goes at once; the rest on the staggered beat */
		return;
	}
	if (l->state == PROBE_LL_OPEN && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		probe_ll_read(c, l);
	if (l->fd >= 0 && (events & (EPOLLERR | EPOLLHUP))) {
		int err = probe_sock_error(l->fd);

		probe_ll_end(c, l, err, err ? NULL : "peer_closed");
		return;
	}
	if (l->fd >= 0 && (events & EPOLLOUT))
		probe_ll_flush(c, l);
}

/* Writes are spread evenly over the interval: connection i writes at
 * t0 + k*interval + i*interval/N, so N connections never beat in step.
 * One cursor walks that schedule in time order. */
static int64_t probe_ll_due(const struct probe_client *c)
{
	int64_t iv = c->o.tcp_interval_ms * PROBE_NS_PER_MS;

	return c->t0 + (int64_t)c->ll_cur_k * iv + (int64_t)((__int128)iv * c->ll_cur_i / c->ll_n);
}

static void probe_ll_write_due(struct probe_client *c, int64_t now)
{
	while (c->ll_n > 0 && probe_ll_due(c) <= now && probe_ll_due(c) < c->end_ns) {
		probe_ll_write(c, &c->ll[c->ll_cur_i], now);
		if (++c->ll_cur_i == c->ll_n) {
			c->ll_cur_i = 0;
			c->ll_cur_k++;
		}
	}
}

/* ---- new connections */

static void probe_new_end(struct probe_client *c, struct probe_new *nw, int err, const char *why, int64_t now)
{
	if (!why && err == 0) {
		c->new_ok++;
		if (now - nw->sent_ns > c->new_rtt_max)
			c->new_rtt_max = now - nw->sent_ns;
	} else {
		if (err == ECONNREFUSED) {
			c->new_refused++;
		} else if (err == ECONNRESET || err == EPIPE) {
			c->new_resets++;
			c->tcp_resets++;
			probe_event(c, c->ev ? probe_wall_ms() : 0, "reset", ",\"conn\":\"new\",\"seq\":%" PRIu64,
				    nw->seq);
		} else if (err == ETIMEDOUT || (why && strcmp(why, "timeout") == 0)) {
			c->new_timeouts++;
		} else {
			c->new_other++;
		}
		probe_reason_add(c->new_why, why ? why : probe_errname(err));
		/* Stamped when it was given up on (a timeout: seconds after
		 * the attempt), with the attempt's own time beside. */
		if (c->ev)
			probe_event(c, probe_wall_ms(), "new_fail", ",\"seq\":%" PRIu64 ",\"why\":\"%s\",\"attempt_t_ms\":%" PRId64,
				    nw->seq, why ? why : probe_errname(err), probe_wall_at(nw->start_ns, now));
	}
	if (nw->fd >= 0)
		close(nw->fd);
	nw->fd = -1;
	nw->state = PROBE_NEW_FREE;
	nw->gen++;
	c->nw_free[c->nw_free_n++] = (uint32_t)(nw - c->nw);
	c->nw_pending--;
}

static void probe_new_start(struct probe_client *c, int64_t now)
{
	struct probe_new *nw;
	uint32_t idx;
	int err = 0;

	c->new_attempted++;
	if (c->nw_free_n == 0) {
		/* Cannot happen with the slot count derived from the timeout;
		 * counted rather than queued if it ever does. */
		c->new_other++;
		probe_reason_add(c->new_why, "no_slot");
		probe_event(c, c->ev ? probe_wall_ms() : 0, "new_fail", ",\"seq\":%" PRIu64 ",\"why\":\"no_slot\"",
			    c->new_attempted);
		return;
	}
	idx = c->nw_free[--c->nw_free_n];
	nw = &c->nw[idx];
	c->nw_pending++;
	nw->state = PROBE_NEW_CONNECTING;
	nw->start_ns = now;
	nw->sent_ns = now;
	nw->seq = c->new_attempted;
	nw->in_len = 0;
	nw->fd = probe_tcp_connect(c, &err);
	if (nw->fd < 0) {
		probe_new_end(c, nw, err, NULL, now);
		return;
	}
	if (probe_epoll_add(c->ep, nw->fd, EPOLLOUT, probe_key(PROBE_EV_NEW, nw->gen, idx)) < 0)
		probe_new_end(c, nw, errno, NULL, now);
}

static void probe_new_event(struct probe_client *c, uint32_t gen, uint32_t idx, uint32_t events, int64_t now)
{
	struct probe_new *nw;
	uint32_t id;

	if (idx >= c->nw_slots)
		return;
	nw = &c->nw[idx];
	if (nw->state == PROBE_NEW_FREE || (nw->gen & 0x0fffffffu) != gen)
		return;
	id = 0x80000000u | (uint32_t)(nw->seq & 0x7fffffffu);
	if (nw->state == PROBE_NEW_CONNECTING) {
		uint8_t frame[PROBE_FRAME_LEN];
		struct epoll_event e = { .events = EPOLLIN, .data.u64 = probe_key(PROBE_EV_NEW, nw->gen, idx) };
		int err = probe_sock_error(nw->fd);
		ssize_t n;

		if (err == 0 && !(events & EPOLLOUT))
			err = ECONNABORTED;
		if (err != 0) {
			probe_new_end(c, nw, err, NULL, now);
			return;
		}
		nw->sent_ns = now;
		probe_frame_put(frame, id, nw->seq, now);
		n = send(nw->fd, frame, sizeof(frame), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n != (ssize_t)sizeof(frame)) {
			/* A fresh socket has room for 32 bytes; anything else is
			 * an error worth reporting as such. */
			probe_new_end(c, nw, n < 0 ? errno : 0, n < 0 ? NULL : "short_write", now);
			return;
		}
		if (epoll_ctl(c->ep, EPOLL_CTL_MOD, nw->fd, &e) < 0) {
			probe_new_end(c, nw, errno, NULL, now);
			return;
		}
		nw->state = PROBE_NEW_WAIT_ECHO;
		return;
	}
	for (;;) {
		ssize_t n = recv(nw->fd, nw->in + nw->in_len, PROBE_FRAME_LEN - nw->in_len, MSG_DONTWAIT);

		if (n > 0) {
			nw->in_len += (uint32_t)n;
			if (nw->in_len < PROBE_FRAME_LEN)
				continue;
			if (probe_frame_is(nw->in, id, nw->seq, nw->sent_ns))
				probe_new_end(c, nw, 0, NULL, now);
			else
				probe_new_end(c, nw, 0, "bad_echo", now);
			return;
		}
		if (n == 0) {
			probe_new_end(c, nw, 0, "peer_closed", now);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (events & (EPOLLERR | EPOLLHUP)) {
				int err = probe_sock_error(nw->fd);

				probe_new_end(c, nw, err, err ? NULL : "peer_closed", now);
			}
			return;
		}
		probe_new_end(c, nw, errno, NULL, now);
		return;
	}
}

/* ---- UDP stream */

/* The gaps worth reporting one by one: over --gaps-over-ms when given,
 * else over the events log's threshold. */
static double probe_gap_threshold_ms(const struct probe_client *c)
{
	return c->o.gaps_over_ms >= 0 ? c->o.gaps_over_ms : (double)PROBE_EVENT_GAP_MS;
}

static int64_t probe_udp_due(const struct probe_client *c, uint64_t seq)
{
	uint64_t hz = (uint64_t)c->o.udp_hz;

	return c->t0 + (int64_t)(seq / hz) * PROBE_NS_PER_S + (int64_t)((seq % hz) * PROBE_NS_PER_S / hz);
}

static void probe_udp_send_due(struct probe_client *c, int64_t now)
{
	uint8_t buf[PROBE_UDP_LEN_MAX];
	uint32_t magic = PROBE_MAGIC_UDP, pad = 0;
	int burst;

	memset(buf, 0, (size_t)c->o.udp_len);
	memcpy(buf, &magic, 4);
	memcpy(buf + 4, &pad, 4);
	/* Catch up after a stall a burst at a time, so the sender cannot
	 * monopolise the loop; the receive side measures the gap anyway. */
	for (burst = 0; burst < PROBE_UDP_BURST_MAX && c->udp_sent < c->udp_total; burst++) {
		uint64_t seq = c->udp_sent;
		int64_t t = probe_now_ns();

		if (probe_udp_due(c, seq) > now)
			break;
		memcpy(buf + 8, &seq, 8);
		memcpy(buf + 16, &t, 8);
		c->udp_seen[(seq % PROBE_UDP_WINDOW) / 8] &= (uint8_t)~(1u << (seq % 8));
		c->udp_sent++;
		if (sendto(c->udp_fd, buf, (size_t)c->o.udp_len, MSG_DONTWAIT, (struct sockaddr *)&c->target,
			   c->target_len) != (ssize_t)c->o.udp_len)
			c->udp_send_errors++;
	}
}

static void probe_udp_receive(struct probe_client *c)
{
	uint8_t buf[2048];
	int round;

	for (round = 0; round < PROBE_UDP_RX_BURST_MAX; round++) {
		struct sockaddr_storage from = { .ss_family = AF_UNSPEC };
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(c->udp_fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		int64_t now = probe_now_ns(), sent, gap;
		uint32_t magic;
		uint64_t seq;
		uint8_t bit;

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno != EINTR)
				c->udp_rx_errors++;
			continue;
		}
		if (!probe_addr_equal(&from, &c->target)) {
			c->udp_foreign++;
			continue;
		}
		if (n < PROBE_UDP_LEN_MIN) {
			c->udp_bad++;
			continue;
		}
		memcpy(&magic, buf, 4);
		memcpy(&seq, buf + 8, 8);
		memcpy(&sent, buf + 16, 8);
		if (magic != PROBE_MAGIC_UDP || seq >= c->udp_sent || sent < c->t0 || sent > now) {
			c->udp_bad++;
			continue;
		}
		if (c->udp_sent - seq > PROBE_UDP_WINDOW) {
			c->udp_late++;
			continue;
		}
		bit = (uint8_t)(1u << (seq % 8));
		if (c->udp_seen[(seq % PROBE_UDP_WINDOW) / 8] & bit) {
			c->udp_dup++;
			continue;
		}
		c->udp_seen[(seq % PROBE_UDP_WINDOW) / 8] |= bit;
		if (c->udp_received > 0 && seq < c->udp_max_seq)
			c->udp_reordered++;
		if (c->udp_received == 0 || seq > c->udp_max_seq)
			c->udp_max_seq = seq;
		c->udp_rtt_sum += now - sent;
		if (now - sent > c->udp_rtt_max)
			c->udp_rtt_max = now - sent;
		if (c->udp_received == 0) {
			c->udp_first_rx = now;
		} else {
			gap = now - c->udp_last_rx;
			if (gap > c->udp_max_gap) {
				c->udp_max_gap = gap;
				c->udp_max_gap_start = c->udp_last_rx - c->t0;
			}
			/* Opening thousands of connections can stall the stream
			 * before the test starts its failover: this one ignores it. */
			if (c->ready_ns >= 0 && c->udp_last_rx >= c->ready_ns && gap > c->udp_ready_max_gap) {
				c->udp_ready_max_gap = gap;
				c->udp_ready_max_gap_start = c->udp_last_rx - c->t0;
			}
			if (c->ev && probe_ms(gap) > PROBE_EVENT_GAP_MS)
				probe_event(c, probe_wall_at(c->udp_last_rx, now), "gap", ",\"ms\":%.1f", probe_ms(gap));
			if (probe_ms(gap) > probe_gap_threshold_ms(c))
				c->udp_last_gap = gap;
			if (c->o.gaps_over_ms >= 0 && probe_ms(gap) > c->o.gaps_over_ms) {
				if (c->gaps_n < PROBE_GAPS_MAX) {
					c->gaps[c->gaps_n].start_ns = c->udp_last_rx - c->t0;
					c->gaps[c->gaps_n].len_ns = gap;
					c->gaps_n++;
				} else {
					c->gaps_dropped++;
				}
			}
		}
		c->udp_last_rx = now;
		c->udp_received++;
	}
}

/* ---- extra UDP flows */

/* Flow j (0-based in fl[]) sends its datagram k at
 * t0 + (k + j/fl_n) / udp_flow_hz: the flows are spread evenly over one
 * period, so thousands of them never send in step, and one cursor walks
 * that schedule in time order. */
static int64_t probe_flow_due(const struct probe_client *c)
{
	__int128 m = c->fl_n;
	__int128 num = ((__int128)c->fl_cur_k * m + c->fl_cur_i) * PROBE_NS_PER_S;

	return c->t0 + (int64_t)(num / ((__int128)c->o.udp_flow_hz * m));
}

static void probe_flow_send_due(struct probe_client *c, int64_t now)
{
	uint8_t buf[PROBE_UDP_LEN_MAX];
	uint32_t magic = PROBE_MAGIC_UDP;
	int burst;

	memset(buf, 0, (size_t)c->o.udp_len);
	memcpy(buf, &magic, 4);
	/* Bounded per wake-up like flow 0: after a stall the rest goes on
	 * the next turn of the loop, after the events. */
	for (burst = 0; burst < PROBE_FLOW_SEND_BURST_MAX && c->fl_n > 0; burst++) {
		int64_t due = probe_flow_due(c), t;
		struct probe_flow *f;
		uint32_t id;
		uint64_t seq;

		if (due > now || due >= c->end_ns)
			break;
		f = &c->fl[c->fl_cur_i];
		id = c->fl_cur_i + 1;
		seq = f->sent;
		t = probe_now_ns();
		memcpy(buf + 4, &id, 4);
		memcpy(buf + 8, &seq, 8);
		memcpy(buf + 16, &t, 8);
		f->seen[(seq % PROBE_FLOW_WINDOW) / 64] &= ~(1ull << (seq % 64));
		f->sent++;
		c->fl_sent++;
		if (sendto(f->fd, buf, (size_t)c->o.udp_len, MSG_DONTWAIT, (struct sockaddr *)&c->target,
			   c->target_len) != (ssize_t)c->o.udp_len)
			c->fl_send_errors++;
		if (++c->fl_cur_i == c->fl_n) {
			c->fl_cur_i = 0;
			c->fl_cur_k++;
		}
	}
}

static void probe_flow_receive(struct probe_client *c, uint32_t idx)
{
	uint8_t buf[2048];
	struct probe_flow *f;
	int round;

	if (idx >= c->fl_n)
		return;
	f = &c->fl[idx];
	for (round = 0; round < PROBE_FLOW_RX_BURST_MAX; round++) {
		struct sockaddr_storage from = { .ss_family = AF_UNSPEC };
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(f->fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		int64_t now = probe_now_ns(), sent;
		uint32_t magic, id;
		uint64_t seq, bit, *word;

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno != EINTR)
				c->fl_rx_errors++;
			continue;
		}
		if (!probe_addr_equal(&from, &c->target) || n < PROBE_UDP_LEN_MIN) {
			c->fl_bad++;
			continue;
		}
		memcpy(&magic, buf, 4);
		memcpy(&id, buf + 4, 4);
		memcpy(&seq, buf + 8, 8);
		memcpy(&sent, buf + 16, 8);
		if (magic != PROBE_MAGIC_UDP || id != idx + 1 || seq >= f->sent || sent < c->t0 || sent > now) {
			c->fl_bad++;
			continue;
		}
		if (f->sent - seq > PROBE_FLOW_WINDOW) {
			c->fl_late++;
			continue;
		}
		word = &f->seen[(seq % PROBE_FLOW_WINDOW) / 64];
		bit = 1ull << (seq % 64);
		if (*word & bit) {
			c->fl_dup++;
			continue;
		}
		*word |= bit;
		if (f->received == 0) {
			c->fl_echoed++;
		} else if (now - f->last_rx > f->max_gap) {
			f->max_gap = now - f->last_rx;
			f->max_gap_start = f->last_rx - c->t0;
		}
		if (f->received == 0 || seq > f->max_seq)
			f->max_seq = seq;
		f->last_rx = now;
		f->received++;
		c->fl_received++;
	}
}

/* Did a flow survive the run? It did when it had an echo in the last
 * PROBE_FLOW_ALIVE_MS of the load and its longest silence ended with an
 * echo: a silence still open at the end (its last datagram unanswered,
 * from its last echo to the end of the load) must be shorter than its
 * longest closed gap. *gap_ns and *gap_start_ns get the flow's longest
 * silence, open or closed (the whole load for a flow never echoed). */
static bool probe_flow_judge(const struct probe_client *c, int64_t end, uint64_t sent, uint64_t received,
			     uint64_t max_seq, int64_t last_rx, int64_t max_gap, int64_t max_gap_start, int64_t *gap_ns,
			     int64_t *gap_start_ns)
{
	int64_t open = 0;

	if (received == 0) {
		*gap_ns = end - c->t0;
		*gap_start_ns = 0;
		return false;
	}
	if (max_seq + 1 < sent && last_rx < end)
		open = end - last_rx;
	*gap_ns = max_gap;
	*gap_start_ns = max_gap_start;
	if (open > max_gap) {
		*gap_ns = open;
		*gap_start_ns = last_rx - c->t0;
	}
	return end - last_rx <= PROBE_FLOW_ALIVE_MS * PROBE_NS_PER_MS && (open == 0 || open < max_gap);
}

/* ---- timers, readiness, end */

static void probe_client_check(struct probe_client *c, int64_t now)
{
	uint32_t i;

	for (i = 0; i < c->ll_n; i++) {
		struct probe_ll *l = &c->ll[i];

		if (l->fd < 0)
			continue;
		if (l->state == PROBE_LL_CONNECTING) {
			if (now - l->start_ns > c->o.connect_timeout_ms * PROBE_NS_PER_MS)
				probe_ll_end(c, l, 0, "connect_timeout");
		} else if (l->write_seq > l->echo_seq &&
			   now - l->sent_ns[l->echo_seq % PROBE_LL_RING] > c->o.tcp_timeout_ms * PROBE_NS_PER_MS) {
			probe_ll_end(c, l, 0, l->state == PROBE_LL_PEER_CLOSED ? "peer_closed" : "echo_timeout");
		}
	}
	for (i = 0; i < c->nw_slots; i++) {
		struct probe_new *nw = &c->nw[i];

		if (nw->state != PROBE_NEW_FREE && now - nw->start_ns > c->o.new_timeout_ms * PROBE_NS_PER_MS)
			probe_new_end(c, nw, 0, "timeout", now);
	}
}

static void probe_client_ready(struct probe_client *c, int64_t now)
{
	char text[128];

	if (c->ready_ns >= 0 || !c->loading || c->ll_echoed < c->ll_n || c->fl_echoed < c->fl_n)
		return;
	if (c->o.udp_hz > 0 &&
	    (c->udp_received == 0 || now - c->udp_last_rx > PROBE_READY_UDP_FRESH_MS * PROBE_NS_PER_MS))
		return;
	c->ready_ns = now;
	if (!c->o.ready_file)
		return;
	snprintf(text, sizeof(text), "ready_ms=%.1f tcp=%u udp_flows=%u\n", probe_ms(now - c->t0), c->ll_established,
		 c->o.udp_hz > 0 ? c->fl_n + 1 : 0);
	if (probe_write_ready(c->o.ready_file, text) < 0)
		fprintf(stderr, "tandem-probe: cannot write ready file %s: %s\n", c->o.ready_file, strerror(errno));
}

/* Has everything sent been answered or given up on? Then the drain after
 * the load can end early. */
static bool probe_client_settled(const struct probe_client *c)
{
	uint32_t i;

	if (c->nw_pending > 0)
		return false;
	if (c->udp_received + c->udp_send_errors < c->udp_sent)
		return false;
	if (c->fl_received + c->fl_send_errors < c->fl_sent)
		return false;
	for (i = 0; i < c->ll_n; i++) {
		const struct probe_ll *l = &c->ll[i];

		if (l->fd >= 0 && (l->state == PROBE_LL_CONNECTING ||
				   (l->state == PROBE_LL_OPEN && l->echo_seq < l->write_seq)))
			return false;
	}
	return true;
}

static bool probe_client_unreachable(const struct probe_client *c)
{
	if (c->o.udp_hz > 0 && c->udp_received > 0)
		return false;
	return c->ll_established == 0 && c->new_ok == 0;
}

/* ---- report */

struct probe_out {
	FILE *f;
	bool json;
	bool first;
};

static void probe_out_key(struct probe_out *o, const char *key)
{
	if (o->json)
		fprintf(o->f, "%s\"%s\":", o->first ? "" : ",", key);
	else
		fprintf(o->f, "%s%s=", o->first ? "" : " ", key);
	o->first = false;
}

static void probe_out_group(struct probe_out *o, const char *name)
{
	if (o->json)
		return;
	if (!o->first)
		fprintf(o->f, "\n");
	fprintf(o->f, "%s ", name);
	o->first = true;
}

static void probe_out_u64(struct probe_out *o, const char *key, uint64_t v)
{
	probe_out_key(o, key);
	fprintf(o->f, "%" PRIu64, v);
}

static void probe_out_i64(struct probe_out *o, const char *key, int64_t v)
{
	probe_out_key(o, key);
	fprintf(o->f, "%" PRId64, v);
}

static void probe_out_ms(struct probe_out *o, const char *key, int64_t ns)
{
	probe_out_key(o, key);
	fprintf(o->f, "%.1f", probe_ms(ns));
}

static void probe_out_real(struct probe_out *o, const char *key, double v, int decimals)
{
	probe_out_key(o, key);
	fprintf(o->f, "%.*f", decimals, v);
}

static void probe_out_str(struct probe_out *o, const char *key, const char *s)
{
	probe_out_key(o, key);
	/* Only addresses and errno names come here: no escaping needed. */
	fprintf(o->f, o->json ? "\"%s\"" : "%s", s);
}

static void probe_out_bool(struct probe_out *o, const char *key, bool v)
{
	probe_out_key(o, key);
	fprintf(o->f, "%s", v ? "true" : "false");
}

static void probe_out_reasons(struct probe_out *o, const char *key, const struct probe_reason *t)
{
	int i;

	probe_out_key(o, key);
	if (o->json)
		fprintf(o->f, "{");
	for (i = 0; i < PROBE_REASONS_MAX && t[i].what; i++) {
		if (o->json)
			fprintf(o->f, "%s\"%s\":%" PRIu64, i ? "," : "", t[i].what, t[i].count);
		else
			fprintf(o->f, "%s%s:%" PRIu64, i ? "," : "", t[i].what, t[i].count);
	}
	if (o->json)
		fprintf(o->f, "}");
	else if (i == 0)
		fprintf(o->f, "none");
}

struct probe_ll_outcome {
	uint64_t survived, reset, failed, stale;
};

/* With `record`, the reasons and the events log get what was judged
 * (once, at the end); without, it only counts (the live status). */
static struct probe_ll_outcome probe_ll_judge(struct probe_client *c, int64_t now, bool record)
{
	struct probe_ll_outcome r = { 0, 0, 0, 0 };
	uint32_t i;

	for (i = 0; i < c->ll_n; i++) {
		struct probe_ll *l = &c->ll[i];

		switch (l->state) {
		case PROBE_LL_OPEN:
			if (l->echo_seq == l->write_seq ||
			    now - l->last_echo_ns <= PROBE_SURVIVE_ECHO_MS * PROBE_NS_PER_MS) {
				r.survived++;
			} else {
				r.stale++;
				if (!record)
					break;
				probe_reason_add(c->ll_why, "stale");
				if (c->ev)
					probe_event_lost(c, l, probe_wall_at(l->echoed ? l->last_echo_ns : l->start_ns, now),
							 "stale");
			}
			break;
		case PROBE_LL_RESET:
			r.reset++;
			if (record)
				probe_reason_add(c->ll_why, l->why);
			break;
		case PROBE_LL_CONNECTING:
			/* Live, a connection still connecting is pending, not failed. */
			if (!record)
				break;
			r.failed++;
			probe_reason_add(c->ll_why, "still_connecting");
			if (c->ev)
				probe_event_lost(c, l, probe_wall_ms(), "still_connecting");
			break;
		case PROBE_LL_PEER_CLOSED:
			r.failed++;
			if (record)
				probe_reason_add(c->ll_why, "peer_closed");
			break;
		case PROBE_LL_FAILED:
			r.failed++;
			if (record)
				probe_reason_add(c->ll_why, l->why ? l->why : "unknown");
			break;
		}
	}
	return r;
}

/* The run's verdicts, judged once at the end (judging records reasons)
 * and then rendered into the report, the events log's summary and the
 * last status file; and judged live, recording nothing, for every
 * status file before it. */
struct probe_verdict {
	int64_t end_ns; /* the end of the load, or now while it runs */
	struct probe_ll_outcome ll;
	uint64_t flows_alive;
	int64_t flows_gap, flows_gap_start;
	int64_t udp_open_gap; /* live: the stream's silence now, when over the gap threshold */
};

static void probe_client_judge(struct probe_client *c, int64_t now, struct probe_verdict *v, bool final)
{
	int64_t g, gs, end = final ? c->end_ns : probe_min(now, c->end_ns);
	size_t i;

	memset(v, 0, sizeof(*v));
	v->end_ns = end;
	v->ll = probe_ll_judge(c, now, final);
	/* Flow 0 counts among the alive flows; its gaps and losses stay in
	 * the udp_* fields, the udp_flows_* ones cover flows 1..N-1. */
	if (c->o.udp_hz > 0) {
		if (probe_flow_judge(c, end, c->udp_sent, c->udp_received, c->udp_max_seq, c->udp_last_rx,
				     c->udp_max_gap, c->udp_max_gap_start, &g, &gs))
			v->flows_alive++;
		if (!final && c->loading && c->udp_received > 0 && c->udp_max_seq + 1 < c->udp_sent &&
		    probe_ms(now - c->udp_last_rx) > probe_gap_threshold_ms(c))
			v->udp_open_gap = now - c->udp_last_rx;
		/* A silence still open when the load ended is a gap too; the
		 * events log must show it, or an outage at the end would read
		 * as no outage at all. */
		if (final && c->udp_received > 0 && c->udp_max_seq + 1 < c->udp_sent && c->udp_last_rx < c->end_ns &&
		    probe_ms(c->end_ns - c->udp_last_rx) > PROBE_EVENT_GAP_MS)
			probe_event(c, probe_wall_at(c->udp_last_rx, now), "gap", ",\"ms\":%.1f,\"open\":true",
				    probe_ms(c->end_ns - c->udp_last_rx));
	}
	for (i = 0; i < c->fl_n; i++) {
		const struct probe_flow *f = &c->fl[i];

		if (probe_flow_judge(c, end, f->sent, f->received, f->max_seq, f->last_rx, f->max_gap, f->max_gap_start,
				     &g, &gs))
			v->flows_alive++;
		if (g > v->flows_gap) {
			v->flows_gap = g;
			v->flows_gap_start = gs;
		}
	}
}

/* The report's fields, without the enclosing braces (the caller's: the
 * events summary puts its own keys first). The gap list only with
 * `gap_list`: the events log has every gap as an event already. */
static void probe_client_render(struct probe_client *c, struct probe_out *po, const struct probe_verdict *v,
				bool gap_list)
{
	struct probe_out o = *po;
	const struct probe_ll_outcome ll = v->ll;
	char target[INET6_ADDRSTRLEN + 8];
	uint64_t lost = c->udp_sent - c->udp_received, flows_alive = v->flows_alive;
	int64_t flows_gap = v->flows_gap, flows_gap_start = v->flows_gap_start;
	size_t i;

	snprintf(target, sizeof(target), "%s", c->o.target_s);
	probe_out_group(&o, "probe");
	probe_out_str(&o, "target", target);
	probe_out_i64(&o, "port", c->o.port);
	probe_out_i64(&o, "duration_ms", c->o.duration_ms);
	probe_out_ms(&o, "elapsed_ms", v->end_ns - c->t0);
	probe_out_bool(&o, "interrupted", c->interrupted);
	probe_out_bool(&o, "realtime", c->realtime);
	probe_out_real(&o, "ready_ms", c->ready_ns >= 0 ? probe_ms(c->ready_ns - c->t0) : -1.0, 1);

	probe_out_group(&o, "udp");
	probe_out_i64(&o, "udp_hz", c->o.udp_hz);
	probe_out_u64(&o, "udp_sent", c->udp_sent);
	probe_out_u64(&o, "udp_received", c->udp_received);
	probe_out_u64(&o, "udp_lost", lost);
	probe_out_real(&o, "udp_loss_pct", c->udp_sent ? 100.0 * (double)lost / (double)c->udp_sent : 0.0, 3);
	probe_out_ms(&o, "udp_max_gap_ms", c->udp_max_gap);
	probe_out_ms(&o, "udp_max_gap_start_ms", c->udp_max_gap_start);
	probe_out_ms(&o, "udp_max_gap_after_ready_ms", c->udp_ready_max_gap);
	probe_out_ms(&o, "udp_max_gap_after_ready_start_ms", c->udp_ready_max_gap_start);
	probe_out_real(&o, "udp_first_echo_ms", c->udp_received ? probe_ms(c->udp_first_rx - c->t0) : -1.0, 1);
	probe_out_real(&o, "udp_last_echo_ms", c->udp_received ? probe_ms(c->udp_last_rx - c->t0) : -1.0, 1);
	probe_out_real(&o, "udp_rtt_avg_ms",
		       c->udp_received ? probe_ms(c->udp_rtt_sum) / (double)c->udp_received : 0.0, 3);
	probe_out_real(&o, "udp_rtt_max_ms", probe_ms(c->udp_rtt_max), 3);
	probe_out_u64(&o, "udp_send_errors", c->udp_send_errors);
	probe_out_u64(&o, "udp_duplicates", c->udp_dup);
	probe_out_u64(&o, "udp_reordered", c->udp_reordered);
	probe_out_u64(&o, "udp_late", c->udp_late);
	probe_out_u64(&o, "udp_bad", c->udp_bad + c->udp_foreign);
	probe_out_u64(&o, "udp_rx_errors", c->udp_rx_errors);
	probe_out_u64(&o, "udp_flows", c->o.udp_hz > 0 ? c->fl_n + 1 : 0);
	probe_out_i64(&o, "udp_flow_hz", c->fl_n > 0 ? c->o.udp_flow_hz : 0);
	probe_out_u64(&o, "udp_flows_alive", flows_alive);
	probe_out_u64(&o, "udp_flows_sent", c->fl_sent);
	probe_out_u64(&o, "udp_flows_lost", c->fl_sent - c->fl_received);
	probe_out_ms(&o, "udp_flows_max_gap_ms", flows_gap);
	probe_out_ms(&o, "udp_flows_max_gap_start_ms", flows_gap_start);
	probe_out_u64(&o, "udp_flows_send_errors", c->fl_send_errors);
	probe_out_u64(&o, "udp_flows_duplicates", c->fl_dup);
	probe_out_u64(&o, "udp_flows_bad", c->fl_bad + c->fl_late + c->fl_rx_errors);

	probe_out_group(&o, "tcp");
	probe_out_u64(&o, "tcp_requested", c->ll_n);
	probe_out_u64(&o, "tcp_connections", c->ll_established);
	probe_out_u64(&o, "tcp_survived", ll.survived);
	probe_out_u64(&o, "tcp_resets", c->tcp_resets);
	probe_out_u64(&o, "tcp_failed", ll.failed);
	probe_out_u64(&o, "tcp_reset_conns", ll.reset);
	probe_out_u64(&o, "tcp_stale", ll.stale);
	probe_out_u64(&o, "tcp_connect_failed", c->tcp_connect_failed);
	probe_out_u64(&o, "tcp_echoes", c->tcp_echoes);
	probe_out_u64(&o, "tcp_write_skipped", c->tcp_write_skipped);
	probe_out_real(&o, "tcp_rtt_max_ms", probe_ms(c->tcp_rtt_max), 3);
	probe_out_reasons(&o, "tcp_fail_reasons", c->ll_why);

	probe_out_group(&o, "new");
	probe_out_u64(&o, "new_attempted", c->new_attempted);
	probe_out_u64(&o, "new_ok", c->new_ok);
	probe_out_u64(&o, "new_failed", c->new_refused + c->new_resets + c->new_timeouts + c->new_other);
	probe_out_u64(&o, "new_refused", c->new_refused);
	probe_out_u64(&o, "new_resets", c->new_resets);
	probe_out_u64(&o, "new_timeouts", c->new_timeouts);
	probe_out_u64(&o, "new_other", c->new_other);
	probe_out_real(&o, "new_rtt_max_ms", probe_ms(c->new_rtt_max), 3);
	probe_out_reasons(&o, "new_fail_reasons", c->new_why);

	if (c->o.gaps_over_ms >= 0) {
		probe_out_group(&o, "gaps");
		probe_out_real(&o, "gaps_over_ms", c->o.gaps_over_ms, 1);
		probe_out_u64(&o, "gaps_count", c->gaps_n + c->gaps_dropped);
		if (o.json && gap_list) {
			probe_out_key(&o, "gaps");
			fprintf(o.f, "[");
			for (i = 0; i < c->gaps_n; i++)
				fprintf(o.f, "%s{\"start_ms\":%.1f,\"gap_ms\":%.1f}", i ? "," : "",
					probe_ms(c->gaps[i].start_ns), probe_ms(c->gaps[i].len_ns));
			fprintf(o.f, "]");
		} else if (!o.json) {
			for (i = 0; i < c->gaps_n; i++) {
				probe_out_group(&o, "gap");
				probe_out_ms(&o, "start_ms", c->gaps[i].start_ns);
				probe_out_ms(&o, "gap_ms", c->gaps[i].len_ns);
			}
		}
	}
	*po = o;
}

/* --status-file: the live counters as one JSON object, the report's
 * fields (no gap list, so the file stays small) after the status's own:
 * t_ms (since the start), wall_ms, done, tcp_alive (long-lived
 * connections open and echoing), udp_last_gap_ms (the latest gap over
 * the gap threshold, 0 if none yet) and udp_open_gap_ms (the stream's
 * silence now, when over the threshold, else 0). Written to FILE.tmp and
 * renamed, so a reader sees a whole file or the previous one; not fsynced,
 * because it is a live view, not a record, and the loop must not wait on
 * a disk four times a second. `v` is the final verdict (done), or NULL
 * for a live one. Returns -1 when it could not be written. */
static int probe_status_write(struct probe_client *c, int64_t now, const struct probe_verdict *final)
{
	struct probe_verdict live;
	const struct probe_verdict *v = final;
	struct probe_out o;
	char tmp[4096];
	FILE *f;
	int n, err = 0;

	if (!v) {
		probe_client_judge(c, now, &live, false);
		v = &live;
	}
	n = snprintf(tmp, sizeof(tmp), "%s.tmp", c->o.status_file);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	f = fopen(tmp, "we");
	if (!f)
		return -1;
	fprintf(f,
		"{\"t_ms\":%.1f,\"wall_ms\":%" PRId64 ",\"done\":%s,\"tcp_alive\":%" PRIu64
		",\"udp_last_gap_ms\":%.1f,\"udp_open_gap_ms\":%.1f,\"gap_threshold_ms\":%.1f,",
		probe_ms(now - c->t0), probe_wall_ms(), final ? "true" : "false", v->ll.survived,
		probe_ms(c->udp_last_gap), probe_ms(v->udp_open_gap), probe_gap_threshold_ms(c));
	o = (struct probe_out){ .f = f, .json = true, .first = true };
	probe_client_render(c, &o, v, false);
	fprintf(f, "}\n");
	if (ferror(f))
		err = EIO;
	if (fclose(f) != 0 && !err)
		err = errno;
	if (!err && rename(tmp, c->o.status_file) < 0)
		err = errno;
	if (err) {
		unlink(tmp);
		errno = err;
		return -1;
	}
	return 0;
}

/* A failed rewrite is told once and counted; the next one may succeed. */
static void probe_status_tick(struct probe_client *c, int64_t now, const struct probe_verdict *final)
{
	if (!c->o.status_file || probe_status_write(c, now, final) == 0)
		return;
	if (c->status_errors++ == 0 || final)
		fprintf(stderr, "tandem-probe client: --status-file %s: %s\n", c->o.status_file, strerror(errno));
}

/* The report on stdout, with --status-file the last status (done) and,
 * with --events, the summary line that ends the events log. Returns -1
 * when the events log or the last status could not be written whole (the
 * run's record is then incomplete: the caller fails). */
static int probe_client_report(struct probe_client *c, int64_t now)
{
	struct probe_out o = { .f = stdout, .json = c->o.json, .first = true };
	struct probe_verdict v;
	uint64_t status_errors = c->status_errors;
	int rc = 0;

	probe_client_judge(c, now, &v, true);
	if (o.json)
		printf("{");
	probe_client_render(c, &o, &v, true);
	printf(o.json ? "}\n" : "\n");
	fflush(stdout);
	probe_status_tick(c, now, &v);
	if (c->status_errors != status_errors)
		rc = -1;
	if (!c->ev)
		return rc;
	/* The summary is written even past the size bound: it is bounded
	 * itself (no gap list) and says how many events were left out. */
	fprintf(c->ev, "{\"t_ms\":%" PRId64 ",\"kind\":\"summary\",\"events_written\":%" PRIu64
		       ",\"events_dropped\":%" PRIu64 ",\"gap_over_ms\":%d,",
		probe_wall_ms(), c->ev_lines, c->ev_dropped, PROBE_EVENT_GAP_MS);
	o = (struct probe_out){ .f = c->ev, .json = true, .first = true };
	probe_client_render(c, &o, &v, false);
	fprintf(c->ev, "}\n");
	if (c->ev_errors > 0 || ferror(c->ev)) {
		fprintf(stderr, "tandem-probe client: events log %s: %" PRIu64 " write errors\n", c->o.events_file,
			c->ev_errors);
		rc = -1;
	}
	if (fclose(c->ev) != 0) {
		fprintf(stderr, "tandem-probe client: events log %s: %s\n", c->o.events_file, strerror(errno));
		rc = -1;
	}
	c->ev = NULL;
	return rc;
}

/* ---- set-up and loop */

static void probe_client_usage(FILE *f)
{
	fprintf(f,
		"usage: tandem-probe client --target ADDR --duration-ms D [options]\n"
		"  --port P              target port (default %d)\n"
		"  --udp-hz HZ           UDP datagrams per second, 0 for none (default 1000)\n"
		"  --udp-size BYTES      UDP payload size, %d..%d (default 64)\n"
		"  --udp-flows N         UDP flows, each from its own source port, 1..%d (default 1);\n"
		"                        flow 0 sends at --udp-hz, flows 1..N-1 at --udp-flow-hz\n"
		"  --udp-flow-hz HZ      datagrams per second of each flow 1..N-1 (default %d;\n"
		"                        (N-1)*HZ at most %d)\n"
		"  --tcp N               long-lived TCP connections (default 0)\n"
		"  --tcp-interval-ms MS  one message per connection every MS (default 200)\n"
		"  --tcp-timeout-ms MS   an echo later than this fails the connection (default 10000)\n"
		"  --connect-timeout-ms MS  long-lived connect timeout (default 3000)\n"
		"  --new-every-ms M      open, echo and close a new connection every M ms (default off)\n"
		"  --new-timeout-ms MS   timeout of one new connection (default 3000)\n"
		"  --drain-ms MS         wait for late echoes after the load (default 500)\n"
		"  --bind ADDR           source address\n"
		"  --json                report as one JSON object\n"
		"  --ready-file PATH     written once every connection and every UDP flow echoed\n"
		"  --gaps-over-ms X      also report every UDP gap longer than X ms\n"
		"  --events FILE         log events as JSON lines stamped with the wall clock (t_ms):\n"
		"                        start, gap (UDP stream silent over %d ms; t_ms = its start),\n"
		"                        reset, conn_lost, new_fail, and a final summary (the report);\n"
		"                        at most %u bytes of events, the rest counted\n"
		"  --status-file FILE    every %d ms and once at the end, the live counters as one JSON\n"
		"                        object, written to FILE.tmp and renamed: t_ms, wall_ms, done,\n"
		"                        tcp_alive, udp_last_gap_ms (latest gap over --gaps-over-ms, else\n"
		"                        over %d ms; 0 if none), udp_open_gap_ms (the silence now, if over\n"
		"                        it), then the report's fields (udp_sent, udp_received, udp_lost\n"
		"                        (includes datagrams in flight while running), udp_max_gap_ms,\n"
		"                        tcp_connections, tcp_resets, new_ok, new_failed, ...)\n"
		"  --no-realtime         stay at normal priority (default: SCHED_FIFO when allowed)\n"
		"exit: 0 ran (whatever the results), 1 could not run, 2 usage error\n",
		PROBE_PORT_DEFAULT, PROBE_UDP_LEN_MIN, PROBE_UDP_LEN_MAX, PROBE_UDP_FLOWS_MAX,
		PROBE_UDP_FLOW_HZ_DEFAULT, PROBE_UDP_HZ_MAX, PROBE_EVENT_GAP_MS, PROBE_EVENTS_FILE_BYTES_MAX,
		PROBE_STATUS_EVERY_MS, PROBE_EVENT_GAP_MS);
}

static int probe_client_parse(int argc, char **argv, struct probe_client_opts *o)
{
	static const struct option opts[] = {
		{ "target", required_argument, NULL, 't' },
		{ "port", required_argument, NULL, 'p' },
		{ "duration-ms", required_argument, NULL, 'd' },
		{ "udp-hz", required_argument, NULL, 'u' },
		{ "udp-size", required_argument, NULL, 'U' },
		{ "udp-flows", required_argument, NULL, 'F' },
		{ "udp-flow-hz", required_argument, NULL, 'H' },
		{ "tcp", required_argument, NULL, 'n' },
		{ "tcp-interval-ms", required_argument, NULL, 'i' },
		{ "tcp-timeout-ms", required_argument, NULL, 'T' },
		{ "connect-timeout-ms", required_argument, NULL, 'C' },
		{ "new-every-ms", required_argument, NULL, 'm' },
		{ "new-timeout-ms", required_argument, NULL, 'N' },
		{ "drain-ms", required_argument, NULL, 'D' },
		{ "bind", required_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "ready-file", required_argument, NULL, 'r' },
		{ "gaps-over-ms", required_argument, NULL, 'g' },
		{ "events", required_argument, NULL, 'e' },
		{ "status-file", required_argument, NULL, 'S' },
		{ "no-realtime", no_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_duration = false;
	int c, r = 0;

	*o = (struct probe_client_opts){
		.port = PROBE_PORT_DEFAULT,
		.udp_hz = 1000,
		.udp_len = 64,
		.udp_flows = 1,
		.udp_flow_hz = PROBE_UDP_FLOW_HZ_DEFAULT,
		.tcp_interval_ms = 200,
		.tcp_timeout_ms = 10000,
		.connect_timeout_ms = 3000,
		.new_timeout_ms = 3000,
		.drain_ms = 500,
		.gaps_over_ms = -1,
		.realtime = true,
	};
	while (r == 0 && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			o->target_s = optarg;
			break;
		case 'b':
			o->bind_s = optarg;
			break;
		case 'r':
			o->ready_file = optarg;
			break;
		case 'e':
			if (optarg[0] == '\0') {
				fprintf(stderr, "tandem-probe client: --events: empty path\n");
				r = -1;
			}
			o->events_file = optarg;
			break;
		case 'S':
			if (optarg[0] == '\0') {
				fprintf(stderr, "tandem-probe client: --status-file: empty path\n");
				r = -1;
			}
			o->status_file = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 'p':
			r = probe_parse_int("--port", optarg, 1, 65535, &o->port);
			break;
		case 'd':
			r = probe_parse_int("--duration-ms", optarg, 1, PROBE_DURATION_MS_MAX, &o->duration_ms);
			have_duration = true;
			break;
		case 'u':
			r = probe_parse_int("--udp-hz", optarg, 0, PROBE_UDP_HZ_MAX, &o->udp_hz);
			break;
		case 'U':
			r = probe_parse_int("--udp-size", optarg, PROBE_UDP_LEN_MIN, PROBE_UDP_LEN_MAX, &o->udp_len);
			break;
		case 'F':
			r = probe_parse_int("--udp-flows", optarg, 1, PROBE_UDP_FLOWS_MAX, &o->udp_flows);
			break;
		case 'H':
			r = probe_parse_int("--udp-flow-hz", optarg, 1, PROBE_UDP_HZ_MAX, &o->udp_flow_hz);
			break;
		case 'n':
			r = probe_parse_int("--tcp", optarg, 0, PROBE_TCP_CONNS_MAX, &o->tcp);
			break;
		case 'i':
			r = probe_parse_int("--tcp-interval-ms", optarg, 1, 3600000, &o->tcp_interval_ms);
			break;
		case 'T':
			r = probe_parse_int("--tcp-timeout-ms", optarg, 1, 3600000, &o->tcp_timeout_ms);
			break;
		case 'C':
			r = probe_parse_int("--connect-timeout-ms", optarg, 1, 600000, &o->connect_timeout_ms);
			break;
		case 'm':
			r = probe_parse_int("--new-every-ms", optarg, 1, PROBE_DURATION_MS_MAX, &o->new_every_ms);
			break;
		case 'N':
			r = probe_parse_int("--new-timeout-ms", optarg, 1, 600000, &o->new_timeout_ms);
			break;
		case 'D':
			r = probe_parse_int("--drain-ms", optarg, 0, 600000, &o->drain_ms);
			break;
		case 'g':
			r = probe_parse_ms_real("--gaps-over-ms", optarg, &o->gaps_over_ms);
			break;
		case 'R':
			o->realtime = false;
			break;
		case 'h':
			probe_client_usage(stdout);
			exit(PROBE_EXIT_OK);
		default:
			r = -1;
			break;
		}
	}
	if (r == 0 && optind != argc) {
		fprintf(stderr, "tandem-probe client: unexpected argument '%s'\n", argv[optind]);
		r = -1;
	}
	if (r == 0 && !o->target_s) {
		fprintf(stderr, "tandem-probe client: --target is required\n");
		r = -1;
	}
	if (r == 0 && !have_duration) {
		fprintf(stderr, "tandem-probe client: --duration-ms is required\n");
		r = -1;
	}
	if (r == 0 && o->udp_hz == 0 && o->tcp == 0 && o->new_every_ms == 0) {
		fprintf(stderr, "tandem-probe client: nothing to do (--udp-hz 0, no --tcp, no --new-every-ms)\n");
		r = -1;
	}
	if (r == 0 && o->udp_flows > 1 && o->udp_hz == 0) {
		fprintf(stderr, "tandem-probe client: --udp-flows %lld needs flow 0: --udp-hz must not be 0\n",
			o->udp_flows);
		r = -1;
	}
	if (r == 0 && (o->udp_flows - 1) * o->udp_flow_hz > PROBE_UDP_HZ_MAX) {
		fprintf(stderr,
			"tandem-probe client: --udp-flows %lld at --udp-flow-hz %lld is %lld datagrams/s, more than %d\n",
			o->udp_flows, o->udp_flow_hz, (o->udp_flows - 1) * o->udp_flow_hz, PROBE_UDP_HZ_MAX);
		r = -1;
	}
	if (r < 0)
		probe_client_usage(stderr);
	return r;
}

static int probe_client_setup(struct probe_client *c)
{
	struct probe_client_opts *o = &c->o;
	uint64_t need, have;
	uint32_t i;

	if (probe_parse_addr("--target", o->target_s, (uint16_t)o->port, &c->target, &c->target_len) < 0)
		return PROBE_EXIT_USAGE;
	if (o->bind_s) {
		if (probe_parse_addr("--bind", o->bind_s, 0, &c->bind, &c->bind_len) < 0)
			return PROBE_EXIT_USAGE;
		if (c->bind.ss_family != c->target.ss_family) {
			fprintf(stderr, "tandem-probe client: --bind and --target are of different families\n");
			return PROBE_EXIT_USAGE;
		}
	}
	c->ll_n = (uint32_t)o->tcp;
	if (o->new_every_ms > 0) {
		/* Enough slots for every connection that can be pending at
		 * once: one per period of its timeout, plus slack. */
		uint64_t slots = (uint64_t)(o->new_timeout_ms / o->new_every_ms) + 8;

		c->nw_slots = (uint32_t)(slots > PROBE_NEW_SLOTS_MAX ? PROBE_NEW_SLOTS_MAX : slots);
		c->new_total = (uint64_t)((o->duration_ms + o->new_every_ms - 1) / o->new_every_ms);
	}
	c->udp_total = (uint64_t)o->udp_hz * (uint64_t)o->duration_ms / 1000;
	c->fl_n = (uint32_t)(o->udp_flows - 1);

	need = (uint64_t)c->ll_n + c->nw_slots + c->fl_n + 64;
	have = probe_raise_nofile(need);
	if (have < need) {
		fprintf(stderr, "tandem-probe client: %" PRIu64 " descriptors needed, RLIMIT_NOFILE allows %" PRIu64 "\n",
			need, have);
		return PROBE_EXIT_FAIL;
	}
	c->ll = calloc(c->ll_n ? c->ll_n : 1, sizeof(*c->ll));
	c->nw = calloc(c->nw_slots ? c->nw_slots : 1, sizeof(*c->nw));
	c->nw_free = calloc(c->nw_slots ? c->nw_slots : 1, sizeof(*c->nw_free));
	c->udp_seen = calloc(PROBE_UDP_WINDOW / 8, 1);
	c->gaps = calloc(o->gaps_over_ms >= 0 ? PROBE_GAPS_MAX : 1, sizeof(*c->gaps));
	c->fl = calloc(c->fl_n ? c->fl_n : 1, sizeof(*c->fl));
	if (!c->ll || !c->nw || !c->nw_free || !c->udp_seen || !c->gaps || !c->fl) {
		fprintf(stderr, "tandem-probe client: out of memory\n");
		return PROBE_EXIT_FAIL;
	}
	for (i = 0; i < c->ll_n; i++) {
		c->ll[i].fd = -1;
		c->ll[i].id = i;
	}
	for (i = 0; i < c->nw_slots; i++) {
		c->nw[i].fd = -1;
		c->nw_free[c->nw_slots - 1 - i] = i;
	}
	for (i = 0; i < c->fl_n; i++)
		c->fl[i].fd = -1;
	c->nw_free_n = c->nw_slots;

	c->sig_fd = probe_signalfd();
	c->ep = epoll_create1(EPOLL_CLOEXEC);
	if (c->sig_fd < 0 || c->ep < 0 || probe_epoll_add(c->ep, c->sig_fd, EPOLLIN, probe_key(PROBE_EV_SIG, 0, 0)) < 0) {
		fprintf(stderr, "tandem-probe client: setup: %s\n", strerror(errno));
		return PROBE_EXIT_FAIL;
	}
	if (o->udp_hz > 0) {
		int rcvbuf = 1 << 20;

		/* Unconnected on purpose: a connected UDP socket would turn an
		 * ICMP error from the outage into a failed send afterwards. */
		c->udp_fd = socket(c->target.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->udp_fd < 0) {
			fprintf(stderr, "tandem-probe client: udp socket: %s\n", strerror(errno));
			return PROBE_EXIT_FAIL;
		}
		setsockopt(c->udp_fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
		if (o->bind_s && bind(c->udp_fd, (struct sockaddr *)&c->bind, c->bind_len) < 0) {
			fprintf(stderr, "tandem-probe client: bind %s: %s\n", o->bind_s, strerror(errno));
			return PROBE_EXIT_FAIL;
		}
		if (probe_epoll_add(c->ep, c->udp_fd, EPOLLIN, probe_key(PROBE_EV_UDP, 0, 0)) < 0) {
			fprintf(stderr, "tandem-probe client: epoll: %s\n", strerror(errno));
			return PROBE_EXIT_FAIL;
		}
	}
	for (i = 0; i < c->fl_n; i++) {
		struct probe_flow *f = &c->fl[i];

		/* Unconnected like flow 0. Bound now (port 0 without --bind),
		 * so each flow has its own source port from its first datagram. */
		f->fd = socket(c->target.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (f->fd < 0) {
			fprintf(stderr, "tandem-probe client: udp socket of flow %u: %s\n", i + 1, strerror(errno));
			return PROBE_EXIT_FAIL;
		}
		if (o->bind_s ? bind(f->fd, (struct sockaddr *)&c->bind, c->bind_len) < 0
			      : probe_bind_any(f->fd, c->target.ss_family) < 0) {
			fprintf(stderr, "tandem-probe client: bind udp flow %u: %s\n", i + 1, strerror(errno));
			return PROBE_EXIT_FAIL;
		}
		if (probe_epoll_add(c->ep, f->fd, EPOLLIN, probe_key(PROBE_EV_FLOW, 0, i)) < 0) {
			fprintf(stderr, "tandem-probe client: epoll: %s\n", strerror(errno));
			return PROBE_EXIT_FAIL;
		}
	}
	if (o->events_file) {
		/* Fully buffered and flushed every PROBE_CHECK_EVERY_MS: the
		 * loop never waits on a write per event. */
		c->ev = fopen(o->events_file, "we");
		if (!c->ev) {
			fprintf(stderr, "tandem-probe client: --events %s: %s\n", o->events_file, strerror(errno));
			return PROBE_EXIT_FAIL;
		}
		setvbuf(c->ev, NULL, _IOFBF, 1 << 16);
	}
	c->realtime = probe_realtime(o->realtime);
	if (o->ready_file && unlink(o->ready_file) < 0 && errno != ENOENT) {
		fprintf(stderr, "tandem-probe client: cannot remove old %s: %s\n", o->ready_file, strerror(errno));
		return PROBE_EXIT_FAIL;
	}
	return PROBE_EXIT_OK;
}

static void probe_client_open_ll(struct probe_client *c, int64_t now)
{
	uint32_t i;

	for (i = 0; i < c->ll_n; i++) {
		struct probe_ll *l = &c->ll[i];
		int err = 0;

		l->state = PROBE_LL_CONNECTING;
		l->start_ns = now;
		l->fd = probe_tcp_connect(c, &err);
		if (l->fd < 0) {
			probe_ll_end(c, l, err, NULL);
			continue;
		}
		l->ev = EPOLLOUT;
		if (probe_epoll_add(c->ep, l->fd, EPOLLOUT, probe_key(PROBE_EV_LL, 0, i)) < 0)
			probe_ll_end(c, l, errno, NULL);
	}
}

static int probe_wait(int ep, struct epoll_event *evs, int64_t timeout_ns)
{
	struct timespec ts = { .tv_sec = timeout_ns / PROBE_NS_PER_S, .tv_nsec = timeout_ns % PROBE_NS_PER_S };
	static bool no_pwait2;
	int n;

	/* Sub-millisecond waits keep a 1 kHz stream on its beat;
	 * epoll_wait's millisecond timeout is the fallback for old kernels. */
	if (!no_pwait2) {
		n = epoll_pwait2(ep, evs, PROBE_EVENTS_MAX, &ts, NULL);
		if (n >= 0 || errno != ENOSYS)
			return n;
		no_pwait2 = true;
	}
	return epoll_wait(ep, evs, PROBE_EVENTS_MAX, (int)((timeout_ns + PROBE_NS_PER_MS - 1) / PROBE_NS_PER_MS));
}

static int64_t probe_client_next(const struct probe_client *c)
{
	int64_t next = c->next_check_ns;

	if (c->loading) {
		if (c->o.udp_hz > 0 && c->udp_sent < c->udp_total)
			next = probe_min(next, probe_udp_due(c, c->udp_sent));
		if (c->ll_n > 0)
			next = probe_min(next, probe_ll_due(c));
		if (c->fl_n > 0)
			next = probe_min(next, probe_flow_due(c));
		if (c->new_attempted < c->new_total)
			next = probe_min(next, c->t0 + (int64_t)c->new_attempted * c->o.new_every_ms * PROBE_NS_PER_MS);
		next = probe_min(next, c->end_ns);
	} else {
		next = probe_min(next, probe_min(c->drain_end_ns, c->hard_end_ns));
	}
	if (!c->unreach_checked)
		next = probe_min(next, c->t0 + PROBE_UNREACH_CHECK_MS * PROBE_NS_PER_MS);
	return next;
}

static void probe_client_dispatch(struct probe_client *c, const struct epoll_event *ev, int64_t now)
{
	uint64_t key = ev->data.u64;
	uint64_t type = key >> 60;
	uint32_t gen = (uint32_t)(key >> 32) & 0x0fffffffu, idx = (uint32_t)key;

	if (type == PROBE_EV_UDP) {
		probe_udp_receive(c);
	} else if (type == PROBE_EV_FLOW) {
		probe_flow_receive(c, idx);
	} else if (type == PROBE_EV_LL) {
		probe_ll_event(c, idx, ev->events, now);
	} else if (type == PROBE_EV_NEW) {
		probe_new_event(c, gen, idx, ev->events, now);
	} else if (type == PROBE_EV_SIG) {
		struct signalfd_siginfo si;

		if (read(c->sig_fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
			return;
		/* The first signal ends the load and reports; a second one
		 * cuts the drain short too. */
		if (c->loading) {
			c->interrupted = true;
			c->end_ns = now;
		} else {
			c->hard_end_ns = now;
		}
	}
}

static void probe_client_free(struct probe_client *c)
{
	uint32_t i;

	for (i = 0; c->ll && i < c->ll_n; i++)
		if (c->ll[i].fd >= 0)
			close(c->ll[i].fd);
	for (i = 0; c->nw && i < c->nw_slots; i++)
		if (c->nw[i].fd >= 0)
			close(c->nw[i].fd);
	for (i = 0; c->fl && i < c->fl_n; i++)
		if (c->fl[i].fd >= 0)
			close(c->fl[i].fd);
	if (c->udp_fd >= 0)
		close(c->udp_fd);
	if (c->sig_fd >= 0)
		close(c->sig_fd);
	if (c->ep >= 0)
		close(c->ep);
	if (c->ev)
		fclose(c->ev);
	free(c->ll);
	free(c->nw);
	free(c->nw_free);
	free(c->udp_seen);
	free(c->gaps);
	free(c->fl);
}

static int probe_client_run(struct probe_client *c)
{
	struct epoll_event evs[PROBE_EVENTS_MAX];
	int64_t now;

	c->t0 = probe_now_ns();
	c->end_ns = c->t0 + c->o.duration_ms * PROBE_NS_PER_MS;
	c->next_check_ns = c->t0 + PROBE_CHECK_EVERY_MS * PROBE_NS_PER_MS;
	c->ready_ns = -1;
	c->loading = true;
	c->ll_cur_k = 1; /* round 0 is the frame each connection sends when it opens */
	probe_event(c, probe_wall_ms(), "start",
		    ",\"target\":\"%s\",\"port\":%lld,\"duration_ms\":%lld,\"udp_hz\":%lld,\"tcp\":%lld"
		    ",\"new_every_ms\":%lld,\"gap_over_ms\":%d",
		    c->o.target_s, c->o.port, c->o.duration_ms, c->o.udp_hz, c->o.tcp, c->o.new_every_ms,
		    PROBE_EVENT_GAP_MS);
	/* The first status, before any load: an unwritable --status-file
	 * fails the run now rather than leave a dashboard blind. */
	if (c->o.status_file && probe_status_write(c, c->t0, NULL) < 0) {
		fprintf(stderr, "tandem-probe client: --status-file %s: %s\n", c->o.status_file, strerror(errno));
		return PROBE_EXIT_FAIL;
	}
	c->status_next_ns = c->t0 + PROBE_STATUS_EVERY_MS * PROBE_NS_PER_MS;
	probe_client_open_ll(c, c->t0);

	for (;;) {
		int n, i;

		now = probe_now_ns();
		if (c->loading && now >= c->end_ns) {
			/* Load over: no more sends. Wait for late echoes and for
			 * new connections in flight, which end by their own
			 * timeout, so the drain is bounded too. */
			c->loading = false;
			c->end_ns = probe_min(c->end_ns, now);
			c->drain_end_ns = c->end_ns + c->o.drain_ms * PROBE_NS_PER_MS;
			c->hard_end_ns = c->drain_end_ns + c->o.new_timeout_ms * PROBE_NS_PER_MS;
		}
		if (!c->unreach_checked && (now - c->t0 >= PROBE_UNREACH_CHECK_MS * PROBE_NS_PER_MS || !c->loading)) {
			c->unreach_checked = true;
			if (probe_client_unreachable(c)) {
				struct probe_verdict v;

				/* The last status says done, and what little was seen. */
				c->loading = false;
				c->end_ns = probe_min(c->end_ns, now);
				probe_client_judge(c, now, &v, true);
				probe_status_tick(c, now, &v);
				fprintf(stderr,
					"tandem-probe client: target %s port %lld unreachable: no UDP echo within "
					"%d ms and no TCP connection established\n",
					c->o.target_s, c->o.port, PROBE_UNREACH_CHECK_MS);
				return PROBE_EXIT_FAIL;
			}
		}
		if (!c->loading) {
			if (now >= c->hard_end_ns)
				break;
			if (c->nw_pending == 0 && (now >= c->drain_end_ns || probe_client_settled(c)))
				break;
		}
		{
			int64_t next = probe_client_next(c);

			n = probe_wait(c->ep, evs, next > now ? next - now : 0);
		}
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "tandem-probe client: epoll: %s\n", strerror(errno));
			return PROBE_EXIT_FAIL;
		}
		now = probe_now_ns();
		for (i = 0; i < n; i++)
			probe_client_dispatch(c, &evs[i], now);
		now = probe_now_ns();
		if (c->loading && now < c->end_ns) {
			if (c->o.udp_hz > 0)
				probe_udp_send_due(c, now);
			probe_flow_send_due(c, now);
			probe_ll_write_due(c, now);
			while (c->new_attempted < c->new_total &&
			       c->t0 + (int64_t)c->new_attempted * c->o.new_every_ms * PROBE_NS_PER_MS <= now)
				probe_new_start(c, now);
		}
		if (now >= c->next_check_ns) {
			probe_client_check(c, now);
			c->next_check_ns = now + PROBE_CHECK_EVERY_MS * PROBE_NS_PER_MS;
			/* Events reach the file within a check period, so a
			 * probe killed without its report still leaves them. */
			if (c->ev_dirty) {
				if (fflush(c->ev) != 0)
					c->ev_errors++;
				c->ev_dirty = false;
			}
		}
		probe_client_ready(c, now);
		if (c->o.status_file && now >= c->status_next_ns) {
			probe_status_tick(c, now, NULL);
			c->status_next_ns = now + PROBE_STATUS_EVERY_MS * PROBE_NS_PER_MS;
		}
	}
	/* New connections still pending at the hard end ran out of time. */
	for (uint32_t i = 0; i < c->nw_slots; i++)
		if (c->nw[i].state != PROBE_NEW_FREE)
			probe_new_end(c, &c->nw[i], 0, "timeout", now);
	if (c->o.ready_file && c->ready_ns < 0)
		fprintf(stderr,
			"tandem-probe client: never ready: %u of %u long-lived connections echoed, %" PRIu64
			" UDP echoes, %u of %u extra UDP flows echoed\n",
			c->ll_echoed, c->ll_n, c->udp_received, c->fl_echoed, c->fl_n);
	return probe_client_report(c, now) < 0 ? PROBE_EXIT_FAIL : PROBE_EXIT_OK;
}

static int probe_client(int argc, char **argv)
{
	struct probe_client c;
	int rc;

	memset(&c, 0, sizeof(c));
	c.ep = c.udp_fd = c.sig_fd = -1;
	if (probe_client_parse(argc, argv, &c.o) < 0)
		return PROBE_EXIT_USAGE;
	rc = probe_client_setup(&c);
	if (rc == PROBE_EXIT_OK)
		rc = probe_client_run(&c);
	probe_client_free(&c);
	return rc;
}

/* ------------------------------------------------------------------ main */

static void probe_usage(FILE *f)
{
	fprintf(f, "usage: tandem-probe server --bind ADDR [--port P] [--duration-ms D]\n"
		   "       tandem-probe client --target ADDR --duration-ms D [options]   (client --help)\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		probe_usage(stderr);
		return PROBE_EXIT_USAGE;
	}
	if (strcmp(argv[1], "server") == 0)
		return probe_server(argc - 1, argv + 1);
	if (strcmp(argv[1], "client") == 0)
		return probe_client(argc - 1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		probe_usage(stdout);
		return PROBE_EXIT_OK;
	}
	fprintf(stderr, "tandem-probe: unknown command '%s'\n", argv[1]);
	probe_usage(stderr);
	return PROBE_EXIT_USAGE;
}
