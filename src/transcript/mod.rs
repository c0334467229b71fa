//! The hash-chained ceremony record: one JSON line per step. Each line carries the previous
//! line's hash and its own hash, over the canonical JSON (sorted keys, no whitespace) of the
//! line without its `hash` field. It holds only public facts and file digests.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{Context as _, Error, Kind, Result};

pub const FORMAT_VERSION: u64 = 1;
pub mod authority;
pub mod checks;
pub mod lenient;
pub mod proofs;
pub mod share_sets;
pub mod signatures;
pub mod snapshots;
pub mod timeline;

/// The `prev` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How far a line's time may lie after the time of reading: the clocks of the machine that
/// wrote it and of the one that reads it may differ by this much. A line dated later is refused.
pub const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// One step to record.
#[derive(Debug, Clone)]
pub struct Step {
    pub ceremony: String,
    pub step: String,
    pub actor: String,
    pub facts: Value,
    /// Files written by the step: path → sha256.
    pub files: Vec<(String, String)>,
}

impl Step {
    pub fn new(ceremony: &str, step: &str, actor: &str, facts: Value) -> Step {
        Step {
            ceremony: ceremony.into(),
            step: step.into(),
            actor: actor.into(),
            facts,
            files: Vec::new(),
        }
    }
    pub fn file(mut self, path: &Path, sha256: &str) -> Step {
        self.files
            .push((path.display().to_string(), sha256.to_owned()));
        self
    }
}

/// The head of a verified transcript.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Head {
    pub entries: u64,
    pub head_hash: String,
}

pub struct Transcript {
    path: PathBuf,
}

impl Transcript {
    pub fn at(path: impl Into<PathBuf>) -> Transcript {
        Transcript { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one step after checking the whole chain, so a damaged record is never extended.
    /// The file is locked from the check to the write, so two custody processes appending at
    /// once write one line after the other; the line's time is taken under the lock, and a
    /// clock that reads earlier than the last line's time is refused (line times never go
    /// backwards).
    pub fn append(&self, step: Step) -> Result<Head> {
        let facts = integers_only(step.facts);
        let files: Map<String, Value> = step
            .files
            .iter()
            .map(|(p, h)| (p.clone(), Value::String(h.clone())))
            .collect();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .context(format!("opening the transcript {}", self.path.display()))?;
        // released when `file` is closed
        file.lock()
            .context(format!("locking the transcript {}", self.path.display()))?;
        let (head, entries) = read_verified(&self.path)?;
        let now = OffsetDateTime::now_utc();
        if let Some(last) = entries.last() {
            let at = line_time(last).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            if now < at {
                return Err(Error::precondition(format!(
                    "this machine's clock reads {}, before the time of the transcript's last \
                     line ({}, line {}): line times never go backwards, so nothing is recorded",
                    rfc3339(now),
                    crate::ui::escape(last["time"].as_str().unwrap_or_default()),
                    entries.len()
                ))
                .hint(
                    "set this machine's clock right (or wait until it passes that time): the \
                     transcript was last written by a machine whose clock was ahead of this one",
                ));
            }
        }
        let mut entry = json!({
            "v": FORMAT_VERSION,
            "seq": head.entries,
            "time": rfc3339(now),
            "ceremony": step.ceremony,
            "step": step.step,
            "actor": step.actor,
            "facts": facts,
            "files": files,
            "prev": head.head_hash,
        });
        // custody never writes a line it would refuse to read
        if let Some(why) = signatures::shape_problem(&entry) {
            return Err(Error::internal(format!(
                "refusing to write a signature line that is not one: {why}"
            )));
        }
        let hash = entry_hash(&entry);
        entry["hash"] = Value::String(hash.clone());
        let mut line = serde_json::to_vec(&entry).with_kind(
            crate::error::Kind::Internal,
            "serializing a transcript line",
        )?;
        line.push(b'\n');
        file.write_all(&line)
            .and_then(|_| file.sync_data())
            .context(format!("writing the transcript {}", self.path.display()))?;
        Ok(Head {
            entries: head.entries + 1,
            head_hash: hash,
        })
    }
}

/// A time as the transcript writes it (RFC 3339, UTC, with the clock's fraction of a second).
fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .expect("a time from the system clock formats as RFC 3339")
}

/// A line's `time`, when it is an RFC 3339 time.
pub fn line_time(entry: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(entry["time"].as_str()?, &Rfc3339).ok()
}

/// Fractional numbers become text: a float's decimal form need not survive a parse and a
/// re-serialization bit for bit (nor another tool's), and the hash is over that form.
fn integers_only(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => Value::String(n.to_string()),
        Value::Array(a) => Value::Array(a.into_iter().map(integers_only).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, integers_only(v))).collect())
        }
        other => other,
    }
}

