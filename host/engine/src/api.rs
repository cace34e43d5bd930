//! The engine's public vocabulary: the [`RewardModel`] trait every scorer implements, a
//! request tokenized for batching ([`Prepared`]), the Llama engine's knobs
//! ([`EngineOptions`]) and what one call did ([`ScoreStats`]).

use std::time::Duration;

use crate::compute::{BackendChoice, DtypeChoice};
use crate::error::Result;
use crate::prefix_cache::PrefixCacheStats;
use crate::template::Message;

/// A reward model: scores responses to a conversation. Synchronous; implementations may
/// block for as long as the computation takes.
pub trait RewardModel: Send + Sync {
    /// One score per response (higher is better), as the assistant's reply to `conversation`.
    ///
    /// # Errors
    /// Inputs too long, template or tokenizer failures, compute failures.
    fn score(&self, conversation: &[Message], responses: &[String]) -> Result<Vec<f32>>;

    /// Tokens in `text` (plain text, no template, no special tokens added).
    ///
    /// # Errors
    /// Tokenizer failures.
    fn count_tokens(&self, text: &str) -> Result<u32>;

    /// Short description for logs and `/info`.
    fn describe(&self) -> String;

    /// Tokenizes one request for [`RewardModel::score_prepared`] (any thread; no model compute).
    ///
    /// # Errors
    /// Template or tokenizer failures, inputs over the length limits.
    fn prepare(&self, conversation: &[Message], responses: &[String]) -> Result<Prepared>;

    /// Tokenizes texts that are already rendered with the chat template (they carry their own
    /// special tokens): no template is applied and no special token is added. For clients that
    /// template themselves (OpenRLHF's `query`, vLLM's `input`).
    ///
    /// # Errors
    /// Tokenizer failures, texts over the length limits, or a model that cannot score raw text.
    fn prepare_texts(&self, texts: &[String]) -> Result<Prepared> {
        let _ = texts;
        Err(crate::error::EngineError::Input("this model cannot score pre-templated texts".into()))
    }

    /// Scores several prepared requests together, packing candidates of different requests
    /// into the same batches. One result per request, in order; a failing request does not
    /// fail the others unless the shared computation itself fails.
    fn score_prepared(&self, requests: &[Prepared]) -> Vec<Result<Vec<f32>>>;

    /// Prefix-cache counters, where the model has a prefix cache.
    fn prefix_cache_stats(&self) -> Option<PrefixCacheStats> {
        None
    }

    /// The limits this model enforces, as configured: hosts report these and batch to them
    /// rather than keeping copies that could disagree.
    fn limits(&self) -> ModelLimits {
        ModelLimits { max_input_tokens: None, max_batch_tokens: EngineOptions::default().max_batch_tokens }
    }
}

/// What a model enforces ([`RewardModel::limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelLimits {
    /// Longest scored sequence (conversation plus response) in tokens; `None`: unbounded.
    pub max_input_tokens: Option<usize>,
    /// Candidate tokens per packed batch: one engine step's worth of work.
    pub max_batch_tokens: usize,
}

/// A request tokenized for batch scoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Token ids of each full conversation (`messages + [assistant: response]`).
    pub sequences: Vec<Vec<u32>>,
    /// The responses, as given.
    pub responses: Vec<String>,
}

impl Prepared {
    /// Tokens over all sequences (the batching budget).
    pub fn tokens(&self) -> usize {
        self.sequences.iter().map(Vec::len).sum()
    }
}

/// Knobs of the Llama engine.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineOptions {
    /// Vocabulary id whose logit is the reward (`LlamaForCausalLM` checkpoints).
    pub reward_token: u32,
    /// Longest accepted conversation in tokens; `None` = the model's context.
    pub max_input_tokens: Option<usize>,
    /// Tokens per packed batch of candidates.
    pub max_batch_tokens: usize,
    /// Tokens per chunk when running long sequences (bounds activation memory).
    pub chunk_tokens: usize,
    /// Compute the shared token prefix once (on) or every full sequence separately (off).
    pub share_prefix: bool,
    /// Tokenize `<|…|>` text inside messages as plain text (off: as special tokens, like the reference).
    pub neutralize_special_tokens: bool,
    /// Compute dtype on CPU ([`LlamaRewardModel::load`]).
    pub dtype: DtypeChoice,
    /// Matmul backend on CPU ([`LlamaRewardModel::load`]).
    pub backend: BackendChoice,
    /// Bytes of prompt key/values kept across calls for reuse (0: no prefix cache).
    pub prefix_cache_bytes: usize,
    /// Tokens per prefix-cache block (prompts are cached in whole blocks).
    pub prefix_cache_block: usize,
    /// Keep the embedding table in host memory on a GPU run (`--embeddings-on cpu`): rows are
    /// gathered on the CPU and the hidden state moves to the first GPU, freeing
    /// vocab × hidden × dtype bytes there (1.96 GiB for Llama-3.3-70B in bf16).
    pub embeddings_on_host: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            reward_token: 0,
            max_input_tokens: None,
            max_batch_tokens: 4096,
            chunk_tokens: 512,
            share_prefix: true,
            neutralize_special_tokens: false,
            dtype: DtypeChoice::Auto,
            backend: BackendChoice::Auto,
            prefix_cache_bytes: 1 << 30,
            prefix_cache_block: 128,
            embeddings_on_host: false,
        }
    }
}

/// Work done by one `score` call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreStats {
    /// Tokens of all full sequences.
    pub tokens_total: usize,
    /// Tokens actually pushed through the decoder (prefix once + suffixes).
    pub tokens_computed: usize,
    /// Length of the shared prefix.
    pub prefix_tokens: usize,
    /// Time spent on the shared prefix (near zero when the prefix cache holds it).
    pub prefix_elapsed: Duration,
    /// Wall time.
    pub elapsed: Duration,
}
