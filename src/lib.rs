//! custody: the ceremony tool for the people who guard an Ethereum Authority key inside
//! HashiCorp Vault or OpenBao.

pub mod audit;
pub mod ceremony;
pub mod chain;
pub mod cli;
pub mod commands;
pub mod config;
pub mod digest;
pub mod error;
pub mod flows;
pub mod fsutil;
pub mod lb;
pub mod localcluster;
pub mod pgp;
pub mod poll;
pub mod secret;
pub mod shamir;
pub mod snapshot;
pub mod transcript;
pub mod ui;
pub mod vault;
