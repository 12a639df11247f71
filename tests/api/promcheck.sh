#!/usr/bin/env bash
# tests/api/promcheck.sh - the strict check of a GET /metrics text with
# Prometheus' own promtool (Debian package prometheus, scripts/deps.sh).
#
# Usage: bash tests/api/promcheck.sh FILE
#
# `promtool check metrics` parses the text exposition format 0.0.4 and
# lints the names (counters end in _total, base units, no abbreviated
# units, ...). Any parse error or lint problem fails: a naming problem is
# fixed in src/api/metrics.c, never ignored here. Exit 0 clean, 1 problems
# (promtool's report on stderr), 2 usage.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: promcheck.sh FILE" >&2
	exit 2
fi
file=$1
[ -r "$file" ] || { echo "promcheck: cannot read $file" >&2; exit 2; }
command -v promtool >/dev/null || { echo "promcheck: promtool is missing (bash scripts/deps.sh)" >&2; exit 2; }
# An empty file passes promtool; a /metrics that says nothing is a failure.
[ -s "$file" ] || { echo "promcheck: $file is empty" >&2; exit 1; }

rc=0
out=$(promtool check metrics <"$file" 2>&1) || rc=$?
# promtool exits 1 on a parse error and 3 on lint problems; it also prints
# lint problems, so any output is a failure even with exit 0.
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
	echo "promcheck: $file: promtool check metrics failed (exit $rc):" >&2
	printf '%s\n' "$out" >&2
	exit 1
fi
echo "promcheck: $file: $(grep -c '^# TYPE ' "$file") families, $(grep -vc '^#' "$file") samples, promtool clean"
