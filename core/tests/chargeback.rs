//! The chargeback pipeline on the recorded traffic: envelopes, request rewriting, the usage
//! filter and the ledger.

mod common;

use serde_json::{json, Value};
use usagetap::adapters::{meter_envelope, ConsumerHasher};
use usagetap::ledger::Ledger;
use usagetap::rewrite::{ensure_include_usage, UsageChunkFilter};
use usagetap::{meter, Flags, MeterOptions, Source, Status};

const KEY: &str = "5e2a9c7d1b3f4e6a8c0d2f4b6a8c0e1d";

fn envelope(r: &common::Rec, as_objects: bool) -> String {
    let (req, resp) = if as_objects && !r.stream {
        (
            r.raw["request"].clone(),
            serde_json::from_str(&r.response).unwrap_or(Value::String(r.response.clone())),
        )
    } else {
        (
            Value::String(String::from_utf8_lossy(&r.request).into_owned()),
            Value::String(r.response.clone()),
        )
    };
    json!({"eventTime": "2025-09-01T10:00:00Z", "apiOperation": "ChatCompletion",
           "appSubscriptionKey": KEY, "request": req, "response": resp})
    .to_string()
}

#[test]
fn envelopes_of_every_record_give_the_raw_pair_numbers() {
    let recs = common::load();
    let hasher = ConsumerHasher::new(b"test secret");
    let opts = MeterOptions::default();
    let mut ledger = Ledger::new(None);
    let mut sum = (0u64, 0u64, 0u64);
    for (i, r) in recs.iter().enumerate() {
        let raw = meter(opts.clone(), &r.request, r.response.as_bytes()).expect("meter");
        let env = envelope(r, i % 2 == 0);
        let er = meter_envelope(env.as_bytes(), &opts, &hasher).expect("envelope");
        assert_eq!(er.record, raw, "{}", r.id);
        let consumer = er.consumer.as_deref().expect("consumer");
        assert!(!consumer.contains(KEY) && !KEY.contains(consumer));
        ledger.add(Some(consumer), er.event_time.as_deref(), &[], &er.record);
        sum.0 += raw.prompt_tokens;
        sum.1 += raw.completion_tokens;
        sum.2 += raw.total_tokens;
    }
    let t = ledger.total();
    assert_eq!((t.prompt_tokens, t.completion_tokens, t.total_tokens), sum);
    assert_eq!(t.requests, recs.len() as u64);
    let rows_sum: u64 = ledger.rows().map(|(_, r)| r.total_tokens).sum();
    assert_eq!(rows_sum, sum.2);
}

#[test]
fn truncated_envelopes_give_flagged_records() {
    let recs = common::load();
    let hasher = ConsumerHasher::new(b"s");
    let mut n = 0;
    for r in recs.iter().filter(|r| r.stream).take(100) {
        let env = envelope(r, false);
        // APIM cuts at a byte limit: keep two thirds, wherever that falls.
        let cut = &env.as_bytes()[..env.len() * 2 / 3];
        let er = meter_envelope(cut, &MeterOptions::default(), &hasher).expect("salvaged");
        assert!(er.record.flags.contains(Flags::TRUNCATED), "{}", r.id);
        assert!(er.consumer.is_some());
        n += 1;
    }
    assert_eq!(n, 100);
}

#[test]
fn rewriting_real_requests_is_byte_exact() {
    let recs = common::load();
    let (mut changed, mut kept) = (0, 0);
    for r in recs
        .iter()
        .filter(|r| r.endpoint == "chat.completions" || r.endpoint == "completions")
    {
        for body in [
            r.request.clone(),
            serde_json::to_vec_pretty(&r.raw["request"]).expect("pretty"),
        ] {
            let out = ensure_include_usage(&body);
            let before: Value = serde_json::from_slice(&body).expect("json");
            let after: Value =
                serde_json::from_slice(&out.body).expect("rewritten body is valid JSON");
            let streams = before["stream"] == Value::Bool(true);
            let asked = before["stream_options"]["include_usage"] == Value::Bool(true);
            if !streams || asked {
                assert!(!out.changed && out.body[..] == body[..], "{}", r.id);
                kept += 1;
                continue;
            }
            assert!(out.changed, "{}", r.id);
            changed += 1;
            assert_eq!(after["stream_options"]["include_usage"], Value::Bool(true));
            let mut expect = before.clone();
            expect["stream_options"]["include_usage"] = Value::Bool(true);
            assert_eq!(after, expect, "{}", r.id);
            // Only one span differs: a common prefix and suffix cover everything else.
            let b = &body[..];
            let a = &out.body[..];
            let pre = b.iter().zip(a).take_while(|(x, y)| x == y).count();
            let suf = b[pre..]
                .iter()
                .rev()
                .zip(a[pre..].iter().rev())
                .take_while(|(x, y)| x == y)
                .count();
            let old_mid = &b[pre..b.len() - suf];
            let new_mid = std::str::from_utf8(&a[pre..a.len() - suf]).expect("utf8");
            assert!(
                old_mid.len() <= 5,
                "{}: replaced {:?}",
                r.id,
                String::from_utf8_lossy(old_mid)
            );
            assert!(
                new_mid.contains("tru") && new_mid.len() <= 40,
                "{}: inserted {new_mid:?}",
                r.id
            );
        }
    }
    println!("rewritten {changed}, left unchanged {kept}");
    assert!(changed > 100 && kept > 1000);
}

fn data_events(stream: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(stream);
    text.split(['\n', '\r'])
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| *d != "[DONE]" && !d.is_empty())
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

#[test]
fn filtered_streams_lose_only_the_usage_chunk_and_the_meter_still_reports() {
    let recs = common::load();
    let mut n = 0;
    for r in recs
        .iter()
        .filter(|r| r.stream && r.endpoint == "chat.completions" && r.usage.is_some())
    {
        let body = r.response.as_bytes();
        for step in [body.len(), 3, 64] {
            let mut f = UsageChunkFilter::default();
            let mut out = Vec::new();
            for p in body.chunks(step) {
                f.feed(p, &mut out);
            }
            f.finish(&mut out);
            assert_eq!(f.removed(), 1, "{}", r.id);
            let before = data_events(body);
            let after = data_events(&out);
            assert_eq!(after.len(), before.len() - 1, "{}", r.id);
            assert!(after.iter().all(
                |e| e["usage"].is_null() || !e["choices"].as_array().is_some_and(Vec::is_empty)
            ));
            let kept: Vec<&Value> = before
                .iter()
                .filter(|e| {
                    e["usage"].is_null() || !e["choices"].as_array().is_some_and(Vec::is_empty)
                })
                .collect();
            assert_eq!(after.iter().collect::<Vec<_>>(), kept, "{}", r.id);
            assert!(String::from_utf8_lossy(&out).contains("[DONE]"));
        }
        let rec = meter(MeterOptions::default(), &r.request, body).expect("meter");
        assert_eq!(
            (rec.source, rec.status),
            (Source::Reported, Status::Complete),
            "{}",
            r.id
        );
        n += 1;
    }
    assert!(n > 200, "{n}");
}
