//! What a signer mount says about signing — it signs; a cutover froze it; or it was restored
//! from a snapshot and waits for its counters — and how to lift each freeze. `status`, `wallet
//! show`, `wallet unfreeze` and the cutover read it the same way.

use serde_json::Value;

use crate::ui::escape;

/// A mount's signing state, from its `config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    Signs,
    /// Frozen by a cutover (or its rollback): `custody cutover` / `cutover rollback` lift it.
    Frozen,
    /// Started on a restore fence: frozen until every account's counter is set.
    Restored(Restored),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Each fence found: (id, note, when it was written).
    pub fences: Vec<(String, String, String)>,
    /// When the plugin found them.
    pub noticed_at: String,
    /// The accounts whose counter was set since.
    pub counters_set: Vec<String>,
}

/// Unix seconds as RFC 3339 (UTC), or the number when it is out of range.
pub fn unix_time(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

impl Signing {
    pub fn of_config(config: &Value) -> Signing {
        if config["frozen"] != true {
            return Signing::Signs;
        }
        let r = &config["restored"];
        if !r.is_object() {
            return Signing::Frozen;
        }
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        Signing::Restored(Restored {
            fences: r["fences"]
                .as_array()
                .map(|fs| {
                    fs.iter()
                        .map(|f| {
                            (
                                text(&f["id"]),
                                text(&f["note"]),
                                unix_time(f["written_at"].as_u64().unwrap_or(0)),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            noticed_at: unix_time(r["noticed_at"].as_u64().unwrap_or(0)),
            counters_set: r["counters_set"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// `signs`, `frozen` or `restored`: the JSON's word for it.
    pub fn word(&self) -> &'static str {
        match self {
            Signing::Signs => "signs",
            Signing::Frozen => "frozen",
            Signing::Restored(_) => "restored",
        }
    }

    /// One paragraph for people: the state, why, and how to lift it (text from the server is
    /// escaped).
    pub fn describe(&self, mount: &str) -> String {
        let m = escape(mount);
        match self {
            Signing::Signs => format!("{m}/ signs"),
            Signing::Frozen => format!(
                "{m}/ is FROZEN by a cutover: it signs nothing. If this cluster is in service \
                 again, run `custody cutover rollback` with the cutover's arguments (it raises the \
                 counters before it unfreezes); if the other cluster serves, leave it frozen"
            ),
            Signing::Restored(r) => {
                let fences = r
                    .fences
                    .iter()
                    .map(|(id, note, at)| {
                        let note = if note.is_empty() {
                            String::new()
                        } else {
                            format!(", by {}", escape(note))
                        };
                        format!("{} (written {at}{note})", escape(id))
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                let set = if r.counters_set.is_empty() {
                    "none".to_owned()
                } else {
                    r.counters_set
                        .iter()
                        .map(|n| escape(n))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!(
                    "{m}/ is FROZEN: this cluster was restored from a snapshot (restore fence \
                     {fences}; noticed {}), so it could sign nonces the cluster in service has \
                     used. It signs nothing until its counters are raised: `custody cutover` \
                     carries them from the cluster in service and then unfreezes it, or `custody \
                     wallet unfreeze --mount {m} --nonce-floor-from-rpc URL` (or `--nonce-floor \
                     N`) raises them to the chain's (recorded). Counters set since: {set}",
                    r.noticed_at
                )
            }
        }
    }
}

/// Fences left in a running mount's storage: a snapshot is being taken, or a save was cut
/// short. The running plugin signs; a restart of it now would freeze it (the safe failure).
pub fn leftover_fences(mount: &str, ids: &[String]) -> Option<String> {
    if ids.is_empty() {
        return None;
    }
    Some(format!(
        "a restore fence is in {}/'s storage ({}): a snapshot is being taken, or a save was cut \
         short. This cluster signs, but if its plugin restarts now it comes up frozen; once no \
         save runs, remove it with `bao delete {}/restore-fence/ID`",
        escape(mount),
        ids.iter().map(|i| escape(i)).collect::<Vec<_>>().join(", "),
        escape(mount)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_config_says_which_freeze_and_how_to_lift_it() {
        assert_eq!(
            Signing::of_config(&json!({ "frozen": false })),
            Signing::Signs
        );
        let cutover = Signing::of_config(&json!({ "frozen": true, "restored": null }));
        assert_eq!(cutover, Signing::Frozen);
        assert!(cutover.describe("ethereum").contains("cutover rollback"));
        let restored = Signing::of_config(&json!({
            "frozen": true,
            "restored": {
                "fences": [{ "id": "snap-1", "note": "custody snapshot save\u{1b}[2J", "written_at": 0 }],
                "noticed_at": 60,
                "counters_set": ["authority"]
            }
        }));
        let text = restored.describe("ethereum");
        assert_eq!(restored.word(), "restored");
        assert!(text.contains("restored from a snapshot"), "{text}");
        assert!(
            text.contains("snap-1 (written 1970-01-01T00:00:00Z"),
            "{text}"
        );
        assert!(text.contains("noticed 1970-01-01T00:01:00Z"), "{text}");
        assert!(text.contains("wallet unfreeze --mount ethereum"), "{text}");
        assert!(text.contains("Counters set since: authority"), "{text}");
        assert!(!text.contains('\u{1b}'), "server text is escaped: {text}");
    }

    #[test]
    fn leftover_fences_are_named() {
        assert_eq!(leftover_fences("ethereum", &[]), None);
        let t = leftover_fences("ethereum", &["snap-9".into()]).unwrap();
        assert!(t.contains("snap-9") && t.contains("restarts now"), "{t}");
    }
}
