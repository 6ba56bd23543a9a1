#!/usr/bin/env bash
# Runs every test: Rust (core, CLI, C ABI crate), the CLI contract, the C and C# hosts, and the
# Python wheel. Installs what it needs (apt and pip packages) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
stages=0
stage() { stages=$((stages + 1)); echo "== $*"; }

if [ ! -f ../shared/corpus/dev.jsonl ] && [ -z "${USAGETAP_CORPUS:-}" ]; then
  echo "error: the recorded corpus is expected at ../shared/corpus/dev.jsonl (or set USAGETAP_CORPUS)" >&2
  exit 1
fi
export USAGETAP_CORPUS="${USAGETAP_CORPUS:-$(cd .. && pwd)/shared/corpus/dev.jsonl}"

# True when the toolchain has `cargo $1` (installing the rustup component $2 if it can); says
# so and is false when it has not, so a missing optional component skips its check, not the run.
component() {
  cargo "$1" --version >/dev/null 2>&1 || rustup component add "$2" >/dev/null 2>&1 ||
    { echo "$2 is not available and could not be installed: not checked" >&2; return 1; }
}

stage "Rust formatting (rustfmt) of every crate"
if component fmt rustfmt; then
  cargo fmt --all -- --check
  (cd python && cargo fmt -- --check)
  (cd fuzz && cargo fmt -- --check)
fi

stage "Rust lints (clippy, warnings denied) of every crate"
# The deny(clippy::...) attributes of the crates are only enforced where clippy runs.
if component clippy clippy; then
  cargo clippy --workspace --all-targets --locked -q -- -D warnings
  (cd python && CARGO_TARGET_DIR="$PWD/../target/python-build" cargo clippy --all-targets --locked -q -- -D warnings)
  # The fuzz targets use the core's fuzzing-only hooks (`--cfg fuzzing`, as cargo-fuzz builds).
  (cd fuzz && RUSTFLAGS="--cfg fuzzing" RUSTC_BOOTSTRAP=1 cargo clippy --all-targets --locked -q -- -D warnings)
fi

stage "Rust: unit, corpus, split-invariance and doc tests"
cargo test --workspace --locked

stage "API docs build without warnings (cargo doc)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked -q

stage "Benches compile"
cargo bench -p usagetap-benches --locked --no-run

stage "CLI contract: --feed-chunk N gives the same records as one piece"
cargo build --release --locked -p usagetap-cli
bin=target/release/usagetap
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" meter --reconcile "$USAGETAP_CORPUS" > "$tmp/whole.jsonl"
for n in 1 7 4096; do
  "$bin" meter --reconcile --feed-chunk "$n" "$USAGETAP_CORPUS" > "$tmp/split.jsonl"
  cmp "$tmp/whole.jsonl" "$tmp/split.jsonl"
done
lines_in=$(grep -c . "$USAGETAP_CORPUS")
lines_out=$(wc -l < "$tmp/whole.jsonl")
[ "$lines_in" = "$lines_out" ] || { echo "records lost: $lines_in in, $lines_out out" >&2; exit 1; }
printf '{"id":"bad-1","response_body":5}\nnot json\n{"id":"ok","response_body":"data: [DONE]\\n\\n"}\n' \
  | "$bin" meter > "$tmp/bad.jsonl"
[ "$(wc -l < "$tmp/bad.jsonl")" = 3 ]
grep -q '"id":"bad-1".*"status":"error"' "$tmp/bad.jsonl"
for c in meter chargeback count encoding; do
  help=$("$bin" "$c" --help)
  grep -q "usagetap chargeback" <<<"$help" || { echo "$c --help shows no usage" >&2; exit 1; }
done
# A reader that stops early (head, grep -q) ends the run quietly with status 0, never a panic.
quiet_when_closed() {
  "$bin" "$@" 2> "$tmp/pipe.err" | head -c 1 > /dev/null && [ ! -s "$tmp/pipe.err" ] ||
    { echo "usagetap $1 | head -c 1: $(head -c 300 "$tmp/pipe.err")" >&2; exit 1; }
}
quiet_when_closed meter "$USAGETAP_CORPUS"
quiet_when_closed --help
echo "cli: $lines_out records, identical for --feed-chunk 1, 7, 4096; bad lines give error records; --help on every command; closed pipes end quietly"

stage "CLI chargeback on the APIM samples: no raw subscription key in any output"
for fmt in table csv json; do
  USAGETAP_CONSUMER_SECRET=ci-secret "$bin" chargeback --format "$fmt" --prices prices/example-prices.json samples/ > "$tmp/ledger.$fmt" 2>&1
done
keys=$(python3 -c 'import json,sys; print("\n".join(sorted({json.loads(l)["appSubscriptionKey"] for l in open("samples/apim-events.jsonl") if l.strip().endswith("}")})))')
for k in $keys; do
  if grep -rq -- "$k" "$tmp"/ledger.*; then echo "raw subscription key leaked into chargeback output" >&2; exit 1; fi
  if grep -q -- "${k:0:12}" "$tmp"/ledger.*; then echo "part of a raw subscription key leaked" >&2; exit 1; fi
done
python3 - "$tmp/ledger.json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
keys = {"consumer", "model", "deployment", "day", "requests", "prompt_tokens", "completion_tokens",
        "total_tokens", "cached_tokens", "reasoning_tokens", "cost"}
assert rows and all(keys <= set(r) for r in rows), "ledger rows lack keys"
assert sum(r["requests"] for r in rows) == 40, sum(r["requests"] for r in rows)
print(f"chargeback: {len(rows)} ledger rows, 40 events, no key in any output")
PY

stage "C ABI: header drift, Rust tests, C test under valgrind and ASan, C# host"
bash ffi/test.sh

stage "Python wheel: build into a fresh venv, pytest, stubtest"
bash python/test.sh

stage "Fuzz targets, 20 s each (run at length: scripts/fuzz.sh 600)"
# A fixed seed: this gate explores the same inputs on every run (see scripts/fuzz.sh).
FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}" FUZZ_ARGS="${FUZZ_ARGS:--seed=1}" \
  bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

# Every stage above exits the script on failure, so reaching here means all passed.
echo "test stages: ${stages} passed, 0 failed"
