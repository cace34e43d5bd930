//! The example plugins in other languages (`examples/plugins/<lang>/<name>`), run on the same
//! cases as the bundled Rust plugins they port, through `arbiter select` and through a daemon
//! that hot-loads them; the two must choose, rank and fail alike.
//!
//! The examples are built by `examples/plugins/build.sh` (pinned toolchains; CI runs it first).
//! Without them these tests report `NOT RUN` on stderr and pass, so the default test command
//! needs no Python, Node or clang; with `ARBITER_REQUIRE_EXAMPLES=1` (CI) a missing build fails.

mod cases;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::daemon::harness::{Server, get, post};

/// What an example ports: a bundled policy (same parameters), or the bundled `max-length` rule.
#[derive(Clone, Copy)]
enum Port {
    Policy(&'static str),
    Rule(&'static str),
}

struct Example {
    /// Under `examples/plugins/`.
    file: &'static str,
    /// The name its `info()` / `name()` reports.
    name: &'static str,
    port: Port,
}

const EXAMPLES: [Example; 6] = [
    Example { file: "python/argmax/py-argmax.wasm", name: "py-argmax", port: Port::Policy("argmax") },
    Example { file: "python/threshold/py-threshold.wasm", name: "py-threshold", port: Port::Policy("threshold") },
    Example { file: "python/max_length/py-max-length.wasm", name: "py-max-length", port: Port::Rule("max-length") },
    Example { file: "js/argmax/js-argmax.wasm", name: "js-argmax", port: Port::Policy("argmax") },
    Example { file: "js/argmax/js-argmax-sm.wasm", name: "js-argmax", port: Port::Policy("argmax") },
    Example { file: "c/argmax/c-argmax.wasm", name: "c-argmax", port: Port::Policy("argmax") },
];

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plugins")
}

/// Compiled plugins shared by these tests (and kept between runs): each example is compiled
/// once, not once per test.
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("example-plugins-cache")
}

/// The example's path if it is built; otherwise says so (and fails when CI requires it).
fn built(example: &Example) -> Option<PathBuf> {
    let path = examples_dir().join(example.file);
    if path.is_file() {
        return Some(path);
    }
    let message = format!("NOT RUN: {} is not built (bash examples/plugins/build.sh)", example.file);
    assert!(std::env::var_os("ARBITER_REQUIRE_EXAMPLES").is_none(), "{message}, and ARBITER_REQUIRE_EXAMPLES is set");
    eprintln!("{message}");
    None
}

/// The cases for what `port` ports, addressed to the rule named `rule_name` for rules.
fn cases_for(port: Port, rule_name: &str) -> Vec<Value> {
    match port {
        Port::Policy("argmax") => cases::argmax(),
        Port::Policy("threshold") => cases::threshold(),
        Port::Policy(other) => panic!("no cases for {other}"),
        Port::Rule(_) => cases::max_length(rule_name),
    }
}

/// What must agree: the choice, the ranking and the rule features on success; the kind of
/// error on failure (messages are each language's own).
fn outcome(ok: Option<&Value>, error: Option<String>) -> Value {
    match (ok, error) {
        (Some(v), _) => {
            let features: Vec<Vec<Value>> = v["features"]
                .as_array()
                .map(|fs| {
                    fs.iter()
                        .map(|f| f.as_object().map(|o| o.values().cloned().collect()).unwrap_or_default())
                        .collect()
                })
                .unwrap_or_default();
            json!({"chosen": v["chosen"], "ranking": v["ranking"], "features": features})
        }
        (None, error) => json!({"error": error}),
    }
}

