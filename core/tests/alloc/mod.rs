//! A counting global allocator for tests that measure peak heap. A test binary that uses it
//! declares `mod alloc;` and installs `alloc::Counting` as its `#[global_allocator]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use usagetap::Encoding;

pub const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// The counting allocator.

/// Forwards to `System` and keeps the live and peak byte counts.
pub struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` with the caller's layout and pointer unchanged;
// the counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            add(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            add(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                add(new - l.size());
            } else {
                CURRENT.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

fn add(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

static LOCK: Mutex<()> = Mutex::new(());

/// Runs cases one at a time, so the peak of one is not another's.
pub fn serial() -> MutexGuard<'static, ()> {
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // BPE tables load once per process: outside every case, so no case's peak depends on
    // whether it happened to run first.
    static WARM: std::sync::Once = std::sync::Once::new();
    WARM.call_once(|| {
        for e in [Encoding::O200kBase, Encoding::Cl100kBase] {
            e.count("warm");
        }
    });
    guard
}

/// Runs `f`, prints its peak heap above the starting point and its time, and returns both with
/// its result.
pub fn measure<T>(name: &str, f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let t = Instant::now();
    let out = f();
    let secs = t.elapsed().as_secs_f64();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    println!(
        "{name:<52} peak {:>9.2} MiB  {secs:>7.3} s",
        peak as f64 / MIB as f64
    );
    (out, peak)
}

/// Measures `f` and asserts its peak stays under `bound`.
#[allow(dead_code)] // not every test binary that measures asserts bounds
pub fn bounded<T>(name: &str, bound: usize, f: impl FnOnce() -> T) -> T {
    let (out, peak) = measure(name, f);
    assert!(
        peak <= bound,
        "{name}: peak {peak} bytes over the bound {bound}"
    );
    out
}
