#![doc = include_str!("../README.md")]
#![deny(
    missing_docs,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod adapters;
mod bpe;
pub mod encoding;
pub mod error;
mod fast;
pub mod image;
pub mod json_scan;
pub mod ledger;
pub mod meter;
pub mod options;
pub mod prompt;
pub mod record;
pub mod request;
pub mod rewrite;
pub mod sse;
pub mod wire;

pub use encoding::Encoding;
pub use error::{Error, ErrorKind, Result};
pub use meter::{meter, Meter};
pub use options::{Limits, MeterOptions};
pub use record::{
    ChoiceRecord, CompletionDetails, ComputedUsage, Endpoint, Flags, PromptDetails, ReportedUsage,
    Source, Status, UsageRecord,
};

/// Counts `text` with the encoding of `model` (`o200k_base` for an unknown model), as ordinary
/// text.
pub fn count_tokens(text: &str, model: &str) -> usize {
    Encoding::for_model(model)
        .unwrap_or(Encoding::O200kBase)
        .count(text)
}

/// The recorded corpus's records, one JSON value per line (`shared/corpus/dev.jsonl` beside the
/// checkout, or the file named by `USAGETAP_CORPUS`), for the unit tests that run on it.
#[cfg(test)]
pub(crate) fn corpus_records() -> Vec<serde_json::Value> {
    let path = std::env::var_os("USAGETAP_CORPUS").map_or_else(
        || concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/dev.jsonl").into(),
        std::path::PathBuf::from,
    );
    let text = std::fs::read_to_string(&path).expect("corpus (set USAGETAP_CORPUS)");
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
