//! The hash-chained ceremony record: one JSON line per step. Each line carries the previous
//! line's hash and its own hash, over the canonical JSON (sorted keys, no whitespace) of the
//! line without its `hash` field. It holds only public facts and file digests.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

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
    pub fn append(&self, step: Step) -> Result<Head> {
        let head = if self.path.exists() {
            verify_file(&self.path)?
        } else {
            Head {
                entries: 0,
                head_hash: GENESIS.to_owned(),
            }
        };
        let time = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .context("formatting the time")?;
        let facts = integers_only(step.facts);
        let files: Map<String, Value> = step
            .files
            .iter()
            .map(|(p, h)| (p.clone(), Value::String(h.clone())))
            .collect();
        let mut entry = json!({
            "v": FORMAT_VERSION,
            "seq": head.entries,
            "time": time,
            "ceremony": step.ceremony,
            "step": step.step,
            "actor": step.actor,
            "facts": facts,
            "files": files,
            "prev": head.head_hash,
        });
        let hash = entry_hash(&entry);
        entry["hash"] = Value::String(hash.clone());
        let mut line = serde_json::to_vec(&entry).with_kind(
            crate::error::Kind::Internal,
            "serializing a transcript line",
        )?;
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .context(format!("opening the transcript {}", self.path.display()))?;
        file.write_all(&line)
            .and_then(|_| file.sync_data())
            .context(format!("writing the transcript {}", self.path.display()))?;
        Ok(Head {
            entries: head.entries + 1,
            head_hash: hash,
        })
    }
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
    let mut prev = GENESIS.to_owned();
    let mut entries = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let line = line.context(format!("reading transcript {} line {n}", path.display()))?;
        let (entry, hash) = check_line(&line, entries.len() as u64, &prev).map_err(|broken| {
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
        prev = hash;
        entries.push(entry);
    }
    Ok((
        Head {
            entries: entries.len() as u64,
            head_hash: prev,
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

/// Checks one line of the chain: it is JSON with no duplicate key, it is line number `seq`
/// (0-based), it follows `prev`, and its hash holds. Returns the line and its hash.
pub fn check_line(
    line: &str,
    seq: u64,
    prev: &str,
) -> std::result::Result<(Value, String), LineBroken> {
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
    if entry.get("seq").and_then(Value::as_u64) != Some(seq) {
        return Err(bad(format!(
            "sequence number is not {seq}: a line was removed, added or moved"
        )));
    }
    if entry.get("prev").and_then(Value::as_str) != Some(prev) {
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
    Ok((entry, actual))
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
mod tests {
    use super::*;

    #[test]
    fn chain_verifies_and_detects_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let t = Transcript::at(&path);
        t.append(Step::new("init", "a", "operator", json!({"x": 1})))
            .unwrap();
        let head = t
            .append(Step::new("init", "b", "operator", json!({"y": "z"})))
            .unwrap();
        assert_eq!(verify_file(&path).unwrap().head_hash, head.head_hash);
        assert_eq!(head.entries, 2);

        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"y\":\"z\"", "\"y\":\"w\"")).unwrap();
        let err = verify_file(&path).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Verification);
        assert!(err.message.contains("line 2"), "{}", err.message);
        // a damaged transcript is never extended
        assert!(
            t.append(Step::new("init", "c", "operator", json!({})))
                .is_err()
        );
    }

    #[test]
    fn fractional_numbers_survive_the_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let t = Transcript::at(&path);
        let mut x = 0.1f64;
        for i in 0..200 {
            x = x * 1.37 + 0.013 * i as f64;
            t.append(Step::new(
                "c",
                "s",
                "op",
                json!({ "seconds": x, "ms": x * 1000.0, "n": i, "list": [x / 3.0] }),
            ))
            .unwrap();
        }
        assert_eq!(verify_file(&path).unwrap().entries, 200);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.lines().all(|l| l.contains("\"seconds\":\"")),
            "fractions are recorded as text"
        );
    }

    #[test]
    fn removed_line_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let t = Transcript::at(&path);
        for s in ["a", "b", "c"] {
            t.append(Step::new("c", s, "op", json!({}))).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        assert!(verify_file(&path).unwrap_err().message.contains("line 2"));
    }

    #[test]
    fn a_line_that_is_not_json_keeps_the_parser_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, "{not json\n").unwrap();
        let err = verify_file(&path).unwrap_err();
        assert_eq!(
            err.message,
            format!("transcript {} line 1: not JSON", path.display())
        );
        assert_eq!(err.kind, crate::error::Kind::Verification);
        assert_eq!(err.causes().count(), 1);
    }

    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        assert_eq!(duplicate_key(r#"{"a":1,"b":2}"#), None);
        assert_eq!(duplicate_key(r#"{"a":1,"a":1}"#).as_deref(), Some("a"));
        assert_eq!(
            duplicate_key(r#"{"a":1,"facts":{"x":[1,{"k":1,"k":2}]}}"#).as_deref(),
            Some("facts.x[1].k")
        );
        // the same key in sibling objects is no duplicate
        assert_eq!(duplicate_key(r#"[{"k":1},{"k":2}]"#), None);
        assert_eq!(duplicate_key(r#"{"o":{"k":1},"p":{"k":1}}"#), None);
        // an escaped spelling is the same key
        assert_eq!(duplicate_key(r#"{"a":1,"\u0061":2}"#).as_deref(), Some("a"));
        // the first duplicate in document order is named, and nothing after it is missed
        assert_eq!(
            duplicate_key(r#"{"z":{"q":1,"q":2},"z":3}"#).as_deref(),
            Some("z.q")
        );
        // a key that would rewrite the terminal is shown escaped
        assert_eq!(
            duplicate_key("{\"\\u001b[2J\":1,\"\\u001b[2J\":2}").as_deref(),
            Some("\\u{1b}[2J")
        );
        assert_eq!(duplicate_key("{not json"), None);
    }

    /// A duplicate key whose last value is the one hashed passes the chain checks; only the
    /// duplicate check refuses it. Reading, verifying and appending all refuse it.
    #[test]
    fn a_line_with_a_duplicate_key_is_refused_by_every_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let t = Transcript::at(&path);
        t.append(Step::new(
            "init",
            "a",
            "operator",
            json!({"holders": ["x"]}),
        ))
        .unwrap();
        t.append(Step::new("init", "b", "operator", json!({})))
            .unwrap();
        let good = std::fs::read_to_string(&path).unwrap();
        for (n, from, to, key) in [
            (
                1,
                "{\"actor\":",
                "{\"actor\":\"mallory\",\"actor\":",
                "actor",
            ),
            (
                1,
                "\"facts\":{\"holders\":",
                "\"facts\":{\"holders\":[\"y\"],\"holders\":",
                "facts.holders",
            ),
        ] {
            let bad = good.replacen(from, to, 1);
            assert_ne!(bad, good);
            std::fs::write(&path, &bad).unwrap();
            // serde_json alone sees nothing wrong: the hash holds for the last value
            let entry: Value = serde_json::from_str(bad.lines().next().unwrap()).unwrap();
            assert_eq!(entry_hash(&entry), entry["hash"].as_str().unwrap());

            let err = verify_file(&path).unwrap_err();
            assert_eq!(err.kind, crate::error::Kind::Verification);
            assert!(
                err.message.contains(&format!("line {n}:")),
                "{}",
                err.message
            );
            assert!(
                err.message
                    .contains(&format!("the key {key} appears twice")),
                "{}",
                err.message
            );
            assert!(read_verified(&path).is_err());
            let err = t
                .append(Step::new("init", "c", "operator", json!({})))
                .unwrap_err();
            assert_eq!(err.kind, crate::error::Kind::Verification);
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                bad,
                "nothing appended"
            );
        }
    }
}
