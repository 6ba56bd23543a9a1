"""Shared fixtures: the recorded corpus (../shared/corpus/dev.jsonl from the repo root)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import DirectoryBasedExampleDatabase

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("USAGETAP_CORPUS", REPO.parent / "shared" / "corpus" / "dev.jsonl"))

Record = Dict[str, Any]

# Hypothesis keeps its files under target/ (ignored), not in the source tree.
set_hypothesis_home_dir(str(REPO / "target" / "hypothesis"))
settings.register_profile(
    "usagetap", database=DirectoryBasedExampleDatabase(str(REPO / "target" / "hypothesis"))
)
settings.load_profile("usagetap")


def load_corpus() -> List[Record]:
    assert CORPUS.is_file(), f"corpus not found at {CORPUS} (set USAGETAP_CORPUS)"
    with CORPUS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


_CACHE: List[Record] = []


def corpus() -> List[Record]:
    if not _CACHE:
        _CACHE.extend(load_corpus())
    return _CACHE


def streams() -> List[Record]:
    return [r for r in corpus() if r["stream"]]


def expected_usage(u: Record) -> Dict[str, Any]:
    """The service's usage in the record's names (Responses API input/output mapped)."""
    pd = u.get("prompt_tokens_details") or u.get("input_tokens_details") or {}
    cd = u.get("completion_tokens_details") or u.get("output_tokens_details") or {}
    return {
        "prompt_tokens": u.get("prompt_tokens", u.get("input_tokens")),
        "completion_tokens": u.get("completion_tokens", u.get("output_tokens")),
        "total_tokens": u.get("total_tokens"),
        "cached_tokens": pd.get("cached_tokens"),
        "reasoning_tokens": cd.get("reasoning_tokens"),
    }


def split(data: bytes, cuts: List[int]) -> List[bytes]:
    """`data` cut at each of `cuts` (taken modulo its length + 1, so any integers will do): the
    pieces, empty ones included, join back to `data`."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points + [len(data)]:
        pieces.append(data[last:p])
        last = p
    return pieces


@pytest.fixture(scope="session")
def records() -> List[Record]:
    return corpus()


def local_tiktoken_o200k(vocab: str) -> Any:
    """tiktoken's own o200k_base (pattern, special tokens), with its vocabulary read from the local
    file `vocab` instead of downloaded; tiktoken still checks the file against its expected hash."""
    import tiktoken
    import tiktoken_ext.openai_public as public
    from tiktoken.load import load_tiktoken_bpe

    def local(url: str, expected_hash: Any = None) -> Any:
        assert url.endswith("/o200k_base.tiktoken"), url
        return load_tiktoken_bpe(vocab, expected_hash=expected_hash)

    original = public.load_tiktoken_bpe
    public.load_tiktoken_bpe = local
    try:
        spec = public.o200k_base()
    finally:
        public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**spec)
