//! One request's claim on the engine: its cancellation flag, its token budget across all its
//! scoring calls (`--max-request-tokens`), and the cutting of its work into batch-sized parts
//! that are queued one after another, so other requests' work runs between them and an
//! abandoned request stops at the next part.
//!
//! [`RequestBackend`] is the [`RewardBackend`] a request's plugins and selection pipeline
//! score through; `/v1/score` and the chat route use the same [`RequestCtx`] rules.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use arbiter_engine::Prepared;
use arbiter_plugins::{RewardBackend, RewardError, RewardErrorKind};

use super::engine_thread::EngineHandle;
use crate::reward::{reward_error, to_engine};

/// Set once the request that owns it is abandoned (its handler future was dropped because
/// the client went away). Shared by the handler, the plugin call and the queued jobs.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Whether the request was abandoned.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// A guard that sets the flag when dropped unless [`CancelOnDrop::disarm`]ed: held by a
    /// handler future, it fires exactly when hyper drops the future for a closed connection.
    pub fn on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(Some(self.clone()))
    }
}

/// See [`Cancel::on_drop`].
#[derive(Debug)]
pub struct CancelOnDrop(Option<Cancel>);

impl CancelOnDrop {
    /// The request completed: dropping the guard no longer cancels.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.0.store(true, Ordering::Relaxed);
        }
    }
}

pub(super) fn cancelled() -> RewardError {
    RewardError::new(RewardErrorKind::Cancelled, "the request was abandoned (its client went away)")
}

/// What one request may ask of the engine queue.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    cancel: Cancel,
    /// Tokens this request has sent to the engine so far, over all its calls.
    used: Arc<AtomicUsize>,
    max_request_tokens: usize,
    max_batch_tokens: usize,
}

impl RequestCtx {
    /// A fresh request on `engine`'s limits.
    pub fn new(engine: &EngineHandle, cancel: Cancel) -> Self {
        Self {
            cancel,
            used: Arc::default(),
            max_request_tokens: engine.max_request_tokens,
            max_batch_tokens: engine.max_batch_tokens.max(1),
        }
    }

    /// The request's cancellation flag.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// Charges `prepared` to the budget, then cuts it into parts of at most one batch each
    /// (whole candidates; a candidate larger than a batch is a part of its own).
    ///
    /// # Errors
    /// `TooLong` when the request's tokens over all its calls would pass the budget.
    pub fn parts(&self, prepared: Prepared) -> Result<Vec<Prepared>, RewardError> {
        let tokens = prepared.tokens();
        let before = self.used.fetch_add(tokens, Ordering::Relaxed);
        if before.saturating_add(tokens) > self.max_request_tokens {
            return Err(RewardError::new(
                RewardErrorKind::TooLong,
                format!(
                    "this request asks the engine for {} tokens in all, over the per-request budget of {} \
                     (--max-request-tokens)",
                    before.saturating_add(tokens),
                    self.max_request_tokens
                ),
            ));
        }
        Ok(split(prepared, self.max_batch_tokens))
    }
}

/// Consecutive candidates grouped into parts of at most `budget` tokens.
fn split(prepared: Prepared, budget: usize) -> Vec<Prepared> {
    if prepared.tokens() <= budget {
        return vec![prepared];
    }
    let mut parts: Vec<Prepared> = Vec::new();
    let mut tokens = 0;
    for (sequence, response) in prepared.sequences.into_iter().zip(prepared.responses) {
        let n = sequence.len();
        match parts.last_mut() {
            Some(part) if tokens + n <= budget => {
                part.sequences.push(sequence);
                part.responses.push(response);
                tokens += n;
            }
            _ => {
                parts.push(Prepared { sequences: vec![sequence], responses: vec![response] });
                tokens = n;
            }
        }
    }
    parts
}

/// The engine queue as one request's plugins see it. Its calls block (plugins run on blocking
/// threads); an abandoned request's calls fail with [`RewardErrorKind::Cancelled`], its queued
/// jobs are dropped before they reach the engine, and its remaining parts are never queued.
pub struct RequestBackend {
    engine: EngineHandle,
    request: RequestCtx,
}

impl RequestBackend {
    /// The backend of `request`.
    pub(super) fn new(engine: &EngineHandle, request: RequestCtx) -> Self {
        Self { engine: engine.clone(), request }
    }
}

impl RewardBackend for RequestBackend {
    fn score(&self, conversation: &[arbiter_plugins::Message], responses: &[String]) -> Result<Vec<f32>, RewardError> {
        let cancel = self.request.cancel();
        if cancel.is_set() {
            return Err(cancelled());
        }
        let prepared =
            self.engine.model().prepare(&to_engine(conversation), responses).map_err(|e| reward_error(&e))?;
        let mut scores = Vec::with_capacity(responses.len());
        for part in self.request.parts(prepared)? {
            if cancel.is_set() {
                return Err(cancelled());
            }
            let rx = self.engine.enqueue(part, cancel.clone())?;
            scores.extend(EngineHandle::answer(rx.blocking_recv(), cancel)?);
        }
        Ok(scores)
    }

    fn count_tokens(&self, text: &str) -> u32 {
        self.engine.model().count_tokens(text).unwrap_or(0)
    }

    fn describe(&self) -> String {
        self.engine.model().describe()
    }

    fn cancelled(&self) -> bool {
        self.request.cancel().is_set()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(lengths: &[usize]) -> Prepared {
        Prepared {
            sequences: lengths.iter().map(|&n| vec![0; n]).collect(),
            responses: (0..lengths.len()).map(|i| i.to_string()).collect(),
        }
    }

    #[test]
    fn parts_keep_candidate_order_and_stay_within_a_batch() {
        let parts = split(prepared(&[3, 4, 2, 9, 1, 1]), 6);
        let shapes: Vec<Vec<String>> = parts.iter().map(|p| p.responses.clone()).collect();
        assert_eq!(shapes, vec![vec!["0"], vec!["1", "2"], vec!["3"], vec!["4", "5"]]);
        assert_eq!(split(prepared(&[3, 3]), 6).len(), 1);
    }
}
