#!/usr/bin/env python3
"""upg_fixtures.py - canned daemon answers and probe logs for the
`tandemctl upgrade` tests in tests/cli/run.sh (the protocol of
src/cli/upgcmd.h: {"cmd":"upgrade","op":...}).

  upg_fixtures.py status STATE CURSOR [ELAPSED_S]
      an upgrade 123 of two nodes (gw1 coordinator, gw2), 12 steps, every
      step before CURSOR done, CURSOR running (STATE running), failed
      (STATE failed: E_REJOIN_TIMEOUT at step CURSOR, then the rollback's
      revert step done) or all done (STATE completed, CURSOR ignored)
  upg_fixtures.py plan ok|fail      a plan answer (fail: two checks fail)
  upg_fixtures.py probe KIND        a probe log (JSON lines) for the
      completed upgrade: covering (starts before, summary after, one 37 ms
      gap inside step 5 "upgrade gw2", nothing else), drops (covering,
      plus a reset in step 8 and a lost connection in step 5), late
      (starts 2 s after the upgrade began), nosummary (no summary line)
  upg_fixtures.py times             the completed upgrade's step timings
      as "index start_ms end_ms wall_start_ms wall_end_ms" lines

Step durations: upgrade steps 30 s, the distribute step 2 s, the others
200 ms, 50 ms between steps; the wall clock starts at WALL0."""
import json
import sys

WALL0 = 1700000000000
STEPS = [
    ("freeze", "freeze configuration changes on every node", {}),
    ("backup", "save the configuration on every node", {}),
    ("preempt_off", "suspend preemption", {}),
    ("move", "move group 1 to gw1", {"group": 1, "node": "gw1"}),
    ("distribute", "distribute the image from gw1 to gw2", {"node": "gw1", "nodes": ["gw2"]}),
    ("upgrade", "upgrade gw2", {"nodes": ["gw2"]}),
    ("move", "move group 1 to gw2", {"group": 1, "node": "gw2"}),
    ("move", "move group 0 to gw2", {"group": 0, "node": "gw2"}),
    ("upgrade", "upgrade gw1", {"nodes": ["gw1"]}),
    ("preempt_on", "restore preemption", {}),
    ("failback", "fail group 1 back to gw1", {"group": 1, "node": "gw1"}),
    ("unfreeze", "lift the configuration freeze", {}),
]


def duration(kind):
    return {"upgrade": 30000, "distribute": 2000}.get(kind, 200)


def times():
    t = 0
    out = []
    for kind, _, _ in STEPS:
        out.append((t, t + duration(kind)))
        t += duration(kind) + 50
    return out


def step(i, status, start=None, end=None, kind=None, text=None, extra=None, rollback=False):
    k, tx, ex = STEPS[i] if i < len(STEPS) else (kind, text, extra or {})
    s = {"index": i, "kind": kind or k, "status": status, "text": text or tx, "rollback": rollback}
    s.update(extra if extra is not None else ex)
    if start is not None:
        s["start_ms"] = start
        s["wall_start_ms"] = WALL0 + start
    if end is not None:
        s["end_ms"] = end
        s["wall_end_ms"] = WALL0 + end
    return s


