//! The C ABI of usagetap: one opaque meter handle, a flat record struct plus the record's JSON,
//! result codes from a distinct base, and a panic boundary around every export. Chargeback
//! (`chargeback.rs`): APIM envelopes metered into a finished meter, the `include_usage` request
//! rewrite, and the usage-chunk filter handle.
//!
//! `include/usagetap.h` is generated from this crate by a pinned cbindgen (`ffi/test.sh`
//! regenerates it and fails on drift). The conventions (ownership, NULL, lifetimes, threads) are
//! in `ffi/README.md` and repeated on each function below, because those comments become the
//! header's documentation.
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::c_char;

use usagetap::{ErrorKind, Meter, UsageRecord};

mod chargeback;
mod options;
mod panic;
mod record;

pub use chargeback::*;
pub use record::*;

use panic::ffi_panic_boundary;

/// A borrowed UTF-8 string: `data` points at `len` bytes, **not** NUL-terminated. `data` may be
/// NULL when `len` is 0. Who owns the bytes and how long they stay valid is said by each function
/// that hands one out.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct usagetap_str {
    /// The first byte, or NULL for an empty string.
    pub data: *const c_char,
    /// The number of bytes.
    pub len: usize,
}

impl usagetap_str {
    /// The empty string `{NULL, 0}`.
    pub(crate) const EMPTY: usagetap_str = usagetap_str {
        data: std::ptr::null(),
        len: 0,
    };

    /// Borrows `s`: the caller of the export must be told how long `s` lives.
    pub(crate) fn borrow(s: &str) -> usagetap_str {
        if s.is_empty() {
            return usagetap_str::EMPTY;
        }
        usagetap_str {
            data: s.as_ptr().cast(),
            len: s.len(),
        }
    }

    /// Borrows an optional string; `None` is `{NULL, 0}`.
    pub(crate) fn borrow_opt(s: Option<&str>) -> usagetap_str {
        s.map_or(usagetap_str::EMPTY, usagetap_str::borrow)
    }

    /// The string as Rust sees it (for the Rust tests).
    ///
    /// # Safety
    /// `self` must come from this library and still be valid by its function's lifetime rule.
    pub unsafe fn as_str<'a>(&self) -> &'a str {
        if self.data.is_null() || self.len == 0 {
            return "";
        }
        // SAFETY: the caller guarantees the bytes are alive; this library only hands out
        // `usagetap_str`s made from `&str`, so they are UTF-8.
        unsafe {
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.data.cast(), self.len))
        }
    }
}

/// The result of every fallible function. Codes start at 7000 so they cannot be mistaken for
/// errno or HRESULT values. **Codes are never renumbered or reused**: a retired code stays here as
/// a comment. Out-parameters are written only when the result is `USAGETAP_RESULT_OK`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum usagetap_result {
    /// Success.
    Ok = 7000,
    /// A required pointer was NULL (or a buffer pointer was NULL with a non-zero length).
    NullParameter = 7001,
    /// A panic was caught inside the library. The handle involved, if any, is in an unspecified
    /// (but memory-safe) state: free it. Please report it as a bug.
    Panic = 7002,
    /// Text that must be UTF-8 was not.
    InvalidUtf8 = 7003,
    /// Bytes that must be JSON (options, a request body) were not valid JSON.
    InvalidJson = 7004,
    /// A request body was JSON but not a shape any endpoint accepts. The meter stays usable and
    /// the record will carry the `request_unparsed` flag.
    InvalidRequest = 7005,
    /// Options were valid JSON but wrong: an unknown field, a wrong type, an unknown endpoint, a
    /// zero limit.
    InvalidOptions = 7006,
    /// The meter was already finished (feed, request or finish after finish).
    Finished = 7007,
    /// The record was asked for before `usagetap_meter_finish`.
    NotFinished = 7008,
    /// A configured limit was exceeded where no partial result makes sense.
    LimitExceeded = 7009,
    /// A parameter is out of range (a length over `PTRDIFF_MAX`).
    InvalidParameter = 7010,
    /// An error the core added after this version of the C face: see the last-error message.
    Error = 7011,
    /// `usagetap_meter_envelope_info` was called on a meter that was not made by
    /// `usagetap_meter_envelope`.
    NotAnEnvelope = 7012,
}

