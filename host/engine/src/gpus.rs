//! Loading onto CUDA GPUs by index: the device map a host asks for with `cuda:0,1,...`.
//!
//! Layers are placed by the memory planner from each GPU's free memory as the driver reports it
//! (less a reserve for the CUDA context and cuBLAS workspaces), in contiguous ranges in the
//! listed order, like transformers' `device_map="auto"`; the planner may also lower the batch
//! budget so the batch fits. Where free memory cannot be read, layers are split evenly. A binary
//! built without the `cuda` feature answers with an error that names the build flag.

use std::path::Path;

use candle_core::{DType, Device};

use crate::api::EngineOptions;
use crate::compute::DtypeChoice;
use crate::config::ModelConfig;
use crate::engine::LlamaRewardModel;
use crate::error::{EngineError, Result};
use crate::plan::{Budget, Plan, PlanRequest, plan};

impl LlamaRewardModel {
    /// Loads on the CUDA GPUs `gpus` (indices; layers split evenly, in order). Computes in
    /// bf16 unless `options.dtype` asks for f32.
    ///
    /// # Errors
    /// A GPU that cannot be opened (named, with a hint when CUDA is not compiled in), an empty
    /// list, and the loader's own errors.
    pub fn load_gpus(dir: &Path, options: EngineOptions, gpus: &[usize]) -> Result<Self> {
        Self::load_gpus_mapped(dir, options, gpus, None)
    }

    /// As [`LlamaRewardModel::load_gpus`], with the layers per GPU given (`layers[i]` on
    /// `gpus[i]`) instead of planned.
    ///
    /// # Errors
    /// As [`LlamaRewardModel::load_gpus`], plus a map whose length or total is wrong.
    pub fn load_gpus_mapped(
        dir: &Path,
        options: EngineOptions,
        gpus: &[usize],
        layers: Option<&[usize]>,
    ) -> Result<Self> {
        if gpus.is_empty() {
            return Err(EngineError::Input("no GPU listed".into()));
        }
        if let Some(map) = layers
            && map.len() != gpus.len()
        {
            return Err(EngineError::Input(format!(
                "the device map gives {} layer counts for {} GPUs",
                map.len(),
                gpus.len()
            )));
        }
        let devices = gpus.iter().map(|&i| open_gpu(i)).collect::<Result<Vec<_>>>()?;
        let dtype = gpu_dtype(options.dtype, &devices);
        let cfg = ModelConfig::load(&dir.join("config.json"))?;
        let (counts, plan) = match (layers, free_memory(&devices)) {
            (Some(map), _) => (map.to_vec(), None),
            (None, Some(free)) => {
                let names: Vec<String> = gpus.iter().map(|i| format!("cuda:{i}")).collect();
                let plan = plan_gpus(&cfg, dtype.size_in_bytes() as u64, &options, &names, &free)?;
                (plan.devices.iter().map(|d| d.layers.len()).collect(), Some(plan))
            }
            (None, None) => (even_split(cfg.num_layers, gpus.len()), None),
        };
        let mut options = options;
        if let Some(p) = &plan {
            options.max_batch_tokens = options.max_batch_tokens.min(p.max_batch_tokens);
        }
        let split: Vec<(Device, usize)> = devices.into_iter().zip(counts).collect();
        Ok(Self::load_split(dir, options, &split, dtype)?.with_plan(plan))
    }
}

/// The dtype on these GPUs: as asked, and for `auto` bf16 when every GPU has it (compute
/// capability >= 8.0, Ampere on), else f16 (V100, T4), as transformers' model-card loop would
/// have to choose on such a card.
fn gpu_dtype(choice: DtypeChoice, devices: &[Device]) -> DType {
    match choice {
        DtypeChoice::F32 => DType::F32,
        DtypeChoice::Bf16 => DType::BF16,
        DtypeChoice::F16 => DType::F16,
        DtypeChoice::Auto => match compute_capabilities(devices) {
            Some(caps) if caps.iter().any(|&(major, _)| major < 8) => DType::F16,
            _ => DType::BF16,
        },
    }
}

