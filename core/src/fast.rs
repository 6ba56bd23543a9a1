//! A fast path for the common chunk: a chat-completion (or legacy completion) stream chunk
//! with text, tool-call fragments or usage. Walks the JSON once, checking what it skips as
//! strictly as the full decoder does, and hands back borrowed spans. Anything it does not expect
//! (errors, Responses API events, many choices or calls, surrogate escapes, escaped or
//! non-ASCII keys, trailing bytes) makes it decline, and the caller decodes the payload fully
//! with [`wire::decode`](crate::wire::decode) instead. It accepts only payloads the full decoder
//! accepts, and reads them the same way, so it changes speed, never records, on any bytes (the
//! `fast_vs_full` fuzz target compares the two paths).
//!
//! The same scanner gives `Meter::request` a quick check of a request body
//! ([`request_shape`]), which spares the full parse of a plain request until a prompt must be
//! counted.

use crate::request::Shape;
use crate::wire;

/// Deepest value the scanner skips; deeper ones go to the full decoder, which enforces
/// `Limits::max_json_depth`. Far below the default limit, far above real chunks (about 6).
pub(crate) const MAX_SKIP_DEPTH: usize = 64;

/// Offset of the first `"`, `\\` or control byte (below 0x20, which JSON forbids raw in
/// strings) in `s`, eight bytes at a time: strings here are mostly keys and short values.
/// With `NON_ASCII`, bytes from 0x80 stop the search too.
#[inline]
fn string_stop<const NON_ASCII: bool>(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(w) = s.get(i..i + 8) {
        let w = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let q = w ^ (LO * u64::from(b'"'));
        let b = w ^ (LO * u64::from(b'\\'));
        // A zero byte in `q` or `b`, or a byte below 0x20 in `w`, is a match; the lowest
        // flagged byte is always exact.
        let mut hit = (q.wrapping_sub(LO) & !q & HI)
            | (b.wrapping_sub(LO) & !b & HI)
            | (w.wrapping_sub(LO * 0x20) & !w & HI);
        if NON_ASCII {
            hit |= w & HI;
        }
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20 || (NON_ASCII && c >= 0x80))
        .map(|j| i + j)
}

/// Whether `v` is UTF-8 (most strings here are ASCII, which is cheaper to tell).
#[inline]
fn utf8(v: &[u8]) -> bool {
    v.is_ascii() || std::str::from_utf8(v).is_ok()
}

/// Length of the longest common prefix of `a` and `b`, thirty-two bytes at a time. The last
/// (partial) block is read as the final sixteen or eight bytes, overlapping bytes already found
/// equal, so a short remainder costs one comparison rather than a byte loop: a template's
/// runs are a few dozen bytes, and every fit ends on one.
#[inline]
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    #[inline(always)]
    fn w16(s: &[u8], i: usize) -> u128 {
        u128::from_le_bytes(s[i..i + 16].try_into().unwrap_or([0; 16]))
    }
    #[inline(always)]
    fn w8(s: &[u8], i: usize) -> u128 {
        u128::from(u64::from_le_bytes(s[i..i + 8].try_into().unwrap_or([0; 8])))
    }
    /// `at` plus the offset of the first set byte of `d` (the XOR of two words), or `None`
    /// when the words are equal.
    #[inline(always)]
    fn differs(at: usize, d: u128) -> Option<usize> {
        (d != 0).then(|| at + (d.trailing_zeros() / 8) as usize)
    }
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 32 <= n {
        let d0 = w16(a, i) ^ w16(b, i);
        let d1 = w16(a, i + 16) ^ w16(b, i + 16);
        if d0 | d1 != 0 {
            return differs(i, d0).or(differs(i + 16, d1)).unwrap_or(n);
        }
        i += 32;
    }
    if i + 16 <= n {
        if let Some(j) = differs(i, w16(a, i) ^ w16(b, i)) {
            return j;
        }
        i += 16;
    }
    if i == n {
        return n;
    }
    // Bytes before `i` are equal, so the first difference in an overlapping window is at or
    // after `i`.
    if n >= 16 {
        return differs(n - 16, w16(a, n - 16) ^ w16(b, n - 16)).unwrap_or(n);
    }
    if n >= 8 {
        return differs(i, w8(a, i) ^ w8(b, i))
            .or(differs(n - 8, w8(a, n - 8) ^ w8(b, n - 8)))
            .unwrap_or(n);
    }
    i + a[i..n]
        .iter()
        .zip(&b[i..n])
        .take_while(|(x, y)| x == y)
        .count()
}

/// Most choices after the first that one chunk may carry on the fast path.
const MAX_MORE_CHOICES: usize = 15;

/// What the fast path read from one chunk.
#[derive(Debug, Default)]
pub(crate) struct FastChunk<'a> {
    /// Raw (still escaped, quotes removed) spans of top-level metadata.
    pub id: Option<&'a [u8]>,
    pub model: Option<&'a [u8]>,
    pub object: Option<&'a [u8]>,
    pub system_fingerprint: Option<&'a [u8]>,
    pub created: Option<i64>,
    /// A non-null `usage`, read as the full decoder reads it.
    pub usage: Option<wire::Usage>,
    /// The choices: the first one inline (streams nearly always carry exactly one), the rest
    /// in `more`, so the common chunk allocates nothing.
    pub first: Option<FastChoice<'a>>,
    pub more: Vec<FastChoice<'a>>,
}

impl<'a> FastChunk<'a> {
    /// Every choice, in order.
    pub fn choices(&self) -> impl Iterator<Item = &FastChoice<'a>> {
        self.first.iter().chain(&self.more)
    }
}

#[derive(Debug, Default)]
pub(crate) struct FastChoice<'a> {
    pub index: i64,
    pub content: Option<&'a [u8]>,
    pub refusal: Option<&'a [u8]>,
    pub finish_reason: Option<&'a [u8]>,
    pub text: Option<&'a [u8]>,
    /// Tool-call fragments of `delta.tool_calls`: the first `n_calls` (a stream sends one per
    /// chunk; a chunk with more than fit declines).
    pub calls: [FastCall<'a>; 2],
    pub n_calls: usize,
}

impl<'a> FastChoice<'a> {
    /// The tool-call fragments, in order.
    pub fn calls(&self) -> &[FastCall<'a>] {
        &self.calls[..self.n_calls]
    }
}

/// One `delta.tool_calls` element that has a `function` object.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastCall<'a> {
    /// `index`, or the element's position when it is null or absent (the full decoder's rule).
    pub key: i64,
    pub name: Option<&'a [u8]>,
    pub arguments: Option<&'a [u8]>,
}

/// Reads `p` if it is a plain text chunk; `None` means "decode it fully". (The meter reads
/// through a [`Template`]; this is its reference.)
#[cfg(test)]
pub(crate) fn scan(p: &[u8]) -> Option<FastChunk<'_>> {
    let mut out = FastChunk::default();
    scan_noting(p, &mut out).map(|_| out)
}

