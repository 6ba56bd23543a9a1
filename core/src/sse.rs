//! An incremental Server-Sent-Events framer (WHATWG "event stream interpretation").
//!
//! Bytes go in as they arrive, in pieces split anywhere; complete events come out. Line ends may
//! be LF, CRLF or CR (a CRLF split across two pieces is one line end). `data:` is accepted with or
//! without one space after the colon; several `data` lines in one event are joined with `\n`;
//! comment lines (`:` first) are ignored; `event:` names the event. A final event that has no
//! trailing blank line is still delivered by [`Framer::finish`], because recorded and truncated
//! streams often end that way.
//!
//! Zero-copy: an event whose lines all lie inside the current piece is handed out borrowing that
//! piece. Only bytes of an event that straddles two pieces are copied, into buffers the framer
//! reuses. A line longer than [`Framer::new`]'s `max_line` is dropped (with
//! [`Framer::lines_dropped`] counting it) and never buffered: the framer's memory is bounded by
//! `max_line + max_event` whatever the input.
//!
//! A [`Sink`] that can read the next event faster than the framer can find its line ends (the
//! meter, when an event repeats the last one's shape) is offered each `data: ` line that
//! starts at an event boundary, and may take the whole event itself.
//!
//! # Example: frames from pieces
//! ```
//! use usagetap::sse::Framer;
//! let mut framer = Framer::new(1 << 20, 1 << 20);
//! let mut seen = Vec::new();
//! for piece in [&b"data: {\"a\""[..], b":1}\r\n\r\ndata: [DONE]\n\n"] {
//!     framer.feed(piece, |f| seen.push(String::from_utf8_lossy(f.data).into_owned()));
//! }
//! framer.finish(|f| seen.push(String::from_utf8_lossy(f.data).into_owned()));
//! assert_eq!(seen, ["{\"a\":1}", "[DONE]"]);
//! ```

use memchr::memchr2;

/// One dispatched event. Both slices borrow either the piece being fed or the framer's buffers
/// and are valid only during the callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The `event:` field, empty when the event had none (the default type `message`).
    pub event: &'a [u8],
    /// The joined `data` lines.
    pub data: &'a [u8],
}

/// Where a framer's events go. [`Framer::feed`] takes any closure as a sink; a sink that knows
/// what the next event probably looks like can also take it whole, before the framer searches
/// for its line ends ([`Framer::feed_sink`]).
pub trait Sink {
    /// Handles one dispatched event.
    fn frame(&mut self, f: Frame<'_>);

    /// Offered at an event boundary with nothing of an event pending, `value` being the input
    /// after a `data: ` line start. A sink that reads, from the start of `value`, a value of
    /// at most `max_data` bytes holding no CR or LF, followed by the line end and blank line
    /// that [`event_end`] finds there, handles it exactly as it would handle
    /// `Frame { event: b"", data }` and returns its length with that of the line ends. The
    /// default takes nothing.
    fn claim(&mut self, value: &[u8], max_data: usize) -> Option<usize> {
        let _ = (value, max_data);
        None
    }
}

impl<F: FnMut(Frame<'_>)> Sink for F {
    fn frame(&mut self, f: Frame<'_>) {
        self(f)
    }
}

/// Length of the line end and blank line that end an event at the start of `rest` (`\n\n` or
/// `\r\n\r\n`), when both are there; other line ends are left to the framer's own reading.
pub fn event_end(rest: &[u8]) -> Option<usize> {
    if rest.starts_with(b"\n\n") {
        Some(2)
    } else if rest.starts_with(b"\r\n\r\n") {
        Some(4)
    } else {
        None
    }
}

/// Longest event type kept; longer names are cut (no event type this library acts on is long).
const MAX_EVENT_NAME: usize = 128;
const BOM: &[u8] = b"\xEF\xBB\xBF";
/// The start of the lines offered to [`Sink::claim`].
const DATA_LINE: &[u8] = b"data: ";

/// The incremental framer. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Framer {
    max_line: usize,
    max_event: usize,
    /// The start of a line that the previous piece did not finish.
    carry: Vec<u8>,
    /// True while skipping the rest of an over-long line.
    discarding: bool,
    /// The previous piece ended in CR: a LF first in the next piece ends no new line.
    skip_lf: bool,
    /// No line has been seen yet (a BOM is stripped from the first one).
    at_start: bool,
    /// Data of the event being built, once it had to be copied.
    data: Vec<u8>,
    /// Whether the event being built has any `data` line.
    has_data: bool,
    /// The event being built went over `max_event` and will be dropped.
    event_overflow: bool,
    event: Vec<u8>,
    lines_dropped: u64,
    events_dropped: u64,
}

