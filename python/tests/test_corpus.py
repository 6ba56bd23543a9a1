"""The API on real recorded traffic: reported usage reproduced, streaming equals one-shot."""

from __future__ import annotations

import random
from typing import List

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import usagetap
from conftest import Record, corpus, expected_usage, split, streams


def test_reported_usage_reproduced(records: List[Record]) -> None:
    """Every record with reported usage: prompt/completion/total, cached and reasoning."""
    checked = 0
    mismatches = []
    for r in records:
        u = r["reported_usage"]
        if not u:
            continue
        rec = usagetap.meter(r["request"], r["response_body"])
        exp = expected_usage(u)
        got = {
            "prompt_tokens": rec.prompt_tokens,
            "completion_tokens": rec.completion_tokens,
            "total_tokens": rec.total_tokens,
            "cached_tokens": rec.cached_tokens,
            "reasoning_tokens": rec.reasoning_tokens,
        }
        for k, v in exp.items():
            if v is None:
                continue
            if got[k] != v:
                mismatches.append((r["id"], k, got[k], v))
        if exp["completion_tokens"] is None:  # embeddings: nothing to complete
            assert rec.completion_tokens == 0, r["id"]
        assert rec.source == "reported", r["id"]
        assert rec.reported is not None, r["id"]
        checked += 1
    assert not mismatches, mismatches[:20]
    assert checked == sum(1 for r in records if r["reported_usage"])
    assert checked >= 2900
    print(f"reported usage reproduced on {checked} records")


def test_records_without_usage_are_computed_and_flagged(records: List[Record]) -> None:
    n = 0
    for r in records:
        if r["reported_usage"]:
            continue
        rec = usagetap.meter(r["request"], r["response_body"])
        assert rec.source == "computed", r["id"]
        assert "no_usage_reported" in rec.flags, r["id"]
        assert rec.computed is not None
        assert rec.total_tokens == rec.prompt_tokens + rec.completion_tokens
        assert rec.prompt_tokens > 0 and rec.completion_tokens > 0, r["id"]
        n += 1
    assert n >= 60


def test_every_stream_in_random_pieces_equals_one_shot() -> None:
    """Each corpus stream, fed in seeded random pieces of 1..64 bytes, gives the one-shot record."""
    rng = random.Random(7)
    n = 0
    for r in streams():
        body = r["response_body"].encode("utf-8")
        whole = usagetap.meter(r["request"], body)
        m = usagetap.Meter(r["request"])
        i = 0
        while i < len(body):
            step = rng.randint(1, 64)
            m.feed(body[i : i + step])
            i += step
        assert m.finish() == whole, r["id"]
        n += 1
    assert n >= 570


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(min_value=0),
    cuts=st.lists(st.integers(min_value=0), max_size=40),
    kinds=st.lists(st.sampled_from(["bytes", "bytearray", "memoryview"]), min_size=1, max_size=3),
)
def test_streaming_meter_in_hypothesis_pieces_equals_one_shot(
    index: int, cuts: List[int], kinds: List[str]
) -> None:
    pool = streams()
    r = pool[index % len(pool)]
    body = r["response_body"].encode("utf-8")
    whole = usagetap.meter(r["request"], body, reconcile=True)
    with usagetap.Meter(r["request"], reconcile=True) as m:
        for j, piece in enumerate(split(body, cuts)):
            kind = kinds[j % len(kinds)]
            m.feed(bytearray(piece) if kind == "bytearray" else memoryview(piece) if kind == "memoryview" else piece)
    assert m.record == whole
    assert m.record.to_dict() == whole.to_dict()


@settings(max_examples=60, deadline=None)
@given(index=st.integers(min_value=0), cut=st.floats(min_value=0.05, max_value=0.95))
def test_cut_streams_are_flagged_truncated_never_raise(index: int, cut: float) -> None:
    """A stream cut short (e.g. APIM's 200 KB limit) gives a truncated record, not an error."""
    pool = [r for r in streams() if r["endpoint"] == "chat.completions"]
    r = pool[index % len(pool)]
    body = r["response_body"].encode("utf-8")
    cut_body = body[: max(1, int(len(body) * cut))]
    rec = usagetap.meter(r["request"], cut_body)
    assert rec.stream
    if b"[DONE]" not in cut_body:
        assert rec.status == "truncated", r["id"]
        assert "truncated" in rec.flags


def test_corpus_shape_is_what_the_tests_expect() -> None:
    rs = corpus()
    assert len(rs) == 2972
    assert sum(1 for r in rs if r["stream"]) == 578
