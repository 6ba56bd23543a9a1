//! The meter: response bytes in, in any pieces; one [`UsageRecord`] out.
//!
//! Data flow: bytes → [`Framer`] (SSE) or one buffered body (JSON) → the fast path (scanner or
//! template; an event shaped like the last one is claimed where it lies, see [`Sink`]) or
//! [`wire::decode`] → per-choice accumulation → [`Meter::finish`] → record. Tokenizing happens
//! only in `finish`, and only when the service reported no usage (or when reconciling), so a
//! stream that carries its usage costs a scan and a decode, never a BPE pass.

use crate::encoding::Encoding;
use crate::error::{Error, ErrorKind, Result};
use crate::fast;
use crate::json_scan;
use crate::options::{Limits, MeterOptions};
use crate::prompt;
use crate::record::{
    ChoiceRecord, CompletionDetails, ComputedUsage, Endpoint, Flags, PromptDetails, ReportedUsage,
    Source, Status, UsageRecord,
};
use crate::request::{Request, Shape};
use crate::sse::{self, Frame, Framer, Sink};
use crate::wire::{self, Count, Message};

/// Meters one exchange. Feed the response bytes as they arrive, then call [`finish`](Self::finish).
///
/// # Example: a stream fed in pieces
/// ```
/// use usagetap::{Meter, MeterOptions, Source};
/// let stream = concat!(
///     "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
///     "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":1,\"total_tokens\":9}}\n\n",
///     "data: [DONE]\n\n");
/// let mut meter = Meter::new(MeterOptions::default());
/// for piece in stream.as_bytes().chunks(7) {
///     meter.feed(piece).unwrap();
/// }
/// let record = meter.finish().unwrap();
/// assert_eq!((record.prompt_tokens, record.completion_tokens, record.source), (8, 1, Source::Reported));
/// ```
#[derive(Debug)]
pub struct Meter {
    opts: MeterOptions,
    request: Option<Vec<u8>>,
    request_model: Option<String>,
    request_endpoint: Option<Endpoint>,
    request_flags: Flags,
    mode: Mode,
    framer: Framer,
    body: Vec<u8>,
    acc: Accum,
    finished: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Only whitespace (or a BOM) so far.
    Undecided,
    Sse,
    Json,
}

impl Meter {
    /// A meter for one exchange.
    pub fn new(opts: MeterOptions) -> Meter {
        let limits = &opts.limits;
        let framer = Framer::new(limits.max_line_bytes, limits.max_body_bytes);
        let acc = Accum::new(&opts);
        Meter {
            opts,
            request: None,
            request_model: None,
            request_endpoint: None,
            request_flags: Flags::EMPTY,
            mode: Mode::Undecided,
            framer,
            body: Vec::new(),
            acc,
            finished: false,
        }
    }

    /// Gives the request body (any endpoint). It is kept (copied) and read again only if a
    /// prompt must be computed. An unreadable body still leaves the meter usable: the record
    /// then carries `request_unparsed`.
    ///
    /// # Errors
    /// [`ErrorKind::Finished`] after `finish`; [`ErrorKind::InvalidJson`] or
    /// [`ErrorKind::InvalidRequest`] when the body cannot be read; [`ErrorKind::LimitExceeded`]
    /// when it is over `max_body_bytes` or nested deeper than `max_json_depth`. In each of the
    /// last three cases the meter stays usable and the record carries `request_unparsed`.
    pub fn request(&mut self, body: &[u8]) -> Result<()> {
        self.check_open()?;
        self.request = None;
        self.request_flags = Flags::EMPTY;
        let limits = &self.opts.limits;
        if body.len() > limits.max_body_bytes {
            self.request_flags
                .insert(Flags::REQUEST_UNPARSED | Flags::BODY_TOO_LARGE);
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                format!(
                    "request: {} bytes, over max_body_bytes ({})",
                    body.len(),
                    limits.max_body_bytes
                ),
            ));
        }
        let depth = limits.json_depth();
        // Most requests are plain JSON: one pass reads what is kept, without the full parse.
        if let Some(shape) = fast_path_enabled()
            .then(|| fast::request_shape(body, depth))
            .flatten()
        {
            self.keep_request(body, shape);
            return Ok(());
        }
        let too_deep = || {
            Error::new(
                ErrorKind::LimitExceeded,
                format!("request: JSON nests deeper than max_json_depth ({depth})"),
            )
        };
        if json_scan::nests_deeper_than(body, depth) {
            self.request_flags
                .insert(Flags::REQUEST_UNPARSED | Flags::JSON_TOO_DEEP);
            return Err(too_deep());
        }
        match Request::parse(body) {
            Ok(r) => {
                self.keep_request(body, r.shape());
                Ok(())
            }
            Err(e) => {
                self.request_flags.insert(Flags::REQUEST_UNPARSED);
                Err(e)
            }
        }
    }

    /// Keeps an accepted request: its bytes, for counting its prompt at `finish`, and what its
    /// shape says of the model and endpoint.
    fn keep_request(&mut self, body: &[u8], shape: Shape<'_>) {
        self.request_model = shape.model.filter(|m| !m.is_empty()).map(str::to_owned);
        self.request_endpoint = shape.endpoint();
        self.request = Some(body.to_vec());
    }

    /// Feeds the next piece of the response body. Pieces may split anything anywhere (lines,
    /// JSON, UTF-8 characters); the record does not depend on how the body was split.
    ///
    /// # Errors
    /// [`ErrorKind::Finished`] after `finish`. Nothing in the bytes themselves is an error:
    /// problems become flags on the record.
    pub fn feed(&mut self, mut piece: &[u8]) -> Result<()> {
        self.check_open()?;
        if self.mode == Mode::Undecided {
            let start = piece
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0xEF | 0xBB | 0xBF));
            let Some(start) = start else { return Ok(()) };
            piece = &piece[start..];
            self.mode = if matches!(piece[0], b'{' | b'[') {
                Mode::Json
            } else {
                Mode::Sse
            };
        }
        match self.mode {
            Mode::Sse => {
                self.framer.feed_sink(piece, &mut self.acc);
            }
            Mode::Json => {
                let room = self
                    .opts
                    .limits
                    .max_body_bytes
                    .saturating_sub(self.body.len());
                if piece.len() > room {
                    self.acc.flags.insert(Flags::BODY_TOO_LARGE);
                    self.acc.body_overflow = true;
                }
                self.body.extend_from_slice(&piece[..piece.len().min(room)]);
            }
            Mode::Undecided => {}
        }
        Ok(())
    }

    /// Ends the response and returns its record. Counting (when needed) happens here.
    ///
    /// # Errors
    /// [`ErrorKind::Finished`] when called twice.
    pub fn finish(&mut self) -> Result<UsageRecord> {
        self.check_open()?;
        self.finished = true;
        match self.mode {
            Mode::Undecided => self.acc.flags.insert(Flags::EMPTY_RESPONSE),
            Mode::Sse => {
                let acc = &mut self.acc;
                self.framer.finish(|f| acc.on_frame(f));
                if self.framer.lines_dropped() > 0 {
                    self.acc.flags.insert(Flags::LINE_TOO_LONG);
                }
                if self.framer.events_dropped() > 0 {
                    self.acc.flags.insert(Flags::BODY_TOO_LARGE);
                }
                if self.acc.frames == 0 && self.framer.lines_dropped() == 0 {
                    // Neither JSON nor a single SSE event: an HTML error page, a proxy's text.
                    self.acc.flags.insert(Flags::MALFORMED_EVENT_SKIPPED);
                    self.acc.error =
                        Some("response body is neither JSON nor an SSE stream".to_owned());
                }
            }
            Mode::Json => {
                let body = std::mem::take(&mut self.body);
                self.acc.on_body(&body);
            }
        }
        Ok(self.record())
    }

    fn check_open(&self) -> Result<()> {
        if self.finished {
            return Err(Error::new(
                ErrorKind::Finished,
                "the meter was already finished",
            ));
        }
        Ok(())
    }

    /// Resolves the model: the response's, then the host's, then the request's, then the
    /// deployment map; the first name with a known encoding wins.
    fn resolve_model(&self) -> (Option<String>, Encoding, bool) {
        let opts = &self.opts;
        let mapped = |name: Option<&str>| name.and_then(|n| opts.model_for_deployment(n));
        let candidates = [
            self.acc.model.as_deref(),
            opts.model.as_deref(),
            self.request_model.as_deref(),
            mapped(opts.deployment.as_deref()),
            mapped(self.request_model.as_deref()),
            mapped(self.acc.model.as_deref()),
        ];
        for c in candidates.iter().flatten() {
            if let Some(e) = Encoding::for_model(c) {
                return (Some((*c).to_owned()), e, true);
            }
        }
        let first = candidates.iter().flatten().next().map(|s| (*s).to_owned());
        (first, Encoding::O200kBase, false)
    }

    fn record(&mut self) -> UsageRecord {
        let (model, encoding, known) = self.resolve_model();
        let acc = &mut self.acc;
        let mut flags = acc.flags | self.request_flags;
        let endpoint = self
            .opts
            .endpoint
            .or(acc.endpoint)
            .or(self.request_endpoint)
            .unwrap_or_default();
        if !known {
            flags.insert(Flags::UNKNOWN_MODEL);
        }
        let model_name = model.as_deref().unwrap_or("");

        let status = if acc.error.is_some() {
            Status::Error
        } else if acc.is_truncated(self.mode, endpoint) {
            flags.insert(Flags::TRUNCATED);
            Status::Truncated
        } else {
            Status::Complete
        };

        let reported = acc.usage.as_ref().map(|u| normalize(u, &mut flags));
        let mut rep_prompt = reported.as_ref().and_then(|r| r.prompt_tokens);
        let mut rep_completion = reported.as_ref().and_then(|r| r.completion_tokens);
        let rep_total = reported.as_ref().and_then(|r| r.total_tokens);
        if endpoint == Endpoint::Embeddings && rep_prompt.is_none() {
            rep_prompt = rep_total;
        }
        // The service omits `completion_tokens` when it is zero (embeddings always; completions
        // that produced nothing): the reported prompt and total still determine it.
        if rep_completion.is_none() {
            if let (Some(p), Some(t)) = (rep_prompt, rep_total) {
                rep_completion = t.checked_sub(p);
            }
        }
        let all_reported = rep_prompt.is_some() && rep_completion.is_some();
        let compute = !all_reported || self.opts.reconcile;

        let mut choices: Vec<ChoiceRecord> = acc
            .choices
            .iter()
            .map(|c| ChoiceRecord {
                index: c.index,
                finish_reason: c.finish_reason.clone(),
                completion_tokens: None,
            })
            .collect();

        // Notes on the computed prompt and completion: the record carries each set when that
        // count is the billed one, and `computed.flags` carries both.
        let mut prompt_notes = Flags::EMPTY;
        let mut completion_notes = Flags::EMPTY;
        let mut computed = if compute {
            let parsed = self.request.as_deref().map(Request::parse);
            let req = match &parsed {
                Some(Ok(r)) => Some(r),
                Some(Err(_)) => {
                    flags.insert(Flags::REQUEST_UNPARSED);
                    None
                }
                None => None,
            };
            let ctx = req.map(CompletionContext::of).unwrap_or_default();
            let mut completion = 0u64;
            for (rec, c) in choices.iter_mut().zip(&acc.choices) {
                let n = c.count(encoding, &ctx);
                rec.completion_tokens = Some(n);
                completion += n;
                if c.tools.len() > 1 || (endpoint == Endpoint::Responses && !c.tools.is_empty()) {
                    completion_notes.insert(Flags::COMPLETION_ESTIMATED);
                }
            }
            if endpoint != Endpoint::Embeddings {
                completion_notes.insert(Flags::COMPLETION_MAY_BE_ONE_SHORT);
                if prompt::is_reasoning_model(model_name) {
                    completion_notes.insert(Flags::REASONING_TOKENS_UNOBSERVABLE);
                }
            }
            let (prompt_tokens, image_tokens) = match req {
                Some(req) => {
                    let p = prompt::count_with(req, endpoint, model_name, encoding, &self.opts);
                    prompt_notes = p.flags;
                    (Some(p.tokens), p.image_tokens)
                }
                None => {
                    prompt_notes = Flags::PROMPT_UNKNOWN;
                    (None, None)
                }
            };
            Some(ComputedUsage {
                prompt_tokens,
                completion_tokens: completion,
                image_tokens,
                // Set below, once the record's own flags are known.
                flags: Flags::EMPTY,
            })
        } else {
            None
        };
        if rep_prompt.is_none() {
            flags.insert(prompt_notes);
        }
        if rep_completion.is_none() {
            flags.insert(completion_notes);
        }

        if reported.is_none() {
            flags.insert(Flags::NO_USAGE_REPORTED);
            if endpoint == Endpoint::Responses && acc.response_unfinished {
                flags.insert(Flags::RESPONSE_NOT_FINISHED);
            }
        }
        let prompt_tokens = rep_prompt
            .or_else(|| computed.as_ref().and_then(|c| c.prompt_tokens))
            .unwrap_or(0);
        let completion_tokens = rep_completion
            .or_else(|| computed.as_ref().map(|c| c.completion_tokens))
            .unwrap_or(0);
        let total_tokens = match (rep_total, all_reported) {
            (Some(t), true) => t,
            _ => prompt_tokens.saturating_add(completion_tokens),
        };
        let source = if all_reported && rep_total.is_some() {
            Source::Reported
        } else {
            Source::Computed
        };

        let cached_tokens = reported
            .as_ref()
            .and_then(|r| r.prompt_tokens_details.cached_tokens);
        let reasoning_tokens = reported
            .as_ref()
            .and_then(|r| r.completion_tokens_details.reasoning_tokens);
        // A computed image estimate stands in only for a computed prompt: reconciling must not
        // change what is billed.
        let image_tokens = reported
            .as_ref()
            .and_then(|r| r.prompt_tokens_details.image_tokens)
            .or_else(|| {
                computed
                    .as_ref()
                    .filter(|_| rep_prompt.is_none())
                    .and_then(|c| c.image_tokens)
            });
        if let Some(c) = computed.as_mut() {
            // The flags the record would carry were the computed counts the billed ones.
            let f = flags | prompt_notes | completion_notes;
            let about_reported =
                Flags::NO_USAGE_REPORTED | Flags::INVALID_USAGE_VALUE | Flags::USAGE_REPEATED;
            c.flags = Flags(f.0 & !about_reported.0);
        }

        UsageRecord {
            endpoint,
            model,
            deployment: self.opts.deployment.clone(),
            encoding,
            stream: self.mode == Mode::Sse,
            status,
            source,
            prompt_tokens,
            completion_tokens,
            total_tokens,
            cached_tokens,
            reasoning_tokens,
            image_tokens,
            reported,
            computed,
            choices,
            flags,
            response_id: acc.id.take(),
            created: acc.created,
            system_fingerprint: acc.system_fingerprint.take(),
            error: acc.error.take(),
        }
    }
}

