//! Rotary position embeddings, including Llama-3 frequency scaling, computed as transformers
//! computes them (float32 inverse frequencies, `rotate_half` layout).
//!
//! The cos/sin table is computed once per position and kept (grown to the longest position
//! seen, in whole blocks), so a forward pass only gathers rows.

use std::sync::Mutex;

use candle_core::{DType, Device, Tensor};

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};

/// Positions added to the table at a time.
const GROW: usize = 1024;

/// Inverse frequencies for one head dimension, and the table of their cos/sin so far.
#[derive(Debug)]
pub struct Rope {
    inv_freq: Vec<f32>,
    /// `(cos, sin)`, each `[positions so far, head_dim / 2]` row-major.
    table: Mutex<(Vec<f32>, Vec<f32>)>,
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
        Self { inv_freq, table: Mutex::new((Vec::new(), Vec::new())) }
    }

    /// `(cos, sin)`, each `[positions.len(), head_dim / 2]`, in `dtype`.
    pub fn cos_sin(&self, positions: &[usize], device: &Device, dtype: DType) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut table = self.table.lock().map_err(|_| EngineError::Compute("rope table lock poisoned".into()))?;
        let needed = positions.iter().max().map_or(0, |&p| p + 1);
        let have = table.0.len() / half.max(1);
        if needed > have {
            let upto = needed.div_ceil(GROW) * GROW;
            for p in have..upto {
                for &f in &self.inv_freq {
                    let angle = p as f32 * f;
                    table.0.push(angle.cos());
                    table.1.push(angle.sin());
                }
            }
        }
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            cos.extend_from_slice(&table.0[p * half..(p + 1) * half]);
            sin.extend_from_slice(&table.1[p * half..(p + 1) * half]);
        }
        let shape = (positions.len(), half);
        Ok((
            Tensor::from_vec(cos, shape, device)?.to_dtype(dtype)?,
            Tensor::from_vec(sin, shape, device)?.to_dtype(dtype)?,
        ))
    }
}
