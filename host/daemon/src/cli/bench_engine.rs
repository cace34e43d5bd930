//! `arbiter bench engine|matmul|long`: reward-engine throughput, prefix sharing on vs off,
//! achieved GFLOP/s against this CPU's measured matmul peak, and peak memory on long inputs.
//! Reports numbers only; targets are judged in BENCHMARKS.md, never asserted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arbiter_engine::{Message, ModelConfig, RewardModel};

use super::EngineArgs;

/// One benchmark case: a conversation and its candidate responses.
pub(super) struct Case {
    pub(super) messages: Vec<Message>,
    pub(super) responses: Vec<String>,
}

pub(super) fn read_cases(path: &Path) -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l).with_context(|| format!("line {}", i + 1))?;
            Ok(Case {
                messages: serde_json::from_value(v["messages"].clone()).context("messages")?,
                responses: serde_json::from_value(v["responses"].clone()).context("responses")?,
            })
        })
        .collect()
}

/// Forward FLOPs for the given sequences: every projection and MLP matmul per computed token,
/// plus attention (QKᵀ and PV) over each token's visible keys. The one-row reward head is
/// negligible and not counted.
fn flops(cfg: &ModelConfig, sequences: &[Vec<u32>], prefix: usize) -> f64 {
    let (h, d, nh, kvh, i) = (
        cfg.hidden_size as f64,
        cfg.head_dim as f64,
        cfg.num_heads as f64,
        cfg.num_kv_heads as f64,
        cfg.intermediate_size as f64,
    );
    let per_token_linear = 2.0 * (h * nh * d * 2.0 + h * kvh * d * 2.0 + 3.0 * h * i);
    let attention_per_key = 4.0 * nh * d;
    let mut tokens = 0.0;
    let mut keys = 0.0;
    // the shared prefix once: token t sees t + 1 keys
    tokens += prefix as f64;
    keys += (prefix * (prefix + 1) / 2) as f64;
    for s in sequences {
        for t in prefix..s.len() {
            tokens += 1.0;
            keys += (t + 1) as f64;
        }
    }
    cfg.num_layers as f64 * (tokens * per_token_linear + keys * attention_per_key)
}

