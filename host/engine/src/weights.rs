//! Safetensors checkpoints: one file or many through `model.safetensors.index.json`.
//!
//! Files are memory-mapped; tensors are read into host memory in the dtype asked for one at a
//! time, and each one's file pages are released after it is read, so peak memory is the
//! loaded model, not the model plus the file. Every lookup checks the tensor's
//! presence, shape and dtype and names the file on failure. [`Checkpoint::row`] reads a single
//! row of a matrix straight from the mapping — how only the reward row of `lm_head` is kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use memmap2::{Mmap, UncheckedAdvice};
use safetensors::SafeTensors;
use safetensors::tensor::Dtype as StDtype;

use crate::error::{EngineError, Result, bad};

/// Where one tensor lives.
#[derive(Debug, Clone)]
struct Entry {
    file: usize,
    dtype: StDtype,
    shape: Vec<usize>,
    /// Absolute byte range in the file.
    start: usize,
    end: usize,
}

/// An opened checkpoint.
pub struct Checkpoint {
    maps: Vec<Mmap>,
    entries: BTreeMap<String, Entry>,
    files: Vec<PathBuf>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint").field("files", &self.files).finish_non_exhaustive()
    }
}

/// The candle dtype of a stored dtype the engine reads.
fn to_candle(d: StDtype) -> Option<DType> {
    match d {
        StDtype::F32 => Some(DType::F32),
        StDtype::BF16 => Some(DType::BF16),
        StDtype::F16 => Some(DType::F16),
        _ => None,
    }
}

/// The safetensors files of a checkpoint directory: the index's files, or `model.safetensors`.
fn checkpoint_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|error| EngineError::Io { path: index.clone(), error })?;
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
    /// Maps every safetensors file of `dir`; tensors are read into host memory on demand.
    ///
    /// # Errors
    /// Missing index or shard files, unreadable or malformed safetensors headers.
    pub fn open(dir: &Path) -> Result<Self> {
        let files = checkpoint_files(dir)?;
        let mut maps = Vec::with_capacity(files.len());
        let mut entries = BTreeMap::new();
        for (i, f) in files.iter().enumerate() {
            if !f.exists() {
                return Err(bad(f, "listed by model.safetensors.index.json but missing"));
            }
            let file = std::fs::File::open(f).map_err(|error| EngineError::Io { path: f.clone(), error })?;
            // SAFETY: the mapping is only sound while nobody truncates or rewrites the file;
            // checkpoints are read-only inputs, as for every mmap-based loader (candle, transformers).
            #[allow(unsafe_code, reason = "memory-mapping read-only checkpoint files")]
            let map = unsafe { Mmap::map(&file) }.map_err(|error| EngineError::Io { path: f.clone(), error })?;
            let (header, meta) =
                SafeTensors::read_metadata(&map).map_err(|e| bad(f, format!("not a safetensors file: {e}")))?;
            let base = 8 + header;
            for (name, info) in meta.tensors() {
                let (start, end) = (base + info.data_offsets.0, base + info.data_offsets.1);
                if end > map.len() || start > end {
                    return Err(bad(f, format!("tensor `{name}` lies outside the file")));
                }
                entries.insert(name, Entry { file: i, dtype: info.dtype, shape: info.shape.clone(), start, end });
            }
            maps.push(map);
        }
        Ok(Self { maps, entries, files })
    }

    /// Whether the checkpoint has tensor `name`.
    pub fn has(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    fn entry(&self, name: &str, shape: &[usize]) -> Result<(&Entry, &Path)> {
        let e = self.entries.get(name).ok_or_else(|| {
            bad(
                self.files.first().map_or(Path::new("."), |f| f.parent().unwrap_or(f)),
                format!("missing tensor `{name}`"),
            )
        })?;
        let file = self.files[e.file].as_path();
        if e.shape != shape {
            return Err(bad(file, format!("tensor `{name}` has shape {:?}, expected {shape:?}", e.shape)));
        }
        Ok((e, file))
    }

    fn candle_dtype(e: &Entry, name: &str, file: &Path) -> Result<DType> {
        to_candle(e.dtype).ok_or_else(|| EngineError::Unsupported {
            path: file.to_path_buf(),
            message: format!("tensor `{name}` has dtype {:?} (need F32, BF16 or F16)", e.dtype),
        })
    }

    /// Loads tensor `name`, checking its shape, in `dtype` (matmul weights may differ from
    /// the activation dtype). Its file pages are released from this process afterwards, so
    /// loading a checkpoint never holds the file and the loaded model in memory together.
    ///
    /// # Errors
    /// Missing tensor, wrong shape, unsupported dtype.
    pub fn tensor_as(&self, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let (e, file) = self.entry(name, shape)?;
        let stored = Self::candle_dtype(e, name, file)?;
        let bytes = &self.maps[e.file][e.start..e.end];
        let t = Tensor::from_raw_buffer(bytes, stored, shape, &Device::Cpu)
            .map_err(|err| bad(file, format!("tensor `{name}`: {err}")))?
            .to_dtype(dtype)?;
        self.release(e);
        Ok(t)
    }

    /// Drops the whole pages of `e`'s bytes from this process's resident set (they are
    /// re-read from the file if touched again).
    fn release(&self, e: &Entry) {
        const PAGE: usize = 4096;
        let (start, end) = (e.start.div_ceil(PAGE) * PAGE, e.end / PAGE * PAGE);
        if end > start {
            // SAFETY: DONTNEED on a read-only file mapping only drops clean page-cache pages
            // from this mapping; later reads fault them back in from the unchanged file. No
            // reference into the range outlives this call's caller (the tensor was copied).
            #[allow(unsafe_code, reason = "madvise(DONTNEED) on a read-only checkpoint mapping")]
            let _ = unsafe { self.maps[e.file].unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start) };
        }
    }

    /// The dtype tensor `name` is stored in, if present.
    pub fn stored_dtype(&self, name: &str) -> Option<DType> {
        to_candle(self.entries.get(name)?.dtype)
    }

    /// Loads row `row` of the 2-D tensor `name` (`[rows, cols]`) as `[1, cols]` in its stored
    /// dtype, reading only that row's bytes.
    ///
    /// # Errors
    /// As [`Checkpoint::tensor_as`], plus a row out of range.
    pub fn row(&self, name: &str, rows: usize, cols: usize, row: usize) -> Result<Tensor> {
        let (e, file) = self.entry(name, &[rows, cols])?;
        let stored = Self::candle_dtype(e, name, file)?;
        if row >= rows {
            return Err(bad(file, format!("row {row} of `{name}` is out of range ({rows} rows)")));
        }
        let width = cols * stored.size_in_bytes();
        let bytes = &self.maps[e.file][e.start + row * width..e.start + (row + 1) * width];
        Tensor::from_raw_buffer(bytes, stored, &[1, cols], &Device::Cpu)
            .map_err(|err| bad(file, format!("tensor `{name}`: {err}")))
    }
}