/// Where the data of the event under construction lives, during one `feed`.
enum Data<'c> {
    /// No data line yet, or data already in `Framer::data`.
    Owned,
    /// One data line, borrowed from the current piece.
    Borrowed(&'c [u8]),
}

impl Framer {
    /// A framer that drops lines longer than `max_line` bytes and events whose data is longer
    /// than `max_event` bytes.
    pub fn new(max_line: usize, max_event: usize) -> Framer {
        Framer {
            max_line,
            max_event,
            carry: Vec::new(),
            discarding: false,
            skip_lf: false,
            at_start: true,
            data: Vec::new(),
            has_data: false,
            event_overflow: false,
            event: Vec::new(),
            lines_dropped: 0,
            events_dropped: 0,
        }
    }

    /// Lines dropped so far for being longer than `max_line`.
    pub fn lines_dropped(&self) -> u64 {
        self.lines_dropped
    }

    /// Events dropped so far for carrying more than `max_event` bytes of data.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    /// Whether bytes of an unfinished line or event are pending (the input so far does not end
    /// on an event boundary).
    pub fn has_pending(&self) -> bool {
        !self.carry.is_empty() || self.has_data || self.discarding
    }

    /// Feeds the next piece; `on_frame` is called for every event it completes, in order.
    pub fn feed<F: FnMut(Frame<'_>)>(&mut self, piece: &[u8], mut on_frame: F) {
        self.feed_sink(piece, &mut on_frame);
    }

    /// [`Self::feed`] into a [`Sink`], which is offered each event that starts at an event
    /// boundary inside the piece before the framer reads it.
    pub fn feed_sink<S: Sink>(&mut self, piece: &[u8], on_frame: &mut S) {
        let mut pos = 0;
        if self.skip_lf && !piece.is_empty() {
            self.skip_lf = false;
            if piece[0] == b'\n' {
                pos = 1;
            }
        }
        let mut data = Data::Owned;
        // The most an offered event may carry: its line and its data must both fit.
        let max_data = self
            .max_event
            .min(self.max_line.saturating_sub(DATA_LINE.len()));
        while pos < piece.len() {
            let rest = &piece[pos..];
            // Idle means no data held, so none is borrowed from this piece either.
            if let Some(value) = rest.strip_prefix(DATA_LINE).filter(|_| self.is_idle()) {
                if let Some(n) = on_frame.claim(value, max_data) {
                    pos += DATA_LINE.len() + n;
                    continue;
                }
            }
            // The blank line that ends each event needs no search.
            let found = match rest[0] {
                b'\n' | b'\r' => Some(0),
                _ => memchr2(b'\n', b'\r', rest),
            };
            let Some(i) = found else {
                self.stash(rest);
                break;
            };
            let end = pos + i;
            if self.discarding {
                self.discarding = false;
            } else if self.carry.is_empty() {
                let line = &piece[pos..end];
                if line.len() > self.max_line {
                    self.lines_dropped += 1;
                } else {
                    self.line(line, true, &mut data, on_frame);
                }
            } else if self.carry.len() + i > self.max_line {
                self.carry.clear();
                self.lines_dropped += 1;
            } else {
                let mut line = std::mem::take(&mut self.carry);
                line.extend_from_slice(&piece[pos..end]);
                // The joined line lives in our buffer, not in the piece: data held so far must be
                // owned before it can be joined with it.
                self.materialize(&mut data);
                self.line(&line, false, &mut Data::Owned, on_frame);
                line.clear();
                self.carry = line;
            }
            pos = end + 1;
            if piece[end] == b'\r' {
                if pos < piece.len() {
                    if piece[pos] == b'\n' {
                        pos += 1;
                    }
                } else {
                    self.skip_lf = true;
                }
            }
        }
        self.materialize(&mut data);
    }

    /// At an event boundary with nothing of an event held: no partial line, no data or event
    /// name, not past the first line (whose BOM the framer strips).
    fn is_idle(&self) -> bool {
        self.carry.is_empty()
            && !self.discarding
            && !self.has_data
            && !self.event_overflow
            && self.event.is_empty()
            && !self.at_start
    }

