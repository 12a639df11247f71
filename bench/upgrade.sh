#!/usr/bin/env bash
# upgrade.sh BUILD_DIR - `make bench`, the in-service upgrade (issue 5): the
# timeline of a two-node and a four-node upgrade of the whole cluster from
# BUILD_DIR's version (V0) to the same source built as the next minor
# version (V1), in the lab (tests/lab/lib.sh, namespace prefix TL_PREFIX,
# default "tl-"), with the fixture of tests/lab/upgrade_lib.sh.
#
# Two nodes: group 1 on gw1 (200) and gw2 (100), 1000 long-lived TCP
# connections through SNAT, 1 kHz UDP, a new connection every 10 ms.
# Four nodes: group 1 on gw1/gw2 and group 2 on gw3/gw4 (nodes that share no
# group but 0 upgrade together), 200 connections through group 1.
#
# Figures, from `tandemctl upgrade report --json --probe-log` (the
# coordinator's journal: each step's start and end, and the probe's events
# attributed to the steps):
#  - TOTAL: first step's start to last step's end;
#  - RESTART+RESYNC: time in the upgrade steps (install, restart into the
#    new version, rejoin, session resync, health), which the nodes and the
#    kernel spend, not the coordinator;
#  - OVERHEAD: TOTAL minus that: freeze, backup, moves (each a planned
#    failover behind a session sync barrier), distribution of the image,
#    failback, and the time between steps (BETWEEN, also shown alone);
#  - the traffic during the upgrade: longest UDP gap, TCP connections lost,
#    resets and failed new connections.
# Then each run's per-step timeline. Raw reports in lab-out/bench/.
# BENCH_UPGRADE_RUNS (default 1): runs of each size.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LAB_NAME=bench-upgrade
source "$here/../tests/lab/lib.sh"
source "$here/../tests/lab/upgrade_lib.sh"
lab_init "${1:-}" tandemd tandemctl tandem-probe
runs=${BENCH_UPGRADE_RUNS:-1}
[[ "$runs" =~ ^[1-9][0-9]?$ ]] || { echo "bench/upgrade.sh: BENCH_UPGRADE_RUNS must be 1..99" >&2; exit 2; }
out=$LAB_OUT/bench
mkdir -p "$out"
rows=$out/upgrade.tsv
: >"$rows"
rm -rf "$out"/upgrade-*nodes-*

upg_versions
upg_build "$UPG_V1" >/dev/null || exit 1
sessions_in_sync() { [ "$(lab_status "$1" 2>/dev/null | jq -r '.sessions.in_sync')" = true ]; }

