//! Reading an OpenBao/Vault Raft snapshot: a gzip'd tar holding `meta.json`, `state.bin`,
//! `SHA256SUMS` and (OpenBao, Vault) `SHA256SUMS.sealed`. Everything is streamed: memory stays
//! flat whatever the size.
//!
//! The archive is read as the server will read it, or refused. OpenBao writes a snapshot as one
//! gzip member; Go's `gzip.Reader` reads concatenated members as one stream, so bytes after the
//! first member would reach the server's tar reader although a single-member reader never saw
//! them. custody therefore refuses any byte after the first member. The tar inside may unpack
//! to at most [`MAX_UNPACKED`] bytes: past that the archive is refused, naming the cap.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;
use std::rc::Rc;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Kind, Result};

/// The largest small member (meta.json, SHA256SUMS) custody reads into memory.
const SMALL_MEMBER: u64 = 1 << 20;

/// The most a snapshot's tar may unpack to: 4 GiB, some thousand times an Authority cluster's
/// snapshot (a few hundred KB; 58 MB with 100,000 KV entries). A gzip that expands further is a
/// decompression bomb, not a snapshot custody should vouch for.
pub const MAX_UNPACKED: u64 = 4 << 30;

/// The size of the pieces of the file whose sha256 a check records when asked
/// ([`CheckOptions::chunk_digests`]), so that a later upload can send only bytes that were
/// checked ([`crate::snapshot::VerifiedReader`]).
pub const CHUNK: usize = 1 << 20;

/// How [`check_open`] reads.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The most the tar may unpack to (a decompression bomb is refused past it).
    pub max_unpacked: u64,
    /// Record the sha256 of every [`CHUNK`] of the file (for an upload of the same bytes).
    pub chunk_digests: bool,
    /// Count how often these bytes occur in `state.bin` (a storage key: OpenBao writes the
    /// keys in clear, the values encrypted), into [`ArchiveReport::state_matches`].
    pub find_in_state: Option<Vec<u8>>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            max_unpacked: MAX_UNPACKED,
            chunk_digests: false,
            find_in_state: None,
        }
    }
}

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
    /// The bytes the tar unpacked to (its one gzip member, decompressed).
    pub unpacked_size: u64,
    /// The sha256 of each [`CHUNK`] of the file, in order, when asked for.
    #[serde(skip)]
    pub chunks: Vec<[u8; 32]>,
    /// How often [`CheckOptions::find_in_state`] occurs in `state.bin` (0 when not asked).
    pub state_matches: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetaSummary {
    pub index: u64,
    pub term: u64,
    pub id: String,
    pub state_size: u64,
}

/// Counts and hashes every byte read through it; with [`HashingReader::with_chunks`], also
/// each [`CHUNK`] of them on its own.
pub struct HashingReader<R> {
    inner: R,
    ctx: digest::Context,
    pub bytes: u64,
    chunk: Option<(digest::Context, Vec<[u8; 32]>)>,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            ctx: digest::Context::new(&digest::SHA256),
            bytes: 0,
            chunk: None,
        }
    }
    /// Also records the sha256 of every [`CHUNK`] (the last one may be shorter).
    pub fn with_chunks(mut self) -> Self {
        self.chunk = Some((digest::Context::new(&digest::SHA256), Vec::new()));
        self
    }
    pub fn finish(self) -> (String, u64) {
        let (sha, bytes, _) = self.finish_with_chunks();
        (sha, bytes)
    }
    /// (sha256, size, the chunks' sha256 when recorded).
    pub fn finish_with_chunks(self) -> (String, u64, Vec<[u8; 32]>) {
        let chunks = match self.chunk {
            Some((ctx, mut done)) => {
                if !self.bytes.is_multiple_of(CHUNK as u64) {
                    done.push(digest_array(ctx.finish()));
                }
                done
            }
            None => Vec::new(),
        };
        (hex::encode(self.ctx.finish().as_ref()), self.bytes, chunks)
    }
}

pub(crate) fn digest_array(d: digest::Digest) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ctx.update(&buf[..n]);
        if let Some((ctx, done)) = &mut self.chunk {
            let mut rest = &buf[..n];
            let mut at = self.bytes;
            while !rest.is_empty() {
                let room = CHUNK - (at % CHUNK as u64) as usize;
                let take = room.min(rest.len());
                ctx.update(&rest[..take]);
                at += take as u64;
                rest = &rest[take..];
                if at.is_multiple_of(CHUNK as u64) {
                    let full = std::mem::replace(ctx, digest::Context::new(&digest::SHA256));
                    done.push(digest_array(full.finish()));
                }
            }
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Counts what the gzip decoder yields, and fails past `cap`, noting that it did.
struct Capped<R> {
    inner: R,
    read: u64,
    cap: u64,
    hit: Rc<Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.cap {
            self.hit.set(true);
            return Err(io::Error::other(format!(
                "the archive unpacks to more than {} bytes",
                self.cap
            )));
        }
        Ok(n)
    }
}

