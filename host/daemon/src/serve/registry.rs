//! The plugins being served: bundled ones, overridden or extended by a watched directory.
//!
//! Each name maps to an `Arc<Plugin>`. A request clones the `Arc` once and keeps it, so
//! in-flight requests finish on the version they started with while a reload swaps the map
//! entry under a short write lock. A failed load leaves the previous version serving and
//! records the error; deleting a file unloads what it provided (another file providing the
//! same name serves again, else the bundled plugin, else the name goes away) and forgets its
//! errors.
//!
//! Reloads are independent: each file loads on its own blocking thread, and a file's result is
//! applied only if no newer reload of the same file started meanwhile, so one slow file never
//! delays another and an old version never overwrites a newer one. A load in progress shows in
//! `/v1/policies` (state `compiling`, or `compiling` beside the version still serving) and logs
//! every 10 s until it ends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use arbiter_plugins::{Limits, Plugin, PluginHost};

use super::metrics::Metrics;
use crate::bundled;

/// How often a long compile logs that it is still running.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// One served name, as `/v1/policies` shows it.
#[derive(Clone)]
pub struct Entry {
    /// The version serving now (None only while a first load has failed).
    pub plugin: Option<Arc<Plugin>>,
    /// Where the serving version came from.
    pub source: String,
    /// When the serving version was loaded.
    pub loaded_at: SystemTime,
    /// The last load error for this name, if the last attempt failed.
    pub last_error: Option<String>,
    /// A load of a file that provides (or, new, may provide) this name, in progress: the file
    /// and when it started. The serving version, if any, keeps serving meanwhile.
    pub compiling: Option<(PathBuf, SystemTime)>,
}

impl Entry {
    /// `ready` (a version serves), `compiling` (none serves yet, a first load is running) or
    /// `failed` (none serves, the last load failed).
    pub fn state(&self) -> &'static str {
        match (&self.plugin, &self.compiling) {
            (Some(_), _) => "ready",
            (None, Some(_)) => "compiling",
            (None, None) => "failed",
        }
    }
}

/// A version provided by a file.
#[derive(Clone)]
struct Provided {
    path: PathBuf,
    plugin: Arc<Plugin>,
    loaded_at: SystemTime,
}

/// Everything known about one name.
#[derive(Clone, Default)]
struct Name {
    bundled: Option<Arc<Plugin>>,
    /// Versions from files, oldest first; the last one serves.
    provided: Vec<Provided>,
    /// `(file, error)` of the last failed load for this name.
    last_error: Option<(PathBuf, String)>,
    started_at: Option<SystemTime>,
}

impl Name {
    fn entry(&self) -> Entry {
        let error = self.last_error.as_ref().map(|(_, e)| e.clone());
        match (self.provided.last(), &self.bundled) {
            (Some(p), _) => Entry {
                plugin: Some(p.plugin.clone()),
                source: p.path.display().to_string(),
                loaded_at: p.loaded_at,
                last_error: error,
                compiling: None,
            },
            (None, Some(b)) => Entry {
                plugin: Some(b.clone()),
                source: "bundled".into(),
                loaded_at: self.started_at.unwrap_or(SystemTime::UNIX_EPOCH),
                last_error: error,
                compiling: None,
            },
            (None, None) => Entry {
                plugin: None,
                source: self.last_error.as_ref().map(|(p, _)| p.display().to_string()).unwrap_or_default(),
                loaded_at: SystemTime::now(),
                last_error: error,
                compiling: None,
            },
        }
    }

    fn is_empty(&self) -> bool {
        self.bundled.is_none() && self.provided.is_empty() && self.last_error.is_none()
    }
}

#[derive(Default)]
struct State {
    names: BTreeMap<String, Name>,
    /// File → the name it provides (or, after a failed first load, its stem).
    files: BTreeMap<PathBuf, String>,
    /// File → number of its latest reload; a finished reload applies only if still the latest.
    generations: BTreeMap<PathBuf, u64>,
    /// File → when its latest reload started, while it runs.
    compiling: BTreeMap<PathBuf, SystemTime>,
}

