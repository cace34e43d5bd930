//! `arbiter plugin check|list|new`: what a plugin is, what it imports, and what it costs; a new
//! plugin project in any supported language (see `scaffold`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use arbiter::bundled;
use arbiter::input::SelectInput;
use arbiter_plugins::{CallStats, Candidate, Limits, NoModel, Plugin, PluginKind, Request};
use clap::Subcommand;

use super::{Global, LimitArgs, read_input};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Load a plugin and report its world, info(), imports, size, compile time and, for a
    /// sample input, the fuel, peak memory and wall time it used against its limits.
    Check {
        /// The plugin (.wasm component, or component .wat).
        path: PathBuf,
        /// Sample request JSON (same shape as `select --input`).
        #[arg(long, value_name = "FILE|-")]
        input: Option<String>,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        plugins_host: Global,
    },
    /// List the bundled plugins with version and sha256.
    List {
        #[command(flatten)]
        plugins_host: Global,
    },
    /// Create a policy project (WIT contract included) in Rust, Python, JavaScript or C, and
    /// print the commands that build, check and serve it.
    New {
        /// Plugin name: lowercase letters, digits and '-' (also the project's folder name).
        name: String,
        /// Language of the project.
        #[arg(long, value_enum)]
        lang: super::scaffold::Lang,
        /// Where to create it (default: ./NAME); must not exist or be empty.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Rust only: the path of arbiter's `sdk/` as Cargo.toml will name it, relative to the project.
        #[arg(long, value_name = "PATH", default_value = "../arbiter/sdk")]
        sdk: String,
    },
}

pub fn run(command: PluginCommand) -> Result<()> {
    match command {
        PluginCommand::Check { path, input, limits, plugins_host } => {
            check(&plugins_host, &path, input.as_deref(), &limits.resolve()?)
        }
        PluginCommand::List { plugins_host } => list(&plugins_host),
        PluginCommand::New { name, lang, dir, sdk } => super::scaffold::new(&name, lang, dir.as_deref(), &sdk),
    }
}

fn list(global: &Global) -> Result<()> {
    let host = global.host()?;
    outln!("{:<12} {:<8} {:<7} sha256", "name", "version", "kind");
    for name in bundled::names() {
        let bytes = bundled::get(name).context("bundled plugin vanished")?;
        let plugin = host.load(name, bytes, Limits::default())?;
        let id = plugin.id();
        outln!("{:<12} {:<8} {:<7} {}", id.name, id.version, plugin.kind().as_str(), id.sha256);
    }
    Ok(())
}

fn check(global: &Global, path: &std::path::Path, input: Option<&str>, limits: &Limits) -> Result<()> {
    // The sample input is read and parsed first: a wrong path fails before any report.
    let input = match input {
        Some(input) => Some(SelectInput::parse(&read_input(input)?).context("invalid sample input")?),
        None => None,
    };
    let host = global.host()?;
    let plugin = host.load_file(path, limits.clone())?;
    let report = plugin.load_report();
    let id = plugin.id();
    let world = match plugin.kind() {
        PluginKind::Policy => "policy (exports arbiter:policy/selector)",
        PluginKind::Rule => "rule (exports arbiter:policy/scorer)",
    };
    outln!("plugin       {} {}", id.name, id.version);
    outln!("world        {world}");
    outln!("sha256       {}", id.sha256);
    outln!("size         {} bytes", report.size_bytes);
    outln!("compile      {} ({})", ms(report.compile_time), if report.from_cache { "from cache" } else { "compiled" });
    if plugin.kind() == PluginKind::Policy {
        let info = plugin.info();
        outln!("prescored    {}", info.wants_prescored);
        for (i, line) in info.params_doc.lines().enumerate() {
            outln!("{}{line}", if i == 0 { "params       " } else { "             " });
        }
    }
    for (i, name) in report.imports.iter().enumerate() {
        let how = if name.starts_with("arbiter:policy/") { "host" } else { "deny-all" };
        outln!("{}{name} ({how})", if i == 0 { "imports      " } else { "             " });
    }
    print_stats("info() call", &report.smoke, &Limits::smoke());
    if let Some(input) = &input {
        sample(&plugin, input, limits)?;
    }
    Ok(())
}

/// Calls the plugin once on the sample input, directly (no prescoring, no other plugins), and
/// reports the answer and what the call cost.
fn sample(plugin: &Plugin, input: &SelectInput, limits: &Limits) -> Result<()> {
    let candidates: Vec<Candidate> = input
        .candidate_list()
        .into_iter()
        .enumerate()
        .map(|(i, c)| Candidate { index: i as u32, text: c.text, tokens: 0, score: c.score, features: Vec::new() })
        .collect();
    let params = input.params.iter().map(|(k, v)| (k.clone(), v.clone().into_string()));
    let stats = match plugin.kind() {
        PluginKind::Policy => {
            let req =
                Request { conversation: input.conversation(), candidates, params: params.collect(), seed: input.seed };
            let (selection, stats) = plugin.select(&req, Arc::new(NoModel))?;
            let chosen = selection.chosen.map_or_else(|| "none (abstained)".to_owned(), |c| c.to_string());
            outln!("sample       chosen={chosen} ranking={:?}", selection.ranking);
            outln!("reason       {}", selection.reason);
            stats
        }
        PluginKind::Rule => {
            // A rule receives the parameters addressed to it (`name.key`), prefix stripped.
            let prefix = format!("{}.", plugin.id().name);
            let params: Vec<(String, String)> =
                params.filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_owned(), v))).collect();
            let (values, stats) = plugin.score(&input.conversation(), &candidates, &params)?;
            outln!("sample       features={values:?}");
            stats
        }
    };
    print_stats("sample call", &stats, limits);
    for line in &stats.log {
        outln!("log          {}: {}", line.level, line.message);
    }
    Ok(())
}

fn print_stats(label: &str, stats: &CallStats, limits: &Limits) {
    let pct = |used: f64, cap: f64| if cap > 0.0 { 100.0 * used / cap } else { 0.0 };
    outln!(
        "{label:<12} fuel {} / {} ({:.3}%), peak memory {:.2} MiB / {:.0} MiB ({:.1}%), wall {} (guest {}) / {}",
        stats.fuel_used,
        limits.fuel,
        pct(stats.fuel_used as f64, limits.fuel as f64),
        stats.peak_memory_bytes as f64 / 1048576.0,
        limits.memory_bytes as f64 / 1048576.0,
        pct(stats.peak_memory_bytes as f64, limits.memory_bytes as f64),
        ms(stats.wall),
        ms(stats.guest_time),
        ms(limits.timeout),
    );
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}
