#!/usr/bin/env bash
# test_config_sync.sh BUILD_DIR - cluster configuration sync in the lab
# (issue 3, SPEC sections 1 and 4: `tandemctl config ...`).
#
# Three gateways (group 0 needs a majority, so a coordinator crash leaves a
# coordinator behind). Each configuration carries a cluster-managed
# nftables ruleset whose set `inet tandemlab v` holds one marker address
# per version, so the kernel of every node says which ruleset it runs.
#
#  (a) a change proposed on a secondary (gw2) reaches every node: new
#      generation committed and applied everywhere, the ruleset in every
#      kernel, and a live setting (a new VIP in group 1) applied without a
#      restart, on the primary only;
#  (b) a node down during a change (gw3, stopped) catches up when it
#      returns: same generation, its kernel gets the new ruleset;
#  (c) bad input changes nothing anywhere: a ruleset nftables rejects, a
#      YAML error (reported FILE:LINE:COL), a change that cannot be made in
#      place (cluster id) and one that removes the node itself;
#  (d) the coordinator (gw1, group 0 primary) dies in the middle of a
#      commit, twice: after every node stored the proposal but before the
#      coordinator committed it, and after it committed but before anyone
#      heard: the survivors agree on one generation within seconds (never a
#      lasting mix), and gw1 comes back on the same one;
#  (e) backup, diff and restore round trip.
set -u
. "$(dirname "$0")/lib.sh"
lab_init "${1:-build}"
lab_up 3

RS=$LAB_DIR/rules.nft
# ruleset VERSION: the managed table with marker 192.0.2.(200 + VERSION).
ruleset() {
	cat <<EOF
table inet tandemlab
delete table inet tandemlab
table inet tandemlab {
	set v {
		type ipv4_addr
		elements = { 192.0.2.$((200 + $1)) }
	}
	chain input {
		type filter hook input priority 10; policy accept;
	}
}
EOF
}
# conf VERSION [sed-expr]: tandem.yaml plus the managed ruleset (relative
# path: resolved against the YAML's directory).
conf() {
	local v=$1 out=$LAB_DIR/v$1.yaml
	ruleset "$v" >"$LAB_DIR/rules-v$v.nft"
	{
		sed -e "${2:-}" "$LAB_DIR/tandem.yaml"
		echo "firewall:"
		echo "  ruleset: rules-v$v.nft"
	} >"$out"
	echo "$out"
}
marker() { # node -> the marker in its kernel, or "none"
	local m
	m=$(lab_nsexec "gw$1" nft list set inet tandemlab v 2>/dev/null | grep -o '192\.0\.2\.2[0-9][0-9]' | head -1)
	echo "${m:-none}"
}
cfg() { lab_ctl "$1" --json config status 2>/dev/null | jq -r ".$2"; }
gen_of() { lab_status "$1" 2>/dev/null | jq -r '.config.applied // "?"'; }
all_on() { # GEN NODES... : every node applied GEN
	local g=$1 i
	shift
	for i in "$@"; do [ "$(gen_of "$i")" = "$g" ] || return 1; done
}
in_sync() { [ "$(cfg "$1" in_sync)" = true ]; }

lab_start_node 1
lab_start_node 2
lab_start_node 3
lab_wait_primary 0 gw1 15 >/dev/null || lab_fail "group 0 has no agreed primary gw1"
lab_wait_primary 1 gw1 15 >/dev/null || lab_fail "group 1 has no agreed primary gw1"
lab_wait_until 10 all_on 1 1 2 3 || lab_fail "the cluster did not settle on generation 1 (the boot file): $(gen_of 1) $(gen_of 2) $(gen_of 3)"
lab_pass "every node runs generation 1 (the boot configuration)"

echo "(a) a change proposed on gw2 reaches every node" >&2
f=$(conf 1 's|      - {address: 198.51.100.1/24, interface: wan0}|&\n      - {address: 192.0.2.3/24, interface: lan0}|')
out=$(lab_ctl 2 config apply "$f" 2>&1)
lab_expect "(a) config apply on gw2: exit code" "$?" -eq 0
echo "  $out" >&2
lab_wait_until 5 all_on 2 1 2 3
for i in 1 2 3; do
	lab_expect "(a) gw$i applied generation" "$(gen_of $i)" == 2
	lab_expect "(a) gw$i kernel ruleset marker" "$(marker $i)" == 192.0.2.201
done
lab_wait_until 5 in_sync 2
lab_expect "(a) config status on gw2: in sync" "$(cfg 2 in_sync)" == true
lab_expect "(a) config status: nodes reporting generation 2" \
	"$(lab_ctl 3 --json config status | jq '[.nodes[] | select(.applied == 2 and .in_sync)] | length')" -eq 3
