//! Making streamed usage exact: ask the service for it, and hide the answer from clients that
//! did not ask.
//!
//! A gateway passes each streaming chat-completions / completions request through
//! [`ensure_include_usage`], so the service ends the stream with a usage chunk the meter reads
//! (the record is then `reported`). When the client itself had not asked for usage, the gateway
//! gives the client the stream through a [`UsageChunkFilter`], which removes that chunk, while
//! the meter sees the original bytes. Both work on bytes and leave every other byte alone.

use std::borrow::Cow;

use memchr::memchr2;

use crate::json_scan::{self, Object};
use crate::wire;

/// The result of [`ensure_include_usage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite<'a> {
    /// The body to send upstream (borrowed when unchanged).
    pub body: Cow<'a, [u8]>,
    /// Whether the body was changed.
    pub changed: bool,
    /// Whether the client asked for usage itself (`include_usage: true` was already there). When
    /// false and `changed`, filter the usage chunk out of the client's stream.
    pub client_asked: bool,
}

/// Returns `body` with `stream_options.include_usage = true` when it is a chat-completions
/// (`messages`) or completions (`prompt`) JSON object with `"stream": true` that does not already
/// ask for usage; otherwise `body` unchanged (Responses API bodies always are: that API reports
/// usage by itself and rejects the field).
/// Only the bytes of that one field change: the rest of the body stays byte-identical.
///
/// # Example
/// ```
/// use usagetap::rewrite::ensure_include_usage;
/// let r = ensure_include_usage(br#"{"model":"gpt-4o","stream":true,"messages":[]}"#);
/// assert!(r.changed);
/// assert_eq!(&r.body[..], &br#"{"model":"gpt-4o","stream":true,"messages":[],"stream_options":{"include_usage":true}}"#[..]);
/// ```
pub fn ensure_include_usage(body: &[u8]) -> Rewrite<'_> {
    let unchanged = |client_asked| Rewrite {
        body: Cow::Borrowed(body),
        changed: false,
        client_asked,
    };
    let Some(obj) = json_scan::scan_object(body) else {
        return unchanged(false);
    };
    let Some(close) = obj.close else {
        return unchanged(false);
    };
    let streams = obj.get("stream").is_some_and(|f| f.raw(body) == b"true");
    // Only chat completions (`messages`) and completions (`prompt`) take `include_usage`; the
    // Responses API always reports usage and would reject the field.
    let takes_option = obj.get("messages").is_some() || obj.get("prompt").is_some();
    if !streams || !takes_option {
        return unchanged(false);
    }
    let splice = |at: std::ops::Range<usize>, with: &[u8]| {
        let mut out = Vec::with_capacity(body.len() + with.len());
        out.extend_from_slice(&body[..at.start]);
        out.extend_from_slice(with);
        out.extend_from_slice(&body[at.end..]);
        Rewrite {
            body: Cow::Owned(out),
            changed: true,
            client_asked: false,
        }
    };
    let Some(so) = obj.get("stream_options") else {
        let text: &[u8] = if obj.fields.is_empty() {
            br#""stream_options":{"include_usage":true}"#
        } else {
            br#","stream_options":{"include_usage":true}"#
        };
        return splice(insert_point(body, close)..insert_point(body, close), text);
    };
    let raw = so.raw(body);
    let inner: Option<Object<'_>> = json_scan::scan_object(raw);
    match inner {
        Some(inner) => {
            let Some(inner_close) = inner.close else {
                return unchanged(false);
            };
            let base = so.value_span.start;
            match inner.get("include_usage") {
                Some(f) if f.raw(raw) == b"true" => unchanged(true),
                Some(f) => splice(base + f.value_span.start..base + f.value_span.end, b"true"),
                None => {
                    let text: &[u8] = if inner.fields.is_empty() {
                        br#""include_usage":true"#
                    } else {
                        br#","include_usage":true"#
                    };
                    let at = base + insert_point(raw, inner_close);
                    splice(at..at, text)
                }
            }
        }
        // `null` or another non-object: replace the value.
        None => splice(so.value_span.clone(), br#"{"include_usage":true}"#),
    }
}

