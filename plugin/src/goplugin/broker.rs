//! go-plugin's GRPCBroker: the server announces, on a stream it opens, where it serves the
//! callbacks (storage, system view); the plugin dials back there with the same mTLS.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::sync::{Mutex, Notify};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};

use crate::proto::plugin::ConnInfo;
use crate::proto::plugin::grpc_broker_server::GrpcBroker;

/// How long a dial waits for the server's ConnInfo (go-plugin waits 5 s too).
const CONN_INFO_WAIT: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Broker {
    conns: Mutex<HashMap<u32, ConnInfo>>,
    arrived: Notify,
    tls: std::sync::OnceLock<Option<Arc<rustls::ClientConfig>>>,
}

impl Broker {
    /// The TLS settings for dialing back (`None` in plaintext mode).
    pub fn set_tls(&self, tls: Option<Arc<rustls::ClientConfig>>) {
        let _ = self.tls.set(tls);
    }

    async fn conn_info(&self, id: u32) -> Result<ConnInfo, String> {
        let deadline = tokio::time::Instant::now() + CONN_INFO_WAIT;
        loop {
            let notified = self.arrived.notified();
            if let Some(c) = self.conns.lock().await.get(&id) {
                return Ok(c.clone());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(format!(
                    "the server announced no broker connection {id} within {CONN_INFO_WAIT:?}"
                ));
            }
        }
    }

    /// A channel to the server's callbacks for broker id `id`.
    pub async fn dial(&self, id: u32) -> Result<Channel, String> {
        let info = self.conn_info(id).await?;
        if info.network != "unix" && info.network != "tcp" {
            return Err(format!(
                "broker connection {id}: unsupported network {:?}",
                info.network
            ));
        }
        let tls = self.tls.get().cloned().flatten();
        let network = info.network.clone();
        let address = info.address.clone();
        let connector = tower::service_fn(move |_uri: tonic::transport::Uri| {
            let (network, address, tls) = (network.clone(), address.clone(), tls.clone());
            async move { connect(&network, &address, tls).await }
        });
        Endpoint::from_static("http://localhost")
            .connect_with_connector(connector)
            .await
            .map_err(|e| format!("dialing broker connection {id} at {}: {e}", info.address))
    }
}

type Io = Box<dyn IoStream>;
trait IoStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> IoStream for T {}

async fn connect(
    network: &str,
    address: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<TokioIo<Io>, std::io::Error> {
    let raw: Io = if network == "unix" {
        Box::new(tokio::net::UnixStream::connect(address).await?)
    } else {
        Box::new(tokio::net::TcpStream::connect(address).await?)
    };
    let io: Io = match tls {
        Some(cfg) => {
            let name = rustls::pki_types::ServerName::try_from("localhost")
                .map_err(std::io::Error::other)?;
            Box::new(
                tokio_rustls::TlsConnector::from(cfg)
                    .connect(name, raw)
                    .await?,
            )
        }
        None => raw,
    };
    Ok(TokioIo::new(io))
}

/// The broker service the server streams ConnInfo to.
pub struct BrokerService(pub Arc<Broker>);

#[tonic::async_trait]
impl GrpcBroker for BrokerService {
    type StartStreamStream = tokio_stream::Pending<Result<ConnInfo, Status>>;

    async fn start_stream(
        &self,
        request: Request<Streaming<ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut incoming = request.into_inner();
        let broker = self.0.clone();
        tokio::spawn(async move {
            while let Some(Ok(info)) = incoming.next().await {
                broker.conns.lock().await.insert(info.service_id, info);
                broker.arrived.notify_waiters();
            }
        });
        // Without multiplexing the plugin never sends anything on this stream.
        Ok(Response::new(tokio_stream::pending()))
    }
}
