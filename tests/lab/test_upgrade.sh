#!/usr/bin/env bash
# test_upgrade.sh BUILD_DIR - the cluster-wide in-service upgrade (SPEC
# section 5, issue 5) on real kernels, under load. Versions: V0 (BUILD_DIR,
# the VERSION file's version) and the same source built as V1 and V2 (make
# VERSION=..., sanitized when BUILD_DIR is), signed, the key trusted in the
# configuration's upgrade.trusted_keys. Two gateways with SNAT, strict
# conntrack (only synced sessions survive a move) and session sync; gw2's
# state directory on a small tmpfs (for the free-space check).
#
# (a) V0 -> V1 under load (UPG_TCP=1000 long-lived TCP connections through
#     SNAT, 1 kHz UDP, a new connection every 10 ms, started before and
#     stopped after), `upgrade start` on gw2 (the secondary; the group 0
#     primary gw1 carries it out): completed, both nodes on V1 (status,
#     image list), groups back on gw1, the synced table in both kernels,
#     no connection lost, no reset, no failed new connection, longest gap
#     < 50 ms; the per-step timeline with the traffic (`upgrade report
#     --probe-log`). Then finalize.
# (a2) V1 -> V2 under load, a second start refused while it runs
#     (E_UPGRADE_RUNNING), a plan refused before finalize (E_NOT_FINALIZED),
#     then `upgrade rollback`: both back on V1, rolled_back, in service.
# (b) every pre-check that a lab can fail cheaply, refused by `upgrade
#     plan` (exit 3) with its code and nothing changed: untrusted,
#     unsigned, corrupt and missing images, older and equal versions, a
#     version gap (and --force making it disruptive), a configuration the
#     new version refuses, a peer down, one link down (with an untrusted
#     image: both reported), a node in maintenance, a full state directory,
#     the CPU over its limit.
# (c) is tests/lab/test_upgrade_faults.sh (abort, coordinator killed, a
#     version that dies at start, disruptive).
# (d) two VIP groups whose members meet only in group 0: with three and
#     with four nodes the plan upgrades two nodes that share no group in
#     one step, never two members of one group; four nodes: the upgrade
#     completes with traffic kept through both groups.
set -uo pipefail
TL_PREFIX=${TL_PREFIX:-tu-}
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/upgrade_lib.sh"
lab_init "${1:-}" tandemd tandemctl tandem-probe
command -v conntrack >/dev/null || lab_fail "conntrack not found (run scripts/deps.sh)"
T_START=$(lab_now_ms)

upg_versions
# Built before the lab, so a failed build leaves nothing running.
upg_build "$UPG_V1" >/dev/null || exit 1
upg_build "$UPG_V2" >/dev/null || exit 1
V0=$UPG_V0 V1=$UPG_V1 V2=$UPG_V2
echo "versions: $V0 (running), $V1, $V2; load: $UPG_TCP TCP connections, 1 kHz UDP, a new connection every $UPG_NEW_EVERY_MS ms" >&2

TMPFS_MB=128
MNT=
lab_up 2 --snat --strict-conntrack
upg_config_settings
MNT=$LAB_DIR/gw2.state
mkdir -p "$MNT"
mount -t tmpfs -o size=${TMPFS_MB}m,mode=0700 "${P}gw2-state" "$MNT" || lab_fail "cannot mount a tmpfs on $MNT"
_upg_exit() {
	local rc=$? bad=0
	if [ "$LAB_UP" = 1 ]; then
		lab_down || bad=$?
		LAB_UP=0
	fi
	[ -n "$MNT" ] && { umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null; }
	[ "$bad" -gt 0 ] && [ "$rc" = 0 ] && rc=1
	(exit "$rc")
	_lab_exit
}
trap _upg_exit EXIT

upg_images "$V0" "$V1" "$V2"
lab_probe_server
lab_start_node 1
lab_start_node 2
upg_wait_pair
lab_expect "start: both on $V0" "$(upg_versions_of)" == "gw1=$V0 gw2=$V0"
lab_expect "start: upgrade state" "$(upg_state 1)" == idle

