//! Command-line interface: the clap definitions and dispatch. `--help` text lives here.

/// `println!` for command output: a closed stdout (`arbiter plugin list | head`) ends the
/// process quietly with status 0 instead of panicking; any other write error is exit 2.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::write_out(format_args!($($arg)*)) };
}

mod bench;
mod plugin;
mod select;

use std::path::PathBuf;

use anyhow::{Context, Result};
use arbiter_plugins::{HostConfig, Limits, PluginHost};
use clap::{Args, Parser, Subcommand};

/// Choose the best of N candidate LLM responses with a reward model and sandboxed wasm
/// policies.
#[derive(Debug, Parser)]
#[command(name = "arbiter", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args)]
struct Global {
    /// Directory for compiled plugins (default: $XDG_CACHE_HOME or ~/.cache, then arbiter/compiled).
    #[arg(long, global = true, env = "ARBITER_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Do not read or write the compiled-plugin cache.
    #[arg(long, global = true)]
    no_cache: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a policy (and optional rules) on one request; print the selection as JSON.
    Select(select::SelectArgs),
    /// Inspect plugins.
    Plugin {
        #[command(subcommand)]
        command: plugin::PluginCommand,
    },
    /// Measure plugin-call latency (instantiate + select).
    Bench(bench::BenchArgs),
}

/// Limit overrides shared by commands that run plugins.
#[derive(Debug, Args, Clone)]
struct LimitArgs {
    /// Override a per-call plugin limit, e.g. `fuel=1000000`, `timeout-ms=500`, `memory-mib=32`
    /// (also max-input-bytes, max-candidates, max-reason-bytes, max-log-bytes,
    /// reward-responses, reward-bytes). Repeatable.
    #[arg(long = "limit", value_name = "KEY=VALUE")]
    limits: Vec<String>,
}

impl LimitArgs {
    fn resolve(&self) -> Result<Limits> {
        let mut limits = Limits::default();
        for l in &self.limits {
            limits.set(l).map_err(anyhow::Error::msg)?;
        }
        Ok(limits)
    }
}

impl Global {
    fn host(&self) -> Result<PluginHost> {
        self.host_with(|_| {})
    }

    /// A host with the global options applied, then `adjust`.
    fn host_with(&self, adjust: impl FnOnce(&mut HostConfig)) -> Result<PluginHost> {
        let mut config = HostConfig::default();
        if self.no_cache {
            config.cache_dir = None;
        } else if let Some(dir) = &self.cache_dir {
            config.cache_dir = Some(dir.clone());
        }
        adjust(&mut config);
        PluginHost::new(config).context("starting the plugin host")
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Select(args) => select::run(&cli.global, args),
        Command::Plugin { command } => plugin::run(&cli.global, command),
        Command::Bench(args) => bench::run(&cli.global, args),
    }
}

/// Writes one line of command output (see `outln!`).
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("arbiter: cannot write to stdout: {e}");
        std::process::exit(2);
    }
}

/// Reads a file, or stdin for `-`.
fn read_input(path: &str) -> Result<String> {
    use std::io::Read;
    if path == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading the input from stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading the input {path}"))
}
