//! The `usagetap._usagetap` extension module: the core meter behind a typed Python API.
//!
//! Contract kept by every function here:
//! - arguments are extracted (and copied when Python could mutate them) while attached to the
//!   interpreter, then the Rust work runs in `py.detach`, so other threads run meanwhile;
//! - every call into the core runs under `catch_unwind`: a panic becomes
//!   `usagetap.InternalError`, never a `PanicException` and never an abort;
//! - core errors map onto one exception class per `ErrorKind` (see [`CoreError`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::create_exception;
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView, PyString, PyTuple};

use usagetap::{Encoding, Endpoint, ErrorKind, MeterOptions};

create_exception!(
    usagetap,
    UsagetapError,
    PyValueError,
    "Base class of every usagetap error."
);
create_exception!(
    usagetap,
    InvalidJsonError,
    UsagetapError,
    "Bytes that had to be JSON were not."
);
create_exception!(
    usagetap,
    InvalidRequestError,
    UsagetapError,
    "A request body is JSON but of a shape no endpoint accepts."
);
create_exception!(
    usagetap,
    InvalidOptionsError,
    UsagetapError,
    "Options are inconsistent or out of range (e.g. an unknown endpoint)."
);
create_exception!(
    usagetap,
    MeterFinishedError,
    UsagetapError,
    "The meter was used after finish()."
);
create_exception!(
    usagetap,
    LimitExceededError,
    UsagetapError,
    "A configured limit was exceeded where no partial result makes sense."
);
create_exception!(
    usagetap,
    InternalError,
    UsagetapError,
    "A bug in usagetap (a caught panic). Please report it with the input."
);

/// A core error on its way to Python. The orphan rule forbids `impl From<usagetap::Error> for
/// PyErr` (both types are foreign here), so this local newtype carries the conversion.
struct CoreError(usagetap::Error);

impl From<usagetap::Error> for CoreError {
    fn from(e: usagetap::Error) -> Self {
        CoreError(e)
    }
}

impl From<CoreError> for PyErr {
    fn from(CoreError(e): CoreError) -> PyErr {
        let msg = e.to_string();
        // Exhaustive over today's kinds; `ErrorKind` is `#[non_exhaustive]`, so a kind added
        // later in the core lands on the base class until it gets its own.
        let kind = e.kind();
        let err = match kind {
            ErrorKind::InvalidJson => InvalidJsonError::new_err(msg),
            ErrorKind::InvalidRequest => InvalidRequestError::new_err(msg),
            ErrorKind::InvalidOptions => InvalidOptionsError::new_err(msg),
            ErrorKind::Finished => MeterFinishedError::new_err(msg),
            ErrorKind::LimitExceeded => LimitExceededError::new_err(msg),
            _ => UsagetapError::new_err(msg),
        };
        with_kind(err, kind.as_str())
    }
}

/// Sets the exception's `kind` attribute (the core's stable name of the error kind).
fn with_kind(err: PyErr, kind: &'static str) -> PyErr {
    Python::attach(|py| {
        let _ = err.value(py).setattr("kind", kind);
    });
    err
}

fn internal_error(what: &str) -> PyErr {
    with_kind(
        InternalError::new_err(format!(
            "internal error in usagetap ({what}); please report it"
        )),
        "internal",
    )
}

fn invalid_options(msg: String) -> PyErr {
    with_kind(InvalidOptionsError::new_err(msg), "invalid_options")
}

/// An integer option from Python, any size: below `min` is `InvalidOptionsError`, and so is
/// above `max` unless `max` is `u64::MAX` (a larger limit is as good as none). A non-int is the
/// conversion's `TypeError`, as for any argument of the wrong type.
fn option_int(v: &Bound<'_, PyAny>, min: u64, max: u64, what: &str) -> PyResult<u64> {
    let out_of_range = || {
        let range = if max == u64::MAX {
            format!("at least {min}")
        } else {
            format!("from {min} to {max}")
        };
        invalid_options(format!("{what} must be {range}, not {v}"))
    };
    let n = match v.extract::<u64>() {
        Ok(n) => n,
        Err(e) if e.is_instance_of::<PyOverflowError>(v.py()) => {
            if v.lt(0)? || max < u64::MAX {
                return Err(out_of_range());
            }
            u64::MAX
        }
        Err(e) => return Err(e),
    };
    if n < min || n > max {
        return Err(out_of_range());
    }
    Ok(n)
}

