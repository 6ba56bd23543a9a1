//! Adapters from what gateways hand over to the meter: URL routes, and envelopes such as the
//! Azure API Management Event Hub message.
//!
//! The APIM `log-to-eventhub` message is one JSON object per call:
//! `{"eventTime", "apiOperation", "appSubscriptionKey", "request": "<body as a JSON string>",
//!   "response": "<body as a string: JSON or the whole SSE text>"}`.
//! `request` / `response` may also be objects, and a raw pair `{"request", "response"}` (or the
//! CLI's `response_body`) is accepted the same way. APIM cuts messages over 200 KB: a cut envelope
//! is read as far as it goes, and the record is flagged `truncated`, never lost.
//!
//! The subscription key is never kept: [`ConsumerHasher`] turns it into a keyed hash
//! (HMAC-SHA256 with a secret the host supplies, hex, first 128 bits), so a ledger can group by
//! consumer while no output reveals a key, and nobody without the secret can test a guessed key.

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, ErrorKind, Result};
use crate::json_scan::{self, Object};
use crate::options::MeterOptions;
use crate::record::{Endpoint, Flags, Status, UsageRecord};
use crate::Meter;

/// What a request URL says about the exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    /// The endpoint, when the path names one.
    pub endpoint: Option<Endpoint>,
    /// The Azure deployment, from `/openai/deployments/{deployment}/...`.
    pub deployment: Option<String>,
}

/// Reads a request URL or path: Azure `/openai/deployments/{d}/chat/completions?api-version=..`,
/// `/openai/v1/...`, `/openai/responses`, OpenAI `/v1/...`; scheme and host are ignored.
///
/// # Example
/// ```
/// use usagetap::adapters::route;
/// use usagetap::Endpoint;
/// let r = route("https://x.openai.azure.com/openai/deployments/chat-prod/chat/completions?api-version=2024-10-21");
/// assert_eq!(r.endpoint, Some(Endpoint::ChatCompletions));
/// assert_eq!(r.deployment.as_deref(), Some("chat-prod"));
/// ```
pub fn route(url: &str) -> Route {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let path = match path.find("://") {
        Some(i) => path[i + 3..].find('/').map_or("", |j| &path[i + 3 + j..]),
        None => path,
    };
    let deployment = path
        .split_once("/deployments/")
        .and_then(|(_, rest)| rest.split('/').next())
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    Route {
        endpoint: Endpoint::parse(path),
        deployment,
    }
}

/// Turns subscription keys into stable, non-reversible consumer ids.
#[derive(Clone)]
pub struct ConsumerHasher {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for ConsumerHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsumerHasher { .. }")
    }
}

impl ConsumerHasher {
    /// A hasher keyed with `secret` (any length; keep it out of the output and rotate it as you
    /// would a password). The same secret gives the same ids across runs and hosts.
    pub fn new(secret: &[u8]) -> ConsumerHasher {
        // HMAC accepts keys of every length, so this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        ConsumerHasher { mac }
    }

