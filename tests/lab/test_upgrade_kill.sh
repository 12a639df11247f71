#!/usr/bin/env bash
# test_upgrade_kill.sh BUILD_DIR - the in-service upgrade (SPEC section 5,
# issue 5) when its coordinator dies part-way, and three options of the
# upgrade: auto-finalize, --no-failback and the single-member-group check.
# Two gateways with SNAT, strict conntrack and session sync, under the load
# of tests/lab/upgrade_lib.sh (1000 long-lived TCP connections, 1 kHz UDP,
# a new connection every 10 ms); V0 (BUILD_DIR) -> V1 (the same source built
# as the next minor version), as tests/lab/test_upgrade_faults.sh.
#
# (k<N>) for N in TK_KILL_STEPS (default 1 5 6 7: backup, distribute,
#      upgrade gw2, move group 1 to gw2), each on a fresh lab: gw1 (the
#      group 0 primary, the coordinator) runs with
#      TANDEMD_FAILPOINT=upgrade.step.N, so its worker exits 137 right after
#      recording step N as running; the upgrade is started on gw2. gw1's
#      version is confirmed, so its supervisor ends with the worker (status
#      137, src/io/supervise.c); whatever is left of the node's process group
#      is killed by PID. gw2 must take the groups (an unplanned failover:
#      longest UDP gap under dead_after x heartbeat_ms + 50 ms, no
#      established connection lost, no reset) and become the coordinator;
#      gw1 comes back without the failpoint and the upgrade must end
#      (completed, or failed/aborted with the rollback done: "the other node
#      finishes or rolls back"), both nodes on one version, one journal
#      (journal_seq equal), the groups on gw1, the configuration not frozen.
# (s)  a group whose only member with priority above 0 is gw1 (applied with
#      `config apply`): `upgrade plan` exits 3 with E_GROUP_SINGLE; with
#      --disruptive that check passes. Then the configuration goes back.
# (f)  upgrade.auto_finalize: true: a completed upgrade is finalized within
#      seconds with no `upgrade finalize`; (f2) the next upgrade (V1 -> V2),
#      started and followed on gw2 as the first, completes too.
#      (s), (f) and (f2) share one lab.
# (n)  `upgrade start --no-failback` (a lab of its own): completed, both on
#      the new version, the groups stay on gw2 with their manual flag set;
#      `failover --group 1 --reset` releases group 1 (back to gw1, which
#      outranks gw2 and preempts).
#
# Every lab lives in its own directory under $LAB_OUT/$LAB_NAME (kept, with
# the daemons' logs, when a check failed). TK_PARTS="kill opts" picks parts.
set -uo pipefail
TL_PREFIX=${TL_PREFIX:-tk-}
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/upgrade_lib.sh"
lab_init "${1:-}" tandemd tandemctl tandem-probe
T_START=$(lab_now_ms)
TK_KILL_STEPS=${TK_KILL_STEPS:-1 5 6 7}
TK_PARTS=${TK_PARTS:-kill opts}

upg_versions
upg_build "$UPG_V1" >/dev/null || exit 1
upg_build "$UPG_V2" >/dev/null || exit 1
V0=$UPG_V0 V1=$UPG_V1 V2=$UPG_V2
# As test_upgrade_faults.sh: a restart that fails is given up within
# seconds; the hold timer bounds the rest.
UPG_HOLD_S=30
# The longest gap an unplanned failover may cause (SPEC section 6).
UNPLANNED_GAP_MS=$((LAB_DEAD_AFTER * LAB_HB_MS + 50))
BASE=$LAB_DIR
rm -rf "$BASE"
IMG_CACHE=$BASE/images
declare -a SUMMARY=()

