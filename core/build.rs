//! Prepares the token-counting tables at build time so that a process pays nothing for them
//! until it counts, and then only the page faults of the entries it touches:
//!
//! * per encoding (o200k_base, cl100k_base): an open-addressing hash table from token bytes to
//!   rank, laid out as flat little-endian arrays (`include_bytes!`-ed by `src/bpe/mod.rs`);
//! * the Unicode classes the pre-tokenizer patterns use (`\p{L}`, `\p{Lu}`, ..., `\s`), as a
//!   two-stage lookup table.
//!
//! The vocabularies come from tiktoken-rs (the reference the tests compare against), the
//! Unicode classes from regex-syntax (the very tables the reference's regex engine uses), so
//! neither is copied into the repository and both stay in lock-step with `Cargo.lock`.

use std::fmt::Write as _;
use std::path::Path;

include!("src/bpe/hash.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/bpe/hash.rs");
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    let out = Path::new(&out);
    let mut consts = String::new();
    let o200k = tiktoken_rs::o200k_base().expect("o200k_base loads");
    table(out, "o200k", &o200k, &mut consts);
    let cl100k = tiktoken_rs::cl100k_base().expect("cl100k_base loads");
    table(out, "cl100k", &cl100k, &mut consts);
    unicode(out, &mut consts);
    std::fs::write(out.join("bpe_tables.rs"), consts).expect("write bpe_tables.rs");
}

/// Every ordinary token of `bpe`, by rank. Ranks are contiguous from 0 in the OpenAI
/// vocabularies; the first rank that does not decode (or decodes to a special token) ends them.
fn tokens(bpe: &tiktoken_rs::CoreBPE) -> Vec<Vec<u8>> {
    let specials: Vec<Vec<u8>> = bpe
        .special_tokens()
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    let mut v = Vec::new();
    for r in 0u32.. {
        match bpe.decode_bytes(&[r]) {
            Ok(b) if !specials.contains(&b) => v.push(b),
            _ => break,
        }
    }
    v
}

fn table(out: &Path, name: &str, bpe: &tiktoken_rs::CoreBPE, consts: &mut String) {
    let toks = tokens(bpe);
    let n = toks.len();
    assert!(n > 50_000 && n < RANK_MASK as usize, "{name}: {n} tokens");
    // Load factor at most 1/2: probes that miss (most BPE pair probes) stay short.
    let mut bits = 1;
    while (1usize << bits) < 2 * n {
        bits += 1;
    }
    let mut slots = vec![0u8; SLOT << bits];
    for s in slots.chunks_mut(SLOT) {
        s[8..12].copy_from_slice(&EMPTY.to_le_bytes());
    }
    let mask = (1usize << bits) - 1;
    let mut tail = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (rank, t) in toks.iter().enumerate() {
        assert!(
            !t.is_empty() && t.len() <= 255,
            "{name}: token {rank} has {} bytes",
            t.len()
        );
        assert!(seen.insert(t.clone()), "{name}: duplicate token {rank}");
        let mut i = slot_of(hash_bytes(t), bits);
        while slots[i * SLOT + 8..i * SLOT + 12] != EMPTY.to_le_bytes() {
            i = (i + 1) & mask;
        }
        let off = if t.len() > 8 {
            let o = tail.len();
            tail.extend_from_slice(&t[8..]);
            o
        } else {
            0
        };
        let s = &mut slots[i * SLOT..(i + 1) * SLOT];
        s[..8].copy_from_slice(&load8(t).to_le_bytes());
        s[8..12].copy_from_slice(&(rank as u32 | (t.len() as u32) << 24).to_le_bytes());
        s[12..16].copy_from_slice(&(off as u32).to_le_bytes());
    }
    // Two-byte strings (every merge's first probes) get a direct table: 256 KiB, cache-resident.
    let mut pairs = vec![EMPTY; 1 << 16];
    for (rank, t) in toks.iter().enumerate() {
        if t.len() == 2 {
            pairs[usize::from(t[0]) | usize::from(t[1]) << 8] = rank as u32;
        }
    }
    let pair_bytes: Vec<u8> = pairs.iter().flat_map(|r| r.to_le_bytes()).collect();
    std::fs::write(out.join(format!("{name}_pairs.bin")), pair_bytes).expect("write pairs");
    // Counting starts from single bytes: every byte must be a token.
    for b in 0..=255u8 {
        assert!(seen.contains(&vec![b]), "{name}: byte {b} is not a token");
    }
    std::fs::write(out.join(format!("{name}_slots.bin")), slots).expect("write slots");
    std::fs::write(out.join(format!("{name}_tail.bin")), tail).expect("write tail");
    let up = name.to_uppercase();
    let _ = writeln!(consts, "/// Tokens in {name} (ordinary ranks 0..N).");
    let _ = writeln!(
        consts,
        "#[allow(dead_code)]\npub(crate) const {up}_TOKENS: usize = {n};"
    );
    let _ = writeln!(consts, "pub(crate) static {up}: Table = Table {{ bits: {bits}, slots: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}_slots.bin\")), tail: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}_tail.bin\")), pairs: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}_pairs.bin\")) }};");
}

/// Class bits, as `src/bpe/unicode.rs` reads them.
const CLASSES: &[(&str, u8)] = &[
    (r"\p{L}", 1),
    // o200k's "upper" set and "lower" set (marks and modifier/other letters are in both).
    (r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", 2),
    (r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]", 4),
    (r"\p{N}", 8),
    (r"\s", 16),
];

fn unicode(out: &Path, consts: &mut String) {
    let mut cls = vec![0u8; 0x11_0000];
    for (pat, bit) in CLASSES {
        let hir = regex_syntax::ParserBuilder::new()
            .build()
            .parse(pat)
            .expect("class parses");
        let regex_syntax::hir::HirKind::Class(regex_syntax::hir::Class::Unicode(c)) = hir.kind()
        else {
            panic!("{pat} is not a Unicode class");
        };
        for r in c.ranges() {
            for cp in r.start() as u32..=r.end() as u32 {
                cls[cp as usize] |= bit;
            }
        }
    }
    // Two stages: 256-code-point blocks, deduplicated.
    let mut blocks: Vec<&[u8]> = Vec::new();
    let mut stage1 = Vec::new();
    for chunk in cls.chunks(256) {
        let id = match blocks.iter().position(|b| *b == chunk) {
            Some(i) => i,
            None => {
                blocks.push(chunk);
                blocks.len() - 1
            }
        };
        stage1.extend_from_slice(&u16::try_from(id).expect("block ids fit u16").to_le_bytes());
    }
    let stage2: Vec<u8> = blocks.concat();
    std::fs::write(out.join("unicode_stage1.bin"), stage1).expect("write stage1");
    std::fs::write(out.join("unicode_stage2.bin"), stage2).expect("write stage2");
    let _ = writeln!(
        consts,
        "/// Class bits of ASCII (a fixed-size array: no bounds check on the hot path)."
    );
    let _ = writeln!(
        consts,
        "pub(crate) static ASCII: [u8; 128] = {:?};",
        &cls[..128]
    );
    let _ = writeln!(
        consts,
        "/// Block of each 256 code points (u16 little-endian)."
    );
    let _ = writeln!(consts, "pub(crate) static STAGE1: &[u8; 8704] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/unicode_stage1.bin\"));");
    let _ = writeln!(consts, "/// Class bits of each code point, by block.");
    let _ = writeln!(consts, "pub(crate) static STAGE2: &[u8] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/unicode_stage2.bin\"));");
}
