//! The record as a flat, C#-friendly struct: fixed-width integers, enums carried as `uint32_t`,
//! a flags bitmask, a `present` bitmask for optional counts, no `bool`.

use usagetap::{Encoding, Endpoint, Source, Status, UsageRecord};

use crate::{usagetap_result, usagetap_str};

/// The API of an exchange (`usagetap_record.endpoint`). Values are never renumbered.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum usagetap_endpoint {
    /// `/chat/completions` (`"chat.completions"`).
    ChatCompletions = 0,
    /// Legacy `/completions`.
    Completions = 1,
    /// `/embeddings`.
    Embeddings = 2,
    /// The Responses API, `/responses`.
    Responses = 3,
}

/// How the exchange ended (`usagetap_record.status`). Values are never renumbered.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum usagetap_status {
    /// The response arrived whole.
    Complete = 0,
    /// The body ended early: a stream without its end, JSON cut short, or an input limit hit.
    Truncated = 1,
    /// The service answered with an error body or error event (`usagetap_record.error`).
    Error = 2,
}

/// Where the top-level counts came from (`usagetap_record.source`). Values are never renumbered.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum usagetap_source {
    /// Every top-level count was reported by the service.
    Reported = 0,
    /// At least one top-level count was computed by this library.
    Computed = 1,
}

/// The BPE encoding used, or that would be used, to count (`usagetap_record.encoding`). Values
/// are never renumbered.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum usagetap_encoding {
    /// `o200k_base`.
    O200kBase = 0,
    /// `o200k_harmony`.
    O200kHarmony = 1,
    /// `cl100k_base`.
    Cl100kBase = 2,
    /// `p50k_base`.
    P50kBase = 3,
    /// `p50k_edit`.
    P50kEdit = 4,
    /// `r50k_base`.
    R50kBase = 5,
}

// Flag bits of `usagetap_record.flags`: the core's `Flags` bits, which are stable and never
// reused. A unit test checks every one against the core, name and bit.

/// The service reported no usage; the counts are computed.
pub const USAGETAP_FLAG_NO_USAGE_REPORTED: u32 = 0x1;
/// The response ended early (status truncated).
pub const USAGETAP_FLAG_TRUNCATED: u32 = 0x2;
/// An image's size could not be read: its tokens follow the host's policy.
pub const USAGETAP_FLAG_IMAGE_SIZE_UNKNOWN: u32 = 0x4;
/// A reasoning model without reported usage: hidden reasoning tokens cannot be counted.
pub const USAGETAP_FLAG_REASONING_TOKENS_UNOBSERVABLE: u32 = 0x8;
/// A computed completion count may be one short.
pub const USAGETAP_FLAG_COMPLETION_MAY_BE_ONE_SHORT: u32 = 0x10;
/// No known model: `o200k_base` was used.
pub const USAGETAP_FLAG_UNKNOWN_MODEL: u32 = 0x20;
/// An SSE line over the line cap was dropped.
pub const USAGETAP_FLAG_LINE_TOO_LONG: u32 = 0x40;
/// An event that was not readable JSON was skipped.
pub const USAGETAP_FLAG_MALFORMED_EVENT_SKIPPED: u32 = 0x80;
/// A JSON body or SSE event was over its size cap and was not read.
pub const USAGETAP_FLAG_BODY_TOO_LARGE: u32 = 0x100;
/// Completion text beyond the counting cap was not kept: the computed count is a lower bound.
pub const USAGETAP_FLAG_TEXT_LIMIT_REACHED: u32 = 0x200;
/// Choices with an index over the cap were ignored.
pub const USAGETAP_FLAG_TOO_MANY_CHOICES: u32 = 0x400;
/// Tool calls over the cap were ignored.
pub const USAGETAP_FLAG_TOO_MANY_TOOL_CALLS: u32 = 0x800;
/// A request was given but could not be read: the prompt is not computed.
pub const USAGETAP_FLAG_REQUEST_UNPARSED: u32 = 0x1000;
/// More than one usage object arrived; the last one is used.
pub const USAGETAP_FLAG_USAGE_REPEATED: u32 = 0x2000;
/// A usage count was invalid and was ignored.
pub const USAGETAP_FLAG_INVALID_USAGE_VALUE: u32 = 0x4000;
/// Events arrived after `[DONE]` (they are still read).
pub const USAGETAP_FLAG_DATA_AFTER_DONE: u32 = 0x8000;
/// The prompt count rests on a rule not verified for this input: treat it as an estimate.
pub const USAGETAP_FLAG_PROMPT_ESTIMATED: u32 = 0x10000;
/// Image tokens are an estimate.
pub const USAGETAP_FLAG_IMAGE_TOKENS_ESTIMATED: u32 = 0x20000;
/// No request was given and no usage was reported: prompt tokens are unknown (0).
pub const USAGETAP_FLAG_PROMPT_UNKNOWN: u32 = 0x40000;
/// Tool-call completion tokens are computed from names and arguments only.
pub const USAGETAP_FLAG_COMPLETION_ESTIMATED: u32 = 0x80000;
/// Nothing was received.
pub const USAGETAP_FLAG_EMPTY_RESPONSE: u32 = 0x100000;
/// The response held no usage and is not finished (a background or queued response).
pub const USAGETAP_FLAG_RESPONSE_NOT_FINISHED: u32 = 0x200000;
/// JSON nested deeper than `limits.max_json_depth` was skipped.
pub const USAGETAP_FLAG_JSON_TOO_DEEP: u32 = 0x400000;
/// The request had more images than `limits.max_images`; the rest were estimated unsized.
pub const USAGETAP_FLAG_TOO_MANY_IMAGES: u32 = 0x800000;

