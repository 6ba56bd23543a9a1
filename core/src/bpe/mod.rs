//! The token-counting engine under [`Encoding::count`](crate::Encoding::count) for o200k_base,
//! o200k_harmony and cl100k_base: a hand-written pre-tokenizer equivalent to each encoding's
//! regex pattern, then tiktoken's byte-pair merge over rank tables prepared at build time.
//!
//! Only the number of tokens is needed, never their ids, so a piece that is itself a token
//! (most pieces of real text) costs one hash probe. Pieces that are not are merged exactly as
//! tiktoken merges them (lowest rank first, leftmost on ties): with tiktoken's quadratic loop
//! when short, with a heap when long, so that pathological inputs stay near-linear.
//!
//! The tables are flat arrays in the binary (`include_bytes!`): nothing is built at run time,
//! a process that never counts never touches them, and the first count costs page faults only.

mod split;
mod table;
mod unicode;

#[cfg(test)]
mod tests;

#[allow(missing_docs)]
mod tables {
    use super::table::Table;
    include!(concat!(env!("OUT_DIR"), "/bpe_tables.rs"));
}

pub(crate) use split::Pattern;

/// Number of ordinary-text tokens of `text` in the encoding of `pattern` (o200k or cl100k);
/// equal to `tiktoken`'s `len(encode_ordinary(text))`.
pub(crate) fn count(pattern: Pattern, text: &str) -> usize {
    let table = match pattern {
        Pattern::O200k => &tables::O200K,
        Pattern::Cl100k => &tables::CL100K,
    };
    let mut scratch = table::Scratch::default();
    let mut total = 0;
    split::split(pattern, text, |piece| {
        total += table.count_piece(piece, &mut scratch)
    });
    total
}
