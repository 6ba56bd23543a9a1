#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20), two at a time, and prints the exec
# counts. Exits non-zero on any finding (crash, assertion, timeout, out-of-memory); the input
# that caused it is in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly flags
# (-Zsanitizer=address). cargo-fuzz is installed into target/tools when it is missing.
# FUZZ_JOBS (default 2) targets run at once; FUZZ_ARGS adds libFuzzer flags (the test command
# passes -seed=1, so its brief run explores the same inputs each time, a prefix of them on a
# slower machine, and a finding there reproduces; runs without it are random); FUZZ_SANITIZER
# (default address; none builds and runs faster: the core has no unsafe code, ASan watches the
# dependencies' unsafe code).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-20}
shift || true

export RUSTC_BOOTSTRAP=1
export PATH="$ROOT/target/tools/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz into target/tools" >&2
    cargo install cargo-fuzz --version 0.13.2 --locked --root "$ROOT/target/tools" >&2
fi

python3 fuzz/seed.py --max "${FUZZ_SEEDS:-400}" 2>/dev/null

TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    mapfile -t TARGETS < <(cargo fuzz list)
fi

SAN=${FUZZ_SANITIZER:-address}
echo "fuzz: building ${#TARGETS[@]} targets (release, debug assertions, sanitizer: $SAN)" >&2
start=$(date +%s)
cargo fuzz build --sanitizer "$SAN" >&2
echo "fuzz: built in $(( $(date +%s) - start )) s" >&2

BIN="$ROOT/fuzz/target/x86_64-unknown-linux-gnu/release"
LOGS="$ROOT/target/fuzz-logs"
mkdir -p "$LOGS"

run() {
    local t=$1 dict=
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    # Targets that read request or response JSON get the dictionary of its keys and odd values.
    if grep -qx "$t" fuzz/dict/targets; then dict=-dict=fuzz/dict/json.dict; fi
    # shellcheck disable=SC2086
    "$BIN/$t" "fuzz/corpus/$t" $dict \
        -max_total_time="$SECS" -max_len=65536 -timeout=20 -rss_limit_mb=2048 \
        -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 ${FUZZ_ARGS:-} \
        >"$LOGS/$t.log" 2>&1 && echo 0 >"$LOGS/$t.rc" || echo $? >"$LOGS/$t.rc"
}

JOBS=${FUZZ_JOBS:-2}
for t in "${TARGETS[@]}"; do
    rm -f "$LOGS/$t.rc"
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    run "$t" &
done
wait

failed=0
printf '%-16s %14s %10s  %s\n' target execs exec/s result
for t in "${TARGETS[@]}"; do
    if [ "$(cat "$LOGS/$t.rc" 2>/dev/null)" = 0 ]; then result=ok; else result=FINDING; failed=1; fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOGS/$t.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$LOGS/$t.log" | tail -1)
    printf '%-16s %14s %10s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$result"
    if [ "$result" != ok ]; then
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$LOGS/$t.log" | head -20 >&2 || true
        echo "  full log: $LOGS/$t.log" >&2
    fi
done
exit $failed