/// One case through `arbiter select`.
fn cli(policy: &str, rules: &[&str], case: &Value) -> Value {
    let input = tempfile::NamedTempFile::new().expect("temp input");
    std::fs::write(input.path(), case.to_string()).expect("write input");
    let mut args = vec!["select", "--policy", policy, "--input"];
    args.push(input.path().to_str().expect("utf-8 temp path"));
    for rule in rules {
        args.extend(["--rule", rule]);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(&args)
        .env("ARBITER_CACHE_DIR", cache_dir())
        .output()
        .expect("run arbiter");
    if out.status.success() {
        let v: Value = serde_json::from_slice(&out.stdout).expect("selection JSON");
        return outcome(Some(&v), None);
    }
    // `arbiter: plugin `x` 1.0.0 (sha256 ...): invalid params: ...` → `invalid params`.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let after = stderr.split_once("): ").map_or(stderr.as_ref(), |(_, rest)| rest);
    outcome(None, Some(after.split(':').next().unwrap_or("").trim().to_owned()))
}

/// (policy, rules) for running `example` and, separately, the bundled plugin it ports.
fn runs(example: &Example, path: &str) -> [(String, Vec<String>, String); 2] {
    match example.port {
        Port::Policy(bundled) => {
            [(path.to_owned(), vec![], example.name.to_owned()), (bundled.to_owned(), vec![], bundled.to_owned())]
        }
        Port::Rule(bundled) => [
            ("argmax".into(), vec![path.to_owned()], example.name.to_owned()),
            ("argmax".into(), vec![bundled.to_owned()], bundled.to_owned()),
        ],
    }
}

fn check_cli(file: &str) {
    let example = EXAMPLES.iter().find(|e| e.file == file).expect("listed example");
    let Some(path) = built(example) else { return };
    let [(policy, rules, rule_name), (b_policy, b_rules, b_rule_name)] = runs(example, path.to_str().expect("utf-8"));
    let (ours, theirs) = (cases_for(example.port, &rule_name), cases_for(example.port, &b_rule_name));
    let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
    let b_rules: Vec<&str> = b_rules.iter().map(String::as_str).collect();
    for (i, (case, b_case)) in ours.iter().zip(&theirs).enumerate() {
        let (got, want) = (cli(&policy, &rules, case), cli(&b_policy, &b_rules, b_case));
        assert_eq!(got, want, "{file}, case {i}: {}", case["params"]);
    }
    eprintln!("{file}: {} cases through `arbiter select`, same as the bundled plugin", ours.len());
}

#[test]
fn python_argmax_matches_bundled_argmax() {
    check_cli("python/argmax/py-argmax.wasm");
}

#[test]
fn python_threshold_matches_bundled_threshold() {
    check_cli("python/threshold/py-threshold.wasm");
}

#[test]
fn python_rule_matches_bundled_max_length() {
    check_cli("python/max_length/py-max-length.wasm");
}

#[test]
fn js_quickjs_argmax_matches_bundled_argmax() {
    check_cli("js/argmax/js-argmax.wasm");
}

#[test]
fn js_spidermonkey_argmax_matches_bundled_argmax() {
    check_cli("js/argmax/js-argmax-sm.wasm");
}

#[test]
fn c_argmax_matches_bundled_argmax() {
    check_cli("c/argmax/c-argmax.wasm");
}

/// Copies every built example (one JS backend: both report the name `js-argmax`) into a served
/// plugins directory after the daemon started, waits for the hot reload, then runs each one's
/// cases through `/v1/select` next to the bundled plugin's.
#[test]
fn daemon_hot_loads_and_serves_every_example() {
    let present: Vec<(&Example, PathBuf)> = EXAMPLES
        .iter()
        .filter(|e| e.file != "js/argmax/js-argmax-sm.wasm")
        .filter_map(|e| built(e).map(|p| (e, p)))
        .collect();
    if present.is_empty() {
        return;
    }
    let dir = tempfile::tempdir().expect("plugins dir");
    let server = Server::start(Duration::ZERO, Some(dir.path()), |c| {
        c.max_candidates = 1024;
        c.max_body_bytes = 8 << 20;
        c.limits = arbiter_plugins::Limits::default();
        c.host.cache_dir = Some(cache_dir());
    });
    for (example, path) in &present {
        std::fs::copy(path, dir.path().join(Path::new(example.file).file_name().expect("file name"))).expect("copy");
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    for (example, _) in &present {
        while state(server.addr, example.name).as_deref() != Some("ready") {
            assert!(
                Instant::now() < deadline,
                "{} never hot-loaded: {}",
                example.name,
                get(server.addr, "/v1/policies").1
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for (example, _) in &present {
        let [(policy, rules, rule_name), (b_policy, b_rules, b_rule_name)] = runs(example, example.name);
        let ours = cases_for(example.port, &rule_name);
        let theirs = cases_for(example.port, &b_rule_name);
        for (i, (case, b_case)) in ours.iter().zip(&theirs).enumerate() {
            let call = |policy: &str, rules: &[String], case: &Value| {
                let mut body = case.clone();
                body["policy"] = json!(policy);
                body["rules"] = json!(rules);
                let (status, v) = post(server.addr, "/v1/select", &body);
                let error = (status != 200).then(|| format!("{status} {}", v["type"]));
                outcome((status == 200).then_some(&v), error)
            };
            let (got, want) = (call(&policy, &rules, case), call(&b_policy, &b_rules, b_case));
            assert_eq!(got, want, "{} through the daemon, case {i}: {}", example.file, case["params"]);
        }
        eprintln!("{}: {} cases through the daemon (hot-loaded), same as the bundled plugin", example.file, ours.len());
    }
    server.shutdown().expect("clean shutdown");
}

/// `/v1/policies`' entry for `name`, if listed.
fn entry(addr: std::net::SocketAddr, name: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(&get(addr, "/v1/policies").1).ok()?;
    v["policies"].as_array()?.iter().find(|p| p["name"] == name).cloned()
}

/// The `state` `/v1/policies` shows for `name`, if listed.
fn state(addr: std::net::SocketAddr, name: &str) -> Option<String> {
    entry(addr, name)?["state"].as_str().map(str::to_owned)
}

/// A Python component takes seconds to compile: meanwhile `/v1/policies` shows it `compiling`
/// (a new name) and the daemon keeps answering with the other plugins; then it is `ready`.
#[test]
fn daemon_shows_a_compile_in_progress_and_keeps_serving() {
    let example = &EXAMPLES[1];
    let Some(path) = built(example) else { return };
    let dir = tempfile::tempdir().expect("plugins dir");
    // A cache of its own: this compile must not be a cache hit.
    let server = Server::start(Duration::ZERO, Some(dir.path()), |c| c.limits = arbiter_plugins::Limits::default());
    std::fs::copy(&path, dir.path().join("py-threshold.wasm")).expect("copy");
    let deadline = Instant::now() + Duration::from_secs(300);
    // Set once the daemon answered a request while the plugin was compiling.
    let mut served_while_compiling = false;
    loop {
        let mine = entry(server.addr, "py-threshold");
        match mine.as_ref().and_then(|p| p["state"].as_str()) {
            Some("ready") => break,
            Some("compiling") => {
                let p = mine.as_ref().expect("entry");
                assert!(p["compiling"]["file"].as_str().is_some_and(|f| f.ends_with("py-threshold.wasm")), "{p}");
                let body =
                    json!({"policy": "argmax", "candidates": [{"text": "a", "score": 1}, {"text": "b", "score": 2}]});
                let (status, sel) = post(server.addr, "/v1/select", &body);
                assert_eq!((status, &sel["chosen"]), (200, &json!(1)), "{sel}");
                served_while_compiling = true;
            }
            other => assert!(other.is_none(), "unexpected state {other:?}: {mine:?}"),
        }
        assert!(Instant::now() < deadline, "never loaded: {mine:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(served_while_compiling, "the compile was never seen in progress");
    server.shutdown().expect("clean shutdown");
}
