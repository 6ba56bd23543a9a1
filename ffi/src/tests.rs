//! The exports, called as a C host would call them (extern "C", raw pointers, out-params).
// Every unsafe block here calls an export with live buffers and out-pointers from this file.
#![allow(clippy::undocumented_unsafe_blocks)]

use std::ptr;

use super::*;

const STREAM: &str = concat!(
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,",
    "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":1,",
    "\"total_tokens\":9,\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\n",
    "data: [DONE]\n\n"
);

const REQUEST: &str =
    r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hi"}],"stream":true}"#;

fn new_meter(opts: &str) -> *mut usagetap_meter {
    let mut m = ptr::null_mut();
    // SAFETY: valid buffer and out-pointer.
    let r = unsafe { usagetap_meter_new(opts.as_ptr().cast(), opts.len(), &mut m) };
    assert_eq!(r, usagetap_result::Ok, "{}", thread_err());
    assert!(!m.is_null());
    m
}

fn new_err(opts: &[u8]) -> usagetap_result {
    let mut m = ptr::null_mut();
    // SAFETY: valid buffer and out-pointer.
    let r = unsafe { usagetap_meter_new(opts.as_ptr().cast(), opts.len(), &mut m) };
    assert_ne!(r, usagetap_result::Ok);
    assert!(m.is_null(), "out-param written on failure");
    r
}

fn thread_err() -> String {
    // SAFETY: read before the next handle-less call.
    unsafe { usagetap_thread_last_error().as_str() }.to_owned()
}

fn last_err(m: *mut usagetap_meter) -> String {
    // SAFETY: `m` is live.
    unsafe { usagetap_meter_last_error(m).as_str() }.to_owned()
}

fn feed(m: *mut usagetap_meter, bytes: &[u8]) -> usagetap_result {
    // SAFETY: valid buffer.
    unsafe { usagetap_meter_feed(m, bytes.as_ptr(), bytes.len()) }
}

fn finish(m: *mut usagetap_meter) -> usagetap_record {
    let mut rec = std::mem::MaybeUninit::<usagetap_record>::uninit();
    // SAFETY: valid out-pointer; written on OK.
    let r = unsafe { usagetap_meter_finish(m, rec.as_mut_ptr()) };
    assert_eq!(r, usagetap_result::Ok, "{}", last_err(m));
    // SAFETY: written on OK.
    unsafe { rec.assume_init() }
}

fn json(m: *mut usagetap_meter) -> serde_json::Value {
    let mut s = usagetap_str::EMPTY;
    // SAFETY: valid out-pointer.
    assert_eq!(
        unsafe { usagetap_meter_record_json(m, &mut s) },
        usagetap_result::Ok
    );
    // SAFETY: valid until free.
    serde_json::from_str(unsafe { s.as_str() }).unwrap()
}

fn free(m: *mut usagetap_meter) {
    // SAFETY: freed once.
    unsafe { usagetap_meter_free(m) }
}

#[test]
fn stream_in_small_pieces_gives_reported_usage() {
    for step in 1..=7 {
        let m = new_meter("");
        // SAFETY: valid buffer.
        let r = unsafe { usagetap_meter_request(m, REQUEST.as_ptr(), REQUEST.len()) };
        assert_eq!(r, usagetap_result::Ok);
        for piece in STREAM.as_bytes().chunks(step) {
            assert_eq!(feed(m, piece), usagetap_result::Ok);
        }
        let rec = finish(m);
        assert_eq!(
            (rec.prompt_tokens, rec.completion_tokens, rec.total_tokens),
            (8, 1, 9)
        );
        assert_eq!(rec.source, usagetap_source::Reported as u32);
        assert_eq!(rec.status, usagetap_status::Complete as u32);
        assert_eq!(rec.endpoint, usagetap_endpoint::ChatCompletions as u32);
        assert_eq!(rec.encoding, usagetap_encoding::O200kBase as u32);
        assert_eq!(rec.stream, 1);
        assert_eq!(rec.choice_count, 1);
        assert_eq!(rec.created, 1_700_000_000);
        let want = USAGETAP_PRESENT_CREATED
            | USAGETAP_PRESENT_CACHED_TOKENS
            | USAGETAP_PRESENT_REPORTED_PROMPT_TOKENS
            | USAGETAP_PRESENT_REPORTED_COMPLETION_TOKENS
            | USAGETAP_PRESENT_REPORTED_TOTAL_TOKENS;
        assert_eq!(rec.present, want);
        // SAFETY: strings valid until free.
        unsafe {
            assert_eq!(rec.model.as_str(), "gpt-4o-mini");
            assert_eq!(rec.response_id.as_str(), "c1");
            assert!(rec.deployment.data.is_null());
            assert!(rec.error.data.is_null());
        }
        let j = json(m);
        assert_eq!(j["prompt_tokens"], 8);
        assert_eq!(j["source"], "reported");
        assert_eq!(j["choices"][0]["finish_reason"], "stop");
        // The record can be read again, with the same pointers.
        let mut again = std::mem::MaybeUninit::<usagetap_record>::uninit();
        // SAFETY: valid out-pointer.
        assert_eq!(
            unsafe { usagetap_meter_record(m, again.as_mut_ptr()) },
            usagetap_result::Ok
        );
        // SAFETY: written on OK.
        let again = unsafe { again.assume_init() };
        assert_eq!(again.model.data, rec.model.data);
        assert_eq!(again.total_tokens, 9);
        free(m);
    }
}

