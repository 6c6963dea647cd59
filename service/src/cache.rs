//! The rankings cache: answers keyed by their request, dropped whole when a
//! run is recorded. A lookup reads no database: runs recorded through the
//! service invalidate at once; SQLite's `data_version`, polled by a thread
//! every `SQLITE_POLL`, reveals runs recorded by other processes; with
//! PostgreSQL a listener thread invalidates on `NOTIFY`, so several `serve`
//! instances over one database stay fresh without Redis or polling.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use tokio::sync::watch;

/// Most answers kept; past it the cache starts over, so a flood of
/// distinct filters cannot grow memory without bound.
const MAX_ENTRIES: usize = 1024;

/// A cached answer, ready to send: its body's bytes (shared: a hit clones a
/// reference, not the body) and its content type. Nothing is serialised or
/// copied per hit.
#[derive(Debug, Clone)]
pub struct Answer {
    content_type: HeaderValue,
    body: Bytes,
}

impl Answer {
    /// A JSON answer.
    pub fn json(body: Vec<u8>) -> Answer {
        Answer::new(HeaderValue::from_static("application/json"), body)
    }

    /// An answer of another type (the Prometheus exposition).
    pub fn new(content_type: HeaderValue, body: Vec<u8>) -> Answer {
        Answer {
            content_type,
            body: Bytes::from(body),
        }
    }

    /// The 200 response.
    pub fn response(&self) -> Response {
        let mut response = Response::new(Body::from(self.body.clone()));
        *response.status_mut() = StatusCode::OK;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, self.content_type.clone());
        response
    }
}

/// Cached answers.
#[derive(Debug)]
pub struct Cache {
    entries: Mutex<HashMap<String, Answer>>,
    /// The SQLite `data_version` the entries were computed at.
    seen_version: Mutex<Option<i64>>,
    /// Counts invalidations; tests and other tasks can wait for one.
    generation: watch::Sender<u64>,
    /// Whether answers are kept at all (`harness serve --no-cache` measures
    /// the uncached path with it off).
    enabled: AtomicBool,
}

impl Default for Cache {
    fn default() -> Cache {
        Cache {
            entries: Mutex::new(HashMap::new()),
            seen_version: Mutex::new(None),
            generation: watch::Sender::new(0),
            enabled: AtomicBool::new(true),
        }
    }
}

impl Cache {
    /// A cached answer.
    pub fn get(&self, key: &str) -> Option<Answer> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Keeps an answer computed at `generation` (see [`Cache::generation`]);
    /// one computed before an invalidation is not kept.
    pub fn put(&self, key: String, generation: u64, value: Answer) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if *self.generation.borrow() != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, value);
    }

    /// Keeps answers (the default) or not: off, every request is answered
    /// from the database.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
        if !on {
            self.invalidate();
        }
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
        cache.put("a".into(), generation, Answer::json(b"1".to_vec()));
        assert!(cache.get("a").is_some());
        let stale = cache.generation();
        cache.invalidate();
        assert!(cache.get("a").is_none());
        cache.put("a".into(), stale, Answer::json(b"old".to_vec()));
        assert!(cache.get("a").is_none());
        cache.observe_version(Some(3));
        cache.put("b".into(), cache.generation(), Answer::json(b"2".to_vec()));
        cache.observe_version(Some(3));
        assert!(cache.get("b").is_some());
        cache.observe_version(Some(4));
        assert!(cache.get("b").is_none());
        // Off, nothing is kept.
        cache.set_enabled(false);
        cache.put("c".into(), cache.generation(), Answer::json(b"3".to_vec()));
        assert!(cache.get("c").is_none());
    }
}
