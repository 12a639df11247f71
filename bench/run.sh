#!/usr/bin/env bash
# run.sh BUILD_DIR - `make bench`: planned and unplanned failover gaps of a
# two-node cluster in the lab, with real traffic, for each timer setting,
# min/median/max over BENCH_RUNS runs (default 5), as a table; keepalived
# (VRRPv3, same lab, same detection budget) side by side when installed.
#
# Settings (environment):
#   BENCH_RUNS=5                runs of each kind per setting
#   BENCH_TIMERS="100x3 10x3"   heartbeat_ms x dead_after settings
#   BENCH_KEEPALIVED=1          0 to skip the keepalived rows
# Raw samples go to lab-out/bench/samples.tsv (one line per run, columns as
# bench/failover.sh documents). Exits non-zero if a run could not complete.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${1:-}
[ -n "$build" ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
runs=${BENCH_RUNS:-5}
timers=${BENCH_TIMERS:-100x3 10x3}
with_kd=${BENCH_KEEPALIVED:-1}
command -v keepalived >/dev/null || with_kd=0

P=${TL_PREFIX:-tl-}
out=$repo/lab-out/bench
[ "$P" = tl- ] || out=$repo/lab-out/${P%-}/bench
mkdir -p "$out"
samples=$out/samples.tsv
: >"$samples"
failed=0
impls=(tandem)
[ "$with_kd" = 1 ] && impls+=(keepalived)

for t in $timers; do
	hb=${t%x*} dead=${t#*x}
	for impl in "${impls[@]}"; do
		echo "=== bench: $impl, heartbeat ${hb} ms x $dead, $runs runs of each kind" >&2
		if ! timeout -k 10 900 bash "$here/failover.sh" "$build" --impl "$impl" --runs "$runs" \
			--heartbeat-ms "$hb" --dead-after "$dead" --out "$samples"; then
			echo "bench: $impl ${hb}x$dead did not complete (logs in lab-out/bench-$impl-${hb}ms)" >&2
			failed=$((failed + 1))
		fi
	done
done

# The table: per implementation, timers and kind, min/median/max of the gap
# at the failover, and the sums of what the traffic lost.
echo
echo "Failover gaps (ms): the longest UDP silence (1 kHz stream) overlapping the failover;"
echo "2 means no silence over 2 ms. Limits (SPEC 6): planned < 50, unplanned < dead_after x heartbeat + 50."
echo
awk -F'\t' '
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
	k = $1 "\t" $2 "\t" $3
	if (!(k in n)) order[++nk] = k
	n[k]++
	g[k, n[k]] = $5 + 0
	if (!(k in mn) || $5 + 0 < mn[k]) mn[k] = $5 + 0
	if (!(k in mx) || $5 + 0 > mx[k]) mx[k] = $5 + 0
	lost[k] += $8 - $7; conns[k] += $8; rst[k] += $9; nf[k] += $10
	if ($12 + 0 > rmx[k]) rmx[k] = $12 + 0
}
END {
	printf "%-11s %-9s %-10s %4s %8s %8s %8s %7s %12s %7s %9s %11s\n", "IMPL", "TIMERS", "KIND", "RUNS",
		"MIN", "MEDIAN", "MAX", "LIMIT", "TCP LOST", "RESETS", "NEW FAIL", "RUN MAX"
	for (i = 1; i <= nk; i++) {
		k = order[i]; split(k, f, "\t")
		for (j = 1; j <= n[k]; j++) a[j] = g[k, j]
		split(f[2], tm, "msx")
		limit = f[3] == "planned" ? 50 : tm[1] * tm[2] + 50
		printf "%-11s %-9s %-10s %4d %8.1f %8.1f %8.1f %7s %12s %7d %9d %11.1f\n", f[1], f[2], f[3], n[k],
			mn[k], median(a, n[k]), mx[k], "<" limit, lost[k] "/" conns[k], rst[k], nf[k], rmx[k]
	}
}' "$samples"
echo
echo "TCP LOST: long-lived connections lost / held over all runs; RESETS: TCP resets seen;"
echo "NEW FAIL: new connections (one every 50 ms) that failed; RUN MAX: longest silence of any"
echo "whole run, machine stalls included. keepalived: VRRPv3 on the control link, advert_int ="
echo "heartbeat, planned = SIGTERM to the master (priority-0 advertisement)."
timeout -k 10 1200 bash "$here/sessions.sh" "$build" || { echo "bench: session sync did not complete" >&2; failed=$((failed + 1)); }
timeout -k 10 900 bash "$here/upgrade.sh" "$build" || { echo "bench: the upgrade timeline did not complete" >&2; failed=$((failed + 1)); }
[ $failed = 0 ] || { echo "bench: $failed setting(s) did not complete" >&2; exit 1; }
