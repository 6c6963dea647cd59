//! The rankings cache: answers keyed by their request, dropped whole when a
//! run is recorded. A lookup reads no database: runs recorded through the
//! service invalidate at once; SQLite's `data_version`, polled by a thread
//! every `SQLITE_POLL`, reveals runs recorded by other processes; with
//! PostgreSQL a listener thread invalidates on `NOTIFY`, so several `serve`
//! instances over one database stay fresh without Redis or polling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// Most answers kept; past it the cache starts over, so a flood of
/// distinct filters cannot grow memory without bound.
const MAX_ENTRIES: usize = 1024;

/// Cached JSON answers.
#[derive(Debug)]
pub struct Cache {
    entries: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    /// The SQLite `data_version` the entries were computed at.
    seen_version: Mutex<Option<i64>>,
    /// Counts invalidations; tests and other tasks can wait for one.
    generation: watch::Sender<u64>,
}

impl Default for Cache {
    fn default() -> Cache {
        Cache {
            entries: Mutex::new(HashMap::new()),
            seen_version: Mutex::new(None),
            generation: watch::Sender::new(0),
        }
    }
}

impl Cache {
    /// A cached answer.
    pub fn get(&self, key: &str) -> Option<Arc<Vec<u8>>> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Keeps an answer computed at `generation` (see [`Cache::generation`]);
    /// one computed before an invalidation is not kept.
    pub fn put(&self, key: String, generation: u64, value: Arc<Vec<u8>>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if *self.generation.borrow() != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, value);
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Drops every answer.
    pub fn invalidate(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.clear();
        self.generation.send_modify(|g| *g += 1);
    }

    /// Invalidates when SQLite's `data_version` moved since the last call.
    pub fn observe_version(&self, version: Option<i64>) {
        let mut seen = self
            .seen_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *seen != version {
            let first = seen.is_none();
            *seen = version;
            if !first {
                self.invalidate();
            }
        }
    }

    /// A receiver that sees every invalidation.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_from_before_an_invalidation_is_not_kept() {
        let cache = Cache::default();
        let generation = cache.generation();
        cache.put("a".into(), generation, Arc::new(b"1".to_vec()));
        assert!(cache.get("a").is_some());
        let stale = cache.generation();
        cache.invalidate();
        assert!(cache.get("a").is_none());
        cache.put("a".into(), stale, Arc::new(b"old".to_vec()));
        assert!(cache.get("a").is_none());
        cache.observe_version(Some(3));
        cache.put("b".into(), cache.generation(), Arc::new(b"2".to_vec()));
        cache.observe_version(Some(3));
        assert!(cache.get("b").is_some());
        cache.observe_version(Some(4));
        assert!(cache.get("b").is_none());
    }
}
