//! Progress bars (indicatif) that disappear when nobody is watching. While a bar is shown,
//! status lines are printed above it instead of through it.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

pub struct Progress(Option<ProgressBar>);

impl Progress {
    pub fn new(visible: bool, len: u64, prefix: &str) -> Progress {
        if !visible {
            return Progress(None);
        }
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:20}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(prefix.to_owned());
        if let Ok(mut active) = ACTIVE.lock() {
            *active = Some(bar.clone());
        }
        Progress(Some(bar))
    }
    /// A byte counter for a stream of unknown length.
    pub fn bytes(visible: bool, prefix: &str) -> Progress {
        if !visible {
            return Progress(None);
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{prefix} {spinner} {bytes} ({binary_bytes_per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(prefix.to_owned());
        if let Ok(mut active) = ACTIVE.lock() {
            *active = Some(bar.clone());
        }
        Progress(Some(bar))
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    pub fn set(&self, pos: u64, msg: impl Into<String>) {
        if let Some(b) = &self.0 {
            b.set_position(pos);
            b.set_message(msg.into());
        }
    }
    pub fn set_len(&self, len: u64) {
        if let Some(b) = &self.0 {
            b.set_length(len);
        }
    }
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
            if let Ok(mut active) = ACTIVE.lock() {
                *active = None;
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Prints a line on stderr, above the progress bar when one is shown.
pub(super) fn eprint_line(msg: &str) {
    let active = ACTIVE.lock().ok().and_then(|a| a.clone());
    match active {
        Some(bar) => bar.println(msg),
        None => eprintln!("{msg}"),
    }
}
