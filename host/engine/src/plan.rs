//! The memory planner: which layers go on which device, and what each device must hold besides
//! its weights — the shared prefix's key/values, the current batch's key/values, and the
//! working memory of one forward pass — computed from the architecture alone, before anything
//! is loaded, so a model that cannot fit is refused with the arithmetic instead of dying halfway.
//!
//! Invariants: every layer is placed exactly once, in contiguous ranges in device order (the
//! hidden state moves forward only); a plan never exceeds a device's budget; when the requested
//! batch does not fit, the batch budget is halved until it does, and the plan says so.

use std::fmt;
use std::ops::Range;

use crate::config::ModelConfig;

/// Usable memory of one device, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Name for reports (`cpu`, `cuda:0`, ...).
    pub name: String,
    /// Bytes the model may use there.
    pub bytes: u64,
}

/// What to plan for.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    /// Bytes per weight element (2 for bf16, 4 for f32).
    pub weight_bytes: u64,
    /// Bytes per activation / key-value element.
    pub activation_bytes: u64,
    /// The devices, in pipeline order.
    pub devices: Vec<Budget>,
    /// Keep the embedding table in host memory (only the gathered rows travel).
    pub embeddings_on_host: bool,
    /// Tokens per forward pass (candidates packed together).
    pub max_batch_tokens: usize,
    /// Shared-prefix tokens whose key/values stay resident while candidates run.
    pub prefix_tokens: usize,
    /// Tokens per prefill chunk (bounds attention scratch).
    pub chunk_tokens: usize,
}

/// One device's share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePlan {
    /// The device.
    pub name: String,
    /// Its layers.
    pub layers: Range<usize>,
    /// Weight bytes (its layers, plus embeddings and head where they live).
    pub weights: u64,
    /// Key/value bytes: prefix plus one batch, for its layers.
    pub kv: u64,
    /// Working memory of one forward pass.
    pub workspace: u64,
    /// Its budget.
    pub budget: u64,
}

/// A placement that fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Per device, in order.
    pub devices: Vec<DevicePlan>,
    /// Embedding bytes kept in host memory (0 when on the first device).
    pub host_embeddings: u64,
    /// The batch budget the plan fits (≤ the requested one).
    pub max_batch_tokens: usize,
}

/// Why no plan fits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "the model does not fit: {needed_gib:.1} GiB needed ({weights_gib:.1} GiB of weights), {available_gib:.1} GiB available on {devices}"
)]
pub struct DoesNotFit {
    /// Total bytes needed at the smallest batch, in GiB.
    pub needed_gib: f64,
    /// Of which weights, in GiB.
    pub weights_gib: f64,
    /// Sum of budgets, in GiB.
    pub available_gib: f64,
    /// Device names.
    pub devices: String,
}

const GIB: f64 = (1u64 << 30) as f64;

/// Elements of one decoder layer's weights.
pub fn layer_elements(cfg: &ModelConfig) -> u64 {
    let (h, q, kv, i) = (
        cfg.hidden_size as u64,
        (cfg.num_heads * cfg.head_dim) as u64,
        (cfg.num_kv_heads * cfg.head_dim) as u64,
        cfg.intermediate_size as u64,
    );
    h * (q + 2 * kv) + q * h + 3 * h * i + 2 * h
}

/// Key/value bytes of one token in one layer.
pub fn kv_bytes_per_token(cfg: &ModelConfig, activation_bytes: u64) -> u64 {
    2 * (cfg.num_kv_heads * cfg.head_dim) as u64 * activation_bytes
}

/// Working memory of one forward pass over `tokens` tokens: the residual stream and normed
/// copy, the stacked q/k/v projection and its head-major copies, the attention output, the
/// stacked gate/up projection and SiLU·up, and attention scores for one chunk of rows against
/// up to a chunk of keys per query head.
pub fn workspace_bytes(cfg: &ModelConfig, tokens: usize, chunk_tokens: usize, activation_bytes: u64) -> u64 {
    let (h, qkv, i) = (
        cfg.hidden_size as u64,
        ((cfg.num_heads + 2 * cfg.num_kv_heads) * cfg.head_dim) as u64,
        cfg.intermediate_size as u64,
    );
    let per_token = 4 * h + 2 * qkv + 3 * i;
    let scores = cfg.num_heads as u64 * (chunk_tokens as u64).pow(2) * 4;
    tokens as u64 * per_token * activation_bytes + scores
}

