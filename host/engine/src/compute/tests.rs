//! The oneDNN Linear against the candle Linear on the same weights.

use candle_core::{DType, Device, Tensor};

use super::{BackendChoice, Compute, DtypeChoice};

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).and_then(|d| d.abs()).and_then(|d| d.max_all()).and_then(|d| d.to_scalar::<f32>()).expect("diff")
}

#[test]
fn onednn_linear_matches_candle_in_f32_and_bf16() {
    if super::onednn::tests::dnn().is_none() {
        return;
    }
    let dev = Device::Cpu;
    let w = Tensor::randn(0f32, 0.5, (48, 40), &dev).expect("w");
    let reference = Compute::on(dev.clone(), DType::F32);
    for rows in [1usize, 5, 130] {
        let x = Tensor::randn(0f32, 1.0, (rows, 40), &dev).expect("x");
        let want = reference.linear(w.clone()).expect("linear").forward(&x).expect("fwd");
        let f32c = Compute::cpu(BackendChoice::OneDnn, DtypeChoice::F32, DType::F32, 64).expect("onednn");
        assert_eq!(f32c.info().backend, "onednn");
        let got = f32c.linear(w.clone()).expect("linear").forward(&x).expect("fwd");
        assert!(max_diff(&got, &want) < 1e-4, "f32 {rows} rows: {}", max_diff(&got, &want));
        let bf = Compute::cpu(BackendChoice::OneDnn, DtypeChoice::Bf16, DType::BF16, 64).expect("onednn");
        assert_eq!((bf.weights(), bf.activations()), (DType::BF16, DType::F32));
        let got = bf.linear(w.clone()).expect("linear").forward(&x).expect("fwd");
        assert_eq!(got.dtype(), DType::F32);
        // bf16 rounding of both operands: relative error ~2^-8 per term.
        assert!(max_diff(&got, &want) < 0.1, "bf16 {rows} rows: {}", max_diff(&got, &want));
    }
}

#[test]
fn candle_backend_and_f32_request_never_pick_bf16() {
    let c = Compute::cpu(BackendChoice::Candle, DtypeChoice::Auto, DType::BF16, 64).expect("candle");
    assert_eq!((c.info().backend, c.weights()), ("candle", DType::F32));
    assert!(c.info().note.contains("computed in f32"), "{}", c.info().note);
    let c = Compute::cpu(BackendChoice::Auto, DtypeChoice::F32, DType::BF16, 64).expect("auto");
    assert_eq!(c.weights(), DType::F32);
}

#[test]
fn fused_cpu_attention_matches_the_candle_ops_reference() {
    let dev = Device::Cpu;
    let g = super::Geometry { heads: 6, kv_heads: 2, dim: 8 };
    let width = (g.heads + 2 * g.kv_heads) * g.dim;
    // Three chunks: no context, two context blocks, one block; lengths across the 64-row tiles.
    let lens = [5usize, 70, 1];
    let block = |b: usize| -> (Tensor, Tensor) {
        (
            Tensor::randn(0f32, 1.0, (g.kv_heads, b, g.dim), &dev).expect("k"),
            Tensor::randn(0f32, 1.0, (g.kv_heads, b, g.dim), &dev).expect("v"),
        )
    };
    let contexts: Vec<Vec<(Tensor, Tensor)>> = vec![vec![], vec![block(3), block(9)], vec![block(4)]];
    let t: usize = lens.iter().sum();
    let qkv = Tensor::randn(0f32, 1.0, (t, width), &dev).expect("qkv");
    let angles = Tensor::randn(0f32, 3.0, (t, g.dim / 2), &dev).expect("angles");
    let (cos, sin) = (angles.cos().expect("cos"), angles.sin().expect("sin"));
    let spans: Vec<(usize, &[(Tensor, Tensor)])> =
        lens.iter().zip(&contexts).map(|(&l, c)| (l, c.as_slice())).collect();
    let (want, want_kv) = super::attention::layer(&qkv, (&cos, &sin), &spans, g).expect("reference");
    let fused = Compute::on(dev.clone(), DType::F32);
    let (got, got_kv) = fused.attention(&qkv, (&cos, &sin), &spans, g).expect("fused");
    assert!(max_diff(&got, &want) < 1e-5, "output differs by {}", max_diff(&got, &want));
    for ((gk, gv), (wk, wv)) in got_kv.iter().zip(&want_kv) {
        assert!(max_diff(gk, wk) < 1e-5 && max_diff(gv, wv) < 1e-6, "own key/value blocks differ");
    }
    // A chunk's result does not depend on its companions.
    let alone = fused
        .attention(
            &qkv.narrow(0, 5, 70).expect("n"),
            (&cos.narrow(0, 5, 70).expect("c"), &sin.narrow(0, 5, 70).expect("s")),
            &spans[1..2],
            g,
        )
        .expect("alone")
        .0;
    assert!(max_diff(&alone, &got.narrow(0, 5, 70).expect("n")) == 0.0, "batch companions changed a chunk");
}

#[test]
fn silu_mul_matches_candle_ops() {
    let dev = Device::Cpu;
    let gu = Tensor::randn(0f32, 3.0, (7, 2 * 33), &dev).expect("gu");
    let want = (candle_nn::ops::silu(&gu.narrow(1, 0, 33).expect("g")).expect("silu")
        * gu.narrow(1, 33, 33).expect("u"))
    .expect("mul");
    let got = Compute::on(dev, DType::F32).silu_mul(&gu, 33).expect("fused");
    assert!(max_diff(&got, &want) < 1e-5, "{}", max_diff(&got, &want));
}
