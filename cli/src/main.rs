//! `usagetap`: the command-line face of the usagetap library.
//!
//! `usagetap meter [--reconcile] [--feed-chunk N] [FILE]` reads JSON Lines (stdin without FILE),
//! each an object with `response_body` (string) and optionally `request` (object or JSON
//! string), `model`, `deployment`, `image_sizes` (`{url: [width, height]}`), `id`; it writes one
//! record per line, in order, copying `id`.
//! A bad line gives a record with `status: "error"` and an `error` message; the run goes on.
//! Records go to stdout and nothing else does.

mod chargeback;
mod lines;

use std::collections::HashMap;
use std::io::{self, BufRead, BufWriter, Write};
use std::process::ExitCode;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use usagetap::image::ImageSize;
use usagetap::{Encoding, Meter, MeterOptions};

const USAGE: &str = "usage:
  usagetap meter [--reconcile] [--feed-chunk N] [FILE]
      Meter JSON Lines of exchanges ({\"response_body\": \"...\", \"request\": {...}, \"model\", \"deployment\",
      \"image_sizes\": {\"https://...\": [width, height]}, \"id\"}).
      Writes one usage record per input line to stdout.
{CHARGEBACK}
  usagetap encoding MODEL...
      Print the encoding each model name resolves to (\"-\" when unknown).
  usagetap count [--model M] [--request] [TEXT]
      Count the tokens of TEXT (or stdin) with the model's encoding; with --request, TEXT is a
      request body (any endpoint) and its prompt tokens are counted.";

/// The full usage text.
fn usage() -> String {
    USAGE.replace("{CHARGEBACK}", chargeback::USAGE)
}

/// Maps an error writing to stdout. A reader that went away (`| head`, `| grep -q`) ends the
/// run at once with success and no message, as it does for other Unix filters; Rust ignores
/// SIGPIPE, so without this the write fails and `println!` would panic.
fn stdout_error(e: io::Error) -> String {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    format!("writing output: {e}")
}

/// Writes `text` and a newline to stdout (see [`stdout_error`]).
fn say(text: &str) -> Result<(), String> {
    writeln!(io::stdout().lock(), "{text}").map_err(stdout_error)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `usagetap COMMAND --help` (or -h) shows the usage, whatever the command.
    let result = match args.first().map(String::as_str) {
        Some(_) if args[1..].iter().any(|a| a == "-h" || a == "--help") => say(&usage()),
        Some("meter") => meter_cmd(&args[1..]),
        Some("encoding") => encoding_cmd(&args[1..]),
        Some("count") => count_cmd(&args[1..]),
        Some("chargeback") => chargeback::run(&args[1..]),
        Some("-h" | "--help" | "help") => say(&usage()),
        Some("-V" | "--version") => say(&format!("usagetap {}", env!("CARGO_PKG_VERSION"))),
        _ => Err(format!("expected a command\n{}", usage())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("usagetap: {e}");
            ExitCode::from(2)
        }
    }
}

fn open_input(path: Option<&str>) -> Result<Box<dyn BufRead>, String> {
    match path {
        None | Some("-") => Ok(Box::new(io::stdin().lock())),
        Some(p) => {
            let f = std::fs::File::open(p).map_err(|e| format!("{p}: {e}"))?;
            Ok(Box::new(io::BufReader::with_capacity(1 << 20, f)))
        }
    }
}

fn meter_cmd(args: &[String]) -> Result<(), String> {
    let mut reconcile = false;
    let mut feed_chunk: usize = 0;
    let mut file = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--reconcile" => reconcile = true,
            "--feed-chunk" => {
                let v = it.next().ok_or("--feed-chunk needs a value")?;
                feed_chunk = v
                    .parse()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or("--feed-chunk needs N >= 1")?;
            }
            s if s.starts_with("--feed-chunk=") => {
                feed_chunk = s["--feed-chunk=".len()..]
                    .parse()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or("--feed-chunk needs N >= 1")?;
            }
            s if s.starts_with('-') && s != "-" => {
                return Err(format!("unknown option {s}\n{}", usage()))
            }
            s => {
                if file.replace(s.to_owned()).is_some() {
                    return Err("meter takes at most one FILE".into());
                }
            }
        }
    }
    let mut input = open_input(file.as_deref())?;
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut line = Vec::new();
    while let Some((l, n)) = lines::next_line(&mut input, &mut line, lines::MAX_LINE_BYTES)
        .map_err(|e| format!("reading input: {e}"))?
    {
        let rec = match l {
            lines::Line::TooLong => error_record(
                Map::new(),
                format!(
                    "input line of {n} bytes is over the {} MiB cap",
                    lines::MAX_LINE_BYTES >> 20
                ),
            ),
            lines::Line::Read if line.trim_ascii().is_empty() => continue,
            lines::Line::Read => meter_line(&line, reconcile, feed_chunk),
        };
        serde_json::to_writer(&mut out, &rec).map_err(|e| stdout_error(e.into()))?;
        out.write_all(b"\n").map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    request: Option<&'a RawValue>,
    #[serde(default)]
    response_body: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    deployment: Option<String>,
    /// Sizes of images at http(s) URLs, which are never fetched.
    #[serde(default)]
    image_sizes: Option<HashMap<String, ImageSize>>,
}

/// One output object: `id` first, then the record's fields (or an error record).
fn meter_line(line: &[u8], reconcile: bool, feed_chunk: usize) -> Value {
    let mut obj = Map::new();
    let parsed: Line<'_> = match serde_json::from_slice(line) {
        Ok(l) => l,
        Err(e) => {
            // Salvage the id, if any, so the error record can be matched to its line.
            if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(line) {
                if let Some(id) = o.get("id") {
                    obj.insert("id".into(), id.clone());
                }
            }
            return error_record(obj, format!("input line is not a valid exchange: {e}"));
        }
    };
    if let Some(id) = parsed.id {
        obj.insert(
            "id".into(),
            serde_json::from_str(id.get()).unwrap_or(Value::Null),
        );
    }
    let Some(body) = parsed.response_body else {
        return error_record(obj, "input line has no response_body string".into());
    };
    let opts = MeterOptions {
        reconcile,
        model: parsed.model,
        deployment: parsed.deployment,
        image_sizes: Arc::new(parsed.image_sizes.unwrap_or_default()),
        ..MeterOptions::default()
    };
    let mut meter = Meter::new(opts);
    if let Some(req) = parsed.request {
        let raw = req.get();
        // `request` is either the body as an object, or the body as a JSON string.
        let owned;
        let bytes = if raw.starts_with('"') {
            owned = serde_json::from_str::<String>(raw).unwrap_or_default();
            owned.as_bytes()
        } else {
            raw.as_bytes()
        };
        if raw != "null" {
            // An unreadable request is a flag on the record, not a lost line.
            let _ = meter.request(bytes);
        }
    }
    let bytes = body.as_bytes();
    let step = if feed_chunk == 0 {
        bytes.len().max(1)
    } else {
        feed_chunk
    };
    for piece in bytes.chunks(step) {
        if let Err(e) = meter.feed(piece) {
            return error_record(obj, e.to_string());
        }
    }
    match meter.finish() {
        Ok(rec) => {
            if let Ok(Value::Object(fields)) = serde_json::to_value(&rec) {
                obj.extend(fields);
            }
            Value::Object(obj)
        }
        Err(e) => error_record(obj, e.to_string()),
    }
}

fn error_record(mut obj: Map<String, Value>, msg: String) -> Value {
    obj.insert("status".into(), Value::from("error"));
    obj.insert("error".into(), Value::from(msg));
    Value::Object(obj)
}

fn encoding_cmd(models: &[String]) -> Result<(), String> {
    let mut out = io::stdout().lock();
    for m in models {
        let e = Encoding::for_model(m).map_or("-", Encoding::name);
        writeln!(out, "{m}\t{e}").map_err(stdout_error)?;
    }
    Ok(())
}

fn count_cmd(args: &[String]) -> Result<(), String> {
    let mut model = None;
    let mut text = None;
    let mut request = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--model" => model = Some(it.next().ok_or("--model needs a value")?.clone()),
            "--request" => request = true,
            s => text = Some(s.to_owned()),
        }
    }
    let text = match text {
        Some(t) => t,
        None => {
            let mut s = String::new();
            io::Read::read_to_string(&mut io::stdin(), &mut s).map_err(|e| e.to_string())?;
            s
        }
    };
    if request {
        let req = usagetap::request::Request::parse(text.as_bytes()).map_err(|e| e.to_string())?;
        let model = model
            .or_else(|| req.model.as_deref().map(str::to_owned))
            .unwrap_or_default();
        let enc = Encoding::for_model(&model).unwrap_or(Encoding::O200kBase);
        let endpoint = req.endpoint().unwrap_or_default();
        let p = usagetap::prompt::count(&req, endpoint, &model, enc);
        let flags: Vec<&str> = p.flags.names().collect();
        say(&serde_json::json!({"model": model, "encoding": enc.name(), "endpoint": endpoint.as_str(),
            "prompt_tokens": p.tokens, "image_tokens": p.image_tokens, "flags": flags})
        .to_string())
    } else {
        say(&usagetap::count_tokens(&text, model.as_deref().unwrap_or("gpt-4o")).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_sizes_on_the_line_price_http_images() {
        let line = |sizes: &str| {
            format!(
                r#"{{"id":1,"request":{{"model":"gpt-4o","messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"https://x/c.png"}}}}]}}]}},"response_body":"data: [DONE]\n\n"{sizes}}}"#
            )
        };
        let guessed = meter_line(line("").as_bytes(), false, 0);
        assert_eq!(guessed["image_tokens"], 425, "{guessed}");
        assert!(guessed["flags"].to_string().contains("image_size_unknown"));
        let sized = meter_line(
            line(r#","image_sizes":{"https://x/c.png":[512,512]}"#).as_bytes(),
            false,
            0,
        );
        assert_eq!(sized["image_tokens"], 255, "{sized}");
        assert!(!sized["flags"].to_string().contains("image_size_unknown"));
        let bad = meter_line(line(r#","image_sizes":{"u":[1]}"#).as_bytes(), false, 0);
        assert_eq!((&bad["id"], &bad["status"]), (&1.into(), &"error".into()));
    }
}
