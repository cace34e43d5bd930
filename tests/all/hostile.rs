//! Hostile plugins: each must end in its typed error within its limit, leave the process
//! healthy, and the very next call to the same plugin must succeed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arbiter_plugins::{ErrorKind, Limits, NoModel, Plugin, PluginHost};

use crate::support::{self, component, hostile_and_benign, policy_wat};

fn load(host: &PluginHost, world: &str, imports: &str, funcs: &str, body: &str, limits: Limits) -> Plugin {
    let bytes = component(world, &policy_wat(imports, funcs, body));
    host.load("hostile", &bytes, limits).unwrap_or_else(|e| panic!("hostile plugin loads: {e}"))
}

/// Runs the hostile call, returns its error kind, and checks the next call succeeds.
fn contained(plugin: &Plugin) -> ErrorKind {
    let (hostile, benign) = hostile_and_benign();
    let err = plugin.select(&hostile, Arc::new(NoModel)).expect_err("hostile call must fail");
    assert_eq!(err.plugin.name, "hostile", "error names the plugin: {err}");
    assert_eq!(err.plugin.sha256.len(), 64, "error carries the sha256: {err}");
    let (ok, _) = plugin.select(&benign, Arc::new(NoModel)).expect("the next call succeeds");
    assert_eq!(ok.chosen, Some(0));
    err.kind
}

const SPIN: &str = "(loop $l (br $l))";

#[test]
fn infinite_loop_is_stopped_by_fuel() {
    let (host, _d) = support::host();
    let limits = Limits { fuel: 5_000_000, ..Limits::default() };
    let plugin = load(&host, "plain", "", "", SPIN, limits);
    assert_eq!(contained(&plugin), ErrorKind::OutOfFuel { limit: 5_000_000 });
}

#[test]
fn infinite_loop_is_stopped_by_the_epoch_deadline() {
    let (host, _d) = support::host();
    let limits = Limits { fuel: u64::MAX, timeout: Duration::from_millis(200), ..Limits::default() };
    let plugin = load(&host, "plain", "", "", SPIN, limits);
    let started = Instant::now();
    let kind = contained(&plugin);
    assert_eq!(kind, ErrorKind::Timeout { limit_ms: 200 });
    // With effectively unlimited fuel only the deadline can have stopped it, and not early.
    assert!(started.elapsed() >= Duration::from_millis(200), "stopped before its deadline");
}

#[test]
fn memory_growth_bomb_hits_the_cap() {
    let (host, _d) = support::host();
    let limits = Limits { memory_bytes: 8 << 20, ..Limits::default() };
    let body = "(block $done (loop $l (br_if $done (i32.eq (memory.grow (i32.const 16)) (i32.const -1))) (br $l)))";
    let plugin = load(&host, "plain", "", "", body, limits);
    assert_eq!(contained(&plugin), ErrorKind::Memory { limit_bytes: 8 << 20 });
}

#[test]
fn deep_recursion_overflows_the_stack_cap() {
    let (host, _d) = support::host();
    let funcs = "(func $rec (param i32) (result i32) (call $rec (i32.add (local.get 0) (i32.const 1))))";
    let plugin = load(&host, "plain", "", funcs, "(drop (call $rec (i32.const 0)))", Limits::default());
    let limit = host.config().max_wasm_stack;
    assert_eq!(contained(&plugin), ErrorKind::StackOverflow { limit_bytes: limit });
}

#[test]
fn unreachable_traps() {
    let (host, _d) = support::host();
    let plugin = load(&host, "plain", "", "", "(unreachable)", Limits::default());
    match contained(&plugin) {
        ErrorKind::Trap(m) => assert!(m.contains("unreachable"), "{m}"),
        other => panic!("expected a trap, got {other:?}"),
    }
}

fn invalid_output(patch: &str) -> String {
    let (host, _d) = support::host();
    let body = format!("(drop (call $ok)) {patch} (return (i32.const 512))");
    let plugin = load(&host, "plain", "", "", &body, Limits::default());
    match contained(&plugin) {
        ErrorKind::InvalidOutput(m) => m,
        other => panic!("expected invalid output, got {other:?}"),
    }
}

#[test]
fn out_of_range_ranking_index_is_rejected() {
    let m = invalid_output("(i32.store (i32.const 600) (i32.const 7))");
    assert!(m.contains("index 7"), "{m}");
}

#[test]
fn duplicate_ranking_index_is_rejected() {
    let m = invalid_output("(i32.store (i32.const 604) (i32.const 0)) (i32.store (i32.const 528) (i32.const 2))");
    assert!(m.contains("twice"), "{m}");
}

#[test]
fn out_of_range_choice_is_rejected() {
    let m = invalid_output("(i32.store (i32.const 520) (i32.const 2))");
    assert!(m.contains("chosen index 2"), "{m}");
}

