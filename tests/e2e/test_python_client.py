"""Push with the real prometheus_client library and read back /metrics.

push_to_gateway is PUT, pushadd_to_gateway is POST, delete_from_gateway is
DELETE. The grouping key holds a value with `/` (and a space), which the
client sends as `@base64`, and an empty value (sent as `@base64/=`).
"""

import math
import time

import pytest
from prometheus_client import (
    CollectorRegistry, Counter, Gauge, Histogram, Summary,
    delete_from_gateway, push_to_gateway, pushadd_to_gateway,
)
from prometheus_client.parser import text_string_to_metric_families

from pgw_e2e import eventually

JOB = "e2e/batch job"  # '/' and ' ' make the client use job@base64 too
GK = {"instance": "host-1:9100", "path": "/srv/backup/daily run", "empty": ""}
LABELS = {"job": JOB, **GK}
OTHER_GK = {"instance": "host-2:9100", "path": "/srv/backup/daily run", "empty": ""}
OTHER_LABELS = {"job": JOB, **OTHER_GK}

# Push-time gauges the gateway adds to every group.
PUSH_GAUGES = {"push_time_seconds", "push_failure_time_seconds"}


class Scrape:
    """/metrics parsed with prometheus_client's own text parser."""

    def __init__(self, text):
        # family name as the parser names it -> type. The parser strips
        # `_total` from counter names, so a gauge `x` and a counter `x_total`
        # (e.g. go_memstats_alloc_bytes{,_total}) share a name: keep both
        # under `all_types`, and `types` only for unambiguous names.
        self.all_types = {}
        self.samples = {}   # (sample name, frozenset(labels)) -> value
        for fam in text_string_to_metric_families(text):
            self.all_types.setdefault(fam.name, []).append(fam.type)
            for s in fam.samples:
                key = (s.name, frozenset(s.labels.items()))
                assert key not in self.samples, "duplicate series %s%r" % (s.name, s.labels)
                self.samples[key] = s.value
        self.types = {n: t[0] for n, t in self.all_types.items() if len(t) == 1}

    def group(self, labels):
        """{(sample name, frozenset(extra labels)): value} for samples whose labels
        are exactly `labels` plus extra non-grouping labels (le, quantile, room)."""
        out = {}
        for (name, lset), v in self.samples.items():
            d = dict(lset)
            if all(d.get(k) == val for k, val in labels.items()) and \
                    set(d) - set(labels) <= {"le", "quantile", "room"}:
                extra = frozenset((k, val) for k, val in d.items() if k not in labels)
                out[(name, extra)] = v
        return out

    def value(self, name, labels):
        return self.samples.get((name, frozenset(labels.items())))


def scrape(gw):
    return Scrape(gw.scrape_text())


def registry_all_types():
    """Counter 3, Gauge 42.5 (room=a), Histogram of 4 observations, Summary of 2."""
    reg = CollectorRegistry()
    c = Counter("e2e_requests", "Requests handled.", registry=reg)
    c.inc(3)
    g = Gauge("e2e_temperature_celsius", "A temperature.", ["room"], registry=reg)
    g.labels(room="a").set(42.5)
    h = Histogram("e2e_duration_seconds", "Job duration.", buckets=(0.1, 1, 10), registry=reg)
    for v in (0.05, 0.5, 5, 50):
        h.observe(v)
    s = Summary("e2e_payload_bytes", "Payload size.", registry=reg)
    s.observe(1.5)
    s.observe(2.5)
    return reg


E = frozenset()


def le(v):
    return frozenset({("le", v)})


def room(v):
    return frozenset({("room", v)})


EXPECTED_ALL_TYPES = {
    ("e2e_requests_total", E): 3.0,
    ("e2e_temperature_celsius", room("a")): 42.5,
    ("e2e_duration_seconds_bucket", le("0.1")): 1.0,
    ("e2e_duration_seconds_bucket", le("1.0")): 2.0,
    ("e2e_duration_seconds_bucket", le("10.0")): 3.0,
    ("e2e_duration_seconds_bucket", le("+Inf")): 4.0,
    ("e2e_duration_seconds_count", E): 4.0,
    ("e2e_duration_seconds_sum", E): 55.55,
    ("e2e_payload_bytes_count", E): 2.0,
    ("e2e_payload_bytes_sum", E): 4.0,
}
CREATED = {"e2e_requests_created", "e2e_duration_seconds_created", "e2e_payload_bytes_created"}


def normalize_le(group):
    """The gateway may write `le="1"` where the client wrote `le="1.0"`: compare numerically."""
    out = {}
    for (name, extra), v in group.items():
        d = dict(extra)
        if "le" in d:
            d["le"] = "+Inf" if d["le"] == "+Inf" else repr(float(d["le"]))
        out[(name, frozenset(d.items()))] = v
    return out