/// Usage as reported, with invalid counts dropped (and flagged).
fn normalize(u: &wire::Usage, flags: &mut Flags) -> ReportedUsage {
    let mut get = |c: Option<Count>| match c {
        Some(Count::Valid(v)) => Some(v),
        Some(Count::Invalid) => {
            flags.insert(Flags::INVALID_USAGE_VALUE);
            None
        }
        None => None,
    };
    let pd = u
        .prompt_tokens_details
        .as_ref()
        .or(u.input_tokens_details.as_ref());
    let cd = u
        .completion_tokens_details
        .as_ref()
        .or(u.output_tokens_details.as_ref());
    let input_tokens = get(u.input_tokens);
    let output_tokens = get(u.output_tokens);
    ReportedUsage {
        prompt_tokens: get(u.prompt_tokens).or(input_tokens),
        completion_tokens: get(u.completion_tokens).or(output_tokens),
        total_tokens: get(u.total_tokens),
        prompt_tokens_details: PromptDetails {
            cached_tokens: get(pd.and_then(|d| d.cached_tokens)),
            audio_tokens: get(pd.and_then(|d| d.audio_tokens)),
            image_tokens: get(pd.and_then(|d| d.image_tokens)),
            text_tokens: get(pd.and_then(|d| d.text_tokens)),
            cache_write_tokens: get(pd.and_then(|d| d.cache_write_tokens)),
        },
        completion_tokens_details: CompletionDetails {
            reasoning_tokens: get(cd.and_then(|d| d.reasoning_tokens)),
            audio_tokens: get(cd.and_then(|d| d.audio_tokens)),
            text_tokens: get(cd.and_then(|d| d.text_tokens)),
            accepted_prediction_tokens: get(cd.and_then(|d| d.accepted_prediction_tokens)),
            rejected_prediction_tokens: get(cd.and_then(|d| d.rejected_prediction_tokens)),
        },
        input_tokens,
        output_tokens,
    }
}

/// A tool or function call being assembled.
#[derive(Clone, Debug, Default)]
struct ToolAcc {
    key: i64,
    name: String,
    arguments: String,
}

/// The text of one choice being assembled.
#[derive(Clone, Debug, Default)]
struct ChoiceAcc {
    index: u32,
    /// UTF-8 (every piece is checked before it is appended), kept as bytes so the fast path
    /// can append a checked piece without converting it.
    text: Vec<u8>,
    refusal: Vec<u8>,
    tools: Vec<ToolAcc>,
    finish_reason: Option<String>,
    /// Responses API output message items (each costs one hidden token).
    output_messages: u32,
}

