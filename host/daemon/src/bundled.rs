//! The bundled plugins, compiled to wasm by `build.rs` and embedded in the binary, so
//! `arbiter select --policy argmax` needs no separate build step.

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// Wasm bytes of the bundled plugin `name`.
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUNDLED.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// Names of all bundled plugins.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUNDLED.iter().map(|(n, _)| *n)
}
