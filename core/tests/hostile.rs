//! Hostile input: every case gives a record (or a clear error) within the configured limits,
//! none panics, and the peak heap of each case is measured and printed.
//!
//! A counting global allocator tracks live and peak heap bytes. Each case builds its input
//! first, then measures only the work of the library, and checks the peak against a bound
//! derived from the limits (set small here, 1 MiB, so that the bound means something).
//! Cases run one at a time (a lock), so the peak of one is not another's.
//!
//! Run with `cargo test -p usagetap --test hostile -- --nocapture` to see the table.

use usagetap::adapters::{meter_envelope, ConsumerHasher, Envelope};
use usagetap::request::Request;
use usagetap::rewrite::{ensure_include_usage, UsageChunkFilter};
use usagetap::sse::Framer;
use usagetap::{
    json_scan, meter, prompt, wire, Encoding, Endpoint, ErrorKind, Limits, Meter, MeterOptions,
    Status, UsageRecord,
};

mod alloc;

use alloc::{bounded, measure, serial, MIB};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// The limits of these tests: 1 MiB for line, body and text.
fn limits() -> Limits {
    Limits {
        max_line_bytes: MIB,
        max_body_bytes: MIB,
        max_text_bytes: MIB,
        max_choices: 128,
        max_tool_calls: 1024,
        ..Limits::default()
    }
}

fn opts() -> MeterOptions {
    MeterOptions {
        limits: limits(),
        ..MeterOptions::default()
    }
}

/// What the meter may hold at once: a line being assembled, an event's data (or a JSON body),
/// the completion text, each up to twice its cap (vector growth), plus 2 MiB for the rest
/// (choices, tool-call slots, the decoded message of one event, the record).
fn meter_bound(l: &Limits) -> usize {
    2 * (l.max_line_bytes + l.max_body_bytes + l.max_text_bytes) + 2 * MIB
}

fn has(r: &UsageRecord, flag: &str) -> bool {
    r.flags.names().any(|f| f == flag)
}

/// Meters `resp` fed in `piece`-byte pieces with the test limits (and `req` when not empty).
fn meter_pieces(o: MeterOptions, req: &[u8], resp: &[u8], piece: usize) -> UsageRecord {
    let mut m = Meter::new(o);
    if !req.is_empty() {
        let _ = m.request(req);
    }
    for p in resp.chunks(piece.max(1)) {
        m.feed(p).expect("feed");
    }
    m.finish().expect("finish")
}

fn chunk(content: &str) -> String {
    format!("data: {{\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}}}}]}}\n\n")
}

const USAGE: &str = "data: {\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n";

// ---------------------------------------------------------------------------------------------
// Size: over-long lines and bodies.

#[test]
fn line_of_64_mib_without_newline() {
    let _g = serial();
    let mut input = b"data: {\"choices\":[{\"delta\":{\"content\":\"".to_vec();
    input.resize(64 * MIB, b'x');
    let l = limits();
    for piece in [64 * 1024, 64 * MIB] {
        let r = bounded(
            &format!("sse: 64 MiB line, {} KiB pieces", piece / 1024),
            meter_bound(&l),
            || meter_pieces(opts(), b"", &input, piece),
        );
        assert!(
            has(&r, "line_too_long") && has(&r, "truncated"),
            "{:?}",
            r.flags.names().collect::<Vec<_>>()
        );
    }
    // The framer alone: nothing dispatched, one line dropped, nothing buffered.
    let dropped = bounded("framer: 64 MiB line", 2 * l.max_line_bytes + MIB, || {
        let mut f = Framer::new(l.max_line_bytes, l.max_body_bytes);
        let mut n = 0;
        for p in input.chunks(1 << 16) {
            f.feed(p, |_| n += 1);
        }
        f.finish(|_| n += 1);
        assert_eq!(n, 0);
        f.lines_dropped()
    });
    assert_eq!(dropped, 1);
    // The filter passes an over-long event through unread, holding at most its cap.
    bounded("filter: 64 MiB line", 4 * l.max_body_bytes + MIB, || {
        let mut filt = UsageChunkFilter::new(l.max_body_bytes);
        let mut out = Vec::new();
        let mut total = 0;
        for p in input.chunks(1 << 16) {
            filt.feed(p, &mut out);
            total += out.len();
            out.clear();
        }
        filt.finish(&mut out);
        assert_eq!(total + out.len(), input.len());
    });
}

