//! The go-plugin side: how Vault/OpenBao starts, authenticates, calls and stops the plugin.

pub mod broker;
pub mod env;
pub mod server;
pub mod tls;

pub use broker::Broker;
pub use server::{StartError, plugin_version, serve};
