//! The deny-all WASI layer against a real Rust `wasm32-wasip2` guest (the `sandbox-probe`
//! fixture): std's clock, environment, files, exit, panic and stdio paths.

use std::sync::Arc;

use arbiter_plugins::{ErrorKind, Limits, LogLevel, NoModel, Plugin, PluginHost, Selection};

use crate::support::{self, scored, with_params};

fn probe(host: &PluginHost) -> Plugin {
    // Built by the daemon's build script beside the bundled plugins, but not embedded.
    let path = concat!(env!("ARBITER_TEST_PLUGINS"), "/sandbox-probe.wasm");
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    host.load("sandbox-probe", &bytes, Limits::default()).expect("probe loads")
}

fn run(plugin: &Plugin, what: &str) -> Result<(Selection, arbiter_plugins::CallStats), ErrorKind> {
    let req = with_params(scored(&[1.0, 2.0]), &[("do", what)]);
    plugin.select(&req, Arc::new(NoModel)).map_err(|e| e.kind)
}

#[test]
fn std_hashmap_works_with_the_fixed_seed() {
    let (host, _d) = support::host();
    let (sel, _) = run(&probe(&host), "hashmap").expect("hashmap works");
    assert_eq!(sel.reason, "hashmap holds 2");
}

#[test]
fn std_clocks_are_virtual_and_deterministic() {
    let (host, _d) = support::host();
    let plugin = probe(&host);
    // The wall clock is fixed at 2024-01-01T00:00:00Z; the monotonic clock is virtual.
    let (clock, _) = run(&plugin, "clock").expect("the wall clock reads");
    assert!(clock.reason.contains("1704067200"), "{}", clock.reason);
    assert_eq!(run(&plugin, "clock").expect("again").0.reason, clock.reason, "the same answer every call");
    let (instant, _) = run(&plugin, "instant").expect("the monotonic clock reads");
    assert_eq!(run(&plugin, "instant").expect("again").0.reason, instant.reason);
    run(&plugin, "hashmap").expect("the next call succeeds");
}

#[test]
fn std_sees_no_environment_no_arguments_and_no_files() {
    let (host, _d) = support::host();
    let plugin = probe(&host);
    let (sel, _) = run(&plugin, "env").expect("env");
    assert_eq!(sel.reason, "env=[] args=[]");
    let (sel, _) = run(&plugin, "file").expect("file read fails inside the guest");
    assert!(sel.reason.starts_with("file=Err(") && !sel.reason.contains("root:"), "{}", sel.reason);
}

#[test]
fn std_panic_is_a_trap_quoting_the_message() {
    let (host, _d) = support::host();
    let plugin = probe(&host);
    match run(&plugin, "panic") {
        Err(ErrorKind::Trap(m)) => assert!(m.contains("deliberate panic in sandbox-probe"), "{m}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    match run(&plugin, "exit") {
        Err(ErrorKind::Trap(m)) => assert!(m.contains("wasi:cli/exit"), "{m}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    run(&plugin, "hashmap").expect("the next call succeeds");
}

#[test]
fn std_stdout_and_stderr_go_to_the_plugin_log() {
    let (host, _d) = support::host();
    let (_, stats) = run(&probe(&host), "print").expect("print");
    let lines: Vec<(LogLevel, &str)> = stats.log.iter().map(|l| (l.level, l.message.as_str())).collect();
    assert_eq!(lines, vec![(LogLevel::Info, "hello from stdout"), (LogLevel::Warn, "hello from stderr")]);
}