/// Where to insert before the closing brace at `close`: right after the last non-space byte, so
/// pretty-printed bodies keep their closing layout.
fn insert_point(body: &[u8], close: usize) -> usize {
    let mut i = close;
    while i > 0 && matches!(body[i - 1], b' ' | b'\t' | b'\r' | b'\n') {
        i -= 1;
    }
    i
}

/// Removes usage-only chunks (`"choices": []` with a non-null `usage`) from an SSE stream, for
/// clients that did not ask for them. Feed the client's stream through it in any pieces; every
/// other byte comes out unchanged and in order. Events are held only until their blank line;
/// an event larger than `max_event` is passed through unread.
#[derive(Clone, Debug)]
pub struct UsageChunkFilter {
    event: Vec<u8>,
    /// Where the scan for line ends resumes in `event`.
    scan: usize,
    /// Start of the current line in `event`.
    line_start: usize,
    /// The previous byte was CR (a following LF belongs to the same line end).
    prev_cr: bool,
    /// The last event ended on the CR of a CRLF that the next piece may complete: `Some(keep)`
    /// says whether that LF goes out (kept event) or not (removed event).
    pending_lf: Option<bool>,
    /// Passing an over-long event through until its end.
    passthrough: bool,
    max_event: usize,
    removed: u64,
}

impl Default for UsageChunkFilter {
    fn default() -> Self {
        UsageChunkFilter::new(8 << 20)
    }
}

impl UsageChunkFilter {
    /// A filter that holds at most `max_event` bytes of one event.
    pub fn new(max_event: usize) -> UsageChunkFilter {
        UsageChunkFilter {
            event: Vec::new(),
            scan: 0,
            line_start: 0,
            prev_cr: false,
            pending_lf: None,
            passthrough: false,
            max_event,
            removed: 0,
        }
    }

    /// Usage chunks removed so far.
    pub fn removed(&self) -> u64 {
        self.removed
    }

    /// Filters the next piece, appending what the client should get to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        if let Some(keep) = self.pending_lf {
            if input.is_empty() {
                return;
            }
            self.pending_lf = None;
            if input[0] == b'\n' {
                if keep {
                    out.push(b'\n');
                }
                input = &input[1..];
                self.prev_cr = false;
            }
        }
        self.event.extend_from_slice(input);
        while self.scan < self.event.len() {
            let Some(i) = memchr2(b'\n', b'\r', &self.event[self.scan..]) else {
                self.scan = self.event.len();
                break;
            };
            let at = self.scan + i;
            let byte = self.event[at];
            self.scan = at + 1;
            if byte == b'\n' && self.prev_cr && at == self.line_start {
                // The LF of a CRLF whose CR ended the previous line.
                self.prev_cr = false;
                self.line_start = self.scan;
                continue;
            }
            self.prev_cr = byte == b'\r';
            let blank = at == self.line_start;
            self.line_start = self.scan;
            if blank {
                self.end_event(out);
            }
        }
        if !self.passthrough && self.event.len() > self.max_event {
            self.passthrough = true;
        }
        if self.passthrough {
            out.extend_from_slice(&self.event);
            self.reset_event();
        }
    }

    /// Flushes whatever is held (a last event without its blank line is passed through as is).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.event);
        self.reset_event();
        self.passthrough = false;
    }

    fn reset_event(&mut self) {
        self.event.clear();
        self.scan = 0;
        self.line_start = 0;
    }

    fn end_event(&mut self, out: &mut Vec<u8>) {
        let end = self.scan;
        let drop = !self.passthrough && is_usage_only(&self.event[..end]);
        let mut consumed = end;
        if self.prev_cr {
            // The blank line ended on a CR: its LF, if any, belongs to this event.
            if self.event.get(end) == Some(&b'\n') {
                consumed += 1;
                self.prev_cr = false;
            } else if end == self.event.len() {
                self.pending_lf = Some(!drop);
            }
        }
        if drop {
            self.removed += 1;
        } else {
            out.extend_from_slice(&self.event[..consumed]);
        }
        self.event.drain(..consumed);
        self.scan = 0;
        self.line_start = 0;
        self.passthrough = false;
    }
}

