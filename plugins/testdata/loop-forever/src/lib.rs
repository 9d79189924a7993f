//! loop-forever: never returns, to test tocsin's fuel and wall-clock limits.

use tocsin_plugin_sdk::prelude::*;

struct LoopForever;

impl Plugin for LoopForever {
    fn handle(ev: &Event) -> Result<Decision, String> {
        // black_box hides the value from the optimizer on every turn, so the loop can be
        // neither folded away nor proven endless and turned into a trap. Pure computation (no
        // host calls) burns fuel at a steady, deterministic rate per turn.
        let mut n = ev.title.len() as u64;
        loop {
            n = std::hint::black_box(
                n.wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407),
            );
        }
    }
}

export_plugin!(LoopForever);
