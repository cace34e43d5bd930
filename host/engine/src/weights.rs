//! Safetensors checkpoints: one file or many through `model.safetensors.index.json`.
//!
//! Files are memory-mapped; tensors are converted to the compute dtype one at a time, so peak
//! memory is the model in compute dtype, not twice that. Every lookup checks the tensor's
//! presence, shape and dtype and names the file on failure. [`Checkpoint::row`] reads a single
//! row of a matrix straight from the mapping — how only the reward row of `lm_head` is kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::safetensors::{Load, MmapedSafetensors};
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype as StDtype, TensorView};

use crate::error::{EngineError, Result, bad};

/// An opened checkpoint.
pub struct Checkpoint {
    mmap: MmapedSafetensors,
    /// Tensor name → file holding it (for error messages).
    owner: BTreeMap<String, PathBuf>,
    files: Vec<PathBuf>,
    device: Device,
    dtype: DType,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint").field("files", &self.files).field("dtype", &self.dtype).finish_non_exhaustive()
    }
}

/// The safetensors files of a checkpoint directory: the index's files, or `model.safetensors`.
fn checkpoint_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|source| EngineError::Io { path: index.clone(), source })?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(&index, format!("invalid JSON: {e}")))?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| bad(&index, "missing `weight_map` object"))?;
        let mut files: Vec<PathBuf> = Vec::new();
        for (tensor, file) in map {
            let name =
                file.as_str().ok_or_else(|| bad(&index, format!("weight_map[{tensor:?}] is not a file name")))?;
            if name.contains('/') || name.contains("..") {
                return Err(bad(&index, format!("weight_map[{tensor:?}] = {name:?} points outside the directory")));
            }
            let path = dir.join(name);
            if !files.contains(&path) {
                files.push(path);
            }
        }
        if files.is_empty() {
            return Err(bad(&index, "weight_map lists no files"));
        }
        return Ok(files);
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    Err(bad(dir, "no model.safetensors or model.safetensors.index.json"))
}

impl Checkpoint {
    /// Maps every safetensors file of `dir`; tensors will be converted to `dtype` on `device`.
    ///
    /// # Errors
    /// Missing index or shard files, unreadable or malformed safetensors headers.
    pub fn open(dir: &Path, device: Device, dtype: DType) -> Result<Self> {
        let files = checkpoint_files(dir)?;
        for f in &files {
            if !f.exists() {
                return Err(bad(f, "listed by model.safetensors.index.json but missing"));
            }
        }
        // SAFETY: the mapping is only sound while nobody truncates or rewrites the files;
        // checkpoints are read-only inputs, as for every mmap-based loader (candle, transformers).
        #[allow(unsafe_code, reason = "memory-mapping read-only checkpoint files")]
        let mmap = unsafe { MmapedSafetensors::multi(&files) }
            .map_err(|e| bad(dir, format!("cannot map safetensors: {e}")))?;
        let mut owner = BTreeMap::new();
        for f in &files {
            // SAFETY: as above; this second mapping only reads each file's header.
            #[allow(unsafe_code, reason = "memory-mapping read-only checkpoint files")]
            let one =
                unsafe { MmapedSafetensors::new(f) }.map_err(|e| bad(f, format!("not a safetensors file: {e}")))?;
            for (name, _) in one.tensors() {
                owner.insert(name, f.clone());
            }
        }
        Ok(Self { mmap, owner, files, device, dtype })
    }

    /// The same checkpoint, loading to `device` instead.
    pub fn on(self, device: Device) -> Self {
        Self { device, ..self }
    }

    /// Device tensors are loaded to.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Whether the checkpoint has tensor `name`.
    pub fn has(&self, name: &str) -> bool {
        self.owner.contains_key(name)
    }

    fn view(&self, name: &str, shape: &[usize]) -> Result<(TensorView<'_>, &Path)> {
        let file = self.owner.get(name).ok_or_else(|| {
            bad(
                self.files.first().map_or(Path::new("."), |f| f.parent().unwrap_or(f)),
                format!("missing tensor `{name}`"),
            )
        })?;
        let view = self.mmap.get(name).map_err(|e| bad(file, format!("tensor `{name}`: {e}")))?;
        if view.shape() != shape {
            return Err(bad(file, format!("tensor `{name}` has shape {:?}, expected {shape:?}", view.shape())));
        }
        if !matches!(view.dtype(), StDtype::F32 | StDtype::BF16 | StDtype::F16) {
            return Err(EngineError::Unsupported {
                path: file.clone(),
                message: format!("tensor `{name}` has dtype {:?} (need F32, BF16 or F16)", view.dtype()),
            });
        }
        Ok((view, file))
    }

    /// Loads tensor `name`, checking its shape, in the compute dtype.
    ///
    /// # Errors
    /// Missing tensor, wrong shape, unsupported dtype.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.tensor_as(name, shape, self.dtype)
    }

    /// Loads tensor `name`, checking its shape, in `dtype` (matmul weights may differ from
    /// the activation dtype).
    ///
    /// # Errors
    /// As [`Checkpoint::tensor`].
    pub fn tensor_as(&self, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let (view, file) = self.view(name, shape)?;
        let t = view.load(&self.device).map_err(|e| bad(file, format!("tensor `{name}`: {e}")))?;
        Ok(t.to_dtype(dtype)?)
    }

    /// The dtype tensor `name` is stored in, if present.
    pub fn stored_dtype(&self, name: &str) -> Option<DType> {
        match self.mmap.get(name).ok()?.dtype() {
            StDtype::F32 => Some(DType::F32),
            StDtype::BF16 => Some(DType::BF16),
            StDtype::F16 => Some(DType::F16),
            _ => None,
        }
    }

    /// Loads row `row` of the 2-D tensor `name` (`[rows, cols]`) as `[1, cols]`, reading only
    /// that row's bytes.
    ///
    /// # Errors
    /// As [`Checkpoint::tensor`], plus a row out of range.
    pub fn row(&self, name: &str, rows: usize, cols: usize, row: usize) -> Result<Tensor> {
        let (view, file) = self.view(name, &[rows, cols])?;
        if row >= rows {
            return Err(bad(file, format!("row {row} of `{name}` is out of range ({rows} rows)")));
        }
        let width = cols * view.dtype().bitsize() / 8;
        let bytes = &view.data()[row * width..(row + 1) * width];
        let one =
            TensorView::new(view.dtype(), vec![1, cols], bytes).map_err(|e| bad(file, format!("`{name}`: {e}")))?;
        let t = one.load(&self.device).map_err(|e| bad(file, format!("tensor `{name}`: {e}")))?;
        Ok(t.to_dtype(self.dtype)?)
    }
}
