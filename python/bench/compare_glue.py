"""Throughput of the usagetap wheel against the typical Python chargeback glue.

Not a test: run it by hand after `python/test.sh` (which leaves the venv in target/py-venv):

    target/py-venv/bin/python python/bench/compare_glue.py [--repeat 5] [--vocab PATH]

The streams are the chat-completions SSE streams of ../shared/corpus/dev.jsonl. The glue is the
usual code: split the body into lines, `json.loads` every `data:` line, join
`choices[0].delta.content`, and count the joined text with tiktoken's `encode_ordinary`
(o200k_base, vocab read from a local file: the copy the tiktoken-rs crate ships, found with
`cargo metadata`, or --vocab / $USAGETAP_O200K_VOCAB). It yields one number per stream and no
prompt count.

The wheel is measured three ways:
- `meter`: `usagetap.meter(request, body)`, as a gateway would call it: reported usage when the
  stream has it (no BPE pass), else prompt and completion computed;
- `meter reconcile`: the same with `reconcile=True`, which tokenizes every stream's completion
  and prompt even when usage was reported (more work than the glue does);
- `Meter 1 KiB feeds`: `reconcile=True`, the body fed in 1 KiB pieces as a streaming loop would.

MB/s is response-body bytes over wall time, the least of at least --repeat runs (more until
half a second has passed), one thread.

The corpus is then split by kind, as the speed goals are: streams that carry a usage chunk, and
streams without one. Each kind is metered with its request (the gateway's call: for a stream
without usage, the prompt is counted too) and without it (`usagetap.meter(None, body)`, the
glue's own job: the completion alone).

`--synthetic FILE...` adds long synthetic streams (one SSE body per file; the `compare` bench
writes the same OpenAI and Azure streams its Rust table uses), each metered whole by
`usagetap.meter(None, body)` and by the glue, so the goals stated for long streams are
measured on the same bytes in both languages.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import tiktoken
import tiktoken_ext.openai_public as tiktoken_public
from tiktoken.load import load_tiktoken_bpe

import usagetap

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus" / "dev.jsonl"


def find_vocab() -> str:
    env = os.environ.get("USAGETAP_O200K_VOCAB")
    if env:
        return env
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--manifest-path", str(ROOT / "python" / "Cargo.toml")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    pkg = next(p for p in json.loads(meta)["packages"] if p["name"] == "tiktoken-rs")
    return str(Path(pkg["manifest_path"]).parent / "assets" / "o200k_base.tiktoken")


def local_o200k(vocab: str) -> tiktoken.Encoding:
    """tiktoken's own o200k_base (pat_str, special tokens from tiktoken_ext.openai_public), its
    vocabulary read from `vocab` instead of downloaded (tiktoken still checks the file's hash)."""
    original = tiktoken_public.load_tiktoken_bpe
    tiktoken_public.load_tiktoken_bpe = lambda _url, expected_hash=None: load_tiktoken_bpe(
        vocab, expected_hash=expected_hash
    )
    try:
        spec = tiktoken_public.o200k_base()
    finally:
        tiktoken_public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**spec)


def glue(enc: tiktoken.Encoding, body: str) -> int:
    parts: List[str] = []
    for line in body.splitlines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            break
        event = json.loads(payload)
        choices = event.get("choices") or []
        if choices:
            delta = choices[0].get("delta") or {}
            content = delta.get("content")
            if content:
                parts.append(content)
    return len(enc.encode_ordinary("".join(parts)))


def glue_all(enc: tiktoken.Encoding, streams: List[Dict[str, Any]]) -> None:
    for r in streams:
        glue(enc, r["response_body"])


def meter_all(exchanges: List[Tuple[Optional[bytes], bytes]]) -> None:
    """`usagetap.meter(request, body)` for each pair, as a gateway calls it (`request` may be
    None: the body alone)."""
    meter = usagetap.meter
    for request, body in exchanges:
        meter(request, body)


