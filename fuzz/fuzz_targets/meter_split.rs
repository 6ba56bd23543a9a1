//! The whole meter: the record for any pieces equals the record for one piece.
//!
//! cfg bit 0: small limits; bit 1: reconcile; bit 2: the body is `request NUL response`;
//! bit 7: one-byte pieces.
#![no_main]
use libfuzzer_sys::fuzz_target;
use usagetap::{meter, Meter};

fuzz_target!(|data: &[u8]| {
    let Some(s) = usagetap_fuzz::split(data) else {
        return;
    };
    let opts = usagetap_fuzz::options(s.cfg);
    let (req, resp) = match s.body.iter().position(|&b| b == 0) {
        Some(i) if s.cfg & 4 != 0 => (&s.body[..i], &s.body[i + 1..]),
        _ => (&[][..], s.body),
    };
    let whole = meter(opts.clone(), req, resp).expect("meter never fails on bytes");
    usagetap_fuzz::check_record(&whole);
    let mut m = Meter::new(opts);
    if !req.trim_ascii().is_empty() {
        let _ = m.request(req);
    }
    for p in s.pieces(resp) {
        m.feed(p).expect("feed never fails before finish");
    }
    let split = m.finish().expect("first finish");
    assert_eq!(split, whole, "record depends on the split");
    assert!(m.finish().is_err() && m.feed(b"x").is_err());
});
