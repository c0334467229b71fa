//! The page's own tests: text from others made inert, and the page well-formed.

use super::*;
use crate::transcript::{Step, Transcript};
use serde_json::json;

/// A strict check that `page` is well-formed XML of the kind the renderer writes: every
/// element closed in order, attributes quoted, only the five XML entities (and numeric).
pub fn well_formed(page: &str) -> Result<(), String> {
    let body = page.strip_prefix("<!DOCTYPE html>\n").ok_or("no doctype")?;
    let mut stack: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.find(['<', '&']) {
        let (text, tail) = rest.split_at(at);
        if text.contains('>') {
            return Err(format!("a bare > in text: {text:?}"));
        }
        if tail.starts_with('&') {
            let end = tail.find(';').ok_or("an unterminated entity")?;
            let name = &tail[1..end];
            let numeric = name
                .strip_prefix('#')
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()));
            if !numeric && !["amp", "lt", "gt", "quot", "apos"].contains(&name) {
                return Err(format!("entity &{name};"));
            }
            rest = &tail[end + 1..];
            continue;
        }
        let end = tail.find('>').ok_or("an unterminated tag")?;
        let tag = &tail[1..end];
        if tag.contains('<') {
            return Err(format!("< inside a tag: {tag:?}"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else {
            let self_closed = tag.ends_with('/');
            let inner = tag.trim_end_matches('/');
            let name = inner.split(' ').next().unwrap_or_default().to_owned();
            // attributes: name="value" pairs, the value without a raw quote
            let mut attrs = inner[name.len()..].trim();
            while !attrs.is_empty() {
                let eq = attrs
                    .find("=\"")
                    .ok_or(format!("unquoted attribute in {tag:?}"))?;
                let close = attrs[eq + 2..]
                    .find('"')
                    .ok_or("an unterminated attribute")?;
                attrs = attrs[eq + 2 + close + 1..].trim_start();
            }
            if !self_closed {
                stack.push(name);
            }
        }
        rest = &tail[end + 1..];
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err(format!("unclosed: {stack:?}"))
    }
}

#[test]
fn text_from_others_is_inert() {
    let evil = "<script>alert(1)</script> \"Mallory\" 'x' & \u{1b}[2J x\u{202e}cba\u{0}";
    let out = escape(evil);
    assert_eq!(
        out,
        "&lt;script&gt;alert(1)&lt;/script&gt; &quot;Mallory&quot; &#39;x&#39; &amp; \\u{1b}[2J x\\u{202e}cba\\u{0}"
    );
    assert!(!out.chars().any(|c| c.is_control()));
}

#[test]
fn the_checker_refuses_what_it_should() {
    assert!(well_formed("<!DOCTYPE html>\n<a><b></a></b>").is_err());
    assert!(well_formed("<!DOCTYPE html>\n<a x=y></a>").is_err());
    assert!(well_formed("<!DOCTYPE html>\n<a>&nbsp;</a>").is_err());
    assert!(well_formed("<!DOCTYPE html>\n<a><meta x=\"1\" /></a>").is_ok());
}

#[test]
fn a_page_with_a_hostile_user_id_is_well_formed_and_has_no_script() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let t = Transcript::at(&path);
    let evil = "<script>alert('x')</script>\" onload=\"x\u{202e}\u{7}";
    t.append(Step::new(
        "init",
        "sys/init",
        "operator",
        json!({ "threshold": 1, "recipients_verified": true, "holders": [{ "index": 1, "fingerprint": "AA", "user_id": evil }] }),
    ))
    .unwrap();
    t.append(Step::new(
        "unseal",
        "sys/unseal",
        evil,
        json!({ "holders": ["AA"], "shares_given": 1 }),
    ))
    .unwrap();
    let report = crate::flows::report::build(&path, None).unwrap();
    let page = render(&report);
    well_formed(&page).unwrap();
    assert!(!page.to_ascii_lowercase().contains("<script"));
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)"));
    assert!(page.contains("\\u{202e}"));
    assert!(page.contains("<section id=\"verdict\" data-chain=\"intact\">"));
    assert!(page.contains("<tr class=\"holder\" data-fingerprint=\"AA\">"));
    assert!(page.contains("data-ceremony=\"unseal\""));
    assert!(page.contains("<section id=\"nonces\">"));
}
