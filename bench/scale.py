#!/usr/bin/env python3
"""The 10M-series scenario of issue 19: G groups of M series against one pushgateway binary.

Steps (one fresh server, 127.0.0.1 only, a scratch directory under /tmp):
  1. start with --persistence.file=F (sync as --sync; default `always`, the binary's default);
  2. preload: PUT every group exactly once with wrk (bench/scale.lua, count-bounded,
     --threads x --conns connections); rate = groups and series per second from the first
     request to the last acknowledgement; our binary keeps its consistency check ON, the
     official one needs --push.disable-consistency-check (its check is O(store) per push) and
     answers 202, so we then wait until a scrape shows every group;
  3. RSS after preload (VmRSS, VmHWM) once the server is idle;
  4. full scrape of GET /metrics (streamed, never held in memory): time to first byte and to
     last byte, bytes, and the peak VmRSS sampled every 20 ms during it vs the idle VmRSS before
     it; the body is checked: M*G series lines and G push_time_seconds lines;
  5. checked push latency: --pushes sequential PUTs (one keep-alive connection) of a group's
     body into the full store (replacing existing groups), p50 and p99;
  6. SIGTERM (time to exit), restart on F: time from exec to GET /-/ready == 200, then a full
     scrape that must show all G groups (groups restored);
  7. optional --startup-reps N: idle RSS (after 1 s idle) and time to ready of an empty store,
     medians of N starts, for our binary and --official-bin alternately.

Every wait has a deadline; wrk has a hard kill; a sampler aborts the run when the server's RSS
exceeds --max-rss-gib or MemAvailable falls below --min-avail-gib. Prints a table with the
issue's targets beside the figures; --json FILE keeps the raw values.

Usage:
  python3 bench/scale.py --groups 500000 --series 20          # the 10M scenario (~3-5 min)
  python3 bench/scale.py --smoke                              # seconds: 2,000 x 20, checks only
  python3 bench/scale.py --groups 50000 --official-groups 10000 --startup-reps 10
  python3 bench/scale.py --startup-only --startup-reps 10     # idle RSS / time to ready only
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from durability import (HOST, RUNNING, BenchError, Server, fsync_probe, http_get,  # noqa: E402
                        wrk_with_markers,
                        log, vm_kib)

ROOT = os.path.dirname(HERE)
DEFAULT_BIN = os.path.join(ROOT, "target", "release", "pushgateway")
OFFICIAL_BIN = "/usr/bin/prometheus-pushgateway"
LUA = os.path.join(HERE, "scale.lua")

# the targets, by row key
TARGETS = {
    "preload_series_s": "",
    "rss_mib": "<= 2048 MiB",
    "rss_per_series_b": "",
    "scrape_s": "< 2 s",
    "scrape_peak_ratio": "<= 1.2x idle",
    "push_p50_ms": "< 1 ms",
    "ready_s": "< 10 s",
    "startup_rss_mib": "<= official",
    "startup_ready_ms": "<= official",
}


def fmt_body(g, m):
    """The body scale.lua sends for group g (for the timed single pushes)."""
    def f(v):
        return str(int(v)) if v == int(v) else f"{v:.6f}"
    if m == 20:
        t = ["# HELP pgwb_job_duration_seconds Duration of the job phases.\n",
             "# TYPE pgwb_job_duration_seconds gauge\n"]
        t += [f'pgwb_job_duration_seconds{{phase="p{i}"}} {f((g % 89) + i * 0.5)}\n' for i in range(5)]
        t += ["# HELP pgwb_job_records_total Records processed per phase.\n",
              "# TYPE pgwb_job_records_total counter\n"]
        t += [f'pgwb_job_records_total{{phase="p{i}"}} {g * 5 + i}\n' for i in range(5)]
        t += ["# HELP pgwb_job_item_seconds Time per processed item.\n",
              "# TYPE pgwb_job_item_seconds histogram\n"]
        for i, le in enumerate(["0.01", "0.1", "1", "10", "100", "+Inf"], 1):
            t.append(f'pgwb_job_item_seconds_bucket{{le="{le}"}} {i * 10}\n')
        t += [f"pgwb_job_item_seconds_sum {f(g + 0.5)}\n", "pgwb_job_item_seconds_count 60\n",
              "# HELP pgwb_job_last_success_timestamp_seconds Last successful run.\n",
              "# TYPE pgwb_job_last_success_timestamp_seconds gauge\n",
              f"pgwb_job_last_success_timestamp_seconds {1700000000 + g}\n",
              "# TYPE pgwb_job_up gauge\npgwb_job_up 1\n"]
    else:
        t = []
        if m > 1:
            t.append("# HELP pgwb_scale_value A value per series.\n# TYPE pgwb_scale_value gauge\n")
            t += [f'pgwb_scale_value{{i="{i}"}} {g + i}\n' for i in range(m - 1)]
        t += ["# HELP pgwb_job_last_success_timestamp_seconds Last successful run.\n",
              "# TYPE pgwb_job_last_success_timestamp_seconds gauge\n",
              f"pgwb_job_last_success_timestamp_seconds {1700000000 + g}\n"]
    return "".join(t).encode()


def group_path(g):
    return f"/metrics/job/pgwb_scale_{g // 10}/instance/i{g % 10}"


def mem_available_gib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


class Sampler:
    """Samples a pid's VmRSS every `period` s; kills the server when memory runs out."""

    def __init__(self, server, args, period=0.02):
        self.server, self.args, self.period = server, args, period
        self.peak_kib = 0
        self.samples = 0
        self.aborted = None
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    def reset(self):
        self.peak_kib = 0
        self.samples = 0

    def _run(self):
        while not self._stop.is_set():
            proc = self.server.proc
            if proc is not None:
                rss = vm_kib(proc.pid, "VmRSS")
                self.peak_kib = max(self.peak_kib, rss)
                self.samples += 1
                if self.samples % 25 == 0 or rss > self.args.max_rss_gib * 1048576:
                    avail = mem_available_gib()
                    if rss > self.args.max_rss_gib * 1048576 or avail < self.args.min_avail_gib:
                        self.aborted = (f"memory guard: server RSS {rss / 1048576:.2f} GiB, "
                                        f"MemAvailable {avail:.2f} GiB")
                        log(self.aborted + "; killing the server")
                        self.server.kill()
                        return
            self._stop.wait(self.period)


