//! Chargeback: APIM Event Hub envelopes metered in one call (a finished meter plus who and
//! when), the request rewrite that asks the service for streamed usage, and the filter that
//! hides the usage chunk from clients that did not ask for it.

use usagetap::adapters::{meter_envelope, ConsumerHasher};
use usagetap::rewrite::{ensure_include_usage, UsageChunkFilter};
use usagetap::Meter;

use crate::panic::ffi_panic_boundary;
use crate::{
    fail_without_handle, input, input_str, options, usagetap_meter, usagetap_result, usagetap_str,
    Done, Failure,
};

/// Borrowed bytes: `data` points at `len` bytes, which need not be UTF-8 (unlike
/// `usagetap_str`). `data` is NULL when `len` is 0. The library owns the bytes; each function that
/// hands one out says how long they stay valid. Never pass one to `usagetap_bytes_free`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct usagetap_slice {
    /// The first byte, or NULL when empty.
    pub data: *const u8,
    /// The number of bytes.
    pub len: usize,
}

impl usagetap_slice {
    /// The empty slice `{NULL, 0}`.
    pub(crate) const EMPTY: usagetap_slice = usagetap_slice {
        data: std::ptr::null(),
        len: 0,
    };

    /// Borrows `b`: the caller of the export must be told how long `b` lives.
    pub(crate) fn borrow(b: &[u8]) -> usagetap_slice {
        if b.is_empty() {
            return usagetap_slice::EMPTY;
        }
        usagetap_slice {
            data: b.as_ptr(),
            len: b.len(),
        }
    }

