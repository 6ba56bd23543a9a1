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
//! tools on first use. A face whose tools are missing is reported as skipped.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use usagetap::{Meter, MeterOptions};

const REQUEST: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello to the billing team in one short sentence."}],"temperature":0.2}"#;
const RESPONSE: &str = r#"{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello, billing team! Wishing you a smooth and productive day.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":13,"total_tokens":44,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_06737a9306"}"#;
const CHUNK: &str = "data: {\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_06737a9306\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" team\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";

fn median_ns(iters: u64, mut batch: impl FnMut(u64)) -> f64 {
    let mut v: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            batch(iters);
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[7]
}

fn rust() -> (f64, f64) {
    let exchange = median_ns(20_000, |n| {
        for _ in 0..n {
            let mut m = Meter::new(MeterOptions::default());
            let _ = m.request(black_box(REQUEST.as_bytes()));
            m.feed(black_box(RESPONSE.as_bytes())).unwrap();
            black_box(m.finish().unwrap().total_tokens);
        }
    });
    let feed = median_ns(200_000, |n| {
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

fn c_face(root: &Path, target: &Path, files: &[PathBuf]) -> Result<(f64, f64), String> {
    run(Command::new(env!("CARGO")).current_dir(root).args([
        "build",
        "-q",
        "--release",
        "-p",
        "usagetap-ffi",
    ]))?;
    let exe = files[0].with_file_name("overhead-c");
    run(Command::new("cc")
        .args(["-std=c11", "-O2", "-I"])
        .arg(root.join("include"))
        .arg(root.join("benches/overhead/overhead.c"))
        .arg(target.join("release/libusagetap.a"))
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe))?;
    parse(&run(Command::new(&exe).args(files))?).ok_or_else(|| "unreadable output".into())
}

fn python_face(root: &Path, files: &[PathBuf]) -> Result<(f64, f64), String> {
    let py = usagetap_benches::release_wheel_python(root)?;
    let out = usagetap_benches::run(
        Command::new(&py)
            .arg(root.join("python/bench/overhead.py"))
            .args(files),
    )?;
    parse(&out).ok_or_else(|| "unreadable output".into())
}

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
    let (rx, rf) = rust();
    println!("per call, median of 15 batches (ns)     exchange   overhead       feed   overhead");
    println!(
        "{:<38} {rx:>10.0} {:>10} {rf:>10.0} {:>10}",
        "Rust (usagetap::Meter)", "-", "-"
    );
    for (name, face) in [
        (
            "C ABI (static library, cc -O2)",
            c_face(&root, &target, &files),
        ),
        ("Python wheel (abi3, release)", python_face(&root, &files)),
    ] {
        match face {
            Ok((x, f)) => println!(
                "{name:<38} {x:>10.0} {:>+10.0} {f:>10.0} {:>+10.0}",
                x - rx,
                f - rf
            ),
            Err(e) => println!("{name:<38} skipped: {e}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
