//! Request parsing, and prompt counting on every request that parses. `Meter::request` keeps
//! the same request, with the same result, whether its quick check or the full parse reads it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use usagetap::meter::set_fast_path;
use usagetap::request::Request;
use usagetap::{prompt, Encoding, Endpoint, Meter, MeterOptions};

fn keep(data: &[u8], opts: &MeterOptions, fast: bool) -> impl PartialEq + std::fmt::Debug {
    set_fast_path(fast);
    let mut m = Meter::new(opts.clone());
    let r = m.request(data).map_err(|e| (e.kind(), e.to_string()));
    set_fast_path(true);
    (r, m.finish().expect("first finish"))
}

fuzz_target!(|data: &[u8]| {
    for opts in [usagetap_fuzz::options(0), usagetap_fuzz::options(1)] {
        assert_eq!(
            keep(data, &opts, true),
            keep(data, &opts, false),
            "the quick check kept the request differently"
        );
    }
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
