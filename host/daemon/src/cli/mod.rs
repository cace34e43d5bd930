//! Command-line interface: the clap definitions and dispatch. `--help` text lives here.

/// `println!` for command output: a closed stdout (`arbiter plugin list | head`) ends the
/// process quietly with status 0 instead of panicking; any other write error is exit 2.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::write_out(format_args!($($arg)*)) };
}

mod bench;
mod bench_engine;
mod bench_lazy;
mod bench_serve;
pub(crate) mod heap;
mod http;
mod plugin;
mod scaffold;
mod score;
mod select;
mod serve;

use std::path::PathBuf;

use anyhow::{Context, Result};
use arbiter_plugins::{CompileWorker, HostConfig, Limits, PluginHost};
use clap::{Args, Parser, Subcommand};

/// Choose the best of N candidate LLM responses with a reward model and sandboxed wasm
/// policies.
#[derive(Debug, Parser)]
#[command(name = "arbiter", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Plugin host options, on the commands that load plugins (serve, select, plugin, bench).
#[derive(Debug, Args, Clone)]
struct Global {
    /// Directory for compiled plugins (default: $XDG_CACHE_HOME or ~/.cache, then arbiter/compiled).
    #[arg(long, env = "ARBITER_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Do not read or write the compiled-plugin cache.
    #[arg(long)]
    no_cache: bool,
    /// Longest compile of one plugin (in a separate process, killed after it).
    #[arg(long, env = "ARBITER_COMPILE_TIMEOUT_SECONDS", default_value_t = 60, value_name = "S")]
    compile_timeout_seconds: u64,
    /// Most memory one plugin's compile may take (the compiler process's data limit).
    #[arg(long, env = "ARBITER_COMPILE_MEMORY_MIB", default_value_t = 4096, value_name = "MIB")]
    compile_memory_mib: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (score, select, policies, NIM-compatible chat completions, metrics).
    Serve(Box<serve::ServeArgs>),
    /// Score JSONL conversations with a reward model; each line gets `"scores"` added.
    Score(score::ScoreArgs),
    /// Run a policy (and optional rules) on one request; print the selection as JSON.
    Select(select::SelectArgs),
    /// Inspect plugins.
    Plugin {
        #[command(subcommand)]
        command: plugin::PluginCommand,
    },
    /// Benchmarks: plugin calls, the engine (vs the reference), matmul peak, long inputs, the daemon.
    Bench(bench::BenchArgs),
    /// Internal: compiles one plugin in a separate, resource-limited process (run by the host).
    #[command(name = "compile-worker", hide = true)]
    CompileWorker {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Engine settings (`score`, and `select --model`).
#[derive(Debug, Args, Clone)]
struct EngineArgs {
    /// CPU threads for the engine (default: all cores).
    #[arg(long, env = "ARBITER_THREADS", value_name = "N")]
    threads: Option<usize>,
    /// Vocabulary id whose logit is the reward (LlamaForCausalLM checkpoints).
    #[arg(long, env = "ARBITER_REWARD_TOKEN", default_value_t = 0, value_name = "ID")]
    reward_token: u32,
    /// Refuse conversations (with the response) longer than this many tokens, with 413 in the
    /// daemon (default and upper bound: the model's context).
    #[arg(long, env = "ARBITER_MAX_INPUT_TOKENS", value_name = "N")]
    max_input_tokens: Option<usize>,
    /// Tokens per engine batch: candidates are packed into batches of this many tokens, and the
    /// daemon groups queued requests into engine batches of the same budget.
    #[arg(long, env = "ARBITER_MAX_BATCH_TOKENS", default_value_t = 4096, value_name = "N")]
    max_batch_tokens: usize,
    /// Compute every full sequence separately instead of sharing the common prefix.
    #[arg(long, env = "ARBITER_NO_PREFIX_SHARING")]
    no_prefix_sharing: bool,
    /// Tokenize `<|...|>` text inside messages as plain text, not as special tokens
    /// (the reference does not; scores change).
    #[arg(long, env = "ARBITER_NEUTRALIZE_SPECIAL_TOKENS")]
    neutralize_special_tokens: bool,
    /// Compute dtype: `auto` = on CPU, bf16 when the checkpoint is bf16 and the CPU has native
    /// bf16 (AMX or AVX-512-BF16, through oneDNN), else f32; on CUDA, bf16 on GPUs that have it
    /// (compute capability >= 8.0), else f16. `f32` = the exact reference path; `bf16` = bf16
    /// weights kept in memory as bf16; `f16` = for GPUs without bf16 (on a CPU: candle's
    /// kernels, slow).
    #[arg(long, env = "ARBITER_DTYPE", value_enum, default_value_t = DtypeArg::Auto)]
    dtype: DtypeArg,
    /// CPU matmul backend: `auto` = oneDNN when libdnnl.so.2 loads (apt-get install
    /// libdnnl2), else candle; `onednn` fails without it; `candle` never uses it.
    #[arg(long, env = "ARBITER_BACKEND", value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Where the model runs: `cpu`, `cuda` (GPU 0), or `cuda:0,1,...` (layers split over those
    /// GPUs, in order, planned from their free memory; see --device-map). CUDA needs a binary
    /// built with `--features cuda`; on CUDA `--dtype auto` computes in bf16 (f16 on GPUs without it).
    #[arg(long, env = "ARBITER_DEVICE", default_value = "cpu", value_name = "cpu|cuda[:I,J,...]")]
    device: String,
    /// Layers per GPU listed in --device, e.g. `40,40` (default: planned from each GPU's free
    /// memory, like transformers' device_map="auto"; evenly where it cannot be read).
    #[arg(long, env = "ARBITER_DEVICE_MAP", value_delimiter = ',', value_name = "N,N,...")]
    device_map: Vec<usize>,
    /// Where the embedding table lives on a GPU run: `gpu` (with the first layer) or `cpu`
    /// (host memory: rows gathered there, then moved; frees 1.96 GiB of the first GPU for
    /// Llama-3.3-70B in bf16, which the memory planner counts).
    #[arg(long, env = "ARBITER_EMBEDDINGS_ON", value_enum, default_value_t = EmbeddingsOn::Gpu)]
    embeddings_on: EmbeddingsOn,
    /// Bytes of prompt key/values kept across calls (prefix KV cache, LRU, in 128-token
    /// blocks): repeated prompts and a lazy policy's successive reward calls skip recomputing
    /// them. 0 disables.
    #[arg(long, env = "ARBITER_PREFIX_CACHE_BYTES", default_value_t = 1 << 30, value_name = "BYTES")]
    prefix_cache_bytes: usize,
}

/// `--dtype` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DtypeArg {
    Auto,
    F32,
    Bf16,
    F16,
}

/// `--embeddings-on` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EmbeddingsOn {
    Gpu,
    Cpu,
}