#[test]
fn json_body_of_64_mib() {
    let _g = serial();
    let mut input = b"{\"choices\":[{\"message\":{\"content\":\"".to_vec();
    input.resize(64 * MIB, b'y');
    let l = limits();
    let r = bounded("json: 64 MiB body, 64 KiB pieces", meter_bound(&l), || {
        meter_pieces(opts(), b"", &input, 1 << 16)
    });
    assert!(has(&r, "body_too_large") && has(&r, "truncated"));
    let r = bounded("json: 64 MiB body, one piece", meter_bound(&l), || {
        meter(opts(), b"", &input).expect("meter")
    });
    assert!(has(&r, "body_too_large"));
}

// ---------------------------------------------------------------------------------------------
// Depth: 10⁶ nested arrays.

fn nested(n: usize) -> Vec<u8> {
    let mut v = vec![b'['; n];
    v.resize(2 * n, b']');
    v
}

#[test]
fn million_nested_arrays() {
    let _g = serial();
    let deep = nested(1_000_000);
    // In limits large enough to read it (4 MiB), so the JSON reader itself meets the depth.
    let mut big = opts();
    big.limits.max_line_bytes = 4 * MIB;
    big.limits.max_body_bytes = 4 * MIB;
    let bound = meter_bound(&big.limits);

    let mut sse = b"data: {\"choices\":".to_vec();
    sse.extend_from_slice(&deep);
    sse.extend_from_slice(b"}\n\n");
    sse.extend_from_slice(USAGE.as_bytes());
    sse.extend_from_slice(b"data: [DONE]\n\n");
    let r = bounded("sse: 10^6 nested arrays in a data line", bound, || {
        meter_pieces(big.clone(), b"", &sse, 1 << 16)
    });
    // The deep event is skipped whole with a flag; the usage chunk after it is still read.
    assert!(has(&r, "json_too_deep"), "{:?}", r.flags);
    assert_eq!(r.total_tokens, 7, "the usage chunk after it is still read");
    // With the 1 MiB limits the line is simply too long.
    let r = bounded("sse: same, 1 MiB limits", meter_bound(&limits()), || {
        meter_pieces(opts(), b"", &sse, 1 << 16)
    });
    assert!(has(&r, "line_too_long"));

    let mut body = b"{\"usage\":{\"prompt_tokens\":".to_vec();
    body.extend_from_slice(&deep);
    body.extend_from_slice(b"}}");
    let r = bounded("json: 10^6 nested arrays in a usage value", bound, || {
        meter(big.clone(), b"", &body).expect("meter")
    });
    assert!(
        has(&r, "json_too_deep") && r.status == Status::Error,
        "{r:?}"
    );
    let r = bounded("json: bare 10^6 nested arrays", bound, || {
        meter(big.clone(), b"", &deep).expect("meter")
    });
    assert!(
        has(&r, "json_too_deep") && r.status == Status::Error,
        "{r:?}"
    );

    let mut req = b"{\"model\":\"gpt-4o\",\"messages\":".to_vec();
    req.extend_from_slice(&deep);
    req.push(b'}');
    let r = bounded("request: 10^6 nested arrays", 4 * MIB, || {
        Request::parse(&req).map(|_| ())
    });
    println!("  request: {r:?}");
    let r = bounded("meter: request with 10^6 nested arrays", bound, || {
        let mut m = Meter::new(big.clone());
        let e = m.request(&req).expect_err("too deep");
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        m.feed(&sse).unwrap();
        m.finish().unwrap()
    });
    assert!(has(&r, "json_too_deep") && has(&r, "request_unparsed"));
    assert_eq!(r.total_tokens, 7);
    bounded(
        "rewrite: 10^6 nested arrays (input + output)",
        8 * MIB,
        || {
            let mut b = b"{\"stream\":true,\"messages\":[],\"x\":".to_vec();
            b.extend_from_slice(&deep);
            b.push(b'}');
            assert!(ensure_include_usage(&b).changed);
        },
    );
    bounded("json_scan: 10^6 nested arrays", 4 * MIB, || {
        assert!(json_scan::scan_object(&deep).is_none())
    });
    bounded("wire::decode: 10^6 nested arrays", 4 * MIB, || {
        println!("  decode: ok = {}", wire::decode(&deep).is_ok())
    });
    let mut env = b"{\"appSubscriptionKey\":\"k\",\"response\":".to_vec();
    env.extend_from_slice(&deep);
    env.push(b'}');
    bounded("envelope: 10^6 nested arrays", bound + 8 * MIB, || {
        let r = meter_envelope(&env, &big, &ConsumerHasher::new(b"s")).expect("envelope");
        assert!(r.consumer.is_some());
    });
    // Schemas nested deep in a tools definition (prompt rendering recurses on schemas).
    let mut schema = String::from("{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":");
    for _ in 0..100 {
        schema.push_str("{\"type\":\"object\",\"properties\":{\"a\":");
    }
    schema.push_str("{\"type\":\"string\"}");
    for _ in 0..100 {
        schema.push_str("}}");
    }
    schema.push_str("}}]}");
    bounded(
        "prompt: tools schema nested 100 deep",
        4 * MIB,
        || match Request::parse(schema.as_bytes()) {
            Ok(r) => {
                let _ = prompt::count(&r, Endpoint::ChatCompletions, "gpt-4o", Encoding::O200kBase);
            }
            Err(e) => println!("  schema request error: {e}"),
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Bytes: invalid UTF-8 and NUL.

#[test]
fn invalid_utf8_everywhere() {
    let _g = serial();
    let bad = b"\xff\xfe\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc\xed\xa0\x80";
    let mut sse = Vec::new();
    for i in 0..1000 {
        sse.extend_from_slice(
            b"data: {\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"",
        );
        sse.extend_from_slice(bad);
        sse.extend_from_slice(b"\"}}]}\n");
        sse.extend_from_slice(&bad[..i % bad.len()]);
        sse.extend_from_slice(b"\n\nevent: \xff\xfe\n: \xc3\n\n");
    }
    sse.extend_from_slice(USAGE.as_bytes());
    let l = limits();
    let r = bounded("sse: invalid UTF-8 in every line", meter_bound(&l), || {
        meter_pieces(opts(), bad, &sse, 7)
    });
    assert!(has(&r, "malformed_event_skipped") && has(&r, "request_unparsed"));
    assert_eq!(r.total_tokens, 7);
    let mut body = b"{\"model\":\"".to_vec();
    body.extend_from_slice(bad);
    body.extend_from_slice(b"\",\"usage\":{\"prompt_tokens\":1}}");
    let r = bounded("json: invalid UTF-8 in a string", meter_bound(&l), || {
        meter(opts(), b"", &body).expect("meter")
    });
    assert_eq!(r.status, usagetap::Status::Error);
    bounded(
        "request/rewrite/envelope/filter: invalid UTF-8",
        4 * MIB,
        || {
            let mut req = b"{\"stream\":true,\"model\":\"".to_vec();
            req.extend_from_slice(bad);
            req.extend_from_slice(b"\",\"messages\":[]}");
            assert!(Request::parse(&req).is_err());
            let rw = ensure_include_usage(&req);
            assert!(
                rw.changed
                    && rw
                        .body
                        .ends_with(b",\"stream_options\":{\"include_usage\":true}}")
            );
            let mut env = b"{\"appSubscriptionKey\":\"".to_vec();
            env.extend_from_slice(bad);
            env.extend_from_slice(b"\",\"request\":\"");
            env.extend_from_slice(bad);
            env.extend_from_slice(b"\",\"response\":\"");
            env.extend_from_slice(&sse[..200]);
            env.extend_from_slice(b"\"}");
            let r = meter_envelope(&env, &opts(), &ConsumerHasher::new(b"s")).expect("envelope");
            let _ = r.record.to_json();
            assert!(Envelope::parse(bad).is_err());
            let mut out = Vec::new();
            let mut filt = UsageChunkFilter::new(MIB);
            filt.feed(&sse, &mut out);
            filt.finish(&mut out);
            assert_eq!(filt.removed(), 1);
        },
    );
}

#[test]
fn nul_bytes() {
    let _g = serial();
    let l = limits();
    let zeros = vec![0u8; 4 * MIB];
    let r = bounded("sse/json: 4 MiB of NUL bytes", meter_bound(&l), || {
        meter_pieces(opts(), &zeros, &zeros, 1 << 16)
    });
    assert!(
        has(&r, "line_too_long") || has(&r, "malformed_event_skipped"),
        "{:?}",
        r.flags.names().collect::<Vec<_>>()
    );
    let mut sse = String::new();
    for _ in 0..1000 {
        sse.push_str("data: {\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\\u0000b\"}}]}\n\ndata: \0\0\0\n\n\0: \0\n\n");
    }
    sse.push_str("data: [DONE]\n\n");
    let r = bounded(
        "sse: NUL escaped and raw, 1000 events",
        meter_bound(&l),
        || meter_pieces(opts(), b"", sse.as_bytes(), 5),
    );
    assert!(r.completion_tokens > 0 && has(&r, "malformed_event_skipped"));
    let req = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"\\u0000\"}]}\0";
    let r = bounded("request: trailing NUL", 4 * MIB, || {
        Request::parse(req.as_bytes()).map(|_| ())
    });
    assert!(r.is_err());
}

// ---------------------------------------------------------------------------------------------
// Time: 10⁶ repeated characters.

#[test]
fn a_million_a() {
    let _g = serial();
    let a = "a".repeat(1_000_000);
    // The content arrives in 1000 chunks of 1000 (each line well under the line cap), with no
    // usage, so the million characters are tokenized at `finish`. Time is printed, not asserted.
    let mut sse = String::new();
    for c in a.as_bytes().chunks(1000) {
        sse.push_str(&chunk(std::str::from_utf8(c).expect("ascii")));
    }
    sse.push_str("data: [DONE]\n\n");
    let l = limits();
    // Tokenizing costs memory linear in the text, but about 70 bytes per byte for one long piece
    // (measured with tiktoken-rs 0.12; see SECURITY.md): the bound allows 96.
    let tok = 96 * l.max_text_bytes;
    let r = bounded(
        "sse: \"a\" x 10^6 content, counted",
        meter_bound(&l) + tok,
        || meter_pieces(opts(), b"", sse.as_bytes(), 1 << 16),
    );
    assert!(r.completion_tokens > 0 && !has(&r, "text_limit_reached"));
    println!("  completion_tokens = {}", r.completion_tokens);
    let n = bounded("Encoding::count(\"a\" x 10^6) o200k", tok, || {
        Encoding::O200kBase.count(&a)
    });
    let c = bounded("Encoding::count(\"a\" x 10^6) cl100k", tok, || {
        Encoding::Cl100kBase.count(&a)
    });
    println!("  o200k = {n}, cl100k = {c}");
    let req = format!(
        "{{\"model\":\"gpt-4o\",\"messages\":[{{\"role\":\"user\",\"content\":\"{a}\"}}]}}"
    );
    bounded("prompt::count of \"a\" x 10^6", tok + 4 * MIB, || {
        let r = Request::parse(req.as_bytes()).expect("request");
        prompt::count(&r, Endpoint::ChatCompletions, "gpt-4o", Encoding::O200kBase).tokens
    });
}

// ---------------------------------------------------------------------------------------------
// Values: numbers, duplicates, repeats, order.

#[test]
fn numbers_beyond_u64_and_negative_usage() {
    let _g = serial();
    let l = limits();
    for usage in [
        "{\"prompt_tokens\":18446744073709551616,\"completion_tokens\":-1,\"total_tokens\":1e400}",
        "{\"prompt_tokens\":99999999999999999999999999999,\"completion_tokens\":1.5,\"total_tokens\":-0}",
        "{\"prompt_tokens\":-9223372036854775809,\"completion_tokens\":18446744073709551615,\"total_tokens\":18446744073709551615}",
        "{\"prompt_tokens\":\"12\",\"completion_tokens\":[1],\"total_tokens\":{\"a\":1},\"prompt_tokens_details\":{\"cached_tokens\":-5}}",
    ] {
        let body = format!("{{\"object\":\"chat.completion\",\"model\":\"gpt-4o\",\"choices\":[{{\"index\":18446744073709551616,\"message\":{{\"content\":\"x\"}}}},{{\"index\":-1,\"message\":{{\"content\":\"y\"}}}}],\"usage\":{usage}}}");
        let r = bounded("json: usage beyond u64 / negative", meter_bound(&l), || meter(opts(), b"", body.as_bytes()).expect("meter"));
        println!("  {usage} -> status {:?} prompt {} completion {} total {} flags {:?}", r.status, r.prompt_tokens, r.completion_tokens, r.total_tokens, r.flags.names().collect::<Vec<_>>());
        let _ = r.to_json();
        let sse = format!("data: {}\n\ndata: [DONE]\n\n", body.replace("chat.completion\"", "chat.completion.chunk\""));
        let s = meter_pieces(opts(), b"", sse.as_bytes(), 3);
        assert_eq!(s, meter(opts(), b"", sse.as_bytes()).expect("meter"));
    }
}

#[test]
fn duplicate_keys() {
    let _g = serial();
    let l = limits();
    let body = "{\"model\":\"gpt-4o\",\"model\":\"gpt-3.5-turbo\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"prompt_tokens\":2,\"completion_tokens\":3,\"total_tokens\":5}}";
    let r = bounded("json: duplicate keys", meter_bound(&l), || {
        meter(opts(), b"", body.as_bytes()).expect("meter")
    });
    println!(
        "  duplicate keys -> status {:?} flags {:?} error {:?}",
        r.status,
        r.flags.names().collect::<Vec<_>>(),
        r.error
    );
    let req =
        "{\"model\":\"gpt-4o\",\"stream\":false,\"stream\":true,\"messages\":[],\"messages\":[]}";
    println!(
        "  request with duplicate keys -> {:?}",
        Request::parse(req.as_bytes())
            .map(|_| ())
            .map_err(|e| e.to_string())
    );
    let rw = ensure_include_usage(req.as_bytes());
    assert!(rw.changed, "the last `stream` wins, as in JSON parsers");
    let env = "{\"response\":\"a\",\"response\":\"{}\",\"appSubscriptionKey\":\"k\"}";
    let r = meter_envelope(env.as_bytes(), &opts(), &ConsumerHasher::new(b"s")).expect("envelope");
    let _ = r.record.to_json();
}

#[test]
fn usage_chunk_repeated_and_done_in_the_middle() {
    let _g = serial();
    let l = limits();
    let mut sse = chunk("Hello");
    for _ in 0..10_000 {
        sse.push_str(USAGE);
    }
    sse.push_str("data: [DONE]\n\n");
    sse.push_str(&chunk(" again"));
    sse.push_str("data: [DONE]\n\n");
    let r = bounded(
        "sse: usage x 10^4, [DONE] in the middle",
        meter_bound(&l),
        || meter_pieces(opts(), b"", sse.as_bytes(), 11),
    );
    assert!(has(&r, "usage_repeated") && has(&r, "data_after_done"));
    assert_eq!(
        (r.prompt_tokens, r.completion_tokens, r.total_tokens),
        (5, 2, 7)
    );
    bounded("filter: usage x 10^4", 4 * MIB, || {
        let mut f = UsageChunkFilter::new(MIB);
        let mut out = Vec::new();
        for p in sse.as_bytes().chunks(13) {
            f.feed(p, &mut out);
        }
        f.finish(&mut out);
        assert_eq!(f.removed(), 10_000);
    });
}

#[test]
fn endless_comments() {
    let _g = serial();
    let l = limits();
    let ping = ": ping\n".repeat(1_000_000);
    let mut sse = ping.clone();
    sse.push_str(&chunk("Hi"));
    sse.push_str(&ping);
    sse.push_str(USAGE);
    sse.push_str(&ping);
    sse.push_str("data: [DONE]\n\n");
    let r = bounded("sse: 3 x 10^6 comment lines", meter_bound(&l), || {
        meter_pieces(opts(), b"", sse.as_bytes(), 4096)
    });
    assert_eq!((r.total_tokens, r.status), (7, usagetap::Status::Complete));
    let r = bounded("sse: 10^6 comment lines only", meter_bound(&l), || {
        meter_pieces(opts(), b"", ping.as_bytes(), 4096)
    });
    assert!(has(&r, "malformed_event_skipped") && r.status == usagetap::Status::Error);
    // Blank lines only: events with no data.
    let blanks = "\n".repeat(1_000_000);
    let mut sse = String::from("data: x\n");
    sse.push_str(&blanks);
    let r = bounded("sse: 10^6 blank lines", meter_bound(&l), || {
        meter_pieces(opts(), b"", sse.as_bytes(), 4096)
    });
    let _ = r.to_json();
}

// ---------------------------------------------------------------------------------------------
// Images: base64 that lies.

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            s.push(if i <= c.len() {
                char::from(A[((n >> (18 - 6 * i)) & 63) as usize])
            } else {
                '='
            });
        }
    }
    s
}

#[test]
fn base64_that_lies_about_image_size() {
    let _g = serial();
    // A PNG header declaring 2³¹-1 × 2³¹-1 pixels, followed by nothing.
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    png.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
    png.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
    png.extend_from_slice(b"\x08\x06\0\0\0");
    // A JPEG whose APP1 segments chain on for 8 MiB before any SOF.
    let mut jpeg = b"\xff\xd8".to_vec();
    while jpeg.len() < 8 * MIB {
        jpeg.extend_from_slice(b"\xff\xe1\xff\xff");
        jpeg.resize(jpeg.len() + 0xfffd, 0);
    }
    let urls = [
        format!("data:image/png;base64,{}", b64(&png)),
        format!("data:image/jpeg;base64,{}", b64(&jpeg)),
        // Says PNG, is 8 MiB of `A` (zero bytes), with whitespace every 76 characters.
        format!(
            "data:image/png;base64,{}",
            "AAAA"
                .repeat(19)
                .chars()
                .chain(['\n'])
                .collect::<String>()
                .repeat(110_000)
        ),
        // A GIF header cut in the middle of a base64 block, then garbage.
        format!("data:image/gif;base64,R0lGODlh//8{}", "!".repeat(MIB)),
    ];
    // Requests this large are refused under the 1 MiB body cap; a 16 MiB cap lets the image
    // reader meet them.
    let mut big = opts();
    big.limits.max_body_bytes = 16 * MIB;
    for (i, u) in urls.iter().enumerate() {
        // The line breaks inside the base64 travel escaped in JSON.
        let u = u.replace('\n', "\\n");
        let req = format!("{{\"model\":\"gpt-4o\",\"messages\":[{{\"role\":\"user\",\"content\":[{{\"type\":\"image_url\",\"image_url\":{{\"url\":\"{u}\",\"detail\":\"high\"}}}}]}}]}}");
        let body = "{\"object\":\"chat.completion\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"message\":{\"content\":\"ok\"}}]}";
        let r = bounded(
            &format!("image: lying data URL #{i} ({} KiB)", u.len() / 1024),
            // The meter keeps a copy of the request, and reading it may unescape a string.
            meter_bound(&limits()) + 3 * req.len(),
            || meter(big.clone(), req.as_bytes(), body.as_bytes()).expect("meter"),
        );
        println!(
            "  #{i}: prompt {} image {:?} flags {:?}",
            r.prompt_tokens,
            r.image_tokens,
            r.flags.names().collect::<Vec<_>>()
        );
        assert!(r.prompt_tokens < 1 << 40);
        assert!(!has(&r, "request_unparsed"));
    }
    // Under the 1 MiB cap the 8 MiB request is not read at all.
    let req = format!("{{\"model\":\"gpt-4o\",\"messages\":[{{\"role\":\"user\",\"content\":[{{\"type\":\"image_url\",\"image_url\":{{\"url\":\"{}\"}}}}]}}]}}", urls[1]);
    let r = bounded(
        "request: 8 MiB over a 1 MiB max_body_bytes",
        meter_bound(&limits()),
        || {
            meter(
                opts(),
                req.as_bytes(),
                b"{\"object\":\"chat.completion\",\"choices\":[]}",
            )
            .expect("meter")
        },
    );
    assert!(has(&r, "body_too_large") && has(&r, "request_unparsed"));
}

#[test]
fn ten_thousand_images() {
    let _g = serial();
    // 10^4 copies of a real PNG header in data URLs: only `max_images` headers are read.
    let png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAoAAAAHgCAIAAAC6s0uzAAAAAElFTkSuQmCC";
    let part = format!("{{\"type\":\"image_url\",\"image_url\":{{\"url\":\"{png}\"}}}}");
    let req = many(
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":[",
        &part,
        10_000,
        "]}]}",
    );
    let body = b"{\"object\":\"chat.completion\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"message\":{\"content\":\"ok\"}}]}";
    let mut o = opts();
    o.limits.max_body_bytes = 16 * MIB;
    let r = bounded(
        "request: 10^4 data-URL images",
        meter_bound(&limits()) + 3 * req.len(),
        || meter(o.clone(), &req, body).expect("meter"),
    );
    println!(
        "  prompt {} image {:?} flags {:?}",
        r.prompt_tokens,
        r.image_tokens,
        r.flags.names().collect::<Vec<_>>()
    );
    assert!(has(&r, "too_many_images") && has(&r, "image_size_unknown"));
    let max = limits().max_images as u64;
    assert!(
        r.image_tokens.unwrap() >= max * 425,
        "the first {max} are sized (425 each)"
    );
}

// ---------------------------------------------------------------------------------------------
// Counts: 10⁵ choices and 10⁵ tool calls.

#[test]
fn hundred_thousand_choice_indexes() {
    let _g = serial();
    let l = limits();
    let mut sse = String::new();
    for i in 0..100_000u64 {
        sse.push_str(&format!("data: {{\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{{\"index\":{i},\"delta\":{{\"content\":\"x\"}}}}]}}\n\n"));
    }
    sse.push_str(USAGE);
    sse.push_str("data: [DONE]\n\n");
    let r = bounded(
        "sse: 10^5 choice indexes, one per event",
        meter_bound(&l),
        || meter_pieces(opts(), b"", sse.as_bytes(), 1 << 16),
    );
    assert!(has(&r, "too_many_choices") && r.choices.len() == 128);
}

#[test]
fn hundred_thousand_tool_calls() {
    let _g = serial();
    let l = limits();
    let mut sse = String::new();
    for i in 0..100_000u64 {
        sse.push_str(&format!("data: {{\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"index\":{i},\"function\":{{\"name\":\"f\",\"arguments\":\"{{}}\"}}}}]}}}}]}}\n\n"));
    }
    sse.push_str("data: [DONE]\n\n");
    let r = bounded(
        "sse: 10^5 tool calls, one per event",
        meter_bound(&l),
        || meter_pieces(opts(), b"", sse.as_bytes(), 1 << 16),
    );
    assert!(has(&r, "too_many_tool_calls"));
}

/// A JSON array of `n` copies of `item`, inside `before` … `after`.
fn many(before: &str, item: &str, n: usize, after: &str) -> Vec<u8> {
    let mut v = before.as_bytes().to_vec();
    for i in 0..n {
        if i > 0 {
            v.push(b',');
        }
        v.extend_from_slice(item.as_bytes());
    }
    v.extend_from_slice(after.as_bytes());
    v
}

/// One body of 10⁵ choices / tool calls (under the 1 MiB body cap): decoding must not hold
/// more than the limits allow. Each element is decoded into a struct of a few hundred bytes
/// before `max_choices` / `max_tool_calls` apply.
fn one_body_many(name: &str, body: &[u8]) -> usize {
    let l = limits();
    assert!(body.len() <= l.max_body_bytes, "{} bytes", body.len());
    let (r, peak) = measure(name, || meter(opts(), b"", body).expect("meter"));
    println!(
        "  body {} KiB -> flags {:?}",
        body.len() / 1024,
        r.flags.names().collect::<Vec<_>>()
    );
    peak
}

#[test]
fn hundred_thousand_choices_in_one_body_is_measured() {
    let _g = serial();
    let body = many(
        "{\"object\":\"chat.completion\",\"choices\":[",
        "{\"index\":1}",
        80_000,
        "]}",
    );
    let _ = one_body_many("json: 8x10^4 choices in one body", &body);
    let body = many(
        "{\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"tool_calls\":[",
        "{\"index\":1}",
        80_000,
        "]}}]}",
    );
    let _ = one_body_many("json: 8x10^4 tool calls in one body", &body);
}

/// Regression (found by this suite): `wire::decode` used to build every element of `choices`
/// (and of a choice's `tool_calls`) before `max_choices` / `max_tool_calls` applied, so 1 MiB of
/// `{},` choices within `max_body_bytes` took ~153 MiB of heap (tool calls ~45 MiB, one SSE
/// event ~71 MiB). Entry points: `meter` / `Meter::finish` → `Accum::on_body` → `wire::decode`
/// (JSON bodies) and `Meter::feed` → `Accum::on_frame` → `wire::decode` (one SSE event).
/// Fixed by a per-message list-element budget (`wire::MAX_LIST_ELEMENTS`).
#[test]
fn choices_in_one_body_stay_within_the_bound() {
    let _g = serial();
    let l = limits();
    let n = (l.max_body_bytes - 64) / 3;
    let body = many(
        "{\"object\":\"chat.completion\",\"choices\":[",
        "{}",
        n,
        "]}",
    );
    let choices = one_body_many("json: 1 MiB of {} choices", &body);
    let body = many(
        "{\"object\":\"chat.completion\",\"choices\":[{\"delta\":{\"tool_calls\":[",
        "{}",
        n - 20,
        "]}}]}",
    );
    let calls = one_body_many("json: 1 MiB of {} tool calls", &body);
    let mut sse = many(
        "data: {\"object\":\"chat.completion.chunk\",\"choices\":[",
        "{}",
        n - 40,
        "]}\n\n",
    );
    sse.extend_from_slice(b"data: [DONE]\n\n");
    let (_, event) = measure("sse: one event of 1 MiB of {} choices", || {
        meter(opts(), b"", &sse).expect("meter")
    });
    for (what, peak) in [
        ("choices", choices),
        ("tool calls", calls),
        ("sse event", event),
    ] {
        assert!(
            peak <= meter_bound(&l),
            "{what}: peak {peak} over {}",
            meter_bound(&l)
        );
    }
}

/// Regression (fuzz target `meter_split`, found against the core of e4dff30; the input is
/// kept in `fuzz/regressions/meter_split-1a9612e5`: header `04 00`, then a Responses API
/// request, NUL, its recorded stream). The per-thread list-element budget of `wire` started at
/// `MAX_LIST_ELEMENTS` and was spent by decodes outside a budget scope, never restored: after
/// enough exchanges on one thread, the request's `input` list decoded empty and the computed
/// `prompt_tokens` of this exchange fell from 33 to 12. Metering the same exchange many times on
/// one thread must give the same record every time.
#[test]
fn same_exchange_metered_many_times_on_one_thread() {
    let _g = serial();
    let data = include_bytes!("../../fuzz/regressions/meter_split-1a9612e5");
    let body = &data[2..];
    let nul = body
        .iter()
        .position(|&b| b == 0)
        .expect("request NUL response");
    let (req, resp) = (&body[..nul], &body[nul + 1..]);
    let first = meter(MeterOptions::default(), req, resp).expect("meter");
    let (_, _) = measure("same exchange metered 3000 times", || {
        for i in 0..3000 {
            let r = meter(MeterOptions::default(), req, resp).expect("meter");
            assert_eq!(r, first, "exchange #{i} differs from the first");
        }
    });
}
