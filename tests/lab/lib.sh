# lib.sh - the Tandem lab: real kernels in network namespaces.
#
# Sourced by tests/lab/test_*.sh, tests/lab/demo.sh and bench/*.sh. Owns the
# lab topology, the tandemd processes started in it and the lab directory
# (configuration, key, state dirs, sockets, logs). Addresses come only from
# the documentation ranges (RFC 5737): 192.0.2.0/24 (LAN), 198.51.100.0/24
# (WAN), 203.0.113.0/24 (control link).
#
#   ${P}client  eth0 192.0.2.100/24, default via VIP 192.0.2.1
#        |
#   ${P}sw: br-lan ---- lan0 192.0.2.(10+i)      \
#           br-wan ---- wan0 198.51.100.(10+i)    }  ${P}gw1 .. ${P}gwN
#           br-ctl ---- ctl0 203.0.113.(10+i)    /
#        |
#   ${P}server  eth0 198.51.100.100/24, default via VIP 198.51.100.1
#
# Links in the configuration: [ctl0, wan0] (link 0 is the dedicated control
# and sync link, link 1 runs over the WAN segment).
#
# Every wait is bounded in time; every process is started by this file,
# recorded by PID and killed by PID in lab_down, which lab_up registers with
# trap EXIT. The namespace prefix is TL_PREFIX (default "tl-"), so two runs
# with different prefixes can share a machine.

P=${TL_PREFIX:-tl-}
case "$P" in
'' | *[!A-Za-z0-9_-]*) echo "lab: TL_PREFIX must be a non-empty [A-Za-z0-9_-] string" >&2; exit 2 ;;
esac
LAB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB_NAME=${LAB_NAME:-$(basename "$0" .sh)}
# A run with another prefix keeps its own directories, so two runs of one
# test can go on side by side.
LAB_OUT=$LAB_REPO/lab-out
[ "$P" = tl- ] || LAB_OUT=$LAB_REPO/lab-out/${P%-}
LAB_DIR=${LAB_DIR:-$LAB_OUT/$LAB_NAME}
LAB_SOCK_DIR= # the sockets' directory: LAB_DIR unless its path is too long
LAB_BUILD=${LAB_BUILD:-}
LAB_N=0
LAB_HB_MS=100
LAB_DEAD_AFTER=3
LAB_PREEMPT=true
LAB_PREEMPT_DELAY_S=0
LAB_PORT=7400
LAB_STRICT_CT=${TL_STRICT_CT:-0}
LAB_SNAT=0             # --snat: source NAT of the LAN to the WAN VIP
LAB_SESSIONS_SYNC=true # --sessions-sync true|false (sessions.sync)
LAB_FAILS=0
LAB_UP=0
declare -a LAB_PID=()       # tandemd PID per node index
declare -a LAB_EXTRA_PIDS=() # probes and other helpers
LAB_PROBE_PID=
LAB_PROBE_T0=      # wall clock (ms) when the background probe was launched
LAB_PROBE_EVENT_MS= # when the event under test happened, ms after LAB_PROBE_T0
LAB_PROBE_WINDOW_MS=2000 # how long after it the event's gap may start
LAB_SERVER_PID=

VIP_LAN=192.0.2.1
VIP_WAN=198.51.100.1
CLIENT_ADDR=192.0.2.100
SERVER_ADDR=198.51.100.100
PROBE_PORT=7000

# ---------------------------------------------------------------- output

lab_log() { printf '%s lab: %s\n' "$(date +%H:%M:%S.%3N)" "$*" >&2; }

# Last lines of every node's log, for a failure report.
lab_log_tails() {
	local n=${1:-25} i
	for ((i = 1; i <= LAB_N; i++)); do
		[ -f "$LAB_DIR/gw$i.log" ] || continue
		echo "----- last $n lines of $LAB_DIR/gw$i.log" >&2
		tail -n "$n" "$LAB_DIR/gw$i.log" >&2
	done
}

# A check that must hold for the test to go on: report and exit.
lab_fail() {
	echo "FAIL: $*" >&2
	lab_log_tails 40
	exit 1
}

