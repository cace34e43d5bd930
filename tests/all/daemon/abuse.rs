//! The daemon under abusive clients: slow or idle connections, too many connections, slow
//! bodies, a shutdown with requests still running, and the API key's details. Limits are
//! lowered for the tests; every loop is bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbiter::serve::AuthScope;
use serde_json::{Value, json};

use super::harness::{Server, conversation, get, slow};

/// Sends `request` as is and reads until the server closes or `wait` passes; returns the
/// status (0: none), the body, and how long it took.
fn raw(addr: SocketAddr, request: &[u8], wait: Duration) -> (u16, String, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(wait)).expect("timeout");
    s.write_all(request).expect("write");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body, started.elapsed())
}

fn score_request(headers: &str) -> Vec<u8> {
    let body = json!({"messages": conversation(), "responses": ["s=2"]}).to_string();
    format!(
        "POST /v1/score HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

#[test]
fn slow_headers_and_idle_connections_are_closed() {
    let server = Server::start(Duration::ZERO, None, |c| c.header_timeout = Duration::from_millis(400));
    // Half a request line, then nothing: closed after the header timeout, not held forever.
    let (_, _, took) = raw(server.addr, b"POST /v1/score HTTP/1.1\r\nHost: t\r\n", Duration::from_secs(10));
    assert!(took < Duration::from_secs(5), "a half-sent header held the connection {took:?}");
    // A connection that never sends anything is closed the same way.
    let (status, _, took) = raw(server.addr, b"", Duration::from_secs(10));
    assert!(took < Duration::from_secs(5), "an idle connection stayed open {took:?} (status {status})");
    server.shutdown().expect("clean shutdown");
}

#[test]
fn a_slow_body_is_a_408_in_the_error_shape() {
    let server = Server::start(Duration::ZERO, None, |c| c.body_timeout = Duration::from_millis(400));
    let request =
        "POST /v1/score HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"messa";
    let (status, body, took) = raw(server.addr, request.as_bytes(), Duration::from_secs(10));
    assert_eq!(status, 408, "{body}");
    assert_eq!(json_of(&body)["type"], "body_timeout");
    assert!(took < Duration::from_secs(5), "{took:?}");
    server.shutdown().expect("clean shutdown");
}

#[test]
fn connections_over_the_cap_are_refused_at_once() {
    let server = Server::start(Duration::ZERO, None, |c| {
        c.max_connections = 3;
        c.header_timeout = Duration::from_secs(20);
    });
    // Let the start-up probes' connections close, then hold every slot with an idle connection
    // (one that was refused would have a 503 to read at once).
    std::thread::sleep(Duration::from_millis(300));
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| {
            let s = TcpStream::connect(server.addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_millis(150))).expect("timeout");
            let mut byte = [0u8; 1];
            assert!((&s).read(&mut byte).is_err(), "an idle connection was refused: the slots were not free");
            s
        })
        .collect();
    let (status, body, took) = raw(server.addr, &score_request(""), Duration::from_secs(10));
    assert_eq!(status, 503, "{body}");
    assert_eq!(json_of(&body)["type"], "too_many_connections");
    assert!(took < Duration::from_secs(2), "the refusal waited {took:?}");
    drop(idle);
    // Slots free again once the idle connections are gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body, _) = raw(server.addr, &score_request(""), Duration::from_secs(10));
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {status} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = get(server.addr, "/metrics").1;
    assert!(metrics.contains("arbiter_rejected_connections_total"), "{metrics}");
    assert!(!metrics.contains("arbiter_rejected_connections_total 0"), "{metrics}");
    server.shutdown().expect("clean shutdown");
}

