//! Audit log files read as streams, one JSON object a line: each line handed over parsed or
//! with what is wrong with it (not JSON, too long, cut off at the end of the file), with its
//! file and line number. A line is never kept once it is handed over, so memory does not grow
//! with the log; each file's sha256 is taken on the way.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Context as _, Error, Kind, Result};

/// The longest line read: a sign-tx response is a few kilobytes; anything longer is reported
/// and skipped without being held.
pub const MAX_LINE: usize = 1024 * 1024;

/// Where a line is: the file (its index among the files given) and its 1-based number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct At {
    pub file: u32,
    pub line: u64,
}

/// One file as it was read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileRead {
    pub path: String,
    pub lines: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// One line's bytes (without its newline), and whether a newline ended it (the last line of a
/// file cut short has none).
#[derive(Debug, Clone, Copy)]
pub struct Text<'a> {
    pub bytes: &'a [u8],
    pub ended: bool,
}

impl Text<'_> {
    /// The line as one JSON object, or what is wrong with it.
    pub fn json(&self) -> std::result::Result<Value, String> {
        match serde_json::from_slice::<Value>(self.bytes) {
            Ok(v) if v.is_object() => Ok(v),
            Ok(_) => Err("not a JSON object".into()),
            Err(e) => Err(self.not_json(&e)),
        }
    }

    /// What a parse error means for this line: cut off by the end of the file, or not JSON.
    pub fn not_json(&self, e: &serde_json::Error) -> String {
        if self.ended {
            format!("not JSON ({e})")
        } else {
            "truncated: the file ends inside this line".into()
        }
    }
}

/// Reads every file in turn and calls `each` with every line's text, or the reason it has none
/// (empty, too long). Refused (exit 2) when a file is given twice; a file that cannot be
/// opened or read stops the reading (exit 4).
pub fn read_logs(
    paths: &[PathBuf],
    mut each: impl FnMut(At, std::result::Result<Text<'_>, String>),
) -> Result<Vec<FileRead>> {
    let mut seen: Vec<(u64, u64, &Path)> = Vec::new();
    let mut out = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let file = std::fs::File::open(path).with_kind(
            Kind::Precondition,
            format!("opening the audit log {}", path.display()),
        )?;
        let meta = file.metadata().with_kind(
            Kind::Precondition,
            format!("reading the audit log {}", path.display()),
        )?;
        use std::os::unix::fs::MetadataExt as _;
        if let Some((_, _, first)) = seen
            .iter()
            .find(|(d, n, _)| (*d, *n) == (meta.dev(), meta.ino()))
        {
            return Err(Error::usage(format!(
                "--audit-log {} is {} again: give each log once",
                path.display(),
                first.display()
            )));
        }
        seen.push((meta.dev(), meta.ino(), path));
        let file_index =
            u32::try_from(i).map_err(|_| Error::usage("too many --audit-log files"))?;
        out.push(read_one(file, path, file_index, &mut each)?);
    }
    Ok(out)
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    ctx: aws_lc_rs::digest::Context,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ctx.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

fn read_one(
    file: std::fs::File,
    path: &Path,
    file_index: u32,
    each: &mut impl FnMut(At, std::result::Result<Text<'_>, String>),
) -> Result<FileRead> {
    let mut reader = BufReader::with_capacity(
        256 * 1024,
        Hashing {
            inner: file,
            ctx: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
            bytes: 0,
        },
    );
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut line = 0u64;
    loop {
        buf.clear();
        let read = next_line(&mut reader, &mut buf)
            .with_kind(Kind::Precondition, format!("reading {}", path.display()))?;
        let (ended, too_long) = match read {
            Next::End => break,
            Next::Line { ended, too_long } => (ended, too_long),
        };
        line += 1;
        let at = At {
            file: file_index,
            line,
        };
        if too_long {
            each(at, Err(format!("longer than {MAX_LINE} bytes")));
            continue;
        }
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            each(at, Err("empty".into()));
            continue;
        }
        each(at, Ok(Text { bytes: text, ended }));
    }
    let hashing = reader.into_inner();
    Ok(FileRead {
        path: path.display().to_string(),
        lines: line,
        bytes: hashing.bytes,
        sha256: hex::encode(hashing.ctx.finish().as_ref()),
    })
}

enum Next {
    End,
    /// `ended`: the line ended with a newline; `too_long`: it was skipped past [`MAX_LINE`].
    Line {
        ended: bool,
        too_long: bool,
    },
}

/// The next line into `buf` (at most [`MAX_LINE`] bytes of it are kept).
fn next_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Next> {
    let mut any = false;
    let mut too_long = false;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(if any {
                Next::Line {
                    ended: false,
                    too_long,
                }
            } else {
                Next::End
            });
        }
        any = true;
        let (take, ended) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            if buf.len() + take > MAX_LINE + 1 {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        reader.consume(take);
        if ended {
            return Ok(Next::Line { ended, too_long });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(text: &[u8]) -> Vec<(u64, std::result::Result<Value, String>)> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, text).unwrap();
        let mut out = Vec::new();
        let read = read_logs(&[p], |at, t| out.push((at.line, t.and_then(|t| t.json())))).unwrap();
        assert_eq!(read[0].bytes, text.len() as u64);
        assert_eq!(read[0].sha256, crate::digest::sha256_hex(text));
        out
    }

    #[test]
    fn bad_lines_are_named_by_number_and_good_ones_parsed() {
        let got = lines_of(b"{\"a\":1}\nnot json\n\n[1]\n{\"b\":2}\n{\"cut\":");
        assert_eq!(got.len(), 6);
        assert!(got[0].1.is_ok());
        assert!(got[1].1.as_ref().unwrap_err().starts_with("not JSON"));
        assert_eq!(got[2].1.as_ref().unwrap_err(), "empty");
        assert_eq!(got[3].1.as_ref().unwrap_err(), "not a JSON object");
        assert!(got[4].1.is_ok());
        assert_eq!(got[5].0, 6);
        assert!(got[5].1.as_ref().unwrap_err().starts_with("truncated"));
    }

    #[test]
    fn an_overlong_line_is_skipped_not_held() {
        let mut text = vec![b'x'; MAX_LINE + 10];
        text.extend_from_slice(b"\n{\"ok\":true}\n");
        let got = lines_of(&text);
        assert_eq!(got.len(), 2);
        assert!(got[0].1.as_ref().unwrap_err().starts_with("longer than"));
        assert_eq!(got[1].1.as_ref().unwrap()["ok"], true);
    }

    #[test]
    fn a_file_given_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, b"{}\n").unwrap();
        let e = read_logs(&[p.clone(), p], |_, _| {}).unwrap_err();
        assert_eq!(e.kind.exit_code(), 2);
    }
}
