//! Prompt accounting: the service's framing rules applied to a parsed request.
//!
//! The chat rules below were measured on the recorded traffic (`dev.jsonl`; research notes in
//! `notes/prompt-research/FINDINGS.md`, Python reference `prompt_rules.py`). `n(s)` is the token
//! count of `s` as ordinary text.
//!
//! - **Framing**: `3 + Σ_messages (3 + n(role) + n(content) [+ n(name) + 1])`;
//!   gpt-3.5-turbo-0301 uses 4 per message and −1 per name.
//! - **Reasoning framing** (o1, o3, o4, gpt-5 families; *not* o1-mini / o1-preview): the reply
//!   priming is 2 instead of 3 (−1 overall) and every assistant message in the history costs 2
//!   more (its channel header).
//! - **Content arrays**: the text parts are concatenated with no separator; each image part adds
//!   its image tokens.
//! - **Tools / functions**: rendered as a TypeScript namespace (`render_tools`) appended to the
//!   first system or developer message after `"\n\n"`, or, without one, as a new system message
//!   costing `4 + n(section)`; then −1, and −1 per function whose properties carry no title or
//!   description at all. A top-level `title` of the parameters is a comment line right after
//!   the opening brace (DataDog and magentic on chat, langsmith on the Responses API: 8 records,
//!   gpt-4o and gpt-4.1); a top-level `description` a comment line right before it (one
//!   repository, flagged). A named `tool_choice` (or legacy `function_call`) adds
//!   `4 + n(" to=functions." + NAME)`; `auto`, `none`, `required` add 0.
//! - **Assistant tool calls**: a single call is a message of its own,
//!   `3 + n("assistant to=functions." + NAME) + n(compact arguments) + 3`; the assistant's text,
//!   when present, is a normal assistant message besides.
//! - **Tool results**: `3 + n(called function's name) + n(content)`; the name is looked up by
//!   `tool_call_id`, and a `name` field on the tool message adds nothing.
//! - **Parallel calls** (several `tool_calls` in one assistant message): one call of the
//!   `multi_tool_use.parallel` wrapper, `3 + n("assistant to=multi_tool_use.parallel") +
//!   n({"tool_uses":[{"recipient_name":"functions.NAME","parameters":ARGS},...]}) + 3`, and the
//!   tool messages answering it as one message, `3 + n("multi_tool_use.parallel") +
//!   n(["result", ...])` (`ParallelResults`): 36 of 37 records exact (Mirascope, fantasy, ellmer,
//!   crewAI; gpt-4o, gpt-4o-mini, gpt-4.1-nano, gpt-5, gpt-5-nano).
//! - `response_format: json_object` adds 0.
//! - `response_format: json_schema` (`render_response_format`): the section
//!   `"# Response Formats\n\n## NAME\n\n" [+ "// DESCRIPTION\n"] + SCHEMA`, SCHEMA being compact,
//!   ASCII-escaped JSON in request order without `additionalProperties`, `required`, `maxItems`,
//!   `default`, `minimum`, `maximum`. It goes where the tools section goes (after the tools
//!   section, `"\n\n"` between them, when both exist). The reply priming costs `n(NAME) + 2`
//!   more when no tools are defined, and so does every assistant text message in the history.
//!   245 of 245 records exact (DataDog, crewAI, Mirascope, fantasy, langchaingo; o200k models).
//!   Responses API `text.format` (flat fields): the same section, no name tag, and the section
//!   costs 3 less without a system message (1 less again on reasoning models); 102 of 105 exact.
//! - **gpt-5 models with tools (chat)**: the rules above plus a constant 85, plus 6 per assistant
//!   turn with tool calls (crewAI, fantasy; gpt-5, gpt-5-mini, gpt-5-nano; 1 to 3 tools), with a
//!   system message and `tool_choice` absent or `auto`: 29 of 32 records exact.
//! - **o-series models with tools (chat)**: the tools section is a message of its own,
//!   `4 + n(section)`, even beside a system message, plus 1 (crewAI o3-mini without a system
//!   message, fantasy o4-mini on OpenAI and Azure with one): 8 of 8 first turns exact. Turns
//!   with tool calls cost nothing more on o3-mini but 3 (Azure) or 6 (OpenAI) more on o4-mini:
//!   flagged.
//! - **Responses API function tools** (flat `{"type":"function","name",...}`): the same
//!   rendering, but kept out of the messages: the section costs `n(section) - 3` minus 1 per
//!   function without property comments, with or without a system message (DataDog py and js,
//!   Mirascope, fantasy, ellmer, crewAI), and 6 more on gpt-5 models (fantasy, ellmer, llm,
//!   logfire). 139 of 173 records exact. The Agents SDK recordings of March 2025 (DataDog,
//!   logfire) cost 18 more without tools and about 216 more with them, whatever the request;
//!   the same SDK's later recordings (langsmith, logfire) follow the rules: a service change,
//!   not a request shape (those requests carry a top-level schema title, which stays flagged
//!   on the Responses API for it). One Mirascope test (14 records, −37) reports fewer tokens
//!   than its messages and tools can cost; its chat twin and its own follow-up turns are
//!   exact: unexplained.
//! - **Responses API function calls on gpt-5.4 and later** (`harmony_call_model`): each
//!   `function_call` item is the harmony message
//!   `<|start|>assistant<|channel|>commentary to=functions.NAME<|message|>ARGS<|call|>` and each
//!   `function_call_output` `<|start|>functions.NAME to=assistant<|channel|>commentary<|message|>
//!   OUTPUT<|end|>` (special tokens 1 each, ARGS compact JSON): 16 of 16 single-call records
//!   without images exact (ellmer gpt-5.4-nano and gpt-5.6-terra, simonw/llm gpt-5.5).
//!   Consecutive calls stay flagged.
//!
//! Whatever rests on an unverified rule is counted by the closest rule and flagged
//! `prompt_estimated`: `json_schema` formats on reasoning models (no priming tag, one repository),
//! o-series tools with tool calls in the history or another `tool_choice`, gpt-5 tools without a
//! system message or with another `tool_choice`, parallel calls left unanswered or answered with
//! non-ASCII text, content parts other than text and images, a message holding only images on a
//! patch-rule model (1 to 3 more on the Responses API, one repository), `prediction`,
//! non-function tools, assistant refusals, a `name` on an assistant message with tool calls,
//! function schemas with a top-level `description`, a top-level `title` over uncommented
//! properties (or any on the Responses API), arrays of objects holding arrays or type lists, or
//! property titles on the June 2023 snapshots (`unverified_schema`), and on the Responses API:
//! o-series tools (3 more, one repository), `tool_choice` other than `auto`, `tools: []`,
//! `function_call` items before gpt-5.4 (2 less each than the chat rendering on non-reasoning
//! models: DataDog, fantasy, Mirascope; a single call sent back with its `id` and `status` 3
//! more again: Mirascope, langsmith, logfire) and consecutive ones on any model, reasoning and
//! other items,
//! stored prompts and `previous_response_id`.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::encoding::Encoding;
use crate::image;
use crate::options::MeterOptions;
use crate::record::{Endpoint, Flags};
use crate::request::{Content, FunctionCall, Message, Part, Request, ToolCall};
use crate::wire::{List, Text};

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

/// Whether `model` is a reasoning model (o-series, gpt-5 family), whose completions carry hidden
/// reasoning tokens.
///
/// This is about billing of reasoning, not about prompt framing: o1-mini is a reasoning model but
/// its prompts use the classic framing.
pub fn is_reasoning_model(model: &str) -> bool {
    let m = model.strip_prefix("ft:").unwrap_or(model);
    let o_series = m.len() >= 2 && m.as_bytes()[0] == b'o' && m.as_bytes()[1].is_ascii_digit();
    o_series || (m.starts_with("gpt-5") && !m.contains("chat"))
}

/// Whether the prompt of `model` uses the reasoning-model framing (2-token priming, +2 per
/// assistant message). Verified for o3-mini, o4-mini and every gpt-5 variant in the recordings,
/// gpt-5.2-chat-latest included; o1-mini (and o1-preview) use the classic framing.
fn reasoning_framing(model: &str) -> bool {
    let m = model.trim().to_ascii_lowercase();
    let m = m.strip_prefix("ft:").unwrap_or(&m);
    if m.starts_with("o1-mini") || m.starts_with("o1-preview") {
        return false;
    }
    ["o1", "o3", "o4", "gpt-5"].iter().any(|p| m.starts_with(p))
}

/// Whether a reasoning-framing model belongs to the gpt-5 family (as opposed to the o-series).
fn responses_gpt5(model: &str) -> bool {
    let m = model.trim().to_ascii_lowercase();
    m.strip_prefix("ft:").unwrap_or(&m).starts_with("gpt-5")
}

/// Counts the prompt of `req` for `endpoint`, `model` and `enc`, under the default options.
pub fn count(req: &Request<'_>, endpoint: Endpoint, model: &str, enc: Encoding) -> PromptCount {
    count_with(req, endpoint, model, enc, &MeterOptions::default())
}

/// [`count`] under `opts`: at most `limits.max_images` image headers are read, each from at
/// most `limits.max_image_base64` base64 characters, and an image whose size the request does
/// not carry (an http(s) URL) is priced by its entry in `image_sizes` when it has one.
pub fn count_with(
    req: &Request<'_>,
    endpoint: Endpoint,
    model: &str,
    enc: Encoding,
    opts: &MeterOptions,
) -> PromptCount {
    match endpoint {
        Endpoint::ChatCompletions => chat(req, model, enc, opts),
        Endpoint::Completions => PromptCount {
            tokens: count_inputs(req.prompt, enc),
            ..Default::default()
        },
        Endpoint::Embeddings => PromptCount {
            tokens: count_inputs(req.input, enc),
            ..Default::default()
        },
        Endpoint::Responses => responses(req, model, enc, opts),
    }
}

// ------------------------------------------------------------------------------------------
// The counter shared by chat and the Responses API

struct Counter<'m> {
    enc: Encoding,
    model: &'m str,
    per_message: i64,
    per_name: i64,
    reasoning: bool,
    /// Counting a Responses API request (tools and function calls are rendered differently).
    responses: bool,
    /// Function calls and their outputs rendered as harmony messages ([`Counter::call`],
    /// [`harmony_result`]): Responses API requests to gpt-5.4 and later.
    harmony_calls: bool,
    total: i64,
    image_tokens: Option<u64>,
    flags: Flags,
    /// Image headers that may still be read (`max_images`).
    images_left: usize,
    /// Base64 characters decoded per image header (`max_image_base64`).
    max_base64: usize,
    /// Sizes the host supplied for images it knows (`MeterOptions::image_sizes`).
    image_sizes: &'m HashMap<String, image::ImageSize>,
}

impl<'m> Counter<'m> {
    fn new(model: &'m str, enc: Encoding, opts: &'m MeterOptions) -> Self {
        let limits = &opts.limits;
        let legacy_0301 =
            model.contains("gpt-3.5-turbo-0301") || model.contains("gpt-35-turbo-0301");
        let (per_message, per_name) = if legacy_0301 { (4, -1) } else { (3, 1) };
        Counter {
            enc,
            model,
            per_message,
            per_name,
            reasoning: reasoning_framing(model),
            responses: false,
            harmony_calls: false,
            // Reply priming.
            total: 3,
            image_tokens: None,
            flags: Flags::EMPTY,
            images_left: limits.max_images,
            max_base64: limits.max_image_base64,
            image_sizes: &opts.image_sizes,
        }
    }

