//! The Llama decoder as a reward model: weights, and a forward pass over packed chunks that
//! reuses cached key/value blocks.
//!
//! A forward call takes several [`Chunk`]s (token runs, each with its start position and the
//! key/value blocks it may attend to) and packs their tokens into one matrix, so every
//! projection and MLP is one large matmul; attention runs per chunk over its own blocks. It
//! returns each chunk's new key/value blocks and the final-norm hidden state of its last
//! token. Device- and dtype-generic: nothing here assumes CPU or f32.

mod pipeline;
mod rope;

use candle_core::{D, DType, Device, Tensor};

use crate::compute::{Compute, Geometry, Linear};
use crate::config::{Head, ModelConfig};
use crate::error::Result;
use crate::weights::Checkpoint;

pub(crate) use rope::Rope;

/// Key/value blocks per layer: `layers[l]` is a list of `(k, v)`, each `[kv_heads, B, d]`.
#[derive(Debug, Clone, Default)]
pub struct KvBlocks {
    pub layers: Vec<Vec<(Tensor, Tensor)>>,
}

impl KvBlocks {
    /// Empty blocks for `n` layers.
    pub fn empty(n: usize) -> Self {
        Self { layers: vec![Vec::new(); n] }
    }

    /// Appends `other`'s blocks after this one's (tensor handles are shared, not copied).
    pub fn extend(&mut self, other: &KvBlocks) {
        for (mine, theirs) in self.layers.iter_mut().zip(&other.layers) {
            mine.extend(theirs.iter().cloned());
        }
    }

    /// The same key/values with every block from index `keep` on re-cut into blocks of `size`
    /// tokens (the last possibly shorter); the first `keep` blocks are shared as they are.
    /// Each new block owns its memory, so a cache holding it holds only its own tokens.
    ///
    /// # Errors
    /// Tensor failures.
    pub fn reblocked(&self, keep: usize, size: usize) -> candle_core::Result<KvBlocks> {
        let mut out = KvBlocks::empty(self.layers.len());
        for (mine, theirs) in out.layers.iter_mut().zip(&self.layers) {
            let (head, rest) = theirs.split_at(keep.min(theirs.len()));
            mine.extend(head.iter().cloned());
            if rest.is_empty() {
                continue;
            }
            // Blocks are `[kv_heads, len, dim]`: tokens along dim 1.
            let ks: Vec<&Tensor> = rest.iter().map(|(k, _)| k).collect();
            let vs: Vec<&Tensor> = rest.iter().map(|(_, v)| v).collect();
            let (k, v) = (Tensor::cat(&ks, 1)?, Tensor::cat(&vs, 1)?);
            let total = k.dim(1)?;
            let mut start = 0;
            while start < total {
                let len = size.max(1).min(total - start);
                mine.push((k.narrow(1, start, len)?.force_contiguous()?, v.narrow(1, start, len)?.force_contiguous()?));
                start += len;
            }
        }
        Ok(out)
    }
}

/// One run of tokens to push through the decoder.
pub struct Chunk<'a> {
    /// Token ids.
    pub tokens: &'a [u32],
    /// Position of the first token.
    pub start: usize,
    /// Blocks visible to every token of the chunk.
    pub context: &'a KvBlocks,
}

/// What a chunk produced.
pub struct ChunkOut {
    /// Its key/value blocks (one block per layer).
    pub kv: KvBlocks,
    /// Final-norm hidden state of its last token, `[1, hidden]`.
    pub last: Tensor,
}

struct Layer {
    input_norm: Tensor,
    /// q, k and v projections stacked into one matrix: one matmul per layer instead of three.
    qkv: Linear,
    o: Linear,
    post_norm: Tensor,
    /// gate and up projections stacked, likewise.
    gate_up: Linear,
    down: Linear,
    /// Where this layer's weights and key/values live (the device map).
    device: Device,
    /// The device-map entry that placed it: layers of one entry form a pipeline stage.
    stage: usize,
}

/// Decoder weights plus the reward head row.
pub struct Llama {
    cfg: ModelConfig,
    rope: Rope,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    /// `[1, hidden]`: the reward token's `lm_head` row (or tied embedding row), or `score`.
    head: Tensor,
    compute: Compute,
}