# check_end LABEL VERSION STATE : what every upgrade here must end with.
check_end() {
	local label=$1 v=$2 st=$3 i
	upg_print_nodes 1
	lab_expect "$label state (gw1)" "$(upg_state 1)" == "$st"
	lab_expect "$label state (gw2, the journal replicated)" "$(upg_state 2)" == "$st"
	lab_expect "$label versions" "$(upg_versions_of)" == "gw1=$v gw2=$v"
	for i in 1 2; do
		lab_expect "$label gw$i boot record: active" "$(upg_active_version "$i")" == "$v"
	done
	lab_expect "$label gw1 sees gw2 run" "$(lab_status 1 | jq -r '.peers[] | select(.node == "gw2") | .version')" == "$v"
	lab_expect "$label nodes[] of the status all on $v" \
		"$(upg_status 1 | jq -r --arg v "$v" '[.nodes[] | select(.version != $v)] | length')" -eq 0
	lab_expect "$label group 0 back on gw1" "$(lab_wait_primary 0 gw1 15 >/dev/null && echo yes)" == yes
	lab_expect "$label group 1 back on gw1" "$(lab_wait_primary 1 gw1 15 >/dev/null && echo yes)" == yes
	lab_expect "$label VIPs on gw1 alone (kernel)" "$(lab_vips_only_on gw1 && echo yes)" == yes
	lab_wait_until 30 upg_sessions_in_sync 2
	lab_expect "$label gw2 sessions in sync" "$(lab_status 2 | jq -r .sessions.in_sync)" == true
	lab_expect "$label configuration not frozen" "$(upg_get 1 '.frozen // false')" == false
}

# established LABEL : while the load runs, both kernels hold its long-lived
# connections (gw1 forwards them, gw2 got them by session sync), so the
# next failover would keep them too.
established() {
	local i n
	for i in 1 2; do
		n=$(lab_nsexec "gw$i" conntrack -L -p tcp --dport "$PROBE_PORT" --state ESTABLISHED 2>/dev/null | wc -l)
		lab_expect "$1 gw$i's kernel: established connections of the load" "$n" -ge "$UPG_TCP"
	done
}

# ---- (a) V0 -> V1 under load -------------------------------------------------
echo "(a) $V0 -> $V1 under load, started on gw2 (the secondary)" >&2
A=$LAB_DIR/a.json
upg_probe_start "$A"
t0=$(lab_now_ms)
upg_wait_plan_ok 2 "$LAB_DIR/img-$V1" 20
lab_expect "(a) the plan passes on a cluster just started (ms)" "$(($(lab_now_ms) - t0))" -lt 20000
lab_ctl 2 upgrade plan --image "$LAB_DIR/img-$V1" >"$LAB_DIR/a.plan" 2>&1
lab_expect "(a) upgrade plan exit code" "$?" -eq 0
sed 's/^/  | /' "$LAB_DIR/a.plan" >&2
plan=$(lab_ctl 2 --json upgrade plan --image "$LAB_DIR/img-$V1" 2>/dev/null)
lab_expect "(a) plan: every check passed" "$(jq -r .all_ok <<<"$plan")" == true
lab_expect "(a) plan: steps" "$(jq -r '.steps | length' <<<"$plan")" -ge 6
lab_expect "(a) plan changed nothing" "$(upg_state 1)" == idle
GEN0=$(lab_status 1 | jq -r .config.generation)
t0=$(lab_now_ms)
upg_ctl 2 upgrade start --image "$LAB_DIR/img-$V1" >"$LAB_DIR/a.start" 2>&1
rc=$?
A_MS=$(($(lab_now_ms) - t0))
tail -n 40 "$LAB_DIR/a.start" | sed 's/^/  | /' >&2
lab_expect "(a) upgrade start exit code" "$rc" -eq 0
sleep 2 # traffic after the upgrade, through the failed-back gateway
established "(a)"
upg_probe_stop "$A"
check_end "(a)" "$V1" completed
st=$(upg_status 1)
lab_expect "(a) from" "$(jq -r .from <<<"$st")" == "$V0"
lab_expect "(a) to" "$(jq -r .to <<<"$st")" == "$V1"
lab_expect "(a) not finalized yet" "$(jq -r .finalized <<<"$st")" == false
lab_expect "(a) no error" "$(jq -r '.error.code // "none"' <<<"$st")" == none
lab_expect "(a) every step done" "$(jq -r '[.steps[] | select(.status != "done" and .status != "skipped")] | length' <<<"$st")" -eq 0
# Carried out by the group 0 primary: gw1 recorded the steps, gw2 only asked.
lab_expect "(a) gw1 (group 0 primary) started it for gw2" \
	"$(grep -c 'event=upgrade.state .*to=running reason="started by gw2"' "$LAB_DIR/gw1.log")" -eq 1
