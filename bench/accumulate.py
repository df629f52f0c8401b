#!/usr/bin/env python3
"""Accumulating vs replacing pushes on the same groups, over HTTP, with wrk.

The same body (a counter with 3 series, a classic histogram with 11 buckets, a gauge: what a
serverless invocation pushes) is PUT to the same G groups (default 1,000), either on the
normal route (`replace`: each push replaces the group) or under `/accumulate` (each push is
merged into the stored group). Each run gets a fresh gateway on a free 127.0.0.1 port
(in memory, or with --persistence.file when --persist is given), a warm-up that pushes every
group once, then `wrk -t2 -c32 -d<duration>s`. Runs alternate replace / accumulate, and the
ratio accumulate / replace is taken pair by pair (the target is >= 0.8).

Checks: no errors or non-2xx answers, and after an accumulate run every group's
`accb_invocations_total{outcome="ok"}` equals the number of pushes it got (between the
acknowledged count and that plus the connections in flight), summed over the groups.

    cargo build --release -p pushgateway
    python3 bench/accumulate.py                # ~1.5 min: 3 pairs of 10 s runs
    python3 bench/accumulate.py --quick        # 1 pair of 5 s runs
    python3 bench/accumulate.py --persist      # with --persistence.file (sync always)
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUA = os.path.join(ROOT, "bench", "accumulate.lua")
HOST = "127.0.0.1"
THREADS, CONNS = 2, 32


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http(port, method, path, body=b"", timeout=30):
    req = urllib.request.Request("http://%s:%d%s" % (HOST, port, path), data=body or None,
                                 method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


class Server:
    def __init__(self, binary, workdir, persist):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(dir=workdir)
        args = [binary, "--web.listen-address=%s:%d" % (HOST, self.port)]
        args.append("--persistence.file=%s" % (os.path.join(self.dir, "p.db") if persist else ""))
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit("gateway exited: see %s" % self.log.name)
            try:
                if http(self.port, "GET", "/-/ready", timeout=1)[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        sys.exit("gateway not ready after 30 s")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def wrk(port, route, groups, seconds):
    cmd = ["wrk", "-t%d" % THREADS, "-c%d" % CONNS, "-d%ds" % seconds, "--timeout", "30s",
           "-s", LUA, "http://%s:%d" % (HOST, port), "--", "groups=%d" % groups,
           "route=%s" % route, "threads=%d" % THREADS]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"^ACCB_RESULT (\{.*\})$", out, re.M)
    if not m:
        sys.exit("wrk gave no result:\n" + out)
    return json.loads(m.group(1))


def ok_total(port):
    """Sum of accb_invocations_total{outcome="ok"} over all groups."""
    _, body = http(port, "GET", "/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("accb_invocations_total{") and 'outcome="ok"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def run(args, mode, workdir):
    route = "/accumulate" if mode == "accumulate" else ""
    srv = Server(args.bin, workdir, args.persist)
    try:
        warm = wrk(srv.port, route, args.groups, 2)
        before = ok_total(srv.port)
        r = wrk(srv.port, route, args.groups, args.duration)
        r["rps"] = r["requests"] / r["seconds"]
        problems = []
        if r["errors"] or r["non2xx"] or warm["errors"] or warm["non2xx"]:
            problems.append("errors %d, non-2xx %d" % (r["errors"], r["non2xx"]))
        if mode == "accumulate":
            got = ok_total(srv.port) - before
            if not r["requests"] <= got <= r["requests"] + CONNS:
                problems.append("sum of ok counters grew by %d for %d acknowledged pushes"
                                % (got, r["requests"]))
        else:
            got = ok_total(srv.port)
            if got != args.groups:
                problems.append("replace: %d groups show ok=1, want %d" % (got, args.groups))
        r["problems"] = problems
        return r
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get(
        "PGW_BIN", os.path.join(ROOT, "target", "release", "pushgateway")))
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--persist", action="store_true", help="with --persistence.file")
    ap.add_argument("--quick", action="store_true", help="1 pair of 5 s runs")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.duration = 1, 5
    if shutil.which("wrk") is None:
        sys.exit("wrk not found (apt-get install wrk)")
    workdir = tempfile.mkdtemp(prefix="pgw-accumulate-")
    pairs, failed = [], False
    for rep in range(args.reps):
        a = run(args, "replace", workdir)
        b = run(args, "accumulate", workdir)
        pairs.append((a, b))
        for mode, r in (("replace", a), ("accumulate", b)):
            print("rep %d %-10s %8.0f req/s  p50 %.2f ms  p99 %.2f ms  %s" % (
                rep + 1, mode, r["rps"], r["p50_ms"], r["p99_ms"],
                "; ".join(r["problems"]) or "checks ok"), flush=True)
            failed |= bool(r["problems"])
    ratios = [b["rps"] / a["rps"] for a, b in pairs]
    med = statistics.median
    load = os.getloadavg()[0]
    print()
    print("| %s, %d groups, wrk -t%d -c%d -d%ds, %d pairs | replace | accumulate | ratio |" % (
        "persistence.file (sync always)" if args.persist else "in memory", args.groups,
        THREADS, CONNS, args.duration, args.reps))
    print("|---|---:|---:|---:|")
    print("| pushes/s (median) | %.0f | %.0f | %.2f (min %.2f, max %.2f) |" % (
        med([a["rps"] for a, _ in pairs]), med([b["rps"] for _, b in pairs]), med(ratios),
        min(ratios), max(ratios)))
    print("| latency p50 / p99 (median) | %.2f / %.2f ms | %.2f / %.2f ms | |" % (
        med([a["p50_ms"] for a, _ in pairs]), med([a["p99_ms"] for a, _ in pairs]),
        med([b["p50_ms"] for _, b in pairs]), med([b["p99_ms"] for _, b in pairs])))
    print("\nload average (1 min) at the end: %.2f; target ratio >= 0.8: %s" % (
        load, "met" if med(ratios) >= 0.8 else "NOT met"))
    shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
