//! tocsin plugin SDK: write an alert rule as a plain Rust function and export it as a component.
//!
//! ```ignore
//! use tocsin_plugin_sdk::prelude::*;
//!
//! struct MyRule;
//!
//! impl Plugin for MyRule {
//!     fn handle(ev: &Event) -> Result<Decision, String> {
//!         if ev.label("alertname") == Some("Watchdog") {
//!             return Ok(Decision::drop("heartbeat"));
//!         }
//!         match ev.label("team") {
//!             Some(team) => Ok(Decision::route().room(team)),
//!             None => Ok(Decision::pass()),
//!         }
//!     }
//! }
//!
//! export_plugin!(MyRule);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component tocsin loads.

#![warn(missing_docs)]

// Lets the generated bindings name the runtime as `tocsin_plugin_sdk::__rt` both here and in
// plugin crates, so plugins need no direct wit-bindgen dependency.
extern crate self as tocsin_plugin_sdk;

mod decision;
mod duration;
mod event;
mod host;
mod matcher;
pub mod regex;

/// Bindings generated from `wit/tocsin-plugin.wit` (world `plugin`). The types are re-exported at
/// the crate root; use this module only for what the SDK does not wrap.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin",
        // The export macro must be usable from plugin crates, and find the types in here.
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "tocsin_plugin_sdk::bindings",
        runtime_path: "tocsin_plugin_sdk::__rt",
        additional_derives: [PartialEq],
    });
}

#[doc(hidden)]
pub use wit_bindgen::rt as __rt;

pub use bindings::tocsin::plugin::host::Level;
pub use bindings::tocsin::plugin::types::{
    Decision, Event, Routed, Severity, Status, TicketFields,
};
pub use duration::parse_duration_ms;
pub use host::{config, config_flag, config_or, kv, log, lookup, now_ms};
pub use matcher::{Matcher, MatcherOp, Matchers};

/// A plugin: one function from an alert to a decision. The server reuses a warm instance across
/// events (and sources), so globals may survive between calls but are lost on any restart, trap or
/// reload: keep nothing in them. State that must last goes in the [`kv`] store (`tocsin plugin test`
/// fails a case whose result depends on earlier cases).
pub trait Plugin {
    /// Decides what happens to `ev`: [`Decision::pass`], [`Decision::drop`] or
    /// [`Decision::route`]. `Err` counts as a plugin failure: tocsin logs it and goes on as if
    /// the plugin had passed (fail open).
    fn handle(ev: &Event) -> Result<Decision, String>;
}

// Every `Plugin` is the world's `Guest`, so `export_plugin!` can hand the user's type straight
// to the generated export macro.
impl<T: Plugin> bindings::Guest for T {
    fn handle(event: Event) -> Result<Decision, String> {
        host::install_panic_hook();
        // An empty route adds nothing; say so plainly, so tocsin and fixtures see `pass`.
        T::handle(&event).map(|d| if d.is_pass() { Decision::Pass } else { d })
    }
}

/// Exports a [`Plugin`] type as the component's `handle` function. Call it once, at the top
/// level of the plugin crate (a `cdylib`), with the type's name: `export_plugin!(MyRule);`.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ident) => {
        $crate::bindings::__export_plugin!($ty with_types_in $crate::bindings);
    };
}

/// Everything a typical rule needs: `use tocsin_plugin_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        config, config_flag, config_or, export_plugin, kv, log, lookup, now_ms, parse_duration_ms,
        Decision, Event, Matcher, Matchers, Plugin, Severity, Status,
    };
}
