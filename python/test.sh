#!/usr/bin/env bash
# Builds the usagetap wheel into a fresh virtual environment and runs the Python checks:
# pytest on python/tests (corpus, streaming splits, errors, threads, the Azure Functions example)
# and mypy.stubtest on the compiled module. Run from anywhere; needs python3 3.11 or 3.12 (the
# pinned test tools' range; the wheel itself supports 3.9 and later), cargo,
# ../shared/corpus/dev.jsonl beside the repo, and package registries only (PyPI, crates.io).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/target/py-venv"
WHEELS="$ROOT/target/wheels"
export CARGO_TARGET_DIR="$ROOT/target/python-build"

echo "== fresh venv at $VENV ($("$PYTHON" --version))"
# maturin, pytest, hypothesis, mypy, azure-functions, tiktoken and what they need, pinned.
PYTHON="$PYTHON" bash "$ROOT/python/venv.sh" "$VENV"
VPY="$VENV/bin/python"

echo "== maturin build (dev profile: dependencies and the core are optimised, see python/Cargo.toml)"
rm -f "$WHEELS"/usagetap-*.whl
(cd python && "$VENV/bin/maturin" build --out "$WHEELS")
shopt -s nullglob
wheels=("$WHEELS"/usagetap-*.whl)
if [ "${#wheels[@]}" -ne 1 ]; then
    echo "expected exactly one wheel in $WHEELS, found ${#wheels[@]}" >&2
    exit 1
fi
"$VPY" -m pip install --quiet --no-deps --force-reinstall "${wheels[0]}"

# tiktoken cannot download its vocabularies here: the comparison test reads o200k_base from the
# copy the tiktoken-rs crate ships.
USAGETAP_O200K_VOCAB="$(cargo metadata --format-version 1 --manifest-path python/Cargo.toml |
    "$VPY" -c 'import json, os, sys
pkgs = json.load(sys.stdin)["packages"]
p = next(p for p in pkgs if p["name"] == "tiktoken-rs")
print(os.path.join(os.path.dirname(p["manifest_path"]), "assets", "o200k_base.tiktoken"))')"
export USAGETAP_O200K_VOCAB

echo "== pytest"
# Run outside the source tree so `import usagetap` can only find the installed wheel.
"$VPY" -m pytest "$ROOT/python/tests" -p no:cacheprovider -q

echo "== mypy.stubtest"
"$VPY" -m mypy.stubtest usagetap._usagetap --allowlist "$ROOT/python/stubtest-allowlist.txt"
"$VPY" -m mypy --strict --python-version 3.10 "$ROOT/examples/azure-functions/chargeback.py"
