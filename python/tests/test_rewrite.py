"""Gateways: ensure_include_usage on real requests, UsageChunkFilter on real streams."""

from __future__ import annotations

import copy
import json
import random
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import usagetap
from conftest import Record, corpus, split, streams

# ---------------------------------------------------------------------------------------------
# An independent oracle, in Python: what each function must do.


def wants_rewrite(req: Any) -> Tuple[bool, bool]:
    """(changed, client_asked) for a parsed request: only streaming chat-completions (`messages`)
    and completions (`prompt`) objects take `include_usage`."""
    if not isinstance(req, dict) or req.get("stream") is not True:
        return False, False
    if "messages" not in req and "prompt" not in req:
        return False, False
    so = req.get("stream_options")
    asked = isinstance(so, dict) and so.get("include_usage") is True
    return not asked, asked


def with_include_usage(req: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(req)
    so = out.get("stream_options")
    if isinstance(so, dict):
        so["include_usage"] = True
    else:
        out["stream_options"] = {"include_usage": True}
    return out


_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def sse_events(body: bytes) -> List[bytes]:
    """The stream's raw events, each with its lines and blank line exactly as sent (a last event
    without its blank line included as is): joined, they are the body again."""
    events, current = [], b""
    for m in _LINE.finditer(body):
        line = m.group()
        current += line
        if line in (b"\n", b"\r", b"\r\n"):
            events.append(current)
            current = b""
    if current:
        events.append(current)
    assert b"".join(events) == body
    return events


def is_usage_only(event: bytes) -> bool:
    data = [
        line[5:][1:] if line[5:].startswith(b" ") else line[5:]
        for line in re.split(rb"\r\n|\r|\n", event)
        if line.startswith(b"data:")
    ]
    try:
        chunk = json.loads(b"\n".join(data))
    except ValueError:
        return False
    return isinstance(chunk, dict) and chunk.get("choices") == [] and chunk.get("usage") is not None


def usage_streams() -> List[Record]:
    """Every corpus chat-completions stream that ends with the service's usage chunk."""
    return [r for r in streams() if r["endpoint"] == "chat.completions" and r["reported_usage"]]


def without_usage(body: bytes) -> bytes:
    """The stream with its one usage-only event removed, every other byte as it was."""
    events = sse_events(body)
    usage = [i for i, e in enumerate(events) if is_usage_only(e)]
    assert len(usage) == 1, usage
    return b"".join(e for i, e in enumerate(events) if i != usage[0])


def filtered(body: bytes, pieces: List[bytes], max_event_bytes: Optional[int] = None) -> Tuple[bytes, int]:
    f = usagetap.UsageChunkFilter() if max_event_bytes is None else usagetap.UsageChunkFilter(max_event_bytes)
    out = [f.feed(p) for p in pieces]
    out.append(f.finish())
    assert f.finished
    assert b"".join(pieces) == body
    return b"".join(out), f.removed


def random_pieces(body: bytes, rng: random.Random, max_piece: int) -> List[bytes]:
    pieces, i = [], 0
    while i < len(body):
        step = rng.randint(0, max_piece)  # empty pieces too
        pieces.append(body[i : i + step])
        i += step
    return pieces


# ---------------------------------------------------------------------------------------------
# ensure_include_usage


def test_corpus_requests_rewritten_exactly(records: List[Record]) -> None:
    """Every corpus request, compact and pretty-printed: a rewritten body is valid JSON equal to
    the original plus include_usage=true (key order kept, one span changed); any other body comes
    back byte-identical (the same object when it was bytes)."""
    changed = unchanged = asked = responses_streams = 0
    for r in records:
        req = r["request"]
        want_changed, want_asked = wants_rewrite(req)
        compact = json.dumps(req, ensure_ascii=False).encode()
        pretty = json.dumps(req, ensure_ascii=False, indent=2).encode()
        for body in (compact, pretty):
            out = usagetap.ensure_include_usage(body)
            assert isinstance(out.body, bytes) and type(out) is usagetap.RewriteResult
            assert (out.changed, out.client_asked) == (want_changed, want_asked), r["id"]
            if not want_changed:
                assert out.body is body, r["id"]
                unchanged += 1
                continue
            changed += 1
            after = json.loads(out.body)
            want = with_include_usage(req)
            assert after == want, r["id"]
            assert list(after) == list(want), r["id"]
            # Only one span differs: a common prefix and suffix cover everything else.
            pre = next((i for i, (x, y) in enumerate(zip(body, out.body)) if x != y), len(body))
            suf = 0
            while suf < len(body) - pre and body[-1 - suf] == out.body[-1 - suf]:
                suf += 1
            old_mid, new_mid = body[pre : len(body) - suf], out.body[pre : len(out.body) - suf]
            assert len(old_mid) <= 5 and b"tru" in new_mid and len(new_mid) <= 40, (r["id"], old_mid, new_mid)
        # A dict is serialized with json.dumps in its own key order, then rewritten.
        assert usagetap.ensure_include_usage(req) == usagetap.ensure_include_usage(compact), r["id"]
        asked += want_asked
        if r["endpoint"] == "responses" and req.get("stream") is True:
            assert not want_changed
            responses_streams += 1
    print(f"rewritten {changed}, unchanged {unchanged} ({asked} requests had asked for usage)")
    assert changed >= 2 * 60 and unchanged >= 2 * 2500
    assert asked >= 250 and responses_streams >= 250


def test_rewrite_input_types_and_odd_bodies() -> None:
    text = '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"é"}]}'
    want = usagetap.ensure_include_usage(text.encode())
    assert want.changed and not want.client_asked
    assert want.body == text[:-1].encode() + b',"stream_options":{"include_usage":true}}'
    for body in (text, bytearray(text.encode()), memoryview(text.encode())):
        assert usagetap.ensure_include_usage(body) == want, type(body)
    for body in (b"", b"not json", b"[1, 2]", b'{"stream":true', b'{"stream":true,"input":"hi"}', b"null"):
        out = usagetap.ensure_include_usage(body)
        assert (out.body, out.changed, out.client_asked) == (body, False, False), body
    asked = b'{"stream":true,"prompt":"x","stream_options":{"include_usage":true}}'
    assert usagetap.ensure_include_usage(asked).client_asked
    for bad in (None, 1, ["x"]):
        with pytest.raises(TypeError):
            usagetap.ensure_include_usage(bad)  # type: ignore[arg-type]


def test_rewrite_result_object() -> None:
    out = usagetap.ensure_include_usage({"stream": True, "messages": []})
    assert repr(out) == (
        "RewriteResult(body=b'{\"stream\": true, \"messages\": [],"
        "\"stream_options\":{\"include_usage\":true}}', changed=True, client_asked=False)"
    )
    assert out == usagetap.ensure_include_usage(b'{"stream": true, "messages": []}')
    assert out != usagetap.ensure_include_usage(b'{"stream": false, "messages": []}')
    with pytest.raises(AttributeError):
        out.changed = False  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# UsageChunkFilter


def test_filter_on_every_usage_stream_and_the_meter_still_reports() -> None:
    """Every corpus chat stream with a usage chunk, whole and in seeded random pieces: exactly one
    event removed, every other byte as it was; the meter, reading the original stream, reports."""
    rng = random.Random(11)
    n = 0
    for r in usage_streams():
        body = r["response_body"].encode()
        want = without_usage(body)
        for pieces in ([body], random_pieces(body, rng, 64)):
            out, removed = filtered(body, pieces)
            assert removed == 1, r["id"]
            assert out == want, r["id"]
        rec = usagetap.meter(r["request"], body)
        assert (rec.source, rec.status) == ("reported", "complete"), r["id"]
        # What the client got carries no usage: metered alone, it is counted instead.
        assert usagetap.meter(r["request"], want).source == "computed", r["id"]
        n += 1
    assert n >= 250


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32), max_piece=st.sampled_from([8, 64, 1024, 1 << 16]))
def test_filter_on_every_usage_stream_in_hypothesis_pieces(seed: int, max_piece: int) -> None:
    rng = random.Random(seed)
    for r in usage_streams():
        body = r["response_body"].encode()
        out, removed = filtered(body, random_pieces(body, rng, max_piece))
        assert removed == 1, r["id"]
        assert out == without_usage(body), r["id"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(min_value=0),
    cuts=st.lists(st.integers(min_value=0), max_size=40),
    line_end=st.sampled_from(["\n", "\r\n", "\r"]),
    kinds=st.lists(st.sampled_from(["bytes", "bytearray", "memoryview", "str"]), min_size=1, max_size=3),
)
def test_filter_in_any_pieces_with_any_line_ends(index: int, cuts: List[int], line_end: str, kinds: List[str]) -> None:
    pool = usage_streams()
    r = pool[index % len(pool)]
    body = r["response_body"].replace("\n", line_end).encode()
    pieces = split(body, cuts)
    f = usagetap.UsageChunkFilter()
    out = []
    for j, piece in enumerate(pieces):
        kind = kinds[j % len(kinds)]
        if kind == "str":
            try:
                arg: Any = piece.decode()
            except UnicodeDecodeError:  # a cut inside a UTF-8 sequence: feed the bytes
                arg = piece
        else:
            arg = bytearray(piece) if kind == "bytearray" else memoryview(piece) if kind == "memoryview" else piece
        out.append(f.feed(arg))
    out.append(f.finish())
    assert f.removed == 1
    assert b"".join(out) == without_usage(body)