# Measured checks report, remember a failure and go on, so one run shows
# every figure; lab_finish exits non-zero if any failed.
lab_pass() { printf '  ok    %s\n' "$*" >&2; }
lab_soft_fail() {
	printf '  FAIL  %s\n' "$*" >&2
	LAB_FAILS=$((LAB_FAILS + 1))
}
# lab_expect NAME ACTUAL OP LIMIT  (OP: -eq -ne -lt -le -gt -ge, or == / != for strings)
lab_expect() {
	local name=$1 actual=$2 op=$3 limit=$4 ok=1
	case "$op" in
	==) [ "$actual" == "$limit" ] || ok=0 ;;
	!=) [ "$actual" != "$limit" ] || ok=0 ;;
	*)
		if ! [[ "$actual" =~ ^-?[0-9]+$ ]]; then ok=0
		elif ! [ "$actual" "$op" "$limit" ]; then ok=0; fi ;;
	esac
	if [ $ok = 1 ]; then
		lab_pass "$name: $actual (want $op $limit)"
	else
		lab_soft_fail "$name: $actual (want $op $limit)"
		lab_log_tails 15
	fi
	[ $ok = 1 ]
}

lab_finish() {
	if [ "$LAB_FAILS" -gt 0 ]; then
		echo "$LAB_NAME: $LAB_FAILS check(s) failed" >&2
		exit 1
	fi
	echo "$LAB_NAME: all checks passed" >&2
	exit 0
}

# ---------------------------------------------------------------- time

lab_now_ms() { date +%s%3N; }

# lab_wait_until TIMEOUT_S COMMAND... : poll every 50 ms until the command
# succeeds; returns 1 when the time is up.
lab_wait_until() {
	local timeout_s=$1 deadline
	shift
	deadline=$(($(lab_now_ms) + timeout_s * 1000))
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "$(lab_now_ms)" -ge "$deadline" ] && return 1
		sleep 0.05
	done
}

# ---------------------------------------------------------------- topology

lab_ns() { echo "${P}$1"; } # lab_ns gw1 -> tl-gw1
lab_nsexec() {
	local ns=$1
	shift
	ip netns exec "${P}$ns" "$@"
}

_lab_veth() { # NS IFNAME BRIDGE SWPORT ADDR/LEN
	local ns=$1 ifn=$2 br=$3 swp=$4 addr=$5
	ip -n "${P}sw" link add "$swp" type veth peer name "$ifn" netns "${P}$ns" || return 1
	ip -n "${P}sw" link set "$swp" master "$br" up || return 1
	ip -n "${P}$ns" addr add "$addr" dev "$ifn" || return 1
	ip -n "${P}$ns" link set "$ifn" up
}

_lab_priority() { # node index -> priority: 200, 100, 50, 25, ... (>= 1)
	local p=$((200 >> ($1 - 1)))
	[ $p -lt 1 ] && p=1
	echo $p
}

_lab_gw_nft() {
	lab_nsexec "gw$1" nft -f - <<'EOF'
table inet tandem-lab {
	counter forwarded {}
	chain forward {
		type filter hook forward priority filter; policy drop;
		counter name "forwarded"
		ct state established,related accept
		ct state invalid drop
		meta l4proto { icmp, ipv6-icmp } accept
		iifname "lan0" oifname "wan0" accept
	}
	# Empty: tests add drops here to cut the control traffic of one link.
	chain input {
		type filter hook input priority filter; policy accept;
	}
}
EOF
	if [ "$LAB_SNAT" = 1 ]; then
		# A NAT gateway: the LAN leaves as the WAN VIP, so the server
		# answers the VIP and only the node holding it can translate
		# back, with the binding it has (or was synced).
		lab_nsexec "gw$1" nft -f - <<EOF
table ip tandem-lab-nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan0" ip saddr 192.0.2.0/24 snat to $VIP_WAN
	}
}
EOF
	fi
}

# Write the cluster configuration for LAB_N nodes to $LAB_DIR/tandem.yaml
# (or to $1 with the key file $2).
lab_write_config() {
	local out=${1:-$LAB_DIR/tandem.yaml} key=${2:-$LAB_DIR/cluster.key} i prio=
	{
		echo "# Tandem lab cluster, written by tests/lab/lib.sh"
		echo "cluster:"
		echo "  name: edge1"
		echo "  id: 1"
		echo "  key_file: $key"
		echo "  port: $LAB_PORT"
		echo "  heartbeat_ms: $LAB_HB_MS"
		echo "  dead_after: $LAB_DEAD_AFTER"
		echo "nodes:"
		for ((i = 1; i <= LAB_N; i++)); do
			echo "  - name: gw$i"
			echo "    links: [203.0.113.$((10 + i)), 198.51.100.$((10 + i))]"
			prio+="${prio:+, }gw$i: $(_lab_priority $i)"
		done
		echo "groups:"
		echo "  - id: 0"
		echo "    priority: {$prio}"
		echo "  - id: 1"
		echo "    priority: {$prio}"
		echo "    preempt: $LAB_PREEMPT"
		echo "    preempt_delay_s: $LAB_PREEMPT_DELAY_S"
		echo "    vips:"
		echo "      - {address: $VIP_LAN/24, interface: lan0}"
		echo "      - {address: $VIP_WAN/24, interface: wan0}"
		echo "    monitor_interfaces: [lan0, wan0]"
		echo "sessions:"
		echo "  sync: $LAB_SESSIONS_SYNC"
		echo "upgrade:"
		echo "  trusted_keys: $LAB_DIR/trusted.d"
	} >"$out"
}

