//! A chargeback ledger: records aggregated by consumer, model, deployment and day (plus any
//! dimension the host adds), with costs from a price table the user supplies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::record::UsageRecord;

/// Prices of one model, in the table's currency per one million tokens.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Price {
    /// Uncached input (prompt) tokens.
    pub input: f64,
    /// Cached input tokens; the input price when absent.
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Output (completion, including reasoning) tokens.
    #[serde(default)]
    pub output: f64,
}

/// A price table, read from JSON:
/// `{"date": "...", "source": "...", "currency": "USD", "models": {"gpt-4o": {"input": 2.5,
/// "cached_input": 1.25, "output": 10}}}`.
/// A model is priced by its exact name, else by the longest table name it starts with
/// (so `gpt-4o-mini-2024-07-18` takes `gpt-4o-mini`, not `gpt-4o`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct PriceTable {
    /// When the prices were taken.
    #[serde(default)]
    pub date: Option<String>,
    /// Where they were taken from.
    #[serde(default)]
    pub source: Option<String>,
    /// The currency (e.g. `USD`).
    #[serde(default)]
    pub currency: Option<String>,
    /// Model name → prices.
    pub models: BTreeMap<String, Price>,
}

impl PriceTable {
    /// Reads a table.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidOptions`] when `json` is not a price table.
    pub fn from_json(json: &[u8]) -> Result<PriceTable> {
        serde_json::from_slice(json)
            .map_err(|e| Error::new(ErrorKind::InvalidOptions, format!("price table: {e}")))
    }

    /// The prices for `model`, if the table has them.
    pub fn price(&self, model: &str) -> Option<&Price> {
        if let Some(p) = self.models.get(model) {
            return Some(p);
        }
        self.models
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| p)
    }

    /// The cost of a record, or `None` when its model is not in the table.
    pub fn cost(&self, rec: &UsageRecord) -> Option<f64> {
        let p = self.price(rec.model.as_deref()?)?;
        let cached = rec.cached_tokens.unwrap_or(0).min(rec.prompt_tokens);
        let uncached = rec.prompt_tokens - cached;
        let per = 1_000_000.0;
        Some(
            (uncached as f64 * p.input
                + cached as f64 * p.cached_input.unwrap_or(p.input)
                + rec.completion_tokens as f64 * p.output)
                / per,
        )
    }
}

/// What a ledger row is grouped by.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct LedgerKey {
    /// The consumer (a hashed key, or whatever id the host uses); `""` when unknown.
    pub consumer: String,
    /// The model; `""` when unknown.
    pub model: String,
    /// The deployment; `""` when unknown.
    pub deployment: String,
    /// The day, `YYYY-MM-DD` (UTC); `""` when unknown.
    pub day: String,
    /// Extra dimensions given by the host, in the order given.
    pub extra: Vec<(String, String)>,
}

/// Totals of one group.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LedgerRow {
    /// Exchanges.
    pub requests: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Cached prompt tokens.
    pub cached_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// Image tokens.
    pub image_tokens: u64,
    /// Exchanges whose counts were computed rather than reported.
    pub computed_requests: u64,
    /// Cost; `None` ("unknown") when any record of the group has a model the table lacks, or
    /// when no table was given.
    pub cost: Option<f64>,
}

/// Aggregates records. Totals are exact sums of the records added.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    prices: Option<PriceTable>,
    rows: BTreeMap<LedgerKey, LedgerRow>,
}

impl Ledger {
    /// A ledger that prices with `prices` (or shows no cost without a table).
    pub fn new(prices: Option<PriceTable>) -> Ledger {
        Ledger {
            prices,
            rows: BTreeMap::new(),
        }
    }

