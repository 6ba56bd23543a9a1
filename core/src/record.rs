//! The usage record every face returns, and its flags.

use std::fmt;

use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;

use crate::encoding::Encoding;

/// The API an exchange belongs to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub enum Endpoint {
    /// `/chat/completions`.
    #[default]
    #[serde(rename = "chat.completions")]
    ChatCompletions,
    /// Legacy `/completions`.
    #[serde(rename = "completions")]
    Completions,
    /// `/embeddings`.
    #[serde(rename = "embeddings")]
    Embeddings,
    /// The Responses API, `/responses`.
    #[serde(rename = "responses")]
    Responses,
}

impl Endpoint {
    /// The record's name for the endpoint, e.g. `"chat.completions"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat.completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Responses => "responses",
        }
    }

    /// Parses the record's name (`"chat.completions"`, ...) or a URL path such as
    /// `/openai/deployments/x/chat/completions?api-version=...` or `/v1/responses`.
    pub fn parse(s: &str) -> Option<Endpoint> {
        let path = s
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .trim_end_matches('/');
        Some(match path {
            "chat.completions" => Endpoint::ChatCompletions,
            "completions" => Endpoint::Completions,
            "embeddings" => Endpoint::Embeddings,
            "responses" => Endpoint::Responses,
            p if p.ends_with("/chat/completions") => Endpoint::ChatCompletions,
            p if p.ends_with("/completions") => Endpoint::Completions,
            p if p.ends_with("/embeddings") => Endpoint::Embeddings,
            p if p.ends_with("/responses") => Endpoint::Responses,
            _ => return None,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the exchange ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The response arrived whole.
    #[default]
    Complete,
    /// The body ended early: a stream without its end, JSON cut short, or an input limit hit.
    Truncated,
    /// The service answered with an error body or error event.
    Error,
}

impl Status {
    /// The record's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Truncated => "truncated",
            Status::Error => "error",
        }
    }
}

/// Where the top-level counts came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Every top-level count was reported by the service.
    Reported,
    /// At least one top-level count was computed by this library.
    #[default]
    Computed,
}

impl Source {
    /// The record's name of the source.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Reported => "reported",
            Source::Computed => "computed",
        }
    }
}

macro_rules! flags {
    ($( $(#[$doc:meta])* $name:ident = $bit:expr, $text:literal; )*) => {
        impl Flags {
            $( $(#[$doc])* pub const $name: Flags = Flags(1 << $bit); )*
            /// Every flag with its record name, in bit order.
            pub const ALL: &'static [(Flags, &'static str)] = &[$( (Flags::$name, $text), )*];
        }
    };
}

/// Machine-readable notes on a record, as a bit set. Bits are stable and never reused; the C
/// face exposes the same values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u32);

flags! {
    /// The service reported no usage; the counts are computed.
    NO_USAGE_REPORTED = 0, "no_usage_reported";
    /// The response ended early (see [`Status::Truncated`]).
    TRUNCATED = 1, "truncated";
    /// An image's size could not be read (an http(s) URL the host gave no size for in
    /// `MeterOptions::image_sizes`, an unreadable header): its tokens are the estimate for an
    /// unknown size.
    IMAGE_SIZE_UNKNOWN = 2, "image_size_unknown";
    /// A reasoning model without reported usage: hidden reasoning tokens cannot be counted.
    REASONING_TOKENS_UNOBSERVABLE = 3, "reasoning_tokens_unobservable";
    /// A computed completion count may be one short (the service sometimes bills one more).
    COMPLETION_MAY_BE_ONE_SHORT = 4, "completion_may_be_one_short";
    /// No known model: `o200k_base` was used.
    UNKNOWN_MODEL = 5, "unknown_model";
    /// An SSE line over the line cap was dropped.
    LINE_TOO_LONG = 6, "line_too_long";
    /// An event that was not readable JSON was skipped.
    MALFORMED_EVENT_SKIPPED = 7, "malformed_event_skipped";
    /// A JSON body or SSE event was over its size cap and was not read.
    BODY_TOO_LARGE = 8, "body_too_large";
    /// Completion text beyond the counting cap was not kept: the computed count is a lower bound.
    TEXT_LIMIT_REACHED = 9, "text_limit_reached";
    /// Choices with an index over the cap were ignored.
    TOO_MANY_CHOICES = 10, "too_many_choices";
    /// Tool calls over the cap were ignored.
    TOO_MANY_TOOL_CALLS = 11, "too_many_tool_calls";
    /// A request was given but could not be read: the prompt is not computed.
    REQUEST_UNPARSED = 12, "request_unparsed";
    /// More than one usage object arrived; the last one is used.
    USAGE_REPEATED = 13, "usage_repeated";
    /// A usage count was negative, fractional, too large or not a number, and was ignored.
    INVALID_USAGE_VALUE = 14, "invalid_usage_value";
    /// Events arrived after `[DONE]` (they are still read).
    DATA_AFTER_DONE = 15, "data_after_done";
    /// The prompt count rests on a rule not verified for this input (e.g. an unknown content
    /// part): treat it as an estimate.
    PROMPT_ESTIMATED = 16, "prompt_estimated";
    /// Image tokens are an estimate (patch models, unknown sizes).
    IMAGE_TOKENS_ESTIMATED = 17, "image_tokens_estimated";
    /// No request was given and no usage was reported: prompt tokens are unknown (0).
    PROMPT_UNKNOWN = 18, "prompt_unknown";
    /// Tool-call completion tokens are computed from names and arguments only.
    COMPLETION_ESTIMATED = 19, "completion_estimated";
    /// Nothing was received.
    EMPTY_RESPONSE = 20, "empty_response";
    /// The response held no usage and is not finished (a background or queued response).
    RESPONSE_NOT_FINISHED = 21, "response_not_finished";
    /// JSON (request, response body or event) nested deeper than `max_json_depth` was skipped.
    JSON_TOO_DEEP = 22, "json_too_deep";
    /// The request had more images than `max_images`; the headers of the rest were not read
    /// (each is priced by its `image_sizes` entry if it has one, else estimated unsized).
    TOO_MANY_IMAGES = 23, "too_many_images";
}

impl Flags {
    /// No flag.
    pub const EMPTY: Flags = Flags(0);

    /// Whether every flag in `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the flags in `other`.
    pub fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }

    /// Whether no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The record names of the flags that are set, in bit order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Flags::ALL
            .iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| *n)
    }

    /// The flag named `name` (a record name such as `"truncated"`).
    pub fn from_name(name: &str) -> Option<Flags> {
        Flags::ALL.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl Serialize for Flags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for n in self.names() {
            seq.serialize_element(n)?;
        }
        seq.end()
    }
}