# lab_up N [--heartbeat-ms MS] [--dead-after K] [--preempt true|false]
#          [--preempt-delay-s S] [--port PORT] [--strict-conntrack]
#          [--snat] [--sessions-sync true|false]
# --strict-conntrack (or TL_STRICT_CT=1) sets nf_conntrack_tcp_loose=0 on the
# gateways: a TCP connection the new primary's conntrack has never seen is
# then invalid and dropped, so it survives a failover only if session sync
# put it there. By default the kernel picks such connections up mid-stream
# (the distribution default), which the forward policy then accepts.
# Builds the topology with N gateways and writes the configuration. Needs
# LAB_BUILD (the build directory) to be set, or $1 of the test passed to
# lab_init.
lab_up() {
	local n=$1 i
	shift
	[[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 32 ] || lab_fail "lab_up: bad node count '$n'"
	while [ $# -gt 0 ]; do
		case "$1" in
		--heartbeat-ms) LAB_HB_MS=$2; shift 2 ;;
		--dead-after) LAB_DEAD_AFTER=$2; shift 2 ;;
		--preempt) LAB_PREEMPT=$2; shift 2 ;;
		--preempt-delay-s) LAB_PREEMPT_DELAY_S=$2; shift 2 ;;
		--port) LAB_PORT=$2; shift 2 ;;
		--strict-conntrack) LAB_STRICT_CT=1; shift ;;
		--snat) LAB_SNAT=1; shift ;;
		--sessions-sync) LAB_SESSIONS_SYNC=$2; shift 2 ;;
		*) lab_fail "lab_up: unknown option $1" ;;
		esac
	done
	[ "$(id -u)" = 0 ] || lab_fail "the lab needs root (network namespaces)"
	for t in ip nft jq timeout; do
		command -v $t >/dev/null || lab_fail "lab: $t not found (run scripts/deps.sh)"
	done
	LAB_N=$n
	trap '_lab_exit' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	LAB_UP=1
	_lab_del_namespaces # leftovers of an earlier run with the same prefix
	rm -rf "$LAB_DIR"
	mkdir -p "$LAB_DIR/trusted.d" || lab_fail "cannot create $LAB_DIR"
	# A Unix socket path holds at most 107 bytes; a deep checkout gets its
	# sockets in a short temporary directory instead.
	LAB_SOCK_DIR=$LAB_DIR
	if [ ${#LAB_DIR} -gt 90 ]; then
		LAB_SOCK_DIR=$(mktemp -d /tmp/tandem-lab.XXXXXX) || lab_fail "mktemp"
	fi
	head -c 32 /dev/urandom >"$LAB_DIR/cluster.key"
	chmod 600 "$LAB_DIR/cluster.key"

	ip netns add "${P}sw" || lab_fail "cannot create namespace ${P}sw"
	ip -n "${P}sw" link set lo up
	for br in br-lan br-wan br-ctl; do
		ip -n "${P}sw" link add $br type bridge stp_state 0 forward_delay 0 mcast_snooping 0 ||
			lab_fail "cannot create bridge $br"
		ip -n "${P}sw" link set $br up
	done
	# Bridged frames must not pass through the switch's netfilter.
	lab_nsexec sw sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true

	for ns in client server; do
		ip netns add "${P}$ns" || lab_fail "cannot create namespace ${P}$ns"
		ip -n "${P}$ns" link set lo up
	done
	_lab_veth client eth0 br-lan cl0 "$CLIENT_ADDR/24" || lab_fail "client link"
	ip -n "${P}client" route add default via $VIP_LAN || lab_fail "client route"
	_lab_veth server eth0 br-wan sv0 "$SERVER_ADDR/24" || lab_fail "server link"
	ip -n "${P}server" route add default via $VIP_WAN || lab_fail "server route"

	for ((i = 1; i <= n; i++)); do
		ip netns add "${P}gw$i" || lab_fail "cannot create namespace ${P}gw$i"
		ip -n "${P}gw$i" link set lo up
		lab_nsexec "gw$i" sysctl -qw net.ipv4.ip_forward=1 \
			net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 ||
			lab_fail "gw$i sysctl"
		_lab_veth "gw$i" lan0 br-lan "g${i}l" "192.0.2.$((10 + i))/24" || lab_fail "gw$i lan0"
		_lab_veth "gw$i" wan0 br-wan "g${i}w" "198.51.100.$((10 + i))/24" || lab_fail "gw$i wan0"
		_lab_veth "gw$i" ctl0 br-ctl "g${i}c" "203.0.113.$((10 + i))/24" || lab_fail "gw$i ctl0"
		for ifn in lan0 wan0 ctl0; do
			lab_nsexec "gw$i" sysctl -qw "net.ipv4.conf.$ifn.rp_filter=0"
		done
		_lab_gw_nft "$i" || lab_fail "gw$i nftables"
		# The ruleset's ct expressions have loaded conntrack by now.
		lab_nsexec "gw$i" sysctl -qw net.netfilter.nf_conntrack_tcp_loose=$((1 - LAB_STRICT_CT)) ||
			lab_fail "gw$i nf_conntrack_tcp_loose"
	done
	lab_write_config
	lab_log "up: $n gateways, heartbeat ${LAB_HB_MS} ms x ${LAB_DEAD_AFTER}, preempt $LAB_PREEMPT (delay ${LAB_PREEMPT_DELAY_S} s), conntrack $([ "$LAB_STRICT_CT" = 1 ] && echo strict || echo loose)$([ "$LAB_SNAT" = 1 ] && echo ", snat"), sessions sync $LAB_SESSIONS_SYNC, dir $LAB_DIR"
}

# ---------------------------------------------------------------- teardown

_lab_kill_pid() { # PID: SIGTERM, up to 2 s, then SIGKILL
	local pid=$1 k
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((k = 0; k < 40; k++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

_lab_del_namespaces() {
	local ns pid
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${P}"); do
		# Anything still running in our namespace was started by us.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null
		done
		ip netns del "$ns" 2>/dev/null
	done
}

# lab_down : everything started goes away. A daemon must exit 0 on SIGTERM
# (a sanitizer report at exit makes it non-zero): returns the number that
# did not, with their logs' sanitizer lines printed.
lab_down() {
	local i pid st bad=0 k
	for pid in "${LAB_EXTRA_PIDS[@]}"; do _lab_kill_pid "$pid"; done
	for ((i = 1; i <= LAB_N; i++)); do
		pid=${LAB_PID[$i]:-}
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || continue
		kill -TERM "$pid" 2>/dev/null
		for ((k = 0; k < 100; k++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -KILL -- "-$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		st=$?
		if [ "$st" != 0 ]; then
			echo "FAIL: gw$i's tandemd exited with status $st on SIGTERM" >&2
			grep -E -A5 'Sanitizer|runtime error' "$LAB_DIR/gw$i.log" 2>/dev/null | head -40 >&2
			bad=$((bad + 1))
		fi
	done
	LAB_EXTRA_PIDS=()
	LAB_PID=()
	_lab_del_namespaces
	return $bad
}

_lab_exit() {
	local rc=$?
	trap - EXIT INT TERM
	if [ "$LAB_UP" = 1 ] && ! lab_down && [ "$rc" = 0 ]; then
		rc=1
	fi
	case "$LAB_SOCK_DIR" in /tmp/tandem-lab.*) rm -rf "$LAB_SOCK_DIR" ;; esac
	if [ "$rc" = 0 ] && [ "${TL_KEEP:-0}" != 1 ]; then
		rm -rf "$LAB_DIR"
	elif [ "$rc" != 0 ]; then
		echo "lab: logs and configuration kept in $LAB_DIR" >&2
	fi
	exit "$rc"
}

# ---------------------------------------------------------------- nodes

lab_sock() { echo "${LAB_SOCK_DIR:-$LAB_DIR}/gw$1.sock"; }

# lab_ctl I ARGS... : tandemctl against node I (bounded to 10 s).
lab_ctl() {
	local i=$1
	shift
	timeout 10 "$LAB_BUILD/tandemctl" --socket "$(lab_sock "$i")" "$@"
}

lab_status() { lab_ctl "$1" --json status; }

lab_node_alive() { [ -n "${LAB_PID[$1]:-}" ] && kill -0 "${LAB_PID[$1]}" 2>/dev/null; }

# lab_start_node I [--config FILE] [--wait 0|1] [extra tandemd args...]
# Starts tandemd in gwI; by default waits (10 s at most) until its control
# socket answers. tandemd is a supervisor and its worker (src/io/supervise.h):
# setsid makes the pair (and the hooks they start) one process group whose
# id is LAB_PID[I], so a power cut (lab_kill_node) reaches all of them.
lab_start_node() {
	local i=$1 cfg=$LAB_DIR/tandem.yaml wait=1
	shift
	while [ $# -gt 0 ]; do
		case "$1" in
		--config) cfg=$2; shift 2 ;;
		--wait) wait=$2; shift 2 ;;
		*) break ;;
		esac
	done
	lab_node_alive "$i" && lab_fail "gw$i is already running (pid ${LAB_PID[$i]})"
	mkdir -p "$LAB_DIR/gw$i.state"
	echo "=== $(date +%T.%3N) lab: start gw$i" >>"$LAB_DIR/gw$i.log"
	ip netns exec "${P}gw$i" setsid "$LAB_BUILD/tandemd" --config "$cfg" --node "gw$i" \
		--state-dir "$LAB_DIR/gw$i.state" --socket "$(lab_sock "$i")" "$@" \
		>>"$LAB_DIR/gw$i.log" 2>&1 &
	LAB_PID[$i]=$!
	[ "$wait" = 1 ] || return 0
	local deadline=$(($(lab_now_ms) + 10000))
	while ! lab_ctl "$i" status >/dev/null 2>&1; do
		lab_node_alive "$i" || lab_fail "gw$i exited during start-up"
		[ "$(lab_now_ms)" -ge "$deadline" ] && lab_fail "gw$i control socket did not answer within 10 s"
		sleep 0.05
	done
}

# lab_stop_node I : SIGTERM, the clean way out (the node gives up its groups).
lab_stop_node() {
	local i=$1 pid=${LAB_PID[$1]:-} k
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((k = 0; k < 100; k++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null; then
		lab_soft_fail "gw$i did not exit within 5 s of SIGTERM; killing it"
		kill -KILL -- "-$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	local st=$?
	[ "$st" = 0 ] || lab_soft_fail "gw$i's tandemd exited with status $st on SIGTERM"
	LAB_PID[$i]=
	echo "=== $(date +%T.%3N) lab: stopped gw$i" >>"$LAB_DIR/gw$i.log"
}

# lab_kill_node I : the node dies, like a power cut: its daemon is frozen
# (SIGSTOP, so it cannot react to what follows), its three links go down,
# control links first, then the daemon is SIGKILLed ("the daemon": its
# process group, see lab_start_node: supervisor, worker, hooks). Nothing of
# the node (a last message to the peers, ARP answers, forwarding) reaches the
# segments after the first instant. Taking the links down with the daemon
# running would let it see lan0 go down and hand its groups over cleanly on
# a control link still up: a planned failover, not a death.
lab_kill_node() {
	local i=$1 pid=${LAB_PID[$1]:-}
	# The shell's "Killed" job notice is noise here: stderr off for the block.
	{
		[ -n "$pid" ] && kill -STOP -- "-$pid"
		ip -n "${P}gw$i" -batch - <<EOF
link set ctl0 down
link set wan0 down
link set lan0 down
EOF
		[ -n "$pid" ] && kill -KILL -- "-$pid"
		[ -n "$pid" ] && wait "$pid"
	} 2>/dev/null
	LAB_PID[$i]=
	echo "=== $(date +%T.%3N) lab: killed gw$i (SIGSTOP, links down, SIGKILL)" >>"$LAB_DIR/gw$i.log"
}

# lab_revive_node I : after lab_kill_node, the machine comes back: links up
# (the addresses the killed daemon left behind are still configured, as
# after a daemon crash), then the daemon starts on the same state dir.
lab_revive_node() {
	local i=$1
	shift
	ip -n "${P}gw$i" link set lan0 up
	ip -n "${P}gw$i" link set wan0 up
	ip -n "${P}gw$i" link set ctl0 up
	lab_start_node "$i" "$@"
}

# lab_group_field I G FIELD : one field of group G in node I's status.
lab_group_field() {
	lab_status "$1" 2>/dev/null | jq -r --argjson g "$2" --arg f "$3" \
		'.groups[] | select(.id == $g) | if has($f) then .[$f] else empty end'
}
lab_group_state() { lab_group_field "$1" "$2" state; }
lab_group_is() { [ "$(lab_group_state "$1" "$2")" = "$3" ]; }
# lab_wait_ready NODE GROUP TIMEOUT_S: NODE has finished starting in GROUP
# (it reports secondary or primary) and, three heartbeats later, its peers
# have heard so and will accept it as a failover target.
lab_wait_ready() {
	lab_wait_until "$3" _lab_group_settled "$1" "$2" || return 1
	sleep "$(awk -v ms="$LAB_HB_MS" 'BEGIN { printf "%.3f", 3 * ms / 1000 }')"
}
_lab_group_settled() {
	case "$(lab_group_state "$1" "$2")" in primary|secondary) return 0 ;; esac
	return 1
}

# lab_peer_state I NODE : NODE's state (alive/lost) as node I sees it.
lab_peer_state() {
	lab_status "$1" 2>/dev/null | jq -r --arg n "$2" '.peers[] | select(.node == $n) | .state'
}
lab_peer_is() { [ "$(lab_peer_state "$1" "$2")" = "$3" ]; }
# lab_peer_link_state I NODE LINK_INDEX : up/down as node I sees it.
lab_peer_link_state() {
	lab_status "$1" 2>/dev/null | jq -r --arg n "$2" --argjson l "$3" \
		'.peers[] | select(.node == $n) | .links[] | select(.index == $l) | .state'
}

lab_alarms() { lab_status "$1" 2>/dev/null | jq -c '.alarms'; }
lab_no_alarms() { [ "$(lab_status "$1" 2>/dev/null | jq '.alarms | length')" = 0 ]; }

# _lab_primary_agreed G NODE_INDEX: NODE is primary of G and every other
# running node names it as the primary (and is not primary itself).
_lab_primary_agreed() {
	local g=$1 want=$2 j st pr
	for ((j = 1; j <= LAB_N; j++)); do
		lab_node_alive "$j" || continue
		read -r st pr < <(lab_status "$j" 2>/dev/null |
			jq -r --argjson g "$g" '.groups[] | select(.id == $g) | "\(.state) \(.primary // "")"')
		if [ "$j" = "$want" ]; then
			[ "$st" = primary ] || return 1
		else
			[ "$st" != primary ] && [ "$pr" = "gw$want" ] || return 1
		fi
	done
	return 0
}

# lab_wait_primary G NODE [TIMEOUT_S=10] : NODE as "gwI" or "I". Prints the
# time it took (ms) on success; on timeout prints every node's view.
lab_wait_primary() {
	local g=$1 node=${2#gw} timeout_s=${3:-10} t0 j
	t0=$(lab_now_ms)
	if lab_wait_until "$timeout_s" _lab_primary_agreed "$g" "$node"; then
		echo $(($(lab_now_ms) - t0))
		return 0
	fi
	lab_log "group $g: gw$node not agreed primary within ${timeout_s} s; views:"
	for ((j = 1; j <= LAB_N; j++)); do
		lab_node_alive "$j" || { echo "  gw$j: not running" >&2; continue; }
		echo "  gw$j: $(lab_status "$j" 2>&1 | jq -c --argjson g "$g" \
			'.groups[] | select(.id == $g)' 2>&1)" >&2
	done
	return 1
}

# lab_vip_holders [ADDR=192.0.2.1] : the gateways holding ADDR, one a line
# (e.g. "gw2"); a gateway whose interface is down still counts.
lab_vip_holders() {
	local addr=${1:-$VIP_LAN} i
	for ((i = 1; i <= LAB_N; i++)); do
		# No grep -q on a pipe: under pipefail, ip dying of SIGPIPE when grep
		# quits early would turn a match into a miss.
		ip -n "${P}gw$i" -4 -o addr show 2>/dev/null | grep -c " inet $addr/" >/dev/null && echo "gw$i"
	done
	return 0
}
# lab_vip_holders_live [ADDR] : the same, counting only interfaces that are
# up (a dead node keeps its addresses on its downed links).
lab_vip_holders_live() {
	local addr=${1:-$VIP_LAN} i
	for ((i = 1; i <= LAB_N; i++)); do
		ip -n "${P}gw$i" -4 -o addr show up 2>/dev/null | grep -c " inet $addr/" >/dev/null && echo "gw$i"
	done
	return 0
}
# Both VIPs on NODE (others may hold them too, e.g. a dead node's leftovers).
lab_vips_on() {
	lab_vip_holders $VIP_LAN | grep -cx "$1" >/dev/null && lab_vip_holders $VIP_WAN | grep -cx "$1" >/dev/null
}
# Both VIPs on exactly NODE, and on no other gateway.
lab_vips_only_on() {
	local node=$1
	[ "$(lab_vip_holders $VIP_LAN | tr '\n' ' ')" = "$node " ] &&
		[ "$(lab_vip_holders $VIP_WAN | tr '\n' ' ')" = "$node " ]
}

# lab_fwd_packets I : packets gwI's forward chain has seen (all verdicts),
# to tell which gateway really carries the traffic: a VIP can move while the
# neighbours' ARP caches still point at the old gateway.
lab_fwd_packets() {
	lab_nsexec "gw$1" nft -j list counter inet tandem-lab forwarded 2>/dev/null |
		jq -r '[.nftables[] | select(.counter) | .counter.packets][0] // 0'
}

# lab_forwarders [SECONDS=1] : the gateways that forwarded more than 50
# packets during the interval (traffic must be running), space-separated.
lab_forwarders() {
	local secs=${1:-1} i out=
	local -a before=()
	for ((i = 1; i <= LAB_N; i++)); do before[$i]=$(lab_fwd_packets "$i"); done
	sleep "$secs"
	for ((i = 1; i <= LAB_N; i++)); do
		[ $(($(lab_fwd_packets "$i") - ${before[$i]:-0})) -gt 50 ] && out+="${out:+ }gw$i"
	done
	echo "$out"
}

# ---------------------------------------------------------------- events

# lab_group_events I : number of group.state events in node I's log.
lab_group_events() {
	grep -c 'event=group.state' "$LAB_DIR/gw$1.log" 2>/dev/null || true
}

# ---------------------------------------------------------------- traffic

# lab_probe_server : tandem-probe server in the server namespace (TCP and
# UDP on port 7000); waits until it listens.
lab_probe_server() {
	ip netns exec "${P}server" "$LAB_BUILD/tandem-probe" server --bind "$SERVER_ADDR" \
		--port $PROBE_PORT >>"$LAB_DIR/probe-server.log" 2>&1 &
	LAB_SERVER_PID=$!
	LAB_EXTRA_PIDS+=("$LAB_SERVER_PID")
	lab_wait_until 5 sh -c "ip netns exec ${P}server ss -Hltn 'sport = :$PROBE_PORT' | grep -c LISTEN >/dev/null" ||
		lab_fail "probe server did not listen within 5 s (see $LAB_DIR/probe-server.log)"
}

# lab_probe_client ARGS... : a foreground probe client in the client
# namespace, JSON report on stdout.
lab_probe_client() {
	ip netns exec "${P}client" "$LAB_BUILD/tandem-probe" client --target "$SERVER_ADDR" \
		--port $PROBE_PORT --json "$@"
}

# lab_probe_start OUT_JSON ARGS... : the probe client in the background;
# returns once it reports ready (all TCP connections open), 10 s at most.
lab_probe_start() {
	local out=$1
	shift
	rm -f "$out" "$out.ready"
	LAB_PROBE_EVENT_MS=
	LAB_PROBE_WINDOW_MS=2000
	LAB_PROBE_T0=$(lab_now_ms)
	lab_probe_client --ready-file "$out.ready" "$@" >"$out" 2>"$out.err" &
	LAB_PROBE_PID=$!
	LAB_EXTRA_PIDS+=("$LAB_PROBE_PID")
	lab_wait_until 10 test -e "$out.ready" ||
		{ cat "$out.err" >&2; lab_fail "probe client not ready within 10 s"; }
}

# lab_probe_wait OUT_JSON [TIMEOUT_S=60] : wait for the background probe and
# check its report is JSON.
lab_probe_wait() {
	local out=$1 timeout_s=${2:-60} deadline
	deadline=$(($(lab_now_ms) + timeout_s * 1000))
	while kill -0 "$LAB_PROBE_PID" 2>/dev/null; do
		if [ "$(lab_now_ms)" -ge "$deadline" ]; then
			kill -KILL "$LAB_PROBE_PID" 2>/dev/null
			lab_fail "probe client still running after ${timeout_s} s"
		fi
		sleep 0.1
	done
	wait "$LAB_PROBE_PID" 2>/dev/null
	jq -e . "$out" >/dev/null 2>&1 || { cat "$out.err" >&2; lab_fail "probe report $out is not JSON"; }
}

# lab_probe_get OUT_JSON FIELD
lab_probe_get() { jq -r ".$2 // \"missing\"" "$1"; }

# The probe load every failover check runs: 1 kHz UDP, 20 long-lived TCP
# connections each exchanging data every 200 ms, a new connection every
# 50 ms; every UDP gap over 2 ms is listed with its start, so the gap of the
# event under test can be told from a stall of the machine elsewhere in the
# run (2 cores shared with builds can hold packets 20-50 ms, with no loss).
PROBE_GAP_LIST_MS=2
PROBE_LOAD=(--udp-hz 1000 --tcp 20 --tcp-interval-ms 200 --new-every-ms 50 --gaps-over-ms $PROBE_GAP_LIST_MS)

# lab_probe_mark [WINDOW_MS=2000] : the event under test happens now (call
# it just before the failover command, the kill, the link change); its
# effect on traffic may start up to WINDOW_MS later (a preempt delay).
lab_probe_mark() {
	LAB_PROBE_EVENT_MS=$(($(lab_now_ms) - LAB_PROBE_T0))
	LAB_PROBE_WINDOW_MS=${1:-2000}
}

# lab_probe_mark_at WALL_MS [WINDOW_MS=1000] : the event happened at this
# wall-clock time (e.g. from lab_log_time_primary), for events that come on
# their own after a delay (preemption).
lab_probe_mark_at() {
	LAB_PROBE_EVENT_MS=$(($1 - LAB_PROBE_T0))
	LAB_PROBE_WINDOW_MS=${2:-1000}
}

# lab_log_time_primary I G : wall-clock ms of gwI's last log line saying it
# became primary of group G (the daemon logs ts= in UTC with ms).
lab_log_time_primary() {
	local ts
	ts=$(grep "event=group.state " "$LAB_DIR/gw$1.log" 2>/dev/null |
		grep " group=$2 " | grep " to=primary" | tail -n 1 | sed -n 's/^ts=\([^ ]*\) .*/\1/p')
	[ -n "$ts" ] && date -d "$ts" +%s%3N
}

# lab_probe_event_gap JSON [WINDOW_MS] : the longest UDP gap that overlaps
# [event - 100 ms, event + WINDOW_MS (default: the mark's)] (the launch time is a few ms
# off the probe's own t0, hence the margin). Prints PROBE_GAP_LIST_MS when no
# listed gap falls there (the gap was at most that). Without a mark: the
# run's udp_max_gap_ms.
lab_probe_event_gap() {
	local json=$1 win=${2:-$LAB_PROBE_WINDOW_MS}
	if [ -z "$LAB_PROBE_EVENT_MS" ]; then
		jq -r '.udp_max_gap_ms' "$json"
		return
	fi
	# A list that overflowed may miss the event's gap: then the whole run's
	# longest gap is the only safe answer.
	jq -r --argjson e "$LAB_PROBE_EVENT_MS" --argjson w "$win" --argjson floor $PROBE_GAP_LIST_MS '
		if (.gaps_count // 0) > ((.gaps // []) | length) then .udp_max_gap_ms
		else [(.gaps // [])[] | select(.start_ms + .gap_ms >= $e - 100 and .start_ms <= $e + $w) | .gap_ms]
		     | max // $floor end' "$json"
}

# lab_check_probe LABEL JSON GAP_LIMIT_MS [new]: the guarantees of a
# failover on a probe report: the event's gap under the limit, every TCP
# connection alive, no reset; with "new", no failed new connection either.
lab_check_probe() {
	local label=$1 json=$2 limit=$3 new=${4:-} gap
	echo "  $label: $(lab_probe_summary "$json")" >&2
	gap=$(lab_probe_event_gap "$json")
	if [ -n "$LAB_PROBE_EVENT_MS" ]; then
		echo "  $label: gap at the event (t=${LAB_PROBE_EVENT_MS} ms): $gap ms; longest of the run: $(jq -r '"\(.udp_max_gap_ms) ms at t=\(.udp_max_gap_start_ms) ms"' "$json")" >&2
	fi
	lab_expect "$label udp gap (ms)" "${gap%.*}" -lt "$limit"
	lab_expect "$label tcp_connections" "$(lab_probe_get "$json" tcp_connections)" -gt 0
	lab_expect "$label tcp_survived" "$(lab_probe_get "$json" tcp_survived)" -eq "$(lab_probe_get "$json" tcp_connections)"
	lab_expect "$label tcp_resets" "$(lab_probe_get "$json" tcp_resets)" -eq 0
	if [ "$new" = new ]; then
		lab_expect "$label new_ok" "$(lab_probe_get "$json" new_ok)" -gt 0
		lab_expect "$label new_failed" "$(lab_probe_get "$json" new_failed)" -eq 0
	fi
}

# A one-line summary of a probe report.
lab_probe_summary() {
	jq -r '"udp_max_gap_ms=\(.udp_max_gap_ms) udp_lost=\(.udp_lost) tcp=\(.tcp_survived)/\(.tcp_connections) survived, resets=\(.tcp_resets) failed=\(.tcp_failed) new=\(.new_ok)/\(.new_attempted) ok (\(.new_failed) failed)"' "$1"
}

# ---------------------------------------------------------------- entry

# lab_init BUILD_DIR : resolve the programs the test needs.
lab_init() {
	local b=${1:-}
	[ -n "$b" ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
	LAB_BUILD=$(cd "$b" 2>/dev/null && pwd) || { echo "lab: no build dir $b" >&2; exit 2; }
	shift
	local prog
	for prog in "$@"; do
		[ -x "$LAB_BUILD/$prog" ] || { echo "lab: $LAB_BUILD/$prog not built" >&2; exit 1; }
	done
}
