//! Raft snapshots: the archive reader and its checks, the manifest written beside it, and the
//! reader that sends only the checked bytes.

pub mod archive;
pub mod manifest;
pub mod verified;

pub use archive::{
    ArchiveReport, CHUNK, CheckOptions, HashingReader, MAX_UNPACKED, check_file, check_open, open,
    read_meta,
};
pub use manifest::{Manifest, manifest_path};
pub use verified::{ChangedFlag, VerifiedReader};
