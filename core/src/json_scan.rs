//! A lenient scanner for the top level of a JSON object, with byte offsets.
//!
//! Gateways need two things serde cannot give: the byte spans of top-level fields (to rewrite
//! one field and leave every other byte alone), and whatever can be read from an object that
//! was cut short (APIM truncates Event Hub messages at 200 KB). The scanner never panics and
//! never allocates beyond the field list; nesting depth is irrelevant because nested values are
//! skipped by counting brackets outside strings.

use std::borrow::Cow;
use std::ops::Range;

/// One top-level field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    /// The key, unescaped.
    pub key: Cow<'a, str>,
    /// Span of the key including its quotes.
    pub key_span: Range<usize>,
    /// Span of the value as it appears (for a cut value, up to the end of the input).
    pub value_span: Range<usize>,
    /// Whether the value ended properly (false when the input was cut inside it).
    pub complete: bool,
}

impl<'a> Field<'a> {
    /// The raw value bytes.
    pub fn raw<'b>(&self, input: &'b [u8]) -> &'b [u8] {
        &input[self.value_span.clone()]
    }
}

/// The top-level object's fields, in order, and whether the object was closed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Object<'a> {
    /// Fields in input order (duplicates kept).
    pub fields: Vec<Field<'a>>,
    /// Offset of the opening `{`.
    pub open: usize,
    /// Offset of the closing `}`, when the object was closed.
    pub close: Option<usize>,
}

impl<'a> Object<'a> {
    /// The last field named `key` (JSON's usual last-wins rule).
    pub fn get(&self, key: &str) -> Option<&Field<'a>> {
        self.fields.iter().rev().find(|f| f.key == key)
    }
}

/// Scans the top-level object of `input`. `None` when `input` does not start (after whitespace)
/// with `{`. A cut input gives the fields read so far; the last may be incomplete.
pub fn scan_object(input: &[u8]) -> Option<Object<'_>> {
    let mut i = skip_ws(input, 0);
    if input.get(i) != Some(&b'{') {
        return None;
    }
    let mut obj = Object {
        open: i,
        ..Object::default()
    };
    i += 1;
    loop {
        i = skip_ws(input, i);
        match input.get(i) {
            None => return Some(obj),
            Some(b'}') => {
                obj.close = Some(i);
                return Some(obj);
            }
            Some(b',') => {
                i += 1;
                continue;
            }
            Some(b'"') => {}
            Some(_) => return Some(obj),
        }
        let (key_end, key_ok) = string_end(input, i);
        if !key_ok {
            return Some(obj);
        }
        let key = unescape(&input[i + 1..key_end - 1]);
        let key_span = i..key_end;
        i = skip_ws(input, key_end);
        if input.get(i) != Some(&b':') {
            return Some(obj);
        }
        i = skip_ws(input, i + 1);
        let (end, complete) = value_end(input, i);
        obj.fields.push(Field {
            key,
            key_span,
            value_span: i..end,
            complete,
        });
        if !complete {
            return Some(obj);
        }
        i = end;
    }
}

