//! Differential: the crate's counting engine equals tiktoken-rs (the reference) on any text,
//! for every encoding the engine serves (o200k_base, o200k_harmony, cl100k_base).
//!
//! Input: `[mode, text…]`. Mode bit 0 repeats the text up to about 1 KiB, so that pieces grow
//! past the length where the engine switches from tiktoken's merge loop to its heap merge.
#![no_main]
use libfuzzer_sys::fuzz_target;
use usagetap::Encoding;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let s = match std::str::from_utf8(data) {
        Ok(s) => s,
        // Invalid UTF-8: count the longest valid prefix.
        Err(e) => std::str::from_utf8(&data[..e.valid_up_to()]).unwrap_or(""),
    };
    let long;
    let s = if mode & 1 == 1 && !s.is_empty() && s.len() < 1024 {
        long = s.repeat(1024 / s.len() + 1);
        long.as_str()
    } else {
        s
    };
    let cases = [
        (Encoding::O200kBase, tiktoken_rs::o200k_base_singleton()),
        (
            Encoding::O200kHarmony,
            tiktoken_rs::o200k_harmony_singleton(),
        ),
        (Encoding::Cl100kBase, tiktoken_rs::cl100k_base_singleton()),
    ];
    for (enc, bpe) in cases {
        assert_eq!(
            enc.count(s),
            bpe.encode_ordinary(s).len(),
            "{enc} differs on {s:?}"
        );
    }
});
