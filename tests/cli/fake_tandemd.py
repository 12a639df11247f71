#!/usr/bin/env python3
"""fake_tandemd.py SOCKET ANSWERS LOG - a stand-in for tandemd's control
socket (src/api/ctl.h: one JSON object per line each way), for testing
tandemctl without a cluster.

ANSWERS is a JSON file read again for every request, so a test rewrites
it between commands. It maps "CMD" or "CMD.OP" (e.g. "status",
"config.show") to the answer object. In an answer:
  "_delay_s": N      wait N seconds before answering
  "digest": "auto"   replaced by the document digest of its "yaml" and
                     "ruleset" as the cluster computes it (src/core/
                     cfgsync.h: BLAKE2b-256 of u32 len, yaml, NUL, u32 len,
                     ruleset, NUL, big-endian), computed here independently
                     of the C code
  "_close": true     close the connection instead of answering
  "_seq": [A, B, ...] the n-th request for this key gets the n-th answer
                     (each may use the members above), the last one
                     repeats; the count starts again whenever ANSWERS
                     changes, so a test can script a sequence of states
A request with no answer gets {"ok":false,"code":"failed",...}. Every
request is appended to LOG as one JSON line, so a test can check exactly
what tandemctl sent, or that it sent nothing."""
import hashlib
import json
import os
import socket
import struct
import sys
import time


def doc_digest(yaml, ruleset):
    y = yaml.encode()
    r = ruleset.encode()
    blob = struct.pack(">I", len(y)) + y + b"\0" + struct.pack(">I", len(r)) + r + b"\0"
    return hashlib.blake2b(blob, digest_size=32).hexdigest()


# Requests seen per key since ANSWERS last changed (for "_seq").
seq_seen = {}
seq_text = [None]


def answer(answers_path, req):
    with open(answers_path) as f:
        text = f.read()
    answers = json.loads(text)
    if text != seq_text[0]:
        seq_text[0] = text
        seq_seen.clear()
    key = req.get("cmd", "")
    if "op" in req:
        key += "." + str(req["op"])
    ans = answers.get(key)
    if ans is None:
        return {"ok": False, "code": "failed", "error": "fake tandemd: no answer for " + key}
    if "_seq" in ans:
        n = seq_seen.get(key, 0)
        seq_seen[key] = n + 1
        ans = ans["_seq"][min(n, len(ans["_seq"]) - 1)]
    ans = dict(ans)
    if ans.get("digest") == "auto":
        ans["digest"] = doc_digest(ans.get("yaml", ""), ans.get("ruleset", ""))
    return ans


def serve(sock_path, answers_path, log_path):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    srv.bind(sock_path)
    srv.listen(8)
    while True:
        conn, _ = srv.accept()
        with conn:
            buf = b""
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    req = json.loads(line)
                    with open(log_path, "a") as log:
                        log.write(json.dumps(req) + "\n")
                    ans = answer(answers_path, req)
                    delay = ans.pop("_delay_s", 0)
                    if delay:
                        time.sleep(delay)
                    if ans.pop("_close", False):
                        buf = b""
                        break
                    try:
                        conn.sendall(json.dumps(ans).encode() + b"\n")
                    except OSError:
                        break
                else:
                    continue
                break


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: fake_tandemd.py SOCKET ANSWERS LOG")
    serve(*sys.argv[1:])
