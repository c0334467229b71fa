//! EIP-191 version 0x45 (`personal_sign`) message hashing and signing.

use alloy_primitives::B256;
use sha3::{Digest, Keccak256};

use super::key::AccountKey;

const PREFIX: &[u8] = b"\x19Ethereum Signed Message:\n";

/// keccak256("\x19Ethereum Signed Message:\n" || decimal length of `msg` || `msg`).
pub fn personal_hash(msg: &[u8]) -> B256 {
    let mut hasher = Keccak256::new();
    hasher.update(PREFIX);
    hasher.update(msg.len().to_string().as_bytes());
    hasher.update(msg);
    B256::from(<[u8; 32]>::from(hasher.finalize()))
}

/// Signs `msg` as `personal_sign` does; returns the hash signed and `r || s || v` with v 27/28.
pub fn sign_message(key: &AccountKey, msg: &[u8]) -> Result<(B256, [u8; 65]), String> {
    let hash = personal_hash(msg);
    let sig = key.sign_hash(&hash)?;
    Ok((hash, sig.to_rsv()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eth::{Sig, U256, checksum, keccak256};

    fn recover(hash: &B256, rsv: &[u8; 65]) -> String {
        let sig = Sig {
            r: U256::from_be_slice(&rsv[..32]),
            s: U256::from_be_slice(&rsv[32..64]),
            y_parity: rsv[64] == 28,
        };
        sig.recover_address(hash)
            .map(|a| checksum(&a))
            .unwrap_or_else(|e| e)
    }

    #[test]
    fn hello_world_hash() {
        // ethers v5 docs, `hashMessage("Hello World")`; web3.js `accounts.hashMessage`.
        assert_eq!(
            personal_hash(b"Hello World").to_string(),
            "0xa1de988600a42c4b4ab089b619297c17d53cffae5d5120d82d8a92d0bb3b78f2"
        );
    }

    #[test]
    fn empty_message_hash_uses_length_zero() {
        assert_eq!(
            personal_hash(b""),
            keccak256(b"\x19Ethereum Signed Message:\n0")
        );
        let long = vec![0xabu8; 1234];
        let mut expected = b"\x19Ethereum Signed Message:\n1234".to_vec();
        expected.extend_from_slice(&long);
        assert_eq!(personal_hash(&long), keccak256(&expected));
    }

    #[test]
    fn web3js_sign_example() {
        // web3.js 1.x docs, `web3.eth.accounts.sign('Some data', '0x4c08…2318')`: messageHash,
        // signature (v = 0x1c) and, from `accounts.recover`, the signer 0x2c7536E3….
        let key = AccountKey::from_bytes(
            &hex::decode("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
                .unwrap_or_default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (hash, rsv) = sign_message(&key, b"Some data").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            hash.to_string(),
            "0x1da44b586eb0729ff70a73c326926f6ed5a25f5b056e7f47fbc6e58d86871655"
        );
        assert_eq!(
            hex::encode(rsv),
            "b91467e570a6466aa9e9876cbcd013baba02900b8979d43fe208a4a4f339f5fd\
             6007e74cd82e037b800186422fc2da167c747ef045e5d18a5f5d4300f8e1a029\
             1c"
        );
        assert_eq!(
            recover(&hash, &rsv),
            "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
        );
        assert_eq!(
            checksum(&key.address()),
            "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
        );
    }

    #[test]
    fn signatures_recover_to_the_signer() {
        let key = AccountKey::generate().unwrap_or_else(|e| panic!("{e}"));
        for msg in [&b""[..], b"Hello World", &[0u8, 1, 2, 255]] {
            let (hash, rsv) = sign_message(&key, msg).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(hash, personal_hash(msg));
            assert!(rsv[64] == 27 || rsv[64] == 28);
            assert_eq!(recover(&hash, &rsv), checksum(&key.address()));
        }
    }
}
