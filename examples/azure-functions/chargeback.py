"""Chargeback logic for APIM's Event Hub envelopes, free of any Azure dependency.

Drop-in for the C# chargeback function (`ChargebackEventHubTrigger`): one envelope in, one
`Azure OpenAI Tokens` event out, with the same string dimensions (`TokenInfoId`, `ApiOperation`,
`AppKey`, `Timestamp`, `Stream`, `PromptTokens`, `CompletionTokens`, `TotalTokens`) so existing
KQL dashboards keep working, plus `Model`, `Deployment`, `Endpoint`, `Status`, `Source`,
`CachedTokens`, `ReasoningTokens` and `Flags`.

What differs from the code it replaces, on purpose:
- `AppKey` is HMAC-SHA256(secret, subscription key) in hex, never the raw key. The secret comes
  from the host (an app setting); without one, `Chargeback` refuses to start.
- Counts come from usagetap: the service's own usage when it sent one, else computed with the
  real model's encoding and the service's framing, and labelled (`Source`, `Flags`).
- No envelope is ever lost to an exception. An envelope APIM cut at 200 KB (invalid JSON at the
  end) is salvaged: the fields before the cut are read, the cut response is metered as
  truncated, and `Flags` says `envelope_truncated`. An unreadable envelope still yields an event
  (`Status` `error`, flag `envelope_unreadable`) so the loss is visible on the dashboard.

APIM's `log-to-eventhub` policy sends, for HTTP 200 only:
    {"eventTime": "...", "apiOperation": "ChatCompletion" | "TextCompletion" | "",
     "appSubscriptionKey": "<raw key>", "request": "<JSON string>", "response": "<body text>"}
`request` and `response` may also be JSON objects. Optional extra fields understood here:
`deployment` (Azure deployment name) and `operationPath` (the request URL path).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import logging
import uuid
from json.decoder import scanstring
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import usagetap

EVENT_NAME = "Azure OpenAI Tokens"

# The C# function's `OpenAiOperationEnum` names, for envelopes whose apiOperation is empty.
_OPERATION_BY_ENDPOINT = {
    "chat.completions": "ChatCompletion",
    "completions": "TextCompletion",
    "embeddings": "Embeddings",
    "responses": "Responses",
}

_log = logging.getLogger("chargeback")
_decoder = json.JSONDecoder(strict=False)
_WS = " \t\r\n"

Envelope = Dict[str, Any]
Event = Dict[str, str]


class ConfigurationError(ValueError):
    """The host's settings cannot run the function safely (e.g. no AppKey secret)."""


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _partial_string(text: str, start: int) -> str:
    """The content of a JSON string that starts at `start` (just after its quote) and was cut
    before its closing quote; a dangling escape at the cut is dropped."""
    body = text[start:]
    for cut in range(0, 7):
        try:
            value, _ = scanstring(body[: len(body) - cut] + '"', 0, False)
            return value
        except ValueError:
            continue
    return ""


def parse_envelope(raw: Union[str, bytes, bytearray, memoryview]) -> Tuple[Envelope, bool]:
    """Reads an APIM envelope. Returns `(fields, truncated)`.

    A whole JSON object gives `truncated=False`. Text that breaks off (APIM truncates messages
    over 200 KB) gives the fields read before the break, the string value at the break cut
    where it stops, and `truncated=True`. Raises `ValueError` only when no object starts at all.
    """
    if not isinstance(raw, str):
        raw = bytes(raw).decode("utf-8", errors="replace")
    text = raw.lstrip("\ufeff")
    try:
        value = json.loads(text)
    except ValueError:
        pass
    else:
        if not isinstance(value, dict):
            raise ValueError("the envelope is not a JSON object")
        return value, False

    i = _skip_ws(text, 0)
    if i >= len(text) or text[i] != "{":
        raise ValueError("the envelope is not a JSON object")
    fields: Envelope = {}
    i += 1
    while True:
        i = _skip_ws(text, i)
        if i >= len(text) or text[i] != '"':
            break
        try:
            key, i = scanstring(text, i + 1, False)
        except ValueError:
            break
        i = _skip_ws(text, i)
        if i >= len(text) or text[i] != ":":
            break
        i = _skip_ws(text, i + 1)
        try:
            value, i = _decoder.raw_decode(text, i)
        except ValueError:
            if i < len(text) and text[i] == '"':
                fields[key] = _partial_string(text, i + 1)
            break
        fields[key] = value
        i = _skip_ws(text, i)
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        break
    return fields, True


def app_key(subscription_key: str, secret: bytes) -> str:
    """HMAC-SHA256 of the subscription key under `secret`, in hex: stable per key (dashboards
    still group by it), useless to anyone without the secret. An absent key gives ""."""
    if not subscription_key:
        return ""
    return hmac.new(secret, subscription_key.encode("utf-8"), hashlib.sha256).hexdigest()


