#!/usr/bin/env bash
# test_cluster_auth.sh BUILD_DIR - (g) a node with the wrong cluster key is
# ignored: gw2 is started with a key file of its own; gw1 keeps it lost,
# counts its packets as unauthenticated and does not change state. The same
# gw2 restarted with the right key joins (so the test can tell the two apart).
#
# No traffic assertion here: gw2, alone as far as it knows, rightly claims
# the VIPs too (a misconfigured node is a split brain by construction).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
lab_init "${1:-}" tandemd tandemctl

lab_up 2
head -c 32 /dev/urandom >"$LAB_DIR/other.key"
chmod 600 "$LAB_DIR/other.key"
lab_write_config "$LAB_DIR/other.yaml" "$LAB_DIR/other.key"

lab_start_node 1
lab_wait_primary 1 gw1 15 >/dev/null || lab_fail "gw1 alone did not become primary of group 1"
lab_wait_primary 0 gw1 15 >/dev/null || lab_fail "gw1 alone did not become primary of group 0"
ev1=$(lab_group_events 1)
u0=$(lab_status 1 | jq '.counters.unauthenticated // -1')
lab_expect "(g) unauthenticated before gw2 starts" "$u0" -ge 0

echo "(g) gw2 starts with a different key" >&2
lab_start_node 2 --config "$LAB_DIR/other.yaml"
sleep 2
u1=$(lab_status 1 | jq '.counters.unauthenticated // -1')
sleep 1
u2=$(lab_status 1 | jq '.counters.unauthenticated // -1')
echo "  (g) gw1 counters.unauthenticated: $u0 before, $u1 after 2 s, $u2 after 3 s" >&2
lab_expect "(g) unauthenticated grew after gw2 started" "$u1" -gt "$u0"
lab_expect "(g) unauthenticated keeps growing" "$u2" -gt "$u1"
lab_expect "(g) gw1 sees gw2" "$(lab_peer_state 1 gw2)" == lost
lab_expect "(g) gw2 sees gw1" "$(lab_peer_state 2 gw1)" == lost
lab_expect "(g) gw1 still primary of group 1" "$(lab_group_state 1 1)" == primary
lab_expect "(g) gw1 still primary of group 0" "$(lab_group_state 1 0)" == primary
lab_expect "(g) group.state events on gw1" "$(lab_group_events 1)" -eq "$ev1"
lab_node_alive 1 || lab_fail "(g) gw1 died"

echo "(g) gw2 restarted with the cluster key joins" >&2
lab_stop_node 2
lab_start_node 2
lab_wait_until 5 lab_peer_is 1 gw2 alive || lab_fail "(g) gw2 with the right key not alive for gw1"
lab_pass "gw2 with the right key is alive for gw1"
lab_wait_primary 1 gw1 5 >/dev/null || lab_fail "(g) group 1 not agreed on gw1 after gw2 joined"
lab_expect "(g) holders of $VIP_LAN" "$(lab_vip_holders $VIP_LAN | xargs)" == gw1

lab_finish