    /// The bytes as Rust sees them (for the Rust tests).
    ///
    /// # Safety
    /// `self` must come from this library and still be valid by its function's lifetime rule.
    pub unsafe fn as_bytes<'a>(&self) -> &'a [u8] {
        if self.data.is_null() || self.len == 0 {
            return &[];
        }
        // SAFETY: the caller guarantees the bytes are alive.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

/// Bytes the **caller owns**: `data` points at `len` bytes allocated by this library, NULL when
/// `len` is 0. Free them exactly once with `usagetap_bytes_free`, never with `free()`. They do not
/// depend on any handle and may be freed from any thread.
#[repr(C)]
#[derive(Debug)]
pub struct usagetap_bytes {
    /// The first byte, or NULL when empty.
    pub data: *mut u8,
    /// The number of bytes.
    pub len: usize,
}

impl usagetap_bytes {
    /// Hands `v` to the caller (an empty `v` is `{NULL, 0}`, with no allocation).
    pub(crate) fn from_vec(v: Vec<u8>) -> usagetap_bytes {
        if v.is_empty() {
            return usagetap_bytes {
                data: std::ptr::null_mut(),
                len: 0,
            };
        }
        let b: Box<[u8]> = v.into_boxed_slice();
        let len = b.len();
        usagetap_bytes {
            data: Box::into_raw(b).cast::<u8>(),
            len,
        }
    }

    /// The bytes as Rust sees them (for the Rust tests).
    ///
    /// # Safety
    /// `self` must come from this library and not be freed yet.
    pub unsafe fn as_bytes(&self) -> &[u8] {
        if self.data.is_null() || self.len == 0 {
            return &[];
        }
        // SAFETY: the caller guarantees the bytes are alive (not freed).
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

/// What an APIM envelope says about who and when, read with `usagetap_meter_envelope_info`.
/// Plain data the caller owns; the strings borrow from the meter and stay valid until
/// `usagetap_meter_free`. A field the envelope did not carry is `{NULL, 0}`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct usagetap_envelope_info {
    /// The consumer id: the subscription key (`appSubscriptionKey`) hashed with the secret given
    /// to `usagetap_meter_envelope` (HMAC-SHA256, first 128 bits as 32 lowercase hex digits).
    /// The same key and secret give the same id in every face of usagetap (C, Python, CLI). The
    /// raw key is never kept.
    pub consumer: usagetap_str,
    /// `eventTime`, as sent.
    pub event_time: usagetap_str,
    /// `apiOperation`, as sent.
    pub api_operation: usagetap_str,
}

/// The envelope's fields kept by the meter.
pub(crate) struct EnvelopeInfo {
    consumer: Option<String>,
    event_time: Option<String>,
    api_operation: Option<String>,
}

/// Meters one Azure API Management `log-to-eventhub` message: a JSON object with `eventTime`,
/// `apiOperation`, `appSubscriptionKey`, `request` and `response` (the bodies as JSON strings, or
/// as objects; the response may be the whole SSE text), optionally `url` / `operationUrl`,
/// `model`, `deployment`, which refine the options. A raw `{"request", "response"}` pair works
/// too.
///
/// `options_json` is as for `usagetap_meter_new` (`(NULL, 0)` = defaults). `secret` keys the
/// consumer hash of the subscription key; it must not be empty (keep it out of any output and
/// rotate it like a password: without it nobody can test a guessed key against an id).
///
/// On success `*meter_out` is a new, **already finished** meter that the caller owns and must
/// free with `usagetap_meter_free`. Read it with `usagetap_meter_record`,
/// `usagetap_meter_record_json` and `usagetap_meter_envelope_info`; `usagetap_meter_request`,
/// `_feed`, `_finish` and `_exchange` return `USAGETAP_RESULT_FINISHED` on it.
///
/// A cut envelope (APIM cuts messages over 200 KB) is not an error: it is read as far as it goes
/// and the record is flagged `USAGETAP_FLAG_TRUNCATED` (status `TRUNCATED` when the response was
/// cut). So is an unreadable request (`request_unparsed`) or a missing response
/// (`empty_response`).
///
/// Errors (`*meter_out` is not written; the message is in `usagetap_thread_last_error()`):
/// `NULL_PARAMETER`, `INVALID_PARAMETER` (an empty secret, a length over `PTRDIFF_MAX`),
/// `INVALID_UTF8` / `INVALID_JSON` / `INVALID_OPTIONS` (the options), `INVALID_JSON` (the
/// envelope bytes do not start with a JSON object). The buffers are read during the call only.
/// Thread-safe.
///
/// # Safety
/// `options_json`, `secret` and `envelope` are NULL or point at their lengths of readable bytes;
/// `meter_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_meter_envelope(
    options_json: *const std::ffi::c_char,
    options_len: usize,
    secret: *const u8,
    secret_len: usize,
    envelope: *const u8,
    envelope_len: usize,
    meter_out: *mut *mut usagetap_meter,
) -> usagetap_result {
    ffi_panic_boundary! {
        if meter_out.is_null() {
            return fail_without_handle(Failure::code(usagetap_result::NullParameter));
        }
        let run = || -> Result<Box<usagetap_meter>, Failure> {
            // SAFETY: the caller's contract on the three buffers.
            let (opts, secret, bytes) = unsafe {
                (
                    input_str(options_json, options_len)?,
                    input(secret, secret_len)?,
                    input(envelope, envelope_len)?,
                )
            };
            let opts = options::parse(opts)?;
            if secret.is_empty() {
                return Err(Failure::new(
                    usagetap_result::InvalidParameter,
                    "secret must not be empty: it keys the consumer hash of subscription keys",
                ));
            }
            let out = meter_envelope(bytes, &opts, &ConsumerHasher::new(secret))?;
            Ok(Box::new(usagetap_meter {
                // Never used: the handle is finished, so every call that would feed it refuses.
                meter: Meter::new(opts),
                last_error: String::new(),
                done: Some(Done { record: out.record, json: std::sync::OnceLock::new() }),
                envelope: Some(EnvelopeInfo {
                    consumer: out.consumer,
                    event_time: out.event_time,
                    api_operation: out.api_operation,
                }),
            }))
        };
        match run() {
            Ok(handle) => {
                // SAFETY: `meter_out` is not NULL and writable by the caller's contract.
                unsafe { meter_out.write(Box::into_raw(handle)) };
                usagetap_result::Ok
            }
            Err(e) => fail_without_handle(e),
        }
    }
}

/// Writes what the envelope said (consumer id, `eventTime`, `apiOperation`) to `*info_out`. The
/// strings are owned by the meter and valid until `usagetap_meter_free`.
///
/// Errors: `NULL_PARAMETER`, `NOT_AN_ENVELOPE` (the meter was made by `usagetap_meter_new`). Does
/// not change the meter or its last error.
///
/// # Safety
/// `meter` is NULL or a live handle not being changed by another thread; `info_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_meter_envelope_info(
    meter: *const usagetap_meter,
    info_out: *mut usagetap_envelope_info,
) -> usagetap_result {
    ffi_panic_boundary! {
        // SAFETY: the caller's contract on `meter`.
        let Some(m) = (unsafe { meter.as_ref() }) else {
            return usagetap_result::NullParameter;
        };
        if info_out.is_null() {
            return usagetap_result::NullParameter;
        }
        let Some(env) = &m.envelope else { return usagetap_result::NotAnEnvelope };
        let info = usagetap_envelope_info {
            consumer: usagetap_str::borrow_opt(env.consumer.as_deref()),
            event_time: usagetap_str::borrow_opt(env.event_time.as_deref()),
            api_operation: usagetap_str::borrow_opt(env.api_operation.as_deref()),
        };
        // SAFETY: `info_out` is not NULL and writable by the caller's contract.
        unsafe { info_out.write(info) };
        usagetap_result::Ok
    }
}

/// Makes a streaming request ask the service for usage: when `body` is a JSON object with
/// `"stream": true` that does not already ask (`stream_options.include_usage: true`), the body
/// with `stream_options.include_usage` set to `true` (only the bytes of that field change: the
/// rest stays byte-identical); otherwise `body` unchanged. Use it on chat-completions and
/// completions requests only (the Responses API always reports usage, and may refuse the field).
///
/// On success:
/// - `*body_out` is the body to send upstream, **owned by the caller**, freed with
///   `usagetap_bytes_free`. It is always a new buffer, a copy when unchanged (`{NULL, 0}` for an
///   empty body), so the caller has one code path.
/// - `*changed_out` is 1 when the body was changed, else 0.
/// - `*client_asked_out` is 1 when the client had asked for usage itself, else 0. When
///   `*changed_out` is 1 (the client did not ask), pass the response stream to the client through
///   a `usagetap_usage_filter`, and the original stream to the meter.
///
/// A body that is not JSON, not an object, cut, or not streaming is not an error: it comes back
/// unchanged. Errors (no out-parameter is written; the message is in
/// `usagetap_thread_last_error()`): `NULL_PARAMETER` (any out-pointer NULL, or `body` NULL with a
/// length), `INVALID_PARAMETER`. `body` is read during the call only. Thread-safe.
///
/// # Safety
/// `body` is NULL or points at `body_len` readable bytes; the out-pointers are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_rewrite_include_usage(
    body: *const u8,
    body_len: usize,
    body_out: *mut usagetap_bytes,
    changed_out: *mut u32,
    client_asked_out: *mut u32,
) -> usagetap_result {
    ffi_panic_boundary! {
        if body_out.is_null() || changed_out.is_null() || client_asked_out.is_null() {
            return fail_without_handle(Failure::code(usagetap_result::NullParameter));
        }
        // SAFETY: the caller's contract on `body`.
        let body = match unsafe { input(body, body_len) } {
            Ok(b) => b,
            Err(e) => return fail_without_handle(e),
        };
        let r = ensure_include_usage(body);
        let bytes = usagetap_bytes::from_vec(r.body.into_owned());
        // SAFETY: the three out-pointers are not NULL and writable by the caller's contract.
        unsafe {
            body_out.write(bytes);
            changed_out.write(u32::from(r.changed));
            client_asked_out.write(u32::from(r.client_asked));
        }
        usagetap_result::Ok
    }
}

