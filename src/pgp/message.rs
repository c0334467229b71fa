//! Encrypted messages from the server: who they are addressed to, and their armor.

use sequoia_openpgp as openpgp;

use openpgp::KeyHandle;
use openpgp::armor;
use openpgp::packet::Packet;
use openpgp::parse::{PacketParser, PacketParserResult, Parse};

use crate::error::{Context, Error, Result};

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

/// The form an encrypted message was given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageForm {
    /// `-----BEGIN PGP MESSAGE-----`, as custody writes it.
    Armored,
    /// The OpenPGP packets themselves (`base64 -d` of the server's line, `gpg --encrypt`).
    Binary,
    /// One line of base64 of the binary message, as `bao/vault operator init -pgp-keys` and
    /// `operator generate-root` print it.
    Base64,
}

impl MessageForm {
    pub fn label(self) -> &'static str {
        match self {
            MessageForm::Armored => "armored",
            MessageForm::Binary => "binary",
            MessageForm::Base64 => "one-line base64",
        }
    }
}

/// The forms [`read_message`] accepts, for an error that says what was expected.
pub const MESSAGE_FORMS: &str = "an armored OpenPGP message (-----BEGIN PGP MESSAGE-----, as \
     custody writes it), a binary OpenPGP message, or the one line of base64 that `bao operator \
     init -pgp-keys` and `bao operator generate-root` print (vault's alike)";

/// The binary encrypted message in `data`, and the form it was in. The form is detected, never
/// guessed: anything that is not an encrypted OpenPGP message in one of the three forms is
/// refused (a usage error naming them).
pub fn read_message(data: &[u8]) -> Result<(Vec<u8>, MessageForm)> {
    let text = data.trim_ascii();
    let (binary, form) = if text.starts_with(b"-----BEGIN PGP") {
        (unarmor(data)?, MessageForm::Armored)
    } else if data.first().is_some_and(|b| b & 0x80 != 0) {
        (data.to_vec(), MessageForm::Binary)
    } else if let Some(decoded) = base64_text(text) {
        (decoded, MessageForm::Base64)
    } else {
        return Err(not_a_message(None));
    };
    recipients(&binary).map_err(|e| not_a_message(Some((form, e))))?;
    Ok((binary, form))
}

fn not_a_message(read_as: Option<(MessageForm, Error)>) -> Error {
    let mut err = Error::usage(format!(
        "not an encrypted OpenPGP message: expected {MESSAGE_FORMS}"
    ));
    if let Some((form, cause)) = read_as {
        err = err.caused_by(cause.doing(format!("read as {}", form.label())));
    }
    err
}

/// The bytes of standard base64 text (line breaks allowed), if that is all it is.
fn base64_text(text: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .ok()
}

fn unarmor(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut reader = armor::Reader::from_bytes(
        data,
        armor::ReaderMode::Tolerant(Some(armor::Kind::Message)),
    );
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .map_err(|e| not_a_message(None).caused_by(e))?;
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

    mod forms {
        use base64::Engine as _;

        use super::super::{MessageForm, read_message};
        use crate::error::Kind;

        fn fixture(name: &str) -> std::path::PathBuf {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/pgp")
                .join(name)
        }

        /// A share-like message to holder 1, armored as custody writes it.
        fn armored() -> Vec<u8> {
            let cert = crate::pgp::load_holder_cert(&fixture("holder1.pub.asc")).unwrap();
            crate::pgp::encrypt::encrypt_armored(&cert, b"share").unwrap()
        }

        fn refused(data: &[u8]) -> crate::error::Error {
            let err = read_message(data).unwrap_err();
            assert_eq!(err.kind, Kind::Usage, "{err}");
            for form in ["armored", "binary", "base64"] {
                assert!(err.message.contains(form), "{err}");
            }
            err
        }

        #[test]
        fn each_form_is_detected_and_gives_the_same_message() {
            let (binary, form) = read_message(&armored()).unwrap();
            assert_eq!(form, MessageForm::Armored);
            assert_eq!(
                read_message(&binary).unwrap(),
                (binary.clone(), MessageForm::Binary)
            );
            let line = base64::engine::general_purpose::STANDARD.encode(&binary);
            assert_eq!(
                read_message(format!("{line}\n").as_bytes()).unwrap(),
                (binary.clone(), MessageForm::Base64)
            );
            let key = crate::pgp::SecretKeyFile::load(&fixture("holder1.sec.asc")).unwrap();
            assert_eq!(key.decrypt(&binary, None).unwrap().expose(), b"share");
        }

        #[test]
        fn anything_else_is_refused_naming_the_three_forms() {
            refused(b"");
            refused(b"  \n");
            refused(b"this is not a share, just some text\n");
            refused(b"c2hhcmUgb2Ygc29tZXRoaW5nIGVsc2U=\n");
            refused(b"\xc1\x00\x01\x02 random bytes");
            let public_key = std::fs::read(fixture("holder1.pub.asc")).unwrap();
            refused(&public_key);
            let binary_key = std::fs::read(fixture("holder1.pub.gpg")).unwrap();
            refused(&binary_key);
            let cut = read_message(&armored()).unwrap().0;
            let line = base64::engine::general_purpose::STANDARD.encode(&cut[..20]);
            refused(line.as_bytes());
        }
    }
}
