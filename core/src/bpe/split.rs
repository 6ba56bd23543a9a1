//! Hand-written pre-tokenizers, match for match equal to the reference's regex patterns run by
//! fancy-regex (leftmost-first alternation with backtracking). Each `next_*` returns the end of
//! the piece that starts at `i`; every function is linear in what it scans, and a position is
//! scanned a bounded number of times, so splitting is linear in the text.

use super::unicode::{at, L, N, S, U, W};

/// The regex patterns the engine reproduces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// o200k_base and o200k_harmony.
    O200k,
    /// cl100k_base.
    Cl100k,
}

/// Calls `f` with every piece of `text`, in order; the pieces concatenate to `text`.
#[inline]
pub(crate) fn split(pattern: Pattern, text: &str, mut f: impl FnMut(&[u8])) {
    let b = text.as_bytes();
    let mut i = 0;
    match pattern {
        Pattern::O200k => {
            while i < b.len() {
                let e = next_o200k(b, i);
                f(&b[i..e]);
                i = e;
            }
        }
        Pattern::Cl100k => {
            while i < b.len() {
                let e = next_cl100k(b, i);
                f(&b[i..e]);
                i = e;
            }
        }
    }
}

#[inline(always)]
fn is_newline(x: u8) -> bool {
    x == b'\r' || x == b'\n'
}

/// End of the run of characters with any of `mask`'s class bits, from `j`.
#[inline(always)]
fn run(b: &[u8], mut j: usize, mask: u8) -> usize {
    while j < b.len() {
        let (c, l) = at(b, j);
        if c & mask == 0 {
            break;
        }
        j += l;
    }
    j
}

/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+` anchored at `j`, with
/// backtracking: the greedy upper run, then a lower run after it; failing that, the upper run
/// gives characters back until one of them is also "lower" (the last such one ends the match).
#[inline(always)]
fn upper_lower(b: &[u8], j: usize) -> Option<usize> {
    let mut k = j;
    let mut last_lower_end = None;
    while k < b.len() {
        let (c, l) = at(b, k);
        if c & U == 0 {
            if c & W != 0 {
                return Some(run(b, k + l, W));
            }
            break;
        }
        k += l;
        if c & W != 0 {
            last_lower_end = Some(k);
        }
    }
    last_lower_end
}

/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*` anchored at `j`.
#[inline(always)]
fn upper_then_lower(b: &[u8], j: usize) -> Option<usize> {
    let k = run(b, j, U);
    (k > j).then(|| run(b, k, W))
}

/// Length of `s|t|m|d|re|ve|ll` at the start of `r`, case-insensitively as the regex engine
/// folds (simple case folding also maps U+017F LATIN SMALL LETTER LONG S to `s`).
#[inline(always)]
fn contraction_len(r: &[u8]) -> Option<usize> {
    let x = *r.first()?;
    match x | 0x20 {
        b's' | b't' | b'm' | b'd' => Some(1),
        b'r' | b'v' if r.get(1).is_some_and(|&y| y | 0x20 == b'e') => Some(2),
        b'l' if r.get(1).is_some_and(|&y| y | 0x20 == b'l') => Some(2),
        _ if x == 0xC5 && r.get(1) == Some(&0xBF) => Some(2),
        _ => None,
    }
}

/// An optional `(?i:'s|'t|'re|'ve|'m|'ll|'d)` after `e`.
#[inline(always)]
fn suffix(b: &[u8], e: usize) -> usize {
    if b.get(e) == Some(&b'\'') {
        if let Some(l) = contraction_len(&b[e + 1..]) {
            return e + 1 + l;
        }
    }
    e
}

/// Up to three `\p{N}` from `i` (the first is known to be one).
#[inline(always)]
fn digits(b: &[u8], i: usize, l0: usize) -> usize {
    let mut e = i + l0;
    for _ in 0..2 {
        if e >= b.len() {
            break;
        }
        let (c, l) = at(b, e);
        if c & N == 0 {
            break;
        }
        e += l;
    }
    e
}

