//! The engine's compute seam: the model code says *what* to multiply, this layer decides *how*.
//!
//! A [`Compute`] is chosen once at load from the device, the requested dtype and backend, and
//! the checkpoint's stored dtype. It owns the backend and turns checkpoint matrices into
//! [`Linear`] weights that hold their own packed form: oneDNN's blocked layout on CPU when the
//! library is present (bf16 or f32 weights, f32 activations and output), or a plain candle
//! tensor on any device (the reference in tests, the fallback, and the CUDA path).
//!
//! Invariants: activations between matmuls are always in [`Compute::activations`]; a Linear's
//! output has the activation dtype whatever its weights hold; the choice made at load is
//! reported by [`ComputeInfo`] and never changes afterwards.

mod attention;
mod attention_cpu;
mod fastmath;
pub mod onednn;

use std::fmt;
use std::sync::Arc;

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};
use half::bf16;

use crate::error::{EngineError, Result};
pub use attention_cpu::Geometry;
use onednn::{OneDnn, Packed, WeightType};

/// Requested compute dtype (`--dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DtypeChoice {
    /// bf16 when the checkpoint is bf16 and the CPU multiplies bf16 natively (oneDNN sees
    /// AMX or AVX-512-BF16), as the model card computes; f32 otherwise.
    #[default]
    Auto,
    /// f32 weights and activations: the exact reference path.
    F32,
    /// bf16 weights (kept bf16 in memory); activations f32 on oneDNN, bf16 on candle.
    Bf16,
    /// f16 weights and activations, on candle's kernels: for GPUs without bf16 (compute
    /// capability < 8.0, e.g. V100, T4). On a CPU it runs (slowly) so the path can be tested.
    F16,
}

/// Requested CPU matmul backend (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// oneDNN when the system library loads, candle otherwise.
    #[default]
    Auto,
    /// oneDNN or a load error.
    OneDnn,
    /// candle's own kernels.
    Candle,
}

/// What was chosen at load, for logs and `/info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputeInfo {
    /// `onednn` or `candle`.
    pub backend: &'static str,
    /// Library version (oneDNN) or empty.
    pub version: String,
    /// Instruction set oneDNN dispatches to, or the candle device.
    pub isa: String,
    /// oneDNN's kernel for a typical projection (e.g. `brg:avx512_core_bf16`), or empty.
    pub kernel: String,
    /// Weight dtype of the matmuls.
    pub weights: DType,
    /// Activation dtype.
    pub activations: DType,
    /// Why auto picked what it picked (empty when nothing was automatic).
    pub note: String,
}

impl fmt::Display for ComputeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.backend)?;
        if !self.version.is_empty() {
            write!(f, " {}", self.version)?;
        }
        write!(f, " ({}", self.isa)?;
        if !self.kernel.is_empty() {
            write!(f, ", kernel {}", self.kernel)?;
        }
        write!(f, "), weights {:?}, activations {:?}", self.weights, self.activations)?;
        if !self.note.is_empty() {
            write!(f, "; {}", self.note)?;
        }
        Ok(())
    }
}

enum Backend {
    Candle,
    OneDnn(Arc<OneDnn>),
}

/// The backend, dtypes and device chosen for one loaded model.
pub struct Compute {
    backend: Backend,
    device: Device,
    /// Rows the packed layouts are chosen for (the engine's chunk size).
    pack_rows: usize,
    info: ComputeInfo,
}

