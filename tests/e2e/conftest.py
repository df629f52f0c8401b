import os
import shlex
import shutil
import signal

import pytest

import pgw_e2e

# Never send loopback traffic (including prometheus_client's urllib pushes)
# through a proxy configured in the environment.
for _var in ("NO_PROXY", "no_proxy"):
    _cur = os.environ.get(_var, "")
    if "127.0.0.1" not in _cur:
        os.environ[_var] = (_cur + "," if _cur else "") + "127.0.0.1,localhost"


def pytest_addoption(parser, pluginmanager):
    # pytest.ini sets `timeout`. With pytest-timeout installed, the plugin
    # owns that option; without it, register it here (no "unknown config
    # option" warning) and enforce it with SIGALRM below.
    if not pluginmanager.hasplugin("timeout"):
        parser.addini("timeout", "per-test timeout in seconds (SIGALRM fallback; 0 = off)",
                      default="0")


def pytest_configure(config):
    config.addinivalue_line("markers", "prometheus: needs a real Prometheus server")


class _TestTimeout(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Fallback per-test timeout when pytest-timeout is not installed."""
    cfg = item.config
    seconds = 0
    if not cfg.pluginmanager.hasplugin("timeout"):
        try:
            seconds = int(float(cfg.getini("timeout") or 0))
        except ValueError:
            seconds = 0
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return

    def on_alarm(signum, frame):
        raise _TestTimeout("test exceeded the %ds timeout (pytest.ini `timeout`)" % seconds)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    rep = getattr(request.node, "rep_call", None)
    return rep is not None and rep.failed


@pytest.fixture(scope="session")
def pgw_bin():
    argv = shlex.split(pgw_e2e.PGW_BIN)
    argv0 = argv[0] if argv else ""
    if not (os.path.isfile(argv0) and os.access(argv0, os.X_OK)):
        pytest.fail("gateway binary %r not found or not executable (set PGW_BIN)" % argv0,
                    pytrace=False)
    return pgw_e2e.PGW_BIN


@pytest.fixture
def log_dir(tmp_path):
    d = tmp_path / "logs"
    d.mkdir(exist_ok=True)
    return str(d)


@pytest.fixture
def processes(request):
    """Registry of started processes: closed (SIGTERM, then SIGKILL) after the test."""
    started = []
    yield started
    for p in reversed(started):
        try:
            p.close()
        except Exception as e:  # keep closing the others
            print("error closing %s: %r" % (p.name, e))
    if _failed(request):
        for p in started:
            print("\n--- %s log (%s) ---\n%s" % (p.name, p.log_path, p.log_tail()))


@pytest.fixture
def gateway_factory(pgw_bin, log_dir, processes):
    """gateway_factory(persistence_file="", flags=()) -> started Gateway (stopped after the test)."""

    def start(persistence_file="", flags=()):
        g = pgw_e2e.Gateway(log_dir, persistence_file=persistence_file, flags=flags)
        processes.append(g)
        return g.start()

    return start


@pytest.fixture
def gateway(gateway_factory):
    """A fresh in-memory gateway."""
    return gateway_factory()


@pytest.fixture
def prometheus_bin():
    path = pgw_e2e.PROMETHEUS_BIN
    if not (os.path.isfile(path) or shutil.which(path)):
        pytest.skip("Prometheus binary %s not found (install it: apt-get install prometheus; "
                    "CI does)" % path)
    return path
