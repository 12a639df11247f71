#!/usr/bin/env bash
# test_cluster_preempt.sh BUILD_DIR - (e) with preempt false, a preferred
# node that comes back stays secondary: gw1 (priority 200) dies, gw2 takes
# group 1, gw1 returns and gw2 keeps the group (3 s watched, no group.state
# event on gw2). A planned failover still moves it back, and --reset then
# leaves it where it is.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
lab_init "${1:-}" tandemd tandemctl tandem-probe

lab_up 2 --preempt false --preempt-delay-s 0
lab_probe_server
lab_start_node 1
lab_wait_primary 1 gw1 15 >/dev/null || lab_fail "gw1 alone did not become primary of group 1"
lab_start_node 2
lab_wait_primary 1 gw1 15 >/dev/null || lab_fail "group 1 not agreed on gw1 once gw2 joined"
lab_wait_until 5 lab_group_is 2 1 secondary || lab_fail "gw2 not secondary of group 1"

echo "(e) preempt false: gw1 dies, gw2 takes over" >&2
lab_kill_node 1
t=$(lab_wait_primary 1 gw2 5) || lab_fail "gw2 did not take group 1"
lab_pass "gw2 primary of group 1 $t ms after gw1 died"

echo "(e) preempt false: gw1 returns and must stay secondary" >&2
out=$LAB_DIR/e.json
lab_probe_start "$out" --duration-ms 6000 "${PROBE_LOAD[@]}"
ev2=$(lab_group_events 2)
lab_probe_mark 4000
lab_revive_node 1
lab_wait_until 5 lab_peer_is 2 gw1 alive || lab_fail "gw2 does not see gw1 alive after its restart"
lab_wait_until 3 lab_group_is 1 1 secondary || lab_fail "gw1 not secondary of group 1 after its restart: $(lab_group_state 1 1)"
end=$(($(lab_now_ms) + 3000)) moved=
while [ "$(lab_now_ms)" -lt "$end" ]; do
	[ "$(lab_group_state 2 1)" = primary ] || { moved="gw2 state $(lab_group_state 2 1)"; break; }
	[ "$(lab_group_state 1 1)" = primary ] && { moved="gw1 primary"; break; }
	sleep 0.2
done
lab_expect "(e) group 1 stays on gw2 for 3 s after gw1 returned" "${moved:-stayed}" == stayed
lab_expect "(e) group.state events on gw2 since gw1 returned" "$(lab_group_events 2)" -eq "$ev2"
lab_expect "(e) holders of $VIP_LAN" "$(lab_vip_holders $VIP_LAN | xargs)" == gw2
lab_expect "(e) holders of $VIP_WAN" "$(lab_vip_holders $VIP_WAN | xargs)" == gw2
lab_expect "(e) traffic through gw2" "$(lab_forwarders 0.5)" == gw2
lab_probe_wait "$out"
lab_check_probe "(e) gw1 rejoins" "$out" 50 new

echo "(e) preempt false: a planned failover moves group 1 back; --reset leaves it" >&2
lab_ctl 2 failover --group 1 --to gw1
lab_expect "failover --to gw1 exit code" "$?" -eq 0
lab_wait_primary 1 gw1 5 >/dev/null || lab_fail "group 1 did not move to gw1"
lab_ctl 2 failover --group 1 --reset
lab_expect "failover --reset exit code" "$?" -eq 0
sleep 2
lab_expect "group 1 primary after --reset (preempt false)" "$(lab_group_state 1 1)" == primary
lab_expect "gw1 group 1 manual after --reset" "$(lab_group_field 1 1 manual)" == false

lab_finish
