//! Sending exactly the bytes that were checked: a reader over the same open file that yields
//! each [`CHUNK`] only after its sha256 matches the one recorded by the check. A file replaced
//! after the check (renamed over) is not seen: the open file is the checked one. A file written
//! in place is caught at the first changed chunk, before any of its bytes are yielded: the
//! reader fails, so an upload stops short with only checked bytes sent (a cut-short archive the
//! server cannot restore from).

use std::fs::File;
use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use aws_lc_rs::digest;
use tokio::io::{AsyncRead, AsyncSeekExt, ReadBuf};

use super::archive::{ArchiveReport, CHUNK, digest_array};
use crate::error::{Context as _, Result};

/// The checked bytes of an open snapshot file, for an upload ([`tokio::io::AsyncRead`]).
pub struct VerifiedReader {
    file: tokio::fs::File,
    chunks: Vec<[u8; 32]>,
    size: u64,
    /// The chunk being filled or served, how much of it is filled, how much served.
    buf: Vec<u8>,
    filled: usize,
    served: usize,
    /// `buf[..filled]` is chunk `next - 1`, checked.
    checked: bool,
    next: usize,
    changed: Arc<AtomicBool>,
}

/// Whether the file was found changed while it was read (shared with the reader).
#[derive(Clone, Debug)]
pub struct ChangedFlag(Arc<AtomicBool>);

