//! Request rewriting and the usage-chunk filter.
//!
//! - `ensure_include_usage`: a changed body that was valid JSON is still valid JSON, and asks
//!   for usage; an unchanged body is the input.
//! - `UsageChunkFilter`: the output is the input minus the usage-only events (found by a naive
//!   event splitter here), at any split.
#![no_main]
use libfuzzer_sys::fuzz_target;
use usagetap::rewrite::{ensure_include_usage, UsageChunkFilter};
use usagetap::wire;

/// The naive oracle: events end at an empty line (line ends LF, CR or CRLF); the tail after the
/// last one is passed through.
fn naive_filter(input: &[u8]) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let mut removed = 0;
    let (mut ev_start, mut line_start, mut i) = (0, 0, 0);
    while i < input.len() {
        let b = input[i];
        if b != b'\n' && b != b'\r' {
            i += 1;
            continue;
        }
        let blank = i == line_start;
        i += 1;
        if b == b'\r' && input.get(i) == Some(&b'\n') {
            i += 1;
        }
        line_start = i;
        if blank {
            let ev = &input[ev_start..i];
            if usage_only(ev) {
                removed += 1;
            } else {
                out.extend_from_slice(ev);
            }
            ev_start = i;
        }
    }
    out.extend_from_slice(&input[ev_start..]);
    (out, removed)
}

/// A usage-only chunk: `data` lines joined, mentioning `"usage"`, decoding to no choices and a
/// usage object.
fn usage_only(ev: &[u8]) -> bool {
    let mut data = Vec::new();
    for line in ev.split(|b| *b == b'\n' || *b == b'\r') {
        if let Some(v) = line.strip_prefix(b"data:") {
            if !data.is_empty() {
                data.push(b'\n');
            }
            data.extend_from_slice(v.strip_prefix(b" ").unwrap_or(v));
        }
    }
    data.windows(7).any(|w| w == b"\"usage\"")
        && wire::decode(&data).is_ok_and(|m| m.usage.is_some() && m.choices.is_empty())
}

fn filter(max_event: usize, pieces: &[&[u8]]) -> (Vec<u8>, u64) {
    let mut f = UsageChunkFilter::new(max_event);
    let mut out = Vec::new();
    for p in pieces {
        f.feed(p, &mut out);
    }
    f.finish(&mut out);
    (out, f.removed())
}

fuzz_target!(|data: &[u8]| {
    let Some(s) = usagetap_fuzz::split(data) else {
        return;
    };
    let body = s.body;

    let r = ensure_include_usage(body);
    if !r.changed {
        assert_eq!(&r.body[..], body);
    } else if serde_json::from_slice::<serde_json::Value>(body).is_ok() {
        let v: serde_json::Value = match serde_json::from_slice(&r.body) {
            Ok(v) => v,
            Err(e) => panic!(
                "rewrite broke valid JSON ({e}): {}",
                String::from_utf8_lossy(&r.body)
            ),
        };
        assert_eq!(
            v["stream_options"]["include_usage"],
            serde_json::Value::Bool(true)
        );
        assert!(!r.client_asked);
        let again = ensure_include_usage(&r.body);
        assert!(
            !again.changed && again.client_asked,
            "rewrite is not idempotent"
        );
    }

    // Filter: a large cap (no passthrough) against the oracle; a small cap only for split
    // invariance.
    let want = naive_filter(body);
    let whole = filter(1 << 20, &[body]);
    assert_eq!(whole, want, "filter differs from the naive oracle");
    assert_eq!(
        filter(1 << 20, &s.pieces(body)),
        whole,
        "filter depends on the split"
    );
    let small = filter(32, &[body]);
    assert!(small.1 <= whole.1);
});
