"""The Go client (Debian's client_golang, built in GOPATH mode from /usr/share/gocode) pushes
integer, float, mixed and empty native histograms and a gauge histogram (tests/e2e/gopush).

A real Prometheus with native histograms enabled (it then asks for protobuf first) scrapes the
gateway and answers histogram_count / histogram_sum; a second Prometheus with default settings
(text format) keeps up == 1 and sees the classic series, the gauge histogram included (its text
TYPE line is `histogram`, as upstream 1.11 writes it; `gaugehistogram` would make the whole
scrape fail).
"""

import os
import shutil
import subprocess

import pytest

from pgw_e2e import Prometheus, poll

pytestmark = pytest.mark.prometheus

HERE = os.path.dirname(os.path.abspath(__file__))
GOCODE = os.environ.get("GOCODE_DIR", "/usr/share/gocode")
JOB = "gopush"
TIMEOUT = 40.0

CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pushgateway
    honor_labels: true
    static_configs:
      - targets: ['{target}']
"""


class NativePrometheus(Prometheus):
    def command(self, port):
        return super().command(port) + ["--enable-feature=native-histograms"]


@pytest.fixture(scope="module")
def gopush(tmp_path_factory):
    go = shutil.which("go")
    if go is None or not os.path.isdir(os.path.join(GOCODE, "src/github.com/prometheus/client_golang")):
        pytest.fail("needs golang-go and golang-github-prometheus-client-golang-dev "
                    "(.ci/run installs them)", pytrace=False)
    out = tmp_path_factory.mktemp("gopush")
    env = dict(os.environ, GOPATH=GOCODE, GO111MODULE="off", GOFLAGS="",
               GOCACHE=str(out / "cache"), CGO_ENABLED="0")
    exe = str(out / "gopush")
    r = subprocess.run([go, "build", "-o", exe, os.path.join(HERE, "gopush", "main.go")],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, "go build failed:\n" + r.stdout + r.stderr
    return exe


def start_prometheus(cls, gateway, tmp_path, log_dir, processes, name):
    d = tmp_path / name
    d.mkdir()
    cfg = d / "prometheus.yml"
    cfg.write_text(CONFIG.format(target=gateway.address))
    (d / "tsdb").mkdir()
    p = cls(log_dir, str(cfg), str(d / "tsdb"))
    processes.append(p)
    return p.start()


def value_of(prom, expr):
    res = prom.query(expr)
    return [float(r["value"][1]) for r in res if r["metric"].get("job") == JOB]


def wait_value(prom, expr, want):
    last = []

    def check():
        last[:] = value_of(prom, expr)
        return last == [want]

    assert poll(check, TIMEOUT), "%s: want [%s], got %r" % (expr, want, last)


def test_go_client_histograms_through_gateway(gopush, prometheus_bin, gateway, tmp_path, log_dir,
                                             processes):
    r = subprocess.run([gopush, gateway.base, JOB], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr

    native = start_prometheus(NativePrometheus, gateway, tmp_path, log_dir, processes, "native")
    classic = start_prometheus(Prometheus, gateway, tmp_path, log_dir, processes, "classic")

    # Native histograms, as Prometheus computes them from the protobuf scrape.
    wait_value(native, "histogram_count(e2e_native_seconds)", 4.0)
    wait_value(native, "histogram_sum(e2e_native_seconds)", 10.0)
    wait_value(native, "histogram_count(e2e_mixed_seconds)", 3.0)
    wait_value(native, "histogram_sum(e2e_mixed_seconds)", 6.0)
    wait_value(native, "histogram_count(e2e_float_seconds)", 2.5)
    wait_value(native, "histogram_sum(e2e_float_seconds)", 7.5)
    wait_value(native, "histogram_count(e2e_empty_seconds)", 0.0)
    assert [float(r["value"][1]) for r in native.query('up{job="pushgateway"}')] == [1.0]

    # Default settings: the text format, classic series; the gauge histogram parses.
    assert poll(lambda: [float(r["value"][1]) for r in classic.query('up{job="pushgateway"}')] == [1.0],
                TIMEOUT), classic.log_tail()
    wait_value(classic, 'e2e_queue_length_bucket{le="10"}', 5.0)
    wait_value(classic, "e2e_queue_length_count", 5.0)
    wait_value(classic, "e2e_mixed_seconds_count", 3.0)
    wait_value(classic, 'e2e_mixed_seconds_bucket{le="2"}', 2.0)
    wait_value(classic, "e2e_native_seconds_count", 4.0)
    wait_value(classic, "e2e_float_seconds_count", 2.5)
    # Still up after several scrapes.
    assert [float(r["value"][1]) for r in classic.query('min_over_time(up{job="pushgateway"}[5s])')] == [1.0]
