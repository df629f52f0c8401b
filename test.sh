#!/usr/bin/env bash
# The project's one test command (run from anywhere): formatting, lints, unit and
# integration tests, the black-box conformance suite, and the end-to-end tests.
#   ./test.sh
# Environment:
#   PYTHON               python to run pytest with (default python3)
#   PGW_CONFORMANCE_DIR  black-box conformance suite (default ../shared/conformance;
#                        skipped when absent, e.g. on CI)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

step() { printf '\n== %s ==\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "cargo build --release"
cargo build --release --locked
BIN="$PWD/target/release/pushgateway"

CONF=${PGW_CONFORMANCE_DIR:-../shared/conformance}
# The suite lives beside the project; a copy is vendored for machines without it.
[ -d "$CONF" ] || CONF=tests/conformance
if [ -d "$CONF" ]; then
  step "conformance suite ($CONF)"
  # --web.config.file (TLS/basic auth) is not implemented: deselect its tests.
  # Node ids are relative to the suite's rootdir (its own pytest.ini), so the
  # deselect argument is the bare file name; a path such as
  # ../shared/conformance/test_web_config.py would silently deselect nothing.
  PGW_CMD="$BIN" "$PY" -m pytest -q "$CONF" --deselect test_web_config.py
else
  echo "conformance suite not found at $CONF: skipped"
fi

step "alerting rules (promtool check rules)"
PROMTOOL=${PROMTOOL:-promtool}
if command -v "$PROMTOOL" >/dev/null 2>&1; then
  "$PROMTOOL" check rules examples/*alerts*.yml
else
  echo "promtool not found: install the prometheus package (.ci/run does)" >&2
  exit 1
fi

step "end-to-end tests (tests/e2e)"
PGW_BIN="$BIN" "$PY" -m pytest -q tests/e2e

echo
echo "all tests passed"
