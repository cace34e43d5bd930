//! The plugin host: one wasmtime `Engine`, its epoch ticker, the compile cache, and loading.
//!
//! Loading is: bounded read (regular files only) → size cap → component check → structural
//! intake check (text size, instantiation fan-out, nesting, functions, locals) → compile (or
//! cache hit) → world check →
//! link (import policy) → `InstancePre` → `info()`/`name()` smoke call under
//! [`Limits::smoke`]. Loading is synchronous and CPU-heavy (Cranelift); async callers must
//! run it on a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, types::ComponentItem};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use crate::bindings::{Policy, PolicyPre, RulePre};
use crate::cache::CompileCache;
use crate::call::CallStats;
use crate::error::{ErrorKind, PluginError, PluginId};
use crate::intake::{self, IntakeLimits};
use crate::limits::Limits;
use crate::plugin::{LoadReport, Plugin, PluginKind, Prepared};
use crate::state::CallState;
use crate::wasi::{self, ImportClass};
use crate::worker::{self, CompileWorker};

/// Engine-wide settings. Per-plugin limits are in [`Limits`].
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Wasm stack cap in bytes (engine-wide in wasmtime).
    pub max_wasm_stack: usize,
    /// Largest plugin binary accepted, in bytes.
    pub max_plugin_bytes: usize,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Epoch tick: the granularity of the wall-clock limit.
    pub epoch_tick: Duration,
    /// Plugin instances that may be alive at once (the pooling allocator's slot count);
    /// `None` uses on-demand allocation (an mmap per instance) instead of the pool.
    pub max_concurrent_instances: Option<u32>,
    /// Largest per-plugin memory limit the host accepts (pool slot size).
    pub max_plugin_memory: usize,
    /// Structural limits checked before a plugin is compiled.
    pub intake: IntakeLimits,
    /// Calls of one plugin that may run at once: its share of the instance pool, so one
    /// plugin's traffic cannot take every slot (more calls fail with `busy` for that plugin).
    pub max_calls_per_plugin: u32,
    /// Linear memories one plugin instance may have (each takes a pool memory slot).
    pub max_memories_per_instance: u32,
    /// Compile in a separate process with a deadline and a memory ceiling (`None`: compile on
    /// the calling thread, bounded only by the intake check).
    pub compile_worker: Option<CompileWorker>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            max_wasm_stack: 512 << 10,
            max_plugin_bytes: 64 << 20,
            cache_dir: crate::cache::default_cache_dir(),
            epoch_tick: Duration::from_millis(5),
            max_concurrent_instances: Some(128),
            max_plugin_memory: 512 << 20,
            intake: IntakeLimits::default(),
            max_calls_per_plugin: 32,
            max_memories_per_instance: 4,
            compile_worker: None,
        }
    }
}

/// Failure to create the host itself (not attributable to a plugin).
#[derive(Debug, thiserror::Error)]
#[error("cannot create the wasm engine: {0}")]
pub struct HostError(String);

/// Shared by every plugin loaded from one host.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) config: HostConfig,
}

/// Loads plugins. Cheap to clone; all clones share one engine and ticker.
#[derive(Clone)]
pub struct PluginHost {
    shared: Arc<Shared>,
    cache: Option<CompileCache>,
}