    fn n(&self, s: &str) -> i64 {
        self.enc.count(s) as i64
    }

    fn estimated(&mut self) {
        self.flags.insert(Flags::PROMPT_ESTIMATED);
    }

    /// A plain message: `per_message + n(role) + n(text) [+ n(name) + per_name]`, plus 2 for an
    /// assistant message under the reasoning framing.
    fn message(&mut self, role: &str, text: &str, name: Option<&str>) {
        self.total += self.per_message + self.n(role) + self.n(text);
        if let Some(name) = name {
            self.total += self.n(name) + self.per_name;
        }
        if self.reasoning && role == "assistant" {
            self.total += 2;
        }
    }

    /// One assistant tool call, rendered as its own message.
    ///
    /// With [`Counter::harmony_calls`] the call is the harmony message
    /// `<|start|>assistant<|channel|>commentary to=functions.NAME<|message|>ARGS<|call|>`:
    /// `4 + n("assistant") + n("commentary to=functions." + NAME) + n(compact arguments)`.
    fn call(&mut self, name: &str, arguments: &str) {
        if self.harmony_calls {
            self.total += 4
                + self.n("assistant")
                + self.n(&format!("commentary to=functions.{name}"))
                + self.n(&compact_json(arguments));
            return;
        }
        let header = format!("assistant to=functions.{name}");
        self.total += self.per_message + self.n(&header) + self.n(&compact_json(arguments)) + 3;
    }

    /// The text of `content` (text parts concatenated with no separator). Image parts add their
    /// tokens to the count; other parts are flagged.
    fn content<'c>(&mut self, content: &'c Content<'_>) -> Cow<'c, str> {
        match content {
            Content::None => Cow::Borrowed(""),
            Content::Text(t) => Cow::Borrowed(t),
            Content::Parts(parts) => {
                let mut text = String::new();
                for p in parts {
                    self.part(p, &mut text);
                }
                let images_only = !parts.is_empty()
                    && parts
                        .iter()
                        .all(|p| matches!(p.kind.as_deref(), Some("image_url" | "input_image")));
                if images_only && image::patch_rule(self.model) {
                    // Unverified: the only such messages in the recordings (Responses API,
                    // gpt-4.1-mini, gpt-5.4-nano, gpt-5.6-terra) cost 1 to 3 more than the
                    // rule, while the same images beside text in one message are exact.
                    self.estimated();
                }
                Cow::Owned(text)
            }
        }
    }

    fn part(&mut self, p: &Part<'_>, text: &mut String) {
        match p.kind.as_deref() {
            Some("text" | "input_text" | "output_text") => {
                text.push_str(p.text.as_deref().unwrap_or(""));
            }
            Some("image_url" | "input_image") => {
                let (url, detail) = match &p.image_url {
                    Some(i) => (
                        i.url.as_deref(),
                        i.detail.as_deref().or(p.detail.as_deref()),
                    ),
                    None => (None, p.detail.as_deref()),
                };
                let max_base64 = if self.images_left > 0 {
                    self.images_left -= 1;
                    self.max_base64
                } else {
                    self.flags.insert(Flags::TOO_MANY_IMAGES);
                    0
                };
                let t = image_part_tokens(
                    self.model,
                    url,
                    detail,
                    max_base64,
                    self.image_sizes,
                    &mut self.flags,
                );
                self.total = self
                    .total
                    .saturating_add(i64::try_from(t).unwrap_or(i64::MAX));
                self.image_tokens = Some(self.image_tokens.unwrap_or(0).saturating_add(t));
            }
            Some("refusal") => {
                // Unverified: counted as text.
                self.estimated();
                text.push_str(p.refusal.as_deref().unwrap_or(""));
            }
            // Audio, files and unknown parts add hidden tokens no rule covers.
            _ => self.estimated(),
        }
    }

    fn finish(mut self) -> PromptCount {
        if self.reasoning {
            self.total -= 1;
        }
        PromptCount {
            tokens: self.total.max(0) as u64,
            image_tokens: self.image_tokens,
            flags: self.flags,
        }
    }
}

/// `arguments` re-serialized as compact JSON when it parses, else as sent.
fn compact_json(arguments: &str) -> Cow<'_, str> {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v) => serde_json::to_string(&v).map_or(Cow::Borrowed(arguments), Cow::Owned),
        Err(_) => Cow::Borrowed(arguments),
    }
}

// ------------------------------------------------------------------------------------------
// Chat completions

fn chat(req: &Request<'_>, model: &str, enc: Encoding, opts: &MeterOptions) -> PromptCount {
    let mut c = Counter::new(model, enc, opts);
    let messages = req.messages.as_ref().map_or(&[][..], |m| &m.items[..]);
    if req.messages.as_ref().is_some_and(|m| m.dropped > 0)
        || messages.iter().any(|m| m.tool_calls.dropped > 0)
    {
        // The request was over the element budget: what was skipped is not counted.
        c.estimated();
    }
    let format = raw_value(req.response_format).and_then(|rf| {
        match rf.get("type").and_then(Value::as_str) {
            // JSON mode adds nothing (verified).
            Some("text" | "json_object") => None,
            Some("json_schema") => match rf.get("json_schema") {
                Some(js @ Value::Object(_)) => Some(ResponseFormat::new(js)),
                _ => {
                    c.estimated();
                    None
                }
            },
            _ => {
                c.estimated();
                None
            }
        }
    });
    count_messages(&mut c, req, messages, format.as_ref());
    c.finish()
}

// ------------------------------------------------------------------------------------------
// Structured outputs

/// A `json_schema` response format: the hidden section it adds and the name it tags turns with.
struct ResponseFormat {
    name: String,
    section: String,
    /// Whether turns carry the name tag (chat completions) or not (Responses API).
    tagged: bool,
}

impl ResponseFormat {
    /// `js` is the chat `response_format.json_schema` object, or the Responses API
    /// `text.format` object (the same fields, flat).
    fn new(js: &Value) -> Self {
        let name = js
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        ResponseFormat {
            section: render_response_format(js),
            name,
            tagged: true,
        }
    }
}

/// Schema keywords the service leaves out of the rendered schema.
const DROPPED_SCHEMA_KEYWORDS: [&str; 6] = [
    "additionalProperties",
    "required",
    "maxItems",
    "default",
    "minimum",
    "maximum",
];

/// The hidden section of a `json_schema` response format:
///
/// ```text
/// # Response Formats
///
/// ## NAME
///
/// // DESCRIPTION            (only when the format has a description)
/// {"type":"object","properties":{...}}
/// ```
///
/// The schema is compact JSON in the request's key order, non-ASCII escaped as `\uXXXX`, without
/// the keywords in [`DROPPED_SCHEMA_KEYWORDS`] (property names are kept whatever they are).
pub(crate) fn render_response_format(js: &Value) -> String {
    let name = js.get("name").and_then(Value::as_str).unwrap_or("");
    let mut out = format!("# Response Formats\n\n## {name}\n\n");
    if let Some(d) = non_empty_str(js.get("description")) {
        out.push_str("// ");
        out.push_str(d);
        out.push('\n');
    }
    let empty = Value::Object(Map::new());
    write_schema(js.get("schema").unwrap_or(&empty), &mut out, false, 0);
    out
}

/// Compact, ASCII-escaped JSON of a schema without the dropped keywords. `names` is true for
/// a map of names (`properties`, `$defs`), whose keys are never dropped.
fn write_schema(v: &Value, out: &mut String, names: bool, depth: usize) {
    match v {
        Value::Object(o) if depth <= MAX_JSON_DEPTH => {
            out.push('{');
            let mut first = true;
            for (k, x) in o {
                if !names && DROPPED_SCHEMA_KEYWORDS.contains(&k.as_str()) {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                write_json_str(k, out);
                out.push(':');
                let map = !names && matches!(k.as_str(), "properties" | "$defs" | "definitions");
                write_schema(x, out, map, depth + 1);
            }
            out.push('}');
        }
        Value::Array(a) if depth <= MAX_JSON_DEPTH => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_schema(x, out, false, depth + 1);
            }
            out.push(']');
        }
        Value::String(s) => write_json_str(s, out),
        Value::Object(_) | Value::Array(_) => out.push_str("null"),
        other => out.push_str(&other.to_string()),
    }
}

/// Nesting bound of [`write_schema`] (the parser already bounds it; this keeps the writer safe
/// on its own).
const MAX_JSON_DEPTH: usize = 256;

/// A JSON string literal with Python's `ensure_ascii` escaping: `\"`, `\\`, `\n`, `\r`, `\t`,
/// `\b`, `\f`, other control characters and every non-ASCII character as `\uXXXX` (UTF-16).
fn write_json_str(s: &str, out: &mut String) {
    write_json_string(s, out, true);
}