impl usagetap_result {
    fn from_kind(kind: ErrorKind) -> usagetap_result {
        match kind {
            ErrorKind::InvalidJson => usagetap_result::InvalidJson,
            ErrorKind::InvalidRequest => usagetap_result::InvalidRequest,
            ErrorKind::InvalidOptions => usagetap_result::InvalidOptions,
            ErrorKind::Finished => usagetap_result::Finished,
            ErrorKind::LimitExceeded => usagetap_result::LimitExceeded,
            // `ErrorKind` is non-exhaustive: a kind added later maps to the generic code.
            _ => usagetap_result::Error,
        }
    }

    fn text(self) -> &'static str {
        match self {
            usagetap_result::Ok => "ok",
            usagetap_result::NullParameter => "a required pointer was NULL",
            usagetap_result::Panic => {
                "a panic was caught inside usagetap (a bug: please report it)"
            }
            usagetap_result::InvalidUtf8 => "text was not valid UTF-8",
            usagetap_result::InvalidJson => "invalid JSON",
            usagetap_result::InvalidRequest => "the request body has a shape no endpoint accepts",
            usagetap_result::InvalidOptions => "invalid options",
            usagetap_result::Finished => "the meter was already finished",
            usagetap_result::NotFinished => "the meter is not finished yet",
            usagetap_result::LimitExceeded => "a configured limit was exceeded",
            usagetap_result::InvalidParameter => "a parameter was out of range",
            usagetap_result::Error => "error",
            usagetap_result::NotAnEnvelope => "the meter was not made from an envelope",
        }
    }
}

/// A failure inside an export: the code and the message for the last-error slot.
pub(crate) struct Failure {
    code: usagetap_result,
    message: String,
}

impl Failure {
    pub(crate) fn new(code: usagetap_result, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn code(code: usagetap_result) -> Failure {
        Failure::new(code, code.text())
    }
}

impl From<usagetap::Error> for Failure {
    fn from(e: usagetap::Error) -> Failure {
        Failure::new(usagetap_result::from_kind(e.kind()), e.to_string())
    }
}

/// Reads a caller's buffer. `(NULL, 0)` and `(p, 0)` are the empty slice.
///
/// # Safety
/// When `len > 0` and `data` is not NULL, `data` must point at `len` readable bytes that stay
/// unchanged for `'a`.
pub(crate) unsafe fn input<'a, T>(data: *const T, len: usize) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(Failure::code(usagetap_result::NullParameter));
    }
    if len > isize::MAX as usize {
        return Err(Failure::code(usagetap_result::InvalidParameter));
    }
    // SAFETY: `data` is not NULL and, by the caller's contract, points at `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

/// Reads a caller's buffer that must be UTF-8.
///
/// # Safety
/// As [`input`].
pub(crate) unsafe fn input_str<'a>(data: *const c_char, len: usize) -> Result<&'a str, Failure> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { input(data, len)? };
    std::str::from_utf8(bytes)
        .map_err(|e| Failure::new(usagetap_result::InvalidUtf8, e.to_string()))
}

