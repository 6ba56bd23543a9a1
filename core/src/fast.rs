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

/// What the fast path read from one chunk.
#[derive(Debug, Default)]
pub(crate) struct FastChunk<'a> {
    /// Raw (still escaped, quotes removed) spans of top-level metadata.
    pub id: Option<&'a [u8]>,
    pub model: Option<&'a [u8]>,
    pub object: Option<&'a [u8]>,
    pub system_fingerprint: Option<&'a [u8]>,
    pub created: Option<i64>,
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
}

/// Reads `p` if it is a plain text chunk; `None` means "decode it fully".
pub(crate) fn scan(p: &[u8]) -> Option<FastChunk<'_>> {
    let mut s = Scanner { p, i: 0 };
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
                        } else {
                            out.more.push(c);
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
                    return None;
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
    (s.i == p.len()).then_some(out)
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
            let j = memchr2(b'"', b'\\', &self.p[self.i..])?;
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
            b'"' => self.string_raw().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.next()? {
                        b'{' | b'[' if depth == MAX_SKIP_DEPTH => return None,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(());
                            }
                        }
                        b'"' => {
                            self.i -= 1;
                            self.string_raw()?;
                        }
                        _ => {}
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

    fn delta(&mut self, c: &mut FastChoice<'a>) -> Option<()> {
        self.object(|s, key| {
            match key {
                b"content" => c.content = s.opt_string()?,
                b"refusal" => c.refusal = s.opt_string()?,
                b"tool_calls" | b"function_call" => {
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
    if memchr::memchr(b'\\', raw).is_none() {
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

    #[test]
    fn reads_plain_chunks_and_declines_the_rest() {
        let c = scan(br#"{"id":"x","object":"chat.completion.chunk","created":17,"model":"gpt-4o","system_fingerprint":null,"choices":[{"index":0,"delta":{"content":"Hi\n","refusal":null},"logprobs":null,"finish_reason":null}],"obfuscation":"k"}"#).unwrap();
        assert_eq!(c.model, Some(&b"gpt-4o"[..]));
        assert_eq!(c.created, Some(17));
        let first = c.choices().next().unwrap();
        assert_eq!(first.content, Some(&br"Hi\n"[..]));
        assert_eq!(text(first.content.unwrap()).unwrap(), "Hi\n");
        for declined in [
            &br#"{"choices":[],"usage":{"prompt_tokens":1}}"#[..],
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
    }
}