/// A JSON string literal: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f` and other control
/// characters as `\u00XX`; with `ascii`, every character beyond `~` as `\uXXXX` too (Python's
/// `json.dumps` with and without `ensure_ascii`).
fn write_json_string(s: &str, out: &mut String, ascii: bool) {
    use std::fmt::Write as _;
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ascii && (c as u32) > 0x7e) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Counts `messages` and the request's tools into `c` (the core of chat and Responses).
fn count_messages(
    c: &mut Counter<'_>,
    req: &Request<'_>,
    messages: &[Message<'_>],
    format: Option<&ResponseFormat>,
) {
    if raw_value(req.prediction).is_some() {
        // One record: +12 over the framing, no rule.
        c.estimated();
    }

    let mut tools = tool_section(req, c);
    let mut tool_use = tools.is_some();
    // Harmony models on the Responses API: calls and outputs of defined tools are verified
    // (`harmony_call_model`).
    let mut reasoning_tools_verified = c.harmony_calls && tools.is_some();
    if c.responses {
        if let Some(sec) = tools.take() {
            // The Responses API keeps the tools section out of the messages: it costs
            // `n(section) - 3` (with the −1 and per-function adjustments above) whether or not a
            // system message exists (DataDog, Mirascope, fantasy, ellmer, crewAI), 6 more on
            // gpt-5 models (fantasy, ellmer, llm, logfire); o-series 3 more (one repository).
            c.total += c.n(&sec) - 2;
            if c.reasoning {
                if responses_gpt5(c.model) {
                    c.total += 6;
                } else {
                    c.total += 3;
                    c.estimated();
                }
            }
            tool_use = false;
        }
    }
    // gpt-5 models on chat completions: tools cost a constant 85 more than their rendering, and
    // every assistant turn with tool calls 6 more (crewAI, fantasy; gpt-5, -mini, -nano; 1 to 3
    // tools). Verified with a system message and `tool_choice` absent or `auto`.
    let gpt5_tools = c.reasoning && !c.responses && tools.is_some() && responses_gpt5(c.model);
    if gpt5_tools {
        c.total += 85;
        let choice = raw_value(req.tool_choice);
        reasoning_tools_verified = choice.is_none() || choice == Some(Value::from("auto"));
    }
    // o-series models on chat completions: the tools section is a message of its own costing
    // `4 + n(section)`, even beside a system message, plus 1 (crewAI o3-mini without a system
    // message, fantasy o4-mini on OpenAI and Azure with one: 8 records). Verified on requests
    // without tool calls in the history: those cost nothing more on o3-mini but 3 (Azure) or 6
    // (OpenAI) more per turn on o4-mini.
    let o_tools = c.reasoning
        && !c.responses
        && tools.is_some()
        && format.is_none()
        && !responses_gpt5(c.model);
    if o_tools {
        c.total += 1;
        let choice = raw_value(req.tool_choice);
        let first_turn = !messages.iter().any(|m| {
            !m.tool_calls.items.is_empty()
                || m.function_call.is_some()
                || matches!(m.role.as_deref(), Some("tool" | "function"))
        });
        reasoning_tools_verified =
            first_turn && (choice.is_none() || choice == Some(Value::from("auto")));
    }
    // A `json_schema` format tags the reply priming with its name (`n(name) + 2`), unless tools
    // are defined or the model uses the reasoning framing; every assistant text message in the
    // history carries the same tag.
    let tag = format.filter(|f| f.tagged).map(|f| c.n(&f.name) + 2);
    if let Some(t) = tag {
        if c.reasoning {
            // One repository (gpt-5, o4-mini): no priming tag; unverified elsewhere.
            c.estimated();
        } else if tools.is_none() {
            c.total += t;
        }
    }
    // The hidden sections: tools first, then the response format, joined by "\n\n".
    let hidden: Option<Cow<'_, str>> = match (&tools, format) {
        (Some(t), Some(f)) => Some(Cow::Owned(format!("{t}\n\n{}", f.section))),
        (Some(t), None) => Some(Cow::Borrowed(t.as_str())),
        (None, Some(f)) => Some(Cow::Borrowed(f.section.as_str())),
        (None, None) => None,
    };
    let system = hidden.as_ref().filter(|_| !o_tools).and_then(|_| {
        messages
            .iter()
            .position(|m| matches!(m.role.as_deref(), Some("system" | "developer")))
    });
    if let Some(sec) = &hidden {
        if system.is_none() {
            c.total += 4 + c.n(sec);
            if gpt5_tools {
                // Without a system message the gpt-5 tools constant is unmeasured.
                reasoning_tools_verified = false;
            }
        }
    }
    if format.is_some_and(|f| !f.tagged) {
        // Responses API `text.format`: the section costs 3 less without a system message
        // (DataDog, langsmith, Mirascope, fantasy, crewAI) and 1 more with one (one repository);
        // reasoning models 1 less again (fantasy, ellmer).
        if system.is_some() {
            c.total += 1;
            c.estimated();
        } else {
            c.total -= 3;
        }
        if c.reasoning {
            c.total -= 1;
        }
    }

    // Tool results name the called function, found by call id.
    let mut called: HashMap<&str, &str> = HashMap::new();
    for m in messages {
        for call in &m.tool_calls.items {
            if let Some(id) = call.id.as_deref() {
                let name = call
                    .function
                    .as_ref()
                    .and_then(|f| f.name.as_deref())
                    .unwrap_or("");
                called.insert(id, name);
            }
        }
    }

    // The results of the parallel calls awaiting their one combined message.
    let mut parallel: Option<ParallelResults<'_>> = None;
    for (i, m) in messages.iter().enumerate() {
        let role = m.role.as_deref().unwrap_or("");
        let answers_parallel = role == "tool"
            && m.tool_call_id
                .as_deref()
                .is_some_and(|id| parallel.as_ref().is_some_and(|p| p.awaits(id)));
        if !answers_parallel {
            if let Some(p) = parallel.take() {
                p.count(c);
            }
        }
        let mut text = c.content(&m.content);
        if let Some(r) = m.refusal.as_deref() {
            // A refusal in history: unverified, counted as text.
            c.estimated();
            text.to_mut().push_str(r);
        }
        if Some(i) == system {
            if let Some(sec) = &hidden {
                let t = text.to_mut();
                t.push_str("\n\n");
                t.push_str(sec);
            }
        }

        let legacy_call: Option<&FunctionCall<'_>> = m.function_call.as_ref();
        if role == "assistant" && (!m.tool_calls.items.is_empty() || legacy_call.is_some()) {
            tool_use = true;
            if !text.is_empty() {
                c.total += c.per_message + c.n(role) + c.n(&text);
            }
            if let Some(name) = m.name.as_deref() {
                // 2 records (one repository), both one short of this: unverified.
                c.total += c.n(name) + c.per_name;
                c.estimated();
            }
            if gpt5_tools {
                c.total += 6;
            }
            if m.tool_calls.items.len() > 1 {
                parallel = Some(ParallelResults::new(c, &m.tool_calls.items));
                continue;
            }
            if m.tool_calls.items.is_empty() {
                if let Some(f) = legacy_call {
                    c.call(
                        f.name.as_deref().unwrap_or(""),
                        f.arguments.as_deref().unwrap_or(""),
                    );
                }
            }
            for call in &m.tool_calls.items {
                if call.kind.as_deref().is_some_and(|k| k != "function") {
                    c.estimated();
                }
                let f = call.function.as_ref();
                let name = f.and_then(|f| f.name.as_deref()).unwrap_or("");
                let args = f.and_then(|f| f.arguments.as_deref()).unwrap_or("");
                c.call(name, args);
            }
            continue;
        }
        if answers_parallel {
            if let Some(p) = parallel.as_mut() {
                if matches!(m.content, Content::Parts(_)) {
                    // Parts in a combined result: unverified.
                    c.estimated();
                }
                p.answer(m.tool_call_id.as_deref().unwrap_or(""), text.into_owned());
                if p.complete() {
                    if let Some(p) = parallel.take() {
                        p.count(c);
                    }
                }
            }
            continue;
        }
        if role == "tool" || role == "function" {
            tool_use = true;
            let by_id = m
                .tool_call_id
                .as_deref()
                .and_then(|id| called.get(id).copied());
            let name = match by_id.filter(|n| !n.is_empty()).or(m.name.as_deref()) {
                Some(n) => n,
                None => {
                    c.estimated();
                    ""
                }
            };
            c.total += if c.harmony_calls {
                harmony_result(c, name, &text)
            } else {
                c.per_message + c.n(name) + c.n(&text)
            };
            continue;
        }
        if role == "assistant" {
            c.total += tag.unwrap_or(0);
        }
        c.message(role, &text, m.name.as_deref());
    }
    if let Some(p) = parallel.take() {
        p.count(c);
    }

    if tool_use && c.reasoning && !reasoning_tools_verified {
        // o-series turns with tool calls, gpt-5 without a system message, another
        // `tool_choice`, tool turns without tools (harmony models included): unmeasured.
        c.estimated();
    }
}

/// The result of a function call as a harmony message (see [`Counter::harmony_calls`]):
/// `<|start|>functions.NAME to=assistant<|channel|>commentary<|message|>OUTPUT<|end|>`, that is
/// `4 + n("functions." + NAME + " to=assistant") + n("commentary") + n(OUTPUT)`.
fn harmony_result(c: &Counter<'_>, name: &str, output: &str) -> i64 {
    4 + c.n(&format!("functions.{name} to=assistant")) + c.n("commentary") + c.n(output)
}

/// Whether the Responses API renders function calls and their outputs for `model` as harmony
/// messages (openai/harmony: the call on the `commentary` channel addressed
/// `to=functions.NAME`, the output from `functions.NAME to=assistant`, no `<|constrain|>`
/// tag): gpt-5.4 and later.
///
/// Measured with the reasoning framing around them: the harmony messages are exact on every
/// record of single calls without images, ellmer (gpt-5.4-nano, 13 records, 1 to 3 turns with
/// calls, assistant and user messages between them; gpt-5.6-terra, 1) and simonw/llm (gpt-5.5,
/// 2, arguments sent with spaces and counted compact): 16 records, 2 repositories, 3 models.
/// The difference to the chat rendering depends on the function name (7 tokens for most, 8 for
/// `dice`), so this is a rendering, not a constant. Three ellmer records with an image after
/// the call cost 3 more than this (flagged by their image estimate). Not verified: gpt-5 (2025-08-07), gpt-5-mini and o4-mini cost 3 less per
/// call than this (charmbracelet/fantasy only), gpt-5.1 to gpt-5.3 have no recordings, and
/// several consecutive calls (ellmer: +10 and −2 against this) stay flagged.
fn harmony_call_model(model: &str) -> bool {
    let m = model.trim().to_ascii_lowercase();
    let m = m.strip_prefix("ft:").unwrap_or(&m);
    let Some(minor) = m.strip_prefix("gpt-5.") else {
        return false;
    };
    let digits: String = minor.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<u32>().is_ok_and(|v| v >= 4)
}

/// An assistant message with several tool calls and the tool messages answering it.
///
/// The service renders the calls as one call of its `multi_tool_use.parallel` wrapper,
/// `3 + n("assistant to=multi_tool_use.parallel") + n(WRAPPER) + 3` with WRAPPER the compact JSON
/// `{"tool_uses":[{"recipient_name":"functions.NAME","parameters":ARGS},...]}`, and the answers
/// as one message, `3 + n("multi_tool_use.parallel") + n(["result", ...])`, the contents as a
/// JSON list with `", "` between items, in the order the tool messages come. 36 of 37 records
/// exact: Mirascope (Python and TypeScript), fantasy, ellmer, crewAI; gpt-4o, gpt-4o-mini,
/// gpt-4.1-nano, gpt-5, gpt-5-nano; 2 and 3 calls, one or several functions. The 37th (crewAI,
/// 60k tokens of web pages) fits only with its non-ASCII answers `\uXXXX`-escaped.
struct ParallelResults<'m> {
    /// Call ids not answered yet.
    pending: Vec<&'m str>,
    /// Answers so far, in message order.
    results: Vec<String>,
}

