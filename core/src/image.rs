//! Image input tokens (chat.completions `image_url` parts, Responses `input_image` parts).
//!
//! Port of the image research (`FINDINGS.md` / `image_rules.py`). Three pieces:
//!
//! * [`sniff`] reads the pixel size from the header of decoded image bytes (PNG, GIF, JPEG, WebP).
//!   The format comes from magic bytes, never from a declared MIME type.
//! * [`sniff_data_url`] does the same for a `data:...;base64,` URL. It decodes only the 4-char
//!   base64 blocks that hold the header bytes it inspects. For JPEG it jumps over segment bodies
//!   (EXIF, ICC, ...) without decoding them.
//! * [`image_tokens`] gives the tokens billed for one image from the model family, the `detail`
//!   setting and the size (if known).
//!
//! # Families and constants
//!
//! Model names are matched by prefix, case-insensitively, after removing a leading `ft:`.
//! The first match wins:
//!
//! | prefix | kind | constants | recordings |
//! |---|---|---|---|
//! | `gpt-4o-mini` | tile | base 2833, per tile 5667 | verified |
//! | `gpt-4o`, `chatgpt-4o` | tile | 85 / 170 | verified |
//! | `gpt-4.1-mini` | patch | ×13/8 (1.625; documented 1.62), +0 | verified |
//! | `gpt-4.1-nano` | patch | ×123/50 (2.46), +0 | documented only |
//! | `gpt-4.1` | tile | 85 / 170 | documented only |
//! | `gpt-4.5` | tile | 85 / 170 | documented only |
//! | `gpt-4-turbo`, `gpt-4-vision`, `gpt-4-1106-vision` | tile | 85 / 170 | documented only |
//! | `o4-mini` | patch | ×43/25 (1.72), +1 | verified |
//! | `o1`, `o3` | tile | 75 / 150 | documented only |
//! | `computer-use` | tile | 65 / 129 | documented only |
//! | `gpt-5-mini` | patch | ×6/5 (1.2; documented 1.62), +1 | verified (1 record) |
//! | `gpt-5-nano` | patch | ×3/2 (1.5; documented 2.46), +1 | verified (1 record) |
//! | `gpt-N.M` with (N, M) ≥ (5, 2) | patch | ×6/5, +1 | estimate (community formula) |
//! | `gpt-5.1…` | tile | 70 / 140 | documented only |
//! | other `gpt-5…` | tile | 70 / 140 | verified |
//! | anything else | tile | 85 / 170 (the gpt-4o rule) | fallback |
//!
//! Every patch family caps the count at 1536 patches.
//!
//! Only `auto` (or an omitted `detail`) appears in the recordings. The `low` constants are
//! documented values that were never checked against recordings, so a `low` result always has
//! [`ImageEstimate::exact_rule`] set to `false`.
//!
//! All arithmetic is integer-only and cannot overflow for any `u32` width and height.

/// Base64 characters that [`sniff_data_url`] callers should allow by default (64 KiB).
pub const DEFAULT_MAX_BASE64: usize = 64 * 1024;

/// Furthest decoded-byte offset [`sniff_data_url`] will reach while jumping over JPEG
/// segments (1 MiB). Before it jumps, it checks the payload prefix up to that point (about
/// 1.4 M characters at most) byte by byte to confirm that it is plain base64 with no whitespace.
/// Those characters are checked, not decoded, so they do not count against `max_base64`.
/// A JPEG whose frame header lies further in makes the function return `None`.
pub const MAX_DATA_URL_REACH: usize = 1 << 20;

/// Width and height of an image in pixels, exactly as its header declares them.
///
/// Headers can lie. Any `u32` values (0, `u32::MAX`, ...) are passed through unchanged, and
/// [`image_tokens`] accepts all of them without overflow or panic. A host's size
/// (`MeterOptions::image_sizes`) reads from JSON as `[width, height]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(from = "(u32, u32)")]
pub struct ImageSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl From<(u32, u32)> for ImageSize {
    fn from((width, height): (u32, u32)) -> Self {
        ImageSize { width, height }
    }
}

/// Image container format, recognised by magic bytes (never by the declared MIME type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// PNG: size from the IHDR chunk.
    Png,
    /// JPEG: size from the first SOF0–SOF15 frame header (not DHT `C4`, JPG `C8` or DAC `CC`),
    /// found by walking the segments. Covers baseline, extended, progressive and lossless.
    Jpeg,
    /// GIF87a / GIF89a: size of the logical screen.
    Gif,
    /// WebP: size from the `VP8 `, `VP8L` or `VP8X` chunk.
    Webp,
}

/// The `detail` setting of an image part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Detail {
    /// `"low"`: tile models bill the base only, whatever the size.
    Low,
    /// `"high"`: tile models bill base + per_tile × tiles.
    High,
    /// `"auto"`, omitted, or any unrecognised value. Billed like [`Detail::High`] at every size
    /// (verified down to 1x1 images).
    #[default]
    Auto,
}

impl Detail {
    /// Parses the `detail` field. Matches `"low"` / `"high"` / `"auto"` case-insensitively.
    /// `None` and any other value (e.g. `"original"`) give [`Detail::Auto`]. Never fails.
    pub fn parse(s: Option<&str>) -> Detail {
        match s {
            Some(s) if s.eq_ignore_ascii_case("low") => Detail::Low,
            Some(s) if s.eq_ignore_ascii_case("high") => Detail::High,
            _ => Detail::Auto,
        }
    }
}

/// Token count for one image part, as returned by [`image_tokens`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageEstimate {
    /// Tokens added to `prompt_tokens` / `input_tokens` by this image.
    pub tokens: u64,
    /// `true` only when this family's rule reproduced recorded usage exactly and `detail` is not
    /// `low` (the low constants were never checked). `false` for documented-only families,
    /// estimates, and unknown models (those fall back to the gpt-4o rule).
    pub exact_rule: bool,
    /// `false` when no size was given and the rule needs one. `tokens` is then the unknown-size
    /// point estimate: 2 tiles, or 300 patches (about a 640x480 image). `true` when a size was
    /// given, and also for `low` on a tile model, because that result does not depend on the size.
    pub size_known: bool,
}

// ============================================================================================
// Header sniffing
// ============================================================================================

/// Why a byte could not be provided / a header was rejected (all map to `None` publicly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The input ends before the byte.
    Truncated,
    /// Not a recognised header, or not valid base64.
    Invalid,
    /// The decode budget or the reach limit would be exceeded.
    Budget,
    /// Whitespace inside the base64 payload before the byte (block offsets are not valid).
    Whitespace,
}

/// Random access to the bytes of an image.
trait Source {
    fn byte(&mut self, i: usize) -> Result<u8, Stop>;
}

/// Bytes that are already decoded.
struct Slice<'a>(&'a [u8]);

impl Source for Slice<'_> {
    fn byte(&mut self, i: usize) -> Result<u8, Stop> {
        self.0.get(i).copied().ok_or(Stop::Truncated)
    }
}

fn at(o: usize, k: usize) -> Result<usize, Stop> {
    o.checked_add(k).ok_or(Stop::Truncated)
}

fn u16be<S: Source>(b: &mut S, o: usize) -> Result<u16, Stop> {
    Ok(u16::from_be_bytes([b.byte(o)?, b.byte(at(o, 1)?)?]))
}

fn u16le<S: Source>(b: &mut S, o: usize) -> Result<u16, Stop> {
    Ok(u16::from_le_bytes([b.byte(o)?, b.byte(at(o, 1)?)?]))
}

fn u24le<S: Source>(b: &mut S, o: usize) -> Result<u32, Stop> {
    Ok(u32::from_le_bytes([
        b.byte(o)?,
        b.byte(at(o, 1)?)?,
        b.byte(at(o, 2)?)?,
        0,
    ]))
}

fn u32le<S: Source>(b: &mut S, o: usize) -> Result<u32, Stop> {
    Ok(u32::from_le_bytes([
        b.byte(o)?,
        b.byte(at(o, 1)?)?,
        b.byte(at(o, 2)?)?,
        b.byte(at(o, 3)?)?,
    ]))
}

