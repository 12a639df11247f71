#!/usr/bin/env bash
# demo.sh BUILD_DIR - `make demo`: the whole story of a two-node Tandem
# cluster in network namespaces carrying real traffic through its VIPs.
#
# Part 1, failovers (1 kHz UDP, 20 long-lived TCP connections, a new TCP
# connection every 50 ms): a planned failover, its failback, an unplanned
# failover (the primary dies) and the recovery. The gateways are strict
# stateful NAT firewalls (SNAT to the WAN VIP, nf_conntrack_tcp_loose=0,
# unknown packets dropped), so connections survive only because session
# sync put them in the new primary's kernel first. A report of what the
# traffic saw at each event, judged against SPEC section 6.
#
# Part 2, the in-service upgrade (SPEC section 5): a newer version of this
# very source is built (make VERSION=...), packaged and signed as an image,
# the cluster trusts its key; under 1000 long-lived TCP connections through
# SNAT, 1 kHz UDP and a new connection every 10 ms, `tandemctl upgrade
# plan` shows the checks and steps, `tandemctl upgrade start` (on the
# secondary) moves both nodes to the new version with its progress shown,
# and `tandemctl upgrade report --probe-log` lays the traffic over the
# steps. Then the probe's own summary and the cluster's status at the end.
# Exits 1 if any event or the upgrade broke a guarantee.
set -uo pipefail
LAB_NAME=demo
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/upgrade_lib.sh"
lab_init "${1:-}" tandemd tandemctl tandem-probe

if [ -t 1 ]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'; else B= G= R= N=; fi
say() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }

PREEMPT_DELAY_S=1
upg_versions
say "Building a newer version of Tandem from this source: $UPG_V1 (make VERSION=$UPG_V1; the running one is $UPG_V0)"
upg_build "$UPG_V1" >/dev/null || exit 1
say "Building the lab: client -- [gw1, gw2] -- server, in namespaces ${P}*"
lab_up 2 --preempt true --preempt-delay-s $PREEMPT_DELAY_S --strict-conntrack --snat
upg_config_settings
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

say "Report of part 1: failovers"
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


# ---------------------------------------------------------------- part 2
say "Part 2: in-service upgrade of the whole cluster, $UPG_V0 -> $UPG_V1"
lab_wait_primary 1 gw1 10 >/dev/null
lab_wait_until 15 upg_sessions_in_sync 2
CTL=$(basename "$LAB_BUILD")/tandemctl
echo "   A signing key; its public half goes in the directory named by upgrade.trusted_keys:"
echo "   \$ $CTL image keygen --out $LAB_DIR/signing.key"
echo "   The new version's programs, packaged and signed as one image:"
echo "   \$ $CTL image build --version $UPG_V1 --from $LAB_DIR/src-$UPG_V1 --key $LAB_DIR/signing.key --out $LAB_DIR/img-$UPG_V1"
upg_images "$UPG_V1"
"$LAB_BUILD/tandemctl" image verify "$LAB_DIR/img-$UPG_V1" --trusted-keys "$LAB_DIR/trusted.d" 2>&1 | sed 's/^/   /'

say "Traffic for the upgrade: $UPG_TCP long-lived TCP connections through SNAT, 1 kHz UDP, a new connection every $UPG_NEW_EVERY_MS ms"
U=$LAB_DIR/upgrade-probe.json
upg_probe_start "$U"
echo "   all $UPG_TCP connections open; events logged to $U.events"
echo "   sessions in the kernels: gw1 $(upg_conntrack_count 1), gw2 $(upg_conntrack_count 2) (synced)"

# Asked on the node that is not the group 0 primary: the command goes to
# the coordinator, whichever node it is.
COORD=$(lab_status 1 | jq -r '.groups[] | select(.id == 0) | .primary')
ASK=2
[ "$COORD" = gw2 ] && ASK=1
say "The plan: every pre-check and the exact steps, changing nothing"
echo "   \$ tandemctl upgrade plan --image $LAB_DIR/img-$UPG_V1        (on gw$ASK)"
lab_ctl $ASK upgrade plan --image "$LAB_DIR/img-$UPG_V1" 2>&1 | sed 's/^/   /'

