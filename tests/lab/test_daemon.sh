#!/usr/bin/env bash
# test_daemon.sh BUILD_DIR - tandemd and tandemctl end to end, in two
# network namespaces (prefix "tdm-") joined by one veth link:
#
#   tdm-a: ctl0 203.0.113.1/24, lan0 (veth)    tdm-b: ctl0 203.0.113.2/24, lan0 (veth)
#
# Checks: --check-config on good and bad files; election (fw-a, priority
# 200, is primary of groups 0 and 1 and only it holds VIP 192.0.2.1);
# `failover --to` moves the group and its VIP and exits 0; unknown node
# exits 2, a target in maintenance exits 3; maintenance on/off; events
# (with reasons) and events --follow; activate/deactivate; a second daemon
# on a live socket is refused; SIGTERM of the primary hands its groups over
# faster than failure detection could, and removes its VIPs; a daemon with
# the wrong key is counted as unauthenticated and stays lost; after a
# SIGKILL, a restart (no --node, $TANDEM_SOCKET) replaces the stale socket,
# removes the stale VIP and uses a greater incarnation. Needs root, ip, jq.
set -uo pipefail

BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd) || exit 2
D=$(mktemp -d /tmp/tdm-lab.XXXXXX)
NA=tdm-a NB=tdm-b
VIP=192.0.2.1
declare -A PID=()
FAILS=0

log() { echo "[$(date +%T.%3N)] $*" >&2; }
fail() { log "FAIL: $*"; FAILS=$((FAILS + 1)); }
pass() { log "ok: $*"; }
die() { log "FATAL: $*"; exit 1; }
now_ms() { date +%s%3N; }

