//! Serving go-plugin v5: the mTLS listener on a private unix socket, the services the server
//! calls, the handshake line, and the three ways the process ends (Shutdown, SIGTERM, parent gone).

use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};

use super::broker::{Broker, BrokerService};
use super::env::{APP_PROTOCOL, LaunchEnv, handshake_line};
use super::tls;
use crate::log;
use crate::proto::logical::plugin_version_server::{PluginVersion, PluginVersionServer};
use crate::proto::logical::{Empty as LEmpty, VersionReply};
use crate::proto::pb::backend_server::{Backend, BackendServer};
use crate::proto::plugin::Empty;
use crate::proto::plugin::grpc_broker_server::GrpcBrokerServer;
use crate::proto::plugin::grpc_controller_server::{GrpcController, GrpcControllerServer};

/// Why the plugin cannot start: shown to whoever ran it, exit 1.
pub struct StartError(pub String);

/// The semver the plugin reports to the catalog.
pub fn plugin_version() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

/// Runs the plugin until the server shuts it down. `make_backend` gets the broker, through
/// which the backend dials back to storage.
pub async fn serve<B, F>(make_backend: F) -> Result<(), StartError>
where
    B: Backend,
    F: FnOnce(Arc<Broker>) -> B,
{
    let env = LaunchEnv::read();
    if !env.cookie_ok {
        return Err(StartError(
            "custody-signer is a Vault/OpenBao plugin: the server starts it, not a person.\n\
             Put the binary in the server's plugin_directory and run `custody plugin install`, \
             or register it by hand (see the README)."
                .into(),
        ));
    }
    if !env.offered_versions.contains(&APP_PROTOCOL) {
        return Err(StartError(format!(
            "the server offered plugin protocol versions {:?}; custody-signer speaks {APP_PROTOCOL} (AutoMTLS)",
            env.offered_versions
        )));
    }
    let pem = env
        .client_cert_pem
        .as_deref()
        .filter(|_| env.automtls || !env.metadata_mode)
        .ok_or_else(|| {
            StartError("protocol 5 needs AutoMTLS, but PLUGIN_CLIENT_CERT is not set".into())
        })?;
    let pinned = tls::pinned_from_pem(pem).map_err(StartError)?;
    let identity = tls::make_identity().map_err(StartError)?;
    let server_tls = Arc::new(tls::server_config(&identity, pinned.clone()).map_err(StartError)?);
    let broker = Arc::new(Broker::default());
    broker.set_tls(Some(Arc::new(
        tls::client_config(&identity, pinned).map_err(StartError)?,
    )));

    let base = env.socket_dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("custody-signer-")
        .tempdir_in(&base)
        .map_err(|e| {
            StartError(format!(
                "making a socket directory in {}: {e}",
                base.display()
            ))
        })?;
    let socket = dir.path().join("plugin.sock");
    let listener = UnixListener::bind(&socket)
        .map_err(|e| StartError(format!("listening on {}: {e}", socket.display())))?;

    let stop = Arc::new(Notify::new());
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;

    let backend = make_backend(broker.clone());
    let router = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(BackendServer::new(backend))
        .add_service(GrpcBrokerServer::new(BrokerService(broker)))
        .add_service(GrpcControllerServer::new(Controller(stop.clone())))
        .add_service(PluginVersionServer::new(Version));

    let incoming = accept_tls(listener, tokio_rustls::TlsAcceptor::from(server_tls));

    let line = handshake_line(&socket, identity.cert_der.as_ref());
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    log::info("serving go-plugin protocol 5 (AutoMTLS)");

    let stop_signal = stop.clone();
    let result = router
        .serve_with_incoming_shutdown(incoming, async move {
            tokio::select! {
                _ = stop_signal.notified() => log::info("shutdown requested by the server"),
                _ = sigterm() => log::info("terminated"),
                _ = parent_gone() => log::info("the server process is gone; exiting"),
            }
        })
        .await;
    drop(dir);
    result.map_err(|e| StartError(format!("serving gRPC: {e}")))
}

async fn sigterm() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

/// Resolves when the process that started the plugin has exited (it is then re-parented).
async fn parent_gone() {
    // SAFETY: getppid has no preconditions and cannot fail.
    let parent = unsafe { libc::getppid() };
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // SAFETY: as above.
        if unsafe { libc::getppid() } != parent {
            return;
        }
    }
}

/// TLS-accepted connections, one task per handshake so a slow peer blocks nobody.
fn accept_tls(
    listener: UnixListener,
    acceptor: tokio_rustls::TlsAcceptor,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsConn, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    log::error(&format!("accepting a connection: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(TlsConn(tls))).await;
                    }
                    Ok(Err(e)) => log::error(&format!("TLS handshake refused: {e}")),
                    Err(_) => log::error("TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

pub struct TlsConn(TlsStream<UnixStream>);

impl Connected for TlsConn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

struct Controller(Arc<Notify>);

#[tonic::async_trait]
impl GrpcController for Controller {
    async fn shutdown(&self, _request: Request<Empty>) -> Result<Response<Empty>, Status> {
        let stop = self.0.clone();
        // Answer first, then stop serving.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            stop.notify_one();
        });
        Ok(Response::new(Empty {}))
    }
}

struct Version;

#[tonic::async_trait]
impl PluginVersion for Version {
    async fn version(&self, _request: Request<LEmpty>) -> Result<Response<VersionReply>, Status> {
        Ok(Response::new(VersionReply {
            plugin_version: plugin_version(),
        }))
    }
}
