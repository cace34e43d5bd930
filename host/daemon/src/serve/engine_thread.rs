//! The engine behind a bounded queue: a batcher thread and an engine thread.
//!
//! Request handlers tokenize on a blocking thread (`prepare`), then enqueue. The batcher takes
//! the first job, adds queued jobs while the batch stays under the model's batch budget, drops
//! jobs whose request was abandoned, and hands the batch to the engine thread through a channel
//! of capacity one — so one batch is always formed while the previous one computes. candle runs
//! only on the engine thread, never on a tokio worker. Errors stay typed from the engine thread
//! to the caller: [`RewardError`], whose kind the API maps to a status in one place. What one
//! request may ask of the queue (cancellation, its token budget, batch-sized parts) is
//! `request.rs`'s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Instant;

use arbiter_engine::{EngineError, Message, Prepared, RewardModel};
use arbiter_plugins::{RewardError, RewardErrorKind};
use tokio::sync::oneshot;

use super::metrics::Metrics;
use super::request::{Cancel, RequestBackend, RequestCtx};
use crate::reward::reward_error;

type Reply = oneshot::Sender<Result<Vec<f32>, EngineError>>;

struct Job {
    prepared: Prepared,
    reply: Reply,
    cancel: Cancel,
}

impl Job {
    /// Nobody will read the answer: the awaiting future was dropped or the request abandoned.
    fn abandoned(&self) -> bool {
        self.reply.is_closed() || self.cancel.is_set()
    }
}

pub(super) fn engine_gone() -> RewardError {
    RewardError::new(RewardErrorKind::Failed, "engine failure: the engine thread has stopped")
}

/// Handle to the engine threads. Cheap to clone.
#[derive(Clone)]
pub struct EngineHandle {
    model: Arc<dyn RewardModel>,
    /// Bounded: a full queue is an immediate error, never a wait.
    queue: SyncSender<Job>,
    /// Jobs queued and not yet taken by the batcher (the queue-depth gauge).
    depth: Arc<AtomicUsize>,
    capacity: usize,
    /// False after an engine failure, until a health check's real forward succeeds again.
    healthy: Arc<AtomicBool>,
    /// Tokens one request may have scored in all (`--max-request-tokens`).
    pub(super) max_request_tokens: usize,
    /// Tokens per engine batch: a request larger than this is queued in parts of this size.
    pub(super) max_batch_tokens: usize,
}

impl EngineHandle {
    /// Starts the batcher and engine threads; batches are filled to the model's own
    /// `max_batch_tokens`.
    pub fn start(
        model: Arc<dyn RewardModel>,
        capacity: usize,
        max_request_tokens: usize,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let capacity = capacity.max(1);
        let (queue, jobs) = sync_channel::<Job>(capacity);
        let (batches_tx, batches) = sync_channel::<Vec<Job>>(1);
        let depth = Arc::new(AtomicUsize::new(0));
        let healthy = Arc::new(AtomicBool::new(true));
        let max_batch_tokens = model.limits().max_batch_tokens;
        {
            let depth = depth.clone();
            let metrics = metrics.clone();
            std::thread::Builder::new()
                .name("arbiter-batcher".into())
                .spawn(move || batcher(jobs, batches_tx, depth, max_batch_tokens, metrics))?;
        }
        {
            let model = model.clone();
            let healthy = healthy.clone();
            std::thread::Builder::new()
                .name("arbiter-engine".into())
                .spawn(move || engine(model, batches, healthy, metrics))?;
        }
        Ok(Self { model, queue, depth, capacity, healthy, max_request_tokens, max_batch_tokens })
    }

    /// The model (for descriptions, limits and token counts).
    pub fn model(&self) -> &Arc<dyn RewardModel> {
        &self.model
    }

