//! Per-shard randomness (xorshift64*) for weighted routes, retry jitter and request ids: cheap,
//! `!Send`, seeded per shard so shards do not pick in lockstep.

use std::cell::Cell;

#[derive(Debug)]
pub struct Rng(Cell<u64>);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(Cell::new(seed | 1))
    }

    /// Seeded from the clock and the shard id.
    pub fn for_shard(id: usize) -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng::new(0x2545_F491_4F6C_DD1D ^ ((id as u64 + 1) << 17) ^ t)
    }

    pub fn next(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}