/// Runs `f` with the interpreter detached, turning a panic into `InternalError`.
fn run<T: Send>(py: Python<'_>, what: &str, f: impl FnOnce() -> T + Send) -> PyResult<T> {
    py.detach(|| catch_unwind(AssertUnwindSafe(f)))
        .map_err(|_| internal_error(what))
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// Bytes taken from a Python argument: borrowed from an immutable `bytes` object, or copied
/// from anything Python code could change while the interpreter is detached.
enum Input<'py> {
    Bytes(Bound<'py, PyBytes>),
    Owned(Vec<u8>),
    Empty,
}

impl Input<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Input::Bytes(b) => b.as_bytes(),
            Input::Owned(v) => v,
            Input::Empty => &[],
        }
    }
}

/// Extracts `bytes | bytearray | memoryview | str` (and `dict` when `allow_dict`, serialized by
/// `json.dumps` in the dict's own key order). `None` is empty input when `allow_none`.
fn input<'py>(
    obj: &Bound<'py, PyAny>,
    what: &str,
    allow_dict: bool,
    allow_none: bool,
) -> PyResult<Input<'py>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Input::Bytes(b.clone()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Input::Owned(s.to_string_lossy().into_owned().into_bytes()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Input::Owned(b.to_vec()));
    }
    if allow_none && obj.is_none() {
        return Ok(Input::Empty);
    }
    if allow_dict && obj.is_instance_of::<PyDict>() {
        let kwargs = PyDict::new(obj.py());
        kwargs.set_item("ensure_ascii", false)?;
        let text = obj
            .py()
            .import("json")?
            .call_method("dumps", (obj,), Some(&kwargs))?;
        let text = text.cast::<PyString>()?;
        return Ok(Input::Owned(
            text.to_string_lossy().into_owned().into_bytes(),
        ));
    }
    if obj.is_instance_of::<PyMemoryView>() {
        // One contiguous copy, whatever the view's shape or format.
        let copied = obj
            .py()
            .import("builtins")?
            .getattr("bytes")?
            .call1((obj,))?;
        return Ok(Input::Bytes(copied.cast_into::<PyBytes>()?));
    }
    let expected = match (allow_dict, allow_none) {
        (true, true) => "bytes, bytearray, memoryview, str, dict or None",
        (true, false) => "bytes, bytearray, memoryview, str or dict",
        (false, true) => "bytes, bytearray, memoryview, str or None",
        (false, false) => "bytes, bytearray, memoryview or str",
    };
    Err(PyTypeError::new_err(format!(
        "{what} must be {expected}, not {}",
        obj.get_type().name()?
    )))
}

/// Builds the core options from the keyword arguments shared by `meter`, `Meter` and
/// `meter_envelope`; `image_sizes` maps image URLs to `(width, height)` in pixels (see
/// `MeterOptions::image_sizes`); `limits` names fields of `usagetap::Limits` (unknown names and 0
/// are errors).
#[allow(clippy::too_many_arguments)]
fn options(
    model: Option<String>,
    deployment: Option<String>,
    endpoint: Option<String>,
    reconcile: bool,
    deployments: Option<HashMap<String, String>>,
    image_sizes: Option<HashMap<String, Vec<Bound<'_, PyAny>>>>,
    limits: Option<HashMap<String, Bound<'_, PyAny>>>,
) -> PyResult<MeterOptions> {
    let endpoint = match endpoint {
        None => None,
        Some(e) => Some(Endpoint::parse(&e).ok_or_else(|| {
            invalid_options(format!(
                "unknown endpoint {e:?}: expected chat.completions, completions, embeddings, \
                 responses or a URL path ending in one of them"
            ))
        })?),
    };
    let mut l = usagetap::Limits::default();
    for (name, v) in limits.unwrap_or_default() {
        let slot = match name.as_str() {
            "max_line_bytes" => &mut l.max_line_bytes,
            "max_body_bytes" => &mut l.max_body_bytes,
            "max_text_bytes" => &mut l.max_text_bytes,
            "max_choices" => &mut l.max_choices,
            "max_tool_calls" => &mut l.max_tool_calls,
            "max_json_depth" => &mut l.max_json_depth,
            "max_images" => &mut l.max_images,
            "max_image_base64" => &mut l.max_image_base64,
            _ => return Err(invalid_options(format!("unknown limit {name:?}"))),
        };
        let v = option_int(&v, 1, u64::MAX, &format!("limits[{name:?}]"))?;
        *slot = usize::try_from(v).unwrap_or(usize::MAX);
    }
    // Any two-item sequence: a tuple, or a list as `json.load` gives it.
    let mut sizes = HashMap::new();
    for (url, wh) in image_sizes.unwrap_or_default() {
        let [width, height] = &wh[..] else {
            return Err(invalid_options(format!(
                "image_sizes[{url:?}] must be (width, height), got {} numbers",
                wh.len()
            )));
        };
        let what = format!("image_sizes[{url:?}]");
        let max = u64::from(u32::MAX);
        let (width, height) = (
            option_int(width, 0, max, &what)?,
            option_int(height, 0, max, &what)?,
        );
        // Both are at most `u32::MAX` by the check above.
        let size = (
            u32::try_from(width).unwrap_or(u32::MAX),
            u32::try_from(height).unwrap_or(u32::MAX),
        );
        sizes.insert(url, usagetap::image::ImageSize::from(size));
    }
    Ok(MeterOptions {
        limits: l,
        model: model.filter(|m| !m.is_empty()),
        deployment: deployment.filter(|d| !d.is_empty()),
        deployments: Arc::new(deployments.unwrap_or_default()),
        image_sizes: Arc::new(sizes),
        endpoint,
        reconcile,
    })
}

