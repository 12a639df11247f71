#!/usr/bin/env bash
# test_image.sh BUILD_DIR - the node-level half of an upgrade (SPEC sections
# 2 and 5, issue 4) on two lab gateways, gw2's state directory on a tmpfs:
#
# (a) first start: the started binary (V0, BUILD_DIR) becomes the active
#     version in the state dir, confirmed;
# (b) the same source built as V1 (make VERSION=V1, sanitized when BUILD_DIR
#     is) and signed as an image: `image install --restart` on gw2 restarts
#     it into V1: its status says V1, gw1 sees gw2 run V1, gw2 rejoins and
#     confirms V1, group 1 stays served by gw1 (VIPs never move);
# (c) an image whose tandemd exits at once (passes the install's checks):
#     gw2 reverts to V1 by itself within REVERT_LIMIT_MS, rejoins, and
#     records why (image list, events);
# (d) an image whose tandemd runs but never confirms: reverted when the hold
#     timer (HOLD_S) runs out, with that reason;
# (e) the same start command after a stop (BUILD_DIR's V0 binary) comes up
#     in the active version V1;
# (f) the disk: an install without 2 x the image size free is refused
#     (exit 3) with nothing changed; the disk filling up during an install
#     (TANDEMD_FAILPOINT=image.install.fill_disk: after the free-space
#     check, the helper fills the tmpfs as another writer would) is
#     reported as ENOSPC, leaves no partial version, boot.json unchanged,
#     gw2 running V1; once space is back the same install succeeds.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
lab_init "${1:-}" tandemd tandemctl

HOLD_S=15 # long enough for (b) to confirm on a loaded machine; (d) waits it out
REVERT_LIMIT_MS=10000  # 3 starts of a binary that exits at once, 0.5 + 1 s backoff
TMPFS_MB=96

V0=$("$LAB_BUILD/tandemd" --version | awk '{print $2}')
[[ $V0 =~ ^([0-9]+)\.([0-9]+)(\.[0-9]+)?$ ]] || lab_fail "cannot read the version of $LAB_BUILD/tandemd ('$V0')"
MAJ=${BASH_REMATCH[1]} MIN=${BASH_REMATCH[2]}
V1=$MAJ.$((MIN + 1)).0 V2=$MAJ.$((MIN + 2)).0 V3=$MAJ.$((MIN + 3)).0 V4=$MAJ.$((MIN + 4)).0
SAN=0
# (grep reads all of nm: with -q, nm would die of SIGPIPE under pipefail.)
nm "$LAB_BUILD/tandemd" 2>/dev/null | grep __asan_init >/dev/null && SAN=1
B1=${TL_IMAGE_NEXT_BUILD:-$LAB_BUILD-$V1}
echo "building $V1 into $B1 (SAN=$SAN)" >&2
make -s -C "$LAB_REPO" -j2 SAN=$SAN VERSION="$V1" B="$B1" "$B1/tandemd" "$B1/tandemctl" \
	>"/tmp/${P}image-make.log" 2>&1 || { tail -30 "/tmp/${P}image-make.log" >&2; lab_fail "make VERSION=$V1 failed"; }
"$B1/tandemd" --version | grep -qF "tandemd $V1 " || lab_fail "$B1/tandemd is not $V1"

lab_up 2
echo "  hold_timer_s: $HOLD_S" >>"$LAB_DIR/tandem.yaml" # the upgrade section is the last
MNT=$LAB_DIR/gw2.state
mkdir -p "$MNT"
mount -t tmpfs -o size=${TMPFS_MB}m,mode=0700 "${P}gw2-state" "$MNT" || lab_fail "cannot mount a tmpfs on $MNT"
_img_exit() {
	local rc=$? bad=0
	if [ "$LAB_UP" = 1 ]; then
		lab_down || bad=$?
		LAB_UP=0
	fi
	umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	[ "$bad" -gt 0 ] && [ "$rc" = 0 ] && rc=1
	(exit "$rc")
	_lab_exit
}
trap _img_exit EXIT

CTL="$LAB_BUILD/tandemctl"
ictl() { # NODE ARGS... : tandemctl with room for an install and a restart
	local i=$1
	shift
	timeout 90 "$CTL" --socket "$(lab_sock "$i")" "$@"
}
ilist() { lab_ctl "$1" --json image list 2>/dev/null; }
peer_version() { lab_status "$1" 2>/dev/null | jq -r --arg n "$2" '.peers[] | select(.node == $n) | .version'; }
peer_runs() { [ "$(peer_version "$1" "$2")" = "$3" ]; }
state_sum() { # what an install must not change: boot.json and the version dirs
	(cd "$MNT" && sha256sum boot.json && find versions -printf '%p %s\n' | sort) | sha256sum | cut -c1-16
}

