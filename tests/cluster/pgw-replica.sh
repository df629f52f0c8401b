#!/usr/bin/env bash
# Runs the gateway as one replica of a replicated gateway, for the black-box conformance
# suite: PGW_CMD=tests/cluster/pgw-replica.sh with PGW_NATS_URL (a running nats-server -js)
# and PGW_REAL_BIN (the binary). Each gateway the suite starts gets its own bucket, so tests
# stay independent; a gateway restarted with the same --persistence.file gets the same
# bucket back, so restart tests see the replicated state (the file is only a local cache).
set -euo pipefail
: "${PGW_NATS_URL:?set PGW_NATS_URL to the NATS server, e.g. nats://127.0.0.1:4222}"
: "${PGW_REAL_BIN:?set PGW_REAL_BIN to the pushgateway binary}"
bucket=""
for a in "$@"; do
  case "$a" in
    --persistence.file=?*) bucket="pf_$(printf '%s' "${a#*=}" | sha256sum | cut -c1-24)" ;;
  esac
done
[ -n "$bucket" ] || bucket="t_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
exec "$PGW_REAL_BIN" --cluster.nats-url="$PGW_NATS_URL" --cluster.bucket="$bucket" "$@"
