//! A page as a witness sees it: headless Chromium (Debian's `chromium`) opens a local HTML file
//! with no network (every host name resolves to nothing), in a profile of its own, and gives
//! back the DOM it built and what it wrote to its console; or a screenshot. Each run is one
//! process, waited for with a bound and killed by pid when it overstays.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::require_tool;

const HINT: &str = "scripts/setup installs it (the Debian package chromium)";
const BOUND: Duration = Duration::from_secs(90);

/// What Chromium made of a page.
pub struct Page {
    /// The DOM after parsing, serialized (`--dump-dom`).
    pub dom: String,
    /// The page's console messages (CSP violations, errors), one per entry.
    pub console: Vec<String>,
}

impl Page {
    /// The value of `attr` on the first element whose opening tag contains `marker`
    /// (for example `id="verdict"`).
    pub fn attr(&self, marker: &str, attr: &str) -> Option<String> {
        let start = self.dom.find(marker)?;
        let tag_start = self.dom[..start].rfind('<')?;
        let tag_end = start + self.dom[start..].find('>')?;
        let tag = &self.dom[tag_start..tag_end];
        let key = format!("{attr}=\"");
        let at = tag.find(&key)? + key.len();
        let len = tag[at..].find('"')?;
        Some(tag[at..at + len].to_owned())
    }

    /// How many opening tags contain `marker`.
    pub fn count(&self, marker: &str) -> usize {
        self.dom.matches(marker).count()
    }
}

pub fn chromium() -> PathBuf {
    require_tool("chromium", HINT)
}

/// Opens `html` and returns its DOM and console.
pub fn render(html: &Path) -> Page {
    let (stdout, stderr) = run(html, &["--dump-dom"]);
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    Page {
        dom: stdout,
        console,
    }
}

/// Opens `html` and saves a `width`×`height` screenshot to `png`.
pub fn screenshot(html: &Path, png: &Path, width: u32, height: u32) {
    if let Some(dir) = png.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let _ = std::fs::remove_file(png);
    let (_, stderr) = run(
        html,
        &[
            &format!("--screenshot={}", png.display()),
            &format!("--window-size={width},{height}"),
            "--hide-scrollbars",
        ],
    );
    let meta = std::fs::metadata(png).unwrap_or_else(|e| {
        panic!(
            "chromium wrote no screenshot {}: {e}\n{stderr}",
            png.display()
        )
    });
    assert!(
        meta.len() > 1000,
        "the screenshot {} is empty",
        png.display()
    );
}

/// Where a test keeps what a person may want to look at after the run (a screenshot):
/// `target/test-artifacts/`.
pub fn artifacts() -> PathBuf {
    let dir = crate::root().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(html: &Path, extra: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", std::fs::canonicalize(html).unwrap().display());
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-extensions",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(&url)
        .env("HOME", profile.path())
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("starting chromium: {e}; {HINT}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish with {url} within {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(out.path()).unwrap();
    let stderr = std::fs::read_to_string(err.path()).unwrap();
    assert!(
        status.success(),
        "chromium exited {status} on {url}:\n{stderr}"
    );
    (stdout, stderr)
}

/// The file parses as XML (every element closed, attributes quoted, only XML's own entities):
/// a strict parse, where a browser forgives anything. Python's expat, which the machine has.
pub fn assert_well_formed(html: &Path) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])",
        ])
        .arg(html)
        .output()
        .expect("running python3 (scripts/setup needs it for the eth-account venv)");
    assert!(
        out.status.success(),
        "{} is not well-formed:\n{}",
        html.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}
