#!/usr/bin/env bash
# test_ct.sh BUILD_DIR - the conntrack driver (src/io/ct.c) against real
# kernels (root), and the proof that injected sessions make a failover
# stateful. Namespaces (prefix TL_PREFIX, default tct-, shown here):
#
#   tct-c  eth0 192.0.2.100/24, default via 192.0.2.1
#     |  br-lan (in tct-sw)
#   tct-a  lan0 192.0.2.1/24   wan0 198.51.100.1/24   (gateway A, on path)
#   tct-b  lan0 (down)         wan0 (down)            (gateway B, standby)
#     |  br-wan (in tct-sw)
#   tct-s  eth0 198.51.100.100/24 (tandem-probe server)
#
# Both gateways: forwarding, nf_conntrack_tcp_loose=0, SNAT of the LAN to
# 198.51.100.1 on wan0, forward policy drop with established/related
# accepted, invalid dropped and new connections only from lan0 to wan0. B's
# interfaces carry A's MAC addresses, so a "failover" is: A's links down,
# B's links up with A's addresses (what tandemd does with VIPs, done here
# by hand so only the session state is under test).
#
# 1. ct_check unit (conversion, refusals).
# 2. ct_check events in A: NEW, DESTROY via conntrack -D, own events not
#    reported, overrun reported, sweep.
# 3. Long-lived TCP connections through A; ct_check dump in A (SNAT in the
#    records, round trip, stable hash), ct_check apply in B (created, then
#    updated when applied again, same stable hashes); `conntrack -L` of the
#    flows equal in A and B; failover A -> B: every connection survives,
#    no reset; ct_check delete in B.
# 4. The same without injection (B -> A, A's table flushed): the
#    connections must NOT survive, so step 3 can fail.
# 5. ct_check bench in an empty namespace: TCP/UDP, IPv4/IPv6, SNAT
#    entries injected, dumped with equal stable hashes, updated, swept
#    (TCT_BENCH_N entries, default 20000), with entries/s printed.
set -euo pipefail

build=${1:-build}
check=$build/tests/ct_check
probe=$build/tandem-probe
for b in "$check" "$probe"; do
	[ -x "$b" ] || { echo "test_ct: $b not built (make $b)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "test_ct: needs root" >&2; exit 2; }
command -v conntrack >/dev/null || { echo "test_ct: needs conntrack (Debian conntrack)" >&2; exit 2; }
check=$(cd "$(dirname "$check")" && pwd)/$(basename "$check")
probe=$(cd "$(dirname "$probe")" && pwd)/$(basename "$probe")

P=${TL_PREFIX:-tct-}
case "$P" in
'' | *[!A-Za-z0-9_-]* | ?????*) echo "test_ct: TL_PREFIX must be 1-4 [A-Za-z0-9_-] characters" >&2; exit 2 ;;
esac
C=${P}c SW=${P}sw A=${P}a B=${P}b S=${P}s N=${P}n
NS=($C $SW $A $B $S $N)
SERVER=198.51.100.100 PORT=7000 SNAT=198.51.100.1
NCONN=${TCT_CONNECTIONS:-20}
MAC_LAN=02:00:00:c7:00:01 MAC_WAN=02:00:00:c7:00:02
work=$(mktemp -d /tmp/tct.XXXXXX)
pids=()

cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	for ns in "${NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
for ns in "${NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done

fail() {
	echo "test_ct: FAIL: $*" >&2
	exit 1
}
ok() { echo "test_ct: ok: $*"; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# ---- topology
for ns in "${NS[@]}"; do
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip -n $SW link add br-lan type bridge
ip -n $SW link add br-wan type bridge
ip -n $SW link set br-lan up
ip -n $SW link set br-wan up
# veth IF in NS, its peer PEER on bridge BR
plug() {
	local ns=$1 ifn=$2 peer=$3 br=$4
	ip -n "$ns" link add "$ifn" type veth peer name "$peer" netns $SW
	ip -n $SW link set "$peer" master "$br" up
}
plug $C eth0 ${P}c0 br-lan
plug $A lan0 ${P}al br-lan
plug $A wan0 ${P}aw br-wan
plug $B lan0 ${P}bl br-lan
plug $B wan0 ${P}bw br-wan
plug $S eth0 ${P}s0 br-wan
for g in $A $B; do
	ip -n $g link set lan0 address $MAC_LAN
	ip -n $g link set wan0 address $MAC_WAN
done
ip -n $C addr add 192.0.2.100/24 dev eth0
ip -n $C link set eth0 up
ip -n $C route add default via 192.0.2.1
ip -n $S addr add $SERVER/24 dev eth0
ip -n $S link set eth0 up
ip -n $A addr add 192.0.2.1/24 dev lan0
ip -n $A addr add $SNAT/24 dev wan0
ip -n $A link set lan0 up
ip -n $A link set wan0 up

gw_setup() {
	nsx "$1" nft -f - <<'EOF'
table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat;
		oifname "wan0" snat to 198.51.100.1
	}
}
table inet filter {
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		ct state invalid drop
		iifname "lan0" oifname "wan0" accept
	}
}
EOF
	nsx "$1" sysctl -qw net.ipv4.ip_forward=1
	nsx "$1" sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
	[ "$(nsx "$1" sysctl -n net.netfilter.nf_conntrack_tcp_loose)" = 0 ] || fail "$1: tcp_loose"
}
gw_setup $A
gw_setup $B

