//! `arbiter serve`: the HTTP daemon.
//!
//! `run(config, listener, shutdown)` is the whole server, so tests bind `127.0.0.1:0` and
//! pass their own shutdown future. Request path: axum handler → validation → admission
//! semaphore (429 at once) → tokenization on a blocking thread → bounded engine queue →
//! batcher thread → engine thread (candle) → oneshot reply; plugins run on blocking threads
//! with their limits, their `reward` calls going through the same queue.

pub mod api;
mod compat;
pub mod conn;
pub mod engine_thread;
pub mod error;
mod guards;
pub mod metrics;
pub mod openapi;
pub mod registry;
pub mod request;
pub mod watch;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::{Context, Result};
use arbiter_engine::RewardModel;
use arbiter_plugins::{HostConfig, Limits, PluginHost};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use self::engine_thread::EngineHandle;
use self::metrics::Metrics;
use self::registry::Registry;

/// Everything `run` needs.
pub struct ServeConfig {
    /// The reward model, and how to label it (`demo::DEMO_LABEL` for the demo model).
    pub model: Arc<dyn RewardModel>,
    /// Label of the model in `/info` and responses.
    pub model_label: String,
    /// Plugins directory to load and watch.
    pub plugins_dir: Option<PathBuf>,
    /// Requests served at once; more get 429 immediately.
    pub max_concurrent_requests: usize,
    /// Engine jobs that may wait in the queue; more are refused with 429 at once.
    /// 0: four per concurrent request, at least 16.
    pub max_queued_jobs: usize,
    /// Most candidates per request.
    pub max_candidates: usize,
    /// Tokens one request may send to the engine in all its scoring calls; more is a 413.
    pub max_request_tokens: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Longest wait for a request's headers, and for the next request on an idle
    /// keep-alive connection.
    pub header_timeout: Duration,
    /// Longest wait for a request's whole body once its headers arrived.
    pub body_timeout: Duration,
    /// Open connections served at once; more are answered 503 and closed. 0: the open-file
    /// limit (raised to its maximum at start) less a reserve.
    pub max_connections: usize,
    /// Bearer key required on the routes of `auth_scope`, if set.
    pub api_key: Option<String>,
    /// Which routes the key protects.
    pub auth_scope: AuthScope,
    /// Plugin host settings (cache dir, pool size).
    pub host: HostConfig,
    /// Per-call plugin limits.
    pub limits: Limits,
    /// How long in-flight requests may run after shutdown begins.
    pub drain_timeout: Duration,
}

/// Which routes `--api-key` protects. `/health` is always open (probes carry no key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthScope {
    /// `/v1/*` only: `/metrics`, `/info` and `/openapi.json` stay open for scrapers and
    /// dashboards inside the cluster.
    #[default]
    Api,
    /// Every route but `/health`: `/info` names the model path and engine settings, which a
    /// deployment may not want to show.
    All,
}

impl ServeConfig {
    /// `model` with the same defaults as `arbiter serve`'s flags: no plugins directory, 64
    /// concurrent requests, an automatic queue, 256 candidates, 262,144 tokens per request,
    /// 8 MiB bodies, 30 s header and body timeouts, a connection cap from the open-file
    /// limit, no API key (scope `/v1/*`), the default plugin host and limits, 30 s drain.
    pub fn new(model: Arc<dyn RewardModel>, model_label: impl Into<String>) -> Self {
        Self {
            model,
            model_label: model_label.into(),
            plugins_dir: None,
            max_concurrent_requests: 64,
            max_queued_jobs: 0,
            max_candidates: 256,
            max_request_tokens: 256 << 10,
            max_body_bytes: 8 << 20,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            max_connections: 0,
            api_key: None,
            auth_scope: AuthScope::Api,
            host: HostConfig::default(),
            limits: Limits::default(),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Shared by all handlers.
pub struct AppState {
    /// Settings.
    pub config: ServeConfig,
    /// How responses name the model.
    pub model_label: String,
    /// The engine queue.
    pub engine: EngineHandle,
    /// Served plugins (hot-swapped by the watcher).
    pub registry: Arc<Registry>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Bounds concurrent requests; `try_acquire` so overload is a 429, never a wait.
    pub admission: Arc<Semaphore>,
    /// Numbers chat-completion ids.
    pub request_counter: AtomicU64,
    /// Set at the drain deadline: requests still running answer 503.
    pub drain_expired: tokio::sync::watch::Receiver<bool>,
}

/// Serves on `listener` until `shutdown` resolves, then drains in-flight requests for at most
/// `drain_timeout`; requests still running then answer 503, and `run` returns.
///
/// # Errors
/// Startup failures (plugins directory, engine threads, watcher) and accept-loop I/O errors.
pub async fn run(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let host = PluginHost::new(config.host.clone()).context("starting the plugin host")?;
    let registry = {
        let (host, limits, metrics) = (host.clone(), config.limits.clone(), metrics.clone());
        let registry = tokio::task::spawn_blocking(move || Registry::new(host, limits, metrics))
            .await
            .context("loading the bundled plugins")??;
        Arc::new(registry)
    };
    // The directory's files load in the background, each on its own thread: the server (and
    // /health) answers from the start, and one slow file delays no other.
    let _watcher = match &config.plugins_dir {
        Some(dir) => {
            // Watch first, then list: a file added in between is seen by one or the other.
            let watcher = watch::start(dir, registry.clone()).with_context(|| format!("watching {}", dir.display()))?;
            watch::reload_each(&registry, Registry::plugin_files(dir)?);
            Some(watcher)
        }
        None => None,
    };
    let queue = match config.max_queued_jobs {
        0 => config.max_concurrent_requests.saturating_mul(4).max(16),
        n => n,
    };
    let engine = EngineHandle::start(config.model.clone(), queue, config.max_request_tokens, metrics.clone())
        .context("starting the engine threads")?;
    let (expired_tx, drain_expired) = tokio::sync::watch::channel(false);
    let state = Arc::new(AppState {
        model_label: config.model_label.clone(),
        admission: Arc::new(Semaphore::new(config.max_concurrent_requests)),
        engine,
        registry,
        metrics,
        request_counter: AtomicU64::new(0),
        drain_expired,
        config,
    });
    let fd_limit = conn::raise_fd_limit();
    let limits = conn::ConnLimits {
        header_timeout: state.config.header_timeout,
        max_connections: match state.config.max_connections {
            0 => conn::connections_for(fd_limit),
            n => n,
        },
    };
    let drain = state.config.drain_timeout;
    tracing::info!(
        address = %listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
        model = %state.model_label,
        max_connections = limits.max_connections,
        open_file_limit = %fd_limit.map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
        "arbiter serving"
    );
    let metrics = state.metrics.clone();
    conn::serve(listener, api::router(state), limits, metrics, shutdown, drain, expired_tx).await
}