// ---------------------------------------------------------------------------------------------
// UsageRecord

/// One usage record per exchange (see the design's record). Immutable; compares and hashes by
/// its full content.
#[pyclass(frozen, eq, hash, module = "usagetap._usagetap", name = "UsageRecord")]
struct PyUsageRecord {
    #[pyo3(get)]
    endpoint: &'static str,
    #[pyo3(get)]
    model: Option<String>,
    #[pyo3(get)]
    deployment: Option<String>,
    #[pyo3(get)]
    encoding: &'static str,
    #[pyo3(get)]
    stream: bool,
    #[pyo3(get)]
    status: &'static str,
    #[pyo3(get)]
    source: &'static str,
    #[pyo3(get)]
    prompt_tokens: u64,
    #[pyo3(get)]
    completion_tokens: u64,
    #[pyo3(get)]
    total_tokens: u64,
    #[pyo3(get)]
    cached_tokens: Option<u64>,
    #[pyo3(get)]
    reasoning_tokens: Option<u64>,
    #[pyo3(get)]
    image_tokens: Option<u64>,
    #[pyo3(get)]
    response_id: Option<String>,
    #[pyo3(get)]
    created: Option<i64>,
    #[pyo3(get)]
    system_fingerprint: Option<String>,
    #[pyo3(get)]
    error: Option<String>,
    flags: Vec<&'static str>,
    inner: usagetap::UsageRecord,
    /// The record's JSON (the design's record), the source of `to_dict()` and of hashing;
    /// rendered on first use, since it costs more than metering a small exchange.
    json: std::sync::OnceLock<String>,
}

impl PyUsageRecord {
    fn json(&self) -> &str {
        self.json.get_or_init(|| self.inner.to_json())
    }
}

impl PartialEq for PyUsageRecord {
    fn eq(&self, other: &Self) -> bool {
        // Everything the JSON holds is in `inner`.
        self.inner == other.inner
    }
}

impl Hash for PyUsageRecord {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.json().hash(state);
    }
}

impl From<usagetap::UsageRecord> for PyUsageRecord {
    fn from(r: usagetap::UsageRecord) -> Self {
        PyUsageRecord {
            endpoint: r.endpoint.as_str(),
            model: r.model.clone(),
            deployment: r.deployment.clone(),
            encoding: r.encoding.name(),
            stream: r.stream,
            status: r.status.as_str(),
            source: r.source.as_str(),
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            total_tokens: r.total_tokens,
            cached_tokens: r.cached_tokens,
            reasoning_tokens: r.reasoning_tokens,
            image_tokens: r.image_tokens,
            response_id: r.response_id.clone(),
            created: r.created,
            system_fingerprint: r.system_fingerprint.clone(),
            error: r.error.clone(),
            flags: r.flags.names().collect(),
            json: std::sync::OnceLock::new(),
            inner: r,
        }
    }
}

fn json_loads<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (text,))
}

