//! Budgets on what an untrusted plugin file or plugin can make the host spend (issue:
//! hardening): bounded reads of regular files only, structural limits before compiling,
//! bounded error text, host calls and the whole-call deadline. Files are generated at test
//! time (sparse, never GB-sized on disk), limits lowered where it keeps the test fast.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arbiter_plugins::{ErrorKind, HostConfig, Limits, NoModel, PluginHost};

use crate::support::{self, component, hostile_and_benign, policy_wat};

fn load_error(host: &PluginHost, path: &std::path::Path) -> String {
    match host.load_file(path, Limits::default()) {
        Err(e) => {
            assert!(matches!(e.kind, ErrorKind::Load(_)), "{e}");
            e.to_string()
        }
        Ok(_) => panic!("{} loaded", path.display()),
    }
}

#[test]
fn only_regular_files_within_the_size_cap_are_read() {
    let dir = tempfile::tempdir().expect("dir");
    let config = HostConfig { cache_dir: None, max_plugin_bytes: 1 << 20, ..HostConfig::default() };
    let host = PluginHost::new(config).expect("host");
    // A FIFO would block an open() for reading until a writer comes: refused without opening.
    let fifo = dir.path().join("x.wasm");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    let started = Instant::now();
    let e = load_error(&host, &fifo);
    assert!(e.contains("not a regular file"), "{e}");
    // A symlink to a device is resolved and refused the same way.
    let zero = dir.path().join("zero.wasm");
    std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
    let e = load_error(&host, &zero);
    assert!(e.contains("not a regular file"), "{e}");
    // A (sparse) file over the cap is refused from its size, before any byte is read.
    let big = dir.path().join("big.wasm");
    std::fs::File::create(&big).expect("create").set_len(3 << 30).expect("sparse 3 GiB");
    let e = load_error(&host, &big);
    assert!(e.contains("3221225472 bytes") && e.contains("1048576-byte"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "refusals took {:?}", started.elapsed());
    // A good file next to them still loads.
    let good = dir.path().join("argmax.wasm");
    std::fs::write(&good, arbiter::bundled::get("argmax").expect("bundled")).expect("write");
    host.load_file(&good, Limits::default()).expect("a regular file loads");
}

/// A component whose level `i` instantiates level `i - 1` twice (through an outer alias):
/// 2^levels core instances from a few hundred bytes.
fn fan_out(levels: usize) -> String {
    let mut wat = String::from("(component\n  (component $c0 (core module $m) (core instance (instantiate $m)))\n");
    for i in 1..=levels {
        wat.push_str(&format!(
            "  (component $c{i} (alias outer 1 $c{} (component $p)) (instance (instantiate $p)) (instance (instantiate $p)))\n",
            i - 1
        ));
    }
    wat.push_str(&format!("  (instance (instantiate $c{levels}))\n)"));
    wat
}

#[test]
fn instantiation_fan_out_is_refused_before_compiling() {
    let (host, _d) = support::host();
    let started = Instant::now();
    let e = host.load("bomb", fan_out(23).as_bytes(), Limits::default()).expect_err("refused");
    assert!(
        matches!(&e.kind, ErrorKind::Load(m) if m.contains("core instances") && m.contains("limit of 1000")),
        "{e}"
    );
    let binary = wat::parse_str(fan_out(23)).expect("binary");
    let e = host.load("bomb", &binary, Limits::default()).expect_err("refused as a binary too");
    assert!(e.to_string().contains("core instances"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // Deep nesting is refused by depth.
    let mut nested = String::from("(core module $m)");
    for _ in 0..20 {
        nested = format!("(component {nested})");
    }
    let e = host.load("deep", nested.as_bytes(), Limits::default()).expect_err("refused");
    assert!(e.to_string().contains("nested deeper than 16"), "{e}");
}

#[test]
fn compile_bombs_are_refused_before_compiling() {
    let (host, _d) = support::host();
    // 49k locals in one function: minutes of register allocation if it were compiled.
    let funcs = "(func $many (local i64 i64) (local.set 0 (i64.const 1)))"
        .replace("(local i64 i64)", &format!("(local {})", "i64 ".repeat(49_000)));
    let wat = policy_wat("", &funcs, "");
    let started = Instant::now();
    let e = host.load("locals", &component("plain", &wat), Limits::default()).expect_err("refused");
    assert!(e.to_string().contains("49000 locals"), "{e}");
    // Functions over the limit (lowered for the test).
    let config = HostConfig {
        cache_dir: None,
        intake: arbiter_plugins::IntakeLimits { max_functions: 50, ..Default::default() },
        ..HostConfig::default()
    };
    let small = PluginHost::new(config).expect("host");
    let funcs: String = (0..60).map(|i| format!("(func $f{i})")).collect();
    let e =
        small.load("funcs", &component("plain", &policy_wat("", &funcs, "")), Limits::default()).expect_err("refused");
    assert!(e.to_string().contains("more than 50 functions"), "{e}");
    // WAT text over its limit.
    let text = format!("(component {})", " ".repeat(5 << 20));
    let e = host.load("text", text.as_bytes(), Limits::default()).expect_err("refused");
    assert!(e.to_string().contains("WAT text"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

#[test]
fn error_text_from_a_plugin_is_bounded() {
    let (host, _d) = support::host();
    // A policy error carrying 1 MB of text: `(err (failed <1 MB>))`.
    let body = "(i32.store8 (i32.const 512) (i32.const 1)) (i32.store8 (i32.const 516) (i32.const 2))
        (i32.store (i32.const 520) (i32.const 65536)) (i32.store (i32.const 524) (i32.const 1000000))
        (return (i32.const 512))";
    let wat = policy_wat("", "", body).replace("(memory (export \"memory\") 1)", "(memory (export \"memory\") 17)");
    let plugin = host.load("loud", &component("plain", &wat), Limits::default()).expect("loads");
    let (hostile, _) = hostile_and_benign();
    let e = plugin.select(&hostile, Arc::new(NoModel)).expect_err("fails");
    let text = e.to_string();
    assert!(text.len() < 4096, "{} bytes of error text", text.len());
    assert!(text.contains("(1000000 bytes)"), "{}", &text[..200.min(text.len())]);
}

#[test]
fn empty_host_calls_in_a_loop_end_at_the_host_call_limit() {
    let (host, _d) = support::host();
    // reward.score(conversation, []) forever: free for the quota, but every call is counted.
    let imports = support::REWARD_SCORE_IMPORT;
    let body = "(loop $l (call $score (local.get $conv) (local.get $conv_len) (i32.const 700) (i32.const 0) (i32.const 800)) (br $l))";
    let limits =
        Limits { fuel: u64::MAX, timeout: Duration::from_secs(30), max_host_calls: 10_000, ..Limits::default() };
    let plugin = host.load("empty", &component("scorer", &policy_wat(imports, "", body)), limits).expect("loads");
    let model = support::fake();
    let started = Instant::now();
    let (hostile, benign) = hostile_and_benign();
    let e = plugin.select(&hostile, model.clone()).expect_err("stopped");
    assert_eq!(e.kind, ErrorKind::HostCalls { limit: 10_000 }, "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(model.calls.load(std::sync::atomic::Ordering::SeqCst), 0, "empty calls never reach the engine");
    plugin.select(&benign, model).expect("next call succeeds");
    // Empty log lines cost their entry: the log cap ends the loop long before memory does.
    let imports = support::LOG_IMPORT;
    let body = "(loop $l (call $log (i32.const 0) (i32.const 8192) (i32.const 0)) (br $l))";
    let plugin =
        host.load("quiet", &component("logger", &policy_wat(imports, "", body)), Limits::default()).expect("loads");
    let e = plugin.select(&hostile, Arc::new(NoModel)).expect_err("stopped");
    assert!(matches!(e.kind, ErrorKind::LogLimit { .. }), "{e}");
}

#[test]
fn host_time_counts_against_the_call_deadline() {
    let (host, _d) = support::host();
    // Each reward call takes 100 ms of host time, which the guest's own 2 s budget excludes.
    let imports = support::REWARD_SCORE_IMPORT;
    let body = &support::score_ok_body(true);
    let limits = Limits { deadline: Duration::from_millis(700), reward_responses: 1_000_000, ..Limits::default() };
    let plugin = host.load("slowpoke", &component("scorer", &policy_wat(imports, "", body)), limits).expect("loads");
    let model = Arc::new(support::FakeModel { delay: Duration::from_millis(100), ..Default::default() });
    let started = Instant::now();
    let (hostile, benign) = hostile_and_benign();
    let e = plugin.select(&hostile, model.clone()).expect_err("stopped");
    assert_eq!(e.kind, ErrorKind::Deadline { limit_ms: 700 }, "{e}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    plugin.select(&benign, model).expect("next call succeeds");
}

mod registry {
    use std::path::Path;
    use std::sync::Arc;

    use arbiter::serve::metrics::Metrics;
    use arbiter::serve::registry::Registry;
    use arbiter_plugins::Limits;

    use crate::support::{self, component, policy_wat};

    /// A policy named `name`, version `version` (5 characters), from inline WAT.
    fn policy(name: &str, version: &str) -> Vec<u8> {
        let wat = policy_wat("", "", "")
            .replace("\"hostile\"", &format!("\"{name}\""))
            .replace("\"1.0.0\"", &format!("\"{version}\""));
        let wat = wat.replace(
            "(i32.store (i32.const 260) (i32.const 7))",
            &format!("(i32.store (i32.const 260) (i32.const {}))", name.len()),
        );
        component("plain", &wat)
    }

    fn registry() -> (Registry, tempfile::TempDir) {
        let (host, dir) = support::host();
        (Registry::new(host, Limits::default(), Arc::new(Metrics::default())).expect("registry"), dir)
    }

    fn serving(r: &Registry, name: &str) -> Option<(String, String)> {
        let (_, e) = r.entries().into_iter().find(|(n, _)| n == name)?;
        Some((e.plugin.map(|p| p.id().version.clone()).unwrap_or_default(), e.source))
    }

    fn write(dir: &Path, file: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, bytes).expect("write");
        path
    }

    #[test]
    fn a_deleted_file_takes_its_version_and_its_errors_with_it() {
        let (r, _d) = registry();
        let dir = tempfile::tempdir().expect("dir");
        // Two files both provide `argmax`: the newer serves; deleting it brings back the other
        // file's version, not the bundled one.
        let a = write(dir.path(), "a.wasm", &policy("argmax", "2.0.0"));
        r.reload(&a);
        let b = write(dir.path(), "b.wasm", &policy("argmax", "3.0.0"));
        r.reload(&b);
        assert_eq!(serving(&r, "argmax").map(|s| s.0).as_deref(), Some("3.0.0"));
        std::fs::remove_file(&b).expect("rm");
        r.reload(&b);
        assert_eq!(serving(&r, "argmax").map(|s| s.0).as_deref(), Some("2.0.0"));
        std::fs::remove_file(&a).expect("rm");
        r.reload(&a);
        assert_eq!(serving(&r, "argmax").map(|s| s.1).as_deref(), Some("bundled"));
        // A file that never loaded leaves an error entry, which goes with the file.
        let bad = write(dir.path(), "garbage.wasm", &vec![b'x'; 20 << 20]);
        r.reload(&bad);
        let (_, entry) = r.entries().into_iter().find(|(n, _)| n == "garbage").expect("error entry");
        assert!(entry.plugin.is_none());
        let error = entry.last_error.expect("error");
        assert!(error.len() < 4096, "{} bytes of error", error.len());
        std::fs::remove_file(&bad).expect("rm");
        r.reload(&bad);
        assert!(r.entries().iter().all(|(n, _)| n != "garbage"), "the failed entry outlived its file");
    }
}

#[test]
fn one_plugin_cannot_take_the_whole_instance_pool() {
    let dir = tempfile::tempdir().expect("dir");
    let config =
        HostConfig { cache_dir: Some(dir.path().to_path_buf()), max_calls_per_plugin: 2, ..HostConfig::default() };
    let host = PluginHost::new(config).expect("host");
    // A policy whose call takes 600 ms of host time (one slow reward call).
    let imports = support::REWARD_SCORE_IMPORT;
    let body = &support::score_ok_body(false);
    let slow = Arc::new(
        host.load("slowpoke", &component("scorer", &policy_wat(imports, "", body)), Limits::default()).expect("loads"),
    );
    let model = Arc::new(support::FakeModel { delay: Duration::from_millis(600), ..Default::default() });
    let (hostile, benign) = hostile_and_benign();
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let (slow, model, req) = (slow.clone(), model.clone(), hostile.clone());
            std::thread::spawn(move || slow.select(&req, model).map(|_| ()))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let e = slow.select(&hostile, model.clone()).expect_err("a third concurrent call");
    assert!(matches!(&e.kind, ErrorKind::Busy(m) if m.contains("limit of concurrent calls is 2")), "{e}");
    // Other plugins are unaffected.
    let argmax = support::bundled(&host, "argmax");
    argmax.select(&benign, Arc::new(NoModel)).expect("another plugin still runs");
    for c in calls {
        c.join().expect("thread").expect("the first two calls succeed");
    }
    slow.select(&hostile, model).expect("slots are released after the calls");
}

#[test]
fn a_plugin_with_too_many_memories_is_refused_at_load() {
    let (host, _d) = support::host();
    let wat = policy_wat("", "", "").replace(
        "(memory (export \"memory\") 1)",
        "(memory (export \"memory\") 1) (memory 1) (memory 1) (memory 1) (memory 1) (memory 1)",
    );
    let e = host.load("hungry", &component("plain", &wat), Limits::default()).expect_err("refused");
    assert!(e.to_string().contains("memor"), "{e}");
}

mod compile_worker {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use arbiter_plugins::{CompileWorker, ErrorKind, HostConfig, Limits, NoModel, PluginHost};

    use crate::support::{component, hostile_and_benign, policy_wat};

    fn host(deadline: Duration, memory_bytes: u64) -> PluginHost {
        let worker = CompileWorker {
            deadline,
            memory_bytes,
            ..CompileWorker::new(env!("CARGO_BIN_EXE_arbiter"), &["compile-worker"])
        };
        PluginHost::new(HostConfig { cache_dir: None, compile_worker: Some(worker), ..HostConfig::default() })
            .expect("host")
    }

    /// Within every intake limit, but some seconds of compiling.
    fn large() -> Vec<u8> {
        let funcs: String =
            (0..40_000).map(|i| format!("(func $f{i} (result i32) (i32.add (i32.const {i}) (i32.const 1)))")).collect();
        component("plain", &policy_wat("", &funcs, ""))
    }

    #[test]
    fn plugins_compile_in_the_worker_and_run() {
        let host = host(Duration::from_secs(60), 4 << 30);
        let argmax = host
            .load("argmax", arbiter::bundled::get("argmax").expect("bundled"), Limits::default())
            .expect("compiles");
        assert!(!argmax.load_report().from_cache);
        argmax.select(&hostile_and_benign().1, Arc::new(NoModel)).expect("runs");
    }

    #[test]
    fn a_compile_past_its_deadline_is_killed() {
        let host = host(Duration::from_millis(300), 4 << 30);
        let started = Instant::now();
        let e = host.load("large", &large(), Limits::default()).expect_err("killed");
        assert!(matches!(&e.kind, ErrorKind::Load(m) if m.contains("deadline of 0.3 s")), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }

    #[test]
    fn a_compile_over_its_memory_ceiling_fails_alone() {
        // 48 MiB of compiler memory: ample for a small plugin (it needs ~16), not for the large one.
        let host = host(Duration::from_secs(60), 48 << 20);
        host.load("argmax", arbiter::bundled::get("argmax").expect("bundled"), Limits::default()).expect("compiles");
        let e = host.load("large", &large(), Limits::default()).expect_err("out of memory");
        assert!(
            matches!(&e.kind, ErrorKind::Load(m) if m.contains("memory allocation") && m.contains("50331648")),
            "{e}"
        );
    }
}