impl PluginHost {
    /// Creates the engine and starts its epoch ticker thread (it stops with the last clone).
    ///
    /// # Errors
    /// When wasmtime rejects the configuration (e.g. an impossible stack size).
    pub fn new(config: HostConfig) -> Result<Self, HostError> {
        let engine = engine_for(&config)?;
        let weak = engine.weak();
        let tick = config.epoch_tick;
        std::thread::Builder::new()
            .name("arbiter-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(tick);
                }
            })
            .map_err(|e| HostError(format!("cannot start the epoch ticker: {e}")))?;
        let cache = config.cache_dir.clone().map(|dir| CompileCache::new(&engine, dir));
        Ok(Self { shared: Arc::new(Shared { engine, config }), cache })
    }

    /// Engine settings in force.
    pub fn config(&self) -> &HostConfig {
        &self.shared.config
    }

    /// Reads and loads a plugin file; `origin` in errors is the file stem.
    ///
    /// # Errors
    /// See [`PluginHost::load`]; unreadable files are [`ErrorKind::Load`].
    pub fn load_file(&self, path: &Path, limits: Limits) -> Result<Plugin, PluginError> {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin").to_owned();
        let bytes = intake::read_file(path, self.shared.config.max_plugin_bytes).map_err(|m| {
            PluginError::new(
                &PluginId { name: stem.clone(), version: "?".into(), sha256: String::new() },
                ErrorKind::Load(m),
            )
        })?;
        self.load(&stem, &bytes, limits)
    }

    /// Loads a plugin from wasm component bytes (or component WAT text).
    ///
    /// # Errors
    /// [`ErrorKind::Load`] for bytes that are not a component of a known world,
    /// [`ErrorKind::Link`] for forbidden imports, and any call error of the smoke call.
    pub fn load(&self, origin: &str, bytes: &[u8], limits: Limits) -> Result<Plugin, PluginError> {
        let sha256 = hex(&Sha256::digest(bytes));
        let id = PluginId { name: origin.to_owned(), version: "?".into(), sha256 };
        let fail = |id: &PluginId, kind: ErrorKind| PluginError::new(id, kind);
        let max = self.shared.config.max_plugin_bytes;
        if bytes.len() > max {
            return Err(fail(
                &id,
                ErrorKind::Load(format!("{} bytes exceeds the {max}-byte plugin size limit", bytes.len())),
            ));
        }
        check_component_header(bytes).map_err(|m| fail(&id, ErrorKind::Load(m)))?;
        let binary = intake::check(bytes, &self.shared.config.intake).map_err(|m| fail(&id, ErrorKind::Load(m)))?;
        if limits.memory_bytes > self.shared.config.max_plugin_memory {
            return Err(fail(
                &id,
                ErrorKind::Load(format!(
                    "memory limit {} bytes exceeds the host maximum of {} bytes",
                    limits.memory_bytes, self.shared.config.max_plugin_memory
                )),
            ));
        }

        let started = Instant::now();
        let (component, cached) = self.compile(&id.sha256, &binary).map_err(|m| fail(&id, ErrorKind::Load(m)))?;
        let compile_time = started.elapsed();

        let engine = &self.shared.engine;
        let ty = component.component_type();
        let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_owned()).collect();
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
        let kind = world_of(&exports).map_err(|m| fail(&id, ErrorKind::Load(m)))?;
        let linker = self.linker_for(&component).map_err(|m| fail(&id, ErrorKind::Link(m)))?;
        let pre = linker.instantiate_pre(&component).map_err(|e| fail(&id, ErrorKind::Link(format!("{e:#}"))))?;
        let prepared = match kind {
            PluginKind::Policy => {
                Prepared::Policy(PolicyPre::new(pre).map_err(|e| fail(&id, ErrorKind::Load(format!("{e:#}"))))?)
            }
            PluginKind::Rule => {
                Prepared::Rule(RulePre::new(pre).map_err(|e| fail(&id, ErrorKind::Load(format!("{e:#}"))))?)
            }
        };
        let report = LoadReport {
            size_bytes: bytes.len(),
            compile_time,
            from_cache: cached,
            imports,
            exports,
            smoke: CallStats::default(),
        };
        Plugin::prepare(self.shared.clone(), id, prepared, limits, report)
    }

    fn compile(&self, sha256: &str, bytes: &[u8]) -> Result<(Component, bool), String> {
        let engine = &self.shared.engine;
        if let Some(c) = self.cache.as_ref().and_then(|c| c.get(engine, sha256)) {
            return Ok((c, true));
        }
        let component = match &self.shared.config.compile_worker {
            Some(worker) => worker::compile(worker, &self.shared.config, engine, bytes)?,
            None => Component::new(engine, bytes).map_err(|e| format!("{e:#}"))?,
        };
        if let Some(cache) = &self.cache {
            cache.put(sha256, &component);
        }
        Ok((component, false))
    }

    /// A linker holding exactly what this component may import, or the reason it may not load.
    fn linker_for(&self, component: &Component) -> Result<Linker<CallState>, String> {
        let engine = &self.shared.engine;
        let mut linker = Linker::<CallState>::new(engine);
        Policy::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| format!("{e:#}"))?;
        for (name, item) in component.component_type().imports(engine) {
            match wasi::classify(name) {
                ImportClass::Arbiter => {}
                ImportClass::Refused(reason) => return Err(format!("refused import {reason}")),
                ImportClass::Wasi => {
                    let ComponentItem::ComponentInstance(inst_ty) = &item.ty else {
                        return Err(format!("refused import `{name}`: expected an interface instance"));
                    };
                    let mut inst = linker.instance(name).map_err(|e| format!("{e:#}"))?;
                    wasi::define_instance(engine, &mut inst, name, inst_ty).map_err(|e| format!("{e:#}"))?;
                }
            }
        }
        Ok(linker)
    }
}

