//! The one error type of custody: what custody was doing, the cause it keeps (printed as
//! "caused by" lines), optional hints, and the kind that decides the exit code (the contract in
//! the README).

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
    /// 70 (sysexits' EX_SOFTWARE): something that should never happen did; a bug in custody.
    Internal,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::Verification => 3,
            Kind::Precondition => 4,
            Kind::Internal => 70,
        }
    }

    /// The kind a child custody process reported through its exit code.
    pub fn from_exit_code(code: i32) -> Kind {
        match code {
            2 => Kind::Usage,
            3 => Kind::Verification,
            4 => Kind::Precondition,
            70 => Kind::Internal,
            _ => Kind::Failed,
        }
    }
}

/// A cause kept under an error: any error of a library, or of a server call.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    /// What custody was doing, and what went wrong at that level.
    pub message: String,
    pub hints: Vec<String>,
    pub cause: Option<Cause>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hints: Vec::new(),
            cause: None,
        }
    }
    /// Something that should never happen: a bug in custody, not in the input or the world.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Kind::Internal, message)
    }
    /// Keeps `cause` under this error.
    pub fn caused_by(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }
    /// Keeps a cause already boxed: an `anyhow::Error` of sequoia converts with `.into()` and
    /// keeps its chain.
    pub fn caused_by_boxed(mut self, cause: impl Into<Cause>) -> Self {
        self.cause = Some(cause.into());
        self
    }
    /// The same error with what custody was doing put in front; kind, hints and cause stay.
    pub fn doing(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
    /// The causes under this error, outermost first. A cause whose text is already shown (in
    /// the message or an outer cause that quotes its own source) is left out, so no words are
    /// printed twice.
    pub fn causes(&self) -> impl Iterator<Item = String> + '_ {
        let mut shown: Vec<String> = Vec::new();
        let mut next: Option<&(dyn std::error::Error + 'static)> = self
            .cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static));
        while let Some(e) = next {
            let text = e.to_string();
            let repeated = text.is_empty()
                || self.message.contains(&text)
                || shown.iter().any(|s| s.contains(&text));
            if !repeated {
                shown.push(text);
            }
            next = e.source();
        }
        shown.into_iter()
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

/// The message and its causes on one line (for records and logs); the terminal shows the causes
/// as "caused by" lines instead.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for cause in self.causes() {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// Says what custody was doing when a lower-level error struck, and keeps that error as the
/// cause.
pub trait Context<T> {
    /// A `Failed` error.
    fn context(self, what: impl fmt::Display) -> Result<T>;
    fn with_kind(self, kind: Kind, what: impl fmt::Display) -> Result<T>;
}

impl<T, E> Context<T> for std::result::Result<T, E>
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.with_kind(Kind::Failed, what)
    }
    fn with_kind(self, kind: Kind, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::new(kind, what.to_string()).caused_by(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_chain_is_kept_and_shown() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err: Error = Err::<(), _>(io)
            .context("reading the manifest")
            .unwrap_err()
            .doing("snapshot verify");
        assert_eq!(err.message, "snapshot verify: reading the manifest");
        assert_eq!(err.causes().collect::<Vec<_>>(), ["no such file"]);
        assert_eq!(
            err.to_string(),
            "snapshot verify: reading the manifest: no such file"
        );
        assert_eq!(err.kind.exit_code(), 1);
        assert_eq!(Kind::from_exit_code(70), Kind::Internal);
        assert_eq!(Error::internal("x").kind.exit_code(), 70);
    }

    #[test]
    fn a_cause_already_quoted_is_not_repeated() {
        #[derive(Debug)]
        struct Quoting(std::io::Error);
        impl fmt::Display for Quoting {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "unreachable: {}", self.0)
            }
        }
        impl std::error::Error for Quoting {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::failed("reading the seal status").caused_by(Quoting(io));
        assert_eq!(err.causes().collect::<Vec<_>>(), ["unreachable: refused"]);
        assert_eq!(
            err.to_string(),
            "reading the seal status: unreachable: refused"
        );
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn an_anyhow_cause_keeps_its_chain() {
        let inner = std::io::Error::other("bad packet");
        let e = anyhow::Error::new(inner).context("parsing the key");
        let err = Error::failed("reading --secret-key k.asc").caused_by_boxed(e);
        assert_eq!(
            err.causes().collect::<Vec<_>>(),
            ["parsing the key", "bad packet"]
        );
    }
}
