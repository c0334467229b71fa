//! An Ethereum JSON-RPC URL: parsed once, `https://` or a loopback `http://` only, and shown only
//! redacted. Providers put an API key in the user info, the query or the path, so the full URL
//! lives in a zeroizing string that only this module's `request_url` (for the HTTP client in
//! `chain`) turns back into a URL; `Display`, `Debug` and `shown` give the redacted form:
//!
//! `scheme://host[:port]`, then `/…` when the path is anything but `/`, and `?…` when there is a
//! query; user info is dropped (`…@` says there was some). The host is shown: custody takes a
//! host name for no secret (the place the operator recognises the provider by).

use std::path::Path;

use crate::error::{Context as _, Error, Kind, Result};
use crate::secret::SecretString;

/// One RPC URL, accepted: https://, or http:// to a loopback address.
#[derive(Clone)]
pub struct RpcUrl {
    full: SecretString,
    shown: String,
    /// Plain http:// to 127.0.0.0/8, [::1] or localhost (the client then uses no proxy and
    /// resolves localhost to 127.0.0.1 itself).
    loopback: bool,
    /// The URL holds user info, a query or a path: something a key may hide in.
    secret_parts: bool,
}

impl RpcUrl {
    /// `text` as given through `source` (a flag, a file's line, the environment), which error
    /// messages name instead of the text: a URL that does not parse is never echoed.
    pub fn parse(text: &str, source: &str) -> Result<RpcUrl> {
        let mut url = reqwest::Url::parse(text.trim()).map_err(|_| {
            Error::usage(format!(
                "{source}: not a URL (it is not shown: it may hold an API key); give https://HOST/… \
                 or http:// to a loopback address"
            ))
        })?;
        let scheme = url.scheme().to_owned();
        let host = url.host_str().unwrap_or_default().to_owned();
        let rule = "an Ethereum JSON-RPC URL is https://HOST/…, or http:// to a loopback address";
        if !matches!(scheme.as_str(), "http" | "https") {
            return Err(Error::usage(format!(
                "{source}: a {}:// URL; {rule}",
                crate::ui::escape(&scheme)
            )));
        }
        if host.is_empty() {
            return Err(Error::usage(format!(
                "{source}: a {scheme}:// URL without a host; {rule}"
            )));
        }
        url.set_fragment(None);
        let loopback = scheme == "http";
        if loopback && !is_loopback(&url) {
            return Err(Error::usage(format!(
                "{source}: {}: plain http:// is accepted only to a loopback address (127.0.0.1, \
                 [::1], localhost): anything on the way could read or change what the chain \
                 says. Use https://",
                shown(&url)
            )));
        }
        let secret_parts = !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || !matches!(url.path(), "" | "/");
        Ok(RpcUrl {
            shown: shown(&url),
            full: SecretString::new(url.as_str().to_owned()),
            loopback,
            secret_parts,
        })
    }

    /// The redacted form, for every message, record and report.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// User info, a query or a path: parts an API key may hide in (then argv is no place for
    /// it).
    pub fn has_secret_parts(&self) -> bool {
        self.secret_parts
    }

    pub(super) fn is_loopback_http(&self) -> bool {
        self.loopback
    }

    /// The full URL, for the HTTP request only (reqwest's own copy is not zeroized).
    pub(super) fn request_url(&self) -> Result<reqwest::Url> {
        reqwest::Url::parse(self.full.expose())
            .map_err(|_| Error::internal(format!("{}: no longer parses", self.shown)))
    }

    /// Same URL (the full text): the same provider given twice.
    fn same(&self, other: &RpcUrl) -> bool {
        self.full.expose() == other.full.expose()
    }
}

impl std::fmt::Display for RpcUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Debug for RpcUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RpcUrl({})", self.shown)
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    }
    match host.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// The redacted form of a parsed URL (the rule in the module's comment).
