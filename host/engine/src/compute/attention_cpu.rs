//! Fused causal attention for f32 activations on the CPU: rope, GQA, the context blocks and the
//! chunk's own causal block in one pass per (chunk, kv head, tile of 64 tokens) — the tile's
//! query rows for every head of the kv head's group together, so each key block is packed
//! once for the whole group.
//!
//! Each task multiplies its query rows against every visible key with one real GEMM (the
//! `gemm` crate, runtime-dispatched SIMD) over the chunk's keys gathered contiguously, takes a
//! vectorised softmax over each row's visible keys (exactly the causal set: no mask tensor, no
//! −∞ arithmetic), and multiplies by the values with one more GEMM.
//! Memory per task is `64 × group × visible keys` floats: linear in sequence length, never `T × T`.
//! Tasks run in parallel on rayon's pool; each writes only its own rows of its own head.
//!
//! Invariant: a chunk's result depends only on its own tokens and its context blocks, never on
//! the other chunks packed beside it (a candidate's score is independent of its batch).

use candle_core::{CpuStorage, Storage, Tensor};
use rayon::prelude::*;

use super::fastmath::softmax_row;
use crate::error::{EngineError, Result};

/// Tokens per task (times the GQA group size in query rows).
const TOKENS: usize = 64;

/// Head counts and size.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (divides `heads`).
    pub kv_heads: usize,
    /// Head dimension (even).
    pub dim: usize,
}

/// Attention output `[T, heads·dim]` and each chunk's own `(k, v)`, each `[kv_heads, len, dim]`.
pub type Output = (Vec<f32>, Vec<(Vec<f32>, Vec<f32>)>);

/// `dst (m×n) = lhs (m×k) · rhs (k×n)`, or `+=` when `accumulate`; strides in elements.
#[allow(clippy::too_many_arguments, reason = "a GEMM call is its shape and three strided operands")]
fn gemm(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    // The last element each operand is read or written at must be in bounds.
    assert!(dst.len() >= (m - 1) * dst_rs + n, "gemm dst out of bounds");
    assert!(lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs, "gemm lhs out of bounds");
    assert!(rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs, "gemm rhs out of bounds");
    // SAFETY: the asserts above bound every address gemm touches inside the three slices, and
    // `dst` is exclusively borrowed.
    #[allow(unsafe_code, reason = "the gemm crate takes raw strided pointers")]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `out = rope(x) · scale` in transformers' rotate-half layout.
#[inline]
fn rope_into(x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32], scale: f32) {
    let half = cos.len();
    for i in 0..half {
        let (a, b) = (x[i], x[i + half]);
        out[i] = (a * cos[i] - b * sin[i]) * scale;
        out[i + half] = (b * cos[i] + a * sin[i]) * scale;
    }
}

/// f32 views of CPU tensors, held for the duration of one call.
struct Views<'a> {
    /// candle's storage read guards, type-erased (candle's lock type is its own business).
    guards: Vec<(Box<dyn std::ops::Deref<Target = Storage> + 'a>, usize, usize)>,
}

impl<'a> Views<'a> {
    fn of(tensors: impl Iterator<Item = &'a Tensor>) -> Result<Self> {
        let mut guards = Vec::new();
        for t in tensors {
            let (g, layout) = t.storage_and_layout();
            let (s, e) = layout
                .contiguous_offsets()
                .ok_or_else(|| EngineError::Compute("attention: a key/value block is not contiguous".into()))?;
            guards.push((Box::new(g) as Box<dyn std::ops::Deref<Target = Storage>>, s, e));
        }
        Ok(Self { guards })
    }

    fn slices(&self) -> Result<Vec<&[f32]>> {
        self.guards
            .iter()
            .map(|(g, s, e)| match &***g {
                Storage::Cpu(CpuStorage::F32(v)) => Ok(&v[*s..*e]),
                _ => Err(EngineError::Compute("attention: key/value blocks must be f32 on the CPU".into())),
            })
            .collect()
    }
}

