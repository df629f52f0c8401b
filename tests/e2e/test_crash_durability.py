"""Acknowledged writes survive SIGKILL when --persistence.file is set.

Our gateway promises: once a push (PUT/POST) or DELETE has been answered with
2xx, it survives a SIGKILL of the process. Writer threads push and delete
concurrently; the main thread SIGKILLs the gateway at a random moment,
restarts it on the same file and compares what it restored with a model of
every request's outcome.

Model. Each group (job=w<thread>, instance=<k>) is written by one thread
only, one request at a time, so requests on a group are applied in the order
they were sent. Every request ends as

* ack      - 200/202: it was applied and must be durable;
* unknown  - the connection broke after the request may have been sent
             (the kill hit it in flight): it may or may not have been applied;
* not_sent - the TCP connect was refused: it was certainly not applied
             (ignored).

A PUT/POST leaves the group with `seq` = its value (values are unique and
increasing); a DELETE leaves no group. So after a restart the group must be
in the state of its last acknowledged request, or in the state of one of
the *unknown* requests that came after it - nothing else. In particular an
acknowledged PUT's value must be there exactly (not an older value, not
absent) unless a later unknown request exists, and an acknowledged DELETE's
group must be absent unless a later unknown PUT/POST exists. After each
check the observed state becomes the new baseline.

Knobs: PGW_CRASH_ROUNDS (default 8), PGW_CRASH_SEED (default: random, printed).
"""

import os
import random
import re
import signal
import threading
import time

import pytest
import requests
import urllib3

from pgw_e2e import Gateway, new_session

ROUNDS = int(os.environ.get("PGW_CRASH_ROUNDS", "8"))
WRITERS = 4
GROUPS_PER_WRITER = 3
KILL_AFTER = (0.2, 1.5)        # seconds after the writers start
MAX_OPS_PER_ROUND = 20000      # per writer; bounds the loop even on a very fast gateway
WRITER_DEADLINE = 10.0         # seconds; bounds a writer's loop in time
CONNECT_TIMEOUT, READ_TIMEOUT = 2.0, 5.0
FILLER_SERIES = 8

ABSENT = None
TEXT_CT = "text/plain; version=0.0.4; charset=utf-8"


def state_name(s):
    return "absent" if s is ABSENT else "seq=%d" % s


def body(value, writer):
    lines = ["# TYPE seq gauge", "seq %d" % value, "# TYPE filler_total counter"]
    lines += ['filler_total{i="%d",writer="w%d"} %d' % (i, writer, value + i)
              for i in range(FILLER_SERIES)]
    return ("\n".join(lines) + "\n").encode()


