//! `arbiter score`: score JSONL conversations with a reward model, in input order.

use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
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
    /// Where to write the JSONL output (default stdout): each input object plus `"scores"`.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// One input line: the object as given (to echo back), its conversation and its responses.
struct Line {
    object: serde_json::Map<String, Value>,
    messages: Vec<Message>,
    responses: Vec<String>,
}

fn parse_line(line: &str, n: usize) -> Result<Line> {
    let v: Value = serde_json::from_str(line).with_context(|| format!("line {n}: invalid JSON"))?;
    let Value::Object(obj) = v else { bail!("line {n}: expected a JSON object") };
    let messages: Vec<Message> = serde_json::from_value(obj.get("messages").cloned().unwrap_or(Value::Null))
        .with_context(|| format!("line {n}: `messages` must be a list of {{\"role\", \"content\"}}"))?;
    let responses: Vec<String> = serde_json::from_value(obj.get("responses").cloned().unwrap_or(Value::Null))
        .with_context(|| format!("line {n}: `responses` must be a list of strings"))?;
    Ok(Line { object: obj, messages, responses })
}

pub fn run(args: ScoreArgs) -> Result<()> {
    args.engine.apply_threads();
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
            Box::new(BufWriter::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?))
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let progress = std::io::stderr().is_terminal();
    let (mut lines, mut responses_done, mut tokens_done) = (0usize, 0usize, 0usize);
    let work = Instant::now();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("reading line {n}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let Line { object: mut obj, messages, responses } = parse_line(&line, n)?;
        let (scores, stats) = model.score_with_stats(&messages, &responses).with_context(|| format!("line {n}"))?;
        obj.insert("scores".into(), serde_json::to_value(&scores).context("serializing scores")?);
        // Written (and flushed) line by line: a later failure never loses scored lines.
        writeln!(out, "{}", Value::Object(obj)).and_then(|()| out.flush()).context("writing output")?;
        lines += 1;
        responses_done += responses.len();
        tokens_done += stats.tokens_total;
        if progress {
            let rate = responses_done as f64 / work.elapsed().as_secs_f64().max(1e-9);
            eprint!("\r  {lines} lines, {responses_done} responses ({rate:.1}/s)   ");
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
    Ok(())
}

impl EngineArgs {
    /// Loads the checkpoint `dir` with these settings, on `--device`.
    pub fn load(&self, dir: &std::path::Path) -> Result<LlamaRewardModel> {
        let context = || format!("loading model {}", dir.display());
        let model = self.load_on_device(dir).with_context(context)?;
        // After loading, not before: the load's transient copies go back to the OS.
        super::heap::keep_freed_memory();
        Ok(model)
    }

    fn load_on_device(&self, dir: &std::path::Path) -> Result<LlamaRewardModel> {
        let gpus = parse_device(&self.device)?;
        if gpus.is_empty() {
            return Ok(LlamaRewardModel::load(dir, self.options())?);
        }
        LlamaRewardModel::load_gpus(dir, self.options(), &gpus).map_err(|e| match e {
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
