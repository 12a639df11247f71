#!/usr/bin/env bash
# test_upgrade_faults.sh BUILD_DIR - the in-service upgrade when things go
# wrong (SPEC section 5, "Any failure aborts the upgrade ...", issue 5),
# under load, on two gateways with SNAT, strict conntrack and session sync
# (the fixture of test_upgrade.sh: tests/lab/upgrade_lib.sh). Every case
# ends with both nodes on one version, the groups served, and is judged
# on `upgrade status --json`, `status --json`, the kernel and the traffic:
#
# (c1) an image whose tandemd exits at every start: gw2 gives it up by
#      itself, the upgrade fails (E_NODE_REVERTED or E_REJOIN_TIMEOUT)
#      with its recovery said, both nodes on V0, traffic kept;
# (c2) `upgrade abort` while gw2 upgrades, and (c3) while gw1 (the former
#      coordinator) upgrades, after the groups moved to gw2: aborted
#      (E_ABORTED), both back on V0, groups back on gw1, traffic kept;
# (c4) gw1, the coordinator until the switch, killed (power cut) once gw2 is upgraded: gw2 takes
#      the groups (an unplanned failover: established connections kept),
#      becomes the coordinator and finds the journal; gw1 comes back and the
#      upgrade is finished or rolled back: one version on both nodes;
# (c5) --disruptive: the plan says every node at once, with an outage;
#      both end on the new version; the traffic during it is measured and
#      laid over the steps by the report (here the kernels keep the VIPs and
#      sessions through the daemons' exec, so the outage measured is small:
#      it is printed, not assumed).
set -uo pipefail
TL_PREFIX=${TL_PREFIX:-tv-}
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/upgrade_lib.sh"
lab_init "${1:-}" tandemd tandemctl tandem-probe
T_START=$(lab_now_ms)

upg_versions
upg_build "$UPG_V1" >/dev/null || exit 1
upg_build "$UPG_V2" >/dev/null || exit 1
V0=$UPG_V0 V1=$UPG_V1 V2=$UPG_V2 VBAD=$UPG_VBAD
# A restart that dies three times is given up within seconds (test_image.sh
# measures it); the hold timer bounds the rest.
UPG_HOLD_S=30
lab_up 2 --snat --strict-conntrack
upg_config_settings
upg_images "$V1" "$V2"
upg_image_scripted "$VBAD" dies
lab_probe_server
lab_start_node 1
lab_start_node 2
upg_wait_pair

# error_is LABEL "CODE|CODE" : the status's error names one of the codes,
# the failed step and what was done about it.
error_is() {
	local label=$1 codes=$2 st code
	st=$(upg_status 1)
	code=$(jq -r '.error.code // "none"' <<<"$st")
	if [[ "$code" =~ ^($codes)$ ]]; then
		lab_pass "$label error code: $code"
	else
		lab_soft_fail "$label error code: $code (want $codes)"
	fi
	lab_expect "$label error names its step" "$(jq -r '.error.step // "none" | tostring' <<<"$st")" != none
	lab_expect "$label error has a recovery" "$(jq -r '(.error.recovery // "") | length' <<<"$st")" -gt 0
}

# ready_for_next : a case that went wrong must not make the next one fail
# for its own reason: a completed upgrade is finalized (asked on gw2, not
# the coordinator), and NEXT is the image above what the cluster runs.
ready_for_next() {
	if [ "$(upg_state 1)" = completed ]; then
		lab_ctl 2 upgrade finalize >/dev/null 2>&1
		lab_wait_until 10 sh -c "[ \"\$(timeout 5 '$LAB_BUILD/tandemctl' --socket '$(lab_sock 1)' --json upgrade status | jq -r .state)\" = idle ]"
	fi
	NEXT=$V1
	[ "$(upg_node_version 1)" = "$V0" ] || NEXT=$V2
}

# wait_step LABEL KIND NODE : until the step KIND of NODE runs (30 s).
wait_step() {
	lab_wait_until 60 upg_step_running 1 "$2" "$3" ||
		lab_wait_until 1 upg_step_running 2 "$2" "$3" ||
		{ upg_print_nodes 1; lab_fail "$1: step $2 $3 never ran"; }
}

