// The key hash of the rank tables. Shared verbatim (`include!`) by `build.rs`, which lays out
// the tables, and the engine, which probes them: the two must never disagree.

/// Odd multipliers (golden ratio and a splitmix64 constant).
const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xBF58_476D_1CE4_E5B9;

/// The first (at most) 8 bytes of `b`, zero-padded, little-endian.
#[inline(always)]
fn load8(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = if b.len() < 8 { b.len() } else { 8 };
    a[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(a)
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

/// Bits of a slot holding the rank; the rest hold a tag of the hash so that most probes that
/// miss never touch the token record.
const RANK_BITS: u32 = 18;
const RANK_MASK: u32 = (1 << RANK_BITS) - 1;
/// An empty slot (its rank field exceeds every rank).
const EMPTY: u32 = u32::MAX;

/// Slot index and tag of hash `h` in a table of `1 << bits` slots.
#[inline(always)]
fn slot_and_tag(h: u64, bits: u32) -> (usize, u32) {
    let idx = (h >> (64 - bits)) as usize;
    let tag = ((h >> (64 - bits - (32 - RANK_BITS))) as u32) & (u32::MAX >> RANK_BITS);
    (idx, tag)
}