impl ChoiceAcc {
    /// Completion tokens of this choice: its text and refusal, concatenated over the stream
    /// before counting, plus its calls as the model wrote them. Rules measured on the recorded
    /// traffic (chat completions, gpt-3.5 to gpt-4.1, both encodings):
    /// - one call: `name + arguments + 7`, or `arguments` alone when `tool_choice` forced that
    ///   function (its name is then part of the prompt);
    /// - several calls: the `multi_tool_use.parallel` wrapper the model emits,
    ///   `{"tool_uses":[{"recipient_name":"functions.NAME","parameters":ARGS},...]}` with compact
    ///   arguments, plus the wrapper's name and 6;
    /// - a Responses API output message: one more per message item;
    /// - a text answer when the request defined tools: one more (two hundred records, every
    ///   family), and with a `json_schema` response format as well, five more.
    fn count(&self, enc: Encoding, ctx: &CompletionContext) -> u64 {
        let mut n = enc.count(&json_scan::utf8_lossy(&self.text))
            + enc.count(&json_scan::utf8_lossy(&self.refusal));
        n += self.output_messages as usize * RESPONSES_MESSAGE_FRAMING;
        match self.tools.as_slice() {
            [] => {
                if ctx.tools_defined && !(self.text.is_empty() && self.refusal.is_empty()) {
                    n += if ctx.json_schema {
                        TOOLS_SCHEMA_TEXT_FRAMING
                    } else {
                        TOOLS_TEXT_FRAMING
                    };
                }
            }
            [one] => {
                n += enc.count(&one.arguments);
                if ctx.forced.as_deref() != Some(one.name.as_str()) {
                    n += enc.count(&one.name) + SINGLE_CALL_FRAMING;
                }
            }
            many => {
                let mut wrapper = String::from(r#"{"tool_uses":["#);
                for (i, t) in many.iter().enumerate() {
                    if i > 0 {
                        wrapper.push(',');
                    }
                    wrapper.push_str(r#"{"recipient_name":"functions."#);
                    wrapper.push_str(&t.name);
                    wrapper.push_str(r#"","parameters":"#);
                    wrapper.push_str(&compact_json(&t.arguments));
                    wrapper.push('}');
                }
                wrapper.push_str("]}");
                n += enc.count(&wrapper)
                    + enc.count("multi_tool_use.parallel")
                    + PARALLEL_CALL_FRAMING;
            }
        }
        n as u64
    }
}

/// Hidden tokens around one tool call in a completion (measured: 118 of 137 o200k and all
/// cl100k auto-choice records exact, the rest one more, as for text).
const SINGLE_CALL_FRAMING: usize = 7;
/// Hidden tokens around the parallel-call wrapper (measured: 24 of 25 records exact).
const PARALLEL_CALL_FRAMING: usize = 6;
/// Hidden tokens per Responses API output message (measured: the reported output is the text
/// plus one on nearly every non-reasoning record, JSON and streamed alike).
const RESPONSES_MESSAGE_FRAMING: usize = 1;
/// Hidden tokens in a text answer when tools were offered.
const TOOLS_TEXT_FRAMING: usize = 1;
/// Hidden tokens in a text answer when tools and a `json_schema` format were both given.
const TOOLS_SCHEMA_TEXT_FRAMING: usize = 5;

/// What of the request changes how a completion is billed.
#[derive(Clone, Debug, Default)]
struct CompletionContext {
    /// The function `tool_choice` (or legacy `function_call`) forces, if any.
    forced: Option<String>,
    /// The request offered tools or functions.
    tools_defined: bool,
    /// The request asked for a `json_schema` response format.
    json_schema: bool,
}

impl CompletionContext {
    fn of(req: &Request<'_>) -> CompletionContext {
        let non_empty = |raw: Option<&serde_json::value::RawValue>| {
            raw.is_some_and(|r| !matches!(r.get().trim(), "null" | "[]"))
        };
        CompletionContext {
            forced: forced_function(req),
            tools_defined: non_empty(req.tools) || non_empty(req.functions),
            json_schema: req
                .response_format
                .is_some_and(|r| r.get().contains("\"json_schema\"")),
        }
    }
}

/// `s` re-serialized as compact JSON when it is JSON (the model's own rendering), else `s`.
fn compact_json(s: &str) -> std::borrow::Cow<'_, str> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(v) => {
            serde_json::to_string(&v).map_or(std::borrow::Cow::Borrowed(s), std::borrow::Cow::Owned)
        }
        Err(_) => std::borrow::Cow::Borrowed(s),
    }
}

/// The function a request forces with `tool_choice: {"type":"function","function":{"name":..}}`
/// or legacy `function_call: {"name":..}`.
fn forced_function(req: &Request<'_>) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Named {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        function: Option<Box<Named>>,
    }
    let raw = req.tool_choice.or(req.function_call)?;
    let named: Named = serde_json::from_str(raw.get()).ok()?;
    named.function.and_then(|f| f.name).or(named.name)
}

/// Everything gathered from the response so far.
#[derive(Debug)]
struct Accum {
    max_text: usize,
    max_choices: usize,
    max_tool_calls: usize,
    /// Deepest JSON nesting read (`Limits::json_depth`).
    max_depth: usize,
    /// The shape of the last plain chunk, so the next one like it is read without a walk.
    template: fast::Template,
    text_bytes: usize,
    id: Option<String>,
    model: Option<String>,
    created: Option<i64>,
    system_fingerprint: Option<String>,
    endpoint: Option<Endpoint>,
    /// Choices sorted by index.
    choices: Vec<ChoiceAcc>,
    usage: Option<wire::Usage>,
    error: Option<String>,
    saw_done: bool,
    /// A Responses API terminal event (`response.completed` / `incomplete` / `failed`) arrived.
    terminal: bool,
    /// Output text arrived as Responses API deltas (so final objects must not add it again).
    saw_output_delta: bool,
    /// The last SSE event was cut inside its JSON.
    last_cut: bool,
    /// A JSON body was cut short (or over the cap).
    body_cut: bool,
    body_overflow: bool,
    response_unfinished: bool,
    /// SSE events seen.
    frames: u64,
    flags: Flags,
}

impl Accum {
    fn new(opts: &MeterOptions) -> Accum {
        Accum {
            max_text: opts.limits.max_text_bytes,
            max_choices: opts.limits.max_choices,
            max_tool_calls: opts.limits.max_tool_calls,
            max_depth: opts.limits.json_depth(),
            template: fast::Template::default(),
            text_bytes: 0,
            id: None,
            model: None,
            created: None,
            system_fingerprint: None,
            endpoint: None,
            choices: Vec::new(),
            usage: None,
            error: None,
            saw_done: false,
            terminal: false,
            saw_output_delta: false,
            last_cut: false,
            body_cut: false,
            body_overflow: false,
            response_unfinished: false,
            frames: 0,
            flags: Flags::EMPTY,
        }
    }

    fn is_truncated(&self, mode: Mode, endpoint: Endpoint) -> bool {
        match mode {
            Mode::Undecided => true,
            Mode::Json => self.body_cut || self.body_overflow,
            Mode::Sse => {
                let ended = if endpoint == Endpoint::Responses {
                    self.terminal || self.saw_done
                } else {
                    self.saw_done
                };
                !ended || self.last_cut
            }
        }
    }

    /// Whether an event could go straight to the fast path: no earlier event left a state that
    /// `on_frame` acts on first, and no lowered depth limit to check.
    fn fast_ready(&self) -> bool {
        !self.last_cut && !self.saw_done && !self.checks_every_depth() && fast_path_enabled()
    }

    /// A depth limit below the default: every event's nesting is checked before it is read.
    /// (The fast path declines values nested past `fast::MAX_SKIP_DEPTH`, so under the default
    /// limit only the full decoder needs the check.)
    fn checks_every_depth(&self) -> bool {
        self.max_depth < Limits::JSON_DEPTH_CEILING
    }

    fn on_frame(&mut self, f: Frame<'_>) {
        self.frames += 1;
        self.on_data(f.data, f.event == b"error", false);
    }

    /// An event's data; `error`: the event's type is `error`; `unfitted`: `data` is known not
    /// to fit the template, so it is scanned without trying it.
    fn on_data(&mut self, data: &[u8], is_error_event: bool, unfitted: bool) {
        let data = data.trim_ascii();
        if data.is_empty() {
            return;
        }
        if self.last_cut {
            // A cut event followed by more events was malformed, not the end of the stream.
            self.last_cut = false;
            self.flags.insert(Flags::MALFORMED_EVENT_SKIPPED);
        }
        if data == b"[DONE]" {
            self.saw_done = true;
            return;
        }
        if self.saw_done {
            self.flags.insert(Flags::DATA_AFTER_DONE);
        }
        let checked = self.checks_every_depth();
        if checked && json_scan::nests_deeper_than(data, self.max_depth) {
            self.flags
                .insert(Flags::JSON_TOO_DEEP | Flags::MALFORMED_EVENT_SKIPPED);
            return;
        }
        if !is_error_event && fast_path_enabled() {
            let mut c = fast::FastChunk::default();
            let read = if unfitted {
                self.template.scan_unfitted(data, &mut c)
            } else {
                self.template.scan(data, &mut c)
            };
            if read && self.apply_fast(&c) {
                return;
            }
        }
        if !checked && json_scan::nests_deeper_than(data, self.max_depth) {
            self.flags
                .insert(Flags::JSON_TOO_DEEP | Flags::MALFORMED_EVENT_SKIPPED);
            return;
        }
        match wire::decode(data) {
            Ok(m) => self.apply(m, is_error_event),
            Err(e) if e.is_eof() => self.last_cut = true,
            Err(_) => self.flags.insert(Flags::MALFORMED_EVENT_SKIPPED),
        }
    }

    fn on_body(&mut self, body: &[u8]) {
        let body = body.trim_ascii();
        let too_deep = |acc: &mut Accum| {
            acc.flags
                .insert(Flags::JSON_TOO_DEEP | Flags::MALFORMED_EVENT_SKIPPED);
            acc.error = Some(format!(
                "response body nests deeper than max_json_depth ({})",
                acc.max_depth
            ));
        };
        if json_scan::nests_deeper_than(body, self.max_depth) {
            return too_deep(self);
        }
        match wire::decode(body) {
            Ok(m) => self.apply(m, false),
            Err(e) if e.is_eof() || self.body_overflow => self.body_cut = true,
            Err(e) => {
                self.flags.insert(Flags::MALFORMED_EVENT_SKIPPED);
                self.error = Some(format!("response body is not a readable JSON object: {e}"));
            }
        }
    }