/// `--backend` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendArg {
    Auto,
    Onednn,
    Candle,
}

impl EngineArgs {
    /// Applies `--threads` before any engine thread exists: one count for candle's rayon
    /// pool and oneDNN's OpenMP pool, which take turns (never both busy at once). OpenMP's
    /// idle workers are made to sleep rather than spin (unless the user chose otherwise): a
    /// spinning OpenMP worker steals the core the next rayon task needs (measured: 2 threads,
    /// 9.8 s → 7.9 s on the 353M bf16 no-sharing case).
    fn apply_threads(&self) {
        if std::env::var_os("OMP_WAIT_POLICY").is_none() {
            // SAFETY: as below: before any thread of this process exists.
            #[allow(unsafe_code, reason = "setting OpenMP's wait policy before any thread starts")]
            unsafe {
                std::env::set_var("OMP_WAIT_POLICY", "PASSIVE");
            }
        }
        if let Some(n) = self.threads {
            let n = n.max(1).to_string();
            // SAFETY: called at the start of a command, before this process starts any thread
            // (rayon and OpenMP read these variables when their pools are first created).
            #[allow(unsafe_code, reason = "setting thread-pool sizes before any thread starts")]
            unsafe {
                std::env::set_var("RAYON_NUM_THREADS", &n);
                std::env::set_var("OMP_NUM_THREADS", &n);
            }
        }
    }