impl State {
    /// Every name's entry, with the loads in progress: a file already known attaches to the name
    /// it provides; a new one to the name of its stem (a new entry if no such name exists yet).
    fn entries(&self) -> BTreeMap<String, Entry> {
        let mut out: BTreeMap<String, Entry> = self.names.iter().map(|(k, v)| (k.clone(), v.entry())).collect();
        for (path, since) in &self.compiling {
            let stem = || path.file_stem().and_then(|x| x.to_str()).unwrap_or("plugin").to_owned();
            let name = self.files.get(path).cloned().unwrap_or_else(stem);
            let entry = out.entry(name).or_insert_with(|| Entry {
                plugin: None,
                source: path.display().to_string(),
                loaded_at: *since,
                last_error: None,
                compiling: None,
            });
            entry.compiling = Some((path.clone(), *since));
        }
        out
    }
}

/// Name → entry, plus which file provides which name.
pub struct Registry {
    host: PluginHost,
    limits: Limits,
    metrics: Arc<Metrics>,
    /// Guarded by one lock so a swap is atomic for readers; never held while compiling.
    state: RwLock<State>,
    /// Reloads started and not yet applied (for `/health`).
    loading: AtomicUsize,
}

impl Registry {
    /// A registry serving the bundled plugins. Files are added by [`Registry::reload`].
    ///
    /// # Errors
    /// A bundled plugin that fails to load (a broken build).
    pub fn new(host: PluginHost, limits: Limits, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let mut state = State::default();
        let now = SystemTime::now();
        for name in bundled::names() {
            let bytes = bundled::get(name).unwrap_or_default();
            let plugin = Arc::new(host.load(name, bytes, limits.clone())?);
            let entry = state.names.entry(plugin.id().name.clone()).or_default();
            entry.bundled = Some(plugin);
            entry.started_at = Some(now);
        }
        Ok(Self { host, limits, metrics, state: RwLock::new(state), loading: AtomicUsize::new(0) })
    }

    /// The plugin files in `dir`, sorted.
    ///
    /// # Errors
    /// The directory cannot be read.
    pub fn plugin_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("reading plugins directory {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_plugin_file(p))
            .collect();
        files.sort();
        Ok(files)
    }

