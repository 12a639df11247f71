#!/usr/bin/env python3
"""craft.py GOOD_IMAGE VARIANT OUT [--sign 'IMGTOOL KEY']

Writes OUT, a damaged or hostile copy of the good image GOOD_IMAGE, for
tests/image/run.sh and the fuzz corpus. The tar archive is assembled by hand
(headers from Python's tarfile, data, padding, end marker) so that an entry's
header can claim what its data does not hold. Variants that change the
MANIFEST are signed again with --sign (imgtool sign KEY), a trusted key, so
the reader's checks behind the signature are reached; the others keep the
original, valid signature.

Prints the variant's expected refusal words (a fragment of the reason) on
stdout, so the test and this file agree in one place.
"""
import io
import json
import subprocess
import sys
import tarfile

BLOCK = 512


def read_entries(path):
    """[(TarInfo, bytes)] of the good image, in order."""
    out = []
    with tarfile.open(path, "r:") as t:
        for ti in t.getmembers():
            data = t.extractfile(ti).read() if ti.isfile() else b""
            out.append((ti, data))
    return out


def entry(name, data=b"", kind=tarfile.REGTYPE, mode=0o644, claimed=None, link=""):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.mtime = 1700000000
    ti.uname = ti.gname = "root"
    ti.linkname = link
    ti.size = len(data) if claimed is None else claimed
    return ti, data


def assemble(entries, trailer=True):
    buf = io.BytesIO()
    for ti, data in entries:
        size = ti.size
        fmt = tarfile.GNU_FORMAT if size >= 8 ** 11 else tarfile.USTAR_FORMAT
        if not ti.isreg():
            ti.size = 0
        buf.write(ti.tobuf(fmt, "utf-8", "surrogateescape"))
        ti.size = size
        buf.write(data)
        if len(data) % BLOCK:
            buf.write(b"\0" * (BLOCK - len(data) % BLOCK))
    if trailer:
        buf.write(b"\0" * (2 * BLOCK))
    return buf.getvalue()


def sign(signer, manifest):
    if not signer:
        sys.exit("craft.py: this variant needs --sign 'IMGTOOL KEY'")
    tool, key = signer.split()
    return subprocess.run([tool, "sign", key], input=manifest, check=True,
                          capture_output=True).stdout


def relist(entries, manifest_bytes, signer):
    """The entries with a new MANIFEST, signed by the trusted key."""
    out = [entry("MANIFEST", manifest_bytes), entry("MANIFEST.sig", sign(signer, manifest_bytes))]
    return out + entries[2:]


