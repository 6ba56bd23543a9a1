//! Prompt accounting: the service's framing rules applied to a parsed request.
//!
//! Chat prompts use the framing verified on the recorded traffic:
//! `3 + Σ_messages (3 + tokens(role) + tokens(content) + [name: tokens(name) + 1])`,
//! with 4 per message and `name` −1 for gpt-3.5-turbo-0301, and one token fewer for reasoning
//! models. Inputs whose hidden rendering is not verified (tools, schemas, images, tool calls)
//! are counted by their visible text and flagged `prompt_estimated`.

use serde_json::value::RawValue;

use crate::encoding::Encoding;
use crate::record::{Endpoint, Flags};
use crate::request::{Content, Message, Request};

/// A computed prompt count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromptCount {
    /// Prompt tokens.
    pub tokens: u64,
    /// Image tokens inside `tokens`, when the request had images.
    pub image_tokens: Option<u64>,
    /// Notes (`prompt_estimated`, `image_size_unknown`, ...).
    pub flags: Flags,
}

/// Whether `model` is a reasoning model (o-series, gpt-5 family), whose framing differs.
pub fn is_reasoning_model(model: &str) -> bool {
    let m = model.strip_prefix("ft:").unwrap_or(model);
    let o_series = m.len() >= 2
        && m.as_bytes()[0] == b'o'
        && m.as_bytes()[1].is_ascii_digit();
    o_series || (m.starts_with("gpt-5") && !m.contains("chat"))
}

/// Counts the prompt of `req` for `endpoint`, `model` and `enc`.
pub fn count(req: &Request<'_>, endpoint: Endpoint, model: &str, enc: Encoding) -> PromptCount {
    let mut out = PromptCount::default();
    match endpoint {
        Endpoint::ChatCompletions => chat(req, model, enc, &mut out),
        Endpoint::Completions => out.tokens = count_inputs(req.prompt, enc),
        Endpoint::Embeddings => out.tokens = count_inputs(req.input, enc),
        Endpoint::Responses => responses(req, enc, &mut out),
    }
    out
}

fn chat(req: &Request<'_>, model: &str, enc: Encoding, out: &mut PromptCount) {
    let legacy_0301 = model.contains("gpt-3.5-turbo-0301") || model.contains("gpt-35-turbo-0301");
    let (per_message, per_name): (i64, i64) = if legacy_0301 { (4, -1) } else { (3, 1) };
    let mut total: i64 = 3;
    let messages = req.messages.as_ref().map(|m| &m.0[..]).unwrap_or(&[]);
    for m in messages {
        total += per_message;
        total += message_tokens(m, enc, out) as i64;
        if let Some(name) = m.name.as_deref() {
            total += enc.count(name) as i64 + per_name;
        }
    }
    if is_reasoning_model(model) {
        total -= 1;
    }
    if req.tools.is_some() || req.functions.is_some() {
        out.flags.insert(Flags::PROMPT_ESTIMATED);
        total += raw_text_tokens(req.tools, enc) as i64 + raw_text_tokens(req.functions, enc) as i64;
    }
    if let Some(rf) = req.response_format {
        if rf.get().contains("json_schema") {
            out.flags.insert(Flags::PROMPT_ESTIMATED);
        }
    }
    out.tokens = total.max(0) as u64;
}

