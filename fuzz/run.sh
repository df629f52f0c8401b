#!/usr/bin/env bash
# Bounded coverage-guided fuzzing of every target (CI): `fuzz/run.sh [seconds-per-target]`.
#
# Installs cargo-fuzz if missing, builds all targets with libFuzzer on stable Rust (no
# sanitizer: everything fuzzed is safe Rust, and `-Zsanitizer` would need nightly), replays the
# committed regression inputs and seed corpora, then fuzzes each target for the given time
# (default 20 s). Exits non-zero if any target crashed; the crashing input is left in
# fuzz/artifacts/<target>/ (see README.md for how to turn it into a regression test).
#
# Environment: FUZZ_TARGETS="a b" runs only those targets; extra libFuzzer flags can be given
# in FUZZ_ARGS (e.g. FUZZ_ARGS="-jobs=2 -workers=2").
set -euo pipefail

secs="${1:-20}"
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# Resolve dependencies to the versions the main workspace uses (the fuzz crate has its own
# workspace and lock file, which is not committed).
if [ ! -f Cargo.lock ] && [ -f ../Cargo.lock ]; then
    cp ../Cargo.lock Cargo.lock
fi

# -a: debug assertions and overflow checks on, so arithmetic overflow is a crash too.
build_flags=(--sanitizer none -a)

echo "== building fuzz targets"
cargo fuzz build "${build_flags[@]}"

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
failed=()
for t in $targets; do
    mkdir -p "corpus-gen/$t" "regressions/$t" "corpus/$t"
    echo "== $t: replaying regressions/$t and corpus/$t"
    if ! cargo fuzz run "${build_flags[@]}" "$t" "regressions/$t" "corpus/$t" -- -runs=0; then
        failed+=("$t (regression)")
        continue
    fi
    echo "== $t: fuzzing for ${secs}s"
    # New inputs go to corpus-gen/ (first directory, git-ignored); the seeds stay read-only.
    # shellcheck disable=SC2086
    if ! cargo fuzz run "${build_flags[@]}" "$t" "corpus-gen/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        ${FUZZ_ARGS:-}; then
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "FUZZING FAILED: ${failed[*]} (crashing inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "== fuzzing: all targets passed"
