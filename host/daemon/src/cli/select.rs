//! `arbiter select`: one request through rules and a policy, answer as JSON on stdout.

use std::sync::Arc;

use anyhow::{Context, Result};
use arbiter::input::SelectInput;
use arbiter::reward::EngineBackend;
use arbiter::select;
use arbiter_plugins::{NoModel, RewardBackend};
use clap::Args;

use super::{EngineArgs, Global, LimitArgs, read_input};

#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Policy: a bundled name (argmax, threshold, tie-break, early-exit) or a .wasm path.
    /// Defaults to the input's "policy" field.
    #[arg(long, value_name = "NAME|PATH")]
    policy: Option<String>,
    /// Rule plugin (bundled name such as max-length, or a .wasm path); repeatable, run in order.
    #[arg(long = "rule", value_name = "NAME|PATH")]
    rules: Vec<String>,
    /// Request JSON file, or `-` for stdin:
    /// {"messages":[...], "candidates":[{"text":..,"score":..}], "params":{..}, "seed":7}
    #[arg(long, value_name = "FILE|-")]
    input: String,
    /// Print the plugins' log lines to stderr.
    #[arg(long)]
    show_log: bool,
    /// Reward model checkpoint directory: scores candidates that have no score and serves
    /// lazy policies' `reward` calls. Without it, every candidate needs a score.
    #[arg(long, value_name = "DIR")]
    model: Option<std::path::PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    plugins_host: Global,
}

pub fn run(args: SelectArgs) -> Result<()> {
    let global = &args.plugins_host;
    args.engine.apply_threads();
    let text = read_input(&args.input)?;
    let input = SelectInput::parse(&text).with_context(|| format!("invalid input {}", args.input))?;
    let policy_spec = args
        .policy
        .clone()
        .or_else(|| input.policy.clone())
        .context("no policy: pass --policy NAME|PATH or set \"policy\" in the input")?;
    let limits = args.limits.resolve()?;
    let host = global.host()?;
    let policy = select::load_plugin(&host, &policy_spec, &limits)?;
    let rules = args
        .rules
        .iter()
        .chain(&input.rules)
        .map(|spec| select::load_plugin(&host, spec, &limits))
        .collect::<Result<Vec<_>, _>>()?;
    let reward: Arc<dyn RewardBackend> = match &args.model {
        Some(dir) => Arc::new(EngineBackend::new(Arc::new(args.engine.load(dir)?))),
        None => Arc::new(NoModel),
    };
    let outcome = select::run(&policy, &rules, &input, reward)?;
    if args.show_log {
        for (plugin, line) in &outcome.logs {
            eprintln!("[{plugin}] {}: {}", line.level, line.message);
        }
    }
    outln!("{}", serde_json::to_string_pretty(&outcome.output).context("serializing the output")?);
    Ok(())
}
