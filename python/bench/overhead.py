"""Per-call cost of the Python wheel, for `cargo bench -p usagetap-benches --bench overhead`
(which runs this with the Python of its own venv, target/py-bench-venv): prints "exchange NS"
and "feed NS", each the least of 15 batches.

    python overhead.py REQUEST_FILE RESPONSE_FILE CHUNK_FILE
"""

import sys
import time

import usagetap


def least_ns(fn, iters: int) -> float:
    runs = []
    for _ in range(15):
        t = time.perf_counter_ns()
        fn(iters)
        runs.append((time.perf_counter_ns() - t) / iters)
    return min(runs)


def main() -> None:
    req, resp, chunk = (open(p, "rb").read() for p in sys.argv[1:4])
    assert usagetap.meter(req, resp).total_tokens > 0

    def exchange(n: int) -> None:
        meter = usagetap.meter
        for _ in range(n):
            meter(req, resp)

    def feed(n: int) -> None:
        m = usagetap.Meter()
        f = m.feed
        for _ in range(n):
            f(chunk)

    print(f"exchange {least_ns(exchange, 20000):.1f}")
    print(f"feed {least_ns(feed, 200000):.1f}")


if __name__ == "__main__":
    main()
