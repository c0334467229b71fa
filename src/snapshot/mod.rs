//! Raft snapshots: the archive reader and its checks, and the manifest written beside it.

pub mod archive;
pub mod manifest;

pub use archive::{ArchiveReport, HashingReader, check_file, read_meta};
pub use manifest::{Manifest, manifest_path};
