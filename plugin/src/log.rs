//! Logs for the server to re-log: hclog JSON lines on stderr (stdout belongs to go-plugin).

use std::io::Write;

fn emit(level: &str, msg: &str) {
    let line = serde_json::json!({ "@level": level, "@message": msg, "@module": "custody-signer" });
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

pub fn info(msg: &str) {
    emit("info", msg);
}

pub fn error(msg: &str) {
    emit("error", msg);
}
