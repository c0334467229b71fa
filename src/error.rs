//! The one error type of custody: a message for people, optional hints, and the kind that
//! decides the exit code (the contract in the README).

use std::fmt;

/// What went wrong, as a script sees it through the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 1: anything else (I/O, a server error).
    Failed,
    /// 2: the command line is wrong.
    Usage,
    /// 3: something custody checked does not match (recipient, transcript chain, snapshot).
    Verification,
    /// 4: the world is not as the command needs it (already initialized, unreachable, unusable key).
    Precondition,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::Verification => 3,
            Kind::Precondition => 4,
        }
    }
}

#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    pub hints: Vec<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hints: Vec::new(),
        }
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Kind::Failed, message)
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }
    pub fn verification(message: impl Into<String>) -> Self {
        Self::new(Kind::Verification, message)
    }
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(Kind::Precondition, message)
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Adds what custody was doing to a lower-level error, keeping it a `Failed` error.
pub trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T>;
    fn with_kind(self, kind: Kind, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.with_kind(Kind::Failed, what)
    }
    fn with_kind(self, kind: Kind, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::new(kind, format!("{what}: {e}")))
    }
}
