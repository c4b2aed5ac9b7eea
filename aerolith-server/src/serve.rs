//! Putting the application on a socket: binding, the accept loop with its
//! slow-client protections, graceful shutdown, and the `aerolith serve`
//! command that ties configuration, secrets, logging and the app together.
//!
//! Each connection is served by hyper's HTTP/1 server with a header read
//! timeout (a client that trickles its request head is cut off) and counts
//! against `connections_max` (further clients wait in the kernel backlog).
//! A response write that makes no progress for `write_stall_timeout_ms` (a
//! client that stopped reading) fails and closes the connection.
//! On shutdown the listener closes first, readiness turns off, open
//! connections finish their in-flight request and close, and after at most
//! `shutdown_grace_ms` the rest are dropped; then the shutdown hooks run.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::app;
use crate::config::ServerConfig;
use crate::secrets;
use crate::state::{AppState, HttpLimits};

/// Pause after a failed `accept` (out of file descriptors, usually), so the
/// loop does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF_MS: u64 = 100;

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listen address is taken by another process.
    #[error("cannot listen on {addr}: the address is already in use (another aerolith running? choose another with --listen or AEROLITH_LISTEN)")]
    AddressInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// Binding failed for another reason.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Installing the signal handlers failed.
    #[error("cannot install signal handlers: {source}")]
    Signals {
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Connection-level settings of the accept loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Maximum open connections.
    pub connections_max: u32,
    /// Time a client gets to send a complete request head.
    pub header_read_timeout_ms: u64,
    /// Time a response write may make no progress before the connection is
    /// dropped.
    pub write_stall_timeout_ms: u64,
    /// Time in-flight requests get after shutdown starts.
    pub shutdown_grace_ms: u64,
}

impl ConnectionLimits {
    /// The connection limits of a resolved configuration.
    pub fn from_config(config: &ServerConfig) -> ConnectionLimits {
        ConnectionLimits {
            connections_max: config.connections_max,
            header_read_timeout_ms: config.header_read_timeout_ms,
            write_stall_timeout_ms: config.write_stall_timeout_ms,
            shutdown_grace_ms: config.shutdown_grace_ms,
        }
    }
}

/// Binds the listen address, with a clear error when it is taken.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ServeError::AddressInUse { addr }
        } else {
            ServeError::Bind { addr, source }
        }
    })
}

/// An I/O stream whose writes fail with `TimedOut` once they have been
/// pending, without any progress, for longer than `stall_timeout`. Reads pass
/// through untouched (hyper's header read timeout guards the read side).
struct WriteStallGuard<T> {
    inner: T,
    stall_timeout: Duration,
    stalled_since: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteStallGuard<T> {
    fn new(inner: T, stall_timeout: Duration) -> WriteStallGuard<T> {
        WriteStallGuard {
            inner,
            stall_timeout,
            stalled_since: None,
        }
    }

    /// Tracks a write-side poll result: progress clears the stall timer, a
    /// pending poll starts it (once) and fails when it runs out.
    fn guard<R>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        polled: std::task::Poll<std::io::Result<R>>,
    ) -> std::task::Poll<std::io::Result<R>> {
        use std::task::Poll;
        if polled.is_ready() {
            self.stalled_since = None;
            return polled;
        }
        let timeout = self.stall_timeout;
        let timer = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client stopped reading the response",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteStallGuard<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteStallGuard<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, polled)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, polled)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_shutdown(cx);
        self.guard(cx, polled)
    }
}

