"""Taking over the official Pushgateway's persistence file (issue 14, item 1).

The fixtures are written by the real official binary (/usr/bin/prometheus-pushgateway,
Debian's 1.5.1): pushes of every metric type, HELP texts, label values that need @base64 in
the URL, failed pushes, and 10k groups. Our gateway must start on that file with every group
exactly as the official gateway restores it (push_time_seconds and push_failure_time_seconds
included), write its own format, keep the original byte for byte beside it, and refuse a file
of neither format without renaming or changing it.
"""

import base64
import concurrent.futures
import hashlib
import json
import os
import shutil
import signal
import subprocess

import pytest
import requests

import pgw_e2e

OFFICIAL_BIN = os.environ.get("PGW_OFFICIAL_BIN", "/usr/bin/prometheus-pushgateway")
OWN_PREFIXES = ("pushgateway_", "process_", "go_", "promhttp_")

pytestmark = pytest.mark.skipif(
    not os.access(OFFICIAL_BIN, os.X_OK), reason="official pushgateway binary not installed")


class Official(pgw_e2e.Gateway):
    name = "official"

    def command(self, port):
        return [OFFICIAL_BIN, "--web.listen-address=127.0.0.1:%d" % port,
                "--persistence.file=%s" % self.persistence_file,
                "--persistence.interval=1s"] + self.flags


def b64(s):
    return base64.urlsafe_b64encode(s.encode()).decode()


FAMILIES = """# HELP jobs_done_total Jobs done.
# TYPE jobs_done_total counter
jobs_done_total{queue="a"} 17
jobs_done_total{queue="b \\"quoted\\" \\\\ back"} 3
# HELP temperature A gauge with a long help text: tabs\tand ünicode.
# TYPE temperature gauge
temperature -1.5e-07
# TYPE plain untyped
plain{x="1"} 42
# HELP latency_seconds A histogram.
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 1
latency_seconds_bucket{le="1"} 3
latency_seconds_bucket{le="+Inf"} 4
latency_seconds_sum 5.25
latency_seconds_count 4
# HELP rpc_seconds A summary.
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.2
rpc_seconds{quantile="0.99"} NaN
rpc_seconds_sum 8
rpc_seconds_count 30
special +Inf
"""


def fill(gw):
    s = requests.Session()
    put = lambda path, body: s.put(gw.url(path), data=body.encode(), timeout=10)
    post = lambda path, body: s.post(gw.url(path), data=body.encode(), timeout=10)
    assert put("/metrics/job/all_types/instance/i1", FAMILIES).status_code == 200
    # Values that need @base64 in the URL: slash, empty-looking, unicode, spaces.
    path = "/metrics/job@base64/%s/path@base64/%s/who/%s" % (
        b64("nightly/backup ü"), b64("/var/lib/x y"), "plain")
    assert put(path, "backup_bytes 1e9\n").status_code == 200
    assert post(path, "# HELP backup_files Files.\nbackup_files 12\n").status_code == 200
    # A failed push on an existing group: push_failure_time_seconds > push_time_seconds.
    assert put("/metrics/job/failing", "temperature_x 1\n").status_code == 200
    r = post("/metrics/job/failing", "# TYPE temperature counter\ntemperature 3\n")
    assert r.status_code == 400, r.text
    # A failed push creating a group: only a failure time.
    r = put("/metrics/job/never_ok", "# TYPE jobs_done_total gauge\njobs_done_total 1\n")
    assert r.status_code == 400, r.text


def persist_and_stop(gw):
    # --persistence.interval=1s, and a SIGTERM persists again.
    assert gw.stop(signal.SIGTERM) == 0, gw.log_tail()
    assert os.path.getsize(gw.persistence_file) > 0


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def own(line):
    name = line.split(" ")[2] if line.startswith("#") else line
    return name.startswith(OWN_PREFIXES)


def series(text):
    return sorted(l for l in text.splitlines() if l and not own(l))


def api_groups(gw):
    data = gw.api_metrics()
    out = {}
    for g in data:
        key = tuple(sorted(g["labels"].items()))
        fams = {}
        for name, fam in g.items():
            if name in ("labels", "last_push_successful"):
                continue
            fams[name] = {
                "time_stamp": fam["time_stamp"],
                "type": fam["type"],
                "help": fam.get("help"),
                # Compared as JSON values (object key order is not meaningful).
                "metrics": sorted(json.dumps(m, sort_keys=True) for m in fam["metrics"]),
            }
        out[key] = (g["last_push_successful"], fams)
    return out


