//! The scoring engine: the Llama implementation of [`RewardModel`].
//!
//! Scoring N responses: render and tokenize each full conversation; take the longest token
//! prefix common to all N (computing the prefix from the actual token ids is the boundary
//! check: a template or tokenizer that merges across the candidate boundary simply yields a
//! shorter shared prefix, never a wrong one); then `schedule.rs` runs that prefix once and the
//! candidates' own tokens in packed batches. This file: loading, limits, the public API.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device};

use crate::api::{EngineOptions, ModelLimits, Prepared, RewardModel, ScoreStats};
use crate::compute::{Compute, ComputeInfo};
use crate::config::ModelConfig;
use crate::error::{EngineError, Result, bad};
use crate::model::Llama;
use crate::plan::{Budget, Plan, PlanRequest, plan};
use crate::prefix_cache::{PrefixCache, PrefixCacheStats};
use crate::prompt::Prompter;
use crate::template::Message;
use crate::weights::Checkpoint;

/// `MemAvailable` of /proc/meminfo, in bytes, where the OS reports it.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// A Llama-3.x reward model loaded from a Hugging Face checkpoint directory.
pub struct LlamaRewardModel {
    pub(crate) model: Llama,
    /// Prompt key/values of earlier calls (`None`: off).
    pub(crate) cache: Option<PrefixCache>,
    /// Memory placement (`None` where the device's free memory is unknown).
    plan: Option<Plan>,
    prompter: Prompter,
    pub(crate) options: EngineOptions,
    dir: String,
}

impl LlamaRewardModel {
    /// Loads a checkpoint directory offline, on CPU, with the dtype and backend that
    /// `options.dtype` / `options.backend` resolve to (see [`crate::ComputeInfo`]).
    ///
    /// # Errors
    /// Any missing or malformed file, named; `--backend onednn` without the library.
    pub fn load(dir: &Path, options: EngineOptions) -> Result<Self> {
        Self::load_with(dir, options, &[], |stored, o| Compute::cpu(o.backend, o.dtype, stored, o.chunk_tokens))
    }

    /// Loads on a given device, computing everything in `dtype` with candle's kernels (the
    /// CUDA path uses bf16; on CPU this is the reference backend).
    ///
    /// # Errors
    /// As [`LlamaRewardModel::load`].
    pub fn load_on(dir: &Path, options: EngineOptions, device: Device, dtype: DType) -> Result<Self> {
        Self::load_with(dir, options, &[], move |_, _| Ok(Compute::on(device, dtype)))
    }

    /// Loads split by layers over several devices (the device map): `split[i] = (device,
    /// layers)` places the next `layers` layers on `device`, in order; embeddings go with the
    /// first layer, the final norm and reward row with the last. The hidden state moves between
    /// devices at range boundaries. Computes in `dtype` with candle's kernels (CPU devices may
    /// stand in for GPUs: the same code path).
    ///
    /// # Errors
    /// As [`LlamaRewardModel::load`], plus a map that does not place every layer exactly once.
    pub fn load_split(dir: &Path, options: EngineOptions, split: &[(Device, usize)], dtype: DType) -> Result<Self> {
        let first =
            split.first().map(|(d, _)| d.clone()).ok_or_else(|| EngineError::Input("empty device map".into()))?;
        Self::load_with(dir, options, split, move |_, _| Ok(Compute::on(first, dtype)))
    }

    fn load_with(
        dir: &Path,
        options: EngineOptions,
        split: &[(Device, usize)],
        compute: impl FnOnce(DType, &EngineOptions) -> Result<Compute>,
    ) -> Result<Self> {
        if !dir.is_dir() {
            let what = if dir.exists() { "is not a directory" } else { "does not exist" };
            return Err(bad(
                dir,
                format!(
                    "{what}: expected a Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer.json)"
                ),
            ));
        }
        let cfg = ModelConfig::load(&dir.join("config.json"))?;
        let prompter = Prompter::load(dir, options.neutralize_special_tokens)?;
        if prompter.vocab_size() > cfg.vocab_size {
            return Err(bad(
                dir.join("tokenizer.json"),
                format!(
                    "tokenizer has {} tokens but config.json vocab_size is {}",
                    prompter.vocab_size(),
                    cfg.vocab_size
                ),
            ));
        }
        if options.reward_token as usize >= cfg.vocab_size {
            return Err(EngineError::Input(format!(
                "reward token {} is outside the vocabulary ({} tokens)",
                options.reward_token, cfg.vocab_size
            )));
        }
        if options.chunk_tokens == 0 || options.max_batch_tokens == 0 {
            return Err(EngineError::Input("chunk_tokens and max_batch_tokens must be positive".into()));
        }
        // Each layer's device and the index of the map entry that placed it (its pipeline stage:
        // CPU "devices" standing in for GPUs are all the same `Device::Cpu`).
        let placement: Vec<(Device, usize)> =
            split.iter().enumerate().flat_map(|(stage, (d, n))| std::iter::repeat_n((d.clone(), stage), *n)).collect();
        if !split.is_empty() && placement.len() != cfg.num_layers {
            return Err(EngineError::Input(format!(
                "the device map places {} layers but the model has {}",
                placement.len(),
                cfg.num_layers
            )));
        }
        let ck = Checkpoint::open(dir)?;
        let stored = ck.stored_dtype("model.layers.0.self_attn.q_proj.weight").unwrap_or(DType::F32);
        let compute = compute(stored, &options)?;
        let plan = Self::plan_cpu(&cfg, &compute, &options)?;
        let model = Llama::load(&cfg, &ck, options.reward_token, compute, &placement, options.embeddings_on_host)?;
        let cache = PrefixCache::new(options.prefix_cache_block, options.prefix_cache_bytes);
        Ok(Self { model, cache, plan, prompter, options, dir: dir.display().to_string() })
    }

