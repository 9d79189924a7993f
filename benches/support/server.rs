//! The release `tocsin serve` for the benchmarks: started on a config file, its announced address read
//! from its JSON log, the rest of its log drained so the pipe never fills.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `bin serve --config config` (the config must set `log: {format: json}`) and waits for its
/// "listening" line. Returns the child and the address it bound.
pub fn serve(bin: &str, config: &Path) -> (Child, String) {
    let mut child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("build the release binary first: cargo build --release");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("server exited").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "tocsin is listening." {
            break v["addr"].as_str().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    (child, addr)
}