#[test]
fn requests_still_running_at_the_drain_deadline_answer_503() {
    let server = Server::start(Duration::ZERO, None, |c| {
        c.model = Arc::new(slow(Duration::from_secs(4)));
        c.drain_timeout = Duration::from_millis(500);
    });
    let addr = server.addr;
    let inflight = std::thread::spawn(move || raw(addr, &score_request(""), Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    server.shutdown().expect("run returns Ok");
    let exited = started.elapsed();
    let (status, body, _) = inflight.join().expect("client");
    assert_eq!(status, 503, "{body}");
    assert_eq!(json_of(&body)["type"], "shutting_down");
    assert!(exited < Duration::from_secs(3), "exit took {exited:?} with a 0.5 s drain");
}

#[test]
fn the_api_key_is_checked_like_a_bearer_token() {
    let server = Server::start(Duration::ZERO, None, |c| c.api_key = Some("s3cret".into()));
    let a = server.addr;
    for (header, want) in [
        ("", 401),
        ("Authorization: Bearer wrong\r\n", 401),
        ("Authorization: Bearer s3cre\r\n", 401),
        ("Authorization: Basic s3cret\r\n", 401),
        ("Authorization: Bearer s3cret\r\n", 200),
        ("Authorization: bearer s3cret\r\n", 200),
        ("Authorization: BEARER   s3cret \r\n", 200),
    ] {
        let (status, body, _) = raw(a, &score_request(header), Duration::from_secs(10));
        assert_eq!(status, want, "{header:?}: {body}");
        if want == 401 {
            assert_eq!(json_of(&body)["type"], "unauthorized");
        }
    }
    let request = score_request("");
    let mut s = TcpStream::connect(a).expect("connect");
    s.write_all(&request).expect("write");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(text.to_ascii_lowercase().contains("www-authenticate: bearer"), "{text}");
    // Scope `api` (the default): metrics and info stay open for scrapers; health always is.
    assert_eq!(get(a, "/metrics").0, 200);
    assert_eq!(get(a, "/info").0, 200);
    server.shutdown().expect("clean shutdown");

    let server = Server::start(Duration::ZERO, None, |c| {
        c.api_key = Some("s3cret".into());
        c.auth_scope = AuthScope::All;
    });
    assert_eq!(get(server.addr, "/metrics").0, 401);
    assert_eq!(get(server.addr, "/info").0, 401);
    assert_eq!(get(server.addr, "/health").0, 200);
    server.shutdown().expect("clean shutdown");
}

#[test]
fn a_large_request_runs_in_parts_with_other_work_between() {
    // Batches of 2 tokens (one token per `s=N` response), 300 ms each.
    let model = super::harness::TestModel { delay: Duration::from_millis(300), batch_tokens: 2, ..Default::default() };
    let batches = model.batches.clone();
    let server = Server::start(Duration::ZERO, None, |c| c.model = Arc::new(model));
    let a = server.addr;
    let started = Instant::now();
    let big = std::thread::spawn(move || {
        let body = json!({"messages": conversation(), "responses": ["s=1", "s=2", "s=3", "s=4", "s=5", "s=6"]});
        let (status, v) = super::harness::post(a, "/v1/score", &body);
        (status, v, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    let (status, v) = super::harness::post(a, "/v1/score", &json!({"messages": conversation(), "responses": ["s=9"]}));
    let small_done = started.elapsed();
    assert_eq!(status, 200, "{v}");
    let (status, v, big_done) = big.join().expect("big");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["scores"], json!([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), "parts reassembled in order");
    assert!(small_done < big_done, "the small request waited for the whole large one: {small_done:?} vs {big_done:?}");
    assert_eq!(batches.load(std::sync::atomic::Ordering::SeqCst), 4, "three parts and the small request");
    server.shutdown().expect("clean shutdown");
}

#[test]
fn a_request_over_its_token_budget_is_a_413_naming_the_flag() {
    let server = Server::start(Duration::ZERO, None, |c| c.max_request_tokens = 3);
    let a = server.addr;
    let body = json!({"messages": conversation(), "responses": ["s=1", "s=2", "s=3", "s=4"]});
    let (status, v) = super::harness::post(a, "/v1/score", &body);
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["type"], "too_many_tokens");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("--max-request-tokens")), "{v}");
    // A lazy policy's calls add up: one token per call, the fourth call is over the budget.
    let lazy = json!({"policy": "early-exit", "messages": conversation(), "responses": ["s=1", "s=2", "s=3", "s=4"],
                      "params": {"min": 100, "chunk": 1}});
    let (status, v) = super::harness::post(a, "/v1/select", &lazy);
    assert_eq!(status, 413, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("--max-request-tokens")), "{v}");
    server.shutdown().expect("clean shutdown");
}

#[test]
fn a_half_closed_request_is_treated_as_abandoned_promptly() {
    // As nginx (499) and Go's net/http: a read EOF means the client is gone. The connection is
    // closed at once (no hang) and the request's engine work is never done.
    let model = slow(Duration::from_millis(600));
    let batches = model.batches.clone();
    let server = Server::start(Duration::ZERO, None, |c| c.model = Arc::new(model));
    let a = server.addr;
    let busy = super::harness::score_in_background(a, "x");
    std::thread::sleep(Duration::from_millis(150));
    let started = Instant::now();
    let mut s = TcpStream::connect(a).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.write_all(&score_request("")).expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("half-close");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(2), "the half-closed connection hung {:?}", started.elapsed());
    assert_eq!(busy.join().expect("busy").0, 200);
    std::thread::sleep(Duration::from_millis(700));
    // Dropped before it reached the engine (hyper may not even start it: it sees the EOF in
    // the same read as the request).
    assert_eq!(batches.load(std::sync::atomic::Ordering::SeqCst), 1, "only the busy request ran");
    server.shutdown().expect("clean shutdown");
}

