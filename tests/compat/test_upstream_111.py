"""Drop-in compatibility with upstream Pushgateway 1.11 as Prometheus 3 and today's clients see it.

Where each expectation comes from (upstream sources read for it):

* pushgateway v1.11.3 main.go (`--push.enable-utf8-names`, flags shown by the status API),
  handler/push.go (`splitLabels`: `model.UnescapeName(name, ValueEncodingEscaping)`, text
  parser with the validation scheme), api/v1/api.go + histogram/prometheus_model.go (native
  histograms in /api/v1/metrics), resources/template.html + handler/status.go (native
  histograms in the UI, `formatHistogram`).
* prometheus/common v0.67.5 expfmt/encode.go (`Negotiate`: escaping= parameter, Content-Type
  echo), expfmt/expfmt.go (format strings), model/metric.go (`EscapeName`,
  `EscapeMetricFamily`, `UnescapeName`), expfmt/text_create.go (gauge histogram written as
  `histogram`, float counts, quoted names), expfmt/text_parse.go (quoted names, float
  histogram counts, normalizeHistogram).
* client_golang v1.23.2 prometheus/collectors/version (`tags` label of build_info),
  prometheus/labels.go (`checkLabelName`: UTF-8 validation), promhttp/http.go (`Negotiate`
  unless EnableOpenMetrics).
* prometheus/prometheus model/histogram (`Histogram.String()`, bucket bounds),
  scrape/scrape.go (`acceptHeader`: Prometheus 3's Accept headers).

Tests without a marker also pass against Debian's 1.5.1 (PGW_CMD=/usr/bin/prometheus-pushgateway).
"""

import json
import math
import re

import pytest
import requests

import metrics_pb as pb
import pgwtest

PB_CT = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
PB_ACCEPT = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
TEXT_CT = "text/plain; version=0.0.4; charset=utf-8"
# Prometheus 3 (scrape/scrape.go acceptHeader with DefaultScrapeProtocols / with native
# histograms on, DefaultProtoFirstScrapeProtocols).
P3_ACCEPT = ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
             "application/openmetrics-text;version=0.0.1;q=0.5,"
             "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
             "text/plain;version=0.0.4;q=0.3,*/*;q=0.2")
P3_PB_ACCEPT = (PB_ACCEPT + ";q=0.6,"
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
                "application/openmetrics-text;version=0.0.1;q=0.4,"
                "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
                "text/plain;version=0.0.4;q=0.2,*/*;q=0.1")

MT = pb.MetricFamily  # for the enum values
GAUGE, HISTOGRAM, GAUGE_HISTOGRAM = 1, 4, 5


def push_pb(gw, path, families, method="PUT"):
    return gw.request(method, path, data=pb.write_delimited(families),
                      headers={"Content-Type": PB_CT})


def scrape(gw, accept=None):
    headers = {"Accept": accept} if accept is not None else {}
    r = gw.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    return r


def scrape_pb(gw, accept=PB_ACCEPT):
    r = scrape(gw, accept)
    return {f.name: f for f in pb.read_delimited(r.content)}


def lines(text):
    return [l for l in text.splitlines() if l and not l.startswith("#")]


def api_family(gw, job, name):
    r = gw.get("/api/v1/metrics")
    assert r.status_code == 200
    for g in r.json()["data"]:
        if g["labels"].get("job") == job and name in g:
            return g[name]
    raise AssertionError("family %s of job %s not in the API: %s" % (name, job, r.text))


def add_span(spans, offset, length):
    s = spans.add()
    s.offset = offset
    s.length = length


