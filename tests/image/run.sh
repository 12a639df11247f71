#!/usr/bin/env bash
# tests/image/run.sh BUILD_DIR [NEXT_BUILD_DIR] - software images end to end
# (SPEC sections 4 and 5, "Images"), with tandemctl and the image driver.
#
# 1. Two real versions of the project: BUILD_DIR's binaries (the VERSION
#    file's version, V0) and the same source built as the next minor
#    version V1 with `make VERSION=V1` into BUILD_DIR-V1 (or NEXT_BUILD_DIR
#    when given), sanitized when BUILD_DIR is.
# 2. tandemctl image keygen (modes, refuses to overwrite), image build
#    (both versions; the manifest it prints; each refusal: a binary of
#    another version, links, stray files, bad versions, missing binaries,
#    a bad key) and image verify (--trusted-keys, --config, --json).
# 3. Every kind of bad image (tests/image/craft.py), each refused by
#    verify and by extraction with its reason, nothing created and nothing
#    changed: tampered byte, untrusted key, missing/bad/malformed
#    signature, truncated, oversized (entry header and file), '..' and
#    absolute paths, symlink, hardlink, device, FIFO, stray directory,
#    extra, missing, repeated and reordered files, a size that differs,
#    manifest garbage (unsigned and signed by a trusted key), a signed
#    manifest with '..', an unknown field or another key id, empty and
#    non-tar files.
# 4. Extraction (tests/image/imgtool.c over image_extract()): files,
#    modes and bytes as built, the extracted tandemd runs as V1; then into
#    a 1 MiB tmpfs and an inode-starved tmpfs in a private mount namespace
#    (unshare -m): refused as "no space left", the destination gone.
# Needs root for step 4's mounts; runs no daemon and sends no traffic.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${1:?usage: tests/image/run.sh BUILD_DIR [NEXT_BUILD_DIR]}
CTL=$B/tandemctl
for f in "$B/tandemd" "$B/tandemctl" "$B/libio.a" "$B/libcore.a"; do
	[ -e "$f" ] || { echo "tests/image: $f not built" >&2; exit 1; }
done
for t in python3 jq unshare mount; do
	command -v "$t" >/dev/null || { echo "tests/image: needs $t" >&2; exit 1; }
done

W=$(mktemp -d /tmp/tnd-image.XXXXXX)
trap 'rm -rf "$W"' EXIT

pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() {
	fail=$((fail + 1))
	echo "FAIL: $*" >&2
}
# expect_rc RC DESCRIPTION COMMAND...: the command's exit code must be RC;
# its stdout and stderr are kept in $W/out and $W/err.
expect_rc() {
	local want=$1 d=$2 got
	shift 2
	"$@" >"$W/out" 2>"$W/err"
	got=$?
	if [ "$got" = "$want" ]; then ok; else bad "$d: exit $got, wanted $want: $(head -c 400 "$W/err")"; fi
}
# has FILE WORDS DESCRIPTION: FILE contains WORDS (fixed string).
has() {
	if grep -qF -- "$2" "$1"; then ok; else bad "$3: '$2' not in: $(head -c 400 "$1")"; fi
}
# The state of the work directory: names, sizes, modes, contents.
snapshot() {
	(cd "$W" && find . \( -name out -o -name err -o -name 'snap.*' \) -prune \
		-o -printf '%p %s %m %y\n' | sort && find . -type f ! -name out ! -name err \
		! -name 'snap.*' -exec md5sum {} + | sort)
}

# ---- 1. two versions of the project ------------------------------------
V0=$("$B/tandemd" --version | awk '{print $2}')
if ! [[ $V0 =~ ^([0-9]+)\.([0-9]+)(\.[0-9]+)?$ ]]; then
	echo "tests/image: cannot read the version of $B/tandemd ('$V0')" >&2
	exit 1
