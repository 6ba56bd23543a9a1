"""The Python face: input types, the record object, the streaming meter's protocol."""

from __future__ import annotations

import array
import json
import os
from typing import List

import pytest

import usagetap
from conftest import Record, corpus, local_tiktoken_o200k

DESIGN_FIELDS = [
    "endpoint", "model", "deployment", "encoding", "stream", "status", "source",
    "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens",
    "image_tokens", "reported", "computed", "choices", "flags", "response_id", "created",
    "system_fingerprint",
]  # fmt: skip


def first(pred) -> Record:  # type: ignore[no-untyped-def]
    return next(r for r in corpus() if pred(r))


@pytest.fixture(scope="module")
def chat() -> Record:
    return first(lambda r: r["endpoint"] == "chat.completions" and not r["stream"] and r["reported_usage"])


@pytest.fixture(scope="module")
def stream() -> Record:
    return first(lambda r: r["endpoint"] == "chat.completions" and r["stream"] and not r["reported_usage"])


def test_module_surface() -> None:
    assert isinstance(usagetap.__version__, str) and usagetap.__version__.count(".") == 2
    for name in usagetap.__all__:
        assert hasattr(usagetap, name), name
    assert usagetap.UsageRecord.__module__ == "usagetap._usagetap"


def test_every_input_type_gives_the_same_record(chat: Record, stream: Record) -> None:
    for r in (chat, stream):
        req_text = json.dumps(r["request"])
        body = r["response_body"]
        want = usagetap.meter(r["request"], body)
        requests = [r["request"], req_text, req_text.encode(), bytearray(req_text.encode()), memoryview(req_text.encode())]
        responses = [body, body.encode(), bytearray(body.encode()), memoryview(body.encode())]
        for req in requests:
            for resp in responses:
                assert usagetap.meter(req, resp) == want, (type(req), type(resp))
        # A memoryview that is not one contiguous run of bytes is copied whole.
        raw = body.encode()
        strided = memoryview(bytes(b for pair in zip(raw, raw) for b in pair))[::2]
        assert usagetap.meter(r["request"], strided) == want
        if len(raw) % 2 == 0:
            assert usagetap.meter(r["request"], memoryview(array.array("H", raw))) == want


def test_dict_request_keeps_key_order() -> None:
    """A dict is serialized in its own key order (tool schemas render in property order)."""
    r = first(lambda r: r["endpoint"] == "chat.completions" and "tools" in r["request"])
    as_text = json.dumps(r["request"], ensure_ascii=False)
    assert usagetap.count_prompt(r["request"]) == usagetap.count_prompt(as_text)
    assert usagetap.meter(r["request"], r["response_body"]) == usagetap.meter(as_text, r["response_body"])


def test_none_or_empty_request(chat: Record) -> None:
    a = usagetap.meter(None, chat["response_body"])
    b = usagetap.meter(b"", chat["response_body"])
    assert a == b
    assert a.prompt_tokens == chat["reported_usage"]["prompt_tokens"]


def test_record_api(chat: Record) -> None:
    rec = usagetap.meter(chat["request"], chat["response_body"])
    d = rec.to_dict()
    assert list(d)[: len(DESIGN_FIELDS)] == DESIGN_FIELDS
    assert d == json.loads(rec.to_json())
    for k in DESIGN_FIELDS:
        v = getattr(rec, k)
        assert (list(v) if k == "flags" else v) == d[k], k
    assert isinstance(rec.flags, tuple)
    # Nested values are fresh copies: mutating them leaves the record alone.
    assert rec.reported is not None
    rec.reported["prompt_tokens"] = -1
    rec.choices.append({})
    assert rec.to_dict() == d
    # Frozen.
    with pytest.raises(AttributeError):
        rec.prompt_tokens = 1  # type: ignore[misc]
    # Equality and hashing by content.
    again = usagetap.meter(chat["request"], chat["response_body"])
    assert rec == again and hash(rec) == hash(again) and len({rec, again}) == 1
    other = usagetap.meter(chat["request"], chat["response_body"], reconcile=True)
    assert rec != other
    assert rec != d and (rec == object()) is False
    text = repr(rec)
    assert text.startswith("UsageRecord(endpoint='chat.completions', ")
    assert f"prompt_tokens={rec.prompt_tokens}," in text and "source='reported'" in text


