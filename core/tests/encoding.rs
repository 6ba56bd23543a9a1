//! Differential test: the encoding resolver agrees with tiktoken-rs (which carries tiktoken's
//! model table) on every model name in the corpus, and counts agree with tiktoken-rs on text.

mod common;

use std::collections::BTreeSet;

use tiktoken_rs::tokenizer::{get_tokenizer, Tokenizer};
use usagetap::Encoding;

fn reference(model: &str) -> Option<Encoding> {
    Some(match get_tokenizer(model)? {
        Tokenizer::O200kBase => Encoding::O200kBase,
        Tokenizer::O200kHarmony => Encoding::O200kHarmony,
        Tokenizer::Cl100kBase => Encoding::Cl100kBase,
        Tokenizer::P50kBase => Encoding::P50kBase,
        Tokenizer::P50kEdit => Encoding::P50kEdit,
        Tokenizer::R50kBase | Tokenizer::Gpt2 => Encoding::R50kBase,
    })
}

#[test]
fn resolver_agrees_with_tiktoken_on_every_corpus_model() {
    let recs = common::load();
    let mut names = BTreeSet::new();
    for r in &recs {
        names.insert(r.model.clone());
        if let Some(m) = r.raw["request"]["model"].as_str() {
            names.insert(m.to_owned());
        }
    }
    // Names every gateway meets, beyond the corpus.
    for m in [
        "gpt-35-turbo",
        "gpt-35-turbo-16k",
        "gpt-4-32k",
        "gpt-4o",
        "o1",
        "o3",
        "o4-mini",
        "gpt-5",
        "gpt-4.1",
        "text-embedding-3-large",
        "davinci-002",
        "text-davinci-003",
        "ft:gpt-4o-mini-2024-07-18:org::x",
        "ft:gpt-3.5-turbo-0613:org::x",
        "gpt-oss-20b",
    ] {
        names.insert(m.to_owned());
    }
    let mut disagreements = Vec::new();
    for name in &names {
        let ours = Encoding::for_model(name);
        let theirs = reference(name);
        if ours != theirs {
            disagreements.push(format!("{name}: ours {ours:?}, tiktoken-rs {theirs:?}"));
        }
    }
    println!("{} model names compared", names.len());
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}

