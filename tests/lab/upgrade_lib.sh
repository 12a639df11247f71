# upgrade_lib.sh - the fixture of the in-service upgrade lab (SPEC section
# 5, issue 5): versions of the project, signed images (good and bad), the
# upgrade settings, the traffic that must survive an upgrade, and helpers
# that read `tandemctl upgrade status --json`.
#
# Sourced after lib.sh by tests/lab/test_upgrade*.sh, tests/lab/demo.sh and
# bench/upgrade.sh. Owns the versions' build directories (BUILD-V, as
# test_image.sh names them: the same source built with `make VERSION=V`,
# sanitized when BUILD is) and the files it makes under $LAB_DIR (keys,
# image sources, images). Every wait is bounded; nothing here starts a
# process that lib.sh does not record.

UPG_HOLD_S=${UPG_HOLD_S:-60}     # upgrade.hold_timer_s: a restart on a loaded 2-core machine
UPG_SYNC_S=${UPG_SYNC_S:-60}     # upgrade.sync_timeout_s
UPG_RUN_S=${UPG_RUN_S:-240}      # longest a whole upgrade (or its rollback) may take here
UPG_TCP=${UPG_TCP:-1000}         # long-lived connections of the load
UPG_NEW_EVERY_MS=${UPG_NEW_EVERY_MS:-10}
UPG_GAP_LIMIT_MS=50              # SPEC section 6: a planned switchover's gap

# The load of issue 5: 1 kHz UDP, UPG_TCP long-lived TCP connections (one
# echo a second each), a new connection every 10 ms; every UDP gap over 2 ms
# listed; the probe's events log (--events) for `upgrade report`. It runs
# until upg_probe_stop (the duration is only a bound).
UPG_LOAD=(--udp-hz 1000 --tcp "$UPG_TCP" --tcp-interval-ms 1000 --new-every-ms "$UPG_NEW_EVERY_MS"
	--connect-timeout-ms 5000 --gaps-over-ms 2 --duration-ms 900000)

# ---------------------------------------------------------------- versions

# upg_versions : UPG_V0 (LAB_BUILD's version), UPG_V1, UPG_V2 (the next two
# minor versions), UPG_VBAD (the third: an image whose daemon dies at
# start), UPG_VNOCONF (the fourth: refuses every configuration), UPG_SAN.
upg_versions() {
	UPG_V0=$("$LAB_BUILD/tandemd" --version | awk '{print $2}')
	[[ $UPG_V0 =~ ^([0-9]+)\.([0-9]+)(\.[0-9]+)?$ ]] ||
		lab_fail "cannot read the version of $LAB_BUILD/tandemd ('$UPG_V0')"
	local maj=${BASH_REMATCH[1]} min=${BASH_REMATCH[2]}
	UPG_V1=$maj.$((min + 1)).0
	UPG_V2=$maj.$((min + 2)).0
	UPG_VBAD=$maj.$((min + 3)).0
	UPG_VNOCONF=$maj.$((min + 4)).0
	UPG_SAN=0
	# (grep reads all of nm: with -q, nm would die of SIGPIPE under pipefail.)
	nm "$LAB_BUILD/tandemd" 2>/dev/null | grep __asan_init >/dev/null && UPG_SAN=1
	return 0
}

# upg_build V : the project built as version V beside LAB_BUILD (BUILD-V);
# prints the directory. Incremental: a second test reuses it.
upg_build() {
	local v=$1 dir=$LAB_BUILD-$1 log
	log=$(mktemp "/tmp/${P}make-$v.XXXXXX")
	lab_log "building $v into $dir (SAN=$UPG_SAN)"
	if ! make -s -C "$LAB_REPO" -j2 SAN="$UPG_SAN" VERSION="$v" B="$dir" "$dir/tandemd" "$dir/tandemctl" \
		>"$log" 2>&1; then
		tail -30 "$log" >&2
		rm -f "$log"
		lab_fail "make VERSION=$v failed"
	fi
	rm -f "$log"
	"$dir/tandemd" --version | grep -F "tandemd $v " >/dev/null || lab_fail "$dir/tandemd is not $v"
	echo "$dir"
}

