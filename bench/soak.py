#!/usr/bin/env python3
"""Soak run (issue 15): push, POST, delete, scrape, unique names and HELP texts, for a while,
against our release binary with a persistence file; prints the RSS curve (and the file size,
which must stay within its compaction bound). Flat is the goal.

    python3 bench/soak.py [--binary target/release/pushgateway] [--seconds 600] [--rate 150]

Load, spread over four threads at about --rate requests per second in total:
  * PUT of one of 50 groups (100 series each, fixed names);
  * POST of a small family into one large group (20,000 series);
  * DELETE of one of the 50 groups;
  * PUT of a group holding 20 families with names and HELP texts never seen before, then its
    DELETE (interned names and HELP texts must be freed);
  * a scrape of /metrics every second.
"""
import argparse
import http.client
import os
import random
import socket
import subprocess
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = None

    def req(self, method, path, body=b""):
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                self.conn.request(method, path, body=body)
                r = self.conn.getresponse()
                data = r.read()
                return r.status, data
            except (http.client.HTTPException, OSError):
                self.conn = None
        raise RuntimeError(f"{method} {path} failed twice")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/pushgateway")
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--rate", type=float, default=150.0)
    ap.add_argument("--sample", type=float, default=10.0)
    a = ap.parse_args()

    d = tempfile.mkdtemp(prefix="pgw-soak-")
    pfile = os.path.join(d, "p.db")
    port = free_port()
    proc = subprocess.Popen([a.binary, f"--web.listen-address=127.0.0.1:{port}",
                             f"--persistence.file={pfile}", "--persistence.interval=30s"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    counts = {"put": 0, "post": 0, "delete": 0, "unique": 0, "scrape": 0, "errors": 0}
    lock = threading.Lock()
    uniq = [0]

    def count(k, status, ok=(200, 202)):
        with lock:
            counts[k] += 1
            if status not in ok:
                counts["errors"] += 1

    deadline = time.time() + 30
    c = Client(port)
    while True:
        try:
            if c.req("GET", "/-/ready")[0] == 200:
                break
        except RuntimeError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            raise SystemExit("gateway not ready")
        time.sleep(0.05)
    big = "".join(f"big{{i=\"{i}\"}} {i}\n" for i in range(20000)).encode()
    assert c.req("PUT", "/metrics/job/soak-big", big)[0] == 200
    group_body = "".join(f"g{{i=\"{i}\"}} {i}\n" for i in range(100)).encode()

    def worker(seed):
        rnd = random.Random(seed)
        cl = Client(port)
        period = 4.0 / a.rate
        nxt = time.time()
        while not stop.is_set():
            r = rnd.random()
            if r < 0.35:
                st, _ = cl.req("PUT", f"/metrics/job/soak/instance/{rnd.randrange(50)}", group_body)
                count("put", st)
            elif r < 0.65:
                body = f"small_{rnd.randrange(20)} {rnd.random()}\n".encode()
                st, _ = cl.req("POST", "/metrics/job/soak-big", body)
                count("post", st)
            elif r < 0.80:
                st, _ = cl.req("DELETE", f"/metrics/job/soak/instance/{rnd.randrange(50)}")
                count("delete", st)
            else:
                with lock:
                    uniq[0] += 1
                    u = uniq[0]
                body = "".join(
                    f"# HELP u{u}_{k} unique help text {u} {k} {rnd.random()}\n"
                    f"# TYPE u{u}_{k} gauge\nu{u}_{k}{{k=\"{k}\"}} {k}\n" for k in range(20))
                path = f"/metrics/job/soak-unique/w/{seed}"
                st, _ = cl.req("PUT", path, body.encode())
                count("unique", st)
                st, _ = cl.req("DELETE", path)
                count("unique", st)
            nxt += period
            time.sleep(max(0.0, nxt - time.time()))

    def scraper():
        cl = Client(port)
        while not stop.is_set():
            st, _ = cl.req("GET", "/metrics")
            count("scrape", st, ok=(200,))
            stop.wait(1.0)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    threads.append(threading.Thread(target=scraper))
    for t in threads:
        t.start()
    start = time.time()
    samples = []
    print(f"{'t/s':>6} {'RSS/MB':>8} {'file/MB':>8} {'requests':>9} {'errors':>7}", flush=True)
    try:
        while time.time() - start < a.seconds:
            time.sleep(a.sample)
            t = time.time() - start
            rss = rss_bytes(proc.pid)
            size = os.path.getsize(pfile) if os.path.exists(pfile) else 0
            with lock:
                total = sum(v for k, v in counts.items() if k != "errors")
                errors = counts["errors"]
            samples.append((t, rss))
            print(f"{t:6.0f} {rss/1e6:8.1f} {size/1e6:8.1f} {total:9d} {errors:7d}", flush=True)
    finally:
        stop.set()
        for t in threads:
            t.join()
        proc.terminate()
        proc.wait()
    print("counts:", counts)
    if len(samples) >= 6:
        first = [r for t, r in samples if t <= 60 + a.sample][-1]
        last = samples[-1][1]
        peak = max(r for _, r in samples)
        print(f"RSS after ~1 min {first/1e6:.1f} MB, at the end {last/1e6:.1f} MB "
              f"(x{last/first:.2f}), peak {peak/1e6:.1f} MB")


if __name__ == "__main__":
    main()
