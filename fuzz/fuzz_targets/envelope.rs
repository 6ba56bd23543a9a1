//! APIM envelopes: `Envelope::parse` and `meter_envelope`, with default and small limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use usagetap::adapters::{meter_envelope, ConsumerHasher, Envelope};
use usagetap::MeterOptions;

fuzz_target!(|data: &[u8]| {
    let parsed = Envelope::parse(data);
    let h = ConsumerHasher::new(b"fuzz");
    let small = MeterOptions {
        limits: usagetap_fuzz::small_limits(),
        ..MeterOptions::default()
    };
    for opts in [MeterOptions::default(), small] {
        let r = meter_envelope(data, &opts, &h);
        assert_eq!(r.is_ok(), parsed.is_ok());
        if let Ok(r) = r {
            usagetap_fuzz::check_record(&r.record);
            if let Some(c) = &r.consumer {
                assert!(c.len() == 32 && c.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
    }
});
