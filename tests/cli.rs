//! Command-line contracts that need no server: usage errors (exit 2), unreachable nodes, and
//! the transcript check.

use custody_test_support as support;

use support::*;

#[test]
fn usage_errors_exit_2_and_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let c = Custody::new(dir.path());
    c.run(&["status"]).expect(2).stderr_has("no node address");
    c.run(&["--addr", "http://10.1.2.3:8200", "status"])
        .expect(2)
        .stderr_has("loopback");
    c.run(&["--addr", "https://127.0.0.1:1/v1/sys", "status"])
        .expect(2)
        .stderr_has("without a path");
    c.run(&[
        "--addr",
        "https://127.0.0.1:1",
        "--addr",
        "https://127.0.0.1:1/",
        "status",
    ])
    .expect(2)
    .stderr_has("given twice");
    c.run(&[
        "--addr",
        "https://127.0.0.1:1",
        "unseal",
        "--share-file",
        "x",
    ])
    .expect(2);
    c.run(&[
        "--addr",
        "https://127.0.0.1:1",
        "--token-file",
        "/nonexistent",
        "status",
    ])
    .expect(2)
    .stderr_has("--token-file");
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    c.run(&[
        "--addr",
        "https://127.0.0.1:1",
        "--ca-cert",
        not_pem.to_str().unwrap(),
        "status",
    ])
    .expect(2)
    .stderr_has("--ca-cert");
    c.run(&["transcript", "verify", "/nonexistent/t.jsonl"])
        .expect(2);
    c.run(&["init", "--threshold", "3"]).expect(2);
    c.run(&["--help"]).expect(0);
    c.run(&["--version"]).expect(0);

    let mut env = Custody::new(dir.path());
    env.env
        .push(("VAULT_ADDR".into(), "https://127.0.0.1:1".into()));
    env.env
        .push(("BAO_ADDR".into(), "https://127.0.0.1:2".into()));
    env.run(&["status"])
        .expect(2)
        .stderr_has("VAULT_ADDR and BAO_ADDR");
}

#[test]
fn unreachable_node_is_reported_not_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = Custody::new(dir.path());
    c.env
        .push(("BAO_ADDR".into(), format!("https://127.0.0.1:{port}")));
    let r = c.run(&["--format", "json", "status"]);
    r.expect(1);
    let j = r.json();
    assert_eq!(j["schema_version"], 1);
    assert_eq!(j["nodes"][0]["reachable"], false);
    assert!(
        j["nodes"][0]["error"]
            .as_str()
            .unwrap()
            .contains("unreachable")
    );
}
