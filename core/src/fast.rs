//! A fast path for the common chunk: a chat-completion (or legacy completion) stream chunk that
//! carries text and no usage. Walks the JSON once, skipping every value it does not need with
//! `memchr`, and hands back borrowed spans. Anything it does not expect (usage, errors, tool
//! calls, escapes it cannot decode, trailing bytes) makes it decline, and the caller decodes
//! the payload fully with [`wire::decode`](crate::wire::decode) instead; so the fast path only
//! changes speed, never results, on valid JSON.

use memchr::memchr2;

/// Deepest value the scanner skips; deeper ones go to the full decoder, which enforces
/// `Limits::max_json_depth`. Far below the default limit, far above real chunks (about 6).
pub(crate) const MAX_SKIP_DEPTH: usize = 64;

/// Offset of the first `"` or `\\` in `s`. Strings here are mostly keys and short values, where
/// eight bytes at a time in a register beat setting up a vector search; past 64 bytes the
/// search goes to memchr.
#[inline]
fn quote_or_backslash(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(w) = s.get(i..i + 8) {
        if i == 64 {
            return memchr2(b'"', b'\\', &s[i..]).map(|j| i + j);
        }
        let w = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let q = w ^ (LO * u64::from(b'"'));
        let b = w ^ (LO * u64::from(b'\\'));
        // A zero byte in `q` or `b` is a match; the lowest flagged byte is always exact.
        let hit = (q.wrapping_sub(LO) & !q & HI) | (b.wrapping_sub(LO) & !b & HI);
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s[i..].iter().position(|&c| c == b'"' || c == b'\\').map(|j| i + j)
}

/// Offset of the first byte of `s` that matters when skipping a container: `"`, `{`, `}`, `[`
/// or `]`, eight bytes at a time (setting bit 5 maps `[` and `]` onto `{` and `}` and no other
/// byte onto them).
#[inline]
fn structural(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(w) = s.get(i..i + 8) {
        let w = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let folded = w | (LO * 0x20);
        let q = w ^ (LO * u64::from(b'"'));
        let o = folded ^ (LO * u64::from(b'{'));
        let c = folded ^ (LO * u64::from(b'}'));
        // A zero byte in `q`, `o` or `c` is a match; the lowest flagged byte is always exact.
        let hit = (q.wrapping_sub(LO) & !q & HI) | (o.wrapping_sub(LO) & !o & HI) | (c.wrapping_sub(LO) & !c & HI);
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s[i..].iter().position(|c| matches!(c, b'"' | b'{' | b'}' | b'[' | b']')).map(|j| i + j)
}

/// Length of the longest common prefix of `a` and `b`, sixteen bytes at a time.
#[inline]
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 16 <= n {
        let x = u128::from_le_bytes(a[i..i + 16].try_into().unwrap_or([0; 16]));
        let y = u128::from_le_bytes(b[i..i + 16].try_into().unwrap_or([0; 16]));
        if x != y {
            return i + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        i += 16;
    }
    i + a[i..n].iter().zip(&b[i..n]).take_while(|(x, y)| x == y).count()
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
    /// The raw JSON object of a non-null `usage`.
    pub usage: Option<&'a [u8]>,
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
    scan_noting(p).map(|(c, _)| c)
}

/// [`scan`], plus the spans of the strings it skipped as values (not inside skipped
/// containers), which a [`Template`] needs.
fn scan_noting(p: &[u8]) -> Option<(FastChunk<'_>, Skipped)> {
    let mut s = Scanner { p, i: 0, skipped: Skipped::default() };
    let mut out = FastChunk::default();
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
            b"id" => out.id = s.opt_string()?,
            b"model" => out.model = s.opt_string()?,
            b"object" => out.object = s.opt_string()?,
            b"system_fingerprint" => out.system_fingerprint = s.opt_string()?,
            b"created" => out.created = s.int()?,
            b"usage" => {
                if !s.null() {
                    // Kept as raw JSON: the meter decodes it with the full decoder's own
                    // `wire::Usage`, so the two paths read usage identically.
                    if s.peek()? != b'{' {
                        return None;
                    }
                    let start = s.i;
                    s.skip()?;
                    out.usage = Some(&p[start..s.i]);
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
    (s.i == p.len()).then_some((out, s.skipped))
}

/// Strings skipped as whole values, as spans with their quotes; at most `N` kept.
#[derive(Default)]
struct Skipped {
    spans: [(u32, u32); Skipped::N],
    len: usize,
    overflow: bool,
}

impl Skipped {
    const N: usize = 8;

    fn note(&mut self, start: usize, end: usize) {
        match (self.spans.get_mut(self.len), u32::try_from(start), u32::try_from(end)) {
            (Some(slot), Ok(s), Ok(e)) => {
                *slot = (s, e);
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
    Skip,
}

/// The shape of the last chunk the scanner read, with its string values as holes.
///
/// A stream repeats one chunk shape thousands of times, and only string values change
/// (the text, OpenAI's `obfuscation` padding). A payload that equals the template byte for
/// byte outside the holes, with a JSON string in each hole, is read exactly as the scanner
/// would read it: every decision the scanner makes depends on bytes outside string values,
/// and inside one it only looks for the closing quote, which the match does with the same
/// code. So the match skips the walk and hands back the same [`FastChunk`], at the cost of a
/// few comparisons of unchanged bytes.
#[derive(Debug, Default)]
pub(crate) struct Template {
    bytes: Vec<u8>,
    /// Holes, ordered: spans of `bytes` with their quotes, and where each value goes.
    holes: Vec<(usize, usize, Slot)>,
    created: Option<i64>,
    /// Each choice's values outside the holes (index, tool-call keys), in order.
    choices: Vec<FastChoice<'static>>,
}

impl Template {
    /// Most holes kept; a chunk with more string values is not templated.
    const MAX_HOLES: usize = 24;

    /// Reads `p` like [`scan`], from this template when `p` fits it, else by scanning, after
    /// which the template describes `p`.
    pub(crate) fn scan<'a>(&mut self, p: &'a [u8]) -> Option<FastChunk<'a>> {
        if let Some(c) = self.fit(p) {
            return Some(c);
        }
        let (c, skipped) = scan_noting(p)?;
        self.learn(p, &c, &skipped);
        Some(c)
    }

    fn learn(&mut self, p: &[u8], c: &FastChunk<'_>, skipped: &Skipped) {
        self.bytes.clear();
        self.holes.clear();
        self.choices.clear();
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
            let mut shape = FastChoice { index: ch.index, n_calls: ch.n_calls, ..FastChoice::default() };
            for (j, call) in ch.calls().iter().enumerate() {
                hole(call.name, Slot::CallName(k, j));
                hole(call.arguments, Slot::CallArgs(k, j));
                shape.calls[j].key = call.key;
            }
            self.choices.push(shape);
        }
        for &(s, e) in &skipped.spans[..skipped.len] {
            self.holes.push((s as usize, e as usize, Slot::Skip));
        }
        if self.holes.len() > Self::MAX_HOLES {
            self.holes.clear();
            self.choices.clear();
            return;
        }
        self.holes.sort_unstable_by_key(|h| h.0);
        self.created = c.created;
        self.bytes.extend_from_slice(p);
    }

    /// `p` read through the template, or `None` when it does not fit.
    fn fit<'a>(&self, p: &'a [u8]) -> Option<FastChunk<'a>> {
        if self.bytes.is_empty() {
            return None;
        }
        let mut out = FastChunk { created: self.created, ..FastChunk::default() };
        let mut choices: Vec<FastChoice<'a>> = Vec::new();
        let mut first = None;
        for (k, shape) in self.choices.iter().enumerate() {
            let mut c = FastChoice { index: shape.index, n_calls: shape.n_calls, ..FastChoice::default() };
            for (call, from) in c.calls.iter_mut().zip(&shape.calls) {
                call.key = from.key;
            }
            if k == 0 {
                first = Some(c);
            } else {
                choices.push(c);
            }
        }
        let (mut t, mut i) = (0, 0);
        // Bytes from `i` in `p` equal to those from `t` in the template, measured lazily: holes
        // that lie wholly in an equal run are taken as they are (a string's end depends only
        // on its bytes), so only the values that changed are searched.
        let mut same = 0;
        for &(start, end, slot) in &self.holes {
            if same < end - t {
                same = common_prefix(&p[i..], &self.bytes[t..]);
            }
            let fixed = start - t;
            if same < fixed + 1 {
                return None;
            }
            let v = if same >= end - t {
                let v = &p[i + fixed + 1..i + end - t - 1];
                (same, i) = (same - (end - t), i + end - t);
                v
            } else {
                let mut s = Scanner { p, i: i + fixed, skipped: Skipped::default() };
                let v = s.string_raw()?;
                (same, i) = (0, s.i);
                v
            };
            t = end;
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
                    let c = if k == 0 { first.as_mut()? } else { choices.get_mut(k - 1)? };
                    match slot {
                        Slot::Content(_) => c.content = v,
                        Slot::Refusal(_) => c.refusal = v,
                        Slot::Finish(_) => c.finish_reason = v,
                        Slot::CallName(_, j) => c.calls.get_mut(j)?.name = v,
                        Slot::CallArgs(_, j) => c.calls.get_mut(j)?.arguments = v,
                        _ => c.text = v,
                    }
                }
                Slot::Skip => {}
            }
        }
        if p.get(i..)? != &self.bytes[t..] {
            return None;
        }
        out.first = first;
        out.more = choices;
        Some(out)
    }
}

