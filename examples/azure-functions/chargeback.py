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
  end) is salvaged by `usagetap.meter_envelope`: the fields before the cut are read, the cut
  response is metered, and the record says `truncated`. An unreadable envelope still yields an
  event (`Status` `error`, flag `envelope_unreadable`) so the loss shows on the dashboard.

APIM's `log-to-eventhub` policy sends, for HTTP 200 only:
    {"eventTime": "...", "apiOperation": "ChatCompletion" | "TextCompletion" | "",
     "appSubscriptionKey": "<raw key>", "request": "<JSON string>", "response": "<body text>"}
`request` and `response` may also be JSON objects. Optional extra fields understood by
usagetap: `url` / `operationUrl` (endpoint and deployment), `model`, `deployment`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import uuid
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Union

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

Event = Dict[str, str]
Message = Union[str, bytes, bytearray, memoryview]


class ConfigurationError(ValueError):
    """The host's settings cannot run the function safely (e.g. no AppKey secret)."""


def app_key(subscription_key: str, secret: Union[str, bytes]) -> str:
    """The AppKey of a subscription key: HMAC-SHA256 under `secret` (first 128 bits, hex), the
    same consumer id every usagetap face gives. Stable per key, so dashboards still group by it;
    useless to anyone without the secret. An absent key gives ""."""
    if not subscription_key:
        return ""
    return usagetap.consumer_id(subscription_key, secret=secret)


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

    def event(self, raw: Message) -> Event:
        """The event for one envelope. Never raises on the envelope's content."""
        try:
            out = usagetap.meter_envelope(
                raw, secret=self._secret, deployments=self._deployments
            )
        except usagetap.UsagetapError as e:
            _log.warning("unreadable APIM envelope (%d bytes): %s", len(raw), e)
            return self._unreadable()
        rec = out.record
        flags = list(rec.flags)
        operation = out.api_operation or _OPERATION_BY_ENDPOINT.get(rec.endpoint, "")
        return {
            "TokenInfoId": str(uuid.uuid4()),
            "ApiOperation": operation,
            "AppKey": out.consumer or "",
            "Timestamp": out.event_time or _now(),
            # Like the C# bool's ToString(), which dashboards may compare against.
            "Stream": "True" if rec.stream else "False",
            "PromptTokens": str(rec.prompt_tokens),
            "CompletionTokens": str(rec.completion_tokens),
            "TotalTokens": str(rec.total_tokens),
            "Model": rec.model or "",
            "Deployment": rec.deployment or "",
            "Endpoint": rec.endpoint,
            "Status": rec.status,
            "Source": rec.source,
            "CachedTokens": _str_int(rec.cached_tokens),
            "ReasoningTokens": _str_int(rec.reasoning_tokens),
            "Flags": ",".join(flags),
        }

    def _unreadable(self) -> Event:
        return {
            "TokenInfoId": str(uuid.uuid4()),
            "ApiOperation": "",
            "AppKey": "",
            "Timestamp": _now(),
            "Stream": "False",
            "PromptTokens": "0",
            "CompletionTokens": "0",
            "TotalTokens": "0",
            "Model": "",
            "Deployment": "",
            "Endpoint": "",
            "Status": "error",
            "Source": "computed",
            "CachedTokens": "",
            "ReasoningTokens": "",
            "Flags": "envelope_unreadable",
        }

    def process(self, messages: Iterable[Message]) -> List[Event]:
        """One event per message, emitted in order; a failure on one never stops the batch."""
        events = []
        for raw in messages:
            ev = self.event(raw)
            events.append(ev)
            if self._emit is not None:
                self._emit(EVENT_NAME, ev)
        return events


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()
