#!/usr/bin/env bash
# test_handoff.sh BUILD_DIR - the handoff guard (src/io/nft.h). After a
# planned switchover, a host whose neighbour entry for a VIP still names the
# old primary sends it new connections. Without the guard the old primary
# forwards and NATs them with state the new primary never learns; once the
# host's entry moves on, the new primary drops the rest of the connection
# as invalid (strict conntrack) and it stalls. With the guard the old
# primary drops the first packet, and the host's retry (1 s later) goes to
# the new primary.
#
# The stale window, which in life lasts the few milliseconds until the new
# primary's announcement arrives, is made long and certain here: the client's
# and server's entries for the VIPs are pinned (nud permanent, which
# announcements do not move) on the old primary, and moved by the test
# 300 ms after the switchover, while connections are being opened.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
lab_init "${1:-}" tandemd tandemctl tandem-probe

GUARD_TABLE=tandemd-handoff
TCP_N=20
LOAD=(--udp-hz 0 --tcp "$TCP_N" --tcp-interval-ms 100 --new-every-ms 50 --duration-ms 4000
	--connect-timeout-ms 5000 --new-timeout-ms 5000)

mac() { lab_nsexec "gw$1" cat "/sys/class/net/$2/address"; }
# pin I : the client's and the server's entries for the VIPs name gwI.
pin() {
	ip -n "${P}client" neigh replace "$VIP_LAN" lladdr "$(mac "$1" lan0)" dev eth0 nud permanent &&
		ip -n "${P}server" neigh replace "$VIP_WAN" lladdr "$(mac "$1" wan0)" dev eth0 nud permanent ||
		lab_fail "cannot pin the neighbour entries on gw$1"
}
unpin() {
	ip -n "${P}client" neigh del "$VIP_LAN" dev eth0 2>/dev/null
	ip -n "${P}server" neigh del "$VIP_WAN" dev eth0 2>/dev/null
	true
}
# drops I : packets gwI's guard dropped so far.
drops() {
	lab_nsexec "gw$1" nft -j list chain inet $GUARD_TABLE forward 2>/dev/null |
		jq '[.nftables[] | .rule? // empty | .expr[] | .counter? // empty | .packets] | add // 0'
}
# guarded I : the interfaces gwI's guard holds now, sorted, comma-separated.
guarded() {
	lab_nsexec "gw$1" nft -j list set inet $GUARD_TABLE ifaces 2>/dev/null |
		jq -r '[.nftables[] | .set? // empty | .elem[]? | if type == "object" then .elem.val else . end] | sort | join(",")'
}

# switch FROM TO OUT : with the entries pinned on gwFROM, move group 1 to
# gwTO, start the probe, and re-pin on gwTO 300 ms later.
switch() {
	local from=$1 to=$2 out=$3
	pin "$from"
	lab_ctl "$from" failover --group 1 --to "gw$to" >/dev/null
	lab_expect "$4 tandemctl failover exit code" "$?" -eq 0
	lab_wait_primary 1 "gw$to" 5 >/dev/null || lab_fail "$4 gw$to did not take group 1"
	lab_probe_client "${LOAD[@]}" >"$out" 2>"$out.err" &
	local pid=$!
	LAB_EXTRA_PIDS+=("$pid")
	sleep 0.3
	pin "$to"
	lab_wait_until 20 sh -c "! kill -0 $pid 2>/dev/null"
	wait "$pid" 2>/dev/null
	jq -e . "$out" >/dev/null 2>&1 || { cat "$out.err" >&2; lab_fail "$4 probe report $out is not JSON"; }
	echo "  $4 traffic: $(lab_probe_summary "$out")" >&2
}

lab_up 2 --strict-conntrack --snat --preempt false
lab_probe_server
lab_start_node 1
lab_start_node 2
lab_wait_primary 1 gw1 15 >/dev/null || lab_fail "group 1 has no agreed primary gw1"
lab_wait_until 10 sh -c "[ \"\$(lab_status 2 | jq -r .sessions.in_sync)\" = true ]" 2>/dev/null
for i in 1 2; do
	lab_expect "gw$i set up its guard table" "$(lab_nsexec "gw$i" nft list table inet $GUARD_TABLE >/dev/null 2>&1 && echo yes)" == yes
	lab_expect "gw$i guards nothing at start" "$(guarded "$i")" == ""
