//! The ground-truth per-request log: when the server really received a request, scheduled it,
//! handed its first token and its end to the socket layer.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::SimError;
use crate::config::GroundTruthConfig;

/// One finished request as the server saw it. Times are nanoseconds since the simulator
/// started (`SimHandle::started_at`); add `SimHandle::started_unix_ns` for Unix time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroundTruthRecord {
    /// The response id (`cmpl-…` / `chatcmpl-…`); `cmpl-<X-Request-Id>` when the request
    /// carried that header, as in vLLM.
    pub id: String,
    /// Arrival order of generation requests, from 0.
    pub seq: u64,
    /// The request was read (headers and body).
    pub arrival_ns: u64,
    /// The engine first scheduled it (left the waiting queue); absent if never.
    pub scheduled_ns: Option<u64>,
    /// The bytes of the first token were handed to the HTTP layer; absent if none.
    pub first_token_ns: Option<u64>,
    /// The last bytes (`[DONE]`, the body, or the error) were handed over, or the stream ended.
    pub end_ns: u64,
    /// Prompt tokens (all prompts of the request).
    pub prompt_tokens: u32,
    /// Generated tokens (all choices).
    pub completion_tokens: u32,
    /// The HTTP status sent.
    pub status: u16,
    /// `ok`, `injected_error`, `error_event`, `disconnect`, `malformed`, `client_gone` or
    /// `invalid_request`.
    pub outcome: String,
}

/// Where records go.
#[derive(Debug)]
pub(crate) struct GroundTruthSink {
    file: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    memory: Option<Mutex<Vec<GroundTruthRecord>>>,
    pub(crate) start: Instant,
}

impl GroundTruthSink {
    pub(crate) fn new(
        cfg: &GroundTruthConfig,
        start: Instant,
    ) -> Result<GroundTruthSink, SimError> {
        let file = match &cfg.file {
            Some(path) => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .map_err(|source| SimError::Io {
                        context: format!("creating ground-truth file {}", path.display()),
                        source,
                    })?;
                Some(Mutex::new(std::io::BufWriter::new(f)))
            }
            None => None,
        };
        Ok(GroundTruthSink {
            file,
            memory: cfg.in_memory.then(|| Mutex::new(Vec::new())),
            start,
        })
    }

    pub(crate) fn enabled(&self) -> bool {
        self.file.is_some() || self.memory.is_some()
    }

    pub(crate) fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_nanos() as u64
    }

    pub(crate) fn record(&self, rec: GroundTruthRecord) {
        if let Some(file) = &self.file
            && let (Ok(mut f), Ok(line)) = (file.lock(), serde_json::to_string(&rec))
        {
            // A line at a time, flushed, so a killed run keeps what it logged.
            let _ = writeln!(f, "{line}").and_then(|()| f.flush());
        }
        if let Some(mem) = &self.memory
            && let Ok(mut m) = mem.lock()
        {
            m.push(rec);
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<GroundTruthRecord> {
        self.memory
            .as_ref()
            .and_then(|m| m.lock().ok().map(|m| m.clone()))
            .unwrap_or_default()
    }
}
