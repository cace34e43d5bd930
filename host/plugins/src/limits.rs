//! Resource limits applied to every guest call.
//!
//! Limits are on by default and overridable per plugin at load time. The wasm stack cap is
//! the exception: wasmtime sets it per `Engine`, so it lives in [`crate::HostConfig`].

use std::time::Duration;

/// Per-call limits for one plugin. Every field is a hard cap; exceeding it ends the call with
/// the matching [`crate::ErrorKind`] and discards only that call's `Store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wasm fuel (≈ instructions) per call: the deterministic CPU budget.
    pub fuel: u64,
    /// Wall-clock time the guest itself may run per call. Time inside host imports
    /// (`reward.score`) is not counted.
    pub timeout: Duration,
    /// Linear memory the guest may hold, in bytes.
    pub memory_bytes: usize,
    /// Largest request handed to the guest: total bytes of text (conversation, candidates,
    /// parameters, features).
    pub max_input_bytes: usize,
    /// Most candidates in one request.
    pub max_candidates: usize,
    /// Longest `reason` a policy may return, in bytes.
    pub max_reason_bytes: usize,
    /// Log bytes (the `log` import plus guest stdout/stderr) per call.
    pub max_log_bytes: usize,
    /// Responses a plugin may score through `reward.score` per call.
    pub reward_responses: u64,
    /// Bytes of text a plugin may send through `reward.score`/`count-tokens` per call.
    pub reward_bytes: u64,
    /// Calls from the guest into the host per call (every import: `reward`, `log`, WASI), so
    /// a loop of cheap or empty host calls cannot run on forever.
    pub max_host_calls: u64,
    /// Wall-clock time of the whole call, host time (the engine) included: the deadline a
    /// plugin that keeps the host busy on its behalf still meets.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 200_000_000,
            timeout: Duration::from_secs(2),
            memory_bytes: 64 << 20,
            max_input_bytes: 32 << 20,
            max_candidates: 4096,
            max_reason_bytes: 4096,
            max_log_bytes: 64 << 10,
            reward_responses: 4096,
            reward_bytes: 64 << 20,
            max_host_calls: 100_000,
            deadline: Duration::from_secs(120),
        }
    }
}

impl Limits {
    /// The tight limits of the `info()` smoke call made at load.
    pub fn smoke() -> Self {
        Self {
            fuel: 10_000_000,
            timeout: Duration::from_millis(500),
            // A Python (componentize-py) component's runtime takes ~12 MiB just to start.
            memory_bytes: 64 << 20,
            reward_responses: 0,
            reward_bytes: 0,
            ..Self::default()
        }
    }

    /// Applies one `key=value` override, as given on the command line.
    ///
    /// Keys: `fuel`, `timeout-ms`, `memory-mib`, `max-input-bytes`, `max-candidates`,
    /// `max-reason-bytes`, `max-log-bytes`, `reward-responses`, `reward-bytes`,
    /// `max-host-calls`, `deadline-ms`.
    ///
    /// # Errors
    /// Names the key or value that is wrong.
    pub fn set(&mut self, assignment: &str) -> Result<(), String> {
        let (key, value) =
            assignment.split_once('=').ok_or_else(|| format!("limit `{assignment}` is not of the form key=value"))?;
        let number: u64 =
            value.trim().parse().map_err(|_| format!("limit `{key}`: `{value}` is not a non-negative integer"))?;
        let as_usize =
            |n: u64| usize::try_from(n).map_err(|_| format!("limit `{key}`: {n} is too large for this platform"));
        match key.trim() {
            "fuel" => self.fuel = number,
            "timeout-ms" => self.timeout = Duration::from_millis(number),
            "memory-mib" => {
                self.memory_bytes = as_usize(number)?
                    .checked_mul(1 << 20)
                    .ok_or_else(|| format!("limit `memory-mib`: {number} is too large"))?;
            }
            "max-input-bytes" => self.max_input_bytes = as_usize(number)?,
            "max-candidates" => self.max_candidates = as_usize(number)?,
            "max-reason-bytes" => self.max_reason_bytes = as_usize(number)?,
            "max-log-bytes" => self.max_log_bytes = as_usize(number)?,
            "reward-responses" => self.reward_responses = number,
            "reward-bytes" => self.reward_bytes = number,
            "max-host-calls" => self.max_host_calls = number,
            "deadline-ms" => self.deadline = Duration::from_millis(number),
            other => {
                return Err(format!(
                    "unknown limit `{other}` (known: fuel, timeout-ms, memory-mib, max-input-bytes, \
                     max-candidates, max-reason-bytes, max-log-bytes, reward-responses, reward-bytes, \
                     max-host-calls, deadline-ms)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_parses_and_names_bad_keys() {
        let mut l = Limits::default();
        l.set("fuel=5").expect("valid");
        l.set("timeout-ms=250").expect("valid");
        l.set("memory-mib=2").expect("valid");
        assert_eq!((l.fuel, l.timeout, l.memory_bytes), (5, Duration::from_millis(250), 2 << 20));
        let err = l.set("fuel=-1").expect_err("negative");
        assert!(err.contains("fuel"), "{err}");
        let err = l.set("speed=3").expect_err("unknown");
        assert!(err.contains("speed"), "{err}");
        assert!(l.set("fuel").is_err());
    }
}