/// Every encoding the engine serves, with its reference.
fn engines() -> [(Encoding, &'static tiktoken_rs::CoreBPE); 3] {
    [
        (Encoding::O200kBase, tiktoken_rs::o200k_base_singleton()),
        (
            Encoding::O200kHarmony,
            tiktoken_rs::o200k_harmony_singleton(),
        ),
        (Encoding::Cl100kBase, tiktoken_rs::cl100k_base_singleton()),
    ]
}

fn assert_counts_agree(text: &str, what: &str) {
    for (enc, bpe) in engines() {
        let theirs = bpe.encode_ordinary(text).len();
        assert_eq!(enc.count(text), theirs, "{enc} differs on {what}: {text:?}");
    }
}

#[test]
fn counts_agree_with_tiktoken_rs_on_corpus_text() {
    // The whole corpus: every response body (SSE or JSON, as received: text, JSON escapes,
    // base64, numbers) and every request body, for each engine-served encoding.
    let recs = common::load();
    let mut bytes = 0usize;
    let mut texts = 0usize;
    for r in &recs {
        let request = String::from_utf8_lossy(&r.request);
        for text in [r.response.as_str(), &request] {
            for (enc, bpe) in engines() {
                if enc == Encoding::O200kHarmony && texts % 8 != 0 {
                    continue; // same ranks and pattern as o200k_base; a sample suffices
                }
                let theirs = bpe.encode_ordinary(text).len();
                assert_eq!(enc.count(text), theirs, "{enc} differs on record {}", r.id);
            }
            bytes += text.len();
            texts += 1;
        }
    }
    println!("{texts} texts, {bytes} bytes compared");
    assert!(
        recs.len() >= 400 && bytes > 1_000_000,
        "{} records, {bytes} bytes",
        recs.len()
    );
}

#[test]
fn counts_agree_on_pathological_runs() {
    // Sizes where the reference is still quick (its merge is quadratic in a piece).
    for n in [1, 2, 3, 127, 128, 129, 1000, 4000] {
        for unit in [
            "a", "_", " ", "ab", "\n", "\r\n", "0", "A", "\u{a0}", "😀", "東", " \n", "!", "'s",
        ] {
            assert_counts_agree(&unit.repeat(n), &format!("{unit:?} x {n}"));
        }
    }
}

#[test]
fn pathological_runs_stay_near_linear() {
    // The worst cases of the issue at full size (the reference would take minutes): each must
    // finish well within a budget that a quadratic merge or split would blow by orders of
    // magnitude, even in the test profile.
    let cases = [
        ("a", 1_000_000),
        ("_", 50_000),
        (" ", 1_000_000),
        ("\n", 1_000_000),
        ("1", 1_000_000),
        ("ab", 500_000),
    ];
    for (unit, n) in cases {
        let text = unit.repeat(n);
        for enc in [Encoding::O200kBase, Encoding::Cl100kBase] {
            let t = std::time::Instant::now();
            let count = enc.count(&text);
            let el = t.elapsed();
            println!("{enc} {unit:?} x {n}: {count} tokens in {el:?}");
            assert!(count > 0 && count <= text.len());
            assert!(el.as_secs_f64() < 10.0, "{enc} {unit:?} x {n} took {el:?}");
        }
    }
    // Doubling the input roughly doubles the count (no piece is mis-split at scale).
    let one = Encoding::O200kBase.count(&"a".repeat(200_000));
    let two = Encoding::O200kBase.count(&"a".repeat(400_000));
    assert!(two >= 2 * one - 2 && two <= 2 * one + 2, "{one} {two}");
}

mod generated {
    use super::assert_counts_agree;
    use proptest::prelude::*;

    /// Fragments that exercise every branch of both patterns.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(" ".to_owned()),
            Just("  ".to_owned()),
            Just("\t".to_owned()),
            Just("\n".to_owned()),
            Just("\r\n".to_owned()),
            Just("\r".to_owned()),
            Just("\u{a0}".to_owned()),
            Just("\u{3000}".to_owned()),
            Just("\u{2028}".to_owned()),
            Just("\u{85}".to_owned()),
            Just("'".to_owned()),
            Just("'s".to_owned()),
            Just("'S".to_owned()),
            Just("'t".to_owned()),
            Just("'T".to_owned()),
            Just("'re".to_owned()),
            Just("'RE".to_owned()),
            Just("'Re".to_owned()),
            Just("'ve".to_owned()),
            Just("'VE".to_owned()),
            Just("'m".to_owned()),
            Just("'M".to_owned()),
            Just("'ll".to_owned()),
            Just("'LL".to_owned()),
            Just("'lL".to_owned()),
            Just("'d".to_owned()),
            Just("'D".to_owned()),
            Just("'\u{17f}".to_owned()),
            "[a-z]{1,8}",
            "[A-Z]{1,6}",
            "[A-Z][a-z]{1,8}",
            Just("ǅ".to_owned()),
            Just("ǈ".to_owned()),
            Just("ª".to_owned()),
            Just("ʰ".to_owned()),
            Just("\u{301}".to_owned()),
            Just("e\u{301}".to_owned()),
            Just("\u{64b}".to_owned()),
            Just("\u{94d}".to_owned()),
            "[0-9]{1,7}",
            Just("١٢٣".to_owned()),
            Just("Ⅻ".to_owned()),
            Just("½".to_owned()),
            "[\u{4e00}-\u{4e80}]{1,4}",
            "[\u{3041}-\u{3096}]{1,4}",
            "[\u{ac00}-\u{ac40}]{1,3}",
            "[\u{1f600}-\u{1f64f}]{1,3}",
            Just("👍🏽".to_owned()),
            Just("👨‍👩‍👧".to_owned()),
            "[\u{627}-\u{64a}]{1,6}",
            "[\u{5d0}-\u{5ea}]{1,6}",
            Just("שָׁלוֹם".to_owned()),
            "[!-/:-@\\[-`{-~]{1,4}",
            Just("/".to_owned()),
            Just("//".to_owned()),
            Just("_".to_owned()),
            Just("__".to_owned()),
            Just("<|endoftext|>".to_owned()),
            Just("\u{feff}".to_owned()),
            Just("\u{200b}".to_owned()),
            any::<char>().prop_map(String::from),
        ]
    }

    /// Cases per property: 3,000 in the test command, any number on demand
    /// (`USAGETAP_DIFF_CASES=3000000 cargo test --release -p usagetap --test encoding generated`).
    fn cases() -> u32 {
        std::env::var("USAGETAP_DIFF_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3000)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        #[test]
        fn counts_agree_on_generated_mixes(parts in proptest::collection::vec(fragment(), 0..24)) {
            assert_counts_agree(&parts.concat(), "a generated mix");
        }

        #[test]
        fn counts_agree_on_arbitrary_strings(s in "\\PC{0,64}") {
            assert_counts_agree(&s, "an arbitrary string");
        }
    }
}
