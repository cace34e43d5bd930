//! Per-call store state: the limits' bookkeeping and the host side of the plugin imports.
//!
//! One [`CallState`] lives in exactly one `Store`, which lives for exactly one guest call, so
//! nothing here is shared between requests. Host functions stop the guest by returning an
//! [`Abort`] error; `call.rs` downcasts it back into the matching [`crate::ErrorKind`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;

use crate::backend::RewardBackend;
use crate::bindings::{wit, wit_log, wit_reward};
use crate::limits::Limits;
use crate::types::{LogLevel, LogLine, Message};

/// Why the host stopped a guest. Carried inside `wasmtime::Error` out of the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Abort {
    #[error("time limit exceeded")]
    Timeout,
    #[error("memory limit exceeded")]
    Memory,
    #[error("log limit exceeded")]
    LogLimit,
    #[error("reward quota exceeded: {0}")]
    RewardQuota(String),
    #[error("denied import `{0}`")]
    Denied(String),
    #[error("guest called exit")]
    Exit,
    #[error("the request was abandoned")]
    Cancelled,
    #[error("host call limit exceeded")]
    HostCalls,
    #[error("call deadline exceeded")]
    Deadline,
}

/// Memory accounting for the guest's linear memories and tables.
#[derive(Debug)]
pub(crate) struct Limiter {
    memory_cap: usize,
    /// Largest total memory size granted so far, for `plugin check` reports.
    pub(crate) peak_bytes: usize,
}

/// Tables hold pointers; 1M entries is far beyond any real guest and bounds host memory.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            // An error (not `Ok(false)`) so the guest traps instead of seeing -1 and looping.
            return Err(wasmtime::Error::new(Abort::Memory));
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Err(wasmtime::Error::new(Abort::Memory));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

/// Most random bytes one WASI call may ask for (the host allocates them before the guest gets
/// them).
const MAX_RANDOM_BYTES: u64 = 1 << 16;

/// What one log line costs beyond its text, so that empty lines cannot pile up for free.
const LOG_LINE_COST: usize = 64;

/// Captured guest output, capped at `limits.max_log_bytes` in total.
#[derive(Debug, Default)]
pub(crate) struct LogBuffer {
    pub(crate) lines: Vec<LogLine>,
    bytes: usize,
    cap: usize,
    /// Unterminated guest stdout/stderr text, by stream (0 = stdout, 1 = stderr).
    partial: [Vec<u8>; 2],
}

impl LogBuffer {
    fn charge(&mut self, n: usize) -> wasmtime::Result<()> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.cap {
            return Err(wasmtime::Error::new(Abort::LogLimit));
        }
        Ok(())
    }

    /// Bytes still allowed, for WASI `check-write`.
    pub(crate) fn remaining(&self) -> usize {
        self.cap.saturating_sub(self.bytes)
    }

    pub(crate) fn push(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        self.charge(message.len() + LOG_LINE_COST)?;
        self.lines.push(LogLine { level, message });
        Ok(())
    }

    /// Appends raw guest stdout (`stream` 0) or stderr (1) bytes, split into lines.
    pub(crate) fn write_stream(&mut self, stream: usize, bytes: &[u8]) -> wasmtime::Result<()> {
        self.charge(bytes.len())?;
        let level = if stream == 0 { LogLevel::Info } else { LogLevel::Warn };
        let buf = &mut self.partial[stream.min(1)];
        buf.extend_from_slice(bytes);
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            self.bytes = self.bytes.saturating_add(LOG_LINE_COST);
            if self.bytes > self.cap {
                return Err(wasmtime::Error::new(Abort::LogLimit));
            }
            self.lines.push(LogLine { level, message: text });
        }
        Ok(())
    }

    /// Moves unterminated stream text into lines (end of call).
    pub(crate) fn flush_partial(&mut self) {
        for (stream, buf) in self.partial.iter_mut().enumerate() {
            if !buf.is_empty() {
                let level = if stream == 0 { LogLevel::Info } else { LogLevel::Warn };
                let message = String::from_utf8_lossy(buf).into_owned();
                buf.clear();
                self.lines.push(LogLine { level, message });
            }
        }
    }
}

/// Everything one guest call may touch.
pub(crate) struct CallState {
    pub(crate) limits: Limits,
    pub(crate) limiter: Limiter,
    pub(crate) log: LogBuffer,
    reward: Arc<dyn RewardBackend>,
    pub(crate) reward_responses: u64,
    reward_bytes: u64,
    /// When the call started, and how much of it was spent inside host imports: the epoch
    /// callback charges the guest only for the difference.
    pub(crate) started: Instant,
    pub(crate) host_time: Duration,
    /// The last failure the reward backend reported to the guest. A guest that gives up
    /// after it (a policy error, a trap) failed because of it, and the host reports this
    /// typed cause instead of the guest's own words (see `Plugin::select`).
    pub(crate) reward_failure: Option<crate::backend::RewardError>,
    /// Calls from the guest into the host so far (counted by the store's call hook).
    pub(crate) host_calls: u64,
    /// SplitMix64 state behind the guest's WASI randomness, seeded by the request's seed.
    rng: u64,
    /// The guest's monotonic clock, in nanoseconds: virtual, one step per reading.
    pub(crate) clock_ns: u64,
}

