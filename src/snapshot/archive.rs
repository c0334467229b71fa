//! Reading an OpenBao/Vault Raft snapshot: a gzip'd tar holding `meta.json`, `state.bin`,
//! `SHA256SUMS` and (OpenBao, Vault) `SHA256SUMS.sealed`. Everything is streamed: memory stays
//! flat whatever the size.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Kind, Result};

/// The largest small member (meta.json, SHA256SUMS) custody reads into memory.
const SMALL_MEMBER: u64 = 1 << 20;

/// `meta.json` of a snapshot (Raft's own snapshot metadata).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Meta {
    #[serde(rename = "Version")]
    pub version: u64,
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Index")]
    pub index: u64,
    #[serde(rename = "Term")]
    pub term: u64,
    #[serde(rename = "Size", default)]
    pub size: u64,
}

/// What a full check of the archive found.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveReport {
    pub sha256: String,
    pub size: u64,
    pub meta: MetaSummary,
    /// member → sha256, as computed while reading.
    pub members: BTreeMap<String, String>,
    pub sealed_sums: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetaSummary {
    pub index: u64,
    pub term: u64,
    pub id: String,
    pub state_size: u64,
}

/// Counts and hashes every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    ctx: digest::Context,
    pub bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            ctx: digest::Context::new(&digest::SHA256),
            bytes: 0,
        }
    }
    pub fn finish(self) -> (String, u64) {
        (hex::encode(self.ctx.finish().as_ref()), self.bytes)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ctx.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Why an archive failed: what is damaged, with nothing under it.
fn damaged(what: impl std::fmt::Display) -> Error {
    Error::verification(format!("the snapshot is damaged: {what}"))
}

/// A `map_err` for reading the archive: the snapshot is damaged at `where_`, and the error of
/// the reader (gzip, tar, JSON) is kept as the cause.
fn damaged_at<E: std::error::Error + Send + Sync + 'static>(
    where_: impl std::fmt::Display,
) -> impl FnOnce(E) -> Error {
    move |e| damaged(where_).caused_by(e)
}

fn not_a_snapshot(path: &Path, why: &str) -> Error {
    Error::failed(format!("{} is not a Raft snapshot ({why})", path.display()))
}