def assert_group_samples(sc, labels, expected, t0, t1, created=()):
    """The group's samples are exactly `expected` + push-time gauges (+ `_created` gauges)."""
    got = normalize_le(sc.group(labels))
    names = {n for n, _ in got}
    want_names = {n for n, _ in expected} | PUSH_GAUGES | set(created)
    assert names == want_names, "series names for %r: got %s, want %s" % (
        labels, sorted(names), sorted(want_names))
    for key, v in expected.items():
        assert key in got, "missing %s%s for %r" % (key[0], dict(key[1]), labels)
        assert math.isclose(got[key], v, rel_tol=1e-12), "%s%s = %r, want %r" % (
            key[0], dict(key[1]), got[key], v)
    expected_names = {n for n, _ in expected}
    for key, v in got.items():
        if key[0] in expected_names:
            assert key in expected, "unexpected series %s%s = %r" % (key[0], dict(key[1]), v)
    for name in created:
        v = got[(name, E)]
        assert t0 - 60 <= v <= t1 + 1, "%s = %r is not a recent creation time" % (name, v)
    push_time = got[("push_time_seconds", E)]
    assert t0 - 1 <= push_time <= t1 + 1, \
        "push_time_seconds = %r, want within [%r, %r]" % (push_time, t0, t1)
    assert abs(push_time - time.time()) < 30
    assert got[("push_failure_time_seconds", E)] == 0
    return push_time


def assert_types(sc):
    want = {
        "e2e_requests": "counter",
        "e2e_temperature_celsius": "gauge",
        "e2e_duration_seconds": "histogram",
        "e2e_payload_bytes": "summary",
        "push_time_seconds": "gauge",
        "push_failure_time_seconds": "gauge",
    }
    for fam, typ in want.items():
        assert sc.types.get(fam) == typ, "family %s has type %r, want %r" % (
            fam, sc.types.get(fam), typ)
    for name in CREATED:
        assert sc.types.get(name) == "gauge", (name, sc.types.get(name))


def test_put_all_metric_types_with_base64_and_empty_grouping_values(gateway):
    t0 = time.time()
    push_to_gateway(gateway.address, job=JOB, registry=registry_all_types(), grouping_key=GK)
    t1 = time.time()

    sc = scrape(gateway)
    assert_types(sc)
    assert_group_samples(sc, LABELS, EXPECTED_ALL_TYPES, t0, t1, created=CREATED)

    # Every pushed series carries exactly job, the grouping labels (including
    # empty="") and its own labels; nothing leaked into other label sets.
    pushed = {n for n, _ in EXPECTED_ALL_TYPES} | CREATED
    for (name, lset) in sc.samples:
        if name in pushed:
            d = dict(lset)
            assert {k: d[k] for k in LABELS if k in d} == LABELS, (name, d)
            assert set(d) - set(LABELS) <= {"le", "room"}, (name, d)

    # The API shows one group with exactly these grouping labels.
    groups = [g for g in gateway.api_metrics() if g["labels"].get("job") == JOB]
    assert len(groups) == 1, groups
    assert groups[0]["labels"] == LABELS
    assert groups[0]["last_push_successful"] is True
    assert groups[0]["e2e_requests_total"]["type"] == "COUNTER"
    assert groups[0]["e2e_temperature_celsius"]["metrics"][0]["value"] == "42.5"


