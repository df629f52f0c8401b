#!/usr/bin/env bash
# Sampling profiles of the release binary under the loads of issue 19 (see bench/PERF-PLAN.md).
# Hardware counters are not available on the development VM (`perf stat -e instructions`
# says <not supported>), but the cpu-clock software event is: `perf record -e cpu-clock`.
#
#   bench/profile.sh push      # push_small (pgw.lua mode=small, wrk -t2 -c32) for 10 s, in memory
#   bench/profile.sh large     # push_large (5,000-series POSTs, wrk -t2 -c4) for 10 s
#   bench/profile.sh api       # 50k groups x 20 series, then 3x GET /api/v1/metrics and 3x GET /metrics
#   bench/profile.sh restore   # 50k groups (PGW_PROFILE_GROUPS) durable, SIGTERM, profile the restart
#
# Output: /tmp/pgw-profile-<mode>/{perf.data,report.txt} (flat: self time by symbol, plus the
# same grouped by crate). Loopback only; every step is bounded by `timeout`.
set -euo pipefail
mode=${1:?usage: profile.sh push|large|api|restore}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=${PGW_BIN:-$root/target/release/pushgateway}
lua=${PGW_LUA:-$root/../shared/bench/pgw.lua}
[ -e "$lua" ] || lua=$root/../../shared/bench/pgw.lua   # from a worktree under /work/wt
groups=${PGW_PROFILE_GROUPS:-50000}
out=/tmp/pgw-profile-$mode
rm -rf "$out"; mkdir -p "$out"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT

start() { # extra flags...
  "$bin" --web.listen-address=127.0.0.1:$port "$@" >"$out/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 3000); do
    curl -fs -o /dev/null "$url/-/ready" && return 0
    sleep 0.01
  done
  echo "server not ready" >&2; exit 1
}
preload() {
  timeout 600 wrk -t2 -c32 -d600s -s "$here/scale.lua" "$url" -- groups="$groups" series=20 threads=2 \
    >"$out/preload.txt" 2>&1 &
  local w=$!
  # count-bounded: stop wrk once both threads printed SCALE_DONE
  for _ in $(seq 1 6000); do
    [ "$(grep -c SCALE_DONE "$out/preload.txt" || true)" -ge 2 ] && break
    sleep 0.1
  done
  kill -INT $w 2>/dev/null || true; wait $w 2>/dev/null || true
}
record() { # seconds
  timeout $(( $1 + 30 )) perf record -e cpu-clock -F 1999 -g -p "$pid" -o "$out/perf.data" -- sleep "$1" \
    >"$out/perf.log" 2>&1 || true
}
report() {
  perf report -i "$out/perf.data" --no-children --sort symbol --stdio 2>/dev/null \
    | grep -v '^$' | grep -E '^ +[0-9]' | head -80 >"$out/report.txt"
  perf report -i "$out/perf.data" --no-children --sort dso --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' | head -20 >"$out/dso.txt"
  echo "== $out/report.txt (self time by symbol)"; head -40 "$out/report.txt"
  echo "== $out/dso.txt"; cat "$out/dso.txt"
}

case $mode in
  push)
    start --persistence.file=
    timeout 60 wrk -t2 -c32 -d2s -s "$lua" "$url" -- mode=small groups=1000 threads=2 >/dev/null
    timeout 60 wrk -t2 -c32 -d12s -s "$lua" "$url" -- mode=small groups=1000 threads=2 >"$out/wrk.txt" 2>&1 &
    sleep 1; record 10; wait || true
    grep -E 'Requests/sec|PGWB_RESULT' "$out/wrk.txt" | cut -c1-200 || true
    ;;
  large)
    start --persistence.file=
    timeout 60 wrk -t2 -c4 -d12s -s "$lua" "$url" -- mode=large groups=8 threads=2 >"$out/wrk.txt" 2>&1 &
    sleep 1; record 10; wait || true
    ;;
  api)
    start --persistence.file=
    preload
    record 60 &
    rec=$!
    sleep 1
    for _ in 1 2 3; do curl -s -o /dev/null -w 'api %{time_total}s %{size_download}B\n' "$url/api/v1/metrics"; done
    for _ in 1 2 3; do curl -s -o /dev/null -w 'scrape %{time_total}s %{size_download}B\n' "$url/metrics"; done
    kill -INT "$(pgrep -f "perf record -e cpu-clock -F 1999 -g -p $pid")" 2>/dev/null || true
    wait $rec || true
    ;;
  restore)
    start --persistence.file="$out/data"
    preload
    kill -TERM "$pid"; wait "$pid" || true
    t0=$(date +%s.%N)
    perf record -e cpu-clock -F 1999 -g -o "$out/perf.data" -- "$bin" --web.listen-address=127.0.0.1:$port \
      --persistence.file="$out/data" >"$out/server2.log" 2>&1 &
    for _ in $(seq 1 30000); do curl -fs -o /dev/null "$url/-/ready" && break; sleep 0.005; done
    echo "ready after $(echo "$(date +%s.%N) - $t0" | bc) s (under perf)"
    pkill -TERM -f "persistence.file=$out/data" || true  # only the server we started on this file
    sleep 2
    ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
report
