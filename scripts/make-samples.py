#!/usr/bin/env python3
"""Rebuilds samples/apim-events.jsonl: APIM Event Hub envelopes around real recorded calls from
../shared/corpus/dev.jsonl, for three made-up consumers. Deterministic; run from the repo root."""
import json, random, sys, datetime

corpus = sys.argv[1] if len(sys.argv) > 1 else "../shared/corpus/dev.jsonl"
recs = [json.loads(l) for l in open(corpus)]
rnd = random.Random(7)
# Made-up subscription keys: the ledger must show only their keyed hashes.
keys = ["9f1c2b7e4a6d4c1f8e3b5a7d9c2e4f60", "3b8e1d5c7a9f4e2b6d8c1a3e5f7b9d42", "c4a6e8f1b3d5a7c9e1f3b5d7a9c1e3f5"]
ops = {"chat.completions": "ChatCompletion", "completions": "TextCompletion", "embeddings": "Embeddings", "responses": "Responses"}
picked = []
for endpoint, stream, n in [("chat.completions", True, 12), ("chat.completions", False, 14), ("responses", True, 4),
                            ("responses", False, 4), ("embeddings", False, 3), ("completions", True, 2)]:
    pool = [r for r in recs if r["endpoint"] == endpoint and r["stream"] == stream and len(r["response_body"]) < 20000]
    picked += rnd.sample(pool, min(n, len(pool)))
out = []
for i, r in enumerate(picked):
    day = datetime.datetime(2025, 9, 1 + i % 3, 8 + i % 10, i % 60, tzinfo=datetime.timezone.utc)
    out.append({
        "eventTime": day.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "apiOperation": ops[r["endpoint"]],
        "appSubscriptionKey": keys[i % 3],
        "request": json.dumps(r["request"]),
        "response": r["response_body"],
    })
lines = [json.dumps(e) for e in out]
# One envelope cut the way APIM cuts messages over its size limit: invalid JSON at the end.
lines.append(lines[0][: len(lines[0]) * 2 // 3])
with open("samples/apim-events.jsonl", "w") as f:
    f.write("\n".join(lines) + "\n")
print(f"{len(lines)} envelopes")
