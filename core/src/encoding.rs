//! Model → encoding resolution and token counting.
//!
//! The table follows tiktoken's `model.py` (exact names first, then prefixes in tiktoken's
//! order), extended the way tiktoken-rs extends it.
//!
//! o200k_base, o200k_harmony and cl100k_base count with the crate's own engine (`bpe`), whose
//! tables are prepared at build time: nothing is built at run time. p50k and r50k count with
//! tiktoken-rs, whose tables are built lazily, once per process and per encoding.

use std::fmt;

/// A BPE encoding used by OpenAI models.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Encoding {
    /// `o200k_base`: gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o-series. The default, and the fallback
    /// for unknown models.
    #[default]
    O200kBase,
    /// `o200k_harmony`: gpt-oss.
    O200kHarmony,
    /// `cl100k_base`: gpt-4, gpt-3.5-turbo, text-embedding-*.
    Cl100kBase,
    /// `p50k_base`: text-davinci-002/003, codex.
    P50kBase,
    /// `p50k_edit`: the edit models.
    P50kEdit,
    /// `r50k_base` (a.k.a. gpt2): GPT-3 base models.
    R50kBase,
}

impl Encoding {
    /// Every encoding, in a fixed order.
    pub const ALL: [Encoding; 6] = [
        Encoding::O200kBase,
        Encoding::O200kHarmony,
        Encoding::Cl100kBase,
        Encoding::P50kBase,
        Encoding::P50kEdit,
        Encoding::R50kBase,
    ];

