//! The rehearsal's transcript signed by holders 1, 2 and 3 with their own keys, as witnesses
//! sign it (`custody transcript sign`), then checked as a witness checks it (`transcript verify
//! --certs --require-signatures 3`). The report is built with the same certificates.

use super::driver::run_custody;
use super::*;

/// Where the rehearsal keeps the holders' keys: the certificates a witness checks with.
pub(super) fn certs_dir(dir: &Path) -> PathBuf {
    dir.join("keys")
}

pub(super) fn signed(dir: &Path, transcript: &Path, holders: &[Holder]) -> Result<String> {
    let t = transcript.display().to_string();
    for h in pick(holders, &[0, 1, 2]) {
        let args = [
            "--transcript",
            &t,
            "transcript",
            "sign",
            "--secret-key",
            &h.secret.display().to_string(),
        ]
        .map(String::from);
        let (code, _, output) = run_custody(dir, "transcript-sign", &args)?;
        if code != 0 {
            return Err(Error::failed(format!(
                "holder {} could not sign the transcript (exit {code}):\n{}",
                h.fingerprint,
                tail(&output, 20)
            )));
        }
    }
    let args = [
        "transcript",
        "verify",
        &t,
        "--certs",
        &certs_dir(dir).display().to_string(),
        "--require-signatures",
        "3",
    ]
    .map(String::from);
    let (code, _, output) = run_custody(dir, "transcript-verify", &args)?;
    if code != 0 {
        return Err(Error::verification(format!(
            "transcript verify --certs --require-signatures 3 exited {code}:\n{}",
            tail(&output, 20)
        )));
    }
    Ok("holders 1, 2, 3 signed the head with their own keys; transcript verify --certs --require-signatures 3 passed".to_owned())
}
