#!/usr/bin/env bash
# test_api.sh BUILD_DIR - the HTTP API (docs/api.md, SPEC section 5) of a
# real two-node cluster: every endpoint, the same JSON as tandemctl --json,
# and every refusal (no token, wrong token, a token file others can read,
# malformed JSON, wrong types, unknown fields, oversized bodies, a slow
# client, wrong methods and paths, configuration writes during an upgrade),
# each shown to change nothing; the event stream; /metrics through promtool;
# HTTPS with a certificate.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
lab_init "${1:-}" tandemd tandemctl tandem-probe

API=127.0.0.1:8080
command -v curl >/dev/null || lab_fail "curl not found (run scripts/deps.sh)"
command -v promtool >/dev/null || lab_fail "promtool not found (run scripts/deps.sh)"

source "$(dirname "$0")/upgrade_lib.sh"
upg_versions
upg_build "$UPG_V1" >/dev/null || exit 1 # before the lab: a failed build leaves nothing running

lab_up 2 --snat --strict-conntrack --preempt false
upg_config_settings
TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$TOKEN" >"$LAB_DIR/api.token"
chmod 600 "$LAB_DIR/api.token"
mkdir -p "$LAB_DIR/images"
cat >>"$LAB_DIR/tandem.yaml" <<EOF
api:
  http: $API
  token_file: $LAB_DIR/api.token
  images_dir: $LAB_DIR/images
  probe_file: $LAB_DIR/probe-status.json
EOF

