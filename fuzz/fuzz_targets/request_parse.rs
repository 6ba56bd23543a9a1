//! Request parsing, and prompt counting on every request that parses.
#![no_main]
use libfuzzer_sys::fuzz_target;
use usagetap::request::Request;
use usagetap::{prompt, Encoding, Endpoint};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = Request::parse(data) else {
        return;
    };
    let (_, _) = (req.streams(), req.include_usage());
    let ep = req.endpoint().unwrap_or(Endpoint::ChatCompletions);
    for (model, enc) in [
        ("gpt-4o", Encoding::O200kBase),
        ("gpt-3.5-turbo", Encoding::Cl100kBase),
        ("gpt-4-0613", Encoding::Cl100kBase),
        ("o3-mini", Encoding::O200kBase),
    ] {
        let p = prompt::count(&req, ep, model, enc);
        if let Some(i) = p.image_tokens {
            assert!(
                i <= p.tokens,
                "image tokens {i} > prompt tokens {}",
                p.tokens
            );
        }
    }
    // The image limits: past `max_images` images are flagged, never read.
    let mut small = usagetap::MeterOptions {
        limits: usagetap_fuzz::small_limits(),
        ..Default::default()
    };
    small.image_size("https://example.com/a.png", 4096, 1);
    let p = prompt::count_with(&req, ep, "gpt-4o", Encoding::O200kBase, &small);
    if let Some(i) = p.image_tokens {
        assert!(i <= p.tokens);
    }
});
