//! Deny-all WASI: what a `wasm32-wasip2` guest may import, and what it gets. Language runtimes
//! (componentize-py, SpiderMonkey) read randomness and clocks at start; they get deterministic
//! stand-ins, never the host's entropy or time, so the same request gives the same answer.
//!
//! Rust's std (and componentize-py/js) pull WASI 0.2 interfaces into every component even when
//! the plugin never uses them, so refusing them outright would refuse every real plugin. The
//! rule instead: imports from the WASI 0.2 namespaces below are *linked* but grant nothing.
//!
//! | interface | behaviour |
//! |---|---|
//! | `wasi:cli/environment` | no variables, no arguments, no cwd |
//! | `wasi:cli/stdout`, `stderr` | streams into the call's capped plugin log |
//! | `wasi:cli/stdin` | an empty stream (reads report `closed`) |
//! | `wasi:io/poll` (output-stream pollables only) | always ready: the log never blocks |
//! | `wasi:cli/terminal-*` | no terminal |
//! | `wasi:cli/exit` | ends the call with a trap |
//! | `wasi:filesystem/preopens` | no directories, so no file can ever be opened |
//! | `wasi:random/*` (random, insecure, insecure-seed) | a SplitMix64 generator seeded by the request's `seed`: a call is reproducible, and no host entropy leaks (≤ 64 KiB per call) |
//! | `wasi:clocks/monotonic-clock` | a virtual clock: +1 µs per reading; a wait ends at once and moves the clock past it |
//! | `wasi:clocks/wall-clock` | fixed at 2024-01-01T00:00:00Z |
//! | `wasi:http/*` (SpiderMonkey imports it for `fetch`) | no request can be made: every function traps |
//! | everything else (sockets, descriptors, ...) | traps with [`Abort::Denied`] naming the function |
//!
//! Imports are defined per component, under the exact name (and version) it imports, so
//! semver lookups never shadow a stub with a trap. Any import outside these namespaces and
//! `arbiter:policy` is refused at load, naming it.

use wasmtime::component::{ComponentType, Lower, Resource, ResourceType, types::ComponentItem};
use wasmtime::component::{LinkerInstance, types::ComponentInstance};

use crate::state::{Abort, CallState};

/// WASI namespaces whose imports are linked (deny-all); versions must be 0.2.x.
const WASI_ALLOWED: [&str; 7] =
    ["wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:filesystem/", "wasi:random/", "wasi:sockets/", "wasi:http/"];

/// The monotonic clock's step per reading (and its resolution): 1 µs.
const CLOCK_STEP_NS: u64 = 1_000;

/// The wall clock's fixed answer: 2024-01-01T00:00:00Z.
const WALL_CLOCK_SECONDS: u64 = 1_704_067_200;

/// Pollable rep of clock subscriptions (streams use 0 and 1).
const CLOCK_POLLABLE: u32 = 2;

/// `wasi:clocks/wall-clock.datetime`.
#[derive(ComponentType, Lower)]
#[component(record)]
struct Datetime {
    seconds: u64,
    nanoseconds: u32,
}

/// How an import name is treated.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ImportClass {
    /// `arbiter:policy/*@0.1.x`: provided by the bindgen-generated linker code.
    Arbiter,
    /// A WASI 0.2 interface: linked with deny-all stubs.
    Wasi,
    /// Anything else: the plugin is refused, with this reason.
    Refused(String),
}

/// Classifies one import name of a component.
pub(crate) fn classify(name: &str) -> ImportClass {
    let (path, version) = name.split_once('@').unwrap_or((name, ""));
    if let Some(iface) = path.strip_prefix("arbiter:policy/") {
        if !matches!(iface, "types" | "reward" | "log") {
            return ImportClass::Refused(format!("`{name}`: the host provides no such arbiter interface"));
        }
        if !version.starts_with("0.1.") {
            return ImportClass::Refused(format!("`{name}`: this host speaks arbiter:policy@0.1.x"));
        }
        return ImportClass::Arbiter;
    }
    if WASI_ALLOWED.iter().any(|p| path.starts_with(p)) {
        if version.starts_with("0.2.") {
            return ImportClass::Wasi;
        }
        return ImportClass::Refused(format!("`{name}`: only WASI 0.2.x imports are supported"));
    }
    ImportClass::Refused(format!("`{name}` is not an interface the sandbox provides"))
}

/// Host representation of WASI resources; the `u32` rep is all we need.
pub(crate) struct OutputStream;
pub(crate) struct InputStream;
pub(crate) struct IoError;
/// Readiness of an output stream: always ready (the log buffer never blocks).
pub(crate) struct Pollable;
/// Every resource a guest can never obtain (descriptors, sockets, pollables, ...).
pub(crate) struct Denied;

const STDOUT: u32 = 0;
const STDERR: u32 = 1;

/// `wasi:io/streams.stream-error`.
#[derive(ComponentType, Lower)]
#[component(variant)]
enum StreamError {
    #[component(name = "last-operation-failed")]
    #[expect(dead_code, reason = "part of the WIT type; the host never fails an operation")]
    LastOperationFailed(Resource<IoError>),
    #[component(name = "closed")]
    Closed,
}

