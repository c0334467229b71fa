//! The mount's storage, reached through the broker connection (`pb.Storage`).

use tonic::transport::Channel;

use crate::proto::pb::storage_client::StorageClient;
use crate::proto::pb::{
    StorageDeleteArgs, StorageEntry, StorageGetArgs, StorageListArgs, StoragePutArgs,
};

/// A storage failure: the server's words, for a 500.
#[derive(Debug)]
pub struct StoreError(pub String);

#[derive(Clone)]
pub struct Store {
    client: StorageClient<Channel>,
}

impl Store {
    pub fn new(channel: Channel) -> Store {
        Store {
            client: StorageClient::new(channel),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let reply = self
            .client
            .clone()
            .get(StorageGetArgs {
                key: key.to_owned(),
                txn: String::new(),
            })
            .await
            .map_err(|e| StoreError(format!("storage get {key}: {}", e.message())))?
            .into_inner();
        if !reply.err.is_empty() {
            return Err(StoreError(format!("storage get {key}: {}", reply.err)));
        }
        Ok(reply.entry.map(|e| e.value))
    }

    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let reply = self
            .client
            .clone()
            .put(StoragePutArgs {
                entry: Some(StorageEntry {
                    key: key.to_owned(),
                    value,
                    seal_wrap: false,
                }),
                txn: String::new(),
            })
            .await
            .map_err(|e| StoreError(format!("storage put {key}: {}", e.message())))?
            .into_inner();
        if !reply.err.is_empty() {
            return Err(StoreError(format!("storage put {key}: {}", reply.err)));
        }
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let reply = self
            .client
            .clone()
            .delete(StorageDeleteArgs {
                key: key.to_owned(),
                txn: String::new(),
            })
            .await
            .map_err(|e| StoreError(format!("storage delete {key}: {}", e.message())))?
            .into_inner();
        if !reply.err.is_empty() {
            return Err(StoreError(format!("storage delete {key}: {}", reply.err)));
        }
        Ok(())
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let reply = self
            .client
            .clone()
            .list(StorageListArgs {
                prefix: prefix.to_owned(),
                txn: String::new(),
            })
            .await
            .map_err(|e| StoreError(format!("storage list {prefix}: {}", e.message())))?
            .into_inner();
        if !reply.err.is_empty() {
            return Err(StoreError(format!("storage list {prefix}: {}", reply.err)));
        }
        Ok(reply.keys)
    }
}