lab_expect "(a) holders of the new VIP 192.0.2.3" "$(lab_vip_holders 192.0.2.3 | xargs)" == gw1
lab_expect "(a) gw1 still primary of group 1 (no restart, no failover)" "$(lab_group_state 1 1)" == primary
lab_expect "(a) gw1 logged no restart" "$(grep -c 'event=daemon.start' "$LAB_DIR/gw1.log")" -eq 1

echo "(b) gw3 is down during a change and catches up when it returns" >&2
lab_stop_node 3
lab_wait_until 5 lab_peer_is 1 gw3 lost
f=$(conf 2 's/preempt_delay_s: 0/preempt_delay_s: 1/')
lab_ctl 1 config apply "$f" >/dev/null 2>&1
lab_expect "(b) config apply on gw1 with gw3 down: exit code" "$?" -eq 0
lab_wait_until 5 all_on 3 1 2
lab_expect "(b) gw2 applied generation" "$(gen_of 2)" == 3
lab_expect "(b) gw3's kernel still has the old ruleset" "$(marker 3)" == 192.0.2.201
lab_expect "(b) config status on gw1 lists gw3 as not alive" \
	"$(lab_ctl 1 --json config status | jq -r '.nodes[] | select(.node == "gw3") | .alive')" == false
lab_start_node 3
lab_wait_until 10 all_on 3 3 || lab_fail "(b) gw3 did not catch up: generation $(gen_of 3)"
lab_expect "(b) gw3 applied generation after its return" "$(gen_of 3)" == 3
lab_expect "(b) gw3 kernel ruleset marker" "$(marker 3)" == 192.0.2.202
lab_wait_until 5 in_sync 3
lab_expect "(b) config status on gw3: in sync" "$(cfg 3 in_sync)" == true

echo "(c) bad input changes nothing anywhere" >&2
before=$(for i in 1 2 3; do echo "$(gen_of $i) $(marker $i)"; done | xargs)
ruleset 3 | sed 's/type ipv4_addr/type no_such_type/' >"$LAB_DIR/bad.nft"
sed -e 's|^  ruleset: .*|  ruleset: bad.nft|' "$(conf 3)" >"$LAB_DIR/bad-rules.yaml"
err=$(lab_ctl 2 config apply "$LAB_DIR/bad-rules.yaml" 2>&1 >/dev/null)
lab_expect "(c) bad ruleset: exit code" "$?" -eq 1
echo "  $err" >&2
lab_expect "(c) bad ruleset: nftables' reason is shown" "$(grep -c 'no_such_type\|Error' <<<"$err")" -ge 1
sed -e 's/^  heartbeat_ms: .*/  heartbeat_ms: many/' "$(conf 3)" >"$LAB_DIR/bad-yaml.yaml"
err=$(lab_ctl 1 config apply "$LAB_DIR/bad-yaml.yaml" 2>&1 >/dev/null)
lab_expect "(c) bad YAML: exit code" "$?" -eq 1
echo "  $err" >&2
lab_expect "(c) bad YAML: located FILE:LINE:COL" "$(grep -c 'bad-yaml.yaml:[0-9]*:[0-9]*:' <<<"$err")" -ge 1
err=$(lab_ctl 3 config apply "$(conf 3 's/^  id: 1$/  id: 9/')" 2>&1 >/dev/null)
lab_expect "(c) cluster id change: exit code (refused)" "$?" -eq 3
echo "  $err" >&2
lab_expect "(c) cluster id change: the reason names it" "$(grep -ci 'cluster.id' <<<"$err")" -ge 1
awk '/- name: gw3/ { skip = 1; next } skip > 0 { skip--; next } { print }' "$(conf 3)" |
	sed -e 's/, gw3: [0-9]*//' >"$LAB_DIR/no-gw3.yaml"
err=$(lab_ctl 3 config apply "$LAB_DIR/no-gw3.yaml" 2>&1 >/dev/null)
rc=$?
echo "  $err" >&2
lab_expect "(c) removing gw3 on gw3: exit code (refused)" "$rc" -eq 3
lab_expect "(c) removing gw3: the reason names gw3" "$(grep -c 'gw3' <<<"$err")" -ge 1
after=$(for i in 1 2 3; do echo "$(gen_of $i) $(marker $i)"; done | xargs)
lab_expect "(c) generations and kernel rulesets of gw1..gw3 unchanged" "$after" == "$before"

