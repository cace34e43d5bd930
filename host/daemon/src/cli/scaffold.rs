//! `arbiter plugin new NAME --lang rust|python|js|c`: a policy project that builds with the
//! commands it prints, with this host's WIT contract copied in.
//!
//! Every template is the same small policy (argmax with an optional `min` below which it
//! abstains), so the four languages can be compared line by line; the templates live in
//! `host/daemon/templates/` and CI builds each one (tests/all/scaffold.rs when the toolchain is
//! present, docs/plugins/*.md always).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;

/// The languages `plugin new` scaffolds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
}

/// The contract, as this binary speaks it.
const WIT: [(&str, &str); 6] = [
    ("types.wit", include_str!("../../../../wit/types.wit")),
    ("selector.wit", include_str!("../../../../wit/selector.wit")),
    ("scorer.wit", include_str!("../../../../wit/scorer.wit")),
    ("reward.wit", include_str!("../../../../wit/reward.wit")),
    ("log.wit", include_str!("../../../../wit/log.wit")),
    ("worlds.wit", include_str!("../../../../wit/worlds.wit")),
];

/// (path in the project, template text) per language; `__NAME__`/`__SDK__` are filled in.
fn files(lang: Lang) -> &'static [(&'static str, &'static str)] {
    match lang {
        Lang::Rust => &[
            ("Cargo.toml", include_str!("../../templates/rust/Cargo.toml")),
            ("src/lib.rs", include_str!("../../templates/rust/lib.rs")),
        ],
        Lang::Python => &[("app.py", include_str!("../../templates/python/app.py"))],
        Lang::Js => &[
            ("policy.js", include_str!("../../templates/js/policy.js")),
            ("package.json", include_str!("../../templates/js/package.json")),
        ],
        Lang::C => &[
            ("policy.c", include_str!("../../templates/c/policy.c")),
            ("build.sh", include_str!("../../templates/c/build.sh")),
        ],
    }
}

/// The commands that build the project, run from its directory, and the component they make.
fn build_commands(lang: Lang, name: &str) -> (Vec<String>, String) {
    match lang {
        Lang::Rust => (
            vec!["rustup target add wasm32-wasip2".into(), "cargo build --release --target wasm32-wasip2".into()],
            format!("target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_")),
        ),
        Lang::Python => (
            vec![
                "python3 -m pip install componentize-py==0.25.1".into(),
                format!("componentize-py -d wit -w policy componentize app -o {name}.wasm"),
            ],
            format!("{name}.wasm"),
        ),
        Lang::Js => (vec!["npm install".into(), "npm run build".into()], format!("{name}.wasm")),
        Lang::C => {
            (vec!["ADAPTER=/path/to/wasi_snapshot_preview1.reactor.wasm ./build.sh".into()], format!("{name}.wasm"))
        }
    }
}

/// A plugin name that is also a valid crate, npm package and file name.
fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "plugin name {name:?}: use 1-64 lowercase letters, digits and '-', starting with a letter (e.g. my-policy)"
        );
    }
    Ok(())
}

/// Writes the project for `name` into `dir` (default `./NAME`, which must not exist or be
/// empty) and prints how to build, check and serve it.
pub fn new(name: &str, lang: Lang, dir: Option<&Path>, sdk: &str) -> Result<()> {
    check_name(name)?;
    let dir: PathBuf = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.read_dir().is_ok_and(|mut entries| entries.next().is_some()) {
        bail!("{} exists and is not empty; choose another --dir", dir.display());
    }
    let mut written = Vec::new();
    for (path, text) in files(lang) {
        written.push(((*path).to_owned(), text.replace("__NAME__", name).replace("__SDK__", sdk)));
    }
    for (file, text) in WIT {
        written.push((format!("wit/{file}"), text.to_owned()));
    }
    for (path, text) in &written {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
    }
    if lang == Lang::C {
        make_executable(&dir.join("build.sh"))?;
    }
    let (commands, wasm) = build_commands(lang, name);
    outln!("created {} ({} files, WIT contract in wit/)", dir.display(), written.len());
    outln!("build (in {}):", dir.display());
    for command in &commands {
        outln!("  {command}");
    }
    if lang == Lang::Rust {
        outln!("  (Cargo.toml points arbiter-sdk at {sdk}; --sdk sets another path to the clone's sdk/)");
    }
    if lang == Lang::C {
        outln!("  (build.sh lists what it needs; docs/plugins/c.md installs the pinned versions)");
    }
    outln!("check and try it:");
    outln!("  arbiter plugin check {wasm}");
    outln!(
        "  echo '{{\"candidates\":[{{\"text\":\"a\",\"score\":1}},{{\"text\":\"b\",\"score\":2}}]}}' | arbiter select --policy {wasm} --input -"
    );
    outln!("serve it (hot-loaded; the daemon watches the directory):");
    outln!("  cp {wasm} PLUGINS_DIR/   # arbiter serve --plugins PLUGINS_DIR");
    Ok(())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["my-policy", "p", "best-of-2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "My", "1st", "a_b", "a-", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_template_names_the_plugin() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::C] {
            let all: String = files(lang).iter().map(|(_, t)| *t).collect();
            assert!(all.contains("__NAME__"), "{lang:?}");
        }
    }
}