fn json_of<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Python's `repr` of an optional string.
fn py_repr(s: Option<&str>) -> String {
    match s {
        None => "None".to_owned(),
        Some(s) => {
            let mut out = String::with_capacity(s.len() + 2);
            out.push('\'');
            for c in s.chars() {
                match c {
                    '\'' => out.push_str("\\'"),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('\'');
            out
        }
    }
}

fn opt_int(v: Option<u64>) -> String {
    v.map_or_else(|| "None".to_owned(), |v| v.to_string())
}

#[pymethods]
impl PyUsageRecord {
    /// The record's flags (machine-readable notes), in bit order.
    #[getter]
    fn flags<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.flags)
    }

    /// The service's usage, normalized, as a new dict; `None` when it sent none.
    #[getter]
    fn reported<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_loads(py, &json_of(&self.inner.reported))
    }

    /// The library's own counts as a new dict; `None` unless computed.
    #[getter]
    fn computed<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_loads(py, &json_of(&self.inner.computed))
    }

    /// Per choice: a new list of dicts with `index`, `finish_reason`, `completion_tokens`.
    #[getter]
    fn choices<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_loads(py, &json_of(&self.inner.choices))
    }

    /// The record as a new dict with the design's field names (the same as `to_json()`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_loads(py, self.json())
    }

    /// The record as one line of JSON (the design's record).
    fn to_json(&self) -> &str {
        self.json()
    }

    fn __repr__(&self) -> String {
        let flags: Vec<String> = self.flags.iter().map(|f| py_repr(Some(f))).collect();
        let flags = match flags.len() {
            1 => format!("({},)", flags[0]),
            _ => format!("({})", flags.join(", ")),
        };
        format!(
            "UsageRecord(endpoint={}, model={}, deployment={}, encoding={}, stream={}, \
             status={}, source={}, prompt_tokens={}, completion_tokens={}, total_tokens={}, \
             cached_tokens={}, reasoning_tokens={}, image_tokens={}, flags={})",
            py_repr(Some(self.endpoint)),
            py_repr(self.model.as_deref()),
            py_repr(self.deployment.as_deref()),
            py_repr(Some(self.encoding)),
            if self.stream { "True" } else { "False" },
            py_repr(Some(self.status)),
            py_repr(Some(self.source)),
            self.prompt_tokens,
            self.completion_tokens,
            self.total_tokens,
            opt_int(self.cached_tokens),
            opt_int(self.reasoning_tokens),
            opt_int(self.image_tokens),
            flags,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Meter

/// The mutable state of a streaming meter. Locked only while detached from the interpreter, so
/// a thread waiting for the lock never holds the GIL another thread needs.
struct State {
    /// `None` once finished (or after an internal error).
    meter: Option<usagetap::Meter>,
    /// Set in the same critical section that drops the meter, so no thread sees a finished
    /// meter without its record. In an `Arc` so a reader can take it detached.
    record: Option<Arc<Py<PyUsageRecord>>>,
    broken: bool,
}

/// Meters one exchange whose response arrives in pieces. Safe to share between threads (calls
/// are serialized), though one meter usually belongs to one stream. An internal error (a
/// caught panic, raised as `InternalError`) breaks the meter for good: every later call raises
/// it again, `finished` stays false and `record` `None`.
#[pyclass(frozen, module = "usagetap._usagetap", name = "Meter")]
struct PyMeter {
    state: Mutex<State>,
}

/// Locks the state of a `Meter` or `UsageChunkFilter`. A panic is caught inside the critical
/// section, so poisoning carries no broken invariant that `broken` does not already record.
fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `f` of a handle's state, read detached: the lock is never waited for while attached, so a
/// reader never holds the GIL that another thread's call needs to return.
fn peek<S: Send, T: Send>(py: Python<'_>, m: &Mutex<S>, f: impl FnOnce(&S) -> T + Send) -> T {
    py.detach(|| f(&lock(m)))
}

fn finished_error() -> PyErr {
    with_kind(
        MeterFinishedError::new_err("the meter was already finished"),
        "finished",
    )
}

impl PyMeter {
    /// Runs `f` on the open meter, detached; a panic breaks the meter for good.
    fn with_meter<T: Send>(
        &self,
        py: Python<'_>,
        what: &str,
        f: impl FnOnce(&mut usagetap::Meter) -> Result<T, usagetap::Error> + Send,
    ) -> PyResult<T> {
        let out = py.detach(|| {
            let mut st = lock(&self.state);
            if st.broken {
                return Err(None);
            }
            let Some(meter) = st.meter.as_mut() else {
                return Err(Some(Ok(())));
            };
            match catch_unwind(AssertUnwindSafe(|| f(meter))) {
                Ok(r) => r.map_err(|e| Some(Err(e))),
                Err(_) => {
                    st.meter = None;
                    st.broken = true;
                    Err(None)
                }
            }
        });
        match out {
            Ok(v) => Ok(v),
            Err(None) => Err(internal_error(what)),
            Err(Some(Ok(()))) => Err(finished_error()),
            Err(Some(Err(e))) => Err(CoreError(e).into()),
        }
    }
}

#[pymethods]
impl PyMeter {
    #[new]
    #[pyo3(signature = (request=None, *, model=None, deployment=None, endpoint=None, reconcile=false, deployments=None, image_sizes=None, limits=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        request: Option<&Bound<'_, PyAny>>,
        model: Option<String>,
        deployment: Option<String>,
        endpoint: Option<String>,
        reconcile: bool,
        deployments: Option<HashMap<String, String>>,
        image_sizes: Option<HashMap<String, Vec<Bound<'_, PyAny>>>>,
        limits: Option<HashMap<String, Bound<'_, PyAny>>>,
    ) -> PyResult<Self> {
        let opts = options(
            model,
            deployment,
            endpoint,
            reconcile,
            deployments,
            image_sizes,
            limits,
        )?;
        let request = match request {
            Some(r) => input(r, "request", true, true)?,
            None => Input::Empty,
        };
        let body = request.as_slice();
        let meter = run(py, "Meter()", || {
            let mut m = usagetap::Meter::new(opts);
            if !body.trim_ascii().is_empty() {
                // As in `meter()`: an unreadable request becomes the `request_unparsed` flag,
                // never an exception that would lose the record.
                let _ = m.request(body);
            }
            m
        })?;
        Ok(PyMeter {
            state: Mutex::new(State {
                meter: Some(meter),
                record: None,
                broken: false,
            }),
        })
    }

    /// Feeds the next piece of the response body (any split, any size).
    fn feed(&self, py: Python<'_>, chunk: &Bound<'_, PyAny>) -> PyResult<()> {
        let chunk = input(chunk, "chunk", false, false)?;
        let bytes = chunk.as_slice();
        self.with_meter(py, "Meter.feed", |m| m.feed(bytes))
    }

    /// Ends the response and returns its record (counting happens here when needed). A second
    /// call raises `MeterFinishedError`.
    fn finish(&self, py: Python<'_>) -> PyResult<Py<PyUsageRecord>> {
        // The core meter refuses a second finish, so of two racing calls one gets the record
        // and the other `MeterFinishedError`.
        let record = self.with_meter(py, "Meter.finish", |m| m.finish())?;
        let record = Arc::new(Py::new(py, PyUsageRecord::from(record))?);
        let out = record.clone_ref(py);
        py.detach(|| {
            let mut st = lock(&self.state);
            st.meter = None;
            st.record = Some(record);
        });
        Ok(out)
    }

    /// The record once finished (also after a `with` block), else `None`.
    #[getter]
    fn record(&self, py: Python<'_>) -> Option<Py<PyUsageRecord>> {
        peek(py, &self.state, |st| st.record.clone()).map(|r| r.clone_ref(py))
    }

    /// Whether `finish()` has returned the record (`False` for a meter broken by an internal
    /// error, which has none).
    #[getter]
    fn finished(&self, py: Python<'_>) -> bool {
        peek(py, &self.state, |st| st.record.is_some())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Finishes the meter if the block did not, even when the block raised (the stream was cut:
    /// the record then says so); never suppresses the exception.
    #[pyo3(signature = (_exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        // Check and finish in one critical section (`finish` itself): the block, or another
        // thread, may have finished it already. A broken meter has nothing to finish, and its
        // `InternalError` was raised where it broke.
        match self.finish(py) {
            Ok(_) => Ok(false),
            Err(e)
                if e.is_instance_of::<MeterFinishedError>(py)
                    || peek(py, &self.state, |st| st.broken) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = peek(py, &self.state, |st| {
            if st.broken {
                "broken"
            } else if st.record.is_some() {
                "finished"
            } else {
                "open"
            }
        });
        format!("<usagetap.Meter {state}>")
    }
}

// ---------------------------------------------------------------------------------------------
// Functions

/// Meters a complete exchange: the request body (may be `None` or empty) and the whole
/// response body (JSON or SSE text).
#[pyfunction]
#[pyo3(name = "meter", signature = (request, response, *, model=None, deployment=None, endpoint=None, reconcile=false, deployments=None, image_sizes=None, limits=None))]
#[allow(clippy::too_many_arguments)]
fn py_meter(
    py: Python<'_>,
    request: &Bound<'_, PyAny>,
    response: &Bound<'_, PyAny>,
    model: Option<String>,
    deployment: Option<String>,
    endpoint: Option<String>,
    reconcile: bool,
    deployments: Option<HashMap<String, String>>,
    image_sizes: Option<HashMap<String, Vec<Bound<'_, PyAny>>>>,
    limits: Option<HashMap<String, Bound<'_, PyAny>>>,
) -> PyResult<PyUsageRecord> {
    let opts = options(
        model,
        deployment,
        endpoint,
        reconcile,
        deployments,
        image_sizes,
        limits,
    )?;
    let request = input(request, "request", true, true)?;
    let response = input(response, "response", false, false)?;
    let (req, resp) = (request.as_slice(), response.as_slice());
    let record = run(py, "meter", || usagetap::meter(opts, req, resp))?.map_err(CoreError)?;
    Ok(PyUsageRecord::from(record))
}

/// Tokens in `text` with the encoding of `model` (`o200k_base` when unknown or `None`),
/// counted as ordinary text: `<|endoftext|>` and the like are plain text, never an error.
#[pyfunction]
#[pyo3(name = "count_tokens", signature = (text, model=None))]
fn py_count_tokens(
    py: Python<'_>,
    text: &Bound<'_, PyString>,
    model: Option<String>,
) -> PyResult<usize> {
    let text: Cow<'_, str> = text.to_string_lossy();
    let text: &str = &text;
    let model = model.unwrap_or_default();
    run(py, "count_tokens", || usagetap::count_tokens(text, &model))
}

/// Prompt tokens of a request body by the service's framing rules. The model is `model`, else
/// the body's `model`; an unknown model counts with `o200k_base`. The endpoint is `endpoint`,
/// else the one the body's shape implies (chat completions when it implies none).
#[pyfunction]
#[pyo3(name = "count_prompt", signature = (request, model=None, *, endpoint=None))]
fn py_count_prompt(
    py: Python<'_>,
    request: &Bound<'_, PyAny>,
    model: Option<String>,
    endpoint: Option<String>,
) -> PyResult<u64> {
    let endpoint = match endpoint {
        None => None,
        Some(e) => Some(
            Endpoint::parse(&e)
                .ok_or_else(|| invalid_options(format!("unknown endpoint {e:?}")))?,
        ),
    };
    let request = input(request, "request", true, false)?;
    let body = request.as_slice();
    let counted = run(py, "count_prompt", || {
        let req = usagetap::request::Request::parse(body)?;
        let model = model
            .filter(|m| !m.is_empty())
            .or_else(|| req.model.as_deref().map(str::to_owned))
            .unwrap_or_default();
        let encoding = Encoding::for_model(&model).unwrap_or(Encoding::O200kBase);
        let endpoint = endpoint
            .or_else(|| req.endpoint())
            .unwrap_or(Endpoint::ChatCompletions);
        Ok::<u64, usagetap::Error>(usagetap::prompt::count(&req, endpoint, &model, encoding).tokens)
    })?;
    Ok(counted.map_err(CoreError)?)
}

// ---------------------------------------------------------------------------------------------
// Envelopes

/// A usage record with what an APIM Event Hub envelope says about who and when. The
/// subscription key itself is never kept: `consumer` is its keyed hash.
#[pyclass(frozen, eq, module = "usagetap._usagetap", name = "EnvelopeRecord")]
struct PyEnvelopeRecord {
    #[pyo3(get)]
    record: Py<PyUsageRecord>,
    #[pyo3(get)]
    consumer: Option<String>,
    #[pyo3(get)]
    event_time: Option<String>,
    #[pyo3(get)]
    api_operation: Option<String>,
}

impl PartialEq for PyEnvelopeRecord {
    fn eq(&self, other: &Self) -> bool {
        self.record.get() == other.record.get()
            && self.consumer == other.consumer
            && self.event_time == other.event_time
            && self.api_operation == other.api_operation
    }
}

#[pymethods]
impl PyEnvelopeRecord {
    fn __repr__(&self) -> String {
        format!(
            "EnvelopeRecord(consumer={}, event_time={}, api_operation={}, record={})",
            py_repr(self.consumer.as_deref()),
            py_repr(self.event_time.as_deref()),
            py_repr(self.api_operation.as_deref()),
            self.record.get().__repr__(),
        )
    }
}

fn secret_bytes(secret: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let s = input(secret, "secret", false, false)?;
    if s.as_slice().is_empty() {
        return Err(invalid_options(
            "secret must not be empty: it keys the consumer hash of subscription keys".to_owned(),
        ));
    }
    Ok(s.as_slice().to_vec())
}

/// Meters one APIM `log-to-eventhub` envelope (`eventTime`, `apiOperation`,
/// `appSubscriptionKey`, `request`, `response`; bodies as JSON strings or objects). A cut
/// envelope (APIM truncates messages over 200 KB) gives a record flagged `truncated`. Raises
/// `InvalidJsonError` for bytes that do not start with a JSON object and `InvalidOptionsError`
/// for an empty `secret`.
#[pyfunction]
#[pyo3(name = "meter_envelope", signature = (envelope, *, secret, model=None, deployment=None, endpoint=None, reconcile=false, deployments=None, image_sizes=None, limits=None))]
#[allow(clippy::too_many_arguments)]
fn py_meter_envelope(
    py: Python<'_>,
    envelope: &Bound<'_, PyAny>,
    secret: &Bound<'_, PyAny>,
    model: Option<String>,
    deployment: Option<String>,
    endpoint: Option<String>,
    reconcile: bool,
    deployments: Option<HashMap<String, String>>,
    image_sizes: Option<HashMap<String, Vec<Bound<'_, PyAny>>>>,
    limits: Option<HashMap<String, Bound<'_, PyAny>>>,
) -> PyResult<PyEnvelopeRecord> {
    let opts = options(
        model,
        deployment,
        endpoint,
        reconcile,
        deployments,
        image_sizes,
        limits,
    )?;
    let secret = secret_bytes(secret)?;
    let envelope = input(envelope, "envelope", true, false)?;
    let bytes = envelope.as_slice();
    let out = run(py, "meter_envelope", || {
        let hasher = usagetap::adapters::ConsumerHasher::new(&secret);
        usagetap::adapters::meter_envelope(bytes, &opts, &hasher)
    })?
    .map_err(CoreError)?;
    Ok(PyEnvelopeRecord {
        record: Py::new(py, PyUsageRecord::from(out.record))?,
        consumer: out.consumer,
        event_time: out.event_time,
        api_operation: out.api_operation,
    })
}

/// The consumer id of a subscription key: HMAC-SHA256 keyed with `secret`, first 128 bits in
/// hex (the same id `meter_envelope` and the other faces give). An empty `secret` raises
/// `InvalidOptionsError`.
#[pyfunction]
#[pyo3(name = "consumer_id", signature = (key, *, secret))]
fn py_consumer_id(
    py: Python<'_>,
    key: &Bound<'_, PyString>,
    secret: &Bound<'_, PyAny>,
) -> PyResult<String> {
    let secret = secret_bytes(secret)?;
    let key = key.to_string_lossy().into_owned();
    run(py, "consumer_id", || {
        usagetap::adapters::ConsumerHasher::new(&secret).hash(&key)
    })
}

// ---------------------------------------------------------------------------------------------
// Gateways: request rewriting and the usage-chunk filter

/// The result of `ensure_include_usage`: the body to send upstream and what was done to it.
#[pyclass(frozen, eq, module = "usagetap._usagetap", name = "RewriteResult")]
struct PyRewriteResult {
    /// The body to send upstream: the caller's own `bytes` object when it was `bytes` and is
    /// unchanged.
    #[pyo3(get)]
    body: Py<PyBytes>,
    /// Whether `stream_options.include_usage = true` was written into the body: usage was asked
    /// for on the client's behalf, so filter the client's stream with `UsageChunkFilter`.
    #[pyo3(get)]
    changed: bool,
    /// Whether the client had asked for usage itself (`include_usage: true` already there).
    #[pyo3(get)]
    client_asked: bool,
}

impl PartialEq for PyRewriteResult {
    fn eq(&self, other: &Self) -> bool {
        self.changed == other.changed
            && self.client_asked == other.client_asked
            && Python::attach(|py| self.body.bind(py).as_bytes() == other.body.bind(py).as_bytes())
    }
}

#[pymethods]
impl PyRewriteResult {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let body = self.body.bind(py).repr()?;
        Ok(format!(
            "RewriteResult(body={}, changed={}, client_asked={})",
            body.to_string_lossy(),
            if self.changed { "True" } else { "False" },
            if self.client_asked { "True" } else { "False" },
        ))
    }
}

/// Returns the body to send upstream: with `stream_options.include_usage = true` when it is a
/// streaming (`"stream": true`) chat-completions (`messages`) or completions (`prompt`) JSON
/// object that does not already ask for usage, else unchanged. Only that one field's bytes
/// change. Nothing raises: a body that is not such an object comes back unchanged.
#[pyfunction]
#[pyo3(name = "ensure_include_usage", signature = (body))]
fn py_ensure_include_usage(py: Python<'_>, body: &Bound<'_, PyAny>) -> PyResult<PyRewriteResult> {
    let body = input(body, "body", true, false)?;
    let bytes = body.as_slice();
    let (rewritten, changed, client_asked) = run(py, "ensure_include_usage", || {
        let r = usagetap::rewrite::ensure_include_usage(bytes);
        let rewritten = match r.body {
            Cow::Owned(v) => Some(v),
            Cow::Borrowed(_) => None,
        };
        (rewritten, r.changed, r.client_asked)
    })?;
    let body = match (rewritten, body) {
        (Some(v), _) => PyBytes::new(py, &v),
        (None, Input::Bytes(b)) => b,
        (None, other) => PyBytes::new(py, other.as_slice()),
    };
    Ok(PyRewriteResult {
        body: body.unbind(),
        changed,
        client_asked,
    })
}

/// The mutable state of a usage-chunk filter, locked only while detached (as for `Meter`).
struct FilterState {
    filter: usagetap::rewrite::UsageChunkFilter,
    finished: bool,
    broken: bool,
}

/// Removes usage-only chunks (`"choices": []` with a `usage`) from an SSE stream on its way to
/// a client that did not ask for them; every other byte comes out unchanged and in order. Safe
/// to share between threads (calls are serialized).
#[pyclass(frozen, module = "usagetap._usagetap", name = "UsageChunkFilter")]
struct PyUsageChunkFilter {
    state: Mutex<FilterState>,
}

impl PyUsageChunkFilter {
    /// Runs one feed (`Some(piece)`) or the finish (`None`), detached; returns the bytes to send.
    fn step(&self, py: Python<'_>, what: &str, piece: Option<&[u8]>) -> PyResult<Vec<u8>> {
        let out = py.detach(|| {
            let mut st = lock(&self.state);
            if st.broken {
                return Err(true);
            }
            if st.finished {
                return Err(false);
            }
            let mut out = Vec::new();
            let filter = &mut st.filter;
            let done = catch_unwind(AssertUnwindSafe(|| match piece {
                Some(p) => filter.feed(p, &mut out),
                None => filter.finish(&mut out),
            }));
            match done {
                Ok(()) => {
                    st.finished = piece.is_none();
                    Ok(out)
                }
                Err(_) => {
                    st.broken = true;
                    Err(true)
                }
            }
        });
        match out {
            Ok(v) => Ok(v),
            Err(true) => Err(internal_error(what)),
            Err(false) => Err(with_kind(
                MeterFinishedError::new_err("the filter was already finished"),
                "finished",
            )),
        }
    }
}

#[pymethods]
impl PyUsageChunkFilter {
    /// `max_event_bytes` defaults to 8 MiB, written as a literal so `inspect.signature` shows it.
    #[new]
    #[pyo3(signature = (max_event_bytes=8388608))]
    fn new(max_event_bytes: i64) -> PyResult<Self> {
        let max = usize::try_from(max_event_bytes)
            .ok()
            .filter(|m| *m > 0)
            .ok_or_else(|| {
                invalid_options(format!(
                    "max_event_bytes must be a positive int, not {max_event_bytes}"
                ))
            })?;
        let filter = usagetap::rewrite::UsageChunkFilter::new(max);
        Ok(PyUsageChunkFilter {
            state: Mutex::new(FilterState {
                filter,
                finished: false,
                broken: false,
            }),
        })
    }

    /// Filters the next piece of the stream (any split) and returns the bytes to send to the
    /// client now (often fewer than fed, or none: an event is held until its blank line).
    fn feed<'py>(
        &self,
        py: Python<'py>,
        chunk: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let chunk = input(chunk, "chunk", false, false)?;
        let out = self.step(py, "UsageChunkFilter.feed", Some(chunk.as_slice()))?;
        Ok(PyBytes::new(py, &out))
    }

    /// Ends the stream and returns what was still held (a last event without its blank line
    /// goes out as is). Afterwards `feed` and `finish` raise `MeterFinishedError`.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let out = self.step(py, "UsageChunkFilter.finish", None)?;
        Ok(PyBytes::new(py, &out))
    }

    /// Usage chunks removed so far.
    #[getter]
    fn removed(&self, py: Python<'_>) -> u64 {
        peek(py, &self.state, |st| st.filter.removed())
    }

    /// Whether `finish()` was called.
    #[getter]
    fn finished(&self, py: Python<'_>) -> bool {
        peek(py, &self.state, |st| st.finished)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let (state, removed) = peek(py, &self.state, |st| {
            let state = if st.broken {
                "broken"
            } else if st.finished {
                "finished"
            } else {
                "open"
            };
            (state, st.filter.removed())
        });
        format!("<usagetap.UsageChunkFilter {state} removed={removed}>")
    }
}

