#!/usr/bin/env bash
# sessions.sh BUILD_DIR - `make bench`, session sync (issue 3): Tandem's
# session sync against conntrackd (conntrack-tools, FTFW mode over UDP on
# the control link) in the same lab and the same run, as a table with the
# ratio per figure, raw figures in lab-out/bench/sessions.tsv.
#
# Lab: two gateways (tests/lab/lib.sh, namespace prefix TL_PREFIX, default
# "tbs-"). Kernel tables are filled by a small libnetfilter_conntrack loader
# compiled from this file (ctload, below): entry i is an ESTABLISHED TCP
# session 192.0.2.(1 + i/64000 % 250):(1024 + i%64000) -> 198.51.100.100:80,
# timeout 3600 s, created through ctnetlink, so the kernel raises the same
# NEW event a forwarded connection raises (and no packet is sent anywhere).
# tests/lab/ct_check's bench mode is not used: it needs an empty namespace
# and removes what it injects.
#
# Figures, for each implementation:
#  1. Bulk sync of N sessions (100k, then BENCH_SESSIONS_MAX, default 1M):
#     gw1 (primary) holds N entries, gw2's kernel table is empty; the clock
#     starts when gw2's daemon is launched and stops when gw2 holds all N:
#     Tandem: gw2 reports sessions.in_sync and its count equals gw1's, and
#     its kernel holds N entries (checked). conntrackd: gw2 started, then
#     `conntrackd -n` (resync request to the peer); "ext" stops when gw2's
#     external cache holds N (`conntrackd -s`), then `conntrackd -c` commits
#     it and "kernel" stops when gw2's kernel holds N. Tandem writes the
#     kernel as it receives, so its one time compares with conntrackd's
#     kernel time (the ext time is shown as well).
#  2. Incremental sync at a fixed creation rate (BENCH_SESSIONS_RATES, per
#     second, default "5000 20000 50000", each for BENCH_SESSIONS_SECS=10 s;
#     a loader that cannot keep up on this machine stops at 3 x that time
#     and the rate it achieved is shown) on gw1, both daemons running with
#     the 100k sessions synced:
#     - sync rate: sessions that reached gw2, divided by the time from the
#       stream's start to the poll that saw the last of them (all must
#       arrive within BENCH_SESSIONS_DRAIN_S=20 s of the stream's end);
#     - lag, one method for both: every 50 ms a poller reads how many of the
#       stream's sessions gw2 holds (Tandem: gw2's kernel table count;
#       conntrackd: its external cache count, as FTFW writes the kernel only
#       on commit). Sessions are taken to arrive in creation order, so the
#       sessions counted for the first time at a poll arrived by then: each
#       of 2000 sessions spread over the stream gets lag = that poll's time
#       minus its creation time (from the loader's progress log, 50 ms
#       steps, interpolated). p50/p99 over them; resolution 50 ms plus the
#       poll's own duration (a few ms).
#     - Tandem only, end to end per session: each stream entry carries its
#       creation time (CLOCK_REALTIME ms) in its conntrack mark; a listener
#       on gw2's kernel NEW events computes now - mark for every session
#       ("e2e" rows: p50/p99/max over all of them). It checks the polled
#       method (and costs Tandem's run some CPU). conntrackd has no such
#       rows: its sessions reach gw2's kernel only on commit.
#     The loader, both daemons and the poller share the machine's cores:
#     when the loader falls short of a rate, compare the rows with the
#     "created on gw1" row of each implementation in view.
#  3. Memory: VmRSS and VmHWM (/proc/PID/status) of the daemon on gw1 and
#     gw2 after the largest bulk sync (Tandem: its supervisor plus the
#     worker process it runs, which holds the sessions).
#  4. Tandem's health during the run: the longest event-loop stall each
#     tandemd logged (core.tilt: a loop turn longer than half the dead
#     interval) and how many state changes group 1 went through on gw1 (1 =
#     its first election only), and how often a node declared the other
#     lost. Tandem runs with BENCH_SESSIONS_TIMERS (heartbeat_ms x
#     dead_after), default 100x3, the failover bench's timers: the 1M fill,
#     the 1M bulk and the 50k/s stream must not cost a heartbeat.
#
# One kernel for every namespace, which the figures inherit (both
# implementations alike): ctnetlink requests of all namespaces take one
# mutex in turn (the loader on gw1 and a secondary writing gw2's kernel
# wait for each other; conntrackd's secondary writes the kernel only at
# commit, so during the streams it does not), and while any namespace
# listens to conntrack events every namespace's kernel builds an event for
# each new entry (gw2's kernel builds one for every entry injected, for
# the primary's listener in gw1). On two machines a secondary's kernel
# does neither.
#
# Settings (environment): BENCH_SESSIONS_MAX (default 1000000),
# BENCH_SESSIONS_RATES, BENCH_SESSIONS_SECS, BENCH_SESSIONS_DRAIN_S,
# BENCH_SESSIONS_SYNC_TIMEOUT_S (per bulk, default 180),
# BENCH_SESSIONS_TIMERS, BENCH_CONNTRACKD=0 to skip conntrackd. On recent
# kernels a namespace's nf_conntrack_max is read-only and bounded by the
# initial namespace's, and the hash size is settable only there: both are
# raised in the initial namespace for the run when too low, and restored
# on exit. tandemd and tandemctl are copied at the start, so a rebuild of
# BUILD_DIR during the run does not mix versions; the table and the TSV
# name the binary (version, SHA-256 prefix, git HEAD).
# Exits non-zero when a figure could not be measured, when a stream's
# sessions did not all reach gw2 in time, or when a tandemd did not exit
# cleanly on SIGTERM.