def test_filter_passes_over_long_events_unread() -> None:
    """An event that outgrows max_event_bytes while held (fed in pieces) goes through unread."""
    r = usage_streams()[0]
    body = r["response_body"].encode()
    usage_event = next(e for e in sse_events(body) if is_usage_only(e))
    pieces = [body[i : i + 16] for i in range(0, len(body), 16)]
    assert filtered(body, pieces, max_event_bytes=len(usage_event) - 17) == (body, 0)
    assert filtered(body, pieces, max_event_bytes=len(usage_event)) == (without_usage(body), 1)
    # Whole in one piece, nothing is held: the limit never applies.
    assert filtered(body, [body], max_event_bytes=1) == (without_usage(body), 1)


def test_filter_protocol_and_errors() -> None:
    f = usagetap.UsageChunkFilter()
    assert repr(f) == "<usagetap.UsageChunkFilter open removed=0>"
    assert f.feed(b'data: {"choices":[],"usage":{"prompt_tokens":1,') == b""
    assert f.feed('"completion_tokens":0,"total_tokens":1}}\n\ndata: [DO') == b""
    assert f.feed(bytearray(b"NE]\n\n")) == b"data: [DONE]\n\n"
    assert f.feed(b"data: partial") == b""
    assert f.finish() == b"data: partial"
    assert (f.removed, f.finished) == (1, True)
    assert repr(f) == "<usagetap.UsageChunkFilter finished removed=1>"
    for call in (lambda: f.feed(b"x"), f.finish):
        with pytest.raises(usagetap.MeterFinishedError) as info:
            call()
        assert info.value.kind == "finished"
    for bad in (0, -1):
        with pytest.raises(usagetap.InvalidOptionsError) as err:
            usagetap.UsageChunkFilter(bad)
        assert err.value.kind == "invalid_options"
    assert usagetap.UsageChunkFilter(max_event_bytes=1).feed(b"data: x\n\n") == b"data: x\n\n"
    with pytest.raises(TypeError):
        usagetap.UsageChunkFilter("8")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        usagetap.UsageChunkFilter().feed(None)  # type: ignore[arg-type]


def test_filters_in_many_threads() -> None:
    """Filters on many threads give the serial results; one filter shared by threads serializes
    its calls (whole events fed from 8 threads: every usage chunk removed, the rest all there)."""

    def run(r: Record) -> Tuple[bytes, int]:
        body = r["response_body"].encode()
        return filtered(body, [body[i : i + 97] for i in range(0, len(body), 97)])

    sample = usage_streams()
    serial = [run(r) for r in sample]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(run, sample)) == serial

    events = [e for r in sample[:40] for e in sse_events(r["response_body"].encode())]
    f = usagetap.UsageChunkFilter()
    outs: List[bytes] = []
    lock = threading.Lock()

    def feed(e: bytes) -> None:
        o = f.feed(e)
        with lock:
            outs.append(o)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(feed, events))
    assert f.finish() == b""
    assert f.removed == 40
    assert sorted(o for o in outs if o) == sorted(e for e in events if not is_usage_only(e))
