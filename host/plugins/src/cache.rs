//! On-disk cache of compiled components.
//!
//! Key: the wasm's sha256 plus the engine's compatibility hash (wasmtime version, target,
//! compiler settings), so a cached artifact is only ever loaded by an engine that could have
//! produced it. Files: `KEY.v2.cwasm`, wasmtime's serialized component as is, so a hit maps it
//! (`deserialize_file`) instead of reading and copying tens of megabytes; and `KEY.v2.crc`, its
//! length and CRC-32, checked before mapping, so a torn or corrupted entry is recompiled, never
//! loaded. Each is written to a temp file and renamed; the checksum last, so a reader never
//! pairs a new artifact with a missing checksum. (CRC-32 detects corruption, which is all a
//! checksum can do here: whoever can write this directory could write a matching digest too.)

use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of compiled artifacts.
#[derive(Debug, Clone)]
pub(crate) struct CompileCache {
    dir: PathBuf,
    /// Engine compatibility hash, hex; part of every key.
    engine_tag: String,
}

impl CompileCache {
    pub(crate) fn new(engine: &Engine, dir: PathBuf) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self { dir, engine_tag: format!("{:016x}", hasher.finish()) }
    }

    fn path_for(&self, sha256: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.v2.{ext}", self.engine_tag))
    }

    /// Loads a cached compilation of the wasm with this sha256, if a valid one exists.
    pub(crate) fn get(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let artifact = self.path_for(sha256, "cwasm");
        let expected = std::fs::read_to_string(self.path_for(sha256, "crc")).ok()?;
        if checksum(&artifact).ok()? != expected.trim() {
            return None;
        }
        // SAFETY: `deserialize_file` trusts the file to be wasmtime's own output for a
        // compatible engine, left unmodified while mapped. The name carries this engine's
        // compatibility hash; the file was written by `put` from `Component::serialize` and
        // replaced only by rename (never in place), and its checksum was just verified.
        #[allow(unsafe_code, reason = "mapping our own verified compilation artifact")]
        let component = unsafe { Component::deserialize_file(engine, &artifact) };
        component.ok()
    }

    /// Stores a compilation. Failures are ignored: the cache is an optimisation only.
    pub(crate) fn put(&self, sha256: &str, component: &Component) {
        let Ok(payload) = component.serialize() else { return };
        let artifact = self.path_for(sha256, "cwasm");
        if write_atomic(&artifact, &payload).is_ok() {
            let _ = write_atomic(&self.path_for(sha256, "crc"), digest(&payload).as_bytes());
        }
    }
}

/// `LENGTH:CRC32` of `bytes`, as stored beside an artifact.
fn digest(bytes: &[u8]) -> String {
    format!("{}:{:08x}", bytes.len(), crc32fast::hash(bytes))
}

/// [`digest`] of a file, streamed (a multi-megabyte artifact is never held in memory).
fn checksum(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0usize;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n;
    }
    Ok(format!("{len}:{:08x}", hasher.finalize()))
}

fn write_atomic(path: &Path, payload: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    std::fs::write(&tmp, payload)?;
    std::fs::rename(&tmp, path)
}

/// The default cache directory: `$ARBITER_CACHE_DIR`, else `$XDG_CACHE_HOME/arbiter/compiled`,
/// else `$HOME/.cache/arbiter/compiled`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ARBITER_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("arbiter").join("compiled"))
}
