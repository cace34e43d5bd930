//! Rotary position embeddings, including Llama-3 frequency scaling, computed as transformers
//! computes them (float32 inverse frequencies, `rotate_half` layout).

use candle_core::{DType, Device, Tensor};

use crate::config::ModelConfig;
use crate::error::Result;

/// Inverse frequencies for one head dimension.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
}

impl Rope {
    /// Frequencies for `cfg` (base `rope_theta`, optional llama3 scaling).
    pub fn new(cfg: &ModelConfig) -> Self {
        let d = cfg.head_dim;
        let mut inv_freq: Vec<f32> =
            (0..d).step_by(2).map(|i| 1.0 / cfg.rope_theta.powf(i as f32 / d as f32)).collect();
        if let Some(s) = cfg.rope_scaling {
            let low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
            let high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
            for f in &mut inv_freq {
                let wavelen = 2.0 * std::f32::consts::PI / *f;
                let scaled = if wavelen > low_wavelen { *f / s.factor } else { *f };
                // transformers: ~(wavelen < high) & ~(wavelen > low); wavelengths are finite, so this is
                // the closed interval.
                let medium = (high_wavelen..=low_wavelen).contains(&wavelen);
                *f = if medium {
                    let smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor)
                        / (s.high_freq_factor - s.low_freq_factor);
                    (1.0 - smooth) * scaled / s.factor + smooth * scaled
                } else {
                    scaled
                };
            }
        }
        Self { inv_freq }
    }

    /// `(cos, sin)`, each `[positions.len(), head_dim / 2]`, in `dtype`.
    pub fn cos_sin(&self, positions: &[usize], device: &Device, dtype: DType) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            for &f in &self.inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let shape = (positions.len(), half);
        Ok((
            Tensor::from_vec(cos, shape, device)?.to_dtype(dtype)?,
            Tensor::from_vec(sin, shape, device)?.to_dtype(dtype)?,
        ))
    }
}
