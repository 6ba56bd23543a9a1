//! A meter's peak heap is O(the text it must count), not O(the stream): measured with a
//! counting allocator on long streams in the exact OpenAI wire format, with and without a
//! usage chunk, at two lengths ten times apart.
//!
//! Run with `cargo test -p usagetap --test memory -- --nocapture` to see the table.

mod alloc;

use alloc::{measure, serial, MIB};
use usagetap::{Meter, MeterOptions, Source};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

const WORDS: [&str; 8] = [
    " the", " meter", " counts", " tokens", ",", " exactly", " and", " fast.",
];

/// A chat-completions stream of `chunks` text deltas, as OpenAI sends it.
fn stream(chunks: usize, usage: bool) -> (Vec<u8>, usize) {
    let head = r#"data: {"id":"chatcmpl-MEM00000000000000000000000","object":"chat.completion.chunk","created":1755097541,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_560af6e559","choices":[{"index":0,"delta":{"content":""#;
    let mut s = String::new();
    let mut text = 0;
    for i in 0..chunks {
        let w = WORDS[i % WORDS.len()];
        text += w.len();
        s.push_str(head);
        s.push_str(w);
        s.push_str("\"},\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"kvR\"}\n\n");
    }
    s.push_str(head);
    s.push_str("\"},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n");
    if usage {
        s.push_str("data: {\"id\":\"chatcmpl-MEM00000000000000000000000\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":7,\"total_tokens\":19}}\n\n");
    }
    s.push_str("data: [DONE]\n\n");
    (s.into_bytes(), text)
}

#[test]
fn peak_heap_follows_the_text_not_the_stream() {
    let _g = serial();
    let mut rows = Vec::new();
    for chunks in [20_000, 200_000] {
        for usage in [true, false] {
            let (body, text) = stream(chunks, usage);
            let name = format!(
                "{chunks} chunks ({:.1} MiB), {}",
                body.len() as f64 / MIB as f64,
                if usage {
                    "usage chunk"
                } else {
                    "no usage: counted"
                }
            );
            let (rec, peak) = measure(&name, || {
                let mut m = Meter::new(MeterOptions::default());
                for piece in body.chunks(64 << 10) {
                    m.feed(piece).unwrap();
                }
                m.finish().unwrap()
            });
            let want = if usage {
                Source::Reported
            } else {
                Source::Computed
            };
            assert_eq!(rec.source, want);
            println!(
                "  stream {:>9} B  text {:>8} B  peak {:>9} B  peak/text {:>5.2}  peak/stream {:.4}",
                body.len(),
                text,
                peak,
                peak as f64 / text as f64,
                peak as f64 / body.len() as f64
            );
            rows.push((chunks, usage, body.len(), text, peak));
        }
    }
    for &(_, usage, stream, text, peak) in &rows {
        // The text is kept (a vector, up to twice its length) in case no usage arrives; one
        // event's bytes are borrowed from the piece. Counting adds the tokenizer's work on the
        // text, a bounded multiple of it for ordinary prose.
        let bound = if usage {
            2 * text + 64 * 1024
        } else {
            16 * text + 256 * 1024
        };
        assert!(peak <= bound, "peak {peak} over {bound} (text {text})");
        assert!(
            peak < stream / 4,
            "peak {peak} not well below the stream's {stream} bytes"
        );
    }
}
