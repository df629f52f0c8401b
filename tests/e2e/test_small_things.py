"""Small things a user trips on (issue 14, item 5). The quiet SIGTERM with keep-alive
scrapers is in test_logs.py, pgw's "never" in crates/pgw/tests/commands.rs."""

import os
import signal
import stat
import subprocess

import pgw_e2e


def run(*args):
    return subprocess.run([pgw_e2e.PGW_BIN] + list(args), capture_output=True, text=True,
                          timeout=20)


def test_listen_address_without_port_says_missing_port():
    r = run("--web.listen-address=localhost")
    assert r.returncode == 1
    assert "missing port in address" in r.stderr, r.stderr


def test_persistence_file_is_created_0600_like_the_official(tmp_path):
    pf = str(tmp_path / "store.db")
    gw = pgw_e2e.Gateway(str(tmp_path), pf).start()
    try:
        assert stat.S_IMODE(os.stat(pf).st_mode) == 0o600
    finally:
        assert gw.stop(signal.SIGTERM) == 0
    # Also after the file was rewritten (compaction at shutdown or on the interval).
    assert stat.S_IMODE(os.stat(pf).st_mode) == 0o600


def test_start_up_error_names_the_path_once_without_backtrace(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    pf = str(blocker / "store.db")
    r = subprocess.run(
        [pgw_e2e.PGW_BIN, "--web.listen-address=127.0.0.1:%d" % pgw_e2e.free_port(),
         "--persistence.file=" + pf], capture_output=True, text=True, timeout=20,
        env=dict(os.environ, RUST_BACKTRACE="1"))
    assert r.returncode == 1
    errors = [l for l in r.stderr.splitlines() if "level=error" in l]
    assert len(errors) == 1, r.stderr
    assert errors[0].count(str(blocker)) == 1, errors[0]
    assert "backtrace" not in r.stderr.lower() and "panicked" not in r.stderr


def test_ui_help_link_goes_to_the_ttl_staleness_and_age_help(tmp_path):
    gw = pgw_e2e.Gateway(str(tmp_path), "").start()
    try:
        page = gw.get("/").text
        assert 'href="./static/help.html"' in page
        help_ = gw.get("/static/help.html")
        assert help_.status_code == 200 and help_.headers["content-type"].startswith("text/html")
        for topic in ("Time to live", "Stale groups", "never", "push_time_seconds"):
            assert topic in help_.text
    finally:
        gw.close()
