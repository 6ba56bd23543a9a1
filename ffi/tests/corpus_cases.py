#!/usr/bin/env python3
"""Picks real exchanges from the corpus for the C and C# tests and writes them in a format a
C program reads without a JSON parser.

usage: corpus_cases.py CORPUS OUT [APIM_OUT [CHARGEBACK_OUT]]

Each case is one header line, then the request and response bytes, then a newline:

    case ID STREAM PROMPT COMPLETION TOTAL REQUEST_LEN RESPONSE_LEN\\n<request><response>\\n

PROMPT/COMPLETION/TOTAL are the service's reported usage (Responses API: input/output mapped
onto prompt/completion); -1 when the service sent none (the test then only checks that the
counts are computed). ID has its spaces replaced by '_'.

APIM_OUT, when given, gets a few of the same exchanges as APIM-style Event Hub messages, one
JSON object per line: {"eventTime", "apiOperation", "appSubscriptionKey", "request": "<request
JSON as a string>", "response": "<response body: SSE text or JSON as a string>"}, plus
"expected": [prompt, completion, total] for the test.

CHARGEBACK_OUT, when given, gets the chargeback cases of the C test, in the same spirit (a header
line, raw bytes, a newline):

    envelope ID CUT PROMPT COMPLETION TOTAL EVENT_TIME OPERATION CONSUMER KEY_LEN ENV_LEN\n<key><envelope>\n
    rewrite ID CHANGED CLIENT_ASKED BODY_LEN WANT_LEN\n<body><want>\n
    filter ID REMOVED IN_LEN WANT_LEN\n<stream><want>\n

`envelope`: the APIM messages above without "expected" (CUT 0), plus the first one cut at 2/3 of
its length (CUT 1: it must come out flagged truncated; its counts are -1). CONSUMER is the
expected consumer id of KEY, computed here with Python's hmac (HMAC-SHA256 keyed with
CONSUMER_SECRET, first 128 bits in hex), an oracle independent of the Rust code.
`rewrite`: request bodies and the body usagetap_rewrite_include_usage must give (WANT, built
here by editing the JSON, checked to parse with include_usage true when CHANGED).
`filter`: recorded chat streams with a usage chunk, and the stream a client that did not ask for
usage must get: the same bytes without the events whose data is a chunk with "choices": [] and a
usage object (found here by splitting events on blank lines and parsing them).

The pick is deterministic: streams with reported usage spread over every endpoint and
provider (smallest first within each group, so valgrind stays quick), some JSON bodies, and a
few streams without usage.
"""

import hashlib
import hmac
import json
import sys
from collections import defaultdict

STREAMS_PER_GROUP = 10
MAX_STREAM_BYTES = 24_000
JSON_BODIES = 12
STREAMS_WITHOUT_USAGE = 2
# The consumer-hash secret of the C test (the same constant is in ffi/tests/test.c).
CONSUMER_SECRET = b"usagetap-ffi-test-secret"
FILTER_STREAMS = 3


def counts(usage):
    if usage is None:
        return (-1, -1, -1)
    p = usage.get("prompt_tokens", usage.get("input_tokens"))
    c = usage.get("completion_tokens", usage.get("output_tokens"))
    t = usage.get("total_tokens")
    return tuple(-1 if v is None else int(v) for v in (p, c, t))


