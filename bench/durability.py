#!/usr/bin/env python3
"""Durability cost and restore time of the pushgateway binary.

Starts OUR binary ($PGW_BIN, default target/release/pushgateway of this checkout) on
127.0.0.1 and measures, with wrk and the shared harness' Lua script (../shared/bench/pgw.lua):

1. push throughput (pgwbench's push_small load: PUT of 10-series bodies over 1,000 groups,
   wrk -t2 -c32, 10 s after a warm-up that pushes every group once) in three configurations:
     memory    --persistence.file=            (no persistence)
     always    --persistence.file=F           (default --persistence.sync=always: fsync
                                              before every 2xx, group commit)
     interval  --persistence.file=F --persistence.sync=interval
   and the ratio to in-memory (the issue's target: durable >= 0.5 x in-memory);
2. restore time: preload G groups x 20 series (wrk mode=preload, count-bounded, with
   --push.disable-consistency-check) into a durable gateway, SIGTERM it, restart it on the
   same file and time (a) spawn -> GET /-/ready == 200 and (b) spawn -> the first GET /metrics
   that shows all G groups (G `push_time_seconds` lines).

Prints Markdown tables (and --json writes the raw values). Python 3 standard library only,
plus wrk. Every wait has a deadline, every wrk run a hard kill; servers run in their own
session and are killed on exit. Only 127.0.0.1 is used.

Usage:
  python3 bench/durability.py                       # ~3 min
  python3 bench/durability.py --quick               # ~1 min: 1 rep, 5 s, 10k groups only
  PGW_BIN=/path/to/pushgateway python3 bench/durability.py --reps 5 --restore-sizes 10000,100000
"""

import argparse
import http.client
import json
import math
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
HOST_HEX = "0100007F"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_BIN = os.path.join(ROOT, "target", "release", "pushgateway")
DEFAULT_LUA = os.path.normpath(os.path.join(ROOT, "..", "shared", "bench", "pgw.lua"))

RUNNING = []  # servers to kill on exit


class BenchError(Exception):
    pass


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def listening_inode(port):
    want = f"{HOST_HEX}:{port:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            if p[1] == want and p[3] == "0A":
                return p[9]
    return None


