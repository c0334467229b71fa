//! Root generation as flows: which kind a server offers (as custody's error when none can be
//! used), and a root token made from shares held in memory with a one-time pad.

use base64::Engine as _;

use super::context::node_error;
use crate::error::{Context as _, Error, Result};
use crate::secret::SecretString;
use crate::shamir::Share;
use crate::vault::{Addr, Family, Vault};

/// Which root generation the server offers, or why none can be used.
pub async fn detect_family(vault: &Vault, addr: &Addr) -> Result<Family> {
    vault
        .root_generation_family(addr)
        .await
        .map_err(|e| match e {
            e if e.message_contains("unsupported operation") => Error::precondition(
                "this server allows only the authenticated root generation (sys/generate-root-token): \
                 give the ceremony token (VAULT_TOKEN or --token-file)",
            ),
            e => node_error("asking for the root generation", e),
        })
}

/// A root token from `shares`, through a one-time pad that never leaves memory (for a server
/// custody owns, such as the restore test's throwaway; holders' ceremonies use PGP instead).
pub async fn generate_with_otp(
    vault: &Vault,
    addr: &Addr,
    shares: &[Share],
) -> Result<SecretString> {
    let family = crate::flows::root_generation::detect_family(vault, addr).await?;
    let _ = vault.root_generation_cancel(addr, family).await;
    let mut attempt = vault
        .root_generation_start(addr, family, None)
        .await
        .map_err(|e| node_error("starting a root generation", e))?;
    let otp = SecretString::new(std::mem::take(&mut attempt.otp));
    for share in shares {
        let nonce = attempt.nonce.clone();
        attempt = vault
            .root_generation_update(addr, family, &share.text, &nonce)
            .await
            .map_err(|e| node_error("giving a share to the root generation", e))?;
        if attempt.complete {
            break;
        }
    }
    let encoded = attempt.encoded();
    if !attempt.complete || encoded.is_empty() {
        return Err(Error::failed("the root generation did not complete"));
    }
    let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
    let xored = zeroize::Zeroizing::new(
        engine
            .decode(encoded.trim_end_matches('='))
            .context("the encoded root token is not base64")?,
    );
    let otp_bytes = otp.expose().as_bytes();
    if xored.len() != otp_bytes.len() {
        return Err(Error::failed(
            "the encoded root token and the one-time pad differ in length",
        ));
    }
    let token: Vec<u8> = xored.iter().zip(otp_bytes).map(|(a, b)| a ^ b).collect();
    let token = String::from_utf8(token)
        .map_err(|_| Error::failed("the decoded root token is not text"))?;
    Ok(SecretString::new(token))
}
