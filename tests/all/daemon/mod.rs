//! End-to-end tests of `arbiter serve` over real HTTP on 127.0.0.1:0.

use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use self::harness::{Server, TestModel, conversation, get, http, post, score_in_background, send_and_hang_up};
use crate::support::{component, policy_wat};

mod abuse;
mod compat;
pub mod harness;
mod lazy;

#[test]
fn every_route_happy_path() {
    let server = Server::start(Duration::ZERO, None, |_| {});
    let a = server.addr;
    let (s, v) = post(a, "/v1/score", &json!({"messages": conversation(), "responses": ["s=1", "s=3"]}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["scores"], json!([1.0, 3.0]));
    assert!(v["usage"]["total_tokens"].as_u64().is_some());
    let (s, v) =
        post(a, "/v1/select", &json!({"policy": "argmax", "messages": conversation(), "responses": ["s=1", "s=3"]}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["chosen"], 1);
    assert_eq!(v["policy"]["name"], "argmax");
    assert!(v["timings"]["total_ms"].as_f64().is_some());
    let (s, v) = post(
        a,
        "/v1/select",
        &json!({"policy": "tie-break", "rules": ["max-length"],
        "candidates": [{"text": "a b c d", "score": 1}, {"text": "a", "score": 1}],
        "params": {"max-length.max_tokens": 2, "by": "feature:max-length"}}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["features"][0]["max-length"], -2.0);
    assert_eq!(v["chosen"], 1);
    let (s, v) = post(
        a,
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "s=2.5"}]}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "reward:2.5");
    let (s, body) = get(a, "/v1/policies");
    assert_eq!(s, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["policies"].as_array().map(Vec::len), Some(5));
    for path in ["/health", "/info", "/openapi.json"] {
        let (s, body) = get(a, path);
        assert_eq!(s, 200, "{path}");
        let v = serde_json::from_str::<Value>(&body).unwrap_or_else(|e| panic!("{path}: {e}"));
        if path == "/info" {
            // The engine line (for a Llama model: backend, ISA, kernel, dtypes) is reported.
            assert!(v["engine"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
        }
    }
    let (s, body) = get(a, "/metrics");
    assert_eq!(s, 200);
    assert!(body.contains("arbiter_requests_total{route=\"/v1/score\",status=\"200\"} 1"), "{body}");
    assert!(body.contains("arbiter_plugin_calls_total{plugin=\"argmax\",outcome=\"ok\"} 1"), "{body}");
    assert!(body.contains("arbiter_request_duration_seconds_count{route=\"/v1/score\"} 1"), "{body}");
    assert!(body.contains("arbiter_queue_depth 0"), "{body}");
    // Unknown paths and methods answer in the same JSON error shape as every other status.
    for (method, path, status, kind) in [
        ("GET", "/nope", 404, "not_found"),
        ("POST", "//v1/select", 404, "not_found"),
        ("PATCH", "/v1/select", 405, "method_not_allowed"),
        ("DELETE", "/health", 405, "method_not_allowed"),
    ] {
        let (s, body) = http(a, method, path, None);
        assert_eq!(s, status, "{method} {path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body:?}"));
        assert_eq!(v["type"], kind, "{v}");
        assert!(v["error"].as_str().is_some_and(|m| m.contains("/openapi.json")), "{v}");
    }
    server.shutdown().expect("clean shutdown");
}

#[test]
fn bad_input_gets_a_4xx_naming_the_problem() {
    let server = Server::start(Duration::ZERO, None, |_| {});
    let a = server.addr;
    let (s, t) = http(a, "POST", "/v1/score", Some("{not json"));
    assert_eq!(s, 400, "{t}");
    assert!(t.contains("invalid JSON") && t.contains("\"type\""), "{t}");
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("/v1/select", json!({"policy": "nosuch", "responses": ["a"]}), 404, "nosuch"),
        ("/v1/select", json!({"responses": ["a"]}), 400, "policy"),
        ("/v1/score", json!({"messages": conversation(), "responses": []}), 400, "empty"),
        ("/v1/score", json!({"messages": conversation(), "responses": vec!["a"; 9]}), 400, "limit 8"),
        (
            "/v1/select",
            json!({"policy": "threshold", "candidates": [{"text": "a", "score": 1}], "params": {"min": "x"}}),
            400,
            "`min`",
        ),
        ("/v1/select", json!({"policy": "argmax", "candidate": []}), 400, "candidate"),
        // A rule's missing parameter is the caller's mistake, named.
        (
            "/v1/select",
            json!({"policy": "argmax", "rules": ["max-length"], "candidates": [{"text": "a", "score": 1}]}),
            400,
            "max-length.max_tokens",
        ),
        ("/v1/score", json!({"messages": "x", "responses": ["a"]}), 400, "messages"),
        ("/v1/chat/completions", json!({"messages": [{"role": "user", "content": "q"}]}), 400, "assistant"),
    ];
    for (path, body, want, needle) in cases {
        let (s, v) = post(a, path, &body);
        assert_eq!(s, want, "{path} {body}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains(needle)), "{path} {body}: {v}");
    }
    let big = "x".repeat(70 << 10);
    let (s, v) = post(a, "/v1/score", &json!({"messages": conversation(), "responses": [big]}));
    assert_eq!(s, 413, "{v}");
    assert_eq!(v["type"], "body_too_large");
    server.shutdown().expect("clean shutdown");
}

#[test]
fn too_many_tokens_is_a_413_naming_both_numbers() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-llama-f32");
    let options = arbiter_engine::EngineOptions { max_input_tokens: Some(120), ..Default::default() };
    let model = Arc::new(arbiter_engine::LlamaRewardModel::load(&fixture, options).expect("fixture"));
    let server = Server::start(Duration::ZERO, None, |c| c.model = model);
    let long = json!([{"role": "user", "content": "word ".repeat(100)}]);
    let (s, v) = post(server.addr, "/v1/score", &json!({"messages": long, "responses": ["a"]}));
    assert_eq!(s, 413, "{v}");
    assert_eq!(v["type"], "too_many_tokens");
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(msg.contains("120") && msg.contains("max_input_tokens"), "{msg}");
    let (s, v) = post(server.addr, "/v1/select", &json!({"policy": "argmax", "messages": long, "responses": ["a"]}));
    assert_eq!(s, 413, "{v}");
    assert_eq!(v["type"], "too_many_tokens");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("120")), "{v}");
    let (s, v) = post(server.addr, "/v1/score", &json!({"messages": conversation(), "responses": ["a"]}));
    assert_eq!(s, 200, "{v}");
    server.shutdown().expect("clean shutdown");
}