fn u32be<S: Source>(b: &mut S, o: usize) -> Result<u32, Stop> {
    Ok(u32::from_be_bytes([
        b.byte(o)?,
        b.byte(at(o, 1)?)?,
        b.byte(at(o, 2)?)?,
        b.byte(at(o, 3)?)?,
    ]))
}

/// `Err(Invalid)` unless the bytes at `o` equal `pat`.
fn expect<S: Source>(b: &mut S, o: usize, pat: &[u8]) -> Result<(), Stop> {
    for (k, &p) in pat.iter().enumerate() {
        if b.byte(at(o, k)?)? != p {
            return Err(Stop::Invalid);
        }
    }
    Ok(())
}

fn size(width: u32, height: u32) -> ImageSize {
    ImageSize { width, height }
}

fn sniff_source<S: Source>(b: &mut S) -> Result<(ImageFormat, ImageSize), Stop> {
    match (b.byte(0)?, b.byte(1)?) {
        (0x89, b'P') => {
            // signature(8) length(4) "IHDR" width(4, BE) height(4, BE)
            expect(b, 0, b"\x89PNG\r\n\x1a\n")?;
            expect(b, 12, b"IHDR")?;
            Ok((ImageFormat::Png, size(u32be(b, 16)?, u32be(b, 20)?)))
        }
        (0xFF, 0xD8) => sniff_jpeg(b).map(|s| (ImageFormat::Jpeg, s)),
        (b'G', b'I') => {
            // "GIF87a" / "GIF89a", logical screen width(2, LE) height(2, LE)
            expect(b, 0, b"GIF8")?;
            if !matches!(b.byte(4)?, b'7' | b'9') {
                return Err(Stop::Invalid);
            }
            expect(b, 5, b"a")?;
            let (w, h) = (u16le(b, 6)?, u16le(b, 8)?);
            Ok((ImageFormat::Gif, size(w.into(), h.into())))
        }
        (b'R', b'I') => {
            expect(b, 0, b"RIFF")?;
            expect(b, 8, b"WEBP")?;
            let chunk = [b.byte(12)?, b.byte(13)?, b.byte(14)?, b.byte(15)?];
            let s = match &chunk {
                b"VP8 " => {
                    // chunk data at 20: frame tag(3), start code 9d 01 2a, 14-bit LE w, h
                    // (the top 2 bits of each are the upscaling hint, not part of the size).
                    expect(b, 23, &[0x9D, 0x01, 0x2A])?;
                    let (w, h) = (u16le(b, 26)? & 0x3FFF, u16le(b, 28)? & 0x3FFF);
                    size(w.into(), h.into())
                }
                b"VP8L" => {
                    // chunk data at 20: signature 0x2f, then (w-1):14 bits, (h-1):14 bits, LSB first
                    expect(b, 20, &[0x2F])?;
                    let v = u32le(b, 21)?;
                    size((v & 0x3FFF) + 1, ((v >> 14) & 0x3FFF) + 1)
                }
                b"VP8X" => {
                    // chunk data at 20: flags(4), (w-1):24 bits LE, (h-1):24 bits LE
                    size(u24le(b, 24)? + 1, u24le(b, 27)? + 1)
                }
                _ => return Err(Stop::Invalid),
            };
            Ok((ImageFormat::Webp, s))
        }
        _ => Err(Stop::Invalid),
    }
}

/// Walks JPEG segments from offset 2 to the first SOFn. Bodies are skipped by their length
/// without being read, so a base64 source only decodes the marker and length bytes.
fn sniff_jpeg<S: Source>(b: &mut S) -> Result<ImageSize, Stop> {
    let mut o: usize = 2;
    loop {
        if b.byte(o)? != 0xFF {
            return Err(Stop::Invalid);
        }
        let mut m = b.byte(at(o, 1)?)?;
        while m == 0xFF {
            // fill bytes before a marker
            o = at(o, 1)?;
            m = b.byte(at(o, 1)?)?;
        }
        match m {
            // markers without a length field: TEM, RSTn, SOI
            0x01 | 0xD0..=0xD8 => o = at(o, 2)?,
            // EOI or SOS before any frame header; 0x00 is a stuffed byte, not a marker
            0xD9 | 0xDA | 0x00 => return Err(Stop::Invalid),
            0xC0..=0xCF if !matches!(m, 0xC4 | 0xC8 | 0xCC) => {
                // FF Cn length(2) precision(1) height(2) width(2) ...
                if u16be(b, at(o, 2)?)? < 8 {
                    return Err(Stop::Invalid);
                }
                let h = u16be(b, at(o, 5)?)?;
                let w = u16be(b, at(o, 7)?)?;
                return Ok(size(w.into(), h.into()));
            }
            _ => {
                let len = u16be(b, at(o, 2)?)?;
                if len < 2 {
                    return Err(Stop::Invalid);
                }
                o = at(o, 2 + usize::from(len))?;
            }
        }
    }
}

/// Reads the pixel size from the header of decoded image bytes.
///
/// Recognises PNG (IHDR), GIF (logical screen), JPEG (first SOF0–SOF15 other than C4/C8/CC,
/// found by walking the segments, so large EXIF/ICC segments before it are fine) and WebP
/// (`VP8 `, `VP8L`, `VP8X`). Returns `None` on unknown, truncated or malformed input. Never
/// panics, and its work is linear in `bytes.len()`. Sizes are returned as declared, even 0.
pub fn sniff(bytes: &[u8]) -> Option<(ImageFormat, ImageSize)> {
    sniff_source(&mut Slice(bytes)).ok()
}

// ============================================================================================
// Base64 data URLs
// ============================================================================================

const INVALID: u8 = 0xFF;

/// Standard and URL-safe alphabets (both accepted, even mixed). `=` is not in the table.
const DECODE: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b'-' as usize] = 62;
    t[b'/' as usize] = 63;
    t[b'_' as usize] = 63;
    t
};

/// Decodes one block of 2–4 valid characters (missing trailing characters count as zero bits).
fn decode_block(chars: &[u8]) -> [u8; 3] {
    let mut acc: u32 = 0;
    for k in 0..4 {
        let v = chars.get(k).map_or(0, |&c| DECODE[usize::from(c)] & 0x3F);
        acc = (acc << 6) | u32::from(v);
    }
    [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]
}

/// Random access into base64 text without padding. Byte `i` lives in the 4-character block
/// starting at character `4 * (i / 3)`, so only the blocks holding requested bytes are decoded.
/// Block offsets hold only if the text before the block is pure base64 without whitespace,
/// which is checked incrementally (cheap byte-class checks, not counted as decoding).
struct B64<'a> {
    s: &'a [u8],
    nbytes: usize,
    checked: usize,
    decoded: usize,
    budget: usize,
    cached: Option<(usize, [u8; 3])>,
}

impl<'a> B64<'a> {
    fn new(s: &'a [u8], budget: usize) -> Self {
        let extra = match s.len() % 4 {
            2 => 1,
            3 => 2,
            _ => 0,
        };
        B64 {
            s,
            nbytes: s.len() / 4 * 3 + extra,
            checked: 0,
            decoded: 0,
            budget,
            cached: None,
        }
    }
}

impl Source for B64<'_> {
    fn byte(&mut self, i: usize) -> Result<u8, Stop> {
        if i >= self.nbytes {
            return Err(Stop::Truncated);
        }
        if i >= MAX_DATA_URL_REACH {
            return Err(Stop::Budget);
        }
        let q = i / 3;
        let block = match self.cached {
            Some((cq, block)) if cq == q => block,
            _ => {
                let start = q.checked_mul(4).ok_or(Stop::Truncated)?;
                let end = start.saturating_add(4).min(self.s.len());
                while self.checked < end {
                    let c = self.s.get(self.checked).copied().ok_or(Stop::Truncated)?;
                    if DECODE[usize::from(c)] == INVALID {
                        return Err(if c.is_ascii_whitespace() {
                            Stop::Whitespace
                        } else {
                            Stop::Invalid
                        });
                    }
                    self.checked += 1;
                }
                let n = end.saturating_sub(start);
                let total = self.decoded.saturating_add(n);
                if total > self.budget {
                    return Err(Stop::Budget);
                }
                self.decoded = total;
                let block = decode_block(self.s.get(start..end).ok_or(Stop::Truncated)?);
                self.cached = Some((q, block));
                block
            }
        };
        block.get(i % 3).copied().ok_or(Stop::Truncated)
    }
}

