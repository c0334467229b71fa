//! Ceremony scripts: the nine shipped scripts parse and plan; invalid scripts are refused
//! before any step, naming the line; an interrupted run resumes and never repeats a step.

use custody_test_support as support;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

const BUILTIN: [&str; 10] = [
    "init",
    "unseal",
    "adopt",
    "remove-bastion",
    "authority",
    "bind-authority",
    "snapshot",
    "blue-green-1",
    "blue-green-2",
    "rotate-shares",
];

#[test]
fn shipped_scripts_parse_and_dry_run_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = Custody::new(dir.path());
    let r = c.run(&["--format", "json", "ceremony", "list"]);
    r.expect(0);
    assert_eq!(
        r.json()["ceremonies"].as_array().unwrap().len(),
        BUILTIN.len()
    );
    for name in BUILTIN {
        let show = c.run(&["--format", "json", "ceremony", "show", name]);
        show.expect(0);
        let steps = show.json()["steps"].as_array().unwrap().len();
        let (script, _) = custody::ceremony::load(name).unwrap();
        let (_, checked) = custody::ceremony::load(&script).unwrap();
        let params: Vec<String> = checked
            .script
            .params
            .keys()
            .map(|k| format!("{k}=X"))
            .collect();
        let mut args = vec!["--format", "json", "ceremony", "run", name, "--dry-run"];
        for p in &params {
            args.extend(["--param", p.as_str()]);
        }
        let r = c.run(&args);
        r.expect(0);
        let planned = r.json()["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["state"] == "planned")
            .count();
        assert_eq!(planned, steps, "{name}: every step is planned");
        assert!(r.stderr().contains("dry run: nothing done"), "{name}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "a dry run wrote {left:?}");
    c.run(&["ceremony", "run", "authority", "--dry-run"])
        .expect(2)
        .stderr_has("needs --param");
    c.run(&["ceremony", "run", "remove-bastion", "--param", "nope=1"])
        .expect(2)
        .stderr_has("no such parameter");
    c.run(&["ceremony", "show", "no-such-ceremony"]).expect(2);
}

#[test]
fn invalid_scripts_are_refused_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let c = Custody::new(dir.path());
    let head = "name = \"t\"\ntitle = \"t\"\nquorum = 2\n\n[[roles]]\nid = \"operator\"\n\n[[roles]]\nid = \"holders\"\ncount = 3\n\n";
    let cases = [
        (
            "unknown action",
            "[[steps]]\nid = \"a\"\nwho = \"operator\"\naction = \"launch-missiles\"\n",
            "line 12",
            "unknown action",
        ),
        (
            "missing parameter",
            "[[steps]]\nid = \"a\"\nwho = \"operator\"\naction = \"snapshot-save\"\n",
            "line 12",
            "missing parameter `with.out`",
        ),
        (
            "unknown parameter",
            "[[steps]]\nid = \"a\"\nwho = \"operator\"\naction = \"status\"\nwith = { color = \"red\" }\n",
            "line 12",
            "unknown parameter",
        ),
        (
            "unknown role",
            "[[steps]]\nid = \"a\"\nwho = \"auditor\"\naction = \"status\"\n",
            "line 12",
            "not one of the roles",
        ),
        (
            "manual without confirm",
            "[[steps]]\nid = \"a\"\nwho = \"operator\"\ninstruction = \"do it\"\n",
            "line 12",
            "needs `instruction` and `confirm`",
        ),
        (
            "undeclared placeholder",
            "[[steps]]\nid = \"a\"\nwho = \"operator\"\naction = \"snapshot-save\"\nwith = { out = \"{where}\" }\n",
            "line 12",
            "not declared",
        ),
        (
            "duplicate step",
            "[[steps]]\nid = \"a\"\nwho = \"operator\"\naction = \"status\"\n\n[[steps]]\nid = \"a\"\nwho = \"operator\"\naction = \"status\"\n",
            "line 17",
            "comes earlier",
        ),
        (
            "switch neither true nor false",
            "[[steps]]\nid = \"a\"\nwho = \"operator\"\naction = \"unseal\"\nwith = { share_stdin = \"yes\" }\n",
            "line 12",
            "a switch is \"true\" or \"false\"",
        ),
        ("bad toml", "[[steps]\nid = \"a\"\n", "line 12", ""),
    ];
    for (what, body, line, needle) in cases {
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, format!("{head}{body}")).unwrap();
        let r = c.run(&["ceremony", "run", p.to_str().unwrap()]);
        assert_eq!(r.code(), 2, "{what}: {}", r.stderr());
        assert!(
            r.stderr().contains(line) && r.stderr().contains(needle),
            "{what}: {}",
            r.stderr()
        );
    }
    let p = dir.path().join("quorum.toml");
    std::fs::write(
        &p,
        head.replace("quorum = 2", "quorum = 4")
            + "[[steps]]\nid = \"a\"\nwho = \"operator\"\naction = \"status\"\n",
    )
    .unwrap();
    c.run(&["ceremony", "run", p.to_str().unwrap()])
        .expect(2)
        .stderr_has("quorum 4 is larger than the 3 holders");

    // A switch filled in from a parameter is checked before any step runs.
    let p = dir.path().join("switch.toml");
    std::fs::write(
        &p,
        head.replace("quorum = 2\n", "quorum = 2\n\n[params]\nstdin = { description = \"shares on stdin\" }\n")
            + "[[steps]]\nid = \"a\"\nwho = \"operator\"\naction = \"unseal\"\nwith = { share_stdin = \"{stdin}\" }\n",
    )
    .unwrap();
    c.run(&[
        "ceremony",
        "run",
        p.to_str().unwrap(),
        "--param",
        "stdin=yes",
    ])
    .expect(2)
    .stderr_has("step 1 (a): `with.share_stdin` is \"yes\"")
    .stderr_has("nothing was run");

    // A value that would read as a flag, and a balancer command the operator did not allow.
    let marker = dir.path().join("ran");
    let bg2 = |lb: &str, blue: &str| {
        vec![
            "ceremony".to_owned(),
            "run".into(),
            "blue-green-2".into(),
            "--param".into(),
            format!("blue={blue}"),
            "--param".into(),
            "green=https://127.0.0.1:2".into(),
            "--param".into(),
            format!("lb={lb}"),
            "--param".into(),
            "blue_servers=blue1".into(),
            "--param".into(),
            "green_servers=green1".into(),
            "--param".into(),
            "lb_url=https://127.0.0.1:3".into(),
            "--param".into(),
            "token_file=root.token".into(),
        ]
    };
    let run = |args: Vec<String>| c.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let exec = format!("exec:/usr/bin/touch {}", marker.display());
    run(bg2("haproxy:/x.sock", "--force"))
        .expect(2)
        .stderr_has("starts with '-'");
    run(bg2(&exec, "https://127.0.0.1:1"))
        .expect(2)
        .stderr_has("--allow-exec");
    let mut dry = bg2(&exec, "https://127.0.0.1:1");
    dry.push("--dry-run".into());
    run(dry).expect(0).stderr_has(&format!("--lb {exec}"));
    assert!(
        !marker.exists(),
        "a refused or dry run ran the balancer command"
    );
}