/// `(major, minor)` compute capability of each GPU, as the driver reports it.
#[cfg(feature = "cuda")]
fn compute_capabilities(devices: &[Device]) -> Option<Vec<(i32, i32)>> {
    use candle_core::cuda::cudarc::driver::sys::CUdevice_attribute as Attr;
    devices
        .iter()
        .map(|d| {
            let stream = d.as_cuda_device().ok()?.cuda_stream();
            let ctx = stream.context();
            let major = ctx.attribute(Attr::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR).ok()?;
            let minor = ctx.attribute(Attr::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR).ok()?;
            Some((major, minor))
        })
        .collect()
}

#[cfg(not(feature = "cuda"))]
fn compute_capabilities(_: &[Device]) -> Option<Vec<(i32, i32)>> {
    None
}

/// Bytes of a GPU kept back from the planner: the CUDA context, cuBLAS workspaces, allocator
/// slack.
const GPU_RESERVE: u64 = 2 << 30;

/// Plans `cfg` over GPUs with `free` bytes each (see the module docs).
///
/// # Errors
/// The model does not fit their memory (the planner's arithmetic).
pub fn plan_gpus(
    cfg: &ModelConfig,
    dtype_bytes: u64,
    options: &EngineOptions,
    names: &[String],
    free: &[u64],
) -> Result<Plan> {
    let devices = names
        .iter()
        .zip(free)
        .map(|(name, &bytes)| Budget { name: name.clone(), bytes: bytes.saturating_sub(GPU_RESERVE) })
        .collect();
    let request = PlanRequest {
        weight_bytes: dtype_bytes,
        activation_bytes: dtype_bytes,
        devices,
        embeddings_on_host: options.embeddings_on_host,
        max_batch_tokens: options.max_batch_tokens,
        prefix_tokens: cfg.max_position_embeddings.min(8192),
        chunk_tokens: options.chunk_tokens,
    };
    Ok(plan(cfg, &request)?)
}

/// `layers` over `n` devices as evenly as possible, in order.
fn even_split(layers: usize, n: usize) -> Vec<usize> {
    (0..n).map(|i| layers / n + usize::from(i < layers % n)).collect()
}

/// Free bytes of each GPU, as the driver reports them.
#[cfg(feature = "cuda")]
fn free_memory(devices: &[Device]) -> Option<Vec<u64>> {
    devices
        .iter()
        .map(|d| {
            let (free, _total) = d.as_cuda_device().ok()?.cuda_stream().context().mem_get_info().ok()?;
            Some(free as u64)
        })
        .collect()
}

/// Without CUDA there is no GPU to ask.
#[cfg(not(feature = "cuda"))]
fn free_memory(_devices: &[Device]) -> Option<Vec<u64>> {
    None
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::llama_70b;

    #[test]
    fn gpus_are_planned_from_their_free_memory() {
        let cfg = llama_70b();
        let gib = |g: u64| g << 30;
        let names: Vec<String> = (0..2).map(|i| format!("cuda:{i}")).collect();
        // Two 80 GB cards with different free memory: the freer one takes more layers.
        let p = plan_gpus(&cfg, 2, &EngineOptions::default(), &names, &[gib(79), gib(72)]).expect("fits");
        let counts: Vec<usize> = p.devices.iter().map(|d| d.layers.len()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 80);
        assert!(counts[0] >= counts[1], "{counts:?}");
        for d in &p.devices {
            assert!(d.weights + d.kv + d.workspace <= d.budget, "{d:?}");
            assert!(d.budget <= gib(79) - GPU_RESERVE);
        }
        // Too little free memory is refused with the arithmetic, before any weight is read.
        let e = plan_gpus(&cfg, 2, &EngineOptions::default(), &names, &[gib(40), gib(40)]).expect_err("does not fit");
        assert!(e.to_string().contains("does not fit"), "{e}");
        assert_eq!(even_split(80, 3), vec![27, 27, 26]);
    }
}
