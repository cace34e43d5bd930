//! Watches the plugins directory (the directory, not the files: editors and deploy tools
//! replace files by rename) and reloads what changed, off the async threads, each file on its
//! own thread.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

use super::registry::{Registry, is_plugin_file};

/// Quiet period before acting on a burst of events (a copy is several writes).
const DEBOUNCE: Duration = Duration::from_millis(30);

/// Kubernetes' volume machinery (`..data`, `..data_tmp`, `..<timestamp>`); editors' single-dot
/// temp files are not it.
fn is_volume_machinery(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".."))
}

/// Starts watching `dir`. The watcher lives as long as the returned value.
pub fn start(dir: &Path, registry: Arc<Registry>) -> anyhow::Result<notify::RecommendedWatcher> {
    // Bounded: when reloads fall behind, the watcher thread waits (events are never dropped).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<PathBuf>(1024);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Only content and name changes: loading a plugin opens and reads its file, and
        // access events would make every load trigger the next one.
        if let Ok(event) = event
            && matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_))
        {
            for p in event.paths {
                // The receiver lives as long as the server; a failed send means shutdown.
                let _ = tx.blocking_send(p);
            }
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    let dir = dir.to_path_buf();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut paths = BTreeSet::from([first]);
            loop {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(p)) => {
                        paths.insert(p);
                    }
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            // Kubernetes updates a mounted ConfigMap by swapping a `..data` symlink to a new
            // hidden directory: the `*.wasm` entries (symlinks through `..data`) see no event of
            // their own. Any change to that machinery therefore rescans the whole directory.
            let swapped = paths.iter().any(|p| is_volume_machinery(p) && p.parent() == Some(dir.as_path()));
            let paths: BTreeSet<PathBuf> = if swapped {
                let mut all: BTreeSet<PathBuf> = Registry::plugin_files(&dir).unwrap_or_default().into_iter().collect();
                // Files that vanished with the old directory are reloaded too, which unloads them.
                all.extend(registry.files());
                all
            } else {
                // A changed `NAME.limits` reloads `NAME.wasm` with the new limits.
                paths
                    .into_iter()
                    .map(|p| if p.extension().is_some_and(|e| e == "limits") { p.with_extension("wasm") } else { p })
                    .filter(|p| is_plugin_file(p))
                    .collect()
            };
            if paths.is_empty() {
                continue;
            }
            reload_each(&registry, paths.into_iter().collect());
        }
    });
    Ok(watcher)
}

/// Reloads each file on its own blocking thread (compiling is CPU-heavy: never on an async
/// worker), so a slow or hostile file delays no other; the registry applies only the latest
/// reload of each file.
pub fn reload_each(registry: &Arc<Registry>, paths: Vec<PathBuf>) {
    for p in paths {
        registry.spawn_reload(p);
    }
}