fi
V1="${BASH_REMATCH[1]}.$((BASH_REMATCH[2] + 1)).0"
MAJOR=${BASH_REMATCH[1]}
SAN=0
# (grep reads all of nm: with -q, nm would die of SIGPIPE under pipefail.)
if nm "$B/libcore.a" 2>/dev/null | grep __asan_ >/dev/null; then SAN=1; fi
B1=${2:-$B-$V1}
if [ -z "${2:-}" ]; then
	echo "== tests/image: building $V1 into $B1 (SAN=$SAN)"
	if ! make -s -j2 SAN=$SAN VERSION="$V1" B="$B1" "$B1/tandemd" "$B1/tandemctl" >"$W/make.log" 2>&1; then
		tail -30 "$W/make.log" >&2
		echo "tests/image: make VERSION=$V1 failed" >&2
		exit 1
	fi
fi
"$B1/tandemd" --version | grep -qF "tandemd $V1 " || { echo "tests/image: $B1/tandemd is not $V1" >&2; exit 1; }
echo "== tests/image: versions $V0 ($B) and $V1 ($B1)"

PKGS="libsodium libfyaml jansson libarchive"
CFLAGS="-std=gnu11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror -D_GNU_SOURCE -Isrc $(pkg-config --cflags $PKGS)"
if [ $SAN = 1 ]; then
	CFLAGS="$CFLAGS -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
else
	CFLAGS="$CFLAGS -O2 -g"
fi
TOOL=$W/imgtool
# shellcheck disable=SC2086
cc $CFLAGS tests/image/imgtool.c "$B/libio.a" "$B/libcore.a" $(pkg-config --libs $PKGS) -o "$TOOL" ||
	{ echo "tests/image: cannot build imgtool" >&2; exit 1; }

stage() { # stage DIR BUILD: bin/tandemd, bin/tandemctl, hooks/up
	mkdir -p "$1/bin" "$1/hooks"
	cp "$2/tandemd" "$2/tandemctl" "$1/bin/"
	printf '#!/bin/sh\necho up "$@"\n' >"$1/hooks/up"
	chmod 0750 "$1/hooks/up"
}
stage "$W/d0" "$B"
stage "$W/d1" "$B1"

# ---- 2. keygen, build, verify ------------------------------------------
echo "== tests/image: keygen, build, verify"
expect_rc 0 "keygen" "$CTL" image keygen --out "$W/k1"
has "$W/out" "k1.pub (key id" "keygen says the key id"
[ "$(stat -c %a "$W/k1")" = 600 ] && ok || bad "secret key mode $(stat -c %a "$W/k1"), wanted 600"
[ "$(wc -c <"$W/k1")" = 129 ] && grep -qE '^[0-9a-f]{128}$' "$W/k1" && ok || bad "secret key is not 128 hex digits"
grep -qE '^[0-9a-f]{64}$' "$W/k1.pub" && [ "$(wc -c <"$W/k1.pub")" = 65 ] && ok || bad "public key is not 64 hex digits"
sum=$(md5sum "$W/k1" "$W/k1.pub")
expect_rc 1 "keygen refuses to overwrite" "$CTL" image keygen --out "$W/k1"
has "$W/err" "already exists; not overwriting it" "keygen overwrite"
[ "$sum" = "$(md5sum "$W/k1" "$W/k1.pub")" ] && ok || bad "keygen changed an existing key"
touch "$W/k3.pub"
expect_rc 1 "keygen refuses when only KEY.pub exists" "$CTL" image keygen --out "$W/k3"
[ ! -e "$W/k3" ] && ok || bad "keygen wrote k3 although k3.pub existed"
rm -f "$W/k3.pub"
expect_rc 0 "keygen --json" "$CTL" --json image keygen --out "$W/k2"
[ "$(jq -r .key_id "$W/out")" = "$("$TOOL" keyid "$W/k2.pub")" ] && ok || bad "keygen --json key_id"
expect_rc 2 "keygen without --out" "$CTL" image keygen
K1ID=$("$TOOL" keyid "$W/k1.pub")
mkdir -p "$W/trusted" "$W/other"
cp "$W/k1.pub" "$W/trusted/release.pub"
cp "$W/k2.pub" "$W/other/other.pub"

