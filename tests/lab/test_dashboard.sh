#!/usr/bin/env bash
# test_dashboard.sh BUILD_DIR - the web dashboard (www/, docs/api.md) in a
# real browser against a two-node lab under traffic (issue 6). gw1 serves
# the HTTP API on 127.0.0.1:8080 inside its namespace, with a token file
# (mode 0600), an images directory holding a signed image of the next
# version (built as test_upgrade.sh builds it) and the traffic probe's
# status file; gw2 runs the cluster configuration alone (api is a node's
# own setting). tests/browser/dashboard.mjs drives Debian's Chromium
# (playwright-core, node inside gw1's namespace) through:
#   (1) the overview shows gw1 primary of group 1;
#   (2) a failover of group 1 to gw2 clicked in the page (a wrong token
#       first) shows on the page and in tandemctl status; clearing the
#       manual flag by a click brings the group back;
#   (3) an upgrade to the next version chosen, planned and started on the
#       upgrade page runs to completed, its steps seen running and done,
#       both nodes on the new version on the page and in tandemctl;
#   (4) an events page opened first shows the failover's and the
#       upgrade's events as they happen.
# Screenshots of each state: lab-out/dashboard/*.png. The traffic through
# the cluster is checked too: no established connection lost, no reset.
# Bounded: every wait has a time limit and the browser run has one
# (DASH_LIMIT_MS); node_modules is installed (npm ci) only when missing or
# older than package-lock.json.
set -uo pipefail
TL_PREFIX=${TL_PREFIX:-td-}
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/upgrade_lib.sh"
lab_init "${1:-}" tandemd tandemctl tandem-probe
T_START=$(lab_now_ms)
BROWSER_DIR=$LAB_REPO/tests/browser
SHOTS=$LAB_REPO/lab-out/dashboard
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
API_PORT=8080
for t in node npm; do
	command -v $t >/dev/null || lab_fail "$t not found (run scripts/deps.sh)"
done
[ -x "$CHROMIUM" ] || lab_fail "$CHROMIUM not found (run scripts/deps.sh)"

# npm ci only when node_modules is missing or does not match the lock
# file: npm records what it installed in node_modules/.package-lock.json.
browser_deps() {
	local want have
	want=$(jq -r '.packages["node_modules/playwright-core"].version' "$BROWSER_DIR/package-lock.json")
	have=$(jq -r '.packages["node_modules/playwright-core"].version // "none"' \
		"$BROWSER_DIR/node_modules/.package-lock.json" 2>/dev/null || echo none)
	[ "$want" = "$have" ] && [ -f "$BROWSER_DIR/node_modules/playwright-core/package.json" ] && return 0
	lab_log "installing playwright-core $want into $BROWSER_DIR/node_modules (npm ci)"
	(cd "$BROWSER_DIR" && timeout 120 npm ci --no-audit --no-fund --loglevel=error) >&2 ||
		lab_fail "npm ci in $BROWSER_DIR failed"
}
browser_deps

upg_versions
V0=$UPG_V0 V1=$UPG_V1
# Built before the lab, so a failed build leaves nothing running.
upg_build "$V1" >/dev/null || exit 1
T_LAB=$(lab_now_ms)

lab_up 2 --snat --strict-conntrack
upg_config_settings
upg_images "$V1"

# gw1's own configuration: the cluster's plus its api section.
INCOMING=$LAB_DIR/incoming
PROBE_STATUS=$LAB_DIR/probe-status.json
mkdir -p "$INCOMING"
cp "$LAB_DIR/img-$V1" "$INCOMING/tandem-$V1.img"
(umask 077 && head -c 24 /dev/urandom | base64 >"$LAB_DIR/api.token")
cp "$LAB_DIR/tandem.yaml" "$LAB_DIR/gw1.yaml"
cat >>"$LAB_DIR/gw1.yaml" <<EOF
api:
  http: 127.0.0.1:$API_PORT
  token_file: $LAB_DIR/api.token
  images_dir: $INCOMING
  probe_file: $PROBE_STATUS
