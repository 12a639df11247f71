#!/usr/bin/env bash
# Builds every tests/fuzz/fuzz_*.c as a libFuzzer target (clang, with
# AddressSanitizer and UndefinedBehaviorSanitizer) and runs each for a
# bounded time (FUZZ_SECONDS, default 20) over a copy of its seed corpus in
# tests/fuzz/corpus/<name>/. Any crash, leak, timeout or sanitizer report
# fails the run; the reproducer is kept in build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${FUZZ_SECONDS:-20}
OUT=build-fuzz
mkdir -p "$OUT"
PKGS="libsodium libfyaml libmnl jansson"
CFLAGS="-std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -DTND_VERSION=\"fuzz\" -Isrc $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS)"
CORE="src/core/*.c src/conf/*.c"
fail=0
for src in tests/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	short=${name#fuzz_}
	extra=""
	case "$short" in
	netlink) extra="src/io/nl.c" ;;
	ctrec) extra="src/io/ct.c $(pkg-config --libs libnetfilter_conntrack)" ;;
	image) extra="src/io/image.c src/io/state.c $(pkg-config --libs libarchive)" ;;
	route) extra="src/api/route.c" ;;
	esac
	echo "== fuzz $short: build"
	# shellcheck disable=SC2086
	clang $CFLAGS "$src" $CORE $extra $LIBS -o "$OUT/$name"
	work="$OUT/corpus-$short"
	rm -rf "$work"
	mkdir -p "$work"
	if [ -d "tests/fuzz/corpus/$short" ]; then
		cp -r "tests/fuzz/corpus/$short/." "$work/"
	fi
	echo "== fuzz $short: ${SECS}s over $(ls "$work" | wc -l) seeds"
	if ! (cd "$OUT" && ASAN_OPTIONS=detect_leaks=1 "./$name" -max_total_time="$SECS" \
		-timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
		"corpus-$short" > "$name.log" 2>&1); then
		echo "FAIL: fuzz $short (log: $OUT/$name.log)"
		tail -40 "$OUT/$name.log"
		fail=1
	else
		grep -E "stat::number_of_executed_units|stat::new_units_added" "$OUT/$name.log" | tr '\n' ' '
		echo
		echo "ok: fuzz $short"
	fi
done
exit $fail
