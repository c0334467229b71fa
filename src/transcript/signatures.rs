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

/// The lines (other than signatures) after the last head a holder's good signature covers.
pub fn unsigned_lines(entries: &[Value], checks: &[SignatureCheck]) -> Vec<UnsignedLine> {
    let covered = checks
        .iter()
        .filter(|c| c.ok)
        .filter_map(|c| c.covers_lines)
        .max()
        .unwrap_or(0);
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