def preload(port, groups, series, threads, conns, timeout_s):
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{int(timeout_s)}s", "--timeout", "60s",
           "-s", LUA, f"http://{HOST}:{port}", "--", f"groups={groups}", f"series={series}",
           f"threads={threads}"]
    result, first, last, dones, err, rc = wrk_with_markers(cmd, "SCALE", threads,
                                                          timeout_s + 120, wait_s=60)
    if len(dones) != threads or first is None:
        raise BenchError(f"preload incomplete ({len(dones)}/{threads} threads done, "
                         f"rc={rc}): {err[:500]}")
    bad = sum(d[1] for d in dones)
    errors = sum((result or {}).get(k, 0) for k in
                 ("err_connect", "err_read", "err_write", "err_timeout"))
    if bad or errors:
        raise BenchError(f"preload: {bad} non-2xx answers, {errors} socket errors")
    return last - first


def scrape(port, path="/metrics", timeout=600.0):
    """Streams GET path; returns (ttfb_s, total_s, bytes, series_lines, push_time_lines)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    t0 = time.perf_counter()
    conn.request("GET", path, headers={"Accept-Encoding": "identity", "Accept": "text/plain"})
    resp = conn.getresponse()
    ttfb = time.perf_counter() - t0
    if resp.status != 200:
        raise BenchError(f"GET {path}: {resp.status}")
    nbytes, nseries, npush = 0, 0, 0
    n1, n2 = b"\npgwb_", b"\npush_time_seconds{"
    t1 = t2 = b"\n"  # each tail is shorter than its needle: no match is counted twice
    while True:
        chunk = resp.read(1 << 20)
        if not chunk:
            break
        nbytes += len(chunk)
        b1, b2 = t1 + chunk, t2 + chunk
        nseries += b1.count(n1)
        npush += b2.count(n2)
        t1, t2 = b1[-(len(n1) - 1):], b2[-(len(n2) - 1):]
    total = time.perf_counter() - t0
    conn.close()
    return ttfb, total, nbytes, nseries, npush


def wait_groups(port, groups, deadline_s):
    """Scrapes until all groups show (the official binary applies unchecked pushes later)."""
    t0 = time.perf_counter()
    while True:
        r = scrape(port)
        if r[4] >= groups:
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > deadline_s:
            raise BenchError(f"only {r[4]} of {groups} groups visible after {deadline_s} s")
        time.sleep(0.2)


def timed_pushes(port, groups, series, n, budget_s):
    conn = http.client.HTTPConnection(HOST, port, timeout=120)
    lat = []
    t_end = time.perf_counter() + budget_s
    try:
        for i in range(n):
            g = (i * 7919) % groups
            body = fmt_body(g, series)
            t0 = time.perf_counter()
            conn.request("PUT", group_path(g), body=body,
                         headers={"Content-Type": "text/plain; version=0.0.4"})
            resp = conn.getresponse()
            resp.read()
            lat.append(time.perf_counter() - t0)
            if resp.status // 100 != 2:
                raise BenchError(f"timed push: status {resp.status}")
            if time.perf_counter() > t_end:
                break
    finally:
        conn.close()
    lat.sort()
    return lat


def pct(xs, p):
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run_scale(args, binary, name, groups, workdir):
    series = args.series
    official = os.path.basename(binary).startswith("prometheus-pushgateway")
    pfile = os.path.join(workdir, f"{name}.data")
    flags = [f"--persistence.file={pfile}"]
    if official:
        flags += ["--persistence.interval=1h", "--push.disable-consistency-check"]
    elif args.sync:
        flags.append(f"--persistence.sync={args.sync}")
    flags += args.server_arg
    r = {"server": name, "binary": binary, "groups": groups, "series": series,
         "flags": flags}
    srv = Server(binary, workdir, name, flags)
    srv.start()
    with Sampler(srv, args) as smp:
        try:
            r["idle_empty_rss_mib"] = srv.rss_mib()
            log(f"{name}: preloading {groups} groups x {series} series "
                f"({args.threads} threads x {args.conns} conns)")
            dt = preload(srv.port, groups, series, args.threads, args.conns, args.preload_budget)
            if official:
                dt += wait_groups(srv.port, groups, args.preload_budget)
            r["preload_s"] = dt
            r["preload_groups_s"] = groups / dt
            r["preload_series_s"] = groups * series / dt
            log(f"{name}: preload {dt:.1f} s = {groups * series / dt:,.0f} series/s")
            time.sleep(1.0)
            r["rss_mib"] = srv.rss_mib()
            r["hwm_after_preload_mib"] = vm_kib(srv.proc.pid, "VmHWM") / 1024
            r["rss_per_series_b"] = (r["rss_mib"] - r["idle_empty_rss_mib"]) * 1048576 / (groups * series)
            # full scrapes
            scr = []
            for _ in range(args.scrapes):
                idle = srv.rss_mib()
                smp.reset()
                ttfb, total, nbytes, nser, npush = scrape(srv.port)
                peak = smp.peak_kib / 1024
                if nser != groups * series or npush != groups:
                    raise BenchError(f"{name}: scrape shows {nser} series / {npush} groups, "
                                     f"want {groups * series} / {groups}")
                scr.append({"ttfb_s": ttfb, "s": total, "bytes": nbytes, "idle_mib": idle,
                            "peak_mib": peak, "samples": smp.samples})
                log(f"{name}: scrape {total:.2f} s, {nbytes / 1e6:.0f} MB, "
                    f"RSS {idle:.0f} -> peak {peak:.0f} MiB")
            r["scrapes"] = scr
            best = min(scr, key=lambda x: x["s"])
            r["scrape_s"] = statistics.median(x["s"] for x in scr)
            r["scrape_ttfb_s"] = statistics.median(x["ttfb_s"] for x in scr)
            r["scrape_mb"] = best["bytes"] / 1e6
            r["scrape_peak_ratio"] = max(x["peak_mib"] / x["idle_mib"] for x in scr)
            r["scrape_peak_mib"] = max(x["peak_mib"] for x in scr)
            if args.api:
                smp.reset()
                idle = srv.rss_mib()
                t0 = time.perf_counter()
                st, body = http_get(srv.port, "/api/v1/metrics", timeout=600)
                r["api_s"] = time.perf_counter() - t0
                r["api_mb"] = len(body) / 1e6
                r["api_peak_ratio"] = smp.peak_kib / 1024 / idle
                del body
            # checked pushes into the full store (ours: the check is on; official: after restart)
            if not official:
                lat = timed_pushes(srv.port, groups, series, args.pushes, args.push_budget)
                r["push_n"] = len(lat)
                r["push_p50_ms"] = pct(lat, 50) * 1e3
                r["push_p99_ms"] = pct(lat, 99) * 1e3
                log(f"{name}: checked push p50 {r['push_p50_ms']:.3f} ms (n={len(lat)})")
            r["hwm_mib"] = vm_kib(srv.proc.pid, "VmHWM") / 1024
            # restart
            r["shutdown_s"] = srv.stop(timeout=600)
            r["file_mb"] = os.path.getsize(pfile) / 1e6 if os.path.exists(pfile) else 0.0
            rflags = [f"--persistence.file={pfile}"] + (["--persistence.interval=1h"] if official else [])
            if not official and args.sync:
                rflags.append(f"--persistence.sync={args.sync}")
            srv.args = rflags + args.server_arg
            r["ready_s"] = srv.start(ready_timeout=args.preload_budget)
            r["rss_after_restart_mib"] = srv.rss_mib()
            _, total, _, nser, npush = scrape(srv.port)
            r["restored_groups"] = npush
            r["restored_scrape_s"] = total
            log(f"{name}: restart to ready {r['ready_s']:.2f} s, {npush} groups restored")
            if npush != groups:
                raise BenchError(f"{name}: {npush} of {groups} groups restored")
            if official:
                lat = timed_pushes(srv.port, groups, series, min(args.pushes, 20), args.push_budget)
                r["push_n"] = len(lat)
                r["push_p50_ms"] = pct(lat, 50) * 1e3
                r["push_p99_ms"] = pct(lat, 99) * 1e3
            srv.stop(timeout=600)
        except BenchError:
            if smp.aborted:
                raise BenchError(smp.aborted)
            raise
        finally:
            srv.kill()
    return r


def startup(args, workdir, bins):
    """Medians of --startup-reps starts per binary (alternating): time to ready, idle RSS."""
    res = {name: {"ready_ms": [], "rss_mib": []} for name, _ in bins}
    for _ in range(args.startup_reps):
        for name, b in bins:
            srv = Server(b, workdir, f"startup-{name}", ["--persistence.file="])
            try:
                dt = srv.start(ready_timeout=30)
                time.sleep(1.0)
                res[name]["ready_ms"].append(dt * 1e3)
                res[name]["rss_mib"].append(srv.rss_mib())
                srv.stop(timeout=30)
            finally:
                srv.kill()
    out = {}
    for name, v in res.items():
        out[name] = {"ready_ms": statistics.median(v["ready_ms"]),
                     "rss_mib": statistics.median(v["rss_mib"]),
                     "ready_ms_all": v["ready_ms"], "rss_mib_all": v["rss_mib"]}
    return out


def fnum(x, nd=2):
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}"


def print_table(runs, st):
    cols = [r["server"] for r in runs]
    rows = [] if not runs else [
        ("preload rate", "series/s", "preload_series_s", 0),
        ("preload rate", "groups/s", "preload_groups_s", 0),
        ("RSS after preload (VmRSS)", "MiB", "rss_mib", 0),
        ("RSS per stored series", "B", "rss_per_series_b", 0),
        ("VmHWM after preload", "MiB", "hwm_after_preload_mib", 0),
        ("full scrape (median)", "s", "scrape_s", 2),
        ("  time to first byte", "s", "scrape_ttfb_s", 3),
        ("  size", "MB", "scrape_mb", 0),
        ("  peak VmRSS / idle VmRSS", "x", "scrape_peak_ratio", 2),
        ("GET /api/v1/metrics", "s", "api_s", 2),
        ("  peak VmRSS / idle", "x", "api_peak_ratio", 2),
        ("checked push p50", "ms", "push_p50_ms", 3),
        ("checked push p99", "ms", "push_p99_ms", 3),
        ("VmHWM at the end", "MiB", "hwm_mib", 0),
        ("shutdown (SIGTERM)", "s", "shutdown_s", 2),
        ("persistence file", "MB", "file_mb", 0),
        ("restart: exec -> /-/ready", "s", "ready_s", 2),
        ("restart: groups restored", "", "restored_groups", 0),
        ("RSS after restart", "MiB", "rss_after_restart_mib", 0),
    ]
    hdr = "| | unit | " + " | ".join(
        f"{c} ({r['groups']:,} x {r['series']})" for c, r in zip(cols, runs)) + " | target |"
    if runs:
        print(hdr)
        print("|---|---|" + "---:|" * len(runs) + "---|")
    for label, unit, key, nd in rows:
        if not any(key in r for r in runs):
            continue
        vals = [fnum(r.get(key), nd) for r in runs]
        print(f"| {label} | {unit} | " + " | ".join(vals) + f" | {TARGETS.get(key, '')} |")
    if st:
        print()
        print("| empty store, medians of starts | " + " | ".join(st) + " | target |")
        print("|---|" + "---:|" * len(st) + "---|")
        n = len(next(iter(st.values()))["ready_ms_all"])
        print(f"| time to /-/ready (ms, n={n}) | " +
              " | ".join(fnum(v["ready_ms"], 1) for v in st.values()) + " | ours <= official |")
        print("| idle RSS after 1 s (MiB) | " +
              " | ".join(fnum(v["rss_mib"], 1) for v in st.values()) + " | ours <= official |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("PGW_BIN", DEFAULT_BIN))
    ap.add_argument("--official-bin", default=OFFICIAL_BIN)
    ap.add_argument("--groups", type=int, default=500_000)
    ap.add_argument("--series", type=int, default=20, help="series per group (20: pgwbench's body)")
    ap.add_argument("--official-groups", type=int, default=0,
                    help="also run the official binary at this many groups (0: not)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--conns", type=int, default=64, help="wrk connections")
    ap.add_argument("--sync", default="", help="--persistence.sync for our binary (default: its own)")
    ap.add_argument("--scrapes", type=int, default=2)
    ap.add_argument("--api", action="store_true", help="also time GET /api/v1/metrics")
    ap.add_argument("--pushes", type=int, default=200)
    ap.add_argument("--push-budget", type=float, default=60.0, help="seconds for the timed pushes")
    ap.add_argument("--preload-budget", type=float, default=900.0)
    ap.add_argument("--startup-reps", type=int, default=0)
    ap.add_argument("--startup-only", action="store_true")
    ap.add_argument("--max-rss-gib", type=float, default=12.0)
    ap.add_argument("--min-avail-gib", type=float, default=3.0)
    ap.add_argument("--server-arg", action="append", default=[], help="extra flag for our binary")
    ap.add_argument("--no-thp", action="store_true",
                    help="disable transparent huge pages for the servers (prctl PR_SET_THP_DISABLE "
                         "on this process, inherited): what mimalloc's no_thp feature would do")
    ap.add_argument("--smoke", action="store_true", help="2,000 x 20, 20 pushes, 2 starts: seconds")
    ap.add_argument("--json", help="write the raw values here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    if args.smoke:
        args.groups, args.series, args.pushes, args.scrapes = 2000, 20, 20, 1
        args.startup_reps = args.startup_reps or 2
        args.api = True
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            sys.exit(f"scale.py: {tool} not found")
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"scale.py: no binary at {args.bin} (cargo build --release -p pushgateway)")

    if args.no_thp:
        import ctypes
        if ctypes.CDLL(None, use_errno=True).prctl(41, 1, 0, 0, 0) != 0:  # PR_SET_THP_DISABLE
            sys.exit("scale.py: prctl(PR_SET_THP_DISABLE) failed")

    def on_term(signum, frame):
        for s in list(RUNNING):
            s.kill()
        sys.exit(130)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    workdir = tempfile.mkdtemp(prefix="pgw-scale-")
    log(f"scratch: {workdir}; load {os.getloadavg()}; MemAvailable {mem_available_gib():.1f} GiB")
    runs, st, ok = [], None, True
    t0 = time.time()
    fs = fsync_probe(workdir)
    log(f"fsync probe (4 KiB write + fdatasync): median {fs[0] * 1e3:.2f} ms, p90 {fs[1] * 1e3:.2f} ms")
    try:
        if not args.startup_only:
            runs.append(run_scale(args, args.bin, "ours", args.groups, workdir))
            if args.official_groups:
                runs.append(run_scale(args, args.official_bin, "official",
                                      args.official_groups, workdir))
        if args.startup_reps:
            bins = [("ours", args.bin)]
            if os.access(args.official_bin, os.X_OK):
                bins.append(("official", args.official_bin))
            st = startup(args, workdir, bins)
    except BenchError as e:
        ok = False
        log(f"FAILED: {e}")
    finally:
        for s in list(RUNNING):
            s.kill()
    print(f"\nscale.py {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(t0))} "
          f"({time.time() - t0:.0f} s){', THP disabled' if args.no_thp else ''}, load avg at end {os.getloadavg()[0]:.1f}, "
          f"{os.cpu_count()} CPUs, fsync median {fs[0] * 1e3:.2f} ms (p90 {fs[1] * 1e3:.2f})\n")
    if runs or st:
        print_table(runs, st)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "startup": st, "ok": ok, "fsync_s": fs}, f, indent=1)
    if ok and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    elif not ok:
        log(f"logs kept in {workdir}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
