//! Ceremony 6 in the rehearsal: on green, holder 5's share moves to a new holder 6 (holders 1-4
//! keep theirs, threshold 3); after a restart the old share 5 no longer opens green while the
//! new quorum does; the snapshot taken before the rotation still opens with the old quorum.

use super::driver::{proven_holders, run_custody};
use super::*;

/// Where the rotation writes the new shares, and the snapshot taken before it.
const NEW_OUT: &str = "rotated";
const BEFORE: &str = "blue.snap";

pub(super) struct Rotation<'a> {
    /// The rehearsal's context (its transcript) and green, where the rotation happens.
    pub(super) ctx: &'a Ctx,
    pub(super) green: &'a mut LocalCluster,
    pub(super) dir: &'a Path,
    pub(super) plugin: &'a Path,
    /// Where init wrote the old shares.
    pub(super) out: &'a Path,
    pub(super) holders: &'a [Holder],
    pub(super) operator: &'a Holder,
}

impl Rotation<'_> {
    pub(super) async fn run(mut self) -> Result<String> {
        let holder6 = blue::new_holder(self.dir, "holder6")?;
        let mut new_set: Vec<&Holder> = pick(self.holders, &[0, 1, 2, 3]);
        new_set.push(&holder6);
        let runs = self.ceremony(&new_set)?;
        let green = self.green_ctx();
        let restart = self.only_new_shares_unseal(&green, &holder6).await?;
        let drill = self.old_snapshot_opens_with_old_quorum()?;
        let report = self.holders_report(&holder6)?;
        Ok(format!(
            "ceremonies/rotate-shares.toml in {runs} runs: holders 1, 2, 3 gave the old shares, holder 5's share went to a \
             new holder 6, holders 1, 2 and 6 proved the new shares, the new quorum's root token took a fresh snapshot \
             and was revoked; {restart}; {drill}; {report}"
        ))
    }

    fn green_ctx(&self) -> Ctx {
        Ctx {
            ui: Ui::silent(),
            addrs: self.green.addrs(),
            ca_cert: Some(self.green.ca_cert.clone()),
            transcript: Transcript::at(self.ctx.transcript.path()),
            token: None,
        }
    }

    /// The script, run again after each stop: the old quorum's shares on stdin until the new
    /// shares exist, then the new quorum's; the operator decrypts the root token when asked.
    fn ceremony(&self, new_set: &[&Holder]) -> Result<u32> {
        let dir = self.dir;
        let new_out = dir.join(NEW_OUT);
        let root_asc = dir.join("root-token.rotated.asc");
        let root_file = dir.join("rotated-root.token");
        let params: Vec<(&str, String)> = vec![
            (
                "pgp_keys",
                new_set
                    .iter()
                    .map(|h| h.public.display().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("threshold", THRESHOLD.to_string()),
            ("out", new_out.display().to_string()),
            (
                "ceremony_token_file",
                dir.join("ceremony.token").display().to_string(),
            ),
            ("operator_key", self.operator.public.display().to_string()),
            ("root_token_file", root_file.display().to_string()),
            ("snapshot", "green-after-rotation.snap".to_owned()),
        ];
        let globals = ceremony_globals(
            &self.green.addrs(),
            &self.green.ca_cert,
            self.ctx.transcript.path(),
        );
        let old_quorum = share_lines(&decrypt_shares(
            self.ctx,
            self.out,
            &pick(self.holders, &[0, 1, 2]),
        )?);
        let new_quorum_holders = [new_set[0], new_set[1], new_set[4]];
        let mut runs = 0;
        loop {
            runs += 1;
            let stdin = if new_out
                .join(format!("{}.share.asc", new_set[4].fingerprint))
                .exists()
            {
                share_lines(&decrypt_shares(self.ctx, &new_out, &new_quorum_holders)?)
            } else {
                old_quorum.clone()
            };
            let code = run_ceremony(dir, &globals, "rotate-shares", &params, Some(&stdin))?;
            if code == 0 {
                return Ok(runs);
            }
            if runs >= 6 {
                return Err(ceremony_failed(dir, "rotate-shares", code));
            }
            if root_asc.is_file() && !root_file.exists() {
                write_private(
                    &root_file,
                    decrypt_token(&root_asc, &self.operator.secret)?
                        .expose()
                        .as_bytes(),
                    false,
                )?;
            }
        }
    }

    /// Green restarted: the old share 5 beside two new shares is refused; the new quorum
    /// (holders 1, 2 and 6) unseals every node.
    async fn only_new_shares_unseal(&mut self, green: &Ctx, holder6: &Holder) -> Result<String> {
        let vault = green.vault()?;
        self.green.restart()?;
        let new_out = self.dir.join(NEW_OUT);
        let old5 = decrypt_shares(green, self.out, &pick(self.holders, &[4]))?;
        let mut mixed = decrypt_shares(green, &new_out, &pick(self.holders, &[0, 1]))?;
        mixed.shares.extend(old5.shares);
        mixed.holders.extend(old5.holders);
        let report = unseal_with(green, &vault, &green.addrs, &mixed, JOIN_TIMEOUT).await?;
        record(green, &report, &mixed)?;
        if report.nodes.iter().any(|n| n.state == NodeState::Unsealed) {
            return Err(Error::verification(
                "after the rotation the old share 5 still opened green",
            ));
        }
        let new_quorum = decrypt_shares(
            green,
            &new_out,
            &[&self.holders[0], &self.holders[1], holder6],
        )?;
        let report = unseal_with(green, &vault, &green.addrs, &new_quorum, JOIN_TIMEOUT).await?;
        record(green, &report, &new_quorum)?;
        expect_all_unsealed(&report, self.green)?;
        wait_roles(&vault, green, Duration::from_secs(60)).await?;
        Ok("after a restart the old share 5 (with two new shares) was refused and holders 1, 2, 6's new shares unsealed all 3 nodes".to_owned())
    }

    /// The snapshot taken before the rotation, restore-tested with holders 1, 3 and 5's OLD
    /// shares, each opened with the holder's own key; verify names the older share set. It is
    /// older than green's fresh save (green carries blue's cluster id): refused without
    /// --allow-older (before any share is read), accepted with it.
    fn old_snapshot_opens_with_old_quorum(&self) -> Result<String> {
        let mut args = vec![
            "--transcript".to_owned(),
            self.ctx.transcript.path().display().to_string(),
            "--token-file".to_owned(),
            self.dir.join("ceremony.token").display().to_string(),
            "--yes".to_owned(),
            "snapshot".to_owned(),
            "verify".to_owned(),
            BEFORE.to_owned(),
            "--restore-test".to_owned(),
            "--plugin-bin".to_owned(),
            self.plugin.display().to_string(),
        ];
        for h in pick(self.holders, &[0, 2, 4]) {
            args.extend([
                "--share-file".to_owned(),
                crate::flows::files::share_path(self.out, &h.fingerprint)
                    .display()
                    .to_string(),
                "--secret-key".to_owned(),
                h.secret.display().to_string(),
            ]);
        }
        let (code, _, output) = run_custody(self.dir, "verify-older-refused", &args)?;
        if code != 3 || !output.contains("OLDER snapshot") {
            return Err(Error::verification(format!(
                "snapshot verify of {BEFORE}, older than the fresh save after the rotation, \
                 exited {code} without --allow-older, not 3 naming it older:\n{}",
                tail(&output, 30)
            )));
        }
        args.push("--allow-older".to_owned());
        let (code, _, output) = run_custody(self.dir, "restore-test-before-rotation", &args)?;
        if code != 0 {
            return Err(Error::failed(format!(
                "the restore test of {BEFORE} with the old quorum exited {code}:\n{}",
                tail(&output, 30)
            )));
        }
        if !output.contains("OLDER set") {
            return Err(Error::verification(format!(
                "snapshot verify did not say {BEFORE} needs the older share set:\n{}",
                tail(&output, 30)
            )));
        }
        Ok(format!(
            "{BEFORE}, taken before the rotation, was refused as older than the fresh save without --allow-older, and with it still opened in a restore test with holders 1, 3, 5's OLD shares, and verify said it needs the older share set"
        ))
    }

    /// `custody holders`: of the new set, holders 1, 2 and 6 proved their new shares by the
    /// unseal after the restart; holders 3 and 4 have not, so `--stale-after 1` exits 3.
    fn holders_report(&self, holder6: &Holder) -> Result<String> {
        let transcript = self.ctx.transcript.path();
        let (code, proven) = proven_holders(self.dir, "holders", transcript)?;
        let want = [
            self.holders[0].fingerprint.as_str(),
            self.holders[1].fingerprint.as_str(),
            holder6.fingerprint.as_str(),
        ];
        if code != 0 || proven != want {
            return Err(Error::verification(format!(
                "custody holders should show holders 1, 2 and 6 as proven: exit {code}, proven {proven:?}"
            )));
        }
        let stale_after = [
            "--transcript",
            &transcript.display().to_string(),
            "holders",
            "--stale-after",
            "1",
        ]
        .map(String::from);
        let (stale, _, _) = run_custody(self.dir, "holders-stale", &stale_after)?;
        if stale != 3 {
            return Err(Error::verification(format!(
                "custody holders --stale-after 1 exited {stale}, not 3, with holders 3 and 4 unproven"
            )));
        }
        Ok("custody holders shows holders 1, 2, 6 proven by that unseal and --stale-after 1 exits 3 for holders 3 and 4".to_owned())
    }
}
