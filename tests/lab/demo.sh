#!/usr/bin/env bash
# demo.sh BUILD_DIR - `make demo`: a two-node Tandem cluster in network
# namespaces carrying real traffic (1 kHz UDP, 20 long-lived TCP connections,
# a new TCP connection every 50 ms) through its VIPs, taken through a planned
# failover, its failback, an unplanned failover (the primary dies) and the
# recovery. The gateways are strict stateful NAT firewalls (SNAT to the WAN
# VIP, nf_conntrack_tcp_loose=0, unknown packets dropped), so connections
# survive only because session sync put them in the new primary's kernel
# first. Then a report of what the traffic saw at each event, judged
# against SPEC section 6, and the cluster's status at the end.
# Exits 1 if any event broke a guarantee.
set -uo pipefail
LAB_NAME=demo
source "$(dirname "$0")/lib.sh"
lab_init "${1:-}" tandemd tandemctl tandem-probe

if [ -t 1 ]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'; else B= G= R= N=; fi
say() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }

PREEMPT_DELAY_S=1
say "Building the lab: client -- [gw1, gw2] -- server, in namespaces ${P}*"
lab_up 2 --preempt true --preempt-delay-s $PREEMPT_DELAY_S --strict-conntrack --snat
UNPLANNED_LIMIT_MS=$((LAB_DEAD_AFTER * LAB_HB_MS + 50))
cat <<EOF
   client 192.0.2.100 --(LAN)-- gw1 / gw2 --(WAN)-- server 198.51.100.100
   VIPs 192.0.2.1 (LAN) and 198.51.100.1 (WAN), group 1; control link 203.0.113.0/24
   heartbeat ${LAB_HB_MS} ms, dead after ${LAB_DEAD_AFTER} missed; preempt after ${PREEMPT_DELAY_S} s
   priorities: gw1 200, gw2 100; configuration in $LAB_DIR/tandem.yaml
   gateways: SNAT of the LAN to 198.51.100.1, nf_conntrack_tcp_loose=0, forward
   policy drops what conntrack does not know: only synced sessions survive
EOF
lab_probe_server

say "Starting tandemd on gw1 and gw2"
lab_start_node 1
lab_start_node 2
lab_wait_primary 0 gw1 15 >/dev/null || lab_fail "group 0 was not elected"
t=$(lab_wait_primary 1 gw1 15) || lab_fail "group 1 was not elected"
echo "   gw1 is primary of groups 0 and 1, gw2 secondary; VIPs on: $(lab_vip_holders | xargs)"

ROWS=()
BROKEN=0

# event LABEL DESCRIPTION KIND(planned|preempt|unplanned|steady) WANT_PRIMARY COMMAND...
# Runs the probe for 5 s, the command 1 s into it, waits until WANT_PRIMARY
# is agreed primary of group 1, and records the probe's figures.
event() {
	local label=$1 desc=$2 kind=$3 want=$4 out t0 took limit verdict new_rule t preempted=0
	shift 4
	[ "$kind" = preempt ] && kind=planned preempted=1
	out=$LAB_DIR/event-${#ROWS[@]}.json
	say "$desc"
	lab_probe_start "$out" --duration-ms 5000 "${PROBE_LOAD[@]}"
	sleep 1
	t0=$(lab_now_ms)
	lab_probe_mark $((PREEMPT_DELAY_S * 1000 + 3000))
	[ $# -gt 0 ] && { echo "   \$ $*"; "$@" >/dev/null; }
	if lab_wait_primary 1 "$want" 10 >/dev/null; then
		took=$(($(lab_now_ms) - t0))
	else
		took=never
	fi
	# A move that came on its own after the preempt delay: judge the gap
	# where the daemon says it happened.
	if [ "$preempted" = 1 ] && [ "$took" != never ]; then
		t=$(lab_log_time_primary "${want#gw}" 1) && lab_probe_mark_at "$t"
	fi
	lab_probe_wait "$out"
	if [ "$kind" = steady ]; then
		echo "   group 1 primary: $want; VIPs on: $(lab_vip_holders_live | xargs)"
	else
		echo "   group 1 primary: $want, agreed ${took} ms after the event; VIPs on: $(lab_vip_holders_live | xargs)"
	fi
	echo "   traffic: $(lab_probe_summary "$out")"
	case $kind in
	unplanned) limit=$UNPLANNED_LIMIT_MS new_rule=0 ;;
	*) limit=50 new_rule=1 ;;
	esac
	verdict=ok
	local gap con surv rst nok nfail lost
	gap=$(lab_probe_event_gap "$out")
	[ "$kind" = steady ] && gap=$(jq -r '.udp_max_gap_ms' "$out")
	lost=$(jq -r '.udp_lost' "$out")
	con=$(jq -r '.tcp_connections' "$out")
	surv=$(jq -r '.tcp_survived' "$out")
	rst=$(jq -r '.tcp_resets' "$out")
	nok=$(jq -r '.new_ok' "$out")
	nfail=$(jq -r '.new_failed' "$out")
	[ "$took" = never ] && verdict=BROKEN
	# In steady state the gap is the machine's own noise, shown for reference.
	[ "$kind" = steady ] || [ "${gap%.*}" -lt "$limit" ] 2>/dev/null || verdict=BROKEN
	[ "$surv" = "$con" ] && [ "$rst" = 0 ] || verdict=BROKEN
	[ $new_rule = 1 ] && [ "$nfail" != 0 ] && verdict=BROKEN
	[ $verdict = ok ] || BROKEN=$((BROKEN + 1))
	ROWS+=("$label|$kind|$want|$took|$gap|$limit|$lost|$surv/$con|$rst|$nok/$nfail|$verdict")
}

