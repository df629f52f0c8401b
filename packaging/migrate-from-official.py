#!/usr/bin/env python3
"""Copy every group from one Pushgateway to another, over HTTP.

Made for moving from the official Pushgateway (for example Debian's prometheus-pushgateway,
whose --persistence.file is a Go gob file this gateway cannot read) to this one: it reads the
old gateway's GET /api/v1/metrics (live, or saved to a file beforehand), turns each group
back into the text exposition format and PUTs it to the same grouping key on the new gateway.
Works between any two gateways that speak the Pushgateway API, in either direction.

    # live: both gateways running
    migrate-from-official.py http://old-host:9091 http://127.0.0.1:9091
    # saved before the old gateway was replaced, pushed after the new one started
    curl -s http://127.0.0.1:9091/api/v1/metrics > groups.json
    migrate-from-official.py groups.json http://127.0.0.1:9091
    migrate-from-official.py --dry-run groups.json -      # print what would be pushed

Groups that already exist on the destination are skipped (they were pushed after the copy
was taken, so they are newer); --overwrite replaces them too.

What is copied: every metric family of every group, with its type, HELP, labels and values
(counters, gauges, untyped, histograms, summaries). What is not: push_time_seconds and
push_failure_time_seconds, which the new gateway sets itself (so every migrated group looks
freshly pushed at migration time), and TTLs (the official gateway has none).

Basic auth: put user:password in the URL (http://user:pass@host:9091) or set
PGW_SRC_PASSWORD / PGW_DST_PASSWORD with the user name in the URL. Exit code 0 when every
group was copied or skipped, 1 when some failed (they are listed), 2 on bad arguments.
"""

import argparse
import base64
import json
import math
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

GATEWAY_FAMILIES = {"push_time_seconds", "push_failure_time_seconds"}
GROUP_KEYS = {"labels", "last_push_successful"}