/// The signals that start a graceful shutdown: SIGTERM and Ctrl-C (SIGINT).
/// Installed up front, so a signal that arrives before the server awaits it
/// is not lost (nor does it kill the process with the default action).
#[derive(Debug)]
pub struct ShutdownSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Installs the handlers. Must be called inside a tokio runtime.
    pub fn install() -> Result<ShutdownSignals, ServeError> {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind| signal(kind).map_err(|source| ServeError::Signals { source });
        Ok(ShutdownSignals {
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
        })
    }

    /// Completes when either signal arrives.
    pub async fn recv(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = self.interrupt.recv() => tracing::info!("Ctrl-C received, shutting down"),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains:
/// stops accepting, lets open connections finish their in-flight request for
/// up to `shutdown_grace_ms`, and drops what is left.
pub async fn serve_until(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(
        usize::try_from(limits.connections_max).unwrap_or(usize::MAX),
    ));
    let (close_tx, close_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let header_read_timeout = Duration::from_millis(limits.header_read_timeout_ms);
    let write_stall_timeout = Duration::from_millis(limits.write_stall_timeout_ms);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            permit = permits.clone().acquire_owned() => {
                let permit = permit.expect("the connection semaphore is never closed");
                let accepted = tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    accepted = listener.accept() => accepted,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_BACKOFF_MS)).await;
                        continue;
                    }
                };
                // Small JSON responses: do not wait for Nagle.
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone());
                let mut close_rx = close_rx.clone();
                connections.spawn(async move {
                    let _permit = permit;
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_read_timeout)
                        .keep_alive(true);
                    let connection = builder.serve_connection(
                        TokioIo::new(WriteStallGuard::new(stream, write_stall_timeout)),
                        service,
                    );
                    tokio::pin!(connection);
                    tokio::select! {
                        result = connection.as_mut() => {
                            if let Err(err) = result {
                                tracing::debug!(%peer, error = %err, "connection ended with an error");
                            }
                        }
                        () = async { let _ = close_rx.wait_for(|closing| *closing).await; } => {
                            connection.as_mut().graceful_shutdown();
                            if let Err(err) = connection.await {
                                tracing::debug!(%peer, error = %err, "connection ended with an error while draining");
                            }
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    let _ = close_tx.send(true);
    let grace = Duration::from_millis(limits.shutdown_grace_ms);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open_connections = connections.len(),
            grace_ms = limits.shutdown_grace_ms,
            "shutdown grace period over; dropping the remaining connections"
        );
        connections.shutdown().await;
    }
}

/// The `aerolith serve` command: resolves nothing itself (the caller passes
/// the resolved config and the environment snapshot for the secrets), sets
/// up logging, loads or creates the secrets, prints the listen address, the
/// data directory and (first start only) the admin key, serves until SIGTERM
/// or Ctrl-C, drains, and runs the shutdown hooks.
pub fn run_serve(config: ServerConfig, env: &HashMap<String, String>) -> anyhow::Result<()> {
    init_logging(&config.log_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Bind before touching the data directory: a first start that cannot
    // listen must not generate an admin key it never gets to print.
    let listener = runtime.block_on(bind(config.listen_addr))?;
    let local_addr = listener.local_addr()?;
    let secrets = secrets::load_or_create(&config.data_dir, env)?;
    let state = AppState::new(
        HttpLimits::from_config(&config),
        secrets.admin_key_hash.clone(),
    );
    let master_key = aerolith_core::MasterKey::from_bytes(*secrets.master_key.as_bytes());
    refuse_foreign_data(&config.data_dir, &secrets)?;
    let catalog = match &config.catalog_file {
        Some(path) => aerolith_billing::Catalog::from_path(path)
            .map_err(crate::metering::BillingOpenError::from)?,
        None => aerolith_billing::Catalog::default(),
    };
    let billing = crate::metering::Billing::open(
        &config.data_dir,
        &master_key,
        state.clock().clone(),
        config.meter_flush_interval_ms,
        catalog,
    )?;
    let mut options = aerolith_tenancy::TenancyOptions::new(master_key);
    options.plans = billing.catalog().quota_limits();
    options.usage_sink = billing.usage_sink();
    options.clock = state.clock().clone();
    let tenancy = aerolith_tenancy::Tenancy::open(config.data_dir.join(DB_DIR), options)?;
    state.metrics().register_source(billing.metrics_source());
    state.set_tenancy(tenancy.clone());
    state.set_billing(billing.clone());
    state.set_billing_service(crate::billing_routes::open_billing_service(
        &billing,
        &tenancy,
        state.clock().clone(),
    )?);
    // In-flight requests are done and the sampling task has stopped when
    // the hooks run: take a final storage sample and drain the meter into
    // the ledger first (tenancy reports into it), then close the engines.
    let final_sample_tenancy = tenancy.clone();
    let sampling_billing = billing.clone();
    let sampling_tenancy = tenancy.clone();
    state.on_shutdown(move || billing.shutdown_with_final_sample(&final_sample_tenancy));
    state.on_shutdown(move || {
        if let Err(err) = tenancy.close() {
            tracing::error!(error = %err, "closing the tenant registry failed");
        }
    });
    let router = app::app_with_routes(
        state.clone(),
        crate::billing_routes::billing_routes(crate::transfer::transfer_routes(
            crate::usage::usage_routes(crate::tenant::tenant_routes(crate::admin::admin_routes(
                app::base_routes(),
            ))),
        )),
    );
    let limits = ConnectionLimits::from_config(&config);
    runtime.block_on(async {
        let signals = ShutdownSignals::install()?;
        announce(
            local_addr,
            &config.data_dir,
            secrets.generated_admin_key.as_deref(),
        )?;
        let (stop_sampling, sampling_stopped) = watch::channel(false);
        let sampling = tokio::spawn(crate::metering::run_storage_sampling(
            sampling_billing,
            sampling_tenancy,
            config.storage_sample_interval_ms,
            sampling_stopped,
        ));
        let billing_run = tokio::spawn(crate::billing_routes::billing_run_loop(
            state.clone(),
            Duration::from_millis(config.billing_run_interval_ms),
        ));
        let ready_state = state.clone();
        state.set_ready(true);
        serve_until(listener, router, limits, async move {
            signals.recv().await;
            ready_state.set_ready(false);
        })
        .await;
        // Stop sampling (waiting for a sample in progress) before the
        // shutdown hooks take the final one and close the databases.
        let _ = stop_sampling.send(true);
        if let Err(err) = sampling.await {
            tracing::error!(error = %err, "the storage sampling task failed");
        }
        // A run in progress finishes on the blocking pool; no new one starts.
        billing_run.abort();
        anyhow::Ok(())
    })?;
    let hooks = state.run_shutdown_hooks();
    tracing::info!(hooks, "shutdown complete");
    Ok(())
}

/// The directory under the data directory that holds the tenant registry
/// and every tenant's database.
pub const DB_DIR: &str = "db";

/// Refuses to start when `<data_dir>/db` or `<data_dir>/billing` already
/// holds data but the master key was generated just now: the data was
/// written under another key and could not be read.
fn refuse_foreign_data(
    data_dir: &std::path::Path,
    secrets: &secrets::Secrets,
) -> anyhow::Result<()> {
    if !secrets.generated_master_key {
        return Ok(());
    }
    for dir in [
        data_dir.join(DB_DIR),
        data_dir.join(crate::metering::BILLING_DIR),
    ] {
        if dir_has_entries(&dir)? {
            anyhow::bail!(
                "{} holds data, but the master key was just generated: the data was \
                 written under another key. Restore the master key file or set \
                 AEROLITH_MASTER_KEY.",
                dir.display()
            );
        }
    }
    Ok(())
}

fn dir_has_entries(dir: &std::path::Path) -> std::io::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err),
    }
}