    fn set_meta(&mut self, id: Option<&str>, model: Option<&str>, created: Option<i64>) {
        if self.id.is_none() {
            self.id = id.filter(|s| !s.is_empty()).map(str::to_owned);
        }
        if self.model.is_none() {
            self.model = model.filter(|s| !s.is_empty()).map(str::to_owned);
        }
        if self.created.is_none() {
            self.created = created.filter(|&c| c != 0);
        }
    }

    fn set_usage(&mut self, u: wire::Usage) {
        if self.usage.is_some() {
            self.flags.insert(Flags::USAGE_REPEATED);
        }
        self.usage = Some(u);
    }

    fn apply(&mut self, m: Message<'_>, is_error_event: bool) {
        self.set_meta(
            m.id.as_deref(),
            m.model.as_deref(),
            m.created.0.or(m.created_at.0),
        );
        if self.system_fingerprint.is_none() {
            self.system_fingerprint = m.system_fingerprint.as_deref().map(str::to_owned);
        }
        if self.endpoint.is_none() {
            self.endpoint = endpoint_of(m.object.as_deref(), m.kind.as_deref());
        }
        if let Some(e) = &m.error {
            self.error = Some(error_text(e));
        } else if is_error_event || m.kind.as_deref() == Some("error") {
            let msg = m
                .message
                .as_deref()
                .or(m.code.as_deref())
                .unwrap_or("error event");
            self.error = Some(msg.to_owned());
        }
        if let Some(u) = m.usage {
            self.set_usage(u);
        }
        if m.choices.dropped > 0 {
            self.flags.insert(Flags::TOO_MANY_CHOICES);
        }
        for c in m.choices.items {
            let d = c.delta.or(c.message);
            let Some(ch_idx) = self.apply_choice(
                c.index.0.unwrap_or(0),
                c.finish_reason.as_deref(),
                c.text.as_deref().map(str::as_bytes),
                d.as_ref()
                    .and_then(|d| d.content.as_deref())
                    .map(str::as_bytes),
                d.as_ref()
                    .and_then(|d| d.refusal.as_deref())
                    .map(str::as_bytes),
            ) else {
                continue;
            };
            let Some(d) = d else { continue };
            if d.tool_calls.dropped > 0 {
                self.flags.insert(Flags::TOO_MANY_TOOL_CALLS);
            }
            for (pos, call) in d.tool_calls.items.into_iter().enumerate() {
                let key = call.index.0.unwrap_or(pos as i64);
                if let Some(f) = call.function {
                    self.push_call(ch_idx, key, f.name.as_deref(), f.arguments.as_deref());
                }
            }
            if let Some(f) = d.function_call {
                self.push_call(ch_idx, -1, f.name.as_deref(), f.arguments.as_deref());
            }
        }
        if m.object.as_deref() == Some("response") {
            // A Responses API JSON body.
            self.response_unfinished =
                matches!(m.status.as_deref(), Some("queued" | "in_progress"));
            for item in &m.output.items {
                self.absorb_item(0, item);
            }
        }
        match m.kind.as_deref() {
            Some("response.output_text.delta") => {
                self.saw_output_delta = true;
                if let (Some(i), Some(t)) = (self.choice(0), m.delta.as_deref()) {
                    self.push_text(i, Part::Text, t.as_bytes());
                }
            }
            Some("response.refusal.delta") => {
                self.saw_output_delta = true;
                if let (Some(i), Some(t)) = (self.choice(0), m.delta.as_deref()) {
                    self.push_text(i, Part::Refusal, t.as_bytes());
                }
            }
            Some("response.function_call_arguments.delta") => {
                self.saw_output_delta = true;
                if let Some(i) = self.choice(0) {
                    let key = m.output_index.0.unwrap_or(0);
                    self.push_call(i, key, None, m.delta.as_deref());
                }
            }
            Some(k @ ("response.output_item.added" | "response.output_item.done")) => {
                if let (Some(item), Some(i)) = (&m.item, self.choice(0)) {
                    if item.kind.as_deref() == Some("message") && k == "response.output_item.added"
                    {
                        self.choices[i].output_messages += 1;
                    }
                    if item.kind.as_deref() == Some("function_call") {
                        let key = m.output_index.0.unwrap_or(0);
                        let known = self.choices[i]
                            .tools
                            .iter()
                            .any(|t| t.key == key && !t.name.is_empty());
                        let name = if known { None } else { item.name.as_deref() };
                        self.push_call(i, key, name, None);
                    }
                }
            }
            Some(k) if k.starts_with("response.") => {
                if let Some(r) = &m.response {
                    self.set_meta(r.id.as_deref(), r.model.as_deref(), r.created_at.0);
                    let terminal = matches!(
                        k,
                        "response.completed" | "response.incomplete" | "response.failed"
                    );
                    if terminal {
                        self.terminal = true;
                        if let Some(u) = &r.usage {
                            self.set_usage(u.clone());
                        }
                        if let Some(e) = &r.error {
                            self.error = Some(error_text(e));
                        } else if k == "response.failed" {
                            self.error = Some("response.failed".to_owned());
                        }
                        if !self.saw_output_delta {
                            for item in &r.output.items {
                                self.absorb_item(0, item);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The text parts of one choice, shared by both decoders; returns the choice's position.
    fn apply_choice(
        &mut self,
        index: i64,
        finish_reason: Option<&str>,
        text: Option<&[u8]>,
        content: Option<&[u8]>,
        refusal: Option<&[u8]>,
    ) -> Option<usize> {
        let i = self.choice(index)?;
        if let Some(fr) = finish_reason {
            self.choices[i].finish_reason = Some(fr.to_owned());
        }
        if let Some(t) = text {
            self.push_text(i, Part::Text, t);
        }
        if let Some(t) = content {
            self.push_text(i, Part::Text, t);
        }
        if let Some(t) = refusal {
            self.push_text(i, Part::Refusal, t);
        }
        Some(i)
    }

    /// Applies a chunk read by the fast path, with the same effects as [`Self::apply`] on its
    /// full decoding. Returns false (having changed nothing) when a string does not decode.
    fn apply_fast(&mut self, c: &fast::FastChunk<'_>) -> bool {
        // Every string this chunk will use is decoded before anything changes, so a string the
        // fast path cannot decode leaves the chunk to the full decoder untouched. Metadata is
        // decoded only while it is still unknown: after the first chunk that costs nothing.
        type Str<'c> = Option<std::borrow::Cow<'c, str>>;
        fn meta(known: bool, raw: Option<&[u8]>) -> Option<Str<'_>> {
            match raw {
                Some(r) if !known => fast::text(r).map(Some),
                _ => Some(None),
            }
        }
        // Settled: no metadata of this chunk can change anything. A field still unknown is
        // settled too when the chunk does not carry it (a null `system_fingerprint`, say).
        let settled = (self.id.is_some() || c.id.is_none())
            && (self.model.is_some() || c.model.is_none())
            && (self.created.is_some() || c.created.is_none())
            && (self.endpoint.is_some() || c.object.is_none())
            && (self.system_fingerprint.is_some() || c.system_fingerprint.is_none());
        // The chunk of nearly every stream: settled metadata, one choice, a piece of content.
        // Same effect as the general case below, without setting it up.
        if let (true, None, Some(ch), true) = (settled, &c.usage, &c.first, c.more.is_empty()) {
            if let (Some(raw), None, None, None, 0) = (
                ch.content,
                ch.text,
                ch.refusal,
                ch.finish_reason,
                ch.n_calls,
            ) {
                let Some(s) = fast::text_bytes(raw) else {
                    return false;
                };
                if let Some(i) = self.choice(ch.index) {
                    self.push_text(i, Part::Text, &s);
                }
                return true;
            }
        }
        let mut new_meta = None;
        if !settled {
            let (Some(id), Some(model), Some(object), Some(fingerprint)) = (
                meta(self.id.is_some(), c.id),
                meta(self.model.is_some(), c.model),
                meta(self.endpoint.is_some(), c.object),
                meta(self.system_fingerprint.is_some(), c.system_fingerprint),
            ) else {
                return false;
            };
            new_meta = Some((id, model, object, fingerprint));
        }
        // Each choice's strings, decoded once: checked before anything changes, then applied.
        // The finish reason, the text parts (text, content, refusal) and the tool calls.
        type Bytes<'c> = Option<std::borrow::Cow<'c, [u8]>>;
        type Decoded<'c> = (Str<'c>, [Bytes<'c>; 3], [(i64, Str<'c>, Str<'c>); 2]);
        // Decoded in place: moving a few hundred bytes per chunk shows at these speeds.
        fn decode<'c>(ch: &fast::FastChoice<'c>, out: &mut Decoded<'c>) -> Option<()> {
            let one = |raw: Option<&'c [u8]>| match raw {
                None => Some(None),
                Some(r) => fast::text(r).map(Some),
            };
            let part = |raw: Option<&'c [u8]>| match raw {
                None => Some(None),
                Some(r) => fast::text_bytes(r).map(Some),
            };
            for (slot, call) in out.2.iter_mut().zip(ch.calls()) {
                *slot = (call.key, one(call.name)?, one(call.arguments)?);
            }
            out.0 = one(ch.finish_reason)?;
            out.1 = [part(ch.text)?, part(ch.content)?, part(ch.refusal)?];
            Some(())
        }
        let mut first: Option<(i64, usize, Decoded<'_>)> = None;
        if let Some(ch) = &c.first {
            let d = first.insert((ch.index, ch.n_calls, Decoded::default()));
            if decode(ch, &mut d.2).is_none() {
                return false;
            }
        }
        let mut more = Vec::new();
        for ch in &c.more {
            let mut d = Decoded::default();
            if decode(ch, &mut d).is_none() {
                return false;
            }
            more.push((ch.index, ch.n_calls, d));
        }
        if let Some((id, model, object, fingerprint)) = new_meta {
            self.set_meta(id.as_deref(), model.as_deref(), c.created);
            if self.system_fingerprint.is_none() {
                self.system_fingerprint = fingerprint.map(std::borrow::Cow::into_owned);
            }
            if self.endpoint.is_none() {
                self.endpoint = endpoint_of(object.as_deref(), None);
            }
        }
        if let Some(u) = &c.usage {
            self.set_usage(u.clone());
        }
        // By reference: the decoded strings are a few hundred bytes, not worth moving.
        for (index, n_calls, (fr, [text, content, refusal], calls)) in first.iter().chain(&more) {
            // As in `apply`: the choice first, then its tool calls, unless the choice is past
            // the limit.
            let Some(i) = self.apply_choice(
                *index,
                fr.as_deref(),
                text.as_deref(),
                content.as_deref(),
                refusal.as_deref(),
            ) else {
                continue;
            };
            for (key, name, args) in &calls[..*n_calls] {
                self.push_call(i, *key, name.as_deref(), args.as_deref());
            }
        }
        true
    }

    /// Adds a Responses API output item's text to choice `index`.
    fn absorb_item(&mut self, index: i64, item: &wire::OutputItem<'_>) {
        let Some(i) = self.choice(index) else { return };
        match item.kind.as_deref() {
            Some("message") => {
                self.choices[i].output_messages += 1;
                for p in &item.content.items {
                    if let Some(t) = p.text.as_deref() {
                        self.push_text(i, Part::Text, t.as_bytes());
                    }
                    if let Some(t) = p.refusal.as_deref() {
                        self.push_text(i, Part::Refusal, t.as_bytes());
                    }
                }
            }
            Some("function_call" | "custom_tool_call") => {
                let key = self.choices[i].tools.len() as i64;
                self.push_call(i, key, item.name.as_deref(), item.arguments.as_deref());
            }
            _ => {}
        }
    }

    /// The position of choice `index` in `choices`, created on first use; `None` past the cap.
    fn choice(&mut self, index: i64) -> Option<usize> {
        let Ok(index) = u32::try_from(index) else {
            self.flags.insert(Flags::TOO_MANY_CHOICES);
            return None;
        };
        match self.choices.binary_search_by_key(&index, |c| c.index) {
            Ok(i) => Some(i),
            Err(i) => {
                if index as usize >= self.max_choices {
                    self.flags.insert(Flags::TOO_MANY_CHOICES);
                    return None;
                }
                // Text: one allocation for a typical answer, not a doubling from eight bytes.
                self.choices.insert(
                    i,
                    ChoiceAcc {
                        index,
                        text: Vec::with_capacity(256),
                        ..ChoiceAcc::default()
                    },
                );
                Some(i)
            }
        }
    }

    /// Appends completion text (UTF-8, as the caller has checked or `str` guarantees) within
    /// the text budget, cut at a character boundary.
    fn push_text(&mut self, choice: usize, part: Part, s: &[u8]) {
        let cut = self.budget(s);
        if cut == 0 {
            return;
        }
        let c = &mut self.choices[choice];
        let v = match part {
            Part::Text => &mut c.text,
            Part::Refusal => &mut c.refusal,
        };
        v.extend_from_slice(&s[..cut]);
    }

    fn push_call(&mut self, choice: usize, key: i64, name: Option<&str>, args: Option<&str>) {
        let pos = match self.choices[choice].tools.iter().position(|t| t.key == key) {
            Some(p) => p,
            None => {
                if self.choices[choice].tools.len() >= self.max_tool_calls {
                    self.flags.insert(Flags::TOO_MANY_TOOL_CALLS);
                    return;
                }
                self.choices[choice].tools.push(ToolAcc {
                    key,
                    ..ToolAcc::default()
                });
                self.choices[choice].tools.len() - 1
            }
        };
        if let Some(n) = name {
            let cut = self.budget(n.as_bytes());
            self.choices[choice].tools[pos].name.push_str(&n[..cut]);
        }
        if let Some(a) = args {
            let cut = self.budget(a.as_bytes());
            self.choices[choice].tools[pos]
                .arguments
                .push_str(&a[..cut]);
        }
    }

    /// How many bytes of the UTF-8 text `s` fit in the remaining text budget, cut where a
    /// character starts (so `&s[..n]` is valid on a `str` too). Once a text is cut the budget
    /// is spent, so what was kept is a prefix of the stream's text, not a prefix with later
    /// pieces mixed in.
    fn budget(&mut self, s: &[u8]) -> usize {
        let room = self.max_text.saturating_sub(self.text_bytes);
        if s.len() <= room {
            self.text_bytes += s.len();
            return s.len();
        }
        self.flags.insert(Flags::TEXT_LIMIT_REACHED);
        self.text_bytes = self.max_text;
        // A continuation byte (10xxxxxx) never starts a character.
        (0..=room).rev().find(|&i| s[i] & 0xC0 != 0x80).unwrap_or(0)
    }
}

impl Sink for Accum {
    fn frame(&mut self, f: Frame<'_>) {
        self.on_frame(f);
    }

    /// A `data:` event of one line is read where it lies: what `on_frame` would do with it, in
    /// fewer steps. One shaped like the last is read through the template before the framer
    /// searches its line ends; any other goes to `on_data` without trying the template again.
    /// The rest (a cut, a lowered depth limit, a string the fast path cannot decode after a
    /// fit) is left to the framer and `on_frame`.
    fn claim(&mut self, value: &[u8], max_data: usize) -> Option<usize> {
        if !self.fast_ready() {
            return None;
        }
        let mut c = fast::FastChunk::default();
        let fitted = self.template.fit_line(value, &mut c);
        // A payload the template does not fit ends at its line end, and is scanned without
        // another try of the template (always sound: a scan reads what a fit would).
        let len = match fitted {
            Some(len) => len,
            None => memchr::memchr2(b'\n', b'\r', value)?,
        };
        if len > max_data {
            return None;
        }
        let end = sse::event_end(&value[len..])?;
        if fitted.is_none() {
            self.on_data(&value[..len], false, true);
        } else if !self.apply_fast(&c) {
            return None;
        }
        self.frames += 1;
        Some(len + end)
    }
}

/// The endpoint a response message's `object` (or a Responses API event's `type`) names.
fn endpoint_of(object: Option<&str>, kind: Option<&str>) -> Option<Endpoint> {
    match (object, kind) {
        (Some("chat.completion" | "chat.completion.chunk"), _) => Some(Endpoint::ChatCompletions),
        (Some("text_completion"), _) => Some(Endpoint::Completions),
        (Some("list"), _) => Some(Endpoint::Embeddings),
        (Some("response"), _) => Some(Endpoint::Responses),
        (_, Some(k)) if k.starts_with("response.") => Some(Endpoint::Responses),
        _ => None,
    }
}

#[cfg(any(test, fuzzing))]
thread_local!(static FAST_PATH: std::cell::Cell<bool> = const { std::cell::Cell::new(true) });

/// Whether the fast paths are on, the chunk scanner's and the quick check of requests (always,
/// outside tests and fuzzing, which compare them with the full decoding).
#[inline]
fn fast_path_enabled() -> bool {
    #[cfg(any(test, fuzzing))]
    {
        FAST_PATH.with(std::cell::Cell::get)
    }
    #[cfg(not(any(test, fuzzing)))]
    {
        true
    }
}

/// Turns the fast paths on or off for this thread, so a fuzz target can compare them with the
/// full decoding. Only in fuzzing builds (`--cfg fuzzing`, which cargo-fuzz sets).
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn set_fast_path(on: bool) {
    FAST_PATH.with(|f| f.set(on));
}

#[derive(Clone, Copy)]
enum Part {
    Text,
    Refusal,
}

fn error_text(e: &wire::ErrorObject<'_>) -> String {
    e.message
        .as_deref()
        .or(e.code.as_deref())
        .or(e.kind.as_deref())
        .unwrap_or("error")
        .to_owned()
}

/// Meters a complete exchange in one call: `request` (may be empty when unknown) and the whole
/// `response` body.
///
/// # Errors
/// None from the bytes themselves (problems become flags); the signature leaves room for
/// options validation.
pub fn meter(opts: MeterOptions, request: &[u8], response: &[u8]) -> Result<UsageRecord> {
    let mut m = Meter::new(opts);
    if !request.trim_ascii().is_empty() {
        // An unreadable request is recorded as a flag; the response is still metered.
        let _ = m.request(request);
    }
    m.feed(response)?;
    m.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &str) -> UsageRecord {
        run_with(b"", body, MeterOptions::default())
    }

    fn run_with(req: &[u8], body: &str, opts: MeterOptions) -> UsageRecord {
        let whole = meter(opts.clone(), req, body.as_bytes()).unwrap();
        // Every test also checks that pieces give the same record: 1-byte pieces hold no whole
        // event, 5-byte pieces some (which the fast path then reads where they lie).
        for size in [1, 5] {
            let mut m = Meter::new(opts.clone());
            if !req.is_empty() {
                let _ = m.request(req);
            }
            for b in body.as_bytes().chunks(size) {
                m.feed(b).unwrap();
            }
            assert_eq!(m.finish().unwrap(), whole, "{size}-byte pieces");
        }
        whole
    }

    fn has(r: &UsageRecord, flag: &str) -> bool {
        r.flags.names().any(|f| f == flag)
    }

    const USAGE: &str = r#"{"id":"x","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":0}}}"#;

    #[test]
    fn azure_stream_shapes() {
        let body = format!(
            "data: {}\n\ndata: {}\n\ndata: {}\n\ndata: {}\n\ndata: {USAGE}\n\ndata: [DONE]\n\n",
            r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}"#,
            r#"{"choices":[{"content_filter_results":{},"delta":{"content":"Hel","role":"assistant"},"finish_reason":null,"index":0}],"created":1,"id":"chatcmpl-1","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","usage":null}"#,
            r#"{"choices":[{"delta":{"content":"lo"},"finish_reason":"stop","index":0}],"id":"chatcmpl-1","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","usage":null}"#,
            r#"{"choices":[{"content_filter_offsets":{"check_offset":0},"content_filter_results":{"hate":{"filtered":false}},"finish_reason":null,"index":0}],"id":"chatcmpl-1","model":"","object":""}"#,
        );
        let r = run(&body);
        assert_eq!(r.status, Status::Complete);
        assert_eq!(r.source, Source::Reported);
        assert_eq!(
            (r.prompt_tokens, r.completion_tokens, r.total_tokens),
            (10, 3, 13)
        );
        assert_eq!((r.cached_tokens, r.reasoning_tokens), (Some(4), Some(0)));
        assert_eq!(r.model.as_deref(), Some("gpt-4o-2024-11-20"));
        assert_eq!(r.response_id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(r.choices[0].finish_reason.as_deref(), Some("stop"));
        assert!(
            r.flags.is_empty(),
            "{:?}",
            r.flags.names().collect::<Vec<_>>()
        );
    }

    #[test]
    fn cr_only_line_ends_and_data_inside_content() {
        let chunk = r#"{"id":"a","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"data: [DONE]\n\ndata: x"}}]}"#;
        let body = format!("data:{chunk}\r\rdata: [DONE]\r\r");
        let r = run(&body);
        assert_eq!(r.status, Status::Complete);
        let expected = Encoding::O200kBase.count("data: [DONE]\n\ndata: x") as u64;
        assert_eq!(r.completion_tokens, expected);
        assert!(has(&r, "no_usage_reported") && has(&r, "completion_may_be_one_short"));
    }

    #[test]
    fn stream_cut_mid_json_is_truncated_with_counts_so_far() {
        let body = concat!(
            "data: {\"id\":\"a\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello world\"}}]}\n\n",
            "data: {\"id\":\"a\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"con"
        );
        let r = run(body);
        assert_eq!(r.status, Status::Truncated);
        assert!(has(&r, "truncated"));
        assert_eq!(r.completion_tokens, 2);
        assert!(!has(&r, "malformed_event_skipped"));
    }

    #[test]
    fn stream_without_done_is_truncated() {
        let r = run("data: {\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n");
        assert_eq!(r.status, Status::Truncated);
    }

    #[test]
    fn over_long_line_is_dropped_with_a_flag() {
        let mut opts = MeterOptions::default();
        opts.limits.max_line_bytes = 400;
        let long = "x".repeat(1000);
        let body = format!(
            "data: {{\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{long}\"}}}}]}}\n\ndata: {USAGE}\n\ndata: [DONE]\n\n"
        );
        let r = run_with(b"", &body, opts);
        assert!(has(&r, "line_too_long"));
        assert_eq!(r.source, Source::Reported);
        assert_eq!(r.total_tokens, 13);
    }

    #[test]
    fn json_deeper_than_the_limit_is_skipped_with_a_flag() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        // Past the reader's ceiling, whatever the limit: a flag, never a crash.
        let deep_event = format!(
            "data: {{\"object\":\"chat.completion.chunk\",\"x\":{}}}\n\ndata: {USAGE}\n\ndata: [DONE]\n\n",
            nest(100_000)
        );
        let r = run(&deep_event);
        assert!(has(&r, "json_too_deep") && has(&r, "malformed_event_skipped"));
        assert_eq!(r.total_tokens, 13);
        let r = run(&format!(
            "{{\"object\":\"chat.completion\",\"x\":{}}}",
            nest(200)
        ));
        assert!(has(&r, "json_too_deep"));
        assert_eq!(r.status, Status::Error);
        // Below the ceiling, a lower limit is enforced on events, bodies and requests.
        let mut o = MeterOptions::default();
        o.limits.max_json_depth = 8;
        let ok = format!(
            "data: {{\"object\":\"chat.completion.chunk\",\"x\":{}}}\n\n",
            nest(7)
        );
        let deep = format!(
            "data: {{\"object\":\"chat.completion.chunk\",\"x\":{}}}\n\n",
            nest(8)
        );
        assert!(!has(&run_with(b"", &ok, o.clone()), "json_too_deep"));
        assert!(has(&run_with(b"", &deep, o.clone()), "json_too_deep"));
        let mut m = Meter::new(o);
        let req = format!(r#"{{"model":"gpt-4o","messages":[],"x":{}}}"#, nest(8));
        let e = m.request(req.as_bytes()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        m.feed(b"{\"object\":\"chat.completion\",\"choices\":[]}")
            .unwrap();
        let r = m.finish().unwrap();
        assert!(r
            .flags
            .contains(Flags::JSON_TOO_DEEP | Flags::REQUEST_UNPARSED));
    }

    #[test]
    fn request_over_max_body_bytes_is_refused_with_a_flag() {
        let mut o = MeterOptions::default();
        o.limits.max_body_bytes = 64;
        let mut m = Meter::new(o);
        let req = format!(
            r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"{}"}}]}}"#,
            "a".repeat(100)
        );
        assert_eq!(
            m.request(req.as_bytes()).unwrap_err().kind(),
            ErrorKind::LimitExceeded
        );
        let r = m.finish().unwrap();
        assert!(r
            .flags
            .contains(Flags::BODY_TOO_LARGE | Flags::REQUEST_UNPARSED));
    }

