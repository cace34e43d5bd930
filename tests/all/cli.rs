//! The `arbiter` binary as a user runs it: exit codes, stdout JSON, one-line errors.

use std::path::Path;
use std::process::{Command, Output};

fn arbiter(args: &[&str], cache: &Path) -> Output {
    arbiter_with_env(args, cache, &[])
}

fn arbiter_with_env(args: &[&str], cache: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(args)
        .env("ARBITER_CACHE_DIR", cache)
        .envs(env.iter().copied())
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .expect("run arbiter")
}

fn stderr_line(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(text.trim_end().lines().count(), 1, "one line on stderr: {text}");
    text
}

#[test]
fn select_example_as_in_the_readme() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = arbiter(&["select", "--policy", "argmax", "--input", "examples/select.json"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    assert_eq!(v["chosen"], 0);
    assert_eq!(v["ranking"], serde_json::json!([0, 1, 2, 3]));
    assert_eq!(v["scores"][3], "NaN");
    assert_eq!(v["policy"]["name"], "argmax");
    assert_eq!(v["policy"]["sha256"].as_str().map(str::len), Some(64));
}

#[test]
fn select_abstaining_is_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.json");
    std::fs::write(&input, r#"{"candidates":[{"text":"a","score":0.1}],"params":{"min":0.5}}"#).expect("write");
    let out = arbiter(&["select", "--policy", "threshold", "--input", input.to_str().expect("utf8")], dir.path());
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v["chosen"].is_null());
}

