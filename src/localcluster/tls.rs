//! A certificate authority made per run, and one server certificate for 127.0.0.1/localhost
//! and every node's own address, signed by it, shared by the nodes of a local cluster.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

use crate::error::{Context, Result};
use crate::fsutil::write_private;

pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// The CA and the server certificate, valid for localhost, 127.0.0.1 and each of `ips`.
pub fn make_tls(dir: &Path, ips: &[IpAddr]) -> Result<TlsFiles> {
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "custody local cluster CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).context("signing the CA")?;

    let server_key = KeyPair::generate().context("generating the server key")?;
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    for ip in ips.iter().map(IpAddr::to_string) {
        if !names.contains(&ip) {
            names.push(ip);
        }
    }
    let mut params = CertificateParams::new(names).context("server certificate parameters")?;
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let server = params
        .signed_by(&server_key, &ca)
        .context("signing the server certificate")?;

    let files = TlsFiles {
        ca_cert: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server-key.pem"),
    };
    std::fs::write(&files.ca_cert, ca.pem()).context("writing ca.pem")?;
    std::fs::write(&files.server_cert, format!("{}{}", server.pem(), ca.pem()))
        .context("writing server.pem")?;
    write_private(
        &files.server_key,
        server_key.serialize_pem().as_bytes(),
        false,
    )?;
    Ok(files)
}