/// [`scan`] into `out` (which must be fresh: the chunk is large, and moving it shows), plus
/// the spans of the strings it skipped as values (not inside skipped containers), which a
/// [`Template`] needs.
fn scan_noting<'a>(p: &'a [u8], out: &mut FastChunk<'a>) -> Option<Skipped> {
    let mut s = Scanner {
        p,
        i: 0,
        skipped: Skipped::default(),
    };
    s.ws();
    s.object(|s, key| {
        match key {
            b"choices" => {
                if !s.null() {
                    s.array(|s| {
                        let c = s.choice()?;
                        if out.first.is_none() {
                            out.first = Some(c);
                        } else if out.more.len() < MAX_MORE_CHOICES {
                            out.more.push(c);
                        } else {
                            // Many choices in one chunk: the full decoder's element budget rules.
                            return None;
                        }
                        Some(())
                    })?;
                }
            }
            b"id" => out.id = s.opt_value(Slot::Id)?,
            b"model" => out.model = s.opt_value(Slot::Model)?,
            b"object" => out.object = s.opt_value(Slot::Object)?,
            b"system_fingerprint" => out.system_fingerprint = s.opt_value(Slot::Fingerprint)?,
            b"created" => out.created = s.int()?,
            b"usage" => {
                if !s.null() {
                    out.usage = Some(s.usage()?);
                }
            }
            // Keys of Responses API events and error bodies: the full decoder reads them.
            b"error" | b"type" | b"response" | b"created_at" | b"status" | b"output" | b"delta"
            | b"output_index" | b"item" | b"message" | b"code" => return None,
            _ => s.skip()?,
        }
        Some(())
    })?;
    s.ws();
    (s.i == p.len()).then_some(s.skipped)
}

/// Strings skipped as whole values, as spans with their quotes, each with whether the full
/// decoder decodes it (so its UTF-8 must be checked); at most `N` kept.
#[derive(Default)]
struct Skipped {
    spans: [(u32, u32, bool); Skipped::N],
    len: usize,
    overflow: bool,
}

impl Skipped {
    const N: usize = 8;

    fn note(&mut self, start: usize, end: usize, decoded: bool) {
        match (
            self.spans.get_mut(self.len),
            u32::try_from(start),
            u32::try_from(end),
        ) {
            (Some(slot), Ok(s), Ok(e)) => {
                *slot = (s, e, decoded);
                self.len += 1;
            }
            _ => self.overflow = true,
        }
    }
}

/// Where a string value of a chunk goes in its [`FastChunk`].
#[derive(Clone, Copy, Debug)]
enum Slot {
    Id,
    Model,
    Object,
    Fingerprint,
    Content(usize),
    Refusal(usize),
    Finish(usize),
    Text(usize),
    CallName(usize, usize),
    CallArgs(usize, usize),
    /// A string the scanner skips.
    Skip,
    /// A string the scanner skips and the full decoder decodes (a tool call's `id`).
    SkipText,
}

impl Slot {
    /// Whether the fast path may take `v` (a string's raw body that `string_raw` accepted) as
    /// this slot's value; the scanner asks when it reads the value, the template when the value
    /// changed. Strings the full decoder decodes but the meter does not always decode (metadata
    /// it already knows, a tool call's `id`) must be UTF-8 here; and an `object` that may name
    /// a Responses API body (`"response"`, perhaps escaped) is left to the full decoder, which
    /// then reads `status` and `output` whether or not they are present.
    fn accepts(self, v: &[u8]) -> bool {
        match self {
            Slot::Object => utf8(v) && v != b"response" && !v.contains(&b'\\'),
            Slot::Id | Slot::Model | Slot::Fingerprint | Slot::SkipText => utf8(v),
            _ => true,
        }
    }
}

/// The shape of the last chunk the scanner read, with its string values as holes.
///
/// A stream repeats one chunk shape thousands of times, and only string values change
/// (the text, OpenAI's `obfuscation` padding). A payload that equals the template byte for
/// byte outside the holes, with a JSON string in each hole, is read exactly as the scanner
/// would read it: every decision the scanner makes depends on bytes outside string values,
/// and a changed string is checked with the same code (`string_raw`, then
/// [`Slot::accepts`]). So the match skips the walk and hands back the same [`FastChunk`], at
/// the cost of a few comparisons of unchanged bytes.
#[derive(Debug, Default)]
pub(crate) struct Template {
    bytes: Vec<u8>,
    /// Holes, ordered: spans of `bytes` with their quotes, and where each value goes.
    holes: Vec<(usize, usize, Slot)>,
    created: Option<i64>,
    /// Each choice's values outside the holes (index, tool-call keys), in order.
    choices: Vec<FastChoice<'static>>,
    /// `bytes` hold no CR or LF, so a payload that fits is one SSE line as it stands.
    single_line: bool,
}

impl Template {
    /// Most holes kept; a chunk with more string values is not templated.
    const MAX_HOLES: usize = 24;

