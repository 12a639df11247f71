#!/usr/bin/env bash
# run.sh - golden tests of the configuration: YAML in, printed
# configuration or diagnostics out, diffed against the expected files.
#
#   tests/golden/run.sh TANDEMD_BINARY        (run from anywhere)
#   UPDATE=1 tests/golden/run.sh TANDEMD     rewrite the expected files
#
# cases/good-NAME.yaml  `tandemd --print-config --config F` must exit 0 and
#                       print good-NAME.out exactly; printing that output
#                       again must give the same text (the canonical form
#                       is a fixed point); --check-config must say
#                       "F: configuration valid".
# cases/bad-NAME.yaml   `tandemd --check-config --config F` must exit 1,
#                       print nothing on stdout and bad-NAME.err on stderr.
#
# File names in the diagnostics are relative to the repository root, which
# is where the commands run, so the expected output does not depend on
# where the checkout lives.
set -u

if [ $# -ne 1 ]; then
	echo "usage: $0 TANDEMD_BINARY" >&2
	exit 2
fi
bin=$1
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
if [ ! -x "$bin" ]; then
	echo "golden: $bin is not an executable" >&2
	exit 2
fi

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2
cases=tests/golden/cases
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

pass=0
fail=0
failed=()

ok() { pass=$((pass + 1)); }
bad() {
	fail=$((fail + 1))
	failed+=("$1")
	echo "FAIL $1: $2"
}

# Compare $2 (produced) with expected file $1; in UPDATE mode write it.
same() {
	if [ "${UPDATE:-0}" = 1 ]; then
		cp "$2" "$1"
		return 0
	fi
	if [ ! -f "$1" ]; then
		echo "missing expected file $1"
		return 1
	fi
	diff -u "$1" "$2"
}

shopt -s nullglob
for f in "$cases"/good-*.yaml; do
	name=$(basename "$f" .yaml)
	exp=$cases/$name.out
	"$bin" --print-config --config "$f" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ $rc -ne 0 ]; then
		cat "$tmp/err"
		bad "$name" "--print-config exited $rc"
		continue
	fi
	if ! same "$exp" "$tmp/out"; then
		bad "$name" "printed configuration differs from $exp"
		continue
	fi
	cp "$tmp/out" "$tmp/again.yaml"
	"$bin" --print-config --config "$tmp/again.yaml" >"$tmp/out2" 2>"$tmp/err"
	rc=$?
	if [ $rc -ne 0 ] || ! diff -u "$tmp/out" "$tmp/out2"; then
		cat "$tmp/err"
		bad "$name" "printing the printed configuration again does not give the same text"
		continue
	fi
	"$bin" --check-config --config "$f" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	echo "$f: configuration valid" >"$tmp/want"
	if [ $rc -ne 0 ] || ! diff -u "$tmp/want" "$tmp/out" || [ -s "$tmp/err" ]; then
		cat "$tmp/err"
		bad "$name" "--check-config did not accept it (exit $rc)"
		continue
	fi
	ok
done

for f in "$cases"/bad-*.yaml; do
	name=$(basename "$f" .yaml)
	exp=$cases/$name.err
	"$bin" --check-config --config "$f" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ $rc -ne 1 ]; then
		bad "$name" "--check-config exited $rc, expected 1"
		continue
	fi
	if [ -s "$tmp/out" ]; then
		cat "$tmp/out"
		bad "$name" "--check-config wrote to stdout"
		continue
	fi
	if ! same "$exp" "$tmp/err"; then
		bad "$name" "diagnostics differ from $exp"
		continue
	fi
	ok
done

# An expected file without its case is a test that silently stopped
# running.
for e in "$cases"/*.out "$cases"/*.err; do
	[ -f "${e%.*}.yaml" ] || bad "$(basename "$e")" "no matching .yaml case"
done

echo "golden: $pass passed, $fail failed"
if [ $((pass + fail)) -eq 0 ]; then
	echo "golden: no cases found in $cases" >&2
	exit 1
fi
[ $fail -eq 0 ]