cleanup() {
	local k
	for k in "${!PID[@]}"; do
		[ -n "${PID[$k]}" ] && kill -KILL "${PID[$k]}" 2>/dev/null
	done
	for k in "${!PID[@]}"; do
		[ -n "${PID[$k]}" ] && wait "${PID[$k]}" 2>/dev/null
	done
	ip netns del $NA 2>/dev/null
	ip netns del $NB 2>/dev/null
	if [ "$FAILS" -gt 0 ] || [ -n "${TDM_KEEP:-}" ]; then
		for k in "$D"/*.log; do [ -f "$k" ] && { echo "--- $k (tail)"; tail -n 40 "$k"; } >&2; done
	fi
	rm -rf "$D"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || die "needs root"
for t in ip jq timeout; do command -v $t >/dev/null || die "needs $t"; done
[ -x "$BUILD/tandemd" ] && [ -x "$BUILD/tandemctl" ] || die "no tandemd/tandemctl in $BUILD"

# ---- topology ------------------------------------------------------------
ip netns del $NA 2>/dev/null; ip netns del $NB 2>/dev/null
ip netns add $NA && ip netns add $NB || die "cannot create namespaces"
ip link add tdm-va netns $NA type veth peer name tdm-vb netns $NB || die "veth"
# lan0 is one end of a veth pair kept inside the namespace (the dummy
# driver is not available on every kernel; veth is).
for ns in $NA $NB; do
	ip -n $ns link set lo up
	ip -n $ns link add lan0 type veth peer name lan0p || die "cannot create lan0 in $ns"
	ip -n $ns link set lan0p up && ip -n $ns link set lan0 up || die "lan0 up in $ns"
done
ip -n $NA link set tdm-va name ctl0
ip -n $NB link set tdm-vb name ctl0
ip -n $NA addr add 203.0.113.1/24 dev ctl0 && ip -n $NB addr add 203.0.113.2/24 dev ctl0 &&
	ip -n $NA link set ctl0 up && ip -n $NB link set ctl0 up || die "cannot set up ctl0"

head -c 32 /dev/urandom >"$D/cluster.key"
head -c 32 /dev/urandom >"$D/wrong.key"
chmod 600 "$D/cluster.key" "$D/wrong.key"

# Detection is deliberately slow (200 ms x 10 = 2 s), so a takeover that
# happens well within it can only be the hand-off of a clean stop.
write_config() { # FILE KEYFILE
	cat >"$1" <<EOF
cluster:
  name: tdm-lab
  id: 7
  key_file: $2
  port: 7400
  heartbeat_ms: 200
  dead_after: 10
nodes:
  - name: fw-a
    links: [203.0.113.1]
  - name: fw-b
    links: [203.0.113.2]
groups:
  - id: 0
    priority: {fw-a: 200, fw-b: 100}
  - id: 1
    priority: {fw-a: 200, fw-b: 100}
    vips:
      - {address: $VIP/24, interface: lan0}
EOF
}
write_config "$D/tandem.yaml" "$D/cluster.key"
write_config "$D/wrong.yaml" "$D/wrong.key"

ctl() { # NODE(a|b) ARGS...
	local n=$1
	shift
	timeout 15 "$BUILD/tandemctl" --socket "$D/$n.sock" "$@"
}
st() { ctl "$1" --json status 2>/dev/null; }
gfield() { st "$1" | jq -r --argjson g "$2" --arg f "$3" '.groups[] | select(.id == $g) | .[$f] | tostring'; }
has_vip() { ip -n "tdm-$1" -o addr show dev lan0 | grep -q " $VIP/"; }

start() { # NODE(a|b) NAME CONFIG [STATE_SUFFIX]
	local n=$1 name=$2 cfg=$3 sd="$D/$1.state${4:-}"
	ip netns exec "tdm-$n" "$BUILD/tandemd" --config "$cfg" --node "$name" \
		--state-dir "$sd" --socket "$D/$n.sock" >>"$D/$n.log" 2>&1 &
	PID[$n]=$!
	local deadline=$(($(now_ms) + 10000))
	until ctl "$n" status >/dev/null 2>&1; do
		kill -0 "${PID[$n]}" 2>/dev/null || die "tandemd $name exited during start-up"
		[ "$(now_ms)" -ge "$deadline" ] && die "tandemd $name did not answer within 10 s"
		sleep 0.05
	done
}

wait_until() { # TIMEOUT_S CMD... : poll every 50 ms
	local deadline=$(($(now_ms) + $1 * 1000))
	shift
	until "$@"; do
		[ "$(now_ms)" -ge "$deadline" ] && return 1
		sleep 0.05
	done
}

primary_is() { # GROUP NAME : both running daemons agree
	local g=$1 want=$2 n
	for n in a b; do
		[ -n "${PID[$n]:-}" ] || continue
		[ "$(gfield $n "$g" primary)" = "$want" ] || return 1
	done
}

# ---- configuration checks ------------------------------------------------
out=$("$BUILD/tandemd" --check-config --config "$D/tandem.yaml" 2>&1)
rc=$?
[ $rc = 0 ] && [ "$out" = "$D/tandem.yaml: configuration valid" ] &&
	pass "--check-config accepts a valid file" || fail "--check-config valid: rc=$rc out=$out"
cat >"$D/bad.yaml" <<EOF
cluster:
  name: tdm-lab
  id: 300
  key_file: $D/cluster.key
nodes:
  - name: fw-a
    links: [203.0.113.1]
  - name: fw-a
    links: [not-an-address]
EOF
"$BUILD/tandemd" --check-config --config "$D/bad.yaml" >"$D/bad.out" 2>"$D/bad.err"
rc=$?
n_loc=$(grep -cE "^$D/bad.yaml:[0-9]+:[0-9]+: " "$D/bad.err")
[ $rc = 1 ] && [ "$n_loc" -ge 2 ] && [ ! -s "$D/bad.out" ] &&
	pass "--check-config rejects a bad file: exit 1, $n_loc located problems" ||
	fail "--check-config bad: rc=$rc located=$n_loc stderr=$(cat "$D/bad.err")"
"$BUILD/tandemd" --config "$D/bad.yaml" --node fw-a --state-dir "$D/x.state" --socket "$D/x.sock" \
	>/dev/null 2>"$D/x.err"
rc=$?
[ $rc = 1 ] && [ ! -e "$D/x.sock" ] && [ ! -e "$D/x.state/incarnation" ] &&
	pass "tandemd refuses to start on a bad configuration and creates nothing" ||
	fail "start on bad config: rc=$rc"

# ---- election ------------------------------------------------------------
start a fw-a "$D/tandem.yaml"
start b fw-b "$D/tandem.yaml"
t0=$(now_ms)
wait_until 10 primary_is 0 fw-a && wait_until 10 primary_is 1 fw-a &&
	pass "fw-a primary of groups 0 and 1 after $(($(now_ms) - t0)) ms" ||
	fail "no agreement on fw-a: a=$(st a | jq -c '[.groups[]|{id,state,primary}]') b=$(st b | jq -c '[.groups[]|{id,state,primary}]')"
[ "$(gfield a 1 state)" = primary ] && [ "$(gfield b 1 state)" = secondary ] &&
	pass "states: fw-a primary, fw-b secondary" ||
	fail "states: a=$(gfield a 1 state) b=$(gfield b 1 state)"
wait_until 3 has_vip a && ! has_vip b && pass "only fw-a holds $VIP" || fail "VIP placement wrong"
j=$(st a)
echo "$j" | jq -e '.node == "fw-a" and .cluster == "tdm-lab" and .cluster_id == 7 and (.version|type) == "string"
	and (.incarnation > 0) and (.protocol.level >= 1) and .config.generation == 1 and .sessions.count == 0
	and .upgrade.state == "idle" and (.peers[0].node == "fw-b") and (.peers[0].state == "alive")
	and (.peers[0].links[0].address == "203.0.113.2") and (.peers[0].links[0].state == "up")
	and (.groups[1].vips[0].address == "192.0.2.1/24") and (.counters.rx > 0) and (.counters.tx > 0)' \
	>/dev/null && pass "status --json carries the documented fields" || fail "status JSON: $j"
ctl a status >"$D/human.txt" 2>&1
grep -q "Redundancy groups" "$D/human.txt" && grep -qE "^ +1 +primary +200 " "$D/human.txt" &&
	grep -qE "^ +fw-b +alive " "$D/human.txt" && grep -q "203.0.113.2 up" "$D/human.txt" &&
	pass "human status shows groups and peers" || fail "human status: $(cat "$D/human.txt")"
inc1=$(st a | jq .incarnation)
[ "$(tr -d '\n' <"$D/a.state/incarnation")" = "$inc1" ] && pass "incarnation $inc1 stored in the state dir" ||
	fail "incarnation file $(cat "$D/a.state/incarnation") != status $inc1"

# ---- a second daemon on a live socket ------------------------------------
ip netns exec $NA "$BUILD/tandemd" --config "$D/tandem.yaml" --node fw-a --state-dir "$D/a2.state" \
	--socket "$D/a.sock" >/dev/null 2>"$D/dup.err" &
dup=$!
PID[dup]=$dup
dup_done() { ! kill -0 $dup 2>/dev/null; }
wait_until 5 dup_done
wait $dup
rc=$?
PID[dup]=
[ $rc = 1 ] && grep -q "already listening" "$D/dup.err" && ctl a status >/dev/null &&
	pass "a second tandemd on a live socket is refused (exit 1), the first keeps answering" ||
	fail "duplicate daemon: rc=$rc $(cat "$D/dup.err")"

# ---- failover ------------------------------------------------------------
t0=$(now_ms)
out=$(ctl a failover --group 1 --to fw-b 2>&1)
rc=$?
dt=$(($(now_ms) - t0))
[ $rc = 0 ] && [ "$out" = "group 1: primary is now fw-b" ] &&
	pass "failover --to fw-b: exit 0 in $dt ms: $out" || fail "failover: rc=$rc out=$out"
wait_until 3 has_vip b && wait_until 3 eval '! has_vip a' && pass "VIP moved to fw-b" ||
	fail "VIP after failover: a=$(has_vip a && echo yes) b=$(has_vip b && echo yes)"
[ "$(gfield a 1 manual)" = true ] && [ "$(gfield b 1 primary)" = fw-b ] &&
	pass "group 1 manual flag set, fw-b primary" || fail "manual flag: $(st a | jq -c '.groups[1]')"

ctl a failover --group 1 --to fw-z >/dev/null 2>"$D/err.txt"
rc=$?
[ $rc = 2 ] && grep -q "fw-z" "$D/err.txt" && pass "failover to an unknown node: exit 2 ($(cat "$D/err.txt"))" ||
	fail "unknown node: rc=$rc $(cat "$D/err.txt")"
ctl a failover --group 9 >/dev/null 2>&1
rc=$?
[ $rc = 2 ] && pass "failover of an unknown group: exit 2" || fail "unknown group: rc=$rc"
ctl a failover >/dev/null 2>&1
rc=$?
[ $rc = 2 ] && pass "failover without --group: exit 2" || fail "no group: rc=$rc"
out=$(ctl a --json upgrade status 2>"$D/err.txt")
rc=$?
[ $rc = 0 ] && [ "$(echo "$out" | jq -r .state)" = idle ] && pass "upgrade status: exit 0, idle" ||
	fail "upgrade status: rc=$rc $out $(cat "$D/err.txt")"

# ---- maintenance ---------------------------------------------------------
out=$(ctl a maintenance on --node fw-a 2>&1)
rc=$?
[ $rc = 0 ] && pass "maintenance on fw-a: $out" || fail "maintenance on: rc=$rc $out"
wait_until 3 eval '[ "$(st a | jq .maintenance)" = true ]' &&
	wait_until 3 eval '[ "$(st b | jq -r ".peers[0].maintenance")" = true ]' &&
	pass "fw-a in maintenance (seen by both)" || fail "maintenance not visible"
wait_until 5 primary_is 0 fw-b && pass "group 0 left fw-a in maintenance" ||
	fail "group 0 still on $(gfield a 0 primary)"
ctl b failover --group 1 --to fw-a >/dev/null 2>"$D/err.txt"
rc=$?
[ $rc = 3 ] && [ -s "$D/err.txt" ] && pass "failover to a node in maintenance: exit 3 ($(cat "$D/err.txt"))" ||
	fail "failover to maintenance node: rc=$rc $(cat "$D/err.txt")"
ctl a maintenance off >/dev/null 2>&1
rc=$?
wait_until 3 eval '[ "$(st a | jq .maintenance)" = false ]' && [ $rc = 0 ] &&
	pass "maintenance off" || fail "maintenance off: rc=$rc"
ctl a maintenance sideways >/dev/null 2>&1
[ $? = 2 ] && pass "maintenance with a bad argument: exit 2" || fail "maintenance bad arg"

# ---- events --------------------------------------------------------------
ctl a --json events >"$D/ev.json" 2>&1
n=$(jq -s '[.[] | select(.event == "group.state" and (.fields.reason // "") != "")] | length' "$D/ev.json")
[ "${n:-0}" -ge 2 ] && pass "events: $n group.state events with a reason" || fail "events: $(head -c 600 "$D/ev.json")"
jq -s -e '[.[] | select(.event == "admin.request")] | length >= 3' "$D/ev.json" >/dev/null &&
	pass "events record the administrative requests" || fail "no admin.request events"
ctl a events --limit 3 >"$D/ev.txt" 2>&1
[ "$(wc -l <"$D/ev.txt")" = 3 ] && grep -qE "^20[0-9-]+T[0-9:.]+Z (info|warn|error|debug) +[a-z]" "$D/ev.txt" &&
	pass "events --limit 3: three human lines" || fail "events --limit: $(cat "$D/ev.txt")"
[ -s "$D/a.state/events.log" ] && jq -e . "$D/a.state/events.log" >/dev/null &&
	pass "events.log holds JSON lines ($(wc -l <"$D/a.state/events.log"))" || fail "events.log"

timeout 20 "$BUILD/tandemctl" --socket "$D/a.sock" --json events --follow --limit 0 >"$D/follow.json" 2>&1 &
PID[follow]=$!
sleep 0.3
out=$(ctl a failover --group 1 --reset 2>&1)
rc=$?
[ $rc = 0 ] && pass "failover --reset: $out" || fail "reset: rc=$rc $out"
wait_until 3 eval '[ "$(gfield a 1 manual)" = false ]' && pass "manual flag cleared" || fail "manual flag not cleared"
wait_until 3 grep -q '"admin.request"' "$D/follow.json" &&
	pass "events --follow streamed the request as it happened" || fail "follow: $(cat "$D/follow.json")"
kill "${PID[follow]}" 2>/dev/null
wait "${PID[follow]}" 2>/dev/null
PID[follow]=

# ---- deactivate / activate ------------------------------------------------
# Wherever the groups are now, activate pulls both to fw-a, deactivate
# pushes them to fw-b, activate brings them back for the stop test.
on_a() { primary_is 0 fw-a && primary_is 1 fw-a; }
on_b() { primary_is 0 fw-b && primary_is 1 fw-b; }
out=$(ctl a activate 2>&1)
rc=$?
[ $rc = 0 ] && wait_until 5 on_a && pass "activate: fw-a took both groups ($out)" ||
	fail "activate: rc=$rc $out; a=$(st a | jq -c '[.groups[]|{id,state,primary}]')"
out=$(ctl a deactivate 2>&1)
rc=$?
[ $rc = 0 ] && wait_until 5 on_b && wait_until 3 has_vip b && wait_until 3 eval '! has_vip a' &&
	pass "deactivate: fw-a gave both groups and the VIP to fw-b ($out)" ||
	fail "deactivate: rc=$rc $out; b=$(st b | jq -c '[.groups[]|{id,state,primary}]')"
ctl a activate >/dev/null 2>&1
wait_until 5 on_a && wait_until 3 has_vip a && pass "activate again: groups and VIP back on fw-a" ||
	fail "groups not back on fw-a"

# ---- SIGTERM of the primary ----------------------------------------------
t0=$(now_ms)
kill -TERM "${PID[a]}"
exited() { ! kill -0 "${PID[a]}" 2>/dev/null; }
wait_until 5 exited
wait "${PID[a]}"
rc=$?
PID[a]=
[ $rc = 0 ] && pass "fw-a exited 0 on SIGTERM" || fail "fw-a exit status $rc"
both_b() { [ "$(gfield b 0 state)" = primary ] && [ "$(gfield b 1 state)" = primary ]; }
wait_until 5 both_b
dt=$(($(now_ms) - t0))
both_b && [ "$dt" -lt 1500 ] && pass "fw-b primary of both groups $dt ms after SIGTERM (detection alone: 2000 ms)" ||
	fail "takeover after SIGTERM: $dt ms, b=$(st b | jq -c '[.groups[]|{id,state}]')"
! has_vip a && pass "fw-a removed its VIP on exit" || fail "fw-a left $VIP behind"
wait_until 3 has_vip b && pass "fw-b holds $VIP" || fail "fw-b has no VIP"
[ ! -e "$D/a.sock" ] && pass "fw-a removed its socket" || fail "socket file left"
ctl a status >/dev/null 2>"$D/err.txt"
rc=$?
[ $rc = 1 ] && grep -q "cannot reach tandemd at $D/a.sock" "$D/err.txt" &&
	pass "tandemctl against a stopped daemon: exit 1, $(cat "$D/err.txt")" || fail "unreachable: rc=$rc"

# ---- the wrong key -------------------------------------------------------
# First let fw-b declare the real fw-a lost (2 s of silence), then give
# the impostor longer than that to (fail to) revive it.
wait_until 5 eval '[ "$(st b | jq -r ".peers[0].state")" = lost ]' || fail "fw-b never declared fw-a lost"
u0=$(st b | jq .counters.unauthenticated)
start a fw-a "$D/wrong.yaml" .wrong
sleep 2.5
u1=$(st b | jq .counters.unauthenticated)
[ "$u1" -gt "$u0" ] && pass "fw-b counts the impostor's packets as unauthenticated ($u0 -> $u1)" ||
	fail "unauthenticated did not grow: $u0 -> $u1"
[ "$(st b | jq -r '.peers[0].state')" = lost ] && [ "$(gfield b 1 state)" = primary ] &&
	pass "fw-b keeps fw-a lost and stays primary" || fail "impostor changed fw-b: $(st b | jq -c .)"
grep -q "event=rx.drop.*reason=unauthenticated" "$D/b.log" && pass "fw-b logged the drop" ||
	fail "no rx.drop line in fw-b's log"
n=$(grep -c "event=rx.drop.*reason=unauthenticated" "$D/b.log")
[ "$n" -le 2 ] && pass "drop log is rate limited ($n lines for $u1 packets)" || fail "$n drop lines"
# Alone as far as it knows, the impostor claims group 1 and its VIP. It
# then dies without cleaning up: socket file and VIP stay behind.
wait_until 5 eval '[ "$(gfield a 1 state)" = primary ]' && wait_until 3 has_vip a ||
	fail "impostor did not claim group 1"
# tandemd is a supervisor and a worker (the active version): both die at
# the same instant, as in a power cut, so neither can tidy up after the other.
worker=$(pgrep -P "${PID[a]}" | head -1)
kill -KILL "${PID[a]}" ${worker:+"$worker"}
wait "${PID[a]}" 2>/dev/null
PID[a]=
[ -n "$worker" ] && wait_until 3 eval '! kill -0 '"$worker"' 2>/dev/null'
[ -S "$D/a.sock" ] && has_vip a ||
	fail "SIGKILL left no socket/VIP behind (test premise): socket $([ -S "$D/a.sock" ] && echo present || echo gone), VIP $(has_vip a && echo present || echo gone)"

# ---- restart after a crash: default node, $TANDEM_SOCKET, stale files ----
# No --node (fw-a is the node with a local link address here) and the
# socket from the environment; the stale socket is replaced and the VIP
# the dead process left is removed before anything else happens.
TANDEM_SOCKET="$D/a.sock" ip netns exec $NA "$BUILD/tandemd" --config "$D/tandem.yaml" \
	--state-dir "$D/a.state" >>"$D/a.log" 2>&1 &
PID[a]=$!
wait_until 10 eval 'ctl a status >/dev/null 2>&1' || die "restarted fw-a does not answer"
[ "$(st a | jq -r .node)" = fw-a ] && pass "without --node, the daemon found itself: fw-a" ||
	fail "default node: $(st a | jq -r .node)"
grep -q "event=vip.stale.*address=$VIP/24" "$D/a.log" && pass "stale VIP from the crashed run removed at start" ||
	fail "no vip.stale event"
inc2=$(st a | jq .incarnation)
[ "$inc2" -gt "$inc1" ] && pass "incarnation grew across restarts ($inc1 -> $inc2)" || fail "incarnation $inc1 -> $inc2"
wait_until 5 eval '[ "$(st b | jq -r ".peers[0].state")" = alive ]' && pass "fw-a rejoined" || fail "fw-a did not rejoin"
grep -q "event=group.state" "$D/a.log" && grep -q "event=daemon.start" "$D/a.log" &&
	pass "structured log lines on stderr" || fail "log lines missing"

# A clean stop exits 0 (under the sanitizers, also: no leak, no error).
kill -TERM "${PID[a]}" "${PID[b]}"
wait "${PID[a]}"
ra=$?
wait "${PID[b]}"
rb=$?
PID[a]= PID[b]=
[ $ra = 0 ] && [ $rb = 0 ] && pass "both daemons stopped cleanly" || fail "exit codes on SIGTERM: fw-a $ra, fw-b $rb"

if [ "$FAILS" -gt 0 ]; then
	log "test_daemon: $FAILS check(s) failed"
	exit 1
fi
log "test_daemon: all checks passed"
