//! Gives the shared library an SONAME of the exact version (`libusagetap.so.0.1.0`): before 1.0
//! there is no ABI stability, so two versions must never be mistaken for each other by the
//! dynamic linker. See ffi/README.md, "ABI stability".

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    if matches!(
        os.as_str(),
        "linux" | "android" | "freebsd" | "netbsd" | "openbsd" | "dragonfly"
    ) {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libusagetap.so.{version}");
    }
}
