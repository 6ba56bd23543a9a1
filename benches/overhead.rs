//! Per-call overhead of the faces, one run: the same two operations timed in Rust, through the
//! C ABI (a C program linked to the static library) and through the Python wheel.
//!
//! - `exchange`: meter one small JSON exchange (request + response with usage) from nothing to
//!   its record;
//! - `feed`: feed one SSE chunk (a typical 268-byte text delta) to an open meter.
//!
//! Run: `cargo bench -p usagetap-benches --bench overhead`. It builds the static library
//! (`cargo build --release -p usagetap-ffi`) and the C program with `cc`, and a release wheel
//! into its own venv, `target/py-bench-venv`, which `python/venv.sh` creates with the pinned
//! tools on first use. A face whose tools are missing is reported as skipped. The faces are
//! timed in turn, five rounds, and each overhead is the median of the same-round differences.
//! Each timing is the least of 15 batches: on a shared machine, interference only adds time,
//! and the median of 15 batches still moved by microseconds between runs.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use usagetap::{Meter, MeterOptions};

const REQUEST: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello to the billing team in one short sentence."}],"temperature":0.2}"#;
const RESPONSE: &str = r#"{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello, billing team! Wishing you a smooth and productive day.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":13,"total_tokens":44,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_06737a9306"}"#;
const CHUNK: &str = "data: {\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_06737a9306\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" team\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";

fn least_ns(iters: u64, mut batch: impl FnMut(u64)) -> f64 {
    (0..15)
        .map(|_| {
            let t = Instant::now();
            batch(iters);
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn rust() -> (f64, f64) {
    let exchange = least_ns(20_000, |n| {
        for _ in 0..n {
            let mut m = Meter::new(MeterOptions::default());
            let _ = m.request(black_box(REQUEST.as_bytes()));
            m.feed(black_box(RESPONSE.as_bytes())).unwrap();
            black_box(m.finish().unwrap().total_tokens);
        }
    });
    let feed = least_ns(200_000, |n| {
        let mut m = Meter::new(MeterOptions::default());
        for _ in 0..n {
            m.feed(black_box(CHUNK.as_bytes())).unwrap();
        }
        black_box(&m);
    });
    (exchange, feed)
}

/// Reads "exchange NS" / "feed NS" lines.
fn parse(out: &[u8]) -> Option<(f64, f64)> {
    let s = String::from_utf8_lossy(out);
    let get = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|v| v.trim().parse::<f64>().ok()))
    };
    Some((get("exchange ")?, get("feed ")?))
}

use usagetap_benches::run;

/// Builds the static library and the C program; returns the program.
fn c_program(root: &Path, target: &Path, dir: &Path) -> Result<PathBuf, String> {
    run(Command::new(env!("CARGO")).current_dir(root).args([
        "build",
        "-q",
        "--release",
        "-p",
        "usagetap-ffi",
    ]))?;
    let exe = dir.join("overhead-c");
    run(Command::new("cc")
        .args(["-std=c11", "-O2", "-I"])
        .arg(root.join("include"))
        .arg(root.join("benches/overhead/overhead.c"))
        .arg(target.join("release/libusagetap.a"))
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe))?;
    Ok(exe)
}

/// One face's timings: a command that prints "exchange NS" and "feed NS".
fn time_face(cmd: &mut Command) -> Result<(f64, f64), String> {
    parse(&run(cmd)?).ok_or_else(|| "unreadable output".into())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Rounds of the three faces, one after the other: the machine's speed drifts over a run, so
/// each face's overhead is the median of its differences from the Rust timing of the same
/// round, not the difference of two medians taken minutes apart.
const ROUNDS: usize = 5;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let dir = std::env::temp_dir().join(format!("usagetap-overhead-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<PathBuf> = [
        ("request.json", REQUEST),
        ("response.json", RESPONSE),
        ("chunk.sse", CHUNK),
    ]
    .iter()
    .map(|(n, s)| {
        let p = dir.join(n);
        std::fs::write(&p, s).unwrap();
        p
    })
    .collect();
    Meter::new(MeterOptions::default()).finish().unwrap();
    let mut faces: Vec<(&str, Result<Command, String>)> = vec![
        (
            "C ABI (static library, cc -O2)",
            c_program(&root, &target, &dir).map(|exe| {
                let mut c = Command::new(exe);
                c.args(&files);
                c
            }),
        ),
        (
            "Python wheel (abi3, release)",
            usagetap_benches::release_wheel_python(&root).map(|py| {
                let mut c = Command::new(py);
                c.arg(root.join("python/bench/overhead.py")).args(&files);
                c
            }),
        ),
    ];
    let mut rust_rounds = Vec::new();
    // A face that could not be built, or failed once, is skipped from then on.
    let mut face_rounds: Vec<Result<Vec<(f64, f64)>, String>> = faces
        .iter()
        .map(|(_, cmd)| cmd.as_ref().map(|_| Vec::new()).map_err(Clone::clone))
        .collect();
    for _ in 0..ROUNDS {
        rust_rounds.push(rust());
        for ((_, cmd), rounds) in faces.iter_mut().zip(&mut face_rounds) {
            if let (Ok(cmd), Ok(v)) = (cmd, &mut *rounds) {
                match time_face(cmd) {
                    Ok(t) => v.push(t),
                    Err(e) => *rounds = Err(e),
                }
            }
        }
    }
    let (rx, rf) = (
        median(rust_rounds.iter().map(|r| r.0).collect()),
        median(rust_rounds.iter().map(|r| r.1).collect()),
    );
    println!(
        "per call (ns): medians of {ROUNDS} rounds, each the least of 15 batches; overhead: \
         median of the differences from Rust in the same round"
    );
    println!(
        "{:<38} {:>10} {:>10} {:>10} {:>10}",
        "", "exchange", "overhead", "feed", "overhead"
    );
    println!(
        "{:<38} {rx:>10.0} {:>10} {rf:>10.0} {:>10}",
        "Rust (usagetap::Meter)", "-", "-"
    );
    for ((name, _), rounds) in faces.iter().zip(face_rounds) {
        match rounds {
            Ok(v) => {
                let x = median(v.iter().map(|t| t.0).collect());
                let f = median(v.iter().map(|t| t.1).collect());
                let dx = median(v.iter().zip(&rust_rounds).map(|(t, r)| t.0 - r.0).collect());
                let df = median(v.iter().zip(&rust_rounds).map(|(t, r)| t.1 - r.1).collect());
                println!("{name:<38} {x:>10.0} {dx:>+10.0} {f:>10.0} {df:>+10.0}");
            }
            Err(e) => println!("{name:<38} skipped: {e}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