# ---- (c1) a version whose daemon dies at start -----------------------------------
echo "(c1) $V0 -> $VBAD, whose tandemd exits 1 at every start" >&2
C=$LAB_DIR/c1.json
upg_wait_plan_ok 1 "$LAB_DIR/img-$V1" 20 || lab_fail "the cluster never passed its pre-checks"
upg_probe_start "$C"
t0=$(lab_now_ms)
upg_ctl 1 upgrade start --image "$LAB_DIR/img-$VBAD" >"$LAB_DIR/c1.start" 2>&1
rc=$?
C1_MS=$(($(lab_now_ms) - t0))
tail -n 25 "$LAB_DIR/c1.start" | sed 's/^/  | /' >&2
lab_expect "(c1) upgrade start exit code (failed)" "$rc" -eq 1
sleep 1
upg_probe_stop "$C"
upg_print_nodes 1
lab_expect "(c1) state" "$(upg_state 1)" == failed
lab_expect "(c1) state on gw2 (journal replicated)" "$(upg_state 2)" == failed
error_is "(c1)" "E_NODE_REVERTED|E_REJOIN_TIMEOUT"
lab_expect "(c1) gw2 recorded its own revert" "$(lab_ctl 2 --json image list | jq -r '.last_revert.from // "none"')" == "$VBAD"
upg_one_version "(c1)"
lab_expect "(c1) the version" "$ONE_VERSION" == "$V0"
upg_served "(c1)" gw1
upg_check_traffic "(c1)" "$C"
upg_report 1 "$C"

