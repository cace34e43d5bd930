//! Vectorised elementwise kernels on f32 slices: exp, softmax rows, SiLU·up.
//!
//! The release build targets baseline x86-64 (SSE2), where `f32::exp` is a scalar libm call —
//! at 10–20 ns each, the softmax and SiLU exps would cost more than the matmuls around them.
//! These loops are written so the compiler vectorises them, and are compiled three times:
//! for AVX-512, for AVX2+FMA, and for the baseline; the widest the CPU supports is picked once.
//!
//! Accuracy: [`exp`] is a degree-6 polynomial after exact range reduction, within 2 ulp of
//! `f32::exp` over the range softmax uses (`x ≤ 0`), so scores stay within the 1e-4 goldens.

use std::sync::OnceLock;

/// exp(x) for f32, vectorisable: no branches, no libm, no float→int conversion (whose
/// saturating semantics keep compilers from vectorising it cheaply).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so `n·ln2` is exact in the high part.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5·2^23 rounds to the nearest integer and leaves it in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^n: n sits in the low bits of t's pattern (two's complement); move it to the exponent.
    let k = t.to_bits().wrapping_sub(MAGIC.to_bits());
    f32::from_bits(k.wrapping_add(127) << 23) * p
}

/// Independent accumulators for reductions: strict f32 order would serialise the loop, so
/// max and sum run over 16 lanes (one AVX-512 register) and are combined at the end.
const LANES: usize = 16;

/// In place: `row[j] = exp(row[j] - max(row))`; returns the sum.
#[inline(always)]
fn softmax_row_body(row: &mut [f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = if v > *m { v } else { *m };
        }
    }
    let max = lanes.iter().chain(chunks.remainder()).fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    for v in row.iter_mut() {
        *v = exp(*v - max);
    }
    let mut sums = [0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for (s, &v) in sums.iter_mut().zip(c) {
            *s += v;
        }
    }
    sums.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// `out[i] = silu(gate[i]) · up[i]`.
#[inline(always)]
fn silu_mul_body(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + exp(-g)) * u;
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Level {
    Avx512,
    Avx2,
    Base,
}

fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Level::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Level::Avx2;
            }
        }
        Level::Base
    })
}

/// Defines `$name(args)` dispatching to copies of `$body` compiled per instruction set.
macro_rules! multiversion {
    ($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $body:ident) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                fn wide($($arg: $ty),*) -> $ret { $body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                fn mid($($arg: $ty),*) -> $ret { $body($($arg),*) }
                match level() {
                    // SAFETY: `level()` checked at run time that the CPU has these features.
                    #[allow(unsafe_code, reason = "calling a target_feature function after detecting the feature")]
                    Level::Avx512 => return unsafe { wide($($arg),*) },
                    // SAFETY: as above.
                    #[allow(unsafe_code, reason = "calling a target_feature function after detecting the feature")]
                    Level::Avx2 => return unsafe { mid($($arg),*) },
                    Level::Base => {}
                }
            }
            $body($($arg),*)
        }
    };
}

multiversion!(
    /// In place: `row[j] = exp(row[j] - max(row))`; returns the sum of the new values.
    softmax_row(row: &mut [f32]) -> f32 = softmax_row_body
);

multiversion!(
    /// `out[i] = silu(gate[i]) · up[i]` (SiLU as transformers: `x · sigmoid(x)`).
    silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) -> () = silu_mul_body
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_where_softmax_uses_it() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 87.0 * i as f32 / 200_000.0;
            let (got, want) = (f64::from(exp(x)), f64::from(x).exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 2.5e-7, "relative error {worst}");
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn softmax_and_silu_match_the_scalar_formulas_at_every_level() {
        let row: Vec<f32> = (0..1000).map(|i| ((i * 37) % 101) as f32 / 7.0 - 5.0).collect();
        let mut got = row.clone();
        let sum = softmax_row(&mut got);
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let want: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
        let want_sum: f32 = want.iter().sum();
        assert!((sum - want_sum).abs() / want_sum < 1e-5, "{sum} vs {want_sum}");
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-6 * b.max(1.0)));
        let (gate, up): (Vec<f32>, Vec<f32>) = row.iter().map(|&v| (v, v * 0.5 + 1.0)).unzip();
        let mut out = vec![0.0; row.len()];
        silu_mul(&gate, &up, &mut out);
        for ((o, g), u) in out.iter().zip(&gate).zip(&up) {
            let want = g / (1.0 + (-g).exp()) * u;
            assert!((o - want).abs() <= 1e-6 * want.abs().max(1.0), "{o} vs {want}");
        }
        eprintln!("fastmath level {:?}", level());
    }
}
