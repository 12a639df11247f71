#!/usr/bin/env bash
# test_sessions.sh BUILD_DIR - stateful failover (issue 3, SPEC section 6):
# gateways with nf_conntrack_tcp_loose=0, a forward policy that drops what
# conntrack does not know, and SNAT of the LAN to the WAN VIP. Long-lived
# TCP connections survive a planned failover and the primary dying only
# because session sync put their conntrack entries (NAT bindings included)
# into the secondary's kernel before the takeover. The same run with
# sessions.sync false loses them, so the test can fail.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
lab_init "${1:-}" tandemd tandemctl tandem-probe

TCP_N=${SESSIONS_TCP:-1000}
UDP_FLOWS=${SESSIONS_UDP_FLOWS:-100}
LOAD=(--udp-hz 1000 --udp-flows "$UDP_FLOWS" --udp-flow-hz 20 --tcp "$TCP_N"
	--tcp-interval-ms 1000 --new-every-ms 50 --gaps-over-ms "$PROBE_GAP_LIST_MS"
	--connect-timeout-ms 5000)

# Every UDP flow (its own source port, hence its own NAT binding) came back.
check_udp_flows() {
	local label=$1 json=$2
	echo "  $label: udp flows $(jq -r '"\(.udp_flows_alive)/\(.udp_flows) alive, longest gap \(.udp_flows_max_gap_ms) ms, lost \(.udp_flows_lost)"' "$json")" >&2
	lab_expect "$label udp_flows_alive" "$(lab_probe_get "$json" udp_flows_alive)" -eq "$UDP_FLOWS"
}

sessions_field() { lab_status "$1" 2>/dev/null | jq -r ".sessions.$2 | tostring"; }
in_sync() { [ "$(sessions_field "$1" in_sync)" = true ]; }
count_at_least() { [ "$(sessions_field "$1" count)" -ge "$2" ] 2>/dev/null; }
# The failover must happen while the probe measures, not after it.
event_inside() {
	local label=$1 dur_ms=$2
	lab_expect "$label event inside the measured run (ms)" "${LAB_PROBE_EVENT_MS:-999999}" -lt $((dur_ms - 1000))
}

lab_up 2 --strict-conntrack --snat --preempt false
UNPLANNED_LIMIT_MS=$((LAB_DEAD_AFTER * LAB_HB_MS + 50))
lab_probe_server
lab_start_node 1
lab_start_node 2
lab_wait_primary 1 gw1 15 >/dev/null || lab_fail "group 1 has no agreed primary gw1"
lab_wait_until 10 in_sync 2 || lab_fail "gw2 never reported its sessions in sync"
lab_pass "gw2 in sync with gw1 (role $(sessions_field 2 role), source $(sessions_field 2 source))"

echo "(0) a secondary's stale entry is swept by the bulk sync when it rejoins" >&2
stale() { lab_nsexec gw2 conntrack -L -p tcp -s 192.0.2.99 -d 198.51.100.99 2>/dev/null | grep -c 'sport=1111'; }
lab_nsexec gw2 conntrack -I -p tcp -s 192.0.2.99 -d 198.51.100.99 --sport 1111 --dport 2222 \
	--state ESTABLISHED -u SEEN_REPLY -t 3600 >/dev/null 2>&1 || lab_fail "(0) conntrack -I in gw2"
lab_expect "(0) planted stale entries in gw2" "$(stale)" -eq 1
lab_stop_node 2
lab_start_node 2
lab_wait_until 10 in_sync 2 || lab_fail "(0) gw2 never got back in sync"
lab_wait_until 3 test "$(stale)" -eq 0
lab_expect "(0) stale entries left in gw2 after its bulk sync" "$(stale)" -eq 0
lab_expect "(0) gw2 logged a sweep" "$(grep -c 'event=sessions.sweep' "$LAB_DIR/gw2.log")" -ge 1
lab_wait_ready 2 1 10 || lab_fail "(0) gw2 never finished starting in group 1"

echo "(a) planned failover to gw2: $TCP_N long-lived TCP connections and $UDP_FLOWS UDP flows through SNAT" >&2
out=$LAB_DIR/a.json
lab_probe_start "$out" --duration-ms 8000 "${LOAD[@]}"
lab_wait_until 4 count_at_least 1 "$TCP_N"
n1=$(sessions_field 1 count)
lab_wait_until 10 in_sync 2
n2=$(sessions_field 2 count)
echo "  sessions before the move: gw1 $n1, gw2 $n2" >&2
lab_expect "(a) gw1 tracks the connections" "$n1" -ge "$TCP_N"
lab_expect "(a) gw2 holds the synced table" "$n2" -ge "$TCP_N"
lab_probe_mark
lab_ctl 1 failover --group 1 --to gw2
lab_expect "(a) tandemctl failover exit code" "$?" -eq 0
lab_expect "(a) holders of $VIP_WAN" "$(lab_vip_holders $VIP_WAN | xargs)" == gw2
lab_probe_wait "$out"
lab_check_probe "(a) planned" "$out" 50 new
event_inside "(a)" 8000
check_udp_flows "(a) planned" "$out"
lab_expect "(a) barrier passed (not timed out)" \
	"$(grep -c 'event=group.grant.*reason=barrier_ok' "$LAB_DIR/gw1.log")" -ge 1

echo "(b) gw2 (now primary) dies: gw1 takes over with the table gw2 synced back" >&2
lab_wait_until 10 in_sync 1 || lab_fail "gw1 never got back in sync from gw2"
lab_pass "gw1 in sync with gw2 ($(sessions_field 1 count) sessions)"
out=$LAB_DIR/b.json
lab_probe_start "$out" --duration-ms 6000 "${LOAD[@]}"
lab_wait_until 3 in_sync 1
lab_probe_mark
lab_kill_node 2
lab_wait_primary 1 gw1 5 >/dev/null || lab_fail "(b) gw1 did not take group 1"
lab_probe_wait "$out"
lab_check_probe "(b) unplanned" "$out" "$UNPLANNED_LIMIT_MS"
event_inside "(b)" 6000
check_udp_flows "(b) unplanned" "$out"

echo "(c) control: the same planned failover with sessions.sync false loses the connections" >&2
lab_down
LAB_SESSIONS_SYNC=false
lab_up 2 --strict-conntrack --snat --preempt false --sessions-sync false
lab_probe_server
lab_start_node 1
lab_start_node 2
lab_wait_primary 1 gw1 15 >/dev/null || lab_fail "(c) group 1 has no agreed primary gw1"
out=$LAB_DIR/c.json
lab_probe_start "$out" --duration-ms 5000 "${LOAD[@]}"
sleep 1
lab_ctl 1 failover --group 1 --to gw2
lab_probe_wait "$out"
echo "  (c) without sync: $(lab_probe_summary "$out")" >&2
lab_expect "(c) connections lost without session sync" \
	"$(lab_probe_get "$out" tcp_survived)" -lt "$(lab_probe_get "$out" tcp_connections)"
lab_finish
