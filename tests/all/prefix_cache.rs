//! The engine's prefix KV cache: reused prompts give the same scores as recomputed ones, it
//! stays within its byte bound, and its counters say what happened.

use arbiter_engine::{EngineOptions, LlamaRewardModel, Message};

use crate::engine::fixtures;

fn load(bytes: usize) -> LlamaRewardModel {
    let options = EngineOptions { prefix_cache_bytes: bytes, prefix_cache_block: 16, ..EngineOptions::default() };
    LlamaRewardModel::load(&fixtures().join("tiny-llama-f32"), options).expect("load")
}

fn conversation(question: &str) -> Vec<Message> {
    vec![
        Message { role: "system".into(), content: "You are a careful assistant. ".repeat(12) },
        Message { role: "user".into(), content: question.into() },
    ]
}

fn responses() -> Vec<String> {
    ["Paris.", "It is Paris, the capital since 987.", "Lyon", ""].iter().map(|s| (*s).to_owned()).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn cached_prompts_score_as_recomputed_ones() {
    let (a, b) = (conversation("What is the capital of France?"), conversation("Name a large French city."));
    let plain = load(0);
    assert!(plain.prefix_cache_stats().is_none(), "0 bytes turns the cache off");
    let want_a = plain.score_with_stats(&a, &responses()).expect("a").0;
    let want_b = plain.score_with_stats(&b, &responses()).expect("b").0;

    let cached = load(1 << 30);
    let (first, stats) = cached.score_with_stats(&a, &responses()).expect("a");
    assert!(stats.prefix_tokens > 64, "the prompt spans several 16-token blocks: {stats:?}");
    assert_eq!(cached.prefix_cache_stats().expect("on").hits, 0);
    let again = cached.score_with_stats(&a, &responses()).expect("a again").0;
    let hits = cached.prefix_cache_stats().expect("on").hits;
    // Every block of the prompt is reused, its final partial block included.
    assert_eq!(hits as usize, stats.prefix_tokens.div_ceil(16), "{stats:?}");
    assert!(stats.prefix_tokens % 16 != 0, "the prompt ends in a partial block: {stats:?}");
    // A different question after the same system prompt reuses the common blocks only.
    let other = cached.score_with_stats(&b, &responses()).expect("b").0;
    let after = cached.prefix_cache_stats().expect("on");
    assert!(after.hits > hits && after.hits < hits + hits, "partial reuse: {after:?}");
    for (got, want) in [(&first, &want_a), (&again, &want_a), (&other, &want_b)] {
        assert!(max_diff(got, want) <= 1e-6, "{got:?} vs {want:?}");
    }
    // One response at a time (a lazy policy's calls) also matches.
    for (i, r) in responses().iter().enumerate() {
        let one = cached.score_with_stats(&a, std::slice::from_ref(r)).expect("one").0;
        let alone = plain.score_with_stats(&a, std::slice::from_ref(r)).expect("alone").0;
        assert!(max_diff(&one, &alone) <= 1e-6, "response {i}: {one:?} vs {alone:?}");
    }
}

#[test]
fn the_cache_stays_within_its_bytes_and_evicts_oldest_first() {
    let probe = load(1 << 30);
    let (_, stats) = probe.score_with_stats(&conversation("first"), &responses()).expect("probe");
    let s = probe.prefix_cache_stats().expect("on");
    // Key/value bytes are the same for every token: a whole 16-token block's worth.
    let per_block = s.bytes as usize / stats.prefix_tokens * 16;
    // Room for three blocks: every prompt here has more, so inserting evicts.
    let small = load(3 * per_block);
    for q in ["first", "second question", "third one", "first"] {
        let got = small.score_with_stats(&conversation(q), &responses()).expect("score").0;
        let want = load(0).score_with_stats(&conversation(q), &responses()).expect("plain").0;
        assert!(max_diff(&got, &want) <= 1e-6);
        let s = small.prefix_cache_stats().expect("on");
        assert!(s.bytes as usize <= 3 * per_block && s.blocks <= 3, "{s:?}");
    }
    assert!(small.prefix_cache_stats().expect("on").evictions > 0);
}
