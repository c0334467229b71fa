//! `custody ceremony list | show NAME | run NAME`: the ceremony scripts, walked step by step.
//! Actions run as custody itself (the same binary, the same global options); manual steps wait
//! for a confirmation; checks check. Each finished step goes into the transcript and the run's
//! state file, so an interrupted run resumes at its first unfinished step and never repeats one.

use std::collections::BTreeMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::ceremony::script::{Kind, StepDef, resolve};
use crate::ceremony::{self, BUILTIN, RunState, actions};
use crate::cli::GlobalArgs;
use crate::error::{Context as _, Error, Kind as ErrKind, Result};
use crate::flows::Ctx;
use crate::transcript::Step;

pub fn list(ctx: &Ctx) -> Result<()> {
    let mut text = String::new();
    let mut items = Vec::new();
    for (name, _) in BUILTIN {
        let (_, c) = ceremony::load(name)?;
        text.push_str(&format!("{name:<16} {}\n", c.script.title));
        items.push(json!({ "name": name, "title": c.script.title, "steps": c.script.steps.len() }));
    }
    ctx.ui.result(&text, json!({ "ceremonies": items }));
    Ok(())
}

fn describe(step: &StepDef, values: &BTreeMap<String, String>) -> String {
    match step.kind() {
        Kind::Action(a) => {
            let p: BTreeMap<String, String> = step
                .with
                .iter()
                .map(|(k, v)| (k.clone(), resolve(v, values)))
                .collect();
            format!("runs `custody {}`", shown_argv(&actions::argv(&a, &p)))
        }
        Kind::Check(c) => format!(
            "checks {c} {}",
            step.with
                .values()
                .map(|v| resolve(v, values))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Kind::Manual => format!(
            "{} — then confirms: \"{}\"",
            resolve(step.instruction.as_deref().unwrap_or(""), values),
            resolve(step.confirm.as_deref().unwrap_or(""), values)
        ),
    }
}

/// A step's command line as the terminal and the dry run show it: an RPC URL redacted (it may
/// hold an API key; `chain::RpcUrl`).
fn shown_argv(argv: &[String]) -> String {
    let mut out: Vec<String> = Vec::with_capacity(argv.len());
    for (i, word) in argv.iter().enumerate() {
        let after_rpc = i > 0 && matches!(argv[i - 1].as_str(), "--rpc" | "--nonce-floor-from-rpc");
        out.push(if after_rpc {
            crate::chain::RpcUrl::parse(word, "the step's RPC URL")
                .map_or_else(|_| "(an RPC URL, not shown)".to_owned(), |u| u.to_string())
        } else {
            word.clone()
        });
    }
    out.join(" ")
}

pub fn show(ctx: &Ctx, name: &str) -> Result<()> {
    let (_, c) = ceremony::load(name)?;
    let s = &c.script;
    let placeholders: BTreeMap<String, String> = s
        .params
        .keys()
        .map(|k| (k.clone(), format!("<{k}>")))
        .collect();
    let mut text = format!("{} — {}\n{}\n", s.name, s.title, s.description);
    if let Some(q) = s.quorum {
        text.push_str(&format!("Quorum: {q}\n"));
    }
    for role in &s.roles {
        text.push_str(&format!(
            "\n{}{}:\n",
            role.id,
            role.count.map(|n| format!(" ({n})")).unwrap_or_default()
        ));
        for (i, st) in s
            .steps
            .iter()
            .enumerate()
            .filter(|(_, st)| st.get_ref().who == role.id)
        {
            text.push_str(&format!(
                "  step {}. {}: {}\n",
                i + 1,
                st.get_ref().id,
                describe(st.get_ref(), &placeholders)
            ));
        }
    }
    if !s.params.is_empty() {
        text.push_str("\nParameters (--param KEY=VALUE):\n");
        for (k, p) in &s.params {
            text.push_str(&format!(
                "  {k}: {}{}\n",
                p.description,
                p.default
                    .as_ref()
                    .map(|d| format!(" [default: {d}]"))
                    .unwrap_or_default()
            ));
        }
    }
    let steps: Vec<_> = s.steps.iter().map(|st| json!({ "id": st.get_ref().id, "who": st.get_ref().who, "what": describe(st.get_ref(), &placeholders) })).collect();
    ctx.ui.result(
        &text,
        json!({ "ceremony": s.name, "title": s.title, "quorum": s.quorum, "steps": steps }),
    );
    Ok(())
}

fn parse_params(
    script: &ceremony::script::Script,
    given: &[String],
) -> Result<BTreeMap<String, String>> {
    let mut values = BTreeMap::new();
    for g in given {
        let (k, v) = g
            .split_once('=')
            .ok_or_else(|| Error::usage(format!("--param {g:?}: give KEY=VALUE")))?;
        if !script.params.contains_key(k) {
            return Err(Error::usage(format!(
                "--param {k}: ceremony {} takes no such parameter (it takes: {})",
                script.name,
                script.params.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        values.insert(k.to_owned(), v.to_owned());
    }
    let mut missing = Vec::new();
    for (k, p) in &script.params {
        if !values.contains_key(k) {
            match &p.default {
                Some(d) => {
                    values.insert(k.clone(), d.clone());
                }
                None => missing.push(k.clone()),
            }
        }
    }
    if !missing.is_empty() {
        return Err(Error::usage(format!(
            "ceremony {} needs --param for: {}",
            script.name,
            missing.join(", ")
        )));
    }
    Ok(values)
}

/// The global options a step's custody inherits, with the step's own token and nodes.
/// The child's global flags: the parent's, with the step's own `addr` and `token_file` where
/// it gives them, and text output (the child's output goes to the operator as it is).
fn child_args(global: &GlobalArgs, p: &BTreeMap<String, String>) -> Vec<String> {
    let mut child = global.clone();
    if let Some(list) = p.get("addr") {
        child.addr = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if let Some(t) = p.get("token_file") {
        child.token_file = Some(t.into());
    }
    child.format = crate::cli::Format::Text;
    child.to_argv()
}

/// How `ceremony run` was asked to run.
pub struct RunOptions<'a> {
    pub dry_run: bool,
    pub state: Option<&'a Path>,
    /// A step may run an exec: balancer command.
    pub allow_exec: bool,
}

pub fn run(
    ctx: &Ctx,
    global: &GlobalArgs,
    name: &str,
    given: &[String],
    options: RunOptions<'_>,
) -> Result<()> {
    let RunOptions {
        dry_run,
        state,
        allow_exec,
    } = options;
    let (label, checked) = ceremony::load(name)?;
    let script = &checked.script;
    let values = parse_params(script, given)?;
    let state_path = state.map(Path::to_path_buf).unwrap_or_else(|| {
        PathBuf::from(format!(
            "custody-ceremony-{}.state.json",
            script.name.replace(['/', '.'], "-")
        ))
    });
    let record = ctx.recorded_lines()?;
    let (mut run_state, fresh) = resume_state(&checked, &state_path, &values, record.len())?;
    reconcile(ctx, script, &mut run_state, &record, &state_path)?;
    let total = script.steps.len();
    if !run_state.done.is_empty() {
        ctx.ui.status(format!(
            "Resuming {}: {} of {total} steps were finished earlier.",
            script.name,
            run_state.done.len()
        ));
    }
    check_switches(script, &values)?;
    if !dry_run {
        check_exec(script, &values, allow_exec)?;
        if fresh {
            // Written before the first step: a run killed at any point after it resumes.
            ceremony::write_state(&state_path, &run_state)?;
        }
    }
    let runner = StepRunner {
        ctx,
        global,
        values: &values,
        exe: std::env::current_exe().context("finding custody itself")?,
    };
    let mut report = Vec::new();
    for (i, spanned) in script.steps.iter().enumerate() {
        let step = spanned.get_ref();
        let head = format!(
            "Step {}/{total} [{}] {} — {}",
            i + 1,
            step.who,
            step.id,
            describe(step, &values)
        );
        if run_state.done.contains(&step.id) {
            ctx.ui.status(format!("{head}: done earlier"));
            report.push(json!({ "step": step.id, "state": "done-earlier" }));
            continue;
        }
        if dry_run {
            ctx.ui.status(format!("{head} (dry run: nothing done)"));
            report.push(json!({ "step": step.id, "state": "planned", "who": step.who, "what": describe(step, &values) }));
            continue;
        }
        ctx.ui.status(&head);
        let facts = runner.run(i + 1, step)?;
        ctx.transcript
            .append(Step::new(&script.name, &step.id, &step.who, facts))?;
        run_state.done.insert(step.id.clone());
        ceremony::write_state(&state_path, &run_state)?;
        report.push(json!({ "step": step.id, "state": "done" }));
    }
    let finished = !dry_run
        && script
            .steps
            .iter()
            .all(|s| run_state.done.contains(&s.get_ref().id));
    ctx.ui.result(
        &format!(
            "Ceremony {} ({label}): {}",
            script.name,
            if dry_run { "dry run, nothing was done".to_owned() } else if finished { format!("all {total} steps done") } else { "not finished".to_owned() }
        ),
        json!({ "ceremony": script.name, "dry_run": dry_run, "finished": finished, "steps": report, "state_file": state_path.display().to_string() }),
    );
    Ok(())
}

/// The state of an earlier run of this very script with these very parameter values, or a
/// fresh one.
fn resume_state(
    checked: &ceremony::script::Checked,
    state_path: &Path,
    values: &BTreeMap<String, String>,
    transcript_lines: usize,
) -> Result<(RunState, bool)> {
    let script = &checked.script;
    let params = ceremony::params_sha256(values);
    let Some(s) = ceremony::read_state(state_path)? else {
        let fresh = RunState {
            ceremony: script.name.clone(),
            script_sha256: checked.sha256.clone(),
            params_sha256: params,
            transcript_from: transcript_lines as u64,
            done: Default::default(),
        };
        return Ok((fresh, true));
    };
    let shown = state_path.display();
    if s.ceremony != script.name || s.script_sha256 != checked.sha256 {
        return Err(Error::precondition(format!(
            "{shown} belongs to another version of ceremony {}: the script changed since that run began; \
             finish with the old script or remove the state file to start over",
            script.name
        )));
    }
    if s.params_sha256 != params {
        return Err(Error::precondition(format!(
            "{shown} belongs to a run of {} with other parameter values: give the same --param \
             values to resume it, or remove the state file to start over",
            script.name
        )));
    }
    if let Some(unknown) = s
        .done
        .iter()
        .find(|id| !script.steps.iter().any(|st| &st.get_ref().id == *id))
    {
        return Err(Error::verification(format!(
            "{shown} says step {:?} is done, but ceremony {} has no such step: the state was changed",
            crate::ui::escape(unknown),
            script.name
        )));
    }
    Ok((s, false))
}

/// The state and this run's transcript lines agree. Every step the state says is done is
/// recorded (a state edited to skip a step is refused); a step recorded but not yet in the
/// state (the run was killed between the two writes) is done.
fn reconcile(
    ctx: &Ctx,
    script: &ceremony::script::Script,
    state: &mut RunState,
    record: &[serde_json::Value],
    state_path: &Path,
) -> Result<()> {
    let from = usize::try_from(state.transcript_from).unwrap_or(usize::MAX);
    let recorded: Vec<&str> = record
        .get(from..)
        .unwrap_or_default()
        .iter()
        .filter(|e| e["ceremony"].as_str() == Some(script.name.as_str()))
        .filter_map(|e| e["step"].as_str())
        .collect();
    let missing: Vec<&String> = state
        .done
        .iter()
        .filter(|id| !recorded.contains(&id.as_str()))
        .collect();
    if !missing.is_empty() {
        return Err(Error::verification(format!(
            "{} says step(s) {} of ceremony {} are done, but the transcript {} does not record \
             them: the state was changed, or belongs to another transcript; nothing was run",
            state_path.display(),
            missing
                .iter()
                .map(|m| format!("{:?}", crate::ui::escape(m)))
                .collect::<Vec<_>>()
                .join(", "),
            script.name,
            ctx.transcript.path().display()
        )));
    }
    for spanned in &script.steps {
        let id = &spanned.get_ref().id;
        if recorded.contains(&id.as_str()) && state.done.insert(id.clone()) {
            ctx.ui.status(format!(
                "Step {id} is recorded in the transcript but not in {}: the last run stopped \
                 right after it; it is done",
                state_path.display()
            ));
        }
    }
    Ok(())
}

/// Before any step runs: a switch filled in from a parameter is "true" or "false", and no value
/// starts with '-' (it would read as a flag of the child custody).
fn check_switches(
    script: &ceremony::script::Script,
    values: &BTreeMap<String, String>,
) -> Result<()> {
    for (i, spanned) in script.steps.iter().enumerate() {
        let step = spanned.get_ref();
        for (k, v) in &step.with {
            let value = resolve(v, values);
            if value.starts_with('-') {
                return Err(Error::usage(format!(
                    "step {} ({}): {k} = {:?} starts with '-', so it would read as a flag; nothing was run",
                    i + 1,
                    step.id,
                    crate::ui::escape(&value)
                )));
            }
            actions::check_switch(k, &value).map_err(|e| {
                Error::usage(format!(
                    "step {} ({}): {e}; nothing was run",
                    i + 1,
                    step.id
                ))
            })?;
        }
    }
    Ok(())
}

/// A script runs an operator's balancer command only when the operator says so (--allow-exec):
/// the command runs with the operator's rights, and a script comes from someone else.
fn check_exec(
    script: &ceremony::script::Script,
    values: &BTreeMap<String, String>,
    allow_exec: bool,
) -> Result<()> {
    for (i, spanned) in script.steps.iter().enumerate() {
        let step = spanned.get_ref();
        let lb = step.with.get("lb").map(|v| resolve(v, values));
        if let Some(command) = lb.as_deref().and_then(|lb| lb.strip_prefix("exec:"))
            && !allow_exec
        {
            return Err(Error::usage(format!(
                "step {} ({}) runs the balancer command {:?}; a ceremony script runs a command \
                 only when the operator gives --allow-exec; nothing was run",
                i + 1,
                step.id,
                crate::ui::escape(command)
            )));
        }
    }
    Ok(())
}

/// Runs one step of a ceremony: an action as a child custody, a check here, a manual step
/// confirmed on the terminal.
struct StepRunner<'a> {
    ctx: &'a Ctx,
    global: &'a GlobalArgs,
    values: &'a BTreeMap<String, String>,
    exe: PathBuf,
}

impl StepRunner<'_> {
    /// The facts the transcript records for step `n`, once it is done.
    fn run(&self, n: usize, step: &ceremony::script::StepDef) -> Result<serde_json::Value> {
        let p: BTreeMap<String, String> = step
            .with
            .iter()
            .map(|(k, v)| (k.clone(), resolve(v, self.values)))
            .collect();
        match step.kind() {
            Kind::Action(a) => {
                let mut args = child_args(self.global, &p);
                args.extend(actions::argv(&a, &p));
                let status = Command::new(&self.exe)
                    .args(&args)
                    .status()
                    .context(format!("step {}: running custody", step.id))?;
                if !status.success() {
                    let code = status.code().unwrap_or(1);
                    return Err(Error::new(
                        ErrKind::from_exit_code(code),
                        format!(
                            "step {n} ({}) failed with exit {code}; nothing after it ran. Fix it and run the ceremony again: it resumes at this step",
                            step.id
                        ),
                    ));
                }
                Ok(json!({ "kind": "action", "action": a }))
            }
            Kind::Check(c) => {
                run_check(&c, &p).map_err(|e| {
                    e.doing(format!("step {n} ({})", step.id)).hint(
                        "nothing after it ran. Fix it and run the ceremony again: it resumes at this step",
                    )
                })?;
                Ok(json!({ "kind": "check", "check": c, "with": p }))
            }
            Kind::Manual => {
                let question = resolve(step.confirm.as_deref().unwrap_or(""), self.values);
                self.ctx.ui.status(format!(
                    "  {}",
                    resolve(step.instruction.as_deref().unwrap_or(""), self.values)
                ));
                if !self.ctx.ui.confirm(&question)? {
                    return Err(Error::failed(format!(
                        "step {n} ({}) was not confirmed; run the ceremony again to resume here",
                        step.id
                    )));
                }
                Ok(json!({ "kind": "manual", "confirmed": question }))
            }
        }
    }
}

fn run_check(check: &str, p: &BTreeMap<String, String>) -> Result<()> {
    match check {
        "port-closed" => {
            let address = p.get("address").cloned().unwrap_or_default();
            let addrs: Vec<_> = address
                .to_socket_addrs()
                .with_kind(ErrKind::Usage, format!("{address:?} is not host:port"))?
                .collect();
            for a in addrs {
                if TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok() {
                    return Err(Error::verification(format!(
                        "{address} still accepts connections"
                    )));
                }
            }
            Ok(())
        }
        "file-exists" => {
            let path = p.get("path").cloned().unwrap_or_default();
            if Path::new(&path).is_file() {
                Ok(())
            } else {
                Err(Error::verification(format!("{path} does not exist")))
            }
        }
        other => Err(Error::usage(format!("unknown check {other}"))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_step_s_rpc_url_is_shown_redacted() {
        let argv: Vec<String> = [
            "wallet",
            "bind",
            "authority",
            "--rpc",
            "https://u:p@eth.example.org/v3/KEY?k=Q",
            "--nonce-floor-from-rpc",
            "ftp://KEY",
            "--contract",
            "0x1",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(
            super::shown_argv(&argv),
            "wallet bind authority --rpc https://…@eth.example.org/…?… --nonce-floor-from-rpc \
             (an RPC URL, not shown) --contract 0x1"
        );
    }
}
