//! `arbiter score`: score JSONL conversations with a reward model, in input order.

use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arbiter_engine::{LlamaRewardModel, Message};
use clap::Args;
use serde_json::Value;

use super::EngineArgs;

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Hugging Face checkpoint directory of a Llama-3.x reward model (config.json, safetensors,
    /// tokenizer.json, tokenizer_config.json). Read offline.
    #[arg(long = "model", value_name = "DIR")]
    model: PathBuf,
    #[command(flatten)]
    engine: EngineArgs,
    /// JSONL input, one `{"messages": [...], "responses": ["...", ...], ...}` per line (`-` = stdin).
    #[arg(long, value_name = "FILE|-")]
    input: String,
    /// Where to write the JSONL output (default stdout): each input object plus `"scores"`
    /// (or `"error"` for a line skipped with `--on-error skip`), in input order.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Score only shard I of N (0 ≤ I < N): the input lines numbered n with (n − 1) mod N = I
    /// (blank lines count). N jobs with I = 0..N−1 (e.g. a Kubernetes Indexed Job's
    /// JOB_COMPLETION_INDEX) cover the input exactly once.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Continue an interrupted run: keep the complete lines already in --output (a partial last
    /// line is cut off and redone), skip as many of this run's lines, append the rest.
    #[arg(long, requires = "output")]
    resume: bool,
    /// What a bad line does: `stop` (exit 2, naming the line) or `skip` (write the line with an
    /// `"error"` instead of `"scores"`, go on, and exit 3 at the end).
    #[arg(long, value_enum, default_value = "stop")]
    on_error: OnError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OnError {
    Stop,
    Skip,
}

/// How often a run whose stderr is not a terminal reports progress.
const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// One input line: the object as given (to echo back), its conversation and its responses.
struct Line {
    object: serde_json::Map<String, Value>,
    messages: Vec<Message>,
    responses: Vec<String>,
}

/// serde's message without its own "at line 1 column N" (there is one line per record; the
/// record's line number is given once, by the caller).
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let text = text.rsplit_once(" at line ").map_or(text.as_str(), |(head, _)| head).to_owned();
    format!("{text} (column {})", e.column())
}

fn parse_object(line: &str) -> Result<serde_json::Map<String, Value>, String> {
    match serde_json::from_str(line) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err("expected a JSON object".into()),
        Err(e) => Err(format!("invalid JSON: {}", json_error(&e))),
    }
}

fn parse_line(line: &str) -> Result<Line, String> {
    let obj = parse_object(line)?;
    let messages: Vec<Message> = serde_json::from_value(obj.get("messages").cloned().unwrap_or(Value::Null))
        .map_err(|_| "`messages` must be a list of {\"role\", \"content\"}".to_owned())?;
    let responses: Vec<String> = serde_json::from_value(obj.get("responses").cloned().unwrap_or(Value::Null))
        .map_err(|_| "`responses` must be a list of strings".to_owned())?;
    Ok(Line { object: obj, messages, responses })
}

/// On Ctrl-C or SIGTERM: says how many lines the output holds (every written line is flushed,
/// so all of them are complete) and how to continue, then exits 130.
fn on_interrupt(written: Arc<AtomicUsize>, output: String) {
    let _ = std::thread::Builder::new().name("arbiter-interrupt".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            let term = async {
                #[cfg(unix)]
                if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    s.recv().await;
                    return;
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                () = term => {},
            }
        });
        eprintln!(
            "\narbiter: interrupted: {} complete lines in {output}; run again with --resume to continue",
            written.load(Ordering::Relaxed)
        );
        std::process::exit(130);
    });
}

/// `I/N` → (I, N).
fn parse_shard(spec: &str) -> Result<(usize, usize)> {
    let bad = || anyhow::anyhow!("--shard {spec:?}: expected I/N with 0 <= I < N");
    let (i, n) = spec.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// Keeps the complete lines of an earlier output and cuts a partial last line; returns them.
fn resume_output(path: &std::path::Path) -> Result<Vec<serde_json::Map<String, Value>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {} to resume", path.display())),
    };
    let mut kept = Vec::new();
    let mut complete_bytes = 0;
    for piece in text.split_inclusive('\n') {
        let whole = piece.ends_with('\n');
        match parse_object(piece.trim_end()) {
            Ok(o) if whole && (o.contains_key("scores") || o.contains_key("error")) => {
                kept.push(o);
                complete_bytes += piece.len();
            }
            _ => break,
        }
    }
    if complete_bytes < text.len() {
        // A run killed mid-write leaves a partial line: cut it so it is redone, not duplicated.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        f.set_len(complete_bytes as u64).with_context(|| format!("truncating {}", path.display()))?;
    }
    Ok(kept)
}

