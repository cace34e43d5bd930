//! oneDNN matmuls on the CPU: weights reordered once at load into the layout oneDNN's fastest
//! kernel for this CPU prefers, then `x · Wᵀ` with bf16 or f32 weights and f32 output.
//!
//! Invariants: a [`Packed`] weight is only ever multiplied by a primitive created for its exact
//! layout (compared before each use; where oneDNN would prefer another blocking for some row
//! count, a primitive is made for the packed layout instead of repacking); primitives are cached per `(rows, k, n, dtype)`, so every
//! layer with the same shape shares one; all calls go through one stream behind a lock (the
//! engine computes on one thread; the lock only makes `Sync` honest).

#![allow(unsafe_code, reason = "calls into the oneDNN C library through `ffi`")]

mod ffi;

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_void};
use std::sync::{Arc, Mutex};

use ffi::{Api, ExecArg, Handle, MatmulDesc, MemoryDesc};

/// Weight element type of a packed matrix (activations are converted to it; output is f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightType {
    F32,
    Bf16,
}

impl WeightType {
    fn code(self) -> i32 {
        match self {
            Self::F32 => ffi::DT_F32,
            Self::Bf16 => ffi::DT_BF16,
        }
    }
}

/// `(rows, k, n, weight type, forced layout)`: one primitive each.
type ShapeKey = (usize, usize, usize, WeightType, bool);

/// A loaded oneDNN: library, CPU engine, stream, primitive cache.
pub struct OneDnn {
    api: Api,
    engine: Handle,
    /// The one stream every primitive runs on; locked for the duration of one execute.
    stream: Mutex<Handle>,
    /// Matmul primitives by shape; bounded (cleared when full: shapes recur every forward).
    cache: Mutex<HashMap<ShapeKey, Arc<Matmul>>>,
}

// SAFETY: oneDNN engines and primitives may be used from any thread; the stream, the one
// object that is not safe to share, is behind a Mutex.
unsafe impl Send for OneDnn {}
// SAFETY: as above.
unsafe impl Sync for OneDnn {}

impl std::fmt::Debug for OneDnn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneDnn").field("version", &self.api.version_string()).finish_non_exhaustive()
    }
}

const CACHE_LIMIT: usize = 256;

fn check(status: ffi::Status, what: &str) -> Result<(), String> {
    if status == ffi::SUCCESS { Ok(()) } else { Err(format!("oneDNN {what} failed (status {status})")) }
}

impl OneDnn {
    /// Loads the system library and creates a CPU engine and stream.
    ///
    /// # Errors
    /// The library is absent or not 2.x, or engine creation fails; the text says which.
    pub fn load() -> Result<Arc<Self>, String> {
        let api = Api::load()?;
        let mut engine: Handle = std::ptr::null_mut();
        // SAFETY: out-pointer to a local; CPU engine index 0 always exists.
        check(unsafe { (api.engine_create)(&mut engine, ffi::ENGINE_CPU, 0) }, "engine creation")?;
        let mut stream: Handle = std::ptr::null_mut();
        // SAFETY: engine is valid.
        if let Err(e) = check(unsafe { (api.stream_create)(&mut stream, engine, ffi::STREAM_DEFAULT) }, "stream") {
            // SAFETY: engine was created above and is not used again.
            unsafe { (api.engine_destroy)(engine) };
            return Err(e);
        }
        Ok(Arc::new(Self { api, engine, stream: Mutex::new(stream), cache: Mutex::new(HashMap::new()) }))
    }

    /// Library version, e.g. `2.6.3`.
    pub fn version(&self) -> String {
        self.api.version_string()
    }

