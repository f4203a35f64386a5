//! The accept loop: a bounded number of connections (one more is answered
//! 429 and closed), a deadline for a request's headers (a slow client
//! cannot hold a connection), TLS with rustls when a certificate is
//! given, and a graceful stop.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use crate::{Error, Result};

/// How connections are taken.
#[derive(Clone)]
pub(crate) struct Listen {
    pub max_connections: usize,
    /// Time a client has to send a request's headers (and, with TLS, to
    /// finish the handshake).
    pub header_timeout: Duration,
    pub tls: Option<TlsAcceptor>,
}

/// A TLS acceptor from a certificate chain and its private key (PEM).
pub(crate) fn tls(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let pem = |path: &Path, e: rustls_pki_types::pem::Error| {
        Error::Config(format!("TLS: {}: {e}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem(cert, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| pem(cert, e))?;
    if chain.is_empty() {
        return Err(Error::Config(format!(
            "TLS: {} holds no certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem(key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| Error::Config(format!("TLS: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Answers a connection over the limit with 429 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream, max: usize) {
    let body = format!(
        "{{\"error\":\"too many connections: the server takes {max} at once (max_connections)\"}}"
    );
    let reply = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(reply.as_bytes())).await;
    let _ = stream.shutdown().await;
}

async fn serve_one<I>(
    io: I,
    app: Router,
    listen: &Listen,
    graceful: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(listen.header_timeout);
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(app))
        .into_owned();
    let _ = graceful.watch(conn).await;
}

/// Serves `app` on `listener` until `stop` fires, then lets open requests
/// finish (for at most 10 s).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    listen: Listen,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let permits = Arc::new(Semaphore::new(listen.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait, then go on.
                eprintln!("xpu serve: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream, listen.max_connections));
            continue;
        };
        let (app, listen, watcher) = (app.clone(), listen.clone(), graceful.watcher());
        tokio::spawn(async move {
            match &listen.tls {
                None => serve_one(stream, app, &listen, watcher).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(listen.header_timeout, acceptor.accept(stream)).await;
                    if let Ok(Ok(tls)) = handshake {
                        serve_one(tls, app, &listen, watcher).await;
                    }
                }
            }
            drop(permit);
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}