def native_histogram(float_counts=False, classic=False, empty=False):
    """schema 1, observations -0.8, 0, 0, 0.6, 0.9, 1.5 (as client_golang would send them)."""
    h = pb.Histogram()
    h.schema = 1
    h.zero_threshold = 0.001
    h.sample_sum = 2.2
    if empty:
        h.sample_count = 0
        h.sample_sum = 0
        add_span(h.positive_span, 0, 0)  # client_golang's marker of an empty native histogram
        return h
    if float_counts:
        h.sample_count_float = 6.0
        h.zero_count_float = 2.0
        add_span(h.negative_span, 0, 1)
        h.negative_count.append(1.0)
        add_span(h.positive_span, -1, 2)
        add_span(h.positive_span, 1, 1)
        h.positive_count.extend([0.5, 1.0, 1.5])
    else:
        h.sample_count = 6
        h.zero_count = 2
        add_span(h.negative_span, 0, 1)
        h.negative_delta.append(1)
        add_span(h.positive_span, -1, 2)
        add_span(h.positive_span, 1, 1)
        h.positive_delta.extend([1, 0, 0])
    if classic:
        for ub, c in ((0, 3), (1, 5)):
            b = h.bucket.add()
            b.upper_bound = ub
            b.cumulative_count = c
    return h


# --- gauge histograms -------------------------------------------------------------------

@pytest.mark.v111
def test_gauge_histogram_is_histogram_in_text_and_gauge_histogram_in_protobuf(gw):
    h = pb.Histogram(sample_count=3, sample_sum=1.5)
    b = h.bucket.add()
    b.upper_bound = 1
    b.cumulative_count = 2
    r = push_pb(gw, "/metrics/job/gh", [pb.family("queue_size", GAUGE_HISTOGRAM,
                                                     [pb.metric(histogram=h)])])
    assert r.status_code == 200, r.text
    text = scrape(gw).text
    # expfmt/text_create.go: the text format has no gauge histogram.
    assert "# TYPE queue_size histogram" in text
    assert "gaugehistogram" not in text
    pgwtest.Exposition(text)  # parses
    assert 'queue_size_bucket{instance="",job="gh",le="1"} 2' in lines(text)
    assert scrape_pb(gw)["queue_size"].type == GAUGE_HISTOGRAM


# --- flags, status, build_info ------------------------------------------------------------

@pytest.mark.v111
@pytest.mark.parametrize("flag,want", [([], "false"), (["--push.enable-utf8-names"], "true")])
def test_utf8_flag_accepted_and_shown_in_status(gw_factory, flag, want):
    gw = gw_factory(flags=flag)
    flags = gw.get("/api/v1/status").json()["data"]["flags"]
    assert flags["push.enable-utf8-names"] == want


@pytest.mark.v111
def test_build_info_has_tags_label(gw):
    text = scrape(gw).text
    [line] = [l for l in lines(text) if l.startswith("pushgateway_build_info{")]
    assert re.search(r'[{,]tags="[^"]*"', line), line
    for label in ("branch", "goarch", "goos", "goversion", "revision", "version"):
        assert '%s="' % label in line


# --- escaping negotiation -----------------------------------------------------------------

@pytest.mark.v111
@pytest.mark.parametrize("accept,content_type", [
    (None, TEXT_CT + "; escaping=underscores"),
    ("text/plain;version=0.0.4", TEXT_CT + "; escaping=underscores"),
    ("text/plain;version=0.0.4; escaping=values;", TEXT_CT + "; escaping=values"),
    ("text/plain;version=0.0.4;escaping=dots", TEXT_CT + "; escaping=dots"),
    ("text/plain;version=0.0.4;escaping=allow-utf-8", TEXT_CT + "; escaping=allow-utf-8"),
    ("text/plain;version=0.0.4;escaping=nonsense", TEXT_CT + "; escaping=underscores"),
    (PB_ACCEPT, PB_CT + "; escaping=underscores"),
    (PB_ACCEPT + "; escaping=allow-utf-8;", PB_CT + "; escaping=allow-utf-8"),
    ("application/openmetrics-text;version=1.0.0", TEXT_CT + "; escaping=underscores"),
    (P3_ACCEPT, TEXT_CT + "; escaping=allow-utf-8"),
    (P3_PB_ACCEPT, PB_CT + "; escaping=underscores"),
])
def test_negotiation_table_and_content_type_echo(gw, accept, content_type):
    r = scrape(gw, accept)
    assert r.headers["Content-Type"] == content_type


