//! Differential: our counts equal tiktoken-rs's for o200k_base and cl100k_base on any text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use usagetap::Encoding;

fuzz_target!(|data: &[u8]| {
    let s = match std::str::from_utf8(data) {
        Ok(s) => s,
        // Invalid UTF-8: count the longest valid prefix.
        Err(e) => std::str::from_utf8(&data[..e.valid_up_to()]).unwrap_or(""),
    };
    let o = tiktoken_rs::o200k_base_singleton().encode_ordinary(s).len();
    assert_eq!(
        Encoding::O200kBase.count(s),
        o,
        "o200k_base differs on {s:?}"
    );
    let c = tiktoken_rs::cl100k_base_singleton()
        .encode_ordinary(s)
        .len();
    assert_eq!(
        Encoding::Cl100kBase.count(s),
        c,
        "cl100k_base differs on {s:?}"
    );
});
