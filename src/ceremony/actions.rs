//! The built-in actions a ceremony step may run, the parameters each needs, and the custody
//! command line each becomes.

use std::collections::BTreeMap;

/// (action, required parameters, optional parameters)
pub const ACTIONS: &[(&str, &[&str], &[&str])] = &[
    ("status", &[], &[]),
    (
        "init",
        &["pgp_keys", "threshold", "root_token_pgp_key", "out"],
        &[],
    ),
    ("adopt", &["pgp_keys"], &["threshold"]),
    ("unseal", &[], &["share_stdin"]),
    ("root-ceremony-token", &["pgp_key", "out"], &[]),
    ("root-generate", &["pgp_key", "out"], &["share_stdin"]),
    ("root-revoke", &[], &[]),
    (
        "plugin-install",
        &["plugin_bin"],
        &["name", "mount", "accept_no_audit"],
    ),
    (
        "wallet-create",
        &["name", "chain_id", "signer_token_out"],
        &[
            "allowed_calls",
            "allowed_to",
            "unrestricted",
            "allow_sign_message",
            "allow_sign_typed_data",
            "max_value_wei",
            "max_fee_per_gas",
            "max_gas",
            "mount",
            "accept_no_audit",
        ],
    ),
    ("wallet-show", &["name"], &["mount"]),
    (
        "wallet-bind",
        &["name", "contract"],
        &[
            "rpc",
            "rpc_file",
            "call",
            "authority_getter",
            "abi",
            "mount",
            "accept_no_audit",
        ],
    ),
    ("snapshot-save", &["out"], &["mount"]),
    (
        "snapshot-verify",
        &["file"],
        &["plugin_bin", "restore_test"],
    ),
    ("snapshot-restore", &["file"], &[]),
    (
        "cutover",
        &[
            "from",
            "to",
            "lb",
            "lb_backend",
            "blue_servers",
            "green_servers",
            "lb_url",
        ],
        &[
            "drain_timeout",
            "mount",
            "nonce_floor_from_rpc",
            "nonce_floor_from_rpc_file",
            "max_nonce_jump",
            "lb_shell",
            "rpc",
            "rpc_file",
        ],
    ),
    ("transcript-verify", &["file"], &["certs"]),
    (
        "rotate-shares",
        &["pgp_keys", "threshold", "out"],
        &["share_stdin", "backup"],
    ),
    ("rotate-shares-verify", &[], &["share_stdin"]),
    ("rotate-shares-cancel", &[], &[]),
    ("holders", &[], &["stale_after"]),
];

/// The checks a step may make: (check, required parameters).
pub const CHECKS: &[(&str, &[&str])] = &[("port-closed", &["address"]), ("file-exists", &["path"])];

/// Parameters that turn a flag on or off: "true" or "false", nothing else (a typo such as
/// "yes" must not silently drop the flag).
pub const SWITCHES: &[&str] = &[
    "share_stdin",
    "restore_test",
    "unrestricted",
    "allow_sign_message",
    "allow_sign_typed_data",
    "lb_shell",
    "backup",
    "accept_no_audit",
];

/// Refuses a switch whose value is not `true` or `false`.
pub fn check_switch(param: &str, value: &str) -> Result<(), String> {
    if SWITCHES.contains(&param) && value != "true" && value != "false" {
        return Err(format!(
            "`with.{param}` is {value:?}: a switch is \"true\" or \"false\""
        ));
    }
    Ok(())
}

/// Parameters every action step may also take.
pub const COMMON: &[&str] = &["token_file", "addr"];

pub fn action(name: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    ACTIONS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, r, o)| (*r, *o))
}

