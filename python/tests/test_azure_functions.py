"""The Azure Functions example on APIM envelopes built from corpus records."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import usagetap
from conftest import REPO, Record, corpus, expected_usage

EXAMPLE = REPO / "examples" / "azure-functions"
sys.path.insert(0, str(EXAMPLE))

import chargeback  # noqa: E402

SECRET = "test-secret-not-for-production"
FIELDS = [
    "TokenInfoId", "ApiOperation", "AppKey", "Timestamp", "Stream", "PromptTokens",
    "CompletionTokens", "TotalTokens", "Model", "Deployment", "Endpoint", "Status", "Source",
    "CachedTokens", "ReasoningTokens", "Flags",
]  # fmt: skip
OPERATION = {"chat.completions": "ChatCompletion", "completions": "TextCompletion"}


def envelope(r: Record, key: str, *, as_objects: bool = False) -> str:
    """What APIM's log-to-eventhub policy sends: request and response as JSON strings."""
    return json.dumps(
        {
            "eventTime": "2025-01-02T03:04:05.6789012Z",
            "apiOperation": OPERATION.get(r["endpoint"], ""),
            "appSubscriptionKey": key,
            "request": r["request"] if as_objects else json.dumps(r["request"]),
            "response": json.loads(r["response_body"]) if as_objects and not r["stream"] else r["response_body"],
        }
    )


def raw_key(i: int) -> str:
    return uuid.UUID(int=0xA5A5_0000 + i).hex  # 32 hex chars, like an APIM subscription key


def sample() -> List[Record]:
    rs = corpus()
    return rs[::4] + [r for r in rs if r["stream"]][::3]


def test_events_on_corpus_envelopes_reproduce_reported_usage(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    emitted: List[Tuple[str, Dict[str, str]]] = []
    cb = chargeback.Chargeback(SECRET, emit=lambda name, dims: emitted.append((name, dims)))
    rs = sample()
    keys = [raw_key(i % 37) for i in range(len(rs))]
    events = cb.process(envelope(r, k).encode() for r, k in zip(rs, keys))
    assert len(events) == len(emitted) == len(rs)
    checked = 0
    for r, k, ev, (name, dims) in zip(rs, keys, events, emitted):
        assert name == "Azure OpenAI Tokens" and dims is ev
        assert list(ev) == FIELDS
        assert all(isinstance(v, str) for v in ev.values())
        assert ev["AppKey"] == chargeback.app_key(k, SECRET) and len(ev["AppKey"]) == 32
        assert ev["Timestamp"] == "2025-01-02T03:04:05.6789012Z"
        assert ev["Stream"] == ("True" if r["stream"] else "False")
        assert int(ev["TotalTokens"]) >= int(ev["PromptTokens"])
        if r["reported_usage"]:
            exp = expected_usage(r["reported_usage"])
            assert ev["Source"] == "reported"
            assert ev["PromptTokens"] == str(exp["prompt_tokens"])
            assert ev["TotalTokens"] == str(exp["total_tokens"])
            if exp["completion_tokens"] is not None:
                assert ev["CompletionTokens"] == str(exp["completion_tokens"])
            if exp["cached_tokens"] is not None:
                assert ev["CachedTokens"] == str(exp["cached_tokens"])
            if exp["reasoning_tokens"] is not None:
                assert ev["ReasoningTokens"] == str(exp["reasoning_tokens"])
            checked += 1
        else:
            assert ev["Source"] == "computed" and "no_usage_reported" in ev["Flags"].split(",")
        assert ev["Model"] == (usagetap.meter(r["request"], r["response_body"]).model or "")
    assert checked > 700
    # Same key -> same AppKey (dashboards group by it); different keys -> different AppKeys.
    by_key: Dict[str, set] = {}
    for k, ev in zip(keys, events):
        by_key.setdefault(k, set()).add(ev["AppKey"])
    assert all(len(v) == 1 for v in by_key.values())
    assert len({next(iter(v)) for v in by_key.values()}) == len(by_key)
    # The raw key appears nowhere in the output: events, logs, stdout, stderr.
    out = capsys.readouterr()
    text = json.dumps(events) + json.dumps(emitted) + caplog.text + out.out + out.err
    for k in set(keys):
        assert k not in text and k.upper() not in text and k[:16] not in text


def test_request_and_response_as_objects() -> None:
    cb = chargeback.Chargeback(SECRET)
    for r in [r for r in corpus() if r["reported_usage"] and not r["stream"]][:200]:
        a = cb.event(envelope(r, "k"))
        b = cb.event(envelope(r, "k", as_objects=True))
        for f in ("PromptTokens", "CompletionTokens", "TotalTokens", "CachedTokens", "ReasoningTokens", "Source"):
            assert a[f] == b[f], (r["id"], f)


def test_truncated_envelope_gives_a_flagged_record() -> None:
    """APIM cuts Event Hub messages at 200 KB: the JSON breaks; the record must survive."""
    cb = chargeback.Chargeback(SECRET)
    key = raw_key(999)
    n = 0
    for r in [r for r in corpus() if r["stream"] and r["endpoint"] == "chat.completions"][:120]:
        env = envelope(r, key)
        resp_start = env.index('"response": "') + len('"response": "')
        for frac in (0.3, 0.6, 0.95):
            cut = env[: resp_start + int((len(env) - resp_start) * frac)]
            ev = cb.event(cut.encode())
            flags = ev["Flags"].split(",")
            assert "truncated" in flags, r["id"]
            assert ev["Status"] == "truncated"
            assert ev["AppKey"] == chargeback.app_key(key, SECRET) and key not in json.dumps(ev)
            assert ev["Stream"] == "True" and ev["Timestamp"].startswith("2025-01-02")
            assert int(ev["TotalTokens"]) >= int(ev["PromptTokens"]) > 0
            n += 1
    assert n == 360
    # A cut at a dangling escape ("\" or "\u00") is still read.
    env = envelope(corpus()[0], key)
    for tail in ("\\", "\\u00"):
        ev = cb.event(env[: env.index('"response": "') + 40] + tail)
        assert "truncated" in ev["Flags"].split(",")


def test_a_200kb_envelope_cut_by_apim() -> None:
    r = max((r for r in corpus() if r["stream"]), key=lambda r: len(r["response_body"]))
    body = r["response_body"]
    while len(body) < 300_000:
        body += body
    env = envelope(dict(r, response_body=body), "k").encode()[: 200 * 1024]
    ev = chargeback.Chargeback(SECRET).event(env)
    assert ev["Status"] == "truncated" and "truncated" in ev["Flags"].split(",")


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1,2]", b"\xff\xfe", b'{"eventTime": 5, "response": 7}', b"{}"])
def test_unreadable_envelopes_still_give_an_event(raw: bytes) -> None:
    ev = chargeback.Chargeback(SECRET).event(raw)
    assert list(ev) == FIELDS and ev["TotalTokens"] == "0" and ev["Status"] in {"error", "truncated"}


