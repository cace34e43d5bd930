//! The engine behind a bounded queue: a batcher thread and an engine thread.
//!
//! Request handlers tokenize on a blocking thread (`prepare`), then enqueue. The batcher takes
//! the first job, adds queued jobs while the batch stays under `max_batch_tokens`, drops jobs
//! whose client went away, and hands the batch to the engine thread through a channel of
//! capacity one — so one batch is always formed while the previous one computes. candle runs
//! only on the engine thread, never on a tokio worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Instant;

use arbiter_engine::{EngineError, Message, Prepared, RewardModel};
use tokio::sync::oneshot;

use super::metrics::Metrics;

/// Why a scoring call failed.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// The queue is full: shed load now rather than wait.
    #[error("the scoring queue is full ({0} requests waiting)")]
    QueueFull(usize),
    /// The input cannot be scored (too long, template failure).
    #[error("{0}")]
    Input(EngineError),
    /// The engine failed, or is gone.
    #[error("engine failure: {0}")]
    Engine(String),
}

struct Job {
    prepared: Prepared,
    reply: oneshot::Sender<Result<Vec<f32>, String>>,
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
    /// Starts the batcher and engine threads.
    pub fn start(
        model: Arc<dyn RewardModel>,
        capacity: usize,
        max_batch_tokens: usize,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let (queue, jobs) = sync_channel::<Job>(capacity);
        let (batches_tx, batches) = sync_channel::<Vec<Job>>(1);
        let depth = Arc::new(AtomicUsize::new(0));
        let healthy = Arc::new(AtomicBool::new(true));
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

    /// The model (for descriptions and token counts).
    pub fn model(&self) -> &Arc<dyn RewardModel> {
        &self.model
    }

    /// Jobs waiting.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Whether the last engine call succeeded.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn enqueue(&self, prepared: Prepared) -> Result<oneshot::Receiver<Result<Vec<f32>, String>>, ScoreError> {
        let (reply, rx) = oneshot::channel();
        self.depth.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(Job { prepared, reply }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                Err(ScoreError::QueueFull(self.capacity))
            }
            Err(TrySendError::Disconnected(_)) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                Err(ScoreError::Engine("the engine thread has stopped".into()))
            }
        }
    }

    /// Scores from async code: tokenizes on a blocking thread, then awaits the engine.
    /// Returns the scores and the number of tokens scored.
    pub async fn score(
        &self,
        conversation: Vec<Message>,
        responses: Vec<String>,
    ) -> Result<(Vec<f32>, usize), ScoreError> {
        let model = self.model.clone();
        let prepared = tokio::task::spawn_blocking(move || model.prepare(&conversation, &responses))
            .await
            .map_err(|e| ScoreError::Engine(format!("tokenizer task failed: {e}")))?
            .map_err(ScoreError::Input)?;
        let tokens = prepared.tokens();
        let rx = self.enqueue(prepared)?;
        let scores = rx.await.map_err(|_| ScoreError::Engine("the engine dropped the request".into()))?;
        scores.map(|s| (s, tokens)).map_err(ScoreError::Engine)
    }

    /// Scores from a blocking thread (plugins' `reward` imports run on one).
    pub fn score_blocking(&self, conversation: &[Message], responses: &[String]) -> Result<Vec<f32>, ScoreError> {
        let prepared = self.model.prepare(conversation, responses).map_err(ScoreError::Input)?;
        let rx = self.enqueue(prepared)?;
        rx.blocking_recv()
            .map_err(|_| ScoreError::Engine("the engine dropped the request".into()))?
            .map_err(ScoreError::Engine)
    }

    /// A real tiny forward through the queue; restores `healthy` when it succeeds.
    pub async fn probe(&self) -> Result<(), ScoreError> {
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
                    if job.reply.is_closed() {
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

/// Drops the jobs whose client has gone away, counting them.
fn keep_open(batch: &mut Vec<Job>, metrics: &Metrics) {
    batch.retain(|j| {
        let open = !j.reply.is_closed();
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
            let _ = reply.send(result.map_err(|e| e.to_string()));
        }
    }
}