#[test]
fn oversized_reason_is_rejected() {
    let m = invalid_output("(i32.store (i32.const 532) (i32.const 8192)) (i32.store (i32.const 536) (i32.const 5000))");
    assert!(m.contains("reason is 5000 bytes"), "{m}");
}

#[test]
fn log_flood_hits_the_log_cap() {
    let (host, _d) = support::host();
    let imports = support::LOG_IMPORT;
    let body = "(loop $l (call $log (i32.const 1) (i32.const 8192) (i32.const 1000)) (br $l))";
    let plugin = load(&host, "logger", imports, "", body, Limits::default());
    let cap = Limits::default().max_log_bytes;
    assert_eq!(contained(&plugin), ErrorKind::LogLimit { limit_bytes: cap });
}

#[test]
fn reward_import_flood_hits_the_quota() {
    let (host, _d) = support::host();
    // score(conversation = the request's, responses = ["ok"]) in a loop, ignoring the answer.
    let imports = support::REWARD_SCORE_IMPORT;
    let body = &support::score_ok_body(true);
    let limits = Limits { reward_responses: 50, ..Limits::default() };
    let plugin = load(&host, "scorer", imports, "", body, limits);
    let model = support::fake();
    let (hostile, benign) = hostile_and_benign();
    let err = plugin.select(&hostile, model.clone()).expect_err("flood must fail");
    assert!(matches!(&err.kind, ErrorKind::RewardQuota(m) if m.contains("limit 50")), "{err}");
    // The host stops the guest before the backend sees a single response over the quota.
    assert_eq!(model.responses.load(std::sync::atomic::Ordering::SeqCst), 50);
    plugin.select(&benign, model).expect("next call succeeds");
}

const SNOOP_IMPORTS: &str = r#"
  (import "wasi:cli/environment@0.2.0" "get-environment" (func $env (param i32)))
  (import "wasi:filesystem/preopens@0.2.0" "get-directories" (func $dirs (param i32)))
  (import "wasi:filesystem/types@0.2.0" "[method]descriptor.read" (func $read (param i32 i64 i64 i32)))
  (import "wasi:clocks/wall-clock@0.2.0" "now" (func $now (param i32)))"#;

#[test]
fn wasi_environment_and_preopens_are_empty() {
    let (host, _d) = support::host();
    assert!(std::env::vars().next().is_some(), "the test process itself has environment variables");
    // Report the number of environment variables plus preopened directories as the ranking
    // length: any data at all shows up as a non-empty ranking (or an invalid one).
    let body = "(call $env (i32.const 900)) (call $dirs (i32.const 908))
        (drop (call $ok))
        (i32.store (i32.const 528) (i32.add (i32.load (i32.const 904)) (i32.load (i32.const 912))))
        (return (i32.const 512))";
    let plugin = load(&host, "snoop", SNOOP_IMPORTS, "", body, Limits::default());
    let (hostile, _) = hostile_and_benign();
    let (sel, _) = plugin.select(&hostile, Arc::new(NoModel)).expect("empty answers, no trap");
    assert_eq!(sel.ranking, Vec::<u32>::new(), "the guest saw environment variables or directories");
}

#[test]
fn wasi_file_read_with_a_forged_descriptor_traps() {
    let (host, _d) = support::host();
    let body = "(call $read (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 900))";
    let plugin = load(&host, "snoop", SNOOP_IMPORTS, "", body, Limits::default());
    match contained(&plugin) {
        ErrorKind::Trap(_) | ErrorKind::Denied(_) => {}
        other => panic!("expected a trap or denial, got {other:?}"),
    }
}

#[test]
fn wasi_wall_clock_is_fixed_never_the_hosts() {
    let (host, _d) = support::host();
    // Traps unless `now` answers 2024-01-01T00:00:00Z (seconds at 904, nanoseconds at 912).
    let body = "(call $now (i32.const 904))
        (if (i64.ne (i64.load (i32.const 904)) (i64.const 1704067200)) (then unreachable))
        (if (i32.ne (i32.load (i32.const 912)) (i32.const 0)) (then unreachable))";
    let plugin = load(&host, "snoop", SNOOP_IMPORTS, "", body, Limits::default());
    let (hostile, _) = hostile_and_benign();
    plugin.select(&hostile, Arc::new(NoModel)).expect("the clock reads the fixed time");
}

/// Load failures must leave the host able to load and run a good plugin.
fn host_still_works(host: &PluginHost) {
    let argmax = support::bundled(host, "argmax");
    let (_, benign) = hostile_and_benign();
    assert_eq!(argmax.select(&benign, Arc::new(NoModel)).expect("argmax").0.chosen, Some(1));
}

fn load_error(host: &PluginHost, bytes: &[u8]) -> ErrorKind {
    host.load("bad", bytes, Limits::default()).expect_err("must be refused").kind
}

