//! Attention over key/value blocks for one layer: the seam's entry point
//! ([`super::Compute::attention`]) and its device-generic implementation on candle ops.
//!
//! Where activations are f32 on the CPU the fused kernel in `attention_cpu` runs instead; the
//! candle-ops path below serves every other device and dtype (CUDA bf16) and is the reference
//! the fused kernel is tested against.
//!
//! Block-wise causal attention with an online softmax (the flash-attention recurrence).
//! Keys/values arrive as blocks: the context (shared prefix and earlier chunks of the same
//! sequence, all fully visible) and the query chunk's own block (causal). Scores are
//! materialised one block at a time, so memory is `heads × chunk × block`, never `T × T`.
//! GQA is handled by folding each kv head's query group into the row dimension
//! (`[kv_heads, group × L, d]`), so keys and values are never repeated.
//! Invariant: the own block comes last and every row sees its own diagonal there, so the
//! running maximum is finite from the first block on (context blocks have no mask).

use candle_core::{D, Tensor};

use super::attention_cpu::Geometry;
use crate::error::Result;

/// One layer's attention on candle ops: from the stacked projection `qkv` (`[T, (heads +
/// 2·kv_heads)·dim]`, rows in chunk order), rope at `cos`/`sin` (`[T, dim/2]`), each chunk
/// `(len, context blocks)` attending to its context and causally to itself. Returns `[T,
/// heads·dim]` and each chunk's own `(k, v)` blocks `[kv_heads, len, dim]`.
pub fn layer(
    qkv: &Tensor,
    (cos, sin): (&Tensor, &Tensor),
    chunks: &[(usize, &[(Tensor, Tensor)])],
    g: Geometry,
) -> Result<(Tensor, Vec<(Tensor, Tensor)>)> {
    let (nh, kvh, d) = (g.heads, g.kv_heads, g.dim);
    let group = nh / kvh;
    let total = qkv.dim(0)?;
    // [T, heads*d] -> [1, heads, T, d] for rope, then per-chunk slices.
    let to_heads = |t: Tensor, heads: usize| -> Result<Tensor> {
        Ok(t.reshape((total, heads, d))?.transpose(0, 1)?.contiguous()?.unsqueeze(0)?)
    };
    let (qd, kvd) = (nh * d, kvh * d);
    let q = candle_nn::rotary_emb::rope(&to_heads(qkv.narrow(1, 0, qd)?, nh)?, cos, sin)?.squeeze(0)?;
    let k = candle_nn::rotary_emb::rope(&to_heads(qkv.narrow(1, qd, kvd)?, kvh)?, cos, sin)?.squeeze(0)?;
    let v = to_heads(qkv.narrow(1, qd + kvd, kvd)?, kvh)?.squeeze(0)?;
    let q = (q * (1.0 / (d as f64).sqrt()))?;
    let mut outs = Vec::with_capacity(chunks.len());
    let mut own = Vec::with_capacity(chunks.len());
    let mut offset = 0;
    for &(len, context) in chunks {
        // [heads, L, d] -> [kvh, group*L, d]: each kv head's query group folded into rows.
        let qc = q.narrow(1, offset, len)?.contiguous()?.reshape((kvh, group * len, d))?;
        let kc = k.narrow(1, offset, len)?.contiguous()?;
        let vc = v.narrow(1, offset, len)?.contiguous()?;
        let o = attend(&qc, context, (&kc, &vc), &causal_mask(group, len, &qc)?)?;
        // back to [L, heads*d]
        outs.push(o.reshape((nh, len, d))?.transpose(0, 1)?.reshape((len, nh * d))?);
        own.push((kc, vc));
        offset += len;
    }
    Ok((Tensor::cat(&outs, 0)?, own))
}

/// Running state of the online softmax for a set of query rows.
struct Online {
    max: Tensor,
    sum: Tensor,
    acc: Tensor,
}

impl Online {
    fn absorb(state: Option<Online>, scores: Tensor, v: &Tensor) -> Result<Online> {
        let block_max = scores.max_keepdim(D::Minus1)?;
        Ok(match state {
            None => {
                let p = scores.broadcast_sub(&block_max)?.exp()?;
                Online { sum: p.sum_keepdim(D::Minus1)?, acc: p.matmul(v)?, max: block_max }
            }
            Some(s) => {
                let max = s.max.maximum(&block_max)?;
                let correction = (&s.max - &max)?.exp()?;
                let p = scores.broadcast_sub(&max)?.exp()?;
                Online {
                    sum: (s.sum.broadcast_mul(&correction)? + p.sum_keepdim(D::Minus1)?)?,
                    acc: (s.acc.broadcast_mul(&correction)? + p.matmul(v)?)?,
                    max,
                }
            }
        })
    }
}