#[test]
fn select_errors_exit_2_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.json");
    let path = bad.to_str().expect("utf8");
    let cases: [(&str, &[&str], &str); 4] = [
        (r#"{"candidates":[{"text":"a","score":1}],"params":{"min":"x"}}"#, &["--policy", "threshold"], "`min`"),
        (r#"{"candidates":[{"txt":"a"}]}"#, &["--policy", "argmax"], "txt"),
        (r#"{"candidates":[{"text":"a"}]}"#, &["--policy", "argmax"], "no score"),
        (r#"{"candidates":[{"text":"a","score":1}]}"#, &["--policy", "nosuch"], "bundled: argmax"),
    ];
    for (body, flags, needle) in cases {
        std::fs::write(&bad, body).expect("write");
        let mut args = vec!["select", "--input", path];
        args.extend_from_slice(flags);
        let out = arbiter(&args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{body}");
        let line = stderr_line(&out);
        assert!(line.contains(needle), "{body}: {line}");
        assert!(out.stdout.is_empty());
    }
    // Plugin errors name the plugin.
    std::fs::write(&bad, r#"{"candidates":[]}"#).expect("write");
    let out = arbiter(&["select", "--policy", "argmax", "--input", path], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let line = stderr_line(&out);
    assert!(line.contains("plugin `argmax` 1.0.0") && line.contains("no candidates"), "{line}");
}

#[test]
fn plugin_list_and_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = arbiter(&["plugin", "list"], dir.path());
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["argmax", "threshold", "tie-break", "early-exit", "max-length"] {
        assert!(text.lines().any(|l| l.starts_with(name) && l.contains("1.0.0")), "{name} in {text}");
    }
    let wasm = dir.path().join("tie-break.wasm");
    std::fs::write(&wasm, arbiter::bundled::get("tie-break").expect("bundled")).expect("write");
    let out =
        arbiter(&["plugin", "check", wasm.to_str().expect("utf8"), "--input", "examples/select.json"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["world        policy", "wasi:cli/stderr", "(deny-all)", "sample call  fuel", "chosen=0 "] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
}

#[test]
fn score_adds_scores_in_input_order_and_keeps_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out =
        arbiter(&["score", "--model", "tests/fixtures/tiny-llama-f32", "--input", "examples/score.jsonl"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], "q1");
    assert_eq!(lines[1]["id"], "q2");
    // The same conversations are golden cases 0 and 1 of the fixture.
    let goldens: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/goldens.json"))
            .expect("goldens"),
    )
    .expect("json");
    let cases = &goldens["fixtures"]["tiny-llama-f32"];
    for (line, case) in lines.iter().zip([&cases[0], &cases[1]]) {
        let got = line["scores"].as_array().expect("scores");
        assert_eq!(got.len(), line["responses"].as_array().expect("responses").len());
        for (i, g) in got.iter().enumerate() {
            let want = case["scores"][i].as_f64().expect("golden");
            assert!((g.as_f64().expect("score") - want).abs() <= 1e-4, "line {line}: {g} vs {want}");
        }
    }
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("responses/s") && summary.contains("tokens/s"), "{summary}");
}

#[test]
fn score_stops_at_a_bad_line_naming_it_and_keeps_earlier_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    std::fs::write(
        &input,
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"responses\":[\"a\"]}\n{\"messages\":\"oops\",\"responses\":[]}\n",
    )
    .expect("write");
    let out = arbiter(
        &[
            "score",
            "--model",
            "tests/fixtures/tiny-llama-f32",
            "--input",
            input.to_str().expect("utf8"),
            "--output",
            output.to_str().expect("utf8"),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let line = stderr_tail(&out);
    assert!(line.contains("line 2") && line.contains("messages"), "{line}");
    let written = std::fs::read_to_string(&output).expect("output");
    assert_eq!(written.lines().count(), 1, "the scored first line is kept");
}

#[test]
fn select_with_a_model_scores_unscored_candidates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.json");
    std::fs::write(
        &input,
        r#"{"messages":[{"role":"user","content":"What is the capital of France?"}],"responses":["Lyon","Paris.","The capital of France is Paris."]}"#,
    )
    .expect("write");
    let out = arbiter(
        &[
            "select",
            "--policy",
            "argmax",
            "--model",
            "tests/fixtures/tiny-llama-f32",
            "--input",
            input.to_str().expect("utf8"),
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["chosen"], 1, "golden scores: Paris. 2.97 > long 0.66 > Lyon -0.05");
    assert!(v["scores"].as_array().expect("scores").iter().all(|s| s.is_f64()));
}

/// The last line of stderr (the error line, after any load messages).
fn stderr_tail(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim_end().lines().last().unwrap_or_default().to_owned()
}

/// On a machine without oneDNN (simulated by pointing `ARBITER_ONEDNN_LIB` at a missing file)
/// the default command still scores, on candle, and says so; asking for oneDNN explicitly is a
/// one-line error naming the library.
#[test]
fn score_without_onednn_falls_back_to_candle_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |extra: &[&str]| {
        let mut args = vec!["score", "--model", "tests/fixtures/tiny-llama-bf16", "--input", "examples/score.jsonl"];
        args.extend_from_slice(extra);
        arbiter_with_env(&args, dir.path(), &[("ARBITER_ONEDNN_LIB", "/nonexistent/libdnnl.so.2")])
    };
    let out = run(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("engine candle") && log.contains("oneDNN unavailable"), "{log}");
    assert!(log.contains("bf16 checkpoint computed in f32 (no oneDNN)"), "{log}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let out = run(&["--backend", "onednn"]);
    assert_eq!(out.status.code(), Some(2));
    let line = stderr_line(&out);
    assert!(line.contains("--backend onednn") && line.contains("/nonexistent/libdnnl.so.2"), "{line}");
}

/// `--device`: a CUDA request in a binary built without the `cuda` feature says how to get
/// one; a malformed device names the accepted forms. One line each, exit 2.
#[test]
fn device_errors_say_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let score = |device: &str| {
        arbiter(
            &[
                "score",
                "--model",
                "tests/fixtures/tiny-llama-f32",
                "--input",
                "examples/score.jsonl",
                "--device",
                device,
            ],
            dir.path(),
        )
    };
    if !cfg!(feature = "cuda") {
        let out = score("cuda:0,1");
        assert_eq!(out.status.code(), Some(2));
        let line = stderr_line(&out);
        assert!(line.contains("--device cuda:0") && line.contains("--features cuda"), "{line}");
    }
    for bad in ["tpu", "cuda:x", "cuda:1,1"] {
        let out = score(bad);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let line = stderr_line(&out);
        assert!(line.contains("--device"), "{bad}: {line}");
    }
    // --device-map: one layer count per listed GPU, and GPUs to place them on.
    let mapped = |device: &str, map: &str| {
        let args = ["score", "--model", "tests/fixtures/tiny-llama-f32", "--input", "examples/score.jsonl"];
        let mut args = args.to_vec();
        args.extend(["--device", device, "--device-map", map]);
        arbiter(&args, dir.path())
    };
    let out = mapped("cuda:0", "1,2");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("2 layer counts for 1 GPUs"), "{}", stderr_line(&out));
    let out = mapped("cpu", "3");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("--device cuda:I,J"), "{}", stderr_line(&out));
}
