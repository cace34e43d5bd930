//! The prefix KV cache: key/value blocks of prompts already computed, reused across calls.
//!
//! A prompt's token ids are cut into blocks of `block` tokens, the last one possibly shorter
//! (a tail: a prompt that comes back whole is then reused whole, not up to its last full
//! block); block `i` is keyed by a hash chained over blocks `0..=i`, so a key names a whole
//! token prefix, never a block out of context. A tail's key differs from any full block's (its
//! tokens differ in number), so a tail is only ever the end of a chain. A lookup walks the chain from the first block and stops at the first miss; each hit
//! is verified against the stored tokens and parent key (a hash collision is a miss, never a
//! wrong reuse). Entries are bounded in bytes and evicted least recently used; a hit refreshes
//! every block of the chain at once, so ancestors are never older than their descendants.
//!
//! Invariant: a cached block holds exactly the key/values the engine would compute for those
//! tokens at those positions given the earlier blocks as context, so scores with and without
//! the cache are the same computation, partitioned differently (tested to 1e-6).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use candle_core::Tensor;

use crate::model::KvBlocks;

/// Counters, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefixCacheStats {
    /// Blocks found in the cache.
    pub hits: u64,
    /// Lookups that stopped at a block not in the cache (one per lookup at most).
    pub misses: u64,
    /// Blocks evicted to stay within the byte bound.
    pub evictions: u64,
    /// Bytes held now.
    pub bytes: u64,
    /// Blocks held now.
    pub blocks: u64,
}

struct Entry {
    parent: u64,
    /// Blocks before this one in its chain (evicted deepest-first among equally old blocks, so
    /// an eviction never strands a reachable block's descendants).
    depth: usize,
    tokens: Vec<u32>,
    /// One `(k, v)` per layer.
    kv: Vec<(Tensor, Tensor)>,
    bytes: usize,
    used: u64,
}

struct Inner {
    entries: HashMap<u64, Entry>,
    clock: u64,
    stats: PrefixCacheStats,
}

/// A bounded, LRU prefix cache of per-layer key/value blocks.
pub struct PrefixCache {
    block: usize,
    capacity: usize,
    /// Held only for map operations, never across model compute.
    inner: Mutex<Inner>,
}

fn chain(parent: u64, tokens: &[u32]) -> u64 {
    let mut h = DefaultHasher::new();
    parent.hash(&mut h);
    tokens.hash(&mut h);
    h.finish()
}

fn tensor_bytes(t: &Tensor) -> usize {
    t.elem_count() * t.dtype().size_in_bytes()
}

/// The root of every chain (an empty prefix).
const ROOT: u64 = 0x005e_ed0f_a1b1_7e12;

impl PrefixCache {
    /// A cache of blocks of `block` tokens holding at most `capacity` bytes; `None` when
    /// either is zero (the cache is off).
    pub fn new(block: usize, capacity: usize) -> Option<Self> {
        (block > 0 && capacity > 0).then(|| Self {
            block,
            capacity,
            inner: Mutex::new(Inner { entries: HashMap::new(), clock: 0, stats: PrefixCacheStats::default() }),
        })
    }

    /// Tokens per block.
    pub fn block(&self) -> usize {
        self.block
    }

    /// Counters so far.
    pub fn stats(&self) -> PrefixCacheStats {
        self.inner.lock().map(|i| i.stats).unwrap_or_default()
    }

    /// The longest cached prefix of `tokens` (whole blocks, then possibly the final partial
    /// block): its length and its blocks (one per layer per cached block, in order), for
    /// `layers` layers.
    pub fn lookup(&self, tokens: &[u32], layers: usize) -> (usize, KvBlocks) {
        let mut out = KvBlocks::empty(layers);
        let Ok(mut inner) = self.inner.lock() else { return (0, out) };
        inner.clock += 1;
        let now = inner.clock;
        let (mut key, mut len) = (ROOT, 0);
        for piece in tokens.chunks(self.block) {
            let next = chain(key, piece);
            match inner.entries.get_mut(&next) {
                Some(e) if e.parent == key && e.tokens == piece && e.kv.len() == layers => {
                    e.used = now;
                    for (layer, kv) in out.layers.iter_mut().zip(&e.kv) {
                        layer.push(kv.clone());
                    }
                    inner.stats.hits += 1;
                    key = next;
                    len += piece.len();
                }
                _ => {
                    inner.stats.misses += 1;
                    break;
                }
            }
        }
        (len, out)
    }

    /// Stores the blocks of `tokens` (starting at position 0; the last block may be partial):
    /// block `i` has key/values `kv.layers[l][i]` for every layer `l`. Blocks already present
    /// are refreshed.
    pub fn insert(&self, tokens: &[u32], kv: &KvBlocks) {
        let Ok(mut inner) = self.inner.lock() else { return };
        inner.clock += 1;
        let now = inner.clock;
        let mut key = ROOT;
        for (i, piece) in tokens.chunks(self.block).enumerate() {
            let next = chain(key, piece);
            let Some(blocks) = kv.layers.iter().map(|l| l.get(i).cloned()).collect::<Option<Vec<_>>>() else {
                break;
            };
            match inner.entries.get_mut(&next) {
                Some(e) if e.parent == key && e.tokens == piece => e.used = now,
                Some(_) => break, // a collision with another prefix: keep the resident one
                None => {
                    let bytes = blocks.iter().map(|(k, v)| tensor_bytes(k) + tensor_bytes(v)).sum::<usize>();
                    if bytes > self.capacity {
                        break;
                    }
                    inner.stats.bytes += bytes as u64;
                    inner.stats.blocks += 1;
                    let entry = Entry { parent: key, depth: i, tokens: piece.to_vec(), kv: blocks, bytes, used: now };
                    inner.entries.insert(next, entry);
                }
            }
            key = next;
        }
        while inner.stats.bytes as usize > self.capacity {
            let oldest =
                inner.entries.iter().min_by_key(|(_, e)| (e.used, std::cmp::Reverse(e.depth))).map(|(k, _)| *k);
            let Some(oldest) = oldest else { break };
            if let Some(e) = inner.entries.remove(&oldest) {
                inner.stats.bytes -= e.bytes as u64;
                inner.stats.blocks -= 1;
                inner.stats.evictions += 1;
            }
        }
    }
}