# ---------------------------------------------------------------- images

# upg_images V... : after lab_up. A signing key (trusted: its public half in
# the configuration's upgrade.trusted_keys) and, for each V, the project
# built as V, signed: $LAB_DIR/img-V. UPG_KEY is the key.
upg_images() {
	local v dir
	UPG_KEY=$LAB_DIR/signing.key
	if [ ! -e "$UPG_KEY" ]; then
		"$LAB_BUILD/tandemctl" image keygen --out "$UPG_KEY" >/dev/null || lab_fail "image keygen"
		cp "$UPG_KEY.pub" "$LAB_DIR/trusted.d/lab.pub"
	fi
	for v in "$@"; do
		if [ "$v" = "$UPG_V0" ]; then dir=$LAB_BUILD; else dir=$(upg_build "$v") || exit 1; fi
		mkdir -p "$LAB_DIR/src-$v/bin"
		cp "$dir/tandemd" "$dir/tandemctl" "$LAB_DIR/src-$v/bin/"
		"$LAB_BUILD/tandemctl" image build --version "$v" --from "$LAB_DIR/src-$v" --key "$UPG_KEY" \
			--out "$LAB_DIR/img-$v" >/dev/null || lab_fail "image build $v"
	done
}

# upg_image_scripted V MODE : an image of version V whose tandemd is a
# script that answers --version (image build) and, with MODE "dies",
# accepts every configuration (--check-config) and exits 1 at every start,
# like a release that crashes at start-up; with MODE "noconf", refuses
# every configuration. Signed by UPG_KEY: $LAB_DIR/img-V.
upg_image_scripted() {
	local v=$1 mode=$2 d=$LAB_DIR/src-$1 cc=0
	[ "$mode" = noconf ] && cc=1
	mkdir -p "$d/bin"
	cat >"$d/bin/tandemd" <<EOF
#!/bin/sh
case "\$1" in
--version) echo "tandemd $v (protocol 1..1)"; exit 0 ;;
--check-config)
	[ $cc = 0 ] && { echo "configuration valid"; exit 0; }
	echo "tandem.yaml:1:1: not accepted by $v (made to refuse)" >&2; exit 1 ;;
esac
echo "tandemd $v: broken on purpose" >&2
exit 1
EOF
	chmod 755 "$d/bin/tandemd"
	cp "$LAB_BUILD/tandemctl" "$d/bin/"
	"$LAB_BUILD/tandemctl" image build --version "$v" --from "$d" --key "$UPG_KEY" --out "$LAB_DIR/img-$v" \
		>/dev/null || lab_fail "image build $v ($mode)"
}

# upg_image_bad GOOD VARIANT OUT : a damaged copy of a good image
# (tests/image/craft.py: tampered, nosig, ...).
upg_image_bad() {
	python3 "$LAB_REPO/tests/image/craft.py" "$1" "$2" "$3" >/dev/null || lab_fail "craft.py $2"
}

# upg_image_untrusted V OUT : V's image signed by a key the cluster does
# not trust.
upg_image_untrusted() {
	local k=$LAB_DIR/untrusted.key
	[ -e "$k" ] || "$LAB_BUILD/tandemctl" image keygen --out "$k" >/dev/null || lab_fail "image keygen (untrusted)"
	"$LAB_BUILD/tandemctl" image build --version "$1" --from "$LAB_DIR/src-$1" --key "$k" --out "$2" \
		>/dev/null || lab_fail "image build (untrusted)"
}