def test_options_reach_the_core(chat: Record, stream: Record) -> None:
    rec = usagetap.meter(None, chat["response_body"], deployment="chat-prod", endpoint="/openai/deployments/chat-prod/chat/completions?api-version=2024-10-21")
    assert rec.deployment == "chat-prod" and rec.endpoint == "chat.completions"
    rec = usagetap.meter(stream["request"], stream["response_body"], reconcile=True)
    assert rec.computed is not None and isinstance(rec.computed["flags"], list)
    # A deployment map resolves an unknown model name.
    body = (
        'data: {"id":"c","object":"chat.completion.chunk","model":"my-deploy","choices":[{"index":0,"delta":{"content":"Hello there"}}]}\n\n'
        "data: [DONE]\n\n"
    )
    plain = usagetap.meter(None, body)
    assert "unknown_model" in plain.flags
    mapped = usagetap.meter(None, body, deployments={"my-deploy": "gpt-35-turbo"})
    assert mapped.encoding == "cl100k_base" and "unknown_model" not in mapped.flags


def test_limits_reach_the_core(stream: Record) -> None:
    body = stream["response_body"]
    assert "line_too_long" not in usagetap.meter(stream["request"], body).flags
    small = usagetap.meter(stream["request"], body, limits={"max_line_bytes": 16})
    assert "line_too_long" in small.flags
    deep = '{"model":"gpt-4o","messages":[],"x":' + "[" * 10 + "]" * 10 + "}"
    with usagetap.Meter(deep, limits={"max_json_depth": 8}) as m:
        m.feed(body)
    assert m.record is not None and {"json_too_deep", "request_unparsed"} <= set(m.record.flags)
    with pytest.raises(usagetap.InvalidOptionsError, match="unknown limit"):
        usagetap.meter(None, body, limits={"max_lines": 1})
    for bad in [0, -1, -(2**70)]:
        with pytest.raises(usagetap.InvalidOptionsError, match="at least 1"):
            usagetap.meter(None, body, limits={"max_images": bad})
    # A limit past 64 bits is no limit at all, not an error.
    huge = usagetap.meter(stream["request"], body, limits={"max_line_bytes": 2**70})
    assert huge == usagetap.meter(stream["request"], body)
    with pytest.raises(TypeError):
        usagetap.meter(None, body, limits={"max_images": 1.5})


def test_image_sizes_price_http_images() -> None:
    # An http image is never fetched: a flagged estimate, unless the host supplies its size.
    url = "https://example.com/cat.png"
    request = {"model": "gpt-4o", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]}]}
    body = (
        'data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"A cat."}}]}\n\n'
        "data: [DONE]\n\n"
    )
    guessed = usagetap.meter(request, body)
    assert "image_size_unknown" in guessed.flags and "image_tokens_estimated" in guessed.flags
    sized = usagetap.meter(request, body, image_sizes={url: (512, 512)})
    assert sized.image_tokens == 255, sized  # gpt-4o, one tile: 85 + 170
    assert "image_size_unknown" not in sized.flags and "image_tokens_estimated" not in sized.flags
    assert sized.prompt_tokens == guessed.prompt_tokens - guessed.image_tokens + 255
    m = usagetap.Meter(request, image_sizes={url: (512, 512)})
    m.feed(body)
    assert m.finish() == sized
    assert usagetap.meter(request, body, image_sizes={url: [512, 512]}) == sized
    for bad in [(-1, 5), (5, 2**32), (2**70, 5)]:
        with pytest.raises(usagetap.InvalidOptionsError, match="from 0 to 4294967295"):
            usagetap.meter(request, body, image_sizes={url: bad})
    with pytest.raises(usagetap.InvalidOptionsError, match="width, height"):
        usagetap.meter(request, body, image_sizes={url: [512]})


def test_meter_protocol(stream: Record) -> None:
    body = stream["response_body"].encode()
    m = usagetap.Meter(stream["request"])
    assert not m.finished and m.record is None and "open" in repr(m)
    for i in range(0, len(body), 100):
        m.feed(body[i : i + 100])
    rec = m.finish()
    assert m.finished and m.record is rec and "finished" in repr(m)
    assert rec == usagetap.meter(stream["request"], body)
    assert rec.source == "computed" and "no_usage_reported" in rec.flags