# images : the signing key (trusted) and the images of V1 and V2 in the
# lab directory; built once, copied into every later lab.
images() {
	if [ -e "$IMG_CACHE/img-$V2" ]; then
		cp "$IMG_CACHE/signing.key" "$IMG_CACHE/signing.key.pub" "$IMG_CACHE/img-$V1" "$IMG_CACHE/img-$V2" \
			"$LAB_DIR/" || lab_fail "cannot copy the images from $IMG_CACHE"
		cp "$IMG_CACHE/signing.key.pub" "$LAB_DIR/trusted.d/lab.pub"
		UPG_KEY=$LAB_DIR/signing.key
		return 0
	fi
	upg_images "$V1" "$V2"
	mkdir -p "$IMG_CACHE"
	cp "$UPG_KEY" "$UPG_KEY.pub" "$LAB_DIR/img-$V1" "$LAB_DIR/img-$V2" "$IMG_CACHE/" ||
		lab_fail "cannot keep the images in $IMG_CACHE"
}

# setup NAME [FAILPOINT] [EXTRA_YAML_LINE] : a fresh lab in $BASE/NAME (the
# previous one torn down): two gateways, gw1 started with FAILPOINT armed,
# EXTRA_YAML_LINE appended to the upgrade section; both groups on gw1,
# gw2's sessions in sync.
setup() {
	local name=$1 fp=${2:-} extra=${3:-}
	if [ "$LAB_UP" = 1 ]; then
		lab_down || lab_soft_fail "a daemon of the previous lab did not end cleanly (see above)"
	fi
	LAB_DIR=$BASE/$name
	lab_up 2 --snat --strict-conntrack
	upg_config_settings
	[ -n "$extra" ] && echo "$extra" >>"$LAB_DIR/tandem.yaml"
	images
	lab_probe_server
	if [ -n "$fp" ]; then
		TANDEMD_FAILPOINT=$fp lab_start_node 1
	else
		lab_start_node 1
	fi
	lab_start_node 2
	upg_wait_pair "$name"
}

# same_journal : gw1 and gw2 report one journal (id, state, journal_seq).
journal_of() { upg_get "$1" '"id=\(.id) state=\(.state) journal_seq=\(.journal_seq)"'; }
same_journal() { [ "$(journal_of 1)" = "$(journal_of 2)" ]; }