def connect_refused(exc):
    """True only if the request certainly never reached the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and exc.args:
        reason = getattr(exc.args[0], "reason", None)
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


class History:
    """Per-group baseline state and the requests sent since."""

    def __init__(self, groups):
        self.base = {g: ABSENT for g in groups}
        self.ops = {g: [] for g in groups}   # (round, method, value, outcome)

    def allowed(self, g):
        ops = self.ops[g]
        last_ack = max((i for i, op in enumerate(ops) if op[3] == "ack"), default=None)
        if last_ack is None:
            allowed = {self.base[g]}
            tail = ops
        else:
            allowed = {op_state(ops[last_ack])}
            tail = ops[last_ack + 1:]
        for op in tail:
            assert op[3] == "unknown", op
            allowed.add(op_state(op))
        return allowed, (ops[last_ack] if last_ack is not None else None), tail

    def rebase(self, observed):
        for g in self.base:
            self.base[g] = observed.get(g, ABSENT)
            self.ops[g] = []


def op_state(op):
    _round, method, value, _outcome = op
    return ABSENT if method == "DELETE" else value


class Writer(threading.Thread):
    def __init__(self, idx, base_url, history, stop, rnd, counter_start, rnd_round):
        super().__init__(name="writer-%d" % idx, daemon=True)
        self.idx = idx
        self.base_url = base_url
        self.history = history
        self.stop = stop
        self.rnd = rnd
        self.value = counter_start
        self.round = rnd_round
        self.stats = {"ack": 0, "unknown": 0, "not_sent": 0}
        self.errors = []   # non-2xx answers: always a failure

    def run(self):
        session = new_session()
        deadline = time.monotonic() + WRITER_DEADLINE
        try:
            for _ in range(MAX_OPS_PER_ROUND):
                if self.stop.is_set() or time.monotonic() > deadline:
                    break
                k = self.rnd.randrange(GROUPS_PER_WRITER)
                group = ("w%d" % self.idx, str(k))
                url = "%s/metrics/job/%s/instance/%s" % (self.base_url, group[0], group[1])
                p = self.rnd.random()
                method = "PUT" if p < 0.55 else ("POST" if p < 0.75 else "DELETE")
                self.value += 1
                value = self.value
                try:
                    if method == "DELETE":
                        r = session.delete(url, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
                    else:
                        r = session.request(method, url, data=body(value, self.idx),
                                            headers={"Content-Type": TEXT_CT},
                                            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
                except requests.RequestException as e:
                    if connect_refused(e):
                        self.stats["not_sent"] += 1
                        # The server is gone: nothing more will get through.
                        if self.stop.wait(0.01):
                            break
                        continue
                    self.stats["unknown"] += 1
                    self.history.ops[group].append((self.round, method, value, "unknown"))
                    continue
                if r.status_code in (200, 202):
                    self.stats["ack"] += 1
                    self.history.ops[group].append((self.round, method, value, "ack"))
                else:
                    # Not acknowledged, and not expected: count it as unknown for
                    # the model, and fail the test for it.
                    self.errors.append("%s %s -> %d %r" % (method, url, r.status_code, r.text[:200]))
                    self.history.ops[group].append((self.round, method, value, "unknown"))
        finally:
            session.close()


SEQ_LINE = re.compile(r'^seq\{([^}]*)\} (\S+)$')


def observe(gw, groups):
    """{group: seq value} from /api/v1/metrics; cross-checked with /metrics."""
    observed, problems = {}, []
    for g in gw.api_metrics():
        labels = g["labels"]
        key = (labels.get("job"), labels.get("instance", ""))
        if key not in groups or set(labels) != {"job", "instance"}:
            problems.append("unexpected group %r" % labels)
            continue
        fam = g.get("seq")
        if fam is None or len(fam.get("metrics", [])) != 1:
            problems.append("group %r has no single `seq` sample: %r" % (labels, fam))
            continue
        observed[key] = int(float(fam["metrics"][0]["value"]))

    scraped = {}
    for line in gw.scrape_text().splitlines():
        m = SEQ_LINE.match(line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            scraped[(labels.get("job"), labels.get("instance", ""))] = int(float(m.group(2)))
    if scraped != observed:
        problems.append("/metrics and /api/v1/metrics disagree: %r vs %r" % (scraped, observed))
    return observed, problems


def check(history, observed):
    violations = []
    for g in sorted(history.base):
        allowed, last_ack, tail = history.allowed(g)
        got = observed.get(g, ABSENT)
        if got in allowed:
            continue
        if last_ack is not None:
            what = "last acknowledged %s (round %d) -> %s" % (
                last_ack[1], last_ack[0], state_name(op_state(last_ack)))
            kind = "LOST acknowledged DELETE (group came back)" if last_ack[1] == "DELETE" \
                else "LOST acknowledged %s" % last_ack[1]
        else:
            what = "no acknowledged request since the last check (baseline %s)" % state_name(
                history.base[g])
            kind = "WRONG state"
        violations.append("%s: job=%s instance=%s: restored %s; %s; later unknown requests: %s; "
                          "allowed: %s" % (
                              kind, g[0], g[1], state_name(got), what,
                              [("%s %d" % (op[1], op[2])) for op in tail] or "none",
                              sorted(state_name(s) for s in allowed)))
    return violations


def test_acknowledged_writes_survive_sigkill(tmp_path, log_dir, processes, pgw_bin):
    seed = int(os.environ.get("PGW_CRASH_SEED", str(random.randrange(1 << 30))))
    print("crash test seed: PGW_CRASH_SEED=%d" % seed)
    rnd = random.Random(seed)
    pfile = str(tmp_path / "pushgateway.data")
    groups = [("w%d" % w, str(k)) for w in range(WRITERS) for k in range(GROUPS_PER_WRITER)]
    history = History(groups)
    counters = [w * 10**9 for w in range(WRITERS)]   # unique values per writer
    totals = {"ack": 0, "unknown": 0, "not_sent": 0}
    t_start = time.monotonic()

    for round_no in range(ROUNDS + 1):
        gw = Gateway(log_dir, persistence_file=pfile)
        processes.append(gw)
        gw.start()

        if round_no > 0:
            observed, problems = observe(gw, set(groups))
            violations = check(history, observed)
            acked = sum(1 for ops in history.ops.values() for op in ops if op[3] == "ack")
            if problems or violations:
                pytest.fail(
                    "after SIGKILL #%d (PGW_CRASH_SEED=%d): %d of %d groups not in an allowed "
                    "state (%d acknowledged requests since the previous check):\n  %s" % (
                        round_no, seed, len(violations), len(groups), acked,
                        "\n  ".join(problems + violations[:24])), pytrace=False)
            history.rebase(observed)

        if round_no == ROUNDS:
            # Final check done. A clean stop must keep exactly that state too.
            assert gw.stop(signal.SIGTERM) == 0, "gateway did not exit 0 on SIGTERM"
            gw = Gateway(log_dir, persistence_file=pfile)
            processes.append(gw)
            gw.start()
            after, problems = observe(gw, set(groups))
            assert not problems, problems
            assert after == observed, "state changed across SIGTERM + restart: %r -> %r" % (
                observed, after)
            break

        stop = threading.Event()
        writers = [Writer(w, gw.base, history, stop, random.Random(rnd.randrange(1 << 30)),
                          counters[w], round_no) for w in range(WRITERS)]
        for w in writers:
            w.start()
        time.sleep(rnd.uniform(*KILL_AFTER))
        os.killpg(gw.pid, signal.SIGKILL)   # its own session: the whole group
        stop.set()
        gw.proc.wait(timeout=10)
        for w in writers:
            w.join(timeout=WRITER_DEADLINE + READ_TIMEOUT + 5)
            assert not w.is_alive(), "writer %s did not stop" % w.name
            counters[w.idx] = w.value
        errors = [e for w in writers for e in w.errors]
        assert not errors, "non-2xx answers to valid requests:\n  " + "\n  ".join(errors[:10])
        round_stats = {k: sum(w.stats[k] for w in writers) for k in totals}
        for k in totals:
            totals[k] += round_stats[k]
        print("round %d: %r" % (round_no, round_stats))
        assert round_stats["ack"] >= 5, "too few acknowledged requests in round %d: %r" % (
            round_no, round_stats)

    elapsed = time.monotonic() - t_start
    print("crash test: %d rounds, %r, %.1fs" % (ROUNDS, totals, elapsed))
    assert totals["ack"] >= 50 * ROUNDS // 8, totals