thread_local! {
    /// The message of the last failed handle-less call on this thread.
    static THREAD_LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Stores the message of a failed call that has no handle, and returns its code.
pub(crate) fn fail_without_handle(f: Failure) -> usagetap_result {
    THREAD_LAST_ERROR.with(|m| {
        let mut m = m.borrow_mut();
        m.clear();
        m.push_str(&f.message);
    });
    f.code
}

/// A meter for one exchange (a request and its response). Opaque.
///
/// Ownership: made by `usagetap_meter_new` (or, already finished, by `usagetap_meter_envelope`),
/// owned by the caller, freed by `usagetap_meter_free`.
///
/// Thread safety: a meter may be moved to, and used from, any thread, but not from two threads at
/// once; the caller serializes calls on one meter. Different meters are independent.
pub struct usagetap_meter {
    meter: Meter,
    last_error: String,
    done: Option<Done>,
    /// What the envelope said, for a meter made by `usagetap_meter_envelope`.
    envelope: Option<chargeback::EnvelopeInfo>,
}

/// The finished record, kept by the handle so the caller can borrow it until `_free`.
struct Done {
    record: UsageRecord,
    /// The record's JSON, rendered on first request: most hosts read the struct only, and
    /// rendering costs more than metering a small exchange. `OnceLock` keeps concurrent readers
    /// of a finished meter safe.
    json: std::sync::OnceLock<String>,
}

impl usagetap_meter {
    /// Runs `f`, a call that gives the meter input or finishes it, on the handle; a failure
    /// stores its message on the handle. A finished meter refuses with `FINISHED` (the core does
    /// too, but a meter made by `usagetap_meter_envelope` is finished without its core meter).
    fn run(&mut self, f: impl FnOnce(&mut Self) -> Result<(), Failure>) -> usagetap_result {
        let result = if self.done.is_some() {
            Err(Failure::new(
                usagetap_result::Finished,
                "the meter was already finished",
            ))
        } else {
            f(self)
        };
        match result {
            Ok(()) => usagetap_result::Ok,
            Err(e) => {
                self.last_error = e.message;
                e.code
            }
        }
    }

    fn finish(&mut self) -> Result<&Done, Failure> {
        let record = self.meter.finish()?;
        Ok(self.done.insert(Done {
            record,
            json: std::sync::OnceLock::new(),
        }))
    }
}

/// Gives the meter a request body, refusing one that is not UTF-8.
fn give_request(meter: &mut Meter, body: &[u8]) -> Result<(), Failure> {
    match std::str::from_utf8(body) {
        Ok(_) => Ok(meter.request(body)?),
        Err(bad) => {
            // JSON is UTF-8 (RFC 8259). The core skips the strings it does not need without
            // checking them, so refuse here, and give the core a body it cannot read so the
            // record carries `request_unparsed` like any unreadable body.
            match meter.request(b"") {
                Err(e) if e.kind() == ErrorKind::Finished => Err(e.into()),
                _ => Err(Failure::new(
                    usagetap_result::InvalidUtf8,
                    format!("request body is not UTF-8: {bad}"),
                )),
            }
        }
    }
}

/// Borrows a handle.
///
/// # Safety
/// `p` is NULL or a live handle from `usagetap_meter_new` not used by another thread right now.
unsafe fn handle<'a>(p: *mut usagetap_meter) -> Option<&'a mut usagetap_meter> {
    // SAFETY: by the caller's contract, a non-NULL `p` is a live, unaliased handle.
    unsafe { p.as_mut() }
}

/// The library's version, e.g. `"0.1.0"` (the crate version it was built from). It equals
/// `USAGETAP_VERSION` and `USAGETAP_VERSION_MAJOR.MINOR.PATCH` of the header it was built with.
///
/// The string is static: valid for the life of the process. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn usagetap_version() -> usagetap_str {
    ffi_panic_boundary! {
        usagetap_str::borrow(env!("CARGO_PKG_VERSION"))
    }
}

/// A static, human-readable description of `result` (e.g. `"invalid JSON"`). An unknown code
/// gives `"unknown result code"`.
///
/// The string is static: valid for the life of the process. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn usagetap_result_str(result: u32) -> usagetap_str {
    ffi_panic_boundary! {
        let text = match record::result_from_u32(result) {
            Some(r) => r.text(),
            None => "unknown result code",
        };
        usagetap_str::borrow(text)
    }
}

/// The message of the last failed call **on this thread** that has no handle to keep it
/// (`usagetap_meter_new`, `usagetap_meter_envelope`, `usagetap_count_tokens`,
/// `usagetap_rewrite_include_usage`, `usagetap_usage_filter_new`); empty when there was none.
///
/// The string is owned by the library and valid until the next such call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn usagetap_thread_last_error() -> usagetap_str {
    ffi_panic_boundary! {
        THREAD_LAST_ERROR.with(|m| {
            let m = m.borrow();
            // The String's buffer only changes on the next failed handle-less call on this
            // thread, which is the documented end of the lifetime. No message is `{NULL, 0}`,
            // like every other absent string.
            usagetap_str::borrow(&m)
        })
    }
}

