#!/usr/bin/env bash
# Fuzzes every parser of ema-core with cargo-fuzz (libFuzzer), one target after another, for
# SECONDS each (default 60), and prints per target: executions, execs/s, coverage, crashes.
# Exits non-zero when any target crashed (the input is in fuzz/artifacts/<target>/).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      docs/fuzzing.md has the targets and invariants
#   scripts/fuzz.sh --build-only               installs and builds, runs nothing (CI builds while
#                                              other tests run; scripts/test.sh)
#
# Installs what it needs, idempotently: cargo-fuzz (from crates.io, --locked). It builds with the
# nightly toolchain when rustup has one, else with the stable one and RUSTC_BOOTSTRAP=1 (cargo
# fuzz needs -Z flags; no toolchain is downloaded). Environment:
#   FUZZ_TARGET_DIR  cargo target directory of the fuzz build (default fuzz/target)
#   FUZZ_SANITIZER   none (default) or address; see docs/fuzzing.md for why none is the default
#   FUZZ_ARGS        extra libFuzzer flags, e.g. "-jobs=2 -workers=2"
#   FUZZ_NEW_CRASHES_FATAL=0
#                    a crash found by the timed exploration is reported, not fatal; replaying the
#                    seeds and fuzz/regressions/ (done first, input by input) stays fatal. CI sets it,
#                    so a run is red for a regression, not for the luck of a 15 s search
#   FUZZ_DEV=1       build without optimisation (cargo fuzz --dev): a third of the build time, a
#                    fraction of the speed; what CI's short runs use
set -euo pipefail
cd "$(dirname "$0")/.."

build_only=0
if [ "${1:-}" = "--build-only" ]; then
    build_only=1
    shift
fi
seconds=${1:-60}
shift || true
profile=()
if [ "${FUZZ_DEV:-0}" = 1 ]; then
    profile=(--dev)
fi
sanitizer=${FUZZ_SANITIZER:-none}
target_dir=${FUZZ_TARGET_DIR:-$PWD/fuzz/target}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    cargo_fuzz=(cargo +nightly fuzz)
else
    # Stable rustc accepts the -Z flags cargo fuzz passes when bootstrapping is allowed.
    echo "fuzz.sh: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
    cargo_fuzz=(cargo fuzz)
fi

python3 fuzz/make-seeds.py >&2

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${cargo_fuzz[@]}" list)
fi

build_start=$(date +%s)
"${cargo_fuzz[@]}" build "${profile[@]}" --sanitizer "$sanitizer" --target-dir "$target_dir" >&2
echo "fuzz.sh: built ${#targets[@]} targets in $(($(date +%s) - build_start)) s" >&2
if [ $build_only = 1 ]; then
    exit 0
fi

failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log="fuzz/artifacts/$t/last-run.log"
    echo "fuzz.sh: $t for ${seconds}s" >&2
    touch "fuzz/artifacts/$t/.run-start"
    # Replay: every seed and kept crash input, one by one (deterministic).
    replay=()
    for dir in "fuzz/seeds/$t" "fuzz/regressions/$t"; do
        if [ -d "$dir" ]; then
            for f in "$dir"/*; do [ -f "$f" ] && replay+=("$f"); done
        fi
    done
    if [ ${#replay[@]} -gt 0 ] && ! "${cargo_fuzz[@]}" run "${profile[@]}" --sanitizer "$sanitizer" \
        --target-dir "$target_dir" "$t" "${replay[@]}" -- -timeout=30 -rss_limit_mb=2048 \
        >"fuzz/artifacts/$t/replay.log" 2>&1; then
        failed+=("$t")
        grep -m1 -A3 -E "panicked at|==ERROR|SUMMARY" "fuzz/artifacts/$t/replay.log" >&2 || tail -20 "fuzz/artifacts/$t/replay.log" >&2
        summary+=("$(printf '%-18s REPLAY FAILED (seeds or fuzz/regressions): fuzz/artifacts/%s/replay.log' "$t" "$t")")
        continue
    fi
    status=0
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    "${cargo_fuzz[@]}" run "${profile[@]}" --sanitizer "$sanitizer" --target-dir "$target_dir" "$t" \
        "fuzz/corpus/$t" "fuzz/seeds/$t" $(test -d "fuzz/regressions/$t" && echo "fuzz/regressions/$t") -- \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" ${FUZZ_ARGS:-} >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    crashes=$(find "fuzz/artifacts/$t" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) -newer "fuzz/artifacts/$t/.run-start" 2>/dev/null | wc -l || true)
    if [ "$status" -ne 0 ]; then
        [ "$crashes" -gt 0 ] || crashes=1
        grep -m1 -A3 -E "panicked at|==ERROR|SUMMARY" "$log" >&2 || tail -20 "$log" >&2
        if [ "${FUZZ_NEW_CRASHES_FATAL:-1}" = 1 ]; then
            failed+=("$t")
        else
            echo "fuzz.sh: WARNING: $t found a new crash (not fatal here; input in fuzz/artifacts/$t/)" >&2
        fi
    fi
    line=$(printf '%-18s runs %-11s execs/s %-7s cov %-6s ft %-6s corpus %-6s crashes %s' \
        "$t" "${runs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crashes")
    summary+=("$line")
    echo "$line"
done

echo
echo "fuzz.sh: ${seconds}s per target, sanitizer $sanitizer"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: CRASHED: ${failed[*]} (inputs and logs in fuzz/artifacts/<target>/)" >&2
    exit 1
fi