CTLOAD_C=$(cat <<'EOC'
/* ctload - conntrack load for bench/sessions.sh (compiled by it):
 *   ctload fill FIRST N           create entries FIRST..FIRST+N-1 at full speed
 *   ctload stream FIRST RATE SECS create RATE entries/s for SECS s (3 x SECS
 *                                 at most when it cannot keep up), each with
 *                                 mark = creation time (CLOCK_REALTIME ms mod 2^31,
 *                                 | 1 so never 0); logs "ms count" every 50 ms
 *   ctload watch SECS EXPECT      NEW events of this namespace for SECS s or until
 *                                 EXPECT marked entries: lag = now - mark, prints
 *                                 n, p50, p99, max (ms), first/last arrival
 * Entry i: TCP ESTABLISHED 192.0.2.(1 + i/64000 % 250):(1024 + i%64000) ->
 * 198.51.100.100:80, no NAT, timeout 3600 s (documentation addresses only). */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack_tcp.h>

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t wall_mark(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ms = (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	return (uint32_t)(ms & 0x7fffffffu) | 1u;
}

static int mk(struct nfct_handle *h, struct nf_conntrack *c, long i, uint32_t mark)
{
	uint32_t src = htonl(0xc0000200u | (uint32_t)(1 + i / 64000 % 250)); /* 192.0.2.x */
	uint32_t dst = htonl(0xc6336464u);                                   /* 198.51.100.100 */
	uint16_t sp = htons((uint16_t)(1024 + i % 64000)), dp = htons(80);
	nfct_set_attr_u8(c, ATTR_L3PROTO, AF_INET);
	nfct_set_attr_u32(c, ATTR_IPV4_SRC, src);
	nfct_set_attr_u32(c, ATTR_IPV4_DST, dst);
	nfct_set_attr_u8(c, ATTR_L4PROTO, IPPROTO_TCP);
	nfct_set_attr_u8(c, ATTR_REPL_L3PROTO, AF_INET);
	nfct_set_attr_u8(c, ATTR_REPL_L4PROTO, IPPROTO_TCP);
	nfct_set_attr_u8(c, ATTR_TCP_WSCALE_ORIG, 7);
	nfct_set_attr_u8(c, ATTR_TCP_WSCALE_REPL, 7);
	nfct_set_attr_u16(c, ATTR_PORT_SRC, sp);
	nfct_set_attr_u16(c, ATTR_PORT_DST, dp);
	nfct_set_attr_u32(c, ATTR_REPL_IPV4_SRC, dst);
	nfct_set_attr_u32(c, ATTR_REPL_IPV4_DST, src);
	nfct_set_attr_u16(c, ATTR_REPL_PORT_SRC, dp);
	nfct_set_attr_u16(c, ATTR_REPL_PORT_DST, sp);
	nfct_set_attr_u8(c, ATTR_TCP_STATE, TCP_CONNTRACK_ESTABLISHED);
	nfct_set_attr_u32(c, ATTR_STATUS, IPS_SEEN_REPLY | IPS_ASSURED);
	nfct_set_attr_u32(c, ATTR_TIMEOUT, 3600);
	if (mark)
		nfct_set_attr_u32(c, ATTR_MARK, mark);
	return nfct_query(h, NFCT_Q_CREATE, c);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

struct watch {
	uint32_t *lag;
	long n, cap, expect;
	double first, last;
};

static int on_new(enum nf_conntrack_msg_type t, struct nf_conntrack *c, void *arg)
{
	struct watch *w = arg;
	(void)t;
	if (!nfct_attr_is_set(c, ATTR_MARK))
		return NFCT_CB_CONTINUE;
	uint32_t m = nfct_get_attr_u32(c, ATTR_MARK);
	if (!m)
		return NFCT_CB_CONTINUE;
	uint32_t lag = (wall_mark() - m) & 0x7fffffffu;
	double now = mono_s();
	if (!w->n)
		w->first = now;
	w->last = now;
	if (w->n < w->cap)
		w->lag[w->n++] = lag;
	return w->n >= w->expect ? NFCT_CB_STOP : NFCT_CB_CONTINUE;
}

int main(int argc, char **argv)
{
	if (argc == 4 && (!strcmp(argv[1], "fill"))) {
		long first = atol(argv[2]), n = atol(argv[3]), bad = 0;
		struct nfct_handle *h = nfct_open(CONNTRACK, 0);
		struct nf_conntrack *c = nfct_new();
		if (!h || !c)
			return perror("nfct_open"), 1;
		double t0 = mono_s();
		for (long i = first; i < first + n; i++)
			if (mk(h, c, i, 0) < 0 && bad++ < 3)
				fprintf(stderr, "ctload: create %ld: %s\n", i, strerror(errno));
		double t1 = mono_s();
		printf("fill %ld %.3f %ld\n", n - bad, t1 - t0, bad);
		return bad ? 1 : 0;
	}
	if (argc == 5 && !strcmp(argv[1], "stream")) {
		long first = atol(argv[2]), rate = atol(argv[3]), secs = atol(argv[4]), bad = 0;
		long total = rate * secs, done = 0;
		struct nfct_handle *h = nfct_open(CONNTRACK, 0);
		struct nf_conntrack *c = nfct_new();
		if (!h || !c || rate < 1 || secs < 1)
			return fprintf(stderr, "ctload stream: bad arguments or nfct_open\n"), 1;
		double t0 = mono_s(), next_log = 0;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		printf("start %lld\n", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
		while (done < total) {
			double el = mono_s() - t0;
			if (el > 3.0 * secs)
				break; /* bounded: a loader that cannot keep up stops at 3x */
			long due = (long)(el * rate) + 1;
			if (due > total)
				due = total;
			while (done < due) {
				if (mk(h, c, first + done, wall_mark()) < 0 && bad++ < 3)
					fprintf(stderr, "ctload: create %ld: %s\n", first + done, strerror(errno));
				done++;
				/* Behind schedule this loop runs long: the progress
				 * log must go on (the lag figures interpolate in it). */
				if ((done & 63) == 0) {
					el = mono_s() - t0;
					if (el >= next_log) {
						printf("log %.0f %ld\n", el * 1000, done);
						next_log = el + 0.05;
					}
					if (el > 3.0 * secs)
						break;
				}
			}
			if (el >= next_log) {
				printf("log %.0f %ld\n", el * 1000, done);
				next_log = el + 0.05;
			}
			if (done < total) {
				struct timespec d = {0, 200000}; /* 0.2 ms ticks */
				nanosleep(&d, NULL);
			}
		}
		double t1 = mono_s();
		printf("log %.0f %ld\n", (t1 - t0) * 1000, done);
		printf("stream %ld %.3f %ld\n", done - bad, t1 - t0, bad);
		return bad ? 1 : 0;
	}
	if (argc == 4 && !strcmp(argv[1], "watch")) {
		double secs = atof(argv[2]);
		struct watch w = {.expect = atol(argv[3])};
		w.cap = w.expect > 0 ? w.expect : 1;
		w.lag = calloc((size_t)w.cap, sizeof(*w.lag));
		struct nfct_handle *h = nfct_open(CONNTRACK, NF_NETLINK_CONNTRACK_NEW);
		if (!h || !w.lag)
			return perror("nfct_open"), 1;
		nfnl_rcvbufsiz(nfct_nfnlh(h), 256 * 1024 * 1024);
		int one = 1; /* ENOBUFS is reported; go on and count it */
		(void)one;
		struct timeval tv = {0, 100000};
		setsockopt(nfct_fd(h), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		nfct_callback_register(h, NFCT_T_NEW, on_new, &w);
		printf("ready\n");
		fflush(stdout);
		double t0 = mono_s();
		long overruns = 0;
		while (w.n < w.expect && mono_s() - t0 < secs) {
			if (nfct_catch(h) < 0) {
				if (errno == ENOBUFS)
					overruns++;
				else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
					return perror("nfct_catch"), 1;
			}
		}
		qsort(w.lag, (size_t)w.n, sizeof(*w.lag), cmp_u32);
		if (w.n)
			printf("watch %ld %u %u %u %.3f %ld\n", w.n, w.lag[(w.n - 1) / 2],
			       w.lag[(long)((w.n - 1) * 0.99)], w.lag[w.n - 1], w.last - w.first, overruns);
		else
			printf("watch 0 0 0 0 0 %ld\n", overruns);
		return 0;
	}
	fprintf(stderr, "usage: ctload fill FIRST N | stream FIRST RATE SECS | watch SECS EXPECT\n");
	return 2;
}
EOC
)

set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
export TL_PREFIX=${TL_PREFIX:-tbs-}
LAB_NAME=bench-sessions
source "$repo/tests/lab/lib.sh"
lab_init "${1:-}" tandemd tandemctl

MAX=${BENCH_SESSIONS_MAX:-1000000}
RATES=${BENCH_SESSIONS_RATES:-5000 20000 50000}
SECS=${BENCH_SESSIONS_SECS:-10}
DRAIN=${BENCH_SESSIONS_DRAIN_S:-20}
SYNC_TO=${BENCH_SESSIONS_SYNC_TIMEOUT_S:-180}
WITH_CTD=${BENCH_CONNTRACKD:-1}
TIMERS=${BENCH_SESSIONS_TIMERS:-100x3}
[[ "$TIMERS" =~ ^[0-9]+x[0-9]+$ ]] || { echo "sessions: BENCH_SESSIONS_TIMERS must be MSxN" >&2; exit 2; }
SMALL=100000
for v in "$MAX" "$SECS" "$DRAIN" "$SYNC_TO" $RATES; do
	[[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "sessions: bad number '$v' in the settings" >&2; exit 2; }
done
[ "$MAX" -le 1048576 ] || { echo "sessions: BENCH_SESSIONS_MAX > 1048576 (tandemd's sessions_max)" >&2; exit 2; }
if [ "$WITH_CTD" = 1 ] && ! command -v conntrackd >/dev/null; then
	echo "sessions: conntrackd not installed (scripts/deps.sh); its rows are skipped" >&2
	WITH_CTD=0
fi
command -v conntrack >/dev/null || { echo "sessions: conntrack not installed (scripts/deps.sh)" >&2; exit 1; }
SIZES=$SMALL
[ "$MAX" -gt "$SMALL" ] && SIZES="$SMALL $MAX"
[ "$MAX" -lt "$SMALL" ] && SIZES=$MAX
STREAM_TOTAL=0
for r in $RATES; do STREAM_TOTAL=$((STREAM_TOTAL + r * SECS)); done
# Room in each namespace's table: the largest bulk or the smallest one and
# every stream, whichever is larger, and a margin.
NEED=$((MAX > ${SIZES%% *} + STREAM_TOTAL ? MAX : ${SIZES%% *} + STREAM_TOTAL))
NEED=$((NEED + 100000))

out=$repo/lab-out/bench
[ "$P" = tbs- ] || out=$repo/lab-out/${P%-}/bench
mkdir -p "$out" || exit 1
TSV=$out/sessions.tsv
declare -A FIG=()
FAILED=0
# rec IMPL FIGURE PARAM VALUE UNIT
rec() {
	printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$TSV"
	FIG["$1|$2|$3"]=$4
	printf '  %-10s %-14s %-8s %s %s\n' "$@" >&2
}
bad() { echo "sessions: $*" >&2; FAILED=$((FAILED + 1)); }
# A figure that falls short is a result, printed after the table, not a
# failed run; bad() is for runs whose figures cannot be trusted.
SHORTFALLS=()
shortfall() { echo "sessions: shortfall: $*" >&2; SHORTFALLS+=("$*"); }

# ---------------------------------------------------------------- kernel limits

ORIG_MAX= ORIG_BUCKETS= BIN_SNAP=
restore_sysctl() {
	[ -n "$BIN_SNAP" ] && rm -rf "$BIN_SNAP"
	BIN_SNAP=
	[ -n "$ORIG_BUCKETS" ] && sysctl -qw net.netfilter.nf_conntrack_buckets="$ORIG_BUCKETS"
	[ -n "$ORIG_MAX" ] && sysctl -qw net.netfilter.nf_conntrack_max="$ORIG_MAX"
	ORIG_MAX= ORIG_BUCKETS=
}
raise_sysctl() {
	local cur
	modprobe nf_conntrack 2>/dev/null
	cur=$(sysctl -n net.netfilter.nf_conntrack_max) || { bad "no nf_conntrack_max"; return 1; }
	if [ "$cur" -lt "$NEED" ]; then
		sysctl -qw net.netfilter.nf_conntrack_max="$NEED" || { bad "cannot raise nf_conntrack_max"; return 1; }
		ORIG_MAX=$cur
	fi
	cur=$(sysctl -n net.netfilter.nf_conntrack_buckets)
	if [ "$cur" -lt 1048576 ] && [ "$MAX" -gt 262144 ]; then
		if sysctl -qw net.netfilter.nf_conntrack_buckets=1048576; then
			ORIG_BUCKETS=$cur
		else
			echo "sessions: nf_conntrack_buckets stays $cur (not settable here)" >&2
		fi
	fi
}
# The lab's trap plus the sysctls back; lab_up sets its trap, so this runs
# after each lab_up.
bench_exit() {
	local rc=$?
	restore_sysctl
	(exit $rc)
	_lab_exit
}
bench_lab_up() {
	lab_up 2 "$@"
	trap 'bench_exit' EXIT
	local i
	# Read-only below the initial namespace on recent kernels (the limit is
	# then the initial namespace's, raised above); settable on older ones.
	for i in 1 2; do
		lab_nsexec "gw$i" sysctl -qw net.netfilter.nf_conntrack_max="$NEED" 2>/dev/null
	done
	cc -O2 -o "$LAB_DIR/ctload" -x c - $(pkg-config --cflags --libs libnetfilter_conntrack libnfnetlink) \
		<<<"$CTLOAD_C" || lab_fail "cannot build ctload"
	# kcount's placeholders: bounded by the longest a run may take.
	for i in 1 2; do
		ip netns exec "${P}gw$i" sleep 7200 &
		NS_PID[$i]=$!
		LAB_EXTRA_PIDS+=("$!")
	done
}

# kcount I : gw I's kernel table size. Read with shell builtins from the
# per-namespace conntrack statistics of a placeholder process in that
# namespace (started by bench_lab_up), not by forking `ip netns exec cat`
# at every poll: the polls of both implementations then cost next to no
# CPU on the machine whose CPU the sync itself needs.
declare -a NS_PID=()
kcount() {
	local e l
	if [ -n "${NS_PID[$1]:-}" ] && { read -r l && read -r e l; } <"/proc/${NS_PID[$1]}/net/stat/nf_conntrack" 2>/dev/null; then
		echo $((16#$e))
	else
		lab_nsexec "gw$1" cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo -1
	fi
}
# fn_ge FN N : FN's output (evaluated now, at each poll) is >= N.
fn_ge() { [ "$($1)" -ge "$2" ] 2>/dev/null; }
kcount1() { kcount 1; }
kcount2() { kcount 2; }
kflush() { lab_nsexec "gw$1" conntrack -F >/dev/null 2>&1; lab_wait_until 30 fn_ge "neg_kcount $1" -100; }
neg_kcount() { echo $((-$(kcount "$1"))); }
NEXT=0 # next ctload entry index
# fill_to N : gw1's kernel table grows to N entries (at least).
fill_to() {
	local n=$(($1 - $(kcount 1))) res
	[ "$n" -gt 0 ] || return 0
	res=$(lab_nsexec gw1 timeout 300 "$LAB_DIR/ctload" fill "$NEXT" "$n") || { bad "fill: $res"; return 1; }
	NEXT=$((NEXT + n))
	lab_log "filled gw1 with $n entries ($res); kernel count $(kcount 1)"
}
rss_of() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
# t_rss I FIELD : memory of gw I's tandemd, the process that holds the
# sessions: the supervised worker (a child started with --worker) when
# the started tandemd is its supervisor, else the started process. The
# supervisor's own memory is added (both are Tandem's cost).
t_rss() {
	local pid=${LAB_PID[$1]} c w= tot
	for c in $(pgrep -P "$pid" 2>/dev/null); do
		tr '\0' ' ' <"/proc/$c/cmdline" 2>/dev/null | grep -q -- '--worker' && w=$c
	done
	tot=$(rss_of "$pid" "$2")
	[ -n "$w" ] && tot=$((tot + $(rss_of "$w" "$2")))
	echo "$tot"
}
now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- incremental

# incremental IMPL RATE COUNT_FN : a stream of RATE new sessions/s for SECS
# on gw1; COUNT_FN prints how many sessions gw2 holds. Tandem also gets the
# end-to-end listener on gw2's kernel.
incremental() {
	local impl=$1 rate=$2 fn=$3 total=$(($2 * SECS)) base d=$LAB_DIR/incr-$1-$2 k wpid= ppid spid
	mkdir -p "$d"
	base=$($fn)
	if [ "$impl" = tandem ]; then
		ip netns exec "${P}gw2" "$LAB_DIR/ctload" watch $((SECS + DRAIN + 5)) "$total" >"$d/watch" 2>&1 &
		wpid=$!
		LAB_EXTRA_PIDS+=("$wpid")
		lab_wait_until 5 grep -q ready "$d/watch" || bad "$impl $rate: listener not ready"
	fi
	# The poller: bounded by its own count of rounds. The time is taken
	# after the count is read, so a session the poll finds was there by
	# then (a time taken before would make a slow count read, such as
	# conntrackd -s, look like a shorter lag).
	(for ((k = 0; k < (SECS + DRAIN + 5) * 20; k++)); do
		v=$($fn)
		echo "$(now_ms) $v"
		sleep 0.05
	done) >"$d/poll" &
	ppid=$!
	LAB_EXTRA_PIDS+=("$ppid")
	lab_nsexec gw1 timeout $((3 * SECS + 10)) "$LAB_DIR/ctload" stream "$NEXT" "$rate" "$SECS" >"$d/stream" 2>&1
	NEXT=$((NEXT + total))
	# What the loader created (less than asked when it could not keep up).
	total=$(awk '$1 == "stream" { print $2 }' "$d/stream")
	[ -n "$total" ] || { bad "$impl $rate: the stream failed: $(tail -2 "$d/stream")"; return 1; }
	lab_wait_until "$DRAIN" fn_ge "$fn" $((base + total))
	sleep 0.2
	_lab_kill_pid "$ppid"
	[ -n "$wpid" ] && { wait "$wpid"; _lab_kill_pid "$wpid"; }
	local achieved got t_start t_last
	achieved=$(awk '$1 == "stream" { printf "%.0f", $2 / $3 }' "$d/stream")
	# Lag samples and the arrival rate from the poll.
	awk -v base="$base" -v total="$total" '
		# inj(k): when session k of the stream was created (wall ms),
		# interpolated in the progress log of the loader.
		function inj(k,   j) {
			while (j0 < n && lc[j0] < k) j0++
			j = j0
			if (j == 1 || lc[j] == lc[j - 1]) return start + lt[j]
			return start + lt[j - 1] + (k - lc[j - 1]) * (lt[j] - lt[j - 1]) / (lc[j] - lc[j - 1])
		}
		FNR == NR {
			if ($1 == "start") start = $2
			if ($1 == "log") { n++; lt[n] = $2; lc[n] = $3 }
			next
		}
		FNR == 1 { j0 = 1; g = int(total / 2000); if (g < 1) g = 1; next_k = g }
		{
			k = $2 - base
			if (k > total) k = total
			if (k > got) { got = k; last = $1 }
			# Every grid session that arrived by this poll gets its lag.
			while (next_k <= k) {
				lag = $1 - inj(next_k)
				s[++ns] = lag < 0 ? 0 : lag
				next_k += g
			}
		}
		END {
			for (i = 2; i <= ns; i++) for (j = i; j > 1 && s[j - 1] > s[j]; j--) { t = s[j]; s[j] = s[j - 1]; s[j - 1] = t }
			p50 = ns ? s[int((ns - 1) * 0.5) + 1] : -1
			p99 = ns ? s[int((ns - 1) * 0.99) + 1] : -1
			rate = last > start ? got / ((last - start) / 1000) : 0
			printf "%d %.0f %.0f %.0f %d\n", got, rate, p50, p99, ns
		}' "$d/stream" "$d/poll" >"$d/result"
	read -r got arate p50 p99 ns <"$d/result"
	rec "$impl" stream_achieved "$rate" "$achieved" "created/s"
	rec "$impl" synced "$rate" "$got/$total" "sessions"
	rec "$impl" sync_rate "$rate" "$arate" "sessions/s"
	rec "$impl" lag_p50 "$rate" "$p50" ms
	rec "$impl" lag_p99 "$rate" "$p99" ms
	[ "$got" = "$total" ] || shortfall "$impl $rate/s: only $got of $total sessions reached gw2 within ${DRAIN} s"
	if [ "$impl" = tandem ]; then
		local w
		w=$(awk '$1 == "watch"' "$d/watch")
		if [ -n "$w" ]; then
			set -- $w
			rec "$impl" e2e_n "$rate" "$2" sessions
			rec "$impl" e2e_p50 "$rate" "$3" ms
			rec "$impl" e2e_p99 "$rate" "$4" ms
			rec "$impl" e2e_max "$rate" "$5" ms
			rec "$impl" e2e_overruns "$rate" "$7" count
		else
			bad "tandem $rate/s: listener gave no result: $(tail -2 "$d/watch")"
		fi
	fi
}

# ---------------------------------------------------------------- Tandem

sess() { lab_status "$1" 2>/dev/null | jq -r ".sessions.$2 // empty"; }
t_settled() { [ "$(sess 1 count)" -ge "$(($(kcount 1) - 50))" ] 2>/dev/null; }
t_synced() { # N: the kernel first (cheap), then what both daemons report
	local s
	[ "$(kcount 2)" -ge "$1" ] || return 1
	s=$(lab_status 2 2>/dev/null | jq -r '.sessions | "\(.in_sync) \(.count)"') || return 1
	[ "${s% *}" = true ] && [ "${s#* }" = "$(sess 1 count)" ]
}
tandem_bulk() { # N: gw2 (stopped, empty kernel) is started; time to synced
	local n=$1 t0 t1 el
	lab_wait_until "$SYNC_TO" t_settled || { bad "tandem: gw1 counts $(sess 1 count) of $(kcount 1)"; return 1; }
	n=$(kcount 1)
	t0=$(now_ms)
	lab_start_node 2 --wait 0
	if ! lab_wait_until "$SYNC_TO" t_synced "$1"; then
		shortfall "tandem: gw2 not in sync with $n sessions within $SYNC_TO s ($(lab_status 2 | jq -c .sessions))"
		return 0
	fi
	t1=$(now_ms)
	el=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1000 }')
	rec tandem bulk_kernel_s "$1" "$el" s
	rec tandem bulk_rate "$1" "$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n * 1000 / (b - a) }')" sessions/s
	rec tandem bulk_n "$1" "$n" sessions
}
tandem_phase() {
	echo "=== bench: session sync, Tandem" >&2
	LAB_DIR=$LAB_OUT/bench-sessions-tandem
	bench_lab_up --heartbeat-ms "${TIMERS%x*}" --dead-after "${TIMERS#*x}"
	fill_to "${SIZES%% *}" || return 1
	lab_start_node 1
	lab_wait_primary 1 gw1 $((${TIMERS%x*} * ${TIMERS#*x} / 1000 + 15)) >/dev/null ||
		{ bad "tandem: gw1 not primary"; return 1; }
	tandem_bulk "${SIZES%% *}" || return 1
	for r in $RATES; do incremental tandem "$r" kcount2; done
	if [ "$SIZES" != "${SIZES%% *}" ]; then
		lab_stop_node 2
		kflush 2 || bad "tandem: gw2's table not flushed"
		fill_to "$MAX" || return 1
		tandem_bulk "$MAX" # on failure the rows below still describe the state
	fi
	local i
	for i in 1 2; do
		# The longest event-loop stall each daemon logged (core.tilt), and
		# how often a group changed hands after the first election.
		rec tandem stall_gw$i "${SIZES##* }" "$(grep -o 'event=core.tilt.*stall_ms=[0-9]*' \
			"$LAB_DIR/gw$i.log" | sed 's/.*stall_ms=//' | sort -n | tail -1 | grep . || echo 0)" ms
		rec tandem flaps_gw$i "${SIZES##* }" "$(grep -c 'event=group.state.*group=1 ' \
			"$LAB_DIR/gw$i.log")" count
		rec tandem lost_gw$i "${SIZES##* }" "$(grep -c 'event=peer.state.*to=lost reason=silent_on_all_links' \
			"$LAB_DIR/gw$i.log")" count
		rec tandem rss_gw$i "${SIZES##* }" "$(t_rss "$i" VmRSS)" KiB
		rec tandem hwm_gw$i "${SIZES##* }" "$(t_rss "$i" VmHWM)" KiB
	done
}

# ---------------------------------------------------------------- conntrackd

declare -a CTD_PID=()
ctd_conf() { echo "$LAB_DIR/conntrackd-gw$1.conf"; }
ctd_write_conf() { # I PEER
	cat >"$(ctd_conf "$1")" <<EOC
# conntrackd for gw$1 of the session bench (bench/sessions.sh): FTFW over
# UDP on the control link, tables sized for the largest bulk.
Sync {
	Mode FTFW {
		ResendQueueSize 262144
		DisableExternalCache Off
		StartupResync Off
	}
	UDP {
		IPv4_address 203.0.113.$((10 + $1))
		IPv4_Destination_Address 203.0.113.$((10 + $2))
		Port 3780
		Interface ctl0
		SndSocketBuffer 24985600
		RcvSocketBuffer 24985600
		Checksum on
	}
}
General {
	HashSize 1048576
	HashLimit 4194304
	LogFile $LAB_DIR/conntrackd-gw$1.log
	Syslog off
	LockFile $LAB_SOCK_DIR/ctd-gw$1.lock
	UNIX {
		Path $LAB_SOCK_DIR/ctd-gw$1.ctl
	}
	NetlinkBufferSize 67108864
	NetlinkBufferSizeMaxGrowth 268435456
	NetlinkOverrunResync On
}
EOC
}
ctd() { local i=$1; shift; timeout 20 conntrackd -C "$(ctd_conf "$i")" "$@"; }
# ctd_cache I internal|external : current entries in that cache.
ctd_cache() {
	ctd "$1" -s 2>/dev/null | awk -v want="cache $2:" '
		index($0, want) == 1 { on = 1; next }
		/^cache / { on = 0 }
		on && /current active connections/ { print $NF; exit }'
}
c_count2() { local v; v=$(ctd_cache 2 external); echo "${v:--1}"; }
ctd_start() {
	local i=$1
	rm -f "$LAB_SOCK_DIR/ctd-gw$i.lock" "$LAB_SOCK_DIR/ctd-gw$i.ctl"
	# ip execs conntrackd: $! is the daemon (a shell function would add a
	# subshell between).
	ip netns exec "${P}gw$i" conntrackd -C "$(ctd_conf "$i")" >>"$LAB_DIR/conntrackd-gw$i.out" 2>&1 &
	CTD_PID[$i]=$!
	LAB_EXTRA_PIDS+=("$!")
}
ctd_stop() {
	_lab_kill_pid "${CTD_PID[$1]}"
	CTD_PID[$1]=
	rm -f "$LAB_SOCK_DIR/ctd-gw$1.lock" "$LAB_SOCK_DIR/ctd-gw$1.ctl"
}
ctd_ready() { ctd "$1" -s >/dev/null 2>&1; }
ctd_has() { [ "$(ctd_cache "$1" "$2")" -ge "$3" ] 2>/dev/null; }
ctd_bulk() { # N: both stopped, gw1 holds N, gw2's kernel empty
	local n t0 t1 t2 el
	n=$(kcount 1)
	ctd_start 1
	lab_wait_until 30 ctd_ready 1 || { bad "conntrackd gw1 did not start"; return 1; }
	lab_wait_until "$SYNC_TO" ctd_has 1 internal "$1" ||
		{ bad "conntrackd gw1: internal cache $(ctd_cache 1 internal) of $n"; return 1; }
	n=$(ctd_cache 1 internal)
	t0=$(now_ms)
	ctd_start 2
	lab_wait_until 30 ctd_ready 2 || { bad "conntrackd gw2 did not start"; return 1; }
	ctd 2 -n >/dev/null 2>&1 || { bad "conntrackd gw2: resync request failed"; return 1; }
	lab_wait_until "$SYNC_TO" ctd_has 2 external "$1" ||
		{ shortfall "conntrackd gw2: external cache $(ctd_cache 2 external) of $n within $SYNC_TO s"; return 0; }
	t1=$(now_ms)
	ctd 2 -c >/dev/null 2>&1 &
	LAB_EXTRA_PIDS+=("$!")
	lab_wait_until "$SYNC_TO" fn_ge kcount2 "$1" ||
		{ shortfall "conntrackd gw2: kernel $(kcount 2) of $n after commit within $SYNC_TO s"; return 0; }
	t2=$(now_ms)
	rec conntrackd bulk_ext_s "$1" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1000 }')" s
	rec conntrackd bulk_kernel_s "$1" "$(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.2f", (b - a) / 1000 }')" s
	rec conntrackd bulk_rate "$1" "$(awk -v n="$n" -v a="$t0" -v b="$t2" 'BEGIN { printf "%.0f", n * 1000 / (b - a) }')" sessions/s
	rec conntrackd bulk_n "$1" "$n" sessions
}
conntrackd_phase() {
	echo "=== bench: session sync, conntrackd (FTFW)" >&2
	LAB_DIR=$LAB_OUT/bench-sessions-conntrackd
	bench_lab_up --sessions-sync false
	ctd_write_conf 1 2
	ctd_write_conf 2 1
	NEXT=0
	fill_to "${SIZES%% *}" || return 1
	ctd_bulk "${SIZES%% *}" || return 1
	for r in $RATES; do incremental conntrackd "$r" c_count2; done
	if [ "$SIZES" != "${SIZES%% *}" ]; then
		ctd_stop 2
		ctd_stop 1
		kflush 2 || bad "conntrackd: gw2's table not flushed"
		fill_to "$MAX" || return 1
		ctd_bulk "$MAX"
	fi
	local i
	for i in 1 2; do
		rec conntrackd rss_gw$i "${SIZES##* }" "$(rss_of "${CTD_PID[$i]}" VmRSS)" KiB
		rec conntrackd hwm_gw$i "${SIZES##* }" "$(rss_of "${CTD_PID[$i]}" VmHWM)" KiB
	done
}

# ---------------------------------------------------------------- run

# One binary for the whole run, even if the build directory is rebuilt
# while it goes on.
BIN_SNAP=$(mktemp -d /tmp/tbs-bin.XXXXXX) || exit 1
trap 'restore_sysctl' EXIT # until lab_up sets the lab's (bench_exit)
cp "$LAB_BUILD/tandemd" "$LAB_BUILD/tandemctl" "$BIN_SNAP/" || exit 1
TANDEM_ID="$("$BIN_SNAP/tandemd" --version 2>&1 | head -1), binary $(sha256sum "$BIN_SNAP/tandemd" | cut -c1-12), tree $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
LAB_BUILD=$BIN_SNAP
{
	printf '# %s; Tandem timers %s; %s\n' "$TANDEM_ID" "$TIMERS" "$(date -u +%FT%TZ)"
	printf 'impl\tfigure\tparam\tvalue\tunit\n'
} >"$TSV"
raise_sysctl || exit 1
T_START=$(now_ms)
tandem_phase || bad "tandem phase stopped early"
lab_down || bad "a tandemd did not exit cleanly"
if [ "$WITH_CTD" = 1 ]; then
	conntrackd_phase || bad "conntrackd phase stopped early"
fi
lab_down
restore_sysctl
echo "=== bench: session sync took $((($(now_ms) - T_START) / 1000)) s" >&2

# ---------------------------------------------------------------- table

# row LABEL FIGURE PARAM BETTER(lower|higher|none) [SCALE]
row() {
	local t=${FIG["tandem|$2|$3"]:--} c=${FIG["conntrackd|$2|$3"]:--} sc=${5:-1} ratio=
	[ "$t" != - ] && [ "$sc" != 1 ] && t=$(awk -v v="$t" -v s="$sc" 'BEGIN { printf "%.1f", v / s }')
	[ "$c" != - ] && [ "$sc" != 1 ] && c=$(awk -v v="$c" -v s="$sc" 'BEGIN { printf "%.1f", v / s }')
	ratio=$(awk -v t="$t" -v c="$c" -v b="$4" 'BEGIN {
		if (t == "-" || c == "-" || b == "none" || t !~ /^[0-9.]+$/ || c !~ /^[0-9.]+$/) { print "-"; exit }
		if (b == "lower") { num = c; den = t } else { num = t; den = c }
		if (den + 0 == 0) { print (num + 0 == 0 ? "1.0" : "inf"); exit }
		printf "%.2f", num / den }')
	printf '%-44s %14s %14s %9s\n' "$1" "$t" "$c" "$ratio"
}
echo
echo "Tandem: $TANDEM_ID."
echo "Session sync: Tandem (heartbeat ${TIMERS%x*} ms x ${TIMERS#*x}) vs conntrackd (FTFW, UDP) in the same lab and run. RATIO: how many"
echo "times better Tandem is (conntrackd/Tandem for times, lag and memory; Tandem/conntrackd for rates)."
echo
printf '%-44s %14s %14s %9s\n' FIGURE TANDEM CONNTRACKD RATIO
for n in $SIZES; do
	row "bulk $n: to gw2's kernel (s)" bulk_kernel_s "$n" lower
	row "bulk $n: rate (sessions/s)" bulk_rate "$n" higher
	row "bulk $n: to conntrackd's ext cache (s)" bulk_ext_s "$n" none
	row "bulk $n: sessions on gw1" bulk_n "$n" none
done
for r in $RATES; do
	row "stream $r/s: created on gw1 (/s)" stream_achieved "$r" none
	row "stream $r/s: reached gw2 (of created)" synced "$r" none
	row "stream $r/s: sync rate (sessions/s)" sync_rate "$r" higher
	row "stream $r/s: lag p50 (ms, 50 ms polls)" lag_p50 "$r" lower
	row "stream $r/s: lag p99 (ms, 50 ms polls)" lag_p99 "$r" lower
	row "stream $r/s: e2e lag p50 (ms, per session)" e2e_p50 "$r" none
	row "stream $r/s: e2e lag p99 (ms, per session)" e2e_p99 "$r" none
	row "stream $r/s: e2e lag max (ms, per session)" e2e_max "$r" none
done
m=${SIZES##* }
for f in rss_gw1 hwm_gw1 rss_gw2 hwm_gw2; do
	row "memory $f with $m sessions (MiB)" "$f" "$m" lower 1024
done
row "tandemd gw1: longest loop stall (ms)" stall_gw1 "$m" none
row "tandemd gw2: longest loop stall (ms)" stall_gw2 "$m" none
row "tandemd gw1: group 1 changes (1 = elected)" flaps_gw1 "$m" none
row "tandemd gw1: declared gw2 lost (times)" lost_gw1 "$m" none
row "tandemd gw2: declared gw1 lost (times)" lost_gw2 "$m" none
echo
echo "Bulk: gw2's daemon started with gw1 full and gw2's table empty, until gw2's kernel holds them"
echo "all (conntrackd: resync request (-n) until its external cache is full, then commit (-c))."
echo "Stream lag (both): per session, from its creation on gw1 to the first 50 ms poll that finds it"
echo "on gw2 (Tandem: gw2's kernel; conntrackd: its external cache, which reaches the kernel only on"
echo "commit). e2e (Tandem only): per session, creation on gw1 to its NEW event in gw2's kernel."
echo "Memory: VmRSS / VmHWM of each daemon after the largest bulk. Raw figures: $TSV"
if [ ${#SHORTFALLS[@]} -gt 0 ]; then
	echo
	echo "Shortfalls (measured, not hidden; the figures above include them):"
	for f in "${SHORTFALLS[@]}"; do echo "  - $f"; done
fi
[ "$FAILED" = 0 ] || { echo "sessions: $FAILED problem(s), listed above with 'sessions:'" >&2; exit 1; }