fn message_tokens(m: &Message<'_>, enc: Encoding, out: &mut PromptCount) -> usize {
    let mut n = m.role.as_deref().map_or(0, |r| enc.count(r));
    match &m.content {
        Content::None => {}
        Content::Text(t) => n += enc.count(t),
        Content::Parts(parts) => {
            for p in parts {
                match p.kind.as_deref() {
                    Some("text" | "input_text" | "output_text") => {
                        n += p.text.as_deref().map_or(0, |t| enc.count(t))
                    }
                    Some("image_url" | "input_image") => {
                        out.flags.insert(Flags::PROMPT_ESTIMATED | Flags::IMAGE_SIZE_UNKNOWN)
                    }
                    _ => out.flags.insert(Flags::PROMPT_ESTIMATED),
                }
            }
        }
    }
    for call in &m.tool_calls.0 {
        out.flags.insert(Flags::PROMPT_ESTIMATED);
        if let Some(f) = &call.function {
            n += f.name.as_deref().map_or(0, |t| enc.count(t));
            n += f.arguments.as_deref().map_or(0, |t| enc.count(t));
        }
    }
    if let Some(f) = &m.function_call {
        out.flags.insert(Flags::PROMPT_ESTIMATED);
        n += f.name.as_deref().map_or(0, |t| enc.count(t));
        n += f.arguments.as_deref().map_or(0, |t| enc.count(t));
    }
    if m.role.as_deref() == Some("tool") {
        out.flags.insert(Flags::PROMPT_ESTIMATED);
    }
    n
}

fn responses(req: &Request<'_>, enc: Encoding, out: &mut PromptCount) {
    out.flags.insert(Flags::PROMPT_ESTIMATED);
    let mut n = req.instructions.as_deref().map_or(0, |t| enc.count(t));
    n += raw_text_tokens(req.input, enc);
    out.tokens = n as u64;
}

/// Tokens of a `prompt` / `input` value: a string, an array of strings, a token array, or an
/// array of token arrays.
fn count_inputs(raw: Option<&RawValue>, enc: Encoding) -> u64 {
    let Some(raw) = raw else { return 0 };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(raw.get()) else { return 0 };
    fn walk(v: &serde_json::Value, enc: Encoding) -> u64 {
        match v {
            serde_json::Value::String(s) => enc.count(s) as u64,
            serde_json::Value::Number(_) => 1,
            serde_json::Value::Array(a) => a.iter().map(|x| walk(x, enc)).sum(),
            _ => 0,
        }
    }
    walk(&v, enc)
}

/// Tokens of every string inside a raw JSON value (a visible-text estimate).
fn raw_text_tokens(raw: Option<&RawValue>, enc: Encoding) -> usize {
    let Some(raw) = raw else { return 0 };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(raw.get()) else { return 0 };
    fn walk(v: &serde_json::Value, enc: Encoding) -> usize {
        match v {
            serde_json::Value::String(s) => enc.count(s),
            serde_json::Value::Array(a) => a.iter().map(|x| walk(x, enc)).sum(),
            serde_json::Value::Object(o) => o.values().map(|x| walk(x, enc)).sum(),
            _ => 0,
        }
    }
    walk(&v, enc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_framing() {
        // 3 priming + (3 + "user" 1 + "Hello" 1) = 8 in o200k and cl100k.
        let r = Request::parse(br#"{"messages":[{"role":"user","content":"Hello"}]}"#).unwrap();
        for (model, enc) in [("gpt-4o", Encoding::O200kBase), ("gpt-4", Encoding::Cl100kBase)] {
            let c = count(&r, Endpoint::ChatCompletions, model, enc);
            assert_eq!(c.tokens, 8, "{model}");
            assert!(c.flags.is_empty());
        }
        assert_eq!(count(&r, Endpoint::ChatCompletions, "o3-mini", Encoding::O200kBase).tokens, 7);
        assert_eq!(count(&r, Endpoint::ChatCompletions, "gpt-3.5-turbo-0301", Encoding::Cl100kBase).tokens, 9);
    }

    #[test]
    fn completions_prompt_shapes() {
        let enc = Encoding::Cl100kBase;
        let r = Request::parse(br#"{"prompt":[[1,2,3],[4]]}"#).unwrap();
        assert_eq!(count(&r, Endpoint::Completions, "x", enc).tokens, 4);
        let r = Request::parse(br#"{"prompt":["Hello","Hello"]}"#).unwrap();
        assert_eq!(count(&r, Endpoint::Completions, "x", enc).tokens, 2);
    }
}