/// Panics inside the Rust boundary on purpose: tests use it to check that a panic surfaces as
/// `InternalError`, never as `PanicException`.
#[pyfunction]
#[pyo3(name = "_panic_for_tests")]
fn py_panic_for_tests(py: Python<'_>) -> PyResult<()> {
    // `resume_unwind` unwinds like a panic without running the panic hook (no stderr noise).
    run(py, "_panic_for_tests", || {
        std::panic::resume_unwind(Box::new("deliberate panic"))
    })
}

#[pymodule(gil_used = false)]
fn _usagetap(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<PyUsageRecord>()?;
    m.add_class::<PyMeter>()?;
    m.add_class::<PyEnvelopeRecord>()?;
    m.add_class::<PyRewriteResult>()?;
    m.add_class::<PyUsageChunkFilter>()?;
    m.add_function(wrap_pyfunction!(py_ensure_include_usage, m)?)?;
    m.add_function(wrap_pyfunction!(py_meter_envelope, m)?)?;
    m.add_function(wrap_pyfunction!(py_consumer_id, m)?)?;
    m.add_function(wrap_pyfunction!(py_meter, m)?)?;
    m.add_function(wrap_pyfunction!(py_count_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(py_count_prompt, m)?)?;
    m.add_function(wrap_pyfunction!(py_panic_for_tests, m)?)?;
    m.add("UsagetapError", py.get_type::<UsagetapError>())?;
    m.add("InvalidJsonError", py.get_type::<InvalidJsonError>())?;
    m.add("InvalidRequestError", py.get_type::<InvalidRequestError>())?;
    m.add("InvalidOptionsError", py.get_type::<InvalidOptionsError>())?;
    m.add("MeterFinishedError", py.get_type::<MeterFinishedError>())?;
    m.add("LimitExceededError", py.get_type::<LimitExceededError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    Ok(())
}