# "Failover": FROM's links down, TO's links up with the gateway addresses.
move_path() {
	local from=$1 to=$2
	ip -n "$from" link set lan0 down
	ip -n "$from" link set wan0 down
	ip -n "$to" addr replace 192.0.2.1/24 dev lan0
	ip -n "$to" addr replace $SNAT/24 dev wan0
	ip -n "$to" link set lan0 up
	ip -n "$to" link set wan0 up
}

for _ in $(seq 50); do
	nsx $C ping -c1 -W1 $SERVER >/dev/null 2>&1 && break
	sleep 0.1
done
nsx $C ping -c1 -W1 $SERVER >/dev/null || fail "client cannot reach the server through A"
ok "client reaches $SERVER through A (SNAT $SNAT, tcp_loose=0 on both gateways)"

# Not through nsx: a function run in the background is a subshell, whose
# PID the cleanup would kill while the probe lived on. ip netns exec execs
# the probe, so $! is the probe itself.
ip netns exec $S "$probe" server --bind $SERVER --port $PORT --duration-ms 300000 \
	>"$work/server.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
	nsx $S ss -ltn 2>/dev/null | grep -q ":$PORT " && break
	sleep 0.1
done

# ---- 1. conversion
echo "test_ct: === unit"
"$check" unit || fail "ct_check unit"

# ---- 2. events in A
echo "test_ct: === events in $A"
nsx $A "$check" events $SERVER $PORT || fail "ct_check events"

# The flows to SERVER:PORT as `conntrack -L` shows them, normalised: the
# timeout, use count and counters dropped, sorted.
flows() {
	nsx "$1" conntrack -L -p tcp --orig-dst $SERVER --orig-port-dst $PORT 2>/dev/null |
		awk '{ $3 = ""; for (i = 1; i <= NF; i++) if ($i ~ /^(use|id|packets|bytes)=/) $i = ""; print }' |
		tr -s ' ' | sort
}

# probe_run OUT DURATION_MS: long-lived connections from the client.
probe_run() {
	rm -f "$work/ready"
	ip netns exec $C "$probe" client --target $SERVER --port $PORT --duration-ms "$2" --udp-hz 0 \
		--tcp "$NCONN" --tcp-interval-ms 100 --tcp-timeout-ms 3000 --json \
		--ready-file "$work/ready" >"$1" 2>"$1.err" &
	probe_pid=$!
	pids+=($probe_pid)
	for _ in $(seq 100); do
		[ -e "$work/ready" ] && return 0
		sleep 0.1
	done
	cat "$1.err" >&2
	fail "probe not ready"
}
jget() { jq -r ".$2" "$1"; }

# ---- 3. with injection: A -> B
echo "test_ct: === stateful failover $A -> $B with injection ($NCONN connections)"
probe_run "$work/p1.json" 9000
sleep 0.5
nsx $A "$check" dump "$work/flows.bin" $SERVER $PORT $SNAT "$NCONN" || fail "ct_check dump in A"
nsx $B "$check" apply "$work/flows.bin" || fail "ct_check apply in B"
fa=$(flows $A) fb=$(flows $B)
n=$(printf '%s\n' "$fa" | grep -c ESTABLISHED || true)
[ "$n" -ge "$NCONN" ] || fail "A shows $n established flows"
echo "$fa" | head -2 | sed 's/^/  A: /'
echo "$fb" | head -2 | sed 's/^/  B: /'
[ "$fa" = "$fb" ] || { diff <(echo "$fa") <(echo "$fb") | head -20; fail "conntrack -L differs between A and B"; }
ok "conntrack -L in B equals A for $n flows (tuples, SNAT, state, flags)"
sleep 1
move_path $A $B
wait "$probe_pid" || true
cat "$work/p1.json"
echo
conns=$(jget "$work/p1.json" tcp_connections) surv=$(jget "$work/p1.json" tcp_survived)
resets=$(jget "$work/p1.json" tcp_resets)
[ "$conns" = "$NCONN" ] || fail "only $conns of $NCONN connections established"
[ "$surv" = "$conns" ] || fail "with injection: $surv of $conns connections survived"
[ "$resets" = 0 ] || fail "with injection: $resets resets"
echo "  B after takeover: $(flows $B | head -1)"
ok "with injection: $surv/$conns survived the failover, $resets resets"
nsx $B "$check" delete "$work/flows.bin" || fail "ct_check delete in B"

# ---- 4. without injection: B -> A
echo "test_ct: === failover $B -> $A without injection (must lose the connections)"
nsx $A conntrack -F >/dev/null 2>&1 || true
probe_run "$work/p2.json" 9000
sleep 1.5
move_path $B $A
wait "$probe_pid" || true
cat "$work/p2.json"
echo
conns=$(jget "$work/p2.json" tcp_connections) surv=$(jget "$work/p2.json" tcp_survived)
[ "$conns" = "$NCONN" ] || fail "only $conns of $NCONN connections established"
[ "$surv" = 0 ] || fail "without injection $surv of $conns survived: the test cannot tell"
ok "without injection: $surv/$conns survived (the kernel drops unknown mid-stream TCP)"

# ---- 5. bulk inject, dump, update, sweep
echo "test_ct: === bulk: ${TCT_BENCH_N:-20000} entries in $N"
nsx $N "$check" bench "${TCT_BENCH_N:-20000}" || fail "ct_check bench"
echo "test_ct: all passed"
