//! Engine-level differential tests: classes against the regex engine's, pieces against
//! fancy-regex running the reference patterns, the two merges against each other, and the
//! tables against tiktoken-rs's vocabularies.

use super::split::{split, Pattern};
use super::table::Scratch;
use super::{tables, unicode};

const CL100K_PAT: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";

fn reference(pattern: Pattern) -> fancy_regex::Regex {
    let pat = match pattern {
        Pattern::O200k => tiktoken_rs::O200K_BASE_PAT_STR,
        Pattern::Cl100k => CL100K_PAT,
    };
    fancy_regex::Regex::new(pat).unwrap()
}

fn ours(pattern: Pattern, text: &str) -> Vec<&str> {
    let mut v = Vec::new();
    let mut at = 0;
    split(pattern, text, |p| {
        v.push(&text[at..at + p.len()]);
        at += p.len();
    });
    v
}

fn theirs<'t>(re: &fancy_regex::Regex, text: &'t str) -> Vec<&'t str> {
    re.find_iter(text).map(|m| m.unwrap().as_str()).collect()
}

pub(crate) fn assert_same_pieces(text: &str) {
    for pattern in [Pattern::O200k, Pattern::Cl100k] {
        thread_local! {
            static RE: [fancy_regex::Regex; 2] = [reference(Pattern::O200k), reference(Pattern::Cl100k)];
        }
        let t: Vec<String> = RE.with(|re| {
            theirs(&re[(pattern == Pattern::Cl100k) as usize], text)
                .into_iter()
                .map(str::to_owned)
                .collect()
        });
        let o = ours(pattern, text);
        assert_eq!(o, t, "{pattern:?} pieces differ on {text:?}");
    }
}

#[test]
fn classes_equal_the_regex_engines_on_every_code_point() {
    let classes = [
        (r"^\p{L}$", unicode::L),
        (r"^[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]$", unicode::U),
        (r"^[\p{Ll}\p{Lm}\p{Lo}\p{M}]$", unicode::W),
        (r"^\p{N}$", unicode::N),
        (r"^\s$", unicode::S),
    ];
    let res: Vec<(regex::Regex, u8)> = classes
        .iter()
        .map(|(p, b)| (regex::Regex::new(p).unwrap(), *b))
        .collect();
    let mut buf = [0u8; 4];
    let mut n = 0;
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        let s = c.encode_utf8(&mut buf);
        let (cls, len) = unicode::at(s.as_bytes(), 0);
        assert_eq!(len, s.len());
        for (re, bit) in &res {
            assert_eq!(
                re.is_match(s),
                cls & bit != 0,
                "U+{:04X} class {bit}",
                c as u32
            );
        }
        n += 1;
    }
    assert_eq!(n, 0x10FFFF + 1 - 0x800);
}

#[test]
fn contraction_letters_fold_as_the_regex_engine_folds() {
    // Every character that case-insensitively matches a contraction letter must be handled.
    let re = regex::Regex::new(r"^(?i:[sdmtlvre])$").unwrap();
    let mut folded = Vec::new();
    let mut buf = [0u8; 4];
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        if re.is_match(c.encode_utf8(&mut buf)) {
            folded.push(c);
        }
    }
    for c in &folded {
        for (a, b) in [("'", ""), ("'", "e"), ("'", "l")] {
            assert_same_pieces(&format!("x{a}{c}{b}"));
            assert_same_pieces(&format!("X{a}{b}{c} {a}{c}{c}"));
        }
    }
    assert!(folded.contains(&'\u{17F}'), "{folded:?}");
}

#[test]
fn tricky_pieces_equal_the_reference() {
    let cases = [
        "",
        " ",
        "  ",
        "a",
        "Hello, world!",
        "don't DON'T Don'T we'll WE'LL I'm I'M you're YOU'VE he'd",
        "'s 's 'S x'S x'sa x'ſ",
        "  hello  world  ",
        "a\n\nb",
        "a \n \n b",
        "a\r\n\r\nb",
        "\n\n",
        "  \n  ",
        "x  ",
        "x \t ",
        "1234567",
        "١٢٣٤٥",
        "12a34",
        "a1b2",
        " 123",
        "  123",
        "!!!",
        " !!!\n\n/",
        "a//b\n/",
        "\u{a0}hello",
        "\u{a0}\u{a0}x",
        "x\u{a0}",
        "e\u{301}",
        "\u{301}A",
        "\u{301}Ab",
        "AB\u{301}c",
        "ǅungla",
        "ǅǅ",
        "ªAAA",
        "AªA",
        "HELLOworld",
        "helloWORLD",
        "東京タワー",
        "😀😀 😀",
        " 😀!",
        "مرحبا بالعالم",
        "שָׁלוֹם",
        "<|endoftext|>",
        "__init__",
        "a\u{2028}b",
        "\u{3000}x",
        "  \u{3000}",
        "\u{85}\u{85}",
        "\t\t\n\t",
        "x'\u{301}",
        "Σίσυφος",
        "ǈǉǊ",
        "ⅫⅫ",
        "x\r",
        "\r",
        "\r\r\n x",
        "'",
        "''",
        "' ",
        "a'",
        "a'll've",
    ];
    for c in cases {
        assert_same_pieces(c);
    }
}

#[test]
fn small_and_heap_merges_agree() {
    let texts = [
        "abcdefghijklmnopqrstuvwxyz".repeat(9),
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            .into(),
        "東京タワーの夜景はきれいです".repeat(5),
        "🙂🙃😀".repeat(20),
        "_-_=".repeat(40),
        "thequickbrownfoxjumpsoverthelazydog".repeat(4),
    ];
    let mut s = Scratch::default();
    for t in &texts {
        for table in [&tables::O200K, &tables::CL100K] {
            let b = t.as_bytes();
            for len in [2, 3, 7, 16, 33, 64, b.len()] {
                for start in [0, 1, 5] {
                    if start + len <= b.len() {
                        let p = &b[start..start + len];
                        assert_eq!(
                            table.merge_small(p, &mut s),
                            table.merge_heap(p, &mut s),
                            "{p:?}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn tables_hold_every_token_of_the_reference() {
    let pairs = [
        (
            &tables::O200K,
            tiktoken_rs::o200k_base_singleton(),
            tables::O200K_TOKENS,
        ),
        (
            &tables::CL100K,
            tiktoken_rs::cl100k_base_singleton(),
            tables::CL100K_TOKENS,
        ),
    ];
    for (table, bpe, n) in pairs {
        for r in 0..n as u32 {
            let b = bpe.decode_bytes(&[r]).unwrap();
            assert_eq!(table.rank(&b), r);
            // A byte string one byte longer or shorter is either another token or none.
            let mut longer = b.clone();
            longer.push(0xFF);
            assert_ne!(table.rank(&longer), r);
        }
        assert_eq!(table.rank(b"this is surely no token at all"), u32::MAX);
    }
}

mod generated {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        /// Strings dense in the characters where the patterns' alternatives meet.
        #[test]
        fn pieces_equal_the_reference_on_dense_mixes(
            s in "[ \t\r\n\u{a0}\u{3000}'sStTdDmMlLrReEvV\u{17f}aZxǅª\u{2b0}\u{301}\u{64b}05١Ⅻ!_/.東😀بש]{0,40}"
        ) {
            super::assert_same_pieces(&s);
        }

        #[test]
        fn pieces_equal_the_reference_on_arbitrary_strings(s in "\\PC{0,48}") {
            super::assert_same_pieces(&s);
        }
    }
}