// Bits of `usagetap_record.present`: which optional fields hold a value. A field whose bit is
// clear is 0.

/// `cached_tokens` holds a value.
pub const USAGETAP_PRESENT_CACHED_TOKENS: u32 = 0x1;
/// `reasoning_tokens` holds a value.
pub const USAGETAP_PRESENT_REASONING_TOKENS: u32 = 0x2;
/// `image_tokens` holds a value.
pub const USAGETAP_PRESENT_IMAGE_TOKENS: u32 = 0x4;
/// `created` holds a value.
pub const USAGETAP_PRESENT_CREATED: u32 = 0x8;
/// `reported_prompt_tokens` holds a value.
pub const USAGETAP_PRESENT_REPORTED_PROMPT_TOKENS: u32 = 0x10;
/// `reported_completion_tokens` holds a value.
pub const USAGETAP_PRESENT_REPORTED_COMPLETION_TOKENS: u32 = 0x20;
/// `reported_total_tokens` holds a value.
pub const USAGETAP_PRESENT_REPORTED_TOTAL_TOKENS: u32 = 0x40;
/// `computed_prompt_tokens` holds a value.
pub const USAGETAP_PRESENT_COMPUTED_PROMPT_TOKENS: u32 = 0x80;
/// `computed_completion_tokens` holds a value.
pub const USAGETAP_PRESENT_COMPUTED_COMPLETION_TOKENS: u32 = 0x100;