impl CallState {
    pub(crate) fn new(limits: Limits, reward: Arc<dyn RewardBackend>, seed: u64) -> Self {
        let log = LogBuffer { cap: limits.max_log_bytes, ..LogBuffer::default() };
        Self {
            limiter: Limiter { memory_cap: limits.memory_bytes, peak_bytes: 0 },
            log,
            reward,
            reward_responses: 0,
            reward_bytes: 0,
            started: Instant::now(),
            host_time: Duration::ZERO,
            reward_failure: None,
            host_calls: 0,
            rng: seed ^ 0x6172_6269_7465_7221,
            clock_ns: 0,
            limits,
        }
    }

    /// The next value of the call's deterministic generator (SplitMix64).
    pub(crate) fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `len` deterministic bytes, at most [`MAX_RANDOM_BYTES`] per call.
    pub(crate) fn random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_BYTES {
            return Err(wasmtime::Error::new(Abort::Denied(format!(
                "wasi:random: {len} bytes in one call (at most {MAX_RANDOM_BYTES})"
            ))));
        }
        let mut out = Vec::with_capacity(len as usize);
        while (out.len() as u64) < len {
            let word = self.next_random().to_le_bytes();
            let take = (len as usize - out.len()).min(8);
            out.extend_from_slice(&word[..take]);
        }
        Ok(out)
    }

    /// Charges one guest → host call (every import and libcall passes here).
    pub(crate) fn charge_host_call(&mut self) -> wasmtime::Result<()> {
        self.host_calls += 1;
        if self.host_calls > self.limits.max_host_calls {
            return Err(wasmtime::Error::new(Abort::HostCalls));
        }
        Ok(())
    }

    /// Fails once the whole call, host time included, is past its deadline.
    pub(crate) fn check_deadline(&self) -> wasmtime::Result<()> {
        if self.started.elapsed() >= self.limits.deadline { Err(wasmtime::Error::new(Abort::Deadline)) } else { Ok(()) }
    }

    /// Stops the guest (at a host call or epoch tick) once its request was abandoned.
    pub(crate) fn check_cancelled(&self) -> wasmtime::Result<()> {
        if self.reward.cancelled() { Err(wasmtime::Error::new(Abort::Cancelled)) } else { Ok(()) }
    }

    /// Guest-only wall time so far.
    pub(crate) fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.host_time)
    }

    fn charge_reward(&mut self, responses: u64, bytes: u64) -> wasmtime::Result<()> {
        self.reward_responses = self.reward_responses.saturating_add(responses);
        self.reward_bytes = self.reward_bytes.saturating_add(bytes);
        if self.reward_responses > self.limits.reward_responses {
            return Err(wasmtime::Error::new(Abort::RewardQuota(format!(
                "asked to score {} responses, limit {}",
                self.reward_responses, self.limits.reward_responses
            ))));
        }
        if self.reward_bytes > self.limits.reward_bytes {
            return Err(wasmtime::Error::new(Abort::RewardQuota(format!(
                "sent {} bytes of text, limit {}",
                self.reward_bytes, self.limits.reward_bytes
            ))));
        }
        Ok(())
    }
}

impl wit::Host for CallState {}

impl wit_log::Host for CallState {
    fn log(&mut self, level: wit_log::Level, message: String) -> wasmtime::Result<()> {
        self.log.push(level.into(), message)
    }
}

impl wit_reward::Host for CallState {
    fn score(
        &mut self,
        conversation: Vec<wit::Message>,
        responses: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<f32>, String>> {
        let text_bytes: usize = conversation.iter().map(|m| m.role.len() + m.content.len()).sum::<usize>()
            + responses.iter().map(String::len).sum::<usize>();
        self.charge_reward(responses.len() as u64, text_bytes as u64)?;
        self.check_cancelled()?;
        self.check_deadline()?;
        if responses.is_empty() {
            // Nothing to score: no engine round trip (the call itself was charged).
            return Ok(Ok(Vec::new()));
        }
        let conversation: Vec<Message> = conversation.into_iter().map(Into::into).collect();
        let started = Instant::now();
        let result = self.reward.score(&conversation, &responses);
        self.host_time += started.elapsed();
        self.check_cancelled()?;
        self.check_deadline()?;
        let result = result.map_err(|e| {
            let message = e.message.clone();
            self.reward_failure = Some(e);
            message
        });
        Ok(match result {
            Ok(scores) if scores.len() != responses.len() => {
                Err(format!("reward backend returned {} scores for {} responses", scores.len(), responses.len()))
            }
            other => other,
        })
    }

    fn count_tokens(&mut self, text: String) -> wasmtime::Result<u32> {
        // At least one byte per call, so a loop of empty calls still drains the quota.
        self.charge_reward(0, text.len().max(1) as u64)?;
        self.check_cancelled()?;
        let started = Instant::now();
        let n = self.reward.count_tokens(&text);
        self.host_time += started.elapsed();
        Ok(n)
    }
}