    /// Name of the instruction set oneDNN dispatches to on this CPU.
    pub fn isa(&self) -> &'static str {
        // SAFETY: no arguments; returns an enum value.
        match unsafe { (self.api.effective_cpu_isa)() } {
            ffi::ISA_AVX512_CORE_AMX => "avx512_core_amx",
            ffi::ISA_AVX512_CORE_BF16 => "avx512_core_bf16",
            0x67 => "avx512_core_vnni",
            0x27 => "avx512_core",
            ffi::ISA_AVX2_VNNI => "avx2_vnni",
            0x7 => "avx2",
            0x3 => "avx",
            0x1 => "sse41",
            _ => "other",
        }
    }

    /// Whether this CPU multiplies bf16 natively (AMX or AVX-512-BF16), as oneDNN sees it.
    pub fn native_bf16(&self) -> bool {
        // SAFETY: as in `isa`.
        let isa = unsafe { (self.api.effective_cpu_isa)() };
        isa & ffi::ISA_AVX512_CORE_BF16 == ffi::ISA_AVX512_CORE_BF16
    }

    fn md(&self, dims: &[i64], dt: WeightType, tag: i32) -> Result<MemoryDesc, String> {
        let mut md = MemoryDesc::zeroed();
        let n = i32::try_from(dims.len()).map_err(|_| "too many dims".to_owned())?;
        // SAFETY: `dims` holds `n` values; `md` is a writable descriptor.
        check(unsafe { (self.api.md_init_by_tag)(&mut md, n, dims.as_ptr(), dt.code(), tag) }, "memory descriptor")?;
        Ok(md)
    }

    /// The matmul primitive for `[rows, k] · [k, n]` with weights in `wt` (cached), in the
    /// weight layout oneDNN prefers, or in `layout` when given.
    fn matmul(
        &self,
        rows: usize,
        k: usize,
        n: usize,
        wt: WeightType,
        layout: Option<&MemoryDesc>,
    ) -> Result<Arc<Matmul>, String> {
        let key = (rows, k, n, wt, layout.is_some());
        if let Some(m) = self.cache.lock().map_err(|_| "oneDNN cache poisoned".to_owned())?.get(&key) {
            return Ok(m.clone());
        }
        let (r, k64, n64) = (rows as i64, k as i64, n as i64);
        let src = self.md(&[r, k64], wt, ffi::TAG_AB)?;
        let weights = match layout {
            Some(md) => *md,
            None => self.md(&[k64, n64], wt, ffi::TAG_ANY)?,
        };
        let dst = self.md(&[r, n64], WeightType::F32, ffi::TAG_AB)?;
        let mut desc = MatmulDesc([0; 4096]);
        // SAFETY: all descriptors are initialised; bias is absent (null).
        check(
            unsafe { (self.api.matmul_desc_init)(&mut desc, &src, &weights, std::ptr::null(), &dst) },
            "matmul descriptor",
        )?;
        let mut pd: Handle = std::ptr::null_mut();
        // SAFETY: desc is initialised; no attributes, no hint.
        check(
            unsafe {
                (self.api.pd_create)(
                    &mut pd,
                    (&raw const desc).cast::<c_void>(),
                    std::ptr::null_mut(),
                    self.engine,
                    std::ptr::null_mut(),
                )
            },
            "matmul primitive descriptor",
        )?;
        let mut matmul = Matmul { api: &raw const self.api, pd, prim: std::ptr::null_mut(), weights_md: src };
        // SAFETY: pd is valid; the returned descriptor is copied before pd can go away.
        let wmd = unsafe { (self.api.pd_query_md)(pd, ffi::QUERY_WEIGHTS_MD, 0) };
        if wmd.is_null() {
            return Err("oneDNN matmul has no weights descriptor".into());
        }
        // SAFETY: oneDNN returned a valid descriptor; we copy at most its real size (the
        // v2 struct is smaller than our storage, and the rest stays zero).
        unsafe { std::ptr::copy_nonoverlapping(wmd.cast::<u8>(), matmul.weights_md.0.as_mut_ptr(), 696) };
        // SAFETY: pd is valid.
        check(unsafe { (self.api.primitive_create)(&mut matmul.prim, pd) }, "matmul primitive")?;
        let matmul = Arc::new(matmul);
        let mut cache = self.cache.lock().map_err(|_| "oneDNN cache poisoned".to_owned())?;
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, matmul.clone());
        Ok(matmul)
    }

    /// Name of the kernel oneDNN runs for `[rows, k] · [k, n]` in `wt`, e.g. `brg:avx512_core_bf16`.
    ///
    /// # Errors
    /// The shape has no implementation.
    pub fn implementation(&self, rows: usize, k: usize, n: usize, wt: WeightType) -> Result<String, String> {
        let m = self.matmul(rows, k, n, wt, None)?;
        let mut name: *const c_char = std::ptr::null();
        // SAFETY: the query writes a `const char *` owned by the primitive descriptor.
        check(
            unsafe { (self.api.pd_query)(m.pd, ffi::QUERY_IMPL_INFO_STR, 0, (&raw mut name).cast::<c_void>()) },
            "implementation query",
        )?;
        if name.is_null() {
            return Ok("unknown".into());
        }
        // SAFETY: a NUL-terminated string that lives as long as `m`.
        Ok(unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned())
    }

    fn execute(&self, prim: Handle, args: &[ExecArg]) -> Result<(), String> {
        let stream = self.stream.lock().map_err(|_| "oneDNN stream poisoned".to_owned())?;
        let n = i32::try_from(args.len()).map_err(|_| "too many arguments".to_owned())?;
        // SAFETY: every memory in `args` wraps a live buffer of the descriptor's size.
        check(unsafe { (self.api.primitive_execute)(prim, *stream, n, args.as_ptr()) }, "execute")?;
        // SAFETY: the stream is valid.
        check(unsafe { (self.api.stream_wait)(*stream) }, "stream wait")
    }

    fn memory(&self, md: &MemoryDesc, data: *mut c_void) -> Result<Memory<'_>, String> {
        let mut h: Handle = std::ptr::null_mut();
        // SAFETY: `data` points to at least `md_get_size(md)` bytes that outlive the Memory.
        check(unsafe { (self.api.memory_create)(&mut h, md, self.engine, data) }, "memory")?;
        Ok(Memory { api: &self.api, h })
    }

    /// Packs `w` (`[n, k]` row-major, the checkpoint's `[out, in]`) for matmuls with `rows`-row
    /// inputs. `T` is `f32` or `half::bf16`, matching `wt`.
    ///
    /// # Errors
    /// oneDNN refuses the shape or the reorder.
    pub fn pack<T: Copy>(
        self: &Arc<Self>,
        w: &[T],
        n: usize,
        k: usize,
        rows: usize,
        wt: WeightType,
    ) -> Result<Packed, String> {
        if w.len() != n * k || std::mem::size_of::<T>() != wt_size(wt) {
            return Err(format!("weight of {} elements is not [{n}, {k}] in {wt:?}", w.len()));
        }
        let m = self.matmul(rows, k, n, wt, None)?;
        // [k, n] viewed over the [n, k] row-major data: the `ba` tag.
        let plain = self.md(&[k as i64, n as i64], wt, ffi::TAG_BA)?;
        // SAFETY: a valid descriptor.
        let size = unsafe { (self.api.md_get_size)(&m.weights_md) };
        let mut buf = AlignedBuf::new(size);
        let mut pd: Handle = std::ptr::null_mut();
        // SAFETY: both descriptors valid, same engine, no attributes.
        check(
            unsafe {
                (self.api.reorder_pd_create)(
                    &mut pd,
                    &plain,
                    self.engine,
                    &m.weights_md,
                    self.engine,
                    std::ptr::null_mut(),
                )
            },
            "weight reorder descriptor",
        )?;
        let reorder = Matmul { api: &raw const self.api, pd, prim: std::ptr::null_mut(), weights_md: m.weights_md };
        let mut reorder = reorder;
        // SAFETY: pd valid.
        check(unsafe { (self.api.primitive_create)(&mut reorder.prim, pd) }, "weight reorder")?;
        let from = self.memory(&plain, w.as_ptr().cast_mut().cast::<c_void>())?;
        let to = self.memory(&m.weights_md, buf.as_mut_ptr())?;
        self.execute(
            reorder.prim,
            &[ExecArg { arg: ffi::ARG_FROM, memory: from.h }, ExecArg { arg: ffi::ARG_TO, memory: to.h }],
        )?;
        Ok(Packed { dnn: self.clone(), buf, md: m.weights_md, k, n, wt })
    }
}