# api I METHOD PATH [BODY [CURL ARGS...]] : the HTTP status on the first line,
# the body after it. The token is sent unless NOAUTH=1 (or AUTH=... replaces it).
api() {
	local i=$1 m=$2 p=$3 body=${4:-} auth=()
	shift $(($# < 4 ? $# : 4))
	if [ "${NOAUTH:-0}" != 1 ]; then auth=(-H "Authorization: ${AUTH:-Bearer $TOKEN}"); fi
	local data=()
	[ -n "$body" ] && data=(-H "Content-Type: ${CTYPE:-application/json}" --data-binary "$body")
	lab_nsexec "gw$i" curl -sS -m 10 -o /dev/stdout -w '\n%{http_code}' -X "$m" "${auth[@]}" "${data[@]}" "$@" \
		"http://$API$p" 2>/dev/null | awk '{a[NR]=$0} END {print a[NR]; for (i = 1; i < NR; i++) print a[i]}'
}
code() { head -1 <<<"$1"; }
body() { tail -n +2 <<<"$1"; }
# expect_refusal LABEL I METHOD PATH BODY STATUS CODE : the status and the
# error code of the answer.
expect_refusal() {
	local label=$1 r
	r=$(api "$2" "$3" "$4" "$5")
	lab_expect "$label: status" "$(code "$r")" == "$6"
	lab_expect "$label: code" "$(body "$r" | jq -r .code)" == "$7"
	echo "    $(body "$r" | jq -r .error)" >&2
}
state_digest() { # what a refused write must not change
	lab_status "$1" | jq -c '[.groups[] | {id, state, manual}], .config.generation, .upgrade.state'
}

lab_start_node 1
lab_start_node 2
lab_wait_primary 1 gw1 15 >/dev/null || lab_fail "group 1 has no agreed primary gw1"
lab_wait_until 5 lab_group_is 2 1 secondary
lab_wait_until 10 sh -c "ip netns exec ${P}gw1 curl -s -o /dev/null http://$API/api/cluster"
lab_expect "gw1 logged its listener" "$(grep -c "event=api.listen node=gw1 address=$API" "$LAB_DIR/gw1.log")" -ge 1

echo "(a) reads: the same JSON as tandemctl --json" >&2
r=$(NOAUTH=1 api 1 GET /api/cluster)
lab_expect "(a) GET /api/cluster status" "$(code "$r")" == 200
lab_expect "(a) /api/cluster node" "$(body "$r" | jq -r .node)" == gw1
lab_expect "(a) /api/cluster group 1 state" "$(body "$r" | jq -r '.groups[] | select(.id == 1) | .state')" == primary
cli=$(lab_ctl 1 --json status | jq -S 'del(.uptime_s, .groups[].since_s, .peers[].since_s, .peers[].links[].last_rx_ms_ago, .counters, .sessions, .netlink, .peers[].links[].rx)')
web=$(body "$r" | jq -S 'del(.ok, .uptime_s, .groups[].since_s, .peers[].since_s, .peers[].links[].last_rx_ms_ago, .counters, .sessions, .netlink, .peers[].links[].rx)')
lab_expect "(a) /api/cluster equals tandemctl --json status (minus clocks and counters)" "$([ "$cli" = "$web" ] && echo same || echo differs)" == same
[ "$cli" = "$web" ] || diff <(echo "$cli") <(echo "$web") >&2
for p in /api/cluster/sessions /api/cluster/config /api/cluster/config/document /api/cluster/upgrade/status /api/images /api/events; do
	r=$(NOAUTH=1 api 1 GET "$p")
	lab_expect "(a) GET $p" "$(code "$r")" == 200
	lab_expect "(a) GET $p ok" "$(body "$r" | jq -r .ok)" == true
done
lab_expect "(a) sessions as sessions status --json" "$(body "$(NOAUTH=1 api 1 GET /api/cluster/sessions)" | jq -r 'has("in_sync") and has("count")')" == true
lab_expect "(a) config status generation" "$(body "$(NOAUTH=1 api 1 GET /api/cluster/config)" | jq -r .generation)" == "$(lab_ctl 1 --json config status | jq -r .generation)"
lab_expect "(a) config document has the YAML" "$(body "$(NOAUTH=1 api 1 GET /api/cluster/config/document)" | jq -r '.yaml | contains("name: edge1")')" == true
lab_expect "(a) upgrade status idle" "$(body "$(NOAUTH=1 api 1 GET /api/cluster/upgrade/status)" | jq -r .state)" == idle
r=$(NOAUTH=1 api 1 GET '/api/events?limit=3')
lab_expect "(a) events ?limit=3" "$(body "$r" | jq '.events | length')" -eq 3
lab_expect "(a) /api/images lists images_dir" "$(body "$(NOAUTH=1 api 1 GET /api/images)" | jq -r '.images_dir')" == "$LAB_DIR/images"
r=$(NOAUTH=1 api 1 GET /api/probe)
lab_expect "(a) /api/probe before the probe wrote: 503" "$(code "$r")" == 503
echo '{"t_ms": 5, "udp_lost": 0}' >"$LAB_DIR/probe-status.json"
r=$(NOAUTH=1 api 1 GET /api/probe)
lab_expect "(a) /api/probe" "$(code "$r") $(body "$r" | jq -c '{t_ms, ok}')" == '200 {"t_ms":5,"ok":true}'
r=$(NOAUTH=1 api 1 GET /)
lab_expect "(a) GET / serves the dashboard" "$(code "$r") $(body "$r" | grep -ci '<html' | head -1)" == "200 1"

echo "(b) refusals change nothing" >&2
before=$(state_digest 1)
NOAUTH=1 expect_refusal "(b) failover without a token" 1 POST /api/cluster/failover '{"group":1,"to":"gw2"}' 401 unauthorized
AUTH="Bearer wrong-token-wrong-token" expect_refusal "(b) failover with a wrong token" 1 POST /api/cluster/failover '{"group":1,"to":"gw2"}' 401 unauthorized
AUTH="Basic $TOKEN" expect_refusal "(b) failover with another scheme" 1 POST /api/cluster/failover '{"group":1,"to":"gw2"}' 401 unauthorized
expect_refusal "(b) malformed JSON" 1 POST /api/cluster/failover '{"group":1,' 400 usage
expect_refusal "(b) not an object" 1 POST /api/cluster/failover '[1]' 400 usage
expect_refusal "(b) wrong type" 1 POST /api/cluster/failover '{"group":"1"}' 400 usage
expect_refusal "(b) unknown field" 1 POST /api/cluster/failover '{"group":1,"to":"gw2","now":true}' 400 usage
expect_refusal "(b) duplicate key" 1 POST /api/cluster/failover '{"group":1,"group":0}' 400 usage
expect_refusal "(b) missing field" 1 POST /api/cluster/failover '{"to":"gw2"}' 400 usage
expect_refusal "(b) unknown node" 1 POST /api/cluster/failover '{"group":1,"to":"gw9"}' 400 usage
expect_refusal "(b) unknown group" 1 POST /api/cluster/failover '{"group":7}' 400 usage
CTYPE=text/plain expect_refusal "(b) not application/json" 1 POST /api/cluster/failover '{"group":1,"to":"gw2"}' 415 media_type
big=$(head -c 70000 /dev/zero | tr '\0' 'x')
expect_refusal "(b) oversized body" 1 POST /api/cluster/failover "{\"group\":1,\"to\":\"$big\"}" 413 too_large
expect_refusal "(b) unknown path" 1 GET /api/nothing '' 404 not_found
r=$(api 1 DELETE /api/cluster)
lab_expect "(b) DELETE /api/cluster" "$(code "$r") $(body "$r" | jq -r .code)" == "405 method"
expect_refusal "(b) GET on a write endpoint" 1 GET /api/cluster/failover '' 405 method
expect_refusal "(b) unknown query argument" 1 GET '/api/events?lim=3' '' 400 usage
expect_refusal "(b) bad limit" 1 GET '/api/events?limit=-1' '' 400 usage
expect_refusal "(b) upgrade with a relative image path" 1 POST /api/cluster/upgrade '{"image_path":"x.img"}' 400 usage
lab_expect "(b) state after the refusals" "$(state_digest 1)" == "$before"
lab_expect "(b) refusals were logged" "$(grep -c 'event=api.refused' "$LAB_DIR/gw1.log")" -ge 3
# A client that sends half a request and stops is cut off after 10 s.
t0=$(lab_now_ms)
lab_nsexec gw1 timeout 20 bash -c "exec 3<>/dev/tcp/${API%:*}/${API#*:}; printf 'POST /api/cluster/failover HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"gr' >&3; cat <&3 >/dev/null"
dt=$(($(lab_now_ms) - t0))
lab_expect "(b) a slow client is disconnected (ms)" "$dt" -lt 15000
lab_expect "(b) ... not before the 10 s timeout (ms)" "$dt" -ge 9000
# One that trickles its body (a byte a second) is answered 408 once 8 s have passed.
t0=$(lab_now_ms)
first=$(lab_nsexec gw1 timeout 20 bash -c "exec 3<>/dev/tcp/${API%:*}/${API#*:}
	printf 'POST /api/cluster/failover HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer $TOKEN\r\nContent-Length: 50\r\n\r\n' >&3
	(for i in \$(seq 15); do printf ' ' >&3 2>/dev/null || exit 0; sleep 1; done) &
	head -1 <&3 | tr -d '\r'; kill %1 2>/dev/null")
dt=$(($(lab_now_ms) - t0))
lab_expect "(b) a trickling client's answer" "$first" == "HTTP/1.1 408 Request Timeout"
lab_expect "(b) ... after the body timeout (ms)" "$dt" -ge 8000
lab_expect "(b) state after the slow clients" "$(state_digest 1)" == "$before"

echo "(c) writes" >&2
r=$(api 1 POST /api/cluster/failover '{"group":1,"to":"gw2"}')
lab_expect "(c) failover to gw2" "$(code "$r") $(body "$r" | jq -c '{ok, group, to}')" == '200 {"ok":true,"group":1,"to":"gw2"}'
lab_wait_primary 1 gw2 5 >/dev/null || lab_fail "(c) gw2 did not take group 1"
lab_expect "(c) the API request was logged with its remote" "$(grep -c 'event=api.request node=gw1 method=POST path=/api/cluster/failover status=200 remote=127.0.0.1' "$LAB_DIR/gw1.log")" -eq 1
lab_expect "(c) ... and the admin request" "$(grep -c 'event=admin.request node=gw1 cmd=failover group=1 to=gw2 result=ok' "$LAB_DIR/gw1.log")" -eq 1
r=$(api 1 POST /api/cluster/failover '{"group":1,"reset":true}')
lab_expect "(c) failover reset" "$(code "$r")" == 200
r=$(api 1 POST /api/cluster/maintenance '{"on":true,"node":"gw2"}')
lab_expect "(c) maintenance on gw2" "$(code "$r")" == 200
lab_wait_primary 1 gw1 5 >/dev/null || lab_fail "(c) gw1 did not take group 1 back when gw2 went into maintenance"
r=$(api 1 POST /api/cluster/maintenance '{"on":false,"node":"gw2"}')
lab_expect "(c) maintenance off gw2" "$(code "$r")" == 200
r=$(api 2 POST /api/node/deactivate)
lab_expect "(c) deactivate gw2 (no body)" "$(code "$r")" == 200
r=$(api 2 POST /api/node/activate '{}')
lab_expect "(c) activate gw2" "$(code "$r")" == 200
yaml=$(jq -Rs . <"$LAB_DIR/tandem.yaml")
newyaml=$(sed 's/heartbeat_ms: .*/heartbeat_ms: 90/' "$LAB_DIR/tandem.yaml" | jq -Rs .)
gen0=$(lab_ctl 1 --json config status | jq -r .generation)
r=$(api 2 POST /api/cluster/config "{\"yaml\":$newyaml}")
lab_expect "(c) config apply through gw2" "$(code "$r") $(body "$r" | jq -r .ok)" == "200 true"
lab_wait_until 5 sh -c "[ \"\$(ip netns exec ${P}gw1 curl -s http://$API/api/cluster/config | jq -r .generation)\" -gt $gen0 ]"
lab_expect "(c) the new generation everywhere" "$(lab_ctl 1 --json config status | jq -r '.in_sync')" == true
r=$(api 1 POST /api/cluster/config '{"yaml":"cluster: {name: x"}')
lab_expect "(c) a bad configuration: 400 with diagnostics" "$(code "$r") $(body "$r" | jq -r '.diagnostics | length > 0')" == "400 true"

echo "(d) a token file others can read disables writes" >&2
chmod 644 "$LAB_DIR/api.token"
expect_refusal "(d) failover with a world-readable token file" 1 POST /api/cluster/failover '{"group":1,"to":"gw2"}' 503 unavailable
lab_expect "(d) logged" "$(grep -c 'event=api.token_error' "$LAB_DIR/gw1.log")" -ge 1
chmod 600 "$LAB_DIR/api.token"
NEWTOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$NEWTOKEN" >"$LAB_DIR/api.token"
AUTH="Bearer $TOKEN" expect_refusal "(d) the old token after rotation" 1 POST /api/cluster/failover '{"group":1}' 401 unauthorized
TOKEN=$NEWTOKEN
r=$(api 1 POST /api/cluster/failover '{"group":1,"reset":true}')
lab_expect "(d) the rotated token, no restart" "$(code "$r")" == 200

echo "(e) the event stream" >&2
sse=$LAB_DIR/sse.txt
lab_nsexec gw1 curl -sN -m 6 "http://$API/api/events/stream?limit=2" >"$sse" 2>/dev/null &
spid=$!
LAB_EXTRA_PIDS+=("$spid")
sleep 1
api 1 POST /api/cluster/failover '{"group":1,"to":"gw2"}' >/dev/null
wait "$spid" 2>/dev/null
lab_expect "(e) the backlog: 2 events then live ones" "$(grep -c '^id: ' "$sse")" -ge 4
lab_expect "(e) the failover's cause streamed live" "$(grep '^data: ' "$sse" | sed 's/^data: //' | jq -r 'select(.event == "admin.request") | .fields.cmd' | grep -c failover)" -ge 1
lab_expect "(e) every data line is the events --json object" "$(grep '^data: ' "$sse" | sed 's/^data: //' | jq -e 'has("seq") and has("event") and has("fields")' | grep -vc true)" -eq 0
last=$(grep '^id: ' "$sse" | head -1 | cut -d' ' -f2)
n=$(lab_nsexec gw1 curl -sN -m 2 -H "Last-Event-ID: $last" "http://$API/api/events/stream" 2>/dev/null | grep '^id: ' | head -1 | cut -d' ' -f2)
lab_expect "(e) Last-Event-ID resumes after it" "$n" -eq $((last + 1))
lab_wait_primary 1 gw2 5 >/dev/null

echo "(f) /metrics, parsed by promtool" >&2
m=$LAB_DIR/metrics.txt
lab_nsexec gw1 curl -sS -m 5 -D "$m.h" "http://$API/metrics" >"$m"
lab_expect "(f) content type" "$(grep -ic 'content-type: text/plain; version=0.0.4' "$m.h")" -eq 1
promtool check metrics <"$m" >"$m.lint" 2>&1
lab_expect "(f) promtool check metrics" "$?" -eq 0
cat "$m.lint" >&2
lab_expect "(f) group 1 primary as gw1 sees it" "$(grep -c '^tandem_group_primary{group="1",node="gw2"} 1' "$m")" -eq 1
lab_expect "(f) peer gw2 up" "$(grep -c '^tandem_peer_up{peer="gw2"} 1' "$m")" -eq 1
lab_expect "(f) heartbeat loss per link" "$(grep -c '^tandem_link_heartbeats_missed_total{peer="gw2",link="[01]"} ' "$m")" -eq 2
lab_expect "(f) configuration generation per node" "$(grep -c '^tandem_config_committed_generation{node=' "$m")" -eq 2
lab_expect "(f) upgrade state idle" "$(grep -c '^tandem_upgrade_state{state="idle"} 1' "$m")" -eq 1

echo "(g) configuration writes during an upgrade: 409 with the reason" >&2
upg_images "$UPG_V1"
img=$LAB_DIR/images/tandem-$UPG_V1.img
cp "$LAB_DIR/img-$UPG_V1" "$img"
r=$(NOAUTH=1 api 1 GET /api/images)
lab_expect "(g) the image is listed" "$(body "$r" | jq -r '.files[].path')" == "$img"
r=$(api 1 POST /api/cluster/upgrade/plan "{\"image_path\":\"$img\"}")
lab_expect "(g) plan" "$(code "$r") $(body "$r" | jq -r .ok)" == "200 true"
r=$(api 1 POST /api/cluster/upgrade "{\"image_path\":\"$img\"}")
lab_expect "(g) start: 202" "$(code "$r")" == 202
echo "    $(body "$r" | jq -c '{ok, id, state}')" >&2
r=$(api 2 POST /api/cluster/config "{\"yaml\":$yaml}")
lab_expect "(g) config apply while the upgrade runs" "$(code "$r") $(body "$r" | jq -r .code)" == "409 refused"
echo "    $(body "$r" | jq -r .error)" >&2
r=$(api 2 POST /api/cluster/upgrade "{\"image_path\":\"$img\"}")
lab_expect "(g) a second start (through gw2)" "$(code "$r") $(body "$r" | jq -r .code)" == "409 refused"
lab_wait_until 60 sh -c "[ \"\$(ip netns exec ${P}gw2 curl -s http://$API/api/cluster/upgrade/status | jq -r .state)\" = completed ]"
r=$(NOAUTH=1 api 2 GET /api/cluster/upgrade/status)
lab_expect "(g) the upgrade completed (seen from gw2)" "$(body "$r" | jq -r .state)" == completed
lab_nsexec gw1 curl -sS -m 5 "http://$API/metrics" >"$m"
promtool check metrics <"$m" >/dev/null 2>&1
lab_expect "(g) promtool after an upgrade" "$?" -eq 0
lab_expect "(g) step durations exported" "$(grep -c '^tandem_upgrade_step_duration_seconds{' "$m")" -ge 5
r=$(api 1 POST /api/cluster/upgrade/finalize)
lab_expect "(g) finalize" "$(code "$r")" == 200

echo "(h) HTTPS once a certificate is configured (a live configuration change)" >&2
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=tandem-lab \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$LAB_DIR/api.key" -out "$LAB_DIR/api.crt" >/dev/null 2>&1 ||
	lab_fail "(h) openssl could not make a certificate"
chmod 600 "$LAB_DIR/api.key"
tlsyaml=$( (cat "$LAB_DIR/tandem.yaml"; echo "  tls_cert: $LAB_DIR/api.crt"; echo "  tls_key: $LAB_DIR/api.key") | jq -Rs .)
r=$(api 1 POST /api/cluster/config "{\"yaml\":$tlsyaml}")
lab_expect "(h) config apply with tls_cert and tls_key" "$(code "$r") $(body "$r" | jq -r .ok)" == "200 true"
https_ok() { lab_nsexec "gw$1" curl -sS -m 3 --cacert "$LAB_DIR/api.crt" "https://$API/api/cluster" 2>/dev/null | jq -r .node; }
lab_wait_until 5 test "$(https_ok 1)" = gw1
lab_expect "(h) gw1 over HTTPS, certificate verified" "$(https_ok 1)" == gw1
lab_wait_until 5 test "$(https_ok 2)" = gw2
lab_expect "(h) gw2 over HTTPS" "$(https_ok 2)" == gw2
lab_expect "(h) plain HTTP no longer answers" "$(lab_nsexec gw1 curl -s -m 3 -o /dev/null -w '%{http_code}' "http://$API/api/cluster" 2>/dev/null)" != 200
r=$(lab_nsexec gw1 curl -sS -m 5 --cacert "$LAB_DIR/api.crt" -X POST -H "Authorization: Bearer $TOKEN" \
	-H 'Content-Type: application/json' --data '{"group":1,"reset":true}' "https://$API/api/cluster/failover" | jq -r .ok)
lab_expect "(h) a write over HTTPS" "$r" == true

lab_finish
