#!/usr/bin/env bash
# test_cluster_config.sh BUILD_DIR - (h) bad configuration never reaches a
# running cluster. `tandemd --check-config` on a file with four problems
# exits 1 and locates each as FILE:LINE:COL (the lines are checked); the lab's
# own file passes. Starting tandemd with the bad file fails with the same
# lines, creates no socket and no state, and the running cluster, carrying
# traffic meanwhile, does not notice.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
lab_init "${1:-}" tandemd tandemctl tandem-probe

lab_up 2
lab_probe_server
lab_start_node 1
lab_start_node 2
lab_wait_primary 1 gw1 15 >/dev/null || lab_fail "group 1 has no agreed primary gw1"
lab_wait_primary 0 gw1 15 >/dev/null || lab_fail "group 0 has no agreed primary gw1"

good=$LAB_DIR/tandem.yaml
bad=$LAB_DIR/bad.yaml
# Four independent problems: a heartbeat below 10 ms, dead_after below 2,
# an IPv4 address with an octet of 300, a priority for a node that does not
# exist.
sed -e 's/^  heartbeat_ms: .*/  heartbeat_ms: 5/' \
	-e 's/^  dead_after: .*/  dead_after: 1/' \
	-e "s|{address: $VIP_LAN/24|{address: 192.0.2.300/24|" \
	-e '0,/^    priority: {/s/^    priority: {/    priority: {gw9: 10, /' "$good" >"$bad"
line_of() { grep -n -m1 -e "$1" "$bad" | cut -d: -f1; }
want_lines="$(line_of 'heartbeat_ms: 5') $(line_of 'dead_after: 1') $(line_of '192.0.2.300') $(line_of 'gw9: 10')"
echo "  (h) problems planted at lines: $want_lines" >&2

echo "(h) tandemd --check-config" >&2
timeout 10 "$LAB_BUILD/tandemd" --check-config --config "$good" >"$LAB_DIR/check-good.out" 2>&1
lab_expect "(h) --check-config on the lab file: exit code" "$?" -eq 0
timeout 10 "$LAB_BUILD/tandemd" --check-config --config "$bad" >"$LAB_DIR/check-bad.out" 2>&1
lab_expect "(h) --check-config on bad.yaml: exit code" "$?" -eq 1
sed 's/^/    | /' "$LAB_DIR/check-bad.out" >&2
grep -E "^$bad:[0-9]+:[0-9]+: " "$LAB_DIR/check-bad.out" | sort >"$LAB_DIR/check-bad.diags"
lab_expect "(h) FILE:LINE:COL lines" "$(wc -l <"$LAB_DIR/check-bad.diags")" -ge 4
for l in $want_lines; do
	lab_expect "(h) a diagnostic at line $l" "$(grep -c "^$bad:$l:" "$LAB_DIR/check-bad.diags")" -ge 1
done

echo "(h) starting tandemd with bad.yaml, cluster under traffic" >&2
ev1=$(lab_group_events 1)
ev2=$(lab_group_events 2)
out=$LAB_DIR/h.json
lab_probe_start "$out" --duration-ms 3000 "${PROBE_LOAD[@]}"
sleep 0.5
lab_probe_mark
ip netns exec "${P}gw2" timeout 10 "$LAB_BUILD/tandemd" --config "$bad" --node gw2 \
	--state-dir "$LAB_DIR/bad.state" --socket "$LAB_SOCK_DIR/bad.sock" >"$LAB_DIR/start-bad.out" 2>&1
rc=$?
lab_expect "(h) tandemd with bad.yaml: exit code" "$rc" -eq 1
grep -E "^$bad:[0-9]+:[0-9]+: " "$LAB_DIR/start-bad.out" | sort >"$LAB_DIR/start-bad.diags"
if cmp -s "$LAB_DIR/check-bad.diags" "$LAB_DIR/start-bad.diags"; then
	lab_pass "(h) start-up printed the same $(wc -l <"$LAB_DIR/start-bad.diags") diagnostics as --check-config"
else
	lab_soft_fail "(h) start-up diagnostics differ from --check-config:"
	diff "$LAB_DIR/check-bad.diags" "$LAB_DIR/start-bad.diags" >&2
fi
lab_expect "(h) no socket left by the failed start" "$([ -e "$LAB_SOCK_DIR/bad.sock" ] && echo exists || echo none)" == none
lab_expect "(h) nothing written to the failed start's state dir" \
	"$(find "$LAB_DIR/bad.state" -mindepth 1 2>/dev/null | wc -l)" -eq 0
lab_probe_wait "$out"
lab_check_probe "(h) traffic meanwhile" "$out" 50 new
lab_expect "(h) gw1 still primary of group 1" "$(lab_group_state 1 1)" == primary
lab_expect "(h) gw2 still secondary of group 1" "$(lab_group_state 2 1)" == secondary
lab_expect "(h) gw1 sees gw2" "$(lab_peer_state 1 gw2)" == alive
lab_expect "(h) group.state events on gw1" "$(lab_group_events 1)" -eq "$ev1"
lab_expect "(h) group.state events on gw2" "$(lab_group_events 2)" -eq "$ev2"
lab_expect "(h) holders of $VIP_LAN" "$(lab_vip_holders $VIP_LAN | xargs)" == gw1
lab_node_alive 1 && lab_node_alive 2 || lab_fail "(h) a running node died"

lab_finish
