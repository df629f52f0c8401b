#!/usr/bin/env python3
"""Memory per push under hostile shapes, ours vs the official binary (issue 15 item 1).

Pushes one group with a long grouping-key value and many one-line series, and reports the
RSS of each gateway before and after (and after a scrape). Usage:

    python3 bench/hostile_memory.py [--ours target/release/pushgateway]
        [--official /usr/bin/prometheus-pushgateway] [--value-kb 60] [--series 30000]
"""
import argparse
import os
import socket
import subprocess
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def wait_ready(port, proc):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1)
            return
        except Exception:
            time.sleep(0.05)
    raise SystemExit("gateway not ready")


def run(name, cmd, value_kb, series):
    port = free_port()
    proc = subprocess.Popen(cmd + [f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, proc)
        time.sleep(0.5)
        before = rss(proc.pid)
        value = "v" * (value_kb * 1024)
        body = "".join(f"m{{i=\"{i}\"}} 1\n" for i in range(series)).encode()
        url = f"http://127.0.0.1:{port}/metrics/job/hostile/big/{value}"
        req = urllib.request.Request(url, data=body, method="PUT")
        t = time.time()
        try:
            status = urllib.request.urlopen(req, timeout=300).status
        except urllib.error.HTTPError as e:
            status = e.code
        push_s = time.time() - t
        time.sleep(0.5)
        after = rss(proc.pid)
        t = time.time()
        scraped = len(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                             timeout=600).read())
        scrape_s = time.time() - t
        time.sleep(0.5)
        after_scrape = rss(proc.pid)
        req_bytes = len(url) + len(body)
        print(f"{name:9} status {status}  request {req_bytes/1e3:.0f} kB  RSS {before/1e6:.1f} -> "
              f"{after/1e6:.1f} MB (+{(after-before)/1e6:.1f} MB, x{(after-before)/req_bytes:.1f} "
              f"the request) in {push_s:.2f} s; scrape of {scraped/1e6:.0f} MB in {scrape_s:.1f} s, "
              f"RSS after it {after_scrape/1e6:.1f} MB")
        return after - before
    finally:
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", default="target/release/pushgateway")
    ap.add_argument("--official", default="/usr/bin/prometheus-pushgateway")
    ap.add_argument("--value-kb", type=int, default=60)
    ap.add_argument("--series", type=int, default=30000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        ours = run("ours", [a.ours, f"--persistence.file={d}/ours.db"], a.value_kb, a.series)
        official = None
        if os.path.exists(a.official):
            official = run("official", [a.official, f"--persistence.file={d}/official.db"],
                           a.value_kb, a.series)
        if official:
            print(f"RSS growth ours/official: x{ours/max(official, 1):.2f}")


if __name__ == "__main__":
    main()