expect_rc 0 "build $V0" "$CTL" image build --version "$V0" --from "$W/d0" --key "$W/k1" --out "$W/img0"
has "$W/out" "version:          $V0" "build prints the version"
export SOURCE_DATE_EPOCH=1700000000
expect_rc 0 "build $V1 --json" "$CTL" --json image build --version "$V1" --from "$W/d1" --key "$W/k1" --out "$W/img1"
unset SOURCE_DATE_EPOCH
J=$W/out
[ "$(jq -r '.ok, .version, .min_upgrade_from, .built, .key_id, (.files|length), .files[2].path, .files[2].mode' "$J" | tr '\n' ' ')" = \
  "true $V1 $MAJOR.0.0 1700000000 $K1ID 3 hooks/up 0750 " ] && ok || bad "build --json manifest: $(cat "$J")"
proto=$("$B1/tandemd" --version | sed -n 's/.*(protocol \([0-9]*\)\.\.\([0-9]*\)).*/\1 \2/p')
[ "$(jq -r '"\(.proto_min) \(.proto_max)"' "$J")" = "$proto" ] && ok || bad "protocol range not the binary's ($proto)"
[ "$(jq -r '.files[1].size' "$J")" = "$(stat -c %s "$W/d1/bin/tandemd")" ] && ok || bad "tandemd size"
[ "$(stat -c %a "$W/img1")" = 644 ] && ok || bad "image file mode"
ls "$W"/img1.tmp.* >/dev/null 2>&1 && bad "build left a temporary file" || ok
# The same input and time: the same bytes (reproducible builds).
SOURCE_DATE_EPOCH=1700000000 "$CTL" image build --version "$V1" --from "$W/d1" --key "$W/k1" --out "$W/img1b" >/dev/null &&
	cmp -s "$W/img1" "$W/img1b" && ok || bad "two builds with one SOURCE_DATE_EPOCH differ"
rm -f "$W/img1b"
expect_rc 0 "build --min-upgrade-from" "$CTL" --json image build --version "$V1" --from "$W/d1" --key "$W/k1" \
	--out "$W/img1m" --min-upgrade-from "$V1"
[ "$(jq -r .min_upgrade_from "$W/out")" = "$V1" ] && ok || bad "--min-upgrade-from not kept"
rm -f "$W/img1m"

for img in img0 img1; do
	expect_rc 0 "verify $img" "$CTL" image verify "$W/$img" --trusted-keys "$W/trusted"
	has "$W/out" "good image, signed by trusted key $W/trusted/release.pub" "verify $img"
	has "$W/out" "key id:           $K1ID" "verify $img key id"
	has "$W/out" "bin/tandemd" "verify $img lists files"
done
has "$W/out" "version:          $V1" "verify img1 version"
has "$W/out" "min upgrade from: $MAJOR.0.0" "verify img1 min upgrade from"
has "$W/out" "protocol:         ${proto/ /..}" "verify img1 protocol"
expect_rc 0 "verify --json" "$CTL" --json image verify "$W/img0" --trusted-keys "$W/trusted"
[ "$(jq -r '.ok, .version, .trusted_key' "$W/out" | tr '\n' ' ')" = "true $V0 $W/trusted/release.pub " ] && ok ||
	bad "verify --json: $(cat "$W/out")"
# --config: upgrade.trusted_keys relative to the configuration's directory.
mkdir -p "$W/etc/keys.d"
cp "$W/k1.pub" "$W/etc/keys.d/"
cat >"$W/etc/tandem.yaml" <<EOF
cluster: {name: t, id: 1, key_file: cluster.key}
nodes:
  - {name: a, links: [203.0.113.1]}
  - {name: b, links: [203.0.113.2]}
upgrade: {trusted_keys: keys.d}
EOF
expect_rc 0 "verify --config" "$CTL" image verify "$W/img1" --config "$W/etc/tandem.yaml"
has "$W/out" "signed by trusted key $W/etc/keys.d/k1.pub" "verify --config finds keys.d beside the file"
echo "nodes: [" >"$W/etc/broken.yaml"
expect_rc 1 "verify --config with a broken file" "$CTL" image verify "$W/img1" --config "$W/etc/broken.yaml"
has "$W/err" "is not a valid configuration" "broken --config"
expect_rc 2 "verify without FILE" "$CTL" image verify --trusted-keys "$W/trusted"
expect_rc 2 "verify with both key options" "$CTL" image verify "$W/img1" --trusted-keys "$W/trusted" --config "$W/etc/tandem.yaml"

