//! The planner on Llama-3.3-70B in bf16. Expected placements were worked out by hand from the
//! model card's shapes (hidden 8192, 80 layers, 64/8 heads × 128, MLP 28672, vocab 128256):
//! a layer is 855,654,400 weights = 1.594 GiB in bf16; embeddings 1.957 GiB; key/values
//! 4,096 B per token per layer; a 4,096-token forward needs 1.125 GiB of working memory.

use super::{Budget, PlanRequest, plan};
use crate::config::{Head, ModelConfig};

const GIB: u64 = 1 << 30;

/// Llama-3.3-70B's shapes (also the GPU placement tests' model).
pub(crate) fn llama_70b() -> ModelConfig {
    ModelConfig {
        hidden_size: 8192,
        intermediate_size: 28672,
        num_layers: 80,
        num_heads: 64,
        num_kv_heads: 8,
        head_dim: 128,
        rms_norm_eps: 1e-5,
        rope_theta: 500_000.0,
        rope_scaling: None,
        max_position_embeddings: 131_072,
        vocab_size: 128_256,
        head: Head::LmHeadRow { tied: false },
    }
}

fn request(gib: &[u64], embeddings_on_host: bool) -> PlanRequest {
    PlanRequest {
        weight_bytes: 2,
        activation_bytes: 2,
        devices: gib.iter().enumerate().map(|(i, &g)| Budget { name: format!("cuda:{i}"), bytes: g * GIB }).collect(),
        embeddings_on_host,
        max_batch_tokens: 4096,
        prefix_tokens: 8192,
        chunk_tokens: 512,
    }
}

fn layers(p: &super::Plan) -> Vec<usize> {
    p.devices.iter().map(|d| d.layers.len()).collect()
}

fn check_invariants(p: &super::Plan) {
    let mut next = 0;
    for d in &p.devices {
        assert_eq!(d.layers.start, next, "contiguous, in order: {p}");
        next = d.layers.end;
        assert!(d.weights + d.kv + d.workspace <= d.budget, "{} over budget: {p}", d.name);
    }
    assert_eq!(next, 80, "every layer placed once: {p}");
}

#[test]
fn one_h200_holds_the_whole_model_at_a_4096_token_batch() {
    let p = plan(&llama_70b(), &request(&[139], false)).expect("fits");
    check_invariants(&p);
    assert_eq!((layers(&p), p.max_batch_tokens), (vec![80], 4096));
    let d = &p.devices[0];
    // 80 layers + embeddings + final norm and reward row.
    assert_eq!(d.weights, 80 * 1_711_308_800 + 2_101_346_304 + 32_768);
    assert_eq!(d.kv, 80 * 4096 * (8192 + 4096));
    assert_eq!(d.workspace, 4096 * 278_528 + 64 * 512 * 512 * 4);
}

#[test]
fn two_80gb_four_40gb_and_eight_24gb_cards_split_evenly() {
    let cfg = llama_70b();
    let p = plan(&cfg, &request(&[79, 79], false)).expect("2x80");
    check_invariants(&p);
    assert_eq!(layers(&p), vec![40, 40]);
    let p = plan(&cfg, &request(&[39; 4], false)).expect("4x40");
    check_invariants(&p);
    // Capacities 21 (it also holds the embeddings), 23, 23, 23 → shares 18+2, 20, 20, 20.
    assert_eq!(layers(&p), vec![20, 20, 20, 20], "{p}");
    let p = plan(&cfg, &request(&[23; 8], false)).expect("8x24");
    check_invariants(&p);
    assert_eq!(layers(&p).iter().sum::<usize>(), 80);
    assert!(layers(&p).iter().all(|&n| (9..=11).contains(&n)), "{p}");
}

#[test]
fn a_tight_card_gets_a_smaller_batch_or_host_embeddings() {
    let cfg = llama_70b();
    // 134 GiB: 79 layers at a 4096-token batch, all 80 at 2048.
    let p = plan(&cfg, &request(&[134], false)).expect("fits at 2048");
    check_invariants(&p);
    assert_eq!(p.max_batch_tokens, 2048);
    // Embeddings on the host free 1.96 GiB: the full batch fits again.
    let p = plan(&cfg, &request(&[134], true)).expect("fits at 4096");
    check_invariants(&p);
    assert_eq!((p.max_batch_tokens, p.host_embeddings), (4096, 2_101_346_304));
}

#[test]
fn one_80gb_card_is_refused_with_the_arithmetic() {
    let e = plan(&llama_70b(), &request(&[79], false)).expect_err("does not fit").to_string();
    assert!(e.contains("GiB needed") && e.contains("79.0 GiB available on cuda:0"), "{e}");
    assert!(e.contains("129.5 GiB of weights"), "{e}");
}