pub fn check(name: &str) -> Option<&'static [&'static str]> {
    CHECKS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The custody arguments (after the global options) for an action with its resolved parameters.
pub fn argv(action: &str, p: &BTreeMap<String, String>) -> Vec<String> {
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    let mut a: Vec<String> = Vec::new();
    let on = |k: &str| p.get(k).is_some_and(|v| v == "true");
    let flag = |a: &mut Vec<String>, f: &str, k: &str| {
        if let Some(v) = p.get(k) {
            a.push(f.into());
            a.push(v.clone());
        }
    };
    match action {
        "status" => a.push("status".into()),
        "init" => {
            a.push("init".into());
            for k in list(&get("pgp_keys")) {
                a.extend(["--pgp-key".into(), k]);
            }
            a.extend([
                "--threshold".into(),
                get("threshold"),
                "--root-token-pgp-key".into(),
                get("root_token_pgp_key"),
                "--out".into(),
                get("out"),
            ]);
        }
        "adopt" => {
            a.push("adopt".into());
            for k in list(&get("pgp_keys")) {
                a.extend(["--pgp-key".into(), k]);
            }
            flag(&mut a, "--threshold", "threshold");
        }
        "unseal" | "root-generate" => {
            if action == "unseal" {
                a.push("unseal".into());
            } else {
                a.extend([
                    "root".into(),
                    "generate".into(),
                    "--pgp-key".into(),
                    get("pgp_key"),
                    "--out".into(),
                    get("out"),
                ]);
            }
            if p.get("share_stdin").map(|v| v == "true").unwrap_or(false) {
                a.push("--share-stdin".into());
            }
        }
        "root-ceremony-token" => a.extend([
            "root".into(),
            "ceremony-token".into(),
            "--pgp-key".into(),
            get("pgp_key"),
            "--out".into(),
            get("out"),
        ]),
        "root-revoke" => a.extend(["root".into(), "revoke".into()]),
        "plugin-install" => {
            a.extend([
                "plugin".into(),
                "install".into(),
                "--plugin-bin".into(),
                get("plugin_bin"),
            ]);
            flag(&mut a, "--name", "name");
            flag(&mut a, "--mount", "mount");
            if on("accept_no_audit") {
                a.push("--accept-no-audit".into());
            }
        }
        "wallet-create" => {
            a.extend([
                "wallet".into(),
                "create".into(),
                get("name"),
                "--chain-id".into(),
                get("chain_id"),
                "--signer-token-out".into(),
                get("signer_token_out"),
            ]);
            for c in list(&get("allowed_calls")) {
                a.extend(["--allowed-call".into(), c]);
            }
            for t in list(&get("allowed_to")) {
                a.extend(["--allowed-to".into(), t]);
            }
            for switch in [
                "unrestricted",
                "allow_sign_message",
                "allow_sign_typed_data",
            ] {
                if p.get(switch).is_some_and(|v| v == "true") {
                    a.push(format!("--{}", switch.replace('_', "-")));
                }
            }
            flag(&mut a, "--max-value", "max_value_wei");
            flag(&mut a, "--max-fee-per-gas", "max_fee_per_gas");
            flag(&mut a, "--max-gas", "max_gas");
            flag(&mut a, "--mount", "mount");
            if on("accept_no_audit") {
                a.push("--accept-no-audit".into());
            }
        }
        "wallet-show" => {
            a.extend(["wallet".into(), "show".into(), get("name")]);
            flag(&mut a, "--mount", "mount");
        }
        "wallet-bind" => {
            a.extend(["wallet".into(), "bind".into(), get("name")]);
            // Either, or neither (CUSTODY_RPC_URL, which the step inherits); an empty value
            // (a script's default) gives no flag.
            for (f, k) in [("--rpc", "rpc"), ("--rpc-file", "rpc_file")] {
                if p.get(k).is_some_and(|v| !v.is_empty()) {
                    flag(&mut a, f, k);
                }
            }
            a.extend(["--contract".into(), get("contract")]);
            flag(&mut a, "--call", "call");
            flag(&mut a, "--authority-getter", "authority_getter");
            // An empty --abi (a script's default) gives no flag either.
            if p.get("abi").is_some_and(|v| !v.is_empty()) {
                flag(&mut a, "--abi", "abi");
            }
            flag(&mut a, "--mount", "mount");
            if on("accept_no_audit") {
                a.push("--accept-no-audit".into());
            }
        }
        "snapshot-save" => {
            a.extend(["snapshot".into(), "save".into(), "--out".into(), get("out")]);
            flag(&mut a, "--mount", "mount");
        }
        "snapshot-verify" => {
            a.extend(["snapshot".into(), "verify".into(), get("file")]);
            if p.get("restore_test").map(|v| v == "true").unwrap_or(false) {
                a.extend(["--restore-test".into(), "--share-stdin".into()]);
                flag(&mut a, "--plugin-bin", "plugin_bin");
            }
        }
        "snapshot-restore" => a.extend(["snapshot".into(), "restore".into(), get("file")]),
        "cutover" => {
            a.push("cutover".into());
            for f in list(&get("from")) {
                a.extend(["--from".into(), f]);
            }
            for t in list(&get("to")) {
                a.extend(["--to".into(), t]);
            }
            a.extend([
                "--lb".into(),
                get("lb"),
                "--lb-backend".into(),
                get("lb_backend"),
                "--lb-url".into(),
                get("lb_url"),
            ]);
            for s in list(&get("blue_servers")) {
                a.extend(["--blue-server".into(), s]);
            }
            for s in list(&get("green_servers")) {
                a.extend(["--green-server".into(), s]);
            }
            flag(&mut a, "--drain-timeout", "drain_timeout");
            flag(&mut a, "--mount", "mount");
            flag(&mut a, "--nonce-floor-from-rpc", "nonce_floor_from_rpc");
            flag(
                &mut a,
                "--nonce-floor-from-rpc-file",
                "nonce_floor_from_rpc_file",
            );
            flag(&mut a, "--max-nonce-jump", "max_nonce_jump");
            flag(&mut a, "--rpc", "rpc");
            flag(&mut a, "--rpc-file", "rpc_file");
            if p.get("lb_shell").is_some_and(|v| v == "true") {
                a.push("--lb-shell".into());
            }
        }
        "transcript-verify" => {
            a.extend(["transcript".into(), "verify".into(), get("file")]);
            flag(&mut a, "--certs", "certs");
        }
        "rotate-shares" => {
            a.push("rotate-shares".into());
            for k in list(&get("pgp_keys")) {
                a.extend(["--pgp-key".into(), k]);
            }
            a.extend([
                "--threshold".into(),
                get("threshold"),
                "--out".into(),
                get("out"),
            ]);
            if on("backup") {
                a.push("--backup".into());
            }
            if on("share_stdin") {
                a.push("--share-stdin".into());
            }
        }
        "rotate-shares-verify" => {
            a.extend(["rotate-shares".into(), "--verify".into()]);
            if on("share_stdin") {
                a.push("--share-stdin".into());
            }
        }
        "rotate-shares-cancel" => a.extend(["rotate-shares".into(), "--cancel".into()]),
        "holders" => {
            a.push("holders".into());
            flag(&mut a, "--stale-after", "stale_after");
        }
        _ => {}
    }
    a
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    /// A value of the kind each parameter takes, as a script would give it.
    fn sample(param: &str) -> &'static str {
        match param {
            "threshold" => "3",
            "chain_id" => "1",
            "drain_timeout" => "30",
            "max_gas" => "150000",
            "max_fee_per_gas" | "max_value_wei" => "1000",
            "share_stdin"
            | "restore_test"
            | "allow_sign_message"
            | "allow_sign_typed_data"
            | "lb_shell"
            | "backup"
            | "accept_no_audit" => "true",
            "stale_after" => "90",
            "nonce_floor_from_rpc" | "rpc" => "http://127.0.0.1:8545",
            "max_nonce_jump" => "1000",
            "contract" => "0x1111111111111111111111111111111111111111",
            "call" => "submitBlock(bytes32)",
            "authority_getter" => "authority()",
            "unrestricted" => "false",
            "from" | "to" | "lb_url" => "https://127.0.0.1:8200",
            "lb" => "haproxy:/run/haproxy.sock",
            "allowed_calls" => "0x1111111111111111111111111111111111111111:submitBlock(bytes32)",
            "allowed_to" => "0x2222222222222222222222222222222222222222",
            _ => "x",
        }
    }

    fn parses(action: &str, params: &BTreeMap<String, String>) {
        let argv = argv(action, params);
        let full = std::iter::once("custody".to_owned()).chain(argv.iter().cloned());
        if let Err(e) = Cli::try_parse_from(full) {
            panic!("{action}: custody {} does not parse: {e}", argv.join(" "));
        }
    }

    #[test]
    fn every_actions_command_line_parses_with_the_real_cli() {
        for (action, required, optional) in ACTIONS {
            let only_required: BTreeMap<String, String> = required
                .iter()
                .map(|p| ((*p).to_owned(), sample(p).to_owned()))
                .collect();
            parses(action, &only_required);
            let mut all = only_required.clone();
            all.extend(
                optional
                    .iter()
                    .map(|p| ((*p).to_owned(), sample(p).to_owned())),
            );
            parses(action, &all);
        }
        let unrestricted: BTreeMap<String, String> = [
            ("name", "x"),
            ("chain_id", "1"),
            ("signer_token_out", "x"),
            ("unrestricted", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert!(argv("wallet-create", &unrestricted).contains(&"--unrestricted".to_owned()));
        parses("wallet-create", &unrestricted);
    }
}