    /// Plans a CPU model against the host's available memory before any weight is read, so a
    /// model that cannot fit is refused with the arithmetic instead of failing halfway.
    fn plan_cpu(cfg: &ModelConfig, compute: &Compute, options: &EngineOptions) -> Result<Option<Plan>> {
        let Some(available) = compute.device().is_cpu().then(available_memory).flatten() else { return Ok(None) };
        let request = PlanRequest {
            weight_bytes: compute.weights().size_in_bytes() as u64,
            activation_bytes: compute.activations().size_in_bytes() as u64,
            devices: vec![Budget { name: "cpu (MemAvailable)".into(), bytes: available }],
            embeddings_on_host: false,
            max_batch_tokens: options.max_batch_tokens,
            prefix_tokens: cfg.max_position_embeddings.min(8192),
            chunk_tokens: options.chunk_tokens,
        };
        Ok(Some(plan(cfg, &request)?))
    }

    /// Pipeline stages: the device map's non-empty entries (1 on one device). Batches of a
    /// request run pipelined over them (`Llama::forward_batches`).
    pub fn pipeline_stages(&self) -> usize {
        self.model.stages().len()
    }

    /// The same model, reporting `plan` (a placement made by its loader) when it has one.
    pub(crate) fn with_plan(mut self, plan: Option<Plan>) -> Self {
        if plan.is_some() {
            self.plan = plan;
        }
        self
    }

    /// Where the model's memory goes (CPU: one device, the host's available memory).
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }

    /// Architecture of the loaded checkpoint.
    pub fn config(&self) -> &ModelConfig {
        self.model.config()
    }

    /// Backend, instruction set and dtypes chosen at load.
    pub fn compute_info(&self) -> &ComputeInfo {
        self.model.compute().info()
    }

    /// Token ids of the conversation `messages + [assistant: response]`, as the reference
    /// tokenizes it for scoring.
    ///
    /// # Errors
    /// Template or tokenizer failures.
    pub fn conversation_ids(&self, messages: &[Message], response: &str) -> Result<Vec<u32>> {
        self.prompter.conversation_ids(messages, response)
    }

    /// The tighter of the model's context and the configured limit, with its name.
    fn input_limit(&self) -> (usize, &'static str) {
        let context = self.model.config().max_position_embeddings;
        match self.options.max_input_tokens {
            Some(limit) if limit < context => (limit, "configured limit (max_input_tokens)"),
            _ => (context, "model context (max_position_embeddings)"),
        }
    }

    /// Token ids of every `messages + [assistant: r]`, refusing over-long inputs before
    /// tokenizing them and tokenizing the shared conversation once (`Prompter::batch_ids`).
    fn batch_ids(&self, messages: &[Message], responses: &[String]) -> Result<Vec<Vec<u32>>> {
        let (limit, name) = self.input_limit();
        self.prompter.batch_ids(messages, responses, limit, name)
    }

    fn check_length(&self, n: usize) -> Result<()> {
        let context = self.model.config().max_position_embeddings;
        if n > context {
            return Err(EngineError::TooLong {
                tokens: n,
                limit: context,
                limit_name: "model context (max_position_embeddings)",
            });
        }
        if let Some(limit) = self.options.max_input_tokens
            && n > limit
        {
            return Err(EngineError::TooLong { tokens: n, limit, limit_name: "configured limit (max_input_tokens)" });
        }
        Ok(())
    }

    /// Scores already-tokenized sequences, sharing their common prefix.
    ///
    /// # Errors
    /// Empty sequences, lengths over the limits, compute failures.
    pub fn score_ids(&self, sequences: &[Vec<u32>]) -> Result<(Vec<f32>, ScoreStats)> {
        let started = Instant::now();
        let mut out = self.score_many(&[sequences]);
        let (scores, mut stats) = out.pop().unwrap_or_else(|| Ok((Vec::new(), ScoreStats::default())))?;
        stats.elapsed = started.elapsed();
        Ok((scores, stats))
    }

    pub(crate) fn prefix_len(&self, sequences: &[Vec<u32>]) -> usize {
        if !self.options.share_prefix || sequences.is_empty() {
            return 0;
        }
        let shortest = sequences.iter().map(Vec::len).min().unwrap_or(0);
        let first = &sequences[0];
        let common = sequences[1..]
            .iter()
            .fold(first.len(), |n, s| first.iter().zip(s).take(n).take_while(|(a, b)| a == b).count());
        // Every candidate keeps at least one token of its own: its last position is read.
        common.min(shortest.saturating_sub(1))
    }

    pub(crate) fn validate(&self, sequences: &[Vec<u32>]) -> Result<()> {
        for s in sequences {
            if s.is_empty() {
                return Err(EngineError::Input("a conversation rendered to zero tokens".into()));
            }
            self.check_length(s.len())?;
        }
        Ok(())
    }

    /// Prefix-cache counters (`None` when the cache is off).
    pub fn prefix_cache_stats(&self) -> Option<PrefixCacheStats> {
        self.cache.as_ref().map(PrefixCache::stats)
    }

    /// Scores with statistics.
    ///
    /// # Errors
    /// As [`RewardModel::score`].
    pub fn score_with_stats(&self, conversation: &[Message], responses: &[String]) -> Result<(Vec<f32>, ScoreStats)> {
        self.score_ids(&self.batch_ids(conversation, responses)?)
    }
}