    #[test]
    fn error_event_and_error_body() {
        let r = run("event: error\ndata: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}\n\n");
        assert_eq!(r.status, Status::Error);
        assert_eq!(r.error.as_deref(), Some("The server had an error"));
        let r = run(r#"{"error":{"message":"Rate limit reached","type":"requests","code":"429"}}"#);
        assert_eq!(r.status, Status::Error);
        assert_eq!(r.error.as_deref(), Some("Rate limit reached"));
        let r = run("<html>Bad gateway</html>");
        assert_eq!(r.status, Status::Error);
        assert!(has(&r, "malformed_event_skipped"));
    }

    #[test]
    fn n_choices_and_tool_calls_are_accumulated_per_index() {
        let body = concat!(
            "data: {\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"B\"}},{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}}]}\n\n",
            "data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\n",
            "data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        let r = run(body);
        assert_eq!(r.choices.len(), 2);
        let e = Encoding::O200kBase;
        let call = e.count("get_weather") + e.count("{\"city\":\"Paris\"}") + SINGLE_CALL_FRAMING;
        assert_eq!(r.choices[0].completion_tokens, Some(call as u64));
        assert_eq!(r.choices[1].completion_tokens, Some(1));
        assert_eq!(r.completion_tokens, call as u64 + 1);
        assert_eq!(r.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn usage_detected_by_value_not_by_empty_choices() {
        // A usage chunk that also carries a choice, and a `usage: null` chunk with no choices.
        let body = concat!(
            "data: {\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":null}\n\n",
            "data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}\n\n",
            "data: [DONE]\n\n"
        );
        let r = run(body);
        assert_eq!((r.source, r.total_tokens), (Source::Reported, 6));
    }

    #[test]
    fn reasoning_model_without_usage_is_flagged() {
        let r = run("data: {\"object\":\"chat.completion.chunk\",\"model\":\"o3-mini-2025-01-31\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n");
        assert!(has(&r, "reasoning_tokens_unobservable"));
    }

    #[test]
    fn unknown_model_falls_back_with_flag_and_deployment_map_resolves() {
        let body = "{\"object\":\"chat.completion\",\"model\":\"\",\"choices\":[{\"index\":0,\"message\":{\"content\":\"Hi\"}}]}";
        let r = run(body);
        assert!(has(&r, "unknown_model"));
        assert_eq!(r.encoding, Encoding::O200kBase);
        let mut o = MeterOptions::default();
        o.deployment("legacy-chat")
            .map_deployment("legacy-chat", "gpt-35-turbo");
        let r = run_with(b"", body, o);
        assert!(!has(&r, "unknown_model"));
        assert_eq!(r.encoding, Encoding::Cl100kBase);
        assert_eq!(r.model.as_deref(), Some("gpt-35-turbo"));
        assert_eq!(r.deployment.as_deref(), Some("legacy-chat"));
    }

    /// The fast chunk path changes speed, never records: both paths agree on every recorded
    /// stream of the corpus, with and without reconciling.
    #[test]
    fn fast_path_gives_the_same_records_as_full_decoding_on_the_corpus() {
        let mut n = 0;
        for v in crate::corpus_records() {
            if v["stream"] != true {
                continue;
            }
            let req = serde_json::to_vec(&v["request"]).unwrap();
            let body = v["response_body"].as_str().unwrap();
            let o = MeterOptions {
                reconcile: true,
                ..MeterOptions::default()
            };
            let fast = meter(o.clone(), &req, body.as_bytes()).unwrap();
            let full = full_path(|| meter(o, &req, body.as_bytes()).unwrap());
            assert_eq!(fast, full, "{}", v["id"]);
            n += 1;
        }
        assert!(n > 500);
    }

    /// `computed.flags` are the flags the record would carry were the computed counts billed:
    /// with reported usage and reconciliation they say which computed count is an estimate,
    /// while the record's flags and billed fields stay as without reconciliation.
    #[test]
    fn computed_counts_carry_their_own_flags() {
        let req = br#"{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"What is it?"},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}"#;
        let reply = r#"{"id":"c","object":"chat.completion","model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"A cat."},"finish_reason":"stop"}]USAGE}"#;
        let prompt_notes = Flags::IMAGE_SIZE_UNKNOWN | Flags::IMAGE_TOKENS_ESTIMATED;
        let o = MeterOptions {
            reconcile: true,
            ..MeterOptions::default()
        };
        let usage = r#","usage":{"prompt_tokens":300,"completion_tokens":3,"total_tokens":303}"#;
        let with_usage = reply.replace("USAGE", usage);
        let billed = meter(o.clone(), req, with_usage.as_bytes()).unwrap();
        let plain = meter(MeterOptions::default(), req, with_usage.as_bytes()).unwrap();
        assert!(billed.flags.is_empty(), "{:?}", billed.flags);
        assert_eq!(
            billed.image_tokens, None,
            "no image estimate beside a reported prompt"
        );
        // Reconciling adds `computed` and per-choice counts, and changes nothing billed.
        let choices = billed
            .choices
            .iter()
            .map(|c| ChoiceRecord {
                completion_tokens: None,
                ..c.clone()
            })
            .collect();
        assert_eq!(
            UsageRecord {
                computed: None,
                choices,
                ..billed.clone()
            },
            plain
        );
        let c = billed.computed.expect("reconciled");
        assert_eq!(c.image_tokens, Some(425));
        assert_eq!(
            c.flags,
            prompt_notes | Flags::COMPLETION_MAY_BE_ONE_SHORT,
            "{:?}",
            c.flags
        );
        let json = serde_json::to_value(&c).unwrap();
        assert!(json["flags"]
            .as_array()
            .unwrap()
            .contains(&"image_size_unknown".into()));
        // Without usage the record carries them too, with `no_usage_reported`, which
        // `computed.flags` leaves out.
        let computed = meter(o.clone(), req, reply.replace("USAGE", "").as_bytes()).unwrap();
        assert_eq!(computed.flags, c.flags | Flags::NO_USAGE_REPORTED);
        assert_eq!(computed.computed.unwrap().flags, c.flags);
        // A reasoning model's computed completion cannot see the hidden reasoning.
        let o3 = meter(
            o.clone(),
            &String::from_utf8_lossy(req)
                .replace("gpt-4o", "o3-mini")
                .into_bytes(),
            with_usage
                .replace("gpt-4o-2024-08-06", "o3-mini")
                .as_bytes(),
        )
        .unwrap();
        assert!(!o3.flags.contains(Flags::REASONING_TOKENS_UNOBSERVABLE));
        assert!(o3
            .computed
            .unwrap()
            .flags
            .contains(Flags::REASONING_TOKENS_UNOBSERVABLE));
        // The host supplies the image's size: no note is left.
        let mut sized = o.clone();
        sized.image_size("https://example.com/a.png", 512, 512);
        let r = meter(sized, req, reply.replace("USAGE", "").as_bytes()).unwrap();
        assert!(r.flags.contains(Flags::NO_USAGE_REPORTED));
        assert!(!r.flags.contains(prompt_notes), "{:?}", r.flags);
        assert_eq!(r.image_tokens, Some(255), "gpt-4o, one tile: 85 + 170");
        // An unreadable request: noted on both, and the computed prompt is unknown.
        let bad = meter(o, b"{", with_usage.as_bytes()).unwrap();
        assert!(bad.flags.contains(Flags::REQUEST_UNPARSED));
        assert_eq!(
            bad.computed.unwrap().flags,
            Flags::REQUEST_UNPARSED | Flags::PROMPT_UNKNOWN | Flags::COMPLETION_MAY_BE_ONE_SHORT
        );
    }

    /// Usage chunks take the fast path, reading `usage` with the full decoder's type; odd
    /// values, odd shapes and malformed neighbours (of usage or of text) give the record full
    /// decoding gives.
    #[test]
    fn odd_chunks_read_alike_on_both_paths() {
        let head = r#"data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
        for usage in [
            r#""usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":1}}"#,
            r#""usage":{"prompt_tokens":-1,"completion_tokens":2.5,"total_tokens":1e30}"#,
            r#""usage":{"prompt_tokens":"10","completion_tokens":3}"#,
            r#""usage":{"prompt_tokens":1,"prompt_tokens":2}"#,
            r#""usage":{"prompt_tokens":1,"unknown":{"a":[1,{"b":"}"}]}}"#,
            r#""usage":{"prompt_tokens":1]}"#,
            r#""usage":{}"#,
            r#""usage":[]"#,
            r#""usage":"x""#,
            r#""usage":{"prompt_tokens":1},"latency_checkpoint":{"a":[1}]"#,
            r#""usage":{"prompt_tokens":1},"latency_checkpoint":{"a":[1,2]}"#,
        ] {
            for choices in ["[]", r#"[{"index":0,"delta":{},"finish_reason":"stop"}]"#] {
                let body = format!("{head}\n\ndata: {{\"id\":\"c\",\"choices\":{choices},{usage}}}\n\ndata: [DONE]\n\n");
                on_both_paths(&body);
            }
        }
        // Odd neighbours of a text chunk, some the full decoder rejects, some it reads.
        for tail in [
            "\"x\":\"a\u{1}b\"",
            r#""x":"a\qb""#,
            r#""x":"\ud83d\ude00""#,
            r#""x":01"#,
            r#""x":1."#,
            r#""x":{"a" 1}"#,
            r#""x":[1,]"#,
            r#""x":{"a":1]"#,
            r#""\u0078":1"#,
            "\"é\":1",
            r#""x":[-0,0.5,-1.25e+3,{},[]]"#,
            r#""id":"\u00e9""#,
            r#""model":"m\"x""#,
        ] {
            let body = format!("{head}\n\ndata: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"b\"}}}}],{tail}}}\n\n");
            on_both_paths(&body);
        }
        // Choice indexes and `created` the scanner reads as integers, or leaves to the full decoder.
        for n in [
            "0",
            "01",
            "-1",
            "-0",
            "1.0",
            "1e0",
            "9223372036854775807",
            "9223372036854775808",
            "null",
            "\"1\"",
        ] {
            on_both_paths(&format!("{head}\n\ndata: {{\"created\":{n},\"choices\":[{{\"index\":{n},\"delta\":{{\"content\":\"b\"}}}}]}}\n\n"));
        }
        let r = on_both_paths(&format!("{head}\n\ndata: {USAGE}\n\n"));
        assert_eq!(
            (r.source, r.prompt_tokens, r.cached_tokens),
            (Source::Reported, 10, Some(4))
        );
    }

    /// The record of `body` with the fast path on, checked equal to the one with it off.
    fn on_both_paths(body: &str) -> UsageRecord {
        on_both_paths_with(body, MeterOptions::default())
    }

    /// [`on_both_paths`] under `opts`, each path also checked in pieces by [`run_with`].
    fn on_both_paths_with(body: &str, opts: MeterOptions) -> UsageRecord {
        let fast = run_with(b"", body, opts.clone());
        let full = full_path(|| run_with(b"", body, opts));
        assert_eq!(fast, full, "{body}");
        fast
    }

    /// `f` run with the fast path (and its claims) off: the full decoder reads every event.
    fn full_path<T>(f: impl FnOnce() -> T) -> T {
        FAST_PATH.with(|p| p.set(false));
        let r = f();
        FAST_PATH.with(|p| p.set(true));
        r
    }

    #[test]
    fn misuse_is_an_error_not_a_panic() {
        let mut m = Meter::new(MeterOptions::default());
        assert_eq!(
            m.request(b"{not json").unwrap_err().kind(),
            ErrorKind::InvalidJson
        );
        m.feed(b"").unwrap();
        let r = m.finish().unwrap();
        assert!(has(&r, "empty_response") && has(&r, "request_unparsed"));
        assert_eq!(m.feed(b"x").unwrap_err().kind(), ErrorKind::Finished);
        assert_eq!(m.finish().unwrap_err().kind(), ErrorKind::Finished);
    }

    #[test]
    fn text_limit_caps_memory_with_a_flag() {
        let mut o = MeterOptions::default();
        o.limits.max_text_bytes = 10;
        let body = "{\"object\":\"chat.completion\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"message\":{\"content\":\"ééééééééééééééé\"}}]}";
        let r = run_with(b"", body, o);
        assert!(has(&r, "text_limit_reached"));
        assert_eq!(
            r.completion_tokens,
            Encoding::O200kBase.count("ééééé") as u64
        );
    }

    /// The budget cuts a stream's text at a character boundary on both paths, whether the
    /// piece is plain, escaped, ASCII or not, and whatever byte the limit falls on.
    #[test]
    fn text_limit_cuts_stream_text_alike_on_both_paths() {
        let chunk = |c: &str| {
            format!("data: {{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{c}\"}}}}]}}\n\n")
        };
        let body: String = ["ab", "é東", "\\u00e9x", "😀😀", "\\n\\\"", "naïve"]
            .iter()
            .map(|c| chunk(c))
            .collect::<String>()
            + "data: [DONE]\n\n";
        for limit in 0..30 {
            let mut o = MeterOptions::default();
            o.limits.max_text_bytes = limit;
            let fast = on_both_paths_with(&body, o);
            assert_eq!(
                has(&fast, "text_limit_reached"),
                limit < 26,
                "limit {limit}"
            );
            let text = "abé東éx😀😀\n\"naïve";
            let cut = (0..=limit.min(text.len()))
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            assert_eq!(
                fast.completion_tokens,
                Encoding::O200kBase.count(&text[..cut]) as u64,
                "limit {limit}"
            );
        }
    }

    /// Events read where they lie (`Sink::claim`) give the record the framer and `on_frame`
    /// give: every stream here is metered whole (claims), in 1-byte pieces (no event is ever
    /// whole in a piece), in 5-byte pieces, and with the fast path off, under limits around
    /// its line and event sizes. Each case is an SSE or template detail a claim must respect.
    #[test]
    fn claimed_events_read_as_framed_events() {
        let c = |t: &str| {
            format!(
                r#"{{"id":"x","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{{"index":0,"delta":{{"content":"{t}"}},"finish_reason":null}}]}}"#
            )
        };
        let (a, b, d, e) = (c("Hel"), c("lo"), c("!"), c("Hello, world"));
        let multi = format!("{}\n}}", &a[..a.len() - 1]);
        let fin = r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        let usage = r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        let streams = [
            format!("data: {a}\n\ndata: {b}\n\ndata: {d}\n\ndata: {e}\n\ndata: [DONE]\n\n"),
            format!("data: {a}\r\n\r\ndata: {b}\r\n\r\ndata: {d}\r\n\r\n"),
            format!("data: {a}\r\rdata: {b}\r\rdata: {d}\r\r"),
            format!("data: {a}\n\ndata: {b}\r\n\r\ndata: {d}\n\r\n"),
            format!("data: {a}\n\ndata:{b}\n\ndata:  {d}\n\n"),
            format!("\u{feff}data: {a}\n\n: ping\n\ndata: {b}\n\nevent: error\ndata: {d}\n\n"),
            format!("data: {a}\n\nid: 7\ndata: {b}\n\ndata: {d}\ndata: {d}\n\n"),
            format!("data: {a}\n\ndata: [DONE]\n\ndata: {b}\n\n"),
            format!("data: {a}\n\ndata: {}\n\ndata: {b}\n\n", &b[..20]),
            format!("data: {a}\n\ndata: {b} \n\ndata: {d}\n"),
            // A template learned from a payload of two data lines holds an LF: the same bytes
            // on one line are two SSE lines, not that payload.
            format!(
                "data: {}\ndata: }}\n\ndata: {multi}\n\ndata: {b}\n\n",
                &a[..a.len() - 1]
            ),
            // Events of another shape are read where they lie too: a finish chunk, a usage
            // chunk, [DONE], an error, a cut payload, empty data, data with surrounding
            // whitespace, and text after [DONE].
            format!("data: {a}\n\ndata: {fin}\n\ndata: {usage}\n\ndata: [DONE]\n\n"),
            format!(
                "data: {a}\n\ndata: {fin}\r\n\r\ndata: {{\"id\":\n\ndata: {b}\n\ndata: \n\ndata: {{\"error\":{{\"message\":\"x\"}}}}\n\n"
            ),
            format!("data: {a}\n\ndata: {fin} \n\ndata:  {usage}\n\ndata: {b}\n\ndata: [DONE]\n\ndata: {d}\n\n"),
            format!("data: {a}\n\ndata: {usage}\r\rdata: {fin}\n\r\ndata: [DONE]\n"),
        ];
        // Around the longest event: a claim must leave one over a limit to the framer.
        let n = e.len();
        for (k, body) in streams.iter().enumerate() {
            for (max_line, max_body) in [
                (1 << 20, 1 << 20),
                (6 + n, 1 << 20),
                (5 + n, 1 << 20),
                (1 << 20, n),
                (1 << 20, n - 1),
            ] {
                let mut o = MeterOptions::default();
                o.limits.max_line_bytes = max_line;
                o.limits.max_body_bytes = max_body;
                eprintln!("stream {k}, limits {max_line}/{max_body}");
                on_both_paths_with(body, o);
            }
        }
    }

    /// The short lane (settled metadata, one choice, content only) reads chunks as the general
    /// fast path and the full decoder do, claimed or framed: a choice past `max_choices`, empty
    /// and escaped content, a neighbour with a finish reason or refusal, a chunk of two choices,
    /// an over-long line dropped just before a claimable event, under text limits that cut.
    #[test]
    fn short_lane_reads_as_the_general_path() {
        let c = |i: u32, t: &str, tail: &str| {
            format!(
                r#"data: {{"id":"x","object":"chat.completion.chunk","created":1,"model":"gpt-4o","system_fingerprint":"fp","choices":[{{"index":{i},"delta":{{"content":"{t}"{tail}}}}}]}}"#
            )
        };
        let two = r#"data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"gpt-4o","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]}"#;
        let long = format!("data: {}", "x".repeat(300));
        let events = [
            c(0, "Hel", ""),
            c(0, "lo", ""),
            c(1, "é", ""),
            c(0, "", ""),
            c(2, "past", ""),
            c(0, "\\u00e9\\n", ""),
            c(0, "r", r#","refusal":"no""#),
            c(1, "f", r#","role":"assistant""#),
            two.to_owned(),
            long,
            c(0, "!", ""),
            c(0, "bad\\ud800", ""),
            c(0, "end", ""),
        ];
        let body = events
            .iter()
            .map(|e| format!("{e}\n\n"))
            .collect::<String>()
            + "data: [DONE]\n\n";
        for (max_choices, max_text) in [(128, 1 << 20), (2, 1 << 20), (2, 7), (1, 3)] {
            let mut o = MeterOptions::default();
            o.limits.max_choices = max_choices;
            o.limits.max_text_bytes = max_text;
            o.limits.max_line_bytes = 250;
            o.reconcile = true;
            let fast = on_both_paths_with(&body, o);
            assert!(has(&fast, "line_too_long"));
            assert_eq!(has(&fast, "too_many_choices"), max_choices < 3);
        }
    }

    /// Streams whose metadata never settles (no `system_fingerprint`, `created` 0) or arrives
    /// late, each field in its own chunk: the fast path sets each field as the full decoder
    /// does.
    #[test]
    fn metadata_arriving_late_reads_alike() {
        let c = |meta: &str, t: &str| {
            format!("data: {{{meta}\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{t}\"}}}}]}}\n\n")
        };
        let body = [
            c("", "A"),
            c(r#""id":"x","created":0,"system_fingerprint":null,"#, "b"),
            c(r#""id":"y","model":"gpt-4o","#, "c"),
            c(r#""object":"text_completion","#, "d"),
            c(r#""created":0,"#, "e"),
            c(r#""system_fingerprint":"fp_1","#, "f"),
            c(r#""created":5,"#, "g"),
            c(r#""id":"z","created":6,"model":"gpt-4","object":"chat.completion.chunk","system_fingerprint":"fp_2","#, "h"),
            "data: [DONE]\n\n".to_owned(),
        ]
        .concat();
        let r = on_both_paths(&body);
        assert_eq!(
            r.completion_tokens as usize,
            crate::count_tokens("Abcdefgh", "gpt-4o")
        );
        assert_eq!(
            (
                r.response_id.as_deref(),
                r.model.as_deref(),
                r.created,
                r.system_fingerprint.as_deref(),
                r.endpoint
            ),
            (
                Some("x"),
                Some("gpt-4o"),
                Some(5),
                Some("fp_1"),
                Endpoint::Completions
            )
        );
    }

    /// A tool call's `id` is decoded by the full decoder whatever its type, so a value it
    /// cannot hold (`1e400`, a map with a non-UTF-8 key) drops the event there; the scanner
    /// reads only a string or null there and declines the rest.
    #[test]
    fn tool_call_id_of_any_type_reads_alike() {
        for id in [
            "1e400",
            "-1e999",
            "{\"\u{e9}\":1}",
            "7",
            "null",
            "[]",
            "\"c1\"",
        ] {
            on_both_paths(&format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"id\":{id},\"function\":{{\"name\":\"f\"}}}}]}}}}]}}\n\ndata: [DONE]\n\n"));
        }
    }

    /// An event with `"object":"response"` is a Responses API body to the full decoder, which
    /// then sets whether the response is finished from `status`, present or not; the scanner
    /// declines it.
    #[test]
    fn response_object_reads_alike() {
        on_both_paths("data: {\"object\":\"response\",\"status\":\"in_progress\"}\n\ndata: {\"object\":\"response\"}\n\n");
        on_both_paths("data: {\"object\":\"response\",\"status\":\"in_progress\"}\n\ndata: {\"object\":\"respons\\u0065\"}\n\n");
    }
}