impl<'m> ParallelResults<'m> {
    /// Counts the wrapper call of `calls` into `c` and awaits their answers.
    fn new(c: &mut Counter<'_>, calls: &'m [ToolCall<'m>]) -> Self {
        let mut wrapper = String::from("{\"tool_uses\":[");
        for (i, call) in calls.iter().enumerate() {
            if call.kind.as_deref().is_some_and(|k| k != "function") {
                c.estimated();
            }
            let f = call.function.as_ref();
            let name = f.and_then(|f| f.name.as_deref()).unwrap_or("");
            let args = f.and_then(|f| f.arguments.as_deref()).unwrap_or("");
            if i > 0 {
                wrapper.push(',');
            }
            wrapper.push_str("{\"recipient_name\":");
            write_json_string(&format!("functions.{name}"), &mut wrapper, false);
            wrapper.push_str(",\"parameters\":");
            match serde_json::from_str::<Value>(args) {
                Ok(v) => wrapper.push_str(&v.to_string()),
                Err(_) => {
                    // Arguments that are not JSON: no recording shows how they are wrapped.
                    c.estimated();
                    write_json_string(args, &mut wrapper, false);
                }
            }
            wrapper.push('}');
        }
        wrapper.push_str("]}");
        c.total += c.per_message + c.n("assistant to=multi_tool_use.parallel") + c.n(&wrapper) + 3;
        ParallelResults {
            pending: calls.iter().filter_map(|t| t.id.as_deref()).collect(),
            results: Vec::new(),
        }
    }

    fn awaits(&self, id: &str) -> bool {
        self.pending.contains(&id)
    }

    fn answer(&mut self, id: &str, content: String) {
        self.pending.retain(|p| *p != id);
        self.results.push(content);
    }

    fn complete(&self) -> bool {
        self.pending.is_empty()
    }

    /// Counts the combined answer message into `c`.
    fn count(self, c: &mut Counter<'_>) {
        if !self.pending.is_empty() {
            // Calls left unanswered (or without ids): unverified.
            c.estimated();
        }
        if self.results.is_empty() {
            return;
        }
        let mut list = String::from("[");
        for (i, r) in self.results.iter().enumerate() {
            if i > 0 {
                list.push_str(", ");
            }
            if !r.is_ascii() {
                // Non-ASCII results: raw in four crewAI records, `\uXXXX`-escaped in a fifth
                // (probably as its client sent them); the raw form is counted.
                c.estimated();
            }
            write_json_string(r, &mut list, false);
        }
        list.push(']');
        c.total += c.per_message + c.n("multi_tool_use.parallel") + c.n(&list);
    }
}

// ------------------------------------------------------------------------------------------
// Tools

/// The hidden tools section of `req` with its constant adjustments applied to `c`, or `None`
/// when the request defines no function.
fn tool_section(req: &Request<'_>, c: &mut Counter<'_>) -> Option<String> {
    let tools = raw_value(req.tools);
    let functions = raw_value(req.functions);
    let mut list: Vec<&Value> = Vec::new();
    match tools
        .as_ref()
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    {
        Some(tools) => {
            for t in tools {
                let kind = t.get("type").map_or(Some("function"), Value::as_str);
                if kind == Some("function") {
                    // Chat nests the function; the Responses API puts it flat.
                    list.push(t.get("function").unwrap_or(t));
                } else {
                    // Built-in and custom tools: no rule.
                    c.estimated();
                }
            }
        }
        None => {
            if let Some(Value::Array(f)) = &functions {
                list.extend(f.iter());
            }
        }
    }
    if list.is_empty() {
        return None;
    }
    let (sec, overflow) = render(&list);
    if overflow {
        c.estimated();
    }
    c.total -= 1;
    c.total -= list.iter().filter(|f| no_property_comments(f)).count() as i64;
    if list
        .iter()
        .any(|f| unverified_schema(f, c.responses, c.model))
    {
        c.estimated();
    }
    c.total += tool_choice_tokens(req, c);
    Some(sec)
}

/// Tokens of `tool_choice` (or legacy `function_call`): 0 for `auto`, `none`, `required`;
/// `4 + n(" to=functions." + NAME)` for a named function.
fn tool_choice_tokens(req: &Request<'_>, c: &mut Counter<'_>) -> i64 {
    let choice = raw_value(req.tool_choice)
        .filter(|v| !is_falsy(v))
        .or_else(|| raw_value(req.function_call));
    match choice {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) => {
            if !matches!(s.as_str(), "auto" | "none" | "required") || (c.responses && s != "auto") {
                // The Responses API: only `auto` is verified.
                c.estimated();
            }
            0
        }
        Some(Value::Object(o)) => {
            if c.responses {
                // A named choice on the Responses API: one repository, no rule.
                c.estimated();
            }
            let f = o.get("function").and_then(Value::as_object).unwrap_or(&o);
            let name = f.get("name").and_then(Value::as_str).unwrap_or("");
            if name.is_empty() {
                // `allowed_tools`, built-in tools: no rule.
                c.estimated();
            }
            4 + c.n(&format!(" to=functions.{name}"))
        }
        Some(_) => {
            c.estimated();
            0
        }
    }
}

/// Whether a function's schema has a shape whose rendering the recordings do not verify:
///
/// - a top-level `description` on `parameters` (one schema, one repository: langsmith's Agents
///   SDK recordings);
/// - a top-level `title` on a function whose properties carry no comment (the −1 of such
///   functions may hinge on the first line after the brace, which the title then is), and any
///   top-level `title` on the Responses API: exact in langsmith's Agents SDK recordings, but the
///   same SDK's March 2025 recordings with titled schemas (DataDog, logfire) cost about 216
///   more, unexplained;
/// - an array of objects whose item properties hold an array or a type list: the one such schema
///   (crewAI planning, 11 records) costs 32 more than its rendering;
/// - a property `title` on a June 2023 snapshot ([`june_2023_snapshot`]): titles are exact on
///   gpt-3.5-turbo-0125, gpt-4-1106-preview, gpt-4-0125-preview and every later model, but the
///   one titled schema sent to gpt-4-0613 (langchaingo, 2 records) costs 10 and 13 less than
///   its rendering; the untitled schema sent to gpt-4-0613 (dd-trace-js) is exact.
fn unverified_schema(f: &Value, responses: bool, model: &str) -> bool {
    let Some(params) = f.get("parameters") else {
        return false;
    };
    let titled = non_empty_str(params.get("title")).is_some();
    non_empty_str(params.get("description")).is_some()
        || (titled && (responses || no_property_comments(f)))
        || nested_array_items(params)
        || (june_2023_snapshot(model) && property_titles(params))
}

/// Whether `model` is, or may resolve to, one of the June 2023 snapshots that introduced
/// function calling: a `-0613` model (`gpt-4-0613`, `gpt-3.5-turbo-16k-0613`, fine-tunes of
/// them), or the `gpt-4` / `gpt-4-32k` names, which resolve to a 0613 snapshot on OpenAI and may
/// on Azure.
fn june_2023_snapshot(model: &str) -> bool {
    let m = model.trim().to_ascii_lowercase();
    let m = m.strip_prefix("ft:").unwrap_or(&m);
    m.contains("-0613") || m == "gpt-4" || m == "gpt-4-32k"
}

/// Whether any property of `schema`, at any depth, carries a non-empty `title`.
fn property_titles(schema: &Value) -> bool {
    any_subschema(schema, 0, &|s| {
        properties(s).any(|p| non_empty_str(p.get("title")).is_some())
    })
}

/// Whether `f` holds for `schema` or any schema nested in it through `properties` and `items`,
/// down to [`MAX_SCHEMA_DEPTH`].
fn any_subschema(schema: &Value, depth: usize, f: &impl Fn(&Value) -> bool) -> bool {
    depth <= MAX_SCHEMA_DEPTH
        && (f(schema)
            || properties(schema)
                .chain(schema.get("items"))
                .any(|v| any_subschema(v, depth + 1, f)))
}

/// Whether `schema` holds, at any depth, an array of objects whose item properties include an
/// array or a type list.
fn nested_array_items(schema: &Value) -> bool {
    any_subschema(schema, 0, &|s| {
        s.get("items")
            .filter(|i| {
                i.get("type").and_then(Value::as_str) == Some("object")
                    || i.get("properties").is_some()
            })
            .is_some_and(|items| {
                properties(items).any(|p| {
                    p.get("type")
                        .is_some_and(|t| t.is_array() || t.as_str() == Some("array"))
                })
            })
    })
}

/// The property schemas of an object schema.
fn properties(schema: &Value) -> impl Iterator<Item = &Value> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|p| p.values())
}

/// Whether a function's properties are non-empty and none carries a title or description: such
/// a function costs one token less (indistinguishable in the data from "the first property has
/// no comment").
fn no_property_comments(f: &Value) -> bool {
    let props = f
        .get("parameters")
        .and_then(|p| p.get("properties"))
        .and_then(Value::as_object);
    match props {
        Some(props) if !props.is_empty() => !props.values().any(|v| {
            non_empty_str(v.get("title")).is_some() || non_empty_str(v.get("description")).is_some()
        }),
        _ => false,
    }
}

/// Renders function definitions (the `function` objects of `tools`, or legacy `functions`) as
/// the hidden TypeScript namespace the service prepends:
///
/// ```text
/// # Tools
///
/// ## functions
///
/// namespace functions {
///
/// // description
/// type NAME = (_: {
/// // property description
/// prop: string,
/// opt?: number, // default: 5
/// }) => any;
///
/// } // namespace functions
/// ```
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn render_tools(functions: &[&Value]) -> String {
    render(functions).0
}

/// Schemas nested deeper than this (e.g. a recursive `$ref`) render as `any` and are flagged.
const MAX_SCHEMA_DEPTH: usize = 32;

fn render(functions: &[&Value]) -> (String, bool) {
    let mut r = Ts {
        defs: None,
        overflow: false,
    };
    let mut items: Vec<String> = vec!["## functions\n".into(), "namespace functions {\n".into()];
    let empty = Map::new();
    for f in functions {
        if let Some(d) = f.get("description").and_then(Value::as_str) {
            for line in d.trim().lines() {
                let line = line.trim();
                items.push(if line.is_empty() {
                    "//".into()
                } else {
                    format!("// {line}")
                });
            }
        }
        let name = f.get("name").and_then(Value::as_str).unwrap_or("");
        let params = f
            .get("parameters")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let has_props = params
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty());
        if has_props {
            r.defs = [params.get("$defs"), params.get("definitions")]
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
                .find(|d| !d.is_empty());
            let mut ts = String::new();
            r.ts(&Value::Object(params.clone()), &mut ts, 0);
            items.push(format!("type {name} = (_: {ts}) => any;\n"));
        } else {
            items.push(format!("type {name} = () => any;\n"));
        }
    }
    items.push("} // namespace functions".into());
    (format!("# Tools\n\n{}", items.join("\n")), r.overflow)
}

/// The TypeScript rendering of a JSON schema, with `$ref`s into `defs` inlined.
struct Ts<'v> {
    defs: Option<&'v Map<String, Value>>,
    overflow: bool,
}

impl<'v> Ts<'v> {
    /// `v` with a `$ref` into the definitions replaced by the definition, `v`'s own keys
    /// overriding the definition's.
    fn deref<'a>(&self, v: &'a Value) -> Cow<'a, Value> {
        let (Some(defs), Some(o)) = (self.defs, v.as_object()) else {
            return Cow::Borrowed(v);
        };
        let Some(r) = o.get("$ref") else {
            return Cow::Borrowed(v);
        };
        let key = r
            .as_str()
            .map_or("", |r| r.rsplit('/').next().unwrap_or(""));
        let mut d = defs
            .get(key)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, x) in o {
            if k != "$ref" {
                d.insert(k.clone(), x.clone());
            }
        }
        Cow::Owned(Value::Object(d))
    }

    fn ts(&mut self, schema: &Value, out: &mut String, depth: usize) {
        if depth > MAX_SCHEMA_DEPTH {
            self.overflow = true;
            out.push_str("any");
            return;
        }
        let schema = self.deref(schema);
        let Some(o) = schema.as_object() else {
            out.push_str("any");
            return;
        };
        let t = o.get("type");
        if let Some(Value::Array(types)) = t {
            let names: Vec<Cow<'_, str>> = types
                .iter()
                .map(|x| {
                    if x.as_str() == Some("integer") {
                        Cow::Borrowed("number")
                    } else {
                        py_str(x)
                    }
                })
                .collect();
            out.push_str(&names.join(" | "));
            return;
        }
        let enum_values = o
            .get("enum")
            .and_then(Value::as_array)
            .filter(|e| !e.is_empty());
        match t.and_then(Value::as_str) {
            Some("object") => self.object(o, out, depth),
            None if matches!(t, None | Some(Value::Null)) && o.contains_key("properties") => {
                self.object(o, out, depth)
            }
            Some("string") => match enum_values {
                Some(e) => {
                    let v: Vec<String> = e.iter().map(|x| format!("\"{}\"", py_str(x))).collect();
                    out.push_str(&v.join(" | "));
                }
                None => out.push_str("string"),
            },
            Some("number" | "integer") => match enum_values {
                Some(e) => {
                    let v: Vec<Cow<'_, str>> = e.iter().map(py_str).collect();
                    out.push_str(&v.join(" | "));
                }
                None => out.push_str("number"),
            },
            Some("boolean") => out.push_str("boolean"),
            Some("null") => out.push_str("null"),
            Some("array") => match o.get("items") {
                None => out.push_str("any[]"),
                Some(items) => {
                    let it = self.deref(items);
                    let object_items = it.as_object().is_some_and(|i| {
                        i.get("type").and_then(Value::as_str) == Some("object")
                            || i.contains_key("properties")
                    });
                    if object_items {
                        out.push_str("Array<\n");
                        comment_block(&it, out);
                        self.ts(&it, out, depth + 1);
                        out.push_str("\n>");
                    } else {
                        self.ts(&it, out, depth + 1);
                        out.push_str("[]");
                    }
                }
            },
            _ => out.push_str("any"),
        }
    }

    fn object(&mut self, o: &Map<String, Value>, out: &mut String, depth: usize) {
        let top = depth == 0;
        if let (true, Some(d)) = (top, non_empty_str(o.get("description"))) {
            out.push_str("// ");
            out.push_str(d);
            out.push('\n');
        }
        out.push_str("{\n");
        if let (true, Some(t)) = (top, non_empty_str(o.get("title"))) {
            out.push_str("// ");
            out.push_str(t);
            out.push('\n');
        }
        let required: Vec<&str> = o
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = o.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                let v = self.deref(v);
                comment_block(&v, out);
                out.push_str(k);
                if !required.contains(&k.as_str()) {
                    out.push('?');
                }
                out.push_str(": ");
                self.ts(&v, out, depth + 1);
                out.push(',');
                if let Some(d) = v.get("default") {
                    out.push_str(" // default: ");
                    match d {
                        Value::String(s) => {
                            out.push('"');
                            out.push_str(s);
                            out.push('"');
                        }
                        other => out.push_str(&other.to_string()),
                    }
                }
                out.push('\n');
            }
        }
        out.push('}');
    }
}

