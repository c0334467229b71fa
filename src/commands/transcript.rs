//! `custody transcript verify | sign`: the chain, the head hash witnesses write down, and the
//! holders' OpenPGP signatures over it.

use std::collections::BTreeMap;
use std::path::Path;

use sequoia_openpgp as openpgp;

use openpgp::Cert;
use openpgp::cert::CertParser;
use openpgp::parse::Parse;
use serde_json::{Value, json};

use crate::error::{Context as _, Error, Kind, Result};
use crate::flows::Ctx;
use crate::pgp::SecretKeyFile;
use crate::transcript::{Step, verify_file};

/// What a holder signs: the head hash, with its context.
pub fn signed_text(head: &str) -> String {
    format!("custody transcript head {head}\n")
}

pub fn sign(ctx: &Ctx, key_file: &Path, passphrase_file: Option<&Path>) -> Result<()> {
    let head = verify_file(ctx.transcript.path())?;
    if head.entries == 0 {
        return Err(Error::precondition(format!(
            "{} is empty: there is nothing to sign",
            ctx.transcript.path().display()
        )));
    }
    let key = SecretKeyFile::load(key_file)?;
    let passphrase = passphrase_file
        .map(crate::flows::shares::read_passphrase_file)
        .transpose()?;
    let signature = crate::pgp::sign::sign_detached(
        &key,
        passphrase.as_ref(),
        signed_text(&head.head_hash).as_bytes(),
    )?;
    let signature = String::from_utf8(signature)
        .map_err(|_| Error::failed("the armored signature is not text"))?;
    let fpr = key.fingerprint();
    let new_head = ctx.transcript.append(Step::new(
        "witness",
        "sign",
        &format!("holder {fpr}"),
        json!({ "signer": fpr, "signed_head": head.head_hash, "signature": signature }),
    ))?;
    ctx.ui.result(
        &format!("{fpr} signed head {}.\nNew head: {}", head.head_hash, new_head.head_hash),
        json!({ "signer": fpr, "signed_head": head.head_hash, "transcript_head": new_head.head_hash }),
    );
    Ok(())
}

fn load_certs(dir: &Path) -> Result<BTreeMap<String, Cert>> {
    let mut out = BTreeMap::new();
    let entries =
        std::fs::read_dir(dir).with_kind(Kind::Usage, format!("--certs {}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(parser) = CertParser::from_bytes(&bytes) else {
            continue;
        };
        for cert in parser.flatten() {
            out.insert(
                cert.fingerprint().to_hex(),
                cert.strip_secret_key_material(),
            );
        }
    }
    Ok(out)
}

#[derive(Debug, serde::Serialize)]
struct SignatureCheck {
    line: usize,
    signer: String,
    user_id: String,
    signed_head: String,
    ok: bool,
    problem: Option<String>,
}

pub fn verify(ctx: &Ctx, file: &Path, certs_dir: Option<&Path>) -> Result<()> {
    let head = verify_file(file)?;
    let text = std::fs::read_to_string(file).context(format!("{}", file.display()))?;
    let entries: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let holders: Vec<String> = entries
        .iter()
        .filter(|e| e["ceremony"] == "init" && e["step"] == "sys/init")
        .flat_map(|e| {
            e["facts"]["holders"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|h| h["fingerprint"].as_str().map(str::to_owned))
        .collect();
    let certs = match certs_dir {
        Some(d) => Some(load_certs(d)?),
        None => None,
    };
    let mut checks = Vec::new();
    for (i, e) in entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e["ceremony"] == "witness" && e["step"] == "sign")
    {
        let facts = &e["facts"];
        let signer = facts["signer"].as_str().unwrap_or_default().to_owned();
        let signed_head = facts["signed_head"].as_str().unwrap_or_default().to_owned();
        let mut check = SignatureCheck {
            line: i + 1,
            signer: signer.clone(),
            user_id: String::new(),
            signed_head: signed_head.clone(),
            ok: false,
            problem: None,
        };
        let problem = if e["prev"].as_str() != Some(signed_head.as_str()) {
            Some(
                "it signs an older head, not the transcript as it stood when it was added"
                    .to_owned(),
            )
        } else if !holders.contains(&signer) {
            Some("the signer is not one of the holders recorded at init".to_owned())
        } else if let Some(certs) = &certs {
            match certs.get(&signer) {
                None => Some(format!("no certificate {signer} in --certs")),
                Some(cert) => {
                    check.user_id = cert
                        .userids()
                        .next()
                        .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
                        .unwrap_or_default();
                    let sig = facts["signature"].as_str().unwrap_or_default();
                    if crate::pgp::sign::verify_detached(
                        cert,
                        sig.as_bytes(),
                        signed_text(&signed_head).as_bytes(),
                    ) {
                        None
                    } else {
                        Some("the signature does not verify with that certificate".to_owned())
                    }
                }
            }
        } else {
            Some("not checked: give --certs DIR".to_owned())
        };
        check.ok = problem.is_none();
        check.problem = problem;
        checks.push(check);
    }
    let mut lines = vec![format!(
        "{}: {} entries, chain intact.",
        file.display(),
        head.entries
    )];
    for c in &checks {
        lines.push(match &c.problem {
            None => format!(
                "line {}: {} {} signed head {} — good",
                c.line, c.signer, c.user_id, c.signed_head
            ),
            Some(p) => format!(
                "line {}: {} signed head {} — {p}",
                c.line, c.signer, c.signed_head
            ),
        });
    }
    lines.push(format!("Head hash (write this down): {}", head.head_hash));
    let bad = checks.iter().filter(|c| !c.ok && certs.is_some()).count();
    ctx.ui.result(
        &lines.join("\n"),
        json!({ "file": file.display().to_string(), "entries": head.entries, "head_hash": head.head_hash, "signatures": checks, "ok": bad == 0 }),
    );
    if bad > 0 {
        return Err(Error::verification(format!(
            "{bad} signature(s) in the transcript do not check out (see above)"
        )));
    }
    Ok(())
}
