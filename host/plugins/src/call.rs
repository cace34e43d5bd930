//! One guest call: a fresh `Store` with every limit armed, and the mapping of whatever
//! stopped the guest to an [`ErrorKind`].
//!
//! Invariant: no guest code runs in a `Store` made anywhere but [`new_store`], so fuel, the
//! epoch deadline and the memory cap are always armed.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{CallHook, Engine, Store, Trap, UpdateDeadline};

use crate::backend::RewardBackend;
use crate::error::ErrorKind;
use crate::limits::Limits;
use crate::state::{Abort, CallState};
use crate::types::LogLine;

/// What one call cost, for reports and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStats {
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Largest linear memory size granted, in bytes.
    pub peak_memory_bytes: usize,
    /// Wall time of the whole call, instantiation included.
    pub wall: Duration,
    /// Wall time excluding time spent inside host imports.
    pub guest_time: Duration,
    /// Responses the guest scored through `reward.score`.
    pub reward_responses: u64,
    /// Everything the guest logged (log import, stdout, stderr).
    pub log: Vec<LogLine>,
}

/// A store for one call, with fuel, epoch deadline and memory limiter armed.
/// `seed` seeds the call's WASI randomness (the request's seed: a call stays reproducible).
pub(crate) fn new_store(
    engine: &Engine,
    limits: &Limits,
    reward: Arc<dyn RewardBackend>,
    seed: u64,
) -> Store<CallState> {
    let mut store = Store::new(engine, CallState::new(limits.clone(), reward, seed));
    store.limiter(|s| &mut s.limiter);
    // `set_fuel` only fails when fuel is disabled in the engine, which `PluginHost::new` never does.
    let _ = store.set_fuel(limits.fuel);
    store.set_epoch_deadline(1);
    store.call_hook(|mut ctx, hook| match hook {
        CallHook::CallingHost => ctx.data_mut().charge_host_call(),
        _ => Ok(()),
    });
    store.epoch_deadline_callback(|ctx| {
        let state = ctx.data();
        state.check_cancelled()?;
        state.check_deadline()?;
        if state.guest_time() >= state.limits.timeout {
            Err(wasmtime::Error::new(Abort::Timeout))
        } else {
            Ok(UpdateDeadline::Continue(1))
        }
    });
    store
}

/// Collects the call's cost and log out of its store.
pub(crate) fn finish(store: &mut Store<CallState>) -> CallStats {
    let fuel_left = store.get_fuel().unwrap_or(0);
    let state = store.data_mut();
    state.log.flush_partial();
    CallStats {
        fuel_used: state.limits.fuel.saturating_sub(fuel_left),
        peak_memory_bytes: state.limiter.peak_bytes,
        wall: state.started.elapsed(),
        guest_time: state.guest_time(),
        reward_responses: state.reward_responses,
        log: std::mem::take(&mut state.log.lines),
    }
}

/// Maps the error that ended a call to its kind. `stack_cap` is the engine's stack limit.
pub(crate) fn classify(err: &wasmtime::Error, stats: &CallStats, limits: &Limits, stack_cap: usize) -> ErrorKind {
    if let Some(abort) = err.downcast_ref::<Abort>() {
        return match abort {
            Abort::Timeout => ErrorKind::Timeout { limit_ms: duration_ms(limits.timeout) },
            Abort::Memory => ErrorKind::Memory { limit_bytes: limits.memory_bytes },
            Abort::LogLimit => ErrorKind::LogLimit { limit_bytes: limits.max_log_bytes },
            Abort::RewardQuota(m) => ErrorKind::RewardQuota(m.clone()),
            Abort::Denied(what) => ErrorKind::Denied(what.clone()),
            Abort::Exit => ErrorKind::Trap(with_stderr("the guest called wasi:cli/exit".into(), stats)),
            Abort::Cancelled => ErrorKind::Cancelled,
            Abort::HostCalls => ErrorKind::HostCalls { limit: limits.max_host_calls },
            Abort::Deadline => ErrorKind::Deadline { limit_ms: duration_ms(limits.deadline) },
        };
    }
    if let Some(pool) = err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return ErrorKind::Busy(pool.to_string());
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => ErrorKind::OutOfFuel { limit: limits.fuel },
        Some(Trap::StackOverflow) => ErrorKind::StackOverflow { limit_bytes: stack_cap },
        Some(Trap::Interrupt) => ErrorKind::Timeout { limit_ms: duration_ms(limits.timeout) },
        Some(trap) => ErrorKind::Trap(with_stderr(trap.to_string(), stats)),
        // Not a trap: the guest handed the host something unliftable (bad pointer, invalid
        // UTF-8, bad discriminant) or instantiation failed.
        None => ErrorKind::Trap(with_stderr(format!("{err:#}"), stats)),
    }
}

/// Appends the tail of the guest's stderr (where a Rust panic message lands) to `msg`.
fn with_stderr(msg: String, stats: &CallStats) -> String {
    let tail: Vec<&str> = stats
        .log
        .iter()
        .filter(|l| l.level == crate::types::LogLevel::Warn)
        .map(|l| l.message.as_str())
        .filter(|m| !m.trim().is_empty())
        .collect();
    if tail.is_empty() {
        return msg;
    }
    let start = tail.len().saturating_sub(3);
    let mut text = tail[start..].join(" | ");
    if text.len() > 1024 {
        let mut cut = 1024;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    format!("{msg}; guest stderr: {text}")
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