# The trusted keys themselves.
mkdir -p "$W/nokeys" "$W/badkeys"
expect_rc 1 "verify with no trusted key" "$CTL" image verify "$W/img1" --trusted-keys "$W/nokeys"
has "$W/err" "holds no trusted key" "empty trusted dir"
expect_rc 1 "verify with a missing trusted dir" "$CTL" image verify "$W/img1" --trusted-keys "$W/nowhere"
has "$W/err" "cannot read the trusted keys directory" "missing trusted dir"
cp "$W/k1.pub" "$W/badkeys/good.pub"
echo "not a key" >"$W/badkeys/broken.pub"
expect_rc 1 "verify with a malformed .pub" "$CTL" image verify "$W/img1" --trusted-keys "$W/badkeys"
has "$W/err" "broken.pub is not a public key file" "malformed .pub named"
rm "$W/badkeys/broken.pub"
cp "$W/k1" "$W/badkeys/secret.pub"
expect_rc 1 "verify with a secret key as .pub" "$CTL" image verify "$W/img1" --trusted-keys "$W/badkeys"
has "$W/err" "secret.pub is not a public key file" "secret key as .pub"
rm -rf "$W/nokeys" "$W/badkeys"

# Build refusals: nothing written.
bsnap() { ls "$W" | grep -v '^out$\|^err$' | sort; }
before=$(bsnap)
expect_rc 1 "build refuses a binary of another version" "$CTL" image build --version "$V1" --from "$W/d0" --key "$W/k1" --out "$W/x"
has "$W/err" "says it is version $V0, not $V1 (build it with make VERSION=$V1)" "version mismatch"
cp -r "$W/d0" "$W/dl" && ln -s tandemd "$W/dl/bin/link"
expect_rc 1 "build refuses a symlink" "$CTL" image build --version "$V0" --from "$W/dl" --key "$W/k1" --out "$W/x"
has "$W/err" "dl/bin/link is a symbolic link; an image holds only regular files" "build symlink"
rm -rf "$W/dl"; cp -r "$W/d0" "$W/dl" && touch "$W/dl/README"
expect_rc 1 "build refuses a stray top-level file" "$CTL" image build --version "$V0" --from "$W/dl" --key "$W/k1" --out "$W/x"
has "$W/err" "dl/README: an image holds only bin/ and hooks/" "build stray file"
rm -rf "$W/dl"; cp -r "$W/d0" "$W/dl" && rm "$W/dl/bin/tandemctl"
expect_rc 1 "build refuses without bin/tandemctl" "$CTL" image build --version "$V0" --from "$W/dl" --key "$W/k1" --out "$W/x"
has "$W/err" "bin/tandemctl is not in the image" "build missing tandemctl"
rm -rf "$W/dl"; cp -r "$W/d0" "$W/dl" && touch "$W/dl/hooks/bad name"
expect_rc 1 "build refuses a bad file name" "$CTL" image build --version "$V0" --from "$W/dl" --key "$W/k1" --out "$W/x"
has "$W/err" "has a character outside" "build bad name"
rm -rf "$W/dl"
expect_rc 1 "build refuses min-upgrade-from newer than the version" "$CTL" image build --version "$V0" --from "$W/d0" \
	--key "$W/k1" --out "$W/x" --min-upgrade-from "$V1"
