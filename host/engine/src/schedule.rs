//! How scoring requests become forward passes: each request's shared prefix once (from the
//! prefix cache where it can), then every candidate's own tokens over that prefix's key/values,
//! packed into batches of at most `max_batch_tokens`; long candidates run alone, chunk by chunk.
//!
//! Invariant: a candidate's score never depends on which others share its batch (every row of a
//! packed matmul and every attention call is computed independently), nor on whether its prefix
//! came from the cache.

use std::time::{Duration, Instant};

use crate::api::ScoreStats;
use crate::engine::LlamaRewardModel;
use crate::error::{EngineError, Result};
use crate::model::{Chunk, KvBlocks};

impl LlamaRewardModel {
    /// Scores several requests (each a list of full sequences) together: each request's
    /// prefix runs once, then the candidates of all requests share packed batches.
    pub fn score_many(&self, requests: &[&[Vec<u32>]]) -> Vec<Result<(Vec<f32>, ScoreStats)>> {
        let layers = self.model.config().num_layers;
        struct Live {
            prefix_len: usize,
            prefix: KvBlocks,
            scores: Vec<f32>,
            stats: ScoreStats,
        }
        let mut live: Vec<Result<Live>> = requests
            .iter()
            .map(|seqs| {
                self.validate(seqs)?;
                let prefix_len = self.prefix_len(seqs);
                let started = Instant::now();
                let prefix = match seqs.first() {
                    Some(first) => self.prefix_kv(&first[..prefix_len])?,
                    None => KvBlocks::empty(layers),
                };
                let prefix_elapsed = started.elapsed();
                let stats = ScoreStats {
                    tokens_total: seqs.iter().map(Vec::len).sum(),
                    tokens_computed: prefix_len + seqs.iter().map(|s| s.len() - prefix_len).sum::<usize>(),
                    prefix_tokens: prefix_len,
                    prefix_elapsed,
                    elapsed: Duration::ZERO,
                };
                Ok(Live { prefix_len, prefix, scores: vec![0.0; seqs.len()], stats })
            })
            .collect();

        // (request, candidate) pairs still to score, in order.
        let mut pending: Vec<(usize, usize)> = Vec::new();
        for (r, seqs) in requests.iter().enumerate() {
            if live[r].is_ok() {
                pending.extend((0..seqs.len()).map(|c| (r, c)));
            }
        }
        let chunk = self.options.chunk_tokens;
        // Packed batches of (request, candidate), run together at the end: pipelined over the
        // devices when the model is split (see `Llama::forward_batches`).
        let mut batches: Vec<Vec<(usize, usize)>> = Vec::new();
        let mut batch: Vec<(usize, usize)> = Vec::new();
        let mut batch_tokens = 0;
        let mut failures: Vec<(usize, String)> = Vec::new();
        for (r, c) in pending {
            let own = match &live[r] {
                Ok(l) => requests[r][c].len() - l.prefix_len,
                Err(_) => continue,
            };
            if own > chunk {
                // Long candidates run alone, chunk by chunk, so activations stay bounded.
                let result = live[r].as_ref().map_err(|e| EngineError::Compute(e.to_string())).and_then(|l| {
                    let (_, last) = self.run_sequence(&requests[r][c][l.prefix_len..], l.prefix_len, &l.prefix)?;
                    let last = last.ok_or_else(|| EngineError::Compute("empty candidate suffix".into()))?;
                    Ok(self.model.rewards(std::slice::from_ref(&last))?[0])
                });
                match (result, &mut live[r]) {
                    (Ok(s), Ok(l)) => l.scores[c] = s,
                    (Err(e), _) => failures.push((r, e.to_string())),
                    _ => {}
                }
                continue;
            }
            if batch_tokens + own > self.options.max_batch_tokens && !batch.is_empty() {
                batches.push(std::mem::take(&mut batch));
                batch_tokens = 0;
            }
            batch.push((r, c));
            batch_tokens += own;
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        let chunks: Vec<Vec<Chunk<'_>>> = batches
            .iter()
            .map(|batch| {
                batch
                    .iter()
                    .filter_map(|&(r, c)| {
                        let l = live[r].as_ref().ok()?;
                        Some(Chunk { tokens: &requests[r][c][l.prefix_len..], start: l.prefix_len, context: &l.prefix })
                    })
                    .collect()
            })
            .collect();
        let results = self.model.forward_batches(&chunks);
        drop(chunks);
        for (batch, result) in batches.iter().zip(results) {
            let scores = result.and_then(|lasts| self.model.rewards(&lasts));
            match scores {
                Ok(scores) => {
                    for (&(r, c), s) in batch.iter().zip(scores) {
                        if let Ok(l) = &mut live[r] {
                            l.scores[c] = s;
                        }
                    }
                }
                Err(e) => failures.extend(batch.iter().map(|&(r, _)| (r, e.to_string()))),
            }
        }
        for (r, message) in failures {
            live[r] = Err(EngineError::Compute(message));
        }
        live.into_iter().map(|l| l.map(|l| (l.scores, l.stats))).collect()
    }

    /// Key/values of a shared prefix: the longest cached part from the prefix cache, the rest
    /// computed block by block (one KV block per cache block, the last possibly partial) and
    /// cached, so the same prefix next time is a full hit.
    fn prefix_kv(&self, tokens: &[u32]) -> Result<KvBlocks> {
        let layers = self.model.config().num_layers;
        let Some(cache) = &self.cache else {
            return Ok(self.run_sequence(tokens, 0, &KvBlocks::empty(layers))?.0);
        };
        let (done, blocks) = cache.lookup(tokens, layers);
        if done == tokens.len() {
            return Ok(blocks);
        }
        // `done` is block-aligned here: a partial block is only ever the end of a hit. The rest
        // runs in the usual large chunks (one forward per 512 tokens, not per cache block);
        // its key/values are then cut into cache blocks for storing.
        let cached = blocks.layers.first().map_or(0, Vec::len);
        let computed = self.run_sequence(&tokens[done..], done, &blocks)?.0;
        cache.insert(tokens, &computed.reblocked(cached, cache.block())?);
        Ok(computed)
    }

    /// Runs `tokens` (starting at `start`, seeing `context`) chunk by chunk; returns the
    /// context extended by them and the final hidden state of the last token.
    fn run_sequence(
        &self,
        tokens: &[u32],
        start: usize,
        context: &KvBlocks,
    ) -> Result<(KvBlocks, Option<candle_core::Tensor>)> {
        self.run_chunks(tokens, start, context, self.options.chunk_tokens)
    }

    /// [`Self::run_sequence`] in chunks of `size` tokens (each chunk adds one KV block per layer).
    fn run_chunks(
        &self,
        tokens: &[u32],
        start: usize,
        context: &KvBlocks,
        size: usize,
    ) -> Result<(KvBlocks, Option<candle_core::Tensor>)> {
        let mut blocks = context.clone();
        let mut last = None;
        for (n, piece) in tokens.chunks(size).enumerate() {
            let chunk = Chunk { tokens: piece, start: start + n * size, context: &blocks };
            let out = self.model.forward(std::slice::from_ref(&chunk))?.pop();
            let out = out.ok_or_else(|| EngineError::Compute("forward returned nothing".into()))?;
            blocks.extend(&out.kv);
            last = Some(out.last);
        }
        Ok((blocks, last))
    }
}