def _body(value: Any) -> Union[str, bytes, None]:
    """A request/response field as text for the meter: strings as they are, objects re-serialized
    (key order kept), anything else absent."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return None


def _str_int(v: Optional[int]) -> str:
    return "" if v is None else str(v)


class Chargeback:
    """Turns APIM envelopes into `Azure OpenAI Tokens` events.

    `secret` keys the AppKey HMAC (required, non-empty). `deployments` maps Azure deployment
    names to models, for traffic whose model the service does not name. `emit(name, dims)`
    receives each event (Application Insights `track_event` in the function app).
    """

    def __init__(
        self,
        secret: Union[str, bytes],
        *,
        deployments: Optional[Mapping[str, str]] = None,
        emit: Optional[Callable[[str, Event], None]] = None,
    ) -> None:
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        if not secret:
            raise ConfigurationError(
                "an AppKey secret is required: the subscription key is never stored raw"
            )
        self._secret = bytes(secret)
        self._deployments = dict(deployments or {})
        self._emit = emit

    def event(self, raw: Union[str, bytes, bytearray, memoryview]) -> Event:
        """The event for one envelope. Never raises on the envelope's content."""
        extra_flags: List[str] = []
        try:
            env, truncated = parse_envelope(raw)
        except ValueError:
            env, truncated = {}, False
            extra_flags.append("envelope_unreadable")
        if truncated:
            extra_flags.append("envelope_truncated")

        key = env.get("appSubscriptionKey")
        key = key if isinstance(key, str) else ""
        timestamp = env.get("eventTime")
        if not isinstance(timestamp, str) or not timestamp:
            timestamp = _dt.datetime.now(_dt.timezone.utc).isoformat()

        request = _body(env.get("request"))
        response = _body(env.get("response"))
        deployment = env.get("deployment") if isinstance(env.get("deployment"), str) else None
        path = env.get("operationPath") if isinstance(env.get("operationPath"), str) else None

        record: Optional[usagetap.UsageRecord] = None
        if response is not None:
            try:
                record = self._meter(request, response, deployment, path)
            except usagetap.UsagetapError as e:
                _log.warning("usagetap could not meter an envelope: %s", e)
                extra_flags.append("meter_error")
        else:
            extra_flags.append("no_response")

        if "envelope_unreadable" in extra_flags:
            status = "error"
        elif record is not None:
            status = "truncated" if truncated and record.status == "complete" else record.status
        else:
            status = "truncated" if truncated else "error"

        operation = env.get("apiOperation")
        if not isinstance(operation, str) or not operation:
            operation = _OPERATION_BY_ENDPOINT.get(record.endpoint, "") if record else ""

        flags = list(record.flags) if record else []
        flags += [f for f in extra_flags if f not in flags]
        prompt = record.prompt_tokens if record else 0
        completion = record.completion_tokens if record else 0
        total = record.total_tokens if record else 0
        return {
            "TokenInfoId": str(uuid.uuid4()),
            "ApiOperation": operation,
            "AppKey": app_key(key, self._secret),
            "Timestamp": timestamp,
            # Like the C# bool's ToString(), which dashboards may compare against.
            "Stream": "True" if record is not None and record.stream else "False",
            "PromptTokens": str(prompt),
            "CompletionTokens": str(completion),
            "TotalTokens": str(total),
            "Model": (record.model or "") if record else "",
            "Deployment": (record.deployment or deployment or "") if record else (deployment or ""),
            "Endpoint": record.endpoint if record else "",
            "Status": status,
            "Source": record.source if record else "computed",
            "CachedTokens": _str_int(record.cached_tokens) if record else "",
            "ReasoningTokens": _str_int(record.reasoning_tokens) if record else "",
            "Flags": ",".join(flags),
        }

    def _meter(
        self,
        request: Union[str, bytes, None],
        response: Union[str, bytes],
        deployment: Optional[str],
        path: Optional[str],
    ) -> usagetap.UsageRecord:
        if path:
            try:
                return usagetap.meter(
                    request,
                    response,
                    deployment=deployment,
                    endpoint=path,
                    deployments=self._deployments,
                )
            except usagetap.InvalidOptionsError:
                pass  # not an endpoint path usagetap knows: let it detect the endpoint
        return usagetap.meter(
            request, response, deployment=deployment, deployments=self._deployments
        )

    def process(self, messages: Iterable[Union[str, bytes, bytearray, memoryview]]) -> List[Event]:
        """One event per message, emitted in order; a failure on one never stops the batch."""
        events = []
        for raw in messages:
            ev = self.event(raw)
            events.append(ev)
            if self._emit is not None:
                self._emit(EVENT_NAME, ev)
        return events