/// Frees bytes this library handed to the caller (`usagetap_rewrite_include_usage`) and sets
/// `*bytes` to `{NULL, 0}`, so calling it again on the same variable is a no-op. NULL, and
/// `{NULL, 0}`, are no-ops. A copy of the struct made before the free must not be freed again.
///
/// # Safety
/// `bytes` is NULL or points at a writable `usagetap_bytes` that is `{NULL, 0}` or was written by
/// this library and not freed since (through any copy).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_bytes_free(bytes: *mut usagetap_bytes) {
    ffi_panic_boundary! {
        // SAFETY: the caller's contract on `bytes`.
        let Some(b) = (unsafe { bytes.as_mut() }) else { return };
        let (data, len) = (b.data, b.len);
        b.data = std::ptr::null_mut();
        b.len = 0;
        if !data.is_null() {
            // SAFETY: a non-NULL `data` with its `len` came from `Box::into_raw` of a boxed slice
            // in `usagetap_bytes::from_vec`, and by the caller's contract is freed only once.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, len)) });
        }
    }
}

/// A filter that removes the usage-only chunk (`"choices": []` with a `usage` object) from an
/// SSE stream on its way to a client that did not ask for usage (see
/// `usagetap_rewrite_include_usage`). Every other byte comes out unchanged and in order, whatever
/// the pieces. Opaque.
///
/// Ownership: made by `usagetap_usage_filter_new`, owned by the caller, freed by
/// `usagetap_usage_filter_free`.
///
/// Thread safety: as a meter: it may move between threads, but calls on one filter must not
/// overlap. Different filters are independent.
pub struct usagetap_usage_filter {
    filter: UsageChunkFilter,
    out: Vec<u8>,
    finished: bool,
}

