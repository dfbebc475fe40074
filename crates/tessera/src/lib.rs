//! The tessera binary's library: CLI, logging, and the server, so that integration
//! tests start exactly what `tessera serve` starts.

pub mod cli;

use std::net::SocketAddr;
use std::sync::Arc;

use tessera_core::settings::{LogFormat, Settings};
use tessera_core::Core;
use tessera_http::serve::{default_max_connections, serve, ConnectionLimits};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Whether [`init_logging`] can do what `settings` ask, creating nothing: `LOG_LEVEL` is
/// a filter (checked with the settings) and `LOG_FILE` can be opened for appending (its
/// folder exists; the file, when it exists, is writable).
pub fn check_logging(settings: &Settings) -> Result<(), String> {
    let Some(path) = &settings.log_file else { return Ok(()) };
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    if !folder.is_dir() {
        return Err(format!("LOG_FILE {}: the folder {} does not exist", path.display(), folder.display()));
    }
    if path.exists() {
        std::fs::OpenOptions::new().append(true).open(path).map_err(|e| format!("LOG_FILE {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Installs the global tracing subscriber: JSON or pretty, to stdout or `LOG_FILE`.
/// Does nothing if one is installed already.
pub fn init_logging(settings: &Settings) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    check_logging(settings)?;
    let filter = EnvFilter::try_new(&settings.log_level)
        .or_else(|_| EnvFilter::try_new(format!("{},sqlx=warn,sea_orm=warn", settings.log_level.to_lowercase())))
        .map_err(|e| format!("LOG_LEVEL: {e}"))?;
    let filter = filter.add_directive("sqlx=warn".parse().map_err(|e| format!("{e}"))?);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let result = match (&settings.log_file, settings.log_format) {
        (Some(path), format) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("LOG_FILE {}: {e}", path.display()))?;
            let writer = std::sync::Mutex::new(file);
            match format {
                LogFormat::Json => {
                    builder.json().with_current_span(true).with_writer(writer).with_ansi(false).try_init()
                }
                LogFormat::Pretty => builder.with_writer(writer).with_ansi(false).try_init(),
            }
        }
        (None, LogFormat::Json) => builder.json().with_current_span(true).try_init(),
        (None, LogFormat::Pretty) => builder.try_init(),
    };
    // A second initialisation (several servers in one test process) is harmless.
    let _ = result;
    Ok(())
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub core: Arc<Core>,
    /// Where `/metrics` is served, when on a listener of its own (`METRICS_ADDR`).
    pub metrics_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    metrics_task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Resolves the JWT secret, connects and migrates, binds `HOST:PORT` (port 0 picks a
    /// free one) and starts serving.
    pub async fn start(mut settings: Settings) -> Result<Server, String> {
        settings.ensure_secrets()?;
        let problems = settings.production_problems();
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        let addr = format!("{}:{}", settings.host, settings.port);
        let core = Core::start(settings).await?;
        let listener = TcpListener::bind(&addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let open_files = raise_open_file_limit();
        let limits = ConnectionLimits {
            header_timeout: core.settings.http_header_timeout,
            idle_timeout: core.settings.http_idle_timeout,
            max_connections: core.settings.http_max_connections.unwrap_or_else(|| default_max_connections(open_files)),
        };
        tracing::debug!(open_files, max_connections = limits.max_connections, "connection limits");
        let metrics = match (&core.settings.metrics_addr, core.settings.metrics_enabled) {
            (Some(at), true) => {
                let listener =
                    TcpListener::bind(at).await.map_err(|e| format!("cannot listen on METRICS_ADDR {at}: {e}"))?;
                let app = tessera_http::metrics_router(tessera_http::AppState { core: core.clone() });
                let addr = listener.local_addr().map_err(|e| e.to_string())?;
                Some((addr, tokio::spawn(serve(listener, app, limits, std::future::pending()))))
            }
            _ => None,
        };
        let app = tessera_http::router(core.clone());
        // Every node runs a sender; leases keep them from sending a message twice.
        let (stop_sender, stop_rx) = tokio::sync::watch::channel(false);
        let sender = tokio::spawn(core.clone().run_mail_sender(stop_rx.clone()));
        let webhooks = tokio::spawn(core.clone().run_webhook_sender(stop_rx.clone()));
        let purger = tokio::spawn(core.clone().run_purger(stop_rx));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = serve(listener, app, limits, async move {
                let _ = rx.await;
            })
            .await;
            // Let the mail sender finish the message it is sending, then stop it. A purge
            // in progress stops between two batches (each is its own transaction).
            let _ = stop_sender.send(true);
            purger.abort();
            for task in [sender, webhooks] {
                let abort = task.abort_handle();
                if tokio::time::timeout(std::time::Duration::from_secs(15), task).await.is_err() {
                    abort.abort();
                }
            }
            served
        });
        let (metrics_addr, metrics_task) = metrics.unzip();
        Ok(Server { addr, core, metrics_addr, shutdown: Some(tx), task, metrics_task })
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(metrics) = self.metrics_task.take() {
            metrics.abort();
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// Raises the soft open-file limit to the hard one (each connection is a descriptor) and
/// returns the limit in force.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// Waits for SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