fn shown(url: &reqwest::Url) -> String {
    let mut out = format!("{}://", url.scheme());
    if !url.username().is_empty() || url.password().is_some() {
        out.push_str("…@");
    }
    out.push_str(url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    if !matches!(url.path(), "" | "/") {
        out.push_str("/…");
    }
    if url.query().is_some() {
        out.push_str("?…");
    }
    crate::ui::escape(&out)
}

/// A URL as some record holds it (a transcript line written before URLs were redacted), shown
/// by the same rule; text that is no URL with a host is returned as it is.
pub fn redacted(text: &str) -> String {
    match reqwest::Url::parse(text) {
        Ok(url) if url.host_str().is_some_and(|h| !h.is_empty()) => shown(&url),
        _ => text.to_owned(),
    }
}

/// Where a command's RPC URLs come from: its flag (argv), a file of them, and the environment,
/// which is read only when neither the flag nor the file is given.
pub struct Sources<'a> {
    /// The flag's name, such as `--rpc`.
    pub flag: &'a str,
    pub argv: &'a [String],
    /// The file flag's name and value, such as `--rpc-file` and its path.
    pub file: Option<(&'a str, &'a Path)>,
    /// `CUSTODY_RPC_URL`, when this flag reads it.
    pub env: Option<SecretString>,
}

/// The URLs gathered from `Sources`.
pub struct Gathered {
    pub urls: Vec<RpcUrl>,
    /// A URL given in argv holds parts a key may hide in (every user of the machine can read
    /// argv): the caller warns.
    pub secret_in_argv: bool,
}

/// The name of the environment variable that gives the RPC URLs.
pub const ENV: &str = "CUSTODY_RPC_URL";

impl Sources<'_> {
    /// Every URL, parsed and checked; the same URL twice is refused (it is not two providers).
    pub fn gather(&self) -> Result<Gathered> {
        let mut urls = Vec::new();
        let mut secret_in_argv = false;
        for (i, text) in self.argv.iter().enumerate() {
            let url = RpcUrl::parse(text, &format!("{} (#{})", self.flag, i + 1))?;
            secret_in_argv |= url.has_secret_parts();
            urls.push(url);
        }
        if let Some((flag, path)) = self.file {
            let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).with_kind(
                Kind::Usage,
                format!("{flag} {}: cannot read it", path.display()),
            )?);
            let before = urls.len();
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                urls.push(RpcUrl::parse(
                    line,
                    &format!("{flag} {} line {}", path.display(), n + 1),
                )?);
            }
            if urls.len() == before {
                return Err(Error::usage(format!(
                    "{flag} {}: holds no URL (one a line; blank lines and # comments are skipped)",
                    path.display()
                )));
            }
        }
        if urls.is_empty()
            && let Some(env) = &self.env
        {
            for (i, text) in split_list(env.expose()).enumerate() {
                urls.push(RpcUrl::parse(text, &format!("{ENV} (#{})", i + 1))?);
            }
        }
        for (i, a) in urls.iter().enumerate() {
            if let Some(j) = urls[..i].iter().position(|b| b.same(a)) {
                return Err(Error::usage(format!(
                    "RPC {} ({a}) is RPC {} given again: two RPCs are two providers",
                    i + 1,
                    j + 1
                )));
            }
        }
        Ok(Gathered {
            urls,
            secret_in_argv,
        })
    }
}

