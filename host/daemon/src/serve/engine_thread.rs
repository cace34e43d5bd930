//! The engine behind a bounded queue: a batcher thread and an engine thread, and the
//! [`RewardBackend`] every plugin and handler scores through.
//!
//! Request handlers tokenize on a blocking thread (`prepare`), then enqueue. The batcher takes
//! the first job, adds queued jobs while the batch stays under the model's batch budget, drops
//! jobs whose request was abandoned, and hands the batch to the engine thread through a channel
//! of capacity one — so one batch is always formed while the previous one computes. candle runs
//! only on the engine thread, never on a tokio worker. Errors stay typed from the engine thread
//! to the caller: [`RewardError`], whose kind the API maps to a status in one place.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Instant;

use arbiter_engine::{EngineError, Message, Prepared, RewardModel};
use arbiter_plugins::{RewardBackend, RewardError, RewardErrorKind};
use tokio::sync::oneshot;

use super::metrics::Metrics;
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

fn cancelled() -> RewardError {
    RewardError::new(RewardErrorKind::Cancelled, "the request was abandoned (its client went away)")
}

fn engine_gone() -> RewardError {
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
}

impl EngineHandle {
    /// Starts the batcher and engine threads; batches are filled to the model's own
    /// `max_batch_tokens`.
    pub fn start(model: Arc<dyn RewardModel>, capacity: usize, metrics: Arc<Metrics>) -> std::io::Result<Self> {
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
        Ok(Self { model, queue, depth, capacity, healthy })
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

    fn enqueue(
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
    fn answer(
        reply: Result<Result<Vec<f32>, EngineError>, oneshot::error::RecvError>,
        cancel: &Cancel,
    ) -> Result<Vec<f32>, RewardError> {
        match reply {
            Ok(result) => result.map_err(|e| reward_error(&e)),
            // The batcher drops the job (and its reply) only for an abandoned request.
            Err(_) if cancel.is_set() => Err(cancelled()),
            Err(_) => Err(engine_gone()),
        }
    }

    /// Scores from async code: tokenizes on a blocking thread, then awaits the engine.
    /// Dropping the future abandons the job. Returns the scores and the number of tokens scored.
    pub async fn score(
        &self,
        conversation: Vec<Message>,
        responses: Vec<String>,
    ) -> Result<(Vec<f32>, usize), RewardError> {
        let model = self.model.clone();
        let prepared = tokio::task::spawn_blocking(move || model.prepare(&conversation, &responses))
            .await
            .map_err(|e| RewardError::new(RewardErrorKind::Failed, format!("tokenizer task failed: {e}")))?
            .map_err(|e| reward_error(&e))?;
        let tokens = prepared.tokens();
        let cancel = Cancel::default();
        let rx = self.enqueue(prepared, cancel.clone())?;
        Self::answer(rx.await, &cancel).map(|s| (s, tokens))
    }

    /// The [`RewardBackend`] for one request's plugins and pipeline, abandoned with `cancel`.
    pub fn backend(&self, cancel: Cancel) -> RequestBackend {
        RequestBackend { engine: self.clone(), cancel }
    }

    /// A real tiny forward through the queue; restores `healthy` when it succeeds.
    pub async fn probe(&self) -> Result<(), RewardError> {
        let conversation = vec![Message { role: "user".into(), content: "ping".into() }];
        self.score(conversation, vec!["pong".into()]).await?;
        self.healthy.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// The engine queue as one request's plugins see it. Its calls block (plugins run on blocking
/// threads); an abandoned request's calls fail with [`RewardErrorKind::Cancelled`] and its
/// queued jobs are dropped before they reach the engine.
pub struct RequestBackend {
    engine: EngineHandle,
    cancel: Cancel,
}

impl RewardBackend for RequestBackend {
    fn score(&self, conversation: &[arbiter_plugins::Message], responses: &[String]) -> Result<Vec<f32>, RewardError> {
        if self.cancel.is_set() {
            return Err(cancelled());
        }
        let prepared = self.engine.model.prepare(&to_engine(conversation), responses).map_err(|e| reward_error(&e))?;
        let rx = self.engine.enqueue(prepared, self.cancel.clone())?;
        EngineHandle::answer(rx.blocking_recv(), &self.cancel)
    }

    fn count_tokens(&self, text: &str) -> u32 {
        self.engine.model.count_tokens(text).unwrap_or(0)
    }

    fn describe(&self) -> String {
        self.engine.model.describe()
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_set()
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
