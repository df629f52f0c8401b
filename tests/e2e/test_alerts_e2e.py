"""The alerting kit (examples/alerts.yml) against a real Prometheus and the gateway.

The rules file is loaded as shipped, except that every `for:` is set to 0s so that the test
need not wait minutes: push a failed group, a never-successful group and a group about to
expire, then stop the gateway, and check that Prometheus fires the matching alerts.
"""

import os
import re

import pytest
import requests

from pgw_e2e import Prometheus, poll

pytestmark = pytest.mark.prometheus

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALERTS = os.path.join(ROOT, "examples", "alerts.yml")
TIMEOUT = 40.0

CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: ['{rules}']
scrape_configs:
  - job_name: pushgateway
    honor_labels: true
    static_configs:
      - targets: ['{target}']
"""


def firing(prom):
    r = prom.get("/api/v1/alerts")
    assert r.status_code == 200, r.text
    return {(a["labels"]["alertname"], a["labels"].get("job"))
            for a in r.json()["data"]["alerts"] if a["state"] == "firing"}


def wait_firing(prom, want):
    last = set()

    def check():
        nonlocal last
        last = firing(prom)
        return want <= last

    assert poll(check, timeout=TIMEOUT, interval=0.5), \
        "alerts %r not all firing within %.0fs; firing: %r" % (sorted(want), TIMEOUT, sorted(last))
    return last


def test_alert_rules_fire_for_failed_stale_expiring_and_down(
        gateway, prometheus_bin, tmp_path, log_dir, processes):
    rules = re.sub(r"(?m)^(\s*)for: \S+$", r"\1for: 0s", open(ALERTS).read())
    rules_file = tmp_path / "alerts.yml"
    rules_file.write_text(rules)
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(CONFIG.format(rules=rules_file, target=gateway.address))
    storage = tmp_path / "tsdb"
    storage.mkdir()
    prom = Prometheus(log_dir, str(cfg), str(storage))
    processes.append(prom)
    prom.start()

    url = gateway.base + "/metrics/job/"
    s = requests.Session()
    # A healthy group, then a refused push to it (sample timestamps): push failed.
    assert s.put(url + "failing", data=b"work_done 1\n", timeout=10).status_code == 200
    assert s.put(url + "failing", data=b"work_done 1 1000\n", timeout=10).status_code == 400
    # A group that never succeeded (created by a refused push).
    assert s.put(url + "never", data=b"work_done 1 1000\n", timeout=10).status_code == 400
    # A healthy group with a TTL shorter than the 15-minute warning.
    r = s.put(url + "expiring", data=b"work_done 1\n", headers={"Pushgateway-TTL": "10m"},
              timeout=10)
    assert r.status_code == 200
    # A healthy group without TTL: no alert at all.
    assert s.put(url + "healthy", data=b"work_done 1\n", timeout=10).status_code == 200

    got = wait_firing(prom, {
        ("PushgatewayPushFailed", "failing"),
        ("PushgatewayJobNotSucceeded", "never"),
        ("PushgatewayGroupAboutToExpire", "expiring"),
    })
    assert not {a for a in got if a[1] == "healthy"}, got
    assert ("PushgatewayPushFailed", "expiring") not in got

    gateway.stop()
    wait_firing(prom, {("PushgatewayDown", "pushgateway")})
