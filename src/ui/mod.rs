//! The only code that touches the terminal: stdout carries data (text tables or one JSON
//! document), stderr carries everything people read while a command runs.

mod progress;

use std::io::{IsTerminal, Write};

use serde_json::Value;

use crate::cli::Format;
use crate::error::{Context as _, Error, Result};
use crate::secret::SecretString;

pub use progress::Progress;

pub const SCHEMA_VERSION: u32 = 1;

pub struct Ui {
    format: Format,
    yes: bool,
    stdin_terminal: bool,
    stderr_terminal: bool,
    silent: bool,
}

impl Ui {
    pub fn new(format: Format, yes: bool) -> Ui {
        Ui {
            format,
            yes,
            stdin_terminal: std::io::stdin().is_terminal(),
            stderr_terminal: std::io::stderr().is_terminal(),
            silent: false,
        }
    }

    /// A Ui that prints nothing and never asks: the rehearsal runs commands in-process under
    /// its own narration.
    pub fn silent() -> Ui {
        Ui {
            format: Format::Json,
            yes: true,
            stdin_terminal: false,
            stderr_terminal: false,
            silent: true,
        }
    }

    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// A line for people, on stderr. Like every text this Ui prints, it is escaped as errors
    /// are ([`escape_keep_lines`]): a control character a server answer carried into it is
    /// shown, never obeyed.
    pub fn status(&self, msg: impl std::fmt::Display) {
        if !self.silent {
            progress::eprint_line(&escape_keep_lines(&msg.to_string()));
        }
    }

    pub fn warn(&self, msg: impl std::fmt::Display) {
        if self.silent {
            return;
        }
        eprintln!("warning: {}", escape_keep_lines(&msg.to_string()));
    }

    pub fn error(&self, err: &Error) {
        eprintln!("error: {}", escape_keep_lines(&err.message));
        for cause in err.causes() {
            eprintln!("caused by: {}", escape(&cause));
        }
        if err.kind == crate::error::Kind::Internal {
            eprintln!("this is a bug in custody: please report it with the lines above");
        }
        for h in &err.hints {
            eprintln!("hint: {h}");
        }
    }

    /// The command's result: `text` for people, or `json` (with `schema_version`) for programs.
    pub fn result(&self, text: &str, mut json: Value) {
        if self.silent {
            return;
        }
        let mut out = std::io::stdout().lock();
        match self.format {
            Format::Text => {
                let text = escape_keep_lines(text);
                let _ = out.write_all(text.as_bytes());
                if !text.is_empty() && !text.ends_with('\n') {
                    let _ = out.write_all(b"\n");
                }
            }
            Format::Json => {
                if let Some(obj) = json.as_object_mut() {
                    obj.insert("schema_version".into(), SCHEMA_VERSION.into());
                }
                let _ = serde_json::to_writer_pretty(&mut out, &json);
                let _ = out.write_all(b"\n");
            }
        }
        let _ = out.flush();
    }

    /// Output that is itself a file (a shell's completion script): written as it is, whatever
    /// the format.
    pub fn raw(&self, bytes: &[u8]) -> Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)
            .and_then(|()| out.flush())
            .context("writing to stdout")
    }

    pub fn can_prompt(&self) -> bool {
        self.stdin_terminal && self.stderr_terminal
    }

    /// Whether `--yes` answers every question (a confirmation the transcript records as such).
    pub fn assumes_yes(&self) -> bool {
        self.yes
    }

    /// Asks a yes/no question; `--yes` answers it. Without a terminal it fails naming `--yes`.
    pub fn confirm(&self, question: &str) -> Result<bool> {
        if self.yes {
            return Ok(true);
        }
        if !self.can_prompt() {
            return Err(Error::usage(format!(
                "{question} — custody needs an answer but has no terminal to ask on; pass --yes"
            )));
        }
        dialoguer::Confirm::new()
            .with_prompt(escape_keep_lines(question))
            .default(false)
            .interact()
            .map_err(|e| Error::failed(format!("reading the answer: {e}")))
    }

    /// A hidden prompt. Fails naming `flag_hint` when there is no terminal.
    pub fn secret(&self, prompt: &str, flag_hint: &str) -> Result<SecretString> {
        if !self.can_prompt() {
            return Err(Error::usage(format!(
                "{prompt}: no terminal to ask on; {flag_hint}"
            )));
        }
        dialoguer::Password::new()
            .with_prompt(prompt)
            .allow_empty_password(true)
            .interact()
            .map(SecretString::new)
            .map_err(|e| Error::failed(format!("reading from the terminal: {e}")))
    }

    /// A byte counter on a terminal in text mode; silent otherwise.
    pub fn byte_progress(&self, prefix: &str) -> Progress {
        Progress::bytes(
            !self.silent && self.stderr_terminal && self.format == Format::Text,
            prefix,
        )
    }

    /// A progress bar on a terminal in text mode; silent otherwise.
    pub fn progress(&self, len: u64, prefix: &str) -> Progress {
        Progress::new(
            !self.silent && self.stderr_terminal && self.format == Format::Text,
            len,
            prefix,
        )
    }
}

/// Text from others (server answers, certificate user IDs) shown as data: control characters
/// escaped, so nothing received can move the cursor or rewrite what the operator reads.
pub fn escape(text: &str) -> String {
    escape_but(text, |_| false)
}

/// At most the first `chars` characters of `text`, cut at a character boundary (a byte slice
/// such as `&text[..12]` panics inside a multi-byte character a server may send).
pub fn prefix(text: &str, chars: usize) -> &str {
    match text.char_indices().nth(chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// [`escape`], leaving the line breaks: for custody's own messages that carry text from others.
pub fn escape_keep_lines(text: &str) -> String {
    escape_but(text, |c| c == '\n')
}

fn escape_but(text: &str, keep: impl Fn(char) -> bool) -> String {
    text.chars()
        .map(|c| {
            if !keep(c) && (c.is_control() || reorders_text(c)) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Invisible characters that reorder or hide text on a terminal (bidirectional overrides and
/// isolates, zero-width marks): shown escaped, so a crafted user ID cannot disguise itself.
fn reorders_text(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

#[cfg(test)]
mod escape_tests {
    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(super::escape("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
        assert_eq!(super::escape("Zoë"), "Zoë");
        // A right-to-left override would show "Mallory\u{202e}cba" as "Malloryabc".
        assert_eq!(super::escape("x\u{202e}cba"), "x\\u{202e}cba");
        assert_eq!(super::escape_keep_lines("a\nb\rc"), "a\nb\\rc");
        // Escaping what was escaped changes nothing: a field escaped for a result stays so.
        let once = super::escape("a\u{1b}[2J\n\u{202e}");
        assert_eq!(super::escape_keep_lines(&once), once);
    }

    #[test]
    fn a_prefix_is_cut_between_characters() {
        let sha = "0123456789aé€𝄞bcdef";
        assert_eq!(super::prefix(sha, 12), "0123456789aé");
        assert_eq!(super::prefix(sha, 13), "0123456789aé€");
        assert_eq!(super::prefix("€€€€", 12), "€€€€");
        assert_eq!(super::prefix("", 12), "");
        assert_eq!(super::prefix("abc", 0), "");
        // The byte slice it replaces (`&sha[..sha.len().min(12)]`) panics here: byte 12 is
        // inside 'é'.
        assert!(!sha.is_char_boundary(12));
    }
}
