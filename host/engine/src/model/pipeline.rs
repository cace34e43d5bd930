//! Several batches through a model split over devices, pipelined: while the second device runs
//! its layers on batch 1, the first runs its layers on batch 2, so with a batch per device in
//! flight every device is busy instead of each waiting for the one before it (GPipe-style
//! micro-batching, forward only).
//!
//! One thread per stage (a run of layers on one device, see [`Llama::stages`]); batches travel
//! between stages in order over channels of capacity 1, so at most one batch's activations wait
//! at each boundary. Every batch runs exactly the layers, in exactly the order, of
//! [`Llama::forward`]: the same computation in a different interleaving. Only the last hidden
//! rows come back (what scoring needs); each batch's key/values are dropped as soon as its
//! layer has used them, as in a one-device run.
//!
//! Invariant: the rows for batch `i` are `forward(batches[i])`'s, whatever the stage count; a
//! failure in one batch fails that batch only.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use candle_core::Tensor;

use super::{Chunk, Hidden, Llama};
use crate::error::{EngineError, Result};

/// What travels between stages: a batch's index and its hidden state (or why it failed).
type Message = (usize, Result<Hidden>);

impl Llama {
    /// Each batch's last hidden rows (as [`Llama::forward`] returns them in `ChunkOut::last`);
    /// pipelined over the stages when the model spans several devices and there is more than
    /// one batch.
    pub fn forward_batches(&self, batches: &[Vec<Chunk<'_>>]) -> Vec<Result<Vec<Tensor>>> {
        let stages = self.stages();
        if stages.len() < 2 || batches.len() < 2 {
            return batches.iter().map(|b| Ok(self.forward(b)?.into_iter().map(|o| o.last).collect())).collect();
        }
        let mut finished: Vec<Option<Result<Hidden>>> = batches.iter().map(|_| None).collect();
        std::thread::scope(|scope| {
            let (first_tx, mut rx) = sync_channel::<Message>(1);
            for range in stages.iter().cloned() {
                let (tx, next_rx) = sync_channel::<Message>(1);
                let input = std::mem::replace(&mut rx, next_rx);
                scope.spawn(move || self.stage(range, batches, input, tx));
            }
            scope.spawn(move || {
                for (i, batch) in batches.iter().enumerate() {
                    if first_tx.send((i, self.embed(batch))).is_err() {
                        return; // a stage stopped; its batches are reported below
                    }
                }
            });
            for (i, hidden) in rx {
                finished[i] = Some(hidden);
            }
        });
        finished
            .into_iter()
            .zip(batches)
            .map(|(hidden, batch)| {
                let hidden = hidden.ok_or_else(|| EngineError::Compute("a pipeline stage stopped".into()))??;
                self.last_rows(hidden, batch)
            })
            .collect()
    }

    /// One stage's thread: runs layers `range` on each batch as it arrives and passes it on.
    fn stage(
        &self,
        range: std::ops::Range<usize>,
        batches: &[Vec<Chunk<'_>>],
        input: Receiver<Message>,
        output: SyncSender<Message>,
    ) {
        for (i, hidden) in input {
            let mut scratch = self.new_kv(&batches[i]);
            let hidden = hidden.and_then(|h| self.run_layers(range.clone(), h, &batches[i], &mut scratch));
            if output.send((i, hidden)).is_err() {
                return;
            }
        }
    }
}