def compare(official_file, ours_file, tmp_path, expect_groups=None):
    """The official gateway restoring `official_file` and ours taking over `ours_file`
    (a copy of it) serve the same groups and series."""
    off = Official(str(tmp_path), official_file).start()
    try:
        off_text, off_api = off.get("/metrics").text, api_groups(off)
    finally:
        off.close()
    gw = pgw_e2e.Gateway(str(tmp_path), ours_file).start()
    try:
        our_text, our_api = gw.get("/metrics").text, api_groups(gw)
    finally:
        gw.close()
    if expect_groups is not None:
        assert len(off_api) == expect_groups
    assert series(our_text) == series(off_text)
    assert our_api.keys() == off_api.keys()
    for k in off_api:
        assert our_api[k][0] == off_api[k][0], k
        assert our_api[k][1].keys() == off_api[k][1].keys(), k
        for name in off_api[k][1]:
            assert our_api[k][1][name] == off_api[k][1][name], (k, name)
    return gw.log_tail(400)


def test_official_file_is_taken_over_with_every_group_and_push_time(tmp_path):
    pf = str(tmp_path / "official.db")
    off = Official(str(tmp_path), pf).start()
    fill(off)
    persist_and_stop(off)
    original = sha(pf)
    mode = os.stat(pf).st_mode & 0o777
    reference = str(tmp_path / "reference.db")
    shutil.copy(pf, reference)

    log = compare(reference, pf, tmp_path, expect_groups=4)

    kept = [n for n in os.listdir(tmp_path) if n.startswith("official.db.official-")]
    assert len(kept) == 1, os.listdir(tmp_path)
    assert sha(str(tmp_path / kept[0])) == original
    assert os.stat(str(tmp_path / kept[0])).st_mode & 0o777 == mode
    assert "imported the official Pushgateway" in log and kept[0] in log, log
    with open(pf, "rb") as f:
        assert f.read(8) == b"\x89PGWWAL\n"
    # Not leftovers of the import.
    assert not [n for n in os.listdir(tmp_path) if n.endswith(("import", ".tmp"))]

    # A restart reads our own format: same groups, no second import.
    gw = pgw_e2e.Gateway(str(tmp_path), pf).start()
    try:
        groups = api_groups(gw)
        assert len(groups) == 4
        failing = groups[(("job", "failing"),)]
        assert failing[0] is False  # last push failed, as on the official gateway
        never = groups[(("job", "never_ok"),)][1]
        assert never["push_time_seconds"]["metrics"] and '"value": "0"' in never["push_time_seconds"]["metrics"][0]
    finally:
        gw.close()
    assert len([n for n in os.listdir(tmp_path) if ".official-" in n]) == 1


def test_official_file_with_10k_groups_is_taken_over(tmp_path):
    pf = str(tmp_path / "big.db")
    # Unchecked pushes (202) so that the official binary takes seconds, not minutes.
    off = Official(str(tmp_path), pf, ["--push.disable-consistency-check"]).start()

    def push(start):
        s = requests.Session()
        for i in range(start, 10000, 8):
            r = s.put(off.url("/metrics/job/many/instance/%d" % i),
                      data=("# HELP work_items Items.\n# TYPE work_items gauge\n"
                            "work_items{kind=\"a\"} %d\nwork_seconds_total %d.5\n" % (i, i)),
                      timeout=30)
            assert r.status_code == 202, r.text

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(push, range(8)))
    # The unchecked queue is applied asynchronously: wait until every group is there.
    pgw_e2e.eventually(lambda: _count(off, 10000), timeout=60, interval=0.5)
    persist_and_stop(off)
    reference = str(tmp_path / "reference.db")
    shutil.copy(pf, reference)
    compare(reference, pf, tmp_path, expect_groups=10000)


def _count(gw, n):
    got = len(gw.api_metrics())
    assert got == n, got


def run_ours(pf, timeout=20):
    port = pgw_e2e.free_port()
    return subprocess.run(
        [pgw_e2e.PGW_BIN, "--web.listen-address=127.0.0.1:%d" % port, "--persistence.file=" + pf],
        capture_output=True, text=True, timeout=timeout)


def test_unreadable_persistence_file_is_refused_and_left_untouched(tmp_path):
    pf = str(tmp_path / "foreign.db")
    with open(pf, "wb") as f:
        f.write(b"this is not a persistence file\n" * 100)
    before = sha(pf)
    r = run_ours(pf)
    assert r.returncode != 0
    assert "foreign.db" in r.stderr and "neither" in r.stderr, r.stderr
    assert "Backtrace" not in r.stderr and "stack backtrace" not in r.stderr
    assert sha(pf) == before
    assert sorted(os.listdir(tmp_path)) == ["foreign.db"]


def test_damaged_official_file_is_refused_and_left_untouched(tmp_path):
    pf = str(tmp_path / "official.db")
    off = Official(str(tmp_path), pf).start()
    fill(off)
    persist_and_stop(off)
    with open(pf, "rb") as f:
        data = f.read()
    with open(pf, "wb") as f:
        f.write(data[: len(data) * 2 // 3])  # cut short, as by a full disk
    before = sha(pf)
    r = run_ours(pf)
    assert r.returncode != 0
    assert "official Pushgateway's format" in r.stderr and "official.db" in r.stderr, r.stderr
    assert sha(pf) == before
    assert sorted(os.listdir(tmp_path)) == ["official.db"] or all(
        n.endswith(".log") or n == "official.db" for n in os.listdir(tmp_path))
