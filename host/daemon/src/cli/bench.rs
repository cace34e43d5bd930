//! `arbiter bench plugins`: latency of one plugin call (fresh instance + `select`) with the
//! bundled `argmax` policy, for several candidate counts. Reports p50/p99 over many
//! iterations; never a pass/fail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arbiter_plugins::{Candidate, Limits, Message, NoModel, Request};
use clap::{Args, ValueEnum};

use super::{EngineArgs, Global};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure: `plugins` (instantiate + select), `engine` (reward-model scoring of
    /// `--input` cases, prefix sharing on and off), `matmul` (this CPU's f32 matmul peak),
    /// `long` (one long conversation: time and peak memory), `serve` (the daemon on loopback:
    /// hot-reload latency, overhead per request, requests/s; with `--model` and `--input`,
    /// requests/s of that checkpoint with the clients sharing the input's prompts), `lazy` (the early-exit policy vs
    /// argmax through the selection pipeline, new and repeated prompts; `--input` cases).
    #[arg(value_enum, default_value = "plugins")]
    what: BenchTarget,
    /// Model directory (`engine`, `long`, `lazy`, `serve`).
    #[arg(long, value_name = "DIR")]
    model: Option<std::path::PathBuf>,
    /// JSONL cases for `engine`, `lazy` and `serve` (same shape as `score --input`).
    #[arg(long, value_name = "FILE")]
    input: Option<std::path::PathBuf>,
    /// Runs per case for `engine` and `lazy` (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Result JSON of scripts/reference/bench_reference.py on the same `--input`, to compare
    /// against (repeatable: e.g. the f32 and the bf16 reference runs).
    #[arg(long, value_name = "FILE")]
    reference: Vec<std::path::PathBuf>,
    /// Candidates per reward call of the early-exit policy, for `lazy`.
    #[arg(long, default_value_t = 4)]
    chunk: usize,
    /// Concurrent clients for `serve`.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds of load for `serve`.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Conversation length for `long`, in tokens.
    #[arg(long, default_value_t = 32768)]
    tokens: usize,
    #[command(flatten)]
    engine: EngineArgs,
    /// Candidate counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [16usize, 64, 1024])]
    sizes: Vec<usize>,
    /// Timed iterations per size (after 10% warm-up).
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
    /// Policy to measure: a bundled name or a .wasm path (any language).
    #[arg(long, default_value = "argmax")]
    policy: String,
    /// Instance allocation: `pooling` (the default host setting) or `on-demand` (an mmap per
    /// instance), to compare the two.
    #[arg(long, value_enum, default_value = "pooling")]
    allocator: Allocator,
    #[command(flatten)]
    plugins_host: Global,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Allocator {
    Pooling,
    OnDemand,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BenchTarget {
    /// Instantiate + select with a bundled policy.
    Plugins,
    /// Reward-model scoring.
    Engine,
    /// f32 matmul peak.
    Matmul,
    /// A long conversation.
    Long,
    /// The daemon: hot-reload latency, overhead per request, requests/s.
    Serve,
    /// A lazy policy against argmax.
    Lazy,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let global = &args.plugins_host;
    let model = || args.model.as_deref().context("this benchmark needs --model DIR");
    match args.what {
        BenchTarget::Plugins => plugins(global, &args),
        BenchTarget::Engine => {
            let input = args.input.as_deref().context("`bench engine` needs --input FILE.jsonl")?;
            super::bench_engine::engine(model()?, input, &args.engine, args.repeat, &args.reference)
        }
        BenchTarget::Matmul => super::bench_engine::matmul(&args.engine),
        BenchTarget::Long => super::bench_engine::long(model()?, args.tokens, &args.engine),
        BenchTarget::Serve => {
            let real = match (&args.model, &args.input) {
                (Some(dir), Some(input)) => Some(super::bench_serve::RealModel { dir, input, engine: &args.engine }),
                (None, None) => None,
                _ => anyhow::bail!("`bench serve` takes --model and --input together (or neither: the demo model)"),
            };
            super::bench_serve::serve(args.clients, args.seconds, real)
        }
        BenchTarget::Lazy => {
            let input = args.input.as_deref().context("`bench lazy` needs --input FILE.jsonl")?;
            super::bench_lazy::lazy(global, model()?, input, &args.engine, args.repeat, args.chunk)
        }
    }
}

fn plugins(global: &Global, args: &BenchArgs) -> Result<()> {
    let host = if args.allocator == Allocator::OnDemand {
        global.host_with(|c| c.max_concurrent_instances = None)?
    } else {
        global.host()?
    };
    let started = Instant::now();
    let plugin = arbiter::select::load_plugin(&host, &args.policy, &Limits::default())?;
    let report = plugin.load_report();
    outln!(
        "policy {} {} ({} bytes; loaded in {:.1} ms, {}); {} iterations per size; instantiate + select per call",
        plugin.id().name,
        plugin.id().version,
        report.size_bytes,
        started.elapsed().as_secs_f64() * 1000.0,
        if report.from_cache { "from the compile cache" } else { "compiled" },
        args.iterations
    );
    outln!("{:>6} {:>10} {:>10} {:>10} {:>12}", "N", "p50 µs", "p99 µs", "mean µs", "fuel/call");
    let reward = Arc::new(NoModel);
    for &n in &args.sizes {
        let req = request(n);
        let warmup = (args.iterations / 10).max(1);
        let mut fuel = 0;
        for _ in 0..warmup {
            fuel = plugin.select(&req, reward.clone())?.1.fuel_used;
        }
        let mut samples: Vec<Duration> = Vec::with_capacity(args.iterations);
        for _ in 0..args.iterations.max(1) {
            let start = Instant::now();
            let out = plugin.select(&req, reward.clone())?;
            samples.push(start.elapsed());
            std::hint::black_box(out);
        }
        samples.sort();
        let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        let mean = samples.iter().sum::<Duration>() / samples.len().max(1) as u32;
        outln!("{n:>6} {:>10.1} {:>10.1} {:>10.1} {fuel:>12}", us(pick(0.5)), us(pick(0.99)), us(mean));
    }
    Ok(())
}

/// A request with `n` candidates of realistic short length and distinct scores.
fn request(n: usize) -> Request {
    let candidates = (0..n)
        .map(|i| Candidate {
            index: i as u32,
            text: format!("Candidate answer number {i}: the capital of France is Paris."),
            tokens: 14,
            score: Some(((i * 7919) % 1000) as f32 / 100.0 - 5.0),
            features: Vec::new(),
        })
        .collect();
    Request {
        conversation: vec![Message { role: "user".into(), content: "What is the capital of France?".into() }],
        candidates,
        params: Vec::new(),
        seed: 1,
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