    /// Jobs waiting.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Most jobs that may wait.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the last engine call succeeded.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub(super) fn enqueue(
        &self,
        prepared: Prepared,
        cancel: Cancel,
    ) -> Result<oneshot::Receiver<Result<Vec<f32>, EngineError>>, RewardError> {
        let (reply, rx) = oneshot::channel();
        self.depth.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(Job { prepared, reply, cancel }) {
            Ok(()) => Ok(rx),
            Err(e) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => RewardError::new(
                        RewardErrorKind::Overloaded,
                        format!("the scoring queue is full ({} jobs waiting; --max-queued-jobs)", self.capacity),
                    ),
                    TrySendError::Disconnected(_) => engine_gone(),
                })
            }
        }
    }

    /// The engine's answer for one job, typed.
    pub(super) fn answer(
        reply: Result<Result<Vec<f32>, EngineError>, oneshot::error::RecvError>,
        cancel: &Cancel,
    ) -> Result<Vec<f32>, RewardError> {
        match reply {
            Ok(result) => result.map_err(|e| reward_error(&e)),
            // The batcher drops the job (and its reply) only for an abandoned request.
            Err(_) if cancel.is_set() => Err(super::request::cancelled()),
            Err(_) => Err(engine_gone()),
        }
    }

    /// Scores responses to a conversation from async code (see [`EngineHandle::score_with`]).
    /// Returns the scores and the number of tokens scored.
    pub async fn score(
        &self,
        conversation: Vec<Message>,
        responses: Vec<String>,
    ) -> Result<(Vec<f32>, usize), RewardError> {
        let model = self.model.clone();
        self.score_with(move || model.prepare(&conversation, &responses)).await
    }

    /// Scores texts already rendered with the chat template (no template, no special tokens
    /// added), e.g. OpenRLHF's `query` or vLLM's `input`.
    pub async fn score_texts(&self, texts: Vec<String>) -> Result<(Vec<f32>, usize), RewardError> {
        let model = self.model.clone();
        self.score_with(move || model.prepare_texts(&texts)).await
    }

    /// Tokenizes (`prepare`) on a blocking thread, then awaits the engine in batch-sized parts
    /// (other requests' work runs between them). Dropping the future abandons the request.
    async fn score_with(
        &self,
        prepare: impl FnOnce() -> arbiter_engine::Result<Prepared> + Send + 'static,
    ) -> Result<(Vec<f32>, usize), RewardError> {
        let prepared = tokio::task::spawn_blocking(prepare)
            .await
            .map_err(|e| RewardError::new(RewardErrorKind::Failed, format!("tokenizer task failed: {e}")))?
            .map_err(|e| reward_error(&e))?;
        let tokens = prepared.tokens();
        let request = RequestCtx::new(self, Cancel::default());
        let mut scores = Vec::with_capacity(prepared.responses.len());
        for part in request.parts(prepared)? {
            let rx = self.enqueue(part, request.cancel().clone())?;
            scores.extend(Self::answer(rx.await, request.cancel())?);
        }
        Ok((scores, tokens))
    }

    /// The [`arbiter_plugins::RewardBackend`] for one request's plugins and pipeline,
    /// abandoned with `cancel`.
    pub fn backend(&self, cancel: Cancel) -> RequestBackend {
        RequestBackend::new(self, RequestCtx::new(self, cancel))
    }

    /// A real tiny forward through the queue; restores `healthy` when it succeeds.
    pub async fn probe(&self) -> Result<(), RewardError> {
        let conversation = vec![Message { role: "user".into(), content: "ping".into() }];
        self.score(conversation, vec!["pong".into()]).await?;
        self.healthy.store(true, Ordering::Relaxed);
        Ok(())
    }
}

fn batcher(
    jobs: Receiver<Job>,
    batches: SyncSender<Vec<Job>>,
    depth: Arc<AtomicUsize>,
    max_tokens: usize,
    metrics: Arc<Metrics>,
) {
    let mut carry: Option<Job> = None;
    loop {
        let first = match carry.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => {
                    depth.fetch_sub(1, Ordering::Relaxed);
                    job
                }
                Err(_) => return,
            },
        };
        let mut tokens = first.prepared.tokens();
        let mut batch = vec![first];
        while tokens < max_tokens {
            match jobs.try_recv() {
                Ok(job) => {
                    depth.fetch_sub(1, Ordering::Relaxed);
                    if job.abandoned() {
                        metrics.dropped_jobs.inc();
                        continue;
                    }
                    if tokens + job.prepared.tokens() > max_tokens {
                        carry = Some(job);
                        break;
                    }
                    tokens += job.prepared.tokens();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        keep_open(&mut batch, &metrics);
        if batch.is_empty() {
            continue;
        }
        metrics.batch_requests.observe(batch.len() as f64);
        metrics.batch_tokens.observe(tokens as f64);
        if batches.send(batch).is_err() {
            return;
        }
    }
}

/// Drops the jobs of abandoned requests, counting them.
fn keep_open(batch: &mut Vec<Job>, metrics: &Metrics) {
    batch.retain(|j| {
        let open = !j.abandoned();
        if !open {
            metrics.dropped_jobs.inc();
        }
        open
    });
}

fn engine(model: Arc<dyn RewardModel>, batches: Receiver<Vec<Job>>, healthy: Arc<AtomicBool>, metrics: Arc<Metrics>) {
    while let Ok(mut batch) = batches.recv() {
        // Clients may have left while the batch waited for the previous one.
        keep_open(&mut batch, &metrics);
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let (prepared, replies): (Vec<Prepared>, Vec<_>) = batch.into_iter().map(|j| (j.prepared, j.reply)).unzip();
        let results = model.score_prepared(&prepared);
        metrics.engine_seconds.observe(started.elapsed().as_secs_f64());
        let failed = results.iter().any(|r| matches!(r, Err(EngineError::Compute(_))));
        healthy.store(!failed, Ordering::Relaxed);
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}
