//! Builds the bundled plugins (`plugins/`) for `wasm32-wasip2` and embeds them.
//!
//! The plugins are their own cargo workspace; this script runs a nested `cargo build` on it
//! with a target dir beside this build's (`<target>/wasm-plugins`), so it is incremental and
//! never contends for the outer build's lock. Policies and rules build in separate
//! invocations because arbiter-sdk's `policy` and `rule` features are exclusive on wasm.
//! The output is `bundled.rs` in OUT_DIR: `(name, bytes)` pairs via `include_bytes!`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (cargo package, world, bundled?) of each plugin; the package name is the plugin name.
/// Unbundled ones are test fixtures: built, never embedded; tests read them from the directory
/// in `ARBITER_TEST_PLUGINS` (set for this package's targets at compile time).
const PLUGINS: [(&str, &str, bool); 6] = [
    ("argmax", "policy", true),
    ("threshold", "policy", true),
    ("tie-break", "policy", true),
    ("early-exit", "policy", true),
    ("max-length", "rule", true),
    ("sandbox-probe", "policy", false),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.join("../..").canonicalize().expect("repository root exists");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    for watched in ["plugins", "sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    // OUT_DIR is <target>/<profile>/build/<pkg-hash>/out: share one wasm target dir per <target>.
    let target_dir = out_dir.ancestors().nth(4).unwrap_or(&out_dir).join("wasm-plugins");

    for world in ["policy", "rule"] {
        let packages: Vec<&str> = PLUGINS.iter().filter(|(_, w, _)| *w == world).map(|(p, _, _)| *p).collect();
        build(&root, &target_dir, &packages);
    }

    let mut bundled = String::new();
    for (package, _, is_bundled) in PLUGINS {
        let artifact = target_dir.join("wasm32-wasip2/release").join(format!("{}.wasm", package.replace('-', "_")));
        let embedded = out_dir.join(format!("{package}.wasm"));
        std::fs::copy(&artifact, &embedded)
            .unwrap_or_else(|e| panic!("bundled plugin {} missing after build: {e}", artifact.display()));
        if is_bundled {
            bundled.push_str(&format!("    ({package:?}, include_bytes!({:?})),\n", embedded.display().to_string()));
        }
    }
    println!("cargo:rustc-env=ARBITER_TEST_PLUGINS={}", out_dir.display());
    let generated = format!(
        "/// `(name, wasm bytes)` of every bundled plugin, built by build.rs.\n\
         pub const BUNDLED: &[(&str, &[u8])] = &[\n{bundled}];\n"
    );
    std::fs::write(out_dir.join("bundled.rs"), generated).expect("write bundled.rs");
}

fn build(root: &Path, target_dir: &Path, packages: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root.join("plugins"))
        .args(["build", "--release", "--locked", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    // The outer build's flags and wrappers (clippy, coverage, host RUSTFLAGS) are for the
    // host target; they must not leak into the guest build or change its artifacts.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run cargo for the bundled plugins: {e}"));
    if !status.success() {
        panic!(
            "building the bundled plugins ({}) for wasm32-wasip2 failed; if the target is missing, run \
             `rustup target add wasm32-wasip2`",
            packages.join(", ")
        );
    }
}
