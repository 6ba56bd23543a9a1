#!/usr/bin/env python3
"""Writes seed corpora for the fuzz targets from the recorded traffic.

    python3 fuzz/seed.py [--corpus PATH] [--max N]

PATH defaults to $USAGETAP_CORPUS, else ../shared/corpus/dev.jsonl (as for the tests).

Each target gets fuzz/corpus/<target>/<sha1>: request bodies, response bodies (SSE and JSON),
single SSE payloads, decoded data-URL images, APIM envelopes, text. Split targets take a
two-byte header first ([cfg, 0]: no cut points; see fuzz/src/lib.rs). The corpora are
generated, never committed (fuzz/corpus is gitignored).
"""
import argparse, base64, hashlib, json, os, re, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MAX_FILE = 64 * 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--corpus",
        default=os.environ.get("USAGETAP_CORPUS")
        or os.path.join(ROOT, "..", "shared", "corpus", "dev.jsonl"),
    )
    ap.add_argument("--out", default=os.path.join(HERE, "corpus"))
    ap.add_argument("--max", type=int, default=400, help="most seeds per target")
    a = ap.parse_args()

    seeds = {t: {} for t in ["sse_framer", "wire_decode", "request_parse", "image_sniff",
                             "envelope", "rewrite", "meter_split", "tokenizer_diff", "fast_vs_full"]}

    def add(target, data):
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        if not data or len(data) > MAX_FILE or len(seeds[target]) >= a.max:
            return
        seeds[target].setdefault(hashlib.sha1(data).hexdigest(), data)

    def texts(v, out):
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, list):
            for x in v:
                texts(x, out)
        elif isinstance(v, dict):
            for x in v.values():
                texts(x, out)

    samples = os.path.join(ROOT, "samples", "apim-events.jsonl")
    with open(a.corpus, encoding="utf-8") as f:
        records = [json.loads(l) for l in f if l.strip()]
    # Interleave streams and bodies so a small --max still covers both.
    records.sort(key=lambda r: (hashlib.sha1(r["id"].encode()).hexdigest()))
    for r in records:
        req = json.dumps(r["request"], ensure_ascii=False).encode()
        resp = r["response_body"].encode()
        add("request_parse", req)
        add("sse_framer", b"\0\0" + resp)
        add("meter_split", b"\0\0" + resp)
        add("meter_split", b"\x04\0" + req + b"\0" + resp)
        add("rewrite", b"\0\0" + (resp if r["stream"] else req))
        if r["stream"]:
            add("fast_vs_full", b"\0\0" + resp)
            add("fast_vs_full", b"\x02\0" + resp)
            for m in re.finditer(rb"^data: ?(.*)$", resp, re.M):
                if m.group(1) != b"[DONE]":
                    add("wire_decode", m.group(1))
        else:
            add("wire_decode", resp)
        env = {"eventTime": "2024-05-01T10:00:00Z", "apiOperation": "ChatCompletion",
               "appSubscriptionKey": "0123456789abcdef0123456789abcdef",
               "request": req.decode(), "response": r["response_body"]}
        add("envelope", json.dumps(env, ensure_ascii=False))
        t = []
        texts(r["request"].get("messages") or r["request"].get("input") or [], t)
        for i, s in enumerate(t):
            if s.startswith("data:image/"):
                payload = s.split(",", 1)[-1]
                try:
                    add("image_sniff", base64.b64decode(payload + "==")[:MAX_FILE])
                except Exception:
                    pass
                add("image_sniff", payload[:4096])
            elif i < 4:
                # Mode byte first (see the target): as is, and repeated into long pieces.
                add("tokenizer_diff", "\x00" + s[:4096])
                add("tokenizer_diff", "\x01" + s[:64])
    if os.path.exists(samples):
        with open(samples, encoding="utf-8") as f:
            for l in f:
                add("envelope", l.rstrip("\n"))

    for t, d in seeds.items():
        out = os.path.join(a.out, t)
        os.makedirs(out, exist_ok=True)
        for h, data in d.items():
            with open(os.path.join(out, h), "wb") as f:
                f.write(data)
        print(f"seed {t}: {len(d)} files", file=sys.stderr)


if __name__ == "__main__":
    main()