has "$W/err" "is newer than the version" "build min newer"
expect_rc 1 "build refuses a bad version" "$CTL" image build --version "1.0.0-rc1" --from "$W/d0" --key "$W/k1" --out "$W/x"
has "$W/err" "is not MAJOR.MINOR.PATCH" "build bad version"
expect_rc 1 "build refuses a public key as the key" "$CTL" image build --version "$V0" --from "$W/d0" --key "$W/k1.pub" --out "$W/x"
has "$W/err" "is not a secret key file" "build with .pub"
head -c 128 "$W/k1" | sed 's/^./f/' | sed 's/^\(.\{64\}\)./\1e/' >"$W/kbad"; echo >>"$W/kbad"
expect_rc 1 "build refuses a damaged key" "$CTL" image build --version "$V0" --from "$W/d0" --key "$W/kbad" --out "$W/x"
has "$W/err" "is damaged" "build damaged key"
rm -f "$W/kbad"
expect_rc 2 "build with a bad --proto" "$CTL" image build --version "$V0" --from "$W/d0" --key "$W/k1" --out "$W/x" --proto 2..1
expect_rc 2 "build without --key" "$CTL" image build --version "$V0" --from "$W/d0" --out "$W/x"
[ "$before" = "$(bsnap)" ] && ok || bad "a refused build left files: $(diff <(echo "$before") <(bsnap))"
# --proto skips asking the binary: a tandemd that cannot run is packaged.
cp -r "$W/d0" "$W/dp" && printf '#!/bin/sh\nexit 1\n' >"$W/dp/bin/tandemd"
expect_rc 1 "build asks tandemd --version" "$CTL" image build --version 9.0.0 --from "$W/dp" --key "$W/k1" --out "$W/x"
has "$W/err" "--version failed (exit status 1)" "probe failure said"
expect_rc 0 "build --proto" "$CTL" --json image build --version 9.0.0 --from "$W/dp" --key "$W/k1" --out "$W/imgp" --proto 3..7
[ "$(jq -r '"\(.proto_min)..\(.proto_max) \(.version)"' "$W/out")" = "3..7 9.0.0" ] && ok || bad "--proto range"
rm -rf "$W/dp" "$W/imgp"

# ---- 3. bad images -----------------------------------------------------
echo "== tests/image: bad images"
mkdir -p "$W/bad"
expect_rc 0 "build with an untrusted key" "$CTL" image build --version "$V1" --from "$W/d1" --key "$W/k2" --out "$W/bad/untrusted"
echo "is signed by key $("$TOOL" keyid "$W/k2.pub"), which is not trusted (1 trusted key in $W/trusted)" >"$W/bad/untrusted.expect"
cp "$W/img1" "$W/bad/oversized_file" && truncate -s 300M "$W/bad/oversized_file"
echo "more than the 268435456 an image may have (oversized)" >"$W/bad/oversized_file.expect"
variants="tampered nosig sig_last badsig sig_malformed truncated truncated_header truncated_at_entry
	oversized_entry dotdot absolute symlink hardlink device fifo stray_dir extra_end extra_middle
	missing duplicate reordered size_differs first_not_manifest manifest_garbage_unsigned
	manifest_garbage manifest_dotdot manifest_unknown_field manifest_keyid empty notar"
for v in $variants; do
	python3 tests/image/craft.py "$W/img1" "$v" "$W/bad/$v" --sign "$TOOL $W/k1" >"$W/bad/$v.expect" ||
		bad "craft.py $v"
done
python3 tests/image/craft.py "$W/img1" implied_dir "$W/implied_dir" >/dev/null || bad "craft.py implied_dir"
gzip -c "$W/img1" >"$W/bad/gzipped"
echo "not an image (a tar archive)" >"$W/bad/gzipped.expect"