fn write_plugin(dir: &Path, file: &str, bytes: &[u8]) {
    // As deploy tools and editors do: write aside, then rename into place.
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, dir.join(file)).expect("rename");
}

/// A policy named `rotator` with this version (5 characters), hostile on seed 666.
fn rotator(version: &str, hostile_body: &str) -> Vec<u8> {
    let wat = policy_wat("", "", hostile_body)
        .replace("\"hostile\"", "\"rotator\"")
        .replace("\"1.0.0\"", &format!("\"{version}\""));
    component("plain", &wat)
}

#[test]
fn hostile_plugin_over_http_is_a_502_and_the_next_request_succeeds() {
    let dir = tempfile::tempdir().expect("dir");
    write_plugin(dir.path(), "rotator.wasm", &rotator("1.0.0", "(loop $l (br $l))"));
    let server = Server::start(Duration::ZERO, Some(dir.path()), |_| {});
    let body = |seed: u64| json!({"policy": "rotator", "candidates": [{"text": "a", "score": 1}, {"text": "b", "score": 2}], "seed": seed});
    let (s, v) = post(server.addr, "/v1/select", &body(666));
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["type"], "plugin_out_of_fuel");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("rotator") && e.contains("fuel")), "{v}");
    let (s, v) = post(server.addr, "/v1/select", &body(1));
    assert_eq!(s, 200, "{v}");
    server.shutdown().expect("clean shutdown");
}

/// The `rotator` entry of `/v1/policies`: serving version and last load error.
type Snapshot = (String, Option<String>);

