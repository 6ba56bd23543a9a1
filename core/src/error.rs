//! The one error type of the core crate.

use std::fmt;

/// What went wrong, without the details. New kinds may be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bytes that had to be JSON (a request body, options) were not valid JSON.
    InvalidJson,
    /// A request body parsed as JSON but has a shape no endpoint accepts (e.g. not an object).
    InvalidRequest,
    /// Options given by the host are inconsistent or out of range.
    InvalidOptions,
    /// The meter was used after `finish()`.
    Finished,
    /// A configured limit was exceeded where no partial result makes sense.
    LimitExceeded,
}

impl ErrorKind {
    /// A stable, lower-case name for this kind (used by the C and Python faces).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidJson => "invalid_json",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::InvalidOptions => "invalid_options",
            ErrorKind::Finished => "finished",
            ErrorKind::LimitExceeded => "limit_exceeded",
        }
    }
}

/// An error from the core: a [`kind`](Error::kind), a message, and the byte offset in the input
/// where it was detected when that is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    offset: Option<u64>,
    message: String,
}

impl Error {
    #[cold]
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            offset: None,
            message: message.into(),
        }
    }

    #[cold]
    pub(crate) fn json(err: &serde_json::Error, what: &str) -> Error {
        Error {
            kind: ErrorKind::InvalidJson,
            offset: None,
            message: format!("{what}: {err}"),
        }
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Byte offset in the input where the error was detected, when known.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// The human-readable message (no trailing period, no newline).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(o) = self.offset {
            write!(f, " (at byte {o})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// `Result` with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
