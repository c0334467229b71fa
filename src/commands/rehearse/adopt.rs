//! Adopting a cluster initialized without custody, in the rehearsal: a 1-node OpenBao initialized
//! by its own CLI (`bao operator init -pgp-keys`, the holders' keys as base64 of their binary
//! certificates, as the Vault docs show), recorded by ceremonies/adopt.toml in a transcript of its
//! own, then unsealed by three holders with their shares exactly as the CLI printed them.

use super::driver::{proven_holders, run_custody};
use super::*;

pub(super) fn adopted(
    dir: &Path,
    bao: &Path,
    holders: &[Holder],
    operator: &Holder,
) -> Result<String> {
    let mut hand = LocalCluster::start(ClusterSpec {
        dir: Some(dir.join("by-hand")),
        ..ClusterSpec::raft("rehearsal-by-hand", 1, bao.to_owned())
    })?;
    let keys = dir.join("by-hand-keys");
    std::fs::create_dir_all(&keys).context(format!("{}", keys.display()))?;
    let b64 = |name: &str, h: &Holder| -> Result<PathBuf> {
        let file = keys.join(format!("{name}.b64"));
        let cert = crate::pgp::load_holder_cert(&h.public)?;
        std::fs::write(&file, cert.vault_encoding()?).context(format!("{}", file.display()))?;
        Ok(file)
    };
    let pgp_keys = holders
        .iter()
        .enumerate()
        .map(|(i, h)| b64(&format!("holder{}", i + 1), h))
        .collect::<Result<Vec<_>>>()?;
    let init = hand.operator_init_pgp(THRESHOLD, &pgp_keys, &b64("operator", operator)?)?;
    let printed: Vec<&str> = init["unseal_keys_b64"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k.as_str())
        .collect();
    if printed.len() != holders.len() {
        return Err(Error::failed(format!(
            "bao operator init printed {} shares for {} holders",
            printed.len(),
            holders.len()
        )));
    }
    let shares = dir.join("by-hand-shares");
    std::fs::create_dir_all(&shares).context(format!("{}", shares.display()))?;
    let share_of = |i: usize| shares.join(format!("{}.share.b64", holders[i].fingerprint));
    for (i, line) in printed.iter().enumerate() {
        write_private(&share_of(i), format!("{line}\n").as_bytes(), false)?;
    }

    let transcript = dir.join("by-hand-transcript.jsonl");
    let globals = ceremony_globals(&hand.addrs(), &hand.ca_cert, &transcript);
    let pgp_list = holders
        .iter()
        .map(|h| h.public.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    expect_ceremony(
        dir,
        &globals,
        "adopt",
        &[("pgp_keys", pgp_list), ("threshold", THRESHOLD.to_string())],
        None,
    )?;

    let mut unseal = vec!["--transcript".to_owned(), transcript.display().to_string()];
    unseal.extend(hand.addr_args());
    unseal.extend([
        "--ca-cert".to_owned(),
        hand.ca_cert.display().to_string(),
        "unseal".to_owned(),
    ]);
    for i in [1, 3, 4] {
        unseal.extend([
            "--share-file".to_owned(),
            share_of(i).display().to_string(),
            "--secret-key".to_owned(),
            holders[i].secret.display().to_string(),
        ]);
    }
    let (code, _, output) = run_custody(dir, "unseal-by-hand", &unseal)?;
    if code != 0 {
        return Err(Error::failed(format!(
            "the adopted cluster's unseal exited {code}:\n{}",
            tail(&output, 20)
        )));
    }
    let (code, proven) = proven_holders(dir, "holders-by-hand", &transcript)?;
    let want: Vec<&str> = [1, 3, 4]
        .iter()
        .map(|&i| holders[i].fingerprint.as_str())
        .collect();
    if code != 0 || proven != want {
        return Err(Error::verification(format!(
            "custody holders should show holders 2, 4 and 5 proven on the adopted cluster: exit {code}, proven {proven:?}"
        )));
    }
    hand.stop_all();
    Ok(format!(
        "a 1-node OpenBao initialized by its own CLI (bao operator init -pgp-keys, the keys as base64 of the binary \
         certificates): ceremonies/adopt.toml recorded its {} holders and {THRESHOLD}-of-{} seal; holders 2, 4 and 5 \
         unsealed it with their shares exactly as the CLI printed them (one line of base64), and custody holders \
         shows them proven",
        holders.len(),
        holders.len()
    ))
}