say "The upgrade, started on gw$ASK; $COORD, the group 0 primary, carries it out"
echo "   \$ tandemctl upgrade start --image $LAB_DIR/img-$UPG_V1        (on gw$ASK)"
t0=$(lab_now_ms)
upg_ctl $ASK upgrade start --image "$LAB_DIR/img-$UPG_V1"
UPG_RC=$?
UPG_MS=$(($(lab_now_ms) - t0))
sleep 2 # traffic after the upgrade, through the failed-back gateway
upg_probe_stop "$U"
echo "   tandemctl upgrade start exited $UPG_RC after $((UPG_MS / 1000)).$((UPG_MS % 1000 / 100)) s"

say "The upgrade's report: each step's time, and what the traffic saw during it"
echo "   \$ tandemctl upgrade report --probe-log $U.events"
lab_ctl 1 upgrade report --probe-log "$U.events" 2>&1 | sed 's/^/   /'
lab_ctl 1 --json upgrade report --probe-log "$U.events" >"$U.report" 2>/dev/null

say "The probe's own summary of the whole run"
jq -r '"   UDP: \(.udp_sent) sent, \(.udp_lost) lost, longest gap \(.udp_max_gap_after_ready_ms) ms
   TCP: \(.tcp_survived) of \(.tcp_connections) long-lived connections kept, \(.tcp_resets) resets
   new connections: \(.new_ok) of \(.new_attempted) ok, \(.new_failed) failed"' "$U"

UPG_BROKEN=0
upg_verdict() { # LABEL OK(0/1) DETAIL
	if [ "$2" = 1 ]; then printf '   %s%-6s%s %s\n' "$G" "ok" "$N" "$1: $3"
	else printf '   %s%-6s%s %s\n' "$R" "BROKEN" "$N" "$1: $3"; UPG_BROKEN=$((UPG_BROKEN + 1)); fi
}
say "The upgrade against the guarantees (SPEC section 6)"
st=$(upg_status 1)
vers=$(upg_versions_of)
gap=$(jq -r '.udp_max_gap_after_ready_ms' "$U")
upg_verdict "upgrade completed" "$([ "$UPG_RC" = 0 ] && [ "$(jq -r .state <<<"$st")" = completed ] && echo 1 || echo 0)" "$(jq -r .state <<<"$st")"
upg_verdict "both nodes on $UPG_V1" "$([ "$vers" = "gw1=$UPG_V1 gw2=$UPG_V1" ] && echo 1 || echo 0)" "$vers"
upg_verdict "groups back on gw1" "$(lab_wait_primary 1 gw1 10 >/dev/null && lab_vips_only_on gw1 && echo 1 || echo 0)" "VIPs on $(lab_vip_holders | xargs)"
upg_verdict "no established connection lost" "$([ "$(jq -r .tcp_survived "$U")" = "$(jq -r .tcp_connections "$U")" ] && echo 1 || echo 0)" "$(jq -r '"\(.tcp_survived)/\(.tcp_connections)"' "$U")"
upg_verdict "no TCP reset" "$([ "$(jq -r .tcp_resets "$U")" = 0 ] && echo 1 || echo 0)" "$(jq -r .tcp_resets "$U")"
upg_verdict "no failed new connection" "$([ "$(jq -r .new_failed "$U")" = 0 ] && echo 1 || echo 0)" "$(jq -r '"\(.new_failed) of \(.new_attempted)"' "$U")"
upg_verdict "longest traffic gap under 50 ms" "$([ "${gap%.*}" -lt 50 ] 2>/dev/null && echo 1 || echo 0)" "$gap ms"
upg_verdict "the report shows zero drops" "$([ "$(jq -r .probe.zero_drops "$U.report" 2>/dev/null)" = true ] && echo 1 || echo 0)" \
	"$(jq -r '.probe | "covers the upgrade: \(.covers_upgrade), zero drops: \(.zero_drops)"' "$U.report" 2>/dev/null)"

say "Cluster status at the end"
for i in 1 2; do
	echo "--- tandemctl status on gw$i"
	lab_ctl $i status | sed 's/^/   /'
done

if [ $BROKEN -gt 0 ] || [ $UPG_BROKEN -gt 0 ]; then
	say "${R}$((BROKEN + UPG_BROKEN)) result(s) broke a guarantee; logs in $LAB_DIR${N}"
	exit 1
fi
say "${G}Every failover and the upgrade within the guarantees.${N}"
