//! A lazy policy (`early-exit`) over HTTP: its `reward` calls go through the engine queue, and
//! their failures map to the same statuses as the same failures during prescoring; an
//! abandoned `/v1/select` stops consuming engine and plugin time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::harness::{Server, TestModel, conversation, get, post, score_in_background, send_and_hang_up, slow};
use crate::support::{component, policy_wat};

fn early_exit(responses: &[&str], min: f32) -> Value {
    json!({"policy": "early-exit", "messages": conversation(), "responses": responses,
           "params": {"min": min, "chunk": 1}})
}

fn argmax(responses: &[&str]) -> Value {
    json!({"policy": "argmax", "messages": conversation(), "responses": responses})
}

/// Polls `/metrics` until it contains `needle` (or `within` passes); returns the last text.
fn wait_for_metric(addr: SocketAddr, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (_, metrics) = get(addr, "/metrics");
        if metrics.contains(needle) || Instant::now() > deadline {
            return metrics;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn lazy_policy_scores_only_until_it_stops() {
    let model = TestModel::default();
    let batches = model.batches.clone();
    let server = Server::start(Duration::ZERO, None, |c| c.model = Arc::new(model));
    let (s, v) = post(server.addr, "/v1/select", &early_exit(&["s=1", "s=5", "s=2", "s=9"], 4.0));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["chosen"], 1, "{v}");
    assert_eq!(v["scores"], json!([1.0, 5.0, null, null]), "{v}");
    assert_eq!(batches.load(Ordering::SeqCst), 2, "one engine job per chunk, none after the stop");
    server.shutdown().expect("clean shutdown");
}

#[test]
fn lazy_policy_reward_failures_map_like_prescoring_failures() {
    let model = TestModel::default();
    let broken = model.broken.clone();
    let server = Server::start(Duration::ZERO, None, |c| c.model = Arc::new(model));
    let a = server.addr;
    // Too long: the second chunk's response is over the limit.
    let responses = ["s=1", "TOOLONG s=5"];
    for body in [early_exit(&responses, 4.0), argmax(&responses)] {
        let (s, v) = post(a, "/v1/select", &body);
        assert_eq!(s, 413, "{body}: {v}");
        assert_eq!(v["type"], "too_many_tokens", "{v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains("9999") && e.contains("100")), "{v}");
    }
    // Engine failure.
    broken.store(true, Ordering::SeqCst);
    for body in [early_exit(&["s=1", "s=5"], 4.0), argmax(&["s=1", "s=5"])] {
        let (s, v) = post(a, "/v1/select", &body);
        assert_eq!(s, 500, "{body}: {v}");
        assert_eq!(v["type"], "engine_error", "{v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains("device lost")), "{v}");
    }
    broken.store(false, Ordering::SeqCst);
    let metrics = get(a, "/metrics").1;
    assert!(metrics.contains("plugin=\"early-exit\",outcome=\"reward-failed\"} 2"), "{metrics}");
    server.shutdown().expect("clean shutdown");
}

#[test]
fn lazy_policy_on_a_full_queue_is_a_429() {
    // One queue slot: with the engine busy, one batch handed over and one batch formed, the
    // next job waits in the slot, and the lazy policy's first reward call finds it full.
    let server = Server::start(Duration::from_millis(1500), None, |c| {
        c.max_queued_jobs = 1;
        c.max_concurrent_requests = 8;
    });
    let a = server.addr;
    let busy: Vec<_> = (0..4)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(60));
            std::thread::spawn(move || {
                post(a, "/v1/score", &json!({"messages": conversation(), "responses": [format!("s={i}")]})).0
            })
        })
        .collect();
    let metrics = wait_for_metric(a, "arbiter_queue_depth 1", Duration::from_secs(5));
    assert!(metrics.contains("arbiter_queue_depth 1"), "{metrics}");
    for body in [early_exit(&["s=1", "s=5"], 4.0), argmax(&["s=1", "s=5"])] {
        let (s, v) = post(a, "/v1/select", &body);
        assert_eq!(s, 429, "{body}: {v}");
        assert_eq!(v["type"], "overloaded", "{v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains("queue is full")), "{v}");
    }
    for b in busy {
        assert_eq!(b.join().expect("client"), 200);
    }
    server.shutdown().expect("clean shutdown");
}

#[test]
fn abandoned_lazy_select_is_dropped_before_the_engine_runs_it() {
    let model = slow(Duration::from_millis(600));
    let batches = model.batches.clone();
    let server = Server::start(Duration::ZERO, None, |c| c.model = Arc::new(model));
    let a = server.addr;
    let busy = score_in_background(a, "x");
    std::thread::sleep(Duration::from_millis(150));
    send_and_hang_up(a, "/v1/select", &early_exit(&["s=1", "s=2", "s=3"], 100.0), Duration::from_millis(150));
    assert_eq!(busy.join().expect("busy").0, 200);
    let metrics = wait_for_metric(a, "outcome=\"cancelled\"} 1", Duration::from_secs(5));
    assert!(metrics.contains("arbiter_plugin_calls_total{plugin=\"early-exit\",outcome=\"cancelled\"} 1"), "{metrics}");
    assert!(metrics.contains("arbiter_dropped_jobs_total 1"), "{metrics}");
    assert!(metrics.contains("arbiter_requests_total{route=\"/v1/select\",status=\"499\"} 1"), "{metrics}");
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(batches.load(Ordering::SeqCst), 1, "only the busy request reached the engine");
    server.shutdown().expect("clean shutdown");
}

#[test]
fn abandoned_select_interrupts_a_running_policy() {
    let dir = tempfile::tempdir().expect("dir");
    // Spins without calling the host: only the epoch tick can stop it before its time limit.
    let spinner = component("plain", &policy_wat("", "", "(loop $l (br $l))"));
    std::fs::write(dir.path().join("hostile.wasm"), spinner).expect("write");
    let server = Server::start(Duration::ZERO, Some(dir.path()), |c| {
        c.limits.fuel = u64::MAX / 2;
        c.limits.timeout = Duration::from_secs(60);
    });
    let a = server.addr;
    let body = json!({"policy": "hostile", "candidates": [{"text": "a", "score": 1}], "seed": 666});
    let started = Instant::now();
    send_and_hang_up(a, "/v1/select", &body, Duration::from_millis(200));
    let metrics = wait_for_metric(a, "outcome=\"cancelled\"} 1", Duration::from_secs(10));
    assert!(metrics.contains("arbiter_plugin_calls_total{plugin=\"hostile\",outcome=\"cancelled\"} 1"), "{metrics}");
    assert!(started.elapsed() < Duration::from_secs(10), "the policy ran on after its client left");
    server.shutdown().expect("clean shutdown");
}
