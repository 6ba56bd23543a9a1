//! The panic boundary: no panic crosses the C ABI (house style, item 23).
//!
//! The workspace never sets `panic = "abort"`, so a panic unwinds to the boundary of the export
//! it happened in, where it becomes [`usagetap_result::Panic`](crate::usagetap_result) (or the
//! documented default of a function that returns no result code). The host process survives.

use crate::{usagetap_result, usagetap_str};

/// The value an export returns when a panic was caught inside it.
pub(crate) trait PanicDefault {
    /// The value.
    fn panic_default() -> Self;
}

impl PanicDefault for usagetap_result {
    fn panic_default() -> Self {
        usagetap_result::Panic
    }
}

impl PanicDefault for usagetap_str {
    fn panic_default() -> Self {
        usagetap_str::EMPTY
    }
}

impl PanicDefault for () {
    fn panic_default() -> Self {}
}

/// Runs the body of an export under `catch_unwind`; a panic returns the type's
/// [`PanicDefault`]. A `return` inside the body returns from the export, as usual.
macro_rules! ffi_panic_boundary {
    ( $($body:tt)* ) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(move || { $($body)* })) {
            Ok(ret) => ret,
            Err(_) => $crate::panic::PanicDefault::panic_default(),
        }
    };
}

pub(crate) use ffi_panic_boundary;