lab_expect "(a) gw1 ran its first step" "$(grep -c 'event=upgrade.step .*step=0 .*status=running' "$LAB_DIR/gw1.log")" -ge 1
lab_expect "(a) gw2 was upgraded" "$(jq -r '.nodes[] | select(.node == "gw2") | .state' <<<"$st")" == upgraded
lab_expect "(a) configuration generation unchanged" "$(lab_status 1 | jq -r .config.generation)" == "$GEN0"
upg_check_traffic "(a)" "$A"
upg_report 1 "$A"
lab_expect "(a) report: the probe log covers the upgrade" "$(jq -r .probe.covers_upgrade "$A.report")" == true
lab_expect "(a) report: zero drops" "$(jq -r .probe.zero_drops "$A.report")" == true
echo "  (a) upgrade took ${A_MS} ms (start to end of the command)" >&2

lab_ctl 1 upgrade finalize >"$LAB_DIR/a.fin" 2>&1
lab_expect "(a) finalize exit code" "$?" -eq 0 || cat "$LAB_DIR/a.fin" >&2
lab_wait_until 10 sh -c "[ \"\$(timeout 5 '$LAB_BUILD/tandemctl' --socket '$(lab_sock 2)' --json upgrade status | jq -r '.finalized or .state == \"idle\"')\" = true ]"
lab_expect "(a) finalized (gw1)" "$(upg_get 1 '.finalized or .state == "idle"')" == true
lab_expect "(a) finalized (gw2)" "$(upg_get 2 '.finalized or .state == "idle"')" == true
lab_expect "(a) a second finalize: refused (E_NO_UPGRADE)" "$(lab_ctl 1 upgrade finalize >/dev/null 2>&1; echo $?)" -eq 3

# ---- (a2) V1 -> V2 and rollback after completion ------------------------------
echo "(a2) $V1 -> $V2 under load, a second start refused while it runs, then rollback" >&2
R=$LAB_DIR/a2.json
upg_probe_start "$R"
out=$(upg_ctl 2 --json upgrade start --image "$LAB_DIR/img-$V2" --detach 2>"$LAB_DIR/a2.err")
lab_expect "(a2) start --detach exit code" "$?" -eq 0 || cat "$LAB_DIR/a2.err" >&2
out=$(upg_ctl 1 --json upgrade start --image "$LAB_DIR/img-$V2" 2>"$LAB_DIR/a2.err2")
lab_expect "(a2) a second start while running: exit code" "$?" -eq 3
lab_expect "(a2) a second start: code" "$(jq -r '.upgrade_code // .code' <<<"$out")" == E_UPGRADE_RUNNING
sed 's/^/  | /' "$LAB_DIR/a2.err2" >&2
out=$(lab_ctl 1 --json upgrade plan --image "$LAB_DIR/img-$V2" 2>/dev/null)
lab_expect "(a2) plan while running: E_UPGRADE_RUNNING among the failed checks" \
	"$(jq -r '[.checks[]? | select(.ok == false) | .code] | index("E_UPGRADE_RUNNING") != null' <<<"$out")" == true
