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