    fn materialize(&mut self, data: &mut Data<'_>) {
        if let Data::Borrowed(d) = *data {
            self.data.extend_from_slice(d);
            *data = Data::Owned;
        }
    }

    /// Ends the input: an unfinished last line is taken as complete and a pending event is
    /// dispatched even without its blank line. The framer is then ready for a new stream.
    pub fn finish<F: FnMut(Frame<'_>)>(&mut self, mut on_frame: F) {
        if !self.carry.is_empty() && !self.discarding {
            let line = std::mem::take(&mut self.carry);
            self.line(&line, false, &mut Data::Owned, &mut on_frame);
        }
        self.line(b"", false, &mut Data::Owned, &mut on_frame);
        let (lines, events) = (self.lines_dropped, self.events_dropped);
        *self = Framer::new(self.max_line, self.max_event);
        self.lines_dropped = lines;
        self.events_dropped = events;
    }

    /// Keeps the unfinished tail of a piece, unless the line is already over the cap.
    fn stash(&mut self, rest: &[u8]) {
        if self.discarding {
            return;
        }
        if self.carry.len() + rest.len() > self.max_line {
            self.carry.clear();
            self.discarding = true;
            self.lines_dropped += 1;
        } else {
            self.carry.extend_from_slice(rest);
        }
    }

