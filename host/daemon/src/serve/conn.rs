//! The connection layer: accepts TCP connections up to a cap and serves each over hyper's
//! HTTP/1 with a header-read timer; on shutdown stops accepting, lets in-flight requests
//! finish, and at the drain deadline tells the ones still running to answer 503.
//!
//! Invariants: a connection beyond the cap is answered (503 JSON) and closed at once, never
//! queued, so idle or slow clients cannot exhaust the process's file descriptors; every
//! connection waits at most `header_timeout` for a request's headers (hyper applies the same
//! timer to a keep-alive connection's wait for its next request, so it is also the idle
//! timeout); the body's own deadline is `body.rs`'s.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::metrics::Metrics;

/// File descriptors kept back from the connection cap for plugin files, the checkpoint,
/// the compile cache and logs.
const FD_RESERVE: u64 = 256;

/// How long the 503 answers written at the drain deadline get before the process exits.
const LAST_WORDS: Duration = Duration::from_secs(2);

/// Settings of the connection layer.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Longest wait for a request's headers (and for the next request on a kept-alive connection).
    pub header_timeout: Duration,
    /// Open connections served at once.
    pub max_connections: usize,
}

/// Raises the soft open-file limit to the hard limit where allowed, and returns the soft
/// limit now in force (`None` where it cannot be read).
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && maximum > current
        && setrlimit(Resource::Nofile, rustix::process::Rlimit { current: Some(maximum), maximum: Some(maximum) })
            .is_ok()
    {
        return Some(maximum);
    }
    // `None` in the limit means unlimited.
    Some(limit.current.unwrap_or(u64::MAX))
}

/// The connection cap for a soft open-file limit: what the limit leaves after the reserve.
pub fn connections_for(fd_limit: Option<u64>) -> usize {
    let fds = fd_limit.unwrap_or(1024).saturating_sub(FD_RESERVE).clamp(16, 1 << 20);
    usize::try_from(fds).unwrap_or(1 << 20)
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains for at most `drain`;
/// at the deadline `expired` is set (handlers still running answer 503) and the remaining
/// connections get [`LAST_WORDS`] to write their answers.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send,
    drain: Duration,
    expired: watch::Sender<bool>,
) -> Result<()> {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors (or a transient accept error): back off
                        // instead of spinning; established connections keep being served.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    metrics.rejected_connections.inc();
                    tokio::spawn(refuse(stream, limits.max_connections));
                    continue;
                };
                let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(slot);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(
        drain_seconds = drain.as_secs_f64(),
        "shutting down: no new connections; draining in-flight requests"
    );
    let mut closed = std::pin::pin!(graceful.shutdown());
    tokio::select! {
        () = &mut closed => return Ok(()),
        () = tokio::time::sleep(drain) => {}
    }
    tracing::warn!("drain deadline reached: requests still running answer 503");
    let _ = expired.send(true);
    if tokio::time::timeout(LAST_WORDS, closed).await.is_err() {
        tracing::warn!("closing connections that did not finish after the drain deadline");
    }
    Ok(())
}

/// Answers a connection over the cap with a 503 and closes it, without reading its request.
async fn refuse(mut stream: TcpStream, cap: usize) {
    let body = format!(
        "{{\"error\":\"{cap} connections already open (--max-connections); retry later\",\"type\":\"too_many_connections\"}}"
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}