# abort_at LABEL KIND NODE : start V0 -> V1, abort once step KIND of NODE
# runs; judged as an abort must end.
abort_at() {
	local label=$1 kind=$2 node=$3 out=$LAB_DIR/${1//[^a-z0-9]/}.json rc ask=1 from
	[ "$node" = gw1 ] && ask=2 # asked on the node that is not restarting
	ready_for_next
	from=$(upg_node_version 1)
	upg_probe_start "$out"
	upg_ctl 2 upgrade start --image "$LAB_DIR/img-$NEXT" --detach >/dev/null 2>"$LAB_DIR/abort.err" ||
		{ cat "$LAB_DIR/abort.err" >&2; lab_fail "$label: upgrade start --detach"; }
	wait_step "$label" "$kind" "$node"
	echo "  $label: step $kind $node running: upgrade abort (on gw$ask, coordinator $(upg_get $ask .coordinator))" >&2
	lab_ctl $ask upgrade abort >"$LAB_DIR/abort.out" 2>&1
	rc=$?
	sed 's/^/  | /' "$LAB_DIR/abort.out" >&2
	lab_expect "$label abort exit code" "$rc" -eq 0
	upg_wait_state 1 "aborted|failed|rolled_back|completed" "$UPG_RUN_S"
	sleep 1
	upg_probe_stop "$out"
	upg_print_nodes 1
	lab_expect "$label state" "$(upg_state 1)" == aborted
	lab_expect "$label state on gw2" "$(upg_state 2)" == aborted
	error_is "$label" E_ABORTED
	upg_one_version "$label"
	lab_expect "$label the version" "$ONE_VERSION" == "$from"
	upg_served "$label" gw1
	upg_check_traffic "$label" "$out"
	upg_report 1 "$out"
}

# ---- (c2) abort while gw2 upgrades ---------------------------------------------------
echo "(c2) $V0 -> $V1, abort while gw2 upgrades" >&2
abort_at "(c2)" upgrade gw2

# ---- (c3) abort while gw1 upgrades (the groups on gw2) ---------------------------------
echo "(c3) $V0 -> $V1, abort while gw1 (the former coordinator) upgrades" >&2
abort_at "(c3)" upgrade gw1

# ---- (c4) the coordinator killed --------------------------------------------------------
echo "(c4) $V0 -> $V1, the coordinator gw1 killed once gw2 is upgraded" >&2
C=$LAB_DIR/c4.json
ready_for_next
C4_FROM=$(upg_node_version 1) C4_TO=$NEXT
upg_probe_start "$C"
upg_ctl 2 upgrade start --image "$LAB_DIR/img-$NEXT" --detach >/dev/null 2>"$LAB_DIR/c4.err" ||
	{ cat "$LAB_DIR/c4.err" >&2; lab_fail "(c4) upgrade start --detach"; }
gw2_upgraded() { [ "$(upg_get 1 '.nodes[] | select(.node == "gw2") | .state')" = upgraded ]; }
lab_wait_until "$UPG_RUN_S" gw2_upgraded || { upg_print_nodes 1; lab_fail "(c4) gw2 never upgraded"; }
# The switch steps after gw2's upgrade take milliseconds, so the poll may
# find group 0 already handed to gw2: the kill then hits the node being
# switched or upgraded rather than the coordinator. Either way the cluster
# must finish or roll back; the coordinator killed at fixed steps is
# tests/lab/test_upgrade_kill.sh (failpoint upgrade.step.N).
lab_expect "(c4) killed while the upgrade runs" "$(upg_state 1)" == running
echo "  (c4) gw2 upgraded; coordinator $(upg_get 1 '.coordinator'); running: $(upg_running_step 1 | jq -r '.text // "-"'); killing gw1" >&2
lab_probe_mark
lab_kill_node 1
lab_wait_primary 1 gw2 5 >/dev/null || lab_soft_fail "(c4) gw2 did not take group 1 within 5 s"
lab_expect "(c4) gw2 is the coordinator" "$(lab_wait_until 10 sh -c "[ \"\$(timeout 5 '$LAB_BUILD/tandemctl' --socket '$(lab_sock 2)' --json upgrade status | jq -r .coordinator)\" = gw2 ]" && echo yes)" == yes
upg_print_nodes 2
sleep 3
echo "  (c4) gw1 comes back: $(upg_get 2 '"state \(.state), running: \([.steps[]? | select(.status == "running") | .text][0] // "-")"')" >&2
lab_revive_node 1
upg_wait_state 2 "completed|aborted|failed|rolled_back" "$UPG_RUN_S"
sleep 1
upg_probe_stop "$C"
upg_print_nodes 2
st=$(upg_state 2)
if [[ "$st" =~ ^(completed|failed|aborted)$ ]]; then lab_pass "(c4) ended: $st"; else lab_soft_fail "(c4) ended: $st (want completed, failed or aborted)"; fi
lab_expect "(c4) gw1 holds the same journal" "$(upg_get 1 '"\(.id) \(.state)"')" == "$(upg_get 2 '"\(.id) \(.state)"')"
upg_one_version "(c4)"
if [ "$(upg_state 2)" = completed ]; then
	lab_expect "(c4) finished: the version" "$ONE_VERSION" == "$C4_TO"
else
	lab_expect "(c4) rolled back: the version" "$ONE_VERSION" == "$C4_FROM"
fi
upg_served "(c4)" gw1
upg_check_traffic "(c4)" "$C" unplanned
upg_report 2 "$C"
ready_for_next

# ---- (c5) disruptive ------------------------------------------------------------------------
echo "(c5) -> $V2 --disruptive: every node at once" >&2
C=$LAB_DIR/c5.json
out=$(lab_ctl 1 --json upgrade plan --image "$LAB_DIR/img-$V2" --disruptive 2>/dev/null)
lab_expect "(c5) plan --disruptive: disruptive" "$(jq -r .disruptive <<<"$out")" == true
lab_expect "(c5) plan --disruptive: one upgrade step for both nodes" \
	"$(jq -r '[.steps[] | select(.kind == "upgrade") | .nodes | sort | join(",")] | join(" ")' <<<"$out")" == "gw1,gw2"
upg_probe_start "$C"
t0=$(lab_now_ms)
upg_ctl 1 upgrade start --image "$LAB_DIR/img-$V2" --disruptive >"$LAB_DIR/c5.start" 2>&1
rc=$?
C5_MS=$(($(lab_now_ms) - t0))
tail -n 25 "$LAB_DIR/c5.start" | sed 's/^/  | /' >&2
lab_expect "(c5) upgrade start exit code" "$rc" -eq 0
sleep 2
upg_probe_stop "$C"
upg_print_nodes 1
lab_expect "(c5) state" "$(upg_state 1)" == completed
lab_expect "(c5) disruptive" "$(upg_get 1 .disruptive)" == true
upg_one_version "(c5)"
lab_expect "(c5) the version" "$ONE_VERSION" == "$V2"
upg_served "(c5)" gw1
echo "  (c5) traffic: $(lab_probe_summary "$C")" >&2
upg_report 1 "$C"
echo "  (c5) outage measured: longest UDP gap $(jq -r .udp_max_gap_ms "$C") ms, $(jq -r .udp_lost "$C") datagrams lost; in the report: $(jq -c .probe.totals "$C.report")" >&2
lab_expect "(c5) the report's traffic figures cover the upgrade" "$(jq -r .probe.covers_upgrade "$C.report")" == true
echo "figures: (c1) failed in ${C1_MS} ms, (c5) disruptive ${C5_MS} ms; whole test $((($(lab_now_ms) - T_START) / 1000)) s" >&2
lab_finish