/// `n` bytes for people: GiB, MiB or KiB when exact, else bytes.
fn size_text(n: u64) -> String {
    for (unit, name) in [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if n >= unit && n.is_multiple_of(unit) {
            return format!("{} {name}", n / unit);
        }
    }
    format!("{n} bytes")
}

fn too_large(cap: u64) -> Error {
    Error::verification(format!(
        "the snapshot is refused: its tar unpacks to more than {} (custody's cap, far above any \
         Authority cluster's snapshot); a gzip that expands this far is a decompression bomb, not \
         a snapshot to vouch for",
        size_text(cap)
    ))
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

/// Opens a snapshot to check it (and then, for a restore, to send the same bytes).
pub fn open(path: &Path) -> Result<File> {
    File::open(path).with_kind(Kind::Usage, format!("{}: cannot read it", path.display()))
}

/// [`check_open`] of the file at `path`, with the default options.
pub fn check_file(path: &Path) -> Result<ArchiveReport> {
    check_open(&open(path)?, path, CheckOptions::default())
}

/// Checks the whole archive, read from `file` (from where it stands, normally its start):
/// gzip and tar structure, one gzip member and nothing after it, the tar within the unpack
/// cap, the members present, each member's sha256 against `SHA256SUMS`, `meta.json` parsed and
/// consistent with `state.bin`. `path` only names the file in messages.
pub fn check_open(file: &File, path: &Path, opts: CheckOptions) -> Result<ArchiveReport> {
    let mut hashing = HashingReader::new(file);
    if opts.chunk_digests {
        hashing = hashing.with_chunks();
    }
    let mut outer = io::BufReader::with_capacity(256 * 1024, hashing);
    let mut magic = [0u8; 2];
    let got = read_up_to(&mut outer, &mut magic).context(format!("reading {}", path.display()))?;
    if got == 0 {
        return Err(not_a_snapshot(path, "the file is empty"));
    }
    if got < 2 || magic != [0x1f, 0x8b] {
        return Err(not_a_snapshot(path, "not a gzip archive"));
    }
    let chained = io::Cursor::new(magic).chain(outer);
    let mut members: BTreeMap<String, String> = BTreeMap::new();
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    let mut meta_bytes = None;
    let mut sums_bytes = None;
    let mut state_matches = 0;
    let cap = opts.max_unpacked;
    let hit = Rc::new(Cell::new(false));
    // A reader error, unless the cap was hit (then the cap is what to say).
    let at = |where_: String| {
        let hit = hit.clone();
        move |e: io::Error| {
            if hit.get() {
                too_large(cap)
            } else {
                damaged(where_.clone()).caused_by(e)
            }
        }
    };
    // One gzip member only (flate2's bufread decoder stops at its end and leaves what
    // follows in the reader under it).
    let gz = flate2::bufread::GzDecoder::new(chained);
    let mut archive = tar::Archive::new(Capped {
        inner: gz,
        read: 0,
        cap,
        hit: hit.clone(),
    });
    let entries = archive
        .entries()
        .map_err(at("not a tar archive inside the gzip".into()))?;
    for entry in entries {
        let mut entry = entry.map_err(at("reading the tar".into()))?;
        let name = entry
            .path()
            .map_err(damaged_at("a member name"))?
            .to_string_lossy()
            .into_owned();
        if members.contains_key(&name) {
            return Err(damaged(format!("member {name} appears twice")));
        }
        let small = name == "meta.json" || name == "SHA256SUMS";
        let mut finder = (name == "state.bin")
            .then_some(opts.find_in_state.as_deref())
            .flatten()
            .map(Matches::new);
        let (sha256, n_total, keep) = read_member(
            &mut entry,
            &name,
            small,
            finder.as_mut(),
            at(format!("member {name}")),
        )?;
        if let Some(f) = finder {
            state_matches = f.count;
        }
        members.insert(name.clone(), sha256);
        sizes.insert(name.clone(), n_total);
        match name.as_str() {
            "meta.json" => meta_bytes = Some(keep),
            "SHA256SUMS" => sums_bytes = Some(keep),
            _ => {}
        }
    }
    // Whatever follows the tar inside the gzip member is still read (within the cap), so the
    // gzip trailer (CRC) is checked.
    let mut capped = archive.into_inner();
    io::copy(&mut capped, &mut io::sink()).map_err(at("the gzip stream".into()))?;
    let unpacked_size = capped.read;
    let mut chained = capped.inner.into_inner();
    let after = chained
        .fill_buf()
        .context(format!("reading {}", path.display()))?;
    if !after.is_empty() {
        return Err(Error::verification(format!(
            "the snapshot is refused: more bytes follow its gzip member (a second member or \
             trailing data). OpenBao writes a snapshot as one gzip member, and the server's gzip \
             reader (Go's, which reads concatenated members as one stream) would take those \
             bytes as more of the archive: custody cannot vouch for what a restore of {} would \
             install",
            path.display()
        )));
    }
    let (_, outer) = chained.into_inner();
    let (sha256, size, chunks) = outer.into_inner().finish_with_chunks();

    check_sums(&members, sums_bytes)?;
    let (meta, state_size) = check_meta(meta_bytes, &sizes)?;
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
        unpacked_size,
        chunks,
        state_matches,
    })
}

