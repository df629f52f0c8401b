"""--web.systemd-socket under real socket activation (issue 14, item 3): Debian's
systemd-socket-activate opens the listening socket and execs the gateway with LISTEN_FDS,
as a systemd .socket unit does; requests to that socket are served, --web.listen-address is
not bound, and without inherited sockets the flag is a clear start-up error."""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
import requests

import pgw_e2e

ACTIVATE = shutil.which("systemd-socket-activate")


@pytest.mark.skipif(not ACTIVATE, reason="systemd-socket-activate not installed (systemd package)")
def test_serves_on_the_socket_systemd_passes(tmp_path):
    port, unused = pgw_e2e.free_port(), pgw_e2e.free_port()
    log = open(str(tmp_path / "pgw.log"), "wb")
    p = subprocess.Popen(
        [ACTIVATE, "-l", "127.0.0.1:%d" % port, pgw_e2e.PGW_BIN, "--web.systemd-socket",
         "--web.listen-address=127.0.0.1:%d" % unused],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = "http://127.0.0.1:%d" % port

        for _ in range(200):  # until systemd-socket-activate listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        # The socket is listening before the gateway runs: the first request starts it.
        r = requests.put(base + "/metrics/job/activated", data=b"up 1\n", timeout=20)
        assert r.status_code == 200, r.text
        text = requests.get(base + "/metrics", timeout=10).text
        assert 'up{instance="",job="activated"} 1' in text
        with pytest.raises(requests.ConnectionError):
            requests.get("http://127.0.0.1:%d/metrics" % unused, timeout=2)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        log.close()
    with open(str(tmp_path / "pgw.log"), encoding="utf-8", errors="replace") as f:
        out = f.read()
    assert 'msg="Listening on" address=127.0.0.1:%d' % port in out, out


def test_without_inherited_sockets_the_flag_is_a_start_up_error():
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    r = subprocess.run([pgw_e2e.PGW_BIN, "--web.systemd-socket",
                        "--web.listen-address=127.0.0.1:%d" % pgw_e2e.free_port()],
                       env=env, capture_output=True, text=True, timeout=20)
    assert r.returncode == 1
    assert "no socket activation file descriptors found" in r.stderr, r.stderr
