//! The holders' signatures (`witness`/`sign` lines) over a transcript's head: which head each
//! signs, whether its signer is a holder recorded at init, whether it verifies, which count
//! toward a quorum of signers, and which lines no good signature covers. Pure: the caller reads
//! the lines and says how a signature is checked against a holder's certificate.

use serde::Serialize;
use serde_json::Value;

/// What a holder signs: the head hash, with its context.
pub fn signed_text(head: &str) -> String {
    format!("custody transcript head {head}\n")
}

/// What the caller's certificates say of one signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertCheck {
    /// No certificate for the signer.
    NoCert,
    /// The signature verifies with the signer's certificate (its first user id).
    Good { user_id: String },
    /// It does not.
    Bad { user_id: String },
}

/// Checks `signature` (armored) over `text` with the certificate of `signer`.
pub type Verifier<'a> = &'a dyn Fn(&str, &[u8], &[u8]) -> CertCheck;

#[derive(Debug, Clone, Serialize)]
pub struct SignatureCheck {
    pub line: usize,
    pub signer: String,
    pub user_id: String,
    pub signed_head: String,
    pub ok: bool,
    pub problem: Option<String>,
    /// The line is no honest signature of this transcript: it signs no head it stood on, or
    /// its signature does not verify. Always a failure.
    pub forged: bool,
    /// The signed head is the head after this many lines (it covers lines 1 to this); None
    /// when it is no head of this transcript before the signature's line.
    pub covers_lines: Option<usize>,
    /// Counts toward --require-signatures: it checks out, its head covers every line that is
    /// not a signature, and it is its holder's first such signature.
    pub counted: bool,
    pub not_counted: Option<String>,
}

/// A line no holder's good signature covers.
#[derive(Debug, Clone, Serialize)]
pub struct UnsignedLine {
    pub line: usize,
    pub ceremony: String,
    pub step: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CountedSigner {
    pub fingerprint: String,
    pub user_id: String,
    pub line: usize,
}

/// The problem text of a signature that was not checked for want of certificates.
pub const NOT_CHECKED: &str = "not checked: give --certs DIR";

pub fn is_signature(e: &Value) -> bool {
    e["ceremony"] == "witness" && e["step"] == "sign"
}

/// The fields every line has: the chain's, written by [`super::Transcript::append`].
const LINE_FIELDS: [&str; 10] = [
    "v", "seq", "time", "ceremony", "step", "actor", "facts", "files", "prev", "hash",
];

/// All a signature line's facts hold.
const SIGNATURE_FACTS: [&str; 3] = ["signer", "signed_head", "signature"];

const ARMOR: &str = "-----BEGIN PGP SIGNATURE-----";

/// Why `e`, a signature line (`witness`/`sign`), is not one as `transcript sign` writes it: the
/// chain's fields, an actor `holder <signer>`, no files, and facts that hold only the signer's
/// fingerprint, the signed head and the armored signature. A signature covers only the head it
/// signs, so anything else on its line would be a fact no one signed shown beside a signature:
/// it is refused. None for a line of that shape, and for every line that is no signature.
pub fn shape_problem(e: &Value) -> Option<String> {
    if !is_signature(e) {
        return None;
    }
    let esc = crate::ui::escape;
    let also = |field: String| {
        Some(format!(
            "a signature line (witness sign) carries only its signer, signed head and signature; \
             it also has {field}, which no signature covers"
        ))
    };
    let line = e.as_object()?;
    if let Some(k) = line.keys().find(|k| !LINE_FIELDS.contains(&k.as_str())) {
        return also(esc(k));
    }
    let Some(facts) = e["facts"].as_object() else {
        return Some("a signature line's facts are not an object".to_owned());
    };
    if let Some(k) = facts
        .keys()
        .find(|k| !SIGNATURE_FACTS.contains(&k.as_str()))
    {
        return also(format!("facts.{}", esc(k)));
    }
    match e.get("files").map(Value::as_object) {
        None => {}
        Some(Some(files)) => {
            if let Some(k) = files.keys().next() {
                return also(format!("files.{}", esc(k)));
            }
        }
        Some(None) => return also("files that are not an empty object".to_owned()),
    }
    let signer = facts.get("signer").and_then(Value::as_str).unwrap_or("");
    if !matches!(signer.len(), 40 | 64)
        || !signer
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
    {
        return Some(format!(
            "a signature line's signer {} is not a key fingerprint (40 or 64 upper-case hex \
             digits)",
            esc(signer)
        ));
    }
    let head = facts
        .get("signed_head")
        .and_then(Value::as_str)
        .unwrap_or("");
    if head.len() != 64 || !head.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Some(format!(
            "a signature line's signed head {} is not a head hash (64 lower-case hex digits)",
            esc(head)
        ));
    }
    let armored = facts
        .get("signature")
        .and_then(Value::as_str)
        .is_some_and(|s| s.starts_with(ARMOR));
    if !armored {
        return Some("a signature line's signature is not an armored OpenPGP signature".to_owned());
    }
    let actor = e["actor"].as_str().unwrap_or_default();
    if actor != format!("holder {signer}") {
        return Some(format!(
            "a signature line's actor is {}, not `holder {signer}`: it names only its signer",
            esc(actor)
        ));
    }
    None
}