upg_wait_state 1 "completed|failed|aborted|rolled_back" "$UPG_RUN_S"
lab_expect "(a2) upgrade to $V2" "$(upg_state 1)" == completed
lab_expect "(a2) both on $V2" "$(upg_versions_of)" == "gw1=$V2 gw2=$V2"
out=$(lab_ctl 1 --json upgrade plan --image "$LAB_DIR/img-$V2" 2>/dev/null)
lab_expect "(a2) plan before finalize: E_NOT_FINALIZED among the failed checks" \
	"$(jq -r '[.checks[]? | select(.ok == false) | .code] | index("E_NOT_FINALIZED") != null' <<<"$out")" == true
t0=$(lab_now_ms)
upg_ctl 2 upgrade rollback >"$LAB_DIR/a2.rb" 2>&1
lab_expect "(a2) rollback exit code" "$?" -eq 0 || cat "$LAB_DIR/a2.rb" >&2
upg_wait_state 1 "rolled_back|failed" "$UPG_RUN_S"
RB_MS=$(($(lab_now_ms) - t0))
sleep 2
established "(a2)"
upg_probe_stop "$R"
check_end "(a2)" "$V1" rolled_back
upg_check_traffic "(a2)" "$R"
upg_report 1 "$R"
lab_expect "(a2) report: zero drops" "$(jq -r .probe.zero_drops "$R.report")" == true
echo "  (a2) rollback took ${RB_MS} ms" >&2

# ---- (b) pre-checks ---------------------------------------------------------------
echo "(b) pre-checks: each refused by upgrade plan with its code" >&2
upg_image_untrusted "$V2" "$LAB_DIR/img-untrusted"
upg_image_bad "$LAB_DIR/img-$V2" nosig "$LAB_DIR/img-unsigned"
upg_image_bad "$LAB_DIR/img-$V2" tampered "$LAB_DIR/img-corrupt"
upg_image_scripted "$UPG_VNOCONF" noconf
"$LAB_BUILD/tandemctl" image build --version "$V2" --min-upgrade-from "$V2" --from "$LAB_DIR/src-$V2" \
	--key "$UPG_KEY" --out "$LAB_DIR/img-gap" >/dev/null || lab_fail "image build (gap)"

# refused LABEL NODE "CODE..." IMAGE [ARGS...] : `upgrade plan` on NODE exits
# 3 and every CODE is among its failed checks (asked again for up to 3 s:
# a condition made on another node reaches NODE with that node's next
# facts, one a second); nothing changed.
plan_has() { # NODE "CODES" IMAGE ARGS... : the plan fails every CODE
	local node=$1 codes=$2 img=$3 out c
	shift 3
	out=$(lab_ctl "$node" --json upgrade plan --image "$img" "$@" 2>/dev/null)
	for c in $codes; do
		jq -e --arg c "$c" '[.checks[]? | select(.ok == false) | .code] | index($c) != null' <<<"$out" >/dev/null 2>&1 || return 1
	done
}
refused() {
	local label=$1 node=$2 codes=$3 img=$4 out rc c before after
	shift 4
	before=$(upg_status 1 | jq -c '{state, id, finalized}')
	lab_wait_until 3 plan_has "$node" "$codes" "$img" "$@"
	out=$(lab_ctl "$node" --json upgrade plan --image "$img" "$@" 2>/dev/null)
	rc=$?
	lab_expect "(b) $label: plan exit code" "$rc" -eq 3
	echo "  (b) $label: failed: $(jq -r '[.checks[]? | select(.ok == false) | "\(.code) (\(.message))"] | join("; ")' <<<"$out" 2>/dev/null)" >&2
	for c in $codes; do
		lab_expect "(b) $label: $c reported" \
			"$(jq -r --arg c "$c" '[.checks[]? | select(.ok == false) | .code] | index($c) != null' <<<"$out" 2>/dev/null)" == true
	done
	after=$(upg_status 1 | jq -c '{state, id, finalized}')
	lab_expect "(b) $label: nothing changed" "$after" == "$before"
}
# lifted LABEL : the condition is gone: the plan for V2 passes again.
lifted() {
	lab_expect "(b) $1 lifted: the plan passes again" "$(upg_wait_plan_ok 1 "$LAB_DIR/img-$V2" 10 && echo yes)" == yes
}

