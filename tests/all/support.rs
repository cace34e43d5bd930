//! Shared test fixtures: a plugin host with a private cache, a fake reward model, request
//! builders, and a builder for hostile components written as inline WAT.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arbiter_engine::{FakeRewardModel, RewardModel};
use arbiter_plugins::{Candidate, HostConfig, Limits, Message, Plugin, PluginHost, Request, RewardBackend};

/// A host whose compile cache lives in a temp dir that outlives the host.
pub fn host() -> (PluginHost, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = HostConfig { cache_dir: Some(dir.path().join("cache")), ..HostConfig::default() };
    (PluginHost::new(config).expect("host"), dir)
}

/// Loads a bundled plugin with default limits.
pub fn bundled(host: &PluginHost, name: &str) -> Plugin {
    let bytes = arbiter::bundled::get(name).unwrap_or_else(|| panic!("{name} is bundled"));
    host.load(name, bytes, Limits::default()).unwrap_or_else(|e| panic!("load {name}: {e}"))
}

/// A reward backend for tests over the engine's `FakeRewardModel` (score = the number after
/// `s=` in a response; tokens = words) that counts calls and can be slowed down.
#[derive(Default)]
pub struct FakeModel {
    pub calls: AtomicUsize,
    pub responses: AtomicUsize,
    pub delay: Duration,
}

impl RewardBackend for FakeModel {
    fn score(&self, _conversation: &[Message], responses: &[String]) -> Result<Vec<f32>, arbiter_plugins::RewardError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.responses.fetch_add(responses.len(), Ordering::SeqCst);
        std::thread::sleep(self.delay);
        FakeRewardModel
            .score(&[], responses)
            .map_err(|e| arbiter_plugins::RewardError::new(arbiter_plugins::RewardErrorKind::Failed, e.to_string()))
    }

    fn count_tokens(&self, text: &str) -> u32 {
        FakeRewardModel.count_tokens(text).unwrap_or(0)
    }

    fn describe(&self) -> String {
        "fake".into()
    }
}

pub fn fake() -> Arc<FakeModel> {
    Arc::new(FakeModel::default())
}

/// A request over candidates with the given scores (texts `c0`, `c1`, ...).
pub fn scored(scores: &[f32]) -> Request {
    let candidates = scores
        .iter()
        .enumerate()
        .map(|(i, s)| Candidate {
            index: i as u32,
            text: format!("c{i}"),
            tokens: 1,
            score: Some(*s),
            features: vec![],
        })
        .collect();
    Request {
        conversation: vec![Message { role: "user".into(), content: "question".into() }],
        candidates,
        params: vec![],
        seed: 0,
    }
}

/// Same request with parameters.
pub fn with_params(mut req: Request, params: &[(&str, &str)]) -> Request {
    req.params = params.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    req
}

/// The repository's `wit/` directory.
fn wit_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit")
}

/// Minimal WASI interfaces for hostile components (only the functions they call).
const WASI_SUBSET: [(&str, &str); 3] = [
    (
        "wasi-cli.wit",
        "package wasi:cli@0.2.0;
         interface environment { get-environment: func() -> list<tuple<string, string>>; }",
    ),
    (
        "wasi-fs.wit",
        "package wasi:filesystem@0.2.0;
         interface types {
           resource descriptor { read: func(length: u64, offset: u64) -> result<tuple<list<u8>, bool>, u8>; }
         }
         interface preopens { use types.{descriptor}; get-directories: func() -> list<tuple<descriptor, string>>; }",
    ),
    (
        "wasi-clocks.wit",
        "package wasi:clocks@0.2.0;
         interface wall-clock { record datetime { seconds: u64, nanoseconds: u32 } now: func() -> datetime; }",
    ),
];

/// Worlds of the hostile components (their imports are what makes them hostile).
const TEST_WORLDS: &str = "package test:hostile;
    interface http { get: func(url: string) -> string; }
    world plain { export arbiter:policy/selector@0.1.0; }
    world logger { import arbiter:policy/log@0.1.0; export arbiter:policy/selector@0.1.0; }
    world scorer { import arbiter:policy/reward@0.1.0; export arbiter:policy/selector@0.1.0; }
    world snoop {
      import wasi:cli/environment@0.2.0;
      import wasi:filesystem/preopens@0.2.0;
      import wasi:filesystem/types@0.2.0;
      import wasi:clocks/wall-clock@0.2.0;
      export arbiter:policy/selector@0.1.0;
    }
    world network { import http; export arbiter:policy/selector@0.1.0; }
    world no-exports { import arbiter:policy/log@0.1.0; }";

