//! The slice of oneDNN's v2 C API that the engine uses, declared by hand and resolved from the
//! system library at run time (`libdnnl.so.2`), so building arbiter needs no oneDNN at all.
//!
//! Invariants: only the v2 ABI is accepted (`dnnl_version().major == 2`): in v2 memory and
//! operation descriptors are plain structs that the caller allocates, and their sizes below are
//! upper bounds of the v2 headers' `sizeof` (696 and 2,800 bytes in 2.6). Every function pointer
//! stays valid because the `Library` it came from lives in the same struct.

#![allow(unsafe_code, reason = "foreign-function interface to the oneDNN C library")]

use std::ffi::{c_char, c_int, c_void};

use libloading::Library;

pub type Status = c_int;
pub type Handle = *mut c_void;
pub const SUCCESS: Status = 0;

/// `dnnl_memory_desc_t` (v2): opaque storage, larger than the real struct.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct MemoryDesc(pub [u8; 1024]);

impl MemoryDesc {
    pub fn zeroed() -> Self {
        Self([0; 1024])
    }
}

/// `dnnl_matmul_desc_t` (v2): opaque storage, larger than the real struct.
#[repr(C, align(8))]
pub struct MatmulDesc(pub [u8; 4096]);

/// `dnnl_exec_arg_t`.
#[repr(C)]
pub struct ExecArg {
    pub arg: c_int,
    pub memory: Handle,
}

/// `dnnl_version_t`.
#[repr(C)]
pub struct Version {
    pub major: c_int,
    pub minor: c_int,
    pub patch: c_int,
    pub hash: *const c_char,
    pub cpu_runtime: u32,
    pub gpu_runtime: u32,
}

pub const ENGINE_CPU: c_int = 1;
pub const STREAM_DEFAULT: u32 = 1;
pub const DT_BF16: c_int = 2;
pub const DT_F32: c_int = 3;
pub const TAG_ANY: c_int = 1;
pub const TAG_AB: c_int = 3;
pub const TAG_BA: c_int = 22;
pub const ARG_SRC: c_int = 1;
pub const ARG_DST: c_int = 17;
pub const ARG_WEIGHTS: c_int = 33;
pub const ARG_FROM: c_int = 1;
pub const ARG_TO: c_int = 17;
pub const QUERY_IMPL_INFO_STR: c_int = 8;
pub const QUERY_WEIGHTS_MD: c_int = 131;
pub const ISA_AVX512_CORE_BF16: u32 = 0xe7;
pub const ISA_AVX512_CORE_AMX: u32 = 0x3e7;
pub const ISA_AVX2_VNNI: u32 = 0x407;

/// Resolved entry points (see the C header of oneDNN 2.x for each signature).
pub struct Api {
    pub version: unsafe extern "C" fn() -> *const Version,
    pub effective_cpu_isa: unsafe extern "C" fn() -> u32,
    pub engine_create: unsafe extern "C" fn(*mut Handle, c_int, usize) -> Status,
    pub engine_destroy: unsafe extern "C" fn(Handle) -> Status,
    pub stream_create: unsafe extern "C" fn(*mut Handle, Handle, u32) -> Status,
    pub stream_destroy: unsafe extern "C" fn(Handle) -> Status,
    pub stream_wait: unsafe extern "C" fn(Handle) -> Status,
    pub md_init_by_tag: unsafe extern "C" fn(*mut MemoryDesc, c_int, *const i64, c_int, c_int) -> Status,
    pub md_get_size: unsafe extern "C" fn(*const MemoryDesc) -> usize,
    pub md_equal: unsafe extern "C" fn(*const MemoryDesc, *const MemoryDesc) -> c_int,
    pub matmul_desc_init: unsafe extern "C" fn(
        *mut MatmulDesc,
        *const MemoryDesc,
        *const MemoryDesc,
        *const MemoryDesc,
        *const MemoryDesc,
    ) -> Status,
    pub pd_create: unsafe extern "C" fn(*mut Handle, *const c_void, Handle, Handle, Handle) -> Status,
    pub pd_query: unsafe extern "C" fn(Handle, c_int, c_int, *mut c_void) -> Status,
    pub pd_query_md: unsafe extern "C" fn(Handle, c_int, c_int) -> *const MemoryDesc,
    pub pd_destroy: unsafe extern "C" fn(Handle) -> Status,
    pub reorder_pd_create:
        unsafe extern "C" fn(*mut Handle, *const MemoryDesc, Handle, *const MemoryDesc, Handle, Handle) -> Status,
    pub primitive_create: unsafe extern "C" fn(*mut Handle, Handle) -> Status,
    pub primitive_execute: unsafe extern "C" fn(Handle, Handle, c_int, *const ExecArg) -> Status,
    pub primitive_destroy: unsafe extern "C" fn(Handle) -> Status,
    pub memory_create: unsafe extern "C" fn(*mut Handle, *const MemoryDesc, Handle, *mut c_void) -> Status,
    pub memory_destroy: unsafe extern "C" fn(Handle) -> Status,
    /// Keeps every pointer above valid.
    _lib: Library,
}