EOF
"$LAB_BUILD/tandemd" --check-config --config "$LAB_DIR/gw1.yaml" >/dev/null 2>&1 ||
	lab_fail "gw1's configuration with the api section is refused: $("$LAB_BUILD/tandemd" --check-config --config "$LAB_DIR/gw1.yaml" 2>&1 | head -3)"

# The probe's status file (served as GET /api/probe), when this probe has it.
PROBE_ARGS=()
HAVE_STATUS_FILE=0
if "$LAB_BUILD/tandem-probe" client --help 2>&1 | grep -F -- '--status-file' >/dev/null; then
	HAVE_STATUS_FILE=1
	PROBE_ARGS=(--status-file "$PROBE_STATUS")
else
	lab_log "tandem-probe has no --status-file yet: the probe panel is not checked"
fi

lab_probe_server
lab_start_node 1 --config "$LAB_DIR/gw1.yaml"
lab_start_node 2
upg_wait_pair
api_up() { lab_nsexec gw1 python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$API_PORT/api/cluster', timeout=2)" >/dev/null 2>&1; }
lab_wait_until 10 api_up || lab_fail "gw1's API does not answer on 127.0.0.1:$API_PORT"

# Traffic through the cluster for the whole run: 20 long-lived TCP
# connections, 1 kHz UDP, a new connection every 50 ms.
UPG_LOAD=(--udp-hz 1000 --tcp 20 --tcp-interval-ms 200 --new-every-ms 50
	--connect-timeout-ms 5000 --gaps-over-ms 2 --duration-ms 600000)
TRAFFIC=$LAB_DIR/traffic.json
upg_probe_start "$TRAFFIC" "${PROBE_ARGS[@]}"
[ "$HAVE_STATUS_FILE" = 1 ] && { lab_wait_until 5 test -s "$PROBE_STATUS" || lab_soft_fail "the probe wrote no status file"; }

rm -rf "$SHOTS"
mkdir -p "$SHOTS"
T_BROWSER=$(lab_now_ms)
lab_log "browser: tests/browser/dashboard.mjs in ${P}gw1 against http://127.0.0.1:$API_PORT"
DASH_URL=http://127.0.0.1:$API_PORT DASH_TOKEN_FILE=$LAB_DIR/api.token DASH_OUT=$SHOTS \
	DASH_VERSION=$V1 DASH_PROBE=$HAVE_STATUS_FILE DASH_LIMIT_MS=110000 CHROMIUM=$CHROMIUM \
	TANDEMCTL=$LAB_BUILD/tandemctl DASH_SOCK_GW1=$(lab_sock 1) DASH_SOCK_GW2=$(lab_sock 2) \
	HOME=$LAB_DIR timeout -k 5 120 ip netns exec "${P}gw1" node "$BROWSER_DIR/dashboard.mjs" &
DASH_PID=$!
LAB_EXTRA_PIDS+=("$DASH_PID")
wait "$DASH_PID"
rc=$?
lab_expect "browser checks (tests/browser/dashboard.mjs) exit code" "$rc" -eq 0
BROWSER_MS=$(($(lab_now_ms) - T_BROWSER))

# What the page claimed, from the nodes themselves.
lab_expect "after: both nodes on $V1" "$(upg_versions_of)" == "gw1=$V1 gw2=$V1"
lab_expect "after: upgrade state (gw2)" "$(upg_state 2)" == completed
lab_expect "after: screenshots saved" "$(find "$SHOTS" -name '*.png' -size +1k | wc -l)" -ge 7
upg_probe_stop "$TRAFFIC"
echo "  traffic: $(lab_probe_summary "$TRAFFIC")" >&2
lab_expect "traffic: tcp connections kept" "$(lab_probe_get "$TRAFFIC" tcp_survived)" -eq "$(lab_probe_get "$TRAFFIC" tcp_requested)"
lab_expect "traffic: tcp resets" "$(lab_probe_get "$TRAFFIC" tcp_resets)" -eq 0
echo "  times: build ${T_LAB:+$((T_LAB - T_START))} ms, lab to browser $((T_BROWSER - T_LAB)) ms, browser ${BROWSER_MS} ms, whole $(($(lab_now_ms) - T_START)) ms" >&2
lab_finish
