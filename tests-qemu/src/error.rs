//! The harness's error type: a message, since every failure ends up in a test panic anyway.

use std::fmt;

/// A harness failure (I/O, a failed build, a malformed image, ...), described in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

/// Result alias for harness operations.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Creates an error from any message.
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }

    /// Prefixes the message with some context.
    pub fn context(self, ctx: impl fmt::Display) -> Self {
        Error(format!("{ctx}: {}", self.0))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error(e.to_string())
    }
}

/// Adds context to I/O results: `fs::read(p).ctx(|| format!("reading {}", p.display()))`.
pub trait ResultExt<T> {
    /// Wraps the error with the message `f` returns.
    fn ctx<D: fmt::Display>(self, f: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Into<Error>> ResultExt<T> for std::result::Result<T, E> {
    fn ctx<D: fmt::Display>(self, f: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| e.into().context(f()))
    }
}
