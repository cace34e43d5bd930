//! Compiling an untrusted component in a child process, with a wall-clock deadline and a
//! memory ceiling: a compile-time bomb the intake check did not catch costs one killed
//! process, never the host's memory or a thread for minutes.
//!
//! The host writes the wasm to a private temporary directory, runs the worker command (the
//! host binary's hidden `compile-worker` entry, which calls [`worker_main`]) with the engine
//! settings, and reads back wasmtime's serialized artifact. The worker caps its own data
//! segment (`RLIMIT_DATA`: heap and private writable mappings, which Cranelift's allocations
//! are; address-space reservations are not) to what it holds after creating its engine plus
//! the ceiling, and its CPU time, before compiling; the host kills it at the deadline.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::clip;
use crate::host::{HostConfig, engine_for};

/// How the host runs its compile worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileWorker {
    /// Program and its leading arguments; the host appends the engine settings, the input and
    /// the output paths (see [`worker_main`]).
    pub command: Vec<OsString>,
    /// Longest compile; the worker is killed after it.
    pub deadline: Duration,
    /// Most heap the worker may allocate.
    pub memory_bytes: u64,
}

impl CompileWorker {
    /// A worker running `program` with `args` first, with the default deadline (60 s) and
    /// memory ceiling (4 GiB).
    pub fn new(program: impl Into<OsString>, args: &[&str]) -> Self {
        let mut command = vec![program.into()];
        command.extend(args.iter().map(OsString::from));
        Self { command, deadline: Duration::from_secs(60), memory_bytes: 4 << 30 }
    }
}

/// Numbers the temporary directories of concurrent compiles.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A private directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The engine settings the worker needs to build an engine identical to the host's.
fn engine_args(config: &HostConfig) -> Vec<String> {
    vec![
        format!("--max-wasm-stack={}", config.max_wasm_stack),
        format!("--instances={}", config.max_concurrent_instances.map_or(0, |n| n)),
        format!("--max-plugin-memory={}", config.max_plugin_memory),
        format!("--memories-per-instance={}", config.max_memories_per_instance),
    ]
}

/// Compiles `bytes` in the worker and loads the artifact into `engine`.
pub(crate) fn compile(
    worker: &CompileWorker,
    config: &HostConfig,
    engine: &Engine,
    bytes: &[u8],
) -> Result<Component, String> {
    let (program, leading) = worker.command.split_first().ok_or("the compile worker command is empty")?;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let scratch = Scratch(std::env::temp_dir().join(format!("arbiter-compile-{}-{n}", std::process::id())));
    std::fs::create_dir_all(&scratch.0).map_err(|e| format!("compile worker scratch dir: {e}"))?;
    let (input, output, log) = (scratch.0.join("in.wasm"), scratch.0.join("out.cwasm"), scratch.0.join("stderr"));
    std::fs::write(&input, bytes).map_err(|e| format!("compile worker input: {e}"))?;
    let stderr = std::fs::File::create(&log).map_err(|e| format!("compile worker log: {e}"))?;
    let mut child = Command::new(program)
        .args(leading)
        .args(engine_args(config))
        .arg(format!("--memory-bytes={}", worker.memory_bytes))
        .arg(format!("--cpu-seconds={}", worker.deadline.as_secs().saturating_add(1).saturating_mul(8)))
        .arg(&input)
        .arg(&output)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start the compile worker: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait().map_err(|e| format!("compile worker: {e}"))? {
            Some(status) => break status,
            None if started.elapsed() >= worker.deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("compiling took longer than its deadline of {} s", worker.deadline.as_secs_f64()));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    if !status.success() {
        let mut text = String::new();
        if let Ok(f) = std::fs::File::open(&log) {
            let _ = f.take(64 << 10).read_to_string(&mut text);
        }
        // A failed allocation says so on its own line, before the abort's other output.
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let text = lines.iter().find(|l| l.contains("memory allocation")).or(lines.last()).copied().unwrap_or("");
        return Err(format!(
            "the compile worker failed ({status}; memory ceiling {} bytes): {}",
            worker.memory_bytes,
            clip(text, 1024)
        ));
    }
    let artifact = std::fs::read(&output).map_err(|e| format!("compile worker output: {e}"))?;
    // SAFETY: `deserialize` trusts its input to be wasmtime's own output for a compatible
    // engine. The artifact was just written, into a directory private to this call, by the
    // worker command the host was configured with (this binary), which built its engine with
    // `engine_for` from these same settings and serialized what `Component::new` produced; a
    // mismatch of engine settings is refused by wasmtime's compatibility check.
    #[allow(unsafe_code, reason = "loading the artifact our own compile worker produced")]
    let component = unsafe { Component::deserialize(engine, &artifact) };
    component.map_err(|e| format!("the compile worker's artifact does not load: {e:#}"))
}

/// The worker's side: parses `args` (`--max-wasm-stack=N --instances=N --max-plugin-memory=N
/// --memories-per-instance=N --memory-bytes=N --cpu-seconds=N IN OUT`), caps its own memory
/// and CPU time, compiles IN and writes the serialized artifact to OUT.
///
/// # Errors
/// Bad arguments, limits that cannot be set, and compile failures (as text for stderr).
pub fn worker_main(args: &[String]) -> Result<(), String> {
    let mut config = HostConfig { cache_dir: None, ..HostConfig::default() };
    let (mut memory, mut cpu) = (None, None);
    let mut paths = Vec::new();
    for arg in args {
        let number = |v: &str| v.parse::<u64>().map_err(|_| format!("bad worker argument {arg}"));
        match arg.split_once('=') {
            Some(("--max-wasm-stack", v)) => config.max_wasm_stack = number(v)? as usize,
            Some(("--instances", v)) => {
                config.max_concurrent_instances = match number(v)? {
                    0 => None,
                    n => Some(u32::try_from(n).map_err(|_| format!("bad worker argument {arg}"))?),
                };
            }
            Some(("--max-plugin-memory", v)) => config.max_plugin_memory = number(v)? as usize,
            Some(("--memories-per-instance", v)) => {
                config.max_memories_per_instance =
                    u32::try_from(number(v)?).map_err(|_| format!("bad worker argument {arg}"))?;
            }
            Some(("--memory-bytes", v)) => memory = Some(number(v)?),
            Some(("--cpu-seconds", v)) => cpu = Some(number(v)?),
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    let [input, output] = paths.as_slice() else { return Err("usage: IN OUT after the settings".into()) };
    let bytes = std::fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let engine = engine_for(&config).map_err(|e| e.to_string())?;
    // The ceiling is for compiling: on top of what the process (the engine's own tables
    // included) already holds.
    limit_self(memory.map(|m| data_bytes().saturating_add(m)), cpu)?;
    let component = Component::new(&engine, &bytes).map_err(|e| clip(&format!("{e:#}"), 4096))?;
    let artifact = component.serialize().map_err(|e| format!("{e:#}"))?;
    std::fs::write(output, &artifact).map_err(|e| format!("{}: {e}", output.display()))
}

/// This process's data segment now (`VmData`), 0 where the OS does not say.
fn data_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmData:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
    kib.unwrap_or(0).saturating_mul(1024)
}

/// Caps this process's data segment and CPU time.
fn limit_self(memory: Option<u64>, cpu: Option<u64>) -> Result<(), String> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    for (resource, value) in [(Resource::Data, memory), (Resource::Cpu, cpu)] {
        if let Some(v) = value {
            setrlimit(resource, Rlimit { current: Some(v), maximum: Some(v) })
                .map_err(|e| format!("cannot set the worker's {resource:?} limit: {e}"))?;
        }
    }
    Ok(())
}