event "steady state" "Steady state: traffic through gw1, nothing happens" steady gw1
event "planned failover" "Planned failover of group 1 to gw2" planned gw2 \
	lab_ctl 1 failover --group 1 --to gw2
event "failback (--reset)" "Failback: clear the manual flag, gw1 preempts after ${PREEMPT_DELAY_S} s" preempt gw1 \
	lab_ctl 1 failover --group 1 --reset
event "unplanned failover" "Unplanned failover: gw1 dies (kill -9, its links down)" unplanned gw2 \
	lab_kill_node 1
event "recovery (preempt)" "Recovery: gw1 comes back and preempts after ${PREEMPT_DELAY_S} s" preempt gw1 \
	lab_revive_node 1

say "Report"
{
	printf '%-3s %-20s %-10s %-8s %-8s %-13s %-9s %-9s %-7s %-10s %s\n' \
		"#" "EVENT" "KIND" "PRIMARY" "TAKEN" "GAP ms" "UDP LOST" "TCP KEPT" "RESETS" "NEW ok/x" "RESULT"
	i=0
	for r in "${ROWS[@]}"; do
		IFS='|' read -r name kind want took gap limit lost surv rst new verdict <<<"$r"
		i=$((i + 1))
		[ "$took" != never ] && took="${took}ms"
		gapcol="$gap (<$limit)"
		[ "$kind" = steady ] && took=- gapcol="$gap (ref.)"
		if [ "$verdict" = ok ]; then v="${G}ok${N}"; else v="${R}BROKEN${N}"; fi
		printf '%-3s %-20s %-10s %-8s %-8s %-13s %-9s %-9s %-7s %-10s %s\n' \
			"$i" "$name" "$kind" "$want" "$took" "$gapcol" "$lost" "$surv" "$rst" "$new" "$v"
	done
}
cat <<EOF

   GAP: longest silence of the 1 kHz UDP stream that overlaps the event
        (from the command until the takeover settled; "2" means no silence
        over 2 ms); in steady state, the longest of the whole run. Limit:
        50 ms planned, dead_after x heartbeat + 50 = ${UNPLANNED_LIMIT_MS} ms unplanned.
   TCP KEPT: long-lived connections alive at the end / opened. NEW: new
        connections opened every 50 ms, ok / failed (must be 0 when planned).
   TAKEN: time until every live node agreed on the new primary, as seen by
        polling tandemctl status (so it includes the polling delay).
EOF

say "Cluster status at the end"
for i in 1 2; do
	echo "--- tandemctl status on gw$i"
	lab_ctl $i status | sed 's/^/   /'
done

if [ $BROKEN -gt 0 ]; then
	say "${R}$BROKEN event(s) broke a guarantee; logs in $LAB_DIR${N}"
	exit 1
fi
say "${G}Every event within the guarantees.${N}"