def status(state, cursor, elapsed=None):
    tm = times()
    steps = []
    if state == "completed":
        cursor = len(STEPS)
    for i in range(len(STEPS)):
        if i < cursor:
            steps.append(step(i, "done", *tm[i]))
        elif i == cursor and state in ("running", "aborting"):
            steps.append(step(i, "running", tm[i][0]))
        elif i == cursor and state == "failed":
            steps.append(step(i, "failed", tm[i][0], tm[i][0] + 900000 // 100))
        else:
            steps.append(step(i, "pending"))
    gw2 = {"node": "gw2", "state": "pending", "version": "1.0.0", "alive": True, "detail": ""}
    gw1 = {"node": "gw1", "state": "pending", "version": "1.0.0", "alive": True, "detail": ""}
    if cursor > 5:
        gw2.update(state="upgraded", version="1.1.0")
    elif cursor == 5 and state == "running":
        gw2.update(state="restarting", alive=False, detail="waiting to rejoin 12/900 s")
    if cursor > 8:
        gw1.update(state="upgraded", version="1.1.0")
    ans = {
        "ok": True, "state": state, "id": 123, "phase": "",
        "from": "1.0.0", "to": "1.1.0", "coordinator": "gw1",
        "finalized": False, "force": False, "disruptive": False, "no_failback": False,
        "frozen": state in ("running", "aborting"),
        "protocol": {"level": 1, "from": 1, "to": 2},
        "nodes": [gw1, gw2], "cursor": cursor, "steps": steps,
    }
    if state == "failed":
        end = tm[cursor][0] + 9000
        steps.append(step(len(STEPS), "done", end + 50, end + 20050, kind="revert",
                          text="revert gw2 to 1.0.0", extra={"nodes": ["gw2"]}, rollback=True))
        gw2.update(state="reverted", version="1.0.0", alive=True, detail="")
        ans["error"] = {"code": "E_REJOIN_TIMEOUT", "step": cursor,
                        "message": "gw2 did not come back on 1.1.0 within 900 s",
                        "recovery": "gw2 was reverted to 1.0.0; every node runs 1.0.0 with service kept"}
        ans["phase"] = "failed"
        ans["elapsed_s"] = (end + 20050) / 1000
    elif state == "completed":
        ans["phase"] = "completed"
        ans["elapsed_s"] = tm[-1][1] / 1000
    else:
        ans["phase"] = STEPS[cursor][1]
        ans["elapsed_s"] = elapsed if elapsed is not None else (tm[cursor][0] + 1234) / 1000
    return ans


def plan(ok):
    checks = [
        {"code": "E_PEER_DOWN", "ok": True, "message": "every peer alive on every link"},
        {"code": "E_DISK_SPACE", "ok": ok,
         "message": "free space >= 2 x image on every node (min 10.2 GiB on gw2)" if ok else
         "gw2 has 1.1 MiB free, needs 4.4 MiB (2 x the image)"},
        {"code": "E_CPU", "ok": ok, "message": "CPU below 80% over 5 s on every node (max 12% on gw1)"
         if ok else "gw1 CPU at 93% over 5 s (limit 80%)"},
        {"code": "E_SIGNATURE", "ok": True, "message": "image signed by trusted key ops-2025"},
    ]
    return {"ok": True, "all_ok": ok, "disruptive": False,
            "image": {"version": "1.1.0", "bytes": 2300000, "digest": "ab" * 32},
            "from": "1.0.0", "checks": checks,
            "steps": [step(i, "pending") for i in range(len(STEPS))]}


def probe(kind):
    tm = times()
    start, end = WALL0 + tm[0][0], WALL0 + tm[-1][1]
    first = start + 2000 if kind == "late" else start - 1000
    ev = [{"t_ms": first, "kind": "gap", "ms": 3}]
    ev.append({"t_ms": WALL0 + tm[5][0] + 1000, "kind": "gap", "ms": 37})
    ev.append({"t_ms": WALL0 + tm[8][0] + 500, "kind": "gap", "ms": 21})
    if kind == "drops":
        ev.append({"t_ms": WALL0 + tm[8][0] + 600, "kind": "reset"})
        ev.append({"t_ms": WALL0 + tm[5][0] + 700, "kind": "conn_lost"})
    # Outside the upgrade: not counted.
    ev.append({"t_ms": end + 500, "kind": "gap", "ms": 900})
    if kind != "nosummary":
        ev.append({"t_ms": end + 1000, "kind": "summary", "tcp": 32, "lost": 0})
    ev.sort(key=lambda e: e["t_ms"])
    return "".join(json.dumps(e) + "\n" for e in ev)


def main():
    a = sys.argv[1:]
    if a[0] == "status":
        print(json.dumps(status(a[1], int(a[2]), float(a[3]) if len(a) > 3 else None)))
    elif a[0] == "plan":
        print(json.dumps(plan(a[1] == "ok")))
    elif a[0] == "probe":
        sys.stdout.write(probe(a[1]))
    elif a[0] == "times":
        for i, (s, e) in enumerate(times()):
            print(i, s, e, WALL0 + s, WALL0 + e)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
