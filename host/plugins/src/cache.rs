//! On-disk cache of compiled components.
//!
//! Key: the wasm's sha256 plus the engine's compatibility hash (wasmtime version, target,
//! compiler settings), so a cached artifact is only ever loaded by an engine that could have
//! produced it. File: `sha256(payload) ‖ payload`, written to a temp file and renamed, and
//! checked before deserializing, so a torn or corrupted entry is recompiled, never loaded.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
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

    fn path_for(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_tag))
    }

    /// Loads a cached compilation of the wasm with this sha256, if a valid one exists.
    pub(crate) fn get(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let bytes = std::fs::read(self.path_for(sha256)).ok()?;
        let (digest, payload) = bytes.split_at_checked(32)?;
        if Sha256::digest(payload).as_slice() != digest {
            return None;
        }
        // SAFETY: `deserialize` trusts its input to be wasmtime's own output for a compatible
        // engine. The file name carries this engine's compatibility hash, the payload was
        // written by `put` below from `Component::serialize`, and its digest was just
        // verified, so the bytes are exactly what this process (or an identical one) wrote.
        #[allow(unsafe_code, reason = "loading our own verified compilation artifact")]
        let component = unsafe { Component::deserialize(engine, payload) };
        component.ok()
    }

    /// Stores a compilation. Failures are ignored: the cache is an optimisation only.
    pub(crate) fn put(&self, sha256: &str, component: &Component) {
        let Ok(payload) = component.serialize() else { return };
        let _ = write_atomic(&self.path_for(sha256), &payload);
    }
}

fn write_atomic(path: &Path, payload: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    let mut data = Vec::with_capacity(32 + payload.len());
    data.extend_from_slice(&Sha256::digest(payload));
    data.extend_from_slice(payload);
    std::fs::write(&tmp, &data)?;
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