/// Sequentially decodes at most `max_chars` base64 characters of `s`, skipping ASCII whitespace
/// (at most `2 * max_chars` characters are scanned). `None` on any invalid character (including a
/// `=` before the end).
fn decode_prefix(s: &[u8], max_chars: usize) -> Option<Vec<u8>> {
    let scan_limit = max_chars.saturating_mul(2);
    let mut out = Vec::with_capacity(max_chars.min(s.len()) / 4 * 3 + 3);
    let (mut acc, mut n, mut taken) = (0u32, 0u32, 0usize);
    for &c in s.iter().take(scan_limit) {
        if taken >= max_chars {
            break;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        let v = DECODE[usize::from(c)];
        if v == INVALID {
            return None;
        }
        acc = (acc << 6) | u32::from(v);
        n += 1;
        taken += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
    Some(out)
}

/// The base64 payload of a `data:` URL, or `None` if it is not a base64 data URL.
/// Trailing whitespace and up to two trailing `=` are removed.
fn data_url_payload(url: &str) -> Option<&[u8]> {
    let b = url.as_bytes();
    if !b.get(..5)?.eq_ignore_ascii_case(b"data:") {
        return None;
    }
    let rest = b.get(5..)?;
    // The media type and parameters are short; do not scan a huge payload for a missing comma.
    let comma = rest.iter().take(1024).position(|&c| c == b',')?;
    let meta = rest.get(..comma)?;
    if !meta
        .split(|&c| c == b';')
        .skip(1)
        .any(|p| p.eq_ignore_ascii_case(b"base64"))
    {
        return None;
    }
    let mut p = rest.get(comma + 1..)?;
    while let [head @ .., last] = p {
        if !last.is_ascii_whitespace() {
            break;
        }
        p = head;
    }
    let mut pad = 0;
    while let [head @ .., b'='] = p {
        p = head;
        pad += 1;
    }
    (pad <= 2).then_some(p)
}

/// Returns the sniff result and the number of base64 characters decoded.
fn sniff_data_url_counted(
    url: &str,
    max_base64: usize,
) -> (Option<(ImageFormat, ImageSize)>, usize) {
    let Some(payload) = data_url_payload(url) else {
        return (None, 0);
    };
    let mut src = B64::new(payload, max_base64);
    match sniff_source(&mut src) {
        Ok(found) => (Some(found), src.decoded),
        Err(Stop::Whitespace) => {
            // Block offsets are not valid: decode a bounded prefix sequentially instead,
            // within what is left of the budget.
            let left = max_base64.saturating_sub(src.decoded);
            let Some(bytes) = decode_prefix(payload, left) else {
                return (None, src.decoded);
            };
            let decoded_now = payload
                .iter()
                .take(left.saturating_mul(2))
                .filter(|c| !c.is_ascii_whitespace())
                .count()
                .min(left);
            (sniff(&bytes), src.decoded.saturating_add(decoded_now))
        }
        Err(_) => (None, src.decoded),
    }
}

/// Reads the pixel size from a `data:<type>[;params];base64,<payload>` URL.
///
/// Returns `None` for anything else, for a URL without a `;base64` parameter, and on invalid
/// base64, truncated data or an unrecognised header. The declared media type is ignored and
/// the format comes from the magic bytes. Never panics.
///
/// At most `max_base64` base64 characters are decoded in total (callers normally pass
/// [`DEFAULT_MAX_BASE64`]). Without whitespace in the payload, only the 4-character blocks that
/// hold the header bytes are decoded: 28 characters for PNG, 16 for GIF, at most 36 for WebP.
/// For JPEG, the blocks holding each segment's marker and length, so about 70 characters even
/// behind 200 KB of EXIF/ICC data. Block offsets are checked by confirming that the payload is
/// plain base64 up to the furthest block used. This check is limited to
/// [`MAX_DATA_URL_REACH`] decoded bytes.
/// If whitespace or newlines come before that point, the function instead decodes a prefix
/// sequentially, skipping whitespace, up to the remaining budget. Standard and URL-safe
/// alphabets are accepted. Trailing `=` padding is optional. Characters after the last block
/// used are not validated.
pub fn sniff_data_url(url: &str, max_base64: usize) -> Option<(ImageFormat, ImageSize)> {
    sniff_data_url_counted(url, max_base64).0
}

// ============================================================================================
// Token rules
// ============================================================================================

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// `low` → base; otherwise base + per_tile × tiles.
    Tile { base: u64, per_tile: u64 },
    /// ceil(patches × num / den) + overhead; `detail` ignored.
    Patch {
        num: u64,
        den: u64,
        overhead: u64,
        cap: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Family {
    rule: Rule,
    /// The rule reproduced recorded usage exactly (auto/omitted detail).
    verified: bool,
}

const PATCH_CAP: u64 = 1536;
/// Unknown-size point estimate: a 640x480-class image (2 is the median of billed http images).
const UNKNOWN_TILES: u64 = 2;
/// Unknown-size point estimate for patch models (640x480 = 20 × 15 patches).
const UNKNOWN_PATCHES: u64 = 300;

const fn tile(base: u64, per_tile: u64, verified: bool) -> Family {
    Family {
        rule: Rule::Tile { base, per_tile },
        verified,
    }
}

const fn patch(num: u64, den: u64, overhead: u64, verified: bool) -> Family {
    Family {
        rule: Rule::Patch {
            num,
            den,
            overhead,
            cap: PATCH_CAP,
        },
        verified,
    }
}

const GPT_4O: Family = tile(85, 170, true);
const GPT_4O_MINI: Family = tile(2833, 5667, true);
const GPT_4_1: Family = tile(85, 170, false);
const GPT_4_5: Family = tile(85, 170, false);
const GPT_4_TURBO: Family = tile(85, 170, false);
const O1_O3: Family = tile(75, 150, false);
const COMPUTER_USE: Family = tile(65, 129, false);
const GPT_5: Family = tile(70, 140, true);
const GPT_5_1: Family = tile(70, 140, false);
const GPT_4_1_MINI: Family = patch(13, 8, 0, true);
const GPT_4_1_NANO: Family = patch(123, 50, 0, false);
const O4_MINI: Family = patch(43, 25, 1, true);
const GPT_5_MINI: Family = patch(6, 5, 1, true);
const GPT_5_NANO: Family = patch(3, 2, 1, true);
const GPT_5_2_PLUS: Family = patch(6, 5, 1, false);
const FALLBACK: Family = tile(85, 170, false);

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.as_bytes().get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix.as_bytes()) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

fn starts_ci(s: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| strip_prefix_ci(s, p).is_some())
}

/// Leading ASCII digits of `s` as a saturating number, and the rest; `None` without digits.
fn leading_number(s: &str) -> Option<(u64, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let v = s.bytes().take(n).fold(0u64, |v, d| {
        v.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    Some((v, s.get(n..)?))
}

/// Whether `model` prices images by the patch rule (as opposed to tiles).
pub fn patch_rule(model: &str) -> bool {
    matches!(family(model).rule, Rule::Patch { .. })
}

fn family(model: &str) -> Family {
    let m = strip_prefix_ci(model, "ft:").unwrap_or(model);
    if starts_ci(m, &["gpt-4o-mini"]) {
        return GPT_4O_MINI;
    }
    if starts_ci(m, &["gpt-4o", "chatgpt-4o"]) {
        return GPT_4O;
    }
    if starts_ci(m, &["gpt-4.1-mini"]) {
        return GPT_4_1_MINI;
    }
    if starts_ci(m, &["gpt-4.1-nano"]) {
        return GPT_4_1_NANO;
    }
    if starts_ci(m, &["gpt-4.1"]) {
        return GPT_4_1;
    }
    if starts_ci(m, &["gpt-4.5"]) {
        return GPT_4_5;
    }
    if starts_ci(m, &["gpt-4-turbo", "gpt-4-vision", "gpt-4-1106-vision"]) {
        return GPT_4_TURBO;
    }
    if starts_ci(m, &["o4-mini"]) {
        return O4_MINI;
    }
    if starts_ci(m, &["o1", "o3"]) {
        return O1_O3;
    }
    if starts_ci(m, &["computer-use"]) {
        return COMPUTER_USE;
    }
    if starts_ci(m, &["gpt-5-mini"]) {
        return GPT_5_MINI;
    }
    if starts_ci(m, &["gpt-5-nano"]) {
        return GPT_5_NANO;
    }
    if let Some((major, rest)) = strip_prefix_ci(m, "gpt-").and_then(leading_number) {
        let minor = rest
            .strip_prefix('.')
            .and_then(leading_number)
            .map_or(0, |(v, _)| v);
        if (major, minor) >= (5, 2) {
            return GPT_5_2_PLUS;
        }
        if major == 5 {
            return if minor == 0 { GPT_5 } else { GPT_5_1 };
        }
    }
    FALLBACK
}

fn ceil_div(a: u64, b: u64) -> u64 {
    if b == 0 {
        return 0;
    }
    a / b + u64::from(a % b != 0)
}

/// floor(sqrt(n)) without floating point (Newton's method from an upper bound).
fn isqrt(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let bits = 64 - n.leading_zeros();
    let mut x: u64 = 1 << bits.div_ceil(2); // > sqrt(n)
    loop {
        let y = (x + n / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

/// High-detail tiles. The image is fitted inside 2048x2048, then shrunk so its short side is
/// at most 768, then 512-px tiles are counted. The scaled sizes are kept as exact fractions and
/// the ceiling is taken at the end. The result is at most 8.
///
/// Let L and S be the long and short sides. After the fit, S' = S·2048/L if L > 2048, else
/// S' = S. If S' > 768 (i.e. 8S > 3L when L > 2048), the image becomes 768 × (768·L/S):
/// 2 × ceil(3L / 2S) tiles. Otherwise, if L > 2048, the image is 2048 × S': 4 × ceil(4S / L)
/// tiles. Otherwise the size is unchanged.
fn tile_count(s: ImageSize) -> u64 {
    let (w, h) = (u64::from(s.width), u64::from(s.height));
    let (long, short) = (w.max(h), w.min(h));
    let shrink_short = if long > 2048 {
        short * 8 > long * 3
    } else {
        short > 768
    };
    if shrink_short {
        2 * ceil_div(3 * long, 2 * short)
    } else if long > 2048 {
        4 * ceil_div(4 * short, long)
    } else {
        ceil_div(long, 512) * ceil_div(short, 512)
    }
}

/// 32-px patches, with the documented downscale when there are more than `cap`:
/// `r = sqrt(32²·cap/(w·h))`, `r *= min(floor(w·r/32)/(w·r/32), floor(h·r/32)/(h·r/32))`,
/// `patches = min(cap, ceil(w·r/32) · ceil(h·r/32))`.
///
/// Exact integer form: let a = w·r₀/32 = sqrt(cap·w/h) and b = h·r₀/32 = sqrt(cap·h/w). Then
/// floor(a) = isqrt(floor(cap·w/h)), and likewise for b. The first ratio is the smaller one iff
/// floor(a)·h ≤ floor(b)·w. In that case the scaled sides hold floor(a) and ceil(floor(a)·h/w)
/// patches, and symmetrically otherwise. For extreme aspect ratios floor(a) can be 0, so the
/// documented formula gives 0 patches. That is kept as is, since this edge case is unverified.
fn patch_count(s: ImageSize, cap: u64) -> u64 {
    let (w, h) = (u64::from(s.width), u64::from(s.height));
    let p = ceil_div(w, 32).saturating_mul(ceil_div(h, 32));
    if p <= cap || w == 0 || h == 0 {
        return p.min(cap);
    }
    let fa = isqrt(cap.saturating_mul(w) / h);
    let fb = isqrt(cap.saturating_mul(h) / w);
    let n = if fa.saturating_mul(h) <= fb.saturating_mul(w) {
        fa.saturating_mul(ceil_div(fa.saturating_mul(h), w))
    } else {
        fb.saturating_mul(ceil_div(fb.saturating_mul(w), h))
    };
    n.min(cap)
}

/// Tokens that one image part adds to the prompt total of `model`.
///
/// * Tile families: `low` is the base whatever the size (no size needed). `high` and
///   `auto` are base + per_tile × tiles, with the image fitted into 2048x2048, the short side
///   reduced to 768, then ceil(w/512) × ceil(h/512) tiles (1 to 8 tiles).
/// * Patch families: ceil(patches × mult) + overhead, with 32-px patches capped at 1536 by the
///   documented downscale. `detail` is ignored. The multipliers are exact fractions, so the
///   arithmetic is integer-only.
/// * `size == None` (http(s) URL, `file_id`, unreadable data URL): tile families give
///   base + 2 tiles, patch families give ceil(300 × mult) + overhead, with `size_known = false`.
///   Exception: `low` on a tile family stays exact.
///
/// Families are chosen by model-name prefix (see the module docs). An unknown model uses the
/// gpt-4o tile rule with `exact_rule = false`. Never panics or overflows, for any size up to
/// `u32::MAX` × `u32::MAX`.
pub fn image_tokens(model: &str, detail: Detail, size: Option<ImageSize>) -> ImageEstimate {
    let fam = family(model);
    let exact_rule = fam.verified && detail != Detail::Low;
    match fam.rule {
        Rule::Tile { base, per_tile } => {
            if detail == Detail::Low {
                return ImageEstimate {
                    tokens: base,
                    exact_rule,
                    size_known: true,
                };
            }
            let tiles = size.map_or(UNKNOWN_TILES, tile_count);
            ImageEstimate {
                tokens: base.saturating_add(per_tile.saturating_mul(tiles)),
                exact_rule,
                size_known: size.is_some(),
            }
        }
        Rule::Patch {
            num,
            den,
            overhead,
            cap,
        } => {
            let patches = size.map_or(UNKNOWN_PATCHES.min(cap), |s| patch_count(s, cap));
            ImageEstimate {
                tokens: ceil_div(patches.saturating_mul(num), den).saturating_add(overhead),
                exact_rule,
                size_known: size.is_some(),
            }
        }
    }
}

// ============================================================================================
// Tests
// ============================================================================================

#[cfg(test)]
mod tests {
    use super::*;

    // ---- builders --------------------------------------------------------------------------

    fn b64(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for k in 0..4 {
                if k <= chunk.len() {
                    out.push(A[((v >> (18 - 6 * k)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn url(mime: &str, data: &[u8]) -> String {
        format!("data:{mime};base64,{}", b64(data))
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&[8, 6, 0, 0, 0, 0xDE, 0xAD, 0xBE, 0xEF]); // depth, type, ..., crc
        v.extend_from_slice(b"\x00\x00\x00\x00IEND\xae\x42\x60\x82");
        v
    }

    fn gif(w: u16, h: u16) -> Vec<u8> {
        let mut v = b"GIF89a".to_vec();
        v.extend_from_slice(&w.to_le_bytes());
        v.extend_from_slice(&h.to_le_bytes());
        v.extend_from_slice(&[0xF7, 0, 0]);
        v
    }

    fn riff(chunk: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = b"RIFF".to_vec();
        v.extend_from_slice(&((body.len() + 12) as u32).to_le_bytes());
        v.extend_from_slice(b"WEBP");
        v.extend_from_slice(chunk);
        v.extend_from_slice(&(body.len() as u32).to_le_bytes());
        v.extend_from_slice(body);
        v
    }

    fn webp_vp8(w: u16, h: u16) -> Vec<u8> {
        // frame tag (key frame), start code, 14-bit sizes with the 2 scale bits set to test masking
        let mut body = vec![0x50, 0x02, 0x00, 0x9D, 0x01, 0x2A];
        body.extend_from_slice(&(w | 0xC000).to_le_bytes());
        body.extend_from_slice(&(h | 0x4000).to_le_bytes());
        body.extend_from_slice(&[0; 8]);
        riff(b"VP8 ", &body)
    }

    fn webp_vp8l(w: u32, h: u32) -> Vec<u8> {
        let v = (w - 1) | ((h - 1) << 14) | (1 << 28); // alpha hint set, version 0
        let mut body = vec![0x2F];
        body.extend_from_slice(&v.to_le_bytes());
        body.extend_from_slice(&[0; 4]);
        riff(b"VP8L", &body)
    }

    fn webp_vp8x(w: u32, h: u32) -> Vec<u8> {
        let mut body = vec![0x10, 0, 0, 0];
        body.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
        body.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
        riff(b"VP8X", &body)
    }

    fn seg(marker: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![0xFF, marker];
        v.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    /// SOI, APP0 JFIF, `extra` segments, DQT, SOFn, DHT, SOS + some data, EOI.
    fn jpeg(w: u16, h: u16, sof: u8, extra: &[Vec<u8>]) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8];
        v.extend(seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"));
        for e in extra {
            v.extend_from_slice(e);
        }
        v.extend(seg(0xDB, &[0u8; 65]));
        let mut f = vec![8];
        f.extend_from_slice(&h.to_be_bytes());
        f.extend_from_slice(&w.to_be_bytes());
        f.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        v.extend(seg(sof, &f));
        v.extend(seg(0xC4, &[0u8; 30]));
        v.extend(seg(0xDA, &[3, 1, 0, 2, 0x11, 3, 0x11, 0, 0x3F, 0]));
        v.extend_from_slice(&[0x12, 0x34, 0xFF, 0x00, 0x56]);
        v.extend_from_slice(&[0xFF, 0xD9]);
        v
    }

    fn sz(width: u32, height: u32) -> ImageSize {
        ImageSize { width, height }
    }

    fn toks(model: &str, detail: Detail, w: u32, h: u32) -> u64 {
        image_tokens(model, detail, Some(sz(w, h))).tokens
    }

    /// xorshift64*, deterministic.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    // ---- token rules: worked examples from FINDINGS.md -------------------------------------

    #[test]
    fn verified_tile_families_match_recordings() {
        // 640x480 = 2 tiles; 100x100, 50x65, 50x50, 1x1 = 1 tile (auto is billed as high).
        let a = Detail::Auto;
        assert_eq!(toks("gpt-4o-2024-08-06", a, 640, 480), 425);
        assert_eq!(toks("gpt-4o-2024-11-20", a, 640, 480), 425);
        assert_eq!(toks("gpt-4o-2024-08-06", a, 100, 100), 255);
        assert_eq!(toks("gpt-4o-2024-08-06", a, 50, 65), 255);
        assert_eq!(toks("gpt-4o-mini-2024-07-18", a, 640, 480), 14167);
        assert_eq!(2 * toks("gpt-4o-mini-2024-07-18", a, 640, 480), 28334); // 2 images, plain sum
        assert_eq!(toks("gpt-4o-mini-2024-07-18", a, 100, 100), 8500);
        assert_eq!(toks("gpt-4o-mini-2024-07-18", a, 1, 1), 8500);
        assert_eq!(toks("gpt-5-2025-08-07", a, 640, 480), 350);
        assert_eq!(toks("gpt-5-2025-08-07", a, 50, 50), 210);
        // http images whose billing was recovered: 2560-px photo = 6 tiles.
        assert_eq!(toks("gpt-4o-2024-08-06", a, 2560, 1707), 1105);
        assert_eq!(toks("gpt-4o-mini-2024-07-18", a, 2560, 1707), 36835);
        for m in ["gpt-4o-2024-08-06", "gpt-4o-mini", "gpt-5-2025-08-07"] {
            let e = image_tokens(m, a, Some(sz(640, 480)));
            assert!(e.exact_rule && e.size_known, "{m}");
        }
    }

    #[test]
    fn verified_patch_families_match_recordings() {
        let a = Detail::Auto;
        // 640x480 = 300 patches
        assert_eq!(toks("gpt-4.1-mini-2025-04-14", a, 640, 480), 488);
        assert_eq!(toks("o4-mini-2025-04-16", a, 640, 480), 517);
        assert_eq!(toks("gpt-5-mini-2025-08-07", a, 640, 480), 361);
        assert_eq!(toks("gpt-5-nano-2025-08-07", a, 640, 480), 451);
        // 300x346 = 110 patches -> 179 (rules out floor); 240x278 = 72 patches -> 117
        assert_eq!(patch_count(sz(300, 346), 1536), 110);
        assert_eq!(toks("gpt-4.1-mini-2025-04-14", a, 300, 346), 179);
        assert_eq!(toks("gpt-4.1-mini-2025-04-14", a, 240, 278), 117);
        for m in ["gpt-4.1-mini", "o4-mini", "gpt-5-mini", "gpt-5-nano"] {
            let e = image_tokens(m, a, Some(sz(640, 480)));
            assert!(e.exact_rule && e.size_known, "{m}");
        }
        // gpt-5.2+ estimate: 512x512 on gpt-5.4-nano = 256 patches -> 309; 512x149 -> 97
        let e = image_tokens("gpt-5.4-nano-2026-03-17", a, Some(sz(512, 512)));
        assert_eq!((e.tokens, e.exact_rule), (309, false));
        assert_eq!(toks("gpt-5.6-terra", a, 512, 149), 97);
    }

    #[test]
    fn documented_examples() {
        let h = Detail::High;
        // gpt-4o docs: 1024x1024 -> 768x768 = 4 tiles; 2048x4096 -> 768x1536 = 6 tiles
        assert_eq!(toks("gpt-4o", h, 1024, 1024), 765);
        assert_eq!(toks("gpt-4o", h, 2048, 4096), 1105);
        assert_eq!(toks("gpt-4o", h, 768, 2048), 1445); // the maximum: 8 tiles
        assert_eq!(toks("gpt-4o", Detail::Low, 4096, 8192), 85);
        // patch docs: 1024x1024 = 1024 patches; 1800x2400 -> 1056x1408 = 33x44 = 1452 patches
        assert_eq!(patch_count(sz(1024, 1024), 1536), 1024);
        assert_eq!(patch_count(sz(1800, 2400), 1536), 1452);
        assert_eq!(patch_count(sz(2400, 1800), 1536), 1452);
        assert_eq!(toks("gpt-4.1-nano", h, 1024, 1024), 2520); // ceil(2519.04)
                                                               // documented-only tile constants
        assert_eq!(toks("o1-2024-12-17", h, 640, 480), 375);
        assert_eq!(toks("o3", h, 640, 480), 375);
        assert_eq!(toks("computer-use-preview", h, 640, 480), 323);
        assert_eq!(toks("gpt-4.1-2025-04-14", h, 640, 480), 425);
        assert_eq!(toks("gpt-4-turbo", h, 640, 480), 425);
        assert_eq!(toks("gpt-4.5-preview", h, 640, 480), 425);
        assert_eq!(toks("gpt-5.1", h, 640, 480), 350);
        for m in [
            "o1",
            "o3-pro",
            "computer-use-preview",
            "gpt-4.1",
            "gpt-4.1-nano",
            "gpt-5.1-chat",
        ] {
            assert!(!image_tokens(m, h, Some(sz(640, 480))).exact_rule, "{m}");
        }
    }

    #[test]
    fn family_prefix_ordering() {
        let a = Detail::Auto;
        let one = |m: &str| toks(m, a, 1, 1);
        assert_eq!(one("gpt-4o-mini"), 8500);
        assert_eq!(one("GPT-4O-MINI-2024-07-18"), 8500);
        assert_eq!(one("ft:gpt-4o-mini-2024-07-18:org::abc"), 8500);
        assert_eq!(one("gpt-4o"), 255);
        assert_eq!(one("chatgpt-4o-latest"), 255);
        assert_eq!(one("gpt-4.1-mini"), 2); // 1 patch * 13/8 -> 2
        assert_eq!(one("gpt-4.1-nano"), 3); // ceil(2.46)
        assert_eq!(one("gpt-4.1"), 255);
        assert_eq!(one("o4-mini"), 3); // ceil(1.72) + 1
        assert_eq!(one("o1"), 225);
        assert_eq!(one("computer-use-preview"), 194);
        assert_eq!(one("gpt-5-mini"), 3); // ceil(1.2) + 1
        assert_eq!(one("gpt-5-nano"), 3); // ceil(1.5) + 1
        assert_eq!(one("gpt-5"), 210);
        assert_eq!(one("gpt-5-chat-latest"), 210);
        assert_eq!(one("gpt-5.2"), 3);
        assert_eq!(one("gpt-6"), 3);
        assert_eq!(one("gpt-99999999999999999999999.9"), 3); // saturating version parse
        let u = image_tokens("claude-3", a, Some(sz(640, 480)));
        assert_eq!((u.tokens, u.exact_rule, u.size_known), (425, false, true));
        for m in [
            "",
            "gpt-",
            "gpt-4",
            "gpt-3.5-turbo",
            "ft:",
            "o",
            "é-model",
            "gpt-5.",
            "gpt-.5",
        ] {
            let e = image_tokens(m, a, Some(sz(1, 1)));
            assert!(e.tokens > 0, "{m}");
        }
        assert_eq!(one("gpt-5."), 210);
        assert!(!image_tokens("gpt-4", a, Some(sz(1, 1))).exact_rule);
    }

    #[test]
    fn detail_parse_and_low() {
        assert_eq!(Detail::parse(Some("low")), Detail::Low);
        assert_eq!(Detail::parse(Some("LOW")), Detail::Low);
        assert_eq!(Detail::parse(Some("High")), Detail::High);
        assert_eq!(Detail::parse(Some("auto")), Detail::Auto);
        assert_eq!(Detail::parse(Some("original")), Detail::Auto);
        assert_eq!(Detail::parse(Some("")), Detail::Auto);
        assert_eq!(Detail::parse(None), Detail::Auto);
        // low on tile models: base, no size needed, constants unverified
        let e = image_tokens("gpt-4o-mini", Detail::Low, None);
        assert_eq!((e.tokens, e.exact_rule, e.size_known), (2833, false, true));
        assert_eq!(
            image_tokens("gpt-5", Detail::Low, Some(sz(4000, 3000))).tokens,
            70
        );
        // patch models ignore detail
        let e = image_tokens("o4-mini", Detail::Low, Some(sz(640, 480)));
        assert_eq!((e.tokens, e.exact_rule), (517, false));
    }

    #[test]
    fn unknown_size_policy() {
        let a = Detail::Auto;
        let cases = [
            ("gpt-4o", 425),
            ("gpt-4o-mini", 14167),
            ("gpt-5", 350),
            ("gpt-4.1-mini", 488),
            ("o4-mini", 517),
            ("gpt-5-mini", 361),
            ("gpt-5-nano", 451),
            ("gpt-4.1-nano", 738),
            ("whatever", 425),
        ];
        for (m, want) in cases {
            let e = image_tokens(m, a, None);
            assert_eq!((e.tokens, e.size_known), (want, false), "{m}");
            assert_eq!(e.tokens, toks(m, a, 640, 480), "{m}");
        }
        let e = image_tokens("gpt-4o", Detail::High, None);
        assert_eq!((e.tokens, e.size_known, e.exact_rule), (425, false, true));
        assert!(!image_tokens("o4-mini", Detail::Low, None).size_known);
    }

    #[test]
    fn tile_counts_exact_fractions() {
        let t = |w, h| tile_count(sz(w, h));
        assert_eq!(t(0, 0), 0);
        assert_eq!(t(512, 512), 1);
        assert_eq!(t(513, 512), 2);
        assert_eq!(t(768, 768), 4);
        assert_eq!(t(769, 769), 4);
        assert_eq!(t(2048, 2048), 4);
        assert_eq!(t(2049, 10), 4); // fit to 2048 x 9.99 -> 4 x 1
        assert_eq!(t(10, 100_000), 4);
        assert_eq!(t(1024, 2048), 6); // 768 x 1536
        assert_eq!(t(1025, 2048), 6); // 768 x 1534.5
        assert_eq!(t(1023, 2048), 8); // 768 x 1537.5 -> ceil 4
        assert_eq!(t(u32::MAX, u32::MAX), 4);
        assert_eq!(t(u32::MAX, 1), 4);
        assert_eq!(t(0, u32::MAX), 0);
    }

    /// Reference values computed with `image_rules.py` (float version), which agrees with the
    /// exact integer version on all of these.
    #[test]
    fn matches_python_reference() {
        let cases: [(u32, u32, u64, u64); 8] = [
            // w, h, tiles, patches (cap 1536)
            (1920, 1080, 6, 1508),
            (4032, 3024, 4, 1452),
            (3000, 500, 4, 1504),
            (1366, 768, 6, 1032),
            (5000, 5000, 4, 1521),
            (800, 20000, 4, 1225),
            (1200, 1201, 4, 1444),
            (7, 100_000, 4, 0),
        ];
        for (w, h, tiles, patches) in cases {
            assert_eq!(tile_count(sz(w, h)), tiles, "tiles {w}x{h}");
            assert_eq!(patch_count(sz(w, h), 1536), patches, "patches {w}x{h}");
        }
    }

    #[test]
    fn isqrt_is_floor_sqrt() {
        for n in 0..20_000u64 {
            let r = isqrt(n);
            assert!(r * r <= n && (r + 1) * (r + 1) > n, "{n}");
        }
        for n in [
            u64::MAX,
            u64::MAX - 1,
            ((1 << 32) - 1) * ((1 << 32) - 1),
            1 << 62,
            (1 << 32) - 1,
        ] {
            let r = u128::from(isqrt(n));
            assert!(
                r * r <= u128::from(n) && (r + 1) * (r + 1) > u128::from(n),
                "{n}"
            );
        }
    }

    #[test]
    fn lying_sizes_never_overflow() {
        let models = [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1-mini",
            "gpt-4.1-nano",
            "o4-mini",
            "o3",
            "gpt-5",
            "gpt-5-mini",
            "gpt-5-nano",
            "gpt-5.4",
            "computer-use-preview",
            "unknown",
        ];
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        let mut sizes = vec![
            (0, 0),
            (0, u32::MAX),
            (u32::MAX, 0),
            (u32::MAX, u32::MAX),
            (1, u32::MAX),
        ];
        for _ in 0..20_000 {
            let pick = |r: &mut Rng| match r.below(4) {
                0 => r.below(64) as u32,
                1 => r.below(5000) as u32,
                2 => r.next() as u32,
                _ => u32::MAX - r.below(3) as u32,
            };
            sizes.push((pick(&mut rng), pick(&mut rng)));
        }
        for &(w, h) in &sizes {
            assert!(tile_count(sz(w, h)) <= 8);
            assert!(patch_count(sz(w, h), 1536) <= 1536);
            assert_eq!(tile_count(sz(w, h)), tile_count(sz(h, w)));
            for m in models {
                for d in [Detail::Low, Detail::High, Detail::Auto] {
                    let e = image_tokens(m, d, Some(sz(w, h)));
                    assert!(e.tokens <= 2833 + 8 * 5667, "{m} {w}x{h}");
                }
            }
        }
    }

    // ---- sniffing: raw bytes ---------------------------------------------------------------

    #[test]
    fn sniff_each_format() {
        assert_eq!(
            sniff(&png(640, 480)),
            Some((ImageFormat::Png, sz(640, 480)))
        );
        assert_eq!(sniff(&png(1, 1)), Some((ImageFormat::Png, sz(1, 1))));
        assert_eq!(
            sniff(&gif(321, 654)),
            Some((ImageFormat::Gif, sz(321, 654)))
        );
        let mut g87 = gif(3, 4);
        g87[4] = b'7';
        assert_eq!(sniff(&g87), Some((ImageFormat::Gif, sz(3, 4))));
        assert_eq!(
            sniff(&webp_vp8(1234, 567)),
            Some((ImageFormat::Webp, sz(1234, 567)))
        );
        assert_eq!(
            sniff(&webp_vp8l(16383, 2)),
            Some((ImageFormat::Webp, sz(16383, 2)))
        );
        assert_eq!(
            sniff(&webp_vp8l(1, 16384)),
            Some((ImageFormat::Webp, sz(1, 16384)))
        );
        assert_eq!(
            sniff(&webp_vp8x(321, 654)),
            Some((ImageFormat::Webp, sz(321, 654)))
        );
        assert_eq!(
            sniff(&webp_vp8x(1 << 24, 1)),
            Some((ImageFormat::Webp, sz(1 << 24, 1)))
        );
        for sof in [
            0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF,
        ] {
            assert_eq!(
                sniff(&jpeg(1234, 567, sof, &[])),
                Some((ImageFormat::Jpeg, sz(1234, 567))),
                "{sof:x}"
            );
        }
    }

    #[test]
    fn sniff_jpeg_walk_details() {
        // DHT (C4) and DAC (CC) before the frame header are skipped, not taken as SOF.
        let pre = [seg(0xC4, &[0x10, 0x20, 0x30]), seg(0xCC, &[0x01, 0x02])];
        assert_eq!(
            sniff(&jpeg(50, 65, 0xC2, &pre)),
            Some((ImageFormat::Jpeg, sz(50, 65)))
        );
        // Fill bytes and standalone markers between segments.
        let pre = [
            vec![0xFF, 0xFF, 0xFF, 0xD0, 0xFF, 0x01],
            seg(0xFE, b"comment"),
        ];
        assert_eq!(
            sniff(&jpeg(7, 9, 0xC0, &pre)),
            Some((ImageFormat::Jpeg, sz(7, 9)))
        );
        // Large APP1 (60 KB EXIF-like) and a 200 KB ICC profile over several APP2 segments.
        let mut pre = vec![seg(0xE1, &vec![b'x'; 60_000])];
        for _ in 0..4 {
            pre.push(seg(0xE2, &vec![0u8; 50_000]));
        }
        let big = jpeg(4000, 3000, 0xC2, &pre);
        assert!(big.len() > 260_000);
        assert_eq!(sniff(&big), Some((ImageFormat::Jpeg, sz(4000, 3000))));
        // SOS / EOI before any frame header, bad marker, stuffed 0x00, short lengths.
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xDA, 0, 2]), None);
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xD9]), None);
        assert_eq!(sniff(&[0xFF, 0xD8, 0x00, 0xE0, 0, 2]), None);
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0x00]), None);
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 1, 0xFF, 0xC0]), None);
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xC0, 0, 7, 8, 0, 1, 0, 1]), None);
        // Truncated anywhere before the width: None; the full header: Some.
        let j = jpeg(300, 200, 0xC0, &[seg(0xE1, &[1; 100])]);
        let sof_end = j.windows(2).position(|p| p == [0xFF, 0xC0]).unwrap() + 9;
        for cut in 0..sof_end {
            assert_eq!(sniff(&j[..cut]), None, "cut {cut}");
        }
        assert_eq!(
            sniff(&j[..sof_end]),
            Some((ImageFormat::Jpeg, sz(300, 200)))
        );
    }

    #[test]
    fn sniff_rejects_truncated_and_garbage() {
        for img in [
            png(640, 480),
            gif(5, 6),
            webp_vp8(10, 20),
            webp_vp8l(10, 20),
            webp_vp8x(10, 20),
        ] {
            let need = match img[0] {
                0x89 => 24,
                b'G' => 10,
                _ => 25,
            };
            for cut in 0..need {
                assert_eq!(sniff(&img[..cut]), None, "cut {cut} of {:?}", &img[..4]);
            }
        }
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"hello world, not an image"), None);
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDX\x00\x00\x00\x01\x00\x00\x00\x01"),
            None
        );
        assert_eq!(sniff(b"GIF90a\x01\x00\x01\x00"), None);
        assert_eq!(sniff(b"RIFF\x00\x00\x00\x00WAVEfmt "), None);
        let mut bad = webp_vp8(10, 10);
        bad[23] = 0x9E; // wrong VP8 start code
        assert_eq!(sniff(&bad), None);
        let mut bad = webp_vp8l(10, 10);
        bad[20] = 0x2E; // wrong VP8L signature
        assert_eq!(sniff(&bad), None);
        let mut bad = webp_vp8x(10, 10);
        bad[15] = b'Y'; // unknown chunk
        assert_eq!(sniff(&bad), None);
    }

    #[test]
    fn sniff_random_bytes_never_panics() {
        let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
        let seeds = [
            png(9, 9),
            gif(9, 9),
            webp_vp8(9, 9),
            webp_vp8l(9, 9),
            webp_vp8x(9, 9),
            jpeg(9, 9, 0xC0, &[]),
        ];
        for i in 0..50_000 {
            let len = rng.below(80) as usize;
            let mut v: Vec<u8> = if i % 2 == 0 {
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                // mutate a valid header: keeps the walk going further
                let mut s = seeds[i % seeds.len()].clone();
                for _ in 0..1 + rng.below(4) {
                    let k = rng.below(s.len() as u64) as usize;
                    s[k] = rng.next() as u8;
                }
                s.truncate(rng.below(s.len() as u64 + 1) as usize);
                s
            };
            if i % 7 == 0 && v.len() >= 2 {
                v[0] = 0xFF;
                v[1] = 0xD8;
            }
            let _ = sniff(&v);
            let _ = sniff_data_url(&url("image/png", &v), DEFAULT_MAX_BASE64);
            let _ = sniff_data_url(&url("image/png", &v), rng.below(40) as usize);
        }
    }

    // ---- sniffing: data URLs ---------------------------------------------------------------

    #[test]
    fn data_url_each_format() {
        let cases: Vec<(Vec<u8>, ImageFormat, ImageSize)> = vec![
            (png(640, 480), ImageFormat::Png, sz(640, 480)),
            (gif(50, 65), ImageFormat::Gif, sz(50, 65)),
            (webp_vp8(1234, 567), ImageFormat::Webp, sz(1234, 567)),
            (webp_vp8l(300, 346), ImageFormat::Webp, sz(300, 346)),
            (webp_vp8x(512, 149), ImageFormat::Webp, sz(512, 149)),
            (jpeg(512, 512, 0xC0, &[]), ImageFormat::Jpeg, sz(512, 512)),
            (
                jpeg(50, 65, 0xC2, &[seg(0xE1, &[7; 300])]),
                ImageFormat::Jpeg,
                sz(50, 65),
            ),
        ];
        for (bytes, f, s) in cases {
            // declared MIME type is ignored
            for mime in ["image/png", "image/jpeg", "application/octet-stream"] {
                let (got, decoded) = sniff_data_url_counted(&url(mime, &bytes), DEFAULT_MAX_BASE64);
                assert_eq!(got, Some((f, s)), "{mime} {f:?}");
                assert!(decoded <= 72, "{f:?} decoded {decoded}");
            }
        }
        let (_, d) = sniff_data_url_counted(&url("image/png", &png(1, 1)), 1 << 20);
        assert_eq!(d, 28);
        let (_, d) = sniff_data_url_counted(&url("image/gif", &gif(1, 1)), 1 << 20);
        assert_eq!(d, 16);
    }

    #[test]
    fn data_url_jpeg_jumps_over_huge_exif_and_icc() {
        let mut pre = vec![seg(0xE1, &vec![b'x'; 60_000])];
        for _ in 0..4 {
            pre.push(seg(0xE2, &vec![0u8; 50_000]));
        }
        let u = url("image/jpeg", &jpeg(4000, 3000, 0xC2, &pre));
        assert!(u.len() > 300_000);
        let (got, decoded) = sniff_data_url_counted(&u, DEFAULT_MAX_BASE64);
        assert_eq!(got, Some((ImageFormat::Jpeg, sz(4000, 3000))));
        assert!(decoded <= 100, "decoded {decoded}");
        // a tiny budget is still enough
        assert_eq!(
            sniff_data_url(&u, 100),
            Some((ImageFormat::Jpeg, sz(4000, 3000)))
        );
        assert_eq!(sniff_data_url(&u, 20), None);
        // frame header beyond the reach limit: None (raw sniff still finds it)
        let far: Vec<Vec<u8>> = (0..17).map(|_| seg(0xE2, &vec![0u8; 65_000])).collect();
        let j = jpeg(10, 20, 0xC0, &far);
        assert_eq!(sniff(&j), Some((ImageFormat::Jpeg, sz(10, 20))));
        assert_eq!(sniff_data_url(&url("image/jpeg", &j), usize::MAX), None);
    }

    #[test]
    fn data_url_budget_is_respected() {
        let u = url("image/png", &png(640, 480));
        assert_eq!(sniff_data_url(&u, 27), None);
        assert_eq!(
            sniff_data_url(&u, 28),
            Some((ImageFormat::Png, sz(640, 480)))
        );
        assert_eq!(sniff_data_url(&u, 0), None);
        // whitespace fallback: the total stays within the budget
        let wrapped = wrap(&b64(&jpeg(50, 65, 0xC0, &[seg(0xE1, &[3; 2000])])), 76);
        let u = format!("data:image/jpeg;base64,{wrapped}");
        for budget in [0, 10, 100, 1000, 2000, 2700, 5000, 10_000] {
            let (got, decoded) = sniff_data_url_counted(&u, budget);
            assert!(decoded <= budget, "budget {budget} decoded {decoded}");
            // the frame header ends at byte ~2100, i.e. ~2800 base64 characters
            assert_eq!(got.is_some(), budget >= 5000, "budget {budget}");
        }
    }

    fn wrap(s: &str, width: usize) -> String {
        s.as_bytes()
            .chunks(width)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    #[test]
    fn data_url_whitespace_falls_back_to_sequential() {
        let j = jpeg(640, 480, 0xC2, &[seg(0xE1, &[9; 500])]);
        let want = Some((ImageFormat::Jpeg, sz(640, 480)));
        let u = format!("data:image/jpeg;base64,{}", wrap(&b64(&j), 76));
        assert_eq!(sniff_data_url(&u, DEFAULT_MAX_BASE64), want);
        let u = format!(
            "data:image/jpeg;base64,{}\n",
            wrap(&b64(&j), 60).replace("\r\n", "\n ")
        );
        assert_eq!(sniff_data_url(&u, DEFAULT_MAX_BASE64), want);
        // whitespace only after the header: random access still works
        let p = png(3, 4);
        let u = format!("data:image/png;base64,{}\n\n", wrap(&b64(&p), 40));
        assert_eq!(
            sniff_data_url(&u, DEFAULT_MAX_BASE64),
            Some((ImageFormat::Png, sz(3, 4)))
        );
        // a huge EXIF wrapped in lines cannot be jumped over: bounded prefix only
        let big = jpeg(9, 9, 0xC0, &[seg(0xE1, &vec![1; 60_000])]);
        let u = format!("data:image/jpeg;base64,{}", wrap(&b64(&big), 76));
        assert_eq!(sniff_data_url(&u, DEFAULT_MAX_BASE64), None);
        assert_eq!(
            sniff_data_url(&u, 200_000),
            Some((ImageFormat::Jpeg, sz(9, 9)))
        );
    }

    #[test]
    fn data_url_padding_alphabet_and_params() {
        // GIF header alone: 10 bytes -> "....==" ; last needed byte sits in the padded block
        let g = &gif(0x1234, 0x0102)[..10];
        let padded = url("image/gif", g);
        assert!(padded.ends_with("=="));
        let want = Some((ImageFormat::Gif, sz(0x1234, 0x0102)));
        assert_eq!(sniff_data_url(&padded, DEFAULT_MAX_BASE64), want);
        assert_eq!(
            sniff_data_url(padded.trim_end_matches('='), DEFAULT_MAX_BASE64),
            want
        );
        assert_eq!(
            sniff_data_url(&format!("{padded}\r\n"), DEFAULT_MAX_BASE64),
            want
        );
        assert_eq!(
            sniff_data_url(&format!("{padded}="), DEFAULT_MAX_BASE64),
            None
        );
        // URL-safe alphabet: width 0xFFFFFFFF encodes to '/' characters
        let p = png(u32::MAX, 0x00FB_0000); // byte 18 = 0xFF -> '/', byte 21 = 0xFB -> '+'
        let std = url("image/png", &p);
        assert!(std[22..54].contains('/') && std[22..54].contains('+'));
        let safe = std.replace('+', "-").replace('/', "_");
        let want = Some((ImageFormat::Png, sz(u32::MAX, 0x00FB_0000)));
        assert_eq!(sniff_data_url(&std, DEFAULT_MAX_BASE64), want);
        assert_eq!(sniff_data_url(&safe, DEFAULT_MAX_BASE64), want);
        // parameters and case
        let b = b64(&png(2, 3));
        for u in [
            format!("DATA:IMAGE/PNG;BASE64,{b}"),
            format!("data:image/png;charset=utf-8;base64,{b}"),
            format!("data:;base64,{b}"),
        ] {
            assert_eq!(
                sniff_data_url(&u, DEFAULT_MAX_BASE64),
                Some((ImageFormat::Png, sz(2, 3))),
                "{u}"
            );
        }
        for u in [
            format!("data:image/png,{b}"),
            format!("data:image/png;base64x,{b}"),
            format!("https://example.com/x.png?{b}"),
            "data:image/png;base64,".to_string(),
            "data:image/png;base64".to_string(),
            "data:".to_string(),
            "dat".to_string(),
            "".to_string(),
            "dätä:image/png;base64,iVBORw0KGgo".to_string(),
        ] {
            assert_eq!(sniff_data_url(&u, DEFAULT_MAX_BASE64), None, "{u}");
        }
    }

    #[test]
    fn data_url_truncated_and_invalid_base64() {
        let full = b64(&png(640, 480));
        for cut in 0..32 {
            let u = format!("data:image/png;base64,{}", &full[..cut]);
            assert_eq!(sniff_data_url(&u, DEFAULT_MAX_BASE64), None, "cut {cut}");
        }
        assert!(sniff_data_url(&format!("data:image/png;base64,{}", &full[..32]), 64).is_some());
        for bad in [
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!".to_string(),
            format!("{}%2B{}", &full[..8], &full[8..]),
            format!("{}={}", &full[..8], &full[8..]),
            format!("{}é{}", &full[..5], &full[5..]),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string(),
            "////////////////////////////////////////////".to_string(),
        ] {
            let u = format!("data:image/png;base64,{bad}");
            assert_eq!(sniff_data_url(&u, DEFAULT_MAX_BASE64), None, "{bad}");
        }
        // invalid characters after the header are not looked at
        let u = format!("data:image/png;base64,{}!!!!", &full[..32]);
        assert_eq!(
            sniff_data_url(&u, DEFAULT_MAX_BASE64),
            Some((ImageFormat::Png, sz(640, 480)))
        );
    }

    #[test]
    fn lying_header_through_the_pipeline() {
        for img in [
            png(u32::MAX, u32::MAX),
            png(0, 0),
            png(0, u32::MAX),
            webp_vp8x(1 << 24, 1 << 24),
        ] {
            let (_, s) = sniff_data_url(&url("image/png", &img), DEFAULT_MAX_BASE64).unwrap();
            for m in [
                "gpt-4o",
                "gpt-4o-mini",
                "gpt-4.1-mini",
                "o4-mini",
                "gpt-5-nano",
                "gpt-5.2",
            ] {
                let e = image_tokens(m, Detail::Auto, Some(s));
                assert!(e.tokens <= 2833 + 8 * 5667 && e.size_known);
            }
        }
        assert_eq!(toks("gpt-4o", Detail::Auto, u32::MAX, u32::MAX), 765);
        assert_eq!(toks("gpt-4o", Detail::Auto, 0, 0), 85);
        assert_eq!(toks("o4-mini", Detail::Auto, 0, 0), 1);
        assert_eq!(toks("o4-mini", Detail::Auto, u32::MAX, u32::MAX), 2618); // 1521 patches
    }

    #[test]
    fn data_url_random_base64_never_panics() {
        const CH: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_= \n\r\t!%\xc3\xa9";
        let mut rng = Rng(42);
        let prefixes = ["", "/9j/", "iVBORw0KGgo", "R0lGODlh", "UklGR"];
        for i in 0..30_000 {
            let len = rng.below(120) as usize;
            let mut s = prefixes[i % prefixes.len()].to_string();
            let mut raw: Vec<u8> = (0..len)
                .map(|_| CH[rng.below(CH.len() as u64) as usize])
                .collect();
            // keep it valid UTF-8: drop stray continuation bytes
            raw.retain(|&c| c < 0x80);
            s.push_str(std::str::from_utf8(&raw).unwrap());
            let _ = sniff_data_url(
                &format!("data:image/png;base64,{s}"),
                rng.below(200) as usize,
            );
        }
    }
}
