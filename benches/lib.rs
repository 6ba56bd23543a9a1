//! Inputs shared by the benches: real streams from the corpus and long synthetic streams in the
//! exact OpenAI and Azure OpenAI wire formats.

/// The corpus path: `USAGETAP_CORPUS`, else `../shared/corpus/dev.jsonl` beside the checkout.
pub fn corpus_path() -> std::path::PathBuf {
    match std::env::var_os("USAGETAP_CORPUS") {
        Some(p) => p.into(),
        None => concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/dev.jsonl").into(),
    }
}

/// Every record of the corpus, one JSON value per line (lines that are not JSON are left out).
pub fn corpus_records() -> Vec<serde_json::Value> {
    let text =
        std::fs::read_to_string(corpus_path()).expect("corpus readable (set USAGETAP_CORPUS)");
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The payloads of the `data:` lines of an SSE body, `[DONE]` included.
pub fn data_payloads(body: &str) -> impl Iterator<Item = &str> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
}

/// `(request, response)` of every recorded chat-completions stream, largest first.
pub fn corpus_chat_streams() -> Vec<(Vec<u8>, String)> {
    let mut v: Vec<(Vec<u8>, String)> = corpus_records()
        .into_iter()
        .filter(|v| v["endpoint"] == "chat.completions" && v["stream"] == true)
        .map(|v| {
            let req = serde_json::to_vec(&v["request"]).unwrap_or_default();
            (
                req,
                v["response_body"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    v.sort_by_key(|(_, r)| std::cmp::Reverse(r.len()));
    v
}

/// Every request body of the corpus (chat, completions, embeddings, Responses API), as JSON.
pub fn corpus_requests() -> Vec<Vec<u8>> {
    corpus_records()
        .iter()
        .filter(|v| v["request"].is_object())
        .map(|v| serde_json::to_vec(&v["request"]).unwrap_or_default())
        .collect()
}

/// The JSON payload of every `data:` event of the recorded chat streams (`[DONE]` left out).
pub fn corpus_chunks() -> Vec<Vec<u8>> {
    corpus_chat_streams()
        .iter()
        .flat_map(|(_, body)| {
            data_payloads(body)
                .filter(|d| d.trim() != "[DONE]")
                .map(|d| d.as_bytes().to_vec())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether `s` (a stream, or one line of it) holds a usage chunk: a `usage` object with an
/// empty `choices`, as `include_usage` sends it last.
pub fn carries_usage_chunk(s: &str) -> bool {
    s.contains("\"usage\":{") && s.contains("\"choices\":[]")
}

/// Removes the usage chunk from a stream (what a client without `include_usage` receives).
pub fn without_usage(stream: &str) -> String {
    stream
        .split_inclusive('\n')
        .filter(|l| !carries_usage_chunk(l))
        .collect()
}

const WORDS: &[&str] = &[
    " the", " token", " gateway", " meter", " count", "ing", " billing", " Azure", ",", ".", " é",
    " naïve", " 東京", " 😀", " data:", " 42", "\\n", " won't", " API",
];

/// A long OpenAI chat stream with `chunks` content chunks, ending with a usage chunk when
/// `usage` is set, then `[DONE]`.
pub fn synthetic_openai(chunks: usize, usage: bool) -> String {
    let mut s = String::new();
    let head = r#"{"id":"chatcmpl-BENCH0000000000000000000000","object":"chat.completion.chunk","created":1755097541,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_560af6e559","choices":[{"index":0,"delta":{"#;
    s.push_str("data: ");
    s.push_str(head);
    s.push_str(r#""role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"obfuscation":"OOMmT"}"#);
    s.push_str("\n\n");
    for i in 0..chunks {
        s.push_str("data: ");
        s.push_str(head);
        s.push_str(r#""content":""#);
        s.push_str(WORDS[i % WORDS.len()]);
        s.push_str(r#""},"logprobs":null,"finish_reason":null}],"obfuscation":"kvR"}"#);
        s.push_str("\n\n");
    }
    s.push_str("data: ");
    s.push_str(head);
    s.push_str(r#"},"logprobs":null,"finish_reason":"stop"}],"obfuscation":"x"}"#);
    s.push_str("\n\n");
    if usage {
        s.push_str(r#"data: {"id":"chatcmpl-BENCH0000000000000000000000","object":"chat.completion.chunk","created":1755097541,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_560af6e559","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":4000,"total_tokens":4012,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"obfuscation":"ab"}"#);
        s.push_str("\n\n");
    }
    s.push_str("data: [DONE]\n\n");
    s
}

/// A long Azure OpenAI chat stream: `prompt_filter_results` first, content-filter results on
/// every chunk, CRLF line ends.
pub fn synthetic_azure(chunks: usize, usage: bool) -> String {
    let mut s = String::new();
    s.push_str("data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\",\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{\"hate\":{\"filtered\":false,\"severity\":\"safe\"},\"self_harm\":{\"filtered\":false,\"severity\":\"safe\"},\"sexual\":{\"filtered\":false,\"severity\":\"safe\"},\"violence\":{\"filtered\":false,\"severity\":\"safe\"}}}]}\r\n\r\n");
    for i in 0..chunks {
        s.push_str("data: {\"choices\":[{\"content_filter_results\":{\"hate\":{\"filtered\":false,\"severity\":\"safe\"},\"self_harm\":{\"filtered\":false,\"severity\":\"safe\"},\"sexual\":{\"filtered\":false,\"severity\":\"safe\"},\"violence\":{\"filtered\":false,\"severity\":\"safe\"}},\"delta\":{\"content\":\"");
        s.push_str(WORDS[i % WORDS.len()]);
        s.push_str("\"},\"finish_reason\":null,\"index\":0,\"logprobs\":null}],\"created\":1780491942,\"id\":\"chatcmpl-DmfZu2BjJmBGSSHpj9hWtFQYBUxYn\",\"model\":\"gpt-4o-2024-11-20\",\"object\":\"chat.completion.chunk\",\"system_fingerprint\":\"fp_b705f0c291\",\"usage\":null}\r\n\r\n");
    }
    if usage {
        s.push_str("data: {\"choices\":[],\"created\":1780491942,\"id\":\"chatcmpl-DmfZu2BjJmBGSSHpj9hWtFQYBUxYn\",\"model\":\"gpt-4o-2024-11-20\",\"object\":\"chat.completion.chunk\",\"system_fingerprint\":\"fp_b705f0c291\",\"usage\":{\"completion_tokens\":4000,\"prompt_tokens\":12,\"total_tokens\":4012}}\r\n\r\n");
    }
    s.push_str("data: [DONE]\r\n\r\n");
    s
}

fn string_leaves(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| string_leaves(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| string_leaves(x, out)),
        _ => {}
    }
}

/// Every string of the corpus that a gateway would count: the string values of each request,
/// and of each JSON response or SSE event. Prompts, completions, code, tool schemas, several
/// languages: the "mixed text" of the token-counting benches.
pub fn corpus_strings() -> Vec<String> {
    let mut out = Vec::new();
    for v in corpus_records() {
        string_leaves(&v["request"], &mut out);
        let body = v["response_body"].as_str().unwrap_or_default();
        if let Ok(j) = serde_json::from_str::<serde_json::Value>(body) {
            string_leaves(&j, &mut out);
        } else {
            for d in data_payloads(body) {
                if let Ok(j) = serde_json::from_str::<serde_json::Value>(d) {
                    string_leaves(&j, &mut out);
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// The corpus strings joined by newlines (mixed text).
pub fn corpus_mixed_text() -> String {
    corpus_strings().join("\n")
}

/// English prose from the corpus: strings of at least 200 bytes that are nearly all ASCII
/// letters, spaces and sentence punctuation (no markup, code or JSON), joined by blank lines.
pub fn corpus_prose() -> String {
    let prose = |s: &String| {
        s.len() >= 200
            && s.bytes()
                .filter(|b| b.is_ascii_alphabetic() || b" .,;:'\"?!-()\n".contains(b))
                .count()
                * 100
                >= s.len() * 97
            && s.bytes().filter(|&b| b == b' ').count() * 10 >= s.len()
    };
    let mut v: Vec<String> = corpus_strings().into_iter().filter(prose).collect();
    v.sort();
    v.dedup();
    v.join("\n\n")
}

/// Runs `cmd`, returning its standard output, or its standard error as the error.
pub fn run(cmd: &mut std::process::Command) -> Result<Vec<u8>, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(out.stdout)
}

/// The Python of a venv (`target/py-bench-venv`) holding a release build of the wheel (the
/// test venv's is a dev build) and the pinned tools of `python/requirements-test.txt`
/// (maturin, tiktoken). The venv is made by `python/venv.sh` on first use (and again when the
/// pins change), so the benches need no earlier step; later runs only rebuild and reinstall
/// the wheel.
pub fn release_wheel_python(root: &std::path::Path) -> Result<std::path::PathBuf, String> {
    use std::process::Command;
    let venv = root.join("target/py-bench-venv");
    let maturin = venv.join("bin/maturin");
    // `python/venv.sh` copies the requirements last: a venv without the copy was cut short,
    // and one with another copy predates a change of the pins.
    let made_from = std::fs::read(venv.join("requirements-test.txt")).ok();
    if made_from.is_none()
        || made_from != std::fs::read(root.join("python/requirements-test.txt")).ok()
    {
        eprintln!("creating {} with the pinned tools", venv.display());
        run(Command::new("bash")
            .arg(root.join("python/venv.sh"))
            .arg(&venv))?;
    }
    let wheels = root.join("target/wheels-release");
    let _ = std::fs::remove_dir_all(&wheels);
    run(Command::new(&maturin)
        .current_dir(root.join("python"))
        .args(["build", "--release", "--quiet", "--out"])
        .arg(&wheels))?;
    let wheel = std::fs::read_dir(&wheels)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("no wheel built")?;
    let py = venv.join("bin/python");
    run(Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--force-reinstall",
        ])
        .arg(&wheel))?;
    Ok(py)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The synthetic streams are the wire format exactly: every event is valid JSON, and the
    /// meter reads them without a flag, with the finish reason and the usage they carry.
    #[test]
    fn synthetic_streams_are_well_formed() {
        for (name, body, usage) in [
            ("openai", synthetic_openai(50, true), true),
            ("openai", synthetic_openai(50, false), false),
            ("azure", synthetic_azure(50, true), true),
            ("azure", synthetic_azure(50, false), false),
        ] {
            for line in data_payloads(&body) {
                if line != "[DONE]" {
                    serde_json::from_str::<serde_json::Value>(line)
                        .unwrap_or_else(|e| panic!("{name}: {e}: {line}"));
                }
            }
            let mut m = usagetap::Meter::new(usagetap::MeterOptions::default());
            m.feed(body.as_bytes()).expect("feed");
            let r = m.finish().expect("finish");
            let flags: Vec<&str> = r.flags.names().collect();
            let expected: &[&str] = if usage {
                &[]
            } else {
                &[
                    "no_usage_reported",
                    "completion_may_be_one_short",
                    "prompt_unknown",
                ]
            };
            assert_eq!(flags, expected, "{name}");
            assert_eq!(r.source == usagetap::Source::Reported, usage, "{name}");
            if name == "openai" {
                assert_eq!(
                    r.choices[0].finish_reason.as_deref(),
                    Some("stop"),
                    "{name}"
                );
            }
        }
    }
}