    /// Reads `p` like [`scan`] into `out` (which must be fresh), from this template when `p`
    /// fits it, else by scanning, after which the template describes `p`. False when `p` is the
    /// full decoder's (`out` then holds nothing of use).
    pub(crate) fn scan<'a>(&mut self, p: &'a [u8], out: &mut FastChunk<'a>) -> bool {
        if self.fit(p, out) == Some(p.len()) {
            return true;
        }
        // A failed fit may have filled some of `out`.
        *out = FastChunk::default();
        self.scan_unfitted(p, out)
    }

    /// [`Self::scan`] of a `p` known not to fit the template.
    pub(crate) fn scan_unfitted<'a>(&mut self, p: &'a [u8], out: &mut FastChunk<'a>) -> bool {
        let Some(skipped) = scan_noting(p, out) else {
            return false;
        };
        self.learn(p, out, &skipped);
        true
    }

    fn learn(&mut self, p: &[u8], c: &FastChunk<'_>, skipped: &Skipped) {
        self.bytes.clear();
        self.holes.clear();
        self.choices.clear();
        // Sized once per meter for a typical chunk, not grown piece by piece.
        self.bytes.reserve(p.len().max(1024));
        self.holes.reserve(Self::MAX_HOLES + 1);
        if skipped.overflow || c.usage.is_some() {
            // A usage chunk comes once: not worth a template, and `fit` has no slot for it.
            return;
        }
        let base = p.as_ptr() as usize;
        // A value's span excludes its quotes; the hole includes them.
        let mut hole = |v: Option<&[u8]>, slot: Slot| {
            if let Some(v) = v {
                let start = v.as_ptr() as usize - base;
                self.holes.push((start - 1, start + v.len() + 1, slot));
            }
        };
        hole(c.id, Slot::Id);
        hole(c.model, Slot::Model);
        hole(c.object, Slot::Object);
        hole(c.system_fingerprint, Slot::Fingerprint);
        for (k, ch) in c.choices().enumerate() {
            hole(ch.content, Slot::Content(k));
            hole(ch.refusal, Slot::Refusal(k));
            hole(ch.finish_reason, Slot::Finish(k));
            hole(ch.text, Slot::Text(k));
            let mut shape = FastChoice {
                index: ch.index,
                n_calls: ch.n_calls,
                ..FastChoice::default()
            };
            for (j, call) in ch.calls().iter().enumerate() {
                hole(call.name, Slot::CallName(k, j));
                hole(call.arguments, Slot::CallArgs(k, j));
                shape.calls[j].key = call.key;
            }
            self.choices.push(shape);
        }
        for &(s, e, decoded) in &skipped.spans[..skipped.len] {
            self.holes.push((
                s as usize,
                e as usize,
                if decoded { Slot::SkipText } else { Slot::Skip },
            ));
        }
        if self.holes.len() > Self::MAX_HOLES {
            self.holes.clear();
            self.choices.clear();
            return;
        }
        self.holes.sort_unstable_by_key(|h| h.0);
        self.created = c.created;
        self.bytes.extend_from_slice(p);
        self.single_line = memchr::memchr2(b'\r', b'\n', p).is_none();
    }

    /// Reads the payload at the start of `rest` (an SSE line's value and whatever follows it)
    /// into `out` (which must be fresh) when it fits the template, returning its length: the
    /// payload then holds no CR or LF, and reads exactly as [`Self::scan`] would read it.
    pub(crate) fn fit_line<'a>(&self, rest: &'a [u8], out: &mut FastChunk<'a>) -> Option<usize> {
        if !self.single_line {
            return None;
        }
        self.fit(rest, out)
    }

    /// The start of `p` read through the template into `out` (which must be fresh): the length
    /// read, or `None` when it does not fit. Changed values are strings checked by the scanner's
    /// own code, so they hold no control bytes. In place: the chunk is large, and the common
    /// one is read in a few hundred instructions, so moves show.
    fn fit<'a>(&self, p: &'a [u8], out: &mut FastChunk<'a>) -> Option<usize> {
        if self.bytes.is_empty() {
            return None;
        }
        out.created = self.created;
        for (k, shape) in self.choices.iter().enumerate() {
            let mut c = FastChoice {
                index: shape.index,
                n_calls: shape.n_calls,
                ..FastChoice::default()
            };
            for (call, from) in c.calls.iter_mut().zip(&shape.calls) {
                call.key = from.key;
            }
            if k == 0 {
                out.first = Some(c);
            } else {
                out.more.push(c);
            }
        }
        let b = &self.bytes[..];
        // An equal run: template bytes from `t` equal payload bytes from `i`, up to template
        // offset `reach`. Holes that lie wholly in the run are taken as they are (a string's
        // end depends only on its bytes); only values that changed are searched, and a new
        // run is measured after each.
        let (mut t, mut i) = (0, 0);
        let mut reach = common_prefix(p, b);
        for &(start, end, slot) in &self.holes {
            let v = if end <= reach {
                p.get(i + (start - t) + 1..i + (end - t) - 1)?
            } else {
                // The bytes before the value, and its opening quote, must be the template's.
                if reach <= start {
                    return None;
                }
                let mut s = Scanner {
                    p,
                    i: i + (start - t),
                    skipped: Skipped::default(),
                };
                let v = s.string_raw()?;
                if !slot.accepts(v) {
                    return None;
                }
                (t, i) = (end, s.i);
                reach = end + common_prefix(p.get(i..)?, b.get(end..)?);
                v
            };
            let v = Some(v);
            match slot {
                Slot::Id => out.id = v,
                Slot::Model => out.model = v,
                Slot::Object => out.object = v,
                Slot::Fingerprint => out.system_fingerprint = v,
                Slot::Content(k)
                | Slot::Refusal(k)
                | Slot::Finish(k)
                | Slot::Text(k)
                | Slot::CallName(k, _)
                | Slot::CallArgs(k, _) => {
                    let c = if k == 0 {
                        out.first.as_mut()?
                    } else {
                        out.more.get_mut(k - 1)?
                    };
                    match slot {
                        Slot::Content(_) => c.content = v,
                        Slot::Refusal(_) => c.refusal = v,
                        Slot::Finish(_) => c.finish_reason = v,
                        Slot::CallName(_, j) => c.calls.get_mut(j)?.name = v,
                        Slot::CallArgs(_, j) => c.calls.get_mut(j)?.arguments = v,
                        _ => c.text = v,
                    }
                }
                Slot::Skip | Slot::SkipText => {}
            }
        }
        // The last run was measured to its end: it reaches the template's end exactly when the
        // bytes after the last hole are the template's.
        (reach == b.len()).then_some(i + (b.len() - t))
    }
}

/// Keys seen in one object: a repeated key declines (the full decoder rejects duplicates), so
/// both paths agree on every input. Inline, no allocation: an object with more keys than fit
/// declines too. Keys are short and mostly of different lengths, so comparing them beats
/// hashing them.
struct Seen<'a> {
    keys: [&'a [u8]; 24],
    len: usize,
}

impl<'a> Seen<'a> {
    fn new() -> Self {
        Seen {
            keys: [&[]; 24],
            len: 0,
        }
    }

    #[inline]
    fn check(&mut self, key: &'a [u8]) -> Option<()> {
        if self.len == self.keys.len() || self.keys[..self.len].contains(&key) {
            return None;
        }
        self.keys[self.len] = key;
        self.len += 1;
        Some(())
    }
}

struct Scanner<'a> {
    p: &'a [u8],
    i: usize,
    skipped: Skipped,
}

