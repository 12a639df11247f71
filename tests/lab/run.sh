#!/usr/bin/env bash
# run.sh BUILD_DIR - runs every tests/lab/test_*.sh against the programs in
# BUILD_DIR, one after another, each under a time limit (TL_TEST_TIMEOUT_S,
# default 300 s). Prints PASS/FAIL per test and "lab: N passed, M failed";
# exits non-zero if any test failed. A test's full output is kept in
# lab-out/<test>.out (lab-out/<prefix>/ for another prefix). Namespaces a killed test left behind (prefix
# TL_PREFIX, default "tl-") are removed after each test.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${1:-}
[ -n "$build" ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
[ -d "$build" ] || { echo "lab: no build dir $build" >&2; exit 2; }
build=$(cd "$build" && pwd)
limit=${TL_TEST_TIMEOUT_S:-300}
P=${TL_PREFIX:-tl-}
[ "$(id -u)" = 0 ] || { echo "lab: needs root (network namespaces)" >&2; exit 2; }
outdir=$repo/lab-out
[ "$P" = tl- ] || outdir=$repo/lab-out/${P%-}
mkdir -p "$outdir"

cleanup_namespaces() {
	local ns pid
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${P}"); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
}

passed=0 failed=0 failed_names=()
shopt -s nullglob
tests=("$here"/test_*.sh)
[ ${#tests[@]} -gt 0 ] || { echo "lab: no tests in $here" >&2; exit 1; }
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	out=$outdir/$name.out
	echo "=== lab: $name"
	t0=$(date +%s)
	# -k: a test that ignores SIGTERM is killed 10 s later.
	timeout -k 10 "$limit" bash "$t" "$build" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	dt=$(($(date +%s) - t0))
	cleanup_namespaces
	if [ "$rc" = 0 ]; then
		passed=$((passed + 1))
		echo "PASS $name (${dt} s)"
	else
		failed=$((failed + 1))
		failed_names+=("$name")
		why="exit $rc"
		[ "$rc" = 124 ] || [ "$rc" = 137 ] && why="time limit ${limit} s"
		echo "FAIL $name (${dt} s, $why; output in $out)"
	fi
done
[ $failed -gt 0 ] && echo "lab: failed: ${failed_names[*]}"
echo "lab: $passed passed, $failed failed"
[ $failed = 0 ]
