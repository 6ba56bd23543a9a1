//! Helpers shared by the fuzz targets.
//!
//! Split targets read their input as `[cfg, n, cut₁ (u16 LE), …, cutₙ, body…]`: `cfg` chooses
//! options (each target says how; bit 7 always means "feed one byte at a time"), `n % 16` cut
//! points follow, and the rest is the body. The seed script writes `[0, 0]` + a recorded body.

/// A split input: options byte, cut points (raw, reduced modulo the piece's length on use) and
/// the body.
pub struct Split<'a> {
    /// Option bits; bit 7 = one-byte pieces.
    pub cfg: u8,
    /// Raw cut points.
    pub cuts: Vec<usize>,
    /// The body.
    pub body: &'a [u8],
}

/// Reads a split input; `None` when it is too short for its own header.
pub fn split(data: &[u8]) -> Option<Split<'_>> {
    let (&cfg, rest) = data.split_first()?;
    let (&n, rest) = rest.split_first()?;
    let n = usize::from(n % 16);
    if rest.len() < 2 * n {
        return None;
    }
    let (c, body) = rest.split_at(2 * n);
    let cuts = c
        .chunks(2)
        .map(|p| usize::from(u16::from_le_bytes([p[0], p[1]])))
        .collect();
    Some(Split { cfg, cuts, body })
}

impl Split<'_> {
    /// `bytes` cut at the cut points (or into single bytes when bit 7 of `cfg` is set).
    pub fn pieces<'b>(&self, bytes: &'b [u8]) -> Vec<&'b [u8]> {
        if self.cfg & 0x80 != 0 {
            return bytes.chunks(1).collect();
        }
        let mut at: Vec<usize> = self.cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        at.sort_unstable();
        let mut out = Vec::with_capacity(at.len() + 1);
        let mut prev = 0;
        for a in at {
            out.push(&bytes[prev..a]);
            prev = a;
        }
        out.push(&bytes[prev..]);
        out
    }
}

/// Standard base64 with padding (the image target's own encoder, independent of the core's
/// decoder).
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// The meter options of the split targets: cfg bit 0 small limits, bit 1 reconcile.
pub fn options(cfg: u8) -> usagetap::MeterOptions {
    let mut opts = usagetap::MeterOptions::default();
    if cfg & 1 != 0 {
        opts.limits = small_limits();
    }
    opts.reconcile = cfg & 2 != 0;
    opts
}

/// Small limits, so that the limit paths are reached by short inputs.
pub fn small_limits() -> usagetap::Limits {
    usagetap::Limits {
        max_line_bytes: 64,
        max_body_bytes: 256,
        max_text_bytes: 48,
        max_choices: 2,
        max_tool_calls: 2,
        max_json_depth: 4,
        max_images: 1,
        max_image_base64: 16,
    }
}

/// Asserts that a record's JSON form is valid JSON.
pub fn check_record(r: &usagetap::UsageRecord) {
    let j = r.to_json();
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&j) {
        panic!("record JSON is invalid ({e}): {j}");
    }
}
