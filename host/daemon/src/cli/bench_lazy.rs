//! `arbiter bench lazy`: what a lazy policy (`early-exit`) costs against `argmax` scoring every
//! candidate, through the same selection pipeline the daemon runs, with the prefix KV cache as
//! configured (`--prefix-cache-bytes 0` measures it off).
//!
//! Every "cold" run scores a prompt never seen before (a unique tag is prepended to it), so it
//! pays for its prompt; the "warm" run repeats the same request at once (an RL loop scoring
//! another batch for the same prompt), so with the cache on its prompt comes from the cache.
//! Reports numbers only; targets are judged in BENCHMARKS.md.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use arbiter::input::SelectInput;
use arbiter::reward::EngineBackend;
use arbiter::select;
use arbiter_engine::Message;
use arbiter_plugins::{Limits, Plugin, RewardBackend};
use serde_json::json;

use super::bench_engine::{Case, median, read_cases};
use super::{EngineArgs, Global};

/// One policy configuration to time.
struct Mode {
    label: String,
    plugin: Plugin,
    params: serde_json::Value,
}

fn tagged(case: &Case, tag: &str) -> Vec<Message> {
    let mut messages = case.messages.clone();
    if let Some(first) = messages.first_mut() {
        first.content = format!("[{tag}] {}", first.content);
    }
    messages
}

/// Runs one selection; returns its wall time and its per-candidate scores (null: unscored).
fn run_once(
    mode: &Mode,
    messages: &[Message],
    case: &Case,
    backend: &Arc<dyn RewardBackend>,
) -> Result<(f64, Vec<Option<f32>>)> {
    let body = json!({"policy": mode.plugin.id().name, "messages": messages, "responses": case.responses, "params": mode.params});
    let input = SelectInput::parse(&body.to_string()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    let outcome =
        select::run(&mode.plugin, &[] as &[Plugin], &input, backend.clone()).with_context(|| mode.label.clone())?;
    let secs = started.elapsed().as_secs_f64();
    Ok((secs, outcome.output.scores.iter().map(|s| s.0).collect()))
}

pub fn lazy(
    global: &Global,
    model_dir: &Path,
    input: &Path,
    engine: &EngineArgs,
    repeat: usize,
    chunk: usize,
) -> Result<()> {
    engine.apply_threads();
    let cases = read_cases(input)?;
    let model = Arc::new(engine.load(model_dir)?);
    let backend: Arc<dyn RewardBackend> = Arc::new(EngineBackend::new(model.clone()));
    let host = global.host()?;
    // Host time (the engine) is not charged to the guest; the reward quota must cover N.
    let limits = Limits::default();
    let load = |name: &str| select::load_plugin(&host, name, &limits).with_context(|| format!("loading {name}"));
    let n = cases.first().map(|c| c.responses.len()).unwrap_or(0);
    let modes = [
        Mode { label: "argmax (scores all N in one call)".into(), plugin: load("argmax")?, params: json!({}) },
        Mode {
            label: format!("early-exit, stops after its first chunk of {chunk}"),
            plugin: load("early-exit")?,
            params: json!({"min": -3.0e38, "chunk": chunk}),
        },
        Mode {
            label: format!("early-exit, scores all N in chunks of {chunk}"),
            plugin: load("early-exit")?,
            params: json!({"min": 3.0e38, "chunk": chunk, "fallback": "best"}),
        },
    ];
    outln!("model {}; engine {}", model_dir.display(), model.compute_info());
    outln!(
        "{} cases of N = {n}; prefix cache {}; median of {repeat} runs per case",
        cases.len(),
        if engine.prefix_cache_bytes == 0 { "off".to_owned() } else { format!("{} bytes", engine.prefix_cache_bytes) }
    );
    // [mode][case] → (cold runs, warm runs)
    let mut times = vec![vec![(Vec::new(), Vec::new()); cases.len()]; modes.len()];
    let mut max_diff = 0.0f32;
    for r in 0..repeat.max(1) {
        for (c, case) in cases.iter().enumerate() {
            for (m, mode) in modes.iter().enumerate() {
                let messages = tagged(case, &format!("run {r} case {c} mode {m}"));
                let (cold, scores) = run_once(mode, &messages, case, &backend)?;
                let (warm, _) = run_once(mode, &messages, case, &backend)?;
                times[m][c].0.push(cold);
                times[m][c].1.push(warm);
                // "early-exit scores all" and argmax score the same texts: argmax on this
                // prompt afterwards (its prefix now cached) must give the same scores.
                if m == 2 {
                    let (_, reference) = run_once(&modes[0], &messages, case, &backend)?;
                    for (a, b) in reference.iter().zip(&scores) {
                        if let (Some(a), Some(b)) = (a, b) {
                            max_diff = max_diff.max((a - b).abs());
                        }
                    }
                }
            }
        }
    }
    let per_mode: Vec<(f64, f64)> = times
        .iter()
        .map(|cases| {
            let cold: f64 = cases.iter().map(|(c, _)| median(c.clone())).sum();
            let warm: f64 = cases.iter().map(|(_, w)| median(w.clone())).sum();
            (cold, warm)
        })
        .collect();
    let (argmax_cold, argmax_warm) = per_mode[0];
    outln!("seconds over all cases (sum of per-case medians); ratio to argmax in the same column");
    for (mode, (cold, warm)) in modes.iter().zip(&per_mode) {
        outln!(
            "  {:<48} new prompt {cold:>7.3} s ({:.2}×)   same prompt again {warm:>7.3} s ({:.2}×)",
            mode.label,
            cold / argmax_cold,
            warm / argmax_warm
        );
    }
    if n > 0 {
        outln!("target for stopping after the first chunk: ≤ k/N + 0.1 = {:.3}×", chunk as f64 / n as f64 + 0.1);
    }
    outln!("max |score difference| between argmax and early-exit over the same texts: {max_diff:.2e}");
    // A lazy policy's first two calls on a new prompt: the second finds the prompt cached.
    if let Some(case) = cases.first().filter(|c| c.responses.len() >= 2 * chunk.max(1)) {
        let k = chunk.max(1);
        let messages = tagged(case, "prefix timing");
        let (_, first) = model.score_with_stats(&messages, &case.responses[..k])?;
        let (_, second) = model.score_with_stats(&messages, &case.responses[k..2 * k])?;
        outln!(
            "a lazy policy's first and second call (k = {k}) on a new prompt: shared prefix {} / {} tokens, \
             prefix time {:.4} s / {:.4} s",
            first.prefix_tokens,
            second.prefix_tokens,
            first.prefix_elapsed.as_secs_f64(),
            second.prefix_elapsed.as_secs_f64()
        );
    }
    if let Some(stats) = model.prefix_cache_stats() {
        outln!("prefix cache: {stats:?}");
    }
    Ok(())
}