/// One usage record, flat. Written by `usagetap_meter_finish`, `usagetap_meter_exchange` and
/// `usagetap_meter_record`; the caller owns the struct itself (it is plain data, usually on the
/// stack), but the `usagetap_str` fields borrow from the meter and are valid until
/// `usagetap_meter_free`. An absent string is `{NULL, 0}`. Details not in the struct (per-choice
/// counts, every reported detail field) are in the JSON from `usagetap_meter_record_json`.
///
/// The layout is fixed-width and padding-free on 64-bit and 32-bit targets: a C# host declares it
/// `[StructLayout(LayoutKind.Sequential)]` with `ulong`, `long`, `IntPtr`/`UIntPtr` pairs for
/// strings, and `uint`, in this order.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct usagetap_record {
    /// Prompt (Responses API: input) tokens to bill.
    pub prompt_tokens: u64,
    /// Completion (Responses API: output) tokens to bill.
    pub completion_tokens: u64,
    /// `prompt_tokens + completion_tokens`, or the service's total when reported.
    pub total_tokens: u64,
    /// Cached prompt tokens (`USAGETAP_PRESENT_CACHED_TOKENS`).
    pub cached_tokens: u64,
    /// Reasoning tokens (`USAGETAP_PRESENT_REASONING_TOKENS`).
    pub reasoning_tokens: u64,
    /// Image tokens, reported or estimated (`USAGETAP_PRESENT_IMAGE_TOKENS`).
    pub image_tokens: u64,
    /// The service's prompt tokens (`USAGETAP_PRESENT_REPORTED_PROMPT_TOKENS`).
    pub reported_prompt_tokens: u64,
    /// The service's completion tokens (`USAGETAP_PRESENT_REPORTED_COMPLETION_TOKENS`).
    pub reported_completion_tokens: u64,
    /// The service's total tokens (`USAGETAP_PRESENT_REPORTED_TOTAL_TOKENS`).
    pub reported_total_tokens: u64,
    /// The library's prompt tokens (`USAGETAP_PRESENT_COMPUTED_PROMPT_TOKENS`).
    pub computed_prompt_tokens: u64,
    /// The library's completion tokens (`USAGETAP_PRESENT_COMPUTED_COMPLETION_TOKENS`).
    pub computed_completion_tokens: u64,
    /// The response's `created` / `created_at`, Unix seconds (`USAGETAP_PRESENT_CREATED`).
    pub created: i64,
    /// The resolved model.
    pub model: usagetap_str,
    /// The deployment, when known.
    pub deployment: usagetap_str,
    /// The response's `id`.
    pub response_id: usagetap_str,
    /// The response's `system_fingerprint`.
    pub system_fingerprint: usagetap_str,
    /// The service's error message, when `status` is `USAGETAP_STATUS_ERROR`.
    pub error: usagetap_str,
    /// A `usagetap_endpoint` value.
    pub endpoint: u32,
    /// A `usagetap_status` value.
    pub status: u32,
    /// A `usagetap_source` value.
    pub source: u32,
    /// A `usagetap_encoding` value.
    pub encoding: u32,
    /// `USAGETAP_FLAG_*` bits.
    pub flags: u32,
    /// `USAGETAP_PRESENT_*` bits: which optional fields hold a value.
    pub present: u32,
    /// 1 when the response was an SSE stream, else 0.
    pub stream: u32,
    /// The number of choices (see the JSON for each one).
    pub choice_count: u32,
    /// `USAGETAP_FLAG_*` bits of the computed counts, when there are any: the flags the record
    /// would carry were they the billed ones (what `computed.flags` holds in the JSON). With
    /// reported usage and reconciliation these, not `flags`, say which computed count is an
    /// estimate. 0 without computed counts.
    pub computed_flags: u32,
    /// Always 0; keeps the struct free of padding.
    pub reserved: u32,
}