def test_negotiated_format_without_escaping(gw):
    """The format choice itself is the same in 1.5.1 (expfmt.Negotiate)."""
    assert scrape(gw, P3_ACCEPT).headers["Content-Type"].startswith(TEXT_CT)
    assert scrape(gw, P3_PB_ACCEPT).headers["Content-Type"].startswith(PB_CT)
    assert scrape(gw, PB_ACCEPT + ";q=0.2,text/plain;version=0.0.4;q=0.3") \
        .headers["Content-Type"].startswith(TEXT_CT)


# --- UTF-8 names with --push.enable-utf8-names --------------------------------------------

@pytest.mark.v111
def test_utf8_path_label_with_flag(gw_factory):
    gw = gw_factory(flags=["--push.enable-utf8-names"])
    r = gw.put("/metrics/job/j/U__foo_2e_bar/baz", data=b"some_metric 1\n")
    assert r.status_code == 200, r.text
    fams = scrape_pb(gw, PB_ACCEPT + ";escaping=allow-utf-8")
    [m] = fams["some_metric"].metric
    assert pb.labels_of(m)["foo.bar"] == "baz"
    # Default scrape: escaped with underscores.
    assert 'some_metric{foo_bar="baz",instance="",job="j"} 1' in lines(scrape(gw).text)
    # A path label name that is not escaped is taken as it is.
    assert gw.put("/metrics/job/k/a.b/c", data=b"other 1\n").status_code == 200
    assert 'other{a_b="c",instance="",job="k"} 1' in lines(scrape(gw).text)


def test_utf8_path_label_without_flag(gw):
    # Without the flag `U__foo_2e_bar` is an ordinary label name, `a.b` an improper one.
    assert gw.put("/metrics/job/j/U__foo_2e_bar/baz", data=b"m 1\n").status_code == 200
    assert 'm{U__foo_2e_bar="baz",instance="",job="j"} 1' in lines(scrape(gw).text)
    r = gw.put("/metrics/job/j/a.b/c", data=b"m 1\n")
    assert r.status_code == 400 and 'improper label name "a.b"' in r.text


@pytest.mark.v111
def test_quoted_names_in_text_push_with_flag(gw_factory):
    gw = gw_factory(flags=["--push.enable-utf8-names"])
    body = ('# HELP "my.metric" A dotted name.\n# TYPE "my.metric" gauge\n'
            '{"my.metric", "my.label"="v"} 1\n')
    r = gw.put("/metrics/job/j", data=body.encode())
    assert r.status_code == 200, r.text
    utf8 = scrape(gw, "text/plain;version=0.0.4;escaping=allow-utf-8").text
    assert '# TYPE "my.metric" gauge' in utf8
    assert '{"my.metric",instance="",job="j","my.label"="v"} 1' in lines(utf8)
    under = scrape(gw).text
    assert "# TYPE my_metric gauge" in under
    assert 'my_metric{instance="",job="j",my_label="v"} 1' in lines(under)
    pgwtest.Exposition(under)
    values = scrape(gw, "text/plain;version=0.0.4;escaping=values").text
    assert 'U__my_2e_metric{instance="",job="j",U__my_2e_label="v"} 1' in lines(values)
    dots = scrape(gw, "text/plain;version=0.0.4;escaping=dots").text
    assert 'my_dot_metric{instance="",job="j",my_dot_label="v"} 1' in lines(dots)
    fams = scrape_pb(gw, PB_ACCEPT + ";escaping=allow-utf-8")
    assert pb.labels_of(fams["my.metric"].metric[0])["my.label"] == "v"
    assert "my_metric" in scrape_pb(gw)


@pytest.mark.v111
def test_quoted_names_without_flag(gw):
    # A quoted name that is a legacy name is fine; others are refused.
    r = gw.put("/metrics/job/j", data=b'{"legacy_name", "a"="1"} 2\n')
    assert r.status_code == 200, r.text
    assert 'legacy_name{a="1",instance="",job="j"} 2' in lines(scrape(gw).text)
    r = gw.put("/metrics/job/k", data=b'{"my.metric"} 1\n')
    assert r.status_code == 400
    assert 'invalid metric name "my.metric"' in r.text
    r = gw.put("/metrics/job/k", data=b'x{"my.label"="v"} 1\n')
    assert r.status_code == 400
    assert 'invalid label name "my.label"' in r.text