fn wt_size(wt: WeightType) -> usize {
    match wt {
        WeightType::F32 => 4,
        WeightType::Bf16 => 2,
    }
}

impl Drop for OneDnn {
    fn drop(&mut self) {
        if let Ok(cache) = self.cache.get_mut() {
            cache.clear();
        }
        if let Ok(stream) = self.stream.get_mut() {
            // SAFETY: created in `load`, destroyed once.
            unsafe { (self.api.stream_destroy)(*stream) };
        }
        // SAFETY: as above.
        unsafe { (self.api.engine_destroy)(self.engine) };
    }
}

/// A primitive and its descriptor (also used for reorders).
struct Matmul {
    api: *const Api,
    pd: Handle,
    prim: Handle,
    weights_md: MemoryDesc,
}

// SAFETY: primitives are immutable once created and may execute from any thread.
unsafe impl Send for Matmul {}
// SAFETY: as above.
unsafe impl Sync for Matmul {}

impl Drop for Matmul {
    fn drop(&mut self) {
        // SAFETY: `api` points into the OneDnn that owns the cache holding this (or, for a
        // reorder, that outlives this local); both handles were created once.
        unsafe {
            if !self.prim.is_null() {
                ((*self.api).primitive_destroy)(self.prim);
            }
            ((*self.api).pd_destroy)(self.pd);
        }
    }
}

