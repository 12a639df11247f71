#!/usr/bin/env bash
# tests/lab/test_probe.sh - lab test of tandem-probe itself: the failover
# tests and benchmarks trust its figures, so they are checked here against
# outages of known length on real kernels.
#
# Usage: [TL_PREFIX=tpb-] bash tests/lab/test_probe.sh [BUILD_DIR=build]
#        (as root; builds nothing)
#
# Two namespaces, ${TL_PREFIX}c (client, 192.0.2.10/24) and ${TL_PREFIX}s
# (server, 192.0.2.20/24), joined by one veth pair; TL_PREFIX (default
# tpb-) keeps two runs apart. Checks:
#   (a) a clean run with 100 UDP flows: no loss, small gaps, every
#       connection and every flow alive, no reset;
#   (b) a 300 ms blackhole (netem loss 100%) with 50 UDP flows and (b2) a
#       300 ms link-down: the probe reports a gap of about 300 ms and every
#       connection and flow alive;
#   (b3) a blackhole over the last 0.5 s that never lifts: flows that had
#       echoes in their last second but never resumed are not alive;
#   (s) --status-file through a 300 ms blackhole: always whole JSON, fresh
#       every 250 ms, the open gap seen live, the gap afterwards, and the
#       last status (done) equal to the report;
#   (c) the server killed mid-run: resets counted, connections and flows lost;
#   (d) a target with nothing listening: exit 1 within about 2 s;
#   (e) 2000 long-lived connections through one server;
#   (f) usage errors exit 2 (an empty --status-file too), an unwritable
#       --status-file exits 1; the human report and SIGTERM report work.
# Every process is started here, killed by PID, and the namespaces are
# deleted on exit.
set -euo pipefail

BUILD=${1:-build}
PROBE="$(cd "$BUILD" 2>/dev/null && pwd)/tandem-probe" || { echo "test_probe: no build dir $BUILD" >&2; exit 2; }
[ -x "$PROBE" ] || { echo "test_probe: $PROBE is not built" >&2; exit 1; }
command -v jq >/dev/null || { echo "test_probe: jq is needed (scripts/deps.sh)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "test_probe: must run as root (network namespaces)" >&2; exit 1; }

P=${TL_PREFIX:-tpb-}
case "$P" in
'' | *[!A-Za-z0-9_-]* | ?????????*) echo "test_probe: TL_PREFIX must be 1-8 [A-Za-z0-9_-] characters" >&2; exit 2 ;;
esac
NS_C=${P}c
NS_S=${P}s
DEV_C=${P}c0
DEV_S=${P}s0
C_ADDR=192.0.2.10
S_ADDR=192.0.2.20
PORT=7000
WORK=$(mktemp -d /tmp/tpb.XXXXXX)
SERVER_PID=
CLIENT_PID=
READER_PID=
PASSED=0
FAILED=0

