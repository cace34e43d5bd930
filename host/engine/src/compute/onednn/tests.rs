//! oneDNN matmuls against a plain triple loop. Skipped when the library is absent, unless
//! `ARBITER_REQUIRE_ONEDNN=1` (CI sets it, so the fast path can never silently go untested).

use std::sync::Arc;

use half::bf16;

use super::{OneDnn, WeightType};

pub(crate) fn dnn() -> Option<Arc<OneDnn>> {
    match OneDnn::load() {
        Ok(d) => Some(d),
        Err(e) if std::env::var("ARBITER_REQUIRE_ONEDNN").as_deref() == Ok("1") => {
            panic!("ARBITER_REQUIRE_ONEDNN=1 but {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            None
        }
    }
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n).map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0).collect()
}

fn naive(x: &[f32], w: &[f32], rows: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * n];
    for r in 0..rows {
        for j in 0..n {
            out[r * n + j] = (0..k).map(|i| f64::from(x[r * k + i]) * f64::from(w[j * k + i])).sum::<f64>() as f32;
        }
    }
    out
}

#[test]
fn f32_and_bf16_match_a_plain_loop_for_any_row_count() {
    let Some(dnn) = dnn() else { return };
    let (k, n) = (96, 80);
    let w = values(n * k, 7);
    let packed = dnn.pack(&w, n, k, 64, WeightType::F32).expect("pack f32");
    let wb: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
    let packed_b = dnn.pack(&wb, n, k, 64, WeightType::Bf16).expect("pack bf16");
    for rows in [1usize, 3, 64, 129] {
        let x = values(rows * k, rows as u32);
        let want = naive(&x, &w, rows, k, n);
        let got = packed.matmul(&x, rows).expect("f32 matmul");
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "f32, {rows} rows: max error {worst}");
        // bf16: compare with the loop over the same bf16-rounded inputs (f32 accumulation).
        let xb: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        let want_b = naive(
            &xb.iter().map(|v| v.to_f32()).collect::<Vec<_>>(),
            &wb.iter().map(|v| v.to_f32()).collect::<Vec<_>>(),
            rows,
            k,
            n,
        );
        let got_b = packed_b.matmul(&xb, rows).expect("bf16 matmul");
        let worst = got_b.iter().zip(&want_b).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-3, "bf16, {rows} rows: max error {worst}");
        eprintln!(
            "{rows} rows: {} / {}",
            dnn.implementation(rows, k, n, WeightType::F32).expect("impl"),
            dnn.implementation(rows, k, n, WeightType::Bf16).expect("impl")
        );
    }
}

#[test]
fn wrong_shapes_are_errors() {
    let Some(dnn) = dnn() else { return };
    let w = values(12, 1);
    assert!(dnn.pack(&w, 5, 3, 8, WeightType::F32).is_err());
    let packed = dnn.pack(&w, 4, 3, 8, WeightType::F32).expect("pack");
    assert!(packed.matmul(&values(7, 2), 2).is_err());
    let b: Vec<bf16> = values(6, 2).iter().map(|&v| bf16::from_f32(v)).collect();
    assert!(packed.matmul(&b, 2).is_err(), "bf16 input to f32 weights");
}
