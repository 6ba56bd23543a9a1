//! Split invariance: any split of a real recorded response gives the record of the whole body.

mod common;

use proptest::prelude::*;
use usagetap::{Meter, MeterOptions, UsageRecord};

fn record(request: &[u8], pieces: &[&[u8]], reconcile: bool) -> UsageRecord {
    let opts = MeterOptions {
        reconcile,
        ..MeterOptions::default()
    };
    let mut m = Meter::new(opts);
    let _ = m.request(request);
    for p in pieces {
        m.feed(p).expect("feed");
    }
    m.finish().expect("finish")
}

/// Streams (chat, completions and Responses API) from the corpus, small ones first so that
/// 1-byte feeding stays quick.
fn streams() -> Vec<common::Rec> {
    let mut v: Vec<_> = common::load().into_iter().filter(|r| r.stream).collect();
    v.sort_by_key(|r| r.response.len());
    v
}

#[test]
fn one_byte_pieces_give_the_same_record_for_every_stream() {
    let recs = streams();
    assert!(recs.len() > 500, "{} streams", recs.len());
    for r in &recs {
        let body = r.response.as_bytes();
        let whole = record(&r.request, &[body], true);
        let ones: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(record(&r.request, &ones, true), whole, "{}", r.id);
    }
}

#[test]
fn json_bodies_split_anywhere_give_the_same_record() {
    let recs: Vec<_> = common::load()
        .into_iter()
        .filter(|r| !r.stream)
        .take(300)
        .collect();
    for r in &recs {
        let body = r.response.as_bytes();
        let whole = record(&r.request, &[body], false);
        for step in [1usize, 3, 64] {
            let pieces: Vec<&[u8]> = body.chunks(step).collect();
            assert_eq!(
                record(&r.request, &pieces, false),
                whole,
                "{} step {step}",
                r.id
            );
        }
    }
}

fn split_at_points<'a>(body: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (body.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut last = 0;
    for c in cuts {
        out.push(&body[last..c]);
        last = c;
    }
    out.push(&body[last..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random cut points (including empty pieces and cuts inside multi-byte UTF-8 characters).
    #[test]
    fn random_splits_of_real_streams(pick in any::<prop::sample::Index>(),
                                     points in prop::collection::vec(any::<usize>(), 0..64),
                                     reconcile in any::<bool>()) {
        thread_local!(static RECS: Vec<common::Rec> = streams());
        RECS.with(|recs| {
            let r = &recs[pick.index(recs.len())];
            let body = r.response.as_bytes();
            let whole = record(&r.request, &[body], reconcile);
            let pieces = split_at_points(body, &points);
            prop_assert_eq!(record(&r.request, &pieces, reconcile), whole, "{}", r.id);
            Ok(())
        })?;
    }

    /// Streams with non-ASCII text cut at every byte of one multi-byte character.
    #[test]
    fn cuts_inside_utf8_characters(pick in any::<prop::sample::Index>()) {
        thread_local!(static RECS: Vec<common::Rec> =
            streams().into_iter().filter(|r| !r.response.is_ascii()).collect());
        RECS.with(|recs| {
            prop_assume!(!recs.is_empty());
            let r = &recs[pick.index(recs.len())];
            let body = r.response.as_bytes();
            let at = body.iter().position(|b| *b >= 0x80).expect("non-ASCII byte");
            let whole = record(&r.request, &[body], true);
            for cut in at..(at + 4).min(body.len()) {
                prop_assert_eq!(record(&r.request, &[&body[..cut], &body[cut..]], true), whole.clone(), "{} cut {}", r.id, cut);
            }
            Ok(())
        })?;
    }
}
