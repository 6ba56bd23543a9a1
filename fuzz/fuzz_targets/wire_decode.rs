//! Response decoding (`wire::decode`) and the lenient top-level scanner (`json_scan`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use usagetap::{json_scan, wire};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = wire::decode(data) {
        // Exercise what the meter reads.
        let _ = format!("{m:?}");
        if let Some(u) = &m.usage {
            let _ = u.prompt_tokens.and_then(wire::Count::get);
        }
    }
    if let Some(obj) = json_scan::scan_object(data) {
        let mut prev = obj.open;
        for f in &obj.fields {
            assert!(prev < f.key_span.start && f.key_span.end <= f.value_span.start);
            assert!(f.value_span.end <= data.len());
            prev = f.value_span.start.max(f.key_span.end - 1);
            let raw = f.raw(data);
            let _ = json_scan::string_value(raw, f.complete);
            let _ = json_scan::unescape(raw);
        }
        if let Some(c) = obj.close {
            assert_eq!(data[c], b'}');
        }
    }
});