/// ` ?[^\s\p{L}\p{N}]+` then greedy bytes of `tail` (`[\r\n/]*` or `[\r\n]*`); `None` when
/// neither `i` nor (after a space) `i + 1` starts a run of "other" characters.
#[inline(always)]
fn punct(b: &[u8], i: usize, c0: u8, slash: bool) -> Option<usize> {
    const NOT_OTHER: u8 = S | L | N;
    let j = if b[i] == b' ' && i + 1 < b.len() && at(b, i + 1).0 & NOT_OTHER == 0 {
        i + 1
    } else if c0 & NOT_OTHER == 0 {
        i
    } else {
        return None;
    };
    let mut e = j;
    while e < b.len() {
        let (c, l) = at(b, e);
        if c & NOT_OTHER != 0 {
            break;
        }
        e += l;
    }
    while e < b.len() && (is_newline(b[e]) || (slash && b[e] == b'/')) {
        e += 1;
    }
    Some(e)
}

/// A whitespace run from `i`: (end of run, start of its last character, last CR/LF in it).
#[inline(always)]
fn space_run(b: &[u8], i: usize) -> (usize, usize, Option<usize>) {
    let mut k = i;
    let mut last = i;
    let mut nl = None;
    while k < b.len() {
        let (c, l) = at(b, k);
        if c & S == 0 {
            break;
        }
        if is_newline(b[k]) {
            nl = Some(k);
        }
        last = k;
        k += l;
    }
    (k, last, nl)
}

/// One match of o200k's pattern at `i` (`i < b.len()`):
/// ```text
/// [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
/// |[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
/// |\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
/// ```
pub(crate) fn next_o200k(b: &[u8], i: usize) -> usize {
    let (c0, l0) = at(b, i);
    let prefix = c0 & (L | N) == 0 && !is_newline(b[i]);
    if prefix || c0 & (U | W) != 0 {
        // Alternation order: first alternative with, then without the prefix; then the second.
        if prefix {
            if let Some(e) = upper_lower(b, i + l0) {
                return suffix(b, e);
            }
        }
        if let Some(e) = upper_lower(b, i) {
            return suffix(b, e);
        }
        if prefix {
            if let Some(e) = upper_then_lower(b, i + l0) {
                return suffix(b, e);
            }
        }
        if let Some(e) = upper_then_lower(b, i) {
            return suffix(b, e);
        }
    }
    if c0 & N != 0 {
        return digits(b, i, l0);
    }
    if let Some(e) = punct(b, i, c0, true) {
        return e;
    }
    if c0 & S != 0 {
        let (k, last, nl) = space_run(b, i);
        // `\s*[\r\n]+`: backtracks to the last newline of the run.
        if let Some(e) = nl {
            return e + 1;
        }
        // `\s+(?!\S)`: the whole run at the end of the text, else all but its last character.
        if k == b.len() {
            return k;
        }
        if last > i {
            return last;
        }
        // `\s+`: a single whitespace character.
        return k;
    }
    // Unreachable (every character is a letter, number, space or other); the regex would skip
    // the character, and so does this.
    i + l0
}

/// One match of cl100k's pattern at `i` (`i < b.len()`):
/// ```text
/// '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+
/// |\s++$|\s*[\r\n]|\s+(?!\S)|\s
/// ```
pub(crate) fn next_cl100k(b: &[u8], i: usize) -> usize {
    let (c0, l0) = at(b, i);
    if b[i] == b'\'' {
        if let Some(l) = contraction_len(&b[i + 1..]) {
            return i + 1 + l;
        }
    }
    if c0 & L != 0 {
        return run(b, i + l0, L);
    }
    if c0 & N == 0 && !is_newline(b[i]) {
        // The possessive prefix never gives its character back; without it the alternative
        // could not match anyway (the character is no letter).
        let j = i + l0;
        if j < b.len() && at(b, j).0 & L != 0 {
            return run(b, j, L);
        }
    }
    if c0 & N != 0 {
        return digits(b, i, l0);
    }
    if let Some(e) = punct(b, i, c0, false) {
        return e;
    }
    if c0 & S != 0 {
        let (k, last, nl) = space_run(b, i);
        // `\s++$`
        if k == b.len() {
            return k;
        }
        // `\s*[\r\n]`
        if let Some(e) = nl {
            return e + 1;
        }
        // `\s+(?!\S)`
        if last > i {
            return last;
        }
        // `\s`
        return i + l0;
    }
    i + l0
}
