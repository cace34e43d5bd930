//! The `arbiter` binary: parses arguments, runs a command, maps failure to exit code 2 with
//! one line on stderr (a command may choose another code: `score --on-error skip` exits 3).
//! All logic lives in the library and in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            let line = format!("{e:#}").replace('\n', " ");
            eprintln!("arbiter: {line}");
            ExitCode::from(2)
        }
    }
}
