#!/usr/bin/env bash
# test_failover.sh BUILD_DIR - the life of a two-node cluster with real
# traffic through its VIPs: election (a), planned failover and its reset (b),
# unplanned failover when the primary dies (c), and preemption when the
# preferred node comes back (e, preempt true with a delay). SPEC section 6
# gives the limits: planned gap < 50 ms with no connection lost or reset;
# unplanned gap < dead_after x heartbeat_ms + 50 ms with established
# connections kept.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
lab_init "${1:-}" tandemd tandemctl tandem-probe

PREEMPT_DELAY_S=2
lab_up 2 --preempt true --preempt-delay-s $PREEMPT_DELAY_S
UNPLANNED_LIMIT_MS=$((LAB_DEAD_AFTER * LAB_HB_MS + 50))
lab_probe_server
lab_start_node 1
lab_start_node 2

echo "(a) election: gw1 (priority 200) primary of groups 0 and 1, gw2 secondary" >&2
t=$(lab_wait_primary 0 gw1 15) || lab_fail "(a) group 0 has no agreed primary gw1"
lab_pass "group 0 primary gw1, agreed by gw2 ($t ms after start)"
t=$(lab_wait_primary 1 gw1 15) || lab_fail "(a) group 1 has no agreed primary gw1"
lab_pass "group 1 primary gw1, agreed by gw2 ($t ms after start)"
# gw2 agrees on gw1 as soon as it hears it, but leaves its own start-up
# observation (init) a little later: wait for that, bounded.
lab_wait_until 5 lab_group_is 2 0 secondary
lab_wait_until 5 lab_group_is 2 1 secondary
lab_expect "(a) gw2 group 0 state" "$(lab_group_state 2 0)" == secondary
lab_expect "(a) gw2 group 1 state" "$(lab_group_state 2 1)" == secondary
lab_expect "(a) holders of $VIP_LAN" "$(lab_vip_holders $VIP_LAN | xargs)" == gw1
lab_expect "(a) holders of $VIP_WAN" "$(lab_vip_holders $VIP_WAN | xargs)" == gw1
lab_expect "(a) gw1 sees gw2" "$(lab_peer_state 1 gw2)" == alive
out=$LAB_DIR/a.json
lab_probe_client --duration-ms 1000 --udp-hz 200 --tcp 2 >"$out" 2>"$out.err" ||
	{ cat "$out.err" >&2; lab_fail "(a) probe through the VIPs failed"; }
echo "  (a) traffic: $(lab_probe_summary "$out")" >&2
lab_expect "(a) udp_lost" "$(lab_probe_get "$out" udp_lost)" -eq 0
lab_expect "(a) tcp_survived" "$(lab_probe_get "$out" tcp_survived)" -eq 2

echo "(b) planned failover of group 1 to gw2 under load" >&2
out=$LAB_DIR/b.json
lab_probe_start "$out" --duration-ms 5000 "${PROBE_LOAD[@]}"
sleep 1
lab_expect "(b) traffic through gw1 before" "$(lab_forwarders 0.5)" == gw1
lab_probe_mark
lab_ctl 1 failover --group 1 --to gw2
lab_expect "(b) tandemctl failover exit code" "$?" -eq 0
t=$(lab_wait_primary 1 gw2 5) || lab_fail "(b) group 1 did not move to gw2"
lab_pass "group 1 primary gw2, agreed by gw1 ($t ms after the command)"
lab_expect "(b) holders of $VIP_LAN" "$(lab_vip_holders $VIP_LAN | xargs)" == gw2
lab_expect "(b) holders of $VIP_WAN" "$(lab_vip_holders $VIP_WAN | xargs)" == gw2
lab_expect "(b) traffic through gw2 after" "$(lab_forwarders 0.5)" == gw2
lab_expect "(b) gw2 group 1 manual" "$(lab_group_field 2 1 manual)" == true
lab_expect "(b) gw1 still primary of group 0" "$(lab_group_state 1 0)" == primary
lab_probe_wait "$out"
lab_check_probe "(b) planned" "$out" 50 new