#[test]
fn a_slow_or_blocking_plugin_file_delays_no_other() {
    let dir = tempfile::tempdir().expect("dir");
    // A FIFO (would block a plain open) and a large component that takes a while to compile,
    // next to a small good plugin.
    let fifo = dir.path().join("a-fifo.wasm");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    let funcs: String =
        (0..40_000).map(|i| format!("(func $f{i} (result i32) (i32.add (i32.const {i}) (i32.const 1)))")).collect();
    let slow = crate::support::component(
        "plain",
        &crate::support::policy_wat("", &funcs, "").replace("\"hostile\"", "\"slowpok\""),
    );
    std::fs::write(dir.path().join("b-slow.wasm"), slow).expect("write");
    let fast = crate::support::component(
        "plain",
        &crate::support::policy_wat("", "", "")
            .replace("\"hostile\"", "\"speedy\"")
            .replace("(i32.const 260) (i32.const 7)", "(i32.const 260) (i32.const 6)"),
    );
    std::fs::write(dir.path().join("c-fast.wasm"), fast).expect("write");
    let started = Instant::now();
    let server = Server::start_answering(Duration::ZERO, Some(dir.path()), |c| c.host.cache_dir = None);
    let answered = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut fast_at, mut slow_at) = (None, None);
    while (fast_at.is_none() || slow_at.is_none()) && Instant::now() < deadline {
        let (_, policies) = get(server.addr, "/v1/policies");
        if fast_at.is_none() && policies.contains("\"speedy\"") {
            fast_at = Some(started.elapsed());
        }
        if slow_at.is_none() && policies.contains("\"slowpok\"") {
            slow_at = Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let (fast_at, slow_at) = (fast_at.expect("fast plugin loaded"), slow_at.expect("slow plugin loaded"));
    eprintln!("health answered after {answered:?}; fast plugin {fast_at:?}; slow plugin {slow_at:?}");
    assert!(fast_at < slow_at, "the fast plugin waited for the slow one: {fast_at:?} vs {slow_at:?}");
    let (_, policies) = get(server.addr, "/v1/policies");
    assert!(policies.contains("not a regular file"), "the FIFO is reported: {policies}");
    server.shutdown().expect("clean shutdown");
}

/// Kubernetes' ConfigMap volume layout: `name.wasm -> ..data/name.wasm`, `..data -> ..<ts>`;
/// an update writes `..<ts2>`, points `..data_tmp` at it, renames it over `..data`, and removes
/// `..<ts>`. No event names `name.wasm`, yet the new version must serve.
#[test]
fn a_configmap_style_symlink_swap_reloads_the_plugin() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let version = |v: &str| {
        let wat = crate::support::policy_wat("", "", "")
            .replace("\"hostile\"", "\"mapped\"")
            .replace("\"1.0.0\"", &format!("\"{v}\""));
        crate::support::component(
            "plain",
            &wat.replace("(i32.const 260) (i32.const 7)", "(i32.const 260) (i32.const 6)"),
        )
    };
    std::fs::create_dir(d.join("..2026_01_01")).expect("mkdir");
    std::fs::write(d.join("..2026_01_01/mapped.wasm"), version("1.0.0")).expect("write");
    symlink("..2026_01_01", d.join("..data")).expect("symlink");
    symlink("..data/mapped.wasm", d.join("mapped.wasm")).expect("symlink");
    let server = Server::start(Duration::ZERO, Some(d), |_| {});
    let served = |addr| -> String {
        let (_, body) = get(addr, "/v1/policies");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        v["policies"]
            .as_array()
            .and_then(|l| l.iter().find(|p| p["name"] == "mapped"))
            .map(|p| p["version"].to_string())
            .unwrap_or_default()
    };
    assert_eq!(served(server.addr), "\"1.0.0\"");
    // The kubelet's atomic update.
    std::fs::create_dir(d.join("..2026_01_02")).expect("mkdir");
    std::fs::write(d.join("..2026_01_02/mapped.wasm"), version("2.0.0")).expect("write");
    symlink("..2026_01_02", d.join("..data_tmp")).expect("symlink");
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).expect("swap");
    std::fs::remove_dir_all(d.join("..2026_01_01")).expect("rm old");
    let deadline = Instant::now() + Duration::from_secs(10);
    while served(server.addr) != "\"2.0.0\"" {
        assert!(Instant::now() < deadline, "the swapped version never served: {}", served(server.addr));
        std::thread::sleep(Duration::from_millis(20));
    }
    server.shutdown().expect("clean shutdown");
}

