"""OpenMetrics 1.0 in and out, behind flags (our addition: upstream issue #400 asks for the
input side; upstream promhttp serves OpenMetrics only with EnableOpenMetrics, which
Pushgateway does not set).

The round trip uses the Python prometheus_client's own OpenMetrics writer
(`prometheus_client.openmetrics.exposition.generate_latest`) and parser
(`prometheus_client.openmetrics.parser.text_string_to_metric_families`).
Without the flags, the defaults stay byte-identical to upstream: an OpenMetrics push is parsed
as text 0.0.4 (pushgateway v1.11.3 handler/push.go falls back to the text parser for any other
Content-Type) and a scrape asking for OpenMetrics gets text 0.0.4 (expfmt.Negotiate).
"""

import pytest
from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, Summary
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

OM_ACCEPT = "application/openmetrics-text;version=1.0.0"
TEXT_CT = "text/plain; version=0.0.4; charset=utf-8"


def client_registry():
    reg = CollectorRegistry()
    c = Counter("requests", "Requests served.", ["path"], registry=reg)
    c.labels("/").inc(3, exemplar={"trace_id": "abc123"})
    h = Histogram("latency_seconds", "Request latency.", buckets=(0.1, 0.5), registry=reg)
    h.observe(0.3, exemplar={"trace_id": "def456"})
    h.observe(0.05)
    Gauge("temperature", "Temperature.", registry=reg).set(21.5)
    Summary("payload_bytes", "Payload sizes.", registry=reg).observe(512)
    Info("build", "Build information.", registry=reg).info({"version": "1.2.3"})
    Enum("state", "Service state.", states=["up", "down"], registry=reg).state("up")
    return reg


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples_of(fam, job="om"):
    return [s for s in fam.samples if s.labels.get("job") == job]


@pytest.mark.ours
def test_openmetrics_round_trip_with_prometheus_client(gw_factory):
    gw = gw_factory(flags=["--push.enable-openmetrics", "--web.enable-openmetrics"])
    body = generate_latest(client_registry())
    r = gw.put("/metrics/job/om", data=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
    assert r.status_code == 200, r.text
    r = gw.get("/metrics", headers={"Accept": OM_ACCEPT})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == (
        "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores")
    assert r.text.endswith("# EOF\n")
    fams = families(r.text)  # prometheus_client's parser validates the exposition

    req = fams["requests"]
    assert req.type == "counter" and req.documentation == "Requests served."
    total = [s for s in samples_of(req) if s.name == "requests_total"]
    assert len(total) == 1 and total[0].value == 3.0 and total[0].labels["path"] == "/"
    assert total[0].exemplar is not None
    assert total[0].exemplar.labels == {"trace_id": "abc123"}
    assert total[0].exemplar.value == 3.0
    created = [s for s in samples_of(req) if s.name == "requests_created"]
    assert len(created) == 1 and created[0].value > 1.6e9

    lat = fams["latency_seconds"]
    assert lat.type == "histogram"
    buckets = {s.labels["le"]: s for s in samples_of(lat) if s.name.endswith("_bucket")}
    assert buckets["0.1"].value == 1 and buckets["0.5"].value == 2 and buckets["+Inf"].value == 2
    assert buckets["0.5"].exemplar.labels == {"trace_id": "def456"}
    assert buckets["0.5"].exemplar.value == 0.3
    assert any(s.name == "latency_seconds_created" for s in samples_of(lat))

    assert samples_of(fams["temperature"])[0].value == 21.5
    summ = fams["payload_bytes"]
    assert summ.type == "summary"
    by = {s.name: s.value for s in samples_of(summ)}
    assert by["payload_bytes_count"] == 1 and by["payload_bytes_sum"] == 512
    assert "payload_bytes_created" in by
    # Info and stateset are kept as the gauges Prometheus ingests them as.
    [info] = samples_of(fams["build_info"])
    assert info.labels["version"] == "1.2.3" and info.value == 1
    states = {s.labels["state"]: s.value for s in samples_of(fams["state"])}
    assert states == {"up": 1, "down": 0}


@pytest.mark.ours
def test_openmetrics_push_shows_in_text_scrape_and_api(gw_factory):
    gw = gw_factory(flags=["--push.enable-openmetrics"])
    r = gw.put("/metrics/job/om", data=generate_latest(client_registry()),
               headers={"Content-Type": CONTENT_TYPE_LATEST})
    assert r.status_code == 200, r.text
    text = gw.get("/metrics", headers={"Accept": OM_ACCEPT}).text
    # Without --web.enable-openmetrics: text 0.0.4 as upstream.
    assert "# EOF" not in text
    assert 'requests_total{instance="",job="om",path="/"} 3' in text.splitlines()
    assert 'build_info{instance="",job="om",version="1.2.3"} 1' in text.splitlines()
    api = gw.get("/api/v1/metrics").json()["data"]
    [group] = [g for g in api if g["labels"].get("job") == "om"]
    assert group["requests_total"]["type"] == "COUNTER"


@pytest.mark.ours
def test_openmetrics_push_errors_are_400(gw_factory):
    gw = gw_factory(flags=["--push.enable-openmetrics"])
    r = gw.put("/metrics/job/om", data=b"a 1\n", headers={"Content-Type": CONTENT_TYPE_LATEST})
    assert r.status_code == 400 and "# EOF" in r.text


def test_openmetrics_push_without_flag_is_parsed_as_text(gw):
    # As upstream: any Content-Type but delimited protobuf goes to the text 0.0.4 parser, which
    # takes `# EOF` for a comment and refuses `# UNIT`-less OpenMetrics only where the text
    # format differs.
    body = b"# TYPE x gauge\nx 1\n# EOF\n"
    r = gw.put("/metrics/job/om", data=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
    assert r.status_code == 200, r.text
    scrape = gw.get("/metrics", headers={"Accept": OM_ACCEPT})
    assert scrape.headers["Content-Type"].startswith(TEXT_CT)
    assert 'x{instance="",job="om"} 1' in scrape.text.splitlines()
