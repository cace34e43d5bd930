//! `sandbox-probe`: a test fixture, not a bundled policy. A Rust guest that, on request
//! (param `do`), tries what the sandbox must deny or contain — clock, environment, files,
//! exit, panic, printing — and reports what it saw in its `reason`. The host's test suite
//! uses it to check the deny-all WASI layer against real Rust std, not just hand-written WAT.

use std::collections::HashMap;

use arbiter_sdk::prelude::*;

/// The probe policy.
pub struct Probe;

impl Policy for Probe {
    fn info() -> PolicyInfo {
        PolicyInfo::new("sandbox-probe", env!("CARGO_PKG_VERSION"))
            .params_doc("do: hashmap | clock | instant | env | file | exit | panic | print")
    }

    fn select(req: Request) -> Result<Selection, PolicyError> {
        let reason = match req.params.get("do").unwrap_or("hashmap") {
            "hashmap" => {
                let map: HashMap<&str, u32> = req.candidates.iter().map(|c| (c.text.as_str(), c.index)).collect();
                format!("hashmap holds {}", map.len())
            }
            "clock" => format!("clock={:?}", std::time::SystemTime::now()),
            "instant" => format!("instant={:?}", std::time::Instant::now()),
            "env" => format!(
                "env={:?} args={:?}",
                std::env::vars().collect::<Vec<_>>(),
                std::env::args().collect::<Vec<_>>()
            ),
            "file" => format!("file={:?}", std::fs::read_to_string("/etc/passwd")),
            "exit" => std::process::exit(3),
            "panic" => panic!("deliberate panic in sandbox-probe"),
            "print" => {
                println!("hello from stdout");
                eprintln!("hello from stderr");
                "printed".to_owned()
            }
            other => return Err(PolicyError::InvalidParams(format!("`do`: unknown probe {other:?}"))),
        };
        Ok(Selection { chosen: None, ranking: Vec::new(), reason })
    }
}

export_policy!(Probe);