/// `prompt_tokens_details` as reported.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct PromptDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
}

/// `completion_tokens_details` as reported.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct CompletionDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_prediction_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_prediction_tokens: Option<u64>,
}

/// The service's usage, normalized to the chat-completions names. For the Responses API,
/// `input_tokens` / `output_tokens` (kept as sent) are also mapped onto `prompt_tokens` /
/// `completion_tokens`, and their details onto the same detail fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct ReportedUsage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
    pub prompt_tokens_details: PromptDetails,
    pub completion_tokens_details: CompletionDetails,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
}

/// The library's own counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ComputedUsage {
    /// Prompt tokens by the service's framing rules; `None` without a readable request.
    pub prompt_tokens: Option<u64>,
    /// Completion tokens: the text of every choice, concatenated per choice, then counted.
    pub completion_tokens: u64,
    /// Image tokens inside `prompt_tokens` (estimates), when the request had images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_tokens: Option<u64>,
    /// The flags the record would carry were these counts the billed ones (without the notes
    /// on reported usage: `no_usage_reported`, `invalid_usage_value`, `usage_repeated`). With
    /// reported usage and reconciliation, the record's `flags` say nothing of the computed
    /// prompt's or completion's estimates (`prompt_estimated`, `image_size_unknown`,
    /// `completion_may_be_one_short`, `reasoning_tokens_unobservable`, ...); this set does.
    pub flags: Flags,
}

/// One choice of the response.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChoiceRecord {
    /// The choice's `index`.
    pub index: u32,
    /// Its `finish_reason`, when one arrived.
    pub finish_reason: Option<String>,
    /// Its computed completion tokens, when counts were computed.
    pub completion_tokens: Option<u64>,
}

/// One usage record per exchange. The JSON form (`serde_json::to_string(&record)`) uses the
/// field names below in every face.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UsageRecord {
    /// The endpoint of the exchange.
    pub endpoint: Endpoint,
    /// The resolved model (response's `model`, then the request's, then the host's).
    pub model: Option<String>,
    /// The deployment, when the host or the URL named one.
    pub deployment: Option<String>,
    /// The encoding used (or that would be used) to count.
    pub encoding: Encoding,
    /// Whether the response was an SSE stream.
    pub stream: bool,
    /// How the exchange ended.
    pub status: Status,
    /// Whether every top-level count was reported by the service.
    pub source: Source,
    /// Prompt (Responses API: input) tokens to bill.
    pub prompt_tokens: u64,
    /// Completion (Responses API: output) tokens to bill.
    pub completion_tokens: u64,
    /// `prompt_tokens + completion_tokens`, or the service's total when reported.
    pub total_tokens: u64,
    /// Cached prompt tokens, when reported.
    pub cached_tokens: Option<u64>,
    /// Reasoning tokens, when reported.
    pub reasoning_tokens: Option<u64>,
    /// Image tokens: reported when the service said, else the computed estimate.
    pub image_tokens: Option<u64>,
    /// The service's usage; `None` when it sent none.
    pub reported: Option<ReportedUsage>,
    /// The library's counts; present when no usage was reported, or when reconciling.
    pub computed: Option<ComputedUsage>,
    /// Per choice, by index.
    pub choices: Vec<ChoiceRecord>,
    /// Notes on the record.
    pub flags: Flags,
    /// The response's `id`.
    pub response_id: Option<String>,
    /// The response's `created` (`created_at` for the Responses API), Unix seconds.
    pub created: Option<i64>,
    /// The response's `system_fingerprint`.
    pub system_fingerprint: Option<String>,
    /// The service's error message, when `status` is `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Serialize for Encoding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl UsageRecord {
    /// The record as one line of JSON (the design's record shape).
    pub fn to_json(&self) -> String {
        // Serializing plain structs of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