#[test]
fn reload_under_load_drops_nothing_and_never_serves_an_old_version_after_a_swap() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().to_path_buf();
    write_plugin(&d, "rotator.wasm", &rotator("1.0.0", ""));
    let (v2, v3) = (rotator("2.0.0", ""), rotator("3.0.0", ""));
    let server = Server::start(Duration::ZERO, Some(&d), |_| {});
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let body =
                    json!({"policy": "rotator", "candidates": [{"text": "a", "score": 1}, {"text": "b", "score": 2}]});
                while !stop.load(Ordering::Relaxed) {
                    let t = started.elapsed();
                    let (s, v) = post(addr, "/v1/select", &body);
                    seen.push((t, s, v["policy"]["version"].as_str().unwrap_or("").to_owned(), v.to_string()));
                }
                seen
            })
        })
        .collect();
    let policies_version = || -> Snapshot {
        let (_, body) = get(addr, "/v1/policies");
        let v: Value = serde_json::from_str(&body).expect("policies");
        let entry = v["policies"]
            .as_array()
            .and_then(|l| l.iter().find(|e| e["name"] == "rotator").cloned())
            .expect("rotator listed");
        (entry["version"].as_str().unwrap_or("").to_owned(), entry["last_error"].as_str().map(str::to_owned))
    };
    let wait_for = |want: &dyn Fn(&Snapshot) -> bool| -> Duration {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let p = policies_version();
            if want(&p) {
                return started.elapsed();
            }
            assert!(Instant::now() < deadline, "reload never became visible: {p:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    std::thread::sleep(Duration::from_millis(600));
    write_plugin(&d, "rotator.wasm", &v2);
    let swapped_to_2 = wait_for(&|p| p.0 == "2.0.0");
    std::thread::sleep(Duration::from_millis(500));
    write_plugin(&d, "rotator.wasm", b"\0asm\x0d\0\x01\0broken");
    wait_for(&|p| p.1.is_some());
    assert_eq!(policies_version().0, "2.0.0", "a broken file leaves the previous version serving");
    std::thread::sleep(Duration::from_millis(500));
    write_plugin(&d, "rotator.wasm", &v3);
    let swapped_to_3 = wait_for(&|p| p.0 == "3.0.0" && p.1.is_none());
    while started.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        for (t, status, version, body) in c.join().expect("client") {
            total += 1;
            assert_eq!(status, 200, "request at {t:?} failed: {body}");
            assert!(["1.0.0", "2.0.0", "3.0.0"].contains(&version.as_str()), "{body}");
            if t > swapped_to_2 {
                assert_ne!(version, "1.0.0", "old version served at {t:?}, after the swap at {swapped_to_2:?}");
            }
            if t > swapped_to_3 {
                assert_eq!(version, "3.0.0", "old version served at {t:?}, after the swap at {swapped_to_3:?}");
            }
        }
    }
    assert!(total > 100, "only {total} requests in 3 s");
    let (_, metrics) = get(addr, "/metrics");
    assert!(metrics.contains("arbiter_plugin_reloads_total{result=\"failed\"} 1"), "{metrics}");
    // Exactly the three good files were loaded (start, v2, v3): a load must not trigger another.
    std::thread::sleep(Duration::from_millis(300));
    let (_, metrics) = get(addr, "/metrics");
    assert!(metrics.contains("arbiter_plugin_reloads_total{result=\"ok\"} 3"), "{metrics}");
    server.shutdown().expect("clean shutdown");
}

#[test]
fn overload_is_an_immediate_429() {
    let server = Server::start(Duration::from_millis(800), None, |c| c.max_concurrent_requests = 1);
    let addr = server.addr;
    let slow = score_in_background(addr, "a");
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let (s, v) = post(addr, "/v1/score", &json!({"messages": conversation(), "responses": ["b"]}));
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["type"], "overloaded");
    assert!(t.elapsed() < Duration::from_millis(700), "the 429 waited for the slow request");
    assert_eq!(slow.join().expect("slow").0, 200);
    server.shutdown().expect("clean shutdown");
}

#[test]
fn shutdown_drains_in_flight_requests() {
    let server = Server::start(Duration::from_millis(700), None, |_| {});
    let addr = server.addr;
    let inflight = score_in_background(addr, "s=4");
    std::thread::sleep(Duration::from_millis(200));
    server.shutdown().expect("run returns Ok after draining");
    let (s, v) = inflight.join().expect("client");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["scores"], json!([4.0]));
    assert!(TcpStream::connect(addr).is_err(), "still accepting after shutdown");
}

#[test]
fn health_probes_the_engine_after_a_failure() {
    let broken = Arc::new(AtomicBool::new(false));
    let model = Arc::new(TestModel { broken: broken.clone(), ..TestModel::default() });
    let server = Server::start(Duration::ZERO, None, |c| c.model = model);
    let a = server.addr;
    assert_eq!(get(a, "/health").0, 200);
    broken.store(true, Ordering::SeqCst);
    let (s, v) = post(a, "/v1/score", &json!({"messages": conversation(), "responses": ["a"]}));
    assert_eq!(s, 500, "{v}");
    assert_eq!(v["type"], "engine_error");
    let (s, body) = get(a, "/health");
    assert_eq!(s, 503, "a real forward still fails: {body}");
    broken.store(false, Ordering::SeqCst);
    assert_eq!(get(a, "/health").0, 200, "the probe's forward succeeds again");
    let (s, _) = post(a, "/v1/score", &json!({"messages": conversation(), "responses": ["a"]}));
    assert_eq!(s, 200);
    server.shutdown().expect("clean shutdown");
}

#[test]
fn work_of_disconnected_clients_is_dropped() {
    let server = Server::start(Duration::from_millis(600), None, |_| {});
    let addr = server.addr;
    let busy = score_in_background(addr, "x");
    std::thread::sleep(Duration::from_millis(150));
    // A client that sends a request and hangs up while it waits behind the busy one.
    let gone = json!({"messages": conversation(), "responses": ["gone"]});
    send_and_hang_up(addr, "/v1/score", &gone, Duration::from_millis(100));
    assert_eq!(busy.join().expect("busy").0, 200);
    std::thread::sleep(Duration::from_millis(900));
    let (_, metrics) = get(addr, "/metrics");
    assert!(metrics.contains("arbiter_dropped_jobs_total 1"), "{metrics}");
    server.shutdown().expect("clean shutdown");
}