cleanup() {
	local rc=$? p
	for p in $READER_PID $CLIENT_PID $SERVER_PID; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	ip netns del "$NS_C" 2>/dev/null || true
	ip netns del "$NS_S" 2>/dev/null || true
	if [ "$rc" -ne 0 ] && [ -d "$WORK" ]; then
		echo "test_probe: logs of the failed run:" >&2
		tail -n 20 "$WORK"/*.err "$WORK"/*.log 2>/dev/null >&2 || true
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT

log() { printf '%s test_probe: %s\n' "$(date +%H:%M:%S.%3N)" "$*"; }
die() {
	echo "test_probe: FATAL: $*" >&2
	exit 1
}

# expect LABEL ACTUAL OP WANT : a numeric check (OP is an awk comparison),
# recorded and reported; the script goes on so one run shows every failure.
expect() {
	local label=$1 actual=$2 op=$3 want=$4
	if [[ "$actual" =~ ^-?[0-9]+(\.[0-9]+)?$ ]] &&
		awk -v a="$actual" -v b="$want" "BEGIN { exit !(a $op b) }"; then
		printf '  ok    %s: %s %s %s\n' "$label" "$actual" "$op" "$want"
		PASSED=$((PASSED + 1))
	else
		printf '  FAIL  %s: got %s, want %s %s\n' "$label" "$actual" "$op" "$want"
		FAILED=$((FAILED + 1))
	fi
}

# get NAME FIELD : a field of a client's JSON report
get() { jq -r ".$2 // \"missing\"" "$WORK/$1.json"; }

wait_file() {
	local f=$1 limit_ds=$(($2 * 10)) i
	for ((i = 0; i < limit_ds; i++)); do
		[ -e "$f" ] && return 0
		sleep 0.1
	done
	return 1
}

setup_net() {
	ip netns del "$NS_C" 2>/dev/null || true
	ip netns del "$NS_S" 2>/dev/null || true
	ip netns add "$NS_C"
	ip netns add "$NS_S"
	ip link add "$DEV_C" netns "$NS_C" type veth peer name "$DEV_S" netns "$NS_S"
	ip -n "$NS_C" addr add "$C_ADDR/24" dev "$DEV_C"
	ip -n "$NS_S" addr add "$S_ADDR/24" dev "$DEV_S"
	ip -n "$NS_C" link set lo up
	ip -n "$NS_S" link set lo up
	ip -n "$NS_C" link set "$DEV_C" up
	ip -n "$NS_S" link set "$DEV_S" up
	ip netns exec "$NS_C" ping -c 1 -W 2 "$S_ADDR" >/dev/null || die "no connectivity between $NS_C and $NS_S"
}

start_server() {
	rm -f "$WORK/server.ready"
	ip netns exec "$NS_S" "$PROBE" server --bind "$S_ADDR" --port "$PORT" --duration-ms 120000 \
		--ready-file "$WORK/server.ready" >>"$WORK/server.log" 2>&1 &
	SERVER_PID=$!
	wait_file "$WORK/server.ready" 5 || die "probe server not listening within 5 s"
}

# stop_server : SIGTERM must end it cleanly (exit 0; under the sanitizers
# also no leak or error report).
stop_server() {
	local rc=0
	[ -n "$SERVER_PID" ] || return 0
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || rc=$?
	SERVER_PID=
	expect "server exit code on SIGTERM" "$rc" == 0
}

# start_client NAME ARGS... : client in the background, JSON report in
# $WORK/NAME.json; returns once it is ready (every connection echoing).
start_client() {
	local name=$1
	shift
	ip netns exec "$NS_C" "$PROBE" client --target "$S_ADDR" --port "$PORT" --json \
		--ready-file "$WORK/$name.ready" "$@" >"$WORK/$name.json" 2>"$WORK/$name.err" &
	CLIENT_PID=$!
	wait_file "$WORK/$name.ready" 10 || die "$name: client not ready within 10 s: $(cat "$WORK/$name.err")"
}

# finish_client NAME : wait for it, check it ran and its report is JSON.
finish_client() {
	local name=$1 rc=0
	wait "$CLIENT_PID" || rc=$?
	CLIENT_PID=
	expect "$name exit code" "$rc" == 0
	jq -e . "$WORK/$name.json" >/dev/null 2>&1 || die "$name: report is not JSON: $(head -c 500 "$WORK/$name.json")"
	log "$name: $(jq -c '{udp_sent,udp_lost,udp_max_gap_ms,udp_max_gap_start_ms,udp_flows,udp_flows_alive,udp_flows_sent,udp_flows_lost,udp_flows_max_gap_ms,tcp_connections,tcp_survived,tcp_resets,tcp_failed,new_attempted,new_ok,new_failed,ready_ms}' "$WORK/$name.json")"
}

now_ms() { date +%s%3N; }

# ---------------------------------------------------------------------------

setup_net
start_server

log "(a) clean run: 3 s, 1 kHz UDP + 99 flows at 10 Hz, 50 long-lived TCP, a new connection every 50 ms"
# On a busy 2-core machine the kernel itself (softirq work deferred to
# ksoftirqd, a preempted vCPU) now and then holds packets for 10-25 ms, even
# with the probe at real-time priority. One such spike is the machine, not
# the probe: the gap check alone gets a second run, with the first one's
# gaps printed. A probe that invents gaps fails both.
for attempt in 1 2; do
	start_client a --duration-ms 3000 --tcp 50 --new-every-ms 50 --gaps-over-ms 10 --udp-flows 100
	finish_client a
	gap_ok=$(awk -v g="$(get a udp_max_gap_ms)" 'BEGIN { print (g < 20) ? 1 : 0 }')
	[ "$gap_ok" = 1 ] && break
	log "(a) attempt $attempt: gaps over 10 ms: $(jq -c .gaps "$WORK/a.json")"
done
expect "(a) udp_sent" "$(get a udp_sent)" '>=' 2900
expect "(a) udp_loss_pct" "$(get a udp_loss_pct)" '<' 1
expect "(a) udp_max_gap_ms" "$(get a udp_max_gap_ms)" '<' 20
expect "(a) tcp_connections" "$(get a tcp_connections)" == 50
expect "(a) tcp_survived" "$(get a tcp_survived)" == 50
expect "(a) tcp_resets" "$(get a tcp_resets)" == 0
expect "(a) tcp_echoes (15 per connection)" "$(get a tcp_echoes)" '>=' 700
expect "(a) new_attempted" "$(get a new_attempted)" == 60
expect "(a) new_ok" "$(get a new_ok)" == 60
expect "(a) new_failed" "$(get a new_failed)" == 0
expect "(a) udp_flows" "$(get a udp_flows)" == 100
expect "(a) udp_flows_alive" "$(get a udp_flows_alive)" == 100
expect "(a) udp_flows_sent (99 flows x 10 Hz x 3 s)" "$(get a udp_flows_sent)" == 2970
expect "(a) udp_flows_lost" "$(get a udp_flows_lost)" == 0
expect "(a) udp_lost" "$(get a udp_lost)" == 0
expect "(a) udp_flows_duplicates" "$(get a udp_flows_duplicates)" == 0
expect "(a) udp_flows_bad" "$(get a udp_flows_bad)" == 0
expect "(a) udp_flows_max_gap_ms (10 Hz: about 100)" "$(get a udp_flows_max_gap_ms)" '<' 250

# A silent blackhole: netem where the kernel has it, otherwise an nftables
# rule in the server's namespace that drops everything from the client.
if ip netns exec "$NS_C" tc qdisc add dev lo root netem loss 0% 2>/dev/null; then
	ip netns exec "$NS_C" tc qdisc del dev lo root
	BLOCK_HOW="netem loss 100% on $DEV_C"
	block() { ip netns exec "$NS_C" tc qdisc add dev "$DEV_C" root netem loss 100%; }
	unblock() { ip netns exec "$NS_C" tc qdisc del dev "$DEV_C" root; }
else
	BLOCK_HOW="nftables drop in $NS_S (no netem in this kernel)"
	block() {
		printf 'table inet tpb_block {\n chain in {\n  type filter hook prerouting priority -300; policy accept;\n  ip saddr %s drop\n }\n}\n' \
			"$C_ADDR" | ip netns exec "$NS_S" nft -f -
	}
	unblock() { ip netns exec "$NS_S" nft delete table inet tpb_block; }
fi

log "(b) 300 ms blackhole after ready, 50 UDP flows: $BLOCK_HOW"
start_client b --duration-ms 4000 --tcp 50 --new-every-ms 100 --gaps-over-ms 100 --udp-flows 50
# Every flow is a socket of its own: 50 distinct local UDP ports.
expect "(b) distinct UDP source ports in $NS_C" \
	"$(ip netns exec "$NS_C" ss -Hunap | awk -v p="pid=$CLIENT_PID," 'index($0, p) { n = split($4, a, ":"); print a[n] }' | sort -u | wc -l)" == 50
sleep 0.5
t_block=$(now_ms)
block
sleep 0.3
unblock
log "(b) link blocked for $(($(now_ms) - t_block)) ms"
finish_client b
expect "(b) udp_max_gap_ms" "$(get b udp_max_gap_ms)" '>=' 250
expect "(b) udp_max_gap_ms" "$(get b udp_max_gap_ms)" '<=' 600
expect "(b) gap began after ready" "$(get b udp_max_gap_start_ms)" '>' "$(get b ready_ms)"
expect "(b) udp_max_gap_after_ready_ms is that gap" "$(get b udp_max_gap_after_ready_ms)" == "$(get b udp_max_gap_ms)"
expect "(b) udp_lost (about 300 at 1 kHz)" "$(get b udp_lost)" '>=' 200
expect "(b) udp_lost" "$(get b udp_lost)" '<=' 650
expect "(b) gaps over 100 ms listed" "$(jq '.gaps | length' "$WORK/b.json")" == 1
expect "(b) tcp_survived" "$(get b tcp_survived)" == 50
expect "(b) tcp_resets" "$(get b tcp_resets)" == 0
expect "(b) new_failed (SYN retransmitted)" "$(get b new_failed)" == 0
expect "(b) udp_flows" "$(get b udp_flows)" == 50
expect "(b) udp_flows_alive after the outage" "$(get b udp_flows_alive)" == 50
expect "(b) udp_flows_max_gap_ms" "$(get b udp_flows_max_gap_ms)" '>=' 250
expect "(b) udp_flows_max_gap_ms" "$(get b udp_flows_max_gap_ms)" '<=' 600
expect "(b) udp_flows_max_gap_start_ms after ready" "$(get b udp_flows_max_gap_start_ms)" '>' "$(get b ready_ms)"
expect "(b) udp_flows_lost (2-3 per flow at 10 Hz)" "$(get b udp_flows_lost)" '>=' 98
expect "(b) udp_flows_lost" "$(get b udp_flows_lost)" '<=' 343

log "(b2) 300 ms link down on the client's side after ready"
start_client b2 --duration-ms 4000 --tcp 50
sleep 0.5
ip -n "$NS_C" link set "$DEV_C" down
sleep 0.3
ip -n "$NS_C" link set "$DEV_C" up
finish_client b2
expect "(b2) udp_max_gap_ms" "$(get b2 udp_max_gap_ms)" '>=' 250
# Link down/up of a veth adds the kernel's own carrier and neighbour
# re-resolution time, which a loaded 2-core machine stretches past a second
# (seen: 1330 ms); (b) bounds the probe's own accuracy tightly. Here the
# upper bound only catches a probe that over-reports wildly.
expect "(b2) udp_max_gap_ms" "$(get b2 udp_max_gap_ms)" '<=' 3000
expect "(b2) tcp_survived" "$(get b2 tcp_survived)" == 50
expect "(b2) tcp_resets" "$(get b2 tcp_resets)" == 0
expect "(b2) udp_flows (default: flow 0 only)" "$(get b2 udp_flows)" == 1
expect "(b2) udp_flows_alive" "$(get b2 udp_flows_alive)" == 1
expect "(b2) udp_flows_sent" "$(get b2 udp_flows_sent)" == 0

log "(b3) blackhole over the last 0.5 s of the run, never lifted: no flow resumed"
start_client b3 --duration-ms 2000 --udp-flows 20
sleep 1.3
block
finish_client b3
unblock
expect "(b3) udp_flows" "$(get b3 udp_flows)" == 20
expect "(b3) udp_flows_alive (echoes in the last second, but none after the outage)" "$(get b3 udp_flows_alive)" == 0
expect "(b3) udp_flows_max_gap_ms (the open silence)" "$(get b3 udp_flows_max_gap_ms)" '>=' 300
expect "(b3) udp_flows_lost" "$(get b3 udp_flows_lost)" '>=' 57

log "(s) --status-file, read every 50 ms through a 300 ms blackhole: $BLOCK_HOW"
ST="$WORK/s.status"
start_client s --duration-ms 3000 --tcp 10 --new-every-ms 100 --gaps-over-ms 100 --status-file "$ST"
# Every read of the file while the probe rewrites it: one line each of
# t_ms udp_sent udp_open_gap_ms udp_last_gap_ms done wall_ms, or "bad".
(
	end=$(($(now_ms) + 6000))
	while [ "$(now_ms)" -lt "$end" ]; do
		jq -r '[.t_ms, .udp_sent, .udp_open_gap_ms, .udp_last_gap_ms, .done, .wall_ms] | @tsv' "$ST" 2>/dev/null || echo bad
		[ "$(jq -r .done "$ST" 2>/dev/null)" = true ] && break
		sleep 0.05
	done
) >"$WORK/s.reads" &
READER_PID=$!
sleep 0.8
expect "(s) status while running: done" "$(jq -r '.done | tostring' "$ST" | sed 's/false/0/;s/true/1/')" == 0
expect "(s) status while running: wall_ms within 2 s of now" \
	"$(($(jq -r .wall_ms "$ST") - $(now_ms)))" '>' -2000
expect "(s) status while running: wall_ms not ahead of now" "$(($(jq -r .wall_ms "$ST") - $(now_ms)))" '<=' 0
t_block=$(now_ms)
block
sleep 0.3
unblock
log "(s) link blocked for $(($(now_ms) - t_block)) ms"
finish_client s
wait "$READER_PID" || true
READER_PID=
reads=$(wc -l <"$WORK/s.reads")
expect "(s) status reads" "$reads" '>=' 30
expect "(s) reads that were not whole JSON" "$(grep -c '^bad$' "$WORK/s.reads" || true)" == 0
# t_ms and udp_sent never go back; consecutive distinct statuses are
# about 250 ms apart (never over 600 ms: the rewrite keeps its beat even
# during the outage).
expect "(s) t_ms and udp_sent monotonic" \
	"$(awk '$1 != "bad" { if ($1 < t || $2 < u) bad++; t = $1; u = $2 } END { print bad + 0 }' "$WORK/s.reads")" == 0
expect "(s) longest step between rewrites (ms)" \
	"$(awk '$1 != "bad" && $5 == "false" { if (t != "" && $1 != t && $1 - t > m) m = $1 - t; t = $1 } END { print m + 0 }' "$WORK/s.reads")" '<=' 600
expect "(s) shortest step between rewrites (ms)" \
	"$(awk '$1 != "bad" && $5 == "false" { if (t != "" && $1 != t && (m == "" || $1 - t < m)) m = $1 - t; t = $1 } END { print m + 0 }' "$WORK/s.reads")" '>=' 200
expect "(s) the outage seen live: largest udp_open_gap_ms" \
	"$(awk '$1 != "bad" && $3 > m { m = $3 } END { print m + 0 }' "$WORK/s.reads")" '>=' 100
expect "(s) before the outage udp_last_gap_ms is 0" "$(awk '$1 != "bad" { print $4; exit }' "$WORK/s.reads")" == 0
expect "(s) last status: done" "$(jq -r '.done | tostring' "$ST" | sed 's/false/0/;s/true/1/')" == 1
expect "(s) no FILE.tmp left" "$(find "$WORK" -name 's.status.tmp*' | wc -l)" == 0
expect "(s) udp_last_gap_ms is the outage" "$(jq -r .udp_last_gap_ms "$ST")" '>=' 250
expect "(s) udp_last_gap_ms is the outage" "$(jq -r .udp_last_gap_ms "$ST")" '<=' 600
expect "(s) udp_last_gap_ms is the report's last gap" "$(jq -r .udp_last_gap_ms "$ST")" == "$(jq -r '.gaps[-1].gap_ms' "$WORK/s.json")"
expect "(s) udp_open_gap_ms at the end" "$(jq -r .udp_open_gap_ms "$ST")" == 0
expect "(s) tcp_alive is the report's tcp_survived" "$(jq -r .tcp_alive "$ST")" == "$(get s tcp_survived)"
expect "(s) tcp_alive" "$(jq -r .tcp_alive "$ST")" == 10
expect "(s) t_ms at the end covers the run" "$(jq -r .t_ms "$ST")" '>=' 3000
for k in udp_sent udp_received udp_lost udp_max_gap_ms tcp_connections tcp_resets new_ok new_failed elapsed_ms; do
	expect "(s) last status $k is the report's" "$(jq -r ".$k" "$ST")" == "$(get s "$k")"
done

log "(c) server killed (SIGKILL) mid-run: its kernel answers the next segments with resets"
start_client c --duration-ms 3000 --tcp 50 --new-every-ms 50 --udp-flows 20
sleep 0.5
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
finish_client c
expect "(c) tcp_connections" "$(get c tcp_connections)" == 50
expect "(c) tcp_resets" "$(get c tcp_resets)" '>' 0
expect "(c) tcp_survived" "$(get c tcp_survived)" '<' 50
expect "(c) new_failed (refused)" "$(get c new_failed)" '>' 0
expect "(c) new_refused" "$(get c new_refused)" '>' 0
expect "(c) udp_last_echo_ms (stops at the kill)" "$(get c udp_last_echo_ms)" '<' 2000
expect "(c) udp_flows_alive" "$(get c udp_flows_alive)" == 0
expect "(c) udp_flows_max_gap_ms (from the kill to the end)" "$(get c udp_flows_max_gap_ms)" '>=' 2000

log "(d) nothing listening: the probe says so and exits 1"
t0=$(now_ms)
rc=0
ip netns exec "$NS_C" "$PROBE" client --target "$S_ADDR" --port "$PORT" --duration-ms 10000 --tcp 5 \
	--json >"$WORK/d.json" 2>"$WORK/d.err" || rc=$?
elapsed=$(($(now_ms) - t0))
expect "(d) exit code" "$rc" == 1
expect "(d) gave up after (ms)" "$elapsed" '<' 4000
expect "(d) says unreachable" "$(grep -c unreachable "$WORK/d.err" || true)" == 1

log "(e) 2000 long-lived connections"
start_server
start_client e --duration-ms 2500 --tcp 2000 --udp-hz 100 --tcp-interval-ms 500
finish_client e
expect "(e) tcp_connections" "$(get e tcp_connections)" == 2000
expect "(e) tcp_survived" "$(get e tcp_survived)" == 2000
expect "(e) tcp_resets" "$(get e tcp_resets)" == 0
stop_server
expect "(e) server saw connections at once" "$(sed -n 's/.*tcp_open_max=\([0-9]*\).*/\1/p' "$WORK/server.log" | tail -n 1)" '>=' 2000

log "(f) usage errors, the human report, SIGTERM"
for args in "client --duration-ms 100" "client --target $S_ADDR" "client --target $S_ADDR --duration-ms 100 --udp-hz x" \
	"client --target 192.0.2.999 --duration-ms 100" "client --target $S_ADDR --duration-ms 100 --udp-hz 0" \
	"client --target $S_ADDR --duration-ms 100 --udp-flows 0" "client --target $S_ADDR --duration-ms 100 --udp-flows 4097" \
	"client --target $S_ADDR --duration-ms 100 --udp-flows 3 --udp-hz 0 --tcp 1" \
	"client --target $S_ADDR --duration-ms 100 --udp-flows 4096 --udp-flow-hz 100" \
	"client --target $S_ADDR --duration-ms 100 --udp-flows 2 --udp-flow-hz 0" \
	"client --target $S_ADDR --duration-ms 100 --status-file=" \
	"server" "server --bind $S_ADDR --port 70000" "frobnicate"; do
	rc=0
	# shellcheck disable=SC2086 # the arguments are split on purpose
	"$PROBE" $args >/dev/null 2>&1 || rc=$?
	expect "(f) '$args' exit code" "$rc" == 2
done
start_server
rc=0
ip netns exec "$NS_C" "$PROBE" client --target "$S_ADDR" --port "$PORT" --duration-ms 500 --tcp 3 \
	>"$WORK/f.txt" 2>"$WORK/f.err" || rc=$?
expect "(f) human report exit code" "$rc" == 0
rc=0
t0=$(now_ms)
ip netns exec "$NS_C" "$PROBE" client --target "$S_ADDR" --port "$PORT" --duration-ms 5000 --tcp 1 \
	--status-file "$WORK/no/such/dir/status.json" >/dev/null 2>"$WORK/f-status.err" || rc=$?
expect "(f) unwritable --status-file: exit code" "$rc" == 1
expect "(f) unwritable --status-file: at once (ms)" "$(($(now_ms) - t0))" '<' 1000
expect "(f) unwritable --status-file: says why" "$(grep -c 'status-file.*No such file' "$WORK/f-status.err" || true)" == 1
expect "(f) human report has udp_max_gap_ms=" "$(grep -c 'udp_max_gap_ms=' "$WORK/f.txt" || true)" == 1
expect "(f) human report tcp_survived=3" "$(grep -c 'tcp_survived=3 ' "$WORK/f.txt" || true)" == 1
start_client f2 --duration-ms 60000 --tcp 3
t0=$(now_ms)
kill -TERM "$CLIENT_PID"
finish_client f2
expect "(f) SIGTERM: report within (ms)" "$(($(now_ms) - t0))" '<' 2000
expect "(f) SIGTERM: interrupted" "$(get f2 interrupted | sed 's/true/1/;s/false/0/')" == 1
expect "(f) SIGTERM: tcp_survived" "$(get f2 tcp_survived)" == 3
stop_server

echo "test_probe: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