def test_context_manager_finishes_even_when_the_block_raises(stream: Record) -> None:
    body = stream["response_body"].encode()
    with pytest.raises(ConnectionError):
        with usagetap.Meter(stream["request"]) as m:
            m.feed(body[: len(body) // 2])
            raise ConnectionError("client went away")
    assert m.record is not None and m.record.status == "truncated"
    # Finished inside the block: exit leaves the record alone.
    with usagetap.Meter(stream["request"]) as m2:
        m2.feed(body)
        rec = m2.finish()
    assert m2.record is rec


def test_unreadable_request_is_a_flag_not_an_error(chat: Record) -> None:
    rec = usagetap.meter(b"{not json", chat["response_body"])
    assert "request_unparsed" in rec.flags
    m = usagetap.Meter("[1, 2]")
    m.feed(chat["response_body"])
    assert "request_unparsed" in m.finish().flags


def test_count_tokens_matches_tiktoken_ordinary() -> None:
    vocab = os.environ.get("USAGETAP_O200K_VOCAB")
    if not vocab:
        pytest.skip("USAGETAP_O200K_VOCAB not set (python/test.sh sets it)")
    enc = local_tiktoken_o200k(vocab)
    texts: List[str] = ["", "hello", "<|endoftext|> is plain text here", "naïve café 😀" * 3]
    for r in corpus()[:400]:
        for m in r["request"].get("messages") or []:
            if isinstance(m.get("content"), str):
                texts.append(m["content"])
    for t in texts:
        assert usagetap.count_tokens(t, "gpt-4o") == len(enc.encode_ordinary(t)), t[:80]
    assert usagetap.count_tokens("<|endoftext|>") > 1


def test_count_tokens_models() -> None:
    s = "The quick brown fox jumps over the lazy dog."
    assert usagetap.count_tokens(s) == usagetap.count_tokens(s, "gpt-4o") == usagetap.count_tokens(s, "no-such-model")
    assert usagetap.count_tokens(s, "gpt-35-turbo") == usagetap.count_tokens(s, "gpt-4")


def test_count_prompt_reproduces_plain_chat_prompts(records: List[Record]) -> None:
    """Text-only chat prompts (no tools, images, schemas) follow the verified framing."""
    hit = total = 0
    for r in records:
        req, u = r["request"], r["reported_usage"]
        if r["endpoint"] != "chat.completions" or not u or "prompt_tokens" not in u:
            continue
        if any(k in req for k in ("tools", "functions", "response_format")):
            continue
        msgs = req.get("messages") or []
        if not msgs or not all(isinstance(m.get("content"), str) and set(m) <= {"role", "content", "name"} for m in msgs):
            continue
        total += 1
        if usagetap.count_prompt(req, r["model"]) == u["prompt_tokens"]:
            hit += 1
    assert total > 900
    assert hit / total > 0.95, (hit, total)
    print(f"count_prompt exact on {hit}/{total} text-only chat prompts")


def test_meter_envelope_equals_meter_and_hashes_the_key(chat: Record, stream: Record) -> None:
    for r in (chat, stream):
        env = {
            "eventTime": "2025-01-02T03:04:05Z",
            "apiOperation": "ChatCompletion",
            "appSubscriptionKey": "0123456789abcdef0123456789abcdef",
            "request": json.dumps(r["request"]),
            "response": r["response_body"],
        }
        out = usagetap.meter_envelope(json.dumps(env), secret="s3cret")
        assert out.record == usagetap.meter(r["request"], r["response_body"])
        assert out.event_time == "2025-01-02T03:04:05Z" and out.api_operation == "ChatCompletion"
        assert out.consumer == usagetap.consumer_id(env["appSubscriptionKey"], secret=b"s3cret")
        assert out.consumer != usagetap.consumer_id(env["appSubscriptionKey"], secret=b"other")
        assert env["appSubscriptionKey"] not in repr(out)
        assert out == usagetap.meter_envelope(env, secret=b"s3cret")
