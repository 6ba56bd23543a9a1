//! C ABI for usagetap. Not yet built: see the C ABI issue. This crate exports nothing yet.
