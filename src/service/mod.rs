//! The job service (`xpu serve`, feature `serve`): a machine's units as a
//! shared, authenticated HTTP service. A job is a [`JobDocument`] — tensors
//! and tasks that name built-in kernels, never code — submitted with a
//! bearer token (JWT, see [`auth`](Verifier)); it is written to a SQLite
//! queue before the server answers 202, run by the runtime's placement,
//! and its results are kept for its owner alone.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use xpu::service::{Client, Issuer, JobDocument, Role, ServeConfig, Server, Verifier};
//!
//! let dir = std::env::temp_dir().join(format!("xpu-serve-doc-{}", std::process::id()));
//! let secret = b"a secret for this example, 32+ bytes";
//! let verifier = Verifier::new("HS256", secret, "xpu", "xpu")?;
//! let config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), dir.join("jobs.sqlite"), verifier);
//! let rt = Arc::new(xpu::Runtime::builder().device_discovery(false).build()?);
//! let server = Server::start(rt, config)?;
//!
//! let token = Issuer::new("HS256", secret, "xpu", "xpu")?
//!     .issue("ada", Role::Submitter, Duration::from_secs(60))?;
//! let client = Client::new(&server.url(), Some(&token));
//! let doc: JobDocument = serde_json::from_value(serde_json::json!({
//!     "tensors": {
//!         "x": {"dtype": "f32", "shape": [4], "data": [-1, 2, -3, 4]},
//!         "y": {"dtype": "f32", "shape": [4]}
//!     },
//!     "tasks": [{"kernel": {"name": "relu"}, "args": ["x", "y"]}],
//!     "results": ["y"]
//! }))?;
//! let job = client.submit(&doc, None)?;
//! let done = client.wait(&job.id, Duration::from_secs(30))?;
//! assert_eq!(done.state, xpu::service::JobState::Succeeded);
//! assert_eq!(client.results(&job.id)?[0].values(), vec![0.0, 2.0, 0.0, 4.0]);
//!
//! let stranger = Client::new(&server.url(), None);
//! let err = stranger.status(&job.id).unwrap_err();
//! assert!(err.to_string().contains("401"), "{err}");
//! server.stop()?;
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! | module | owns |
//! | --- | --- |
//! | `document` | job documents: checking, running |
//! | `auth` | tokens: verifying, issuing; roles; the secret file |
//! | `limits` | per-role limits, the request-rate buckets |
//! | `store` | the SQLite queue, results, audit log |
//! | `runner` | the threads that run queued jobs; time limits |
//! | `api` | the route table, the middleware, the handlers and the types they answer |
//! | `openapi` | the OpenAPI document, made from the route table and those types |
//! | `listen` | the accept loop: connection limit, header deadline, TLS |
//! | `client` | the blocking client |
//! | `loadtest` | many clients, small jobs, every result checked |

mod api;
mod auth;
mod client;
mod commit;
mod document;
mod limits;
mod listen;
mod loadtest;
mod openapi;
mod runner;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::RwLock;

pub use api::{status_of, Route, ROUTES};
pub use auth::{secret_file, Claims, Identity, Issuer, Role, Verifier, LEEWAY, MIN_SECRET_BYTES};
pub use client::{Client, Reply};
pub use document::{
    ArgSpec, Checked, JobDocument, JobResult, NoUploads, TaskSpec, TensorSpec, Uploads,
};
pub use limits::{Limits, RateLimiter, RoleLimits};
pub use loadtest::{run as load_test, LoadPlan, LoadReport};
pub use openapi::document as openapi_document;
pub use store::{AuditEntry, Ending, JobState, JobStatus, JobStore, SubjectUploads, Submission};

use crate::{Error, Result, Runtime};

