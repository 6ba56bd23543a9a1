"""Exact token-usage records from OpenAI / Azure OpenAI request and response bytes.

One call for a complete exchange::

    import usagetap
    record = usagetap.meter(request_body, response_body)
    record.prompt_tokens, record.completion_tokens, record.source, record.flags

A stream, fed as it arrives (any split)::

    with usagetap.Meter(request_body) as m:
        for chunk in response.iter_bytes():
            m.feed(chunk)
    record = m.record

An APIM Event Hub envelope, with the subscription key hashed (never kept)::

    out = usagetap.meter_envelope(message_bytes, secret=app_setting_secret)
    out.consumer, out.event_time, out.record.total_tokens

A gateway making streamed usage exact: ask upstream for the usage chunk, hide it from clients
that did not ask (the meter still reads the original stream)::

    rw = usagetap.ensure_include_usage(request_body)
    send_upstream(rw.body)
    f = usagetap.UsageChunkFilter() if rw.changed else None
    with usagetap.Meter(rw.body) as m:
        for chunk in upstream_chunks:
            m.feed(chunk)
            send_to_client(f.feed(chunk) if f else chunk)
    if f:
        send_to_client(f.finish())
    record = m.record

Every function releases the GIL while it works and is safe to call from many threads.
"""

from ._usagetap import (
    EnvelopeRecord,
    InternalError,
    InvalidJsonError,
    InvalidOptionsError,
    InvalidRequestError,
    LimitExceededError,
    Meter,
    MeterFinishedError,
    RewriteResult,
    UsageChunkFilter,
    UsageRecord,
    UsagetapError,
    __version__,
    consumer_id,
    count_prompt,
    count_tokens,
    ensure_include_usage,
    meter,
    meter_envelope,
)

__all__ = [
    "EnvelopeRecord",
    "InternalError",
    "InvalidJsonError",
    "InvalidOptionsError",
    "InvalidRequestError",
    "LimitExceededError",
    "Meter",
    "MeterFinishedError",
    "RewriteResult",
    "UsageChunkFilter",
    "UsageRecord",
    "UsagetapError",
    "__version__",
    "consumer_id",
    "count_prompt",
    "count_tokens",
    "ensure_include_usage",
    "meter",
    "meter_envelope",
]
