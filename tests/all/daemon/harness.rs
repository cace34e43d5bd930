//! The daemon test harness: an in-process `arbiter serve` on 127.0.0.1:0 over a scripted
//! model, and a blocking HTTP client.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arbiter::serve::{ServeConfig, run};
use arbiter_engine::{EngineError, FakeRewardModel, Message, ModelLimits, Prepared, RewardModel};
use arbiter_plugins::{HostConfig, Limits};
use serde_json::{Value, json};

/// The binary's own loopback client, compiled in here rather than exported by the library.
#[path = "../../../host/daemon/src/cli/http.rs"]
mod client;

/// The engine's fake model, slowed down per batch by `delay`, failing its computation while
/// `broken` is set, refusing any response containing `TOOLONG` as over the length limit, and
/// counting the engine batches it ran; `batch_tokens` (when not 0) is its batch budget.
#[derive(Default)]
pub struct TestModel {
    pub delay: Duration,
    pub broken: Arc<AtomicBool>,
    pub batches: Arc<AtomicUsize>,
    pub batch_tokens: usize,
}

pub fn slow(delay: Duration) -> TestModel {
    TestModel { delay, ..TestModel::default() }
}

impl RewardModel for TestModel {
    fn score(&self, c: &[Message], r: &[String]) -> arbiter_engine::Result<Vec<f32>> {
        std::thread::sleep(self.delay);
        FakeRewardModel.score(c, r)
    }
    fn count_tokens(&self, t: &str) -> arbiter_engine::Result<u32> {
        FakeRewardModel.count_tokens(t)
    }
    fn describe(&self) -> String {
        "test model".into()
    }
    fn limits(&self) -> ModelLimits {
        let defaults = FakeRewardModel.limits();
        ModelLimits {
            max_batch_tokens: if self.batch_tokens == 0 { defaults.max_batch_tokens } else { self.batch_tokens },
            ..defaults
        }
    }
    fn prepare(&self, c: &[Message], r: &[String]) -> arbiter_engine::Result<Prepared> {
        if r.iter().any(|r| r.contains("TOOLONG")) {
            return Err(EngineError::TooLong {
                tokens: 9999,
                limit: 100,
                limit_name: "configured limit (max_input_tokens)",
            });
        }
        FakeRewardModel.prepare(c, r)
    }
    fn prepare_texts(&self, texts: &[String]) -> arbiter_engine::Result<Prepared> {
        FakeRewardModel.prepare_texts(texts)
    }
    fn score_prepared(&self, reqs: &[Prepared]) -> Vec<arbiter_engine::Result<Vec<f32>>> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        if self.broken.load(Ordering::SeqCst) {
            return reqs.iter().map(|_| Err(arbiter_engine::EngineError::Compute("device lost".into()))).collect();
        }
        FakeRewardModel.score_prepared(reqs)
    }
}

pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    _cache: tempfile::TempDir,
}

impl Server {
    pub fn start(delay: Duration, plugins: Option<&Path>, adjust: impl FnOnce(&mut ServeConfig)) -> Server {
        let server = Self::start_answering(delay, plugins, adjust);
        // Ready when the plugins directory's first loads are applied.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !get(server.addr, "/health").1.contains("\"plugins_loading\":0") {
            assert!(Instant::now() < deadline, "plugins never finished loading");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// Starts the server and returns once `/health` answers (plugins may still be loading).
    pub fn start_answering(delay: Duration, plugins: Option<&Path>, adjust: impl FnOnce(&mut ServeConfig)) -> Server {
        let cache = tempfile::tempdir().expect("cache dir");
        let mut config = ServeConfig {
            plugins_dir: plugins.map(Path::to_path_buf),
            max_candidates: 8,
            max_body_bytes: 64 << 10,
            host: HostConfig { cache_dir: Some(cache.path().to_path_buf()), ..HostConfig::default() },
            limits: Limits { fuel: 20_000_000, ..Limits::default() },
            drain_timeout: Duration::from_secs(10),
            ..ServeConfig::new(Arc::new(slow(delay)), "fake")
        };
        adjust(&mut config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                addr_tx.send(listener.local_addr()?).ok();
                run(config, listener, async move {
                    let _ = stopped.await;
                })
                .await
            })
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(60)).expect("server starts");
        // The listener is bound before plugins finish loading; wait until it answers.
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(addr, "/health").0 != 200 {
            assert!(Instant::now() < deadline, "server never became ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { addr, stop: Some(stop), thread: Some(thread), _cache: cache }
    }

    pub fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.thread.take().map(|t| t.join().expect("server thread")).unwrap_or(Ok(()))
    }
}

pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    client::request(addr, method, path, body)
}

pub fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let (status, text) = http(addr, "POST", path, Some(&body.to_string()));
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(addr, "GET", path, None)
}

/// Sends a request and hangs up after `after` without reading the answer.
pub fn send_and_hang_up(addr: SocketAddr, path: &str, body: &Value, after: Duration) {
    let body = body.to_string();
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    std::io::Write::write_all(&mut s, req.as_bytes()).expect("write");
    std::thread::sleep(after);
}

/// `/v1/score` of one `response` on a thread of its own (a request that keeps the engine busy).
pub fn score_in_background(addr: SocketAddr, response: &str) -> std::thread::JoinHandle<(u16, Value)> {
    let body = json!({"messages": conversation(), "responses": [response]});
    std::thread::spawn(move || post(addr, "/v1/score", &body))
}

pub fn conversation() -> Value {
    json!([{"role": "user", "content": "question"}])
}
