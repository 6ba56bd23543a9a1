#!/usr/bin/env bash
# Creates a fresh virtual environment at $1 with the pinned pip and the pinned tools of
# python/requirements-test.txt (maturin, pytest, tiktoken, ...). Shared by python/test.sh and
# the benches that build a release wheel, so both run the same tool versions. The venv keeps a
# copy of the requirements it was made from: a venv without it is incomplete, and a venv whose
# copy differs is stale.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:?usage: python/venv.sh DIR}"
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))'; then
    echo "python/venv.sh: the pinned tools need Python 3.11 or 3.12, found $("$PYTHON" --version 2>&1);" \
        "set PYTHON to one" >&2
    exit 1
fi
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet pip==26.3
"$VENV/bin/python" -m pip install --quiet -r "$ROOT/python/requirements-test.txt"
cp "$ROOT/python/requirements-test.txt" "$VENV/requirements-test.txt"
