//! The one place the WIT interface becomes Rust: `bindgen!` over `plugins/wit/`.

wasmtime::component::bindgen!({
    path: "plugins/wit",
    world: "plugin",
});