refused "untrusted image" 1 E_IMAGE_UNTRUSTED "$LAB_DIR/img-untrusted"
refused "unsigned image" 1 E_IMAGE_UNSIGNED "$LAB_DIR/img-unsigned"
refused "corrupt image" 2 E_IMAGE_CORRUPT "$LAB_DIR/img-corrupt"
refused "missing image" 1 E_IMAGE_MISSING "$LAB_DIR/no-such-image"
refused "older version" 1 E_VERSION_OLD "$LAB_DIR/img-$V0"
refused "same version" 1 E_VERSION_OLD "$LAB_DIR/img-$V1"
refused "version gap" 1 E_VERSION_GAP "$LAB_DIR/img-gap"
out=$(lab_ctl 1 --json upgrade plan --image "$LAB_DIR/img-gap" --force 2>/dev/null)
lab_expect "(b) version gap with --force: plan exit code" "$?" -eq 0
lab_expect "(b) version gap with --force: disruptive" "$(jq -r .disruptive <<<"$out")" == true
refused "configuration refused by the new version" 1 E_CONFIG_INVALID "$LAB_DIR/img-$UPG_VNOCONF"

lab_stop_node 2
lab_wait_until 5 lab_peer_is 1 gw2 lost
refused "peer down" 1 E_PEER_DOWN "$LAB_DIR/img-$V2"
lab_start_node 2
lab_wait_until 15 upg_sessions_in_sync 2 || lab_fail "(b) gw2 did not resync after its restart"
lab_wait_ready 2 1 10
lifted "peer down"

# Link 1 (the WAN segment) of gw2 cut for control traffic only.
lab_nsexec gw2 nft add rule inet tandem-lab input iifname wan0 udp dport "$LAB_PORT" drop
lab_nsexec gw2 nft add rule inet tandem-lab input iifname wan0 tcp dport "$LAB_PORT" drop
lab_wait_until 5 sh -c "[ \"\$(timeout 5 '$LAB_BUILD/tandemctl' --socket '$(lab_sock 1)' --json status | jq -r '.peers[] | select(.node == \"gw2\") | .links[] | select(.index == 1) | .state')\" = down ]"
refused "one link down, and an untrusted image" 1 "E_PEER_LINK E_IMAGE_UNTRUSTED" "$LAB_DIR/img-untrusted"
lab_nsexec gw2 nft flush chain inet tandem-lab input
lab_wait_until 5 sh -c "[ \"\$(timeout 5 '$LAB_BUILD/tandemctl' --socket '$(lab_sock 1)' --json status | jq -r '.peers[] | select(.node == \"gw2\") | .links[] | select(.index == 1) | .state')\" = up ]"
lifted "link down"

lab_ctl 1 maintenance on --node gw2 >/dev/null 2>&1 || lab_soft_fail "(b) maintenance on --node gw2"
lab_wait_until 5 sh -c "[ \"\$(timeout 5 '$LAB_BUILD/tandemctl' --socket '$(lab_sock 2)' --json status | jq -r '.groups[] | select(.id == 1) | .state')\" != secondary ]"
refused "node in maintenance" 1 E_GROUP_STATE "$LAB_DIR/img-$V2"
lab_ctl 1 maintenance off --node gw2 >/dev/null 2>&1 || lab_soft_fail "(b) maintenance off --node gw2"
lab_wait_ready 2 1 10
lifted "maintenance"

size=$(stat -c %s "$LAB_DIR/img-$V2")
avail=$(($(stat -f -c '%a * %S' "$MNT")))
fill=$((avail - 2 * size + 65536)) # 64 KiB short of twice the image
[ "$fill" -gt 0 ] || lab_fail "(b) the tmpfs is too small for the test ($avail bytes free, image $size)"
fallocate -l "$fill" "$MNT/filler" || lab_fail "(b) fallocate"
sleep 2.5 # gw2's next facts (one a second) carry its free space
refused "state directory without twice the image free (gw2)" 1 E_DISK_SPACE "$LAB_DIR/img-$V2"
rm -f "$MNT/filler"
lifted "full state directory"

