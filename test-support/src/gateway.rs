//! A provider's gateway in front of a real anvil, as Infura's or Alchemy's: it takes JSON-RPC
//! at any path (where a provider keeps the API key) and hands the request to anvil, which
//! answers only at `/`. It records each request's path, query and `Authorization` header, so a
//! test shows the key did reach the provider while nothing else saw it. Loopback only; its
//! thread ends with the test process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

pub struct KeyGateway {
    /// `http://127.0.0.1:PORT`, to which a test adds user info, a path and a query.
    pub base: String,
    pub port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl KeyGateway {
    /// A gateway to the anvil at `anvil_url` (`http://127.0.0.1:PORT`).
    pub fn start(anvil_url: &str) -> KeyGateway {
        let target = anvil_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (target, log) = (target.clone(), log.clone());
                std::thread::spawn(move || serve(client, &target, &log));
            }
        });
        KeyGateway {
            base: format!("http://127.0.0.1:{port}"),
            port,
            seen,
        }
    }

    /// Every request so far: "PATH?QUERY authorization=VALUE".
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// One client connection (kept alive, as reqwest keeps it): each request goes to anvil's `/`
/// on a connection of its own, and anvil's answer comes back as it is.
fn serve(client: TcpStream, target: &str, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut client = client;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let (mut length, mut authorization) = (0usize, String::new());
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "authorization" => authorization = value.trim().to_owned(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        log.lock()
            .unwrap()
            .push(format!("{path} authorization={authorization}"));
        let mut upstream = TcpStream::connect(target).unwrap();
        write!(
            upstream,
            "POST / HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/json\r\n\
             Content-Length: {length}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        upstream.write_all(&body).unwrap();
        let mut answer = Vec::new();
        upstream.read_to_end(&mut answer).unwrap();
        if client.write_all(&answer).is_err() {
            return;
        }
    }
}