def test_pushadd_keeps_other_families_put_replaces_them(gateway):
    # A neighbour group (other instance) that must never be touched.
    neighbour = CollectorRegistry()
    Gauge("e2e_neighbour", "Neighbour gauge.", registry=neighbour).set(11)
    push_to_gateway(gateway.address, job=JOB, registry=neighbour, grouping_key=OTHER_GK)

    t0 = time.time()
    push_to_gateway(gateway.address, job=JOB, registry=registry_all_types(), grouping_key=GK)
    t1 = time.time()
    pt_put1 = assert_group_samples(scrape(gateway), LABELS, EXPECTED_ALL_TYPES, t0, t1,
                                   created=CREATED)

    # POST: a new family is added, a family with the same name is replaced as
    # a whole (room="a" disappears), all other families stay.
    time.sleep(0.01)
    reg2 = CollectorRegistry()
    Gauge("e2e_extra", "Added by POST.", registry=reg2).set(7)
    Gauge("e2e_temperature_celsius", "A temperature.", ["room"], registry=reg2).labels(
        room="b").set(-1.25)
    t0 = time.time()
    pushadd_to_gateway(gateway.address, job=JOB, registry=reg2, grouping_key=GK)
    t1 = time.time()
    expected = dict(EXPECTED_ALL_TYPES)
    del expected[("e2e_temperature_celsius", room("a"))]
    expected[("e2e_temperature_celsius", room("b"))] = -1.25
    expected[("e2e_extra", E)] = 7.0
    sc = scrape(gateway)
    assert sc.types.get("e2e_extra") == "gauge"
    assert sc.value("e2e_temperature_celsius", {**LABELS, "room": "a"}) is None
    pt_post = assert_group_samples(sc, LABELS, expected, t0, t1, created=CREATED)
    assert pt_post >= pt_put1

    # PUT: replaces the whole group with what was pushed.
    time.sleep(0.01)
    reg3 = CollectorRegistry()
    Gauge("e2e_final", "Only family after PUT.", registry=reg3).set(1)
    t0 = time.time()
    push_to_gateway(gateway.address, job=JOB, registry=reg3, grouping_key=GK)
    t1 = time.time()
    sc = scrape(gateway)
    pt_put2 = assert_group_samples(sc, LABELS, {("e2e_final", E): 1.0}, t0, t1)
    assert pt_put2 >= pt_post
    for fam in ("e2e_requests", "e2e_duration_seconds", "e2e_payload_bytes", "e2e_extra",
                "e2e_temperature_celsius"):
        assert fam not in sc.all_types, "family %s survived the PUT" % fam

    # The neighbour group is untouched.
    assert sc.value("e2e_neighbour", OTHER_LABELS) == 11.0
    assert set(n for n, _ in sc.group(OTHER_LABELS)) == {"e2e_neighbour"} | PUSH_GAUGES


def test_delete_removes_only_that_group(gateway):
    for gk, v in ((GK, 1), (OTHER_GK, 2)):
        reg = CollectorRegistry()
        Gauge("e2e_value", "A value.", registry=reg).set(v)
        push_to_gateway(gateway.address, job=JOB, registry=reg, grouping_key=gk)
    # A job-only group of the same job.
    reg = CollectorRegistry()
    Gauge("e2e_jobonly", "Job-only group.", registry=reg).set(3)
    push_to_gateway(gateway.address, job=JOB, registry=reg)
    jobonly_labels = {"job": JOB, "instance": ""}

    sc = scrape(gateway)
    assert sc.value("e2e_value", LABELS) == 1.0
    assert sc.value("e2e_value", OTHER_LABELS) == 2.0
    assert sc.value("e2e_jobonly", jobonly_labels) == 3.0

    delete_from_gateway(gateway.address, job=JOB, grouping_key=GK)

    def gone():
        s = scrape(gateway)
        assert s.group(LABELS) == {}, "group still present: %r" % s.group(LABELS)
        return s

    sc = eventually(gone, timeout=3.0)
    assert sc.value("e2e_value", OTHER_LABELS) == 2.0
    assert sc.value("e2e_jobonly", jobonly_labels) == 3.0
    assert all(g["labels"] != LABELS for g in gateway.api_metrics())

    # Deleting the job-only group does not delete groups with more labels.
    delete_from_gateway(gateway.address, job=JOB)

    def jobonly_gone():
        s = scrape(gateway)
        assert s.value("e2e_jobonly", jobonly_labels) is None
        assert s.value("push_time_seconds", jobonly_labels) is None
        return s

    sc = eventually(jobonly_gone, timeout=3.0)
    assert sc.value("e2e_value", OTHER_LABELS) == 2.0

    # Deleting a group that does not exist is fine (no exception = 2xx).
    delete_from_gateway(gateway.address, job="e2e-never-pushed", grouping_key=GK)


@pytest.mark.parametrize("compression", ["gzip"])
def test_compressed_push(gateway, compression):
    t0 = time.time()
    push_to_gateway(gateway.address, job=JOB, registry=registry_all_types(), grouping_key=GK,
                    compression=compression)
    t1 = time.time()
    sc = scrape(gateway)
    assert_types(sc)
    assert_group_samples(sc, LABELS, EXPECTED_ALL_TYPES, t0, t1, created=CREATED)


def test_repeated_pushes_update_values_and_push_time(gateway):
    reg = CollectorRegistry()
    c = Counter("e2e_runs", "Runs.", registry=reg)
    last_pt = 0.0
    for i in range(1, 6):
        c.inc()
        t0 = time.time()
        pushadd_to_gateway(gateway.address, job="e2e_repeat", registry=reg)
        t1 = time.time()
        sc = scrape(gateway)
        labels = {"job": "e2e_repeat", "instance": ""}
        assert sc.value("e2e_runs_total", labels) == float(i)
        pt = sc.value("push_time_seconds", labels)
        assert t0 - 1 <= pt <= t1 + 1
        assert pt >= last_pt
        last_pt = pt
        time.sleep(0.005)
