//! Node addresses: TLS always, plain http only on loopback.

use std::net::IpAddr;

use reqwest::Url;

use crate::error::{Context, Error, Kind, Result};

/// A validated node address such as `https://127.0.0.1:8200`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr(Url);

impl Addr {
    pub fn parse(s: &str) -> Result<Addr> {
        let url = Url::parse(s.trim_end_matches('/'))
            .with_kind(Kind::Usage, format!("--addr {s:?} is not a URL"))?;
        let host = url
            .host_str()
            .ok_or_else(|| Error::usage(format!("--addr {s:?} has no host")))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(host) => {}
            "http" => {
                return Err(Error::usage(format!(
                    "--addr {s:?}: plain http is accepted only for loopback addresses; use https"
                )));
            }
            other => {
                return Err(Error::usage(format!(
                    "--addr {s:?}: unsupported scheme {other:?}"
                )));
            }
        }
        if url.path() != "/" && !url.path().is_empty() {
            return Err(Error::usage(format!(
                "--addr {s:?}: give the server's base address, without a path"
            )));
        }
        Ok(Addr(url))
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    /// `https://host:port` without a trailing slash, as operators write it.
    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    pub fn join(&self, api_path: &str) -> Url {
        let mut url = self.0.clone();
        url.set_path(&format!("/v1/{}", api_path.trim_start_matches('/')));
        url
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_loopback() {
        assert!(Addr::parse("https://vault.example:8200").is_ok());
        assert!(Addr::parse("http://127.0.0.1:8200").is_ok());
        assert!(Addr::parse("http://localhost:8200").is_ok());
        assert!(Addr::parse("http://[::1]:8200").is_ok());
        assert!(Addr::parse("http://10.0.0.1:8200").is_err());
        assert!(Addr::parse("ftp://127.0.0.1").is_err());
        assert!(Addr::parse("not a url").is_err());
        assert!(Addr::parse("https://h:1/v1/sys").is_err());
    }

    #[test]
    fn a_bad_url_keeps_the_parser_error() {
        let err = Addr::parse("not a url").unwrap_err();
        assert_eq!(err.message, "--addr \"not a url\" is not a URL");
        assert_eq!(err.kind, crate::error::Kind::Usage);
        assert_eq!(err.causes().count(), 1);
    }

    #[test]
    fn join_builds_api_paths() {
        let a = Addr::parse("https://127.0.0.1:8200/").unwrap();
        assert_eq!(a.as_str(), "https://127.0.0.1:8200");
        assert_eq!(
            a.join("sys/seal-status").as_str(),
            "https://127.0.0.1:8200/v1/sys/seal-status"
        );
    }
}
