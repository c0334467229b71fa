//! The blue cluster's first ceremonies in the rehearsal: holder keys, init, the fresh unseal,
//! the bastion removed, a restart unsealed one holder at a time; and, at the end, the root token
//! refused everywhere.

use super::*;

/// Five holders and the operator, each with a fresh v4 Cv25519 key.
pub(super) fn holder_keys(dir: &Path) -> Result<(Vec<Holder>, Holder)> {
    let mut holders = Vec::new();
    for i in 1..=HOLDERS {
        holders.push(new_holder(dir, &format!("holder{i}"))?);
    }
    Ok((holders, new_holder(dir, "operator")?))
}

/// One person's fresh v4 Cv25519 key, in `dir/keys` (the secret half 0600).
pub(super) fn new_holder(dir: &Path, name: &str) -> Result<Holder> {
    let keys_dir = dir.join("keys");
    std::fs::create_dir_all(&keys_dir).context(format!("{}", keys_dir.display()))?;
    let key = generate_cv25519(&format!("Rehearsal {name} <{name}@rehearsal.invalid>"))?;
    let public = keys_dir.join(format!("{name}.pub.asc"));
    let secret = keys_dir.join(format!("{name}.sec.asc"));
    std::fs::write(&public, &key.public_armored).context(format!("{}", public.display()))?;
    write_private(&secret, &key.secret_armored, false)?;
    Ok(Holder {
        fingerprint: key.fingerprint,
        public,
        secret,
    })
}

/// The blue cluster, its holders and where init wrote their files.
pub(super) struct Blue<'a> {
    pub(super) ctx: &'a Ctx,
    pub(super) dir: &'a Path,
    pub(super) globals: Vec<String>,
    pub(super) holders: &'a [Holder],
    pub(super) operator: &'a Holder,
    pub(super) out: PathBuf,
}

impl Blue<'_> {
    /// Ceremony 1: init, as the script ceremonies/init.toml walks it.
    pub(super) fn init(&self, cluster: &LocalCluster) -> Result<String> {
        let pgp_keys = self
            .holders
            .iter()
            .map(|h| h.public.display().to_string())
            .collect::<Vec<_>>()
            .join(",");
        expect_ceremony(
            self.dir,
            &self.globals,
            "init",
            &[
                ("pgp_keys", pgp_keys),
                (
                    "root_token_pgp_key",
                    self.operator.public.display().to_string(),
                ),
                ("out", self.out.display().to_string()),
            ],
            None,
        )
        .map_err(|e| rehearsal_failed("init", e, cluster))?;
        for h in self.holders {
            let share = crate::flows::files::share_path(&self.out, &h.fingerprint);
            if !share.is_file() {
                return Err(Error::failed(format!(
                    "init wrote no share for {}",
                    h.fingerprint
                )));
            }
        }
        Ok(format!(
            "ceremonies/init.toml: 5 shares, threshold 3, each share's recipient is its holder's encryption key; root token to {}",
            crate::ui::prefix(&self.operator.fingerprint, 16)
        ))
    }

    /// Ceremony 2: holders 1, 3 and 5 unseal the fresh cluster together; the followers join.
    pub(super) async fn fresh_unseal(&self, cluster: &LocalCluster) -> Result<String> {
        let vault = self.ctx.vault()?;
        let quorum = pick(self.holders, &[0, 2, 4]);
        let shares = decrypt_shares(self.ctx, &self.out, &quorum)?;
        expect_ceremony(
            self.dir,
            &self.globals,
            "unseal",
            &[],
            Some(&share_lines(&shares)),
        )
        .map_err(|e| rehearsal_failed("unseal", e, cluster))?;
        let roles = wait_roles(&vault, self.ctx, Duration::from_secs(30)).await?;
        Ok(format!(
            "ceremonies/unseal.toml, holders 1, 3, 5 in one run: leader unsealed, followers joined and unsealed ({roles})"
        ))
    }

    /// Ceremony 3: the bastion goes away (here a loopback port that no longer listens).
    pub(super) fn remove_bastion(&self) -> Result<String> {
        let bastion = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("a loopback port")?;
        expect_ceremony(
            self.dir,
            &self.globals,
            "remove-bastion",
            &[("bastion", bastion.to_string())],
            None,
        )?;
        Ok(format!(
            "ceremonies/remove-bastion.toml: confirmed, and {bastion} no longer accepts connections"
        ))
    }

    /// A restart of every node; holders 2, 4 and 5 come one at a time, each server keeping its
    /// progress between runs.
    pub(super) async fn restart_and_unseal(&self, cluster: &mut LocalCluster) -> Result<String> {
        let vault = self.ctx.vault()?;
        cluster.restart()?;
        let sealed = all_status(&vault, &self.ctx.addrs).await;
        if !sealed
            .iter()
            .all(|n| n.reachable && n.initialized && n.sealed)
        {
            return Err(Error::failed(
                "after the restart, not every node was initialized and sealed",
            ));
        }
        let later = pick(self.holders, &[1, 3, 4]);
        for (k, h) in later.iter().enumerate() {
            let shares = decrypt_shares(self.ctx, &self.out, &[*h])?;
            let report =
                unseal_with(self.ctx, &vault, &self.ctx.addrs, &shares, JOIN_TIMEOUT).await?;
            record(self.ctx, &report, &shares)?;
            if k + 1 < later.len() {
                let want = (k + 1) as u32;
                if !report
                    .nodes
                    .iter()
                    .all(|n| n.state == NodeState::Sealed && n.progress == want)
                {
                    return Err(Error::failed(format!(
                        "after holder {} alone, every node should be sealed at {want}/3: {:?}",
                        k + 1,
                        report
                            .nodes
                            .iter()
                            .map(|n| (n.state, n.progress))
                            .collect::<Vec<_>>()
                    )));
                }
            } else {
                expect_all_unsealed(&report, cluster)?;
            }
        }
        let roles = wait_roles(&vault, self.ctx, Duration::from_secs(30)).await?;
        Ok(format!(
            "each server kept its progress between runs (1/3, 2/3), the third holder unsealed all ({roles})"
        ))
    }
}

/// The root token lived in both clusters (green was restored from blue); blue-green-2 revoked it
/// in each. Every node of both must refuse it now.
pub(super) async fn root_revoked(
    cluster: &LocalCluster,
    green: &LocalCluster,
    auth: &Authority,
) -> Result<String> {
    let mut refused = 0;
    for (addrs, ca) in [
        (cluster.addrs(), &cluster.ca_cert),
        (green.addrs(), &green.ca_cert),
    ] {
        let v = Vault::new(Some(ca), Some(auth.root.clone()))?;
        for a in &addrs {
            match v.lookup_self(a).await {
                Err(crate::vault::NodeError::Api { status: 403, .. }) => refused += 1,
                other => {
                    return Err(Error::verification(format!(
                        "{a} still answers the revoked root token: {:?}",
                        other.map(|_| "accepted")
                    )));
                }
            }
        }
    }
    Ok(format!(
        "ceremonies/blue-green-2.toml revoked it in both clusters: all {refused} nodes refuse it; no root token stands"
    ))
}
