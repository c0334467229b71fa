//! Reading a transcript that may be damaged: every line is read, the chain is checked line by
//! line as [`super::read_verified`] checks it (the same [`Chain`]: hashes, a signature line's
//! shape, times), and where it first breaks is kept with why; the lines from there on are still
//! returned, marked untrusted, so a report can show them. Nothing here decides anything from an
//! untrusted line.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use time::OffsetDateTime;

use super::Chain;
use crate::error::{Context as _, Kind, Result};

/// One line as read.
#[derive(Debug, Clone)]
pub struct ReadLine {
    /// 1-based.
    pub number: usize,
    /// The line's JSON, or `Null` when it is not JSON.
    pub entry: Value,
    /// Whether the chain holds up to and including this line.
    pub trusted: bool,
}

/// Where the chain first fails to check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// 1-based number of the first line that does not check.
    pub line: usize,
    pub why: String,
}

#[derive(Debug, Clone)]
pub struct LenientRead {
    pub lines: Vec<ReadLine>,
    pub broken: Option<Break>,
    /// The hash after the last trusted line (the genesis hash when none is).
    pub trusted_head: String,
}

impl LenientRead {
    /// Every line's JSON, in order, with `Null` for lines that are not JSON: indices match
    /// line numbers minus one.
    pub fn entries(&self) -> Vec<Value> {
        self.lines.iter().map(|l| l.entry.clone()).collect()
    }

    pub fn trusted_count(&self) -> usize {
        self.lines.iter().take_while(|l| l.trusted).count()
    }
}

/// Reads the transcript at `path` whatever state its chain is in (only an unreadable file is an
/// error). Text that is not UTF-8 is read lossily and fails its line's check.
pub fn read_lenient(path: &Path) -> Result<LenientRead> {
    let bytes = std::fs::read(path).with_kind(
        Kind::Usage,
        format!("transcript {}: cannot read it", path.display()),
    )?;
    Ok(check_text(
        &String::from_utf8_lossy(&bytes),
        OffsetDateTime::now_utc(),
    ))
}

/// [`read_lenient`] over text already read, at the time of reading `now`.
pub fn check_text(text: &str, now: OffsetDateTime) -> LenientRead {
    let mut chain = Chain::new(now);
    let mut broken: Option<Break> = None;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        let (entry, trusted) = if broken.is_some() {
            (serde_json::from_str(line).unwrap_or(Value::Null), false)
        } else {
            match chain.next(line) {
                Ok(entry) => (entry, true),
                Err(b) => {
                    broken = Some(Break {
                        line: number,
                        why: b.why,
                    });
                    (serde_json::from_str(line).unwrap_or(Value::Null), false)
                }
            }
        };
        lines.push(ReadLine {
            number,
            entry,
            trusted,
        });
    }
    LenientRead {
        lines,
        broken,
        trusted_head: chain.head().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::{Step, Transcript, read_verified};
    use serde_json::json;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn three_lines() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let t = Transcript::at(&path);
        for s in ["a", "b", "c"] {
            t.append(Step::new("c", s, "op", json!({ "step": s })))
                .unwrap();
        }
        (dir, path)
    }

    #[test]
    fn an_intact_chain_is_all_trusted_and_agrees_with_the_strict_reader() {
        let (_d, path) = three_lines();
        let read = read_lenient(&path).unwrap();
        let (head, entries) = read_verified(&path).unwrap();
        assert_eq!(read.broken, None);
        assert_eq!(read.trusted_count(), 3);
        assert_eq!(read.trusted_head, head.head_hash);
        assert_eq!(read.entries(), entries);
    }

    #[test]
    fn a_changed_fact_breaks_at_its_line_and_the_rest_is_kept_untrusted() {
        let (_d, path) = three_lines();
        let text = std::fs::read_to_string(&path).unwrap();
        let read = check_text(
            &text.replacen("\"step\":\"b\"}", "\"step\":\"B\"}", 1),
            now(),
        );
        let broken = read.broken.clone().unwrap();
        assert_eq!(broken.line, 2);
        assert!(broken.why.contains("content changed"), "{}", broken.why);
        assert_eq!(read.lines.len(), 3);
        assert_eq!(
            read.lines.iter().map(|l| l.trusted).collect::<Vec<_>>(),
            [true, false, false]
        );
        assert_eq!(read.lines[2].entry["step"], "c");
        assert_eq!(read.trusted_head, read.lines[0].entry["hash"]);
    }

    #[test]
    fn a_removed_line_and_a_line_that_is_not_json_are_named() {
        let (_d, path) = three_lines();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let read = check_text(&format!("{}\n{}\n", lines[0], lines[2]), now());
        assert_eq!(read.broken.unwrap().line, 2);

        let read = check_text(&format!("{}\n{{not json\n{}\n", lines[0], lines[1]), now());
        let broken = read.broken.unwrap();
        assert_eq!((broken.line, broken.why.as_str()), (2, "not JSON"));
        assert_eq!(read.lines[1].entry, Value::Null);
        assert_eq!(read.lines[2].entry["step"], "b");
    }

    #[test]
    fn an_empty_transcript_is_intact_and_empty() {
        let read = check_text("", now());
        assert!(read.lines.is_empty() && read.broken.is_none());
        assert_eq!(read.trusted_head, crate::transcript::GENESIS);
    }
}
