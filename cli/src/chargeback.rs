//! `usagetap chargeback`: APIM envelopes (or raw pairs) in, a per-consumer ledger out.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use usagetap::adapters::{meter_envelope, ConsumerHasher};
use usagetap::ledger::{Ledger, LedgerKey, LedgerRow, PriceTable};
use usagetap::MeterOptions;

pub const USAGE: &str =
    "  usagetap chargeback [--format table|csv|json] [--prices FILE] [--by DIM]... EVENTS...
      EVENTS: JSON Lines files of APIM Event Hub envelopes (or raw request/response pairs), or
      directories of them. Prints one ledger row per consumer, model, deployment and day.
      DIM: api_operation, endpoint, source, status. Consumers are HMAC-SHA256 hashes of the
      subscription key keyed with $USAGETAP_CONSUMER_SECRET; raw keys never appear.";

enum Format {
    Table,
    Csv,
    Json,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut format = Format::Table;
    let mut prices = None;
    let mut dims: Vec<String> = Vec::new();
    let mut inputs: Vec<PathBuf> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--format" => {
                format = match it.next().map(String::as_str) {
                    Some("table") => Format::Table,
                    Some("csv") => Format::Csv,
                    Some("json") => Format::Json,
                    _ => return Err("--format takes table, csv or json".into()),
                }
            }
            "--prices" => {
                let p = it.next().ok_or("--prices needs a file")?;
                let bytes = std::fs::read(p).map_err(|e| format!("{p}: {e}"))?;
                prices = Some(PriceTable::from_json(&bytes).map_err(|e| format!("{p}: {e}"))?);
            }
            "--by" => {
                let d = it.next().ok_or("--by needs a dimension")?;
                if !matches!(
                    d.as_str(),
                    "api_operation" | "endpoint" | "source" | "status"
                ) {
                    return Err(format!("unknown dimension {d}"));
                }
                dims.push(d.clone());
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => inputs.push(PathBuf::from(s)),
        }
    }
    if inputs.is_empty() {
        return Err("chargeback needs EVENTS (files or directories)".into());
    }
    let files = expand(&inputs)?;
    let secret = std::env::var("USAGETAP_CONSUMER_SECRET").unwrap_or_default();
    if secret.is_empty() {
        eprintln!("usagetap: USAGETAP_CONSUMER_SECRET is not set; consumer ids are hashed with an empty key");
    }
    let hasher = ConsumerHasher::new(secret.as_bytes());
    let currency = prices.as_ref().and_then(|p| p.currency.clone());
    let mut ledger = Ledger::new(prices);
    let opts = MeterOptions::default();
    let total_bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let mut progress = Progress::new(total_bytes);
    let (mut events, mut errors, mut truncated) = (0u64, 0u64, 0u64);
    for f in &files {
        let file = std::fs::File::open(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let mut reader = io::BufReader::with_capacity(1 << 20, file);
        let mut line = Vec::new();
        while let Some((l, n)) =
            crate::lines::next_line(&mut reader, &mut line, crate::lines::MAX_LINE_BYTES)
                .map_err(|e| format!("{}: {e}", f.display()))?
        {
            progress.advance(n, events);
            if matches!(l, crate::lines::Line::Read) && line.trim_ascii().is_empty() {
                continue;
            }
            events += 1;
            let metered = match l {
                crate::lines::Line::TooLong => Err(format!(
                    "line of {n} bytes is over the {} MiB cap",
                    crate::lines::MAX_LINE_BYTES >> 20
                )),
                crate::lines::Line::Read => {
                    meter_envelope(&line, &opts, &hasher).map_err(|e| e.to_string())
                }
            };
            match metered {
                Ok(er) => {
                    if er.record.flags.contains(usagetap::Flags::TRUNCATED) {
                        truncated += 1;
                    }
                    let extra: Vec<(String, String)> = dims
                        .iter()
                        .map(|d| {
                            let v = match d.as_str() {
                                "api_operation" => er.api_operation.clone().unwrap_or_default(),
                                "endpoint" => er.record.endpoint.as_str().to_owned(),
                                "source" => er.record.source.as_str().to_owned(),
                                _ => er.record.status.as_str().to_owned(),
                            };
                            (d.clone(), v)
                        })
                        .collect();
                    ledger.add(
                        er.consumer.as_deref(),
                        er.event_time.as_deref(),
                        &extra,
                        &er.record,
                    );
                }
                Err(e) => {
                    errors += 1;
                    if errors <= 5 {
                        eprintln!("usagetap: {}: event {events}: {e}", f.display());
                    }
                }
            }
        }
    }
    progress.done();
    eprintln!("usagetap: {events} events, {truncated} truncated (metered from what arrived), {errors} unreadable");
    let mut out = io::BufWriter::new(io::stdout().lock());
    let w = match format {
        Format::Table => write_table(&mut out, &ledger, &dims, currency.as_deref()),
        Format::Csv => write_csv(&mut out, &ledger, &dims),
        Format::Json => write_json(&mut out, &ledger),
    };
    w.and_then(|()| out.flush()).map_err(crate::stdout_error)
}

