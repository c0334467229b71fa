//! A throwaway HAProxy in front of a blue and a green cluster: HTTP on 127.0.0.1 (or on a
//! [`Host`]'s address in its network namespace), TLS to the servers (each cluster's own CA),
//! health check `GET /v1/sys/health` expecting 200 (only an active node passes), green's servers
//! starting in maintenance, the runtime API on a socket.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::{Host, process};
use crate::error::{Context, Error, Result};

pub struct LbServer {
    pub name: String,
    /// The server's address (127.0.0.1 for a cluster on loopback).
    pub ip: IpAddr,
    pub port: u16,
    pub ca_file: PathBuf,
    /// Starts in maintenance (`disabled`).
    pub disabled: bool,
}

pub struct LocalHaproxy {
    pub ip: IpAddr,
    pub port: u16,
    pub socket: PathBuf,
    pub backend: String,
    pub log: PathBuf,
    child: Option<Child>,
}

pub fn find_haproxy() -> Result<PathBuf> {
    let mut candidates = vec![PathBuf::from("/usr/sbin/haproxy")];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("haproxy")));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        Error::precondition("HAProxy is not installed")
            .hint("run scripts/setup (it installs Debian's haproxy)")
    })
}

impl LocalHaproxy {
    pub fn start(dir: &Path, backend: &str, servers: &[LbServer]) -> Result<LocalHaproxy> {
        Self::start_on(&Host::loopback(), dir, backend, servers)
    }

    /// HAProxy listening on `host`'s address, running in its network namespace.
    pub fn start_on(
        host: &Host,
        dir: &Path,
        backend: &str,
        servers: &[LbServer],
    ) -> Result<LocalHaproxy> {
        let bin = find_haproxy()?;
        std::fs::create_dir_all(dir).context(format!("creating {}", dir.display()))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .context("finding a free port")?;
        let socket = dir.join("haproxy.sock");
        let lines: String = servers
            .iter()
            .map(|s| {
                format!(
                    "  server {} {} check inter 300ms fall 2 rise 1 ssl verify required ca-file {}{}\n",
                    s.name,
                    SocketAddr::new(s.ip, s.port),
                    s.ca_file.display(),
                    if s.disabled { " disabled" } else { "" }
                )
            })
            .collect();
        let config = format!(
            "global\n  stats socket {} mode 600 level admin\n  stats timeout 10s\n\
             defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  \
             timeout http-keep-alive 5s\n  option redispatch\n  retries 2\n\
             frontend vault_in\n  bind {bind}\n  default_backend {backend}\n\
             backend {backend}\n  option httpchk\n  http-check send meth GET uri /v1/sys/health\n  \
             http-check expect status 200\n{lines}",
            socket.display(),
            bind = SocketAddr::new(host.ip, port),
        );
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config).context(format!("writing {}", cfg.display()))?;
        let log = dir.join("haproxy.log");
        let mut cmd = Command::new(bin);
        cmd.arg("-f")
            .arg(&cfg)
            .arg("-db")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        host.enter(&mut cmd)?;
        let child = process::spawn_logged(&mut cmd, &log)?;
        let mut lb = LocalHaproxy {
            ip: host.ip,
            port,
            socket,
            backend: backend.to_owned(),
            log,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = SocketAddr::new(host.ip, port);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
            || !lb.socket.exists()
        {
            if Instant::now() >= deadline {
                lb.stop();
                return Err(Error::failed(format!(
                    "HAProxy did not start; its log is {}",
                    lb.log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(lb)
    }

    pub fn url(&self) -> String {
        format!("http://{}", SocketAddr::new(self.ip, self.port))
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            process::stop(&mut c, Duration::from_secs(5));
        }
    }
}

impl Drop for LocalHaproxy {
    fn drop(&mut self) {
        self.stop();
    }
}