    /// Adds a record for `consumer` on `day` (`YYYY-MM-DD`; taken from the record's `created`
    /// when `None`), with extra dimensions.
    pub fn add(
        &mut self,
        consumer: Option<&str>,
        day: Option<&str>,
        extra: &[(String, String)],
        rec: &UsageRecord,
    ) {
        let day = day
            .map(|d| d.get(..10).unwrap_or(d).to_owned())
            .or_else(|| rec.created.map(unix_day))
            .unwrap_or_default();
        let key = LedgerKey {
            consumer: consumer.unwrap_or_default().to_owned(),
            model: rec.model.clone().unwrap_or_default(),
            deployment: rec.deployment.clone().unwrap_or_default(),
            day,
            extra: extra.to_vec(),
        };
        let cost = self.prices.as_ref().and_then(|p| p.cost(rec));
        let fresh = !self.rows.contains_key(&key);
        let row = self.rows.entry(key).or_default();
        row.requests += 1;
        row.prompt_tokens += rec.prompt_tokens;
        row.completion_tokens += rec.completion_tokens;
        row.total_tokens += rec.total_tokens;
        row.cached_tokens += rec.cached_tokens.unwrap_or(0);
        row.reasoning_tokens += rec.reasoning_tokens.unwrap_or(0);
        row.image_tokens += rec.image_tokens.unwrap_or(0);
        row.computed_requests += u64::from(rec.source == crate::Source::Computed);
        row.cost = match (fresh, row.cost, cost) {
            (true, _, c) => c,
            (false, Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }

    /// The rows, ordered by key.
    pub fn rows(&self) -> impl Iterator<Item = (&LedgerKey, &LedgerRow)> {
        self.rows.iter()
    }

    /// The sum of every row (cost unknown if any row's is).
    pub fn total(&self) -> LedgerRow {
        let mut t = LedgerRow {
            cost: Some(0.0),
            ..LedgerRow::default()
        };
        for r in self.rows.values() {
            t.requests += r.requests;
            t.prompt_tokens += r.prompt_tokens;
            t.completion_tokens += r.completion_tokens;
            t.total_tokens += r.total_tokens;
            t.cached_tokens += r.cached_tokens;
            t.reasoning_tokens += r.reasoning_tokens;
            t.image_tokens += r.image_tokens;
            t.computed_requests += r.computed_requests;
            t.cost = t.cost.zip(r.cost).map(|(a, b)| a + b);
        }
        if self.rows.is_empty() || self.prices.is_none() {
            t.cost = None;
        }
        t
    }
}

/// `YYYY-MM-DD` of a Unix time (UTC), by the days-from-civil inverse (Howard Hinnant).
pub fn unix_day(secs: i64) -> String {
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(model: &str, p: u64, c: u64, cached: u64) -> UsageRecord {
        UsageRecord {
            model: Some(model.into()),
            prompt_tokens: p,
            completion_tokens: c,
            total_tokens: p + c,
            cached_tokens: Some(cached),
            created: Some(1_714_557_600),
            ..UsageRecord::default()
        }
    }

    #[test]
    fn groups_sums_and_prices() {
        let table = PriceTable::from_json(br#"{"models":{"gpt-4o":{"input":2.5,"cached_input":1.25,"output":10},"gpt-4o-mini":{"input":0.15,"output":0.6}}}"#).unwrap();
        assert_eq!(table.price("gpt-4o-mini-2024-07-18").unwrap().input, 0.15);
        let mut l = Ledger::new(Some(table));
        l.add(
            Some("a"),
            None,
            &[],
            &rec("gpt-4o-2024-08-06", 1_000_000, 100_000, 200_000),
        );
        l.add(Some("a"), None, &[], &rec("gpt-4o-2024-08-06", 10, 10, 0));
        l.add(
            Some("b"),
            Some("2024-05-02T00:00:00Z"),
            &[],
            &rec("mystery-model", 10, 10, 0),
        );
        let rows: Vec<_> = l.rows().collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0.day, "2024-05-01");
        assert_eq!(rows[0].1.requests, 2);
        assert_eq!(rows[0].1.prompt_tokens, 1_000_010);
        let cost = rows[0].1.cost.unwrap();
        let want =
            (800_000.0 * 2.5 + 200_000.0 * 1.25 + 100_000.0 * 10.0 + 10.0 * 2.5 + 10.0 * 10.0)
                / 1e6;
        assert!((cost - want).abs() < 1e-9, "{cost} {want}");
        assert_eq!(rows[1].1.cost, None);
        assert_eq!(rows[1].0.day, "2024-05-02");
        let t = l.total();
        assert_eq!((t.requests, t.total_tokens, t.cost), (3, 1_100_040, None));
    }

    #[test]
    fn civil_days() {
        assert_eq!(unix_day(0), "1970-01-01");
        assert_eq!(unix_day(951_782_400), "2000-02-29");
        assert_eq!(unix_day(-1), "1969-12-31");
    }
}