    /// The serving version of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.entry(name)?.plugin
    }

    fn entry(&self, name: &str) -> Option<Entry> {
        Some(self.state.read().ok()?.names.get(name)?.entry())
    }

    /// A snapshot of every entry, loads in progress included.
    pub fn entries(&self) -> Vec<(String, Entry)> {
        self.state.read().map(|s| s.entries().into_iter().collect()).unwrap_or_default()
    }

    /// The files that provide a name now (or failed to).
    pub fn files(&self) -> Vec<PathBuf> {
        self.state.read().map(|s| s.files.keys().cloned().collect()).unwrap_or_default()
    }

    /// Reloads started and not yet applied.
    pub fn loading(&self) -> usize {
        self.loading.load(Ordering::Relaxed)
    }

    /// Reloads `path` on its own blocking thread (see [`Registry::reload`]); counted in
    /// [`Registry::loading`] from now until it is applied.
    pub fn spawn_reload(self: &Arc<Self>, path: PathBuf) {
        self.loading.fetch_add(1, Ordering::Relaxed);
        let registry = self.clone();
        tokio::task::spawn_blocking(move || {
            registry.reload(&path);
            registry.loading.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// (Re)loads `path`, or unloads what it provided if it no longer exists. Blocking
    /// (compiles): call from a blocking thread, one per file.
    pub fn reload(&self, path: &Path) {
        let Some(generation) = self.begin(path) else { return };
        let before = stamp(path);
        let result = if path.symlink_metadata().is_ok() {
            Some(self.limits_for(path).and_then(|limits| self.load_logging_progress(path, limits)))
        } else {
            None
        };
        if matches!(result, Some(Err(_))) && stamp(path) != before {
            // Still being written (a plain `cp` of a large file): what was read is a prefix of
            // it. The write's next event reloads it; recording this failure would only flash
            // a bogus error.
            tracing::debug!(file = %path.display(), "plugin file changed while loading; waiting for the next write");
            return;
        }
        let Ok(mut s) = self.state.write() else { return };
        if s.generations.get(path) != Some(&generation) {
            return; // a newer reload of this file started: its result wins
        }
        s.compiling.remove(path);
        match result {
            None => unload(&mut s, path),
            Some(Ok(plugin)) => {
                tracing::info!(plugin = %plugin.id(), file = %path.display(), "plugin loaded");
                self.metrics.reloads.inc(&["ok"]);
                let name = plugin.id().name.clone();
                unload(&mut s, path);
                s.files.insert(path.to_path_buf(), name.clone());
                let entry = s.names.entry(name).or_default();
                entry.provided.push(Provided {
                    path: path.to_path_buf(),
                    plugin: Arc::new(plugin),
                    loaded_at: SystemTime::now(),
                });
                if entry.last_error.as_ref().is_some_and(|(p, _)| p == path) {
                    entry.last_error = None;
                }
            }
            Some(Err(e)) => {
                tracing::warn!(file = %path.display(), error = %e, "plugin load failed; previous version keeps serving");
                self.metrics.reloads.inc(&["failed"]);
                let stem = || path.file_stem().and_then(|x| x.to_str()).unwrap_or("plugin").to_owned();
                let name = s.files.get(path).cloned().unwrap_or_else(stem);
                s.files.insert(path.to_path_buf(), name.clone());
                s.names.entry(name).or_default().last_error = Some((path.to_path_buf(), e));
            }
        }
    }

    /// The limits of the plugin in `path`: the daemon's, with the operator's overrides from a
    /// `NAME.limits` file beside it (one `key=value` per line, as `--limit`; `#` comments).
    fn limits_for(&self, path: &Path) -> Result<Limits, String> {
        let mut limits = self.limits.clone();
        let sidecar = limits_file(path);
        let text = match std::fs::read_to_string(&sidecar) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(limits),
            Err(e) => return Err(format!("{}: {e}", sidecar.display())),
        };
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if !line.is_empty() {
                limits.set(line).map_err(|e| format!("{} line {}: {e}", sidecar.display(), n + 1))?;
            }
        }
        Ok(limits)
    }

    /// Loads (compiles, unless cached) `path`, logging every [`PROGRESS_EVERY`] while it runs:
    /// a language runtime's component can take a minute to compile.
    fn load_logging_progress(&self, path: &Path, limits: Limits) -> Result<Plugin, String> {
        let (done, finished) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let started = std::time::Instant::now();
                while let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(PROGRESS_EVERY) {
                    let seconds = started.elapsed().as_secs();
                    tracing::info!(file = %path.display(), seconds, "plugin still compiling; the previous version (if any) serves");
                }
            });
            let result = self.host.load_file(path, limits).map_err(|e| e.to_string());
            drop(done);
            result
        })
    }

    /// Starts a reload of `path`: its generation number.
    fn begin(&self, path: &Path) -> Option<u64> {
        let mut s = self.state.write().ok()?;
        s.compiling.insert(path.to_path_buf(), SystemTime::now());
        let generation = s.generations.entry(path.to_path_buf()).or_insert(0);
        *generation += 1;
        Some(*generation)
    }
}

/// Drops what `path` provided and any error it recorded; the name falls back to another file's
/// version, the bundled one, or goes away.
fn unload(s: &mut State, path: &Path) {
    let Some(name) = s.files.remove(path) else { return };
    if let Some(entry) = s.names.get_mut(&name) {
        let before = entry.provided.len();
        entry.provided.retain(|p| p.path != path);
        if entry.provided.len() != before {
            tracing::info!(plugin = %name, file = %path.display(), "plugin file removed or replaced; unloading its version");
        }
        if entry.last_error.as_ref().is_some_and(|(p, _)| p == path) {
            entry.last_error = None;
        }
        if entry.is_empty() {
            s.names.remove(&name);
        }
    }
}

/// A file's size and modification time (None when it cannot be read).
fn stamp(path: &Path) -> Option<(u64, Option<SystemTime>)> {
    std::fs::metadata(path).ok().map(|m| (m.len(), m.modified().ok()))
}

/// `NAME.limits` beside `NAME.wasm`: the operator's per-plugin limits.
pub fn limits_file(wasm: &Path) -> PathBuf {
    wasm.with_extension("limits")
}

/// Plugin files are `*.wasm` (hidden and temp files are ignored: editors write those).
pub fn is_plugin_file(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
    !hidden && path.extension().is_some_and(|e| e == "wasm")
}