/// The default `max_event_bytes`: 8 MiB, the meter's default line cap.
const DEFAULT_MAX_EVENT: usize = 8 << 20;

/// Makes a usage-chunk filter. It holds at most `max_event_bytes` of one event: an event that
/// grows past that before its blank line arrives is passed through unread (so a usage chunk in
/// it would reach the client). 0 means the default, 8 MiB.
///
/// On success `*filter_out` is a new filter that the caller owns and must free with
/// `usagetap_usage_filter_free`. Errors: `NULL_PARAMETER` (`*filter_out` is then not written).
/// Thread-safe.
///
/// # Safety
/// `filter_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_usage_filter_new(
    max_event_bytes: usize,
    filter_out: *mut *mut usagetap_usage_filter,
) -> usagetap_result {
    ffi_panic_boundary! {
        if filter_out.is_null() {
            return fail_without_handle(Failure::code(usagetap_result::NullParameter));
        }
        let max = if max_event_bytes == 0 { DEFAULT_MAX_EVENT } else { max_event_bytes };
        let handle = Box::new(usagetap_usage_filter {
            filter: UsageChunkFilter::new(max),
            out: Vec::new(),
            finished: false,
        });
        // SAFETY: `filter_out` is not NULL and writable by the caller's contract.
        unsafe { filter_out.write(Box::into_raw(handle)) };
        usagetap_result::Ok
    }
}

/// Frees a filter and the output it handed out. NULL is a no-op. Must not be called twice on
/// the same filter, and the filter must not be used afterwards.
///
/// # Safety
/// `filter` is NULL or a live handle from `usagetap_usage_filter_new` that no other thread is
/// using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_usage_filter_free(filter: *mut usagetap_usage_filter) {
    ffi_panic_boundary! {
        if !filter.is_null() {
            // SAFETY: a non-NULL `filter` was made by `Box::into_raw` in
            // `usagetap_usage_filter_new` and, by the caller's contract, is freed only once.
            drop(unsafe { Box::from_raw(filter) });
        }
    }
}