impl Compute {
    /// The CPU choice for a checkpoint stored in `stored`.
    ///
    /// # Errors
    /// `--backend onednn` without a usable library.
    pub fn cpu(backend: BackendChoice, dtype: DtypeChoice, stored: DType, pack_rows: usize) -> Result<Self> {
        if dtype == DtypeChoice::F16 {
            // oneDNN has no f16 matmul on the CPUs it targets here (that needs AVX512-FP16).
            let note = if backend == BackendChoice::OneDnn {
                return Err(EngineError::Compute("--dtype f16 runs on candle's kernels; drop --backend onednn".into()));
            } else {
                "f16 on a CPU runs candle's kernels (slow; meant for GPUs without bf16)".to_owned()
            };
            return Ok(Self::candle(Device::Cpu, DType::F16, note));
        }
        let (dnn, mut note) = match backend {
            BackendChoice::Candle => (None, String::new()),
            BackendChoice::OneDnn => (
                Some(OneDnn::load().map_err(|e| EngineError::Compute(format!("--backend onednn: {e}")))?),
                String::new(),
            ),
            BackendChoice::Auto => match OneDnn::load() {
                Ok(d) => (Some(d), String::new()),
                Err(e) => (None, format!("oneDNN unavailable ({e}); install libdnnl2 for the fast path")),
            },
        };
        let native = dnn.as_ref().is_some_and(|d| d.native_bf16());
        let weights = match dtype {
            DtypeChoice::F32 => DType::F32,
            DtypeChoice::Bf16 => DType::BF16,
            DtypeChoice::F16 => DType::F16,
            DtypeChoice::Auto if stored == DType::BF16 && native => DType::BF16,
            DtypeChoice::Auto => {
                if stored == DType::BF16 {
                    let why = if dnn.is_some() { "no native bf16 on this CPU" } else { "no oneDNN" };
                    note = join(note, format!("bf16 checkpoint computed in f32 ({why})"));
                }
                DType::F32
            }
        };
        if weights == DType::BF16 && dnn.is_some() && !native {
            note = join(note, "bf16 without native CPU support is emulated and slow".into());
        }
        Ok(match dnn {
            Some(d) => Self {
                info: ComputeInfo {
                    backend: "onednn",
                    version: d.version(),
                    isa: d.isa().into(),
                    kernel: d
                        .implementation(pack_rows.max(1), 1024, 1024, wt_of(weights))
                        .map_err(EngineError::Compute)?,
                    weights,
                    activations: DType::F32,
                    note,
                },
                backend: Backend::OneDnn(d),
                device: Device::Cpu,
                pack_rows,
            },
            None => Self::candle(Device::Cpu, weights, note),
        })
    }

    /// candle kernels on `device`, everything in `dtype` (the CUDA path, and tests' reference).
    pub fn on(device: Device, dtype: DType) -> Self {
        Self::candle(device, dtype, String::new())
    }

    fn candle(device: Device, dtype: DType, note: String) -> Self {
        let isa = if device.is_cpu() { "cpu".to_owned() } else { format!("{device:?}").to_lowercase() };
        Self {
            info: ComputeInfo {
                backend: "candle",
                version: String::new(),
                isa,
                kernel: String::new(),
                weights: dtype,
                activations: dtype,
                note,
            },
            backend: Backend::Candle,
            device,
            pack_rows: 0,
        }
    }

    /// What was chosen.
    pub fn info(&self) -> &ComputeInfo {
        &self.info
    }

    /// The device chosen at load (with a device map: the default for unplaced tensors).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Dtype the checkpoint's matmul weights are loaded in.
    pub fn weights(&self) -> DType {
        self.info.weights
    }

    /// Dtype of activations (the residual stream, norms, attention).
    pub fn activations(&self) -> DType {
        self.info.activations
    }

    /// Turns `w` (`[out, in]`, in [`Compute::weights`]) into a Linear for this backend.
    ///
    /// # Errors
    /// oneDNN refuses the shape.
    pub fn linear(&self, w: Tensor) -> Result<Linear> {
        let (n, k) = w.dims2()?;
        let kind = match &self.backend {
            Backend::Candle => Kind::Candle(w.to_dtype(self.weights())?),
            Backend::OneDnn(d) => {
                let rows = self.pack_rows;
                let packed = match wt_of(self.weights()) {
                    WeightType::Bf16 => d.pack(
                        &w.to_dtype(DType::BF16)?.flatten_all()?.to_vec1::<bf16>()?,
                        n,
                        k,
                        rows,
                        WeightType::Bf16,
                    ),
                    WeightType::F32 => {
                        d.pack(&w.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?, n, k, rows, WeightType::F32)
                    }
                }
                .map_err(EngineError::Compute)?;
                Kind::OneDnn(Box::new(packed))
            }
        };
        Ok(Linear { kind, out: n, inp: k, activations: self.activations() })
    }
}