fn announce(
    local_addr: SocketAddr,
    data_dir: &std::path::Path,
    generated_admin_key: Option<&str>,
) -> std::io::Result<()> {
    let data_dir: PathBuf = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "aerolith {} listening on http://{local_addr}",
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(out, "data directory: {}", data_dir.display())?;
    if let Some(key) = generated_admin_key {
        writeln!(
            out,
            "first start: generated the operator admin key. It is shown only this once and only its hash is stored; keep it somewhere safe."
        )?;
        writeln!(out, "admin key: {key}")?;
    }
    out.flush()
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|err| {
        eprintln!("invalid log filter {filter:?} ({err}); using \"info\"");
        tracing_subscriber::EnvFilter::new("info")
    });
    // A second initialisation (tests calling run_serve twice) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn write_to_a_peer_that_stopped_reading_fails_after_the_stall_timeout() {
        let (near, _far) = tokio::io::duplex(64);
        let mut guarded = WriteStallGuard::new(near, Duration::from_millis(20));
        let err = guarded
            .write_all(&[0u8; 1024])
            .await
            .expect_err("the 64-byte pipe fills and nobody reads");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn write_to_a_reading_peer_succeeds_and_reads_pass_through() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut guarded = WriteStallGuard::new(near, Duration::from_secs(60));
        let reader = tokio::spawn(async move {
            let mut received = vec![0u8; 4096];
            far.read_exact(&mut received).await.expect("reads");
            far.write_all(b"pong").await.expect("writes");
            received
        });
        guarded.write_all(&[7u8; 4096]).await.expect("writes");
        let mut pong = [0u8; 4];
        guarded.read_exact(&mut pong).await.expect("reads");
        assert_eq!(&pong, b"pong");
        assert_eq!(reader.await.expect("join"), vec![7u8; 4096]);
    }
}