/// Makes a meter. `options_json` is a JSON object, every field optional:
/// `{"model": "gpt-4o", "deployment": "chat-prod", "deployments": {"chat-prod": "gpt-4o-mini"},
/// "image_sizes": {"https://example.com/cat.png": [640, 480]},
/// "endpoint": "chat.completions" | "/openai/deployments/x/chat/completions?..." ,
/// "reconcile": false, "limits": {"max_line_bytes": n, "max_body_bytes": n,
/// "max_text_bytes": n, "max_choices": n, "max_tool_calls": n, "max_json_depth": n,
/// "max_images": n, "max_image_base64": n}}` (defaults and meanings: `usagetap::Limits`).
/// `(NULL, 0)`, an empty or whitespace-only buffer, and `null` give the defaults. Unknown fields
/// are rejected (`USAGETAP_RESULT_INVALID_OPTIONS`), so a typo does not pass silently.
///
/// On success `*meter_out` is a new meter that the caller owns and must free with
/// `usagetap_meter_free`. On failure `*meter_out` is not written; the message is in
/// `usagetap_thread_last_error()`.
///
/// Errors: `NULL_PARAMETER` (`meter_out` NULL, or `options_json` NULL with a length),
/// `INVALID_PARAMETER` (a length over `PTRDIFF_MAX`), `INVALID_UTF8`, `INVALID_JSON`,
/// `INVALID_OPTIONS`. Thread-safe.
///
/// # Safety
/// `options_json` is NULL or points at `options_len` readable bytes; `meter_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_meter_new(
    options_json: *const c_char,
    options_len: usize,
    meter_out: *mut *mut usagetap_meter,
) -> usagetap_result {
    ffi_panic_boundary! {
        if meter_out.is_null() {
            return fail_without_handle(Failure::code(usagetap_result::NullParameter));
        }
        // SAFETY: the caller's contract on `options_json`.
        let opts = match unsafe { input_str(options_json, options_len) }.and_then(options::parse) {
            Ok(o) => o,
            Err(e) => return fail_without_handle(e),
        };
        let handle = Box::new(usagetap_meter {
            meter: Meter::new(opts),
            last_error: String::new(),
            done: None,
            envelope: None,
        });
        // SAFETY: `meter_out` is not NULL and writable by the caller's contract.
        unsafe { meter_out.write(Box::into_raw(handle)) };
        usagetap_result::Ok
    }
}

/// Frees a meter and everything it handed out (the record's strings and JSON). NULL is a no-op.
/// Must not be called twice on the same meter, and the meter must not be used afterwards.
///
/// # Safety
/// `meter` is NULL or a live handle from `usagetap_meter_new` or `usagetap_meter_envelope` that
/// no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_meter_free(meter: *mut usagetap_meter) {
    ffi_panic_boundary! {
        if !meter.is_null() {
            // SAFETY: a non-NULL `meter` was made by `Box::into_raw` in `usagetap_meter_new` and,
            // by the caller's contract, is freed only once.
            drop(unsafe { Box::from_raw(meter) });
        }
    }
}

/// Gives the meter the request body (any endpoint), so the prompt can be counted when the
/// service reports no usage. The bytes are copied; the caller keeps ownership of `body`.
/// `(NULL, 0)` is an empty body, which is not JSON (`INVALID_JSON`).
///
/// A body that cannot be read fails with `INVALID_UTF8`, `INVALID_JSON`, `INVALID_REQUEST` or
/// `LIMIT_EXCEEDED` (over `max_body_bytes`, or nested deeper than `max_json_depth`), but the
/// meter stays usable: feed the response and finish as usual, and the record carries the
/// `request_unparsed` flag. Other errors: `NULL_PARAMETER`, `INVALID_PARAMETER` (a length over
/// `PTRDIFF_MAX`), `FINISHED`.
///
/// # Safety
/// `meter` is NULL or a live handle not used by another thread; `body` is NULL or points at
/// `body_len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_meter_request(
    meter: *mut usagetap_meter,
    body: *const u8,
    body_len: usize,
) -> usagetap_result {
    ffi_panic_boundary! {
        // SAFETY: the caller's contract on `meter`.
        let Some(m) = (unsafe { handle(meter) }) else {
            return usagetap_result::NullParameter;
        };
        m.run(|m| {
            // SAFETY: the caller's contract on `body`.
            let body = unsafe { input(body, body_len)? };
            give_request(&mut m.meter, body)
        })
    }
}