# ---- images ------------------------------------------------------------------
K=$LAB_DIR/signing.key
"$CTL" image keygen --out "$K" >/dev/null || lab_fail "image keygen"
cp "$K.pub" "$LAB_DIR/trusted.d/lab.pub"
mkdir -p "$LAB_DIR/src1/bin" "$LAB_DIR/src2/bin" "$LAB_DIR/src4/bin"
cp "$B1/tandemd" "$B1/tandemctl" "$LAB_DIR/src1/bin/"
"$CTL" image build --version "$V1" --from "$LAB_DIR/src1" --key "$K" --out "$LAB_DIR/img-$V1" >/dev/null ||
	lab_fail "image build $V1"
# V2: passes `--version` (image build) and `--check-config` (install),
# then dies at every start.
cat >"$LAB_DIR/src2/bin/tandemd" <<EOF
#!/bin/sh
case "\$1" in
--version) echo "tandemd $V2 (protocol 1..1)"; exit 0 ;;
--check-config) echo "configuration valid"; exit 0 ;;
esac
echo "tandemd $V2: broken on purpose" >&2
exit 1
EOF
# V4: starts and runs, but never confirms (a version that hangs).
sed -e "s/$V2/$V4/g" -e 's/^exit 1$/exec sleep 600/' "$LAB_DIR/src2/bin/tandemd" >"$LAB_DIR/src4/bin/tandemd"
for s in 2 4; do
	cp "$B1/tandemctl" "$LAB_DIR/src$s/bin/"
	chmod 755 "$LAB_DIR/src$s/bin/tandemd"
done
"$CTL" image build --version "$V2" --from "$LAB_DIR/src2" --key "$K" --out "$LAB_DIR/img-$V2" >/dev/null ||
	lab_fail "image build $V2"
"$CTL" image build --version "$V4" --from "$LAB_DIR/src4" --key "$K" --out "$LAB_DIR/img-$V4" >/dev/null ||
	lab_fail "image build $V4"
# V3 (for the disk): V1's files under another version (never activated).
"$CTL" image build --version "$V3" --proto 1..1 --from "$LAB_DIR/src1" --key "$K" \
	--out "$LAB_DIR/img-$V3" >/dev/null || lab_fail "image build $V3"

# ---- (a) first start ---------------------------------------------------------
lab_start_node 1
lab_start_node 2
lab_wait_primary 1 gw1 15 >/dev/null || lab_fail "(a) gw1 is not primary of group 1"
lab_wait_ready 2 1 10 || lab_fail "(a) gw2 did not settle"
j=$(ilist 2)
lab_expect "(a) gw2 active version" "$(jq -r .active <<<"$j")" == "$V0"
lab_expect "(a) gw2 active version confirmed" "$(jq -r .confirmed <<<"$j")" == true
lab_expect "(a) gw2 versions installed" "$(jq -r '[.installed[] | "\(.version):\(.role):\(.source)"] | join(",")' <<<"$j")" == "$V0:active:adopted"
lab_expect "(a) the adopted tandemd is the started one" \
	"$(cmp -s "$LAB_BUILD/tandemd" "$MNT/versions/$V0/bin/tandemd" && echo same)" == same
lab_expect "(a) gw2 supervised (worker is a child of the started process)" \
	"$(pgrep -P "${LAB_PID[2]}" -f -- '--worker' | wc -l)" -eq 1
G1_EVENTS=$(lab_group_events 1)

# ---- (b) install and restart into V1 --------------------------------------------
echo "(b) gw2: image install $V1 --restart" >&2
out=$(ictl 2 --json image install "$LAB_DIR/img-$V1" --restart 2>"$LAB_DIR/b.err")
rc=$?
lab_expect "(b) install --restart exit code" "$rc" -eq 0 || cat "$LAB_DIR/b.err" >&2
RESTART_MS=$(jq -r '.restart_ms // "none"' <<<"$out")
CONFIRM_MS=$(jq -r '.confirm_ms // "none"' <<<"$out")
echo "  (b) restart: answering on $V1 after $RESTART_MS ms, confirmed after $CONFIRM_MS ms" >&2
lab_expect "(b) gw2 status version" "$(lab_status 2 | jq -r .version)" == "$V1"
lab_wait_until 5 peer_runs 1 gw2 "$V1"
lab_expect "(b) gw1 sees gw2 run" "$(peer_version 1 gw2)" == "$V1"
lab_expect "(b) gw1 sees gw2" "$(lab_peer_state 1 gw2)" == alive
lab_wait_ready 2 1 10
lab_expect "(b) gw2 group 1 state" "$(lab_group_state 2 1)" == secondary
lab_expect "(b) group 1 still served by gw1 alone" "$(lab_vips_only_on gw1 && echo yes)" == yes
lab_expect "(b) gw1's groups did not change state" "$(lab_group_events 1)" -eq "$G1_EVENTS"
j=$(ilist 2)
lab_expect "(b) gw2 boot record" "$(jq -r '"\(.active) \(.previous) \(.confirmed)"' <<<"$j")" == "$V1 $V0 true"
lab_expect "(b) gw2 versions" "$(jq -r '[.installed[] | "\(.version):\(.role)"] | join(",")' <<<"$j")" == "$V1:active,$V0:previous"
lab_expect "(b) gw2 logged the confirmation" "$(grep -c "event=version.confirmed .*version=$V1" "$LAB_DIR/gw2.log")" -eq 1

