//! pb.Backend: the secrets engine. Routing and the gRPC surface live here; each path's
//! handler is in its own module.

mod accounts;
mod config;
mod fence;
mod fields;
mod model;
mod nonce;
#[cfg(test)]
mod props;
mod reply;
mod requests;
mod sign;
mod storage;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};

use tonic::{Request, Response, Status};

use crate::goplugin::Broker;
use crate::log;
use crate::proto::pb::backend_server::Backend;
use crate::proto::pb::*;

use fields::Fields;
use model::{Account, Config};
use reply::HandlerResult;
pub use reply::Reply;
use storage::Store;

/// Backend type "secrets" (logical).
const TYPE_LOGICAL: u32 = 1;

pub struct SignerBackend {
    broker: Arc<Broker>,
    store: OnceLock<Store>,
    config: Mutex<Option<Config>>,
    accounts: Mutex<HashMap<String, Arc<Account>>>,
    /// Signatures hold it shared; freezing, a counter change and a delete take it exclusively,
    /// so they return only after every signature in progress has stored its nonce.
    gate: Arc<tokio::sync::RwLock<()>>,
    /// Held by each create, so racing creates of one name decide one at a time.
    create_lock: tokio::sync::Mutex<()>,
    /// This process has looked for restore fences (see `fence`); held while it looks.
    fence_checked: AtomicBool,
    fence_check: tokio::sync::Mutex<()>,
}

impl SignerBackend {
    pub fn new(broker: Arc<Broker>) -> SignerBackend {
        SignerBackend {
            broker,
            store: OnceLock::new(),
            config: Mutex::new(None),
            accounts: Mutex::new(HashMap::new()),
            gate: Arc::new(tokio::sync::RwLock::new(())),
            create_lock: tokio::sync::Mutex::new(()),
            fence_checked: AtomicBool::new(false),
            fence_check: tokio::sync::Mutex::new(()),
        }
    }

    fn store(&self) -> Result<&Store, Reply> {
        self.store
            .get()
            .ok_or_else(|| Reply::Coded(500, "the plugin has no storage connection".into()))
    }

    /// Storage changed under the cache. A cached account is not dropped (a signature in
    /// flight holds its nonce counter): it is marked to be read again before its next use.
    fn forget(&self, storage_key: &str) {
        if storage_key == model::CONFIG_KEY {
            if let Ok(mut c) = self.config.lock() {
                *c = None;
            }
            return;
        }
        let name = storage_key
            .strip_prefix(model::ACCOUNTS_PREFIX)
            .or_else(|| storage_key.strip_prefix(model::NONCE_PREFIX));
        if let (Some(name), Ok(map)) = (name, self.accounts.lock())
            && let Some(account) = map.get(name)
        {
            account
                .stale
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    async fn route(&self, req: &crate::proto::pb::Request) -> HandlerResult {
        let op = req.operation.as_str();
        match op {
            "resolve-path" => return Err(Reply::UnsupportedOperation),
            "rollback" => return Ok(Reply::Empty),
            _ => {}
        }
        self.check_fences_once().await?;
        let path = req.path.trim_end_matches('/');
        let is_list = op == "list";
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["config"] => match op {
                "read" => self.read_config().await,
                "create" | "update" => self.write_config(&Fields::parse(&req.data)?).await,
                _ => Err(Reply::UnsupportedOperation),
            },
            ["restore-fence"] if is_list => self.list_fences().await,
            ["restore-fence", id] => match op {
                "read" => self.read_fence(id).await,
                "create" | "update" => self.write_fence(id, &Fields::parse(&req.data)?).await,
                "delete" => self.delete_fence(id).await,
                _ => Err(Reply::UnsupportedOperation),
            },
            ["accounts"] if is_list => self.list_accounts().await,
            ["accounts", name] if model::valid_name(name) => match op {
                "read" => self.read_account(name).await,
                "create" => self.create_account(name, &Fields::parse(&req.data)?).await,
                "update" => match self.account(name).await {
                    Ok(_) => Err(reply::invalid(format!(
                        "account {name} exists; its key and constraints never change (create another account)"
                    ))),
                    Err(Reply::NotFound) => {
                        self.create_account(name, &Fields::parse(&req.data)?).await
                    }
                    Err(e) => Err(e),
                },
                "delete" => self.delete_account(name).await,
                _ => Err(Reply::UnsupportedOperation),
            },
            ["accounts", name, action] if model::valid_name(name) => {
                let fields = || Fields::parse(&req.data);
                match (*action, op) {
                    ("sign-tx", "update" | "create") => self.sign_tx(name, &fields()?).await,
                    ("sign-message", "update" | "create") => {
                        self.sign_message(name, &fields()?).await
                    }
                    ("sign-typed-data", "update" | "create") => {
                        self.sign_typed_data(name, &fields()?).await
                    }
                    ("bind", "update" | "create") => self.bind_account(name, &fields()?).await,
                    ("nonce", "read") => self.read_nonce(name).await,
                    ("nonce", "update" | "create") => self.write_nonce(name, &fields()?).await,
                    ("sign-tx" | "sign-message" | "sign-typed-data" | "nonce" | "bind", _) => {
                        Err(Reply::UnsupportedOperation)
                    }
                    _ => Err(Reply::UnsupportedPath),
                }
            }
            ["accounts", name, ..] if !model::valid_name(name) => Err(reply::invalid(format!(
                "{name:?} is not an account name: 1 to 64 of A-Z a-z 0-9 _ -, starting with a letter or digit"
            ))),
            _ => Err(Reply::UnsupportedPath),
        }
    }
}

#[tonic::async_trait]
impl Backend for SignerBackend {
    async fn handle_request(
        &self,
        request: Request<HandleRequestArgs>,
    ) -> Result<Response<HandleRequestReply>, Status> {
        let Some(req) = request.into_inner().request else {
            return Ok(Response::new(reply::invalid("empty request").into_proto()));
        };
        let reply = match self.route(&req).await {
            // A write or a signature on something missing must not look like success (204).
            Err(Reply::NotFound)
                if !matches!(req.operation.as_str(), "read" | "list" | "delete") =>
            {
                Reply::Coded(404, format!("{} does not exist", req.path))
            }
            Ok(r) | Err(r) => r,
        };
        Ok(Response::new(reply.into_proto()))
    }

