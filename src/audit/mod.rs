//! Audit logs as the file device writes them (one JSON object a line): read as streams
//! (`reader.rs`), and the signatures they record (`signature.rs`). A leaf: no HTTP, no terminal.

pub mod reader;
pub mod signature;

pub use reader::{At, FileRead, MAX_LINE, Text, read_logs};
pub use signature::{Entry, Signature, entry, sign_path};
