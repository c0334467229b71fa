//! secp256k1 account keys: generation from the OS RNG, import and export of the raw 32-byte
//! scalar, the Ethereum address, and low-S recoverable signatures over 32-byte hashes.
//!
//! The secret scalar lives in a k256 `SigningKey`, which zeroizes it when dropped.

use std::fmt;

use alloy_primitives::{Address, B256, U256};
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use zeroize::{Zeroize, Zeroizing};

use super::checksum;
use super::keccak256;

/// How many 32-byte draws from the OS RNG [`AccountKey::generate`] tries before giving up.
/// A draw is refused only when it is zero or not below the curve order (odds about 2^-128),
/// so running out means the RNG is broken.
const GENERATE_ATTEMPTS: usize = 8;

/// A secp256k1 private key for one Ethereum account.
pub struct AccountKey(SigningKey);

/// An ECDSA signature over secp256k1 with low S (EIP-2) and the parity of R's y coordinate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sig {
    pub r: U256,
    pub s: U256,
    pub y_parity: bool,
}

impl Sig {
    /// The 65-byte `r || s || v` form used by `personal_sign` and `eth_signTypedData`,
    /// with `v` = 27 or 28.
    pub fn to_rsv(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[..32].copy_from_slice(&self.r.to_be_bytes::<32>());
        out[32..64].copy_from_slice(&self.s.to_be_bytes::<32>());
        out[64] = 27 + u8::from(self.y_parity);
        out
    }

    /// The address whose key made this signature over `hash`, as `ecrecover` computes it.
    pub fn recover_address(&self, hash: &B256) -> Result<Address, String> {
        let mut rs = [0u8; 64];
        rs[..32].copy_from_slice(&self.r.to_be_bytes::<32>());
        rs[32..].copy_from_slice(&self.s.to_be_bytes::<32>());
        let signature = Signature::from_slice(&rs).map_err(|_| {
            "the signature's r or s is zero or not below the curve order".to_owned()
        })?;
        let recid = RecoveryId::new(self.y_parity, false);
        let key = VerifyingKey::recover_from_prehash(hash.as_slice(), &signature, recid)
            .map_err(|_| "no public key recovers from this signature and hash".to_owned())?;
        Ok(address_of(&key))
    }

    /// The same signature as alloy's type, for building signed transactions.
    pub fn to_alloy(&self) -> alloy_primitives::Signature {
        alloy_primitives::Signature::new(self.r, self.s, self.y_parity)
    }
}

impl AccountKey {
    /// A new random key drawn from the operating system's RNG.
    pub fn generate() -> Result<Self, String> {
        for _ in 0..GENERATE_ATTEMPTS {
            let mut candidate = Zeroizing::new([0u8; 32]);
            getrandom::fill(candidate.as_mut_slice()).map_err(|e| {
                format!("the operating system's random number generator failed: {e}")
            })?;
            if let Ok(key) = SigningKey::from_slice(candidate.as_slice()) {
                return Ok(Self(key));
            }
        }
        Err(format!(
            "the operating system's random number generator gave {GENERATE_ATTEMPTS} invalid \
             secp256k1 keys in a row; it is not working"
        ))
    }

    /// Imports a raw private key: exactly 32 big-endian bytes, nonzero and below the curve order.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != 32 {
            return Err(format!(
                "a private key is 32 bytes, got {} bytes",
                bytes.len()
            ));
        }
        SigningKey::from_slice(bytes).map(Self).map_err(|_| {
            "the private key is not a valid secp256k1 key (it is zero or not below the curve order)"
                .to_owned()
        })
    }

    /// The raw 32-byte private key, wiped from memory when the returned value is dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut scalar = self.0.to_bytes();
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(scalar.as_slice());
        scalar.as_mut_slice().zeroize();
        out
    }

    /// The Ethereum address: the last 20 bytes of keccak256 of the 64-byte public key.
    pub fn address(&self) -> Address {
        address_of(self.0.verifying_key())
    }

    /// The uncompressed SEC1 public key (`0x04 || x || y`, 65 bytes) as `0x`-hex.
    pub fn public_key_hex(&self) -> String {
        let point = self.0.verifying_key().to_encoded_point(false);
        format!("0x{}", hex::encode(point.as_bytes()))
    }

    /// Signs a 32-byte hash (RFC 6979 deterministic nonce), returning a low-S signature that
    /// has been checked to recover to this key's address before it is returned.
    pub fn sign_hash(&self, hash: &B256) -> Result<Sig, String> {
        let (sig, recid) = self
            .0
            .sign_prehash_recoverable(hash.as_slice())
            .map_err(|e| format!("signing failed: {e}"))?;
        if recid.is_x_reduced() {
            return Err(
                "signing produced a signature whose recovery id Ethereum cannot express".to_owned(),
            );
        }
        let signature = sig;
        let rs = sig.to_bytes();
        let sig = Sig {
            r: U256::from_be_slice(&rs[..32]),
            s: U256::from_be_slice(&rs[32..]),
            y_parity: recid.is_y_odd(),
        };
        // Verified before release: a fault during signing must never hand out a signature
        // that could leak the key.
        if self
            .0
            .verifying_key()
            .verify_prehash(hash.as_slice(), &signature)
            .is_err()
        {
            return Err(
                "signing produced a signature that does not verify; nothing was signed".to_owned(),
            );
        }
        Ok(sig)
    }
}