impl Llama {
    /// Loads every tensor, checking shapes against `cfg`, into `compute`'s layout and dtypes;
    /// keeps one row of the output head. `placement[i]` is layer `i`'s device and device-map
    /// entry (empty: every layer on `compute`'s device, one stage); embeddings live with the
    /// first layer (or in host memory with `embeddings_on_host`), the final norm and reward row
    /// with the last.
    pub fn load(
        cfg: &ModelConfig,
        ck: &Checkpoint,
        reward_token: u32,
        compute: Compute,
        placement: &[(Device, usize)],
        embeddings_on_host: bool,
    ) -> Result<Self> {
        let (h, kvd, qd, inter) =
            (cfg.hidden_size, cfg.num_kv_heads * cfg.head_dim, cfg.num_heads * cfg.head_dim, cfg.intermediate_size);
        let (act, wt) = (compute.activations(), compute.weights());
        let device_of = |i: usize| placement.get(i).map_or(compute.device(), |(d, _)| d).clone();
        let mut layers = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let device = device_of(i);
            let p = |s: &str| format!("model.layers.{i}.{s}");
            let w = |s: &str, shape: &[usize]| -> Result<Tensor> {
                Ok(ck.tensor_as(&p(s), shape, wt)?.to_device(&device)?)
            };
            let norm = |s: &str| -> Result<Tensor> { Ok(ck.tensor_as(&p(s), &[h], act)?.to_device(&device)?) };
            let qkv = Tensor::cat(
                &[
                    w("self_attn.q_proj.weight", &[qd, h])?,
                    w("self_attn.k_proj.weight", &[kvd, h])?,
                    w("self_attn.v_proj.weight", &[kvd, h])?,
                ],
                0,
            )?;
            let gate_up =
                Tensor::cat(&[w("mlp.gate_proj.weight", &[inter, h])?, w("mlp.up_proj.weight", &[inter, h])?], 0)?;
            layers.push(Layer {
                input_norm: norm("input_layernorm.weight")?,
                qkv: compute.linear(qkv)?,
                o: compute.linear(w("self_attn.o_proj.weight", &[h, qd])?)?,
                post_norm: norm("post_attention_layernorm.weight")?,
                gate_up: compute.linear(gate_up)?,
                down: compute.linear(w("mlp.down_proj.weight", &[h, inter])?)?,
                device,
                stage: placement.get(i).map_or(0, |(_, s)| *s),
            });
        }
        let (first, last) = (device_of(0), device_of(cfg.num_layers.saturating_sub(1)));
        // On the host, the gather runs on the CPU and only the gathered rows move to the GPU.
        let first = if embeddings_on_host { Device::Cpu } else { first };
        let vocab = cfg.vocab_size;
        let row = reward_token as usize;
        let head = match cfg.head {
            Head::Score => ck.tensor_as("score.weight", &[1, h], act)?,
            // Some tied checkpoints still ship an lm_head copy; the tied row is the same values.
            Head::LmHeadRow { tied } if tied && !ck.has("lm_head.weight") => {
                ck.row("model.embed_tokens.weight", vocab, h, row)?.to_dtype(act)?
            }
            Head::LmHeadRow { .. } => ck.row("lm_head.weight", vocab, h, row)?.to_dtype(act)?,
        }
        .to_device(&last)?;
        Ok(Self {
            rope: Rope::new(cfg),
            // Rows are gathered then converted: the table stays in the (smaller) weight dtype.
            embed: ck.tensor_as("model.embed_tokens.weight", &[vocab, h], wt)?.to_device(&first)?,
            layers,
            norm: ck.tensor_as("model.norm.weight", &[h], act)?.to_device(&last)?,
            head,
            compute,
            cfg: cfg.clone(),
        })
    }

    /// How this model computes.
    pub fn compute(&self) -> &Compute {
        &self.compute
    }

    /// Architecture.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Reward of each final hidden row: `head · h`.
    pub fn rewards(&self, last: &[Tensor]) -> Result<Vec<f32>> {
        if last.is_empty() {
            return Ok(Vec::new());
        }
        let rows = Tensor::cat(last, 0)?;
        let scores = rows.matmul(&self.head.t()?)?.squeeze(D::Minus1)?;
        Ok(scores.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    }

    /// Pushes `chunks` through the decoder together (see the module docs).
    pub fn forward(&self, chunks: &[Chunk<'_>]) -> Result<Vec<ChunkOut>> {
        let mut kv = self.new_kv(chunks);
        let hidden = self.embed(chunks)?;
        let hidden = self.run_layers(0..self.layers.len(), hidden, chunks, &mut kv)?;
        let lasts = self.last_rows(hidden, chunks)?;
        Ok(kv.into_iter().zip(lasts).map(|(kv, last)| ChunkOut { kv, last }).collect())
    }

    /// Empty key/value blocks for each chunk's output.
    fn new_kv(&self, chunks: &[Chunk<'_>]) -> Vec<KvBlocks> {
        chunks.iter().map(|_| KvBlocks::empty(self.layers.len())).collect()
    }

    /// The packed chunks' embeddings and rope rows, on the first layer's device.
    fn embed(&self, chunks: &[Chunk<'_>]) -> Result<Hidden> {
        let ids: Vec<u32> = chunks.iter().flat_map(|c| c.tokens.iter().copied()).collect();
        let positions: Vec<usize> = chunks.iter().flat_map(|c| c.start..c.start + c.tokens.len()).collect();
        let device = self.embed.device().clone();
        let total = ids.len();
        let ids = Tensor::from_vec(ids, total, &device)?;
        let x = self.embed.index_select(&ids, 0)?.to_dtype(self.compute.activations())?;
        let (cos, sin) = self.rope.cos_sin(&positions, &device, self.compute.activations())?;
        Ok(Hidden { x, cos, sin })
    }

    /// Layers `range` over `hidden`, adding each layer's key/values to `kv` (one per chunk).
    fn run_layers(
        &self,
        range: std::ops::Range<usize>,
        hidden: Hidden,
        chunks: &[Chunk<'_>],
        kv: &mut [KvBlocks],
    ) -> Result<Hidden> {
        let cfg = &self.cfg;
        let geometry = Geometry { heads: cfg.num_heads, kv_heads: cfg.num_kv_heads, dim: cfg.head_dim };
        let Hidden { mut x, mut cos, mut sin } = hidden;
        for li in range {
            let layer = &self.layers[li];
            if !layer.device.same_device(x.device()) {
                // A device-map boundary: the hidden state and rope rows move; nothing else does.
                x = x.to_device(&layer.device)?;
                (cos, sin) = (cos.to_device(&layer.device)?, sin.to_device(&layer.device)?);
            }
            let h = candle_nn::ops::rms_norm(&x, &layer.input_norm, cfg.rms_norm_eps as f32)?;
            let qkv = layer.qkv.forward(&h)?;
            let spans: Vec<(usize, &[(Tensor, Tensor)])> =
                chunks.iter().map(|c| (c.tokens.len(), c.context.layers[li].as_slice())).collect();
            let (attn, own) = self.compute.attention(&qkv, (&cos, &sin), &spans, geometry)?;
            for (kv, block) in kv.iter_mut().zip(own) {
                kv.layers[li].push(block);
            }
            x = (x + layer.o.forward(&attn)?)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.post_norm, cfg.rms_norm_eps as f32)?;
            let mlp = self.compute.silu_mul(&layer.gate_up.forward(&h)?, cfg.intermediate_size)?;
            x = (x + layer.down.forward(&mlp)?)?;
        }
        Ok(Hidden { x, cos, sin })
    }

    /// Each chunk's final-norm last hidden row, `[1, hidden]`.
    fn last_rows(&self, hidden: Hidden, chunks: &[Chunk<'_>]) -> Result<Vec<Tensor>> {
        let x = hidden.x.to_device(self.norm.device())?;
        let mut out = Vec::with_capacity(chunks.len());
        let mut end = 0;
        for chunk in chunks {
            end += chunk.tokens.len();
            out.push(candle_nn::ops::rms_norm(&x.narrow(0, end - 1, 1)?, &self.norm, self.cfg.rms_norm_eps as f32)?);
        }
        Ok(out)
    }

    /// Contiguous layer ranges placed by one device-map entry, in order: the pipeline's stages.
    pub(crate) fn stages(&self) -> Vec<std::ops::Range<usize>> {
        let mut stages: Vec<std::ops::Range<usize>> = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            match stages.last_mut() {
                Some(last) if self.layers[last.start].stage == layer.stage => last.end = i + 1,
                _ => stages.push(i..i + 1),
            }
        }
        stages
    }
}

/// The residual stream between layers, with the rope rows for its positions (on its device).
pub(crate) struct Hidden {
    x: Tensor,
    cos: Tensor,
    sin: Tensor,
}
