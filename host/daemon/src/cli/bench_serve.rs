//! `arbiter bench serve`: hot-reload latency, daemon overhead per request against engine
//! time, and sustained requests/s with concurrent clients — against an in-process daemon on
//! 127.0.0.1 with the demo model; or, with `--model` and `--input`, requests/s of a real
//! checkpoint with the clients sharing the input's prompts (an RL loop scoring batches of
//! responses per prompt), the engine flags (`--prefix-cache-bytes`) applied. Loopback traffic
//! only; every loop is bounded.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arbiter::bundled;
use arbiter::serve::{ServeConfig, run};
use arbiter_engine::demo;
use arbiter_engine::{EngineOptions, Message, RewardModel};
use arbiter_plugins::HostConfig;

use super::EngineArgs;
use super::bench_engine::{Case, median, read_cases};
use super::http::request;

fn pct(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

/// A real checkpoint and the cases whose prompts the clients share.
pub struct RealModel<'a> {
    pub dir: &'a Path,
    pub input: &'a Path,
    pub engine: &'a EngineArgs,
}

pub fn serve(clients: usize, seconds: u64, real: Option<RealModel<'_>>) -> Result<()> {
    let model_dir = tempfile::tempdir()?;
    let plugins = tempfile::tempdir()?;
    let (model, label): (Arc<dyn RewardModel>, String) = match &real {
        Some(r) => {
            r.engine.apply_threads();
            (Arc::new(r.engine.load(r.dir)?), r.dir.display().to_string())
        }
        None => (Arc::new(demo::load(model_dir.path(), EngineOptions::default())?), demo::DEMO_LABEL.into()),
    };
    let config = ServeConfig {
        plugins_dir: Some(plugins.path().to_path_buf()),
        max_concurrent_requests: clients.max(1) * 2,
        max_body_bytes: 8 << 20,
        // No compile cache: every reload below compiles for real.
        host: HostConfig { cache_dir: None, ..HostConfig::default() },
        drain_timeout: Duration::from_secs(5),
        ..ServeConfig::new(model.clone(), label)
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(run(config, listener, async move {
        let _ = stopped.await;
    }));
    let deadline = Instant::now() + Duration::from_secs(60);
    while request(addr, "GET", "/info", None).0 != 200 {
        anyhow::ensure!(Instant::now() < deadline, "daemon did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    match real {
        Some(r) => {
            let cases = read_cases(r.input)?;
            shared_prompts(addr, clients, seconds, &cases, model.as_ref());
            fairness(addr, seconds, &cases, model.as_ref())?;
        }
        None => {
            reload_latency(addr, plugins.path())?;
            overhead(addr, model.as_ref())?;
            let body =
                serde_json::json!({"policy": "argmax", "messages": [{"role": "user", "content": "Name a colour."}],
                "responses": ["Red.", "Blue is a colour.", "Green", "A colour: yellow."]})
                .to_string();
            let (rate, p50, p99, failed) = throughput(addr, clients, seconds, &|_| body.clone());
            outln!(
                "{clients} clients, {seconds} s, /v1/select argmax over 4 scored responses: {rate:.0} requests/s, \
                 p50 {p50:.2} ms, p99 {p99:.2} ms, {failed} failed"
            );
        }
    }
    let _ = stop.send(());
    rt.block_on(server).context("server task")??;
    Ok(())
}

/// Latency of a small `/v1/score` alone, and while a large request (every response of every
/// case, for the first case's prompt) runs again and again: with the large request queued in
/// batch-sized parts, the small one waits for at most the batch in progress.
fn fairness(addr: SocketAddr, seconds: u64, cases: &[Case], model: &dyn RewardModel) -> Result<()> {
    let Some(first) = cases.first() else { return Ok(()) };
    let responses: Vec<String> = cases.iter().flat_map(|c| c.responses.clone()).collect();
    let large = serde_json::json!({"messages": first.messages, "responses": responses}).to_string();
    let small_messages = vec![Message { role: "user".into(), content: "Is water wet?".into() }];
    let small = serde_json::json!({"messages": small_messages, "responses": ["Yes."]}).to_string();
    // One batch: as many of the large request's responses as fill the model's batch budget.
    let budget = model.limits().max_batch_tokens;
    let prepared = model.prepare(&first.messages, &responses)?;
    let (mut tokens, mut n) = (0, 0);
    for s in &prepared.sequences {
        if n > 0 && tokens + s.len() > budget {
            break;
        }
        tokens += s.len();
        n += 1;
    }
    let mut batch_times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        model.score(&first.messages, &responses[..n])?;
        batch_times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let time = |body: &str| {
        let t = Instant::now();
        let (status, _) = request(addr, "POST", "/v1/score", Some(body));
        (status, t.elapsed().as_secs_f64() * 1000.0)
    };
    let alone: Vec<f64> = (0..20).map(|_| time(&small).1).collect();
    let stop = AtomicBool::new(false);
    let (mut under_load, mut large_times) = (Vec::new(), Vec::new());
    std::thread::scope(|scope| {
        let stop = &stop;
        let large_client = scope.spawn(|| {
            let mut times = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (status, ms) = time(&large);
                if status == 200 {
                    times.push(ms);
                }
            }
            times
        });
        std::thread::sleep(Duration::from_millis(200));
        let end = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < end {
            let (status, ms) = time(&small);
            if status == 200 {
                under_load.push(ms);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
        large_times = large_client.join().unwrap_or_default();
    });
    outln!(
        "fairness: one engine batch ({n} responses, {tokens} tokens of the large request) {:.0} ms; the large \
         request ({} responses, {} tokens) {:.0} ms (median of {})",
        median(batch_times),
        responses.len(),
        prepared.tokens(),
        median(large_times.clone()),
        large_times.len()
    );
    outln!(
        "  small /v1/score alone: p50 {:.1} ms; while the large request runs: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms \
         ({} requests)",
        pct(alone, 0.5),
        pct(under_load.clone(), 0.5),
        pct(under_load.clone(), 0.99),
        pct(under_load.clone(), 1.0),
        under_load.len()
    );
    Ok(())
}

/// Requests/s when every client scores batches of 4 responses for one of the cases' prompts.
fn shared_prompts(addr: SocketAddr, clients: usize, seconds: u64, cases: &[Case], model: &dyn RewardModel) {
    let bodies: Vec<String> = cases
        .iter()
        .flat_map(|c| {
            c.responses.chunks(4).map(|batch| {
                serde_json::json!({"policy": "argmax", "messages": c.messages, "responses": batch}).to_string()
            })
        })
        .collect();
    if bodies.is_empty() {
        outln!("no cases in --input");
        return;
    }
    // Request i of any client takes prompt i % cases, so the prompts interleave in the queue.
    let per_case = bodies.len() / cases.len().max(1);
    let pick = |i: usize| {
        let case = i % cases.len();
        bodies[case * per_case + (i / cases.len()) % per_case.max(1)].clone()
    };
    let (rate, p50, p99, failed) = throughput(addr, clients, seconds, &pick);
    outln!(
        "{clients} clients sharing {} prompts, {seconds} s, /v1/select argmax over 4 responses: {rate:.2} requests/s, \
         p50 {p50:.0} ms, p99 {p99:.0} ms, {failed} failed",
        cases.len()
    );
    if let Some(stats) = model.prefix_cache_stats() {
        outln!("prefix cache: {stats:?}");
    }
}

/// File write → new version visible in `/v1/policies`, for real Rust plugins, compiled fresh.
fn reload_latency(addr: SocketAddr, dir: &Path) -> Result<()> {
    let mut samples = Vec::new();
    for round in 0..3 {
        for name in ["threshold", "tie-break", "early-exit", "argmax"] {
            let bytes = bundled::get(name).context("bundled")?;
            let file = dir.join(format!("{name}-{round}.wasm"));
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, bytes)?;
            let before = request(addr, "GET", "/v1/policies", None).1;
            let started = Instant::now();
            std::fs::rename(&tmp, &file)?;
            // The same bytes at a new path: visible once the source points at the new file.
            let needle = file.display().to_string();
            loop {
                let (_, body) = request(addr, "GET", "/v1/policies", None);
                if body.contains(&needle) && body != before {
                    break;
                }
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(20),
                    "reload of {} never became visible",
                    file.display()
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    outln!(
        "hot reload (file rename -> new version serving, compiled without cache), {} reloads: p50 {:.1} ms, max {:.1} ms",
        samples.len(),
        pct(samples.clone(), 0.5),
        pct(samples, 1.0)
    );
    Ok(())
}

/// `/v1/score` latency against the engine time of the same request called directly.
fn overhead(addr: SocketAddr, model: &dyn RewardModel) -> Result<()> {
    let messages = vec![Message { role: "user".into(), content: "What is the capital of France?".into() }];
    let responses: Vec<String> = (0..4).map(|i| format!("Paris is the capital, answer {i}.")).collect();
    let body = serde_json::json!({"messages": messages, "responses": responses}).to_string();
    let (mut http, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        let t = Instant::now();
        let (s, _) = request(addr, "POST", "/v1/score", Some(&body));
        anyhow::ensure!(s == 200, "score failed with {s}");
        http.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        model.score(&messages, &responses)?;
        direct.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (h, d) = (pct(http, 0.5), pct(direct, 0.5));
    outln!(
        "/v1/score, 4 responses, demo model: p50 {h:.3} ms over HTTP vs {d:.3} ms engine alone: daemon overhead {:.3} ms per request",
        h - d
    );
    Ok(())
}

/// Requests/s, p50 and p99 latency (ms), and failures of `/v1/select` with `clients` threads,
/// request `i` of each client sending `body(i)`.
fn throughput(
    addr: SocketAddr,
    clients: usize,
    seconds: u64,
    body: &(dyn Fn(usize) -> String + Sync),
) -> (f64, f64, f64, usize) {
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let (mut all, mut failed) = (Vec::new(), 0);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..clients)
            .map(|client| {
                let stop = &stop;
                scope.spawn(move || {
                    let mut lat = Vec::new();
                    let mut failed = 0usize;
                    let mut i = client;
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let (s, _) = request(addr, "POST", "/v1/select", Some(&body(i)));
                        if s == 200 {
                            lat.push(t.elapsed().as_secs_f64() * 1000.0)
                        } else {
                            failed += 1
                        }
                        i += clients;
                    }
                    (lat, failed)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            if let Ok((l, f)) = t.join() {
                all.extend(l);
                failed += f;
            }
        }
    });
    let secs = started.elapsed().as_secs_f64();
    (all.len() as f64 / secs, pct(all.clone(), 0.5), pct(all, 0.99), failed)
}