fn address_of(key: &VerifyingKey) -> Address {
    let point = key.to_encoded_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
    Address::from_slice(&hash[12..])
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKey")
            .field("address", &checksum(&self.address()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::ZeroizeOnDrop;

    /// The EIP-155 example key.
    const KEY_46: [u8; 32] = [0x46; 32];

    fn key46() -> AccountKey {
        AccountKey::from_bytes(&KEY_46).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn address_of_the_eip155_example_key() {
        // Sender of the EIP-155 example transaction.
        assert_eq!(
            checksum(&key46().address()),
            "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F"
        );
        let pk = key46().public_key_hex();
        assert!(pk.starts_with("0x04"));
        assert_eq!(pk.len(), 2 + 130);
    }

    #[test]
    fn address_of_the_eip712_cow_key() {
        // EIP-712 assets/eip-712/Example.js: privateKey = keccak256("cow"), address 0xcd2a…d826.
        let cow =
            AccountKey::from_bytes(keccak256(b"cow").as_slice()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            checksum(&cow.address()),
            "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"
        );
    }

    #[test]
    fn generated_keys_differ_and_round_trip() {
        let a = AccountKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let b = AccountKey::generate().unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(*a.to_bytes(), *b.to_bytes());
        assert_ne!(a.address(), b.address());
        let a2 = AccountKey::from_bytes(a.to_bytes().as_slice()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a2.address(), a.address());
    }

    #[test]
    fn refuses_bad_private_keys() {
        assert_eq!(
            AccountKey::from_bytes(&[]).err(),
            Some("a private key is 32 bytes, got 0 bytes".to_owned())
        );
        // k256 alone would left-pad a 24..31 byte slice; a short key is a mistake, not a key.
        assert_eq!(
            AccountKey::from_bytes(&[1u8; 31]).err(),
            Some("a private key is 32 bytes, got 31 bytes".to_owned())
        );
        assert!(AccountKey::from_bytes(&[1u8; 33]).is_err());
        let invalid = Some(
            "the private key is not a valid secp256k1 key (it is zero or not below the curve order)"
                .to_owned(),
        );
        assert_eq!(AccountKey::from_bytes(&[0u8; 32]).err(), invalid);
        assert_eq!(AccountKey::from_bytes(&[0xff; 32]).err(), invalid);
        let order = hex::decode("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
            .unwrap_or_default();
        assert_eq!(AccountKey::from_bytes(&order).err(), invalid);
        let mut order_minus_1 = order.clone();
        order_minus_1[31] = 0x40;
        assert!(AccountKey::from_bytes(&order_minus_1).is_ok());
    }

    #[test]
    fn signatures_are_low_s_and_recover_to_the_address() {
        let key = key46();
        let half_order = U256::from_be_slice(
            &hex::decode("7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0")
                .unwrap_or_default(),
        );
        for i in 0u8..32 {
            let hash = keccak256([i]);
            let sig = key.sign_hash(&hash).unwrap_or_else(|e| panic!("{e}"));
            assert!(sig.s <= half_order, "high S for hash {hash}");
            assert_eq!(sig.recover_address(&hash), Ok(key.address()));
            let rsv = sig.to_rsv();
            assert!(rsv[64] == 27 || rsv[64] == 28);
        }
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let shown = format!("{:?}", key46());
        assert_eq!(
            shown,
            "AccountKey { address: \"0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F\", .. }"
        );
        assert!(!shown.contains("4646"));
        assert!(!format!("{:#?}", key46()).contains("4646"));
    }

    #[test]
    fn signing_key_zeroizes_on_drop() {
        fn zeroizes_on_drop<T: ZeroizeOnDrop>() {}
        zeroizes_on_drop::<SigningKey>();
    }
}
