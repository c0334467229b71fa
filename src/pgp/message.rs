//! Encrypted messages from the server: who they are addressed to, and their armor.

use sequoia_openpgp as openpgp;

use openpgp::KeyHandle;
use openpgp::armor;
use openpgp::packet::Packet;
use openpgp::parse::{PacketParser, PacketParserResult, Parse};

use crate::error::{Context, Error, Kind, Result};

/// The recipients named by a message's PKESK packets, in order (`None` = wildcard recipient),
/// and whether it also carries a password-based SKESK.
#[derive(Debug)]
pub struct Recipients {
    pub keys: Vec<Option<KeyHandle>>,
    pub has_skesk: bool,
}

/// Reads the packets before the encrypted data. Fails on anything that is not an encrypted
/// OpenPGP message.
pub fn recipients(message: &[u8]) -> Result<Recipients> {
    let mut keys = Vec::new();
    let mut has_skesk = false;
    let mut ppr = PacketParser::from_bytes(message)
        .map_err(|e| Error::verification("not an OpenPGP message").caused_by_boxed(e))?;
    let mut saw_encrypted_data = false;
    while let PacketParserResult::Some(pp) = ppr {
        match &pp.packet {
            Packet::PKESK(p) => keys.push(p.recipient()),
            Packet::SKESK(_) => has_skesk = true,
            Packet::SEIP(_) => {
                saw_encrypted_data = true;
                break;
            }
            other => {
                return Err(Error::verification(format!(
                    "unexpected {} packet before the encrypted data",
                    other.tag()
                )));
            }
        }
        ppr = pp
            .next()
            .map_err(|e| Error::verification("malformed OpenPGP message").caused_by_boxed(e))?
            .1;
    }
    if !saw_encrypted_data {
        return Err(Error::verification(
            "the OpenPGP message holds no encrypted data",
        ));
    }
    Ok(Recipients { keys, has_skesk })
}

/// ASCII armor for an encrypted message (`-----BEGIN PGP MESSAGE-----`).
pub fn armor_message(binary: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut w = armor::Writer::new(&mut out, armor::Kind::Message).context("armoring")?;
    std::io::Write::write_all(&mut w, binary).context("armoring")?;
    w.finalize().context("armoring")?;
    Ok(out)
}

/// The binary message inside an armored (or already binary) file.
pub fn dearmor(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Read;
    let trimmed = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| &data[i..])
        .unwrap_or(data);
    if !trimmed.starts_with(b"-----BEGIN PGP") {
        return Ok(data.to_vec());
    }
    let mut reader = armor::Reader::from_bytes(
        data,
        armor::ReaderMode::Tolerant(Some(armor::Kind::Message)),
    );
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .with_kind(Kind::Usage, "not an armored OpenPGP message")?;
    Ok(out)
}

/// True when every PKESK of `message` names an encryption key of `holder`, there is at least
/// one, and no password-based (SKESK) path exists.
pub fn addressed_only_to(message: &[u8], holder: &super::HolderCert) -> bool {
    match recipients(message) {
        Ok(r) => {
            !r.keys.is_empty()
                && !r.has_skesk
                && r.keys.iter().all(|k| {
                    k.as_ref()
                        .map(|h| holder.is_encryption_key(h))
                        .unwrap_or(false)
                })
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_malformed_message_keeps_the_parser_error() {
        let err = super::recipients(b"\xff\xff\xff\xff").unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Verification);
        assert!(err.message.contains("OpenPGP message"), "{}", err.message);
        assert!(err.causes().next().is_some(), "{err}");
    }
}