/// The wasmtime engine `config` asks for. The compile worker builds its engine here too, so
/// the artifacts it produces are loadable by the host's (same settings, same binary).
pub(crate) fn engine_for(config: &HostConfig) -> Result<Engine, HostError> {
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(config.max_wasm_stack)
        .cranelift_opt_level(OptLevel::Speed);
    if let Some(slots) = config.max_concurrent_instances {
        // Pooled slots stay mapped between calls, so a fresh instance per call costs no
        // mmap/munmap: instantiate + teardown is what dominates a small policy call.
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(8))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(4))
            .max_memory_size(config.max_plugin_memory)
            .max_memories_per_component(config.max_memories_per_instance.max(1))
            .linear_memory_keep_resident(64 << 10)
            .table_keep_resident(16 << 10);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&wasm).map_err(|e| HostError(format!("{e:#}")))
}

/// Rejects core modules and garbage with a message saying what the bytes are.
fn check_component_header(bytes: &[u8]) -> Result<(), String> {
    match bytes {
        [0, b'a', b's', b'm', 1, 0, 0, 0, ..] => {
            Err("this is a core wasm module, not a component: build for wasm32-wasip2, or wrap it with \
             `wasm-tools component new`"
                .into())
        }
        [0, b'a', b's', b'm', 0x0d, 0, 1, 0, ..] => Ok(()),
        [0, b'a', b's', b'm', ..] => Err("unsupported wasm binary version or layer".into()),
        _ if bytes.len() < 8 && bytes.starts_with(b"\0asm") => Err("truncated wasm header".into()),
        _ if std::str::from_utf8(bytes).is_ok_and(|t| t.trim_start().starts_with('(')) => Ok(()),
        _ => Err("not a wasm component (bad magic bytes)".into()),
    }
}

/// Which world a component implements, from its exports.
fn world_of(exports: &[String]) -> Result<PluginKind, String> {
    let has = |iface: &str| exports.iter().any(|e| e.starts_with(iface) && e[iface.len()..].starts_with("@0.1."));
    match (has("arbiter:policy/selector"), has("arbiter:policy/scorer")) {
        (true, false) => Ok(PluginKind::Policy),
        (false, true) => Ok(PluginKind::Rule),
        (true, true) => Err("exports both selector and scorer; a plugin implements one world".into()),
        (false, false) => Err(format!(
            "exports neither arbiter:policy/selector@0.1.x (world `policy`) nor \
             arbiter:policy/scorer@0.1.x (world `rule`); its exports are [{}]",
            exports.join(", ")
        )),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