impl RewardModel for LlamaRewardModel {
    fn score(&self, conversation: &[Message], responses: &[String]) -> Result<Vec<f32>> {
        Ok(self.score_with_stats(conversation, responses)?.0)
    }

    fn count_tokens(&self, text: &str) -> Result<u32> {
        Ok(u32::try_from(self.prompter.encoder().encode(text)?.len()).unwrap_or(u32::MAX))
    }

    fn describe(&self) -> String {
        let c = self.model.config();
        let plan = self.plan.as_ref().map(|p| format!("; memory plan: {p}")).unwrap_or_default();
        let stages = self.pipeline_stages();
        let pipeline = if stages > 1 { format!("; pipelined over {stages} stages") } else { String::new() };
        format!(
            "{} ({} layers, hidden {}, {:?}; {}{plan}{pipeline})",
            self.dir,
            c.num_layers,
            c.hidden_size,
            c.head,
            self.compute_info()
        )
    }

    fn prepare(&self, conversation: &[Message], responses: &[String]) -> Result<Prepared> {
        let sequences = self.batch_ids(conversation, responses)?;
        self.validate(&sequences)?;
        Ok(Prepared { sequences, responses: responses.to_vec() })
    }

    fn prepare_texts(&self, texts: &[String]) -> Result<Prepared> {
        let (limit, name) = self.input_limit();
        let encoder = self.prompter.encoder();
        let mut sequences = Vec::with_capacity(texts.len());
        for text in texts {
            // Refused from its length before it is tokenized, as templated inputs are.
            if let Some(n) = encoder.min_tokens(text).filter(|&n| n > limit) {
                return Err(EngineError::TooLong { tokens: n, limit, limit_name: name });
            }
            sequences.push(encoder.encode(text)?);
        }
        self.validate(&sequences)?;
        Ok(Prepared { sequences, responses: texts.to_vec() })
    }

    fn score_prepared(&self, requests: &[Prepared]) -> Vec<Result<Vec<f32>>> {
        let ids: Vec<&[Vec<u32>]> = requests.iter().map(|p| p.sequences.as_slice()).collect();
        self.score_many(&ids).into_iter().map(|r| r.map(|(s, _)| s)).collect()
    }

    fn prefix_cache_stats(&self) -> Option<PrefixCacheStats> {
        LlamaRewardModel::prefix_cache_stats(self)
    }

    fn limits(&self) -> ModelLimits {
        let context = self.model.config().max_position_embeddings;
        ModelLimits {
            max_input_tokens: Some(self.options.max_input_tokens.map_or(context, |l| l.min(context))),
            max_batch_tokens: self.options.max_batch_tokens,
        }
    }
}
