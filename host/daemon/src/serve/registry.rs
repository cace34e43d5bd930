//! The plugins being served: bundled ones, overridden or extended by a watched directory.
//!
//! Each name maps to an `Arc<Plugin>`. A request clones the `Arc` once and keeps it, so
//! in-flight requests finish on the version they started with while a reload swaps the map
//! entry under a short write lock. A failed load leaves the previous version serving and
//! records the error; deleting a file unloads its plugin (the bundled one, if it overrode
//! one, serves again) once in-flight calls drop their `Arc`s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use arbiter_plugins::{Limits, Plugin, PluginHost};

use super::metrics::Metrics;
use crate::bundled;

/// One served name.
#[derive(Clone)]
pub struct Entry {
    /// The version serving now (None only while a first load has failed).
    pub plugin: Option<Arc<Plugin>>,
    /// The bundled plugin of this name, restored when an overriding file is deleted.
    pub bundled: Option<Arc<Plugin>>,
    /// Where the serving version came from.
    pub source: String,
    /// When the serving version was loaded.
    pub loaded_at: SystemTime,
    /// The last load error for this name, if the last attempt failed.
    pub last_error: Option<String>,
}

/// Name → entry, plus which file provides which name.
pub struct Registry {
    host: PluginHost,
    limits: Limits,
    metrics: Arc<Metrics>,
    /// Guarded by one lock so a swap is atomic for readers.
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    /// File → plugin name it provided last (for deletions and renames).
    files: BTreeMap<PathBuf, String>,
}

impl Registry {
    /// Loads the bundled plugins, then every `.wasm` in `dir`.
    pub fn new(host: PluginHost, limits: Limits, metrics: Arc<Metrics>, dir: Option<&Path>) -> anyhow::Result<Self> {
        let mut state = State::default();
        for name in bundled::names() {
            let bytes = bundled::get(name).unwrap_or_default();
            let plugin = Arc::new(host.load(name, bytes, limits.clone())?);
            state.entries.insert(
                plugin.id().name.clone(),
                Entry {
                    plugin: Some(plugin.clone()),
                    bundled: Some(plugin),
                    source: "bundled".into(),
                    loaded_at: SystemTime::now(),
                    last_error: None,
                },
            );
        }
        let registry = Self { host, limits, metrics, state: RwLock::new(state) };
        if let Some(dir) = dir {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| anyhow::anyhow!("reading plugins directory {}: {e}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_plugin_file(p))
                .collect();
            files.sort();
            for f in files {
                registry.reload(&f);
            }
        }
        Ok(registry)
    }

    /// The serving version of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.state.read().ok()?.entries.get(name)?.plugin.clone()
    }

    /// A snapshot of every entry.
    pub fn entries(&self) -> Vec<(String, Entry)> {
        self.state.read().map(|s| s.entries.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
    }

    /// (Re)loads `path`, or unloads what it provided if it no longer exists. Blocking
    /// (compiles): call from a blocking thread.
    pub fn reload(&self, path: &Path) {
        if !path.exists() {
            self.unload(path);
            return;
        }
        match self.host.load_file(path, self.limits.clone()) {
            Ok(plugin) => {
                let plugin = Arc::new(plugin);
                let name = plugin.id().name.clone();
                tracing::info!(plugin = %plugin.id(), file = %path.display(), "plugin loaded");
                self.metrics.reloads.inc(&["ok"]);
                let Ok(mut s) = self.state.write() else { return };
                if let Some(previous) = s.files.insert(path.to_path_buf(), name.clone())
                    && previous != name
                {
                    remove_name(&mut s, &previous);
                }
                let bundled = s.entries.get(&name).and_then(|e| e.bundled.clone());
                s.entries.insert(
                    name,
                    Entry {
                        plugin: Some(plugin),
                        bundled,
                        source: path.display().to_string(),
                        loaded_at: SystemTime::now(),
                        last_error: None,
                    },
                );
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "plugin load failed; previous version keeps serving");
                self.metrics.reloads.inc(&["failed"]);
                let Ok(mut s) = self.state.write() else { return };
                let name = s
                    .files
                    .get(path)
                    .cloned()
                    .unwrap_or_else(|| path.file_stem().and_then(|x| x.to_str()).unwrap_or("plugin").to_owned());
                let entry = s.entries.entry(name).or_insert_with(|| Entry {
                    plugin: None,
                    bundled: None,
                    source: path.display().to_string(),
                    loaded_at: SystemTime::now(),
                    last_error: None,
                });
                entry.last_error = Some(e.to_string());
            }
        }
    }

    fn unload(&self, path: &Path) {
        let Ok(mut s) = self.state.write() else { return };
        if let Some(name) = s.files.remove(path) {
            tracing::info!(plugin = %name, file = %path.display(), "plugin file removed; unloading");
            remove_name(&mut s, &name);
        }
    }
}

/// Drops a file-provided version: the bundled one serves again, or the name goes away.
fn remove_name(s: &mut State, name: &str) {
    let restore = s.entries.get(name).and_then(|e| e.bundled.clone());
    match restore {
        Some(b) => {
            s.entries.insert(
                name.to_owned(),
                Entry {
                    plugin: Some(b.clone()),
                    bundled: Some(b),
                    source: "bundled".into(),
                    loaded_at: SystemTime::now(),
                    last_error: None,
                },
            );
        }
        None => {
            s.entries.remove(name);
        }
    }
}

/// Plugin files are `*.wasm` (hidden and temp files are ignored: editors write those).
pub fn is_plugin_file(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
    !hidden && path.extension().is_some_and(|e| e == "wasm")
}
