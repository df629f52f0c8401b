"""The web UI of a large store opens one group by fetching only that group.

The page's own script (pushgateway.js, as the gateway serves it) runs in jsdom
(`ui-jsdom/open_group.js`, installed by `npm ci` from the committed package-lock.json) against
the real gateway, with a store over the full page's limits (the compact page: group headers as
JSON, series on demand). Opening a group must request `api/v1/metrics/job@base64/...` of that
group only, never the whole `/api/v1/metrics`, and render its families; a group deleted
meanwhile says so; Delete Group sends the DELETE. The gateway's own request counter confirms
from the server side which endpoints were hit.
"""

import base64
import json
import os
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

import pgw_e2e

HERE = os.path.dirname(os.path.abspath(__file__))
UI_DIR = os.path.join(HERE, "ui-jsdom")

# Over ui.rs FULL_MAX_SERIES (10,000): the compact page.
BULK_SERIES = 10_050

TARGET = (
    "# HELP t_total Things <done>.\n# TYPE t_total counter\nt_total{k=\"a\"} 3\nt_total{k=\"b\"} 4\n"
    "# TYPE t_seconds histogram\nt_seconds_bucket{le=\"1\"} 1\nt_seconds_bucket{le=\"+Inf\"} 2\n"
    "t_seconds_sum 3.5\nt_seconds_count 2\n"
    "# TYPE t_q summary\nt_q{quantile=\"0.5\"} 7\nt_q_sum 7\nt_q_count 1\n"
)


def b64(s):
    return base64.urlsafe_b64encode(s.encode()).decode().rstrip("=") + "="


def requests_by_handler(gw, prefix):
    """{(handler, method): count} of pushgateway_http_requests_total."""
    r = gw.get(prefix + "/metrics")
    assert r.status_code == 200
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            if s.name == "pushgateway_http_requests_total":
                key = (s.labels["handler"], s.labels["method"])
                out[key] = out.get(key, 0) + s.value
    return out


def run_ui(gw, prefix, open_job, gone_job):
    argv = ["node", "open_group.js", gw.url(prefix + "/"), open_job, gone_job]
    p = subprocess.run(argv, cwd=UI_DIR, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, "open_group.js exit %d: %s" % (p.returncode, p.stderr[-3000:])
    return json.loads(p.stdout)


@pytest.mark.parametrize("prefix", ["", "/pg"])
def test_opening_a_group_fetches_only_that_group(log_dir, processes, prefix):
    if shutil.which("node") is None:
        pytest.fail("node not found (.ci/run installs nodejs)", pytrace=False)
    if not os.path.isdir(os.path.join(UI_DIR, "node_modules", "jsdom")):
        pytest.fail("run `npm ci` in %s (.ci/run does)" % UI_DIR, pytrace=False)
    flags = ["--web.route-prefix=" + prefix] if prefix else []
    gw = pgw_e2e.Gateway(log_dir, flags=flags)
    gw.ready_path = prefix + "/-/ready"
    processes.append(gw)
    gw.start()

    bulk = "# TYPE bulk gauge\n" + "".join("bulk{i=\"%d\"} %d\n" % (i, i) for i in range(BULK_SERIES))
    assert gw.session.put(gw.url(prefix + "/metrics/job/bulk"), data=bulk).status_code == 200
    # Base64-worthy grouping values: a slash, UTF-8, an empty instance.
    target_path = "/metrics/job/target/instance@base64/=/path@base64/" + b64("/var/é x")
    assert gw.session.put(gw.url(prefix + target_path), data=TARGET).status_code == 200
    for job in ("other", "gone"):
        assert gw.session.put(gw.url(prefix + "/metrics/job/" + job),
                              data="# TYPE o gauge\no 1\n").status_code == 200
    before = requests_by_handler(gw, prefix)

    out = run_ui(gw, prefix, "target", "gone")
    assert out["errors"] == [], out["errors"]
    assert out["compact"], "the store should get the compact page"

    base = gw.url(prefix + "/")
    want_path = "metrics/job@base64/" + b64("target") + "/instance@base64/=/path@base64/" + b64("/var/é x")
    assert out["path"] == want_path
    assert out["afterOpen"] == [{"method": "GET", "url": base + "api/v1/" + want_path}]
    assert out["afterReopen"] == 1, "a loaded group is not fetched again"
    opened = out["opened"]
    assert opened["state"] == "done", opened
    assert opened["families"] == ["push_failure_time_seconds", "push_time_seconds",
                                  "t_q", "t_seconds", "t_total"], opened
    assert opened["rows"] == 2 + 1 + 1 + 1 + 1, opened
    assert "Things <done>." in opened["text"]

    assert out["deletedMeanwhile"] == 202
    assert out["gone"]["note"] == "This group no longer exists. Reload the page.", out["gone"]
    assert out["deleteRequests"] == [{"method": "DELETE", "url": base + want_path}]
    # The filter still selects the deleted job: none of the 3 groups left (the page does not
    # know of the other deletion).
    assert out["countText"] == "0 of 3 groups"

    # Every request the page made, as the gateway counted them: two single groups, one
    # DELETE from the page (one more from the driver), never the whole /api/v1/metrics.
    ui_urls = [r["url"] for r in out["requests"]]
    assert not any(u.rstrip("/").endswith("/api/v1/metrics") for u in ui_urls), ui_urls
    after = requests_by_handler(gw, prefix)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
    delta = {k: v for k, v in delta.items() if v}
    assert delta.get(("api/v1/metrics/job", "get")) == 2, delta
    assert ("api/v1/metrics", "get") not in delta, delta
    assert delta.get(("delete", "delete")) == 2, delta
    # The group deleted from the UI is gone from the store.
    assert gw.session.get(gw.url(prefix + "/api/v1/" + want_path)).status_code == 404
