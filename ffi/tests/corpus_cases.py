#!/usr/bin/env python3
"""Picks real exchanges from the corpus for the C and C# tests and writes them in a format a
C program reads without a JSON parser.

usage: corpus_cases.py CORPUS OUT [APIM_OUT]

Each case is one header line, then the request and response bytes, then a newline:

    case ID STREAM PROMPT COMPLETION TOTAL REQUEST_LEN RESPONSE_LEN\\n<request><response>\\n

PROMPT/COMPLETION/TOTAL are the service's reported usage (Responses API: input/output mapped
onto prompt/completion); -1 when the service sent none (the test then only checks that the
counts are computed). ID has its spaces replaced by '_'.

APIM_OUT, when given, gets a few of the same exchanges as APIM-style Event Hub messages, one
JSON object per line: {"eventTime", "apiOperation", "appSubscriptionKey", "request": "<request
JSON as a string>", "response": "<response body: SSE text or JSON as a string>"}, plus
"expected": [prompt, completion, total] for the test.

The pick is deterministic: streams with reported usage spread over every endpoint and
provider (smallest first within each group, so valgrind stays quick), some JSON bodies, and a
few streams without usage.
"""

import json
import sys
from collections import defaultdict

STREAMS_PER_GROUP = 10
MAX_STREAM_BYTES = 24_000
JSON_BODIES = 12
STREAMS_WITHOUT_USAGE = 2


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
        write_apim(sys.argv[3], picked)


OPERATIONS = {
    "chat.completions": "ChatCompletions_Create",
    "completions": "Completions_Create",
    "embeddings": "embeddings_create",
    "responses": "Responses_Create",
}


def write_apim(out, picked):
    """One envelope per endpoint kind: a chat stream, a Responses stream, a JSON body."""
    chosen, seen = [], set()
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
                "appSubscriptionKey": f"subscription-{i + 1}",
                "request": json.dumps(r["request"]),
                "response": r["response_body"],
                "expected": list(counts(r["reported_usage"])),
            }
            f.write(json.dumps(env) + "\n")
    print(f"corpus_cases: {len(chosen)} APIM envelopes -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
