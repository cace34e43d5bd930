//! `arbiter score` as a batch job: shards that cover the input exactly once, a killed run
//! resumed with no line lost or duplicated, and skip-and-report with an exit code a job
//! controller can act on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn arbiter(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(args)
        .env("ARBITER_CACHE_DIR", cache)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .expect("run arbiter")
}

/// Seven conversations (one blank line in between, which still counts as a line number).
fn input(dir: &Path, bad_line: Option<usize>) -> PathBuf {
    let mut text = String::new();
    for i in 0..8 {
        if i == 3 {
            text.push('\n');
            continue;
        }
        if Some(i + 1) == bad_line {
            text.push_str("{\"id\": \"broken\", \"messages\": \"oops\"}\n");
            continue;
        }
        text.push_str(&format!(
            "{{\"id\": {i}, \"messages\": [{{\"role\": \"user\", \"content\": \"Question number {i}?\"}}], \"responses\": [\"Answer {i}.\", \"Another answer\"]}}\n"
        ));
    }
    let path = dir.join(format!("in-{bad_line:?}.jsonl"));
    std::fs::write(&path, text).expect("write");
    path
}

fn score(dir: &Path, input: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["score", "--model", "tests/fixtures/tiny-llama-f32", "--input", input.to_str().expect("utf8")];
    args.extend(["--output", output.to_str().expect("utf8")]);
    args.extend_from_slice(extra);
    arbiter(&args, dir)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).expect("output").lines().map(str::to_owned).collect()
}

#[test]
fn shards_cover_the_input_exactly_once() {
    let dir = tempfile::tempdir().expect("dir");
    let input = input(dir.path(), None);
    let full = dir.path().join("full.jsonl");
    assert!(score(dir.path(), &input, &full, &[]).status.success());
    let full = lines(&full);
    assert_eq!(full.len(), 7);
    let mut merged: Vec<(usize, String)> = Vec::new();
    for i in 0..3 {
        let out = dir.path().join(format!("shard-{i}.jsonl"));
        let run = score(dir.path(), &input, &out, &["--shard", &format!("{i}/3")]);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        // Shard i holds input lines n with (n - 1) mod 3 == i, blank ones aside.
        let numbers = (1..=8usize).filter(|n| (n - 1) % 3 == i && *n != 4);
        merged.extend(numbers.zip(lines(&out)));
    }
    merged.sort();
    assert_eq!(merged.into_iter().map(|(_, l)| l).collect::<Vec<_>>(), full);
    let bad = score(dir.path(), &input, &dir.path().join("x.jsonl"), &["--shard", "3/3"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("0 <= I < N"));
}

#[test]
fn a_killed_run_resumes_with_no_line_lost_or_duplicated() {
    let dir = tempfile::tempdir().expect("dir");
    let input = input(dir.path(), None);
    let full = dir.path().join("full.jsonl");
    assert!(score(dir.path(), &input, &full, &[]).status.success());
    let want = std::fs::read_to_string(&full).expect("full");
    // What a run killed while writing its 4th line leaves: 3 lines and half of the 4th.
    let partial = dir.path().join("partial.jsonl");
    let cut = want.match_indices('\n').nth(2).map(|(i, _)| i + 1).expect("3 lines") + 40;
    std::fs::write(&partial, &want[..cut]).expect("write");
    let run = score(dir.path(), &input, &partial, &["--resume"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(std::fs::read_to_string(&partial).expect("resumed"), want);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("\"resumed\":3") && stderr.contains("\"scored\":4"), "{stderr}");
    // Resuming a finished output adds nothing; resuming against another input is refused.
    let again = score(dir.path(), &input, &partial, &["--resume"]);
    assert!(again.status.success());
    assert_eq!(std::fs::read_to_string(&partial).expect("resumed"), want);
    let other = dir.path().join("other.jsonl");
    let changed = std::fs::read_to_string(&input).expect("input").replace("Question number 0", "Question zero");
    std::fs::write(&other, changed).expect("write");
    let refused = score(dir.path(), &other, &partial, &["--resume"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("was the input changed"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn bad_lines_are_skipped_and_reported_with_exit_code_3() {
    let dir = tempfile::tempdir().expect("dir");
    let input = input(dir.path(), Some(3));
    let out = dir.path().join("out.jsonl");
    let run = score(dir.path(), &input, &out, &["--on-error", "skip"]);
    assert_eq!(run.status.code(), Some(3), "{}", String::from_utf8_lossy(&run.stderr));
    let written = lines(&out);
    assert_eq!(written.len(), 7, "every line is written, in order");
    let broken: serde_json::Value = serde_json::from_str(&written[2]).expect("json");
    assert_eq!(broken["id"], "broken");
    assert!(broken["error"].as_str().is_some_and(|e| e.starts_with("line 3:") && e.contains("messages")), "{broken}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("line 3 skipped") && stderr.contains("\"skipped\":1"), "{stderr}");
    // Stop mode: exit 2, the line number given once.
    let run = score(dir.path(), &input, &out, &[]);
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(stderr.matches("line ").count(), 1, "{stderr}");
}

#[test]
fn an_interrupted_run_says_what_it_wrote_and_how_to_continue() {
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(["score", "--model", "tests/fixtures/tiny-llama-f32", "--input", "-", "--output"])
        .arg(&out)
        .env("ARBITER_CACHE_DIR", dir.path())
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Two lines, then stdin stays open: the run waits for more, like a long job mid-way.
    let mut stdin = child.stdin.take().expect("stdin");
    for i in 0..2 {
        std::io::Write::write_all(
            &mut stdin,
            format!("{{\"messages\": [{{\"role\": \"user\", \"content\": \"q{i}\"}}], \"responses\": [\"a\"]}}\n")
                .as_bytes(),
        )
        .expect("write");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_to_string(&out).map(|t| t.lines().count()).unwrap_or(0) < 2 {
        assert!(std::time::Instant::now() < deadline, "the two lines were never written");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
    assert!(status.success());
    let result = child.wait_with_output().expect("wait");
    assert_eq!(result.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("interrupted: 2 complete lines") && stderr.contains("--resume"), "{stderr}");
    drop(stdin);
}