    /// tiktoken's name of the encoding, e.g. `"o200k_base"`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::O200kHarmony => "o200k_harmony",
            Encoding::Cl100kBase => "cl100k_base",
            Encoding::P50kBase => "p50k_base",
            Encoding::P50kEdit => "p50k_edit",
            Encoding::R50kBase => "r50k_base",
        }
    }

    /// Parses tiktoken's name of an encoding (`"gpt2"` is accepted for `r50k_base`).
    pub fn from_name(name: &str) -> Option<Encoding> {
        Some(match name {
            "o200k_base" => Encoding::O200kBase,
            "o200k_harmony" => Encoding::O200kHarmony,
            "cl100k_base" => Encoding::Cl100kBase,
            "p50k_base" => Encoding::P50kBase,
            "p50k_edit" => Encoding::P50kEdit,
            "r50k_base" | "gpt2" => Encoding::R50kBase,
            _ => return None,
        })
    }

    /// The encoding tiktoken uses for `model`, or `None` when the name is unknown.
    ///
    /// Exact names are tried first, then prefixes in tiktoken's order; `ft:` fine-tunes resolve
    /// by their base model. Azure's `gpt-35-turbo` spellings are part of tiktoken's own table.
    pub fn for_model(model: &str) -> Option<Encoding> {
        let model = model.trim();
        if let Some(e) = exact(model) {
            return Some(e);
        }
        for (prefix, enc) in PREFIXES {
            if model.starts_with(prefix) {
                return Some(*enc);
            }
        }
        None
    }

    /// Number of tokens in `text`, counted as ordinary text: special-token strings such as
    /// `<|endoftext|>` count as the plain text they are, never as one special token.
    ///
    /// Counts equal tiktoken's `len(encode_ordinary(text))` for every input. For p50k and r50k
    /// the first call builds their tables (once per process, thread-safe).
    pub fn count(self, text: &str) -> usize {
        if text.is_empty() {
            return 0;
        }
        match self {
            // o200k_harmony differs from o200k_base only in its special tokens.
            Encoding::O200kBase | Encoding::O200kHarmony => {
                crate::bpe::count(crate::bpe::Pattern::O200k, text)
            }
            Encoding::Cl100kBase => crate::bpe::count(crate::bpe::Pattern::Cl100k, text),
            // Only these reach tiktoken-rs, so its o200k and cl100k vocabularies (5 MB of
            // base64) are not linked in.
            Encoding::P50kBase => tiktoken_rs::p50k_base_singleton().count_ordinary(text),
            Encoding::P50kEdit => tiktoken_rs::p50k_edit_singleton().count_ordinary(text),
            Encoding::R50kBase => tiktoken_rs::r50k_base_singleton().count_ordinary(text),
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn exact(model: &str) -> Option<Encoding> {
    use Encoding::*;
    Some(match model {
        // chat
        "o1" | "o3" | "o4-mini" | "gpt-5" | "gpt-4.1" | "gpt-4o" | "chatgpt-4o-latest" => O200kBase,
        "gpt-4" | "gpt-3.5-turbo" | "gpt-3.5" | "gpt-35-turbo" => Cl100kBase,
        // base
        "davinci-002" | "babbage-002" => Cl100kBase,
        // embeddings
        "text-embedding-ada-002" | "text-embedding-3-small" | "text-embedding-3-large" => {
            Cl100kBase
        }
        // DEPRECATED MODELS
        "text-davinci-003" | "text-davinci-002" => P50kBase,
        "text-davinci-001" | "text-curie-001" | "text-babbage-001" | "text-ada-001" | "davinci"
        | "curie" | "babbage" | "ada" => R50kBase,
        "code-davinci-002" | "code-davinci-001" | "code-cushman-002" | "code-cushman-001"
        | "davinci-codex" | "cushman-codex" => P50kBase,
        "text-davinci-edit-001" | "code-davinci-edit-001" => P50kEdit,
        "text-similarity-davinci-001"
        | "text-similarity-curie-001"
        | "text-similarity-babbage-001"
        | "text-similarity-ada-001"
        | "text-search-davinci-doc-001"
        | "text-search-curie-doc-001"
        | "text-search-babbage-doc-001"
        | "text-search-ada-doc-001"
        | "code-search-babbage-code-001"
        | "code-search-ada-code-001" => R50kBase,
        "gpt2" | "gpt-2" => R50kBase,
        _ => return None,
    })
}

/// Prefixes in tiktoken's order, then tiktoken-rs's additions. Order matters: `gpt-4o-` must be
/// tried before `gpt-4-` would be (it cannot match it, but `ft:gpt-4o` must precede `ft:gpt-4`).
const PREFIXES: &[(&str, Encoding)] = &[
    ("o1-", Encoding::O200kBase),
    ("o3-", Encoding::O200kBase),
    ("o4-mini-", Encoding::O200kBase),
    ("gpt-5", Encoding::O200kBase),
    ("gpt-4.5-", Encoding::O200kBase),
    ("gpt-4.1-", Encoding::O200kBase),
    ("chatgpt-4o-", Encoding::O200kBase),
    ("gpt-4o-", Encoding::O200kBase),
    ("gpt-4-", Encoding::Cl100kBase),
    ("gpt-3.5-turbo-", Encoding::Cl100kBase),
    ("gpt-35-turbo-", Encoding::Cl100kBase),
    ("gpt-oss-", Encoding::O200kHarmony),
    ("ft:gpt-4o", Encoding::O200kBase),
    ("ft:gpt-4", Encoding::Cl100kBase),
    ("ft:gpt-3.5-turbo", Encoding::Cl100kBase),
    ("ft:davinci-002", Encoding::Cl100kBase),
    ("ft:babbage-002", Encoding::Cl100kBase),
    // tiktoken-rs additions
    ("o4-", Encoding::O200kBase),
    ("codex-mini", Encoding::O200kBase),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            ("gpt-4o-mini-2024-07-18", Some(Encoding::O200kBase)),
            ("gpt-35-turbo", Some(Encoding::Cl100kBase)),
            ("gpt-35-turbo-16k", Some(Encoding::Cl100kBase)),
            (
                "gpt-3.5-turbo-instruct:20230824-v2",
                Some(Encoding::Cl100kBase),
            ),
            (
                "ft:gpt-4o-mini-2024-07-18:org::abc",
                Some(Encoding::O200kBase),
            ),
            ("ft:gpt-3.5-turbo-0613:org::abc", Some(Encoding::Cl100kBase)),
            ("gpt-5.2-chat", Some(Encoding::O200kBase)),
            ("o3-mini-2025-01-31", Some(Encoding::O200kBase)),
            ("gpt-oss-120b", Some(Encoding::O200kHarmony)),
            ("text-davinci-003", Some(Encoding::P50kBase)),
            ("my-deployment", None),
            ("", None),
        ];
        for (m, e) in cases {
            assert_eq!(Encoding::for_model(m), e, "{m}");
        }
    }

    #[test]
    fn special_tokens_are_ordinary_text() {
        // `<|endoftext|>` is 7 ordinary tokens in o200k, never one special token or an error.
        let n = Encoding::O200kBase.count("<|endoftext|>");
        assert!(n > 1, "{n}");
        assert_eq!(Encoding::Cl100kBase.count(""), 0);
    }
}