/// Keys seen in one object: a repeated key declines (the full decoder rejects duplicates), so
/// both paths agree on every input. Inline, no allocation: an object with more keys than fit
/// declines too.
#[derive(Default)]
struct Seen {
    hashes: [u64; 24],
    len: usize,
}

impl Seen {
    #[inline]
    fn check(&mut self, key: &[u8]) -> Option<()> {
        // FNV-1a: keys are short; a collision only sends a payload to the full decoder.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        let seen = &mut self.hashes[..self.len];
        if seen.contains(&h) || self.len == self.hashes.len() {
            return None;
        }
        self.hashes[self.len] = h;
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
    #[inline]
    fn ws(&mut self) {
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

    /// A string's raw body (between the quotes, escapes untouched).
    #[inline]
    fn string_raw(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            // Most strings here are keys and short values: a plain loop over the first bytes
            // beats setting up a vector search; longer strings go to memchr.
            let j = quote_or_backslash(&self.p[self.i..])?;
            self.i += j;
            if self.p[self.i] == b'\\' {
                self.i += 2;
                if self.i > self.p.len() {
                    return None;
                }
            } else {
                let body = &self.p[start..self.i];
                self.i += 1;
                return Some(body);
            }
        }
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
        if self.i == start || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(Some(v))
    }

    /// Skips any value. Declines on structure it cannot follow.
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                let start = self.i;
                self.string_raw()?;
                self.skipped.note(start, self.i);
                Some(())
            }
            b'{' | b'[' => {
                // Open containers as a bit stack (1 = object), so a bracket that closes the
                // wrong kind declines as the full decoder would reject it.
                let (mut depth, mut objects) = (0usize, 0u64);
                loop {
                    self.i += structural(&self.p[self.i..])?;
                    match self.next()? {
                        b'{' | b'[' if depth == MAX_SKIP_DEPTH => return None,
                        open @ (b'{' | b'[') => {
                            objects = (objects << 1) | u64::from(open == b'{');
                            depth += 1;
                        }
                        close @ (b'}' | b']') => {
                            if (objects & 1 == 1) != (close == b'}') {
                                return None;
                            }
                            objects >>= 1;
                            depth -= 1;
                            if depth == 0 {
                                return Some(());
                            }
                        }
                        _ => {
                            self.i -= 1;
                            self.string_raw()?;
                        }
                    }
                }
            }
            _ => {
                let start = self.i;
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                        break;
                    }
                    self.i += 1;
                }
                // Scalars must be what JSON allows, or the full decoder decides.
                let lit = &self.p[start..self.i];
                let ok = matches!(lit, b"true" | b"false" | b"null")
                    || (!lit.is_empty() && lit.iter().all(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')));
                ok.then_some(())
            }
        }
    }

    /// Walks an object, calling `field` with the scanner positioned at each value; `field` must
    /// consume the value. A repeated key declines.
    fn object<F: FnMut(&mut Self, &'a [u8]) -> Option<()>>(&mut self, mut field: F) -> Option<()> {
        let mut seen = Seen::default();
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            let key = self.string_raw()?;
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
        let mut call = FastCall { key: pos, ..FastCall::default() };
        let mut has_function = false;
        self.object(|s, key| {
            match key {
                b"index" => {
                    if let Some(k) = s.int()? {
                        call.key = k;
                    }
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

/// Decodes a raw string body: borrowed when it has no escapes; `None` when an escape is invalid
/// (the caller then takes the full decoder, which reports it).
pub(crate) fn text(raw: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    // Most stream text is a token or two: a plain loop beats setting up a vector search.
    let plain = if raw.len() <= 16 { !raw.contains(&b'\\') } else { memchr::memchr(b'\\', raw).is_none() };
    if plain {
        return std::str::from_utf8(raw).ok().map(std::borrow::Cow::Borrowed);
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice::<String>(&quoted).ok().map(std::borrow::Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// One chunk from pieces a stream varies: the shape (key order, spacing, Azure or OpenAI
    /// layout), the index, and string values with escapes, quotes and non-ASCII text.
    fn chunk(shape: u8, index: u8, content: &str, fin: Option<&str>, pad: &str) -> Vec<u8> {
        let content = serde_json::to_string(content).unwrap();
        let fin = fin.map_or("null".to_owned(), |f| serde_json::to_string(f).unwrap());
        let pad = serde_json::to_string(pad).unwrap();
        let s = match shape % 7 {
            5 => format!(r#"{{"id":"c","object":"chat.completion.chunk","choices":[{{"index":{index},"delta":{{"tool_calls":[{{"index":0,"id":{pad},"type":"function","function":{{"name":"f","arguments":{content}}}}}]}},"finish_reason":{fin}}}]}}"#),
            6 => format!(r#"{{"choices":[{{"index":0,"delta":{{"role":"assistant","content":null,"tool_calls":[{{"function":{{"arguments":{content}}}}},{{"index":{index},"function":{{"name":{pad}}}}}]}}}}]}}"#),
            0 => format!(r#"{{"id":"chatcmpl-1","object":"chat.completion.chunk","created":17,"model":"gpt-4o","system_fingerprint":"fp_1","choices":[{{"index":{index},"delta":{{"content":{content}}},"logprobs":null,"finish_reason":{fin}}}],"obfuscation":{pad}}}"#),
            1 => format!(r#"{{"choices":[{{"content_filter_results":{{"hate":{{"filtered":false,"severity":"safe"}}}},"delta":{{"content":{content}}},"finish_reason":{fin},"index":{index},"logprobs":null}}],"created":17,"id":"chatcmpl-1","model":"gpt-4o","object":"chat.completion.chunk","system_fingerprint":"fp_1"}}"#),
            2 => format!(r#"{{ "id" : "x", "choices" : [ {{ "index" : {index}, "delta" : {{ "content" : {content}, "refusal" : null }} }}, {{ "index" : 1, "delta" : {{ "refusal" : {pad} }} }} ] }}"#),
            3 => format!(r#"{{"id":"x","choices":[{{"index":{index},"text":{content},"finish_reason":{fin}}}],"model":{pad}}}"#),
            _ => format!(r#"{{"id":"x","choices":[{{"index":{index},"delta":{{"content":{content}}}}}],"usage":null,"x":[{pad},{{"y":{content}}}]}}"#),
        };
        s.into_bytes()
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec!["a", " ", "\"", "\\", "\n", "é", "😀", "\u{1}", "}", "],", "\"x\":1"]), 0..6)
            .prop_map(|v| v.concat())
    }

    #[test]
    fn the_next_chunk_of_a_stream_fits_the_template() {
        // Shape 4 repeats the text inside a skipped container, where it is not a hole.
        for shape in 0..4 {
            let mut t = Template::default();
            assert!(t.fit(&chunk(shape, 0, "Hello", None, "ab")).is_none());
            t.scan(&chunk(shape, 0, "Hello", None, "ab")).unwrap();
            let next = chunk(shape, 0, " wo\"rld\n", None, "abcdef");
            let c = t.fit(&next).expect("fits");
            assert_eq!(format!("{:?}", Some(c)), format!("{:?}", scan(&next)));
            // Another index is another shape.
            assert!(t.fit(&chunk(shape, 1, "x", None, "ab")).is_none());
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
                let got = format!("{:?}", t.scan(&p));
                prop_assert_eq!(got, want, "{}", String::from_utf8_lossy(&p));
            }
        }
    }

    #[test]
    fn quote_or_backslash_finds_the_first() {
        for len in 0..150 {
            for at in 0..=len {
                for c in [b'"', b'\\'] {
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
                    }
                    let want = v.iter().position(|&b| b == b'"' || b == b'\\');
                    assert_eq!(quote_or_backslash(&v), want, "len {len} at {at}");
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
            assert!(scan(declined).is_none(), "{}", String::from_utf8_lossy(declined));
        }
        assert!(scan(br#"{"choices":[],"usage":null,"x":[1,{"y":"]"}]}"#).is_some());
        let u = scan(br#"{"choices":[],"usage":{"prompt_tokens":1,"d":{"x":"}"}},"obfuscation":"a"}"#).unwrap();
        assert_eq!(u.usage, Some(&br#"{"prompt_tokens":1,"d":{"x":"}"}}"#[..]));
    }

    #[test]
    fn structural_finds_the_first() {
        for len in 0..40 {
            for at in 0..=len {
                for c in [b'"', b'{', b'}', b'[', b']'] {
                    // Bytes one bit away from the targets must not match.
                    let mut v: Vec<u8> = (0..len).map(|k| [b'a', b'{' ^ 0x20, b'}' ^ 0x01, 0x02, 0xFB][k % 5]).collect();
                    if at < len {
                        v[at] = c;
                    }
                    let want = v.iter().position(|b| matches!(b, b'"' | b'{' | b'}' | b'[' | b']'));
                    assert_eq!(structural(&v), want, "len {len} at {at} {}", c as char);
                }
            }
        }
    }
}
