//! The fast chunk path against the full decoder: for any bytes, the meter gives the same record
//! with the fast path on and off. (The fast path may decline anything; it may never read a
//! payload differently, or accept one the full decoder rejects.)
//!
//! cfg bit 0: small limits; bit 1: reconcile (the text itself is compared through its count);
//! bit 7: one-byte pieces.
#![no_main]
use libfuzzer_sys::fuzz_target;
use usagetap::meter::set_fast_path;
use usagetap::{Meter, MeterOptions, UsageRecord};

fn run(s: &usagetap_fuzz::Split<'_>, opts: &MeterOptions, fast: bool) -> UsageRecord {
    set_fast_path(fast);
    let mut m = Meter::new(opts.clone());
    for p in s.pieces(s.body) {
        m.feed(p).expect("feed never fails before finish");
    }
    let r = m.finish().expect("first finish");
    set_fast_path(true);
    r
}

fuzz_target!(|data: &[u8]| {
    let Some(s) = usagetap_fuzz::split(data) else {
        return;
    };
    let opts = usagetap_fuzz::options(s.cfg);
    let fast = run(&s, &opts, true);
    let full = run(&s, &opts, false);
    assert_eq!(fast, full, "the fast path read the stream differently");
});
