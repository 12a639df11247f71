#!/usr/bin/env bash
# test_xfer.sh BUILD_DIR - image distribution over the control link
# (issue 5): the transfer driver src/io/xferio.c with real files, run by
# tests/lab/xfer_check.c (two nodes in one process over a sealed, lossy
# in-memory link: copy byte-identical, a corrupted chunk caught by the
# final digest, NACK, timeout, cancel, several at once, crash leftovers,
# gc, and the throughput in one process). No network: it needs no
# namespace. The check binary is built here when the lab target did not
# build it (the Makefile rule is $(B)/tests/xfer_check).
set -euo pipefail

build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
check=$build/tests/xfer_check
if [ ! -x "$check" ]; then
	san=0
	case $(basename "$build") in build-san*) san=1 ;; esac
	make -C "$repo" -s SAN=$san B="$(cd "$build" && pwd)" "$(cd "$build" && pwd)/tests/xfer_check" >&2
fi
[ -x "$check" ] || { echo "test_xfer: $check not built (make $check)" >&2; exit 2; }

dir=$(mktemp -d /tmp/txfer.XXXXXX)
cleanup() { rm -rf "$dir"; }
trap cleanup EXIT

# 64 MB for the throughput figure; TX_XFER_MB overrides (1..256).
"$check" "$dir" "${TX_XFER_MB:-64}" 2>"$dir/stderr.log" || {
	echo "test_xfer: xfer_check failed; its log:"
	tail -50 "$dir/stderr.log"
	exit 1
}
echo "test_xfer: passed"
