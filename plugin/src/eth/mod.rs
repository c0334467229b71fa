//! Ethereum primitives for the signer: strict request parsing, secp256k1 account keys,
//! transaction signing (legacy EIP-155 and EIP-1559), EIP-191 and EIP-712 message signing,
//! and function selectors for call allow-lists.
//!
//! Every fallible function returns `Result<_, String>` with a message meant for the operator
//! that names the offending field.

pub mod address;
pub mod exact;
pub mod key;
pub mod message;
pub mod number;
pub mod selector;
pub mod tx;
pub mod typed;

pub use address::{checksum, parse_address};
pub use alloy_primitives::{Address, B256, U256};
pub use key::{AccountKey, Sig};
pub use message::{personal_hash, sign_message};
pub use number::{parse_bytes, parse_u64, parse_u128, parse_u256};
pub use selector::{parse_allowed_call, selector_of};
pub use tx::{SignedTx, TxFields, TxKind, sign_tx, signing_hash};
pub use typed::{
    CheckedTypedData, sign_typed_data, typed_data_checked, typed_data_checked_exact,
    typed_data_checked_text, typed_data_hash,
};

use sha3::{Digest, Keccak256};

/// Keccak-256 as Ethereum uses it (the original Keccak padding, not NIST SHA3-256).
pub fn keccak256(data: impl AsRef<[u8]>) -> B256 {
    B256::from(<[u8; 32]>::from(Keccak256::digest(data.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak256_is_keccak_not_sha3() {
        assert_eq!(keccak256([]), alloy_primitives::KECCAK256_EMPTY);
        assert_eq!(
            keccak256(b"").to_string(),
            "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
        assert_eq!(keccak256(b"abc"), alloy_primitives::keccak256(b"abc"));
    }
}