def main():
    corpus, out = sys.argv[1], sys.argv[2]
    groups = defaultdict(list)
    bodies, no_usage = [], []
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            size = len(r["response_body"].encode("utf-8"))
            if r["stream"] and r["reported_usage"] and size <= MAX_STREAM_BYTES:
                groups[(r["endpoint"], r["provider"])].append((size, r["id"], r))
            elif not r["stream"] and r["reported_usage"] and size <= MAX_STREAM_BYTES:
                bodies.append((size, r["id"], r))
            elif (r["stream"] and r["reported_usage"] is None and size <= 4000
                  and str(r.get("model", "")).startswith("gpt-4o")):
                no_usage.append((size, r["id"], r))
    picked = []
    for key in sorted(groups):
        rows = sorted(groups[key], key=lambda x: (x[0], x[1]))
        step = max(1, len(rows) // STREAMS_PER_GROUP)
        picked += [r for _, _, r in rows[::step][:STREAMS_PER_GROUP]]
    bodies.sort(key=lambda x: x[1])
    step = max(1, len(bodies) // JSON_BODIES)
    picked += [r for _, _, r in bodies[::step][:JSON_BODIES]]
    no_usage.sort(key=lambda x: (x[0], x[1]))
    picked += [r for _, _, r in no_usage[:STREAMS_WITHOUT_USAGE]]

    with open(out, "wb") as f:
        for r in picked:
            req = json.dumps(r["request"], separators=(",", ":")).encode("utf-8")
            resp = r["response_body"].encode("utf-8")
            p, c, t = counts(r["reported_usage"])
            ident = r["id"].replace(" ", "_")
            f.write(f"case {ident} {int(bool(r['stream']))} {p} {c} {t} {len(req)} {len(resp)}\n"
                    .encode("utf-8"))
            f.write(req)
            f.write(resp)
            f.write(b"\n")
    print(f"corpus_cases: {len(picked)} cases -> {out}", file=sys.stderr)
    if len(sys.argv) > 3:
        envelopes = write_apim(sys.argv[3], picked)
        if len(sys.argv) > 4:
            write_chargeback(sys.argv[4], corpus, picked, envelopes)


OPERATIONS = {
    "chat.completions": "ChatCompletions_Create",
    "completions": "Completions_Create",
    "embeddings": "embeddings_create",
    "responses": "Responses_Create",
}


def write_apim(out, picked):
    """One envelope per endpoint kind: a chat stream, a Responses stream, a JSON body."""
    chosen, seen, envelopes = [], set(), []
    for r in picked:
        kind = (r["endpoint"], bool(r["stream"]))
        if r["reported_usage"] and kind not in seen and kind in {
            ("chat.completions", True), ("responses", True), ("chat.completions", False)
        }:
            seen.add(kind)
            chosen.append(r)
    with open(out, "w", encoding="utf-8") as f:
        for i, r in enumerate(chosen):
            env = {
                "eventTime": f"2025-01-0{i + 1}T12:00:00.0000000Z",
                "apiOperation": OPERATIONS[r["endpoint"]],
                # APIM subscription keys are 32 hex digits.
                "appSubscriptionKey": hashlib.sha256(f"subscription-{i + 1}".encode()).hexdigest()[:32],
                "request": json.dumps(r["request"]),
                "response": r["response_body"],
                "expected": list(counts(r["reported_usage"])),
            }
            f.write(json.dumps(env) + "\n")
            envelopes.append((r, env))
    print(f"corpus_cases: {len(chosen)} APIM envelopes -> {out}", file=sys.stderr)
    return envelopes


def consumer_id(key):
    return hmac.new(CONSUMER_SECRET, key.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def events(body):
    """The SSE events of a body with LF line ends, each with its blank line."""
    parts = body.split("\n\n")
    out = [p + "\n\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def usage_only(event):
    data = "\n".join(line[5:].removeprefix(" ") for line in event.split("\n")
                     if line.startswith("data:"))
    try:
        chunk = json.loads(data)
    except ValueError:
        return False
    return isinstance(chunk, dict) and chunk.get("choices") == [] and chunk.get("usage") is not None


def write_chargeback(out, corpus, picked, envelopes):
    n = {"envelope": 0, "rewrite": 0, "filter": 0}
    with open(out, "wb") as f:
        def put(head, *blobs):
            f.write((" ".join(str(h) for h in head) + "\n").encode("utf-8"))
            for b in blobs:
                f.write(b)
            f.write(b"\n")
            n[head[0]] += 1

        # Envelopes: the APIM messages, and the first one cut at 2/3 of its length.
        cases = [(r, env, False) for r, env in envelopes] + [(envelopes[0][0], envelopes[0][1], True)]
        for r, env, cut in cases:
            env = {k: v for k, v in env.items() if k != "expected"}
            key = env["appSubscriptionKey"].encode("utf-8")
            raw = json.dumps(env).encode("utf-8")
            p, c, t = counts(r["reported_usage"])
            if cut:
                raw = raw[: len(raw) * 2 // 3]
                p, c, t = -1, -1, -1
            put(("envelope", r["id"].replace(" ", "_"), int(cut), p, c, t, env["eventTime"],
                 env["apiOperation"], consumer_id(env["appSubscriptionKey"]), len(key), len(raw)),
                key, raw)

        # Rewrites: a recorded streaming chat request without its stream_options (changed), one
        # with include_usage false (changed), the recorded one as is (the client asked), and a
        # non-streaming request (unchanged).
        dumps = lambda v: json.dumps(v, separators=(",", ":")).encode("utf-8")
        stream_req = next(r["request"] for r in picked if r["endpoint"] == "chat.completions"
                          and r["stream"] and (r["request"].get("stream_options") or {}).get("include_usage"))
        body_req = next(r["request"] for r in picked if r["endpoint"] == "chat.completions"
                        and not r["stream"])
        bare = {k: v for k, v in stream_req.items() if k != "stream_options"}
        bare_want = dumps(bare)[:-1] + b',"stream_options":{"include_usage":true}}'
        off = dict(stream_req, stream_options={"include_usage": False})
        off_want = dumps(off).replace(b'"include_usage":false', b'"include_usage":true')
        for name, body, changed, asked, want in [
            ("stream-without-stream_options", dumps(bare), 1, 0, bare_want),
            ("stream-include_usage-false", dumps(off), 1, 0, off_want),
            ("stream-client-asked", dumps(stream_req), 0, 1, dumps(stream_req)),
            ("not-streaming", dumps(body_req), 0, 0, dumps(body_req)),
        ]:
            if changed:
                parsed = json.loads(want)
                assert parsed["stream_options"]["include_usage"] is True and parsed["stream"] is True
            put(("rewrite", name, changed, asked, len(body), len(want)), body, want)

        # Filters: recorded chat streams with exactly one usage chunk, one per provider.
        seen = set()
        with open(corpus, encoding="utf-8") as src:
            rows = sorted((json.loads(line) for line in src), key=lambda r: r["id"])
        for r in rows:
            body = r["response_body"]
            if (r["endpoint"] != "chat.completions" or not r["stream"] or r["provider"] in seen
                    or len(body) > MAX_STREAM_BYTES or "\r" in body):
                continue
            evs = events(body)
            kept = [e for e in evs if not usage_only(e)]
            if len(evs) - len(kept) != 1:
                continue
            seen.add(r["provider"])
            raw, want = body.encode("utf-8"), "".join(kept).encode("utf-8")
            put(("filter", r["id"].replace(" ", "_"), 1, len(raw), len(want)), raw, want)
            if len(seen) == FILTER_STREAMS:
                break
    print(f"corpus_cases: {n['envelope']} envelopes, {n['rewrite']} rewrites, {n['filter']} "
          f"filter streams -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
