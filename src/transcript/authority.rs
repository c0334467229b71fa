//! Where the transcript records the Authority's address (its creation, the binding, each
//! snapshot's manifest and restore test) and its nonce counters (a cutover carries them from
//! blue to green).

use serde::Serialize;
use serde_json::Value;

/// One place the address was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sighting {
    pub line: usize,
    pub ceremony: String,
    pub step: String,
    /// The cluster or node the line speaks of, as recorded.
    pub cluster: String,
    pub address: String,
    /// A holder's signature that checks out covers the line.
    pub signed: bool,
}

/// One account's counters at a line, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NonceRecord {
    pub line: usize,
    pub time: String,
    pub step: String,
    pub account: String,
    /// The figures the line gives (`from`, `to_before`, `to_after`, …), by name.
    pub figures: Vec<(String, String)>,
    /// A holder's signature that checks out covers the line.
    pub signed: bool,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// The addresses one line records, with the cluster it names.
fn addresses(e: &Value) -> Vec<(String, String)> {
    let f = &e["facts"];
    let cluster = ["cluster_name", "addr", "rpc", "restored_into"]
        .iter()
        .map(|k| text(&f[k]))
        .find(|c| !c.is_empty())
        .unwrap_or_default();
    let mut out = Vec::new();
    match text(&e["step"]).as_str() {
        "wallet-create" | "wallet-bind" => out.push((cluster.clone(), text(&f["address"]))),
        _ => {}
    }
    for (_, a) in f["accounts"].as_object().into_iter().flatten() {
        out.push((cluster.clone(), text(a)));
    }
    let restore = &f["restore_test"]["address"];
    if restore.is_string() {
        out.push((
            format!("restore test of {}", text(&f["file"])),
            text(restore),
        ));
    }
    out.retain(|(_, a)| a.starts_with("0x"));
    out
}

/// Where the Authority's address is taken from: the first creation (`wallet-create`), else
/// the first sighting.
pub fn address(sightings: &[Sighting]) -> Option<&Sighting> {
    sightings
        .iter()
        .find(|s| s.step == "wallet-create")
        .or_else(|| sightings.first())
}

/// Every line that records an account address. `entries[i]` is line `i + 1`; lines 1 to
/// `signed_lines` are covered by a holder's signature that checks out.
pub fn sightings(entries: &[Value], signed_lines: usize) -> Vec<Sighting> {
    entries
        .iter()
        .enumerate()
        .flat_map(|(i, e)| {
            addresses(e)
                .into_iter()
                .map(move |(cluster, address)| Sighting {
                    line: i + 1,
                    ceremony: text(&e["ceremony"]),
                    step: text(&e["step"]),
                    cluster,
                    address,
                    signed: i < signed_lines,
                })
        })
        .collect()
}

/// Every account's counters the lines record (`facts.nonces`, by account), marked signed for
/// lines 1 to `signed_lines`.
pub fn nonces(entries: &[Value], signed_lines: usize) -> Vec<NonceRecord> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        for (account, n) in e["facts"]["nonces"].as_object().into_iter().flatten() {
            let figures = match n.as_object() {
                Some(o) => o.iter().map(|(k, v)| (k.clone(), v.to_string())).collect(),
                None => vec![("nonce".to_owned(), n.to_string())],
            };
            out.push(NonceRecord {
                line: i + 1,
                time: text(&e["time"]),
                step: text(&e["step"]),
                account: account.clone(),
                figures,
                signed: i < signed_lines,
            });
        }
    }
    out
}

/// The counters the last cutover from one of `blue`'s nodes to one of `green`'s carried to
/// green, by account (`nonces.NAME.to_after`, else `from`), with its line: a rollback's floor
/// is at least these. `entries[i]` is line `i + 1`.
pub fn last_carry(
    entries: &[Value],
    blue: &[String],
    green: &[String],
) -> Option<(usize, std::collections::BTreeMap<String, u64>)> {
    entries.iter().enumerate().rev().find_map(|(i, e)| {
        let f = &e["facts"];
        let nonces = f["nonces"].as_object()?;
        if text(&e["step"]) != "cutover"
            || !blue.contains(&text(&f["blue"]))
            || !green.contains(&text(&f["green"]))
        {
            return None;
        }
        let carried = nonces
            .iter()
            .filter_map(|(name, n)| {
                Some((name.clone(), n["to_after"].as_u64().or(n["from"].as_u64())?))
            })
            .collect();
        Some((i + 1, carried))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_address_is_followed_across_lines_and_clusters() {
        let a = "0xd913DF5d9a36dF45036eF8C2EAc5AF463F2461f5";
        let entries = vec![
            json!({ "ceremony": "configure", "step": "wallet-create", "facts": { "address": a } }),
            json!({ "ceremony": "snapshot", "step": "save", "facts": { "cluster_name": "blue", "accounts": { "authority": a } } }),
            json!({ "ceremony": "snapshot", "step": "verify", "facts": { "file": "b.snap", "restore_test": { "address": a } } }),
            json!({ "ceremony": "blue-green", "step": "cutover", "facts": { "nonces": { "authority": { "from": 37, "to_after": 37 } } } }),
        ];
        let s = sightings(&entries, 1);
        assert_eq!(s.iter().map(|s| s.line).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(
            s.iter().map(|s| s.signed).collect::<Vec<_>>(),
            [true, false, false]
        );
        assert_eq!(s[1].cluster, "blue");
        assert_eq!(address(&s).map(|s| s.address.as_str()), Some(a));
        assert!(address(&s[1..]).is_some_and(|s| !s.signed));
        let (blue, green) = (
            vec!["https://b:8200".to_owned()],
            vec!["https://g:8200".to_owned()],
        );
        assert_eq!(
            last_carry(&entries, &blue, &green),
            None,
            "a line without its clusters"
        );
        let mut carried = entries.clone();
        carried.push(json!({ "ceremony": "blue-green", "step": "cutover", "facts": { "blue": "https://b:8200", "green": "https://g:8200", "nonces": { "authority": { "from": 40, "to_before": 45, "to_after": 45 } } } }));
        carried.push(json!({ "ceremony": "blue-green", "step": "cutover", "facts": { "blue": "https://x:8200", "green": "https://g:8200", "nonces": { "authority": { "from": 90, "to_after": 90 } } } }));
        carried.push(
            json!({ "ceremony": "blue-green-2", "step": "cutover", "facts": { "kind": "action" } }),
        );
        let (line, c) = last_carry(&carried, &blue, &green).unwrap();
        assert_eq!((line, c["authority"]), (5, 45));
        let n = nonces(&entries, 1);
        assert_eq!(n.len(), 1);
        assert!(!n[0].signed);
        assert_eq!(
            n[0].figures,
            [
                ("from".to_owned(), "37".to_owned()),
                ("to_after".to_owned(), "37".to_owned())
            ]
        );
    }
}