impl Compute {
    /// One layer's attention (see `attention::layer` for the shapes): the fused CPU kernel
    /// where activations are f32 on the CPU, candle ops elsewhere.
    ///
    /// # Errors
    /// Inconsistent shapes or a backend failure.
    pub fn attention(
        &self,
        qkv: &Tensor,
        rope: (&Tensor, &Tensor),
        chunks: &[(usize, &[(Tensor, Tensor)])],
        g: Geometry,
    ) -> Result<(Tensor, Vec<(Tensor, Tensor)>)> {
        if !(qkv.device().is_cpu() && self.activations() == DType::F32) {
            return attention::layer(qkv, rope, chunks, g);
        }
        let qkv = qkv.contiguous()?;
        let (cos, sin) = (rope.0.contiguous()?, rope.1.contiguous()?);
        let lens: Vec<usize> = chunks.iter().map(|c| c.0).collect();
        let contexts: Vec<&[(Tensor, Tensor)]> = chunks.iter().map(|c| c.1).collect();
        let (out, own) = with_f32(&qkv, |q| {
            with_f32(&cos, |c| with_f32(&sin, |s| attention_cpu::attend(q, (c, s), &lens, &contexts, g)))
        })????;
        let rows = lens.iter().sum::<usize>();
        let dev = qkv.device();
        let own = own
            .into_iter()
            .zip(&lens)
            .map(|((k, v), &len)| {
                Ok((
                    Tensor::from_vec(k, (g.kv_heads, len, g.dim), dev)?,
                    Tensor::from_vec(v, (g.kv_heads, len, g.dim), dev)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((Tensor::from_vec(out, (rows, g.heads * g.dim), dev)?, own))
    }

    /// `silu(gate) · up` from the stacked `[T, 2·inter]` projection: one vectorised pass on the
    /// CPU in f32, candle ops elsewhere.
    ///
    /// # Errors
    /// A shape or backend failure.
    pub fn silu_mul(&self, gate_up: &Tensor, inter: usize) -> Result<Tensor> {
        if !(gate_up.device().is_cpu() && self.activations() == DType::F32) {
            return Ok((candle_nn::ops::silu(&gate_up.narrow(1, 0, inter)?)? * gate_up.narrow(1, inter, inter)?)?);
        }
        let gate_up = gate_up.contiguous()?;
        let rows = gate_up.dim(0)?;
        let mut out = vec![0f32; rows * inter];
        with_f32(&gate_up, |gu| {
            use rayon::prelude::*;
            out.par_chunks_mut(inter).zip(gu.par_chunks(2 * inter)).for_each(|(o, row)| {
                fastmath::silu_mul(&row[..inter], &row[inter..], o);
            });
        })?;
        Ok(Tensor::from_vec(out, (rows, inter), gate_up.device())?)
    }
}

fn wt_of(dtype: DType) -> WeightType {
    if dtype == DType::BF16 { WeightType::Bf16 } else { WeightType::F32 }
}

fn join(a: String, b: String) -> String {
    if a.is_empty() { b } else { format!("{a}; {b}") }
}

enum Kind {
    Candle(Tensor),
    /// Boxed: the packed form carries its 1 KiB oneDNN descriptor.
    OneDnn(Box<Packed>),
}

/// A projection weight in the form its backend multiplies fastest: `y = x · Wᵀ`.
pub struct Linear {
    kind: Kind,
    out: usize,
    inp: usize,
    activations: DType,
}

impl Linear {
    /// `[rows, in]` → `[rows, out]`, in the activation dtype.
    ///
    /// # Errors
    /// A shape mismatch or a backend failure.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.kind {
            Kind::Candle(w) => Ok(x.matmul(&w.t()?)?),
            Kind::OneDnn(p) => {
                let (rows, k) = x.dims2()?;
                if k != self.inp {
                    return Err(EngineError::Compute(format!("linear expects {} inputs, got {k}", self.inp)));
                }
                let x = x.to_dtype(DType::F32)?.contiguous()?;
                let out = with_f32(&x, |v| match p.weight_type() {
                    WeightType::F32 => p.matmul(v, rows),
                    WeightType::Bf16 => p.matmul(&to_bf16(v), rows),
                })?
                .map_err(EngineError::Compute)?;
                Ok(Tensor::from_vec(out, (rows, self.out), &Device::Cpu)?.to_dtype(self.activations)?)
            }
        }
    }
}

/// Runs `f` over the f32 elements of a contiguous CPU tensor without copying them.
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let n = layout.shape().elem_count();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(v)), Some((start, end))) if end - start == n => Ok(f(&v[start..end])),
        _ => Err(EngineError::Compute("expected a contiguous f32 CPU tensor".into())),
    }
}

/// Round-to-nearest-even f32 → bf16, as torch's `.to(torch.bfloat16)`; in parallel.
fn to_bf16(v: &[f32]) -> Vec<bf16> {
    use rayon::prelude::*;
    let mut out = vec![bf16::ZERO; v.len()];
    out.par_chunks_mut(1 << 14).zip(v.par_chunks(1 << 14)).for_each(|(o, i)| {
        for (o, &x) in o.iter_mut().zip(i) {
            *o = bf16::from_f32(x);
        }
    });
    out
}

#[cfg(test)]
mod tests;