/// Attention of every chunk in `qkv` (`[T, (heads + 2·kv_heads)·dim]`, rows in chunk order,
/// chunk `c` having `lens[c]` rows and seeing `contexts[c]`'s blocks, each `[kv_heads, B, dim]`),
/// with `cos`/`sin` (`[T, dim/2]`) at each row's position.
///
/// # Errors
/// Inconsistent shapes, or context blocks that are not contiguous f32 CPU tensors.
pub fn attend(
    qkv: &[f32],
    (cos, sin): (&[f32], &[f32]),
    lens: &[usize],
    contexts: &[&[(Tensor, Tensor)]],
    g: Geometry,
) -> Result<Output> {
    let (nq, nkv, d) = (g.heads, g.kv_heads, g.dim);
    let (half, width, t) = (d / 2, (nq + 2 * nkv) * d, lens.iter().sum::<usize>());
    if d % 2 != 0 || nkv == 0 || nq % nkv != 0 || lens.len() != contexts.len() {
        return Err(EngineError::Compute(format!("attention: bad geometry {g:?} for {} chunks", lens.len())));
    }
    if qkv.len() != t * width || cos.len() != t * half || sin.len() != t * half {
        return Err(EngineError::Compute("attention: qkv or rope rows do not match the chunk lengths".into()));
    }
    let group = nq / nkv;
    let scale = 1.0 / (d as f32).sqrt();
    // Head-major copies: k roped, v as is, each kv head's rows contiguous; q roped and scaled,
    // laid out [kv head][token][group member][dim] so a tile of tokens of one kv group is one
    // contiguous block of `tile × group` query rows (one GEMM, keys packed once for the group).
    let head_major = |heads: usize, per: usize, col: usize, scale: Option<f32>| {
        let mut out = vec![0f32; heads * t * per * d];
        out.par_chunks_mut(t * per * d).enumerate().for_each(|(h, dst)| {
            for row in 0..t {
                for j in 0..per {
                    let x = &qkv[row * width + (col + h * per + j) * d..][..d];
                    let o = &mut dst[(row * per + j) * d..][..d];
                    match scale {
                        Some(s) => rope_into(x, &cos[row * half..][..half], &sin[row * half..][..half], o, s),
                        None => o.copy_from_slice(x),
                    }
                }
            }
        });
        out
    };
    let q = head_major(nkv, group, 0, Some(scale));
    let k = head_major(nkv, 1, nq, Some(1.0));
    let v = head_major(nkv, 1, nq + nkv, None);

    let starts: Vec<usize> = lens.iter().scan(0, |acc, &l| Some(std::mem::replace(acc, *acc + l))).collect();
    let views_k = Views::of(contexts.iter().flat_map(|c| c.iter().map(|(k, _)| k)))?;
    let views_v = Views::of(contexts.iter().flat_map(|c| c.iter().map(|(_, v)| v)))?;
    let (ctx_k, ctx_v) = (views_k.slices()?, views_v.slices()?);
    // Per chunk: its context blocks' (k, v) slices, all heads.
    let mut blocks: Vec<Vec<(&[f32], &[f32])>> = Vec::with_capacity(lens.len());
    let mut at = 0;
    for c in contexts {
        blocks.push((at..at + c.len()).map(|i| (ctx_k[i], ctx_v[i])).collect());
        at += c.len();
    }
    for b in blocks.iter().flatten() {
        if b.0.len() != b.1.len() || b.0.len() % (nkv * d) != 0 {
            return Err(EngineError::Compute("attention: a context block is not [kv_heads, B, dim]".into()));
        }
    }

    // Per chunk, every key (and value) it may see — context blocks, then its own — gathered
    // into one contiguous run per kv head: one GEMM for QKᵀ and one for PV over all of them, so
    // the result does not depend on how the context happens to be cut into blocks (a prompt
    // computed in one piece or taken from the prefix cache block by block gives the same bits).
    let gather = |c: usize, values: bool, own: &[f32]| -> Vec<f32> {
        let ctx: usize = blocks[c].iter().map(|b| b.0.len() / (nkv * d)).sum();
        let total = ctx + lens[c];
        let mut out = vec![0f32; nkv * total * d];
        for (gi, dst) in out.chunks_mut(total * d).enumerate() {
            let mut at = 0;
            for b in &blocks[c] {
                let src = if values { b.1 } else { b.0 };
                let per = src.len() / nkv;
                dst[at..at + per].copy_from_slice(&src[gi * per..(gi + 1) * per]);
                at += per;
            }
            dst[at..].copy_from_slice(&own[(gi * t + starts[c]) * d..][..lens[c] * d]);
        }
        out
    };
    let keys: Vec<(Vec<f32>, Vec<f32>)> =
        (0..lens.len()).into_par_iter().map(|c| (gather(c, false, &k), gather(c, true, &v))).collect();

    let tasks: Vec<(usize, usize, usize)> = (0..lens.len())
        .flat_map(|c| (0..nkv).flat_map(move |gi| (0..lens[c]).step_by(TOKENS).map(move |f| (c, gi, f))))
        .collect();
    let results: Vec<Vec<f32>> = tasks
        .par_iter()
        .map(|&(c, gi, first)| {
            let (start, tokens) = (starts[c], TOKENS.min(lens[c] - first));
            let rows = tokens * group; // row r: token first + r / group, head gi·group + r % group
            let total = keys[c].0.len() / (nkv * d); // context + own keys of this chunk
            let ctx_len = total - lens[c];
            let n = ctx_len + first + tokens; // keys visible to the last token of this tile
            let kh = &keys[c].0[gi * total * d..][..n * d];
            let vh = &keys[c].1[gi * total * d..][..n * d];
            let qg = &q[((gi * t + start + first) * group) * d..][..rows * d];
            let mut s = vec![0f32; rows * n];
            // S = Q · Kᵀ  (Kᵀ: row stride 1, column stride d)
            gemm((rows, n, d), &mut s, n, false, qg, (d, 1), kh, (1, d));
            let mut sums = vec![0f32; rows];
            for (r, sum) in sums.iter_mut().enumerate() {
                let visible = ctx_len + first + r / group + 1;
                let row = &mut s[r * n..(r + 1) * n];
                *sum = softmax_row(&mut row[..visible]);
                row[visible..].fill(0.0);
            }
            let mut o = vec![0f32; rows * d];
            gemm((rows, d, n), &mut o, d, false, &s, (n, 1), vh, (d, 1));
            for (r, sum) in sums.iter().enumerate() {
                let inv = 1.0 / sum;
                o[r * d..(r + 1) * d].iter_mut().for_each(|x| *x *= inv);
            }
            o
        })
        .collect();

    // Row r of a task is (token, group member) in order, and the group's heads are adjacent
    // in the output row: each token's `group × d` slice is copied whole.
    let mut out = vec![0f32; t * nq * d];
    for (&(c, gi, first), o) in tasks.iter().zip(results) {
        for (i, src) in o.chunks_exact(group * d).enumerate() {
            out[(starts[c] + first + i) * nq * d + gi * group * d..][..group * d].copy_from_slice(src);
        }
    }
    let own = starts
        .iter()
        .zip(lens)
        .map(|(&start, &len)| {
            let take = |m: &[f32]| {
                let mut b = Vec::with_capacity(nkv * len * d);
                for h in 0..nkv {
                    b.extend_from_slice(&m[(h * t + start) * d..][..len * d]);
                }
                b
            };
            (take(&k), take(&v))
        })
        .collect();
    Ok((out, own))
}