def split_auth(url, password_env):
    """(url without userinfo, Authorization header or None)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise SystemExit(f"migrate: not an http(s) URL: {url!r}")
    auth = None
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = parts.password
        password = (
            urllib.parse.unquote(password)
            if password is not None
            else os.environ.get(password_env, "")
        )
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        auth = f"Basic {token}"
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urllib.parse.urlunsplit(parts).rstrip("/"), auth


def request(method, url, auth, body=None, timeout=30):
    req = urllib.request.Request(url, data=body, method=method)
    if auth:
        req.add_header("Authorization", auth)
    if body is not None:
        req.add_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read()


def escape_help(s):
    return s.replace("\\", "\\\\").replace("\n", "\\n")


def escape_value(s):
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def label_text(labels, extra=None):
    # Empty values are the same as absent labels; the gateway adds instance="" itself.
    pairs = [(k, v) for k, v in sorted(labels.items()) if v != ""]
    if extra:
        pairs.append(extra)
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{escape_value(v)}"' for k, v in pairs) + "}"


def sort_key(bound):
    try:
        return float(bound)
    except ValueError:
        return math.inf


def family_text(name, fam):
    """One metric family of /api/v1/metrics as text exposition lines."""
    typ = fam.get("type", "UNTYPED").lower()
    lines = []
    if fam.get("help"):
        lines.append(f"# HELP {name} {escape_help(fam['help'])}")
    lines.append(f"# TYPE {name} {typ}")
    for m in fam.get("metrics", []):
        labels = m.get("labels", {})
        if typ == "histogram":
            buckets = dict(m.get("buckets", {}))
            buckets.setdefault("+Inf", m.get("count", "0"))
            for le in sorted(buckets, key=sort_key):
                lines.append(f"{name}_bucket{label_text(labels, ('le', le))} {buckets[le]}")
            lines.append(f"{name}_sum{label_text(labels)} {m.get('sum', '0')}")
            lines.append(f"{name}_count{label_text(labels)} {m.get('count', '0')}")
        elif typ == "summary":
            quantiles = m.get("quantiles", {})
            for q in sorted(quantiles, key=sort_key):
                lines.append(f"{name}{label_text(labels, ('quantile', q))} {quantiles[q]}")
            lines.append(f"{name}_sum{label_text(labels)} {m.get('sum', '0')}")
            lines.append(f"{name}_count{label_text(labels)} {m.get('count', '0')}")
        else:
            lines.append(f"{name}{label_text(labels)} {m.get('value', '0')}")
    return lines


def group_text(group):
    lines = []
    for name in sorted(group):
        if name in GROUP_KEYS or name in GATEWAY_FAMILIES:
            continue
        fam = group[name]
        if isinstance(fam, dict) and "metrics" in fam:
            lines.extend(family_text(name, fam))
    return "".join(line + "\n" for line in lines)


def b64(value):
    # "=" is how the Pushgateway spells an empty value in @base64 form.
    return base64.urlsafe_b64encode(value.encode()).decode() or "="


def group_path(labels):
    """/metrics/job@base64/.../name@base64/... for a grouping key (any bytes are safe)."""
    job = labels.get("job")
    if job is None:
        raise ValueError("group without a job label")
    path = "/metrics/job@base64/" + b64(job)
    for k in sorted(labels):
        if k != "job":
            path += f"/{k}@base64/{b64(labels[k])}"
    return path


def read_groups(source, timeout):
    """The groups of GET /api/v1/metrics: from a URL, a saved file, or '-' (stdin)."""
    if source.startswith(("http://", "https://")):
        src, auth = split_auth(source, "PGW_SRC_PASSWORD")
        _, body = request("GET", src + "/api/v1/metrics", auth, timeout=timeout)
        where = src
    elif source == "-":
        body, where = sys.stdin.buffer.read(), "stdin"
    else:
        with open(source, "rb") as f:
            body, where = f.read(), source
    doc = json.loads(body)
    if doc.get("status") != "success":
        raise ValueError(f"not a successful /api/v1/metrics answer: {str(doc)[:200]}")
    return doc.get("data") or [], where


def existing_keys(dst, auth, timeout):
    _, body = request("GET", dst + "/api/v1/metrics", auth, timeout=timeout)
    return {group_id(g.get("labels", {})) for g in json.loads(body).get("data") or []}


def group_id(labels):
    return tuple(sorted((k, v) for k, v in labels.items() if v != ""))


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Copy all groups from one Pushgateway to another over HTTP.",
        epilog="Example: %(prog)s http://old-host:9091 http://127.0.0.1:9091",
    )
    p.add_argument(
        "source",
        help="base URL of the gateway to read, or a file with its saved "
        "GET /api/v1/metrics answer ('-' for stdin)",
    )
    p.add_argument("destination", help="base URL of the gateway to push to ('-' with --dry-run)")
    p.add_argument("--dry-run", action="store_true", help="print the groups instead of pushing")
    p.add_argument(
        "--overwrite", action="store_true", help="also replace groups the destination already has"
    )
    p.add_argument("--timeout", type=float, default=30, help="seconds per request (default 30)")
    args = p.parse_args(argv)

    try:
        groups, where = read_groups(args.source, args.timeout)
    except (urllib.error.URLError, OSError, ValueError) as e:
        print(f"migrate: reading the groups of {args.source}: {e}", file=sys.stderr)
        return 1
    dst = dst_auth = None
    skip = set()
    if not args.dry_run:
        dst, dst_auth = split_auth(args.destination, "PGW_DST_PASSWORD")
        if not args.overwrite:
            try:
                skip = existing_keys(dst, dst_auth, args.timeout)
            except (urllib.error.URLError, OSError, ValueError) as e:
                print(f"migrate: reading the groups of {dst}: {e}", file=sys.stderr)
                return 1

    failed = []
    copied = skipped = 0
    for group in groups:
        labels = group.get("labels", {})
        try:
            path = group_path(labels)
        except ValueError as e:
            failed.append((labels, str(e)))
            continue
        if group_id(labels) in skip:
            skipped += 1
            continue
        text = group_text(group)
        if args.dry_run:
            print(f"# PUT {path}")
            sys.stdout.write(text)
            copied += 1
            continue
        try:
            request("PUT", dst + path, dst_auth, text.encode(), timeout=args.timeout)
            copied += 1
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace").strip()
            failed.append((labels, f"HTTP {e.code}: {detail}"))
        except (urllib.error.URLError, OSError) as e:
            failed.append((labels, str(e)))

    verb = "would copy" if args.dry_run else "copied"
    note = f", skipped {skipped} the destination already has" if skipped else ""
    print(f"migrate: {verb} {copied} of {len(groups)} groups from {where}{note}", file=sys.stderr)
    for labels, err in failed:
        print(f"migrate: FAILED group {labels}: {err}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
