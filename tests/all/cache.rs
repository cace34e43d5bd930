//! The compiled-component cache: hits on the second load, and a corrupted entry is
//! recompiled rather than loaded.

use arbiter_plugins::{HostConfig, Limits, PluginHost};

fn load_twice(dir: &std::path::Path) -> (bool, bool) {
    let bytes = arbiter::bundled::get("threshold").expect("bundled");
    let host =
        PluginHost::new(HostConfig { cache_dir: Some(dir.to_path_buf()), ..HostConfig::default() }).expect("host");
    let first = host.load("threshold", bytes, Limits::default()).expect("load").load_report().from_cache;
    let second = host.load("threshold", bytes, Limits::default()).expect("load").load_report().from_cache;
    (first, second)
}

#[test]
fn second_load_comes_from_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(load_twice(dir.path()), (false, true));
    // A new host (new process, same engine settings) hits the same entry.
    assert_eq!(load_twice(dir.path()), (true, true));
}

#[test]
fn corrupted_cache_entries_are_recompiled() {
    let dir = tempfile::tempdir().expect("tempdir");
    load_twice(dir.path());
    let entries: Vec<_> = std::fs::read_dir(dir.path()).expect("cache dir").map(|e| e.expect("entry").path()).collect();
    assert_eq!(entries.len(), 2, "an artifact and its checksum: {entries:?}");
    let artifact = entries.iter().find(|p| p.extension().is_some_and(|e| e == "cwasm")).expect("artifact");
    let checksum = artifact.with_extension("crc");
    let mut bytes = std::fs::read(artifact).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(artifact, &bytes).expect("corrupt");
    assert_eq!(load_twice(dir.path()), (false, true), "corrupt entry ignored, then rewritten");
    std::fs::write(artifact, &bytes[..40]).expect("truncate");
    assert_eq!(load_twice(dir.path()), (false, true), "truncated entry ignored");
    std::fs::remove_file(&checksum).expect("remove checksum");
    assert_eq!(load_twice(dir.path()), (false, true), "an artifact without its checksum is not trusted");
}
