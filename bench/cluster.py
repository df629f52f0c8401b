#!/usr/bin/env python3
"""Replicated mode next to single-node: push throughput and replication lag.

Starts a nats-server (JetStream, loopback), one single-node gateway and two replicas of a
replicated gateway (same binary), then:

1. push throughput: wrk with ../shared/bench/pgw.lua (push_small's workload: PUTs of 10
   series to 1,000 rotating groups, 2 threads, 32 connections) against the single node, then
   against replica A; req/s and latency p50/p99 from wrk;
2. replication lag: N pushes to replica A, each followed by polling replica B
   (`/api/v1/groups?match[]=...`, no sleep) until the group shows the new push; the time from
   A's acknowledgement to B serving it, p50/p99/max; measured idle and while wrk loads A.

Usage: python3 bench/cluster.py [--bin target/release/pushgateway] [--seconds 10] [--samples 300]
"""

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUA = os.path.join(ROOT, "..", "shared", "bench", "pgw.lua")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise SystemExit("not ready: %s" % url)


def start(argv, log):
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wrk(port, seconds, prefix):
    out = subprocess.run(
        ["wrk", "-t2", "-c32", "-d%ds" % seconds, "--timeout", "30s", "--latency", "-s", LUA,
         "http://127.0.0.1:%d" % port, "--", "mode=small", "groups=1000", "threads=2",
         "prefix=" + prefix],
        capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % p, out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, pct(50), pct(99), int(errors.group(1)) if errors else 0


def lag(src, dst, samples, tag):
    s_src, s_dst = requests.Session(), requests.Session()
    out = []
    for i in range(samples):
        job = "lag_%s_%d" % (tag, i % 50)
        body = "lag_seq %d\n" % i
        r = s_src.put("http://127.0.0.1:%d/metrics/job/%s" % (src, job), data=body, timeout=10)
        assert r.status_code == 200, r.text
        t0 = time.monotonic()
        url = "http://127.0.0.1:%d/api/v1/metrics" % dst
        q = "http://127.0.0.1:%d/api/v1/groups" % dst
        want = None
        for _ in range(200000):
            g = s_dst.get(q, params={"match[]": '{job="%s"}' % job}, timeout=10).json()["data"]
            # The group's last success time moves with every push; compare with A's.
            if g and want is None:
                a = s_src.get("http://127.0.0.1:%d/api/v1/groups" % src,
                              params={"match[]": '{job="%s"}' % job}, timeout=10).json()["data"]
                want = a[0]["last_success_time"]
            if g and g[0]["last_success_time"] == want:
                break
            if time.monotonic() - t0 > 10:
                raise SystemExit("push %d not replicated within 10 s" % i)
        out.append((time.monotonic() - t0) * 1000)
    out.sort()
    return statistics.median(out), out[int(len(out) * 0.99) - 1], out[-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "pushgateway"))
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--samples", type=int, default=300)
    a = ap.parse_args()
    nats = shutil.which("nats-server") or sys.exit("nats-server not found")
    if not os.path.exists(LUA):
        sys.exit("needs ../shared/bench/pgw.lua")
    tmp = tempfile.mkdtemp()
    log = open(os.path.join(tmp, "log"), "wb")
    procs = []
    try:
        np = free_port()
        procs.append(start([nats, "-js", "-a", "127.0.0.1", "-p", str(np), "-sd", tmp], log))
        single, ra, rb = free_port(), free_port(), free_port()
        procs.append(start([a.bin, "--web.listen-address=127.0.0.1:%d" % single,
                            "--persistence.file=%s/single.db" % tmp], log))
        for p in (ra, rb):
            procs.append(start([a.bin, "--web.listen-address=127.0.0.1:%d" % p,
                                "--cluster.nats-url=nats://127.0.0.1:%d" % np], log))
        for p in (single, ra, rb):
            wait_http("http://127.0.0.1:%d/-/ready" % p)
        print("push_small workload, %ds, 2 threads x 32 connections" % a.seconds)
        print("%-34s %10s %9s %9s %7s" % ("", "req/s", "p50 ms", "p99 ms", "errors"))
        s = wrk(single, a.seconds, "single")
        print("%-34s %10.0f %9.2f %9.2f %7d" % (("single node (--persistence.file)",) + s))
        r = wrk(ra, a.seconds, "repl")
        print("%-34s %10.0f %9.2f %9.2f %7d" % (("replica (NATS KV, R1)",) + r))
        print("replicated / single-node throughput: %.2f" % (r[0] / s[0]))
        idle = lag(ra, rb, a.samples, "idle")
        print("replication lag A->B idle (ms):      p50 %.2f  p99 %.2f  max %.2f" % idle)
        load = threading.Thread(target=wrk, args=(ra, a.seconds, "load"))
        load.start()
        time.sleep(1)
        busy = lag(ra, rb, min(a.samples, 100), "busy")
        load.join()
        print("replication lag A->B under load (ms): p50 %.2f  p99 %.2f  max %.2f" % busy)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