/// Checks the whole archive: gzip and tar structure, the members present, each member's
/// sha256 against `SHA256SUMS`, `meta.json` parsed and consistent with `state.bin`.
pub fn check_file(path: &Path) -> Result<ArchiveReport> {
    let file = std::fs::File::open(path)
        .with_kind(Kind::Usage, format!("{}: cannot read it", path.display()))?;
    let mut outer = HashingReader::new(io::BufReader::with_capacity(256 * 1024, file));
    let mut magic = [0u8; 2];
    let got = read_up_to(&mut outer, &mut magic).context(format!("reading {}", path.display()))?;
    if got == 0 {
        return Err(not_a_snapshot(path, "the file is empty"));
    }
    if got < 2 || magic != [0x1f, 0x8b] {
        return Err(not_a_snapshot(path, "not a gzip archive"));
    }
    let chained = io::Cursor::new(magic).chain(&mut outer);
    let mut members: BTreeMap<String, String> = BTreeMap::new();
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    let mut meta_bytes = None;
    let mut sums_bytes = None;
    {
        let gz = flate2::read::GzDecoder::new(chained);
        let mut archive = tar::Archive::new(gz);
        let entries = archive
            .entries()
            .map_err(damaged_at("not a tar archive inside the gzip"))?;
        for entry in entries {
            let mut entry = entry.map_err(damaged_at("reading the tar"))?;
            let name = entry
                .path()
                .map_err(damaged_at("a member name"))?
                .to_string_lossy()
                .into_owned();
            if members.contains_key(&name) {
                return Err(damaged(format!("member {name} appears twice")));
            }
            let mut ctx = digest::Context::new(&digest::SHA256);
            let mut keep = Vec::new();
            let small = name == "meta.json" || name == "SHA256SUMS";
            let mut buf = vec![0u8; 64 * 1024];
            let mut n_total = 0u64;
            loop {
                let n = entry
                    .read(&mut buf)
                    .map_err(damaged_at(format!("member {name}")))?;
                if n == 0 {
                    break;
                }
                ctx.update(&buf[..n]);
                n_total += n as u64;
                if small {
                    if n_total > SMALL_MEMBER {
                        return Err(damaged(format!("member {name} is larger than 1 MiB")));
                    }
                    keep.extend_from_slice(&buf[..n]);
                }
            }
            members.insert(name.clone(), hex::encode(ctx.finish().as_ref()));
            sizes.insert(name.clone(), n_total);
            match name.as_str() {
                "meta.json" => meta_bytes = Some(keep),
                "SHA256SUMS" => sums_bytes = Some(keep),
                _ => {}
            }
        }
        // Whatever follows the tar inside the gzip is still read, so the gzip trailer (CRC)
        // is checked and the file hash covers every byte.
        let mut gz = archive.into_inner();
        io::copy(&mut gz, &mut io::sink()).map_err(damaged_at("the gzip stream"))?;
    }
    io::copy(&mut outer, &mut io::sink()).context(format!("reading {}", path.display()))?;
    let (sha256, size) = outer.finish();

    for required in ["meta.json", "state.bin", "SHA256SUMS"] {
        if !members.contains_key(required) {
            return Err(damaged(format!("member {required} is missing")));
        }
    }
    let sums_text = String::from_utf8(sums_bytes.unwrap_or_default())
        .map_err(|_| damaged("SHA256SUMS is not text"))?;
    let mut listed = BTreeMap::new();
    for (i, line) in sums_text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let mut parts = line.split_whitespace();
        let (Some(hash), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(damaged(format!(
                "SHA256SUMS line {} is not `HASH  NAME`",
                i + 1
            )));
        };
        listed.insert(
            name.trim_start_matches('*').to_owned(),
            hash.to_ascii_lowercase(),
        );
    }
    for required in ["meta.json", "state.bin"] {
        if !listed.contains_key(required) {
            return Err(damaged(format!("SHA256SUMS does not list {required}")));
        }
    }
    for (name, want) in &listed {
        match members.get(name) {
            None => {
                return Err(damaged(format!(
                    "SHA256SUMS lists {name}, which the archive lacks"
                )));
            }
            Some(got) if got != want => {
                return Err(damaged(format!(
                    "member {name} has sha256 {got}, SHA256SUMS says {want}"
                )));
            }
            Some(_) => {}
        }
    }
    let meta: Meta = serde_json::from_slice(&meta_bytes.unwrap_or_default())
        .map_err(damaged_at("meta.json does not parse"))?;
    let state_size = sizes.get("state.bin").copied().unwrap_or(0);
    if meta.size != 0 && meta.size != state_size {
        return Err(damaged(format!(
            "meta.json says state.bin has {} bytes; it has {state_size}",
            meta.size
        )));
    }
    Ok(ArchiveReport {
        sha256,
        size,
        meta: MetaSummary {
            index: meta.index,
            term: meta.term,
            id: meta.id,
            state_size,
        },
        sealed_sums: members.contains_key("SHA256SUMS.sealed"),
        members,
    })
}

/// `meta.json` only: the first member, read from the start of the file without the rest.
pub fn read_meta(path: &Path) -> Result<Meta> {
    let file = std::fs::File::open(path).context(format!("opening {}", path.display()))?;
    let gz = flate2::read::GzDecoder::new(io::BufReader::new(file));
    let mut archive = tar::Archive::new(gz);
    for entry in archive
        .entries()
        .map_err(damaged_at("not a tar archive inside the gzip"))?
    {
        let entry = entry.map_err(damaged_at("reading the tar"))?;
        if entry
            .path()
            .map(|p| p == Path::new("meta.json"))
            .unwrap_or(false)
        {
            let mut bytes = Vec::new();
            entry
                .take(SMALL_MEMBER)
                .read_to_end(&mut bytes)
                .map_err(damaged_at("member meta.json"))?;
            return serde_json::from_slice(&bytes).map_err(damaged_at("meta.json does not parse"));
        }
    }
    Err(damaged("member meta.json is missing"))
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let n = r.read(&mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_archive_keeps_the_reader_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.snap");
        // A gzip header and then nothing: the gzip stream ends early.
        std::fs::write(&path, [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0xff, 0x01]).unwrap();
        let err = check_file(&path).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Verification);
        assert!(
            err.message.starts_with("the snapshot is damaged: "),
            "{}",
            err.message
        );
        assert!(err.causes().next().is_some(), "{err}");
    }

    #[test]
    fn a_missing_file_keeps_the_io_error() {
        let err = read_meta(Path::new("/nonexistent/x.snap")).unwrap_err();
        assert_eq!(err.message, "opening /nonexistent/x.snap");
        let source = std::error::Error::source(&err).expect("the io error is kept");
        assert!(source.downcast_ref::<io::Error>().is_some());
    }
}
