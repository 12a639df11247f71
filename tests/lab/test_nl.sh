#!/usr/bin/env bash
# test_nl.sh BUILD_DIR - the netlink driver and hook runner against real
# kernels (root). Two namespaces joined by a veth:
#
#   tnl-a  tnl-va 192.0.2.1/24 2001:db8::1/64  ----  tnl-vb 192.0.2.2/24 2001:db8::2/64  tnl-b
#          tnl-e0 <-> tnl-e1 (a pair inside tnl-a, toggled for link events)
#
# 1. nl_check runs its checks inside tnl-a (VIPs, link events, malformed
#    messages, hooks).
# 2. Takeover announcements: tnl-b holds a neighbour entry for a VIP that
#    points at another MAC (the old primary); tnl-a adds the VIP and
#    announces it once; tnl-b's entry must now hold tnl-a's MAC. This is
#    done with the kernel's default settings in tnl-b (arp_accept=0): an
#    announcement must update an existing entry, which is what a real client
#    on a gateway's LAN has; nothing in tnl-b is tuned to help.
# Prints what it checked; exits non-zero on the first failure.
set -euo pipefail

build=${1:-build}
check=$build/tests/nl_check
[ -x "$check" ] || { echo "test_nl: $check not built (make $check)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "test_nl: needs root" >&2; exit 2; }

A=tnl-a
B=tnl-b
OLD_MAC=02:00:00:00:00:99 # the "previous owner" of the VIPs

cleanup() {
	ip netns del $A 2>/dev/null || true
	ip netns del $B 2>/dev/null || true
}
trap cleanup EXIT
cleanup

fail() {
	echo "test_nl: FAIL: $*" >&2
	exit 1
}
ok() { echo "test_nl: ok: $*"; }

ip netns add $A
ip netns add $B
ip -n $A link set lo up
ip -n $B link set lo up
ip -n $A link add tnl-va type veth peer name tnl-vb netns $B
ip -n $A link add tnl-e0 type veth peer name tnl-e1
ip -n $A addr add 192.0.2.1/24 dev tnl-va
ip -n $B addr add 192.0.2.2/24 dev tnl-vb
ip -n $A -6 addr add 2001:db8::1/64 dev tnl-va nodad
ip -n $B -6 addr add 2001:db8::2/64 dev tnl-vb nodad
for l in tnl-va tnl-e0 tnl-e1; do ip -n $A link set $l up; done
ip -n $B link set tnl-vb up

# Wait (bounded) for carrier on the veth before testing.
for _ in $(seq 50); do
	ip -n $A link show tnl-va | grep -q 'state UP' && break
	sleep 0.1
done

echo "test_nl: === nl_check inside $A"
ip netns exec $A "$check" test tnl-va tnl-e0 tnl-e1 || fail "nl_check"

mac_a=$(ip -n $A link show tnl-va | awk '/link\/ether/ {print $2}')
[ -n "$mac_a" ] || fail "no MAC on tnl-va"
echo "test_nl: tnl-a MAC is $mac_a, the old owner's is $OLD_MAC"

# The neighbour entry for ADDR in tnl-b: "MAC STATE" or empty.
neigh() {
	ip -n $B neigh show "$1" dev tnl-vb | awk '{for (i = 1; i < NF; i++) if ($i == "lladdr") m = $(i + 1); print m, $NF}'
}

# Plain connectivity first: tnl-b learns tnl-a's own address.
ip netns exec $B ping -c 1 -W 2 192.0.2.1 >/dev/null || fail "tnl-b cannot ping 192.0.2.1"
ip netns exec $B ping -6 -c 1 -W 2 2001:db8::1 >/dev/null || fail "tnl-b cannot ping 2001:db8::1"
ok "tnl-b reaches tnl-a: $(neigh 192.0.2.1) / $(neigh 2001:db8::1)"

# announce FAMILY VIP/PREFIX: tnl-b holds a stale entry to OLD_MAC, tnl-a
# takes the VIP over and announces it once; the entry must move to mac_a.
announce() {
	local vip=$1 addr=${1%/*} e
	ip -n $B neigh replace "$addr" lladdr $OLD_MAC dev tnl-vb nud stale
	e=$(neigh "$addr")
	[ "${e%% *}" = "$OLD_MAC" ] || fail "could not plant the old entry for $addr: '$e'"
	# Control: with no announcement, nothing moves the entry by itself.
	sleep 0.3
	e=$(neigh "$addr")
	[ "${e%% *}" = "$OLD_MAC" ] || fail "entry for $addr changed without an announcement: '$e'"
	ip netns exec $A "$check" announce tnl-va "$vip" >/dev/null || fail "announce $vip"
	for _ in $(seq 20); do
		e=$(neigh "$addr")
		[ "${e%% *}" = "$mac_a" ] && break
		sleep 0.1
	done
	[ "${e%% *}" = "$mac_a" ] || fail "after announcing $addr, tnl-b still has '$e' (want $mac_a)"
	ok "$addr: tnl-b entry moved $OLD_MAC -> $e after one announcement"
}

announce 192.0.2.50/24
ip netns exec $B ping -c 1 -W 2 192.0.2.50 >/dev/null || fail "tnl-b cannot reach VIP 192.0.2.50"
ok "tnl-b reaches VIP 192.0.2.50"

announce 2001:db8::50/64
ip netns exec $B ping -6 -c 1 -W 2 2001:db8::50 >/dev/null || fail "tnl-b cannot reach VIP 2001:db8::50"
ok "tnl-b reaches VIP 2001:db8::50"

# Not forwarding: the NA must not claim to be from a router.
if ip -n $B -6 neigh show 2001:db8::50 dev tnl-vb | grep -qw router; then
	fail "NA from a non-forwarding interface set the Router flag"
fi

# A gateway forwards IPv6: its NA must carry the Router flag, or hosts drop
# it from their default router list (RFC 4861 section 7.2.5).
ip netns exec $A sysctl -q -w net.ipv6.conf.tnl-va.forwarding=1
announce 2001:db8::51/64
ip -n $B -6 neigh show 2001:db8::51 dev tnl-vb | grep -qw router ||
	fail "NA from a forwarding interface lacks the Router flag: $(ip -n $B -6 neigh show 2001:db8::51 dev tnl-vb)"
ok "2001:db8::51: NA from a forwarding interface sets the Router flag"

echo "test_nl: all checks passed"
