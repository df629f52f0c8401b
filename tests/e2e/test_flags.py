"""Flags as kingpin (the official gateway's flag library) takes them (issue 14, item 4)."""

import os
import subprocess

import requests

import pgw_e2e


def run(*args):
    return subprocess.run([pgw_e2e.PGW_BIN] + list(args), capture_output=True, text=True,
                          timeout=20)


def test_bad_flag_exits_1_and_help_variants_exit_0():
    r = run("--no-such-flag")
    assert r.returncode == 1 and "--no-such-flag" in r.stderr, r
    assert run("--web.listen-address").returncode == 1
    h = run("--help")
    assert h.returncode == 0
    assert "--web.local-assets" in h.stdout
    assert "the authenticated user" in " ".join(h.stdout.split())  # how --limits.push-rate tells clients apart
    long_ = run("--help-long")
    assert long_.returncode == 0 and long_.stdout == h.stdout
    man = run("--help-man")
    assert man.returncode == 0 and man.stdout.startswith(".ie") and ".TH pushgateway 1" in man.stdout
    assert "web.enable\\-lifecycle" in man.stdout
    assert run("--limits.max-body-size=10 parsecs").returncode == 1


def test_negated_booleans_last_one_wins(tmp_path):
    gw = pgw_e2e.Gateway(str(tmp_path), "", flags=[
        "--web.enable-lifecycle", "--no-web.enable-lifecycle",
        "--no-web.enable-admin-api", "--no-push.disable-consistency-check"]).start()
    try:
        assert requests.put(gw.url("/-/quit"), timeout=10).status_code == 403
        assert requests.put(gw.url("/api/v1/admin/wipe"), timeout=10).status_code == 404
        flags = gw.get("/api/v1/status").json()["data"]["flags"]
        assert flags["web.enable-lifecycle"] == "false"
    finally:
        gw.close()
    gw = pgw_e2e.Gateway(str(tmp_path), "", flags=[
        "--no-web.enable-lifecycle", "--web.enable-lifecycle"]).start()
    assert requests.put(gw.url("/-/quit"), timeout=10).status_code == 200
    assert gw.proc.wait(timeout=20) == 0


def test_byte_sizes_in_every_spelling(tmp_path):
    for spelling in ("10MB", "10mb", "10MiB", "10mib", "10M"):
        gw = pgw_e2e.Gateway(str(tmp_path), "", flags=["--limits.max-body-size=" + spelling]).start()
        try:
            body = b"x 1\n" + b"# pad\n" * (11 * 1024 * 1024 // 6)  # 11 MiB: over every spelling
            assert requests.put(gw.url("/metrics/job/big"), data=body, timeout=30).status_code == 413
            assert requests.put(gw.url("/metrics/job/ok"), data=b"x 1\n", timeout=10).status_code == 200
        finally:
            gw.close()


def test_default_ttl_above_max_ttl_is_warned_about(tmp_path):
    gw = pgw_e2e.Gateway(str(tmp_path), "", flags=[
        "--push.default-ttl=2d", "--push.max-ttl=1d"]).start()
    gw.close()
    with open(gw.log_path, encoding="utf-8") as f:
        log = f.read()
    assert "level=warn" in log and "--push.default-ttl exceeds --push.max-ttl" in log, log
    assert 'default_ttl=48h0m0s max_ttl=24h0m0s' in log, log