snapshot >"$W/snap.before"
nbad=0
for f in "$W"/bad/*.expect; do
	v=$(basename "$f" .expect)
	words=$(cat "$f")
	expect_rc 1 "verify refuses $v" "$CTL" image verify "$W/bad/$v" --trusted-keys "$W/trusted"
	has "$W/err" "$words" "verify $v reason"
	expect_rc 0 "verify --json refuses $v" sh -c '"$0" --json image verify "$1" --trusted-keys "$2"; [ $? = 1 ]' \
		"$CTL" "$W/bad/$v" "$W/trusted"
	[ "$(jq -r .ok "$W/out")" = false ] && jq -r .error "$W/out" | grep -qF -- "$words" && ok ||
		bad "verify --json $v: $(cat "$W/out")"
	expect_rc 1 "extract refuses $v" "$TOOL" extract "$W/bad/$v" "$W/trusted" "$W/dest-$v"
	has "$W/out" "$words" "extract $v reason"
	[ ! -e "$W/dest-$v" ] && ok || bad "extract $v left $W/dest-$v"
	nbad=$((nbad + 1))
done
snapshot >"$W/snap.after"
cmp -s "$W/snap.before" "$W/snap.after" && ok || bad "refusals changed files: $(diff "$W/snap.before" "$W/snap.after" | head)"
echo "   $nbad kinds of bad image refused by verify and extract"
# A directory entry for a directory that files imply is what tar(1) writes.
expect_rc 0 "verify accepts an implied bin/ entry" "$CTL" image verify "$W/implied_dir" --trusted-keys "$W/trusted"
# Each refusal above on an image the trusted key would otherwise accept:
expect_rc 0 "the untrusted image verifies with its own key" "$CTL" image verify "$W/bad/untrusted" --trusted-keys "$W/other"

# ---- 4. extraction ------------------------------------------------------
echo "== tests/image: extraction"
expect_rc 0 "extract $V1" "$TOOL" extract "$W/img1" "$W/trusted" "$W/x1"
has "$W/out" "extracted tandem $V1: 3 files" "extract says what"
for f in bin/tandemd bin/tandemctl hooks/up; do
	cmp -s "$W/d1/$f" "$W/x1/$f" && ok || bad "extracted $f differs"
	[ "$(stat -c %a "$W/d1/$f")" = "$(stat -c %a "$W/x1/$f")" ] && ok || bad "extracted $f mode"
done
[ "$(stat -c %a "$W/x1")" = 755 ] && ok || bad "destination mode $(stat -c %a "$W/x1")"
[ "$(find "$W/x1" | wc -l)" = 6 ] && ok || bad "extracted more than the files: $(find "$W/x1")"
"$W/x1/bin/tandemd" --version | grep -qF "tandemd $V1 " && ok || bad "extracted tandemd is not $V1"
expect_rc 1 "extract refuses an existing destination" "$TOOL" extract "$W/img0" "$W/trusted" "$W/x1"
has "$W/out" "already exists" "existing destination"
"$W/x1/bin/tandemd" --version | grep -qF "tandemd $V1 " && ok || bad "refused extract touched the existing destination"
expect_rc 0 "extract with an implied bin/ entry" "$TOOL" extract "$W/implied_dir" "$W/trusted" "$W/x2"
rm -rf "$W/x2"

# A full disk: a 1 MiB tmpfs (the image's files are larger), then a tmpfs
# with room for bytes but not for inodes.
total=$(jq -r '[.files[].size] | add' <("$CTL" --json image verify "$W/img1" --trusted-keys "$W/trusted"))
[ "$total" -gt $((1 << 20)) ] && ok || bad "the image's files ($total bytes) fit in 1 MiB: the test would prove nothing"
mkdir -p "$W/small"
for opts in size=1m size=64m,nr_inodes=4; do
	unshare -m sh -c 'mount -t tmpfs -o "$1" tnd-image-test "$2" || exit 9
		"$3" extract "$4" "$5" "$2/dest" >"$6/out" 2>"$6/err"; echo $? >"$6/rc"
		find "$2" -mindepth 1 >"$6/left"' sh "$opts" "$W/small" "$TOOL" "$W/img1" "$W/trusted" "$W"
	[ "$(cat "$W/rc")" = 3 ] && ok || bad "full tmpfs ($opts): exit $(cat "$W/rc"), wanted 3: $(cat "$W/out" "$W/err")"
	has "$W/out" "no space left on the file system of $W/small/dest while" "full tmpfs ($opts) reason"
	[ ! -s "$W/left" ] && ok || bad "full tmpfs ($opts) left: $(cat "$W/left")"
	echo "   $opts: $(cat "$W/out")"
done
mountpoint -q "$W/small" && bad "the tmpfs leaked out of its mount namespace" || ok

echo "tests/image: $pass passed, $fail failed"
[ "$fail" = 0 ]