def http_get(port, path, timeout=60.0):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept-Encoding": "identity"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def vm_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Server:
    def __init__(self, binary, workdir, name, args):
        self.binary = binary
        self.workdir = workdir
        self.name = name
        self.args = list(args)
        self.proc = None
        self.port = None
        self.n = 0

    def start(self, ready_timeout=300.0):
        """Spawns the server; returns seconds from spawn to /-/ready == 200."""
        self.port = free_port()
        self.n += 1
        cmd = [self.binary, f"--web.listen-address={HOST}:{self.port}"] + self.args
        self.cmd = cmd
        self.logpath = os.path.join(self.workdir, f"{self.name}-{self.n}.log")
        self.logf = open(self.logpath, "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.t_spawn = t0
        RUNNING.append(self)
        deadline = t0 + ready_timeout
        while True:
            if self.proc.poll() is not None:
                self._died("exited before becoming ready")
            try:
                st, _ = http_get(self.port, "/-/ready", timeout=2.0)
                if st == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.perf_counter() > deadline:
                self.kill()
                raise BenchError(f"{self.name}: not ready after {ready_timeout} s")
            time.sleep(0.001)
        dt = time.perf_counter() - t0
        self._check_owns_port()
        return dt

    def _check_owns_port(self):
        ino = listening_inode(self.port)
        tag = f"socket:[{ino}]"
        try:
            for fd in os.listdir(f"/proc/{self.proc.pid}/fd"):
                try:
                    if os.readlink(f"/proc/{self.proc.pid}/fd/{fd}") == tag:
                        return
                except OSError:
                    pass
        except OSError:
            pass
        self.kill()
        raise BenchError(f"{self.name}: port {self.port} is not held by the process we started")

    def _died(self, why):
        rc = self.proc.returncode
        self.proc = None
        self.logf.close()
        tail = open(self.logpath, "rb").read()[-2000:].decode(errors="replace")
        raise BenchError(f"{self.name}: server {why} (rc={rc}); command: {shlex.join(self.cmd)}\n"
                         f"--- log tail ---\n{tail}")

    def rss_mib(self):
        return vm_kib(self.proc.pid, "VmRSS") / 1024 if self.proc else 0.0

    def stop(self, timeout=120.0):
        """SIGTERM, SIGKILL after `timeout`; returns seconds until exit."""
        if self.proc is None:
            return 0.0
        t0 = time.perf_counter()
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.name}: no exit {timeout} s after SIGTERM; SIGKILL")
            self.kill()
            return float("nan")
        dt = time.perf_counter() - t0
        self.proc = None
        self.logf.close()
        if self in RUNNING:
            RUNNING.remove(self)
        return dt

    def kill(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        try:
            self.logf.close()
        except OSError:
            pass
        if self in RUNNING:
            RUNNING.remove(self)


def wrk_with_markers(cmd, marker, threads, hard_timeout_s, wait_s=30):
    """Runs a wrk command whose Lua script prints `<marker>_START`, one `<marker>_DONE <tid>
    <responses> <bad>` per thread when its count is reached, and `<marker>_RESULT <json>`; stops
    wrk once every thread is done. Returns (result or None, first start, last done, dones,
    stderr, returncode), times from time.perf_counter()."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         bufsize=1, start_new_session=True)
    hard = threading.Timer(hard_timeout_s, p.kill)
    hard.start()
    result, first, dones, last = None, None, [], None
    try:
        for line in p.stdout:
            now = time.perf_counter()
            if line.startswith(marker + "_START") and first is None:
                first = now
            elif line.startswith(marker + "_DONE"):
                _, _tid, resp, bad = line.split()
                dones.append((int(resp), int(bad)))
                last = now
                if len(dones) == threads:
                    p.send_signal(signal.SIGINT)
            elif line.startswith(marker + "_RESULT "):
                result = json.loads(line[len(marker + "_RESULT "):])
        p.wait(timeout=wait_s)
    finally:
        hard.cancel()
        if p.poll() is None:
            p.kill()
            p.wait()
    return result, first, last, dones, p.stderr.read().strip(), p.returncode


def run_wrk(lua, port, mode, threads, conns, duration_s, groups, prefix, once=False,
            seqbase=0):
    """Runs wrk with pgw.lua and returns its PGWB_RESULT (plus, for count-bounded runs,
    'complete', 'bad' and 'push_s' = first request to last acknowledgement)."""
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{int(math.ceil(duration_s))}s",
           "--timeout", "30s", "-s", lua, f"http://{HOST}:{port}", "--",
           f"mode={mode}", f"groups={groups}", f"threads={threads}", f"prefix={prefix}",
           f"seqbase={seqbase}", f"once={1 if once else 0}"]
    t0 = time.perf_counter()
    result, first, last, dones, err, rc = wrk_with_markers(cmd, "PGWB", threads,
                                                          duration_s + 60)
    if once:
        result = result or {"requests": sum(d[0] for d in dones)}
        result["complete"] = len(dones) == threads
        result["bad"] = sum(d[1] for d in dones)
        result["push_s"] = (last - first) if (result["complete"] and first) else None
    elif result is None:
        raise BenchError(f"wrk produced no result (rc={rc}): {err[:500]}")
    result["wall_s"] = time.perf_counter() - t0
    result["errors"] = sum(result.get(k) or 0 for k in
                           ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
    if err:
        result["stderr"] = err[:500]
    return result


def fsync_probe(directory, n=200, deadline_s=20.0):
    """Median and p90 seconds of a 4 KiB write + fdatasync in `directory` (what every group
    commit of --persistence.sync=always pays at least once)."""
    path = os.path.join(directory, "fsync-probe")
    lat = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        buf = b"x" * 4096
        end = time.perf_counter() + deadline_s
        while len(lat) < n and time.perf_counter() < end:
            t0 = time.perf_counter()
            os.write(fd, buf)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.9)]


def count_groups(body, needle=b"\npush_time_seconds{"):
    return body.count(needle) + (1 if body.startswith(needle[1:]) else 0)


CONFIGS = [
    ("memory", lambda f: ["--persistence.file="]),
    ("always", lambda f: [f"--persistence.file={f}"]),
    ("interval", lambda f: [f"--persistence.file={f}", "--persistence.sync=interval"]),
]


def push_small(args, workdir):
    """Alternating runs of every configuration; returns {config: [run dicts]}."""
    out = {name: [] for name, _ in CONFIGS}
    for rep in range(args.reps):
        for name, flags in CONFIGS:
            d = tempfile.mkdtemp(prefix=f"{name}-", dir=workdir)
            srv = Server(args.bin, workdir, f"small-{name}", flags(os.path.join(d, "pgw.data")))
            srv.start()
            load0 = os.getloadavg()[0]
            try:
                warm = run_wrk(args.lua, srv.port, "small", 2, 32, 120, args.groups,
                               "pgwb_small", once=True, seqbase=5_000_000_000)
                if not warm["complete"] or warm["bad"]:
                    raise BenchError(f"{name}: warm-up incomplete or with errors: {warm}")
                r = run_wrk(args.lua, srv.port, "small", 2, 32, args.duration, args.groups,
                            "pgwb_small")
                st, body = http_get(srv.port, "/metrics", timeout=60)
                seen = body.count(b"\npgwb_push_seq{")
                rss = srv.rss_mib()
            finally:
                shut = srv.stop()
            restart_s, restart_groups = None, None
            if name != "memory":
                # Restart on the log as the run left it (not compacted: the default
                # --persistence.interval is 5m) and check that every group came back.
                again = Server(args.bin, workdir, f"small-{name}-restart",
                               flags(os.path.join(d, "pgw.data")))
                try:
                    restart_s = again.start()
                    _, body2 = http_get(again.port, "/metrics", timeout=60)
                    restart_groups = body2.count(b"\npgwb_push_seq{")
                finally:
                    again.stop()
            run = {
                "load1": (load0 + os.getloadavg()[0]) / 2,
                "restart_s": restart_s,
                "restart_groups": restart_groups,
                "rps": r["requests"] / (r["duration_us"] / 1e6),
                "p50_ms": r["lat_p50_us"] / 1e3,
                "p99_ms": r["lat_p99_us"] / 1e3,
                "errors": r["errors"],
                "groups_seen": seen,
                "scrape_status": st,
                "rss_mib": rss,
                "shutdown_s": shut,
                "file_mib": dir_mib(d),
            }
            ok = (st == 200 and seen == args.groups and r["errors"] == 0
                  and restart_groups in (None, args.groups))
            run["ok"] = ok
            out[name].append(run)
            log(f"push_small {name} rep {rep + 1}: {run['rps']:.0f} req/s, "
                f"p50 {run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms, "
                f"errors {run['errors']}, groups {seen}/{args.groups}, "
                f"file {run['file_mib']:.1f} MiB, load {run['load1']:.1f}"
                + (f", restart {restart_s:.3f} s with {restart_groups} groups"
                   if restart_s is not None else "")
                + ("" if ok else "  CHECK FAILED"))
            shutil.rmtree(d, ignore_errors=True)
    return out


def dir_mib(d):
    total = 0
    for n in os.listdir(d):
        try:
            total += os.path.getsize(os.path.join(d, n))
        except OSError:
            pass
    return total / (1 << 20)


def restore(args, workdir, G):
    d = tempfile.mkdtemp(prefix=f"restore-{G}-", dir=workdir)
    f = os.path.join(d, "pgw.data")
    srv = Server(args.bin, workdir, f"restore-{G}-preload",
                 [f"--persistence.file={f}", "--push.disable-consistency-check"])
    srv.start()
    try:
        pre = run_wrk(args.lua, srv.port, "preload", 2, 16, 1200, G, "pgwb_pre", once=True)
        if not pre["complete"] or pre["bad"]:
            raise BenchError(f"preload of {G} groups incomplete or with errors: {pre}")
        preload_rss = srv.rss_mib()
    finally:
        shut = srv.stop()
    res = {"groups": G, "preload_s": pre["push_s"], "preload_rps": G / pre["push_s"],
           "shutdown_s": shut, "file_mib": dir_mib(d), "preload_rss_mib": preload_rss,
           "runs": []}
    log(f"restore {G}: preloaded in {pre['push_s']:.2f} s ({res['preload_rps']:.0f} push/s), "
        f"shutdown {shut:.2f} s, file {res['file_mib']:.1f} MiB")
    for rep in range(args.reps):
        srv = Server(args.bin, workdir, f"restore-{G}", [f"--persistence.file={f}"])
        try:
            ready = srv.start(ready_timeout=600)
            deadline = time.perf_counter() + 600
            polls = 0
            while True:
                polls += 1
                st, body = http_get(srv.port, "/metrics", timeout=300)
                n = count_groups(body) if st == 200 else -1
                if n >= G:
                    break
                if time.perf_counter() > deadline or polls > 100_000:
                    raise BenchError(f"restore {G}: only {n} groups after {polls} scrapes")
                time.sleep(0.01)
            full = time.perf_counter() - srv.t_spawn
            run = {"ready_s": ready, "all_groups_s": full, "groups_seen": n,
                   "scrape_mib": len(body) / (1 << 20), "rss_mib": srv.rss_mib(),
                   "hwm_mib": vm_kib(srv.proc.pid, "VmHWM") / 1024}
        finally:
            run_shut = srv.stop()
        run["shutdown_s"] = run_shut
        res["runs"].append(run)
        log(f"restore {G} rep {rep + 1}: ready {ready:.3f} s, all groups {full:.3f} s, "
            f"RSS {run['rss_mib']:.0f} MiB")
    shutil.rmtree(d, ignore_errors=True)
    return res


def med(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return statistics.median(xs) if xs else float("nan")


def fmt_opt(x):
    return "-" if math.isnan(x) else f"{x:.3f}"


def print_tables(small, restores, args):
    print()
    print(f"Binary: `{args.bin}`, {os.cpu_count()} CPUs, median of {args.reps} run(s).")
    if getattr(args, "fsync", None):
        (a50, a90), (b50, b90) = args.fsync
        print(f"4 KiB write+fdatasync in the scratch directory: median {a50 * 1e3:.2f} ms, "
              f"p90 {a90 * 1e3:.2f} ms before; {b50 * 1e3:.2f} / {b90 * 1e3:.2f} ms after.")
    if small:
        print()
        print(f"### push_small: PUT 10 series over {args.groups} groups, "
              f"wrk -t2 -c32 -d{args.duration}s")
        print()
        print("| configuration | req/s | vs memory | p50 ms | p99 ms | errors | "
              "RSS MiB | shutdown s | file MiB | restart s | checks |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        load = med(r["load1"] for runs in small.values() for r in runs)
        base = med(r["rps"] for r in small["memory"])
        for name, _ in CONFIGS:
            runs = small[name]
            rps = med(r["rps"] for r in runs)
            print(f"| {name} | {rps:,.0f} | {rps / base:.2f} | "
                  f"{med(r['p50_ms'] for r in runs):.2f} | {med(r['p99_ms'] for r in runs):.2f} | "
                  f"{sum(r['errors'] for r in runs)} | {med(r['rss_mib'] for r in runs):.0f} | "
                  f"{med(r['shutdown_s'] for r in runs):.2f} | "
                  f"{med(r['file_mib'] for r in runs):.1f} | "
                  f"{fmt_opt(med(r['restart_s'] for r in runs))} | "
                  f"{'ok' if all(r['ok'] for r in runs) else 'FAILED'} |")
        ratio = med(r["rps"] for r in small["always"]) / base
        verdict = "meets" if ratio >= 0.5 else "MISSES"
        print()
        print(f"Durable (sync=always) / in-memory = {ratio:.2f}: {verdict} the target (>= 0.5). "
              f"Median 1-min load average during the runs: {load:.1f}.")
        print("file MiB: the persistence file after the run (a log, compacted only every "
              "--persistence.interval); restart s: spawn to /-/ready on that file, with every "
              "group checked back.")
    if restores:
        print()
        print("### restore: G groups x 20 series, SIGTERM, restart on the same file")
        print()
        print("| groups | series | file MiB | preload push/s | RSS after preload MiB | "
              "shutdown s | restart to ready s | restart to all groups in /metrics s | "
              "RSS after restart MiB | peak RSS MiB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in restores:
            runs = r["runs"]
            print(f"| {r['groups']:,} | {r['groups'] * 20:,} | {r['file_mib']:.1f} | "
                  f"{r['preload_rps']:,.0f} | {r['preload_rss_mib']:.0f} | "
                  f"{r['shutdown_s']:.2f} | "
                  f"{med(x['ready_s'] for x in runs):.3f} | "
                  f"{med(x['all_groups_s'] for x in runs):.3f} | "
                  f"{med(x['rss_mib'] for x in runs):.0f} | "
                  f"{med(x['hwm_mib'] for x in runs):.0f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.environ.get("PGW_BIN", DEFAULT_BIN))
    ap.add_argument("--lua", default=os.environ.get("PGW_LUA", DEFAULT_LUA))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per timed wrk run")
    ap.add_argument("--groups", type=int, default=1000, help="groups of the push_small load")
    ap.add_argument("--restore-sizes", default="10000,100000")
    ap.add_argument("--skip-push", action="store_true")
    ap.add_argument("--skip-restore", action="store_true")
    ap.add_argument("--quick", action="store_true", help="1 rep, 5 s runs, 10k groups restore")
    ap.add_argument("--json", help="write the raw values here")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.duration, args.restore_sizes = 1, 5, "10000"
    for what, path in (("binary", args.bin), ("lua script", args.lua)):
        if not os.path.exists(path):
            sys.exit(f"{what} not found: {path}")
    if shutil.which("wrk") is None:
        sys.exit("wrk not found (apt-get install wrk)")
    sizes = [int(s.replace("_", "")) for s in args.restore_sizes.split(",") if s.strip()]

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    workdir = tempfile.mkdtemp(prefix="pgw-durability-")
    log(f"scratch directory {workdir}")
    small, restores = None, []
    fsync_before = fsync_probe(workdir)
    args.fsync = None
    try:
        if not args.skip_push:
            small = push_small(args, workdir)
        if not args.skip_restore:
            for G in sizes:
                restores.append(restore(args, workdir, G))
    except (BenchError, KeyboardInterrupt) as e:
        log(f"aborted: {e}")
        for s in list(RUNNING):
            s.kill()
        print_tables(small, restores, args)
        return 1
    finally:
        for s in list(RUNNING):
            s.kill()
    args.fsync = (fsync_before, fsync_probe(workdir))
    print_tables(small, restores, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"push_small": small, "restore": restores}, f, indent=1)
    shutil.rmtree(workdir, ignore_errors=True)
    ok = small is None or all(r["ok"] for runs in small.values() for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
