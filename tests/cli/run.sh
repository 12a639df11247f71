#!/usr/bin/env bash
# tests/cli/run.sh BUILD_DIR - tandemctl without a cluster.
#
# 1. tests/cli/test_cli.c, built against BUILD_DIR's libcore.a (with the
#    sanitizers when that library has them): the line diff against a
#    patch applier and an LCS oracle on random inputs, its bounds, and the
#    backup file format with good, damaged and foreign files.
# 2. The line diff beside diff(1) and patch(1) on real files.
# 3. BUILD_DIR/tandemctl `config ...` against tests/cli/fake_tandemd.py, a
#    stand-in control socket that logs every request: the exact JSON sent,
#    the human and --json output, the exit codes (0 done, 1 failed,
#    2 usage, 3 refused), and that a bad file or a bad backup sends
#    nothing. Only a unix socket in a private temporary directory; no
#    network, no root needed.
# 4. BUILD_DIR/tandemctl `upgrade ...` against the same fake, with canned
#    answers and probe logs from tests/cli/upg_fixtures.py: plan, start,
#    status and --watch over scripted answer sequences (one of them a
#    daemon silent for the whole 30 s bound), abort, rollback, finalize,
#    report and its zero-drops verdict.
# Exits non-zero when any check fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${1:?usage: tests/cli/run.sh BUILD_DIR}
CTL=$B/tandemctl
[ -x "$CTL" ] || { echo "tests/cli: $CTL not built" >&2; exit 1; }
[ -f "$B/libcore.a" ] || { echo "tests/cli: $B/libcore.a not built" >&2; exit 1; }
for t in python3 jq diff patch; do
	command -v "$t" >/dev/null || { echo "tests/cli: needs $t" >&2; exit 1; }
done