impl usagetap_record {
    /// The flat view of `r`; its strings borrow from `r`.
    pub(crate) fn from_record(r: &UsageRecord) -> usagetap_record {
        let mut present = 0;
        let mut opt = |v: Option<u64>, bit: u32| -> u64 {
            match v {
                Some(n) => {
                    present |= bit;
                    n
                }
                None => 0,
            }
        };
        let reported = r.reported.as_ref();
        let computed = r.computed.as_ref();
        let cached_tokens = opt(r.cached_tokens, USAGETAP_PRESENT_CACHED_TOKENS);
        let reasoning_tokens = opt(r.reasoning_tokens, USAGETAP_PRESENT_REASONING_TOKENS);
        let image_tokens = opt(r.image_tokens, USAGETAP_PRESENT_IMAGE_TOKENS);
        let reported_prompt_tokens = opt(
            reported.and_then(|u| u.prompt_tokens),
            USAGETAP_PRESENT_REPORTED_PROMPT_TOKENS,
        );
        let reported_completion_tokens = opt(
            reported.and_then(|u| u.completion_tokens),
            USAGETAP_PRESENT_REPORTED_COMPLETION_TOKENS,
        );
        let reported_total_tokens = opt(
            reported.and_then(|u| u.total_tokens),
            USAGETAP_PRESENT_REPORTED_TOTAL_TOKENS,
        );
        let computed_prompt_tokens = opt(
            computed.and_then(|c| c.prompt_tokens),
            USAGETAP_PRESENT_COMPUTED_PROMPT_TOKENS,
        );
        let computed_completion_tokens = opt(
            computed.map(|c| c.completion_tokens),
            USAGETAP_PRESENT_COMPUTED_COMPLETION_TOKENS,
        );
        let created = match r.created {
            Some(c) => {
                present |= USAGETAP_PRESENT_CREATED;
                c
            }
            None => 0,
        };
        usagetap_record {
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            total_tokens: r.total_tokens,
            cached_tokens,
            reasoning_tokens,
            image_tokens,
            reported_prompt_tokens,
            reported_completion_tokens,
            reported_total_tokens,
            computed_prompt_tokens,
            computed_completion_tokens,
            created,
            model: usagetap_str::borrow_opt(r.model.as_deref()),
            deployment: usagetap_str::borrow_opt(r.deployment.as_deref()),
            response_id: usagetap_str::borrow_opt(r.response_id.as_deref()),
            system_fingerprint: usagetap_str::borrow_opt(r.system_fingerprint.as_deref()),
            error: usagetap_str::borrow_opt(r.error.as_deref()),
            endpoint: endpoint(r.endpoint) as u32,
            status: status(r.status) as u32,
            source: source(r.source) as u32,
            encoding: encoding(r.encoding) as u32,
            flags: r.flags.0,
            present,
            stream: u32::from(r.stream),
            choice_count: u32::try_from(r.choices.len()).unwrap_or(u32::MAX),
            computed_flags: computed.map_or(0, |c| c.flags.0),
            reserved: 0,
        }
    }
}

pub(crate) fn endpoint(e: Endpoint) -> usagetap_endpoint {
    match e {
        Endpoint::ChatCompletions => usagetap_endpoint::ChatCompletions,
        Endpoint::Completions => usagetap_endpoint::Completions,
        Endpoint::Embeddings => usagetap_endpoint::Embeddings,
        Endpoint::Responses => usagetap_endpoint::Responses,
    }
}

pub(crate) fn status(s: Status) -> usagetap_status {
    match s {
        Status::Complete => usagetap_status::Complete,
        Status::Truncated => usagetap_status::Truncated,
        Status::Error => usagetap_status::Error,
    }
}

pub(crate) fn source(s: Source) -> usagetap_source {
    match s {
        Source::Reported => usagetap_source::Reported,
        Source::Computed => usagetap_source::Computed,
    }
}

pub(crate) fn encoding(e: Encoding) -> usagetap_encoding {
    match e {
        Encoding::O200kBase => usagetap_encoding::O200kBase,
        Encoding::O200kHarmony => usagetap_encoding::O200kHarmony,
        Encoding::Cl100kBase => usagetap_encoding::Cl100kBase,
        Encoding::P50kBase => usagetap_encoding::P50kBase,
        Encoding::P50kEdit => usagetap_encoding::P50kEdit,
        Encoding::R50kBase => usagetap_encoding::R50kBase,
    }
}

/// The `usagetap_result` with this value, if any.
pub(crate) fn result_from_u32(v: u32) -> Option<usagetap_result> {
    use usagetap_result as R;
    const ALL: [usagetap_result; 13] = [
        R::Ok,
        R::NullParameter,
        R::Panic,
        R::InvalidUtf8,
        R::InvalidJson,
        R::InvalidRequest,
        R::InvalidOptions,
        R::Finished,
        R::NotFinished,
        R::LimitExceeded,
        R::InvalidParameter,
        R::Error,
        R::NotAnEnvelope,
    ];
    ALL.into_iter().find(|r| *r as u32 == v)
}