struct Memory<'a> {
    api: &'a Api,
    h: Handle,
}

impl Drop for Memory<'_> {
    fn drop(&mut self) {
        // SAFETY: created once by `memory_create`.
        unsafe { (self.api.memory_destroy)(self.h) };
    }
}

/// 64-byte aligned bytes (oneDNN's preferred alignment for packed weights).
struct AlignedBuf {
    bytes: Vec<u8>,
    offset: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> Self {
        let bytes = vec![0u8; len + 64];
        let offset = bytes.as_ptr().align_offset(64);
        Self { bytes, offset, len }
    }

    fn as_mut_ptr(&mut self) -> *mut c_void {
        self.bytes[self.offset..self.offset + self.len].as_mut_ptr().cast()
    }

    fn as_ptr(&self) -> *const c_void {
        self.bytes[self.offset..self.offset + self.len].as_ptr().cast()
    }
}

/// A weight matrix in oneDNN's packed layout, ready for `x · Wᵀ`.
pub struct Packed {
    dnn: Arc<OneDnn>,
    buf: AlignedBuf,
    md: MemoryDesc,
    k: usize,
    n: usize,
    wt: WeightType,
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packed").field("k", &self.k).field("n", &self.n).field("wt", &self.wt).finish_non_exhaustive()
    }
}

impl Packed {
    /// Element type of the packed weights.
    pub fn weight_type(&self) -> WeightType {
        self.wt
    }

    /// `x · Wᵀ` for `x` of `rows × k` elements in the weight type; returns `rows × n` f32.
    ///
    /// # Errors
    /// A shape mismatch, a primitive whose layout differs from the packed one, or a oneDNN failure.
    pub fn matmul<T: Copy>(&self, x: &[T], rows: usize) -> Result<Vec<f32>, String> {
        if x.len() != rows * self.k || std::mem::size_of::<T>() != wt_size(self.wt) {
            return Err(format!("input of {} elements is not [{rows}, {}] in {:?}", x.len(), self.k, self.wt));
        }
        let mut out = vec![0f32; rows * self.n];
        if rows == 0 {
            return Ok(out);
        }
        let mut m = self.dnn.matmul(rows, self.k, self.n, self.wt, None)?;
        // SAFETY: both descriptors are valid.
        if unsafe { (self.dnn.api.md_equal)(&m.weights_md, &self.md) } == 0 {
            // oneDNN prefers another blocking for this row count: ask for a kernel that takes
            // the packed one as it is (never repack per call).
            m = self.dnn.matmul(rows, self.k, self.n, self.wt, Some(&self.md))?;
        }
        let src = self.dnn.md(&[rows as i64, self.k as i64], self.wt, ffi::TAG_AB)?;
        let dst = self.dnn.md(&[rows as i64, self.n as i64], WeightType::F32, ffi::TAG_AB)?;
        let s = self.dnn.memory(&src, x.as_ptr().cast_mut().cast::<c_void>())?;
        let w = self.dnn.memory(&self.md, self.buf.as_ptr().cast_mut())?;
        let d = self.dnn.memory(&dst, out.as_mut_ptr().cast::<c_void>())?;
        self.dnn.execute(
            m.prim,
            &[
                ExecArg { arg: ffi::ARG_SRC, memory: s.h },
                ExecArg { arg: ffi::ARG_WEIGHTS, memory: w.h },
                ExecArg { arg: ffi::ARG_DST, memory: d.h },
            ],
        )?;
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests;