pub fn run(args: ScoreArgs) -> Result<ExitCode> {
    args.engine.apply_threads();
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    let done = match (&args.output, args.resume) {
        (Some(path), true) => resume_output(path)?,
        _ => Vec::new(),
    };
    let started = Instant::now();
    let model = args.engine.load(&args.model)?;
    eprintln!(
        "arbiter: loaded {} in {:.2} s; engine {}",
        args.model.display(),
        started.elapsed().as_secs_f64(),
        model.compute_info()
    );
    let reader: Box<dyn BufRead> = if args.input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(&args.input).with_context(|| format!("opening {}", args.input))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(args.resume)
                .truncate(!args.resume)
                .open(p)
                .with_context(|| format!("creating {}", p.display()))?;
            Box::new(BufWriter::new(file))
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let progress = std::io::stderr().is_terminal();
    let written = Arc::new(AtomicUsize::new(done.len()));
    on_interrupt(
        written.clone(),
        args.output.as_ref().map_or_else(|| "stdout".to_owned(), |p| p.display().to_string()),
    );
    let (mut mine, mut lines, mut skipped, mut responses_done, mut tokens_done) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let work = Instant::now();
    let mut last_report = Instant::now();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        if shard.is_some_and(|(index, count)| i % count != index) {
            continue;
        }
        let line = line.with_context(|| format!("reading line {n}"))?;
        if line.trim().is_empty() {
            continue;
        }
        mine += 1;
        if let Some(previous) = done.get(mine - 1) {
            // Resuming: this line is already in the output; make sure it is the same line.
            let mut previous = previous.clone();
            previous.remove("scores");
            previous.remove("error");
            if parse_object(&line).ok().as_ref() != Some(&previous) {
                bail!("--resume: line {n} of the input is not the line {mine} of the output; was the input changed?");
            }
            continue;
        }
        let result = parse_line(&line).and_then(|Line { object, messages, responses }| {
            match model.score_with_stats(&messages, &responses) {
                Ok((scores, stats)) => Ok((object, scores, stats.tokens_total, responses.len())),
                Err(e) => Err(e.to_string()),
            }
        });
        let record = match result {
            Ok((mut obj, scores, tokens, n_responses)) => {
                obj.insert("scores".into(), arbiter::input::scores_json(&scores));
                lines += 1;
                responses_done += n_responses;
                tokens_done += tokens;
                obj
            }
            Err(reason) if args.on_error == OnError::Skip => {
                eprintln!("arbiter: line {n} skipped: {reason}");
                skipped += 1;
                let mut obj = parse_object(&line).unwrap_or_default();
                obj.insert("error".into(), Value::String(format!("line {n}: {reason}")));
                obj
            }
            Err(reason) => bail!("line {n}: {reason} (scored lines so far are written; --on-error skip goes on)"),
        };
        // Written (and flushed) line by line: a later failure never loses scored lines.
        writeln!(out, "{}", Value::Object(record)).and_then(|()| out.flush()).context("writing output")?;
        written.fetch_add(1, Ordering::Relaxed);
        let rate = responses_done as f64 / work.elapsed().as_secs_f64().max(1e-9);
        if progress {
            eprint!("\r  {lines} lines, {responses_done} responses ({rate:.1}/s)   ");
        } else if last_report.elapsed() >= REPORT_EVERY {
            // Redirected stderr (a job's log): a plain line now and then, not a carriage-return bar.
            eprintln!("arbiter: {lines} lines, {responses_done} responses scored ({rate:.1}/s), at input line {n}");
            last_report = Instant::now();
        }
    }
    if progress {
        eprintln!();
    }
    let secs = work.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "arbiter: scored {responses_done} responses in {lines} lines in {secs:.2} s: {:.1} responses/s, {:.0} tokens/s",
        responses_done as f64 / secs,
        tokens_done as f64 / secs
    );
    // One machine-readable line for job controllers (the exit code says the same).
    let summary = serde_json::json!({
        "scored": lines, "skipped": skipped, "resumed": done.len(), "responses": responses_done,
        "seconds": secs, "shard": args.shard, "output": args.output.as_ref().map(|p| p.display().to_string()),
    });
    eprintln!("arbiter: summary {summary}");
    Ok(if skipped > 0 { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

impl EngineArgs {
    /// Loads the checkpoint `dir` with these settings, on `--device`.
    pub fn load(&self, dir: &std::path::Path) -> Result<LlamaRewardModel> {
        // The engine's errors name the file; the context only says which step failed.
        let model = self.load_on_device(dir).context("loading the model")?;
        // After loading, not before: the load's transient copies go back to the OS.
        super::heap::keep_freed_memory();
        Ok(model)
    }

    fn load_on_device(&self, dir: &std::path::Path) -> Result<LlamaRewardModel> {
        let gpus = parse_device(&self.device)?;
        if gpus.is_empty() {
            if !self.device_map.is_empty() {
                anyhow::bail!("--device-map places layers on GPUs: give --device cuda:I,J,...");
            }
            return Ok(LlamaRewardModel::load(dir, self.options())?);
        }
        let map = (!self.device_map.is_empty()).then_some(self.device_map.as_slice());
        LlamaRewardModel::load_gpus_mapped(dir, self.options(), &gpus, map).map_err(|e| match e {
            arbiter_engine::EngineError::Input(m) => anyhow::anyhow!("--device {m}"),
            e => e.into(),
        })
    }
}

/// `cpu` → no GPU; `cuda` → [0]; `cuda:0,2` → [0, 2].
pub(super) fn parse_device(spec: &str) -> Result<Vec<usize>> {
    let bad = || anyhow::anyhow!("--device {spec:?}: expected `cpu`, `cuda` or `cuda:I,J,...` (GPU indices)");
    match spec.trim() {
        "cpu" => Ok(Vec::new()),
        "cuda" => Ok(vec![0]),
        s => {
            let list = s.strip_prefix("cuda:").ok_or_else(bad)?;
            let ids: Vec<usize> =
                list.split(',').map(|i| i.trim().parse().map_err(|_| bad())).collect::<Result<_>>()?;
            let mut seen = ids.clone();
            seen.sort_unstable();
            seen.dedup();
            if seen.len() != ids.len() {
                anyhow::bail!("--device {spec:?}: a GPU is listed twice");
            }
            Ok(ids)
        }
    }
}
