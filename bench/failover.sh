#!/usr/bin/env bash
# failover.sh BUILD_DIR [--impl tandem|keepalived] [--runs N]
#             [--heartbeat-ms MS] [--dead-after K] [--out FILE]
#
# Measures failover gaps in the lab (tests/lab/lib.sh) with the probe's real
# traffic through the VIPs (1 kHz UDP, 20 long-lived TCP connections, a new
# connection every 50 ms): N planned and N unplanned failovers of group 1 on
# a two-node cluster, preempt off so the roles alternate. Appends one line per
# run to FILE (default stdout), tab-separated:
#   impl timers kind run gap_ms udp_lost tcp_survived tcp_connections
#   tcp_resets new_failed takeover_ms run_max_gap_ms
# gap_ms is the longest UDP silence overlapping the failover (from 100 ms
# before the action to 2 s after it; 2 = none over 2 ms); run_max_gap_ms the
# longest of the whole 3-4 s run, machine stalls included.
#
# Planned: tandem: `tandemctl failover --group 1 --to OTHER`; keepalived:
#   SIGTERM to the master (it sends a priority-0 advertisement, VRRP's way
#   to hand over, RFC 5798 section 6.4.3), then it is started again.
# Unplanned: the primary dies (every process of the node SIGKILLed, its
#   links down), then comes back as a secondary.
#
# keepalived runs VRRPv3 on the control link (ctl0), advert_int = heartbeat,
# which gives it the same detection time, 3 x advert_int plus skew, that
# dead_after 3 gives Tandem. It has one path where Tandem has two.
set -uo pipefail
impl=tandem runs=5 hb=100 dead=3 outfile=
build=${1:-}
[ -n "$build" ] && shift
while [ $# -gt 0 ]; do
	case "$1" in
	--impl) impl=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--heartbeat-ms) hb=$2; shift 2 ;;
	--dead-after) dead=$2; shift 2 ;;
	--out) outfile=$2; shift 2 ;;
	*) echo "failover.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
case "$impl" in tandem | keepalived) ;; *) echo "failover.sh: --impl tandem|keepalived" >&2; exit 2 ;; esac
[[ "$runs" =~ ^[0-9]+$ ]] && [ "$runs" -ge 1 ] && [ "$runs" -le 100 ] || { echo "failover.sh: --runs 1..100" >&2; exit 2; }
[[ "$hb" =~ ^[0-9]+$ ]] && [[ "$dead" =~ ^[0-9]+$ ]] || { echo "failover.sh: bad timers" >&2; exit 2; }

LAB_NAME=bench-$impl-${hb}ms
source "$(dirname "$0")/../tests/lab/lib.sh"
if [ "$impl" = tandem ]; then
	lab_init "$build" tandemd tandemctl tandem-probe
else
	lab_init "$build" tandem-probe
	command -v keepalived >/dev/null || { echo "failover.sh: keepalived not installed (scripts/deps.sh)" >&2; exit 1; }
fi
[ -n "$outfile" ] || outfile=/dev/stdout
timers="${hb}msx$dead"

lab_up 2 --heartbeat-ms "$hb" --dead-after "$dead" --preempt false
lab_probe_server

source "$(dirname "$0")/keepalived.sh"

# ---------------------------------------------------------------- one run

# A run: probe for 3 s (4 s unplanned), the action 1 s in, then the figures.
record() { # KIND RUN JSON TAKEOVER_MS
	local gap
	gap=$(lab_probe_event_gap "$3")
	jq -r --arg impl "$impl" --arg timers "$timers" --arg kind "$1" --arg run "$2" --arg t "$4" \
		--arg gap "$gap" \
		'[$impl, $timers, $kind, $run, $gap, .udp_lost, .tcp_survived,
		  .tcp_connections, .tcp_resets, .new_failed, $t, .udp_max_gap_ms] | map(tostring) | join("\t")' \
		"$3" >>"$outfile"
	echo "  $impl $timers $1 #$2: gap $gap ms; $(lab_probe_summary "$3"), taken over in $4 ms" >&2
}

