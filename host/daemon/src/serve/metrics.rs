//! Prometheus metrics, kept in process and rendered in the text exposition format.
//!
//! Small on purpose: atomic counters, labelled counters behind a mutex (label sets are few:
//! route × status, plugin × outcome), and fixed-bucket histograms.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters by label values.
#[derive(Debug, Default)]
pub struct Labeled(Mutex<BTreeMap<Vec<String>, u64>>);

impl Labeled {
    /// Adds one to the series with these label values.
    pub fn inc(&self, labels: &[&str]) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(labels.iter().map(|s| (*s).to_owned()).collect()).or_default() += 1;
        }
    }

    fn render(&self, out: &mut String, name: &str, help: &str, keys: &[&str]) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        if let Ok(m) = self.0.lock() {
            for (values, n) in m.iter() {
                let labels: Vec<String> =
                    keys.iter().zip(values).map(|(k, v)| format!("{k}=\"{}\"", v.replace('"', "'"))).collect();
                let _ = writeln!(out, "{name}{{{}}} {n}", labels.join(","));
            }
        }
    }
}

/// A histogram with fixed upper bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    state: Mutex<(Vec<u64>, f64, u64)>,
}

impl Histogram {
    fn new(bounds: &[f64]) -> Self {
        Self { bounds: bounds.to_vec(), state: Mutex::new((vec![0; bounds.len()], 0.0, 0)) }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        if let Ok(mut s) = self.state.lock() {
            for (i, b) in self.bounds.iter().enumerate() {
                if v <= *b {
                    s.0[i] += 1;
                }
            }
            s.1 += v;
            s.2 += 1;
        }
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        self.render_series(out, name, "");
    }

    /// The series lines; `labels` is `key="value",` or empty.
    fn render_series(&self, out: &mut String, name: &str, labels: &str) {
        if let Ok(s) = self.state.lock() {
            let plain = labels.trim_end_matches(',');
            let braces = if plain.is_empty() { String::new() } else { format!("{{{plain}}}") };
            for (b, n) in self.bounds.iter().zip(&s.0) {
                let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{b}\"}} {n}");
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}le=\"+Inf\"}} {}\n{name}_sum{braces} {}\n{name}_count{braces} {}",
                s.2, s.1, s.2
            );
        }
    }
}

/// Histograms by route.
#[derive(Debug, Default)]
pub struct RouteHistograms(Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>);

impl RouteHistograms {
    /// Records one observation for `route`.
    pub fn observe(&self, route: &str, v: f64) {
        let h = match self.0.lock() {
            Ok(mut m) => {
                m.entry(route.to_owned()).or_insert_with(|| std::sync::Arc::new(Histogram::new(&SECONDS))).clone()
            }
            Err(_) => return,
        };
        h.observe(v);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        if let Ok(m) = self.0.lock() {
            for (route, h) in m.iter() {
                h.render_series(out, name, &format!("route=\"{route}\","));
            }
        }
    }
}

const SECONDS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every metric the daemon exports.
#[derive(Debug)]
pub struct Metrics {
    /// Requests by route and status.
    pub requests: Labeled,
    /// Request latency by route.
    pub latency: RouteHistograms,
    /// Requests per engine batch.
    pub batch_requests: Histogram,
    /// Tokens per engine batch.
    pub batch_tokens: Histogram,
    /// Engine time per batch.
    pub engine_seconds: Histogram,
    /// Plugin calls by plugin and outcome.
    pub plugin_calls: Labeled,
    /// Reloads by result.
    pub reloads: Labeled,
    /// Jobs of disconnected clients.
    pub dropped_jobs: Counter,
    /// 429s.
    pub rejected_overload: Counter,
    /// Connections answered 503 because `--max-connections` were open.
    pub rejected_connections: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let secs = SECONDS;
        Self {
            requests: Labeled::default(),
            latency: RouteHistograms::default(),
            batch_requests: Histogram::new(&[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
            batch_tokens: Histogram::new(&[64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0]),
            engine_seconds: Histogram::new(&secs),
            plugin_calls: Labeled::default(),
            reloads: Labeled::default(),
            dropped_jobs: Counter::default(),
            rejected_overload: Counter::default(),
            rejected_connections: Counter::default(),
        }
    }
}

impl Metrics {
    /// The text exposition, with the current queue depth.
    pub fn render(&self, queue_depth: usize, cache: Option<arbiter_engine::PrefixCacheStats>) -> String {
        let mut out = String::new();
        if let Some(c) = cache {
            for (name, kind, help, value) in [
                (
                    "arbiter_prefix_cache_hits_total",
                    "counter",
                    "Prompt blocks reused from the prefix KV cache.",
                    c.hits,
                ),
                (
                    "arbiter_prefix_cache_misses_total",
                    "counter",
                    "Prefix-cache lookups that stopped at an uncached block.",
                    c.misses,
                ),
                (
                    "arbiter_prefix_cache_evictions_total",
                    "counter",
                    "Prefix-cache blocks evicted (LRU) to stay within the byte bound.",
                    c.evictions,
                ),
                ("arbiter_prefix_cache_bytes", "gauge", "Bytes of key/values held by the prefix cache.", c.bytes),
                ("arbiter_prefix_cache_blocks", "gauge", "Blocks held by the prefix cache.", c.blocks),
            ] {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
            }
        }
        self.requests.render(
            &mut out,
            "arbiter_requests_total",
            "HTTP requests by route and status.",
            &["route", "status"],
        );
        self.latency.render(&mut out, "arbiter_request_duration_seconds", "HTTP request latency by route.");
        let _ = writeln!(
            out,
            "# HELP arbiter_queue_depth Scoring jobs waiting.\n# TYPE arbiter_queue_depth gauge\narbiter_queue_depth {queue_depth}"
        );
        self.batch_requests.render(&mut out, "arbiter_batch_requests", "Requests per engine batch.");
        self.batch_tokens.render(&mut out, "arbiter_batch_tokens", "Tokens per engine batch.");
        self.engine_seconds.render(&mut out, "arbiter_engine_seconds", "Engine time per batch.");
        self.plugin_calls.render(
            &mut out,
            "arbiter_plugin_calls_total",
            "Plugin calls by plugin and outcome (ok or error kind).",
            &["plugin", "outcome"],
        );
        self.reloads.render(&mut out, "arbiter_plugin_reloads_total", "Plugin (re)loads by result.", &["result"]);
        let _ = writeln!(
            out,
            "# HELP arbiter_dropped_jobs_total Scoring jobs dropped because the client left.\n# TYPE arbiter_dropped_jobs_total counter\narbiter_dropped_jobs_total {}",
            self.dropped_jobs.get()
        );
        let _ = writeln!(
            out,
            "# HELP arbiter_rejected_overload_total Requests refused with 429.\n# TYPE arbiter_rejected_overload_total counter\narbiter_rejected_overload_total {}",
            self.rejected_overload.get()
        );
        let _ = writeln!(
            out,
            "# HELP arbiter_rejected_connections_total Connections answered 503 because --max-connections were open.\n# TYPE arbiter_rejected_connections_total counter\narbiter_rejected_connections_total {}",
            self.rejected_connections.get()
        );
        out
    }
}