/// Whether the raw event carries a usage-only chunk.
fn is_usage_only(event: &[u8]) -> bool {
    let mut data: Vec<u8> = Vec::new();
    for line in event.split(|b| *b == b'\n' || *b == b'\r') {
        if let Some(v) = line.strip_prefix(b"data:") {
            if !data.is_empty() {
                data.push(b'\n');
            }
            data.extend_from_slice(v.strip_prefix(b" ").unwrap_or(v));
        }
    }
    if memchr::memmem::find(&data, b"\"usage\"").is_none() {
        return false;
    }
    match wire::decode(&data) {
        Ok(m) => m.usage.is_some() && m.choices.is_empty(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_streaming_requests_that_lack_usage() {
        let same = |b: &[u8]| {
            let r = ensure_include_usage(b);
            assert!(!r.changed, "{}", String::from_utf8_lossy(b));
            assert_eq!(&r.body[..], b);
        };
        same(br#"{"stream":false,"messages":[]}"#);
        same(br#"{"stream":true,"input":"hi","model":"gpt-4o"}"#);
        same(br#"{"messages":[]}"#);
        same(br#"{"stream":true,"messages":[],"stream_options":{"include_usage":true}}"#);
        same(b"not json");
        same(br#"{"stream":true"#);
        let r = ensure_include_usage(
            b"{\n  \"stream\": true,\"prompt\":\"x\",\n  \"stream_options\": {}\n}",
        );
        assert_eq!(&r.body[..], b"{\n  \"stream\": true,\"prompt\":\"x\",\n  \"stream_options\": {\"include_usage\":true}\n}");
        let r = ensure_include_usage(
            br#"{"stream":true,"messages":[],"stream_options":{"include_usage":false,"x":1}}"#,
        );
        assert_eq!(
            &r.body[..],
            br#"{"stream":true,"messages":[],"stream_options":{"include_usage":true,"x":1}}"#
        );
        let r = ensure_include_usage(br#"{"stream":true,"messages":[],"stream_options":null}"#);
        assert_eq!(
            &r.body[..],
            br#"{"stream":true,"messages":[],"stream_options":{"include_usage":true}}"#
        );
        let r = ensure_include_usage(b"{\"stream\":true,\"messages\":[],\"m\":\"\xC3\xA9\"\n}");
        assert_eq!(&r.body[..], b"{\"stream\":true,\"messages\":[],\"m\":\"\xC3\xA9\",\"stream_options\":{\"include_usage\":true}\n}");
        assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_ok());
    }

    fn filter(pieces: &[&[u8]]) -> Vec<u8> {
        let mut f = UsageChunkFilter::default();
        let mut out = Vec::new();
        for p in pieces {
            f.feed(p, &mut out);
        }
        f.finish(&mut out);
        out
    }

    #[test]
    fn filter_removes_only_the_usage_chunk_at_any_split() {
        for sep in ["\n", "\r\n", "\r"] {
            let a = format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"Hi\"}}}}],\"usage\":null}}{sep}{sep}");
            let u = format!("data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}}}{sep}{sep}");
            let d = format!("data: [DONE]{sep}{sep}");
            let input = format!("{a}{u}{d}");
            let want = format!("{a}{d}");
            let b = input.as_bytes();
            for i in 0..=b.len() {
                for j in (i..=b.len()).step_by(5) {
                    let got = filter(&[&b[..i], &b[i..j], &b[j..]]);
                    assert_eq!(String::from_utf8_lossy(&got), want, "{sep:?} {i} {j}");
                }
            }
        }
    }
}
