//! `custody-signer`: a Vault/OpenBao secrets engine, in Rust, that holds secp256k1 keys and
//! signs Ethereum transactions and messages.

pub mod backend;
pub mod eth;
pub mod goplugin;
pub mod log;

pub mod proto {
    pub mod pb {
        tonic::include_proto!("pb");
    }
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
    pub mod logical {
        tonic::include_proto!("logical");
    }
}