/// Runs one feed (`Some(piece)`) or the finish (`None`) on a filter and hands out its output.
///
/// # Safety
/// `filter` is NULL or a live handle not used by another thread; `output_out` is NULL or
/// writable.
unsafe fn filter_step(
    filter: *mut usagetap_usage_filter,
    piece: Option<&[u8]>,
    output_out: *mut usagetap_slice,
) -> usagetap_result {
    // SAFETY: by the caller's contract, a non-NULL `filter` is a live, unaliased handle.
    let Some(f) = (unsafe { filter.as_mut() }) else {
        return usagetap_result::NullParameter;
    };
    if output_out.is_null() {
        return usagetap_result::NullParameter;
    }
    if f.finished {
        return usagetap_result::Finished;
    }
    // Nothing fails from here on: the previous output is replaced.
    f.out.clear();
    match piece {
        Some(p) => f.filter.feed(p, &mut f.out),
        None => {
            f.filter.finish(&mut f.out);
            f.finished = true;
        }
    }
    // SAFETY: `output_out` is not NULL and writable by the caller's contract.
    unsafe { output_out.write(usagetap_slice::borrow(&f.out)) };
    usagetap_result::Ok
}

/// Feeds the next piece of the response stream (any split) and writes to `*output_out` the bytes
/// to send to the client now (often fewer than fed: an event is held until its blank line;
/// `{NULL, 0}` when there is nothing to send yet). The output is owned by the filter and valid
/// until the next `usagetap_usage_filter_feed`, `_finish` or `_free` on it. `data` is read during
/// the call only; `(NULL, 0)` is an empty piece.
///
/// Nothing in the bytes is an error. Errors (`*output_out` is not written, the previous output
/// stays valid): `NULL_PARAMETER`, `INVALID_PARAMETER` (a length over `PTRDIFF_MAX`), `FINISHED`
/// (after `usagetap_usage_filter_finish`).
///
/// # Safety
/// `filter` is NULL or a live handle not used by another thread; `data` is NULL or points at
/// `len` readable bytes; `output_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_usage_filter_feed(
    filter: *mut usagetap_usage_filter,
    data: *const u8,
    len: usize,
    output_out: *mut usagetap_slice,
) -> usagetap_result {
    ffi_panic_boundary! {
        // SAFETY: the caller's contract on `data`.
        let piece = match unsafe { input(data, len) } {
            Ok(p) => p,
            Err(e) => return e.code,
        };
        // SAFETY: the caller's contract on `filter` and `output_out`.
        unsafe { filter_step(filter, Some(piece), output_out) }
    }
}

/// Ends the stream: writes to `*output_out` whatever the filter still held (a last event without
/// its blank line is passed through as is), with the same lifetime as the output of
/// `usagetap_usage_filter_feed`. After it, `_feed` and `_finish` return `FINISHED`;
/// `usagetap_usage_filter_removed` still works.
///
/// Errors (`*output_out` is not written): `NULL_PARAMETER`, `FINISHED`.
///
/// # Safety
/// `filter` is NULL or a live handle not used by another thread; `output_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_usage_filter_finish(
    filter: *mut usagetap_usage_filter,
    output_out: *mut usagetap_slice,
) -> usagetap_result {
    ffi_panic_boundary! {
        // SAFETY: the caller's contract on `filter` and `output_out`.
        unsafe { filter_step(filter, None, output_out) }
    }
}

/// Writes to `*removed_out` the number of usage chunks removed so far.
///
/// Errors: `NULL_PARAMETER`. Does not change the filter or its output.
///
/// # Safety
/// `filter` is NULL or a live handle not being changed by another thread; `removed_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usagetap_usage_filter_removed(
    filter: *const usagetap_usage_filter,
    removed_out: *mut u64,
) -> usagetap_result {
    ffi_panic_boundary! {
        // SAFETY: the caller's contract on `filter`.
        let Some(f) = (unsafe { filter.as_ref() }) else {
            return usagetap_result::NullParameter;
        };
        if removed_out.is_null() {
            return usagetap_result::NullParameter;
        }
        // SAFETY: `removed_out` is not NULL and writable by the caller's contract.
        unsafe { removed_out.write(f.filter.removed()) };
        usagetap_result::Ok
    }
}
