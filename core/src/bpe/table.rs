//! Rank lookup in the build-time hash tables, and the byte-pair merge that counts the tokens of
//! one piece.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

include!("hash.rs");

/// Pieces this long or longer merge with a heap (O(n log n)); shorter ones with tiktoken's
/// O(n²) loop, whose rescans cost less than heap upkeep while a piece is short. Real text
/// almost never reaches it (9 of 3.9 million corpus pieces); it bounds the pathological cases.
const HEAP_FROM: usize = 128;

/// Rank of a byte string that is no token.
const NONE: u32 = u32::MAX;

/// An open-addressing (linear probing) table from token bytes to rank, laid out by `build.rs`:
/// `slots` holds `1 << bits` slots of [`SLOT`] bytes (see `hash.rs`); `tail` holds the bytes
/// after the 8th of longer tokens; `pairs` holds the rank (or [`EMPTY`]) of every two-byte
/// string, `b[0] | b[1] << 8`, as little-endian u32: merges start by probing every adjacent
/// byte pair, and this table stays in cache where the hash table cannot.
pub(crate) struct Table {
    pub(crate) bits: u32,
    pub(crate) slots: &'static [u8],
    pub(crate) tail: &'static [u8],
    pub(crate) pairs: &'static [u8; 1 << 18],
}

/// No token is longer (checked by `build.rs`).
const MAX_TOKEN_LEN: usize = 255;

/// Reusable buffers of the merge, kept across the pieces of one count.
#[derive(Default)]
pub(crate) struct Scratch {
    parts: Vec<(u32, u32)>,
    next: Vec<usize>,
    prev: Vec<usize>,
    pair: Vec<u32>,
    heap: BinaryHeap<Reverse<(u32, usize)>>,
}

impl Table {
    /// Rank of `b`, or [`NONE`] when it is no token.
    #[inline]
    pub(crate) fn rank(&self, b: &[u8]) -> u32 {
        if b.len() == 2 {
            let i = (usize::from(b[0]) | usize::from(b[1]) << 8) * 4;
            let r = &self.pairs[i..i + 4];
            return u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
        }
        let mut i = slot_of(hash_bytes(b), self.bits);
        let mask = (1usize << self.bits) - 1;
        let key = load8(b);
        // The table is at most half full, so the probe meets an empty slot.
        loop {
            let Some(s) = self.slots.get(i * SLOT..i * SLOT + SLOT) else {
                return NONE;
            };
            let word = u32::from_le_bytes([s[8], s[9], s[10], s[11]]);
            if word == EMPTY {
                return NONE;
            }
            let k = u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
            if k == key && (word >> 24) as usize == b.len() {
                if b.len() <= 8 {
                    return word & RANK_MASK;
                }
                let off = u32::from_le_bytes([s[12], s[13], s[14], s[15]]) as usize;
                if self.tail.get(off..off + b.len() - 8) == Some(&b[8..]) {
                    return word & RANK_MASK;
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Number of tokens of one piece.
    #[inline]
    pub(crate) fn count_piece(&self, p: &[u8], s: &mut Scratch) -> usize {
        if p.len() <= 1 || (p.len() <= MAX_TOKEN_LEN && self.rank(p) != NONE) {
            return p.len().min(1);
        }
        if p.len() < HEAP_FROM {
            self.merge_small(p, s)
        } else {
            self.merge_heap(p, s)
        }
    }

    /// tiktoken's `_byte_pair_merge`: parts as (start, rank of the pair starting there); merge
    /// the lowest-ranked pair (leftmost on ties) until no pair is a token. Returns the number
    /// of parts left. Meant for short pieces (positions are u32).
    pub(crate) fn merge_small(&self, p: &[u8], s: &mut Scratch) -> usize {
        let parts = &mut s.parts;
        parts.clear();
        let n = p.len();
        if n < 2 {
            return n;
        }
        for i in 0..n - 1 {
            parts.push((i as u32, self.rank(&p[i..i + 2])));
        }
        parts.push(((n - 1) as u32, NONE));
        parts.push((n as u32, NONE));
        let rank_of = |parts: &[(u32, u32)], i: usize| -> u32 {
            if i + 3 < parts.len() {
                self.rank(&p[parts[i].0 as usize..parts[i + 3].0 as usize])
            } else {
                NONE
            }
        };
        loop {
            let mut min = (NONE, 0usize);
            for (i, &(_, r)) in parts[..parts.len() - 1].iter().enumerate() {
                if r < min.0 {
                    min = (r, i);
                }
            }
            if min.0 == NONE {
                break;
            }
            let i = min.1;
            if i > 0 {
                parts[i - 1].1 = rank_of(parts, i - 1);
            }
            parts[i].1 = rank_of(parts, i);
            parts.remove(i + 1);
        }
        parts.len() - 1
    }

    /// The same merge with a heap of (rank, start) pairs and a linked list of parts: the heap
    /// pops the lowest rank, leftmost start first, exactly tiktoken's choice; entries made
    /// stale by earlier merges are recognised because the pair at their start no longer has
    /// their rank (a rank determines the pair's bytes, hence its extent).
    pub(crate) fn merge_heap(&self, p: &[u8], s: &mut Scratch) -> usize {
        let n = p.len();
        let (next, prev, pair, heap) = (&mut s.next, &mut s.prev, &mut s.pair, &mut s.heap);
        next.clear();
        prev.clear();
        pair.clear();
        heap.clear();
        // Positions stay `usize`: a piece may be longer than 4 GiB.
        next.extend(1..=n);
        prev.extend((0..n).map(|i| i.wrapping_sub(1)));
        // The initial pairs are heapified in one O(n) pass rather than pushed one by one.
        let mut initial = std::mem::take(heap).into_vec();
        initial.clear();
        for i in 0..n {
            let r = if i + 1 < n {
                self.rank(&p[i..i + 2])
            } else {
                NONE
            };
            pair.push(r);
            if r != NONE {
                initial.push(Reverse((r, i)));
            }
        }
        *heap = BinaryHeap::from(initial);
        let mut parts = n;
        while let Some(Reverse((r, i))) = heap.pop() {
            if pair[i] != r {
                continue;
            }
            // Merge part `i` with its successor `j`; the merged part ends where `j` ended.
            let j = next[i];
            let k = next[j];
            next[i] = k;
            if k < n {
                prev[k] = i;
            }
            pair[j] = NONE;
            parts -= 1;
            pair[i] = if k < n {
                self.rank(&p[i..next[k]])
            } else {
                NONE
            };
            if pair[i] != NONE {
                heap.push(Reverse((pair[i], i)));
            }
            if i > 0 {
                let h = prev[i];
                pair[h] = self.rank(&p[h..k]);
                if pair[h] != NONE {
                    heap.push(Reverse((pair[h], h)));
                }
            }
        }
        parts
    }
}