#[test]
fn computed_when_no_usage_and_options_apply() {
    let body = concat!(
        "data: {\"id\":\"c2\",\"model\":\"my-deploy\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello world\"}}]}\n\n",
        "data: [DONE]\n\n"
    );
    let m = new_meter(
        r#"{"deployment":"my-deploy","deployments":{"my-deploy":"gpt-4"},"endpoint":"/openai/deployments/my-deploy/chat/completions?api-version=2024-10-21","reconcile":true,"limits":{"max_choices":4}}"#,
    );
    assert_eq!(feed(m, body.as_bytes()), usagetap_result::Ok);
    let rec = finish(m);
    assert_eq!(rec.source, usagetap_source::Computed as u32);
    assert_eq!(rec.encoding, usagetap_encoding::Cl100kBase as u32);
    assert_eq!(rec.completion_tokens, 2);
    assert_ne!(rec.flags & USAGETAP_FLAG_NO_USAGE_REPORTED, 0);
    assert_ne!(rec.present & USAGETAP_PRESENT_COMPUTED_COMPLETION_TOKENS, 0);
    assert_eq!(rec.computed_completion_tokens, 2);
    // SAFETY: valid until free.
    assert_eq!(unsafe { rec.deployment.as_str() }, "my-deploy");
    free(m);
}

