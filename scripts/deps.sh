#!/usr/bin/env bash
# Installs the Debian 12 packages Tandem needs to build, test and run its lab.
# Idempotent: does nothing when every package is already present, so `make`
# targets can call it every time. Needs root (it is run as root in CI).
set -euo pipefail

PKGS=(
  build-essential pkg-config clang llvm libclang-rt-14-dev
  libmnl-dev libnetfilter-conntrack-dev libnftables-dev libsodium-dev
  libfyaml-dev libjansson-dev libmicrohttpd-dev libsqlite3-dev
  libarchive-dev libcmocka-dev
  iproute2 nftables conntrack iputils-ping procps psmisc jq python3 patch
  curl openssl ca-certificates
  keepalived conntrackd
  prometheus
  chromium nodejs
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages: ${missing[*]} (run as root to install)" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
# keepalived and conntrackd are installed only so benchmarks can compare
# against them, prometheus only for its promtool (tests/api/promcheck.sh
# checks GET /metrics); their packaged services must not run on the host.
for s in keepalived conntrackd prometheus; do
  systemctl disable --now "$s" >/dev/null 2>&1 || true
  pkill -x "$s" >/dev/null 2>&1 || true
done