# The CPU check against a limit this lab always exceeds: 1 %.
sed 's/^  cpu_max_percent: 100$/  cpu_max_percent: 1/' "$LAB_DIR/tandem.yaml" >"$LAB_DIR/cpu1.yaml"
lab_ctl 1 config apply "$LAB_DIR/cpu1.yaml" >"$LAB_DIR/cpu.err" 2>&1 || { cat "$LAB_DIR/cpu.err" >&2; lab_soft_fail "(b) config apply cpu_max_percent 1"; }
# A bounded burner makes sure of it even on an idle machine.
timeout 8 sh -c 'while :; do :; done' &
LAB_EXTRA_PIDS+=("$!")
sleep 6 # one full 5 s window
refused "CPU over upgrade.cpu_max_percent (1 %)" 1 E_CPU "$LAB_DIR/img-$V2"
lab_ctl 1 config apply "$LAB_DIR/tandem.yaml" >"$LAB_DIR/cpu.err" 2>&1 || { cat "$LAB_DIR/cpu.err" >&2; lab_soft_fail "(b) config apply (back)"; }
lifted "CPU limit"
echo "  (a) and (b) took $((($(lab_now_ms) - T_START) / 1000)) s" >&2

# ---- (d) three and four nodes, two groups -------------------------------------------
lab_down
LAB_UP=0
umount "$MNT" 2>/dev/null || umount -l "$MNT"
MNT=

# batches_ok LABEL PLAN_JSON N : the plan's upgrade steps ("gw2,gw3 gw1")
# in BATCHES; every node upgraded once, no step with two members of one
# group (group 1: gw1 gw2; group 2: gw3 and gw4, or gw3 and gw1).
batches_ok() {
	local label=$1 plan=$2 n=$3 i
	BATCHES=$(jq -r '[.steps[] | select(.kind == "upgrade") | .nodes // [] | sort | join(",")] | join(" ")' <<<"$plan")
	echo "  $label upgrade steps: $BATCHES" >&2
	lab_expect "$label every node upgraded once" \
		"$(tr ' ,' '\n\n' <<<"$BATCHES" | sort | xargs)" == "$(for ((i = 1; i <= n; i++)); do echo "gw$i"; done | sort | xargs)"
	lab_expect "$label no step holds both members of group 1" "$(tr ' ' '\n' <<<"$BATCHES" | grep -c 'gw1.*gw2')" -eq 0
	if [ "$n" -ge 4 ]; then
		lab_expect "$label no step holds both members of group 2" "$(tr ' ' '\n' <<<"$BATCHES" | grep -c 'gw3.*gw4')" -eq 0
	else
		lab_expect "$label no step holds both members of group 2" "$(tr ' ' '\n' <<<"$BATCHES" | grep -c 'gw1.*gw3')" -eq 0
	fi
}

echo "(d3) three nodes, two groups: the plan upgrades the two non-holders in one step" >&2
[ "$LAB_FAILS" -gt 0 ] && rm -rf "$LAB_DIR-ab" && cp -r "$LAB_DIR" "$LAB_DIR-ab" # the logs of (a) and (b), for the failures above
# Routed, not NATed (lab_up keeps --snat across labs): group 2's traffic
# leaves through group 2's gateway, which does not hold group 1's WAN VIP.
LAB_SNAT=0
lab_up 3 --strict-conntrack
upg_write_config_2groups
upg_images "$V1"
for i in 1 2 3; do lab_start_node "$i"; done
lab_wait_primary 0 gw1 15 >/dev/null || lab_fail "(d3) group 0: gw1 not primary"
lab_wait_primary 1 gw1 15 >/dev/null || lab_fail "(d3) group 1: gw1 not primary"
lab_wait_primary 2 gw3 15 >/dev/null || lab_fail "(d3) group 2: gw3 not primary"
upg_wait_plan_ok 3 "$LAB_DIR/img-$V1" 20
lab_ctl 3 upgrade plan --image "$LAB_DIR/img-$V1" >"$LAB_DIR/d3.plan" 2>&1
lab_expect "(d3) plan exit code" "$?" -eq 0
sed 's/^/  | /' "$LAB_DIR/d3.plan" >&2
batches_ok "(d3)" "$(lab_ctl 3 --json upgrade plan --image "$LAB_DIR/img-$V1" 2>/dev/null)" 3
lab_expect "(d3) gw2 and gw3 in one step" "$(tr ' ' '\n' <<<"$BATCHES" | grep -cx 'gw2,gw3')" -eq 1
lab_down
LAB_UP=0