/// Causal mask for a chunk of `len` queries over its own `len` keys, for `group` query heads
/// folded into rows: `[group × len, len]`, 0 where visible, −∞ above the diagonal.
/// Built on `like`'s device from two index vectors: on a GPU only `2 × len` indices cross from
/// the host, never the `group × len²` mask itself (it is built once per layer call).
pub fn causal_mask(group: usize, len: usize, like: &Tensor) -> Result<Tensor> {
    let dev = like.device();
    let n = u32::try_from(len).map_err(|_| candle_core::Error::Msg(format!("chunk of {len} tokens")))?;
    let rows = Tensor::arange(0u32, n, dev)?.reshape((len, 1))?;
    let cols = Tensor::arange(0u32, n, dev)?.reshape((1, len))?;
    let above = cols.broadcast_gt(&rows)?;
    let visible = Tensor::zeros((len, len), like.dtype(), dev)?;
    let hidden = (Tensor::ones((len, len), like.dtype(), dev)? * f64::NEG_INFINITY)?;
    let mask = above.where_cond(&hidden, &visible)?;
    Ok(mask.unsqueeze(0)?.repeat((group, 1, 1))?.reshape((group * len, len))?)
}

/// Attention of `q` (`[kv_heads, group × L, d]`, already scaled by 1/√d) over `context` blocks
/// (each `([kv_heads, B, d], [kv_heads, B, d])`) and its own causal block `own`
/// (`[kv_heads, L, d]` twice, with `mask` from [`causal_mask`]). Returns `[kv_heads, group × L, d]`.
pub fn attend(q: &Tensor, context: &[(Tensor, Tensor)], own: (&Tensor, &Tensor), mask: &Tensor) -> Result<Tensor> {
    let mut state: Option<Online> = None;
    for (k, v) in context {
        let scores = q.matmul(&k.t()?)?;
        state = Some(Online::absorb(state, scores, v)?);
    }
    let scores = q.matmul(&own.0.t()?)?.broadcast_add(mask)?;
    let s = Online::absorb(state, scores, own.1)?;
    Ok(s.acc.broadcast_div(&s.sum)?)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    /// Reference: full softmax attention over the concatenated keys with a causal tail.
    fn naive(q: &Tensor, k: &Tensor, v: &Tensor, ctx: usize, group: usize, len: usize) -> Tensor {
        let s = q.matmul(&k.t().expect("t")).expect("qk");
        let total = ctx + len;
        let mut mask = Vec::new();
        for _ in 0..group {
            for i in 0..len {
                mask.extend((0..total).map(|j| if j <= ctx + i { 0.0f32 } else { f32::NEG_INFINITY }));
            }
        }
        let mask = Tensor::from_vec(mask, (group * len, total), &Device::Cpu).expect("mask");
        let p = candle_nn::ops::softmax_last_dim(&s.broadcast_add(&mask).expect("add")).expect("softmax");
        p.matmul(v).expect("pv")
    }

    #[test]
    fn blockwise_equals_full_softmax() {
        let dev = Device::Cpu;
        let (kvh, group, len, d) = (2, 3, 5, 8);
        let q = Tensor::randn(0f32, 1.0, (kvh, group * len, d), &dev).expect("q");
        let blocks: Vec<(Tensor, Tensor)> = [4usize, 7, 2]
            .iter()
            .map(|&b| {
                (
                    Tensor::randn(0f32, 1.0, (kvh, b, d), &dev).expect("k"),
                    Tensor::randn(0f32, 1.0, (kvh, b, d), &dev).expect("v"),
                )
            })
            .collect();
        let own_k = Tensor::randn(0f32, 1.0, (kvh, len, d), &dev).expect("k");
        let own_v = Tensor::randn(0f32, 1.0, (kvh, len, d), &dev).expect("v");
        let mask = causal_mask(group, len, &q).expect("mask");
        let got = attend(&q, &blocks, (&own_k, &own_v), &mask).expect("attend");
        let all_k = Tensor::cat(&[&blocks[0].0, &blocks[1].0, &blocks[2].0, &own_k], 1).expect("cat");
        let all_v = Tensor::cat(&[&blocks[0].1, &blocks[1].1, &blocks[2].1, &own_v], 1).expect("cat");
        let want = naive(&q, &all_k, &all_v, 13, group, len);
        let diff = (got - want).expect("sub").abs().expect("abs").max_all().expect("max");
        assert!(diff.to_scalar::<f32>().expect("scalar") < 1e-5);
    }
}
