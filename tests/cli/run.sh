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

echo "tests/cli: $pass checks passed, $fail failed"
[ -n "${CLI_TEST_KEEP:-}" ] && { trap - EXIT; kill "$FAKE_PID"; echo "kept $W" >&2; }
[ "$fail" -eq 0 ]