/// Operators set a plugin's limits in `NAME.limits` beside `NAME.wasm`; a change reloads it.
#[test]
fn per_plugin_limits_come_from_a_sidecar_file_and_hot_reload() {
    let dir = tempfile::tempdir().expect("dir");
    let wat = crate::support::policy_wat("", "", "").replace("\"hostile\"", "\"limited\"");
    let wasm = crate::support::component("plain", &wat);
    std::fs::write(dir.path().join("limited.wasm"), wasm).expect("write");
    std::fs::write(dir.path().join("limited.limits"), "# generous for this one\nfuel=12345678\nmemory-mib=8\n")
        .expect("write");
    let server = Server::start(Duration::ZERO, Some(dir.path()), |_| {});
    let limits = |addr| -> (serde_json::Value, serde_json::Value) {
        let v: Value = serde_json::from_str(&get(addr, "/v1/policies").1).expect("json");
        let e = v["policies"]
            .as_array()
            .and_then(|l| l.iter().find(|p| p["name"] == "limited"))
            .cloned()
            .unwrap_or_default();
        (e["limits"].clone(), e["last_error"].clone())
    };
    let (l, _) = limits(server.addr);
    assert_eq!((l["fuel"].as_u64(), l["memory-mib"].as_u64()), (Some(12_345_678), Some(8)), "{l}");
    std::fs::write(dir.path().join("limited.limits"), "fuel=7654321\n").expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    while limits(server.addr).0["fuel"].as_u64() != Some(7_654_321) {
        assert!(Instant::now() < deadline, "the new limits never applied: {:?}", limits(server.addr));
        std::thread::sleep(Duration::from_millis(20));
    }
    // A bad file is reported by line, and the plugin keeps serving with its previous limits.
    std::fs::write(dir.path().join("limited.limits"), "fuel=lots\n").expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (l, error) = limits(server.addr);
        if error.as_str().is_some_and(|e| e.contains("limited.limits line 1") && e.contains("fuel")) {
            assert_eq!(l["fuel"].as_u64(), Some(7_654_321));
            break;
        }
        assert!(Instant::now() < deadline, "the bad file was never reported: {error}");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.shutdown().expect("clean shutdown");
}