#[test]
fn unknown_interface_import_is_refused_at_load() {
    let (host, _d) = support::host();
    let imports = r#"(import "test:hostile/http" "get" (func (param i32 i32 i32)))"#;
    let bytes = component("network", &policy_wat(imports, "", ""));
    match load_error(&host, &bytes) {
        ErrorKind::Link(m) => assert!(m.contains("test:hostile/http"), "{m}"),
        other => panic!("expected a link error, got {other:?}"),
    }
    host_still_works(&host);
}

#[test]
fn core_module_is_refused() {
    let (host, _d) = support::host();
    let core = wat::parse_str(policy_wat("", "", "")).expect("core module");
    match load_error(&host, &core) {
        ErrorKind::Load(m) => assert!(m.contains("core wasm module, not a component"), "{m}"),
        other => panic!("expected a load error, got {other:?}"),
    }
    host_still_works(&host);
}

#[test]
fn truncated_bytes_are_refused() {
    let (host, _d) = support::host();
    let bytes = arbiter::bundled::get("argmax").expect("bundled");
    for cut in [3, 6, bytes.len() / 2, bytes.len() - 1] {
        assert!(matches!(load_error(&host, &bytes[..cut]), ErrorKind::Load(_)), "cut at {cut}");
    }
    host_still_works(&host);
}

#[test]
fn component_without_selector_export_is_refused() {
    let (host, _d) = support::host();
    let wat = r#"(module (memory (export "memory") 1)
        (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 0)))"#;
    match load_error(&host, &component("no-exports", wat)) {
        ErrorKind::Load(m) => assert!(m.contains("exports neither"), "{m}"),
        other => panic!("expected a load error, got {other:?}"),
    }
    host_still_works(&host);
}

#[test]
fn time_inside_the_reward_import_is_not_charged() {
    let (host, _d) = support::host();
    let limits = Limits { timeout: Duration::from_millis(150), ..Limits::default() };
    let early = host.load("early-exit", arbiter::bundled::get("early-exit").expect("bundled"), limits).expect("loads");
    // Three model calls of 100 ms each: 300 ms of host time against a 150 ms guest limit.
    let model = Arc::new(support::FakeModel { delay: Duration::from_millis(100), ..Default::default() });
    let mut req = support::with_params(support::scored(&[]), &[("min", "5"), ("chunk", "1")]);
    req.candidates = (0..3)
        .map(|i| arbiter_plugins::Candidate {
            index: i,
            text: format!("s={i}"),
            tokens: 1,
            score: None,
            features: vec![],
        })
        .collect();
    let (sel, stats) = early.select(&req, model.clone()).expect("slow model is not the guest's fault");
    assert_eq!(sel.chosen, None);
    assert_eq!(model.calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert!(stats.wall >= Duration::from_millis(300) && stats.guest_time < Duration::from_millis(150));
}

/// A backend that, while a policy is running, calls another plugin on the same host.
struct Reentrant(Plugin);

impl arbiter_plugins::RewardBackend for Reentrant {
    fn score(&self, _c: &[arbiter_plugins::Message], _r: &[String]) -> Result<Vec<f32>, arbiter_plugins::RewardError> {
        let (_, benign) = hostile_and_benign();
        let message = match self.0.select(&benign, Arc::new(NoModel)) {
            Err(e) => format!("{}: {e}", e.kind.label()),
            Ok(_) => "the nested call unexpectedly found a free slot".into(),
        };
        Err(arbiter_plugins::RewardError::new(arbiter_plugins::RewardErrorKind::Failed, message))
    }

    fn count_tokens(&self, _text: &str) -> u32 {
        0
    }

    fn describe(&self) -> String {
        "reentrant".into()
    }
}

#[test]
fn a_full_instance_pool_is_busy_not_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = arbiter_plugins::HostConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        max_concurrent_instances: Some(1),
        ..Default::default()
    };
    let host = PluginHost::new(config).expect("host");
    let early = host.load("early-exit", arbiter::bundled::get("early-exit").expect("bundled"), Limits::default());
    let early = early.expect("loads");
    let argmax = support::bundled(&host, "argmax");
    let mut req = support::with_params(support::scored(&[]), &[("min", "0")]);
    req.candidates =
        vec![arbiter_plugins::Candidate { index: 0, text: "x".into(), tokens: 1, score: None, features: vec![] }];
    let err = early.select(&req, Arc::new(Reentrant(argmax))).expect_err("nested call finds no slot");
    assert!(matches!(&err.kind, ErrorKind::Reward(e) if e.message.starts_with("busy:")), "{err}");
    // Once the outer call is over its slot is free again.
    let argmax = support::bundled(&host, "argmax");
    argmax.select(&hostile_and_benign().1, Arc::new(NoModel)).expect("slot reused");
}