/// Counts a needle's occurrences across the pieces of a stream: the last `needle - 1` bytes of
/// each piece are kept, so a match split between two pieces counts once.
struct Matches<'a> {
    finder: memchr::memmem::Finder<'a>,
    tail: Vec<u8>,
    count: usize,
}

impl<'a> Matches<'a> {
    fn new(needle: &'a [u8]) -> Matches<'a> {
        Matches {
            finder: memchr::memmem::Finder::new(needle),
            tail: Vec::new(),
            count: 0,
        }
    }

    fn feed(&mut self, piece: &[u8]) {
        // The tail is shorter than the needle, so every match found here ends in `piece`: none
        // was counted before.
        let keep = self.finder.needle().len().saturating_sub(1);
        let mut joined = std::mem::take(&mut self.tail);
        joined.extend_from_slice(piece);
        self.count += self.finder.find_iter(&joined).count();
        let from = joined.len().saturating_sub(keep);
        self.tail = joined.split_off(from);
    }
}

/// One tar member read whole: its sha256, its size, and (for `keep`, the small members custody
/// parses) its bytes, at most 1 MiB.
fn read_member(
    entry: &mut impl Read,
    name: &str,
    keep: bool,
    mut matches: Option<&mut Matches>,
    failed: impl Fn(io::Error) -> Error,
) -> Result<(String, u64, Vec<u8>)> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = entry.read(&mut buf).map_err(&failed)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        if let Some(m) = matches.as_deref_mut() {
            m.feed(&buf[..n]);
        }
        size += n as u64;
        if keep {
            if size > SMALL_MEMBER {
                return Err(damaged(format!("member {name} is larger than 1 MiB")));
            }
            kept.extend_from_slice(&buf[..n]);
        }
    }
    Ok((hex::encode(ctx.finish().as_ref()), size, kept))
}

/// Every required member is there, `SHA256SUMS` lists `meta.json` and `state.bin`, and each
/// member it lists has the sha256 it says.
fn check_sums(members: &BTreeMap<String, String>, sums_bytes: Option<Vec<u8>>) -> Result<()> {
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
    Ok(())
}

