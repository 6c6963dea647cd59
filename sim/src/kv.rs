//! KV-cache blocks with optional prefix caching (hashes of block-aligned prompt prefixes, LRU).

use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Copy)]
struct Cached {
    refs: u32,
    tick: u64,
}

/// The block pool. A block is either private to one sequence or a cached prompt block, shared
/// by reference count; cached blocks nobody holds stay reusable until evicted (least recently
/// released first) to make room.
#[derive(Debug)]
pub(crate) struct BlockPool {
    total: u32,
    private_used: u32,
    cached: HashMap<u64, Cached>,
    evictable: BTreeMap<u64, u64>,
    tick: u64,
}

impl BlockPool {
    pub(crate) fn new(total: u32) -> BlockPool {
        BlockPool {
            total,
            private_used: 0,
            cached: HashMap::new(),
            evictable: BTreeMap::new(),
            tick: 0,
        }
    }

    /// Blocks not held by any sequence (evictable cached blocks count as free).
    pub(crate) fn free_blocks(&self) -> u32 {
        self.total - self.private_used - self.cached.len() as u32 + self.evictable.len() as u32
    }

    /// Fraction of blocks held by sequences (vLLM's kv_cache_usage_perc).
    pub(crate) fn usage(&self) -> f64 {
        1.0 - f64::from(self.free_blocks()) / f64::from(self.total)
    }

    /// Takes `n` private blocks, evicting cached ones if needed; false (and nothing taken) when
    /// there are not enough.
    pub(crate) fn alloc(&mut self, n: u32) -> bool {
        if n == 0 {
            return true;
        }
        if self.free_blocks() < n {
            return false;
        }
        while self.total - self.private_used - (self.cached.len() as u32) < n {
            let Some((_, hash)) = self.evictable.pop_first() else {
                return false;
            };
            self.cached.remove(&hash);
        }
        self.private_used += n;
        true
    }

    pub(crate) fn release_private(&mut self, n: u32) {
        self.private_used -= n;
    }

    /// Takes a reference on each leading block of `hashes` that is cached, up to `max`; returns
    /// how many.
    pub(crate) fn lookup(&mut self, hashes: &[u64], max: usize) -> usize {
        let mut hits = 0;
        for h in hashes.iter().take(max) {
            match self.cached.get_mut(h) {
                Some(c) => {
                    if c.refs == 0 {
                        self.evictable.remove(&c.tick);
                    }
                    c.refs += 1;
                    hits += 1;
                }
                None => break,
            }
        }
        hits
    }

    /// Turns one private block, now fully computed, into the cached block `hash`.
    pub(crate) fn promote(&mut self, hash: u64) {
        self.private_used -= 1;
        match self.cached.get_mut(&hash) {
            Some(c) => {
                if c.refs == 0 {
                    self.evictable.remove(&c.tick);
                }
                c.refs += 1;
            }
            None => {
                self.cached.insert(hash, Cached { refs: 1, tick: 0 });
            }
        }
    }

    pub(crate) fn release_cached(&mut self, hash: u64) {
        if let Some(c) = self.cached.get_mut(&hash) {
            c.refs -= 1;
            if c.refs == 0 {
                self.tick += 1;
                c.tick = self.tick;
                self.evictable.insert(self.tick, hash);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_fails_without_taking_anything() {
        let mut p = BlockPool::new(4);
        assert!(p.alloc(3));
        assert!(!p.alloc(2));
        assert_eq!(p.free_blocks(), 1);
        p.release_private(3);
        assert_eq!(p.free_blocks(), 4);
        assert_eq!(p.usage(), 0.0);
    }

    #[test]
    fn cached_blocks_are_shared_then_evicted_lru() {
        let mut p = BlockPool::new(4);
        assert!(p.alloc(2));
        p.promote(10);
        p.promote(11);
        assert_eq!(p.free_blocks(), 2);
        // A second sequence finds both.
        assert_eq!(p.lookup(&[10, 11, 12], 3), 2);
        assert_eq!(p.usage(), 0.5);
        p.release_cached(10);
        p.release_cached(11);
        p.release_cached(11);
        assert_eq!(p.free_blocks(), 3, "10 still held once");
        p.release_cached(10);
        assert_eq!(p.free_blocks(), 4);
        // Needing 3 fresh blocks evicts only the least recently released (11).
        assert!(p.alloc(3));
        assert_eq!(p.lookup(&[10], 1), 1);
        assert_eq!(p.lookup(&[11], 1), 0);
    }
}
