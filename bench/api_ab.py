#!/usr/bin/env python3
"""A/B of GET /api/v1/metrics against GET /metrics on the same store, for two binaries.

Both binaries restore a copy of one persistence file (made once with --make: G groups of
pgwbench's 20-series body, pushed by wrk with bench/scale.lua), run side by side, and answer
interleaved requests (A scrape, A api, B scrape, B api, ...) fetched with curl to /dev/null.
Per request it records the wall time (curl's time_total) and the server's CPU time (summed over its
threads from /proc/PID/task/*/schedstat, before and after), and prints the medians and the API/scrape ratio
per binary. CPU time is the figure to trust on a shared machine; wall time includes waiting
for a core.

  python3 bench/api_ab.py --make /tmp/pgw-50k.wal --groups 50000 --bin target/release/pushgateway
  python3 bench/api_ab.py --file /tmp/pgw-50k.wal --a OLD_BIN --b NEW_BIN --rounds 7
"""
import argparse, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(binary, wal, extra=()):
    port = free_port()
    p = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}",
                          f"--persistence.file={wal}", "--persistence.sync=interval", *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
                if r.status == 200:
                    return p, port
        except Exception:
            time.sleep(0.05)
    p.kill()
    sys.exit(f"{binary} not ready")


def cpu(pid):
    """CPU seconds of all the process's threads (schedstat: nanoseconds on a CPU)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9


def fetch(port, path):
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_total} %{size_download}",
                          "--max-time", "120", f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), int(out[1])


def make(args):
    p, port = start(args.bin, args.make)
    try:
        wrk = subprocess.Popen(["timeout", "900", "wrk", "-t2", "-c32", "-d900s", "-s",
                                os.path.join(HERE, "scale.lua"), f"http://127.0.0.1:{port}", "--",
                                f"groups={args.groups}", "series=20", "threads=2"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        done = 0
        for line in wrk.stdout:
            if line.startswith("SCALE_DONE"):
                done += 1
                if done == 2:
                    wrk.send_signal(signal.SIGINT)
        wrk.wait(60)
    finally:
        p.terminate()
        p.wait(60)
    print(f"made {args.make}: {os.path.getsize(args.make) / 1e6:.0f} MB")


def ab(args):
    tmp = tempfile.mkdtemp(prefix="pgw-api-ab-")
    servers = []
    try:
        for name, binary in (("A", args.a), ("B", args.b)):
            wal = os.path.join(tmp, f"{name}.wal")
            shutil.copy(args.file, wal)
            p, port = start(binary, wal)
            servers.append((name, binary, p, port, {"scrape": [], "api": []}))
        for _ in range(args.warmup + args.rounds):
            for name, binary, p, port, res in servers:
                for kind, path in (("scrape", "/metrics"), ("api", "/api/v1/metrics")):
                    c0 = cpu(p.pid)
                    wall, size = fetch(port, path)
                    time.sleep(0.05)
                    res[kind].append((wall, cpu(p.pid) - c0, size))
        for name, binary, p, port, res in servers:
            m = {k: [statistics.median(x[i] for x in v[args.warmup:]) for i in range(3)]
                 for k, v in res.items()}
            print(f"{name} {binary}")
            for k in ("scrape", "api"):
                w, c, s = m[k]
                print(f"   {k:<6} wall {w * 1000:7.0f} ms   server cpu {c * 1000:6.0f} ms   "
                      f"{s / 1e6:6.1f} MB")
            print(f"   api/scrape: wall {m['api'][0] / m['scrape'][0]:.2f}x, "
                  f"cpu {m['api'][1] / max(m['scrape'][1], 1e-9):.2f}x")
    finally:
        for _, _, p, _, _ in servers:
            p.terminate()
            p.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--make", help="write a persistence file of --groups groups with --bin")
    ap.add_argument("--bin", default="target/release/pushgateway")
    ap.add_argument("--groups", type=int, default=50000)
    ap.add_argument("--file", help="persistence file to restore (a copy per binary)")
    ap.add_argument("--a")
    ap.add_argument("--b")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()
    if args.make:
        make(args)
    else:
        ab(args)


if __name__ == "__main__":
    main()
