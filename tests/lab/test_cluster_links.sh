#!/usr/bin/env bash
# test_cluster_links.sh BUILD_DIR - (d) losing one link is an alarm, never a
# takeover (SPEC section 1: a peer is lost only when silent on all links).
# Twice, with traffic through the VIPs: link 0 cut by taking gw2's ctl0
# down, then link 1 cut by an nftables drop of the control port on the WAN
# segment, both ways. Each time: group 1 stays on gw1 for 3 s with no
# group.state event on either node, gw1 raises an alarm naming the link and
# shows the peer's link down; when the link returns the alarm clears.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
lab_init "${1:-}" tandemd tandemctl tandem-probe

lab_up 2
lab_probe_server
lab_start_node 1
lab_start_node 2
lab_wait_primary 0 gw1 15 >/dev/null || lab_fail "group 0 has no agreed primary gw1"
lab_wait_primary 1 gw1 15 >/dev/null || lab_fail "group 1 has no agreed primary gw1"
lab_wait_until 5 lab_peer_is 1 gw2 alive || lab_fail "gw1 does not see gw2 alive"
# Both links up and no alarm before we start: the checks below could fail.
lab_wait_until 5 lab_no_alarms 1 ||
	lab_fail "gw1 has alarms before any link was cut: $(lab_alarms 1)"
lab_expect "gw1 sees gw2 link 0" "$(lab_peer_link_state 1 gw2 0)" == up
lab_expect "gw1 sees gw2 link 1" "$(lab_peer_link_state 1 gw2 1)" == up

# stable_for SECONDS: group 1 stays on gw1 and gw2 never claims it, polled
# every 200 ms.
stable_for() {
	local end=$(($(lab_now_ms) + $1 * 1000)) s1 s2
	while [ "$(lab_now_ms)" -lt "$end" ]; do
		s1=$(lab_group_state 1 1)
		s2=$(lab_group_state 2 1)
		if [ "$s1" != primary ] || [ "$s2" = primary ]; then
			echo "gw1=$s1 gw2=$s2"
			return 1
		fi
		sleep 0.2
	done
	echo "gw1=primary gw2=$s2 throughout"
}

# cut_check LABEL LINK_INDEX CUT_COMMAND RESTORE_COMMAND PEER_ADDR IFNAME
cut_check() {
	local label=$1 link=$2 cut=$3 restore=$4 addr=$5 ifn=$6 ev1 ev2 alarms out s
	out=$LAB_DIR/$label.json
	ev1=$(lab_group_events 1)
	ev2=$(lab_group_events 2)
	lab_probe_start "$out" --duration-ms 6000 "${PROBE_LOAD[@]}"
	sleep 0.5
	lab_probe_mark 5000
	eval "$cut" || lab_fail "$label: cannot cut the link ($cut)"
	s=$(stable_for 3)
	lab_expect "$label: group 1 stays on gw1 for 3 s" "$?" -eq 0
	echo "  $label: $s" >&2
	lab_expect "$label: group 0 still on gw1" "$(lab_group_state 1 0)" == primary
	lab_expect "$label: group.state events on gw1" "$(lab_group_events 1)" -eq "$ev1"
	lab_expect "$label: group.state events on gw2" "$(lab_group_events 2)" -eq "$ev2"
	lab_expect "$label: gw1 sees gw2" "$(lab_peer_state 1 gw2)" == alive
	lab_expect "$label: gw2 sees gw1" "$(lab_peer_state 2 gw1)" == alive
	lab_expect "$label: gw1 sees gw2 link $link" "$(lab_peer_link_state 1 gw2 "$link")" == down
	lab_expect "$label: gw1 sees gw2 link $((1 - link))" "$(lab_peer_link_state 1 gw2 $((1 - link)))" == up
	lab_expect "$label: holders of $VIP_LAN" "$(lab_vip_holders $VIP_LAN | xargs)" == gw1
	alarms=$(lab_alarms 1)
	echo "  $label: gw1 alarms: $alarms" >&2
	lab_expect "$label: gw1 alarm count" "$(jq 'length' <<<"$alarms")" -gt 0
	# The alarm must say which link of which peer: "link 1", "link=1",
	# the peer's address on it or the interface name.
	lab_expect "$label: an alarm names gw2's link $link" \
		"$(jq -r --arg re "link[^0-9]{0,3}$link([^0-9]|\$)" --arg addr "$addr" --arg ifn "$ifn" \
			'[.[] | (if type == "string" then . else tojson end) | select(test("gw2") and (test($re) or contains($addr) or contains($ifn)))] | length' \
			<<<"$alarms")" -gt 0
	eval "$restore" || lab_fail "$label: cannot restore the link ($restore)"
	if lab_wait_until 5 lab_no_alarms 1; then
		lab_pass "$label: gw1's alarm cleared after the link came back"
	else
		lab_soft_fail "$label: gw1 alarms 5 s after the link came back: $(lab_alarms 1)"
	fi
	lab_expect "$label: gw1 sees gw2 link $link after restore" "$(lab_peer_link_state 1 gw2 "$link")" == up
	lab_probe_wait "$out"
	lab_check_probe "$label traffic" "$out" 50 new
}

echo "(d1) link 0 (control link): gw2's ctl0 down" >&2
cut_check d1-ctl 0 "ip -n ${P}gw2 link set ctl0 down" "ip -n ${P}gw2 link set ctl0 up" 203.0.113.12 ctl0

echo "(d2) link 1 (WAN segment): control port dropped both ways by nftables" >&2
cut_check d2-wan 1 \
	"lab_nsexec gw1 nft add rule inet tandem-lab input ip saddr 198.51.100.12 th dport $LAB_PORT drop &&
	 lab_nsexec gw2 nft add rule inet tandem-lab input ip saddr 198.51.100.11 th dport $LAB_PORT drop" \
	"lab_nsexec gw1 nft flush chain inet tandem-lab input && lab_nsexec gw2 nft flush chain inet tandem-lab input" \
	198.51.100.12 wan0

lab_finish