    /// Interprets one complete line. `borrowable` says whether `line` lives in the current piece
    /// (so its value may be handed out without a copy).
    fn line<'c, S: Sink>(
        &mut self,
        mut line: &'c [u8],
        borrowable: bool,
        data: &mut Data<'c>,
        on_frame: &mut S,
    ) {
        if self.at_start {
            self.at_start = false;
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(data, on_frame);
            return;
        }
        if line[0] == b':' {
            return;
        }
        // Nearly every line is `data:`, whose colon needs no search.
        let colon = if line.starts_with(b"data:") {
            Some(4)
        } else {
            memchr::memchr(b':', line)
        };
        let (field, value) = match colon {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => self.push_data(value, borrowable, data),
            b"event" => {
                self.event.clear();
                self.event
                    .extend_from_slice(&value[..value.len().min(MAX_EVENT_NAME)]);
            }
            _ => {}
        }
    }

    fn push_data<'c>(&mut self, value: &'c [u8], borrowable: bool, data: &mut Data<'c>) {
        if self.event_overflow {
            return;
        }
        let extra = usize::from(self.has_data);
        let held = match data {
            Data::Borrowed(d) => d.len(),
            Data::Owned => self.data.len(),
        };
        if held + extra + value.len() > self.max_event {
            self.event_overflow = true;
            self.data.clear();
            *data = Data::Owned;
            return;
        }
        if !self.has_data && borrowable {
            *data = Data::Borrowed(value);
        } else {
            self.materialize(data);
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
        }
        self.has_data = true;
    }

    fn dispatch<S: Sink>(&mut self, data: &mut Data<'_>, on_frame: &mut S) {
        if self.event_overflow {
            self.events_dropped += 1;
        } else if self.has_data {
            let d = match *data {
                Data::Borrowed(d) => d,
                Data::Owned => &self.data[..],
            };
            on_frame.frame(Frame {
                event: &self.event,
                data: d,
            });
        }
        *data = Data::Owned;
        self.data.clear();
        self.event.clear();
        self.has_data = false;
        self.event_overflow = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(pieces: &[&[u8]]) -> Vec<(String, String)> {
        let mut f = Framer::new(1 << 16, 1 << 16);
        let mut out = Vec::new();
        let mut push = |fr: Frame<'_>| {
            out.push((
                String::from_utf8_lossy(fr.event).into_owned(),
                String::from_utf8_lossy(fr.data).into_owned(),
            ))
        };
        for p in pieces {
            f.feed(p, &mut push);
        }
        f.finish(&mut push);
        out
    }

    fn all_splits(input: &[u8]) -> Vec<(String, String)> {
        let whole = frames(&[input]);
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let got = frames(&[&input[..i], &input[i..j], &input[j..]]);
                assert_eq!(got, whole, "split at {i},{j}");
            }
        }
        whole
    }

    fn ev(e: &str, d: &str) -> (String, String) {
        (e.to_owned(), d.to_owned())
    }

    #[test]
    fn line_ends_lf_crlf_cr() {
        for sep in ["\n", "\r\n", "\r"] {
            let s = format!("data: a{sep}{sep}data:b{sep}{sep}");
            assert_eq!(
                all_splits(s.as_bytes()),
                [ev("", "a"), ev("", "b")],
                "{sep:?}"
            );
        }
    }

    #[test]
    fn multiline_comments_event_and_unterminated_last_event() {
        let s =
            b": keep-alive\nevent: response.completed\ndata: x\ndata:  y\nid: 3\n\ndata: [DONE]";
        assert_eq!(
            all_splits(s),
            [ev("response.completed", "x\n y"), ev("", "[DONE]")]
        );
    }

    #[test]
    fn data_inside_content_is_not_a_boundary() {
        let s = b"data: {\"c\":\"data: x\\n\\ndata: y\"}\n\n";
        assert_eq!(all_splits(s), [ev("", "{\"c\":\"data: x\\n\\ndata: y\"}")]);
    }

    #[test]
    fn over_long_line_is_dropped_at_any_split() {
        let long = "x".repeat(40);
        let s = format!("data: {long}\n\ndata: ok\n\n");
        let run = |pieces: &[&[u8]]| {
            let mut f = Framer::new(16, 1 << 10);
            let mut out = Vec::new();
            for p in pieces {
                f.feed(p, |fr| out.push(fr.data.to_vec()));
            }
            f.finish(|fr| out.push(fr.data.to_vec()));
            (out, f.lines_dropped())
        };
        let b = s.as_bytes();
        let whole = run(&[b]);
        assert_eq!(whole, (vec![b"ok".to_vec()], 1));
        for i in 0..=b.len() {
            assert_eq!(run(&[&b[..i], &b[i..]]), whole, "split {i}");
        }
    }

    #[test]
    fn event_cap_drops_event() {
        let mut f = Framer::new(100, 10);
        let mut out = Vec::new();
        f.feed(b"data: 123456\ndata: 789012\n\ndata: ok\n\n", |fr| {
            out.push(fr.data.to_vec())
        });
        assert_eq!(out, [b"ok".to_vec()]);
        assert_eq!(f.events_dropped(), 1);
    }

    #[test]
    fn bom_and_empty_data() {
        assert_eq!(
            all_splits(b"\xEF\xBB\xBFdata: a\n\ndata\n\n"),
            [ev("", "a"), ev("", "")]
        );
    }

    /// A sink that claims every `{}` event records it as the framer would have dispatched it;
    /// claims happen only at event boundaries, so the frames are those of a plain closure.
    #[test]
    fn claims_only_whole_events_at_boundaries() {
        struct Claims(Vec<(String, String)>, usize);
        impl Sink for Claims {
            fn frame(&mut self, f: Frame<'_>) {
                self.0.push(ev(
                    &String::from_utf8_lossy(f.event),
                    &String::from_utf8_lossy(f.data),
                ));
            }
            fn claim(&mut self, value: &[u8], max_data: usize) -> Option<usize> {
                let end = event_end(value.strip_prefix(b"{}")?)?;
                (2 <= max_data).then_some(())?;
                self.0.push(ev("", "{}"));
                self.1 += 1;
                Some(2 + end)
            }
        }
        let input = b"data: {}\n\ndata: a\ndata: {}\n\nevent: x\ndata: {}\n\n: c\ndata: {}\r\n\r\ndata: {}\n\rdata: {}\n\n";
        let plain = all_splits(input);
        for i in 0..=input.len() {
            let mut f = Framer::new(1 << 16, 1 << 16);
            let mut sink = Claims(Vec::new(), 0);
            f.feed_sink(&input[..i], &mut sink);
            f.feed_sink(&input[i..], &mut sink);
            f.finish(|fr| sink.frame(fr));
            assert_eq!(sink.0, plain, "split {i}");
            if i == 0 {
                // Not the first line (a BOM may lead it), not after `data: a` or `event: x`,
                // not one ended by LF CR: the one after the comment, and the last.
                assert_eq!(sink.1, 2);
            }
        }
    }

    #[test]
    fn zero_copy_when_event_inside_piece() {
        let piece = b"data: hello\n\n";
        let mut f = Framer::new(100, 100);
        let mut ptr = None;
        f.feed(piece, |fr| ptr = Some(fr.data.as_ptr()));
        assert_eq!(ptr, Some(piece[6..].as_ptr()));
    }
}
