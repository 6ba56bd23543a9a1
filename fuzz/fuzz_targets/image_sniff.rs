//! Image header sniffing: raw bytes, the same bytes as a base64 data URL (must agree), and the
//! input itself as the payload of a data URL.
#![no_main]
use libfuzzer_sys::fuzz_target;
use usagetap::image::{image_tokens, sniff, sniff_data_url, Detail, DEFAULT_MAX_BASE64};

fn tokens(size: usagetap::image::ImageSize) {
    for model in [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1-mini",
        "o3",
        "gpt-5",
        "unknown",
    ] {
        for d in [Detail::Low, Detail::High, Detail::Auto] {
            let _ = image_tokens(model, d, Some(size));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let raw = sniff(data);
    if let Some((_, size)) = raw {
        tokens(size);
    }
    // The same bytes, base64-encoded: within the decode budget, the answer is the same.
    if data.len() <= 3 * DEFAULT_MAX_BASE64 / 4 {
        let url = format!("data:image/png;base64,{}", usagetap_fuzz::base64(data));
        assert_eq!(
            sniff_data_url(&url, DEFAULT_MAX_BASE64),
            raw,
            "data URL disagrees with sniff"
        );
    }
    // The input itself as a payload (any characters, whitespace, bad padding), and as a URL.
    let s = String::from_utf8_lossy(data);
    if let Some((_, size)) =
        sniff_data_url(&format!("data:image/png;base64,{s}"), DEFAULT_MAX_BASE64)
    {
        tokens(size);
    }
    let _ = sniff_data_url(&s, 64);
});