def test_unquoted_dotted_name_refused_without_flag(gw):
    r = gw.put("/metrics/job/k", data=b"my.metric 1\n")
    assert r.status_code == 400


@pytest.mark.v111
def test_protobuf_utf8_family_name_accepted_and_escaped_on_scrape(gw):
    # Without the flag too: client_golang v1.23 validates names as UTF-8.
    fam = pb.family("my.metric", GAUGE, [pb.metric(labels={"a": "v"}, gauge=3)])
    r = push_pb(gw, "/metrics/job/j", [fam])
    assert r.status_code == 200, r.text
    text = scrape(gw).text
    pgwtest.Exposition(text)
    assert 'my_metric{a="v",instance="",job="j"} 3' in lines(text)
    utf8 = scrape(gw, P3_ACCEPT).text
    assert '{"my.metric",a="v",instance="",job="j"} 3' in lines(utf8)
    assert "my.metric" in scrape_pb(gw, PB_ACCEPT + ";escaping=allow-utf-8")
    assert "my_metric" in scrape_pb(gw)


def test_protobuf_utf8_label_name_refused_without_flag(gw):
    # Deliberately as 1.5.1 (conformance suite), not 1.11: without --push.enable-utf8-names a
    # label name must be a legacy one in protobuf pushes too, as in text pushes.
    fam = pb.family("m", GAUGE, [pb.metric(labels={"my.label": "v"}, gauge=3)])
    r = push_pb(gw, "/metrics/job/j", [fam])
    assert r.status_code == 400
    assert "invalid name: my.label" in r.text


@pytest.mark.v111
def test_protobuf_utf8_label_name_with_flag(gw_factory):
    gw = gw_factory(flags=["--push.enable-utf8-names"])
    fam = pb.family("my.metric", GAUGE, [pb.metric(labels={"my.label": "v"}, gauge=3)])
    r = push_pb(gw, "/metrics/job/j", [fam])
    assert r.status_code == 200, r.text
    assert 'my_metric{instance="",job="j",my_label="v"} 3' in lines(scrape(gw).text)
    utf8 = scrape(gw, P3_ACCEPT).text
    assert '{"my.metric",instance="",job="j","my.label"="v"} 3' in lines(utf8)
    # Two label names that are one once escaped: refused, naming both (ours).
    fam = pb.family("n", GAUGE, [pb.metric(labels={"x.y": "1", "x_y": "2"}, gauge=1)])
    r = push_pb(gw, "/metrics/job/k", [fam])
    assert r.status_code == 400
    assert '"x.y" and "x_y"' in r.text


@pytest.mark.ours
def test_names_colliding_after_escaping_refused_naming_both(gw):
    r = push_pb(gw, "/metrics/job/a", [pb.family("a.b", GAUGE, [pb.metric(gauge=1)])])
    assert r.status_code == 200, r.text
    r = gw.put("/metrics/job/b", data=b"a_b 2\n")
    assert r.status_code == 400
    assert '"a_b"' in r.text and '"a.b"' in r.text
    # Replacing the group that holds the other name is fine.
    assert gw.put("/metrics/job/a", data=b"a_b 2\n").status_code == 200
    text = scrape(gw).text
    assert len([l for l in lines(text) if l.startswith("a_b{")]) == 1


# --- float histograms -----------------------------------------------------------------------

@pytest.mark.v111
def test_float_histogram_text_push_keeps_float_counts(gw):
    body = (b"# TYPE h histogram\n"
            b'h_bucket{le="1"} 0.5\nh_bucket{le="+Inf"} 2.5\nh_sum 3.25\nh_count 2.5\n')
    r = gw.put("/metrics/job/f", data=body)
    assert r.status_code == 200, r.text
    ls = lines(scrape(gw).text)
    assert 'h_bucket{instance="",job="f",le="1"} 0.5' in ls
    assert 'h_bucket{instance="",job="f",le="+Inf"} 2.5' in ls
    assert 'h_count{instance="",job="f"} 2.5' in ls
    [m] = scrape_pb(gw)["h"].metric
    assert m.histogram.sample_count_float == 2.5
    assert [b.cumulative_count_float for b in m.histogram.bucket] == [0.5, 2.5]
    fam = api_family(gw, "f", "h")
    [am] = fam["metrics"]
    assert am["count"] == "2.5"
    assert am["buckets"] == {"1": "0.5", "+Inf": "2.5"}