# (d) The coordinator dies in the middle of a commit. gw1 is restarted with
# a failpoint that makes its process exit (like SIGKILL) at that point.
crash_commit() { # POINT GEN VERSION
	local point=$1 g=$2 v=$3 t0 mixed=0 k a2 a3
	echo "(d) coordinator gw1 dies at $point while committing generation $g" >&2
	lab_stop_node 1
	TANDEMD_FAILPOINT=$point lab_start_node 1
	lab_wait_ready 1 0 10 || lab_fail "(d) gw1 did not finish starting"
	# Group 0 does not preempt: move it back to gw1 by hand when needed.
	lab_wait_primary 0 gw1 2 >/dev/null || lab_ctl 1 failover --group 0 --to gw1 >/dev/null
	lab_wait_primary 0 gw1 15 >/dev/null || lab_fail "(d) gw1 did not become group 0 primary again"
	lab_wait_until 10 all_on $((g - 1)) 1 2 3 || lab_fail "(d) cluster not settled before the crash"
	f=$(conf "$v" "s/preempt_delay_s: [0-9]*/preempt_delay_s: $v/")
	lab_ctl 1 config apply "$f" >/dev/null 2>&1
	lab_expect "(d) $point: tandemctl saw gw1 die (exit code)" "$?" -ne 0
	wait "${LAB_PID[1]}" 2>/dev/null
	lab_expect "(d) $point: gw1 exit status (failpoint)" "$?" -eq 137
	LAB_PID[1]=
	lab_expect "(d) $point: gw1 logged the failpoint" "$(grep -c "event=failpoint .*name=$point" "$LAB_DIR/gw1.log")" -eq 1
	# The survivors may differ for a moment; they must agree within 5 s.
	t0=$(lab_now_ms)
	for ((k = 0; k < 100; k++)); do
		a2=$(gen_of 2)
		a3=$(gen_of 3)
		[ "$a2" = "$a3" ] && [ "$a2" = "$g" ] && break
		[ "$a2" != "$a3" ] && mixed=$((mixed + 1))
		sleep 0.05
	done
	echo "  gw2/gw3 agreed on generation $a2/$a3 after $(($(lab_now_ms) - t0)) ms ($mixed polls saw a mix)" >&2
	lab_expect "(d) $point: gw2 generation" "$a2" == "$g"
	lab_expect "(d) $point: gw3 generation" "$a3" == "$g"
	lab_expect "(d) $point: gw2 kernel ruleset marker" "$(marker 2)" == "192.0.2.$((200 + v))"
	lab_expect "(d) $point: gw3 kernel ruleset marker" "$(marker 3)" == "192.0.2.$((200 + v))"
	# gw1 comes back without the failpoint and joins the same generation.
	lab_start_node 1
	lab_wait_until 10 all_on "$g" 1 || lab_fail "(d) gw1 did not come back to generation $g: $(gen_of 1)"
	lab_expect "(d) $point: gw1 generation after its return" "$(gen_of 1)" == "$g"
	lab_expect "(d) $point: gw1 kernel ruleset marker" "$(marker 1)" == "192.0.2.$((200 + v))"
	lab_expect "(d) $point: generations on gw1..gw3" "$(gen_of 1) $(gen_of 2) $(gen_of 3)" == "$g $g $g"
}
crash_commit config.commit.before_store 4 4
crash_commit config.commit.after_store 5 5

echo "(e) backup, diff and restore" >&2
lab_ctl 2 config backup "$LAB_DIR/backup.json" >/dev/null
lab_expect "(e) config backup: exit code" "$?" -eq 0
lab_expect "(e) backup holds generation" "$(jq -r .generation "$LAB_DIR/backup.json")" == 5
f=$(conf 6 's/preempt_delay_s: [0-9]*/preempt_delay_s: 6/')
d=$(lab_ctl 1 config diff "$f")
echo "$d" | sed 's/^/  | /' >&2
lab_expect "(e) diff shows the changed setting" "$(grep -c '^+.*preempt_delay_s: 6' <<<"$d")" -eq 1
lab_expect "(e) diff shows the ruleset marker" "$(grep -c '^+.*192.0.2.206' <<<"$d")" -eq 1
lab_ctl 1 config apply "$f" >/dev/null
lab_expect "(e) apply generation 6: exit code" "$?" -eq 0
lab_wait_until 5 all_on 6 1 2 3
lab_ctl 3 config restore "$LAB_DIR/backup.json" >/dev/null
lab_expect "(e) restore of the backup: exit code" "$?" -eq 0
lab_wait_until 5 all_on 7 1 2 3
lab_expect "(e) after restore: generations" "$(gen_of 1) $(gen_of 2) $(gen_of 3)" == "7 7 7"
for i in 1 2 3; do
	lab_expect "(e) gw$i kernel ruleset marker after restore" "$(marker $i)" == 192.0.2.205
done
lab_expect "(e) restored document equals the backup" \
	"$(lab_ctl 2 --json config show | jq -r .yaml | sha256sum)" == "$(jq -r .yaml "$LAB_DIR/backup.json" | sha256sum)"

lab_finish
