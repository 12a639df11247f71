#!/usr/bin/env bash
# test_store.sh BUILD_DIR - crash safety of the configuration store
# (src/io/store.c) on a real file system.
#
# 1. store_check api: the operations, listing, pruning and the floor.
# 2. Kill test: ROUNDS times, a writer commits large generations (up to
#    200 kB, pending then commit) and is killed with SIGKILL after a random
#    delay; after each kill the database must open, and hold exactly the
#    document of its committed generation (byte for byte), never an older
#    generation than before the kill.
# 4. nftables (store_check nft, in namespace tl-cfgnft): a good ruleset is
#    applied; one with a syntax error is refused with nft's message and a caret under the spot;
#    one whose last command fails in the kernel changes nothing (the table
#    of the good one is still there, unchanged).
# 3. Full disk: in a private mount namespace (unshare -m) a 3 MiB tmpfs is
#    filled by commits until one fails; the failure is an error (no space)
#    and the previous generation is intact after reopening.
set -euo pipefail

build=${1:-build}
check=$build/tests/store_check
[ -x "$check" ] || { echo "test_store: $check not built (make $check)" >&2; exit 2; }
ROUNDS=${TL_STORE_ROUNDS:-60}

dir=$(mktemp -d /tmp/tstore.XXXXXX)
wpid=
cleanup() {
	[ -n "$wpid" ] && kill -KILL "$wpid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

"$check" api "$dir/api.db"

db=$dir/kill.db
prev=0
kills=0
for i in $(seq 1 "$ROUNDS"); do
	"$check" writer "$db" 100000 &
	wpid=$!
	# 5..150 ms: lands anywhere in a transaction
	sleep "0.$(printf '%03d' $((5 + RANDOM % 145)))"
	if kill -KILL "$wpid" 2>/dev/null; then kills=$((kills + 1)); fi
	wait "$wpid" 2>/dev/null || true
	wpid=
	gen=$("$check" verify "$db" "$prev") || { echo "test_store: round $i: verify failed"; exit 1; }
	[ "$gen" -ge "$prev" ] || { echo "test_store: round $i: gen went back $prev -> $gen"; exit 1; }
	prev=$gen
done
[ "$prev" -gt 0 ] || { echo "test_store: nothing was ever committed"; exit 1; }
echo "test_store: $kills writers killed with SIGKILL mid-write, $ROUNDS reopen checks ok, final generation $prev"

if command -v unshare >/dev/null; then
	out=$(unshare -m bash -c "
		set -e
		mount --make-rprivate / 2>/dev/null || true
		mkdir -p '$dir/full'
		mount -t tmpfs -o size=3m tandem-store-test '$dir/full'
		'$check' fill '$dir/full/full.db'
	") || { echo "$out"; echo "test_store: full-disk case failed"; exit 1; }
	echo "$out"
	echo "$out" | grep -q "no space\|I/O error" || { echo "test_store: full disk was not reported as an error"; exit 1; }
	echo "test_store: full disk: the failing commit returned an error and the previous generation is intact"
else
	echo "test_store: unshare missing: full-disk case skipped"
fi
# 4. The ruleset driver in a fresh network namespace.
NS=tl-cfgnft
ip netns del $NS 2>/dev/null || true
ip netns add $NS
trap 'ip netns del $NS 2>/dev/null || true; cleanup' EXIT
ip netns exec $NS "$check" nft good
before=$(ip netns exec $NS nft list table inet tandem)
echo "$before" | grep -q '"good"' || { echo "test_store: good ruleset not in the kernel"; exit 1; }
ip netns exec $NS "$check" nft bad
ip netns exec $NS "$check" nft half
after=$(ip netns exec $NS nft list table inet tandem)
[ "$before" = "$after" ] || { echo "test_store: a refused ruleset changed the kernel:"; echo "$after"; exit 1; }
echo "test_store: nft: a bad ruleset is refused with nft's message, a failing one changes nothing, a good one is applied"
echo "test_store: ok"