    /// The consumer id of `key`: 32 lowercase hex digits (the first 128 bits of the HMAC).
    pub fn hash(&self, key: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(key.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(32);
        for b in &digest[..16] {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// An envelope read from its bytes. Borrowed where the bytes allow.
#[derive(Clone, Debug, Default)]
pub struct Envelope<'a> {
    /// `eventTime`.
    pub event_time: Option<Cow<'a, str>>,
    /// `apiOperation`.
    pub api_operation: Option<Cow<'a, str>>,
    /// `appSubscriptionKey` (raw: hash it with [`ConsumerHasher`] before it goes anywhere).
    pub subscription_key: Option<Cow<'a, str>>,
    /// The request body.
    pub request: Option<Cow<'a, [u8]>>,
    /// The response body.
    pub response: Option<Cow<'a, [u8]>>,
    /// `url` / `operationUrl`, when the envelope carries one.
    pub url: Option<Cow<'a, str>>,
    /// `model`, `deployment` when present.
    pub model: Option<Cow<'a, str>>,
    /// See `model`.
    pub deployment: Option<Cow<'a, str>>,
    /// The envelope was cut (not a closed JSON object).
    pub truncated: bool,
    /// The response value itself was cut.
    pub response_cut: bool,
}

impl<'a> Envelope<'a> {
    /// Reads an envelope.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidJson`] when `bytes` does not start with a JSON object. A cut object
    /// is not an error: it gives what can be salvaged, with `truncated` set.
    pub fn parse(bytes: &'a [u8]) -> Result<Envelope<'a>> {
        let obj: Object<'a> = json_scan::scan_object(bytes)
            .ok_or_else(|| Error::new(ErrorKind::InvalidJson, "envelope: not a JSON object"))?;
        let mut env = Envelope {
            truncated: obj.close.is_none(),
            ..Envelope::default()
        };
        let text = |name: &str| -> Option<Cow<'a, str>> {
            let f = obj.get(name)?;
            json_scan::string_value(f.raw(bytes), f.complete)
        };
        env.event_time = text("eventTime");
        env.api_operation = text("apiOperation");
        env.subscription_key = text("appSubscriptionKey");
        env.url = text("url").or_else(|| text("operationUrl"));
        env.model = text("model");
        env.deployment = text("deployment");
        let body = |name: &str| -> Option<(Cow<'a, [u8]>, bool)> {
            let f = obj.get(name)?;
            let raw = f.raw(bytes);
            match raw.first() {
                Some(b'"') => {
                    let s = json_scan::string_value(raw, f.complete)?;
                    Some((cow_bytes(s), !f.complete))
                }
                Some(b'{' | b'[') => Some((Cow::Borrowed(raw), !f.complete)),
                _ => None,
            }
        };
        env.request = body("request").map(|(b, _)| b);
        if let Some((b, cut)) = body("response").or_else(|| body("response_body")) {
            env.response = Some(b);
            env.response_cut = cut;
        }
        Ok(env)
    }
}

fn cow_bytes(s: Cow<'_, str>) -> Cow<'_, [u8]> {
    match s {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

/// A record with what the envelope says about who and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeRecord {
    /// The usage record.
    pub record: UsageRecord,
    /// The consumer id (hashed subscription key), when the envelope had a key.
    pub consumer: Option<String>,
    /// `eventTime`, as sent.
    pub event_time: Option<String>,
    /// `apiOperation`, as sent.
    pub api_operation: Option<String>,
}

/// Meters one envelope. `opts` gives defaults; the envelope's URL, model and deployment refine
/// them.
///
/// # Errors
/// [`ErrorKind::InvalidJson`] when `bytes` is not a JSON object at all. Everything else (a cut
/// envelope, a missing response, an unreadable request) gives a flagged record.
pub fn meter_envelope(
    bytes: &[u8],
    opts: &MeterOptions,
    hasher: &ConsumerHasher,
) -> Result<EnvelopeRecord> {
    let env = Envelope::parse(bytes)?;
    let mut opts = opts.clone();
    if let Some(url) = env.url.as_deref() {
        let r = route(url);
        if opts.endpoint.is_none() {
            opts.endpoint = r.endpoint;
        }
        if opts.deployment.is_none() {
            opts.deployment = r.deployment;
        }
    }
    if let Some(m) = env.model.as_deref() {
        opts.model.get_or_insert_with(|| m.to_owned());
    }
    if let Some(d) = env.deployment.as_deref() {
        opts.deployment.get_or_insert_with(|| d.to_owned());
    }
    let mut meter = Meter::new(opts);
    if let Some(req) = env.request.as_deref() {
        // An unreadable (or cut) request is a flag on the record.
        let _ = meter.request(req);
    }
    if let Some(resp) = env.response.as_deref() {
        meter.feed(resp)?;
    }
    let mut record = meter.finish()?;
    if env.truncated {
        record.flags.insert(Flags::TRUNCATED);
        if env.response_cut && record.status == Status::Complete {
            record.status = Status::Truncated;
        }
    }
    Ok(EnvelopeRecord {
        record,
        consumer: env.subscription_key.as_deref().map(|k| hasher.hash(k)),
        event_time: env.event_time.map(Cow::into_owned),
        api_operation: env.api_operation.map(Cow::into_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(req: &str, resp: &str) -> String {
        serde_json::json!({
            "eventTime": "2024-05-01T10:00:00Z",
            "apiOperation": "ChatCompletion",
            "appSubscriptionKey": "0123456789abcdef0123456789abcdef",
            "request": req,
            "response": resp,
        })
        .to_string()
    }

    const RESP: &str = r#"{"id":"c","object":"chat.completion","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}"#;

    #[test]
    fn routes() {
        let r = route("/openai/deployments/gpt4o/responses?api-version=2025-04-01-preview");
        assert_eq!(
            (r.endpoint, r.deployment.as_deref()),
            (Some(Endpoint::Responses), Some("gpt4o"))
        );
        assert_eq!(route("/v1/embeddings").endpoint, Some(Endpoint::Embeddings));
        assert_eq!(
            route("https://api.openai.com/v1/completions").endpoint,
            Some(Endpoint::Completions)
        );
        assert_eq!(
            route("/openai/v1/chat/completions").endpoint,
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(route("/health"), Route::default());
    }

    #[test]
    fn apim_envelope_is_metered_and_key_hashed() {
        let e = envelope(r#"{"messages":[{"role":"user","content":"Hello"}]}"#, RESP);
        let h = ConsumerHasher::new(b"secret");
        let r = meter_envelope(e.as_bytes(), &MeterOptions::default(), &h).unwrap();
        assert_eq!(r.record.total_tokens, 10);
        let c = r.consumer.unwrap();
        assert_eq!(c.len(), 32);
        assert!(!c.contains("0123456789abcdef"));
        assert_eq!(c, h.hash("0123456789abcdef0123456789abcdef"));
        assert_ne!(
            c,
            ConsumerHasher::new(b"other").hash("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(r.event_time.as_deref(), Some("2024-05-01T10:00:00Z"));
    }

    #[test]
    fn cut_envelope_still_gives_a_flagged_record() {
        let stream = "data: {\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello there\"}}]}\n\ndata: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" friend\"}}]}\n\ndata: [DONE]\n\n";
        let e = envelope(
            r#"{"stream":true,"messages":[{"role":"user","content":"Hello"}]}"#,
            stream,
        );
        let h = ConsumerHasher::new(b"");
        for cut in (e.find("\"response\"").unwrap()..e.len()).step_by(7) {
            let r = meter_envelope(&e.as_bytes()[..cut], &MeterOptions::default(), &h).unwrap();
            assert!(r.record.flags.contains(Flags::TRUNCATED), "cut {cut}");
            assert!(r.consumer.is_some());
        }
        // Cut inside the request: the response is gone, the record says so.
        let cut = e.find("Hello").unwrap();
        let r = meter_envelope(&e.as_bytes()[..cut], &MeterOptions::default(), &h).unwrap();
        assert!(r.record.flags.contains(Flags::TRUNCATED));
        assert!(meter_envelope(b"not json", &MeterOptions::default(), &h).is_err());
    }
}