#[test]
fn an_interrupted_ceremony_resumes_and_repeats_nothing() {
    let cluster = cluster("ceremony", 1);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let keys: Vec<String> = ["holder1", "holder2", "holder3"]
        .iter()
        .map(|h| fixture(&format!("{h}.pub.asc")).display().to_string())
        .collect();
    let script = format!(
        "name = \"resume\"\ntitle = \"init, then unseal, with a check between\"\nquorum = 2\n\n\
         [[roles]]\nid = \"operator\"\n\n[[roles]]\nid = \"holders\"\ncount = 3\n\n\
         [params]\nmarker = {{ description = \"a file that must exist\" }}\n\n\
         [[steps]]\nid = \"status\"\nwho = \"operator\"\naction = \"status\"\n\n\
         [[steps]]\nid = \"init\"\nwho = \"operator\"\naction = \"init\"\n\
         with = {{ pgp_keys = \"{}\", threshold = \"2\", root_token_pgp_key = \"{}\", out = \"{}\" }}\n\n\
         [[steps]]\nid = \"handed-out\"\nwho = \"holders\"\ninstruction = \"take your share\"\nconfirm = \"shares taken\"\n\n\
         [[steps]]\nid = \"marker\"\nwho = \"operator\"\ncheck = \"file-exists\"\nwith = {{ path = \"{{marker}}\" }}\n\n\
         [[steps]]\nid = \"unseal\"\nwho = \"holders\"\naction = \"unseal\"\nwith = {{ share_stdin = \"true\" }}\n\n\
         [[steps]]\nid = \"status-after\"\nwho = \"operator\"\naction = \"status\"\n",
        keys.join(","),
        fixture("operator.pub.asc").display(),
        dir.join("shares").display()
    );
    let path = dir.join("resume.toml");
    std::fs::write(&path, script).unwrap();
    let marker = dir.join("marker");
    let mut c = Custody::for_cluster(dir, &cluster);
    c.base.push("--yes".into());
    let run_args = [
        "ceremony",
        "run",
        path.to_str().unwrap(),
        "--param",
        &format!("marker={}", marker.display()),
    ];

    // First run: stops at the failing check, after three finished steps.
    c.run(&run_args)
        .expect(3)
        .stderr_has("resumes at this step");
    assert!(seal_status(&cluster)[0].initialized);

    // Second run: killed while the unseal step waits for the holders' shares.
    std::fs::write(&marker, "ok").unwrap();
    let transcript = dir.join("custody-transcript.jsonl");
    let mut child = c
        .command(&run_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&transcript)
        .unwrap_or_default()
        .contains("\"step\":\"marker\"")
    {
        assert!(
            Instant::now() < deadline,
            "the resumed run never finished the check"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    let stdin = child.stdin.take();
    drop(stdin);
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(seal_status(&cluster)[0].sealed);

    // The state resumes only this run: other parameter values, or a state that claims a step
    // the script does not have, are refused before any step runs.
    let other = dir.join("other-marker");
    std::fs::write(&other, "ok").unwrap();
    let mut other_args = run_args.to_vec();
    let other_param = format!("marker={}", other.display());
    other_args[4] = &other_param;
    c.run(&other_args)
        .expect(4)
        .stderr_has("other parameter values");
    let state = dir.join("custody-ceremony-resume.state.json");
    let saved = std::fs::read_to_string(&state).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let forged: serde_json::Value = {
        let mut v: serde_json::Value = serde_json::from_str(&saved).unwrap();
        v["done"].as_array_mut().unwrap().push("skip-me".into());
        v
    };
    std::fs::write(&state, forged.to_string()).unwrap();
    c.run(&run_args).expect(3).stderr_has("no such step");
    let skipped: serde_json::Value = {
        let mut v: serde_json::Value = serde_json::from_str(&saved).unwrap();
        v["done"].as_array_mut().unwrap().push("unseal".into());
        v
    };
    std::fs::write(&state, skipped.to_string()).unwrap();
    c.run(&run_args)
        .expect(3)
        .stderr_has("does not record them");
    std::fs::write(&state, &saved).unwrap();
    assert!(seal_status(&cluster)[0].sealed);

    // Third run: the shares arrive; it resumes at the unseal and finishes.
    let gpg = Gpg::with_secret_keys(&["holder1", "holder2"]);
    let shares: String = ["holder1", "holder2"]
        .iter()
        .map(|h| {
            gpg.decrypt(
                &dir.join("shares").join(format!("{}.share.asc", fpr(h))),
                None,
            ) + "\n"
        })
        .collect();
    let mut child = c
        .command(&run_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(shares.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Resuming resume: 4 of 6 steps"), "{err}");
    assert!(!seal_status(&cluster)[0].sealed);

    // Each step of the ceremony is in the transcript exactly once, and the chain holds.
    let text = std::fs::read_to_string(&transcript).unwrap();
    for step in [
        "status",
        "init",
        "handed-out",
        "marker",
        "unseal",
        "status-after",
    ] {
        let n = text
            .lines()
            .filter(|l| {
                l.contains("\"ceremony\":\"resume\"") && l.contains(&format!("\"step\":\"{step}\""))
            })
            .count();
        assert_eq!(n, 1, "step {step} recorded {n} times");
    }
    c.run(&["transcript", "verify", transcript.to_str().unwrap()])
        .expect(0);
    // Run again: nothing left to do, nothing repeated.
    let r = c.run(&run_args);
    r.expect(0);
    assert_eq!(r.stderr().matches("done earlier").count(), 6);

    // Killed between a step's transcript line and the state's write: the state lacks the step
    // the transcript records. The rerun takes it as done and repeats nothing.
    let mut behind: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    behind["done"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s != "status-after" && s != "unseal");
    std::fs::write(&state, behind.to_string()).unwrap();
    let r = c.run(&run_args);
    r.expect(0)
        .stderr_has("recorded in the transcript but not in");
    assert_eq!(r.stderr().matches("done earlier").count(), 6);
    let text = std::fs::read_to_string(&transcript).unwrap();
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("\"ceremony\":\"resume\"") && l.contains("\"step\":\"unseal\""))
            .count(),
        1
    );
}

/// Blue-green phase 1 verifies the snapshot (offline, recorded) before it restores it: restore
/// refuses bytes without a passed verify in the transcript.
#[test]
fn blue_green_1_verifies_the_snapshot_before_it_restores_it() {
    let dir = tempfile::tempdir().unwrap();
    let c = Custody::new(dir.path());
    let r = c.run(&[
        "--format",
        "json",
        "ceremony",
        "run",
        "blue-green-1",
        "--dry-run",
        "--param",
        "file=old.snap",
        "--param",
        "green_addr=https://127.0.0.1:1",
        "--param",
        "green_token_file=green.token",
    ]);
    r.expect(0);
    let whats: Vec<String> = (r.json()["steps"].as_array().unwrap().iter())
        .map(|s| s["what"].as_str().unwrap().to_owned())
        .collect();
    let at = |cmd: &str| {
        whats
            .iter()
            .position(|w| w.starts_with(&format!("runs `custody {cmd}")))
            .unwrap_or_else(|| panic!("no step runs {cmd}: {whats:?}"))
    };
    let verify = at("snapshot verify old.snap");
    let restore = at("snapshot restore old.snap");
    assert!(verify < restore, "{whats:?}");
    assert!(
        whats.iter().all(|w| !w.contains("--allow-older")),
        "the script never waives the age check: {whats:?}"
    );
}
