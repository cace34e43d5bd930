//! Loading onto CUDA GPUs by index: the device map a host asks for with `cuda:0,1,...`.
//!
//! Layers are split evenly over the listed GPUs, in order (the memory planner's per-device
//! split needs each GPU's free memory, read through the driver, and is not wired in yet). A
//! binary built without the `cuda` feature answers with an error that names the build flag.

use std::path::Path;

use candle_core::{DType, Device};

use crate::api::EngineOptions;
use crate::compute::DtypeChoice;
use crate::config::ModelConfig;
use crate::engine::LlamaRewardModel;
use crate::error::{EngineError, Result};

impl LlamaRewardModel {
    /// Loads on the CUDA GPUs `gpus` (indices; layers split evenly, in order). Computes in
    /// bf16 unless `options.dtype` asks for f32.
    ///
    /// # Errors
    /// A GPU that cannot be opened (named, with a hint when CUDA is not compiled in), an empty
    /// list, and the loader's own errors.
    pub fn load_gpus(dir: &Path, options: EngineOptions, gpus: &[usize]) -> Result<Self> {
        if gpus.is_empty() {
            return Err(EngineError::Input("no GPU listed".into()));
        }
        let devices = gpus.iter().map(|&i| open_gpu(i)).collect::<Result<Vec<_>>>()?;
        let dtype = if options.dtype == DtypeChoice::F32 { DType::F32 } else { DType::BF16 };
        let layers = ModelConfig::load(&dir.join("config.json"))?.num_layers;
        let split: Vec<(Device, usize)> = devices
            .into_iter()
            .enumerate()
            .map(|(i, d)| (d, layers / gpus.len() + usize::from(i < layers % gpus.len())))
            .collect();
        Self::load_split(dir, options, &split, dtype)
    }
}

fn open_gpu(index: usize) -> Result<Device> {
    Device::new_cuda(index).map_err(|e| {
        let hint = if cfg!(feature = "cuda") {
            ""
        } else {
            " (this arbiter was built without CUDA: cargo build --release -p arbiter --features cuda)"
        };
        // candle appends a backtrace on further lines when RUST_BACKTRACE is set.
        let e = e.to_string();
        EngineError::Input(format!("cuda:{index}: {}{hint}", e.lines().next().unwrap_or_default()))
    })
}
