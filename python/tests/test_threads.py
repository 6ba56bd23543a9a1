"""Many threads at once: same results as one thread, and the GIL is released while working."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List

import usagetap
from conftest import Record, corpus, streams


def _one_shot(r: Record) -> usagetap.UsageRecord:
    return usagetap.meter(r["request"], r["response_body"], reconcile=True)


def _streamed(r: Record) -> usagetap.UsageRecord:
    body = r["response_body"].encode()
    with usagetap.Meter(r["request"], reconcile=True) as m:
        for i in range(0, len(body), 97):
            m.feed(body[i : i + 97])
    assert m.record is not None
    return m.record


def test_many_threads_give_the_same_records() -> None:
    sample: List[Record] = corpus()[::5] + streams()[::2]
    serial = [_one_shot(r) for r in sample]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(_one_shot, sample))
        streamed = list(pool.map(_streamed, sample))
        counts = list(pool.map(lambda r: usagetap.count_prompt(r["request"]), sample))
    assert parallel == serial
    assert streamed == serial
    assert counts == [usagetap.count_prompt(r["request"]) for r in sample]


def test_one_meter_shared_by_threads_serializes_feeds() -> None:
    """Calls on one Meter are serialized: the record equals feeding the same bytes in order."""
    line = 'data: {"id":"c","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"word "}}]}\n\n'
    lines = [line] * 400
    m = usagetap.Meter()

    def feed(chunk: str) -> None:
        m.feed(chunk)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(feed, lines))
    rec = m.finish()
    assert rec.status == "truncated"  # no [DONE]
    assert rec.choices and rec.computed is not None
    assert rec.completion_tokens == usagetap.meter(None, "".join(lines)).completion_tokens


def _text_slow_to_count() -> str:
    """Text long enough that one count takes a measurable while, however fast the machine and
    the engine: doubled until a count takes 0.15 s."""
    text = "The quick brown fox jumps over the lazy dog, again and again. " * 60000  # ~3.7 MB
    usagetap.count_tokens("warm up the tables")
    while True:
        t0 = time.perf_counter()
        usagetap.count_tokens(text)
        if time.perf_counter() - t0 > 0.15 or len(text) > 1 << 30:
            break
        text += text
    return text


def test_gil_is_released_during_heavy_work() -> None:
    text = _text_slow_to_count()
    done = threading.Event()
    span: List[float] = []

    def work() -> None:
        t0 = time.perf_counter()
        usagetap.count_tokens(text)
        span.append(time.perf_counter() - t0)
        done.set()

    th = threading.Thread(target=work)
    ticks: List[float] = []
    th.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
    th.join()
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert span and span[0] > 0.05, span
    # Holding the GIL would stall this loop for the whole call.
    assert len(ticks) > 1000 and max(gaps) < 0.6 * span[0], (len(ticks), max(gaps), span[0])


def _slow_finish_body() -> str:
    """A JSON response without usage whose one answer takes a measurable while to count at
    finish."""
    text = _text_slow_to_count()
    return json.dumps(
        {
            "object": "chat.completion",
            "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        }
    )


def test_racing_finishes_give_one_record() -> None:
    """Of many threads finishing one meter, one gets the record and the others
    MeterFinishedError; `finished` is never true without the record, and `with` still exits
    cleanly after a finish."""
    body = 'data: {"id":"c","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"word "}}]}\n\n' * 2000
    for _ in range(5):
        m = usagetap.Meter()
        m.feed(body)
        got: List[object] = []
        seen_without_record: List[bool] = []

        def finish() -> None:
            try:
                got.append(m.finish())
            except usagetap.MeterFinishedError:
                got.append(None)

        def watch() -> None:
            for _ in range(2000):
                if m.finished:
                    seen_without_record.append(m.record is None)

        threads = [threading.Thread(target=finish) for _ in range(8)] + [threading.Thread(target=watch)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        records = [r for r in got if r is not None]
        assert len(records) == 1 and len(got) == 8
        assert m.finished and m.record is records[0]
        assert not any(seen_without_record)
        assert m.__exit__(None, None, None) is False


def test_waiting_for_a_busy_meter_releases_the_gil() -> None:
    """Reading `finished`, `record` or the repr while another thread's finish() counts waits
    for the meter without holding the GIL, so other Python threads keep running."""
    body = _slow_finish_body()
    m = usagetap.Meter()
    m.feed(body)
    started, done = threading.Event(), threading.Event()
    span: List[float] = []

    def finish() -> None:
        started.set()
        t0 = time.perf_counter()
        m.finish()
        span.append(time.perf_counter() - t0)
        done.set()

    ticks: List[float] = []

    def tick() -> None:
        while not done.is_set():
            ticks.append(time.perf_counter())

    finisher, ticker = threading.Thread(target=finish), threading.Thread(target=tick)
    finisher.start()
    started.wait()
    ticker.start()
    while not done.is_set():
        repr(m)
        if m.finished:
            assert m.record is not None
    finisher.join()
    ticker.join()
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert span and span[0] > 0.05, span
    # A reader holding the GIL while it waits would stall the ticker for most of the finish.
    assert len(ticks) > 100 and max(gaps) < 0.6 * span[0], (len(ticks), max(gaps), span[0])