def main():
    args = sys.argv[1:]
    signer = None
    if "--sign" in args:
        i = args.index("--sign")
        signer = args[i + 1]
        del args[i:i + 2]
    good, variant, out = args
    raw = open(good, "rb").read()
    ents = read_entries(good)
    names = [ti.name for ti, _ in ents]
    assert names[:2] == ["MANIFEST", "MANIFEST.sig"], names
    man = json.loads(ents[0][1])
    files = ents[2:]
    first, second = files[0], files[1]  # bin/tandemctl, bin/tandemd
    expect = None
    data = None

    if variant == "tampered":
        ti, d = second
        d = bytearray(d)
        d[len(d) // 2] ^= 0x01
        data = assemble(ents[:3] + [(ti, bytes(d))] + ents[4:])
        expect = "its content was changed"
    elif variant == "nosig":
        data = assemble(ents[:1] + ents[2:])
        expect = "is not signed"
    elif variant == "sig_last":
        data = assemble(ents[:1] + ents[2:] + ents[1:2])
        expect = "is not signed"
    elif variant == "badsig":
        sig = bytearray(ents[1][1])
        sig[40] = ord("0") if sig[40] != ord("0") else ord("1")
        data = assemble(ents[:1] + [entry("MANIFEST.sig", bytes(sig))] + ents[2:])
        expect = "bad signature"
    elif variant == "sig_malformed":
        data = assemble(ents[:1] + [entry("MANIFEST.sig", b"ed25519 nothing here\n")] + ents[2:])
        expect = "MANIFEST.sig is malformed"
    elif variant == "truncated":
        data = raw[: len(raw) // 2]
        expect = "truncated"
    elif variant == "truncated_header":
        # Cut inside the header of the second file.
        off = len(assemble(ents[:3], trailer=False)) + 100
        data = raw[:off]
        expect = "truncated"
    elif variant == "truncated_at_entry":
        # Cut exactly between two entries: the archive looks complete.
        data = assemble(ents[:3], trailer=False)
        expect = "bin/tandemd is missing"
    elif variant == "oversized_entry":
        # A header claiming 200 MiB with a little data behind it.
        ti, d = first
        data = assemble(ents[:2] + [entry(ti.name, d[:4096], mode=0o755, claimed=200 << 20)], trailer=False)
        expect = "oversized"
    elif variant == "dotdot":
        data = assemble(ents[:2] + [entry("bin/../../evil", b"x")] + files)
        expect = "has a '..' component"
    elif variant == "absolute":
        data = assemble(ents[:2] + [entry("/tmp/evil", b"x")] + files)
        expect = "is absolute"
    elif variant == "symlink":
        data = assemble(ents[:2] + [entry(first[0].name, kind=tarfile.SYMTYPE, link="/bin/sh")] + files[1:])
        expect = "is a symbolic link"
    elif variant == "hardlink":
        data = assemble(ents[:3] + [entry(second[0].name, kind=tarfile.LNKTYPE, link=first[0].name)] + files[2:])
        expect = "is a hard link"
    elif variant == "device":
        data = assemble(ents[:2] + [entry(first[0].name, kind=tarfile.CHRTYPE)] + files[1:])
        expect = "is a character device"
    elif variant == "fifo":
        data = assemble(ents[:2] + [entry(first[0].name, kind=tarfile.FIFOTYPE)] + files[1:])
        expect = "is a FIFO"
    elif variant == "stray_dir":
        data = assemble(ents[:2] + [entry("hooks/x", kind=tarfile.DIRTYPE, mode=0o755)] + files)
        expect = "is a directory"
    elif variant == "implied_dir":
        # Accepted: a directory entry for bin/, as tar(1) would write it.
        data = assemble(ents[:2] + [entry("bin/", kind=tarfile.DIRTYPE, mode=0o755)] + files)
        expect = "ok"
    elif variant == "extra_end":
        data = assemble(ents + [entry("bin/extra", b"#!/bin/sh\n", mode=0o755)])
        expect = "not in the signed manifest"
    elif variant == "extra_middle":
        data = assemble(ents[:3] + [entry("bin/tandemc", b"x")] + ents[3:])
        expect = "not in the signed manifest"
    elif variant == "missing":
        data = assemble(ents[:3] + ents[4:])
        expect = "bin/tandemd is missing"
    elif variant == "duplicate":
        data = assemble(ents + [second])
        expect = "appears twice"
    elif variant == "reordered":
        data = assemble(ents[:2] + [second, first] + files[2:])
        expect = "bin/tandemctl is missing (found bin/tandemd"
    elif variant == "size_differs":
        ti, d = first
        data = assemble(ents[:2] + [entry(ti.name, d + b"x", mode=0o755)] + files[1:])
        expect = "the signed manifest says"
    elif variant == "first_not_manifest":
        data = assemble(files + ents[:2])
        expect = "not MANIFEST"
    elif variant == "manifest_garbage_unsigned":
        data = assemble([entry("MANIFEST", b"garbage")] + ents[1:])
        expect = "bad signature"
    elif variant == "manifest_garbage":
        data = assemble(relist(ents, b"garbage", signer))
        expect = "the signed MANIFEST does not parse: manifest is not JSON"
    elif variant == "manifest_dotdot":
        man["files"][-1]["path"] = "hooks/../../../etc/cron.d/evil"
        data = assemble(relist(ents, json.dumps(man).encode(), signer))
        expect = "does not parse: path 'hooks/../../../etc/cron.d/evil' has a '..' component"
    elif variant == "manifest_unknown_field":
        man["postinstall"] = "rm -rf /"
        data = assemble(relist(ents, json.dumps(man).encode(), signer))
        expect = "unknown field 'postinstall'"
    elif variant == "manifest_keyid":
        man["key_id"] = "0000000000000000"
        data = assemble(relist(ents, json.dumps(man).encode(), signer))
        expect = "names key 0000000000000000 but is signed by"
    elif variant == "empty":
        data = b""
        expect = "is empty"
    elif variant == "notar":
        data = b"\x7fELF" + bytes(range(256)) * 8
        expect = "not an image"
    else:
        sys.exit("craft.py: unknown variant " + variant)
    with open(out, "wb") as f:
        f.write(data)
    print(expect)


if __name__ == "__main__":
    main()