    async fn special_paths(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<SpecialPathsReply>, Status> {
        Ok(Response::new(SpecialPathsReply {
            paths: Some(Paths {
                seal_wrap_storage: vec![model::ACCOUNTS_PREFIX.to_owned()],
                ..Default::default()
            }),
        }))
    }

    async fn handle_existence_check(
        &self,
        request: Request<HandleExistenceCheckArgs>,
    ) -> Result<Response<HandleExistenceCheckReply>, Status> {
        let path = request
            .into_inner()
            .request
            .map(|r| r.path)
            .unwrap_or_default();
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let reply = match parts.as_slice() {
            ["accounts", name] if model::valid_name(name) => match self.account(name).await {
                Ok(_) => HandleExistenceCheckReply {
                    check_found: true,
                    exists: true,
                    err: None,
                },
                Err(Reply::NotFound) => HandleExistenceCheckReply {
                    check_found: true,
                    exists: false,
                    err: None,
                },
                Err(e) => {
                    let msg = format!("{e:?}");
                    HandleExistenceCheckReply {
                        check_found: true,
                        exists: false,
                        err: Some(ProtoError {
                            err_type: 2,
                            err_msg: msg,
                            err_code: 0,
                        }),
                    }
                }
            },
            _ => HandleExistenceCheckReply {
                check_found: false,
                exists: false,
                err: None,
            },
        };
        Ok(Response::new(reply))
    }

    async fn cleanup(&self, _request: Request<Empty>) -> Result<Response<Empty>, Status> {
        if let Ok(mut m) = self.accounts.lock() {
            m.clear();
        }
        if let Ok(mut c) = self.config.lock() {
            *c = None;
        }
        Ok(Response::new(Empty {}))
    }

    async fn invalidate_key(
        &self,
        request: Request<InvalidateKeyArgs>,
    ) -> Result<Response<Empty>, Status> {
        self.forget(&request.into_inner().key);
        Ok(Response::new(Empty {}))
    }

    async fn setup(&self, request: Request<SetupArgs>) -> Result<Response<SetupReply>, Status> {
        // Dial the storage callback now; storage itself is not touched (at registration the
        // server gives a Setup whose storage calls fail).
        let args = request.into_inner();
        let err = match self.broker.dial(args.broker_id).await {
            Ok(channel) => {
                let _ = self.store.set(Store::new(channel));
                String::new()
            }
            Err(e) => {
                log::error(&e);
                e
            }
        };
        Ok(Response::new(SetupReply { err }))
    }

    async fn initialize(
        &self,
        _request: Request<InitializeArgs>,
    ) -> Result<Response<InitializeReply>, Status> {
        // The mount starts: the one moment a restore fence counts. A failure here is retried
        // before the first request is served.
        if let Err(e) = self.check_fences_once().await {
            log::error(&reply::reply_text(e));
        }
        Ok(Response::new(InitializeReply { err: None }))
    }

    async fn r#type(&self, _request: Request<Empty>) -> Result<Response<TypeReply>, Status> {
        Ok(Response::new(TypeReply {
            r#type: TYPE_LOGICAL,
        }))
    }
}

/// A storage failure (a leader change, a seal, a deposed node's write): retryable, and nothing
/// was signed (a signature needs its counter stored first).
impl From<storage::StoreError> for Reply {
    fn from(e: storage::StoreError) -> Reply {
        Reply::Coded(
            503,
            format!(
                "storage is unavailable ({}); nothing was signed: retry",
                e.0
            ),
        )
    }
}