@pytest.mark.v111
def test_float_histogram_protobuf_push_written_as_floats(gw):
    h = pb.Histogram(sample_count_float=4.5, sample_sum=2)
    b = h.bucket.add()
    b.upper_bound = 1
    b.cumulative_count_float = 1.5
    r = push_pb(gw, "/metrics/job/f", [pb.family("fh", HISTOGRAM, [pb.metric(histogram=h)])])
    assert r.status_code == 200, r.text
    ls = lines(scrape(gw).text)
    assert 'fh_bucket{instance="",job="f",le="1"} 1.5' in ls
    assert 'fh_bucket{instance="",job="f",le="+Inf"} 4.5' in ls
    assert 'fh_count{instance="",job="f"} 4.5' in ls


# --- native histograms -----------------------------------------------------------------------

def test_native_histogram_protobuf_round_trip(gw):
    h = native_histogram()
    r = push_pb(gw, "/metrics/job/n", [pb.family("nh", HISTOGRAM, [pb.metric(histogram=h)])])
    assert r.status_code == 200, r.text
    got = scrape_pb(gw)["nh"].metric[0].histogram
    assert got.schema == 1 and got.zero_count == 2 and got.sample_count == 6
    assert list(got.positive_delta) == [1, 0, 0]
    assert [(s.offset, s.length) for s in got.positive_span] == [(-1, 2), (1, 1)]
    assert list(got.negative_delta) == [1]


@pytest.mark.v111
@pytest.mark.parametrize("kind", ["integer", "float", "mixed", "empty"])
def test_native_histogram_in_api(gw, kind):
    h = native_histogram(float_counts=kind == "float", classic=kind == "mixed",
                         empty=kind == "empty")
    r = push_pb(gw, "/metrics/job/n", [pb.family("nh", HISTOGRAM, [pb.metric(histogram=h)])])
    assert r.status_code == 200, r.text
    [m] = api_family(gw, "n", "nh")["metrics"]
    if kind == "empty":
        assert m["buckets"] == [] and m["count"] == "0"
        return
    c = (lambda i, f: f) if kind == "float" else (lambda i, f: i)
    # [boundary_rule, lower, upper, count]: negative far-to-near, zero bucket, positive.
    assert m["buckets"] == [
        [1, "-1", "-0.7071067811865475", c("1", "1")],
        [3, "-0.001", "0.001", c("2", "2")],
        [0, "0.5", "0.7071067811865475", c("1", "0.5")],
        [0, "0.7071067811865475", "1", c("1", "1")],
        [0, "1.414213562373095", "2", c("1", "1.5")],
    ]
    assert m["count"] == "6"
    assert m["sum"] == "2.2"


@pytest.mark.v111
def test_native_histogram_in_web_ui(gw):
    r = push_pb(gw, "/metrics/job/n", [pb.family("nh", HISTOGRAM,
                                                    [pb.metric(histogram=native_histogram())])])
    assert r.status_code == 200
    html = gw.get("/").text
    assert "Native Histogram representation" in html
    assert ("{count:6, sum:2.2, [-1,-0.7071067811865475):1, [-0.001,0.001]:2, "
            "(0.5,0.7071067811865475]:1, (0.7071067811865475,1]:1, (1.414213562373095,2]:1}") in html


@pytest.mark.v111
def test_native_histogram_text_scrape_shows_count_and_sum(gw):
    r = push_pb(gw, "/metrics/job/n", [pb.family("nh", HISTOGRAM,
                                                    [pb.metric(histogram=native_histogram())])])
    assert r.status_code == 200
    ls = lines(scrape(gw).text)
    assert 'nh_bucket{instance="",job="n",le="+Inf"} 6' in ls
    assert 'nh_count{instance="",job="n"} 6' in ls
    assert 'nh_sum{instance="",job="n"} 2.2' in ls