# one_run NODES RUN : a fresh lab of NODES gateways on V0, one upgrade to
# V1 under load; appends a row to $rows and keeps the report.
one_run() {
	local n=$1 run=$2 i probe rep st rc t0 wall
	if [ "$n" = 2 ]; then
		lab_up 2 --snat --strict-conntrack
		upg_config_settings
	else
		LAB_SNAT=0 # lab_up keeps --snat across labs; group 2 is routed
		lab_up "$n" --strict-conntrack
		upg_write_config_2groups
		UPG_LOAD=(--udp-hz 1000 --tcp 200 --tcp-interval-ms 1000 --new-every-ms 20 --connect-timeout-ms 5000
			--gaps-over-ms 2 --duration-ms 900000)
	fi
	upg_images "$UPG_V1"
	lab_probe_server
	for ((i = 1; i <= n; i++)); do lab_start_node "$i"; done
	lab_wait_primary 0 gw1 15 >/dev/null || lab_fail "$n nodes: group 0 not on gw1"
	lab_wait_primary 1 gw1 15 >/dev/null || lab_fail "$n nodes: group 1 not on gw1"
	for ((i = 2; i <= n; i++)); do lab_wait_until 15 sessions_in_sync "$i"; done
	upg_wait_plan_ok 2 "$LAB_DIR/img-$UPG_V1" 20 # facts heard, CPU over 5 s known
	probe=$LAB_DIR/probe.json
	upg_probe_start "$probe"
	t0=$(lab_now_ms)
	upg_ctl 2 upgrade start --image "$LAB_DIR/img-$UPG_V1" >"$LAB_DIR/start.out" 2>&1
	rc=$?
	wall=$(($(lab_now_ms) - t0))
	sleep 1
	upg_probe_stop "$probe"
	st=$(upg_state 1)
	rep=$out/upgrade-${n}nodes-$run.json
	lab_ctl 1 --json upgrade report --probe-log "$probe.events" >"$rep" 2>/dev/null
	if [ "$rc" != 0 ] || [ "$st" != completed ] || ! jq -e .total_ms "$rep" >/dev/null 2>&1; then
		tail -20 "$LAB_DIR/start.out" >&2
		echo "bench/upgrade.sh: $n nodes, run $run: upgrade ended '$st' (exit $rc)" >&2
		rm -f "$rep"
		cp -r "$LAB_DIR" "$out/upgrade-${n}nodes-$run.failed" 2>/dev/null
		lab_down
		LAB_UP=0
		return 1
	fi
	jq -r --arg n "$n" --arg run "$run" --arg wall "$wall" --slurpfile p "$probe" '[$n, $run, .total_ms,
		.restart_resync_ms, .overhead_ms, .between_steps_ms, (.steps | length), $wall,
		($p[0].udp_max_gap_after_ready_ms), ($p[0].tcp_connections - $p[0].tcp_survived),
		$p[0].tcp_connections, $p[0].tcp_resets, $p[0].new_failed] | @tsv' "$rep" >>"$rows"
	lab_down
	LAB_UP=0
}

failed=0
for n in 2 4; do
	for ((r = 1; r <= runs; r++)); do
		echo "=== bench: upgrade of $n nodes, $UPG_V0 -> $UPG_V1, run $r of $runs" >&2
		one_run "$n" "$r" || failed=$((failed + 1))
	done
done

echo
echo "In-service upgrade, $UPG_V0 -> $UPG_V1, times in ms (from the coordinator's journal):"
echo
printf '%-6s %4s %9s %15s %9s %8s %6s %10s %8s %10s %7s %9s\n' NODES RUN TOTAL RESTART+RESYNC OVERHEAD BETWEEN \
	STEPS "COMMAND" "MAX GAP" "TCP LOST" RESETS "NEW FAIL"
while IFS=$'\t' read -r n run total rr ov bt steps wall gap lost conns rst nf; do
	printf '%-6s %4s %9s %15s %9s %8s %6s %10s %8s %10s %7s %9s\n' "$n" "$run" "$total" "$rr" \
		"$ov ($((ov * 100 / (total > 0 ? total : 1)))%)" "$bt" "$steps" "$wall" "$gap" "$lost/$conns" "$rst" "$nf"
done <"$rows"
cat <<'EOF'

TOTAL: first step's start to last step's end. RESTART+RESYNC: time in the
upgrade steps (install, restart, rejoin, resync, health). OVERHEAD: the rest
(freeze, backup, moves behind a sync barrier, image distribution, failback,
and the time between steps, BETWEEN). COMMAND: `tandemctl upgrade start`
from call to return. MAX GAP: longest UDP silence once every connection was
open; TCP LOST: connections lost / open.
EOF
for rep in "$out"/upgrade-*nodes-*.json; do
	[ -e "$rep" ] || continue
	echo
	echo "Timeline of $(basename "$rep" .json):"
	jq -r '.steps[] | [.index, (.offset_ms // "-"), (.duration_ms // "-"), .status, .text,
		(.probe.max_gap_ms // "-")] | @tsv' "$rep" |
		awk -F'\t' 'BEGIN { printf "  %4s %9s %9s %-8s %-48s %s\n", "#", "AT", "TOOK", "STATUS", "STEP", "MAX GAP" }
			{ printf "  %4s %9s %9s %-8s %-48s %s\n", $1, $2, $3, $4, substr($5, 1, 48), $6 }'
done
[ $failed = 0 ] || { echo "bench/upgrade.sh: $failed run(s) did not complete" >&2; exit 1; }