/// `CUSTODY_RPC_URL`'s list: URLs separated by commas or white space (a URL that holds a
/// comma writes it %2C).
fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> u8 {
        RpcUrl::parse(text, "--rpc").unwrap_err().kind.exit_code()
    }

    #[test]
    fn only_https_or_loopback_http() {
        for ok in [
            "https://mainnet.example.org/v3/KEY",
            "https://10.0.0.1:8545",
            "http://127.0.0.1:8545",
            "http://127.3.2.1:8545/",
            "http://[::1]:8545",
            "http://LOCALHOST:8545",
        ] {
            assert!(RpcUrl::parse(ok, "--rpc").is_ok(), "{ok}");
        }
        assert!(
            RpcUrl::parse("http://localhost:1", "x")
                .unwrap()
                .is_loopback_http()
        );
        assert!(
            !RpcUrl::parse("https://localhost:1", "x")
                .unwrap()
                .is_loopback_http()
        );
        for bad in [
            "http://10.0.0.1:8545",
            "http://mainnet.example.org/v3/KEY",
            "http://localhost.example.org:8545",
            "http://[::2]:8545",
            "ws://127.0.0.1:8545",
            "wss://mainnet.example.org",
            "file:///etc/passwd",
            "ftp://127.0.0.1/",
            "not a url",
            "",
        ] {
            assert_eq!(code(bad), 2, "{bad}");
        }
    }

    #[test]
    fn the_secret_parts_are_never_shown() {
        let secret =
            "https://alice:hunter2@eth.example.org:8443/v3/0123abcdKEY?apikey=QSECRET#frag";
        let url = RpcUrl::parse(secret, "--rpc").unwrap();
        assert_eq!(url.shown(), "https://…@eth.example.org:8443/…?…");
        assert_eq!(url.to_string(), url.shown());
        assert_eq!(
            format!("{url:?}"),
            "RpcUrl(https://…@eth.example.org:8443/…?…)"
        );
        assert!(url.has_secret_parts());
        let full = url.request_url().unwrap();
        assert_eq!(full.password(), Some("hunter2"));
        assert_eq!(full.fragment(), None);
        assert_eq!(redacted(secret), url.shown());
        assert_eq!(redacted("http://u:p@10.0.0.1/KEY"), "http://…@10.0.0.1/…");
        assert_eq!(redacted("https://127.0.0.1:8200"), "https://127.0.0.1:8200");
        assert_eq!(redacted("blue"), "blue");
        let plain = RpcUrl::parse("https://eth.example.org/", "--rpc").unwrap();
        assert_eq!(plain.shown(), "https://eth.example.org");
        assert!(!plain.has_secret_parts());
        // An error names the host at most, never the key.
        for bad in [
            "http://alice:hunter2@10.0.0.1/v3/0123abcdKEY?apikey=QSECRET",
            "ws://alice:hunter2@127.0.0.1/v3/0123abcdKEY?apikey=QSECRET",
            "https//alice:hunter2@/v3/0123abcdKEY?apikey=QSECRET",
        ] {
            let e = RpcUrl::parse(bad, "--rpc").unwrap_err().to_string();
            for s in ["alice", "hunter2", "0123abcdKEY", "QSECRET"] {
                assert!(!e.contains(s), "{e}");
            }
        }
    }

    #[test]
    fn sources_give_argv_then_the_file_and_else_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rpcs");
        std::fs::write(
            &file,
            "# two providers\nhttps://a.example.org/v3/K1\n\n  http://127.0.0.1:8545  \n",
        )
        .unwrap();
        let env = || {
            Some(SecretString::new(
                "https://c.example.org/K3, https://d.example.org\nhttp://127.0.0.1:1".into(),
            ))
        };
        let argv = vec!["https://b.example.org".to_owned()];
        let got = Sources {
            flag: "--rpc",
            argv: &argv,
            file: Some(("--rpc-file", &file)),
            env: env(),
        }
        .gather()
        .unwrap();
        let shown: Vec<&str> = got.urls.iter().map(RpcUrl::shown).collect();
        assert_eq!(
            shown,
            [
                "https://b.example.org",
                "https://a.example.org/…",
                "http://127.0.0.1:8545"
            ]
        );
        assert!(!got.secret_in_argv);
        let got = Sources {
            flag: "--rpc",
            argv: &[],
            file: None,
            env: env(),
        }
        .gather()
        .unwrap();
        assert_eq!(got.urls.len(), 3);
        let secret = vec!["https://b.example.org/?k=1".to_owned()];
        assert!(
            Sources {
                flag: "--rpc",
                argv: &secret,
                file: None,
                env: None
            }
            .gather()
            .unwrap()
            .secret_in_argv
        );
        let twice = vec![
            "https://b.example.org".to_owned(),
            "https://b.example.org".to_owned(),
        ];
        let e = Sources {
            flag: "--rpc",
            argv: &twice,
            file: None,
            env: None,
        }
        .gather()
        .err()
        .unwrap();
        assert_eq!(e.kind.exit_code(), 2);
        std::fs::write(&file, "# none\n").unwrap();
        let e = Sources {
            flag: "--rpc",
            argv: &[],
            file: Some(("--rpc-file", &file)),
            env: None,
        }
        .gather()
        .err()
        .unwrap();
        assert_eq!(e.kind.exit_code(), 2);
        std::fs::write(&file, "ftp://x.example.org/?k=SECRET\n").unwrap();
        let e = Sources {
            flag: "--rpc",
            argv: &[],
            file: Some(("--rpc-file", &file)),
            env: None,
        }
        .gather()
        .err()
        .unwrap();
        assert!(
            e.to_string().contains("line 1") && !e.to_string().contains("SECRET"),
            "{e}"
        );
    }
}