/// `meta.json` parses and agrees with `state.bin`'s size: the metadata, and that size.
fn check_meta(meta_bytes: Option<Vec<u8>>, sizes: &BTreeMap<String, u64>) -> Result<(Meta, u64)> {
    let meta: Meta = serde_json::from_slice(&meta_bytes.unwrap_or_default())
        .map_err(damaged_at("meta.json does not parse"))?;
    let state_size = sizes.get("state.bin").copied().unwrap_or(0);
    if meta.size != 0 && meta.size != state_size {
        return Err(damaged(format!(
            "meta.json says state.bin has {} bytes; it has {state_size}",
            meta.size
        )));
    }
    Ok((meta, state_size))
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
pub(crate) mod tests {
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
    /// A gzip'd tar of the members OpenBao writes (meta.json, state.bin, SHA256SUMS), as one
    /// gzip member; `state` is state.bin.
    pub(crate) fn snapshot_bytes(state: &[u8]) -> Vec<u8> {
        let meta = format!(
            r#"{{"Version":1,"ID":"2-10-1","Index":10,"Term":2,"Size":{}}}"#,
            state.len()
        );
        let sha = |b: &[u8]| crate::digest::sha256_hex(b);
        let sums = format!(
            "{}  meta.json\n{}  state.bin\n",
            sha(meta.as_bytes()),
            sha(state)
        );
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (name, data) in [
            ("meta.json", meta.as_bytes()),
            ("state.bin", state),
            ("SHA256SUMS", sums.as_bytes()),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            tar.append_data(&mut h, name, data).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, data).unwrap();
        gz.finish().unwrap()
    }

    fn check_bytes(bytes: &[u8], opts: CheckOptions) -> Result<ArchiveReport> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.snap");
        std::fs::write(&path, bytes).unwrap();
        check_open(&open(&path).unwrap(), &path, opts)
    }

    #[test]
    fn one_gzip_member_passes_and_is_hashed_whole_and_by_chunk() {
        let state: Vec<u8> = (0..(CHUNK * 2 + 12345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let bytes = snapshot_bytes(&state);
        let report = check_bytes(
            &bytes,
            CheckOptions {
                chunk_digests: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(report.sha256, crate::digest::sha256_hex(&bytes));
        assert_eq!(report.size, bytes.len() as u64);
        assert_eq!(report.meta.state_size, state.len() as u64);
        assert!(report.unpacked_size > state.len() as u64);
        let want: Vec<[u8; 32]> = bytes
            .chunks(CHUNK)
            .map(|c| digest_array(digest::digest(&digest::SHA256, c)))
            .collect();
        assert_eq!(report.chunks, want);
        assert!(
            check_bytes(&bytes, CheckOptions::default())
                .unwrap()
                .chunks
                .is_empty()
        );
    }

    #[test]
    fn a_storage_key_is_counted_in_state_bin_also_across_read_pieces() {
        let key = b"logical/0a1b/restore-fence/snap-1-abcd";
        // Far enough apart that the 64 KiB reads split one of them.
        let mut state = vec![7u8; 65_530];
        state.extend_from_slice(key);
        state.extend(vec![9u8; 100_000]);
        state.extend_from_slice(key);
        let report = check_bytes(
            &snapshot_bytes(&state),
            CheckOptions {
                find_in_state: Some(b"restore-fence/snap-1-abcd".to_vec()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(report.state_matches, 2);
        let none = check_bytes(
            &snapshot_bytes(&state),
            CheckOptions {
                find_in_state: Some(b"restore-fence/snap-2".to_vec()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(none.state_matches, 0);
    }

    #[test]
    fn a_second_gzip_member_or_trailing_bytes_are_refused() {
        let bytes = snapshot_bytes(b"state");
        // What Go's multistream reader would read on: a second member (here, a tar member
        // more), or any trailing bytes (Go fails on a bad header; custody refuses both).
        let mut two = bytes.clone();
        two.extend(gzip(&snapshot_bytes(b"other")));
        let mut trailing = bytes.clone();
        trailing.extend(b"\0\0\0\0");
        for (what, data) in [("two members", two), ("trailing bytes", trailing)] {
            let err = check_bytes(&data, CheckOptions::default()).unwrap_err();
            assert_eq!(err.kind, Kind::Verification, "{what}");
            assert!(
                err.message.contains("more bytes follow its gzip member"),
                "{what}: {}",
                err.message
            );
            assert!(err.message.contains("one gzip member"), "{}", err.message);
        }
    }

    #[test]
    fn a_decompression_bomb_is_refused_naming_the_cap() {
        // 64 MiB of zeros is a gzip of some 64 KiB: as a bare gzip, and as state.bin of a
        // well-formed snapshot.
        let zeros = vec![0u8; 64 << 20];
        let bare = gzip(&zeros);
        assert!(bare.len() < 1 << 20);
        let in_tar = snapshot_bytes(&zeros);
        for data in [bare, in_tar] {
            let err = check_bytes(
                &data,
                CheckOptions {
                    max_unpacked: 1 << 20,
                    ..Default::default()
                },
            )
            .unwrap_err();
            assert_eq!(err.kind, Kind::Verification);
            assert!(
                err.message.contains("unpacks to more than 1 MiB"),
                "{}",
                err.message
            );
            assert!(
                err.message.contains("decompression bomb"),
                "{}",
                err.message
            );
        }
        // The default cap is far above it.
        check_bytes(&snapshot_bytes(&zeros), CheckOptions::default()).unwrap();
        assert_eq!(size_text(MAX_UNPACKED), "4 GiB");
    }
}
