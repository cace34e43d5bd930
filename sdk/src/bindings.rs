//! wit-bindgen output for the two worlds. Hidden: plugin authors use the SDK's own types.
//!
//! On wasm32 only the world selected by the crate feature is generated, because each
//! generated world embeds a component-type section and the component encoder would then
//! require the other world's exports too.

#![allow(missing_docs, reason = "generated bindings")]
#![allow(clippy::all, reason = "generated bindings")]

#[cfg(any(feature = "policy", not(target_arch = "wasm32")))]
pub mod policy {
    wit_bindgen::generate!({
        path: "../wit",
        world: "policy",
        pub_export_macro: true,
        export_macro_name: "__export_policy_world",
        default_bindings_module: "arbiter_sdk::bindings::policy",
        runtime_path: "arbiter_sdk::__wit_bindgen::rt",
    });
}

#[cfg(any(feature = "rule", not(target_arch = "wasm32")))]
pub mod rule {
    wit_bindgen::generate!({
        path: "../wit",
        world: "rule",
        pub_export_macro: true,
        export_macro_name: "__export_rule_world",
        default_bindings_module: "arbiter_sdk::bindings::rule",
        runtime_path: "arbiter_sdk::__wit_bindgen::rt",
    });
}