def test_secret_is_required() -> None:
    with pytest.raises(chargeback.ConfigurationError):
        chargeback.Chargeback("")
    assert chargeback.app_key("", b"s") == ""
    with pytest.raises(usagetap.InvalidOptionsError):
        usagetap.consumer_id("key", secret=b"")


def test_function_app_trigger(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The v2-model function itself, with azure-functions' own EventHubEvent objects."""
    func = pytest.importorskip("azure.functions")
    monkeypatch.setenv("CHARGEBACK_APPKEY_SECRET", SECRET)
    monkeypatch.setenv("CHARGEBACK_DEPLOYMENTS", '{"chat-prod": "gpt-4o-mini"}')
    monkeypatch.delenv("APPLICATIONINSIGHTS_CONNECTION_STRING", raising=False)
    import function_app

    monkeypatch.setattr(function_app, "_chargeback", None)
    fns = {f.get_function_name(): f for f in function_app.app.get_functions()}
    fn = fns["ChargebackEventHubTrigger"]
    trigger = json.loads(fn.get_function_json())["bindings"][0]
    assert trigger["type"] == "eventHubTrigger" and trigger["cardinality"].lower() == "many"
    assert trigger["eventHubName"] == "%EventHubName%" and trigger["connection"] == "EventHubConnection"

    caplog.set_level(logging.INFO, logger="chargeback")
    rs = corpus()[:50]
    key = raw_key(4242)
    batch = [func.EventHubEvent(body=envelope(r, key).encode()) for r in rs]
    fn.get_user_function()(batch)
    lines = [rec.getMessage() for rec in caplog.records if rec.getMessage().startswith("Azure OpenAI Tokens: ")]
    assert len(lines) == len(rs)
    events: List[Dict[str, Any]] = [json.loads(l.split(": ", 1)[1]) for l in lines]
    for r, ev in zip(rs, events):
        if r["reported_usage"]:
            assert ev["TotalTokens"] == str(expected_usage(r["reported_usage"])["total_tokens"])
    assert key not in caplog.text