impl<'a> Scanner<'a> {
    /// Skips JSON whitespace. Chunks rarely hold any, so the first byte is tested alone: every
    /// JSON whitespace byte is at most a space.
    #[inline]
    fn ws(&mut self) {
        if self.p.get(self.i).is_some_and(|&b| b > b' ') {
            return;
        }
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.p.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.p.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    #[inline]
    fn eat(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    fn null(&mut self) -> bool {
        if self.p[self.i..].starts_with(b"null") {
            self.i += 4;
            true
        } else {
            false
        }
    }

    /// A string's raw body (between the quotes, escapes untouched). Declines where the full
    /// decoder would reject the string (a raw control byte, an unknown escape, `\\u` without
    /// four hex digits) and on any surrogate escape, which the full decoder accepts in some
    /// places and rejects in others; UTF-8 is left to the callers that decode.
    // Always inlined: a fitted chunk calls it once or twice for a short string, and the call
    // itself (saving and restoring registers) was a sixth of its instructions.
    #[inline(always)]
    fn string_raw(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            self.i += string_stop::<false>(&self.p[self.i..])?;
            match self.p[self.i] {
                b'"' => {
                    let body = &self.p[start..self.i];
                    self.i += 1;
                    return Some(body);
                }
                b'\\' => match *self.p.get(self.i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                    b'u' => {
                        let hex = self.p.get(self.i + 2..self.i + 6)?;
                        let mut unit = 0u32;
                        for &c in hex {
                            unit = unit << 4 | char::from(c).to_digit(16)?;
                        }
                        if (0xD800..0xE000).contains(&unit) {
                            return None;
                        }
                        self.i += 6;
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
    }

    /// [`Self::opt_string`] for the value of `slot`, which it must accept ([`Slot::accepts`]).
    fn opt_value(&mut self, slot: Slot) -> Option<Option<&'a [u8]>> {
        let v = self.opt_string()?;
        v.is_none_or(|v| slot.accepts(v)).then_some(v)
    }

    /// A string or `null`; any other value declines.
    fn opt_string(&mut self) -> Option<Option<&'a [u8]>> {
        if self.null() {
            return Some(None);
        }
        if self.peek()? != b'"' {
            return None;
        }
        self.string_raw().map(Some)
    }

    /// A small non-negative integer or `null`.
    fn int(&mut self) -> Option<Option<i64>> {
        if self.null() {
            return Some(None);
        }
        let start = self.i;
        let mut v: i64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            v = v.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
            self.i += 1;
        }
        // JSON has no leading zeros; fractions and exponents are the full decoder's.
        let leading_zero = self.i - start > 1 && self.p[start] == b'0';
        if self.i == start || leading_zero || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(Some(v))
    }

    /// A `usage` object into the full decoder's own type, read as serde reads it: known keys
    /// hold a count or `null` (details: an object of those, or `null`), others are skipped.
    /// Declines on any count that is not a plain integer (negative, fractional, a string...),
    /// which the full decoder turns into [`wire::Count::Invalid`].
    fn usage(&mut self) -> Option<wire::Usage> {
        let mut u = wire::Usage::default();
        self.object(|s, key| {
            match key {
                b"prompt_tokens" => u.prompt_tokens = s.count()?,
                b"completion_tokens" => u.completion_tokens = s.count()?,
                b"total_tokens" => u.total_tokens = s.count()?,
                b"input_tokens" => u.input_tokens = s.count()?,
                b"output_tokens" => u.output_tokens = s.count()?,
                b"prompt_tokens_details" => u.prompt_tokens_details = s.details()?,
                b"completion_tokens_details" => u.completion_tokens_details = s.details()?,
                b"input_tokens_details" => u.input_tokens_details = s.details()?,
                b"output_tokens_details" => u.output_tokens_details = s.details()?,
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some(u)
    }

    /// One `*_tokens_details` object of [`Self::usage`], or `null`.
    fn details(&mut self) -> Option<Option<wire::Details>> {
        if self.null() {
            return Some(None);
        }
        let mut d = wire::Details::default();
        self.object(|s, key| {
            match key {
                b"cached_tokens" => d.cached_tokens = s.count()?,
                b"audio_tokens" => d.audio_tokens = s.count()?,
                b"image_tokens" => d.image_tokens = s.count()?,
                b"text_tokens" => d.text_tokens = s.count()?,
                b"cache_write_tokens" => d.cache_write_tokens = s.count()?,
                b"reasoning_tokens" => d.reasoning_tokens = s.count()?,
                b"accepted_prediction_tokens" => d.accepted_prediction_tokens = s.count()?,
                b"rejected_prediction_tokens" => d.rejected_prediction_tokens = s.count()?,
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some(Some(d))
    }

    /// A token count (a non-negative integer) or `null`.
    fn count(&mut self) -> Option<Option<wire::Count>> {
        Some(self.int()?.map(|v| wire::Count::Valid(v.unsigned_abs())))
    }

    /// Skips any value, checking it as strictly as the full decoder's skipping does (strings,
    /// numbers, literals, and containers with their colons and commas). Declines on anything
    /// it would reject, and on containers nested deeper than [`MAX_SKIP_DEPTH`].
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                let start = self.i;
                self.string_raw()?;
                self.skipped.note(start, self.i, false);
                Some(())
            }
            b'{' | b'[' => self.skip_container(),
            _ => self.scalar(),
        }
    }

    /// A container, walked without recursion: open containers as a bit stack (1 = object).
    fn skip_container(&mut self) -> Option<()> {
        let (mut depth, mut objects) = (0usize, 0u64);
        loop {
            // A value is expected here.
            self.ws();
            match self.peek()? {
                b'"' => {
                    self.string_raw()?;
                }
                open @ (b'{' | b'[') => {
                    if depth == MAX_SKIP_DEPTH {
                        return None;
                    }
                    self.i += 1;
                    self.ws();
                    if self.peek()? == open + 2 {
                        // `{}` or `[]` (`}` and `]` are two past their openers).
                        self.i += 1;
                    } else {
                        objects = (objects << 1) | u64::from(open == b'{');
                        depth += 1;
                        if open == b'{' {
                            self.key()?;
                        }
                        continue;
                    }
                }
                _ => self.scalar()?,
            }
            // After a value: a comma, or closers.
            loop {
                if depth == 0 {
                    return Some(());
                }
                self.ws();
                let in_object = objects & 1 == 1;
                match (self.next()?, in_object) {
                    (b',', true) => {
                        self.key()?;
                        break;
                    }
                    (b',', false) => break,
                    (b'}', true) | (b']', false) => {
                        objects >>= 1;
                        depth -= 1;
                    }
                    _ => return None,
                }
            }
        }
    }

    /// An object key and its colon, inside a skipped container.
    fn key(&mut self) -> Option<()> {
        self.ws();
        self.string_raw()?;
        self.ws();
        self.eat(b':')
    }

    /// `true`, `false`, `null` or a number, exactly as JSON writes them.
    #[inline]
    fn scalar(&mut self) -> Option<()> {
        let rest = &self.p[self.i..];
        let lit: &[u8] = match rest.first()? {
            b't' => b"true",
            b'f' => b"false",
            b'n' => b"null",
            _ => return self.number(),
        };
        rest.starts_with(lit).then(|| self.i += lit.len())
    }

    /// A number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        let rest = &self.p[self.i..];
        let digits = |i: usize| {
            rest.get(i..)
                .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count())
        };
        let mut i = usize::from(rest.first() == Some(&b'-'));
        let n = digits(i);
        if n == 0 || (n > 1 && rest[i] == b'0') {
            return None;
        }
        i += n;
        if rest.get(i) == Some(&b'.') {
            let n = digits(i + 1);
            if n == 0 {
                return None;
            }
            i += 1 + n;
        }
        if matches!(rest.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(rest.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let n = digits(i);
            if n == 0 {
                return None;
            }
            i += n;
        }
        self.i += i;
        Some(())
    }

    /// Walks an object, calling `field` with the scanner positioned at each value; `field` must
    /// consume the value. A repeated key declines.
    fn object<F: FnMut(&mut Self, &'a [u8]) -> Option<()>>(&mut self, mut field: F) -> Option<()> {
        let mut seen = Seen::new();
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            // The full decoder decodes these keys: escaped or non-ASCII ones are its to read.
            self.eat(b'"')?;
            let start = self.i;
            self.i += string_stop::<true>(&self.p[start..])?;
            (self.p[self.i] == b'"').then_some(())?;
            let key = &self.p[start..self.i];
            self.i += 1;
            self.ws();
            self.eat(b':')?;
            self.ws();
            seen.check(key)?;
            field(self, key)?;
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// Walks an array, calling `elem` at each element; `elem` must consume it.
    fn array<F: FnMut(&mut Self) -> Option<()>>(&mut self, mut elem: F) -> Option<()> {
        self.eat(b'[')?;
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            elem(self)?;
            self.ws();
            match self.next()? {
                b',' => continue,
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    fn choice(&mut self) -> Option<FastChoice<'a>> {
        let mut c = FastChoice::default();
        let mut has_index = false;
        let mut has_delta = false;
        self.object(|s, key| {
            match key {
                b"index" => {
                    c.index = s.int()??;
                    has_index = true;
                }
                b"delta" | b"message" => {
                    // The full decoder reads `delta` and ignores `message` when both appear.
                    if std::mem::replace(&mut has_delta, true) {
                        return None;
                    }
                    if !s.null() {
                        s.delta(&mut c)?;
                    }
                }
                b"finish_reason" => c.finish_reason = s.opt_string()?,
                b"text" => c.text = s.opt_string()?,
                _ => s.skip()?,
            }
            Some(())
        })?;
        // The full decoder defaults a missing index; keep that rule in one place.
        has_index.then_some(c)
    }

    /// One `tool_calls` element at position `pos`; declines one without a `function` object
    /// (the full decoder ignores it) and any `index` that is not a small integer or null.
    fn tool_call(&mut self, pos: i64) -> Option<FastCall<'a>> {
        let mut call = FastCall {
            key: pos,
            ..FastCall::default()
        };
        let mut has_function = false;
        self.object(|s, key| {
            match key {
                b"index" => {
                    if let Some(k) = s.int()? {
                        call.key = k;
                    }
                }
                // The full decoder decodes the id whatever its type (a number it cannot hold
                // rejects the chunk there): only a string or null is read here.
                b"id" if !s.null() => {
                    let start = s.i;
                    (s.peek()? == b'"').then_some(())?;
                    s.opt_value(Slot::SkipText)?;
                    s.skipped.note(start, s.i, true);
                }
                b"function" => {
                    if s.null() {
                        return None;
                    }
                    has_function = true;
                    s.object(|s, key| {
                        match key {
                            b"name" => call.name = s.opt_string()?,
                            b"arguments" => call.arguments = s.opt_string()?,
                            _ => s.skip()?,
                        }
                        Some(())
                    })?;
                }
                _ => s.skip()?,
            }
            Some(())
        })?;
        has_function.then_some(call)
    }

    fn delta(&mut self, c: &mut FastChoice<'a>) -> Option<()> {
        self.object(|s, key| {
            match key {
                b"content" => c.content = s.opt_string()?,
                b"refusal" => c.refusal = s.opt_string()?,
                b"tool_calls" => {
                    if !s.null() {
                        let mut pos = 0;
                        s.array(|s| {
                            let call = s.tool_call(pos)?;
                            *c.calls.get_mut(c.n_calls)? = call;
                            c.n_calls += 1;
                            pos += 1;
                            Some(())
                        })?;
                    }
                }
                b"function_call" => {
                    if !s.null() {
                        return None;
                    }
                }
                _ => s.skip()?,
            }
            Some(())
        })
    }
}

/// Longest number a request may hold for [`request_shape`]: the request's typed fields parse
/// numbers as `f64` and reject one out of its range, which takes over 300 digits (or a
/// positive exponent; a negative one only underflows, to zero at worst).
const MAX_REQUEST_NUMBER: usize = 300;

/// The [`Shape`] of a request body, read in one pass when the full parse
/// ([`Request::parse`](crate::request::Request::parse)) certainly accepts the body and would
/// give the same shape; `None` otherwise, and the caller parses. The pass checks every value as
/// strictly as the parse (UTF-8, strings, numbers, nesting within `max_depth` levels) and
/// declines on anything the parse's typed fields could still reject: a repeated key in any
/// object (the parse rejects a repeated known field), an escaped or non-ASCII key, a number
/// with a positive exponent or over [`MAX_REQUEST_NUMBER`] bytes, a surrogate escape. The
/// `request_parse` fuzz target compares the two.
pub(crate) fn request_shape(body: &[u8], max_depth: usize) -> Option<Shape<'_>> {
    use std::borrow::Cow;
    if !utf8(body) {
        return None;
    }
    // The object itself is one level.
    let inner = max_depth.min(MAX_SKIP_DEPTH).checked_sub(1)?;
    let mut s = Scanner {
        p: body,
        i: 0,
        skipped: Skipped::default(),
    };
    let mut shape = Shape::default();
    s.ws();
    s.object(|s, key| {
        let value = s.i;
        s.checked(inner)?;
        let v = &s.p[value..s.i];
        let string = v[0] == b'"';
        let present = v != b"null";
        match key {
            b"model" if string => match text(&v[1..v.len() - 1])? {
                Cow::Borrowed(m) => shape.model = Some(m),
                Cow::Owned(_) => return None,
            },
            b"messages" => shape.messages = present,
            b"prompt" => shape.prompt = present,
            b"input" => shape.input = present,
            b"encoding_format" => shape.embedding_options |= string,
            b"dimensions" => match v[0] {
                // A plain integer that fits in `i64`; other numbers are the parse's to judge.
                b'0'..=b'9' if v.len() <= 18 && v.iter().all(u8::is_ascii_digit) => {
                    shape.embedding_options = true;
                }
                b'-' | b'0'..=b'9' => return None,
                _ => {}
            },
            b"instructions" | b"previous_response_id" => shape.responses_fields |= string,
            _ => {}
        }
        Some(())
    })?;
    s.ws();
    (s.i == body.len()).then_some(shape)
}

impl Scanner<'_> {
    /// Any value of a request, for [`request_shape`]: containers may nest `depth` levels more.
    fn checked(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' => {
                let inner = depth.checked_sub(1)?;
                self.object(|s, _| s.checked(inner))
            }
            b'[' => {
                let inner = depth.checked_sub(1)?;
                self.array(|s| s.checked(inner))
            }
            b'"' => self.string_raw().map(drop),
            _ => {
                let start = self.i;
                self.scalar()?;
                let v = &self.p[start..self.i];
                if matches!(v[0], b't' | b'f' | b'n') {
                    return Some(());
                }
                // `temperature: 1e-8` is common; `1e400` is out of range.
                let exponent = v.iter().position(|&b| b | 0x20 == b'e');
                (v.len() <= MAX_REQUEST_NUMBER
                    && exponent.is_none_or(|e| v.get(e + 1) == Some(&b'-')))
                .then_some(())
            }
        }
    }
}

/// Decodes a raw string body (one `Scanner::string_raw` accepted): borrowed when it has no
/// escapes; `None` when it is not UTF-8 or an escape is invalid or a surrogate (the caller then
/// takes the full decoder, which decides).
pub(crate) fn text(raw: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    // The conversion checks UTF-8; escapes are ASCII, so checking the decoding is checking `raw`.
    match unescape(raw)? {
        Cow::Borrowed(b) => std::str::from_utf8(b).ok().map(Cow::Borrowed),
        Cow::Owned(v) => String::from_utf8(v).ok().map(Cow::Owned),
    }
}

/// [`text`] as bytes that are UTF-8, which spares a plain string the conversion to `str`.
pub(crate) fn text_bytes(raw: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    // Most stream text is a token or two of ASCII without escapes, which one short loop tells.
    if raw.len() <= 16 && raw.iter().all(|&b| b < 0x80 && b != b'\\') {
        return Some(std::borrow::Cow::Borrowed(raw));
    }
    if !utf8(raw) {
        return None;
    }
    unescape(raw)
}

/// `raw` with its JSON escapes decoded (borrowed when it has none); UTF-8 is the callers'.
/// Decoded here rather than by a JSON parser, which would need the body copied into quotes.
fn unescape(raw: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    use std::borrow::Cow;
    // Most stream text is a token or two: a plain loop beats setting up a vector search.
    let first = if raw.len() <= 16 {
        raw.iter().position(|&b| b == b'\\')
    } else {
        memchr::memchr(b'\\', raw)
    };
    let Some(mut at) = first else {
        return Some(Cow::Borrowed(raw));
    };
    let mut out = Vec::with_capacity(raw.len());
    let mut from = 0;
    loop {
        out.extend_from_slice(&raw[from..at]);
        let (c, len) = match *raw.get(at + 1)? {
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'/' => ('/', 2),
            b'b' => ('\u{8}', 2),
            b'f' => ('\u{c}', 2),
            b'n' => ('\n', 2),
            b'r' => ('\r', 2),
            b't' => ('\t', 2),
            b'u' => {
                let mut unit = 0u32;
                for &h in raw.get(at + 2..at + 6)? {
                    unit = unit << 4 | char::from(h).to_digit(16)?;
                }
                (char::from_u32(unit)?, 6) // `None` for a surrogate
            }
            _ => return None,
        };
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        from = at + len;
        match memchr::memchr(b'\\', &raw[from..]) {
            Some(j) => at = from + j,
            None => break,
        }
    }
    out.extend_from_slice(&raw[from..]);
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn fit<'a>(t: &Template, p: &'a [u8]) -> Option<FastChunk<'a>> {
        let mut out = FastChunk::default();
        (t.fit(p, &mut out) == Some(p.len())).then_some(out)
    }

    fn template_scan<'a>(t: &mut Template, p: &'a [u8]) -> Option<FastChunk<'a>> {
        let mut out = FastChunk::default();
        t.scan(p, &mut out).then_some(out)
    }

    /// One chunk from pieces a stream varies: the shape (key order, spacing, Azure or OpenAI
    /// layout), the index, and string values with escapes, quotes and non-ASCII text.
    fn chunk(shape: u8, index: u8, content: &str, fin: Option<&str>, pad: &str) -> Vec<u8> {
        let content = serde_json::to_string(content).unwrap();
        let fin = fin.map_or("null".to_owned(), |f| serde_json::to_string(f).unwrap());
        let pad = serde_json::to_string(pad).unwrap();
        let s = match shape % 7 {
            5 => format!(
                r#"{{"id":"c","object":"chat.completion.chunk","choices":[{{"index":{index},"delta":{{"tool_calls":[{{"index":0,"id":{pad},"type":"function","function":{{"name":"f","arguments":{content}}}}}]}},"finish_reason":{fin}}}]}}"#
            ),
            6 => format!(
                r#"{{"choices":[{{"index":0,"delta":{{"role":"assistant","content":null,"tool_calls":[{{"function":{{"arguments":{content}}}}},{{"index":{index},"function":{{"name":{pad}}}}}]}}}}]}}"#
            ),
            0 => format!(
                r#"{{"id":"chatcmpl-1","object":"chat.completion.chunk","created":17,"model":"gpt-4o","system_fingerprint":"fp_1","choices":[{{"index":{index},"delta":{{"content":{content}}},"logprobs":null,"finish_reason":{fin}}}],"obfuscation":{pad}}}"#
            ),
            1 => format!(
                r#"{{"choices":[{{"content_filter_results":{{"hate":{{"filtered":false,"severity":"safe"}}}},"delta":{{"content":{content}}},"finish_reason":{fin},"index":{index},"logprobs":null}}],"created":17,"id":"chatcmpl-1","model":"gpt-4o","object":"chat.completion.chunk","system_fingerprint":"fp_1"}}"#
            ),
            2 => format!(
                r#"{{ "id" : "x", "choices" : [ {{ "index" : {index}, "delta" : {{ "content" : {content}, "refusal" : null }} }}, {{ "index" : 1, "delta" : {{ "refusal" : {pad} }} }} ] }}"#
            ),
            3 => format!(
                r#"{{"id":"x","choices":[{{"index":{index},"text":{content},"finish_reason":{fin}}}],"model":{pad}}}"#
            ),
            _ => format!(
                r#"{{"id":"x","choices":[{{"index":{index},"delta":{{"content":{content}}}}}],"usage":null,"x":[{pad},{{"y":{content}}}]}}"#
            ),
        };
        s.into_bytes()
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                "a", " ", "\"", "\\", "\n", "é", "😀", "\u{1}", "}", "],", "\"x\":1",
            ]),
            0..6,
        )
        .prop_map(|v| v.concat())
    }

    #[test]
    fn the_next_chunk_of_a_stream_fits_the_template() {
        // Shape 4 repeats the text inside a skipped container, where it is not a hole.
        for shape in 0..4 {
            let mut t = Template::default();
            assert!(fit(&t, &chunk(shape, 0, "Hello", None, "ab")).is_none());
            template_scan(&mut t, &chunk(shape, 0, "Hello", None, "ab")).unwrap();
            let next = chunk(shape, 0, " wo\"rld\n", None, "abcdef");
            let c = fit(&t, &next).expect("fits");
            assert_eq!(format!("{:?}", Some(c)), format!("{:?}", scan(&next)));
            // Another index is another shape.
            assert!(fit(&t, &chunk(shape, 1, "x", None, "ab")).is_none());
        }
    }

    proptest! {
        /// Escapes are decoded as the full decoder decodes them: any body the scanner accepts
        /// decodes alike, and a body the full decoder rejects is declined.
        #[test]
        fn text_decodes_like_the_full_decoder(
            pieces in prop::collection::vec(prop_oneof![
                Just("\\\"".to_owned()), Just("\\\\".to_owned()), Just("\\/".to_owned()),
                Just("\\b\\f\\n\\r\\t".to_owned()), Just("\\u".to_owned()), Just("\\x".to_owned()), Just("\\".to_owned()),
                Just("é東😀".to_owned()), Just("\u{1}".to_owned()), "[a-f0-9A-F]{1,5}",
                (0u32..0x1_0000).prop_map(|u| format!("\\u{u:04x}")),
                (0u32..0x1_0000).prop_map(|u| format!("\\u{u:04X}")),
            ], 0..12),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut raw = pieces.concat().into_bytes();
            // Sometimes not UTF-8: cut inside the last character.
            if raw.last().is_some_and(|&b| b >= 0x80) {
                raw.truncate(cut.index(raw.len()).max(raw.len() - 1));
            }
            let mut s = Scanner { p: &[b"\"", &raw[..], b"\""].concat(), i: 0, skipped: Skipped::default() };
            if s.string_raw().is_some_and(|v| v.len() == raw.len()) {
                let full = serde_json::from_slice::<String>(s.p).ok();
                prop_assert_eq!(text(&raw).map(|t| t.into_owned()), full.clone());
                prop_assert_eq!(text_bytes(&raw).map(|t| t.into_owned()), full.map(String::into_bytes));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Reading through the template gives what a fresh scan gives, chunk after chunk,
        /// including on bytes that are cut, or edited outside string values.
        #[test]
        fn template_reads_like_a_scan(
            steps in prop::collection::vec(
                (0u8..7, 0u8..3, text_strategy(), prop::option::of(text_strategy()), text_strategy(), 0usize..400, any::<u8>(), 0u8..4),
                1..24,
            )
        ) {
            let mut t = Template::default();
            for (shape, index, content, fin, pad, at, byte, edit) in steps {
                let mut p = chunk(shape, index, &content, fin.as_deref(), &pad);
                match edit {
                    0 => {}
                    1 => p.truncate(at.min(p.len())),
                    2 => { let k = at % p.len(); p[k] = byte; }
                    _ => { let k = at % (p.len() + 1); p.insert(k, byte); }
                }
                let want = format!("{:?}", scan(&p));
                let got = format!("{:?}", template_scan(&mut t, &p));
                prop_assert_eq!(got, want, "{}", String::from_utf8_lossy(&p));
            }
        }
    }

    #[test]
    fn common_prefix_finds_the_first_difference() {
        let naive = |a: &[u8], b: &[u8]| a.iter().zip(b).take_while(|(x, y)| x == y).count();
        for len in 0..100 {
            let a: Vec<u8> = (0..len as u8).collect();
            // Equal, one slice shorter, and a difference at every position.
            assert_eq!(common_prefix(&a, &a), len);
            for cut in 0..len {
                assert_eq!(common_prefix(&a, &a[..cut]), cut);
                assert_eq!(common_prefix(&a[..cut], &a), cut);
            }
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 0x80;
                // A later difference must not hide the first.
                if at + 3 < len {
                    b[at + 3] ^= 1;
                }
                assert_eq!(common_prefix(&a, &b), at, "len {len}, at {at}");
                assert_eq!(common_prefix(&b, &a), naive(&b, &a));
            }
        }
    }

    #[test]
    fn string_stop_finds_the_first() {
        for len in 0..150 {
            for at in 0..=len {
                for c in [b'"', b'\\', 0x00, 0x1F] {
                    let mut v = vec![b'a'; len];
                    v.extend_from_slice(b"xy");
                    if at < len {
                        v[at] = c;
                        // A later match and high bytes must not confuse the search.
                        if at + 1 < len {
                            v[at + 1] = b'"';
                        }
                        if at > 0 {
                            v[at - 1] = 0xE9;
                        }
                        if at > 1 {
                            v[at - 2] = b' ';
                        }
                    }
                    let want = v.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
                    assert_eq!(string_stop::<false>(&v), want, "len {len} at {at}");
                    let want = v
                        .iter()
                        .position(|&b| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b));
                    assert_eq!(string_stop::<true>(&v), want, "len {len} at {at}, keys");
                }
            }
        }
    }

    #[test]
    fn reads_plain_chunks_and_declines_the_rest() {
        let c = scan(br#"{"id":"x","object":"chat.completion.chunk","created":17,"model":"gpt-4o","system_fingerprint":null,"choices":[{"index":0,"delta":{"content":"Hi\n","refusal":null},"logprobs":null,"finish_reason":null}],"obfuscation":"k"}"#).unwrap();
        assert_eq!(c.model, Some(&b"gpt-4o"[..]));
        assert_eq!(c.created, Some(17));
        let first = c.choices().next().unwrap();
        assert_eq!(first.content, Some(&br"Hi\n"[..]));
        assert_eq!(text(first.content.unwrap()).unwrap(), "Hi\n");
        for declined in [
            &br#"{"choices":[],"usage":"many"}"#[..],
            br#"{"choices":[],"usage":{"prompt_tokens":1]}"#,
            br#"{"choices":[],"x":[{"y":1]}]}"#,
            br#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}"#,
            br#"{"error":{"message":"x"}}"#,
            br#"{"type":"response.output_text.delta","delta":"x"}"#,
            br#"{"choices":[{"delta":{"content":"x"}}]}"#,
            br#"{"choices":[]} x"#,
            br#"{"choices":[{"index":0,"delta":{"content":"x"}}]"#,
            br#"{"a":tru}"#,
            br#"{"choices":[{"index":0,"delta":{"content":"a","content":"b"}}]}"#,
            br#"{"choices":[{"index":0,"delta":{"content":"a"},"message":{"content":"b"}}]}"#,
        ] {
            assert!(
                scan(declined).is_none(),
                "{}",
                String::from_utf8_lossy(declined)
            );
        }
        assert!(scan(br#"{"choices":[],"usage":null,"x":[1,{"y":"]"}]}"#).is_some());
        // What the full decoder rejects, or decodes where the scanner would not look.
        let chunk = |tail: &[u8]| {
            [
                &br#"{"choices":[{"index":0,"delta":{"content":"a"}}],"#[..],
                tail,
                b"}",
            ]
            .concat()
        };
        for declined in [
            &b"\"x\":\"a\x01b\""[..],
            br#""x":"a\qb""#,
            br#""x":"a\u12G4""#,
            br#""x":"\ud83d\ude00""#,
            br#""x":01"#,
            br#""x":-"#,
            br#""x":1."#,
            br#""x":1e"#,
            br#""x":tru"#,
            br#""x":{"a" 1}"#,
            br#""x":{"a":1,}"#,
            br#""x":[1,]"#,
            br#""x":[1 2]"#,
            br#""x":{1:2}"#,
            br#""x":{"a":1]"#,
            br#""\u0078":1"#,
            "\"é\":1".as_bytes(),
            b"\"id\":\"\xff\"",
        ] {
            let p = chunk(declined);
            assert!(scan(&p).is_none(), "{}", String::from_utf8_lossy(&p));
        }
        let call = b"{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"\xff\",\"function\":{\"arguments\":\"{\"}}]}}]}";
        assert!(scan(call).is_none());
        for accepted in [
            &br#""x":"a\"\\\/\b\f\n\r\t\u00e9b""#[..],
            br#""x":[-0,0.5,-1.25e+3,1E-2,true,false,null,{},[],{"a":[{}]}]"#,
            br#""x" : { "a" : [ 1 , "b" ] }"#,
            b"\"x\":\"\xff\"",
        ] {
            let p = chunk(accepted);
            assert!(scan(&p).is_some(), "{}", String::from_utf8_lossy(&p));
        }
        let u =
            scan(br#"{"choices":[],"usage":{"prompt_tokens":1,"d":{"x":"}"}},"obfuscation":"a"}"#)
                .unwrap();
        assert_eq!(
            u.usage,
            Some(wire::Usage {
                prompt_tokens: Some(wire::Count::Valid(1)),
                ..Default::default()
            })
        );
    }

    /// Usage is read as the full decoder reads it, or declined: every field, nulls, unknown
    /// keys and details, and the values only the full decoder reads.
    #[test]
    fn usage_reads_like_the_full_decoder() {
        let full = |u: &str| serde_json::from_str::<wire::Usage>(u).ok();
        for u in [
            r#"{}"#,
            r#"{"prompt_tokens":12,"completion_tokens":4000,"total_tokens":4012,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}"#,
            r#"{"input_tokens":5,"output_tokens":7,"input_tokens_details":{"cached_tokens":1,"image_tokens":2,"text_tokens":3,"cache_write_tokens":4},"output_tokens_details":{"reasoning_tokens":6}}"#,
            r#"{ "prompt_tokens" : null , "total_tokens" : 9223372036854775807 , "prompt_tokens_details" : null , "x" : [ {"y":"}"} ] }"#,
            r#"{"completion_tokens_details":{},"prompt_tokens_details":{"cached_tokens":null,"z":{"w":1}}}"#,
        ] {
            let c = scan(format!(r#"{{"choices":[],"usage":{u}}}"#).as_bytes()).map(|c| c.usage);
            assert_eq!(c, Some(full(u)), "{u}");
        }
        // Every field is set by some case above: destructured without `..`, so a field added
        // to the wire types fails to compile here until the scanner reads it too.
        let wire::Usage {
            prompt_tokens: _,
            completion_tokens: _,
            total_tokens: _,
            prompt_tokens_details: _,
            completion_tokens_details: _,
            input_tokens: _,
            output_tokens: _,
            input_tokens_details: _,
            output_tokens_details: _,
        } = wire::Usage::default();
        let wire::Details {
            cached_tokens: _,
            audio_tokens: _,
            image_tokens: _,
            text_tokens: _,
            cache_write_tokens: _,
            reasoning_tokens: _,
            accepted_prediction_tokens: _,
            rejected_prediction_tokens: _,
        } = wire::Details::default();
        // The full decoder's to read (counts that are not plain integers, escaped or repeated
        // keys, or not an object).
        for u in [
            r#"{"prompt_tokens":-1}"#,
            r#"{"prompt_tokens":1.0}"#,
            r#"{"prompt_tokens":1e3}"#,
            r#"{"prompt_tokens":"1"}"#,
            r#"{"prompt_tokens":01}"#,
            r#"{"prompt_tokens":9223372036854775808}"#,
            r#"{"prompt_tokens_details":{"cached_tokens":true}}"#,
            r#"{"prompt_tokens_details":[]}"#,
            r#"{"prompt\u005ftokens":1}"#,
            r#"{"prompt_tokens":1,"prompt_tokens":2}"#,
            r#"{"prompt_tokens_details":{"cached_tokens":1,"cached_tokens":1}}"#,
            r#"[]"#,
            r#""many""#,
        ] {
            assert!(
                scan(format!(r#"{{"choices":[],"usage":{u}}}"#).as_bytes()).is_none(),
                "{u}"
            );
        }
    }

    proptest! {
        /// Random usage objects (every known key, unknown and near-miss keys, counts the scanner
        /// reads or declines, nested values, whitespace, repeats), next to no choice or one: what
        /// the scanner reads is what the full decoder reads.
        #[test]
        fn random_usage_reads_like_the_full_decoder(
            kv in prop::collection::vec((
                prop::sample::select(vec![
                    "prompt_tokens", "completion_tokens", "total_tokens", "input_tokens", "output_tokens",
                    "prompt_tokens_details", "completion_tokens_details", "input_tokens_details",
                    "output_tokens_details", "cached_tokens", "reasoning_tokens", "x", "Prompt_tokens",
                ]),
                prop::sample::select(vec![
                    "0", "7", "-0", "-1", "1.0", "1e2", "null", "true", "\"x\"", "{}", "[]", "[1,{\"a\":\"}\"}]",
                    "9223372036854775807", "9223372036854775808", "18446744073709551616", "00",
                    "{\"cached_tokens\":3,\"audio_tokens\":null,\"y\":{}}", "{\"cached_tokens\":-0}",
                ]),
                prop::sample::select(vec!["", " ", "\n\t"]),
            ), 0..6),
            with_choice in any::<bool>(),
        ) {
            let u = kv.iter().map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}{w}")).collect::<Vec<_>>().join(",");
            let ch = if with_choice { r#"{"index":0,"delta":{"content":"a"}}"# } else { "" };
            let p = format!(r#"{{"choices":[{ch}],"usage":{{{u}}}}}"#);
            if let Some(c) = scan(p.as_bytes()) {
                let full = wire::decode(p.as_bytes()).map(|m| m.usage).map_err(|e| e.to_string());
                prop_assert_eq!(Ok(c.usage), full, "{}", p);
            }
        }
    }

    /// Whether the full parse accepts `p` within `depth` levels and reads `shape` from it.
    fn parse_gives(p: &[u8], depth: usize, shape: Shape<'_>) -> bool {
        !crate::json_scan::nests_deeper_than(p, depth)
            && crate::request::Request::parse(p).is_ok_and(|r| r.shape() == shape)
    }

    #[test]
    fn request_shape_reads_plain_requests_and_declines_the_rest() {
        fn shape(p: &str) -> Option<Shape<'_>> {
            request_shape(p.as_bytes(), 64)
        }
        let s = shape(r#" {"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"hi \u00e9"}]}],"temperature":0.7,"n":1,"stream":true} "#).unwrap();
        assert_eq!(s.model, Some("gpt-4o"));
        assert_eq!(s.endpoint(), Some(crate::Endpoint::ChatCompletions));
        let s = shape(r#"{"input":["a"],"model":"m","dimensions":256}"#).unwrap();
        assert_eq!(s.endpoint(), Some(crate::Endpoint::Embeddings));
        let s = shape(r#"{"input":"a","dimensions":"256","encoding_format":null}"#).unwrap();
        assert_eq!(s.endpoint(), Some(crate::Endpoint::Responses));
        assert_eq!(
            shape(r#"{"messages":null,"model":7}"#).unwrap(),
            Shape::default()
        );
        assert!(shape(r#"{"stream":true,"echo":false,"user":null,"top_p":-1.5}"#).is_some());
        assert!(shape(r#"{"temperature":1e-8,"top_p":-2.5E-400}"#).is_some());
        for declined in [
            r#"{"model":"a","model":"b"}"#,
            r#"{"messages":[{"role":"user","content":"a","content":"b"}]}"#,
            r#"{"tools":[{"x":1,"x":2}]}"#,
            r#"{"n":1e400}"#,
            r#"{"temperature":1E0}"#,
            r#"{"temperature":1e+2}"#,
            r#"{"dimensions":-1}"#,
            r#"{"dimensions":1.0}"#,
            r#"{"dimensions":9223372036854775808}"#,
            r#"{"model":"gpt\u002d4o"}"#,
            r#"{"mod\u0065l":"x"}"#,
            r#"{"messages":[{"content":"\ud83d\ude00"}]}"#,
            r#"{"messages":[]} x"#,
            r#"{"messages":[]"#,
            r#"["model"]"#,
            "\x0c{}",
            r#"{"a":[[[[1]]]]}"#,
            r#"{"a":tru}"#,
        ] {
            assert_eq!(request_shape(declined.as_bytes(), 4), None, "{declined}");
        }
        assert_eq!(request_shape(b"{\"a\":\"\xff\"}", 64), None);
        let long = format!(r#"{{"n":{}}}"#, "9".repeat(MAX_REQUEST_NUMBER + 1));
        assert_eq!(request_shape(long.as_bytes(), 64), None);
        assert!(request_shape(br#"{"a":[[[1]]]}"#, 4).is_some());
    }

    /// Every request of the corpus: where the quick check reads one, the full parse reads the
    /// same shape; and it reads nearly all of them.
    #[test]
    fn request_shape_agrees_with_the_parse_on_the_corpus() {
        let (mut all, mut read) = (0, 0);
        for v in crate::corpus_records() {
            let Some(req) = v.get("request").filter(|r| !r.is_null()) else {
                continue;
            };
            let p = serde_json::to_vec(req).unwrap();
            all += 1;
            if let Some(s) = request_shape(&p, 64) {
                read += 1;
                assert!(parse_gives(&p, 64, s), "{s:?}");
            }
        }
        assert!(all > 1000, "{all} requests");
        assert!(read * 100 >= all * 95, "read {read} of {all} requests");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]
        /// Random requests (the keys that decide a shape, values of every kind and the odd ones
        /// the full parse rejects, repeats, whitespace), then cut, changed or added to at one
        /// byte: whatever the quick check reads, the full parse accepts and reads alike.
        #[test]
        fn request_shape_reads_like_the_parse(
            kv in prop::collection::vec((
                prop::sample::select(vec![
                    "model", "messages", "prompt", "input", "encoding_format", "dimensions",
                    "instructions", "previous_response_id", "stream_options", "n", "tools", "x",
                ]),
                prop::sample::select(vec![
                    "null", "true", "0", "-0", "7", "-1", "1.5", "1e2", "1E400", "256", "1e-8",
                    "-9.5E-999", "1e+2",
                    "9223372036854775807", "9223372036854775808", "00", "\"\"",
                    "\"gpt-4o\"", "\"text-embedding-3-small\"", "\"a\\u0041\"", "\"\\ud800\"",
                    "\"\\ud83d\\ude00\"", "\"\u{e9}\"", "\"\\x\"", "{}", "[]", "[1,{\"a\":\"}\"}]",
                    "[{\"role\":\"user\",\"content\":\"hi\"}]",
                    "[{\"role\":\"user\",\"content\":\"a\",\"content\":\"b\"}]",
                    "[{\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"u\",\"url\":\"v\"}}]}]",
                    "[{\"content\":[{\"type\":\"text\",\"text\":1e999}]}]",
                    "[{\"content\":[{\"type\":\"text\",\"text\":1e-999}]}]",
                    "[{\"tool_calls\":[{\"function\":{\"name\":\"f\",\"name\":\"g\"}}]}]",
                    "{\"include_usage\":true,\"include_usage\":false}",
                    "{\"a\":{\"b\":{\"c\":[[[]]]}}}",
                ]),
                prop::sample::select(vec!["", " ", "\n\t", "\r"]),
            ), 0..7),
            depth in 1usize..8,
            at in 0usize..600,
            byte in any::<u8>(),
            edit in 0u8..4,
        ) {
            let body = kv.iter().map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}{w}")).collect::<Vec<_>>().join(",");
            let mut p = format!("{{{body}}}").into_bytes();
            match edit {
                0 => {}
                1 => p.truncate(at.min(p.len())),
                2 => { let k = at % p.len(); p[k] = byte; }
                _ => { let k = at % (p.len() + 1); p.insert(k, byte); }
            }
            if let Some(s) = request_shape(&p, depth) {
                prop_assert!(parse_gives(&p, depth, s), "{:?} from {}", s, String::from_utf8_lossy(&p));
            }
        }
    }
}