/// The comment lines of a schema's title and description, each followed by `"\n"`:
/// `// T` / `//` / `// D`, or just the one present.
fn comment_block(v: &Value, out: &mut String) {
    let title = non_empty_str(v.get("title"));
    let desc = non_empty_str(v.get("description"));
    match (title, desc) {
        (Some(t), Some(d)) => {
            out.push_str("// ");
            out.push_str(t);
            out.push_str("\n//\n// ");
            out.push_str(d);
            out.push('\n');
        }
        (Some(s), None) | (None, Some(s)) => {
            out.push_str("// ");
            out.push_str(s);
            out.push('\n');
        }
        (None, None) => {}
    }
}

fn non_empty_str(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A JSON scalar as Python's `str()` prints it (the rendering the rules were measured with):
/// strings bare, numbers as JSON, `True`/`False`/`None`.
fn py_str(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        Value::Bool(true) => Cow::Borrowed("True"),
        Value::Bool(false) => Cow::Borrowed("False"),
        Value::Null => Cow::Borrowed("None"),
        other => Cow::Owned(other.to_string()),
    }
}

/// A raw JSON value parsed (property order kept), `None` when absent, `null` or unreadable.
fn raw_value(raw: Option<&RawValue>) -> Option<Value> {
    let v = serde_json::from_str::<Value>(raw?.get()).ok()?;
    (!v.is_null()).then_some(v)
}

fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) => false,
    }
}

// ------------------------------------------------------------------------------------------
// Images

/// Image tokens of one image part (chat `image_url`, Responses `input_image`), added to the
/// prompt and to `image_tokens`: the size comes from the header of a `data:` URL (never
/// fetched) or else from `sizes` (the host's entry for the URL), the tokens from the image rules
/// of `model`. Without either (an http(s) URL the host did not size, a `file_id`, an unreadable
/// header) the image is `image_size_unknown` and the image module's point estimate is used; a
/// rule that is not verified or a missing size is `image_tokens_estimated`.
fn image_part_tokens(
    model: &str,
    url: Option<&str>,
    detail: Option<&str>,
    max_base64: usize,
    sizes: &HashMap<String, image::ImageSize>,
    flags: &mut Flags,
) -> u64 {
    // The host's map is consulted only when the header is not read: hashing a data URL of
    // megabytes for nothing would cost more than reading its header.
    let size = url
        .filter(|u| max_base64 > 0 && u.starts_with("data:"))
        .and_then(|u| image::sniff_data_url(u, max_base64))
        .map(|(_, size)| size)
        .or_else(|| {
            url.and_then(|u| sizes.get(u))
                .copied()
                .filter(|s| s.width > 0 && s.height > 0)
        });
    if size.is_none() {
        flags.insert(Flags::IMAGE_SIZE_UNKNOWN);
    }
    let est = image::image_tokens(model, image::Detail::parse(detail), size);
    if !est.exact_rule || !est.size_known {
        flags.insert(Flags::IMAGE_TOKENS_ESTIMATED);
    }
    est.tokens
}

// ------------------------------------------------------------------------------------------
// Responses API

/// One item of a Responses API `input` array (an item of an odd type reads as an empty one,
/// which is flagged, instead of dropping the whole input).
#[derive(Default, Deserialize)]
#[serde(remote = "Self")]
struct InputItem<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Text<'a>,
    #[serde(borrow, default)]
    role: Text<'a>,
    #[serde(borrow, default)]
    content: Content<'a>,
    #[serde(borrow, default)]
    name: Text<'a>,
    #[serde(borrow, default)]
    arguments: Text<'a>,
    #[serde(borrow, default)]
    call_id: Text<'a>,
    #[serde(borrow, default)]
    output: Content<'a>,
    /// The item's own id and status: present when an output item is sent back as returned.
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    status: Text<'a>,
}

crate::request::lenient_object!(InputItem<'a>);

/// The Responses API counted as chat: `instructions` is a system message (verified with image
/// records that match their chat twins), `input` a user message or a list of messages. Function
/// tools are counted apart from the messages (see `count_messages`). Function calls, their
/// outputs, other items and `previous_response_id` are counted by the chat rules but flagged.
fn responses(req: &Request<'_>, model: &str, enc: Encoding, opts: &MeterOptions) -> PromptCount {
    let mut c = Counter::new(model, enc, opts);
    c.responses = true;
    c.harmony_calls = harmony_call_model(model);
    let mut messages: Vec<Message<'_>> = Vec::new();
    if let Some(i) = req.instructions.0.clone() {
        messages.push(Message {
            role: Text(Some("system".into())),
            content: Content::Text(i),
            ..Default::default()
        });
    }
    if let Some(raw) = req.input {
        let s = raw.get().trim_start();
        if s.starts_with('"') {
            if let Ok(t) = serde_json::from_str::<Text<'_>>(raw.get()) {
                messages.push(Message {
                    role: Text(Some("user".into())),
                    content: t.0.map_or(Content::None, Content::Text),
                    ..Default::default()
                });
            }
        } else {
            match serde_json::from_str::<List<InputItem<'_>>>(raw.get()) {
                Ok(items) => {
                    let calls: Vec<bool> = items
                        .items
                        .iter()
                        .map(|it| it.kind.as_deref() == Some("function_call"))
                        .collect();
                    for (k, it) in items.items.into_iter().enumerate() {
                        let before = k > 0 && calls[k - 1];
                        let after = calls.get(k + 1).copied().unwrap_or(false);
                        if calls[k] && before {
                            // Consecutive calls (parallel): no verified rendering.
                            c.estimated();
                        }
                        input_item(&mut c, it, !before && !after, &mut messages);
                    }
                }
                Err(_) => c.estimated(),
            }
        }
    }
    if raw_value(req.prompt).is_some() {
        // A stored prompt template: its text lives on the server.
        c.estimated();
    }
    if req.previous_response_id.0.is_some() {
        // The stored conversation is part of the prompt and not visible here.
        c.estimated();
    }
    if raw_value(req.tools).is_some_and(|t| t.as_array().is_some_and(Vec::is_empty)) {
        // `tools: []`: +18 in some recordings (dd-trace-py, logfire), 0 in others (langsmith,
        // logfire); no rule.
        c.estimated();
    }
    let mut format = None;
    if let Some(text) = raw_value(req.text) {
        let f = text.get("format");
        match f.and_then(|f| f.get("type")).and_then(Value::as_str) {
            // JSON mode adds nothing, as on chat.
            None | Some("text" | "json_object") => {}
            Some("json_schema") => {
                format = f.map(|f| ResponseFormat {
                    tagged: false,
                    ..ResponseFormat::new(f)
                });
            }
            _ => c.estimated(),
        }
    }
    count_messages(&mut c, req, &messages, format.as_ref());
    c.finish()
}

/// One `input` item; `single` is false for a call next to another call.
fn input_item<'a>(
    c: &mut Counter<'_>,
    it: InputItem<'a>,
    single: bool,
    messages: &mut Vec<Message<'a>>,
) {
    match it.kind.as_deref() {
        None | Some("message") if it.role.0.is_some() => {
            messages.push(Message {
                role: it.role,
                content: it.content,
                name: it.name,
                ..Default::default()
            });
        }
        Some("function_call") => {
            // Harmony models: verified for single calls (`harmony_call_model`). Elsewhere each
            // call costs 2 less than its chat rendering on non-reasoning models (DataDog,
            // fantasy, Mirascope), but single calls in one repository cost 3 more again and
            // gpt-5 and o4-mini 4 more: still flagged.
            if !c.harmony_calls {
                c.estimated();
            }
            if !c.reasoning {
                c.total -= 2;
                // A single call sent back as the service returned it (with its `id` and
                // `status`) costs 3 more: Mirascope (gpt-4o, gpt-4o-mini, 44 records),
                // langsmith (gpt-4.1, 4), logfire (gpt-4.1, 1) exact. Calls built by the client
                // (no `status`: DataDog js with `id`, DataDog py, fantasy, ellmer, Mirascope)
                // cost nothing more, and so do consecutive calls with `status` (Mirascope).
                // Why is unknown (the stored item the id names, presumably): the field is a
                // proxy, so this stays flagged. Against it: two Mirascope turns whose call was
                // generated in 39 tokens instead of 23 (0 and 2 more, not 3), and the Agents SDK
                // recordings of March 2025 (0, inside their unexplained 216).
                if single && it.id.0.is_some() && it.status.0.is_some() {
                    c.total += 3;
                }
            }
            let call = ToolCall {
                id: it.call_id,
                kind: Text(Some("function".into())),
                function: Some(FunctionCall {
                    name: it.name,
                    arguments: it.arguments,
                }),
            };
            messages.push(Message {
                role: Text(Some("assistant".into())),
                tool_calls: List {
                    items: vec![call],
                    dropped: 0,
                },
                ..Default::default()
            });
        }
        Some("function_call_output") => {
            if !c.harmony_calls || !matches!(it.output, Content::Text(_)) {
                // Output parts (images, files) in a result: unverified.
                c.estimated();
            }
            messages.push(Message {
                role: Text(Some("tool".into())),
                content: it.output,
                tool_call_id: it.call_id,
                ..Default::default()
            });
        }
        // Reasoning items, built-in tool calls, item references: no rule.
        _ => c.estimated(),
    }
}

// ------------------------------------------------------------------------------------------
// Completions and embeddings