impl ChangedFlag {
    pub fn changed(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl VerifiedReader {
    /// Reads `file` again from its start; `report` must come from a check of this same open
    /// file with [`super::CheckOptions::chunk_digests`].
    pub async fn new(file: &File, report: &ArchiveReport) -> Result<VerifiedReader> {
        let expected_chunks = report.size.div_ceil(CHUNK as u64);
        if report.chunks.len() as u64 != expected_chunks {
            return Err(crate::error::Error::internal(
                "the snapshot was checked without chunk digests; it cannot be sent",
            ));
        }
        let mut file = tokio::fs::File::from_std(
            file.try_clone()
                .context("duplicating the snapshot's open file")?,
        );
        file.seek(SeekFrom::Start(0))
            .await
            .context("rewinding the snapshot file")?;
        Ok(VerifiedReader {
            file,
            chunks: report.chunks.clone(),
            size: report.size,
            buf: vec![0u8; CHUNK],
            filled: 0,
            served: 0,
            checked: false,
            next: 0,
            changed: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn changed_flag(&self) -> ChangedFlag {
        ChangedFlag(self.changed.clone())
    }

    fn chunk_len(&self, i: usize) -> usize {
        let start = i as u64 * CHUNK as u64;
        (self.size - start).min(CHUNK as u64) as usize
    }

    fn changed(&self, why: String) -> io::Error {
        self.changed.store(true, Ordering::SeqCst);
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the snapshot file changed after it was verified: {why}"),
        )
    }
}

impl AsyncRead for VerifiedReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.checked {
                if this.served < this.filled {
                    let n = (this.filled - this.served).min(out.remaining());
                    out.put_slice(&this.buf[this.served..this.served + n]);
                    this.served += n;
                    return Poll::Ready(Ok(()));
                }
                this.checked = false;
                this.filled = 0;
                this.served = 0;
            }
            if this.next == this.chunks.len() {
                // Exactly the checked size was yielded; whatever the file holds beyond it now is
                // never read.
                return Poll::Ready(Ok(()));
            }
            let want = this.chunk_len(this.next);
            while this.filled < want {
                let mut rb = ReadBuf::new(&mut this.buf[this.filled..want]);
                ready!(Pin::new(&mut this.file).poll_read(cx, &mut rb))?;
                let n = rb.filled().len();
                if n == 0 {
                    let at = this.next as u64 * CHUNK as u64 + this.filled as u64;
                    return Poll::Ready(Err(
                        this.changed(format!("it ends at byte {at}, it had {} bytes", this.size))
                    ));
                }
                this.filled += n;
            }
            let got = digest_array(digest::digest(&digest::SHA256, &this.buf[..want]));
            if got != this.chunks[this.next] {
                let at = this.next as u64 * CHUNK as u64;
                return Poll::Ready(Err(this.changed(format!(
                    "the {} bytes from byte {at} differ from the ones checked",
                    want
                ))));
            }
            this.next += 1;
            this.checked = true;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::snapshot::{CheckOptions, check_open, open};
    use tokio::io::AsyncReadExt;

    /// A checked snapshot of some 2.3 chunks on disk: (dir, path, its bytes, the open file,
    /// the report).
    pub(crate) fn checked_snapshot() -> (
        tempfile::TempDir,
        std::path::PathBuf,
        Vec<u8>,
        File,
        ArchiveReport,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blue.snap");
        // Incompressible state, so the file spans several chunks.
        let mut state = vec![0u8; CHUNK * 3];
        let mut x = 0x1234_5678u32;
        for b in state.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let bytes = crate::snapshot::archive::tests::snapshot_bytes(&state);
        assert!(bytes.len() > CHUNK * 2);
        std::fs::write(&path, &bytes).unwrap();
        let file = open(&path).unwrap();
        let report = check_open(
            &file,
            &path,
            CheckOptions {
                chunk_digests: true,
                ..Default::default()
            },
        )
        .unwrap();
        (dir, path, bytes, file, report)
    }

    async fn read_all(r: &mut VerifiedReader) -> (Vec<u8>, io::Result<usize>) {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 100_000];
        loop {
            match r.read(&mut buf).await {
                Ok(0) => return (got, Ok(0)),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return (got, Err(e)),
            }
        }
    }

    #[tokio::test]
    async fn the_checked_bytes_are_yielded_even_if_the_file_is_replaced() {
        let (dir, path, bytes, file, report) = checked_snapshot();
        // Someone renames another file over the checked one: the open file is still the
        // checked one, and only its bytes come out.
        let other = dir.path().join("other.snap");
        std::fs::write(&other, b"other bytes").unwrap();
        std::fs::rename(&other, &path).unwrap();
        let mut r = VerifiedReader::new(&file, &report).await.unwrap();
        let (got, end) = read_all(&mut r).await;
        end.unwrap();
        assert_eq!(got, bytes);
        assert!(!r.changed_flag().changed());
    }

    #[tokio::test]
    async fn a_file_changed_in_place_stops_before_the_changed_chunk() {
        let (_dir, path, bytes, file, report) = checked_snapshot();
        let mut changed = bytes.clone();
        changed[CHUNK * 2 + 7] ^= 1;
        // Written in place: the same inode the open file reads.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &changed))
            .unwrap();
        let mut r = VerifiedReader::new(&file, &report).await.unwrap();
        let flag = r.changed_flag();
        let (got, end) = read_all(&mut r).await;
        let err = end.unwrap_err();
        assert!(
            err.to_string().contains("changed after it was verified"),
            "{err}"
        );
        assert!(flag.changed());
        // Only the checked chunks before the change came out.
        assert_eq!(got, bytes[..CHUNK * 2]);

        // Cut short: the same.
        std::fs::write(&path, &bytes[..CHUNK + 10]).unwrap();
        let file = open(&path).unwrap();
        let mut r = VerifiedReader::new(&file, &report).await.unwrap();
        let (got, end) = read_all(&mut r).await;
        assert!(end.unwrap_err().to_string().contains("it ends at byte"));
        assert_eq!(got, bytes[..CHUNK]);
    }

    #[tokio::test]
    async fn a_report_without_chunk_digests_cannot_be_sent() {
        let (_dir, path, _bytes, file, _) = checked_snapshot();
        let plain = check_open(&open(&path).unwrap(), &path, CheckOptions::default()).unwrap();
        assert!(VerifiedReader::new(&file, &plain).await.is_err());
    }
}