# ---- (b2) rollback without the image: the previous version, and back ----------
echo "(b2) gw2: image activate $V0 --restart (the previous version), then $V1 again" >&2
out=$(ictl 2 --json image activate "$V0" --restart 2>"$LAB_DIR/b2.err")
lab_expect "(b2) activate $V0 --restart: exit code" "$?" -eq 0 || cat "$LAB_DIR/b2.err" >&2
lab_expect "(b2) gw2 runs" "$(lab_status 2 | jq -r .version)" == "$V0"
lab_expect "(b2) gw2 boot record" "$(ilist 2 | jq -r '"\(.active) \(.previous) \(.confirmed)"')" == "$V0 $V1 true"
out=$(ictl 2 --json image activate "$V1" --restart 2>"$LAB_DIR/b2.err")
lab_expect "(b2) activate $V1 --restart: exit code" "$?" -eq 0 || cat "$LAB_DIR/b2.err" >&2
lab_expect "(b2) gw2 runs" "$(lab_status 2 | jq -r .version)" == "$V1"
lab_wait_until 5 peer_runs 1 gw2 "$V1"
ictl 2 image activate "$V1" >/dev/null 2>"$LAB_DIR/b2.err"
lab_expect "(b2) activating the active version: exit code (refused)" "$?" -eq 3
lab_expect "(b2) group 1 still served by gw1 alone" "$(lab_vips_only_on gw1 && echo yes)" == yes

# ---- (c) an image whose tandemd exits at once ------------------------------------
echo "(c) gw2: image install $V2 --restart ($V2 exits at once)" >&2
out=$(ictl 2 --json image install "$LAB_DIR/img-$V2" --restart 2>"$LAB_DIR/c.err")
rc=$?
lab_expect "(c) install --restart of a broken version: exit code" "$rc" -eq 1
REVERT_MS=$(jq -r '.revert_ms // "none"' <<<"$out")
echo "  (c) $(cat "$LAB_DIR/c.err")" >&2
lab_expect "(c) reverted by itself within ${REVERT_LIMIT_MS} ms" "$REVERT_MS" -lt "$REVERT_LIMIT_MS"
lab_expect "(c) gw2 runs" "$(lab_status 2 | jq -r .version)" == "$V1"
j=$(ilist 2)
lab_expect "(c) boot record after the revert" "$(jq -r '"\(.active) \(.previous) \(.confirmed)"' <<<"$j")" == "$V1 $V2 true"
lab_expect "(c) last revert" "$(jq -r '"\(.last_revert.from)->\(.last_revert.to)"' <<<"$j")" == "$V2->$V1"
reason=$(jq -r .last_revert.reason <<<"$j")
echo "  (c) recorded reason: $reason" >&2
lab_expect "(c) the reason says how it failed" "$(grep -c "started 3 times .*exited with status 1" <<<"$reason")" -eq 1
lab_expect "(c) tandemctl events shows the revert" \
	"$(lab_ctl 2 --json events 2>/dev/null | grep -c "\"version.revert\"")" -ge 1
lab_expect "(c) starts of $V2 counted" "$(grep -c "event=version.trial_start .*version=$V2" "$LAB_DIR/gw2.log")" -eq 3
lab_wait_until 10 peer_runs 1 gw2 "$V1"
lab_expect "(c) gw2 rejoined: gw1 sees it alive on" "$(lab_peer_state 1 gw2) $(peer_version 1 gw2)" == "alive $V1"
lab_wait_ready 2 1 10
lab_expect "(c) group 1 still served by gw1 alone" "$(lab_vips_only_on gw1 && echo yes)" == yes