# upg_config_settings [FILE] : the upgrade section's timers for the lab (the
# upgrade section is the last of lib.sh's configuration). cpu_max_percent
# is 100 because every node of the lab shares one small machine with the
# load, the other tests and builds: the check reads the machine's CPU,
# which is not the node's. (The check itself: test_upgrade.sh (b).)
upg_config_settings() {
	local f=${1:-$LAB_DIR/tandem.yaml}
	{
		echo "  hold_timer_s: $UPG_HOLD_S"
		echo "  sync_timeout_s: $UPG_SYNC_S"
		echo "  cpu_max_percent: 100"
	} >>"$f"
}

# ---------------------------------------------------------------- commands

# upg_ctl I ARGS... : tandemctl against node I with room for a whole upgrade
# (`upgrade start` follows it to its end).
upg_ctl() {
	local i=$1
	shift
	timeout "$UPG_RUN_S" "$LAB_BUILD/tandemctl" --socket "$(lab_sock "$i")" "$@"
}

upg_status() { lab_ctl "$1" --json upgrade status 2>/dev/null; }
# upg_get I JQ : one value of node I's `upgrade status --json`.
upg_get() { upg_status "$1" | jq -r "$2" 2>/dev/null; }
upg_state() { upg_get "$1" '.state // "none"'; }
upg_state_in() { [[ "|$2|" == *"|$(upg_state "$1")|"* ]]; }

# upg_sessions_in_sync I : node I reports its sessions in sync.
upg_sessions_in_sync() { [ "$(lab_status "$1" 2>/dev/null | jq -r '.sessions.in_sync')" = true ]; }

# upg_wait_pair [LABEL] : after starting gw1 and gw2, gw1 primary of groups
# 0 and 1, gw2's sessions in sync and gw2 settled (fails the test if not).
upg_wait_pair() {
	local p=${1:+$1: }
	lab_wait_primary 0 gw1 15 >/dev/null || lab_fail "${p}group 0: gw1 not primary"
	lab_wait_primary 1 gw1 15 >/dev/null || lab_fail "${p}group 1: gw1 not primary"
	lab_wait_until 15 upg_sessions_in_sync 2 || lab_fail "${p}gw2 never reported its sessions in sync"
	lab_wait_ready 2 1 10 || lab_fail "${p}gw2 did not settle"
}

# upg_one_version LABEL : both nodes run one version, and each one's boot
# record agrees with what it runs; ONE_VERSION is it.
upg_one_version() {
	local label=$1 v1 v2
	v1=$(upg_node_version 1) v2=$(upg_node_version 2)
	lab_expect "$label both nodes on one version" "gw1=$v1 gw2=$v2" == "gw1=$v1 gw2=$v1"
	lab_expect "$label gw1 boot record" "$(upg_active_version 1)" == "$v1"
	lab_expect "$label gw2 boot record" "$(upg_active_version 2)" == "$v2"
	ONE_VERSION=$v1
}