/// How a server runs.
pub struct ServeConfig {
    /// Where to listen (port 0: any free port; see [`Server::addr`]).
    pub addr: SocketAddr,
    /// The job queue's SQLite file.
    pub db: PathBuf,
    pub verifier: Verifier,
    pub limits: RoleLimits,
    /// Jobs run at once (each spreads its tasks over every unit).
    pub workers: usize,
    /// How long finished jobs and their results are kept.
    pub retention: Duration,
    /// The largest request body.
    pub max_body_bytes: usize,
    /// Connections served at once; one more is answered 429 and closed.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (slow clients are
    /// dropped).
    pub header_timeout: Duration,
    /// Time a request may take from its headers to its answer (a body that
    /// trickles in is answered 408); event streams are not bounded.
    pub request_timeout: Duration,
    /// Serve HTTPS with this certificate chain and private key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl ServeConfig {
    /// The defaults: standard limits, 2 jobs at once, results kept 7
    /// days, bodies up to 64 MiB, 1024 connections, 10 s for headers and
    /// 120 s for a whole request, plain HTTP.
    pub fn new(addr: SocketAddr, db: PathBuf, verifier: Verifier) -> ServeConfig {
        ServeConfig {
            addr,
            db,
            verifier,
            limits: RoleLimits::default(),
            workers: 2,
            retention: Duration::from_secs(7 * 24 * 3600),
            max_body_bytes: 64 << 20,
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            tls: None,
        }
    }
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    https: bool,
    requeued: usize,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<()>>>,
    runner: Arc<runner::Runner>,
}

impl Server {
    /// Opens the queue (queuing again what was running when the last
    /// server stopped), starts the job threads, and listens. Returns once
    /// the socket is bound.
    pub fn start(rt: Arc<Runtime>, config: ServeConfig) -> Result<Server> {
        let (store, requeued) = JobStore::open(&config.db)?;
        store.prune(config.retention)?;
        let kernels = store.kernels()?.into_iter().collect();
        let store = Arc::new(store);
        let listener = std::net::TcpListener::bind(config.addr)
            .map_err(|e| Error::Io(format!("listening on {}: {e}", config.addr)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Io(format!("listening on {}: {e}", config.addr)))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::Io(format!("listening on {addr}: {e}")))?;
        let listen = listen::Listen {
            max_connections: config.max_connections.max(1),
            header_timeout: config.header_timeout,
            tls: match &config.tls {
                Some((cert, key)) => Some(listen::tls(cert, key)?),
                None => None,
            },
        };
        let https = listen.tls.is_some();
        let limits = Arc::new(RwLock::new(config.limits));
        let runner =
            runner::Runner::start(store.clone(), rt.clone(), limits.clone(), config.workers)?;
        let commit = commit::GroupCommit::start(store.clone())?;
        let state = Arc::new(api::AppState {
            rt,
            commit,
            store,
            runner: runner.clone(),
            verifier: config.verifier,
            limits,
            kernels: RwLock::new(kernels),
            rate: RateLimiter::default(),
        });
        let app = api::router(state, config.max_body_bytes, config.request_timeout);
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("xpu-serve-http")
            .enable_all()
            .build()
            .map_err(|e| Error::Io(format!("starting the HTTP threads: {e}")))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("xpu-serve".into())
            .spawn(move || {
                tokio.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .map_err(|e| Error::Io(format!("listening on {addr}: {e}")))?;
                    listen::serve(listener, app, listen, rx).await;
                    Ok(())
                })
            })
            .map_err(|e| Error::Io(format!("starting the server thread: {e}")))?;
        Ok(Server {
            addr,
            https,
            requeued,
            shutdown: Some(tx),
            thread: Some(thread),
            runner,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, or `https://ADDR` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Jobs queued again at start because they were running when the last
    /// server stopped.
    pub fn requeued(&self) -> usize {
        self.requeued
    }

    /// Stops listening, lets running jobs finish, and stops.
    pub fn stop(mut self) -> Result<()> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            tx.send(()).ok();
        }
        self.runner.stop();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::Io("the server thread panicked".into())),
            None => Ok(()),
        }
    }

    /// Serves until SIGINT or SIGTERM, then stops as [`Server::stop`] does.
    pub fn run_until_signal(self) -> Result<()> {
        let signals = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Io(format!("waiting for signals: {e}")))?;
        signals.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                let mut term = signal(SignalKind::terminate())
                    .map_err(|e| Error::Io(format!("waiting for SIGTERM: {e}")))?;
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            tokio::signal::ctrl_c()
                .await
                .map_err(|e| Error::Io(format!("waiting for Ctrl-C: {e}")))?;
            Ok::<(), Error>(())
        })?;
        self.stop()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.shut_down();
        }
    }
}