type StreamResult<T> = Result<T, StreamError>;

/// Defines every item of one imported WASI instance in `inst`.
pub(crate) fn define_instance(
    engine: &wasmtime::Engine,
    inst: &mut LinkerInstance<'_, CallState>,
    import: &str,
    ty: &ComponentInstance,
) -> wasmtime::Result<()> {
    let iface = import.split_once('@').map_or(import, |(p, _)| p);
    for (name, item) in ty.exports(engine) {
        match item.ty {
            ComponentItem::Resource(_) => define_resource(inst, name)?,
            ComponentItem::ComponentFunc(_) => define_func(inst, import, iface, name)?,
            // Type exports need no definition; anything else cannot appear in WASI 0.2.
            _ => {}
        }
    }
    Ok(())
}

/// Defines `name` as its non-trapping stub, or else as a trap naming the function.
fn define_func(
    inst: &mut LinkerInstance<'_, CallState>,
    import: &str,
    iface: &str,
    name: &str,
) -> wasmtime::Result<()> {
    if define_stub(inst, iface, name)? {
        return Ok(());
    }
    let what = format!("{import}#{name}");
    inst.func_new(name, move |_, _, _, _| Err(wasmtime::Error::new(Abort::Denied(what.clone()))))
}

/// Resources are matched by name alone: interfaces re-export the resources they `use`
/// (`wasi:cli/stdout` carries `output-stream`, `wasi:io/streams` carries `error`), and each
/// re-export must be the same type as the original.
fn define_resource(inst: &mut LinkerInstance<'_, CallState>, name: &str) -> wasmtime::Result<()> {
    let ty = match name {
        "output-stream" => ResourceType::host::<OutputStream>(),
        "input-stream" => ResourceType::host::<InputStream>(),
        // `wasi:http/types` re-exports `wasi:io/error.error` under this name.
        "error" | "io-error" => ResourceType::host::<IoError>(),
        "pollable" => ResourceType::host::<Pollable>(),
        _ => ResourceType::host::<Denied>(),
    };
    inst.resource(name, ty, |_, _| Ok(()))
}