fn text_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// Whether the transcript has an init step (or the adoption of a cluster initialized without
/// custody, which stands for it), and the holders' fingerprints it names, in order.
pub fn init_holders(entries: &[Value]) -> (bool, Vec<String>) {
    let inits = || {
        entries
            .iter()
            .filter(|e| super::share_sets::is_first_set(e))
    };
    let mut holders: Vec<String> = Vec::new();
    for h in inits()
        .flat_map(|e| {
            e["facts"]["holders"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|h| h["fingerprint"].as_str().map(str::to_owned))
    {
        if !holders.contains(&h) {
            holders.push(h);
        }
    }
    (inits().next().is_some(), holders)
}

/// Each signature line checked: the head it signs, its signer among the init holders, and (with
/// a verifier) the signature itself. `entries[i]` is line `i + 1`.
pub fn check_signatures(
    entries: &[Value],
    holders: &[String],
    verifier: Option<Verifier>,
) -> Vec<SignatureCheck> {
    let mut checks = Vec::new();
    for (i, e) in entries.iter().enumerate().filter(|(_, e)| is_signature(e)) {
        let facts = &e["facts"];
        let signer = text_of(&facts["signer"]);
        let signed_head = text_of(&facts["signed_head"]);
        // entries[j]'s hash is the head after line j + 1
        let covers_lines = entries[..i]
            .iter()
            .position(|earlier| earlier["hash"].as_str() == Some(signed_head.as_str()))
            .map(|j| j + 1);
        let mut check = SignatureCheck {
            line: i + 1,
            signer: signer.clone(),
            user_id: String::new(),
            signed_head: signed_head.clone(),
            ok: false,
            problem: None,
            forged: false,
            covers_lines,
            counted: false,
            not_counted: None,
        };
        let problem = if e["prev"].as_str() != Some(signed_head.as_str()) {
            check.forged = true;
            Some(if covers_lines.is_none() {
                "it signs a head that is not one of this transcript's heads before it".to_owned()
            } else {
                "it signs an older head, not the transcript as it stood when it was added"
                    .to_owned()
            })
        } else if !holders.contains(&signer) {
            Some("the signer is not one of the holders recorded at init".to_owned())
        } else if let Some(verify) = verifier {
            let sig = facts["signature"].as_str().unwrap_or_default();
            match verify(
                &signer,
                sig.as_bytes(),
                signed_text(&signed_head).as_bytes(),
            ) {
                CertCheck::NoCert => Some(format!("no certificate {signer} in --certs")),
                CertCheck::Good { user_id } => {
                    check.user_id = user_id;
                    None
                }
                CertCheck::Bad { user_id } => {
                    check.user_id = user_id;
                    check.forged = true;
                    Some("the signature does not verify with that certificate".to_owned())
                }
            }
        } else {
            Some(NOT_CHECKED.to_owned())
        };
        check.ok = problem.is_none();
        check.problem = problem;
        checks.push(check);
    }
    checks
}

/// Which signatures count: good ones whose head covers every line, once per holder. Marks each
/// check; the holders counted.
pub fn count(entries: &[Value], checks: &mut [SignatureCheck]) -> Vec<CountedSigner> {
    // The last line that is not itself a signature: a counted signature's head covers it.
    let last_content = entries
        .iter()
        .rposition(|e| !is_signature(e))
        .map_or(0, |i| i + 1);
    let mut counted: Vec<CountedSigner> = Vec::new();
    for c in checks.iter_mut() {
        let covers = c.covers_lines.unwrap_or(0);
        c.not_counted = if let Some(p) = &c.problem {
            Some(p.clone())
        } else if covers < last_content {
            let first = entries[covers..]
                .iter()
                .position(|e| !is_signature(e))
                .map_or(last_content, |j| covers + j + 1);
            let e = &entries[first - 1];
            Some(format!(
                "its head covers lines 1 to {covers} only, not line {first} ({} {}) added after it",
                text_of(&e["ceremony"]),
                text_of(&e["step"])
            ))
        } else if let Some(earlier) = counted.iter().find(|s| s.fingerprint == c.signer) {
            Some(format!(
                "this holder is already counted (line {})",
                earlier.line
            ))
        } else {
            counted.push(CountedSigner {
                fingerprint: c.signer.clone(),
                user_id: c.user_id.clone(),
                line: c.line,
            });
            None
        };
        c.counted = c.not_counted.is_none();
    }
    counted
}

/// The signatures of one transcript judged: each checked, the holders counted toward
/// `--require-signatures`, how many lines a good signature covers, and the lines it does not.
#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    pub signatures: Vec<SignatureCheck>,
    pub counted_signers: Vec<CountedSigner>,
    /// Lines 1 to this are signed ([`signed_lines`]).
    pub signed_lines: usize,
    pub unsigned_lines: Vec<UnsignedLine>,
}

impl Judged {
    /// A signature that is a forgery or a sign of an edited file: always a failure.
    pub fn forged(&self) -> usize {
        self.signatures.iter().filter(|c| c.forged).count()
    }
}

/// [`check_signatures`], [`count`], [`signed_lines`] and [`unsigned_lines`] of one transcript,
/// as `transcript verify` and `holders` judge it.
pub fn judge(entries: &[Value], holders: &[String], verifier: Option<Verifier>) -> Judged {
    let mut signatures = check_signatures(entries, holders, verifier);
    let counted_signers = count(entries, &mut signatures);
    Judged {
        signed_lines: signed_lines(&signatures),
        unsigned_lines: unsigned_lines(entries, &signatures),
        counted_signers,
        signatures,
    }
}

/// How many lines, from the first, a holder's signature that checks out covers: line `n` is
/// signed when `n` is at most this. A fact from any later line is unsigned (no good signature
/// covers it), as is every line when no signature was checked.
pub fn signed_lines(checks: &[SignatureCheck]) -> usize {
    checks
        .iter()
        .filter(|c| c.ok)
        .filter_map(|c| c.covers_lines)
        .max()
        .unwrap_or(0)
}

/// The lines (other than signatures) after the last head a holder's good signature covers.
pub fn unsigned_lines(entries: &[Value], checks: &[SignatureCheck]) -> Vec<UnsignedLine> {
    let covered = signed_lines(checks);
    entries
        .iter()
        .enumerate()
        .skip(covered)
        .filter(|(_, e)| !is_signature(e))
        .map(|(i, e)| UnsignedLine {
            line: i + 1,
            ceremony: text_of(&e["ceremony"]),
            step: text_of(&e["step"]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn an_adoption_names_the_holders_as_init_does() {
        let holders = json!([{"fingerprint": "A"}, {"fingerprint": "B"}]);
        for (ceremony, step) in [("init", "sys/init"), ("adopt", "adopt")] {
            let entries =
                [json!({"ceremony": ceremony, "step": step, "facts": {"holders": holders}})];
            assert_eq!(
                super::init_holders(&entries),
                (true, vec!["A".to_owned(), "B".to_owned()])
            );
        }
        let other = [json!({"ceremony": "adopt", "step": "check", "facts": {"holders": holders}})];
        assert_eq!(super::init_holders(&other), (false, vec![]));
    }
}
