//! Flows several commands share, below the commands: the context every command works in, node
//! status, gathering shares, unsealing, and waiting for healthy Raft voters. A command file
//! reads as: parse, plan, call these, report.

pub mod audit;
pub mod audit_devices;
pub mod certs;
pub mod cluster_nodes;
pub mod context;
pub mod files;
pub mod freeze;
pub mod new_holders;
pub mod nodes;
pub mod nonce_jump;
pub mod raft_peers;
pub mod reconcile;
pub mod recorded;
pub mod report;
pub mod root_generation;
pub mod rotation;
pub mod rpcs;
pub mod shares;
pub mod unseal;

pub use context::{Ctx, active_node, node_error, on_each_node, parse_addrs, secs};
