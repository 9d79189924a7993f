//! hot-spot: spends most of its fuel in one named function, `burn`, so that `tocsin plugin test
//! --profile` has a known answer.
//!
//! - `burn`: a leaf loop (no calls inside), about nine tenths of the fuel.
//! - `tally`: calls `step` in a loop, so `tally`'s total fuel holds `step`'s self fuel.
//!
//! Label `rounds` sets how many rounds `burn` runs (default 20000); nothing else depends on it.
//! Routes with tags naming the results, so none of the work can be optimised away.

use std::hint::black_box;

use tocsin_plugin_sdk::prelude::*;

struct HotSpot;

impl Plugin for HotSpot {
    fn handle(ev: &Event) -> Result<Decision, String> {
        let rounds = ev
            .label("rounds")
            .and_then(|r| r.parse().ok())
            .unwrap_or(20_000);
        let digest = burn(ev.title.as_bytes(), rounds);
        let count = tally(ev.title.as_bytes(), 500);
        // The same work whatever the digest, so that only `burn`'s fuel depends on `rounds`.
        let parity = if digest % 2 == 0 { "digest-even" } else { "digest-odd!" };
        Ok(Decision::route()
            .tag(parity)
            .tag(format!("tally-{count}")))
    }
}

/// FNV-1a over `seed`, `rounds` times: straight-line work in a loop, no calls.
#[inline(never)]
fn burn(seed: &[u8], rounds: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for _ in 0..rounds {
        for &b in seed {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h = black_box(h);
    }
    h
}

/// Calls `step` `times` times.
#[inline(never)]
fn tally(seed: &[u8], times: u32) -> u32 {
    let mut n = 0;
    for i in 0..times {
        n = step(black_box(n), seed.len() as u32 + i);
    }
    n % 1000
}

#[inline(never)]
fn step(n: u32, x: u32) -> u32 {
    black_box(n.wrapping_mul(31).wrapping_add(x))
}

export_plugin!(HotSpot);