/// Plans `cfg` over `req.devices` (see the module docs).
///
/// # Errors
/// [`DoesNotFit`] when even a one-chunk batch cannot be placed.
pub fn plan(cfg: &ModelConfig, req: &PlanRequest) -> Result<Plan, DoesNotFit> {
    let mut batch = req.max_batch_tokens.max(1);
    loop {
        if let Some(p) = try_plan(cfg, req, batch) {
            return Ok(p);
        }
        if batch <= req.chunk_tokens.max(1) {
            break;
        }
        batch = (batch / 2).max(req.chunk_tokens.max(1));
    }
    let layer = layer_elements(cfg) * req.weight_bytes;
    let embed = (cfg.vocab_size * cfg.hidden_size) as u64 * req.weight_bytes;
    let kv = kv_bytes_per_token(cfg, req.activation_bytes) * (req.prefix_tokens + batch) as u64;
    let work = workspace_bytes(cfg, batch, req.chunk_tokens, req.activation_bytes);
    let weights = layer * cfg.num_layers as u64 + if req.embeddings_on_host { 0 } else { embed };
    let needed = weights + kv * cfg.num_layers as u64 + work * req.devices.len() as u64;
    Err(DoesNotFit {
        needed_gib: needed as f64 / GIB,
        weights_gib: weights as f64 / GIB,
        available_gib: req.devices.iter().map(|d| d.bytes).sum::<u64>() as f64 / GIB,
        devices: req.devices.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", "),
    })
}

fn try_plan(cfg: &ModelConfig, req: &PlanRequest, batch: usize) -> Option<Plan> {
    let n = cfg.num_layers;
    let per_layer = layer_elements(cfg) * req.weight_bytes
        + kv_bytes_per_token(cfg, req.activation_bytes) * (req.prefix_tokens + batch) as u64;
    let embed = (cfg.vocab_size * cfg.hidden_size) as u64 * req.weight_bytes;
    // Final norm and the reward row travel with the last device; negligible but counted.
    let tail = 2 * cfg.hidden_size as u64 * req.weight_bytes;
    let work = workspace_bytes(cfg, batch, req.chunk_tokens, req.activation_bytes);
    let fixed = |i: usize| -> u64 {
        work + if i == 0 && !req.embeddings_on_host { embed } else { 0 }
            + if i + 1 == req.devices.len() { tail } else { 0 }
    };
    // Layers each device could hold, then a share proportional to that (balanced pipeline).
    let capacity: Vec<usize> = req
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.bytes.saturating_sub(fixed(i)) / per_layer.max(1)) as usize)
        .collect();
    let total: usize = capacity.iter().sum();
    if total < n || req.devices.is_empty() {
        return None;
    }
    let mut share: Vec<usize> = capacity.iter().map(|&c| c * n / total).collect();
    let mut left = n - share.iter().sum::<usize>();
    for (s, &c) in share.iter_mut().zip(&capacity) {
        let extra = left.min(c - *s);
        *s += extra;
        left -= extra;
    }
    let mut start = 0;
    let devices = req
        .devices
        .iter()
        .zip(&share)
        .enumerate()
        .map(|(i, (d, &count))| {
            let layers = start..start + count;
            start += count;
            let own = count as u64;
            DevicePlan {
                name: d.name.clone(),
                weights: own * layer_elements(cfg) * req.weight_bytes + fixed(i) - work,
                kv: own * kv_bytes_per_token(cfg, req.activation_bytes) * (req.prefix_tokens + batch) as u64,
                workspace: work,
                budget: d.bytes,
                layers,
            }
        })
        .collect();
    Some(Plan { devices, host_embeddings: if req.embeddings_on_host { embed } else { 0 }, max_batch_tokens: batch })
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gib = |b: u64| b as f64 / GIB;
        for (i, d) in self.devices.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(
                f,
                "{}: layers {}..{}, {:.1} GiB weights + {:.1} GiB kv + {:.1} GiB work of {:.1} GiB",
                d.name,
                d.layers.start,
                d.layers.end,
                gib(d.weights),
                gib(d.kv),
                gib(d.workspace),
                gib(d.budget)
            )?;
        }
        if self.host_embeddings > 0 {
            write!(f, "; embeddings {:.1} GiB on the host", gib(self.host_embeddings))?;
        }
        write!(f, "; max batch {} tokens", self.max_batch_tokens)
    }
}

#[cfg(test)]
pub(crate) mod tests;