# wait_taken OTHER: the other node is primary (agreed, for tandem; sole VIP
# holder, for keepalived). Prints ms or "never".
wait_taken() {
	local other=$1 t0
	t0=$(lab_now_ms)
	if [ "$impl" = tandem ]; then
		lab_wait_primary 1 "gw$other" 10 >/dev/null || { echo never; return 1; }
	else
		# A dead node keeps its addresses on its downed links: count the
		# taker, not the exclusivity.
		lab_wait_until 10 lab_vips_on "gw$other" || { echo never; return 1; }
	fi
	echo $(($(lab_now_ms) - t0))
}

cur=1
if [ "$impl" = tandem ]; then
	lab_start_node 1
	lab_wait_primary 1 gw1 15 >/dev/null || lab_fail "gw1 alone not primary"
	lab_start_node 2
	lab_wait_primary 1 gw1 15 >/dev/null || lab_fail "group 1 not agreed on gw1"
	lab_wait_until 5 lab_group_is 2 1 secondary || lab_fail "gw2 not secondary"
else
	kd_start 1
	lab_wait_until 15 lab_vips_only_on gw1 || lab_fail "keepalived gw1 never became master"
	kd_start 2
	sleep 1
	lab_vips_only_on gw1 || lab_fail "keepalived: VIPs not only on gw1 once gw2 started"
fi

for ((r = 1; r <= runs; r++)); do
	other=$((3 - cur))
	out=$LAB_DIR/planned-$r.json
	lab_probe_start "$out" --duration-ms 3000 "${PROBE_LOAD[@]}"
	sleep 1
	lab_probe_mark
	if [ "$impl" = tandem ]; then
		lab_ctl "$cur" failover --group 1 --to "gw$other" >/dev/null || lab_soft_fail "failover --to gw$other failed"
		took=$(wait_taken "$other")
	else
		kd_stop "$cur"
		took=$(wait_taken "$other")
		kd_start "$cur"
	fi
	lab_probe_wait "$out"
	record planned "$r" "$out" "$took"
	[ "$took" = never ] && lab_fail "planned run $r: gw$other never took over"
	cur=$other
	sleep 0.5
done
if [ "$impl" = tandem ]; then
	lab_ctl "$cur" failover --group 1 --reset >/dev/null || lab_soft_fail "failover --reset failed"
fi

for ((r = 1; r <= runs; r++)); do
	other=$((3 - cur))
	out=$LAB_DIR/unplanned-$r.json
	lab_probe_start "$out" --duration-ms 4000 "${PROBE_LOAD[@]}"
	sleep 1
	lab_probe_mark
	if [ "$impl" = tandem ]; then
		lab_kill_node "$cur"
	else
		kd_kill "$cur"
	fi
	took=$(wait_taken "$other")
	lab_probe_wait "$out"
	record unplanned "$r" "$out" "$took"
	[ "$took" = never ] && lab_fail "unplanned run $r: gw$other never took over"
	# The dead node comes back, as a secondary (preempt off).
	if [ "$impl" = tandem ]; then
		lab_revive_node "$cur"
		lab_wait_until 10 lab_group_is "$cur" 1 secondary || lab_fail "gw$cur did not come back as secondary"
		lab_wait_until 5 lab_peer_is "$other" "gw$cur" alive || lab_fail "gw$other does not see gw$cur back"
	else
		ip -n "${P}gw$cur" link set lan0 up
		ip -n "${P}gw$cur" link set wan0 up
		ip -n "${P}gw$cur" link set ctl0 up
		kd_start "$cur"
		lab_wait_until 10 lab_vips_only_on "gw$other" ||
			lab_fail "keepalived gw$cur came back but the VIPs are on: $(lab_vip_holders | xargs)"
	fi
	sleep 1
	cur=$other
done
[ "$LAB_FAILS" = 0 ] || exit 1
exit 0
