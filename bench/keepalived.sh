# keepalived.sh - keepalived as a reference point for bench/failover.sh:
# the same lab, the same VIPs, VRRPv3 on the control link. Sourced after
# tests/lab/lib.sh; expects $hb (advertisement interval in ms).

kd_config() { # I
	local i=$1 adv
	# advert_int in seconds; VRRPv3 carries centiseconds, so 10 ms is its floor.
	adv=$(awk -v ms="$hb" 'BEGIN { printf "%.2f", (ms < 10 ? 10 : ms) / 1000 }')
	cat >"$LAB_DIR/keepalived-gw$i.conf" <<EOF
global_defs {
	router_id gw$i
	vrrp_version 3

	vrrp_garp_master_delay 0
	script_user root
	enable_script_security
}
vrrp_instance G1 {
	state BACKUP
	interface ctl0
	virtual_router_id 51
	priority $(_lab_priority "$i")
	advert_int $adv
	nopreempt
	virtual_ipaddress {
		$VIP_LAN/24 dev lan0
		$VIP_WAN/24 dev wan0
	}
	track_interface {
		lan0
		wan0
	}
}
EOF
}

kd_start() { # I
	local i=$1
	kd_config "$i"
	# A SIGKILLed keepalived leaves its pid files, and the next one would
	# refuse to start ("daemon is already running").
	rm -f "$LAB_DIR/kd-gw$i.pid" "$LAB_DIR/kd-gw$i.vrrp.pid"
	echo "=== $(date +%T.%3N) bench: start keepalived gw$i" >>"$LAB_DIR/gw$i.log"
	ip netns exec "${P}gw$i" keepalived --dont-fork --log-console --log-detail --vrrp \
		--use-file "$LAB_DIR/keepalived-gw$i.conf" \
		--pid "$LAB_DIR/kd-gw$i.pid" --vrrp_pid "$LAB_DIR/kd-gw$i.vrrp.pid" \
		>>"$LAB_DIR/gw$i.log" 2>&1 &
	LAB_PID[$i]=$!
}

# I: the node dies, as lab_kill_node does it: every process frozen, links
# down (control link first), every process killed. Killed first,
# keepalived's VRRP child is told of its parent's death and sends a
# priority-0 advertisement; with links going down under a live keepalived,
# it sees lan0 go (track_interface), enters FAULT and sends one on ctl0,
# still up. Either would make a death look like a planned handover.
kd_kill() {
	local i=$1 pids
	pids=$(ip netns pids "${P}gw$i")
	# The shell's "Killed" job notice is noise here: stderr off for the block.
	{
		kill -STOP $pids
		ip -n "${P}gw$i" -batch - <<EOF
link set ctl0 down
link set wan0 down
link set lan0 down
EOF
		kill -KILL $pids
		wait "${LAB_PID[$i]}"
	} 2>/dev/null
	LAB_PID[$i]=
}

kd_stop() { # I: SIGTERM, bounded wait, and the VRRP child with it
	local i=$1 pid=${LAB_PID[$1]} k
	kill -TERM "$pid" 2>/dev/null
	for ((k = 0; k < 100; k++)); do
		[ -z "$(ip netns pids "${P}gw$i")" ] && break
		sleep 0.05
	done
	for pid in $(ip netns pids "${P}gw$i"); do kill -KILL "$pid" 2>/dev/null; done
	wait "${LAB_PID[$i]}" 2>/dev/null
	LAB_PID[$i]=
}