/// Encodes a core module (WAT) as a component of `world` (one of TEST_WORLDS).
pub fn component(world: &str, core_wat: &str) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    resolve.push_dir(wit_dir()).expect("arbiter wit parses");
    for (name, text) in WASI_SUBSET {
        resolve.push_str(name, text).expect("wasi subset parses");
    }
    let pkg = resolve.push_str("test.wit", TEST_WORLDS).expect("test worlds parse");
    let world = resolve.select_world(&[pkg], Some(world)).expect("world exists");
    let mut module = wat::parse_str(core_wat).expect("core wat parses");
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8)
        .expect("embed metadata");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("module accepted")
        .validate(true)
        .encode()
        .expect("component encodes")
}

/// A policy core module whose `select` runs `body` when the request seed is 666 and
/// otherwise answers `chosen = 0, ranking = [0], reason = "ok"`. So one plugin can be
/// hostile on one call and well-behaved on the next. `imports` and `funcs` are spliced in.
///
/// Memory map: 16 name, 32 version, 48 "ok", 256 info record, 512 select result,
/// 600 ranking data, 4096.. heap (bump allocator for `cabi_realloc`).
pub fn policy_wat(imports: &str, funcs: &str, body: &str) -> String {
    format!(
        r#"(module
  {imports}
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                           (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (block $fits
      (br_if $fits (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
      (drop (memory.grow (i32.add (i32.const 1)
        (i32.div_u (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) (i32.const 65536))))))
    (local.get $p))
  (data (i32.const 16) "hostile")
  (data (i32.const 32) "1.0.0")
  (data (i32.const 48) "ok")
  (func (export "arbiter:policy/selector@0.1.0#info") (result i32)
    (i32.store (i32.const 256) (i32.const 16)) (i32.store (i32.const 260) (i32.const 7))
    (i32.store (i32.const 264) (i32.const 32)) (i32.store (i32.const 268) (i32.const 5))
    (i32.store8 (i32.const 272) (i32.const 1))
    (i32.store (i32.const 276) (i32.const 0)) (i32.store (i32.const 280) (i32.const 0))
    (i32.const 256))
  (func $ok (result i32)
    (i32.store8 (i32.const 512) (i32.const 0))
    (i32.store8 (i32.const 516) (i32.const 1))
    (i32.store (i32.const 520) (i32.const 0))
    (i32.store (i32.const 600) (i32.const 0))
    (i32.store (i32.const 524) (i32.const 600)) (i32.store (i32.const 528) (i32.const 1))
    (i32.store (i32.const 532) (i32.const 48)) (i32.store (i32.const 536) (i32.const 2))
    (i32.const 512))
  {funcs}
  (func (export "arbiter:policy/selector@0.1.0#select")
        (param $conv i32) (param $conv_len i32) (param $cands i32) (param $cands_len i32)
        (param $params i32) (param $params_len i32) (param $seed i64) (result i32)
    (if (i64.eq (local.get $seed) (i64.const 666)) (then {body}))
    (call $ok))
)"#
    )
}

/// The guest imports of `reward.score` and `log`, for `policy_wat(imports, ..)`.
pub const REWARD_SCORE_IMPORT: &str =
    r#"(import "arbiter:policy/reward@0.1.0" "score" (func $score (param i32 i32 i32 i32 i32)))"#;
pub const LOG_IMPORT: &str = r#"(import "arbiter:policy/log@0.1.0" "log" (func $log (param i32 i32 i32)))"#;

/// A `select` body scoring the response `["ok"]` against the request's conversation once per
/// `(call ...)`; `score_ok_body(true)` repeats it forever.
pub fn score_ok_body(forever: bool) -> String {
    let call = "(call $score (local.get $conv) (local.get $conv_len) (i32.const 700) (i32.const 1) (i32.const 800))";
    let call = if forever { format!("(loop $l {call} (br $l))") } else { call.to_owned() };
    format!("(i32.store (i32.const 700) (i32.const 48)) (i32.store (i32.const 704) (i32.const 2)) {call}")
}

/// A hostile request (seed 666) and a benign one (seed 0), two candidates each.
pub fn hostile_and_benign() -> (Request, Request) {
    let benign = scored(&[1.0, 2.0]);
    let mut hostile = benign.clone();
    hostile.seed = 666;
    (hostile, benign)
}