pub(super) fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The CPU's model name, where the OS reports it.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Peak resident memory of this process (VmHWM), in MiB, where the OS reports it.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub fn engine(
    model_dir: &Path,
    input: &Path,
    engine: &EngineArgs,
    repeat: usize,
    references: &[PathBuf],
) -> Result<()> {
    engine.apply_threads();
    let cases = read_cases(input)?;
    outln!("model {}; {} cases; median of {repeat} runs per case", model_dir.display(), cases.len());
    let mut medians = Vec::new();
    let mut all_scores = Vec::new();
    for share in [true, false] {
        let mut args = engine.clone();
        args.no_prefix_sharing = !share;
        // Repeated runs of a case would hit the prefix cache: it is measured on its own below.
        args.prefix_cache_bytes = 0;
        let model = args.load(model_dir)?;
        if share {
            outln!("cpu {}; engine {}", cpu_model(), model.compute_info());
        }
        let cfg = model.config().clone();
        let (mut per_case, mut total_flops, mut tokens_total, mut tokens_computed) = (Vec::new(), 0.0, 0, 0);
        let mut scores = Vec::new();
        for case in &cases {
            let ids: Vec<Vec<u32>> =
                case.responses.iter().map(|r| model.conversation_ids(&case.messages, r)).collect::<Result<_, _>>()?;
            let mut runs = Vec::new();
            for _ in 0..repeat.max(1) {
                let (s, stats) = model.score_with_stats(&case.messages, &case.responses)?;
                runs.push(stats.elapsed.as_secs_f64());
                tokens_total += stats.tokens_total;
                tokens_computed += stats.tokens_computed;
                if runs.len() == 1 {
                    // The prefix the engine actually shared (0 with sharing off).
                    total_flops += flops(&cfg, &ids, stats.prefix_tokens);
                    scores.push(s);
                }
            }
            per_case.push(median(runs));
        }
        let secs: f64 = per_case.iter().sum();
        let n_responses: usize = cases.iter().map(|c| c.responses.len()).sum();
        outln!(
            "prefix sharing {:<3}: {:.3} s per case (median), {:.1} responses/s, {:.0} tokens/s, tokens computed/total {}/{}, {:.1} GFLOP/s",
            if share { "on" } else { "off" },
            secs / cases.len() as f64,
            n_responses as f64 / secs,
            (tokens_total / repeat.max(1)) as f64 / secs,
            tokens_computed / repeat.max(1),
            tokens_total / repeat.max(1),
            total_flops / secs / 1e9
        );
        medians.push(secs);
        all_scores.push(scores);
    }
    outln!("prefix sharing on/off time ratio: {:.3}", medians[0] / medians[1]);
    if engine.prefix_cache_bytes > 0 {
        // The prefix cache: each case scored twice by a fresh model; the second call finds
        // its prompt's key/values cached (the RL loop / lazy policy situation).
        let model = engine.load(model_dir)?;
        let (mut first, mut second) = ((0.0, 0.0), (0.0, 0.0));
        for case in &cases {
            for total in [&mut first, &mut second] {
                let stats = model.score_with_stats(&case.messages, &case.responses)?.1;
                total.0 += stats.elapsed.as_secs_f64();
                total.1 += stats.prefix_elapsed.as_secs_f64();
            }
        }
        let cache = model.prefix_cache_stats().unwrap_or_default();
        let n = cases.len() as f64;
        outln!(
            "prefix cache: first call {:.3} s per case (prefix {:.3} s), same prompt again {:.3} s (prefix {:.4} s); {} blocks hit, {} MiB held",
            first.0 / n,
            first.1 / n,
            second.0 / n,
            second.1 / n,
            cache.hits,
            cache.bytes >> 20
        );
    }
    for path in references {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let r: serde_json::Value = serde_json::from_str(&text).context("reference json")?;
        let ref_secs: f64 = r["times_s"].as_array().context("times_s")?.iter().filter_map(|t| t.as_f64()).sum();
        let ref_scores: Vec<Vec<f32>> = serde_json::from_value(r["scores"].clone()).context("scores")?;
        if ref_scores.len() != cases.len() {
            anyhow::bail!("{} has {} cases, --input has {}", path.display(), ref_scores.len(), cases.len());
        }
        let diff = ref_scores
            .iter()
            .flatten()
            .zip(all_scores[0].iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        outln!(
            "reference {} ({}, {} threads): {:.3} s per case; arbiter {:.2}x with prefix sharing, {:.2}x without (every token computed by both); max |score diff| {diff:e}",
            path.display(),
            r["dtype"].as_str().unwrap_or("float32"),
            r["threads"],
            ref_secs / cases.len() as f64,
            ref_secs / medians[0],
            ref_secs / medians[1]
        );
    }
    if let Some(rss) = peak_rss_mib() {
        outln!("peak RSS {rss:.0} MiB");
    }
    Ok(())
}

/// Matmul throughput of each CPU backend through the engine's own `Linear` (so oneDNN's
/// figure includes converting the f32 input to bf16), on the projection shapes of a
/// hidden-1024 model and the reference shapes.
pub fn matmul(engine: &EngineArgs) -> Result<()> {
    engine.apply_threads();
    let shapes =
        [(512usize, 1024usize, 1024usize), (512, 2816, 1024), (4096, 1024, 1024), (64, 1024, 1024), (512, 3072, 1024)];
    let report = arbiter_engine::bench::matmul(&shapes, 5)?;
    for (name, why) in &report.unavailable {
        outln!("{name}: unavailable ({why})");
    }
    outln!("cpu {}", cpu_model());
    if let Some((version, isa)) = &report.onednn {
        outln!("oneDNN {version} on {isa}");
    }
    outln!("GFLOP/s of y = x·Wᵀ, M×N×K, median of 5 after warm-up");
    for (s, (m, n, k)) in shapes.iter().enumerate() {
        let mut line = format!("  {m}x{n}x{k}:");
        for (name, rates) in &report.backends {
            line.push_str(&format!("  {name} {:.1}", rates[s]));
        }
        outln!("{line}");
    }
    for (name, rates) in &report.backends {
        outln!("peak {name}: {:.1} GFLOP/s", rates.iter().copied().fold(0.0, f64::max));
    }
    Ok(())
}

pub fn long(model_dir: &Path, tokens: usize, engine: &EngineArgs) -> Result<()> {
    engine.apply_threads();
    let model = engine.load(model_dir)?;
    let before = peak_rss_mib();
    let per_word = model.count_tokens("lorem ipsum dolor ").unwrap_or(3).max(1) as usize;
    let words = tokens / per_word * 3;
    let messages = vec![Message { role: "user".into(), content: "lorem ipsum dolor ".repeat(words / 3) }];
    let responses = vec!["short answer".to_owned(), "another short answer".to_owned()];
    let started = Instant::now();
    let (scores, stats) = model.score_with_stats(&messages, &responses)?;
    let elapsed: Duration = started.elapsed();
    outln!(
        "{} tokens per conversation ({} computed): scores {scores:?} in {:.2} s",
        stats.tokens_total / 2,
        stats.tokens_computed,
        elapsed.as_secs_f64()
    );
    if let (Some(b), Some(a)) = (before, peak_rss_mib()) {
        outln!("peak RSS {b:.0} MiB after loading, {a:.0} MiB after scoring");
    }
    Ok(())
}