echo "(b) failover --reset: manual flag cleared, preemption returns group 1 to gw1" >&2
out=$LAB_DIR/b-reset.json
lab_probe_start "$out" --duration-ms $((PREEMPT_DELAY_S * 1000 + 4000)) "${PROBE_LOAD[@]}"
lab_probe_mark $((PREEMPT_DELAY_S * 1000 + 2000))
lab_ctl 1 failover --group 1 --reset
lab_expect "(b) tandemctl failover --reset exit code" "$?" -eq 0
lab_expect "(b) gw2 group 1 manual after reset" "$(lab_group_field 2 1 manual)" == false
t=$(lab_wait_primary 1 gw1 $((PREEMPT_DELAY_S + 8))) || lab_fail "(b) group 1 did not return to gw1 after --reset (preempt true)"
lab_pass "group 1 back on gw1 $t ms after the reset"
# The move came on its own after the preempt delay: judge the gap there.
t=$(lab_log_time_primary 1 1) && lab_probe_mark_at "$t"
lab_expect "(b) holders of $VIP_LAN after reset" "$(lab_vip_holders $VIP_LAN | xargs)" == gw1
lab_probe_wait "$out"
lab_check_probe "(b) failback" "$out" 50 new

echo "(c) unplanned failover: gw1 dies (SIGKILL, links down) under load" >&2
out=$LAB_DIR/c.json
lab_probe_start "$out" --duration-ms 5000 "${PROBE_LOAD[@]}"
sleep 1
lab_expect "(c) traffic through gw1 before" "$(lab_forwarders 0.5)" == gw1
lab_probe_mark
lab_kill_node 1
t=$(lab_wait_primary 1 gw2 5) || lab_fail "(c) gw2 did not take group 1"
lab_pass "gw2 primary of group 1 $t ms after the kill (status polling included)"
t=$(lab_wait_primary 0 gw2 5) || lab_fail "(c) gw2 did not take group 0"
lab_expect "(c) holders of $VIP_LAN (up)" "$(lab_vip_holders_live $VIP_LAN | xargs)" == gw2
lab_expect "(c) traffic through gw2 after" "$(lab_forwarders 0.5)" == gw2
lab_expect "(c) gw2 sees gw1" "$(lab_peer_state 2 gw1)" == lost
lab_probe_wait "$out"
lab_check_probe "(c) unplanned" "$out" "$UNPLANNED_LIMIT_MS"
echo "  (c) new connections during the outage: $(lab_probe_get "$out" new_failed) failed of $(lab_probe_get "$out" new_attempted)" >&2

echo "(e) preempt true, delay ${PREEMPT_DELAY_S} s: gw1 comes back and takes group 1 back" >&2
out=$LAB_DIR/e.json
lab_probe_start "$out" --duration-ms $((PREEMPT_DELAY_S * 1000 + 6000)) "${PROBE_LOAD[@]}"
t0=$(lab_now_ms)
lab_probe_mark $((PREEMPT_DELAY_S * 1000 + 3000))
lab_revive_node 1
# gw1 first joins as a secondary, and must drop the VIPs its killed daemon
# left on its interfaces.
lab_wait_until 5 lab_peer_is 2 gw1 alive ||
	lab_fail "(e) gw2 does not see gw1 alive after its restart"
joined=$(($(lab_now_ms) - t0))
lab_pass "gw2 sees gw1 alive $joined ms after its restart"
lab_wait_until 2 lab_group_is 1 1 secondary
lab_expect "(e) gw1 group 1 state while the delay runs" "$(lab_group_state 1 1)" == secondary
lab_expect "(e) holders of $VIP_LAN while the delay runs" "$(lab_vip_holders $VIP_LAN | xargs)" == gw2
t=$(lab_wait_primary 1 gw1 $((PREEMPT_DELAY_S + 10))) || lab_fail "(e) gw1 did not take group 1 back"
took=$(($(lab_now_ms) - t0))
lab_pass "gw1 primary of group 1 again $took ms after its restart"
t=$(lab_log_time_primary 1 1) && lab_probe_mark_at "$t"
lab_expect "(e) preemption waited preempt_delay_s (ms)" "$took" -ge $((PREEMPT_DELAY_S * 1000 - 200))
lab_expect "(e) holders of $VIP_LAN" "$(lab_vip_holders $VIP_LAN | xargs)" == gw1
lab_expect "(e) holders of $VIP_WAN" "$(lab_vip_holders $VIP_WAN | xargs)" == gw1
lab_expect "(e) traffic through gw1 after" "$(lab_forwarders 0.5)" == gw1
lab_probe_wait "$out"
lab_check_probe "(e) preemption" "$out" 50

lab_finish
