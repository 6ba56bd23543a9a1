//! Criterion benches: framing, the full decoder, token counting, requests (their check, their
//! full parse, prompt counting) and the whole meter, on the recorded corpus and on long synthetic
//! OpenAI / Azure streams. Throughput is in bytes of input (SSE, chunk JSON, request JSON).
//!
//! Run: `cargo bench -p usagetap-benches` (results in target/criterion).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use usagetap::request::Request;
use usagetap::sse::Framer;
use usagetap::{prompt, wire, Encoding, Endpoint, Meter, MeterOptions};
use usagetap_benches::{
    carries_usage_chunk, corpus_chat_streams, corpus_chunks, corpus_mixed_text, corpus_prose,
    corpus_requests, synthetic_azure, synthetic_openai, without_usage,
};

fn meter_once(req: &[u8], body: &[u8], piece: usize) -> u64 {
    let mut m = Meter::new(MeterOptions::default());
    if !req.is_empty() {
        let _ = m.request(req);
    }
    for p in body.chunks(piece) {
        m.feed(p).expect("feed");
    }
    m.finish().expect("finish").total_tokens
}

fn inputs() -> Vec<(&'static str, Vec<u8>, String)> {
    let real = corpus_chat_streams();
    let (req, with) = real
        .iter()
        .find(|(_, r)| carries_usage_chunk(r))
        .cloned()
        .expect("a real stream with a usage chunk");
    vec![
        ("real/with_usage", req.clone(), with.clone()),
        ("real/without_usage", req, without_usage(&with)),
        (
            "openai_4k/with_usage",
            Vec::new(),
            synthetic_openai(4000, true),
        ),
        (
            "openai_4k/without_usage",
            Vec::new(),
            synthetic_openai(4000, false),
        ),
        (
            "azure_4k/with_usage",
            Vec::new(),
            synthetic_azure(4000, true),
        ),
        (
            "azure_4k/without_usage",
            Vec::new(),
            synthetic_azure(4000, false),
        ),
    ]
}

fn bench_meter(c: &mut Criterion) {
    // Build the BPE tables outside the measurement.
    Encoding::O200kBase.count("warm up");
    let mut g = c.benchmark_group("meter");
    for (name, req, body) in inputs() {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("whole", name), &body, |b, body| {
            b.iter(|| meter_once(&req, black_box(body.as_bytes()), body.len().max(1)))
        });
        g.bench_with_input(BenchmarkId::new("pieces_1k", name), &body, |b, body| {
            b.iter(|| meter_once(&req, black_box(body.as_bytes()), 1024))
        });
    }
    g.finish();
}

fn bench_framer(c: &mut Criterion) {
    let mut g = c.benchmark_group("framer");
    for (name, _, body) in inputs() {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("frames", name), &body, |b, body| {
            b.iter(|| {
                let mut f = Framer::new(8 << 20, 64 << 20);
                let mut n = 0usize;
                for p in body.as_bytes().chunks(1024) {
                    f.feed(black_box(p), |fr| n += fr.data.len());
                }
                f.finish(|fr| n += fr.data.len());
                n
            })
        });
    }
    g.finish();
}

/// The full decoder (`wire::decode`) on every chunk of the recorded streams: what a chunk costs
/// when the fast scanner declines it.
fn bench_decode(c: &mut Criterion) {
    let chunks = corpus_chunks();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(
        chunks.iter().map(|p| p.len() as u64).sum(),
    ));
    g.bench_function("wire_decode/corpus_chunks", |b| {
        b.iter(|| {
            chunks
                .iter()
                .filter(|p| wire::decode(black_box(p)).is_ok())
                .count()
        })
    });
    g.finish();
}

/// Every request of the corpus: `Meter::request` on a new meter (the quick check, or the full
/// parse where it declines), the full parse alone, and the full parse with the prompt counted
/// (o200k_base), which `finish` does when no usage was reported.
fn bench_request(c: &mut Criterion) {
    let reqs = corpus_requests();
    Encoding::O200kBase.count("warm up");
    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Bytes(reqs.iter().map(|r| r.len() as u64).sum()));
    g.bench_function("meter_request/corpus", |b| {
        b.iter(|| {
            for r in &reqs {
                let mut m = Meter::new(MeterOptions::default());
                let _ = black_box(m.request(black_box(r)));
            }
        })
    });
    g.bench_function("full_parse/corpus", |b| {
        b.iter(|| {
            reqs.iter()
                .filter(|r| Request::parse(black_box(r)).is_ok())
                .count()
        })
    });
    g.bench_function("parse_and_count_prompt/corpus", |b| {
        b.iter(|| {
            let mut tokens = 0;
            for r in &reqs {
                if let Ok(req) = Request::parse(black_box(r)) {
                    let ep = req.endpoint().unwrap_or(Endpoint::ChatCompletions);
                    tokens += prompt::count(&req, ep, "gpt-4o", Encoding::O200kBase).tokens;
                }
            }
            tokens
        })
    });
    g.finish();
}

fn bench_count(c: &mut Criterion) {
    let text: String = corpus_chat_streams()
        .iter()
        .take(50)
        .map(|(_, r)| r.as_str())
        .collect();
    let mut g = c.benchmark_group("count");
    g.throughput(Throughput::Bytes(text.len() as u64));
    for enc in [Encoding::O200kBase, Encoding::Cl100kBase] {
        enc.count("warm up");
        g.bench_with_input(
            BenchmarkId::new(enc.name(), "corpus_streams"),
            &text,
            |b, t| b.iter(|| enc.count(black_box(t))),
        );
    }
    g.finish();
    // The engine against the reference, on the corpus's mixed text and English prose.
    let texts = [("mixed", corpus_mixed_text()), ("prose", corpus_prose())];
    for (enc, bpe) in [
        (Encoding::O200kBase, tiktoken_rs::o200k_base_singleton()),
        (Encoding::Cl100kBase, tiktoken_rs::cl100k_base_singleton()),
    ] {
        let mut g = c.benchmark_group(format!("count_{}", enc.name()));
        for (name, text) in &texts {
            g.throughput(Throughput::Bytes(text.len() as u64));
            g.bench_with_input(BenchmarkId::new("tiktoken-rs", name), text, |b, t| {
                b.iter(|| bpe.count_ordinary(black_box(t)))
            });
            g.bench_with_input(BenchmarkId::new("usagetap", name), text, |b, t| {
                b.iter(|| enc.count(black_box(t)))
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_meter, bench_framer, bench_decode, bench_request, bench_count
}
criterion_main!(benches);