fn skip_ws(input: &[u8], mut i: usize) -> usize {
    while i < input.len() && matches!(input[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// End (exclusive) of the string starting at `input[start] == '"'`, and whether it closed.
fn string_end(input: &[u8], start: usize) -> (usize, bool) {
    let mut i = start + 1;
    while i < input.len() {
        match memchr::memchr2(b'"', b'\\', &input[i..]) {
            None => return (input.len(), false),
            Some(j) => {
                i += j;
                if input[i] == b'\\' {
                    i += 2;
                } else {
                    return (i + 1, true);
                }
            }
        }
    }
    (input.len(), false)
}

/// End of the value starting at `start`, and whether it is complete.
fn value_end(input: &[u8], start: usize) -> (usize, bool) {
    match input.get(start) {
        None => (start, false),
        Some(b'"') => string_end(input, start),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = start;
            while i < input.len() {
                match input[i] {
                    b'"' => {
                        let (e, ok) = string_end(input, i);
                        if !ok {
                            return (input.len(), false);
                        }
                        i = e;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return (i + 1, true);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            (input.len(), false)
        }
        Some(_) => {
            let mut i = start;
            while i < input.len()
                && !matches!(input[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')
            {
                i += 1;
            }
            (i, i < input.len())
        }
    }
}

/// `b` as text, invalid UTF-8 replaced. Valid text (nearly all of it) is checked by
/// `str::from_utf8`, which reads ASCII a word at a time; `String::from_utf8_lossy` walks it a
/// byte at a time.
pub(crate) fn utf8_lossy(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}

/// Decodes the body of a JSON string (without quotes), leniently: an escape cut at the end or an
/// invalid escape is dropped, invalid UTF-8 is replaced.
pub fn unescape(body: &[u8]) -> Cow<'_, str> {
    if memchr::memchr(b'\\', body).is_none() {
        return utf8_lossy(body);
    }
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(&e) = body.get(i + 1) else { break };
        i += 2;
        match e {
            b'"' => out.push(b'"'),
            b'\\' => out.push(b'\\'),
            b'/' => out.push(b'/'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'u' => {
                let Some(cp) = hex4(body, i) else { break };
                i += 4;
                let c = if (0xD800..0xDC00).contains(&cp) {
                    match (body.get(i..i + 2), hex4(body, i + 2)) {
                        (Some(b"\\u"), Some(lo)) if (0xDC00..0xE000).contains(&lo) => {
                            i += 6;
                            char::from_u32(0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00))
                        }
                        _ => None,
                    }
                } else {
                    char::from_u32(cp)
                };
                let c = c.unwrap_or('\u{FFFD}');
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => {}
        }
    }
    // The vector is taken, not copied; invalid bytes are already known in the error case.
    Cow::Owned(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let s = b.get(i..i + 4)?;
    let s = std::str::from_utf8(s).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// The text of a string value given its raw span (quotes included; a cut string has no closing
/// quote).
pub fn string_value<'b>(raw: &'b [u8], complete: bool) -> Option<Cow<'b, str>> {
    let body = raw.strip_prefix(b"\"")?;
    let body = if complete {
        body.strip_suffix(b"\"").unwrap_or(body)
    } else {
        body
    };
    Some(unescape(body))
}

/// Whether `input` nests arrays and objects more than `limit` levels deep anywhere (brackets
/// inside strings do not count). Linear, no allocation; used to tell "too deep" apart from
/// "malformed" and to enforce a depth limit below the JSON reader's own.
pub fn nests_deeper_than(input: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'"' => {
                i = string_end(input, i).0;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_lossy_borrows_valid_text_and_replaces_the_rest() {
        for b in [&b""[..], b"plain", "caf\u{e9} \u{1F600}".as_bytes()] {
            assert!(matches!(utf8_lossy(b), Cow::Borrowed(s) if s.as_bytes() == b));
        }
        for b in [&b"a\xffb"[..], b"\xe2\x82", b"x\xed\xa0\x80y"] {
            assert_eq!(utf8_lossy(b), String::from_utf8_lossy(b));
        }
        assert_eq!(unescape(b"a\\u00e9\xff"), "a\u{e9}\u{FFFD}");
    }

    #[test]
    fn fields_and_spans() {
        let s = br#" {"a": 1, "b\"c":{"x":["}",2]}, "s":"q\u00e9\n" } "#;
        let o = scan_object(s).unwrap();
        let keys: Vec<_> = o.fields.iter().map(|f| f.key.as_ref()).collect();
        assert_eq!(keys, ["a", "b\"c", "s"]);
        assert_eq!(o.get("b\"c").unwrap().raw(s), br#"{"x":["}",2]}"#);
        let f = o.get("s").unwrap();
        assert_eq!(string_value(f.raw(s), f.complete).unwrap(), "qé\n");
        assert!(o.close.is_some());
    }

    #[test]
    fn cut_input_keeps_what_arrived() {
        let s = br#"{"eventTime":"2024","request":"{\"model\":\"gpt-4o\"}","response":"data: {\"a\":1}\n\ndata: {\"b"#;
        let o = scan_object(s).unwrap();
        assert!(o.close.is_none());
        let r = o.get("response").unwrap();
        assert!(!r.complete);
        assert_eq!(
            string_value(r.raw(s), false).unwrap(),
            "data: {\"a\":1}\n\ndata: {\"b"
        );
        assert_eq!(o.get("request").map(|f| f.complete), Some(true));
    }

    #[test]
    fn never_panics_on_prefixes() {
        let s = br#"{"a":"\ud83d\ude00\u12","b":[{"c":"\"]"}],"d":tru"#;
        for i in 0..=s.len() {
            let _ = scan_object(&s[..i]);
            let _ = unescape(&s[..i]);
        }
        assert_eq!(unescape(br"\ud83d\ude00"), "😀");
        assert_eq!(unescape(br"\ud83dx"), "\u{FFFD}x");
    }

    #[test]
    fn depth_counts_brackets_outside_strings() {
        assert!(!nests_deeper_than(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(nests_deeper_than(br#"{"a":[1,{"b":[2]}]}"#, 3));
        assert!(!nests_deeper_than(br#"{"a":"[[[[{{{{\"[["}"#, 1));
        assert!(!nests_deeper_than(b"", 0));
        assert!(nests_deeper_than(b"[", 0));
        let deep = "[".repeat(1_000_000);
        assert!(nests_deeper_than(deep.as_bytes(), 128));
    }

    /// The reader's own ceiling is what `Limits::JSON_DEPTH_CEILING` documents.
    #[test]
    fn reader_ceiling_matches_the_documented_one() {
        let ceiling = crate::Limits::JSON_DEPTH_CEILING;
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(serde_json::from_str::<serde_json::Value>(&nest(ceiling)).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&nest(ceiling + 1)).is_err());
    }
}