/// Tokens of a `prompt` / `input` value: a string, an array of strings, a token array, or an
/// array of token arrays.
fn count_inputs(raw: Option<&RawValue>, enc: Encoding) -> u64 {
    let Some(raw) = raw else { return 0 };
    let Ok(v) = serde_json::from_str::<Value>(raw.get()) else {
        return 0;
    };
    fn walk(v: &Value, enc: Encoding) -> u64 {
        match v {
            Value::String(s) => enc.count(s) as u64,
            Value::Number(_) => 1,
            Value::Array(a) => a.iter().map(|x| walk(x, enc)).sum(),
            _ => 0,
        }
    }
    walk(&v, enc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_count(body: &str, model: &str, enc: Encoding) -> PromptCount {
        let r = Request::parse(body.as_bytes()).unwrap();
        count(&r, Endpoint::ChatCompletions, model, enc)
    }

    #[test]
    fn classic_framing() {
        // 3 priming + (3 + "user" 1 + "Hello" 1) = 8 in o200k and cl100k.
        let r = Request::parse(br#"{"messages":[{"role":"user","content":"Hello"}]}"#).unwrap();
        for (model, enc) in [
            ("gpt-4o", Encoding::O200kBase),
            ("gpt-4", Encoding::Cl100kBase),
        ] {
            let c = count(&r, Endpoint::ChatCompletions, model, enc);
            assert_eq!(c.tokens, 8, "{model}");
            assert!(c.flags.is_empty());
        }
        assert_eq!(
            count(
                &r,
                Endpoint::ChatCompletions,
                "o3-mini",
                Encoding::O200kBase
            )
            .tokens,
            7
        );
        assert_eq!(
            count(
                &r,
                Endpoint::ChatCompletions,
                "gpt-3.5-turbo-0301",
                Encoding::Cl100kBase
            )
            .tokens,
            9
        );
    }

    #[test]
    fn names_and_0301() {
        let e = Encoding::Cl100kBase;
        let body = r#"{"messages":[{"role":"system","content":"Be brief."},
            {"role":"user","name":"alice_smith","content":"What is 2+2?"}]}"#;
        let base = 3
            + (3 + e.count("system") + e.count("Be brief."))
            + (3 + e.count("user") + e.count("What is 2+2?"));
        let name = e.count("alice_smith");
        assert_eq!(
            chat_count(body, "gpt-4-0613", e).tokens as usize,
            base + name + 1
        );
        // 0301: 4 per message, a name costs one less than its tokens.
        assert_eq!(
            chat_count(body, "gpt-3.5-turbo-0301", e).tokens as usize,
            base + 2 + name - 1
        );
    }

    #[test]
    fn reasoning_framing_assistant_turns() {
        let e = Encoding::O200kBase;
        let body = r#"{"messages":[{"role":"user","content":"Hi"},
            {"role":"assistant","content":"Hello! How can I help?"},
            {"role":"user","content":"Tell me a joke."}]}"#;
        let classic = 3
            + (3 + e.count("user") + e.count("Hi"))
            + (3 + e.count("assistant") + e.count("Hello! How can I help?"))
            + (3 + e.count("user") + e.count("Tell me a joke."));
        assert_eq!(chat_count(body, "gpt-4o", e).tokens as usize, classic);
        for m in [
            "gpt-5-mini",
            "o3-mini-2025-01-31",
            "o4-mini",
            "gpt-5.2-chat-latest",
        ] {
            let c = chat_count(body, m, e);
            // −1 priming, +2 for the assistant message in history.
            assert_eq!(c.tokens as usize, classic + 1, "{m}");
            assert!(c.flags.is_empty(), "{m}");
        }
        // o1-mini keeps the classic framing.
        assert_eq!(
            chat_count(body, "o1-mini-2024-09-12", e).tokens as usize,
            classic
        );
        assert!(reasoning_framing("o1-2024-12-17") && !reasoning_framing("o1-preview"));
        assert!(is_reasoning_model("o1-mini"));
    }

    #[test]
    fn content_arrays_concatenate_text() {
        let e = Encoding::O200kBase;
        let body = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"Hello"},{"type":"text","text":" world"},{"type":"text","text":"!!"}]}]}"#;
        let c = chat_count(body, "gpt-4o", e);
        assert_eq!(
            c.tokens as usize,
            3 + 3 + e.count("user") + e.count("Hello world!!")
        );
        assert!(c.flags.is_empty());
        // Unknown parts are flagged.
        let body = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}"#;
        assert!(chat_count(body, "gpt-4o", e)
            .flags
            .contains(Flags::PROMPT_ESTIMATED));
    }

    #[test]
    fn image_parts_add_image_tokens() {
        let e = Encoding::O200kBase;
        // A 640x480 PNG header: 2 tiles on gpt-4o (85 + 2·170), wherever the image sits.
        let png =
            "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAoAAAAHgCAIAAAC6s0uzAAAAAElFTkSuQmCC";
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"{png}"}}}},{{"type":"text","text":"What is this?"}}]}}]}}"#
        );
        let text = 3 + 3 + e.count("user") + e.count("What is this?");
        let c = chat_count(&body, "gpt-4o-2024-08-06", e);
        assert_eq!((c.tokens as usize, c.image_tokens), (text + 425, Some(425)));
        assert!(c.flags.is_empty(), "{:?}", c.flags);
        // gpt-4o-mini: 2833 + 2·5667.
        assert_eq!(
            chat_count(&body, "gpt-4o-mini", e).image_tokens,
            Some(14167)
        );
        // An http URL: size unknown, a point estimate, flagged.
        let body = body.replace(png, "https://example.com/cat.png");
        let c = chat_count(&body, "gpt-4o", e);
        assert!(c.image_tokens.is_some());
        assert!(
            c.flags.contains(Flags::IMAGE_SIZE_UNKNOWN)
                && c.flags.contains(Flags::IMAGE_TOKENS_ESTIMATED)
        );
        assert!(!c.flags.contains(Flags::PROMPT_ESTIMATED));
        // An image alone in its message is verified on tile models only.
        let alone = format!(
            r#"{{"messages":[{{"role":"user","content":"What is this?"}},{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"{png}"}}}}]}}]}}"#
        );
        assert!(chat_count(&alone, "gpt-4o", e).flags.is_empty());
        let beside = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"text","text":"What is this?"}},{{"type":"image_url","image_url":{{"url":"{png}"}}}}]}}]}}"#
        );
        assert!(chat_count(&beside, "gpt-4.1-mini", e).flags.is_empty());
        assert!(chat_count(&alone, "gpt-4.1-mini", e)
            .flags
            .contains(Flags::PROMPT_ESTIMATED));
        // The host knows its size: priced as the data URL of that size, with no flag. An
        // entry for another URL changes nothing.
        let r = Request::parse(body.as_bytes()).unwrap();
        let mut o = MeterOptions::default();
        o.image_size("https://example.com/dog.png", 640, 480);
        let other = count_with(&r, Endpoint::ChatCompletions, "gpt-4o", e, &o);
        assert_eq!(other, c);
        o.image_size("https://example.com/cat.png", 0, 480);
        let zero = count_with(&r, Endpoint::ChatCompletions, "gpt-4o", e, &o);
        assert_eq!(zero, c, "a zero side counts as no entry");
        o.image_size("https://example.com/cat.png", 640, 480);
        let sized = count_with(&r, Endpoint::ChatCompletions, "gpt-4o", e, &o);
        assert_eq!(
            (sized.tokens as usize, sized.image_tokens),
            (text + 425, Some(425))
        );
        assert!(sized.flags.is_empty(), "{:?}", sized.flags);
        // The same on the Responses API, where the URL is the part's string.
        let r = Request::parse(br#"{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_image","image_url":"https://example.com/cat.png"}]}]}"#).unwrap();
        let unsized_ = count(&r, Endpoint::Responses, "gpt-4o", e);
        let sized = count_with(&r, Endpoint::Responses, "gpt-4o", e, &o);
        assert_eq!(sized.image_tokens, Some(425));
        assert!(unsized_.flags.contains(Flags::IMAGE_SIZE_UNKNOWN));
        assert!(!sized.flags.contains(Flags::IMAGE_SIZE_UNKNOWN));
    }

    #[test]
    fn images_past_max_images_are_estimated_unsized() {
        let e = Encoding::O200kBase;
        let png =
            "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAoAAAAHgCAIAAAC6s0uzAAAAAElFTkSuQmCC";
        let part = format!(r#"{{"type":"image_url","image_url":{{"url":"{png}"}}}}"#);
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":[{}]}}]}}"#,
            vec![part; 3].join(",")
        );
        let r = Request::parse(body.as_bytes()).unwrap();
        let all = count(&r, Endpoint::ChatCompletions, "gpt-4o", e);
        assert_eq!(all.image_tokens, Some(3 * 425));
        assert!(!all.flags.contains(Flags::TOO_MANY_IMAGES));
        let mut limits = MeterOptions::default();
        limits.limits.max_images = 2;
        let two = count_with(&r, Endpoint::ChatCompletions, "gpt-4o", e, &limits);
        assert!(two
            .flags
            .contains(Flags::TOO_MANY_IMAGES | Flags::IMAGE_SIZE_UNKNOWN));
        let unsized_one = image::image_tokens("gpt-4o", image::Detail::Auto, None).tokens;
        assert_eq!(two.image_tokens, Some(2 * 425 + unsized_one));
        // A base64 budget too small to reach the header leaves the size unknown.
        let mut tiny = MeterOptions::default();
        tiny.limits.max_image_base64 = 8;
        let c = count_with(&r, Endpoint::ChatCompletions, "gpt-4o", e, &tiny);
        assert!(c.flags.contains(Flags::IMAGE_SIZE_UNKNOWN));
        assert!(!c.flags.contains(Flags::TOO_MANY_IMAGES));
    }

    #[test]
    fn json_object_adds_nothing() {
        let e = Encoding::O200kBase;
        let plain = r#"{"messages":[{"role":"user","content":"Reply in JSON."}]}"#;
        let obj = r#"{"messages":[{"role":"user","content":"Reply in JSON."}],"response_format":{"type":"json_object"}}"#;
        let a = chat_count(plain, "gpt-4o", e);
        let b = chat_count(obj, "gpt-4o", e);
        assert_eq!(a, b);
        let pred = r#"{"messages":[{"role":"user","content":"x"}],"prediction":{"type":"content","content":"x"}}"#;
        assert!(chat_count(pred, "gpt-4o", e)
            .flags
            .contains(Flags::PROMPT_ESTIMATED));
    }

    #[test]
    fn json_schema_rendering_and_placement() {
        let e = Encoding::O200kBase;
        let js: Value = serde_json::from_str(
            r#"{"name":"Answer","description":"An answer","strict":true,"schema":{"type":"object","properties":{"required":{"type":"string","description":"caf\u00e9 \"q\"\n"},"n":{"type":"number","minimum":0,"maximum":1,"default":0.5}},"required":["required","n"],"additionalProperties":false,"$defs":{"default":{"type":"string","maxItems":1}}}}"#,
        )
        .unwrap();
        let sec = render_response_format(&js);
        assert_eq!(
            sec,
            "# Response Formats\n\n## Answer\n\n// An answer\n{\"type\":\"object\",\"properties\":{\"required\":{\"type\":\"string\",\"description\":\"caf\\u00e9 \\\"q\\\"\\n\"},\"n\":{\"type\":\"number\"}},\"$defs\":{\"default\":{\"type\":\"string\"}}}"
        );
        let rf = format!(r#""response_format":{{"type":"json_schema","json_schema":{js}}}"#);
        let tag = e.count("Answer") + 2;
        let user = 3 + e.count("user") + e.count("Hi");
        // A system message takes the section after "\n\n"; the priming is tagged with the name.
        let body = format!(
            r#"{{"messages":[{{"role":"system","content":"Be brief."}},{{"role":"user","content":"Hi"}}],{rf}}}"#
        );
        let sys = 3 + e.count("system") + e.count(&format!("Be brief.\n\n{sec}"));
        let c = chat_count(&body, "gpt-4o", e);
        assert_eq!(c.tokens as usize, 3 + sys + user + tag);
        assert!(c.flags.is_empty(), "{:?}", c.flags);
        // No system message: a new one; an assistant text turn carries the tag too.
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":"Hi"}},{{"role":"assistant","content":"{{}}"}},{{"role":"user","content":"Hi"}}],{rf}}}"#
        );
        let asst = 3 + e.count("assistant") + e.count("{}");
        let c = chat_count(&body, "gpt-4o", e);
        assert_eq!(
            c.tokens as usize,
            3 + 4 + e.count(&sec) + user + asst + user + 2 * tag
        );
        // With tools: one section (tools, then the format) and no priming tag.
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":"Hi"}}],"tools":[{WEATHER}],{rf}}}"#
        );
        let fs = functions_of(&format!("[{WEATHER}]"));
        let both = format!("{}\n\n{sec}", render_tools(&[&fs[0]]));
        let c = chat_count(&body, "gpt-4o", e);
        assert_eq!(c.tokens as usize, 3 + 4 + e.count(&both) - 1 + user);
        assert!(c.flags.is_empty(), "{:?}", c.flags);
        // Reasoning models: measured in one repository only, flagged.
        assert!(chat_count(&body, "gpt-5", e)
            .flags
            .contains(Flags::PROMPT_ESTIMATED));
        // A schema-less json_schema format: flagged.
        let bad = r#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}}"#;
        assert!(chat_count(bad, "gpt-4o", e)
            .flags
            .contains(Flags::PROMPT_ESTIMATED));
    }

    const WEATHER: &str = r##"{"type":"function","function":{"name":"get_weather","description":"Get the weather.\n\n  Uses the API.  ","parameters":{"type":"object","properties":{"location":{"type":"string","description":"City name"},"unit":{"type":"string","enum":["c","f"],"default":"c"},"days":{"type":"integer","title":"Days","description":"How many","default":3},"nested":{"type":"object","properties":{"flag":{"type":["boolean","null"]}},"required":["flag"]},"tags":{"type":"array","items":{"type":"string"}},"points":{"type":"array","items":{"$ref":"#/$defs/Point"}},"any":{}},"required":["location"],"$defs":{"Point":{"type":"object","title":"Point","description":"A point","properties":{"x":{"type":"number"}}}}}}}"##;

    fn functions_of(tools: &str) -> Vec<Value> {
        let v: Value = serde_json::from_str(tools).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t.get("function").unwrap_or(t).clone())
            .collect()
    }

    #[test]
    fn tools_rendering_exact_text() {
        let fs = functions_of(&format!(
            r#"[{WEATHER},{{"type":"function","function":{{"name":"ping"}}}}]"#
        ));
        let refs: Vec<&Value> = fs.iter().collect();
        let expected = "# Tools\n\n## functions\n\nnamespace functions {\n\n\
// Get the weather.\n//\n// Uses the API.\n\
type get_weather = (_: {\n\
// City name\n\
location: string,\n\
unit?: \"c\" | \"f\", // default: \"c\"\n\
// Days\n//\n// How many\n\
days?: number, // default: 3\n\
nested?: {\n\
flag: boolean | null,\n\
},\n\
tags?: string[],\n\
points?: Array<\n// Point\n//\n// A point\n{\n\
x?: number,\n\
}\n>,\n\
any?: any,\n\
}) => any;\n\n\
type ping = () => any;\n\n\
} // namespace functions";
        assert_eq!(render_tools(&refs), expected);
        // Top-level title (inside the brace), integer enum, untyped object with properties.
        let f: Value = serde_json::from_str(r#"{"name":"f","parameters":{"title":"Args","properties":{"n":{"type":"integer","enum":[1,2]},"o":{"properties":{"a":{"type":"string"}}}}}}"#).unwrap();
        assert_eq!(
            render_tools(&[&f]),
            "# Tools\n\n## functions\n\nnamespace functions {\n\ntype f = (_: {\n// Args\nn?: 1 | 2,\no?: {\na?: string,\n},\n}) => any;\n\n} // namespace functions"
        );
        // A top-level description goes before the brace; nested titles and descriptions stay
        // on their property.
        let f: Value = serde_json::from_str(r#"{"name":"g","description":"Use it.","parameters":{"title":"In","description":"Input schema.","type":"object","properties":{"x":{"title":"X","type":"object","properties":{"y":{"type":"string"}}}}}}"#).unwrap();
        assert_eq!(
            render_tools(&[&f]),
            "# Tools\n\n## functions\n\nnamespace functions {\n\n// Use it.\ntype g = (_: // Input schema.\n{\n// In\n// X\nx?: {\ny?: string,\n},\n}) => any;\n\n} // namespace functions"
        );
    }

    #[test]
    fn o_series_tools_are_a_message_of_their_own() {
        let e = Encoding::O200kBase;
        let f: Value = serde_json::from_str(WEATHER).unwrap();
        let sec = render_tools(&[&f["function"]]);
        let user = 3 + e.count("user") + e.count("Weather in Paris?");
        // Beside a system message too: 4 + n(section), then −1 (the function has comments),
        // +1, and the reasoning priming (2).
        let body = format!(
            r#"{{"messages":[{{"role":"system","content":"Be brief."}},{{"role":"user","content":"Weather in Paris?"}}],"tools":[{WEATHER}]}}"#
        );
        let sys = 3 + e.count("system") + e.count("Be brief.");
        let c = chat_count(&body, "o4-mini", e);
        assert_eq!(
            c.tokens as usize,
            2 + sys + user + 4 + e.count(&sec) - 1 + 1
        );
        assert!(c.flags.is_empty());
        let bare = format!(
            r#"{{"messages":[{{"role":"user","content":"Weather in Paris?"}}],"tools":[{WEATHER}]}}"#
        );
        let c = chat_count(&bare, "o3-mini", e);
        assert_eq!(c.tokens as usize, 2 + user + 4 + e.count(&sec) - 1 + 1);
        assert!(c.flags.is_empty());
        // Turns with tool calls and other choices stay estimates.
        let turn = format!(
            r#"{{"messages":[{{"role":"user","content":"Weather in Paris?"}},{{"role":"assistant","tool_calls":[{{"id":"c1","type":"function","function":{{"name":"get_weather","arguments":"{{}}"}}}}]}},{{"role":"tool","tool_call_id":"c1","content":"sunny"}}],"tools":[{WEATHER}]}}"#
        );
        assert!(chat_count(&turn, "o4-mini", e)
            .flags
            .contains(Flags::PROMPT_ESTIMATED));
        let required = bare.replace(r#""tools""#, r#""tool_choice":"required","tools""#);
        assert!(chat_count(&required, "o3-mini", e)
            .flags
            .contains(Flags::PROMPT_ESTIMATED));
    }

    #[test]
    fn top_level_title_counts() {
        // DataDog's Agents SDK chat recording (gpt-4o-2024-08-06): a pydantic schema titled
        // "add_args" costs exactly its rendering with the title inside the brace.
        let e = Encoding::O200kBase;
        let body = r#"{"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is 2+2?"}],"tools":[{"type":"function","function":{"name":"add","description":"Add two numbers together","parameters":{"properties":{"a":{"title":"A","type":"integer"},"b":{"title":"B","type":"integer"}},"required":["a","b"],"title":"add_args","type":"object","additionalProperties":false}}}]}"#;
        let sec = "# Tools\n\n## functions\n\nnamespace functions {\n\n// Add two numbers together\ntype add = (_: {\n// add_args\n// A\na: number,\n// B\nb: number,\n}) => any;\n\n} // namespace functions";
        let c = chat_count(body, "gpt-4o", e);
        let sys =
            3 + e.count("system") + e.count(&format!("You are a helpful assistant.\n\n{sec}"));
        let user = 3 + e.count("user") + e.count("What is 2+2?");
        assert_eq!(c.tokens as usize, 3 + sys + user - 1);
        assert!(
            c.flags.is_empty(),
            "a titled schema with property comments is verified"
        );
        // The same function on the Responses API stays an estimate.
        let r = Request::parse(br#"{"model":"gpt-4o","input":"What is 2+2?","tools":[{"type":"function","name":"add","parameters":{"title":"add_args","type":"object","properties":{"a":{"title":"A","type":"integer"}}}}]}"#).unwrap();
        assert!(count(&r, Endpoint::Responses, "gpt-4o", e)
            .flags
            .contains(Flags::PROMPT_ESTIMATED));
    }

    #[test]
    fn tools_placement_and_constants() {
        let e = Encoding::O200kBase;
        let fs = functions_of(&format!("[{WEATHER}]"));
        let sec = render_tools(&[&fs[0]]);
        // No system message: a new one at 4 + n(section); −1 once (the function has comments).
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":"Weather in Paris?"}}],"tools":[{WEATHER}]}}"#
        );
        let user = 3 + e.count("user") + e.count("Weather in Paris?");
        let c = chat_count(&body, "gpt-4o", e);
        assert_eq!(c.tokens as usize, 3 + user + 4 + e.count(&sec) - 1);
        assert!(c.flags.is_empty());
        // A system message takes the section after "\n\n".
        let body = format!(
            r#"{{"messages":[{{"role":"system","content":"Be brief."}},{{"role":"user","content":"Weather in Paris?"}}],"tools":[{WEATHER}],"tool_choice":"required"}}"#
        );
        let sys = 3 + e.count("system") + e.count(&format!("Be brief.\n\n{sec}"));
        assert_eq!(
            chat_count(&body, "gpt-4o", e).tokens as usize,
            3 + sys + user - 1
        );
        // A named choice: 4 + n(" to=functions.NAME").
        let named = body.replace(
            r#""tool_choice":"required""#,
            r#""tool_choice":{"type":"function","function":{"name":"get_weather"}}"#,
        );
        assert_eq!(
            chat_count(&named, "gpt-4o", e).tokens as usize,
            3 + sys + user - 1 + 4 + e.count(" to=functions.get_weather")
        );
        // A function whose properties carry no comment at all: one more −1. Legacy `functions`.
        let body = r#"{"messages":[{"role":"user","content":"x"}],"functions":[{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}}}}]}"#;
        let f: Value = serde_json::from_str(
            r#"{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}}}}"#,
        )
        .unwrap();
        let sec = render_tools(&[&f]);
        assert_eq!(
            chat_count(body, "gpt-4o", e).tokens as usize,
            3 + (3 + e.count("user") + e.count("x")) + 4 + e.count(&sec) - 2
        );
        // Reasoning models with tools: flagged.
        assert!(chat_count(body, "gpt-5", e)
            .flags
            .contains(Flags::PROMPT_ESTIMATED));
        // Unverified schema shapes are counted by the same rendering, flagged: a top-level
        // title over uncommented properties, a top-level description, an array of objects
        // holding a type list or an array.
        assert!(chat_count(body, "gpt-4o", e).flags.is_empty());
        let titled = body.replace(r#""parameters":{"#, r#""parameters":{"title":"Args","#);
        let c = chat_count(&titled, "gpt-4o", e);
        assert!(c.flags.contains(Flags::PROMPT_ESTIMATED));
        let described = body.replace(
            r#""parameters":{"#,
            r#""parameters":{"description":"Args","#,
        );
        let c = chat_count(&described, "gpt-4o", e);
        assert!(c.flags.contains(Flags::PROMPT_ESTIMATED));
        let nested = r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"plan","parameters":{"type":"object","properties":{"steps":{"type":"array","items":{"type":"object","properties":{"tool":{"type":["string","null"]}}}}}}}}]}"#;
        assert!(chat_count(nested, "gpt-4o", e)
            .flags
            .contains(Flags::PROMPT_ESTIMATED));
        let flat = nested.replace(r#"["string","null"]"#, r#""string""#);
        assert!(chat_count(&flat, "gpt-4o", e).flags.is_empty());
        // At any depth, arrays of arrays included.
        let deeper = nested
            .replace(
                r#""items":{"type":"object""#,
                r#""items":{"type":"array","items":{"type":"object""#,
            )
            .replace("}}}}}}}]}", "}}}}}}}}]}");
        assert!(Request::parse(deeper.as_bytes()).is_ok(), "{deeper}");
        assert!(chat_count(&deeper, "gpt-4o", e)
            .flags
            .contains(Flags::PROMPT_ESTIMATED));
        // Property titles, nested ones included: verified from gpt-3.5-turbo-0125 on, an
        // estimate on the June 2023 snapshots and on the `gpt-4` name that resolves to one.
        let titled_prop = flat.replace(r#""type":"string""#, r#""title":"Tool","type":"string""#);
        let cl = Encoding::Cl100kBase;
        for model in ["gpt-4-0125-preview", "gpt-3.5-turbo-0125", "gpt-4-turbo"] {
            assert!(
                chat_count(&titled_prop, model, cl).flags.is_empty(),
                "{model}"
            );
        }
        for model in [
            "gpt-4-0613",
            "gpt-4",
            "gpt-3.5-turbo-16k-0613",
            "ft:gpt-4-0613:org::x",
        ] {
            let c = chat_count(&titled_prop, model, cl);
            assert!(c.flags.contains(Flags::PROMPT_ESTIMATED), "{model}");
            assert!(chat_count(&flat, model, cl).flags.is_empty(), "{model}");
        }
    }

    #[test]
    fn tool_calls_and_results() {
        let e = Encoding::O200kBase;
        let body = r#"{"messages":[
            {"role":"user","content":"Weather?"},
            {"role":"assistant","content":"Checking.","tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\", \"n\": 2}"}}]},
            {"role":"tool","tool_call_id":"c1","name":"ignored","content":"18C"}]}"#;
        let expected = 3
            + (3 + e.count("user") + e.count("Weather?"))
            + (3 + e.count("assistant") + e.count("Checking."))
            + (3 + e.count("assistant to=functions.get_weather")
                + e.count(r#"{"city":"Paris","n":2}"#)
                + 3)
            + (3 + e.count("get_weather") + e.count("18C"));
        let c = chat_count(body, "gpt-4o", e);
        assert_eq!(c.tokens as usize, expected);
        assert!(c.flags.is_empty());
        // Unparseable arguments count as sent.
        assert_eq!(compact_json("{oops"), "{oops");
        assert_eq!(compact_json(" {\"a\": [1, 2.5]} "), "{\"a\":[1,2.5]}");
        // Parallel calls: one wrapper call, one combined answer (a JSON list, message order).
        let body = r#"{"messages":[{"role":"user","content":"x"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{\"q\": \"a b\"}"}},{"id":"b","function":{"name":"g","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"b","content":"two\n\"2\""},{"role":"tool","tool_call_id":"a","content":"one"},
            {"role":"user","content":"y"}]}"#;
        let expected = 3
            + (3 + e.count("user") + e.count("x"))
            + (3 + e.count("assistant to=multi_tool_use.parallel")
                + e.count(r#"{"tool_uses":[{"recipient_name":"functions.f","parameters":{"q":"a b"}},{"recipient_name":"functions.g","parameters":{}}]}"#)
                + 3)
            + (3 + e.count("multi_tool_use.parallel") + e.count(r#"["two\n\"2\"", "one"]"#))
            + (3 + e.count("user") + e.count("y"));
        let c = chat_count(body, "gpt-4o", e);
        assert_eq!(c.tokens as usize, expected);
        assert!(c.flags.is_empty(), "{:?}", c.flags);
        // An unanswered call or a non-ASCII answer: flagged.
        let open = body.replace(r#"{"role":"tool","tool_call_id":"a","content":"one"},"#, "");
        assert!(chat_count(&open, "gpt-4o", e)
            .flags
            .contains(Flags::PROMPT_ESTIMATED));
        let accented = body.replace(r#""content":"one""#, r#""content":"caf\u00e9""#);
        assert!(chat_count(&accented, "gpt-4o", e)
            .flags
            .contains(Flags::PROMPT_ESTIMATED));
        // Legacy function_call / function messages.
        let body = r#"{"messages":[{"role":"user","content":"x"},
            {"role":"assistant","content":null,"function_call":{"name":"f","arguments":"{}"}},
            {"role":"function","name":"f","content":"ok"}]}"#;
        let expected = 3
            + (3 + e.count("user") + e.count("x"))
            + (3 + e.count("assistant to=functions.f") + e.count("{}") + 3)
            + (3 + e.count("f") + e.count("ok"));
        assert_eq!(chat_count(body, "gpt-4o", e).tokens as usize, expected);
    }

    #[test]
    fn recursive_ref_is_bounded() {
        let f: Value = serde_json::from_str(r##"{"name":"t","parameters":{"type":"object","properties":{"node":{"$ref":"#/$defs/N"}},"$defs":{"N":{"type":"object","properties":{"child":{"$ref":"#/$defs/N"}}}}}}"##).unwrap();
        let (s, overflow) = render(&[&f]);
        assert!(overflow && s.contains("child?: any"), "{s}");
    }

    #[test]
    fn responses_instructions_are_a_system_message() {
        let e = Encoding::O200kBase;
        let r = Request::parse(br#"{"model":"gpt-4o","instructions":"Be brief.","input":"Hello"}"#)
            .unwrap();
        let c = count(&r, Endpoint::Responses, "gpt-4o", e);
        let expected = 3
            + (3 + e.count("system") + e.count("Be brief."))
            + (3 + e.count("user") + e.count("Hello"));
        assert_eq!(c.tokens as usize, expected);
        assert!(c.flags.is_empty());
        let r = Request::parse(br#"{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_text","text":"Hello"}]},{"type":"reasoning","summary":[]}]}"#).unwrap();
        let c = count(&r, Endpoint::Responses, "gpt-4o", e);
        assert_eq!(
            c.tokens as usize,
            3 + 3 + e.count("user") + e.count("Hello")
        );
        assert!(c.flags.contains(Flags::PROMPT_ESTIMATED));
        // An input item of an odd type costs nothing and is flagged; the other items still count.
        let r = Request::parse(br#"{"model":"gpt-4o","include":[],"input":[7,{"role":"user","content":[{"type":"input_text","text":"Hello"}]}]}"#).unwrap();
        let c = count(&r, Endpoint::Responses, "gpt-4o", e);
        assert_eq!(
            c.tokens as usize,
            3 + 3 + e.count("user") + e.count("Hello")
        );
        assert!(c.flags.contains(Flags::PROMPT_ESTIMATED));
    }

    #[test]
    fn responses_harmony_function_calls() {
        let e = Encoding::O200kBase;
        assert!(harmony_call_model("gpt-5.4-nano-2026-03-17") && harmony_call_model("gpt-5.10"));
        assert!(harmony_call_model("ft:gpt-5.5") && harmony_call_model("gpt-5.6-terra"));
        for m in [
            "gpt-5",
            "gpt-5-mini",
            "gpt-5.1",
            "gpt-5.2-chat-latest",
            "o4-mini",
            "gpt-4.1",
        ] {
            assert!(!harmony_call_model(m), "{m}");
        }
        let tools = r#""tools":[{"type":"function","name":"dice","description":"Rolls a dice","parameters":{"type":"object","properties":{}}}]"#;
        let user = r#"{"role":"user","content":"Roll."}"#;
        let call = r#"{"type":"function_call","call_id":"c1","name":"dice","arguments":"{ }"}"#;
        let out = r#"{"type":"function_call_output","call_id":"c1","output":"4"}"#;
        let body = |items: &str| format!(r#"{{"model":"m",{tools},"input":[{items}]}}"#);
        let n = |b: &str, model: &str| {
            count(
                &Request::parse(b.as_bytes()).unwrap(),
                Endpoint::Responses,
                model,
                e,
            )
        };
        let model = "gpt-5.4-nano";
        let first = n(&body(user), model);
        let turn = n(&body(&format!("{user},{call},{out}")), model);
        assert!(
            first.flags.is_empty() && turn.flags.is_empty(),
            "{:?}",
            turn.flags
        );
        // The arguments count compact.
        let harmony = 4
            + e.count("assistant")
            + e.count("commentary to=functions.dice")
            + e.count("{}")
            + 4
            + e.count("functions.dice to=assistant")
            + e.count("commentary")
            + e.count("4");
        assert_eq!((turn.tokens - first.tokens) as usize, harmony);
        // Consecutive calls, earlier models: flagged.
        let two = format!(r#"{user},{call},{},{out}"#, call.replace("c1", "c2"));
        assert!(n(&body(&two), model)
            .flags
            .contains(Flags::PROMPT_ESTIMATED));
        let turn = n(&body(&format!("{user},{call},{out}")), "gpt-5");
        assert!(turn.flags.contains(Flags::PROMPT_ESTIMATED));
    }

    #[test]
    fn responses_returned_single_call_costs_three_more() {
        let e = Encoding::O200kBase;
        let n = |items: &str| {
            let b = format!(
                r#"{{"model":"gpt-4o","input":[{{"role":"user","content":"Hi"}},{items}]}}"#
            );
            count(
                &Request::parse(b.as_bytes()).unwrap(),
                Endpoint::Responses,
                "gpt-4o",
                e,
            )
            .tokens
        };
        let call = |id: &str, extra: &str| {
            format!(
                r#"{{"type":"function_call","call_id":"{id}","name":"f","arguments":"{{}}"{extra}}}"#
            )
        };
        let out = |id: &str| {
            format!(r#"{{"type":"function_call_output","call_id":"{id}","output":"ok"}}"#)
        };
        let returned = r#","id":"fc_1","status":"completed""#;
        let built = n(&format!("{},{}", call("a", ""), out("a")));
        assert_eq!(
            n(&format!("{},{}", call("a", returned), out("a"))),
            built + 3
        );
        // An id alone, or consecutive calls: nothing more.
        assert_eq!(
            n(&format!("{},{}", call("a", r#","id":"fc_1""#), out("a"))),
            built
        );
        let two = |extra: &str| {
            n(&format!(
                "{},{},{},{}",
                call("a", extra),
                call("b", extra),
                out("a"),
                out("b")
            ))
        };
        assert_eq!(two(returned), two(""));
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