echo "(d) four nodes, two groups: plan and upgrade under traffic through both groups" >&2
lab_up 4 --strict-conntrack
upg_write_config_2groups
upg_images "$V1"
lab_probe_server
for i in 1 2 3 4; do lab_start_node "$i"; done
lab_wait_primary 0 gw1 15 >/dev/null || lab_fail "(d4) group 0: gw1 not primary"
lab_wait_primary 1 gw1 15 >/dev/null || lab_fail "(d4) group 1: gw1 not primary"
lab_wait_primary 2 gw3 15 >/dev/null || lab_fail "(d4) group 2: gw3 not primary"
for i in 2 4; do lab_wait_until 15 upg_sessions_in_sync "$i" || lab_fail "(d4) gw$i not in sync"; done
upg_wait_plan_ok 4 "$LAB_DIR/img-$V1" 20
plan=$(lab_ctl 4 --json upgrade plan --image "$LAB_DIR/img-$V1" 2>/dev/null)
lab_expect "(d4) plan: every check passed" "$(jq -r .all_ok <<<"$plan")" == true
jq -r '.steps[] | "  | \(.index). \(.text)"' <<<"$plan" >&2
batches_ok "(d4)" "$plan" 4
lab_expect "(d4) gw2 and gw4 in one step" "$(tr ' ' '\n' <<<"$BATCHES" | grep -cx 'gw2,gw4')" -eq 1
UPG_LOAD=(--udp-hz 1000 --tcp 200 --tcp-interval-ms 1000 --new-every-ms 20 --connect-timeout-ms 5000
	--gaps-over-ms 2 --duration-ms 900000)
D1=$LAB_DIR/d4-g1.json D2=$LAB_DIR/d4-g2.json
upg_probe_start "$D1"
upg_probe2_start "$D2" "${UPG_LOAD[@]}"
t0=$(lab_now_ms)
upg_ctl 4 upgrade start --image "$LAB_DIR/img-$V1" >"$LAB_DIR/d4.start" 2>&1
rc=$?
D_MS=$(($(lab_now_ms) - t0))
tail -n 30 "$LAB_DIR/d4.start" | sed 's/^/  | /' >&2
lab_expect "(d4) upgrade start exit code" "$rc" -eq 0
sleep 2
upg_probe_stop "$D1"
upg_probe2_stop "$D2"
upg_print_nodes 1
lab_expect "(d4) state" "$(upg_state 1)" == completed
lab_expect "(d4) versions" "$(upg_versions_of)" == "gw1=$V1 gw2=$V1 gw3=$V1 gw4=$V1"
lab_expect "(d4) group 1 back on gw1" "$(lab_wait_primary 1 gw1 15 >/dev/null && echo yes)" == yes
lab_expect "(d4) group 2 back on gw3" "$(lab_wait_primary 2 gw3 15 >/dev/null && echo yes)" == yes
lab_expect "(d4) group 2's VIP on gw3 alone (kernel)" "$(lab_vip_holders $VIP2_LAN | xargs)" == gw3
upg_check_traffic "(d4) group 1" "$D1"
upg_check_traffic "(d4) group 2" "$D2"
upg_report 1 "$D1"
echo "  (d4) four-node upgrade took ${D_MS} ms" >&2
echo "figures: (a) $V0 -> $V1 ${A_MS} ms, (a2) rollback ${RB_MS} ms, (d4) ${D_MS} ms; whole test $((($(lab_now_ms) - T_START) / 1000)) s" >&2
lab_finish
