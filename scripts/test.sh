#!/usr/bin/env bash
# Runs every test: Rust (core, CLI, C ABI crate), the CLI contract, the C and C# hosts, and the
# Python wheel. Installs what it needs (apt and pip packages) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f ../shared/corpus/dev.jsonl ] && [ -z "${USAGETAP_CORPUS:-}" ]; then
  echo "error: the recorded corpus is expected at ../shared/corpus/dev.jsonl (or set USAGETAP_CORPUS)" >&2
  exit 1
fi
export USAGETAP_CORPUS="${USAGETAP_CORPUS:-$(cd .. && pwd)/shared/corpus/dev.jsonl}"

echo "== Rust: unit, corpus, split-invariance and doc tests"
cargo test --workspace --locked

echo "== Benches compile"
cargo bench -p usagetap-benches --locked --no-run

echo "== CLI contract: --feed-chunk N gives the same records as one piece"
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
echo "cli: $lines_out records, identical for --feed-chunk 1, 7, 4096; bad lines give error records"

if [ -x ffi/test.sh ]; then
  echo "== C ABI: header drift, C test under valgrind, C# host"
  ffi/test.sh
fi

if [ -x python/test.sh ]; then
  echo "== Python wheel"
  python/test.sh
fi