/// Files named by the arguments; a directory gives its `*.jsonl` / `*.json` files, sorted.
fn expand(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && is_events_file(f))
                .collect();
            v.sort();
            files.extend(v);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

fn is_events_file(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "json" | "ndjson")
    )
}

fn cost_text(c: Option<f64>) -> String {
    c.map_or_else(|| "unknown".to_owned(), |c| format!("{c:.6}"))
}

fn write_table(
    out: &mut impl Write,
    l: &Ledger,
    dims: &[String],
    currency: Option<&str>,
) -> io::Result<()> {
    let mut head = vec!["consumer", "model", "deployment", "day"];
    head.extend(dims.iter().map(String::as_str));
    let cost_head = format!(
        "cost{}",
        currency.map(|c| format!(" ({c})")).unwrap_or_default()
    );
    head.extend([
        "requests",
        "prompt",
        "completion",
        "total",
        "cached",
        "reasoning",
        &cost_head,
    ]);
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (k, r) in l.rows() {
        rows.push(row_cells(k, r, true));
    }
    let t = l.total();
    let mut total = vec![
        "TOTAL".to_owned(),
        String::new(),
        String::new(),
        String::new(),
    ];
    total.extend(dims.iter().map(|_| String::new()));
    total.extend(numbers(&t));
    rows.push(total);
    let widths: Vec<usize> = (0..head.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let numeric_from = 4 + dims.len();
    let line = |cells: &[String], out: &mut dyn Write| -> io::Result<()> {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = widths[i].saturating_sub(c.chars().count());
            if i >= numeric_from {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(
        &head.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
        out,
    )?;
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&rule, out)?;
    let n = rows.len();
    for (i, r) in rows.iter().enumerate() {
        if i == n - 1 {
            line(&rule, out)?;
        }
        line(r, out)?;
    }
    Ok(())
}

fn row_cells(k: &LedgerKey, r: &LedgerRow, short_consumer: bool) -> Vec<String> {
    let consumer = if k.consumer.is_empty() {
        "(none)".to_owned()
    } else if short_consumer {
        k.consumer.chars().take(12).collect()
    } else {
        k.consumer.clone()
    };
    let mut v = vec![
        consumer,
        k.model.clone(),
        k.deployment.clone(),
        k.day.clone(),
    ];
    v.extend(k.extra.iter().map(|(_, val)| val.clone()));
    v.extend(numbers(r));
    v
}

fn numbers(r: &LedgerRow) -> Vec<String> {
    vec![
        r.requests.to_string(),
        r.prompt_tokens.to_string(),
        r.completion_tokens.to_string(),
        r.total_tokens.to_string(),
        r.cached_tokens.to_string(),
        r.reasoning_tokens.to_string(),
        cost_text(r.cost),
    ]
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn write_csv(out: &mut impl Write, l: &Ledger, dims: &[String]) -> io::Result<()> {
    let mut head = vec!["consumer", "model", "deployment", "day"];
    head.extend(dims.iter().map(String::as_str));
    head.extend([
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "cost",
    ]);
    writeln!(out, "{}", head.join(","))?;
    for (k, r) in l.rows() {
        let cells: Vec<String> = row_cells(k, r, false)
            .iter()
            .map(|c| csv_field(c))
            .collect();
        writeln!(out, "{}", cells.join(","))?;
    }
    Ok(())
}

fn write_json(out: &mut impl Write, l: &Ledger) -> io::Result<()> {
    for (k, r) in l.rows() {
        let mut v = json!({
            "consumer": k.consumer, "model": k.model, "deployment": k.deployment, "day": k.day,
            "requests": r.requests, "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens, "total_tokens": r.total_tokens,
            "cached_tokens": r.cached_tokens, "reasoning_tokens": r.reasoning_tokens,
            "image_tokens": r.image_tokens, "computed_requests": r.computed_requests, "cost": r.cost,
        });
        if let Value::Object(o) = &mut v {
            for (d, val) in &k.extra {
                o.insert(d.clone(), Value::from(val.clone()));
            }
        }
        serde_json::to_writer(&mut *out, &v)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// A progress bar on stderr, shown only on a terminal and only for inputs that take a while.
struct Progress {
    total: u64,
    done: u64,
    shown: bool,
    start: Instant,
    last: Instant,
    enabled: bool,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let now = Instant::now();
        Progress {
            total,
            done: 0,
            shown: false,
            start: now,
            last: now,
            enabled: io::stderr().is_terminal(),
        }
    }

    fn advance(&mut self, n: u64, events: u64) {
        self.done += n;
        if !self.enabled || self.last.elapsed() < Duration::from_millis(100) {
            return;
        }
        if !self.shown && self.start.elapsed() < Duration::from_millis(500) {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        let frac = if self.total == 0 {
            1.0
        } else {
            self.done as f64 / self.total as f64
        };
        let filled = (frac * 30.0) as usize;
        eprint!(
            "\r[{}{}] {:>3.0}% {events} events",
            "=".repeat(filled.min(30)),
            " ".repeat(30 - filled.min(30)),
            frac * 100.0
        );
    }

    fn done(&mut self) {
        if self.shown {
            eprint!("\r{}\r", " ".repeat(60));
        }
    }
}