    /// The engine options these flags ask for.
    fn options(&self) -> arbiter_engine::EngineOptions {
        arbiter_engine::EngineOptions {
            reward_token: self.reward_token,
            max_input_tokens: self.max_input_tokens,
            max_batch_tokens: self.max_batch_tokens,
            share_prefix: !self.no_prefix_sharing,
            neutralize_special_tokens: self.neutralize_special_tokens,
            dtype: match self.dtype {
                DtypeArg::Auto => arbiter_engine::DtypeChoice::Auto,
                DtypeArg::F32 => arbiter_engine::DtypeChoice::F32,
                DtypeArg::Bf16 => arbiter_engine::DtypeChoice::Bf16,
                DtypeArg::F16 => arbiter_engine::DtypeChoice::F16,
            },
            backend: match self.backend {
                BackendArg::Auto => arbiter_engine::BackendChoice::Auto,
                BackendArg::Onednn => arbiter_engine::BackendChoice::OneDnn,
                BackendArg::Candle => arbiter_engine::BackendChoice::Candle,
            },
            prefix_cache_bytes: self.prefix_cache_bytes,
            embeddings_on_host: self.embeddings_on == EmbeddingsOn::Cpu,
            ..arbiter_engine::EngineOptions::default()
        }
    }
}

/// Limit overrides shared by commands that run plugins.
#[derive(Debug, Args, Clone)]
struct LimitArgs {
    /// Override a per-call plugin limit, e.g. `fuel=1000000`, `timeout-ms=500`, `memory-mib=32`
    /// (also max-input-bytes, max-candidates, max-reason-bytes, max-log-bytes,
    /// reward-responses, reward-bytes, max-host-calls, deadline-ms: the whole call, host time
    /// included). Repeatable.
    #[arg(long = "limit", env = "ARBITER_LIMITS", value_delimiter = ',', value_name = "KEY=VALUE")]
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

    /// The plugin host settings the global options ask for: plugins compile in a worker
    /// process of this binary (deadline and memory ceiling) where the binary can be found.
    fn host_config(&self) -> HostConfig {
        let compile_worker = std::env::current_exe().ok().map(|exe| CompileWorker {
            deadline: std::time::Duration::from_secs(self.compile_timeout_seconds.max(1)),
            memory_bytes: self.compile_memory_mib.saturating_mul(1 << 20),
            ..CompileWorker::new(exe, &["compile-worker"])
        });
        let mut config = HostConfig { compile_worker, ..HostConfig::default() };
        if self.no_cache {
            config.cache_dir = None;
        } else if let Some(dir) = &self.cache_dir {
            config.cache_dir = Some(dir.clone());
        }
        config
    }

    /// A host with the global options applied, then `adjust`.
    fn host_with(&self, adjust: impl FnOnce(&mut HostConfig)) -> Result<PluginHost> {
        let mut config = self.host_config();
        adjust(&mut config);
        PluginHost::new(config).context("starting the plugin host")
    }
}

/// Runs the parsed command; its exit code (2 on error, in `main`).
pub fn run(cli: Cli) -> Result<std::process::ExitCode> {
    let ok = |r: Result<()>| r.map(|()| std::process::ExitCode::SUCCESS);
    match cli.command {
        Command::Serve(args) => ok(serve::run(*args)),
        Command::Score(args) => score::run(args),
        Command::Select(args) => ok(select::run(args)),
        Command::Plugin { command } => ok(plugin::run(command)),
        Command::Bench(args) => ok(bench::run(args)),
        Command::CompileWorker { args } => ok(arbiter_plugins::worker_main(&args).map_err(anyhow::Error::msg)),
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