/// Defines the function if it has a non-trapping stub; returns whether it did.
fn define_stub(inst: &mut LinkerInstance<'_, CallState>, iface: &str, name: &str) -> wasmtime::Result<bool> {
    match (iface, name) {
        ("wasi:cli/environment", "get-environment") => {
            inst.func_wrap(name, |_, (): ()| Ok((Vec::<(String, String)>::new(),)))?;
        }
        ("wasi:cli/environment", "get-arguments") => {
            inst.func_wrap(name, |_, (): ()| Ok((Vec::<String>::new(),)))?;
        }
        ("wasi:cli/environment", "initial-cwd") => {
            inst.func_wrap(name, |_, (): ()| Ok((None::<String>,)))?;
        }
        ("wasi:cli/exit", "exit") => {
            inst.func_wrap(name, |_, (_status,): (Result<(), ()>,)| -> wasmtime::Result<()> {
                Err(wasmtime::Error::new(Abort::Exit))
            })?;
        }
        ("wasi:cli/stdout", "get-stdout") => {
            inst.func_wrap(name, |_, (): ()| Ok((Resource::<OutputStream>::new_own(STDOUT),)))?;
        }
        ("wasi:cli/stderr", "get-stderr") => {
            inst.func_wrap(name, |_, (): ()| Ok((Resource::<OutputStream>::new_own(STDERR),)))?;
        }
        ("wasi:cli/stdin", "get-stdin") => {
            inst.func_wrap(name, |_, (): ()| Ok((Resource::<InputStream>::new_own(0),)))?;
        }
        ("wasi:cli/terminal-stdin" | "wasi:cli/terminal-stdout" | "wasi:cli/terminal-stderr", _)
            if name.starts_with("get-terminal-") =>
        {
            inst.func_wrap(name, |_, (): ()| Ok((None::<Resource<Denied>>,)))?;
        }
        ("wasi:io/streams", "[method]output-stream.check-write") => {
            inst.func_wrap(name, |store, (_s,): (Resource<OutputStream>,)| {
                Ok((StreamResult::Ok(store.data().log.remaining().max(1) as u64),))
            })?;
        }
        ("wasi:io/streams", "[method]output-stream.write" | "[method]output-stream.blocking-write-and-flush") => {
            inst.func_wrap(name, |mut store, (s, bytes): (Resource<OutputStream>, Vec<u8>)| {
                store.data_mut().log.write_stream(s.rep() as usize, &bytes)?;
                Ok((StreamResult::Ok(()),))
            })?;
        }
        ("wasi:io/streams", "[method]output-stream.flush" | "[method]output-stream.blocking-flush") => {
            inst.func_wrap(name, |_, (_s,): (Resource<OutputStream>,)| Ok((StreamResult::Ok(()),)))?;
        }
        // std's stdout/stderr path waits for writability before writing: say "ready" at once.
        ("wasi:io/streams", "[method]output-stream.subscribe") => {
            inst.func_wrap(name, |_, (s,): (Resource<OutputStream>,)| Ok((Resource::<Pollable>::new_own(s.rep()),)))?;
        }
        ("wasi:io/poll", "[method]pollable.ready") => {
            inst.func_wrap(name, |_, (_p,): (Resource<Pollable>,)| Ok((true,)))?;
        }
        ("wasi:io/poll", "[method]pollable.block") => {
            inst.func_wrap(name, |_, (_p,): (Resource<Pollable>,)| Ok(()))?;
        }
        // Only output streams hand out pollables, and they are always ready.
        ("wasi:io/poll", "poll") => {
            inst.func_wrap(name, |_, (ps,): (Vec<Resource<Pollable>>,)| {
                Ok(((0..ps.len() as u32).collect::<Vec<u32>>(),))
            })?;
        }
        ("wasi:io/streams", "[method]input-stream.read" | "[method]input-stream.blocking-read") => {
            inst.func_wrap(name, |_, (_s, _len): (Resource<InputStream>, u64)| {
                Ok((StreamResult::<Vec<u8>>::Err(StreamError::Closed),))
            })?;
        }
        ("wasi:io/error", "[method]error.to-debug-string") => {
            inst.func_wrap(name, |_, (_e,): (Resource<IoError>,)| Ok(("denied by the arbiter sandbox".to_owned(),)))?;
        }
        ("wasi:filesystem/preopens", "get-directories") => {
            inst.func_wrap(name, |_, (): ()| Ok((Vec::<(Resource<Denied>, String)>::new(),)))?;
        }
        // Randomness: a generator seeded by the request's seed, never the host's entropy.
        ("wasi:random/insecure-seed", "insecure-seed") => {
            inst.func_wrap(name, |mut store, (): ()| {
                let s = store.data_mut();
                Ok(((s.next_random(), s.next_random()),))
            })?;
        }
        ("wasi:random/random", "get-random-u64") | ("wasi:random/insecure", "get-insecure-random-u64") => {
            inst.func_wrap(name, |mut store, (): ()| Ok((store.data_mut().next_random(),)))?;
        }
        ("wasi:random/random", "get-random-bytes") | ("wasi:random/insecure", "get-insecure-random-bytes") => {
            inst.func_wrap(name, |mut store, (len,): (u64,)| Ok((store.data_mut().random_bytes(len)?,)))?;
        }
        // Clocks: a virtual monotonic clock (one step per reading) and a fixed wall clock,
        // never the host's time, so a call's result does not depend on when it ran.
        ("wasi:clocks/monotonic-clock", "now") => {
            inst.func_wrap(name, |mut store, (): ()| {
                let s = store.data_mut();
                s.clock_ns += CLOCK_STEP_NS;
                Ok((s.clock_ns,))
            })?;
        }
        ("wasi:clocks/monotonic-clock", "resolution") => {
            inst.func_wrap(name, |_, (): ()| Ok((CLOCK_STEP_NS,)))?;
        }
        // A wait ends at once (the time is virtual); the clock moves past it.
        ("wasi:clocks/monotonic-clock", "subscribe-duration" | "subscribe-instant") => {
            let relative = name == "subscribe-duration";
            inst.func_wrap(name, move |mut store, (when,): (u64,)| {
                let s = store.data_mut();
                s.clock_ns = if relative { s.clock_ns.saturating_add(when) } else { s.clock_ns.max(when) };
                Ok((Resource::<Pollable>::new_own(CLOCK_POLLABLE),))
            })?;
        }
        ("wasi:clocks/wall-clock", "now") => {
            inst.func_wrap(name, |_, (): ()| Ok((Datetime { seconds: WALL_CLOCK_SECONDS, nanoseconds: 0 },)))?;
        }
        ("wasi:clocks/wall-clock", "resolution") => {
            inst.func_wrap(name, |_, (): ()| Ok((Datetime { seconds: 1, nanoseconds: 0 },)))?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_names_what_is_refused() {
        assert_eq!(classify("arbiter:policy/reward@0.1.0"), ImportClass::Arbiter);
        assert_eq!(classify("arbiter:policy/log@0.1.3"), ImportClass::Arbiter);
        assert_eq!(classify("wasi:cli/stderr@0.2.6"), ImportClass::Wasi);
        assert!(matches!(classify("arbiter:policy/reward@0.2.0"), ImportClass::Refused(m) if m.contains("0.1.x")));
        assert!(matches!(classify("arbiter:policy/net@0.1.0"), ImportClass::Refused(m) if m.contains("net")));
        assert_eq!(classify("wasi:http/outgoing-handler@0.2.10"), ImportClass::Wasi);
        assert!(matches!(classify("wasi:http/types@0.3.0"), ImportClass::Refused(m) if m.contains("0.2")));
        assert!(matches!(classify("wasi:cli/stdout@0.3.0"), ImportClass::Refused(m) if m.contains("0.2")));
        assert!(matches!(classify("evil:net/socket"), ImportClass::Refused(m) if m.contains("evil:net")));
    }
}
