//! SSE framer: the frames (and drop counters) for one piece equal those for any pieces.
#![no_main]
use libfuzzer_sys::fuzz_target;
use usagetap::sse::Framer;

type Out = (Vec<(Vec<u8>, Vec<u8>)>, u64, u64);

fn run(max_line: usize, max_event: usize, pieces: &[&[u8]]) -> Out {
    let mut f = Framer::new(max_line, max_event);
    let mut out = Vec::new();
    for p in pieces {
        f.feed(p, |fr| out.push((fr.event.to_vec(), fr.data.to_vec())));
    }
    f.finish(|fr| out.push((fr.event.to_vec(), fr.data.to_vec())));
    assert!(!f.has_pending());
    (out, f.lines_dropped(), f.events_dropped())
}

fuzz_target!(|data: &[u8]| {
    let Some(s) = usagetap_fuzz::split(data) else {
        return;
    };
    // cfg bits 0-1: the caps.
    let (max_line, max_event) = match s.cfg & 3 {
        0 => (1 << 20, 1 << 20),
        1 => (16, 64),
        2 => (64, 16),
        _ => (1, 1),
    };
    let whole = run(max_line, max_event, &[s.body]);
    for (ev, d) in &whole.0 {
        assert!(d.len() <= max_event, "frame data over the event cap");
        assert!(ev.len() <= 128);
    }
    let split = run(max_line, max_event, &s.pieces(s.body));
    assert_eq!(whole, split, "frames depend on the split");
});