/// Feeds the next piece of the response body (an SSE stream or a JSON body), as it arrives.
/// Pieces may split anything anywhere; the record does not depend on the split. The bytes are
/// read during the call only; the caller keeps ownership. `(NULL, 0)` is an empty piece.
///
/// Nothing in the bytes is an error (invalid UTF-8, malformed events, oversized lines become
/// flags on the record). Errors: `NULL_PARAMETER`, `INVALID_PARAMETER` (a length over
/// `PTRDIFF_MAX`), `FINISHED`.
///
/// # Safety
/// `meter` is NULL or a live handle not used by another thread; `data` is NULL or points at
/// `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_meter_feed(
    meter: *mut usagetap_meter,
    data: *const u8,
    len: usize,
) -> usagetap_result {
    ffi_panic_boundary! {
        // SAFETY: the caller's contract on `meter`.
        let Some(m) = (unsafe { handle(meter) }) else {
            return usagetap_result::NullParameter;
        };
        m.run(|m| {
            // SAFETY: the caller's contract on `data`.
            let data = unsafe { input(data, len)? };
            Ok(m.meter.feed(data)?)
        })
    }
}

/// Ends the response and writes its record to `*record_out`. Counting, when needed, happens
/// here. The strings inside the record and the JSON from `usagetap_meter_record_json` are owned
/// by the meter and stay valid until `usagetap_meter_free`.
///
/// Errors: `NULL_PARAMETER` (`meter` or `record_out` NULL; the meter is then not finished),
/// `FINISHED` (called twice; `*record_out` is not written, the first record stays available
/// through `usagetap_meter_record`).
///
/// # Safety
/// `meter` is NULL or a live handle not used by another thread; `record_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_meter_finish(
    meter: *mut usagetap_meter,
    record_out: *mut usagetap_record,
) -> usagetap_result {
    ffi_panic_boundary! {
        // SAFETY: the caller's contract on `meter`.
        let Some(m) = (unsafe { handle(meter) }) else {
            return usagetap_result::NullParameter;
        };
        m.run(|m| {
            if record_out.is_null() {
                return Err(Failure::code(usagetap_result::NullParameter));
            }
            let rec = usagetap_record::from_record(&m.finish()?.record);
            // SAFETY: `record_out` is not NULL and writable by the caller's contract.
            unsafe { record_out.write(rec) };
            Ok(())
        })
    }
}

/// Meters a complete exchange in one call, on a meter just made by `usagetap_meter_new`: the
/// request body (`(NULL, 0)` when unknown), then the whole response body, then finish. Same as `usagetap_meter_request` (skipped
/// when the body is empty; an unreadable body only sets the `request_unparsed` flag),
/// `usagetap_meter_feed` and `usagetap_meter_finish`, with the same ownership of the record.
///
/// Errors: `NULL_PARAMETER`, `INVALID_PARAMETER` (a length over `PTRDIFF_MAX`), `FINISHED` (the
/// meter was already finished).
///
/// # Safety
/// `meter` is NULL or a live handle not used by another thread; `request`/`response` are NULL
/// or point at their lengths of readable bytes; `record_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_meter_exchange(
    meter: *mut usagetap_meter,
    request: *const u8,
    request_len: usize,
    response: *const u8,
    response_len: usize,
    record_out: *mut usagetap_record,
) -> usagetap_result {
    ffi_panic_boundary! {
        // SAFETY: the caller's contract on `meter`.
        let Some(m) = (unsafe { handle(meter) }) else {
            return usagetap_result::NullParameter;
        };
        m.run(|m| {
            if record_out.is_null() {
                return Err(Failure::code(usagetap_result::NullParameter));
            }
            // SAFETY: the caller's contract on `request` and `response`.
            let (request, response) =
                unsafe { (input(request, request_len)?, input(response, response_len)?) };
            if !request.trim_ascii().is_empty() {
                match give_request(&mut m.meter, request) {
                    Err(e) if e.code == usagetap_result::Finished => return Err(e),
                    // Unreadable: the record carries `request_unparsed`.
                    _ => {}
                }
            }
            m.meter.feed(response)?;
            let rec = usagetap_record::from_record(&m.finish()?.record);
            // SAFETY: `record_out` is not NULL and writable by the caller's contract.
            unsafe { record_out.write(rec) };
            Ok(())
        })
    }
}

/// Writes the finished meter's record to `*record_out` again (same values, same string
/// pointers, valid until `usagetap_meter_free`).
///
/// Errors: `NULL_PARAMETER`, `NOT_FINISHED`. Does not change the meter or its last error.
///
/// # Safety
/// `meter` is NULL or a live handle not being changed by another thread; `record_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_meter_record(
    meter: *const usagetap_meter,
    record_out: *mut usagetap_record,
) -> usagetap_result {
    ffi_panic_boundary! {
        // SAFETY: the caller's contract on `meter`.
        let Some(m) = (unsafe { meter.as_ref() }) else {
            return usagetap_result::NullParameter;
        };
        if record_out.is_null() {
            return usagetap_result::NullParameter;
        }
        let Some(done) = &m.done else { return usagetap_result::NotFinished };
        // SAFETY: `record_out` is not NULL and writable by the caller's contract.
        unsafe { record_out.write(usagetap_record::from_record(&done.record)) };
        usagetap_result::Ok
    }
}