/// Library names tried in order: the v2 runtime package's soname, then the dev symlink.
const NAMES: [&str; 2] = ["libdnnl.so.2", "libdnnl.so"];

/// Environment variable naming the library file to load instead of searching `NAMES`.
pub const LIB_ENV: &str = "ARBITER_ONEDNN_LIB";

macro_rules! sym {
    ($lib:expr, $name:literal) => {{
        // SAFETY: the symbol's type is the v2 C signature declared in `Api`; the pointer is
        // copied out and kept valid by storing the `Library` beside it.
        let s = unsafe { $lib.get(concat!($name, "\0").as_bytes()) }
            .map_err(|e| format!("the oneDNN library lacks {}: {e}", $name))?;
        *s
    }};
}

impl Api {
    /// Loads the system oneDNN; `Err` names why not (absent, wrong major version, missing symbol).
    pub fn load() -> Result<Self, String> {
        let mut errors = Vec::new();
        let mut lib = None;
        let chosen = std::env::var(LIB_ENV).ok().filter(|v| !v.is_empty());
        let names: Vec<&str> = match &chosen {
            Some(path) => vec![path.as_str()],
            None => NAMES.to_vec(),
        };
        for name in names {
            // SAFETY: loading runs the library's initialisers; oneDNN's only set up its own state.
            match unsafe { Library::new(name) } {
                Ok(l) => {
                    lib = Some(l);
                    break;
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        let lib = lib.ok_or_else(|| format!("oneDNN not found ({})", errors.join("; ")))?;
        let version: unsafe extern "C" fn() -> *const Version = sym!(lib, "dnnl_version");
        // SAFETY: dnnl_version returns a pointer to a static struct.
        let v = unsafe { &*version() };
        if v.major != 2 {
            return Err(format!("oneDNN {}.{} found; this build speaks the 2.x C API", v.major, v.minor));
        }
        Ok(Self {
            version,
            effective_cpu_isa: sym!(lib, "dnnl_get_effective_cpu_isa"),
            engine_create: sym!(lib, "dnnl_engine_create"),
            engine_destroy: sym!(lib, "dnnl_engine_destroy"),
            stream_create: sym!(lib, "dnnl_stream_create"),
            stream_destroy: sym!(lib, "dnnl_stream_destroy"),
            stream_wait: sym!(lib, "dnnl_stream_wait"),
            md_init_by_tag: sym!(lib, "dnnl_memory_desc_init_by_tag"),
            md_get_size: sym!(lib, "dnnl_memory_desc_get_size"),
            md_equal: sym!(lib, "dnnl_memory_desc_equal"),
            matmul_desc_init: sym!(lib, "dnnl_matmul_desc_init"),
            pd_create: sym!(lib, "dnnl_primitive_desc_create"),
            pd_query: sym!(lib, "dnnl_primitive_desc_query"),
            pd_query_md: sym!(lib, "dnnl_primitive_desc_query_md"),
            pd_destroy: sym!(lib, "dnnl_primitive_desc_destroy"),
            reorder_pd_create: sym!(lib, "dnnl_reorder_primitive_desc_create"),
            primitive_create: sym!(lib, "dnnl_primitive_create"),
            primitive_execute: sym!(lib, "dnnl_primitive_execute"),
            primitive_destroy: sym!(lib, "dnnl_primitive_destroy"),
            memory_create: sym!(lib, "dnnl_memory_create"),
            memory_destroy: sym!(lib, "dnnl_memory_destroy"),
            _lib: lib,
        })
    }

    /// `major.minor.patch` of the loaded library.
    pub fn version_string(&self) -> String {
        // SAFETY: as in `load`.
        let v = unsafe { &*(self.version)() };
        format!("{}.{}.{}", v.major, v.minor, v.patch)
    }
}
