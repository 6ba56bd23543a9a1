//! Character classes of the pre-tokenizer patterns, from tables generated at build time out of
//! the reference regex engine's own Unicode data (see `build.rs`).

use super::tables::{ASCII, STAGE1, STAGE2};

/// `\p{L}`.
pub(crate) const L: u8 = 1;
/// o200k's upper set `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`.
pub(crate) const U: u8 = 2;
/// o200k's lower set `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`.
pub(crate) const W: u8 = 4;
/// `\p{N}`.
pub(crate) const N: u8 = 8;
/// `\s` (Unicode White_Space).
pub(crate) const S: u8 = 16;

/// Class bits of code point `cp` (any value; beyond U+10FFFF: none).
#[inline(always)]
pub(crate) fn class(cp: u32) -> u8 {
    let blk = (cp >> 8) as usize;
    let id = match STAGE1.get(2 * blk..2 * blk + 2) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]) as usize,
        None => return 0,
    };
    STAGE2
        .get(id * 256 + (cp & 0xFF) as usize)
        .copied()
        .unwrap_or(0)
}

/// Class bits and UTF-8 length of the character starting at byte `i` of `b`, which must be
/// the bytes of a `str` with `i` on a character boundary and in bounds.
#[inline(always)]
pub(crate) fn at(b: &[u8], i: usize) -> (u8, usize) {
    let x = b[i];
    if x < 0x80 {
        (ASCII[(x & 0x7F) as usize], 1)
    } else {
        let (cp, len) = decode(b, i);
        (class(cp), len)
    }
}

/// The non-ASCII character starting at `b[i]` and its length. Valid UTF-8 is assumed; on a
/// truncated sequence the missing bytes read as zero instead of panicking.
#[inline(always)]
fn decode(b: &[u8], i: usize) -> (u32, usize) {
    let byte = |k: usize| b.get(i + k).map_or(0, |&x| (x & 0x3F) as u32);
    let x = b[i] as u32;
    if x < 0xE0 {
        (((x & 0x1F) << 6) | byte(1), 2)
    } else if x < 0xF0 {
        (((x & 0x0F) << 12) | (byte(1) << 6) | byte(2), 3)
    } else {
        (
            ((x & 0x07) << 18) | (byte(1) << 12) | (byte(2) << 6) | byte(3),
            4,
        )
    }
}