/// Borrows the finished meter's record as one line of JSON (the design's record, the same in
/// every face: `{"endpoint":…,"prompt_tokens":…,"flags":[…],…}`), UTF-8, not NUL-terminated.
/// The bytes are owned by the meter and valid until `usagetap_meter_free`.
///
/// Errors: `NULL_PARAMETER`, `NOT_FINISHED`. Does not change the meter or its last error.
///
/// # Safety
/// `meter` is NULL or a live handle not being changed by another thread; `json_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_meter_record_json(
    meter: *const usagetap_meter,
    json_out: *mut usagetap_str,
) -> usagetap_result {
    ffi_panic_boundary! {
        // SAFETY: the caller's contract on `meter`.
        let Some(m) = (unsafe { meter.as_ref() }) else {
            return usagetap_result::NullParameter;
        };
        if json_out.is_null() {
            return usagetap_result::NullParameter;
        }
        let Some(done) = &m.done else { return usagetap_result::NotFinished };
        let json = done.json.get_or_init(|| done.record.to_json());
        // SAFETY: `json_out` is not NULL and writable by the caller's contract.
        unsafe { json_out.write(usagetap_str::borrow(json)) };
        usagetap_result::Ok
    }
}

/// The message of the last failed call on `meter` (empty when none failed yet; NULL gives the
/// empty string). Owned by the meter; valid until the next call that changes `meter` (any call
/// taking a non-const `usagetap_meter *`) or its free.
///
/// # Safety
/// `meter` is NULL or a live handle not being changed by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_meter_last_error(meter: *const usagetap_meter) -> usagetap_str {
    ffi_panic_boundary! {
        // SAFETY: the caller's contract on `meter`.
        match unsafe { meter.as_ref() } {
            Some(m) => usagetap_str::borrow(&m.last_error),
            None => usagetap_str::EMPTY,
        }
    }
}

/// Counts `text` as ordinary text (no chat framing) with the encoding of `model`
/// (`o200k_base` for an unknown model or `(NULL, 0)`), and writes the count to `*count_out`.
/// The tables of o200k_base, o200k_harmony and cl100k_base are compiled into the library; those
/// of p50k_base and r50k_base are built once per process, on first use (tens of milliseconds).
///
/// Errors: `NULL_PARAMETER`, `INVALID_PARAMETER` (a length over `PTRDIFF_MAX`), `INVALID_UTF8`
/// (text or model); the message is in
/// `usagetap_thread_last_error()`. Thread-safe.
///
/// # Safety
/// `text` and `model` are NULL or point at their lengths of readable bytes; `count_out` is NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_count_tokens(
    text: *const c_char,
    text_len: usize,
    model: *const c_char,
    model_len: usize,
    count_out: *mut u64,
) -> usagetap_result {
    ffi_panic_boundary! {
        if count_out.is_null() {
            return fail_without_handle(Failure::code(usagetap_result::NullParameter));
        }
        // SAFETY: the caller's contract on `text` and `model`.
        let args = unsafe { input_str(text, text_len).and_then(|t| Ok((t, input_str(model, model_len)?))) };
        let (text, model) = match args {
            Ok(a) => a,
            Err(e) => return fail_without_handle(e),
        };
        let n = usagetap::count_tokens(text, model) as u64;
        // SAFETY: `count_out` is not NULL and writable by the caller's contract.
        unsafe { count_out.write(n) };
        usagetap_result::Ok
    }
}

/// The record name of one flag bit (`USAGETAP_FLAG_TRUNCATED` → `"truncated"`); the empty string
/// for zero, several bits, or a bit this version does not know. Static; thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn usagetap_flag_name(flag: u32) -> usagetap_str {
    ffi_panic_boundary! {
        let name = usagetap::Flags::ALL
            .iter()
            .find(|(f, _)| f.0 == flag)
            .map(|(_, n)| *n);
        usagetap_str::borrow_opt(name)
    }
}

#[cfg(test)]
mod tests;
