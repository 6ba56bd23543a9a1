//! Loading the recorded traffic in `../shared/corpus/dev.jsonl` for tests.
#![allow(dead_code)]

use serde_json::Value;

/// One recorded exchange.
pub struct Rec {
    pub id: String,
    pub endpoint: String,
    pub stream: bool,
    pub model: String,
    /// The request body as its JSON text (key order kept).
    pub request: Vec<u8>,
    pub response: String,
    pub usage: Option<Value>,
    pub raw: Value,
}

/// The corpus path: `USAGETAP_CORPUS`, else `../shared/corpus/dev.jsonl` beside the checkout.
pub fn corpus_path() -> std::path::PathBuf {
    match std::env::var_os("USAGETAP_CORPUS") {
        Some(p) => p.into(),
        None => concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/dev.jsonl").into(),
    }
}

/// Every record of the corpus. Panics (failing the test) when the corpus is missing: a corpus
/// test that silently passes without its data would prove nothing.
pub fn load() -> Vec<Rec> {
    let path = corpus_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "corpus {} not readable ({e}); set USAGETAP_CORPUS",
            path.display()
        )
    });
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("corpus line is JSON");
            Rec {
                id: v["id"].as_str().unwrap_or_default().to_owned(),
                endpoint: v["endpoint"].as_str().unwrap_or_default().to_owned(),
                stream: v["stream"].as_bool().unwrap_or(false),
                model: v["model"].as_str().unwrap_or_default().to_owned(),
                request: serde_json::to_vec(&v["request"]).expect("request serializes"),
                response: v["response_body"].as_str().unwrap_or_default().to_owned(),
                usage: Some(v["reported_usage"].clone()).filter(|u| !u.is_null()),
                raw: v,
            }
        })
        .collect()
}

/// The model family used to group rates.
pub fn family(model: &str) -> &'static str {
    let m = model.strip_prefix("ft:").unwrap_or(model);
    if m.starts_with("gpt-3.5") || m.starts_with("gpt-35") {
        "gpt-3.5"
    } else if m.starts_with("gpt-4o-mini") {
        "gpt-4o-mini"
    } else if m.starts_with("gpt-4o") {
        "gpt-4o"
    } else if m.starts_with("gpt-4.1") {
        "gpt-4.1"
    } else if m.starts_with("gpt-4-turbo")
        || m.starts_with("gpt-4-1106")
        || m.starts_with("gpt-4-0125")
    {
        "gpt-4-turbo"
    } else if m.starts_with("gpt-4") {
        "gpt-4"
    } else if m.starts_with("gpt-5") {
        "gpt-5"
    } else if m.starts_with('o') {
        "o-series"
    } else if m.contains("embedding") {
        "embeddings"
    } else {
        "other"
    }
}