def best(fn: Callable[[], Any], repeat: int, budget: float = 0.5) -> float:
    """Least time of at least `repeat` runs, run on until `budget` seconds have passed: a pass of
    the wheel over the corpus takes a few milliseconds, and a handful of those is noise."""
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - start < budget:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--vocab", default=None, help="path of o200k_base.tiktoken")
    ap.add_argument("--synthetic", nargs="*", default=[], help="files holding one SSE body each")
    args = ap.parse_args()

    vocab = args.vocab or find_vocab()
    enc = local_o200k(vocab)

    streams: List[Dict[str, Any]] = []
    with CORPUS.open(encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["stream"] and r["endpoint"] == "chat.completions":
                r["body_bytes"] = r["response_body"].encode()
                r["request_bytes"] = json.dumps(r["request"]).encode()
                streams.append(r)
    total = sum(len(r["body_bytes"]) for r in streams)
    with_usage = sum(1 for r in streams if r["reported_usage"])

    # Warm up: tiktoken's regex/BPE and usagetap's lazily built tables.
    glue(enc, streams[0]["response_body"])
    usagetap.meter(streams[0]["request_bytes"], streams[0]["body_bytes"], reconcile=True)

    exchanges = [(r["request_bytes"], r["body_bytes"]) for r in streams]

    def run_reconcile() -> None:
        for r in streams:
            usagetap.meter(r["request_bytes"], r["body_bytes"], reconcile=True)

    def run_feeds() -> None:
        for r in streams:
            body = r["body_bytes"]
            m = usagetap.Meter(r["request_bytes"], reconcile=True)
            for i in range(0, len(body), 1024):
                m.feed(body[i : i + 1024])
            m.finish()

    mb = total / 1e6
    print(f"{len(streams)} chat-completions streams ({with_usage} with a usage chunk), {mb:.2f} MB of SSE; "
          f"least of {args.repeat}+ runs and 0.5 s; Python {sys.version.split()[0]}, tiktoken {tiktoken.__version__}, "
          f"usagetap {usagetap.__version__}")
    t_glue = best(lambda: glue_all(enc, streams), args.repeat)
    print(f"{'glue (json.loads per line + tiktoken)':44s} {mb / t_glue:8.2f} MB/s")
    for name, fn in [("usagetap.meter", lambda: meter_all(exchanges)), ("usagetap.meter reconcile=True", run_reconcile),
                     ("usagetap.Meter 1 KiB feeds, reconcile=True", run_feeds)]:
        t = best(fn, args.repeat)
        print(f"{name:44s} {mb / t:8.2f} MB/s   {t_glue / t:6.1f}x the glue")
    by_kind(enc, streams, args.repeat)
    if args.synthetic:
        synthetic(enc, args.synthetic, args.repeat)


def by_kind(enc: tiktoken.Encoding, streams: List[Dict[str, Any]], repeat: int) -> None:
    """One row per kind of stream: the glue, the wheel with the request, and without it."""
    print()
    print(f"{'corpus streams':24s} {'n':>4s} {'MB':>5s} {'glue MB/s':>10s} {'meter MB/s':>11s} {'ratio':>7s} "
          f"{'no request MB/s':>16s} {'ratio':>7s}")
    for name, kind in [("with a usage chunk", [r for r in streams if r["reported_usage"]]),
                       ("without usage", [r for r in streams if not r["reported_usage"]])]:
        mb = sum(len(r["body_bytes"]) for r in kind) / 1e6
        with_request = [(r["request_bytes"], r["body_bytes"]) for r in kind]
        alone: List[Tuple[Optional[bytes], bytes]] = [(None, r["body_bytes"]) for r in kind]
        t_glue = best(lambda: glue_all(enc, kind), repeat)
        t_meter = best(lambda: meter_all(with_request), repeat)
        t_alone = best(lambda: meter_all(alone), repeat)
        print(f"{name:24s} {len(kind):4d} {mb:5.2f} {mb / t_glue:10.1f} {mb / t_meter:11.1f} {t_glue / t_meter:6.1f}x "
              f"{mb / t_alone:16.1f} {t_glue / t_alone:6.1f}x")


def synthetic(enc: tiktoken.Encoding, paths: List[str], repeat: int) -> None:
    """One row per long synthetic stream: the glue and `usagetap.meter(None, body)`, the latter
    with and without counting the text (`reconcile=True` counts it even when usage came)."""
    print()
    print(f"{'long synthetic stream':32s} {'MB':>6s} {'glue MB/s':>10s} {'meter MB/s':>11s} {'ratio':>7s} "
          f"{'reconcile MB/s':>15s} {'ratio':>7s}")
    for path in paths:
        body_bytes = Path(path).read_bytes()
        body = body_bytes.decode()
        mb = len(body_bytes) / 1e6
        # Same answer on both sides, so neither side is timed doing less.
        want = glue(enc, body)
        got = (usagetap.meter(None, body_bytes, reconcile=True).computed or {}).get("completion_tokens")
        if got != want:
            raise SystemExit(f"{path}: usagetap counted {got} tokens, the glue {want}")
        t_glue = best(lambda: glue(enc, body), repeat)
        t_meter = best(lambda: usagetap.meter(None, body_bytes), repeat)
        t_rec = best(lambda: usagetap.meter(None, body_bytes, reconcile=True), repeat)
        print(f"{Path(path).stem:32s} {mb:6.2f} {mb / t_glue:10.1f} {mb / t_meter:11.1f} {t_glue / t_meter:6.1f}x "
              f"{mb / t_rec:15.1f} {t_glue / t_rec:6.1f}x")


if __name__ == "__main__":
    main()