# upg_served LABEL NODE : groups 0 and 1 agreed on NODE, its VIPs in its
# kernel alone, the other node's sessions in sync again, the configuration
# not frozen on either node.
upg_served() {
	local label=$1 n=$2 other
	other=$((3 - ${n#gw}))
	lab_expect "$label group 0 on $n" "$(lab_wait_primary 0 "$n" 20 >/dev/null && echo yes)" == yes
	lab_expect "$label group 1 on $n" "$(lab_wait_primary 1 "$n" 20 >/dev/null && echo yes)" == yes
	lab_expect "$label VIPs on $n alone (kernel)" "$(lab_vips_only_on "$n" && echo yes)" == yes
	lab_wait_until 30 upg_sessions_in_sync "$other"
	lab_expect "$label gw$other sessions in sync" "$(lab_status "$other" | jq -r .sessions.in_sync)" == true
	lab_expect "$label configuration not frozen (gw1)" "$(upg_get 1 '.frozen // false')" == false
	lab_expect "$label configuration not frozen (gw2)" "$(upg_get 2 '.frozen // false')" == false
}

# upg_wait_state I "S1|S2" TIMEOUT_S : wait until node I reports one of
# the states; on time out prints the status.
upg_wait_state() {
	local i=$1 want=$2 t=$3
	lab_wait_until "$t" upg_state_in "$i" "$want" && return 0
	lab_log "gw$i: upgrade state not in ($want) after ${t} s:"
	lab_ctl "$i" upgrade status >&2
	return 1
}

# The running step (JSON) and a test: "KIND [NODE]" is running.
upg_running_step() { upg_status "$1" | jq -c '[.steps[]? | select(.status == "running")][0] // empty'; }
upg_step_running() {
	local s
	s=$(upg_running_step "$1")
	[ -n "$s" ] || return 1
	[ "$(jq -r .kind <<<"$s")" = "$2" ] || return 1
	[ -z "${3:-}" ] && return 0
	jq -e --arg n "$3" '(.node // "") == $n or ((.nodes // []) | index($n) != null)' <<<"$s" >/dev/null
}

# upg_plan_ok I IMAGE : `upgrade plan` on node I passes every check.
upg_plan_ok() { lab_ctl "$1" --json upgrade plan --image "$2" >/dev/null 2>&1; }

# upg_wait_plan_ok I IMAGE TIMEOUT_S : wait until the plan passes: a node
# learns its peers' facts once a second and its CPU load over 5 s, so a
# cluster just started (or just changed) needs a few seconds. Prints the
# failed checks on time out.
upg_wait_plan_ok() {
	lab_wait_until "$3" upg_plan_ok "$1" "$2" && return 0
	lab_log "gw$1: upgrade plan still refused after $3 s:"
	lab_ctl "$1" --json upgrade plan --image "$2" 2>/dev/null |
		jq -r '.checks[]? | select(.ok == false) | "  \(.code): \(.message)"' >&2
	return 1
}

# upg_node_version I : the version node I says it runs.
upg_node_version() { lab_status "$1" 2>/dev/null | jq -r '.version // "none"'; }
# upg_versions_of : "gw1=V gw2=V ..." of the running nodes.
upg_versions_of() {
	local i out=
	for ((i = 1; i <= LAB_N; i++)); do
		lab_node_alive "$i" || continue
		out+="${out:+ }gw$i=$(upg_node_version "$i")"
	done
	echo "$out"
}
# upg_all_on V : every running node runs V, and its image list says V is
# active (the kernel of the claim: what the node exec'd and booted).
upg_all_on() {
	local v=$1 i
	for ((i = 1; i <= LAB_N; i++)); do
		lab_node_alive "$i" || continue
		[ "$(upg_node_version "$i")" = "$v" ] || return 1
		[ "$(upg_active_version "$i")" = "$v" ] || return 1
	done
}
# upg_active_version I : the active version in node I's boot record.
upg_active_version() {
	lab_ctl "$1" --json image list 2>/dev/null |
		jq -r --arg n "gw$1" 'if has("nodes") then (.nodes[] | select(.node == $n) | .active) else .active end // "none"'
}

# upg_print_nodes I : the per-node table of the status, indented.
upg_print_nodes() {
	upg_status "$1" | jq -r '"  state=\(.state) phase=\(.phase // "-") \(.from // "?") -> \(.to // "?") coordinator=\(.coordinator // "-")",
		(.nodes[]? | "    \(.node): \(.state) \(.version)"),
		(if .error then "  error \(.error.code): \(.error.message)\n  recovery: \(.error.recovery)" else empty end)' >&2
}

# upg_conntrack_count I : connections in gwI's kernel table.
upg_conntrack_count() { lab_nsexec "gw$1" conntrack -C 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- traffic

# upg_probe_start OUT : the load in the background from the client, its
# JSON report in OUT and its events log in OUT.events; returns once every
# connection echoed (10 s at most). Started directly, not through a shell
# function as lab_probe_start does, so LAB_PROBE_PID is the probe itself
# and upg_probe_stop's SIGTERM reaches it.
upg_probe_start() {
	local out=$1
	shift
	rm -f "$out" "$out.ready" "$out.events"
	LAB_PROBE_EVENT_MS=
	LAB_PROBE_WINDOW_MS=2000
	LAB_PROBE_T0=$(lab_now_ms)
	ip netns exec "${P}client" "$LAB_BUILD/tandem-probe" client --target "$SERVER_ADDR" --port $PROBE_PORT \
		--json --ready-file "$out.ready" --events "$out.events" "${UPG_LOAD[@]}" "$@" >"$out" 2>"$out.err" &
	LAB_PROBE_PID=$!
	LAB_EXTRA_PIDS+=("$LAB_PROBE_PID")
	lab_wait_until 10 test -e "$out.ready" || { cat "$out.err" >&2; lab_fail "probe client not ready within 10 s"; }
}

# upg_probe_stop OUT : SIGTERM ends the load; the probe drains, reports and
# writes its summary.
upg_probe_stop() {
	kill -TERM "$LAB_PROBE_PID" 2>/dev/null
	lab_probe_wait "$1" 30
	jq -e 'select(.kind == "summary")' "$1.events" >/dev/null 2>&1 ||
		lab_soft_fail "probe events log $1.events has no summary"
}

# upg_check_traffic LABEL OUT [unplanned] : the guarantees of an in-service
# upgrade on the probe's report: every established connection kept, no
# reset, no failed new connection, the longest UDP gap (once every
# connection was open) under 50 ms. With "unplanned" (a node died): only
# the established connections and resets are judged.
upg_check_traffic() {
	local label=$1 out=$2 kind=${3:-planned} gap
	echo "  $label traffic: $(lab_probe_summary "$out"), longest gap after ready $(jq -r .udp_max_gap_after_ready_ms "$out") ms" >&2
	local want
	want=$(lab_probe_get "$out" tcp_requested)
	lab_expect "$label tcp connections opened" "$(lab_probe_get "$out" tcp_connections)" -eq "$want"
	lab_expect "$label tcp connections kept" "$(lab_probe_get "$out" tcp_survived)" -eq "$want"
	lab_expect "$label tcp resets" "$(lab_probe_get "$out" tcp_resets)" -eq 0
	[ "$kind" = unplanned ] && return 0
	lab_expect "$label new connections ok" "$(lab_probe_get "$out" new_ok)" -gt 0
	lab_expect "$label new connections failed" "$(lab_probe_get "$out" new_failed)" -eq 0
	gap=$(lab_probe_get "$out" udp_max_gap_after_ready_ms)
	lab_expect "$label longest udp gap (ms)" "${gap%.*}" -lt "$UPG_GAP_LIMIT_MS"
}

# upg_report I OUT : `tandemctl upgrade report --probe-log` printed, and its
# JSON kept in OUT.report.
upg_report() {
	local i=$1 out=$2
	lab_ctl "$i" upgrade report --probe-log "$out.events" 2>&1 | sed 's/^/  | /' >&2
	lab_ctl "$i" --json upgrade report --probe-log "$out.events" >"$out.report" 2>/dev/null
}

# ---------------------------------------------------------------- two groups

VIP2_LAN=192.0.2.2
VIP2_WAN=198.51.100.2
CLIENT2_ADDR=192.0.2.102

# upg_write_config_2groups : after lab_up N (3 or 4, without --snat): the
# configuration with two VIP groups whose members overlap only in group 0,
# so the non-holders of both share no group and upgrade in one batch.
#   group 1 (192.0.2.1, 198.51.100.1): gw1 200, gw2 100
#   group 2 (192.0.2.2, 198.51.100.2): gw3 200, gw4 100 (4 nodes) or
#                                      gw3 200, gw1 100 (3 nodes)
# A second client (CLIENT2_ADDR, default route via group 2's LAN VIP) and
# a host route on the server carry traffic through group 2.
upg_write_config_2groups() {
	local out=$LAB_DIR/tandem.yaml i prio0= g2
	for ((i = 1; i <= LAB_N; i++)); do prio0+="${prio0:+, }gw$i: $(_lab_priority "$i")"; done
	if [ "$LAB_N" -ge 4 ]; then g2="gw3: 200, gw4: 100"; else g2="gw3: 200, gw1: 100"; fi
	{
		echo "# Tandem lab cluster with two VIP groups, written by tests/lab/upgrade_lib.sh"
		echo "cluster:"
		echo "  name: edge1"
		echo "  id: 1"
		echo "  key_file: $LAB_DIR/cluster.key"
		echo "  port: $LAB_PORT"
		echo "  heartbeat_ms: $LAB_HB_MS"
		echo "  dead_after: $LAB_DEAD_AFTER"
		echo "nodes:"
		for ((i = 1; i <= LAB_N; i++)); do
			echo "  - name: gw$i"
			echo "    links: [203.0.113.$((10 + i)), 198.51.100.$((10 + i))]"
		done
		echo "groups:"
		echo "  - id: 0"
		echo "    priority: {$prio0}"
		echo "  - id: 1"
		echo "    priority: {gw1: 200, gw2: 100}"
		echo "    preempt: $LAB_PREEMPT"
		echo "    preempt_delay_s: $LAB_PREEMPT_DELAY_S"
		echo "    vips:"
		echo "      - {address: $VIP_LAN/24, interface: lan0}"
		echo "      - {address: $VIP_WAN/24, interface: wan0}"
		echo "    monitor_interfaces: [lan0, wan0]"
		echo "  - id: 2"
		echo "    priority: {$g2}"
		echo "    preempt: $LAB_PREEMPT"
		echo "    preempt_delay_s: $LAB_PREEMPT_DELAY_S"
		echo "    vips:"
		echo "      - {address: $VIP2_LAN/24, interface: lan0}"
		echo "      - {address: $VIP2_WAN/24, interface: wan0}"
		echo "    monitor_interfaces: [lan0, wan0]"
		echo "sessions:"
		echo "  sync: $LAB_SESSIONS_SYNC"
		echo "upgrade:"
		echo "  trusted_keys: $LAB_DIR/trusted.d"
	} >"$out"
	upg_config_settings "$out"
	ip netns add "${P}client2" || lab_fail "cannot create namespace ${P}client2"
	ip -n "${P}client2" link set lo up
	_lab_veth client2 eth0 br-lan cl2 "$CLIENT2_ADDR/24" || lab_fail "client2 link"
	ip -n "${P}client2" route add default via $VIP2_LAN || lab_fail "client2 route"
	ip -n "${P}server" route add "$CLIENT2_ADDR/32" via $VIP2_WAN || lab_fail "server route to client2"
}

# upg_probe2_start OUT ARGS... : a probe through group 2 (from client2),
# in the background; waits until it is ready. Its PID: UPG_PROBE2_PID.
upg_probe2_start() {
	local out=$1
	shift
	rm -f "$out" "$out.ready" "$out.events"
	ip netns exec "${P}client2" "$LAB_BUILD/tandem-probe" client --target "$SERVER_ADDR" --port $PROBE_PORT \
		--json --ready-file "$out.ready" --events "$out.events" "$@" >"$out" 2>"$out.err" &
	UPG_PROBE2_PID=$!
	LAB_EXTRA_PIDS+=("$UPG_PROBE2_PID")
	lab_wait_until 10 test -e "$out.ready" || { cat "$out.err" >&2; lab_fail "group 2 probe not ready within 10 s"; }
}

# upg_probe2_stop OUT : as upg_probe_stop, for the group 2 probe.
upg_probe2_stop() {
	local k
	kill -TERM "$UPG_PROBE2_PID" 2>/dev/null
	for ((k = 0; k < 300; k++)); do
		kill -0 "$UPG_PROBE2_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$UPG_PROBE2_PID" 2>/dev/null
	wait "$UPG_PROBE2_PID" 2>/dev/null
	jq -e . "$1" >/dev/null 2>&1 || { cat "$1.err" >&2; lab_fail "group 2 probe report $1 is not JSON"; }
}
