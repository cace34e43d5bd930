//! Matmul throughput of each CPU backend, measured through the engine's own [`Linear`], so a
//! host can report this machine's peak next to the engine's achieved rate without reaching
//! into candle itself.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};

use crate::compute::{BackendChoice, Compute, DtypeChoice};
use crate::error::Result;

/// GFLOP/s per backend for each shape.
#[derive(Debug, Clone, Default)]
pub struct MatmulReport {
    /// `(backend, GFLOP/s per shape, in the order asked)`.
    pub backends: Vec<(String, Vec<f64>)>,
    /// `(backend, why it could not be measured)`.
    pub unavailable: Vec<(String, String)>,
    /// oneDNN's version and ISA, where it loaded.
    pub onednn: Option<(String, String)>,
}

/// Times `y = x·Wᵀ` (f32 input; oneDNN's figures include converting it to bf16) for each
/// `(M, N, K)` shape on every CPU backend: median of `runs` after one warm-up.
///
/// # Errors
/// Tensor allocation or compute failures.
pub fn matmul(shapes: &[(usize, usize, usize)], runs: usize) -> Result<MatmulReport> {
    let dev = Device::Cpu;
    let mut report = MatmulReport::default();
    let mut backends = vec![("candle f32".to_owned(), Compute::on(dev.clone(), DType::F32))];
    for (name, dtype) in [("onednn f32", DtypeChoice::F32), ("onednn bf16", DtypeChoice::Bf16)] {
        match Compute::cpu(BackendChoice::OneDnn, dtype, DType::BF16, 512) {
            Ok(c) => {
                report.onednn.get_or_insert_with(|| (c.info().version.clone(), c.info().isa.clone()));
                backends.push((name.to_owned(), c));
            }
            Err(e) => report.unavailable.push((name.to_owned(), e.to_string())),
        }
    }
    let mut rates = vec![Vec::new(); backends.len()];
    for &(m, n, k) in shapes {
        let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
        for (i, (_, compute)) in backends.iter().enumerate() {
            let linear = compute.linear(w.clone())?;
            let _ = linear.forward(&x)?;
            let mut times = Vec::with_capacity(runs.max(1));
            for _ in 0..runs.max(1) {
                let start = Instant::now();
                std::hint::black_box(linear.forward(&x)?);
                times.push(start.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            rates[i].push(2.0 * (m * k * n) as f64 / times[times.len() / 2] / 1e9);
        }
    }
    report.backends = backends.into_iter().map(|(name, _)| name).zip(rates).collect();
    Ok(report)
}
