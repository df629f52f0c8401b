"""Black-box compatibility tests against upstream Pushgateway 1.11 / Prometheus 3 behaviour.

The server binary comes from PGW_CMD (default: this repository's release build), like the
conformance suite. Tests of behaviour that Debian's 1.5.1 already shares with 1.11 also run
against it (`PGW_CMD=/usr/bin/prometheus-pushgateway`); the others are marked `v111` (upstream
1.11 behaviour that 1.5.1 lacks) or `ours` (our additions behind flags) and are skipped when
the binary reports version 1.5.
"""

import os
import shlex
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# The harness (Gateway, metrics_pb) of the vendored conformance suite.
sys.path.insert(0, os.path.join(ROOT, "tests", "conformance"))
os.environ.setdefault("PGW_CMD", os.path.join(ROOT, "target", "release", "pushgateway"))

for _var in ("NO_PROXY", "no_proxy"):
    _cur = os.environ.get(_var, "")
    if "127.0.0.1" not in _cur:
        os.environ[_var] = (_cur + "," if _cur else "") + "127.0.0.1,localhost"

import pgwtest  # noqa: E402


def _is_151():
    try:
        out = subprocess.run(
            shlex.split(os.environ["PGW_CMD"]) + ["--version"],
            capture_output=True, text=True, timeout=20,
        )
    except OSError:
        return False
    text = out.stdout + out.stderr
    return "version 1.5." in text


IS_151 = _is_151()


def pytest_configure(config):
    config.addinivalue_line("markers", "v111: upstream 1.11 behaviour absent from 1.5.1")
    config.addinivalue_line("markers", "ours: our additions (flags), absent upstream")


def pytest_collection_modifyitems(config, items):
    if not IS_151:
        return
    skip = pytest.mark.skip(reason="not 1.5.1 behaviour")
    for item in items:
        if "v111" in item.keywords or "ours" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def gw_factory(tmp_path):
    started = []
    log_dir = str(tmp_path / "logs")
    os.makedirs(log_dir, exist_ok=True)

    def start(flags=()):
        g = pgwtest.Gateway(flags=flags, log_dir=log_dir)
        started.append(g)
        return g.start()

    yield start
    for g in started:
        g.close()


@pytest.fixture
def gw(gw_factory):
    return gw_factory()