done

echo "(a) gw1 hands group 1 to gw2 while hosts still send to gw1: new connections are delayed, not lost" >&2
out=$LAB_DIR/a.json
switch 1 2 "$out" "(a)"
lab_expect "(a) gw1 logged its guard" "$(grep -c 'event=handoff.guard .*group=1 op=on interfaces=lan0,wan0' "$LAB_DIR/gw1.log")" -ge 1
lab_expect "(a) packets gw1's guard dropped" "$(drops 1)" -gt 0
lab_expect "(a) tcp connections opened" "$(lab_probe_get "$out" tcp_connections)" -eq $TCP_N
lab_expect "(a) tcp connections kept" "$(lab_probe_get "$out" tcp_survived)" -eq $TCP_N
lab_expect "(a) tcp resets" "$(lab_probe_get "$out" tcp_resets)" -eq 0
lab_expect "(a) new connections ok" "$(lab_probe_get "$out" new_ok)" -gt 0
lab_expect "(a) new connections failed" "$(lab_probe_get "$out" new_failed)" -eq 0
lab_wait_until 5 test -z "$(guarded 1)"
lab_expect "(a) gw1's guard expired by itself" "$(guarded 1)" == ""

echo "(b) a node that takes a group back lifts its own guard at once" >&2
unpin
lab_ctl 2 failover --group 1 --to gw1 >/dev/null || lab_fail "(b) failover to gw1"
lab_wait_primary 1 gw1 5 >/dev/null || lab_fail "(b) gw1 did not take group 1"
lab_ctl 1 failover --group 1 --to gw2 >/dev/null || lab_fail "(b) failover to gw2"
lab_wait_primary 1 gw2 5 >/dev/null || lab_fail "(b) gw2 did not take group 1"
lab_expect "(b) gw1 guards the group's interfaces" "$(guarded 1)" == "lan0,wan0"
lab_ctl 2 failover --group 1 --to gw1 >/dev/null || lab_fail "(b) failover back to gw1"
lab_wait_primary 1 gw1 5 >/dev/null || lab_fail "(b) gw1 did not take group 1 back"
lab_expect "(b) gw1 guards nothing once primary again" "$(guarded 1)" == ""
lab_expect "(b) gw1 logged the lift" "$(grep -c 'event=handoff.guard .*group=1 op=lift' "$LAB_DIR/gw1.log")" -ge 1
out=$LAB_DIR/b.json
d0=$(drops 1)
lab_probe_client --udp-hz 0 --new-every-ms 20 --duration-ms 500 >"$out" 2>"$out.err" ||
	{ cat "$out.err" >&2; lab_fail "(b) probe"; }
echo "  (b) traffic: $(lab_probe_summary "$out")" >&2
lab_expect "(b) new connections failed" "$(lab_probe_get "$out" new_failed)" -eq 0
lab_expect "(b) new connections ok" "$(lab_probe_get "$out" new_ok)" -gt 0
lab_expect "(b) packets gw1's guard dropped meanwhile" "$(($(drops 1) - d0))" -eq 0

echo "(c) control: the same handoff with gw1's guard table removed loses connections" >&2
lab_wait_until 5 lab_group_is 2 1 secondary
lab_wait_until 10 sh -c "[ \"\$(lab_status 2 | jq -r .sessions.in_sync)\" = true ]" 2>/dev/null
lab_nsexec gw1 nft delete table inet $GUARD_TABLE || lab_fail "(c) cannot delete gw1's guard table"
out=$LAB_DIR/c.json
switch 1 2 "$out" "(c)"
lab_expect "(c) gw1 reported the guard it could not set" "$(grep -c 'event=handoff.guard_error' "$LAB_DIR/gw1.log")" -ge 1
lost=$(jq '(.tcp_connections - .tcp_survived) + .new_failed + .tcp_connect_failed' "$out")
lab_expect "(c) connections lost or never opened without the guard" "$lost" -gt 0
unpin

lab_finish
