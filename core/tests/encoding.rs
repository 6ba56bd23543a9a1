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
    for m in ["gpt-35-turbo", "gpt-35-turbo-16k", "gpt-4-32k", "gpt-4o", "o1", "o3", "o4-mini",
              "gpt-5", "gpt-4.1", "text-embedding-3-large", "davinci-002", "text-davinci-003",
              "ft:gpt-4o-mini-2024-07-18:org::x", "ft:gpt-3.5-turbo-0613:org::x", "gpt-oss-20b"] {
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

#[test]
fn counts_agree_with_tiktoken_rs_on_corpus_text() {
    let recs = common::load();
    let o200k = tiktoken_rs::o200k_base_singleton();
    let cl100k = tiktoken_rs::cl100k_base_singleton();
    let mut n = 0;
    for r in recs.iter().take(400) {
        let text = &r.response;
        assert_eq!(Encoding::O200kBase.count(text), o200k.encode_ordinary(text).len(), "{}", r.id);
        assert_eq!(Encoding::Cl100kBase.count(text), cl100k.encode_ordinary(text).len(), "{}", r.id);
        n += 1;
    }
    assert_eq!(n, 400);
}
