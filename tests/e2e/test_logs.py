"""Log lines as the official gateway writes them (issue 14, item 2), and a quiet shutdown.

Every line of a start / push / rejected push / /-/quit run must parse with a strict logfmt
parser (--log.format=logfmt, the default) and with json.loads (--log.format=json), carry
ts, caller, level and msg, and the run must log what the official gateway logs.
"""

import json
import os
import re
import signal
import subprocess
import time

import pytest
import requests

import pgw_e2e

OFFICIAL_BIN = os.environ.get("PGW_OFFICIAL_BIN", "/usr/bin/prometheus-pushgateway")
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
KEY = re.compile(r"[^\s=\"]+")


def parse_logfmt(line):
    """go-logfmt's grammar: key=value pairs separated by spaces; a value is bare (no space,
    '=' or '"') or double-quoted with backslash escapes. Raises ValueError otherwise."""
    out, i, n = {}, 0, len(line)
    while i < n:
        m = KEY.match(line, i)
        if not m:
            raise ValueError("bad key at %d in %r" % (i, line))
        key, i = m.group(0), m.end()
        if i >= n or line[i] != "=":
            raise ValueError("key without value at %d in %r" % (i, line))
        i += 1
        if i < n and line[i] == '"':
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise ValueError("unterminated quote in %r" % line)
                c = line[j]
                if c == "\\":
                    buf.append(json.loads('"' + line[j:j + (6 if line[j + 1] == "u" else 2)] + '"'))
                    j += 6 if line[j + 1] == "u" else 2
                elif c == '"':
                    break
                else:
                    buf.append(c)
                    j += 1
            val, i = "".join(buf), j + 1
        else:
            j = i
            while j < n and line[j] != " ":
                if line[j] in '="':
                    raise ValueError("bad bare value at %d in %r" % (j, line))
                j += 1
            val, i = line[i:j], j
        if key in out:
            raise ValueError("duplicate key %r in %r" % (key, line))
        out[key] = val
        if i < n:
            if line[i] != " ":
                raise ValueError("no space after value at %d in %r" % (i, line))
            i += 1
    return out


def test_parser_reads_the_official_gateways_own_lines(tmp_path):
    if not os.access(OFFICIAL_BIN, os.X_OK):
        pytest.skip("official pushgateway not installed")
    port = pgw_e2e.free_port()
    p = subprocess.Popen([OFFICIAL_BIN, "--web.listen-address=127.0.0.1:%d" % port],
                         stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        try:
            if requests.get("http://127.0.0.1:%d/-/ready" % port, timeout=1).ok:
                break
        except requests.RequestException:
            pass
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=10)
    lines = err.splitlines()
    assert lines
    for l in lines:
        rec = parse_logfmt(l)
        assert TS.match(rec["ts"]) and rec["level"] in ("debug", "info", "warn", "error"), l


def run(tmp_path, fmt):
    pf = str(tmp_path / ("%s.db" % fmt))
    gw = pgw_e2e.Gateway(str(tmp_path), pf, flags=[
        "--log.format=" + fmt, "--log.level=debug", "--web.enable-lifecycle"]).start()
    s = requests.Session()
    assert s.put(gw.url("/metrics/job/ok"), data=b"up 1\n", timeout=10).status_code == 200
    r = s.put(gw.url("/metrics/job/bad"), data=b"this is { not metrics\n", timeout=10)
    assert r.status_code == 400
    assert s.get(gw.url("/metrics"), timeout=10).status_code == 200
    assert s.put(gw.url("/-/quit"), timeout=10).status_code == 200
    assert gw.proc.wait(timeout=20) == 0
    with open(gw.log_path, encoding="utf-8") as f:
        first = f.read().splitlines()
    # A second start restores the group and logs it.
    gw2 = pgw_e2e.Gateway(str(tmp_path), pf, flags=["--log.format=" + fmt]).start()
    assert gw2.stop(signal.SIGTERM) == 0
    with open(gw2.log_path, encoding="utf-8") as f:
        second = f.read().splitlines()
    return first, second


def check(records):
    for r in records:
        assert TS.match(r["ts"]), r
        assert re.match(r"^[\w.-]+\.rs:\d+$", r["caller"]), r
        assert r["level"] in ("debug", "info", "warn", "error"), r
        assert r.get("msg"), r
    msgs = [r["msg"] for r in records]
    return msgs


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_every_log_line_parses_and_has_the_official_events(tmp_path, fmt):
    first, second = run(tmp_path, fmt)
    parse = parse_logfmt if fmt == "logfmt" else json.loads
    recs, recs2 = [parse(l) for l in first], [parse(l) for l in second]
    msgs, msgs2 = check(recs), check(recs2)
    start = recs[0]
    assert start["msg"] == "starting pushgateway"
    assert re.match(r"^\(version=\S+, branch=\S+, revision=\S+\)$", start["version"]), start
    assert "Build context" in msgs
    listen = [r for r in recs if r["msg"] == "Listening on"]
    assert listen and listen[0]["address"].startswith("127.0.0.1:")
    assert "TLS is disabled." in msgs
    refused = [r for r in recs if r["msg"] == "request refused"]
    assert refused and refused[0]["level"] == "debug" and str(refused[0]["status"]) == "400"
    quit_ = [r for r in recs if r["msg"].startswith("received termination request via web service")]
    assert quit_ and quit_[0]["level"] == "warn"
    assert "HTTP server stopped" in msgs
    assert not any(r["level"] == "warn" and "referenced" in r["msg"] for r in recs + recs2)
    restored = [r for r in recs2 if r["msg"] == "restored persisted groups"]
    assert restored and str(restored[0]["groups"]) == "1"
    assert "received SIGINT/SIGTERM; exiting gracefully..." in msgs2


def test_sigterm_with_keep_alive_scrapers_is_quiet_and_clean(tmp_path):
    gw = pgw_e2e.Gateway(str(tmp_path), "").start()
    sessions = [requests.Session() for _ in range(4)]
    for s in sessions:  # idle keep-alive connections, as Prometheus holds them
        assert s.get(gw.url("/metrics"), timeout=10).status_code == 200
    assert gw.stop(signal.SIGTERM) == 0
    with open(gw.log_path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert not [l for l in lines if "level=warn" in l or "level=error" in l], lines
    for s in sessions:
        s.close()