# wait_supervisor_end PID : the node's supervisor (the process group
# leader lab_start_node started) ends within 5 s; SUP_STATUS is its exit
# status, or "running". (Not in a command substitution: only this shell
# can wait for its child. kill -0 cannot tell either: the ended supervisor
# is this shell's zombie until waited for.)
proc_ended() { [ ! -e "/proc/$1/stat" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
wait_supervisor_end() {
	local pid=$1
	SUP_STATUS=running
	lab_wait_until 5 proc_ended "$pid" || return 0
	wait "$pid" 2>/dev/null
	SUP_STATUS=$?
}

# ---- (k<N>) the coordinator dies at step N -------------------------------------------
kill_case() {
	local n=$1 label="(k$1)" fp=upgrade.step.$1 out plan step pid st t_fp co cur final
	echo "$label $V0 -> $V1, the coordinator gw1 dies at step $n" >&2
	setup "k$n" "$fp"
	out=$LAB_DIR/k$n.json
	upg_wait_plan_ok 2 "$LAB_DIR/img-$V1" 20 || lab_fail "$label the cluster never passed its pre-checks"
	plan=$(lab_ctl 2 --json upgrade plan --image "$LAB_DIR/img-$V1" 2>/dev/null)
	step=$(jq -r --argjson i "$n" '.steps[] | select(.index == $i) | "\(.kind): \(.text)"' <<<"$plan")
	echo "  $label step $n of $(jq -r '.steps | length' <<<"$plan"): $step" >&2
	lab_expect "$label gw1 has the failpoint armed" \
		"$(grep -cE "event=failpoint\.armed .*name=$fp( |\$)" "$LAB_DIR/gw1.log")" -ge 1
	upg_probe_start "$out"
	upg_ctl 2 upgrade start --image "$LAB_DIR/img-$V1" --detach >/dev/null 2>"$LAB_DIR/start.err" ||
		{ cat "$LAB_DIR/start.err" >&2; lab_fail "$label upgrade start --detach"; }
	pid=${LAB_PID[1]}
	if ! lab_wait_until "$UPG_RUN_S" grep -qE "event=failpoint .*name=$fp( |\$)" "$LAB_DIR/gw1.log"; then
		upg_print_nodes 2
		lab_fail "$label gw1 never reached step $n"
	fi
	t_fp=$(lab_now_ms)
	lab_probe_mark
	# A confirmed version's worker that dies ends its supervisor too
	# (boot_after_exit: BOOT_EXIT), with the worker's status.
	wait_supervisor_end "$pid"
	st=$SUP_STATUS
	lab_expect "$label gw1's supervisor ended with its worker's status" "$st" == 137
	{ kill -KILL -- "-$pid"; } 2>/dev/null # what is left of the node (hooks)
	[ "$st" = running ] && lab_kill_node 1
	LAB_PID[1]=
	echo "=== $(date +%T.%3N) lab: gw1 died at $fp (supervisor: $st); its group killed" >>"$LAB_DIR/gw1.log"
	lab_expect "$label gw2 took group 0" "$(lab_wait_primary 0 gw2 5 >/dev/null && echo yes)" == yes
	lab_expect "$label gw2 took group 1" "$(lab_wait_primary 1 gw2 5 >/dev/null && echo yes)" == yes
	gw2_leads() {
		co=$(upg_get 2 .coordinator) cur=$(upg_get 2 .cursor)
		[ "$co" = gw2 ] || [ "${cur:-0}" -gt "$n" ] 2>/dev/null || ! upg_state_in 2 running
	}
	lab_wait_until 10 gw2_leads
	co=$(upg_get 2 .coordinator) cur=$(upg_get 2 .cursor)
	if [ "$co" = gw2 ]; then
		lab_pass "$label gw2 is the coordinator ($(($(lab_now_ms) - t_fp)) ms after gw1 died)"
	elif [ "${cur:-0}" -gt "$n" ] 2>/dev/null || ! upg_state_in 2 running; then
		lab_pass "$label gw2 carried the upgrade on: cursor $cur, state $(upg_state 2), coordinator $co"
	else
		lab_soft_fail "$label gw2 neither became the coordinator nor made progress: coordinator $co, cursor $cur, state $(upg_state 2)"
	fi
	upg_print_nodes 2
	sleep 2
	echo "  $label gw1 comes back (no failpoint): gw2 $(upg_get 2 '"state \(.state), running: \([.steps[]? | select(.status == "running") | .text][0] // "-")"')" >&2
	lab_start_node 1
	upg_wait_state 2 "completed|aborted|failed|rolled_back" "$UPG_RUN_S"
	lab_wait_until 10 same_journal
	sleep 1
	upg_probe_stop "$out"
	upg_print_nodes 2
	final=$(upg_state 2)
	if [[ "$final" =~ ^(completed|failed|aborted|rolled_back)$ ]]; then
		lab_pass "$label ended: $final"
	else
		lab_soft_fail "$label ended: $final (want completed, or failed/aborted/rolled_back with the rollback done)"
	fi
	lab_expect "$label one journal on both nodes" "$(journal_of 1)" == "$(journal_of 2)"
	upg_one_version "$label"
	if [ "$final" = completed ]; then
		lab_expect "$label finished: the version" "$ONE_VERSION" == "$V1"
	else
		lab_expect "$label rolled back: the version" "$ONE_VERSION" == "$V0"
		echo "  $label error: $(upg_get 2 '"\(.error.code // "-"): \(.error.message // "-"); recovery: \(.error.recovery // "-")"')" >&2
	fi
	upg_served "$label" gw1
	upg_check_traffic "$label" "$out" unplanned
	lab_expect "$label longest udp gap (ms)" "$(lab_probe_get "$out" udp_max_gap_after_ready_ms | cut -d. -f1)" \
		-lt "$UNPLANNED_GAP_MS"
	SUMMARY+=("$label died at step $n ($step): $final, gw1=$(upg_node_version 1) gw2=$(upg_node_version 2), $(journal_of 2), error $(upg_get 2 '.error.code // "-"'), longest gap $(lab_probe_get "$out" udp_max_gap_after_ready_ms) ms")
}

if [[ " $TK_PARTS " == *" kill "* ]]; then
	for n in $TK_KILL_STEPS; do kill_case "$n"; done
fi

# ---- (s), (f), (n) on one lab, upgrade.auto_finalize: true --------------------------------
if [[ " $TK_PARTS " == *" opts "* ]]; then
	setup opts "" "  auto_finalize: true"
	CONF=$LAB_DIR/tandem.yaml

	# (s) a group with one member
	echo "(s) a group whose only member is gw1: no in-service path" >&2
	SINGLE=$LAB_DIR/single.yaml
	awk '/^sessions:/ { print "  - id: 2"; print "    priority: {gw1: 200}" } { print }' "$CONF" >"$SINGLE"
	"$LAB_BUILD/tandemd" --check-config --config "$SINGLE" >"$LAB_DIR/single.check" 2>&1 ||
		{ cat "$LAB_DIR/single.check" >&2; lab_fail "(s) the configuration with a single-member group is refused"; }
	lab_ctl 1 config apply "$SINGLE" >"$LAB_DIR/single.apply" 2>&1 ||
		{ cat "$LAB_DIR/single.apply" >&2; lab_fail "(s) config apply"; }
	# Only E_GROUP_SINGLE failing (the peers' facts follow the new
	# configuration within seconds).
	only_single() {
		local o
		o=$(lab_ctl "$1" --json upgrade plan --image "$LAB_DIR/img-$V1" 2>/dev/null)
		[ "$(jq -r '[.checks[] | select(.ok == false) | .code] | join(",")' <<<"$o")" = E_GROUP_SINGLE ]
	}
	lab_wait_until 20 only_single 1
	before=$(upg_status 1 | jq -c '{state, id}')
	out=$(lab_ctl 1 --json upgrade plan --image "$LAB_DIR/img-$V1" 2>/dev/null)
	rc=$?
	lab_expect "(s) plan exit code" "$rc" -eq 3
	echo "  (s) failed: $(jq -r '[.checks[]? | select(.ok == false) | "\(.code) (\(.message))"] | join("; ")' <<<"$out")" >&2
	lab_expect "(s) E_GROUP_SINGLE reported" \
		"$(jq -r '[.checks[]? | select(.ok == false) | .code] | index("E_GROUP_SINGLE") != null' <<<"$out")" == true
	lab_expect "(s) the message names group 2" \
		"$(jq -r '[.checks[]? | select(.code == "E_GROUP_SINGLE") | .message][0] // "" | test("group 2")' <<<"$out")" == true
	lab_ctl 2 upgrade plan --image "$LAB_DIR/img-$V1" >"$LAB_DIR/single.plan" 2>&1
	rc=$?
	lab_expect "(s) plan on gw2 (text) exit code" "$rc" -eq 3
	lab_expect "(s) plan on gw2 (text) says E_GROUP_SINGLE" "$(grep -c E_GROUP_SINGLE "$LAB_DIR/single.plan")" -ge 1
	out=$(lab_ctl 1 --json upgrade plan --image "$LAB_DIR/img-$V1" --disruptive 2>/dev/null)
	rc=$?
	lab_expect "(s) --disruptive: E_GROUP_SINGLE passes" \
		"$(jq -r '[.checks[]? | select(.code == "E_GROUP_SINGLE") | .ok][0]' <<<"$out")" == true
	lab_expect "(s) --disruptive: plan exit code" "$rc" -eq 0
	lab_expect "(s) nothing changed" "$(upg_status 1 | jq -c '{state, id}')" == "$before"
	lab_ctl 1 config apply "$CONF" >"$LAB_DIR/conf.apply" 2>&1 ||
		{ cat "$LAB_DIR/conf.apply" >&2; lab_fail "(s) config apply (back to two groups)"; }
	SUMMARY+=("(s) plan with a single-member group: refused with E_GROUP_SINGLE; --disruptive passes it")

	# (f) auto-finalize
	echo "(f) $V0 -> $V1 with upgrade.auto_finalize: true" >&2
	out=$LAB_DIR/f.json
	upg_wait_plan_ok 2 "$LAB_DIR/img-$V1" 20 || lab_fail "(f) the cluster never passed its pre-checks"
	upg_probe_start "$out"
	upg_ctl 2 upgrade start --image "$LAB_DIR/img-$V1" >"$LAB_DIR/f.start" 2>&1
	rc=$?
	tail -n 8 "$LAB_DIR/f.start" | sed 's/^/  | /' >&2
	lab_expect "(f) upgrade start exit code" "$rc" -eq 0
	# `upgrade start` follows the upgrade to its end; whether it did or
	# not, the daemon's journal is what is judged.
	lab_expect "(f) upgrade start followed it to its end" \
		"$(grep -cE 'upgrade [0-9]+( completed|: idle, .*, finalized)' "$LAB_DIR/f.start")" -ge 1
	finalized_on() { [ "$(upg_get "$1" .finalized)" = true ]; }
	lab_wait_until "$UPG_RUN_S" finalized_on 1
	lab_wait_until 5 finalized_on 2
	# From the coordinator's log: completed at, finalized at.
	log_ms() { grep -h "$1" "$LAB_DIR/gw1.log" | head -n 1 | sed -n 's/^ts=\([^ ]*\) .*/\1/p' | xargs -r -I{} date -d {} +%s%3N; }
	t_done=$(log_ms 'event=upgrade.state .*to=completed')
	t_fin=$(log_ms 'event=upgrade.state .*reason="finalized"')
	f_ms=$((${t_fin:-0} - ${t_done:-0}))
	lab_expect "(f) finalized after completion (ms, from the logs)" "$f_ms" -ge 0
	lab_expect "(f) finalized within 5 s of completion (ms)" "$f_ms" -lt 5000
	sleep 1
	upg_probe_stop "$out"
	upg_print_nodes 1
	# A finalized upgrade leaves the journal idle (as `upgrade finalize`
	# does), still naming the upgrade.
	lab_expect "(f) the upgrade" "$(upg_get 1 '"\(.from) -> \(.to)"')" == "$V0 -> $V1"
	lab_expect "(f) finalized on gw1 without a finalize command" "$(upg_get 1 .finalized)" == true
	lab_expect "(f) finalized on gw2" "$(upg_get 2 .finalized)" == true
	lab_expect "(f) state once finalized" "$(upg_state 1)" == idle
	lab_expect "(f) no finalize was asked" "$(cat "$LAB_DIR"/gw?.log | grep -c 'cmd=upgrade_finalize')" -eq 0
	lab_expect "(f) the daemon logged its auto-finalize" "$(cat "$LAB_DIR"/gw?.log | grep -c 'event=upgrade.auto_finalize')" -ge 1
	upg_one_version "(f)"
	lab_expect "(f) the version" "$ONE_VERSION" == "$V1"
	upg_served "(f)" gw1
	upg_check_traffic "(f)" "$out"
	SUMMARY+=("(f) auto_finalize: $V0 -> $V1 completed, finalized $(upg_get 1 .finalized) within ${f_ms} ms of the end")

	# (f2) the next upgrade after an auto-finalized one, started (and
	# followed) on gw2 like the first.
	echo "(f2) $V1 -> $V2, the next upgrade after an auto-finalized one" >&2
	f_id=$(upg_get 1 .id)
	upg_wait_plan_ok 2 "$LAB_DIR/img-$V2" 20 || lab_fail "(f2) the cluster never passed its pre-checks"
	upg_ctl 2 upgrade start --image "$LAB_DIR/img-$V2" >"$LAB_DIR/f2.start" 2>&1
	rc=$?
	tail -n 4 "$LAB_DIR/f2.start" | sed 's/^/  | /' >&2
	lab_expect "(f2) upgrade start exit code" "$rc" -eq 0
	next_finalized() { [ "$(upg_get 1 '"\(.id) \(.finalized)"')" != "$f_id true" ] && finalized_on 1; }
	lab_wait_until "$UPG_RUN_S" next_finalized
	lab_expect "(f2) a new upgrade" "$(upg_get 1 .id)" != "$f_id"
	lab_expect "(f2) the upgrade" "$(upg_get 1 '"\(.from) -> \(.to) finalized=\(.finalized)"')" == "$V1 -> $V2 finalized=true"
	upg_one_version "(f2)"
	lab_expect "(f2) the version" "$ONE_VERSION" == "$V2"
	upg_served "(f2)" gw1
	SUMMARY+=("(f2) the next upgrade, started on gw2: exit $rc, $(upg_get 1 '"id \(.id) \(.from) -> \(.to), state \(.state), finalized \(.finalized)"')")

	# (n) --no-failback, on a lab of its own (no auto-finalize)
	setup nofb
	echo "(n) $V0 -> $V1 --no-failback" >&2
	out=$LAB_DIR/n.json
	upg_wait_plan_ok 2 "$LAB_DIR/img-$V1" 20 || lab_fail "(n) the cluster never passed its pre-checks"
	upg_probe_start "$out"
	upg_ctl 2 upgrade start --image "$LAB_DIR/img-$V1" --no-failback >"$LAB_DIR/n.start" 2>&1
	rc=$?
	tail -n 8 "$LAB_DIR/n.start" | sed 's/^/  | /' >&2
	lab_expect "(n) upgrade start exit code" "$rc" -eq 0
	lab_expect "(n) upgrade start followed it to its end" "$(grep -cE 'upgrade [0-9]+ completed' "$LAB_DIR/n.start")" -ge 1
	upg_wait_state 2 "completed|aborted|failed|rolled_back" "$UPG_RUN_S"
	upg_print_nodes 2
	lab_expect "(n) state" "$(upg_state 2)" == completed
	lab_expect "(n) no_failback in the journal" "$(upg_get 2 .no_failback)" == true
	upg_one_version "(n)"
	lab_expect "(n) the version" "$ONE_VERSION" == "$V1"
	# The groups stay where the switch put them, and keep staying (gw1
	# outranks gw2 and preempts: only the manual flag holds them).
	sleep 3
	lab_expect "(n) group 0 stays on gw2" "$(lab_wait_primary 0 gw2 2 >/dev/null && echo yes)" == yes
	lab_expect "(n) group 1 stays on gw2" "$(lab_wait_primary 1 gw2 2 >/dev/null && echo yes)" == yes
	n_groups=$(lab_status 2 | jq -c '[.groups[] | {id, state, primary, manual}]')
	echo "  (n) groups on gw2: $n_groups" >&2
	lab_expect "(n) group 0 manual on gw2" "$(lab_group_field 2 0 manual)" == true
	lab_expect "(n) group 1 manual on gw2" "$(lab_group_field 2 1 manual)" == true
	lab_expect "(n) configuration not frozen" "$(upg_get 2 .frozen)" == false
	lab_ctl 1 failover --group 1 --reset >"$LAB_DIR/n.reset" 2>&1
	rc=$?
	sed 's/^/  | /' "$LAB_DIR/n.reset" >&2
	lab_expect "(n) failover --group 1 --reset exit code" "$rc" -eq 0
	lab_expect "(n) group 1 released: back on gw1" "$(lab_wait_primary 1 gw1 10 >/dev/null && echo yes)" == yes
	lab_expect "(n) group 1 manual flag cleared" "$(lab_group_field 1 1 manual)" == false
	sleep 1
	upg_probe_stop "$out"
	upg_check_traffic "(n)" "$out"
	SUMMARY+=("(n) --no-failback: $(upg_state 2) on $ONE_VERSION; groups 3 s after the upgrade (gw2's view): $n_groups")
fi

echo "summary:" >&2
for s in "${SUMMARY[@]}"; do echo "  $s" >&2; done
echo "whole test $((($(lab_now_ms) - T_START) / 1000)) s" >&2
# On success lib.sh removes LAB_DIR at exit: make that every lab of this run.
[ "$LAB_FAILS" = 0 ] && LAB_DIR=$BASE
lab_finish
