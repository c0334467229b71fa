//! Ceremony scripts (`ceremonies/*.toml`): roles, quorum, parameters and steps, checked whole
//! before any step runs; every refusal names the line.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::actions;
use crate::error::{Error, Result};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    pub name: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub quorum: Option<u32>,
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub params: BTreeMap<String, ParamDecl>,
    pub steps: Vec<toml::Spanned<StepDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub id: String,
    #[serde(default)]
    pub description: String,
    pub count: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamDecl {
    #[serde(default)]
    pub description: String,
    pub default: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    pub id: String,
    pub who: String,
    pub action: Option<String>,
    pub check: Option<String>,
    pub instruction: Option<String>,
    pub confirm: Option<String>,
    #[serde(default)]
    pub with: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Action(String),
    Check(String),
    Manual,
}

impl StepDef {
    pub fn kind(&self) -> Kind {
        match (&self.action, &self.check) {
            (Some(a), _) => Kind::Action(a.clone()),
            (None, Some(c)) => Kind::Check(c.clone()),
            (None, None) => Kind::Manual,
        }
    }
}

/// A script that passed every check, with the line of each step.
#[derive(Debug)]
pub struct Checked {
    pub script: Script,
    pub lines: Vec<usize>,
    pub sha256: String,
}

fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                out.push(after[..end].to_owned());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

pub fn parse(label: &str, source: &str) -> Result<Checked> {
    let script: Script = toml::from_str(source).map_err(|e| {
        let line = e.span().map(|s| line_of(source, s.start)).unwrap_or(0);
        Error::usage(format!("{label} line {line}: {}", e.message()))
    })?;
    let mut lines = Vec::new();
    let mut ids = BTreeSet::new();
    let roles: BTreeSet<&str> = script.roles.iter().map(|r| r.id.as_str()).collect();
    for spanned in &script.steps {
        let line = line_of(source, spanned.span().start);
        let step = spanned.get_ref();
        let bad =
            |what: String| Error::usage(format!("{label} line {line}: step {:?}: {what}", step.id));
        if !ids.insert(step.id.clone()) {
            return Err(bad("a step with this id comes earlier".into()));
        }
        if !roles.contains(step.who.as_str()) {
            return Err(bad(format!(
                "`who = {:?}` is not one of the roles ({})",
                step.who,
                roles.iter().copied().collect::<Vec<_>>().join(", ")
            )));
        }
        let (required, optional): (&[&str], &[&str]) = match step.kind() {
            Kind::Action(a) => actions::action(&a).ok_or_else(|| {
                bad(format!(
                    "unknown action {a:?} (known: {})",
                    actions::ACTIONS
                        .iter()
                        .map(|a| a.0)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
            Kind::Check(c) => (
                actions::check(&c).ok_or_else(|| {
                    bad(format!(
                        "unknown check {c:?} (known: {})",
                        actions::CHECKS
                            .iter()
                            .map(|c| c.0)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?,
                &[],
            ),
            Kind::Manual => {
                if step.instruction.as_deref().unwrap_or("").trim().is_empty()
                    || step.confirm.as_deref().unwrap_or("").trim().is_empty()
                {
                    return Err(bad("a manual step needs `instruction` and `confirm`".into()));
                }
                (&[], &[])
            }
        };
        for r in required {
            if !step.with.contains_key(*r) {
                return Err(bad(format!("missing parameter `with.{r}`")));
            }
        }
        for k in step.with.keys() {
            if !required.contains(&k.as_str())
                && !optional.contains(&k.as_str())
                && !actions::COMMON.contains(&k.as_str())
            {
                return Err(bad(format!("unknown parameter `with.{k}`")));
            }
        }
        for (k, v) in &step.with {
            if placeholders(v).is_empty() {
                actions::check_switch(k, v).map_err(bad)?;
            }
        }
        let texts = step
            .with
            .values()
            .chain(step.instruction.iter())
            .chain(step.confirm.iter());
        for text in texts {
            for p in placeholders(text) {
                if !script.params.contains_key(&p) {
                    return Err(bad(format!("`{{{p}}}` is not declared under [params]")));
                }
            }
        }
        lines.push(line);
    }
    if script.steps.is_empty() {
        return Err(Error::usage(format!("{label}: the script has no steps")));
    }
    if let Some(q) = script.quorum {
        let holders = script
            .roles
            .iter()
            .find(|r| r.id == "holders")
            .and_then(|r| r.count)
            .unwrap_or(0);
        if q > holders {
            return Err(Error::usage(format!(
                "{label}: quorum {q} is larger than the {holders} holders"
            )));
        }
    }
    Ok(Checked {
        sha256: crate::digest::sha256_hex(source.as_bytes()),
        script,
        lines,
    })
}

/// The step's parameters with `{param}` replaced by the run's values.
pub fn resolve(text: &str, values: &BTreeMap<String, String>) -> String {
    // One pass: a value put in is never read again for placeholders.
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').map(|close| (&after[..close], close)) {
            Some((name, close)) if values.contains_key(name) => {
                out.push_str(&values[name]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_put_in_is_not_expanded_again() {
        let values: BTreeMap<String, String> = [("a", "{b}"), ("b", "secret")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(resolve("x {a} {b} {c} {", &values), "x {b} secret {c} {");
        assert_eq!(resolve("{{a}}", &values), "{{b}}");
    }
}
