//! `arbiter serve`: flags (each also an `ARBITER_*` environment variable), logging, the
//! runtime, and signal handling around `arbiter::serve::run`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use arbiter::serve::{self, AuthScope, ServeConfig};
use arbiter_engine::RewardModel;
use arbiter_engine::demo;
use clap::{Args, ValueEnum};

use super::{EngineArgs, Global, LimitArgs};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Reward model checkpoint directory. Omitted: the built-in demo model (tiny, random
    /// weights: scores are not meaningful).
    #[arg(long, env = "ARBITER_MODEL", value_name = "DIR")]
    model: Option<PathBuf>,
    /// Plugins directory: its .wasm files add to or override the bundled plugins, and are
    /// hot-reloaded when they change.
    #[arg(long, env = "ARBITER_PLUGINS", value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "ARBITER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Requests served at once; more are refused with 429 immediately.
    #[arg(long, env = "ARBITER_MAX_CONCURRENT_REQUESTS", default_value_t = 64)]
    max_concurrent_requests: usize,
    /// Engine jobs (one per scoring call) that may wait for the engine; more are refused
    /// with 429 at once. 0: four per concurrent request, at least 16.
    #[arg(long, env = "ARBITER_MAX_QUEUED_JOBS", default_value_t = 0, value_name = "N")]
    max_queued_jobs: usize,
    /// Tokens one request may send to the engine over all its scoring calls (its prompt once
    /// per call plus every response; a lazy policy's calls add up); more is refused with 413.
    /// Requests larger than --max-batch-tokens run in parts of that size, other requests'
    /// work in between.
    #[arg(long, env = "ARBITER_MAX_REQUEST_TOKENS", default_value_t = 256 << 10, value_name = "N")]
    max_request_tokens: usize,
    /// Most candidates per request.
    #[arg(long, env = "ARBITER_MAX_CANDIDATES", default_value_t = 256)]
    max_candidates: usize,
    /// Largest request body in bytes.
    #[arg(long, env = "ARBITER_MAX_BODY_BYTES", default_value_t = 8 << 20)]
    max_body_bytes: usize,
    /// Bearer key required on /v1/* routes (and on the others with `--auth-scope all`);
    /// `Authorization: Bearer <key>`, scheme case-insensitive.
    #[arg(long, env = "ARBITER_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Routes the API key protects: `api` = /v1/* (/metrics, /info, /openapi.json open for
    /// scrapers); `all` = every route but /health (probes carry no key).
    #[arg(long, env = "ARBITER_AUTH_SCOPE", value_enum, default_value = "api")]
    auth_scope: AuthScopeArg,
    /// Log format.
    #[arg(long, env = "ARBITER_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Seconds a client may take to send a request's headers; also how long an idle
    /// keep-alive connection stays open waiting for its next request.
    #[arg(long, env = "ARBITER_HEADER_TIMEOUT_SECONDS", default_value_t = 30, value_name = "S")]
    header_timeout_seconds: u64,
    /// Seconds a client may take to send a request's body once its headers arrived
    /// (408 after that).
    #[arg(long, env = "ARBITER_BODY_TIMEOUT_SECONDS", default_value_t = 30, value_name = "S")]
    body_timeout_seconds: u64,
    /// Open connections served at once; more are answered 503 and closed at once. 0: the
    /// open-file limit (raised to its hard maximum at start) less 256.
    #[arg(long, env = "ARBITER_MAX_CONNECTIONS", default_value_t = 0, value_name = "N")]
    max_connections: usize,
    /// Seconds in-flight requests may take to finish after SIGTERM/Ctrl-C; requests still
    /// running then answer 503 and the process exits.
    #[arg(long, env = "ARBITER_DRAIN_SECONDS", default_value_t = 30)]
    drain_seconds: u64,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    plugins_host: Global,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AuthScopeArg {
    Api,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let global = &args.plugins_host;
    args.engine.apply_threads();
    let filter = tracing_subscriber::EnvFilter::try_from_env("ARBITER_LOG").unwrap_or_else(|_| "info".into());
    // Colour only on a terminal: redirected logs stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if args.log_format == LogFormat::Json {
        builder.json().init()
    } else {
        builder.init()
    }

    let demo_dir;
    let (model, label): (Arc<dyn RewardModel>, String) = match &args.model {
        Some(dir) => (Arc::new(args.engine.load(dir)?), dir.display().to_string()),
        None => {
            demo_dir = tempfile::tempdir().context("creating the demo model directory")?;
            let options = args.engine.options();
            tracing::warn!("no --model given: serving the built-in {}", demo::DEMO_LABEL);
            if args.engine.device != "cpu" {
                tracing::warn!(device = %args.engine.device, "the demo model always runs on the CPU");
            }
            (Arc::new(demo::load(demo_dir.path(), options)?), demo::DEMO_LABEL.to_owned())
        }
    };
    tracing::info!(engine = %model.describe(), "model loaded");
    super::heap::keep_freed_memory();
    let host = global.host_config();
    let config = ServeConfig {
        model,
        model_label: label,
        plugins_dir: args.plugins.clone(),
        max_concurrent_requests: args.max_concurrent_requests.max(1),
        max_queued_jobs: args.max_queued_jobs,
        max_candidates: args.max_candidates,
        max_request_tokens: args.max_request_tokens,
        max_body_bytes: args.max_body_bytes,
        header_timeout: Duration::from_secs(args.header_timeout_seconds.max(1)),
        body_timeout: Duration::from_secs(args.body_timeout_seconds.max(1)),
        max_connections: args.max_connections,
        api_key: args.api_key.clone(),
        auth_scope: match args.auth_scope {
            AuthScopeArg::Api => AuthScope::Api,
            AuthScopeArg::All => AuthScope::All,
        },
        host,
        limits: args.limits.resolve()?,
        drain_timeout: Duration::from_secs(args.drain_seconds),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        let listener =
            tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("binding {}", args.listen))?;
        serve::run(config, listener, shutdown_signal()).await
    })
}

async fn shutdown_signal() {
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
        () = ctrl_c => {},
        () = term => {},
    }
}
