// The key hash of the rank tables. Shared verbatim (`include!`) by `build.rs`, which lays out
// the tables, and the engine, which probes them: the two must never disagree.

/// Odd multipliers (golden ratio and a splitmix64 constant).
const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xBF58_476D_1CE4_E5B9;

/// The first (at most) 8 bytes of `b`, zero-padded, little-endian. Overlapping loads instead
/// of a variable-length copy (which compiles to a `memcpy` call).
#[inline(always)]
fn load8(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 8 {
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    } else if n >= 4 {
        let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
        let hi = u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]) as u64;
        lo | (hi << ((n - 4) * 8))
    } else if n > 0 {
        (b[0] as u64) | ((b[n / 2] as u64) << (8 * (n / 2))) | ((b[n - 1] as u64) << (8 * (n - 1)))
    } else {
        0
    }
}

/// Hash of a byte string. Short tokens (the vast majority) cost two multiplies; the length is
/// mixed in so that `"a"` and `"a\0"` differ.
#[inline(always)]
fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = load8(b) ^ ((b.len() as u64) << 56);
    let mut rest = if b.len() > 8 { &b[8..] } else { &[][..] };
    while !rest.is_empty() {
        h = h.wrapping_mul(K1).rotate_left(29) ^ load8(rest);
        rest = if rest.len() > 8 { &rest[8..] } else { &[][..] };
    }
    h = h.wrapping_mul(K1);
    h ^= h >> 31;
    h.wrapping_mul(K2)
}

/// A slot is 16 bytes: the token's first 8 bytes (zero-padded), then `rank | len << 24`, then
/// the offset of its bytes after the 8th in the tail array. Keeping the key in the slot makes a
/// probe one cache miss; an empty slot has `u32::MAX` as its rank word.
const SLOT: usize = 16;
/// An empty slot's rank word (its rank field exceeds every rank).
const EMPTY: u32 = u32::MAX;
/// Bits of the rank word holding the rank.
const RANK_MASK: u32 = (1 << 24) - 1;

/// Slot index of hash `h` in a table of `1 << bits` slots.
#[inline(always)]
fn slot_of(h: u64, bits: u32) -> usize {
    (h >> (64 - bits)) as usize
}