# ---- (d) an image whose tandemd never confirms -----------------------------------
echo "(d) gw2: image install $V4 --restart ($V4 runs but never confirms; hold timer $HOLD_S s)" >&2
t0=$(lab_now_ms)
out=$(ictl 2 --json image install "$LAB_DIR/img-$V4" --restart 2>"$LAB_DIR/d.err")
rc=$?
dt=$(($(lab_now_ms) - t0))
lab_expect "(d) exit code" "$rc" -eq 1
echo "  (d) $(cat "$LAB_DIR/d.err")" >&2
lab_expect "(d) reverted after the hold timer (ms)" "$dt" -ge $((HOLD_S * 1000))
lab_expect "(d) and not much later (ms)" "$dt" -lt $((HOLD_S * 1000 + 8000))
j=$(ilist 2)
lab_expect "(d) last revert" "$(jq -r '"\(.last_revert.from)->\(.last_revert.to)"' <<<"$j")" == "$V4->$V1"
lab_expect "(d) the reason names the hold timer" \
	"$(jq -r .last_revert.reason <<<"$j" | grep -c "not confirmed healthy within hold_timer_s ($HOLD_S s)")" -eq 1
lab_expect "(d) gw2 runs" "$(lab_status 2 | jq -r .version)" == "$V1"
lab_wait_until 10 peer_runs 1 gw2 "$V1"

# ---- (e) the same start command comes up in the active version --------------------
echo "(e) gw2 stopped and started again with $LAB_BUILD/tandemd ($V0)" >&2
lab_stop_node 2
lab_start_node 2
lab_expect "(e) gw2 runs the active version" "$(lab_status 2 | jq -r .version)" == "$V1"
lab_expect "(e) the start exec'd the active version" \
	"$(grep -c "event=version.exec .*from=$V0 to=$V1" "$LAB_DIR/gw2.log")" -eq 1
lab_wait_until 10 peer_runs 1 gw2 "$V1"
lab_expect "(e) gw1 sees gw2 run" "$(peer_version 1 gw2)" == "$V1"

# ---- (f) the disk ------------------------------------------------------------------
echo "(f) gw2's state dir ($TMPFS_MB MiB tmpfs): not enough space, then a disk that fills up during the install" >&2
size=$(stat -c %s "$LAB_DIR/img-$V3")
avail=$(($(stat -f -c '%a * %S' "$MNT")))
fill=$((avail - 2 * size + 65536)) # leave 64 KiB less than twice the image
[ "$fill" -gt 0 ] || lab_fail "(f) the tmpfs is too small for the test ($avail bytes free, image $size)"
fallocate -l "$fill" "$MNT/filler" || lab_fail "(f) fallocate"
before=$(state_sum)
ictl 2 image install "$LAB_DIR/img-$V3" >/dev/null 2>"$LAB_DIR/f1.err"
rc=$?
echo "  (f) $(cat "$LAB_DIR/f1.err")" >&2
lab_expect "(f) install without 2 x the image free: exit code (refused)" "$rc" -eq 3
lab_expect "(f) the refusal says why" "$(grep -c "not enough free space" "$LAB_DIR/f1.err")" -eq 1
lab_expect "(f) nothing changed" "$(state_sum)" == "$before"
rm -f "$MNT/filler"

lab_stop_node 2
TANDEMD_FAILPOINT=image.install.fill_disk lab_start_node 2
lab_wait_ready 2 1 10
before=$(state_sum)
out=$(ictl 2 --json image install "$LAB_DIR/img-$V3" 2>"$LAB_DIR/f2.err")
rc=$?
echo "  (f) $(cat "$LAB_DIR/f2.err")" >&2
lab_expect "(f) the disk filled during the install: exit code" "$rc" -eq 1
lab_expect "(f) reported as" "$(jq -r .errno <<<"$out")" == ENOSPC
lab_expect "(f) the error says no space" "$(grep -c "no space left" "$LAB_DIR/f2.err")" -eq 1
lab_expect "(f) no partial version, boot.json unchanged" "$(state_sum)" == "$before"
lab_expect "(f) the failpoint filled the disk" "$(test -e "$MNT/.failpoint-fill" && echo yes)" == yes
lab_expect "(f) gw2 still runs" "$(lab_status 2 | jq -r .version)" == "$V1"
lab_expect "(f) gw1 still sees gw2" "$(lab_peer_state 1 gw2)" == alive
rm -f "$MNT/.failpoint-fill"
lab_stop_node 2
lab_start_node 2
ictl 2 image install "$LAB_DIR/img-$V3" >/dev/null 2>"$LAB_DIR/f3.err"
lab_expect "(f) with space back, the same install: exit code" "$?" -eq 0 || cat "$LAB_DIR/f3.err" >&2
lab_expect "(f) $V3 installed beside" "$(ilist 2 | jq -r --arg v "$V3" '.installed[] | select(.version == $v) | .role')" == installed
lab_expect "(f) gw2 still runs" "$(lab_status 2 | jq -r .version)" == "$V1"

lab_expect "group 1 served by gw1 alone throughout" "$(lab_vips_only_on gw1 && echo yes)" == yes
echo "figures: restart into $V1 ${RESTART_MS} ms (answering), confirmed ${CONFIRM_MS} ms; self-revert of $V2 ${REVERT_MS} ms" >&2
lab_finish