/// The hash of an entry: sha256 over its canonical JSON without `hash`.
pub fn entry_hash(entry: &Value) -> String {
    let mut e = entry.clone();
    if let Some(obj) = e.as_object_mut() {
        obj.remove("hash");
    }
    // serde_json's Map is a BTreeMap (no preserve_order), so keys serialize sorted.
    crate::digest::sha256_hex(&serde_json::to_vec(&e).expect("JSON values serialize"))
}

/// Checks every line of the chain. Any change, removal, reordering or insertion is a
/// verification failure naming the line.
pub fn verify_file(path: &Path) -> Result<Head> {
    read_verified(path).map(|(head, _)| head)
}

/// Checks every line of the chain, as [`verify_file`], and returns the lines as they were
/// checked (one read of the file, so what the caller looks at is what was verified).
///
/// A line in which one object has the same key twice, at any depth, is refused: JSON readers
/// differ on which of the values counts (serde_json keeps the last, others the first), so the
/// hash could cover one reading while a witness's tool shows the other.
pub fn read_verified(path: &Path) -> Result<(Head, Vec<Value>)> {
    let file = std::fs::File::open(path).with_kind(
        Kind::Usage,
        format!("transcript {}: cannot read it", path.display()),
    )?;
    let mut chain = Chain::new(OffsetDateTime::now_utc());
    let mut entries = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let line = line.context(format!("reading transcript {} line {n}", path.display()))?;
        let entry = chain.next(&line).map_err(|broken| {
            let err = Error::verification(format!(
                "transcript {} line {n}: {}",
                path.display(),
                broken.why
            ));
            match broken.cause {
                Some(cause) => err.caused_by(cause),
                None => err,
            }
        })?;
        entries.push(entry);
    }
    Ok((
        Head {
            entries: entries.len() as u64,
            head_hash: chain.head().to_owned(),
        },
        entries,
    ))
}

/// Why one line does not check.
#[derive(Debug)]
pub struct LineBroken {
    pub why: String,
    /// The JSON parser's error, for a line that is not JSON.
    pub cause: Option<serde_json::Error>,
}

/// The chain as checked so far, line by line: what the next line must follow. Every reader
/// (the strict one, [`read_verified`], and the lenient one of the report) checks each line
/// through it, against one time of reading.
#[derive(Debug, Clone)]
pub struct Chain {
    now: OffsetDateTime,
    seq: u64,
    head: String,
    last_time: Option<(OffsetDateTime, String)>,
}

impl Chain {
    /// An empty chain, read at `now`.
    pub fn new(now: OffsetDateTime) -> Chain {
        Chain {
            now,
            seq: 0,
            head: GENESIS.to_owned(),
            last_time: None,
        }
    }

    /// The hash after the last line that checked (the genesis hash before any).
    pub fn head(&self) -> &str {
        &self.head
    }

