//! alloc-forever: allocates and touches memory until the host's memory limit stops it.

use std::mem::MaybeUninit;

use tocsin_plugin_sdk::prelude::*;

struct AllocForever;

impl Plugin for AllocForever {
    fn handle(_ev: &Event) -> Result<Decision, String> {
        let mut chunks: Vec<Box<[MaybeUninit<u8>]>> = Vec::new();
        loop {
            // 1 MiB at a time, left uninitialised and written once per 4 KiB page: zeroing it
            // would burn fuel byte by byte and hit the fuel limit before the memory limit.
            // black_box keeps the optimizer from proving the data dead. Once the host refuses
            // to grow memory, the allocator fails, which aborts (a trap).
            let mut chunk = Box::<[u8]>::new_uninit_slice(1 << 20);
            for i in (0..chunk.len()).step_by(4096) {
                chunk[i].write((chunks.len() + i) as u8);
            }
            chunks.push(std::hint::black_box(chunk));
            if std::hint::black_box(chunks.len()) == usize::MAX {
                return Ok(Decision::drop(format!("{}", chunks.len())));
            }
        }
    }
}

export_plugin!(AllocForever);
