//! Progress bars (indicatif) that disappear when nobody is watching.

use indicatif::{ProgressBar, ProgressStyle};

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
        Progress(Some(bar))
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
        }
    }
}