/// With reported usage and reconciliation, `computed_flags` (not `flags`) notes the computed
/// prompt's image estimate, and an `image_sizes` entry removes it.
#[test]
fn computed_flags_and_image_sizes() {
    let req = r#"{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/c.png"}}]}]}"#;
    for (opts, unknown) in [
        (r#"{"reconcile":true}"#, true),
        (
            r#"{"reconcile":true,"image_sizes":{"https://x/c.png":[512,512]}}"#,
            false,
        ),
    ] {
        let m = new_meter(opts);
        // SAFETY: valid buffer.
        let r = unsafe { usagetap_meter_request(m, req.as_ptr(), req.len()) };
        assert_eq!(r, usagetap_result::Ok);
        assert_eq!(feed(m, STREAM.as_bytes()), usagetap_result::Ok);
        let rec = finish(m);
        assert_eq!(rec.flags & USAGETAP_FLAG_IMAGE_SIZE_UNKNOWN, 0);
        assert_eq!(
            rec.computed_flags & USAGETAP_FLAG_IMAGE_SIZE_UNKNOWN != 0,
            unknown,
            "{opts}"
        );
        assert_ne!(
            rec.computed_flags & USAGETAP_FLAG_COMPLETION_MAY_BE_ONE_SHORT,
            0
        );
        assert_eq!(rec.reserved, 0);
        let j = json(m);
        assert_eq!(
            j["computed"]["flags"]
                .as_array()
                .unwrap()
                .contains(&"image_size_unknown".into()),
            unknown
        );
        free(m);
    }
}

#[test]
fn truncated_stream() {
    let m = new_meter("null");
    let cut = &STREAM[..STREAM.find("data: {\"id\":\"c1\",\"choices\":[]").unwrap() - 5];
    assert_eq!(feed(m, cut.as_bytes()), usagetap_result::Ok);
    let rec = finish(m);
    assert_eq!(rec.status, usagetap_status::Truncated as u32);
    assert_ne!(rec.flags & USAGETAP_FLAG_TRUNCATED, 0);
    free(m);
}

#[test]
fn exchange_one_shot() {
    let body = r#"{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}"#;
    let m = new_meter("{}");
    let mut rec = std::mem::MaybeUninit::<usagetap_record>::uninit();
    // SAFETY: valid buffers.
    let r = unsafe {
        usagetap_meter_exchange(
            m,
            REQUEST.as_ptr(),
            REQUEST.len(),
            body.as_ptr(),
            body.len(),
            rec.as_mut_ptr(),
        )
    };
    assert_eq!(r, usagetap_result::Ok);
    // SAFETY: written on OK.
    let rec = unsafe { rec.assume_init() };
    assert_eq!(
        (
            rec.prompt_tokens,
            rec.completion_tokens,
            rec.total_tokens,
            rec.stream
        ),
        (9, 1, 10, 0)
    );
    // A second exchange on the same meter: finished.
    let mut rec2 = std::mem::MaybeUninit::<usagetap_record>::uninit();
    // SAFETY: valid buffers.
    let r =
        unsafe { usagetap_meter_exchange(m, ptr::null(), 0, ptr::null(), 0, rec2.as_mut_ptr()) };
    assert_eq!(r, usagetap_result::Finished);
    free(m);

    // An unreadable request only flags the record; (NULL, 0) response is empty.
    let m = new_meter("");
    let mut rec = std::mem::MaybeUninit::<usagetap_record>::uninit();
    // SAFETY: valid buffers.
    let r = unsafe {
        usagetap_meter_exchange(m, b"{nope".as_ptr(), 5, ptr::null(), 0, rec.as_mut_ptr())
    };
    assert_eq!(r, usagetap_result::Ok);
    // SAFETY: written on OK.
    let rec = unsafe { rec.assume_init() };
    assert_ne!(rec.flags & USAGETAP_FLAG_REQUEST_UNPARSED, 0);
    assert_ne!(rec.flags & USAGETAP_FLAG_EMPTY_RESPONSE, 0);
    free(m);
}

#[test]
fn misuse_on_a_handle() {
    let m = new_meter("");
    // Record before finish.
    let mut s = usagetap_str::EMPTY;
    // SAFETY: valid out-pointer.
    assert_eq!(
        unsafe { usagetap_meter_record_json(m, &mut s) },
        usagetap_result::NotFinished
    );
    // NULL data with a length; (NULL, 0) is fine.
    // SAFETY: NULL is checked.
    unsafe {
        assert_eq!(
            usagetap_meter_feed(m, ptr::null(), 3),
            usagetap_result::NullParameter
        );
        assert_eq!(usagetap_meter_feed(m, ptr::null(), 0), usagetap_result::Ok);
        assert_eq!(
            usagetap_meter_finish(m, ptr::null_mut()),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_meter_record_json(m, ptr::null_mut()),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_meter_record(m, ptr::null_mut()),
            usagetap_result::NullParameter
        );
    }
    assert!(!last_err(m).is_empty());
    // Invalid UTF-8 request: an error, but the meter stays usable and the record says so.
    // SAFETY: valid buffer.
    let r = unsafe { usagetap_meter_request(m, b"{\"a\":\"\xff\"}".as_ptr(), 9) };
    assert_eq!(r, usagetap_result::InvalidUtf8);
    assert!(last_err(m).contains("not UTF-8"), "{}", last_err(m));
    // SAFETY: valid buffer.
    let r = unsafe { usagetap_meter_request(m, b"[1]".as_ptr(), 3) };
    assert_eq!(r, usagetap_result::InvalidRequest, "{}", last_err(m));
    // SAFETY: (NULL, 0) is an empty body, which is not JSON.
    assert_eq!(
        unsafe { usagetap_meter_request(m, ptr::null(), 0) },
        usagetap_result::InvalidJson
    );
    // Invalid UTF-8 in the stream is not an error.
    assert_eq!(
        feed(
            m,
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\xff\xfe\"}}]}\n\n"
        ),
        usagetap_result::Ok
    );
    let rec = finish(m);
    assert_ne!(rec.flags & USAGETAP_FLAG_REQUEST_UNPARSED, 0);
    // After finish.
    assert_eq!(feed(m, b"x"), usagetap_result::Finished);
    assert!(last_err(m).contains("finished"), "{}", last_err(m));
    // SAFETY: valid buffer.
    assert_eq!(
        unsafe { usagetap_meter_request(m, REQUEST.as_ptr(), REQUEST.len()) },
        usagetap_result::Finished
    );
    let mut rec2 = std::mem::MaybeUninit::<usagetap_record>::uninit();
    // SAFETY: valid out-pointer.
    assert_eq!(
        unsafe { usagetap_meter_finish(m, rec2.as_mut_ptr()) },
        usagetap_result::Finished
    );
    let j = json(m);
    assert!(j["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "request_unparsed"));
    free(m);
}

#[test]
fn null_handles() {
    let mut rec = std::mem::MaybeUninit::<usagetap_record>::uninit();
    let mut s = usagetap_str::EMPTY;
    // SAFETY: every pointer is NULL or valid.
    unsafe {
        usagetap_meter_free(ptr::null_mut());
        assert_eq!(
            usagetap_meter_new(ptr::null(), 0, ptr::null_mut()),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_meter_request(ptr::null_mut(), ptr::null(), 0),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_meter_feed(ptr::null_mut(), b"x".as_ptr(), 1),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_meter_finish(ptr::null_mut(), rec.as_mut_ptr()),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_meter_exchange(
                ptr::null_mut(),
                ptr::null(),
                0,
                ptr::null(),
                0,
                rec.as_mut_ptr()
            ),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_meter_record(ptr::null(), rec.as_mut_ptr()),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_meter_record_json(ptr::null(), &mut s),
            usagetap_result::NullParameter
        );
        assert_eq!(usagetap_meter_last_error(ptr::null()).len, 0);
        assert_eq!(
            usagetap_count_tokens(ptr::null(), 0, ptr::null(), 0, ptr::null_mut()),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_count_tokens(ptr::null(), 4, ptr::null(), 0, &mut 0),
            usagetap_result::NullParameter
        );
    }
    // (NULL, 0) options are the defaults.
    let mut m = ptr::null_mut();
    // SAFETY: valid out-pointer.
    assert_eq!(
        unsafe { usagetap_meter_new(ptr::null(), 0, &mut m) },
        usagetap_result::Ok
    );
    free(m);
}

/// A thread whose handle-less calls never failed has no message: `{NULL, 0}`, like every other
/// absent string (not a dangling pointer with length 0).
#[test]
fn no_thread_error_is_null() {
    std::thread::spawn(|| {
        let e = usagetap_thread_last_error();
        assert!(e.data.is_null() && e.len == 0);
        assert_eq!(new_err(b"{"), usagetap_result::InvalidJson);
        let e = usagetap_thread_last_error();
        assert!(!e.data.is_null() && e.len > 0);
    })
    .join()
    .unwrap();
}

#[test]
fn options_errors() {
    assert_eq!(new_err(b"{"), usagetap_result::InvalidJson);
    assert!(thread_err().starts_with("options:"), "{}", thread_err());
    assert_eq!(
        new_err(br#"{"modle":"gpt-4o"}"#),
        usagetap_result::InvalidOptions
    );
    assert!(thread_err().contains("modle"), "{}", thread_err());
    assert_eq!(
        new_err(br#"{"endpoint":"/v1/images"}"#),
        usagetap_result::InvalidOptions
    );
    assert_eq!(
        new_err(br#"{"limits":{"max_line_bytes":0}}"#),
        usagetap_result::InvalidOptions
    );
    assert_eq!(
        new_err(br#"{"reconcile":"yes"}"#),
        usagetap_result::InvalidOptions
    );
    assert_eq!(new_err(b"[1]"), usagetap_result::InvalidOptions);
    assert_eq!(
        new_err(b"{\"model\":\"\xff\"}"),
        usagetap_result::InvalidUtf8
    );
    // A length over PTRDIFF_MAX is refused before any read.
    let mut m = ptr::null_mut();
    // SAFETY: the length is refused before the pointer is read.
    let r = unsafe { usagetap_meter_new(b"{}".as_ptr().cast(), usize::MAX, &mut m) };
    assert_eq!(r, usagetap_result::InvalidParameter);
    let o = options::parse(r#"{"model":"gpt-4o","limits":{"max_tool_calls":3}}"#)
        .ok()
        .unwrap();
    assert_eq!(o.model.as_deref(), Some("gpt-4o"));
    assert_eq!(o.limits.max_tool_calls, 3);
    assert_eq!(
        o.limits.max_choices,
        usagetap::Limits::default().max_choices
    );
    let o = options::parse(r#"{"image_sizes":{"https://x/a.png":[640,480]}}"#)
        .ok()
        .unwrap();
    assert_eq!(
        o.image_sizes.get("https://x/a.png"),
        Some(&usagetap::image::ImageSize {
            width: 640,
            height: 480
        })
    );
    for bad in [
        r#"{"image_sizes":{"u":[640]}}"#,
        r#"{"image_sizes":{"u":[-1,4]}}"#,
        r#"{"image_sizes":{"u":"640x480"}}"#,
    ] {
        assert_eq!(
            new_err(bad.as_bytes()),
            usagetap_result::InvalidOptions,
            "{bad}"
        );
    }
}

#[test]
fn count_tokens() {
    let mut n = 0u64;
    let text = "hello world";
    // SAFETY: valid buffers.
    unsafe {
        assert_eq!(
            usagetap_count_tokens(
                text.as_ptr().cast(),
                text.len(),
                b"gpt-4o".as_ptr().cast(),
                6,
                &mut n
            ),
            usagetap_result::Ok
        );
        assert_eq!(n, 2);
        assert_eq!(
            usagetap_count_tokens(ptr::null(), 0, ptr::null(), 0, &mut n),
            usagetap_result::Ok
        );
        assert_eq!(n, 0);
        n = 77;
        assert_eq!(
            usagetap_count_tokens(b"\xff".as_ptr().cast(), 1, ptr::null(), 0, &mut n),
            usagetap_result::InvalidUtf8
        );
        assert_eq!(n, 77, "out-param written on failure");
    }
    assert!(!thread_err().is_empty());
}

#[test]
fn result_strings() {
    for code in 7000..=7012 {
        let s = usagetap_result_str(code);
        // SAFETY: static.
        let s = unsafe { s.as_str() };
        assert!(!s.is_empty() && s != "unknown result code", "{code}");
    }
    // SAFETY: static.
    unsafe {
        assert_eq!(usagetap_result_str(0).as_str(), "unknown result code");
        assert_eq!(
            usagetap_result_str(usagetap_result::Ok as u32).as_str(),
            "ok"
        );
    }
    assert_eq!(usagetap_result::Ok as u32, 7000);
    assert_eq!(usagetap_result::Error as u32, 7011);
    assert_eq!(usagetap_result::NotAnEnvelope as u32, 7012);
    // SAFETY: static.
    assert_eq!(
        unsafe { usagetap_result_str(7013).as_str() },
        "unknown result code"
    );
}

#[test]
fn flag_constants_match_the_core() {
    let ours: &[(u32, &str)] = &[
        (USAGETAP_FLAG_NO_USAGE_REPORTED, "no_usage_reported"),
        (USAGETAP_FLAG_TRUNCATED, "truncated"),
        (USAGETAP_FLAG_IMAGE_SIZE_UNKNOWN, "image_size_unknown"),
        (
            USAGETAP_FLAG_REASONING_TOKENS_UNOBSERVABLE,
            "reasoning_tokens_unobservable",
        ),
        (
            USAGETAP_FLAG_COMPLETION_MAY_BE_ONE_SHORT,
            "completion_may_be_one_short",
        ),
        (USAGETAP_FLAG_UNKNOWN_MODEL, "unknown_model"),
        (USAGETAP_FLAG_LINE_TOO_LONG, "line_too_long"),
        (
            USAGETAP_FLAG_MALFORMED_EVENT_SKIPPED,
            "malformed_event_skipped",
        ),
        (USAGETAP_FLAG_BODY_TOO_LARGE, "body_too_large"),
        (USAGETAP_FLAG_TEXT_LIMIT_REACHED, "text_limit_reached"),
        (USAGETAP_FLAG_TOO_MANY_CHOICES, "too_many_choices"),
        (USAGETAP_FLAG_TOO_MANY_TOOL_CALLS, "too_many_tool_calls"),
        (USAGETAP_FLAG_REQUEST_UNPARSED, "request_unparsed"),
        (USAGETAP_FLAG_USAGE_REPEATED, "usage_repeated"),
        (USAGETAP_FLAG_INVALID_USAGE_VALUE, "invalid_usage_value"),
        (USAGETAP_FLAG_DATA_AFTER_DONE, "data_after_done"),
        (USAGETAP_FLAG_PROMPT_ESTIMATED, "prompt_estimated"),
        (
            USAGETAP_FLAG_IMAGE_TOKENS_ESTIMATED,
            "image_tokens_estimated",
        ),
        (USAGETAP_FLAG_PROMPT_UNKNOWN, "prompt_unknown"),
        (USAGETAP_FLAG_COMPLETION_ESTIMATED, "completion_estimated"),
        (USAGETAP_FLAG_EMPTY_RESPONSE, "empty_response"),
        (USAGETAP_FLAG_RESPONSE_NOT_FINISHED, "response_not_finished"),
        (USAGETAP_FLAG_JSON_TOO_DEEP, "json_too_deep"),
        (USAGETAP_FLAG_TOO_MANY_IMAGES, "too_many_images"),
    ];
    let core: Vec<(u32, &str)> = usagetap::Flags::ALL
        .iter()
        .map(|(f, n)| (f.0, *n))
        .collect();
    assert_eq!(
        ours,
        core.as_slice(),
        "USAGETAP_FLAG_* must list the core's flags, in bit order"
    );
    for (bit, name) in ours {
        // SAFETY: static.
        assert_eq!(unsafe { usagetap_flag_name(*bit).as_str() }, *name);
    }
    assert_eq!(usagetap_flag_name(0).len, 0);
    assert_eq!(usagetap_flag_name(0x3).len, 0);
}

#[test]
fn version_matches_the_header() {
    // SAFETY: static.
    let v = unsafe { usagetap_version().as_str() };
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    let header = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../include/usagetap.h"
    ))
    .unwrap();
    for (name, want) in [
        ("USAGETAP_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("USAGETAP_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("USAGETAP_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        let line = format!("#define {name} {want}\n");
        assert!(
            header.contains(&line),
            "include/usagetap.h lacks `{}`: update ffi/cbindgen.toml",
            line.trim()
        );
    }
    assert!(header.contains(&format!("#define USAGETAP_VERSION \"{v}\"")));
}

// The panic boundary, exercised by exports defined here the way the real ones are.
#[allow(unreachable_code)]
extern "C" fn panics_with_result(x: u32) -> usagetap_result {
    ffi_panic_boundary! {
        if x > 0 {
            panic!("test panic {x}");
        }
        usagetap_result::Ok
    }
}

extern "C" fn panics_with_str() -> usagetap_str {
    ffi_panic_boundary! {
        let v: Vec<u8> = Vec::new();
        usagetap_str::borrow(if v[3] == 0 { "x" } else { "y" })
    }
}

extern "C" fn panics_with_unit() {
    ffi_panic_boundary! {
        panic!("unit");
    }
}

#[test]
fn panic_boundary() {
    assert_eq!(panics_with_result(0), usagetap_result::Ok);
    assert_eq!(panics_with_result(1), usagetap_result::Panic);
    assert_eq!(panics_with_str().len, 0);
    panics_with_unit();
    // A meter still works afterwards.
    let m = new_meter("");
    assert_eq!(feed(m, STREAM.as_bytes()), usagetap_result::Ok);
    assert_eq!(finish(m).total_tokens, 9);
    free(m);
}

#[test]
fn record_layout_is_padding_free() {
    let words = std::mem::size_of::<u64>() * 12
        + std::mem::size_of::<usagetap_str>() * 5
        + std::mem::size_of::<u32>() * 10;
    assert_eq!(std::mem::size_of::<usagetap_record>(), words);
}

// ---- chargeback: envelopes, the request rewrite, the usage-chunk filter ----------------------

const KEY: &str = "0123456789abcdef0123456789abcdef";
const SECRET: &[u8] = b"app-setting-secret";

fn envelope(request: &str, response: &str) -> String {
    serde_json::json!({
        "eventTime": "2025-01-01T12:00:00.0000000Z",
        "apiOperation": "ChatCompletions_Create",
        "appSubscriptionKey": KEY,
        "request": request,
        "response": response,
    })
    .to_string()
}

fn meter_envelope(
    opts: &str,
    secret: &[u8],
    env: &[u8],
) -> Result<*mut usagetap_meter, usagetap_result> {
    let mut m = ptr::null_mut();
    // SAFETY: valid buffers and out-pointer.
    let r = unsafe {
        usagetap_meter_envelope(
            opts.as_ptr().cast(),
            opts.len(),
            secret.as_ptr(),
            secret.len(),
            env.as_ptr(),
            env.len(),
            &mut m,
        )
    };
    if r == usagetap_result::Ok {
        assert!(!m.is_null());
        Ok(m)
    } else {
        assert!(m.is_null(), "meter_out written on failure");
        Err(r)
    }
}

fn record(m: *mut usagetap_meter) -> usagetap_record {
    let mut rec = std::mem::MaybeUninit::<usagetap_record>::uninit();
    // SAFETY: valid out-pointer; written on OK.
    assert_eq!(
        unsafe { usagetap_meter_record(m, rec.as_mut_ptr()) },
        usagetap_result::Ok
    );
    // SAFETY: written on OK.
    unsafe { rec.assume_init() }
}

fn envelope_info(m: *mut usagetap_meter) -> (String, String, String) {
    let mut info = std::mem::MaybeUninit::<usagetap_envelope_info>::uninit();
    // SAFETY: valid out-pointer.
    assert_eq!(
        unsafe { usagetap_meter_envelope_info(m, info.as_mut_ptr()) },
        usagetap_result::Ok
    );
    // SAFETY: written on OK; the strings are valid until free.
    unsafe {
        let info = info.assume_init();
        (
            info.consumer.as_str().to_owned(),
            info.event_time.as_str().to_owned(),
            info.api_operation.as_str().to_owned(),
        )
    }
}

#[test]
fn envelope_is_metered_and_the_key_hashed() {
    let env = envelope(REQUEST, STREAM);
    let m = meter_envelope("", SECRET, env.as_bytes()).unwrap();
    let rec = record(m);
    assert_eq!(
        (rec.prompt_tokens, rec.completion_tokens, rec.total_tokens),
        (8, 1, 9)
    );
    assert_eq!(rec.status, usagetap_status::Complete as u32);
    assert_eq!(rec.flags & USAGETAP_FLAG_TRUNCATED, 0);
    assert_eq!(json(m)["total_tokens"], 9);
    let (consumer, time, op) = envelope_info(m);
    assert_eq!(consumer.len(), 32);
    assert!(consumer
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert!(!consumer.contains(&KEY[..8]) && !env.contains(&consumer));
    assert_eq!(
        consumer,
        usagetap::adapters::ConsumerHasher::new(SECRET).hash(KEY)
    );
    assert_eq!(time, "2025-01-01T12:00:00.0000000Z");
    assert_eq!(op, "ChatCompletions_Create");
    // Another secret, another id.
    let m2 = meter_envelope("", b"other", env.as_bytes()).unwrap();
    assert_ne!(envelope_info(m2).0, consumer);
    free(m2);
    // The meter is finished: nothing more goes in.
    assert_eq!(feed(m, b"data: x\n\n"), usagetap_result::Finished);
    assert!(last_err(m).contains("finished"), "{}", last_err(m));
    let mut rec2 = std::mem::MaybeUninit::<usagetap_record>::uninit();
    // SAFETY: valid pointers.
    unsafe {
        assert_eq!(
            usagetap_meter_finish(m, rec2.as_mut_ptr()),
            usagetap_result::Finished
        );
        assert_eq!(
            usagetap_meter_request(m, REQUEST.as_ptr(), REQUEST.len()),
            usagetap_result::Finished
        );
    }
    assert_eq!(record(m).total_tokens, 9);
    free(m);

    // Options apply; an envelope without a key has no consumer.
    let env = serde_json::json!({"request": REQUEST, "response": STREAM}).to_string();
    let m = meter_envelope(r#"{"deployment":"d1"}"#, SECRET, env.as_bytes()).unwrap();
    // SAFETY: valid until free.
    assert_eq!(unsafe { record(m).deployment.as_str() }, "d1");
    let mut info = std::mem::MaybeUninit::<usagetap_envelope_info>::uninit();
    // SAFETY: valid out-pointer.
    assert_eq!(
        unsafe { usagetap_meter_envelope_info(m, info.as_mut_ptr()) },
        usagetap_result::Ok
    );
    // SAFETY: written on OK.
    let info = unsafe { info.assume_init() };
    assert!(info.consumer.data.is_null() && info.consumer.len == 0);
    assert!(info.event_time.data.is_null() && info.api_operation.len == 0);
    free(m);
}

#[test]
fn cut_envelope_is_flagged_not_an_error() {
    let env = envelope(REQUEST, STREAM);
    let from = env.find("\"response\"").unwrap();
    for cut in [from + 20, env.len() * 2 / 3, env.len() - 1] {
        let m = meter_envelope("", SECRET, &env.as_bytes()[..cut]).unwrap();
        let rec = record(m);
        assert_ne!(rec.flags & USAGETAP_FLAG_TRUNCATED, 0, "cut at {cut}");
        assert_eq!(envelope_info(m).0.len(), 32);
        free(m);
    }
}

#[test]
fn envelope_errors() {
    let env = envelope(REQUEST, STREAM);
    assert_eq!(
        meter_envelope("", SECRET, b"not json"),
        Err(usagetap_result::InvalidJson)
    );
    assert!(thread_err().contains("envelope"), "{}", thread_err());
    assert_eq!(
        meter_envelope("", SECRET, b"[1, 2]"),
        Err(usagetap_result::InvalidJson)
    );
    assert_eq!(
        meter_envelope("", SECRET, b""),
        Err(usagetap_result::InvalidJson)
    );
    assert_eq!(
        meter_envelope("", b"", env.as_bytes()),
        Err(usagetap_result::InvalidParameter)
    );
    assert!(thread_err().contains("secret"), "{}", thread_err());
    assert_eq!(
        meter_envelope(r#"{"modle":1}"#, SECRET, env.as_bytes()),
        Err(usagetap_result::InvalidOptions)
    );
    let mut m = ptr::null_mut();
    // SAFETY: every pointer is NULL or valid.
    unsafe {
        assert_eq!(
            usagetap_meter_envelope(
                ptr::null(),
                0,
                SECRET.as_ptr(),
                SECRET.len(),
                env.as_ptr(),
                env.len(),
                ptr::null_mut()
            ),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_meter_envelope(
                ptr::null(),
                0,
                ptr::null(),
                4,
                env.as_ptr(),
                env.len(),
                &mut m
            ),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_meter_envelope(
                ptr::null(),
                0,
                SECRET.as_ptr(),
                SECRET.len(),
                ptr::null(),
                9,
                &mut m
            ),
            usagetap_result::NullParameter
        );
        assert!(m.is_null());
        let mut info = std::mem::MaybeUninit::<usagetap_envelope_info>::uninit();
        assert_eq!(
            usagetap_meter_envelope_info(ptr::null(), info.as_mut_ptr()),
            usagetap_result::NullParameter
        );
        // A meter from usagetap_meter_new is not an envelope.
        let plain = new_meter("");
        assert_eq!(
            usagetap_meter_envelope_info(plain, info.as_mut_ptr()),
            usagetap_result::NotAnEnvelope
        );
        assert_eq!(
            usagetap_meter_envelope_info(plain, ptr::null_mut()),
            usagetap_result::NullParameter
        );
        free(plain);
    }
}

/// Calls the rewrite; the body comes back owned.
fn rewrite(body: &[u8]) -> (Vec<u8>, u32, u32) {
    let mut out = usagetap_bytes {
        data: ptr::null_mut(),
        len: 0,
    };
    let (mut changed, mut asked) = (7u32, 7u32);
    // SAFETY: valid buffers and out-pointers.
    let r = unsafe {
        usagetap_rewrite_include_usage(
            body.as_ptr(),
            body.len(),
            &mut out,
            &mut changed,
            &mut asked,
        )
    };
    assert_eq!(r, usagetap_result::Ok);
    // SAFETY: not freed yet.
    let bytes = unsafe { out.as_bytes() }.to_vec();
    // SAFETY: written by the library; freed once, then the no-op second free.
    unsafe {
        usagetap_bytes_free(&mut out);
        assert!(out.data.is_null() && out.len == 0);
        usagetap_bytes_free(&mut out);
    }
    (bytes, changed, asked)
}

#[test]
fn rewrite_asks_streaming_requests_for_usage() {
    let (body, changed, asked) = rewrite(REQUEST.as_bytes());
    let want = format!(
        "{},\"stream_options\":{{\"include_usage\":true}}}}",
        &REQUEST[..REQUEST.len() - 1]
    );
    assert_eq!(String::from_utf8(body.clone()).unwrap(), want);
    assert_eq!((changed, asked), (1, 0));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["stream_options"]["include_usage"], true);
    // Already asked; not streaming; not JSON; cut: unchanged copies.
    for (b, asked) in [
        (&body[..], 1),
        (br#"{"model":"gpt-4o","messages":[]}"#.as_slice(), 0),
        (b"not json \xff".as_slice(), 0),
        (br#"{"stream":true,"mess"#.as_slice(), 0),
    ] {
        assert_eq!(
            rewrite(b),
            (b.to_vec(), 0, asked),
            "{}",
            String::from_utf8_lossy(b)
        );
    }
    // (NULL, 0): empty, nothing allocated.
    let mut out = usagetap_bytes {
        data: std::ptr::dangling_mut::<u8>(),
        len: 5,
    };
    let (mut changed, mut asked) = (7u32, 7u32);
    // SAFETY: (NULL, 0) is empty; valid out-pointers.
    unsafe {
        assert_eq!(
            usagetap_rewrite_include_usage(ptr::null(), 0, &mut out, &mut changed, &mut asked),
            usagetap_result::Ok
        );
    }
    assert!(out.data.is_null() && out.len == 0 && changed == 0 && asked == 0);
}

#[test]
fn rewrite_misuse() {
    let mut out = usagetap_bytes {
        data: ptr::null_mut(),
        len: 0,
    };
    let (mut changed, mut asked) = (7u32, 7u32);
    let b = REQUEST.as_bytes();
    // SAFETY: every pointer is NULL or valid.
    unsafe {
        assert_eq!(
            usagetap_rewrite_include_usage(
                b.as_ptr(),
                b.len(),
                ptr::null_mut(),
                &mut changed,
                &mut asked
            ),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_rewrite_include_usage(
                b.as_ptr(),
                b.len(),
                &mut out,
                ptr::null_mut(),
                &mut asked
            ),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_rewrite_include_usage(
                b.as_ptr(),
                b.len(),
                &mut out,
                &mut changed,
                ptr::null_mut()
            ),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_rewrite_include_usage(ptr::null(), 3, &mut out, &mut changed, &mut asked),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_rewrite_include_usage(
                b.as_ptr(),
                usize::MAX,
                &mut out,
                &mut changed,
                &mut asked
            ),
            usagetap_result::InvalidParameter
        );
        usagetap_bytes_free(ptr::null_mut());
        usagetap_bytes_free(&mut out);
    }
    assert!(
        out.data.is_null() && (changed, asked) == (7, 7),
        "out-params written on failure"
    );
    assert!(!thread_err().is_empty());
}

fn new_filter(max: usize) -> *mut usagetap_usage_filter {
    let mut f = ptr::null_mut();
    // SAFETY: valid out-pointer.
    assert_eq!(
        unsafe { usagetap_usage_filter_new(max, &mut f) },
        usagetap_result::Ok
    );
    assert!(!f.is_null());
    f
}

fn filter_all(f: *mut usagetap_usage_filter, input: &[u8], step: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut s = usagetap_slice::EMPTY;
    for piece in input.chunks(step) {
        // SAFETY: valid buffers; the output is read before the next call.
        unsafe {
            assert_eq!(
                usagetap_usage_filter_feed(f, piece.as_ptr(), piece.len(), &mut s),
                usagetap_result::Ok
            );
            got.extend_from_slice(s.as_bytes());
        }
    }
    // SAFETY: as above.
    unsafe {
        assert_eq!(usagetap_usage_filter_finish(f, &mut s), usagetap_result::Ok);
        got.extend_from_slice(s.as_bytes());
    }
    got
}

fn removed(f: *mut usagetap_usage_filter) -> u64 {
    let mut n = 99;
    // SAFETY: valid out-pointer.
    assert_eq!(
        unsafe { usagetap_usage_filter_removed(f, &mut n) },
        usagetap_result::Ok
    );
    n
}

#[test]
fn filter_removes_the_usage_chunk_at_any_split() {
    let usage_at = STREAM.find("data: {\"id\":\"c1\",\"choices\":[]").unwrap();
    let done_at = STREAM.find("data: [DONE]").unwrap();
    let want = format!("{}{}", &STREAM[..usage_at], &STREAM[done_at..]);
    for step in 1..=7 {
        let f = new_filter(0);
        assert_eq!(removed(f), 0);
        let got = filter_all(f, STREAM.as_bytes(), step);
        assert_eq!(String::from_utf8(got).unwrap(), want, "step {step}");
        assert_eq!(removed(f), 1);
        // SAFETY: freed once.
        unsafe { usagetap_usage_filter_free(f) };
    }
    // Without a usage chunk nothing changes, including a last event without its blank line.
    let plain = &STREAM[..usage_at - 1];
    let f = new_filter(64);
    assert_eq!(filter_all(f, plain.as_bytes(), 3), plain.as_bytes());
    assert_eq!(removed(f), 0);
    // SAFETY: freed once.
    unsafe { usagetap_usage_filter_free(f) };
}

#[test]
fn filter_misuse() {
    let f = new_filter(0);
    let mut s = usagetap_slice::EMPTY;
    let mut n = 5u64;
    // SAFETY: every pointer is NULL or valid.
    unsafe {
        usagetap_usage_filter_free(ptr::null_mut());
        assert_eq!(
            usagetap_usage_filter_new(0, ptr::null_mut()),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_usage_filter_feed(ptr::null_mut(), b"x".as_ptr(), 1, &mut s),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_usage_filter_feed(f, b"x".as_ptr(), 1, ptr::null_mut()),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_usage_filter_finish(ptr::null_mut(), &mut s),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_usage_filter_removed(ptr::null(), &mut n),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_usage_filter_removed(f, ptr::null_mut()),
            usagetap_result::NullParameter
        );
        assert_eq!(n, 5);
        // A complete event comes out; a failed feed keeps that output valid and unwritten.
        let ev = b"data: {\"choices\":[{\"index\":0,\"delta\":{}}]}\n\ndata: {";
        assert_eq!(
            usagetap_usage_filter_feed(f, ev.as_ptr(), ev.len(), &mut s),
            usagetap_result::Ok
        );
        assert_eq!(s.as_bytes(), &ev[..ev.len() - 7]);
        let before = s;
        assert_eq!(
            usagetap_usage_filter_feed(f, ptr::null(), 2, &mut s),
            usagetap_result::NullParameter
        );
        assert_eq!(
            usagetap_usage_filter_feed(f, ev.as_ptr(), usize::MAX, &mut s),
            usagetap_result::InvalidParameter
        );
        assert_eq!(s.data, before.data);
        assert_eq!(s.as_bytes(), &ev[..ev.len() - 7]);
        // (NULL, 0) is an empty piece: nothing to send.
        assert_eq!(
            usagetap_usage_filter_feed(f, ptr::null(), 0, &mut s),
            usagetap_result::Ok
        );
        assert!(s.data.is_null() && s.len == 0);
        assert_eq!(usagetap_usage_filter_finish(f, &mut s), usagetap_result::Ok);
        assert_eq!(s.as_bytes(), b"data: {");
        assert_eq!(
            usagetap_usage_filter_feed(f, b"x".as_ptr(), 1, &mut s),
            usagetap_result::Finished
        );
        assert_eq!(
            usagetap_usage_filter_finish(f, &mut s),
            usagetap_result::Finished
        );
        assert_eq!(s.as_bytes(), b"data: {");
        assert_eq!(removed(f), 0);
        usagetap_usage_filter_free(f);
    }
}

#[test]
fn new_layouts() {
    assert_eq!(
        std::mem::size_of::<usagetap_envelope_info>(),
        3 * std::mem::size_of::<usagetap_str>()
    );
    assert_eq!(
        std::mem::size_of::<usagetap_bytes>(),
        2 * std::mem::size_of::<usize>()
    );
    assert_eq!(
        std::mem::size_of::<usagetap_slice>(),
        2 * std::mem::size_of::<usize>()
    );
}