W=$(mktemp -d /tmp/tnd-cli.XXXXXX)
FAKE_PID=
cleanup() {
	[ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null && wait "$FAKE_PID" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() {
	fail=$((fail + 1))
	echo "FAIL: $*" >&2
}
# check DESCRIPTION COMMAND...: the command must succeed.
check() {
	local d=$1
	shift
	if "$@"; then ok; else bad "$d"; fi
}

# ---- 1. unit tests ------------------------------------------------------
echo "== tests/cli: unit tests (line diff, backup file)"
PKGS="libsodium libfyaml jansson"
CFLAGS="-std=gnu11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror -D_GNU_SOURCE -Isrc $(pkg-config --cflags $PKGS)"
# (grep reads all of nm: with -q, nm would die of SIGPIPE under pipefail.)
if nm "$B/libcore.a" 2>/dev/null | grep __asan_ >/dev/null; then
	CFLAGS="$CFLAGS -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
else
	CFLAGS="$CFLAGS -O2 -g"
fi
mkdir -p "$B/tests/cli"
TEST_CLI=$B/tests/cli/test_cli
# shellcheck disable=SC2086
if cc $CFLAGS tests/cli/test_cli.c src/cli/linediff.c src/cli/cfgbackup.c "$B/libio.a" "$B/libcore.a" \
	$(pkg-config --libs $PKGS) -o "$TEST_CLI"; then
	ok
	if "$TEST_CLI"; then ok; else bad "test_cli"; fi
else
	bad "building test_cli"
	TEST_CLI=false
fi

# Sanitizer reports end the run of a command with this code and a report
# on stderr; every tandemctl run below is checked for both.
export ASAN_OPTIONS=exitcode=86:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:exitcode=86

# ---- 2. the diff beside diff(1) and patch(1) ----------------------------
echo "== tests/cli: line diff beside diff(1) and patch(1)"
mkdir -p "$W/d"
seq 1 200 | sed 's/^/  line: /' >"$W/d/a"
# A change near the top, a deletion, an insertion, a change at the end.
sed -e '3s/.*/  line: three/' -e '50,52d' -e '120a\  inserted: yes' -e '200s/.*/  last: changed/' \
	"$W/d/a" >"$W/d/b"
printf 'no newline at the end' >"$W/d/c"
: >"$W/d/empty"
pairs="a:b b:a a:c c:a a:empty empty:a c:empty"
for p in $pairs; do
	x=$W/d/${p%%:*}
	y=$W/d/${p##*:}
	"$TEST_CLI" diff "$x" "$y" >"$W/d/ours"
	rc=$?
	check "diff $p: exit 1 (they differ), got $rc" [ "$rc" -eq 1 ]
	# The same hunks as diff -u where the shortest edit is unique.
	diff -u --label "$x" --label "$y" "$x" "$y" >"$W/d/theirs"
	check "diff $p: same output as diff -u" cmp -s "$W/d/ours" "$W/d/theirs"
	cp "$x" "$W/d/patched"
	patch -s "$W/d/patched" <"$W/d/ours" >/dev/null 2>&1
	check "diff $p: patch(1) turns ${p%%:*} into ${p##*:}" cmp -s "$W/d/patched" "$y"
done
"$TEST_CLI" diff "$W/d/a" "$W/d/a" >"$W/d/ours"
rc=$?
check "diff of a file with itself: exit 0 ($rc), no output" [ "$rc" -eq 0 -a ! -s "$W/d/ours" ]

# ---- 3. tandemctl config against a fake tandemd --------------------------
echo "== tests/cli: tandemctl config against a fake control socket"
SOCK=$W/ctl.sock
ANS=$W/answers.json
LOG=$W/requests.log
echo '{}' >"$ANS"
: >"$LOG"
python3 tests/cli/fake_tandemd.py "$SOCK" "$ANS" "$LOG" 2>"$W/fake.err" &
FAKE_PID=$!
for _ in $(seq 1 100); do
	[ -S "$SOCK" ] && break
	sleep 0.05
done
[ -S "$SOCK" ] || { cat "$W/fake.err" >&2; echo "tests/cli: the fake tandemd did not start" >&2; exit 1; }

OUT=$W/out
ERR=$W/err
RC=0
# ctl ARGS...: run tandemctl on the fake socket; output in $OUT/$ERR,
# exit code in $RC. A sanitizer report is a failure of its own.
ctl() {
	"$CTL" --socket "$SOCK" "$@" >"$OUT" 2>"$ERR"
	RC=$?
	if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$ERR"; then
		bad "sanitizer report from tandemctl $*"
		cat "$ERR" >&2
	fi
}
# expect_rc WANT DESCRIPTION: the last ctl's exit code.
expect_rc() {
	if [ "$RC" -eq "$1" ]; then
		ok
	else
		bad "$2: exit code $RC, wanted $1"
		sed 's/^/    stdout| /' "$OUT" >&2
		sed 's/^/    stderr| /' "$ERR" >&2
	fi
}
nreq() { wc -l <"$LOG" | tr -d ' '; }
last_req() { tail -n 1 "$LOG"; }
answers() { cat >"$ANS"; }
digest() {
	python3 -c 'import sys; sys.path.insert(0, "tests/cli"); from fake_tandemd import doc_digest
print(doc_digest(open(sys.argv[1]).read(), open(sys.argv[2]).read()))' "$1" "$2"
}

C=$W/conf
mkdir -p "$C" "$W/new"
cat >"$C/tandem.yaml" <<'EOF'
# edge cluster, managed by tandem
cluster:
  name: edge1
  id: 1
  key_file: /etc/tandem/cluster.key
  heartbeat_ms: 100
nodes:
  - name: gw1
    links: [203.0.113.1, 198.51.100.1]
  - name: gw2
    links: [203.0.113.2, 198.51.100.2]
groups:
  - id: 0
    priority: {gw1: 200, gw2: 100}
  - id: 1
    priority: {gw1: 200, gw2: 100}
    preempt: true
    vips:
      - {address: 192.0.2.1/24, interface: lan0}
firewall:
  ruleset: rules.nft
EOF
cat >"$C/rules.nft" <<'EOF'
table inet tandem {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 22 accept
	}
}
EOF
sed -e 's/heartbeat_ms: 100/heartbeat_ms: 50/' -e 's/192.0.2.1\/24/192.0.2.10\/24/' "$C/tandem.yaml" >"$W/new/tandem.yaml"
sed -e 's/tcp dport 22 accept/tcp dport { 22, 443 } accept/' "$C/rules.nft" >"$W/new/rules.nft"
grep -v -e '^firewall:' -e 'ruleset:' "$C/tandem.yaml" >"$W/new/norules.yaml"
# Three problems, each located.
sed -e 's/heartbeat_ms: 100/heartbeat_ms: 5/' -e 's/^  id: 1$/  id: 300/' -e 's/192.0.2.1\/24/192.0.2.300\/24/' \
	"$C/tandem.yaml" >"$W/new/bad.yaml"
sed 's/rules.nft/missing.nft/' "$C/tandem.yaml" >"$W/new/missing-ruleset.yaml"

# The cluster's current document: generation 4 = conf/tandem.yaml.
show_answer() { # GEN YAMLFILE RULESETFILE [DIGEST]
	jq -n --argjson g "$1" --rawfile y "$2" --rawfile r "$3" --arg d "${4:-auto}" \
		'{ok: true, generation: $g, digest: $d, state: "committed", created: 1700000000, yaml: $y, ruleset: $r}'
}
: >"$W/none"

echo "-- usage errors send nothing"
for args in "config" "config frob" "config apply" "config status extra" "config show --generation x" \
	"config show --generation" "config diff a b" "config status --force" "config diff a --force" \
	"config show --bogus"; do
	# shellcheck disable=SC2086
	ctl $args
	expect_rc 2 "tandemctl $args"
done
check "usage errors sent no request" [ "$(nreq)" -eq 0 ]
"$CTL" --help | grep -q 'config apply FILE \[--force\]'
check "--help lists config apply" [ $? -eq 0 ]

echo "-- config status"
STATUS_BAD='{"ok":true,"generation":4,"in_sync":false,"coordinator":"gw1","settled":true,"busy":false,"busy_generation":0,
 "nodes":[{"node":"gw1","self":true,"alive":true,"known":true,"committed":4,"pending":0,"applied":4,"digest":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","in_sync":true,"error":null},
          {"node":"gw2","self":false,"alive":true,"known":true,"committed":4,"pending":5,"applied":3,"digest":"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210","in_sync":false,"error":"nft: syntax error in line 3"},
          {"node":"gw3-long-name","self":false,"alive":false,"known":false,"committed":0,"pending":0,"applied":0,"digest":"","in_sync":false,"error":null}]}'
echo "{\"config.status\": $STATUS_BAD}" | answers
ctl config status
expect_rc 0 "config status"
check "status: the request" [ "$(last_req | jq -c -S .)" = '{"cmd":"config","op":"status"}' ]
check "status: verdict line" [ "$(sed -n 1p "$OUT")" = "configuration generation 4, NOT in sync: gw2 (applied 3, error: nft: syntax error in line 3)" ]
check "status: coordinator line" [ "$(sed -n 2p "$OUT")" = "coordinator: gw1" ]
check "status: table header" grep -qE '^NODE +STATE +COMMITTED +APPLIED +PENDING +DIGEST +SYNC +ERROR$' "$OUT"
check "status: gw1 row" grep -qE '^gw1 +self +4 +4 +- +0123456789ab +yes +-$' "$OUT"
check "status: gw2 row" grep -qE '^gw2 +alive +4 +3 +5 +fedcba987654 +no +nft: syntax error in line 3$' "$OUT"
check "status: lost node row" grep -qE '^gw3-long-name +lost +- +- +- +- +unknown +-$' "$OUT"
ctl --json config status
expect_rc 0 "config status --json"
check "status --json: the answer without ok" [ "$(jq -cS . "$OUT")" = "$(echo "$STATUS_BAD" | jq -cS 'del(.ok)')" ]
echo "{\"config.status\": $(echo "$STATUS_BAD" | jq '.in_sync = true | .nodes[1] += {applied: 4, pending: 0, in_sync: true, error: null} | .coordinator = null | .busy = true | .busy_generation = 5')}" | answers
ctl config status
expect_rc 0 "config status (in sync)"
check "status: in-sync verdict" [ "$(sed -n 1p "$OUT")" = "configuration generation 4, in sync on every node" ]
check "status: no coordinator, change in progress" grep -q '^coordinator: none .*, change in progress: generation 5$' "$OUT"
check "status: no ERROR column when no error" grep -qE '^NODE +STATE +COMMITTED +APPLIED +PENDING +DIGEST +SYNC$' "$OUT"
echo '{"config.status": {"ok": false, "code": "failed", "error": "configuration sync is not available"}}' | answers
ctl config status
expect_rc 1 "config status, daemon failure"
check "status failure: reason on stderr" grep -q 'failed: configuration sync is not available' "$ERR"

echo "-- config show"
show_answer 4 "$C/tandem.yaml" "$C/rules.nft" | jq '{"config.show": .}' | answers
ctl config show
expect_rc 0 "config show"
{ cat "$C/tandem.yaml"; echo "# --- firewall ruleset (generation 4) ---"; cat "$C/rules.nft"; } >"$W/want"
check "show: YAML exactly, then the ruleset under its comment line" cmp -s "$OUT" "$W/want"
check "show: the request" [ "$(last_req | jq -c -S .)" = '{"cmd":"config","op":"show"}' ]
ctl config show --generation 2
expect_rc 0 "config show --generation 2"
check "show --generation: sent" [ "$(last_req | jq -c -S .)" = '{"cmd":"config","generation":2,"op":"show"}' ]
ctl --json config show --generation=3
check "show --generation=3: sent" [ "$(last_req | jq -c .generation)" = 3 ]
check "show --json: yaml member is the file" [ "$(jq -r .yaml "$OUT")" = "$(cat "$C/tandem.yaml")" ]
check "show --json: no ok member" [ "$(jq -c 'has("ok")' "$OUT")" = false ]
show_answer 4 "$C/tandem.yaml" "$W/none" | jq '{"config.show": .}' | answers
ctl config show
check "show without ruleset: the YAML byte for byte" cmp -s "$OUT" "$C/tandem.yaml"
echo '{"config.show": {"ok": false, "code": "failed", "error": "generation 9 is not stored on gw1 (it keeps the newest 16)"}}' | answers
ctl config show --generation 9
expect_rc 1 "config show of a generation not stored"
check "show failure: reason on stderr" grep -q 'generation 9 is not stored' "$ERR"

echo "-- config apply"
echo '{"config.apply": {"ok": true, "generation": 5, "changed": true}}' | answers
: >"$LOG"
ctl config apply "$W/new/tandem.yaml"
expect_rc 0 "config apply"
check "apply: output" [ "$(cat "$OUT")" = "configuration generation 5 committed on every live node" ]
check "apply: one request" [ "$(nreq)" -eq 1 ]
R=$(last_req)
check "apply: cmd, op, source, force" [ "$(echo "$R" | jq -c '[.cmd, .op, .source, .force]')" = "[\"config\",\"apply\",\"$W/new/tandem.yaml\",false]" ]
check "apply: yaml is the file, byte for byte" [ "$(echo "$R" | jq --rawfile f "$W/new/tandem.yaml" '.yaml == $f')" = true ]
check "apply: ruleset is the file it names, relative to the YAML" [ "$(echo "$R" | jq --rawfile f "$W/new/rules.nft" '.ruleset == $f')" = true ]
check "apply: members sent" [ "$(echo "$R" | jq -c 'keys')" = '["cmd","force","op","ruleset","source","yaml"]' ]
ctl config apply --force "$W/new/tandem.yaml"
expect_rc 0 "config apply --force"
check "apply --force: force true" [ "$(last_req | jq .force)" = true ]
ctl config apply "$W/new/norules.yaml"
check "apply without firewall.ruleset: empty ruleset sent" [ "$(last_req | jq -c .ruleset)" = '""' ]
ctl --json config apply "$W/new/tandem.yaml"
check "apply --json: the answer" [ "$(jq -cS . "$OUT")" = '{"changed":true,"generation":5,"ok":true}' ]
echo '{"config.apply": {"ok": true, "generation": 4, "changed": false}}' | answers
ctl config apply "$C/tandem.yaml"
expect_rc 0 "config apply, unchanged"
check "apply unchanged: output" [ "$(cat "$OUT")" = "unchanged: $C/tandem.yaml is identical to generation 4" ]

: >"$LOG"
ctl config apply "$W/new/bad.yaml"
expect_rc 1 "config apply of an invalid file"
check "apply invalid: three FILE:LINE:COL diagnostics" [ "$(grep -cE "^$W/new/bad.yaml:[0-9]+:[0-9]+: " "$ERR")" -eq 3 ]
check "apply invalid: each located" [ "$(grep -oE "^$W/new/bad.yaml:[0-9]+:" "$ERR" | cut -d: -f2 | tr '\n' ' ')" = "4 6 19 " ]
ctl --json config apply "$W/new/bad.yaml"
expect_rc 1 "config apply --json of an invalid file"
check "apply invalid --json: code invalid, 3 diagnostics" [ "$(jq -c '[.ok, .code, (.diagnostics | length)]' "$OUT")" = '[false,"invalid",3]' ]
ctl config apply "$W/new/missing-ruleset.yaml"
expect_rc 1 "config apply with a missing ruleset file"
check "apply missing ruleset: said" grep -q "firewall.ruleset: cannot read $W/new/missing.nft" "$ERR"
ctl config apply "$W/new/does-not-exist.yaml"
expect_rc 1 "config apply of a missing file"
# Each file within its own bound, together beyond one document (1 MiB).
mkdir -p "$W/big"
{ cat "$C/tandem.yaml"; yes '# padding padding padding padding padding padding padding padding' | head -c 614400; } >"$W/big/tandem.yaml"
{ cat "$C/rules.nft"; yes '# padding padding padding padding padding padding padding padding' | head -c 491520; } >"$W/big/rules.nft"
ctl config apply "$W/big/tandem.yaml"
expect_rc 1 "config apply of a document over 1 MiB"
check "too large: said" grep -q 'together exceed the 1048576 bytes of one cluster document; nothing sent' "$ERR"
# A ruleset in Latin-1 cannot travel in JSON: said, not mangled.
mkdir -p "$W/latin1"
cp "$C/tandem.yaml" "$W/latin1/"
{ printf '# r\xe9gles\n'; cat "$C/rules.nft"; } >"$W/latin1/rules.nft"
ctl config apply "$W/latin1/tandem.yaml"
expect_rc 1 "config apply of a ruleset that is not UTF-8"
check "not UTF-8: said" grep -q 'the ruleset is not valid UTF-8 text; nothing sent' "$ERR"
check "invalid files sent nothing" [ "$(nreq)" -eq 0 ]

echo '{"config.apply": {"ok": false, "code": "invalid", "error": "the configuration is not valid", "diagnostics": ["x.yaml:3:5: groups[1]: interface lan9 does not exist", "x.yaml:9:1: ruleset: syntax error"]}}' | answers
ctl config apply "$W/new/tandem.yaml"
expect_rc 1 "config apply rejected by the cluster's validation"
check "cluster diagnostics on stderr" [ "$(grep -c '^x.yaml:[0-9]*:[0-9]*: ' "$ERR")" -eq 2 ]
echo '{"config.apply": {"ok": false, "code": "refused", "error": "configuration is frozen: an upgrade is in progress"}}' | answers
ctl config apply "$W/new/tandem.yaml"
expect_rc 3 "config apply refused"
check "refusal says why" grep -q 'refused: configuration is frozen: an upgrade is in progress' "$ERR"
echo '{"config.apply": {"ok": false, "code": "failed", "error": "gw2 could not store generation 5"}}' | answers
ctl config apply "$W/new/tandem.yaml"
expect_rc 1 "config apply failed"
echo '{"config.apply": {"ok": false, "code": "usage", "error": "apply needs \"yaml\""}}' | answers
ctl config apply "$W/new/tandem.yaml"
expect_rc 2 "config apply, usage answer"
echo '{"config.apply": {"_close": true}}' | answers
ctl config apply "$W/new/tandem.yaml"
expect_rc 1 "config apply, connection closed"
# The commit takes longer than the 10 s other commands wait: still fine.
echo '{"config.apply": {"_delay_s": 11.5, "ok": true, "generation": 6, "changed": true}}' | answers
t0=$(date +%s)
ctl config apply "$W/new/tandem.yaml"
expect_rc 0 "config apply answered after 11.5 s"
check "slow apply: output" [ "$(cat "$OUT")" = "configuration generation 6 committed on every live node" ]
check "slow apply: waited for it ($(($(date +%s) - t0)) s)" [ $(($(date +%s) - t0)) -ge 11 ]
"$CTL" --socket "$W/nobody.sock" config apply "$W/new/tandem.yaml" >"$OUT" 2>"$ERR"
RC=$?
expect_rc 1 "config apply, no daemon"
check "no daemon: said" grep -q "cannot reach tandemd at $W/nobody.sock" "$ERR"

echo "-- config diff"
show_answer 4 "$C/tandem.yaml" "$C/rules.nft" | jq '{"config.show": .}' | answers
ctl config diff "$C/tandem.yaml"
expect_rc 0 "config diff, equal"
check "diff equal: output" [ "$(cat "$OUT")" = "no differences from generation 4" ]
ctl config diff "$W/new/tandem.yaml"
expect_rc 0 "config diff, different"
check "diff: YAML labels" grep -qx -e "--- cluster generation 4" "$OUT"
check "diff: YAML labels (file)" grep -qx -e "+++ $W/new/tandem.yaml" "$OUT"
check "diff: ruleset labels" grep -qx -e "--- cluster ruleset (generation 4)" "$OUT"
check "diff: ruleset labels (file)" grep -qx -e "+++ $W/new/rules.nft" "$OUT"
# Split at the ruleset header; each half must be diff -u's output and
# must patch the cluster's text into the file's.
awk -v y="$W/d/ydiff" -v r="$W/d/rdiff" '/^--- cluster ruleset/ {f = 1} {print > (f ? r : y)}' "$OUT"
diff -u --label "cluster generation 4" --label "$W/new/tandem.yaml" "$C/tandem.yaml" "$W/new/tandem.yaml" >"$W/d/theirs"
check "diff: YAML part as diff -u" cmp -s "$W/d/ydiff" "$W/d/theirs"
diff -u --label "cluster ruleset (generation 4)" --label "$W/new/rules.nft" "$C/rules.nft" "$W/new/rules.nft" >"$W/d/theirs"
check "diff: ruleset part as diff -u" cmp -s "$W/d/rdiff" "$W/d/theirs"
cp "$C/tandem.yaml" "$W/d/patched"
patch -s "$W/d/patched" <"$W/d/ydiff" >/dev/null 2>&1
check "diff: patch(1) makes the cluster's YAML the file" cmp -s "$W/d/patched" "$W/new/tandem.yaml"
ctl --json config diff "$W/new/tandem.yaml"
expect_rc 0 "config diff --json"
check "diff --json: generation, differs, complete" [ "$(jq -c '[.generation, .differs, .complete]' "$OUT")" = '[4,true,true]' ]
check "diff --json: yaml_diff" [ "$(jq -r .yaml_diff "$OUT")" = "$(cat "$W/d/ydiff")" ]
check "diff --json: ruleset_diff" [ "$(jq -r .ruleset_diff "$OUT")" = "$(cat "$W/d/rdiff")" ]
ctl --json config diff "$C/tandem.yaml"
check "diff --json equal" [ "$(jq -c '[.differs, .yaml_diff, .ruleset_diff]' "$OUT")" = '[false,"",""]' ]
ctl config diff "$W/new/norules.yaml"
expect_rc 0 "config diff to a file without ruleset"
check "diff: no ruleset in the file, labelled" grep -qx -e "+++ (no firewall.ruleset in $W/new/norules.yaml)" "$OUT"
check "diff: every ruleset line removed" [ "$(grep -c '^-	' "$OUT")" -ge 3 ]
: >"$LOG"
ctl config diff "$W/new/bad.yaml"
expect_rc 1 "config diff of an invalid file"
check "diff invalid: diagnostics, nothing asked" [ "$(grep -c "^$W/new/bad.yaml:" "$ERR")" -eq 3 -a "$(nreq)" -eq 0 ]

echo "-- config backup"
BK=$W/backup.json
t0=$(date +%s)
ctl config backup "$BK"
expect_rc 0 "config backup"
check "backup: output" grep -q "^backup of generation 4 (cluster edge1, digest [0-9a-f]\{12\}) written to $BK$" "$OUT"
check "backup: mode 0600" [ "$(stat -c %a "$BK")" = 600 ]
check "backup: format, cluster, generation, generation_created" \
	[ "$(jq -c '[.format, .cluster, .generation, .generation_created]' "$BK")" = '["tandem-config-backup/1","edge1",4,1700000000]' ]
check "backup: yaml and ruleset are the cluster's" [ "$(jq --rawfile y "$C/tandem.yaml" --rawfile r "$C/rules.nft" '.yaml == $y and .ruleset == $r' "$BK")" = true ]
check "backup: digest as the cluster computes it" [ "$(jq -r .digest "$BK")" = "$(digest "$C/tandem.yaml" "$C/rules.nft")" ]
check "backup: created is now" [ $(($(jq .created "$BK") - t0)) -ge 0 -a $(($(jq .created "$BK") - t0)) -le 60 ]
check "backup: no temporary file left" [ "$(ls -A "$W" | grep -c '^\.')" -eq 0 ]
sum=$(sha256sum <"$BK")
: >"$LOG"
ctl config backup "$BK"
expect_rc 1 "config backup onto an existing file"
check "backup exists: said, nothing asked, file kept" [ "$(grep -c 'exists (--force replaces it)' "$ERR")" -eq 1 -a "$(nreq)" -eq 0 -a "$(sha256sum <"$BK")" = "$sum" ]
show_answer 7 "$W/new/tandem.yaml" "$W/new/rules.nft" | jq '{"config.show": .}' | answers
ctl --json config backup --force "$BK"
expect_rc 0 "config backup --force"
check "backup --force: replaced" [ "$(jq .generation "$BK")" = 7 ]
check "backup --json" [ "$(jq -c '[.ok, .generation, .cluster, .file]' "$OUT")" = "[true,7,\"edge1\",\"$BK\"]" ]
show_answer 4 "$C/tandem.yaml" "$C/rules.nft" 00000000000000000000000000000000000000000000000000000000000000ff | jq '{"config.show": .}' | answers
ctl config backup "$W/bad-digest.json"
expect_rc 1 "config backup of an answer that does not match its digest"
check "bad digest: no file written" [ ! -e "$W/bad-digest.json" ]
ctl config backup "$W/no-such-dir/b.json"
expect_rc 1 "config backup into a missing directory"

echo "-- config restore"
show_answer 4 "$C/tandem.yaml" "$C/rules.nft" | jq '{"config.show": .}' >"$W/a.json"
jq '. + {"config.apply": {ok: true, generation: 8, changed: true}}' "$W/a.json" | answers
rm -f "$BK"
ctl config backup "$BK"
expect_rc 0 "config backup for restore"
: >"$LOG"
ctl config restore "$BK"
expect_rc 0 "config restore"
check "restore: output" [ "$(cat "$OUT")" = "configuration generation 8 committed on every live node" ]
R=$(last_req)
check "restore: one apply request" [ "$(nreq)" -eq 1 -a "$(echo "$R" | jq -c '[.cmd, .op, .force]')" = '["config","apply",false]' ]
check "restore: source names the backup" [ "$(echo "$R" | jq -r .source)" = "$BK (backup of generation 4)" ]
check "restore: texts of the backup" [ "$(echo "$R" | jq --rawfile y "$C/tandem.yaml" --rawfile r "$C/rules.nft" '.yaml == $y and .ruleset == $r')" = true ]
ctl config restore --force "$BK"
check "restore --force: force true" [ "$(last_req | jq .force)" = true ]

# Damaged and foreign files: a clear error, exit 1, nothing sent.
: >"$LOG"
corrupt() { # NAME JQ-FILTER | - (stdin is the file)
	local f=$W/corrupt-$1.json
	if [ "$2" = - ]; then cat >"$f"; else jq "$2" "$BK" >"$f"; fi
	ctl config restore "$f"
	expect_rc 1 "restore of $1"
	if grep -q "$3" "$ERR"; then ok; else bad "restore of $1: stderr lacks '$3': $(cat "$ERR")"; fi
}
corrupt edited-yaml '.yaml |= sub("heartbeat_ms: 100"; "heartbeat_ms: 90")' "corrupt: the configuration text does not match its digest"
corrupt edited-ruleset '.ruleset |= sub("22"; "23")' "corrupt"
corrupt truncated - "not JSON" < <(head -c 200 "$BK")
corrupt empty - "not JSON" </dev/null
corrupt foreign - "not a Tandem configuration backup" <<<'{"version": 1, "config": "x"}'
corrupt array - "not a JSON object" <<<'[]'
corrupt format-2 '.format = "tandem-config-backup/2"' "is not one this tandemctl reads"
corrupt generation-type '.generation = "4"' '"generation" is of another type'
corrupt no-yaml 'del(.yaml)' '"yaml" is missing'
corrupt digest-short '.digest = "abcd"' '"digest" is not 64'
corrupt other-cluster '.cluster = "edge9"' 'inconsistent backup'
# A well-formed backup whose YAML this tandemctl rejects: diagnostics.
printf 'cluster: {name: edge1, id: 1}\n' >"$W/tiny.yaml"
jq --rawfile y "$W/tiny.yaml" --arg d "$(digest "$W/tiny.yaml" "$W/none")" '.yaml = $y | .ruleset = "" | .digest = $d' "$BK" >"$W/corrupt-invalid.json"
ctl config restore "$W/corrupt-invalid.json"
expect_rc 1 "restore of a backup with an invalid configuration"
check "restore invalid: located diagnostics naming the backup" grep -q "^$W/corrupt-invalid.json (backup of generation 4):[0-9]*:[0-9]*: " "$ERR"
ctl config restore "$W/no-such-backup.json"
expect_rc 1 "restore of a missing file"
check "restore missing: said" grep -q "no-such-backup.json: cannot read" "$ERR"
check "damaged backups sent nothing" [ "$(nreq)" -eq 0 ]
jq '. + {"config.apply": {ok: false, code: "refused", error: "configuration is frozen: an upgrade is in progress"}}' "$W/a.json" | answers
ctl config restore "$BK"
expect_rc 3 "restore refused"

# ---- 4. tandemctl upgrade against the fake tandemd ------------------------
echo "== tests/cli: tandemctl upgrade against a fake control socket"
fx() { python3 tests/cli/upg_fixtures.py "$@"; }
# upg_answers KEY=JSON ...: the answers file; a JSON array value becomes
# a scripted sequence ("_seq") for that key.
upg_answers() {
	local a='{}' kv
	for kv in "$@"; do
		a=$(jq -c --arg k "${kv%%=*}" --argjson v "${kv#*=}" \
			'. + {($k): (if ($v | type) == "array" then {_seq: $v} else $v end)}' <<<"$a")
	done
	echo "$a" >"$ANS"
}
IMG=$W/img/tandem-1.1.0.img
mkdir -p "$W/img"
head -c 1000 /dev/zero >"$IMG"
S_RUN5=$(fx status running 5)
S_RUN5B=$(fx status running 5 5.5 | jq -c '.nodes[1].detail = "waiting to rejoin 13/900 s"')
S_RUN5C=$(fx status running 5 6.0 | jq -c '.nodes[1] += {state: "resyncing", alive: true, detail: "resync 40/300 s"}')
S_RUN8=$(fx status running 8)
S_DONE=$(fx status completed 0)
S_FAIL=$(fx status failed 5)
S_IDLE='{"ok":true,"state":"idle"}'
S_OTHER=$(fx status completed 0 | jq -c '.id = 122')

echo "-- upgrade: usage errors send nothing"
: >"$LOG"
for args in "upgrade" "upgrade frob" "upgrade plan" "upgrade start" "upgrade plan --image" \
	"upgrade start --detach" "upgrade status --detach" "upgrade abort now" "upgrade rollback --node" \
	"upgrade finalize --force" "upgrade report --probe-log" "upgrade report --watch" \
	"upgrade plan --image a --image b" "upgrade status --image $IMG" "upgrade plan --image $IMG --detach"; do
	# shellcheck disable=SC2086
	ctl $args
	expect_rc 2 "tandemctl $args"
done
check "upgrade usage errors sent no request" [ "$(nreq)" -eq 0 ]
ctl upgrade report --probe-log "$W/no-such-probe.log"
expect_rc 1 "upgrade report with a missing probe log"
check "missing probe log: nothing sent" [ "$(nreq)" -eq 0 ]
# A missing image is the cluster's pre-check to report (E_IMAGE_MISSING,
# with every other check): its absolute path is sent, relative or not.
ctl_abs=$(realpath "$CTL")
(cd "$W/img" && "$ctl_abs" --socket "$SOCK" upgrade plan --image missing.img >"$OUT" 2>"$ERR")
check "missing image: sent as an absolute path" \
	[ "$(last_req | jq -r '.image')" = "$W/img/missing.img" ]
"$CTL" --help | grep -q 'upgrade start --image FILE'
check "--help lists upgrade start" [ $? -eq 0 ]

echo "-- upgrade plan"
upg_answers "upgrade.plan=$(fx plan ok)"
CTL_ABS=$(realpath "$CTL")
(cd "$W/img" && "$CTL_ABS" --socket "$SOCK" upgrade plan --image tandem-1.1.0.img >"$OUT" 2>"$ERR")
RC=$?
expect_rc 0 "upgrade plan, every check passing"
check "plan: the request, image made absolute" [ "$(last_req | jq -cS .)" = "$(jq -cnS --arg i "$IMG" '{cmd: "upgrade", op: "plan", image: $i, force: false, disruptive: false, no_failback: false}')" ]
check "plan: header" grep -qx 'upgrade plan: 1.0.0 -> 1.1.0, in service (node by node, traffic kept)' "$OUT"
check "plan: image line" grep -qx "image: $IMG, version 1.1.0, 2.2 MiB, digest abababababababab" "$OUT"
check "plan: four PASS rows" [ "$(grep -cE '^  PASS  E_[A-Z_]+ +[A-Za-z]' "$OUT")" -eq 4 ]
check "plan: disk check row" grep -qE '^  PASS  E_DISK_SPACE +free space >= 2 x image on every node \(min 10.2 GiB on gw2\)$' "$OUT"
check "plan: twelve numbered steps in order" [ "$(grep -E '^ +[0-9]+\. ' "$OUT" | awk '{print $1}' | tr '\n' ' ')" = "0. 1. 2. 3. 4. 5. 6. 7. 8. 9. 10. 11. " ]
check "plan: step text" grep -qE '^ +5\. upgrade gw2$' "$OUT"
check "plan: verdict" grep -qx 'all 4 checks passed: `tandemctl upgrade start` with these options runs these 12 steps' "$OUT"
ctl upgrade plan --image "$IMG" --force --disruptive --no-failback
check "plan: flags sent" [ "$(last_req | jq -c '[.force, .disruptive, .no_failback]')" = '[true,true,true]' ]
ctl --json upgrade plan --image="$IMG"
expect_rc 0 "upgrade plan --json"
check "plan --json: the answer as sent" [ "$(jq -cS . "$OUT")" = "$(fx plan ok | jq -cS .)" ]
upg_answers "upgrade.plan=$(fx plan fail)"
ctl upgrade plan --image "$IMG"
expect_rc 3 "upgrade plan with two failed checks"
check "plan fail: both FAIL rows" [ "$(grep -cE '^  FAIL  ' "$OUT")" -eq 2 ]
check "plan fail: disk space row" grep -qE '^  FAIL  E_DISK_SPACE +gw2 has 1.1 MiB free' "$OUT"
check "plan fail: CPU row" grep -qE '^  FAIL  E_CPU +gw1 CPU at 93%' "$OUT"
check "plan fail: passing checks shown too" [ "$(grep -cE '^  PASS  ' "$OUT")" -eq 2 ]
check "plan fail: verdict" grep -qx '2 of 4 checks failed: the upgrade would be refused' "$OUT"
ctl --json upgrade plan --image "$IMG"
expect_rc 3 "upgrade plan --json with failed checks"
check "plan fail --json: all_ok false" [ "$(jq -c .all_ok "$OUT")" = false ]

echo "-- upgrade start"
REFUSE='{"ok":false,"code":"refused","error":"2 pre-checks failed","upgrade_code":"E_DISK_SPACE","checks":[{"code":"E_DISK_SPACE","ok":false,"message":"gw2 has 1.1 MiB free, needs 4.4 MiB"},{"code":"E_PEER_DOWN","ok":true,"message":"every peer alive"},{"code":"E_CPU","ok":false,"message":"gw1 CPU at 93% over 5 s"}]}'
upg_answers "upgrade.start=$REFUSE" "upgrade.status=$S_RUN5"
: >"$LOG"
ctl upgrade start --image "$IMG"
expect_rc 3 "upgrade start refused"
check "start refused: sentence and upgrade code" grep -qx 'tandemctl: refused: 2 pre-checks failed (E_DISK_SPACE)' "$ERR"
check "start refused: the two failed checks, not the passing one" [ "$(grep -cE '^  FAIL  E_(DISK_SPACE|CPU) ' "$ERR")" -eq 2 -a "$(grep -c E_PEER_DOWN "$ERR")" -eq 0 ]
check "start refused: no status asked" [ "$(nreq)" -eq 1 ]
check "start: the request" [ "$(last_req | jq -cS .)" = "$(jq -cnS --arg i "$IMG" '{cmd: "upgrade", op: "start", image: $i, force: false, disruptive: false, no_failback: false}')" ]
ctl --json upgrade start --image "$IMG"
expect_rc 3 "upgrade start refused --json"
check "start refused --json: the answer on stdout" [ "$(jq -c .upgrade_code "$OUT")" = '"E_DISK_SPACE"' ]
upg_answers 'upgrade.start={"ok":false,"code":"usage","error":"the image path must be absolute"}'
ctl upgrade start --image "$IMG"
expect_rc 2 "upgrade start, usage error from the daemon"
upg_answers 'upgrade.start={"ok":false,"code":"failed","error":"cannot record the journal: No space left on device"}'
ctl upgrade start --image "$IMG"
expect_rc 1 "upgrade start, failure from the daemon"
check "start failed: said" grep -q 'failed: cannot record the journal' "$ERR"

upg_answers 'upgrade.start={"ok":true,"id":123}' "upgrade.status=$S_RUN5"
: >"$LOG"
ctl upgrade start --image "$IMG" --detach --no-failback
expect_rc 0 "upgrade start --detach"
check "start --detach: output" [ "$(cat "$OUT")" = "upgrade 123 started" ]
check "start --detach: one request, no_failback sent" [ "$(nreq)" -eq 1 -a "$(last_req | jq .no_failback)" = true ]
ctl --json upgrade start --image "$IMG" --detach
check "start --detach --json: the answer" [ "$(jq -c . "$OUT")" = '{"ok":true,"id":123}' ]

echo "-- upgrade status"
upg_answers "upgrade.status=$S_RUN5"
ctl upgrade status
expect_rc 0 "upgrade status"
check "status: the request" [ "$(last_req | jq -cS .)" = '{"cmd":"upgrade","op":"status"}' ]
check "status: header" grep -qx 'upgrade 123: running, 1.0.0 -> 1.1.0, coordinator gw1, elapsed 4.28 s, not finalized' "$OUT"
check "status: phase" grep -qx 'phase: upgrade gw2' "$OUT"
check "status: freeze and protocol" grep -qx 'configuration frozen; protocol level 1 (old 1, new 2)' "$OUT"
check "status: node gw2 row" grep -qE '^  gw2 +restarting +1\.0\.0 +no +waiting to rejoin 12/900 s$' "$OUT"
check "status: node gw1 row" grep -qE '^  gw1 +pending +1\.0\.0 +yes$' "$OUT"
check "status: five done steps with durations" [ "$(grep -cE '^  ✓ +[0-4] .* (0\.20|2\.00) s$' "$OUT")" -eq 5 ]
check "status: the running step" grep -qE '^  ▶ +5 upgrade gw2 +running for 1\.23 s$' "$OUT"
check "status: progress bar of the running step's node" grep -qE '^ +gw2 +\[#+\.+\] restarting: waiting to rejoin 12/900 s$' "$OUT"
check "status: six pending steps" [ "$(grep -cE '^  · +([6-9]|1[01]) ' "$OUT")" -eq 6 ]
check "status: no error when none" [ "$(grep -c '^error' "$OUT")" -eq 0 ]
ctl --json upgrade status
expect_rc 0 "upgrade status --json"
check "status --json: the answer without ok" [ "$(jq -cS . "$OUT")" = "$(echo "$S_RUN5" | jq -cS 'del(.ok)')" ]
ctl upgrade status --json
check "status --json after the subcommand" [ "$(jq -r .state "$OUT")" = running ]
upg_answers "upgrade.status=$S_FAIL"
ctl upgrade status
expect_rc 0 "upgrade status of a failed upgrade"
check "status failed: failed step marked with its time" grep -qE '^  ✗ +5 upgrade gw2 +failed after 9\.00 s$' "$OUT"
check "status failed: rollback step" grep -qE '^  ✓ +12 revert gw2 to 1\.0\.0 +20\.0 s  \[rollback\]$' "$OUT"
check "status failed: error with code and step" grep -qx 'error E_REJOIN_TIMEOUT at step 5: gw2 did not come back on 1.1.0 within 900 s' "$OUT"
check "status failed: recovery" grep -qx '  recovery: gw2 was reverted to 1.0.0; every node runs 1.0.0 with service kept' "$OUT"
upg_answers "upgrade.status=$S_IDLE"
ctl upgrade status
expect_rc 0 "upgrade status, idle"
check "status idle: said" grep -q '^no upgrade in progress' "$OUT"

echo "-- upgrade status --watch"
# Running, the same with only a counter ticking, a dropped connection
# (the node restarts), resyncing, the next upgrade step, completed.
upg_answers "upgrade.status=[$S_RUN5,$S_RUN5B,{\"_close\":true},$S_RUN5C,$S_RUN8,$S_DONE]"
: >"$LOG"
t0=$(date +%s%N)
ctl upgrade status --watch
t1=$(date +%s%N)
expect_rc 0 "status --watch ending completed"
check "watch: polled every 0.5 s (6 answers in >= 2.3 s)" [ $(((t1 - t0) / 1000000)) -ge 2300 ]
check "watch: six status requests" [ "$(nreq)" -eq 6 ]
check "watch: no ANSI codes when not a terminal" [ "$(grep -c $'\033' "$OUT")" -eq 0 ]
check "watch: the header once while running, again when completed" [ "$(grep -c 'upgrade 123: running' "$OUT")" -eq 1 -a "$(grep -c 'upgrade 123: completed' "$OUT")" -eq 1 ]
check "watch: a ticking counter is not an event" [ "$(grep -c '13/900' "$OUT")" -eq 0 ]
check "watch: lines stamped with the upgrade's elapsed time" grep -qE '^\[ +6\.00 s\] gw2 +resyncing +1\.0\.0 +yes +resync 40/300 s$' "$OUT"
check "watch: the silence said once, the return too" [ "$(grep -c '^tandemd not answering' "$OUT")" -eq 1 -a "$(grep -c '^tandemd answering again' "$OUT")" -eq 1 ]
check "watch: step 5 done when it ends" grep -qE '^\[ +34\.8 s\] ✓ +5 upgrade gw2 +30\.0 s$' "$OUT"
check "watch: step 5 line printed twice only (running, done)" [ "$(grep -cE '[✓▶] +5 upgrade gw2' "$OUT")" -eq 2 ]
check "watch: the verdict" grep -q '^upgrade 123 completed in 64.3 s: every node runs 1.1.0' "$OUT"
upg_answers "upgrade.status=[$S_RUN5,$S_FAIL]"
ctl upgrade status --watch
expect_rc 1 "status --watch ending failed"
check "watch failed: error and recovery on stderr" [ "$(grep -c 'upgrade 123 failed: E_REJOIN_TIMEOUT at step 5: gw2 did not come back' "$ERR")" -eq 1 -a "$(grep -c '  recovery: gw2 was reverted' "$ERR")" -eq 1 ]
upg_answers "upgrade.status=[$S_RUN5,$(fx status failed 5 | jq -c '.state = "aborted"')]"
ctl upgrade status --watch
expect_rc 1 "status --watch ending aborted"
upg_answers "upgrade.status=$S_IDLE"
ctl upgrade status --watch
expect_rc 0 "status --watch with nothing running"
upg_answers "upgrade.status=[$S_RUN5,$S_RUN8,$S_DONE]"
ctl --json upgrade status --watch
expect_rc 0 "status --watch --json"
check "watch --json: one JSON object per change" [ "$(jq -sc 'map(.state)' "$OUT")" = '["running","running","completed"]' ]
# On a terminal: redrawn in place.
if command -v script >/dev/null; then
	upg_answers "upgrade.status=[$S_RUN5,$S_DONE]"
	script -qec "$CTL --socket $SOCK upgrade status --watch" /dev/null >"$OUT" 2>"$ERR"
	RC=$?
	expect_rc 0 "status --watch on a terminal"
	check "watch on a terminal: cleared and redrawn twice" [ "$(grep -o $'\033\[H\033\[2J' "$OUT" | wc -l)" -eq 2 ]
fi
# Ctrl-C ends watching with 0.
upg_answers "upgrade.status=$S_RUN5"
"$CTL" --socket "$SOCK" upgrade status --watch >"$OUT" 2>"$ERR" &
wpid=$!
sleep 1.2
kill -INT "$wpid"
wait "$wpid"
RC=$?
expect_rc 0 "status --watch interrupted"
check "watch interrupted: said" grep -q '^stopped watching; the upgrade goes on' "$OUT"
# A daemon silent for 30 s: exit 1 (bounded).
upg_answers 'upgrade.status={"_close":true}'
t0=$(date +%s)
ctl upgrade status --watch
t1=$(date +%s)
expect_rc 1 "status --watch, daemon silent"
check "silent: gave up after 30..35 s ($((t1 - t0)) s)" [ $((t1 - t0)) -ge 30 -a $((t1 - t0)) -le 35 ]
check "silent: said" grep -q 'has not answered for 30 s' "$ERR"

echo "-- upgrade start, followed"
upg_answers 'upgrade.start={"ok":true,"id":123}' "upgrade.status=[$S_OTHER,$S_RUN5,$S_RUN8,$S_DONE]"
ctl upgrade start --image "$IMG"
expect_rc 0 "upgrade start followed to completion"
check "start: started line first" [ "$(sed -n 1p "$OUT")" = "upgrade 123 started" ]
check "start: the previous upgrade (122) is not taken for this one" [ "$(grep -c 'upgrade 122' "$OUT")" -eq 0 ]
check "start: the verdict" grep -q '^upgrade 123 completed in 64.3 s' "$OUT"
upg_answers 'upgrade.start={"ok":true,"id":123}' "upgrade.status=[$S_RUN5,$S_FAIL]"
ctl upgrade start --image "$IMG"
expect_rc 1 "upgrade start that fails"
check "start failed: error and recovery" [ "$(grep -c 'E_REJOIN_TIMEOUT' "$ERR")" -eq 1 -a "$(grep -c 'recovery: gw2 was reverted' "$ERR")" -eq 1 ]

echo "-- upgrade abort, rollback, finalize"
upg_answers 'upgrade.abort={"ok":true,"id":123,"message":"upgrade 123: aborting; upgraded nodes roll back, standby first"}' \
	'upgrade.rollback={"ok":true,"id":123,"message":"upgrade 123: gw2 returns to 1.0.0"}' \
	'upgrade.finalize={"ok":false,"code":"refused","error":"gw1 does not run 1.1.0 yet"}'
ctl upgrade abort
expect_rc 0 "upgrade abort"
check "abort: request and message" [ "$(last_req | jq -cS .)" = '{"cmd":"upgrade","op":"abort"}' -a "$(cat "$OUT")" = "upgrade 123: aborting; upgraded nodes roll back, standby first" ]
ctl upgrade rollback --node gw2
expect_rc 0 "upgrade rollback --node"
check "rollback: node sent" [ "$(last_req | jq -cS .)" = '{"cmd":"upgrade","node":"gw2","op":"rollback"}' ]
check "rollback: message" [ "$(cat "$OUT")" = "upgrade 123: gw2 returns to 1.0.0" ]
ctl --json upgrade rollback
check "rollback --json: the answer; no node sent" [ "$(jq -r .message "$OUT")" = "upgrade 123: gw2 returns to 1.0.0" -a "$(last_req | jq 'has("node")')" = false ]
ctl upgrade finalize
expect_rc 3 "upgrade finalize refused"
check "finalize refused: reason" grep -qx 'tandemctl: refused: gw1 does not run 1.1.0 yet' "$ERR"
upg_answers 'upgrade.finalize={"ok":true,"id":123,"message":"upgrade 123 finalized: the cluster speaks protocol level 2"}'
ctl upgrade finalize
expect_rc 0 "upgrade finalize"
check "finalize: message" [ "$(cat "$OUT")" = "upgrade 123 finalized: the cluster speaks protocol level 2" ]

echo "-- upgrade report"
for k in covering drops late nosummary; do fx probe $k >"$W/probe-$k.log"; done
upg_answers "upgrade.status=$S_DONE"
ctl upgrade report
expect_rc 0 "upgrade report"
check "report: header" grep -qx 'upgrade 123: completed, 1.0.0 -> 1.1.0' "$OUT"
check "report: one row per step" [ "$(grep -cE '^ +[0-9]+ [a-z]' "$OUT")" -eq 12 ]
check "report: step 5's offset and duration" grep -qE '^ +5 upgrade gw2 +\+3\.05 s +30\.0 s$' "$OUT"
check "report: step 8's offset" grep -qE '^ +8 upgrade gw1 +\+33\.6 s +30\.0 s$' "$OUT"
check "report: total, restarts vs overhead" grep -qx 'total 64.3 s: node restarts and resync (upgrade/revert steps) 60.0 s (93%), coordinator overhead 4.35 s (7%, of which 0.55 s between steps)' "$OUT"
check "report: no traffic section without a log" [ "$(grep -c 'zero drops' "$OUT")" -eq 0 ]
ctl upgrade report --probe-log "$W/probe-covering.log"
expect_rc 0 "upgrade report with a covering probe log"
check "report: the 37 ms gap in step 5" grep -qE '^ +5 upgrade gw2 .* 37 ms +0 +0 +0$' "$OUT"
check "report: the 21 ms gap in step 8" grep -qE '^ +8 upgrade gw1 .* 21 ms +0 +0 +0$' "$OUT"
check "report: no gap in the other steps" [ "$(grep -cE '^ +[0-9]+ .* 0 ms +0 +0 +0$' "$OUT")" -eq 10 ]
check "report: totals over the upgrade (the 900 ms gap after it is not counted)" grep -qx '  during the upgrade: longest gap 37 ms; resets 0, connections lost 0, failed new connections 0' "$OUT"
check "report: zero drops" grep -q '^  zero drops: ' "$OUT"
ctl --json upgrade report --probe-log "$W/probe-covering.log"
expect_rc 0 "upgrade report --json"
check "report --json: per-step gaps" [ "$(jq -c '[.steps[].probe.max_gap_ms]' "$OUT")" = '[0,0,0,0,0,37,0,0,21,0,0,0]' ]
check "report --json: zero_drops, covers, totals" [ "$(jq -c '[.probe.zero_drops, .probe.covers_upgrade, .probe.totals.max_gap_ms, .total_ms, .restart_resync_ms]' "$OUT")" = '[true,true,37,64350,60000]' ]
ctl upgrade report --probe-log "$W/probe-drops.log"
expect_rc 0 "upgrade report with drops"
check "drops: not called zero drops" [ "$(grep -c 'zero drops' "$OUT")" -eq 0 ]
check "drops: counted" grep -qx '  DROPS during the upgrade: resets 1, connections lost 1, failed new connections 0' "$OUT"
check "drops: the lost connection in step 5, the reset in step 8" [ "$(grep -cE '^ +5 upgrade gw2 .* 37 ms +0 +1 +0$' "$OUT")" -eq 1 -a "$(grep -cE '^ +8 upgrade gw1 .* 21 ms +1 +0 +0$' "$OUT")" -eq 1 ]
ctl upgrade report --probe-log "$W/probe-late.log"
check "late log: not zero drops, says why" [ "$(grep -c 'zero drops' "$OUT")" -eq 0 -a "$(grep -c '^  not proven: the probe log starts 2000 ms after the upgrade began$' "$OUT")" -eq 1 ]
ctl --json upgrade report --probe-log "$W/probe-nosummary.log"
check "no summary: not zero drops, says why" [ "$(jq -c '[.probe.zero_drops, (.probe.missing[0] | test("no summary line"))]' "$OUT")" = '[false,true]' ]
upg_answers "upgrade.status=$S_RUN8"
ctl upgrade report --probe-log "$W/probe-covering.log"
expect_rc 0 "upgrade report of a running upgrade"
check "running: not zero drops, the upgrade has not ended" [ "$(grep -c 'zero drops' "$OUT")" -eq 0 -a "$(grep -c 'not proven: the upgrade has not ended' "$OUT")" -eq 1 ]
check "running: said in the header" grep -q '(still going on: times so far)' "$OUT"
upg_answers "upgrade.status=$S_FAIL"
ctl upgrade report
expect_rc 0 "upgrade report of a failed upgrade"
check "failed: revert counted as restart time" grep -q 'node restarts and resync (upgrade/revert steps) 29.0 s' "$OUT"
check "failed: the error" grep -q '^error E_REJOIN_TIMEOUT at step 5' "$OUT"
upg_answers "upgrade.status=$S_DONE"
{ head -n 2 "$W/probe-covering.log"; echo '{"t_ms": "soon", "kind": "gap"}'; } >"$W/probe-bad.log"
ctl upgrade report --probe-log "$W/probe-bad.log"
expect_rc 1 "upgrade report with a malformed probe log"
check "malformed log: FILE:LINE said" grep -q "probe-bad.log:3: not a probe event" "$ERR"
check "malformed log: no report printed" [ ! -s "$OUT" ]
upg_answers "upgrade.status=$S_IDLE"
ctl upgrade report
expect_rc 1 "upgrade report with no upgrade"
check "no upgrade: said" grep -q 'no upgrade to report on' "$ERR"

"$CTL" --socket "$W/no-such.sock" upgrade status >"$OUT" 2>"$ERR"
RC=$?
expect_rc 1 "upgrade status with no daemon"

echo "tests/cli: $pass checks passed, $fail failed"
[ -n "${CLI_TEST_KEEP:-}" ] && { trap - EXIT; kill "$FAKE_PID"; echo "kept $W" >&2; }
[ "$fail" -eq 0 ]