    /// Checks the next line: it is JSON with no duplicate key, it is line number `seq` (0-based),
    /// it follows the head, its hash holds, a signature line carries nothing but its signature
    /// ([`signatures::shape_problem`]), and its time is RFC 3339, not before the previous
    /// line's and not after the time of reading by more than [`CLOCK_SKEW`]. Returns the line;
    /// a line that does not check leaves the chain as it was.
    pub fn next(&mut self, line: &str) -> std::result::Result<Value, LineBroken> {
        let bad = |why: String| LineBroken { why, cause: None };
        let entry: Value = serde_json::from_str(line).map_err(|e| LineBroken {
            why: "not JSON".into(),
            cause: Some(e),
        })?;
        if let Some(key) = duplicate_key(line) {
            return Err(bad(format!(
                "the key {key} appears twice in one object; JSON readers differ on which value \
                 counts, so the line is refused"
            )));
        }
        let stated = entry
            .get("hash")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("has no hash".into()))?;
        if entry.get("seq").and_then(Value::as_u64) != Some(self.seq) {
            return Err(bad(format!(
                "sequence number is not {}: a line was removed, added or moved",
                self.seq
            )));
        }
        if entry.get("prev").and_then(Value::as_str) != Some(self.head.as_str()) {
            return Err(bad(
                "does not follow the previous line (prev hash differs)".into()
            ));
        }
        let actual = entry_hash(&entry);
        if actual != stated {
            return Err(bad(format!(
                "content changed: its hash is {actual}, the line says {stated}"
            )));
        }
        if let Some(why) = signatures::shape_problem(&entry) {
            return Err(bad(why));
        }
        let at = self.check_time(&entry).map_err(bad)?;
        self.seq += 1;
        self.head = actual;
        self.last_time = Some(at);
        Ok(entry)
    }

    /// The line's time, when it is one the chain allows next.
    fn check_time(&self, entry: &Value) -> std::result::Result<(OffsetDateTime, String), String> {
        let text = entry["time"]
            .as_str()
            .ok_or_else(|| "has no time".to_owned())?;
        let shown = crate::ui::escape(text);
        let at = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|_| format!("its time {shown} is not an RFC 3339 time"))?;
        if let Some((last, last_text)) = &self.last_time
            && at < *last
        {
            return Err(format!(
                "its time {shown} is before the previous line's ({}): line times never go \
                 backwards",
                crate::ui::escape(last_text)
            ));
        }
        if at > self.now + CLOCK_SKEW {
            return Err(format!(
                "its time {shown} is after the time of reading ({}) by more than the {} minutes \
                 two clocks may differ: a line from the future is refused",
                rfc3339(self.now),
                CLOCK_SKEW.whole_minutes()
            ));
        }
        Ok((at, text.to_owned()))
    }
}

/// The first key that appears twice in one object of the JSON text `line`, at any depth, shown
/// with where it is (`facts.holders[0].fingerprint`; keys escaped as text from others). None
/// when every object's keys are distinct, or when `line` is not JSON.
pub fn duplicate_key(line: &str) -> Option<String> {
    use serde::Deserialize as _;
    let mut de = serde_json::Deserializer::from_str(line);
    let Dups(path) = Dups::deserialize(&mut de).ok()?;
    let mut path = path?;
    path.reverse();
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&crate::ui::escape(&k));
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    Some(out)
}

enum Seg {
    Key(String),
    Index(usize),
}

/// The result of walking one JSON value: the path (innermost first) of its first duplicate key.
struct Dups(Option<Vec<Seg>>);

impl<'de> serde::Deserialize<'de> for Dups {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Dups, D::Error> {
        d.deserialize_any(DupsVisitor)
    }
}

struct DupsVisitor;

impl<'de> serde::de::Visitor<'de> for DupsVisitor {
    type Value = Dups;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Dups, E> {
        Ok(Dups(None))
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Dups, E> {
        Ok(Dups(None))
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Dups, E> {
        Ok(Dups(None))
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Dups, E> {
        Ok(Dups(None))
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<Dups, E> {
        Ok(Dups(None))
    }
    fn visit_unit<E>(self) -> std::result::Result<Dups, E> {
        Ok(Dups(None))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Dups, A::Error> {
        let mut first = None;
        let mut i = 0;
        while let Some(Dups(inner)) = seq.next_element()? {
            if first.is_none()
                && let Some(mut path) = inner
            {
                path.push(Seg::Index(i));
                first = Some(path);
            }
            i += 1;
        }
        Ok(Dups(first))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Dups, A::Error> {
        let mut seen = std::collections::BTreeSet::new();
        let mut first = None;
        // Every entry is read, even after a duplicate, so the parser ends where JSON says.
        while let Some(key) = map.next_key::<String>()? {
            let Dups(inner) = map.next_value()?;
            if first.is_some() {
                continue;
            }
            if seen.contains(&key) {
                first = Some(vec![Seg::Key(key)]);
            } else if let Some(mut path) = inner {
                path.push(Seg::Key(key.clone()));
                first = Some(path);
                seen.insert(key);
            } else {
                seen.insert(key);
            }
        }
        Ok(Dups(first))
    }
}

/// Every entry of the transcript at `path`, after checking the whole chain (a broken chain is
/// a verification failure, as for [`verify_file`]).
pub fn read_entries(path: &Path) -> Result<Vec<Value>> {
    verify_file(path)?;
    let text = std::fs::read_to_string(path).with_kind(
        Kind::Usage,
        format!("transcript {}: cannot read it", path.display()),
    )?;
    text.lines()
        .map(|l| {
            serde_json::from_str(l).with_kind(
                Kind::Verification,
                format!(
                    "transcript {}: a line changed while it was read",
                    path.display()
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
