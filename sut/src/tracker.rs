//! Per-request sample tracking: applies parsed chunks to the samples of one
//! request and turns them into LoadGen completions, answering each sample
//! exactly once.

use std::fmt;
use std::sync::Arc;

use loadgen::{
    ErrorKind, OutputData, QueryError, QuerySampleResponse, Responder, ResponseDetail, ResponseId,
};

use crate::chunk::{ChoiceDelta, ParsedChunk};
use crate::client::query_error;

/// Per-sample buffers are reserved for at most this many output tokens.
const RESERVE_TOKENS_CAP: u32 = 1024;
/// Text bytes reserved per output token (English averages about four).
const RESERVE_TEXT_BYTES_PER_TOKEN: usize = 4;

/// The state of one sample of a request.
#[derive(Debug)]
struct SampleState {
    id: ResponseId,
    ids: Vec<u32>,
    text: String,
    saw_ids: bool,
    finished: bool,
    answered: bool,
    first_sent: bool,
    chunk_ns: Vec<u64>,
    chunk_tokens: Vec<u32>,
    /// Bytes to reserve for `text` when its first piece arrives (most
    /// streams carry token ids, which make the text unused).
    text_reserve: usize,
    /// Content chunks whose token count the stream did not say.
    unknown_chunks: usize,
    /// Running `usage.completion_tokens` while every content chunk so far
    /// carried per-choice usage (vLLM's `continuous_usage_stats`); `None`
    /// once a chunk without it broke the chain.
    usage_chain: Option<u32>,
    completion_tokens: Option<u32>,
    prompt_tokens: Option<u32>,
}

impl SampleState {
    fn new(id: ResponseId) -> SampleState {
        SampleState {
            id,
            ids: Vec::new(),
            text: String::new(),
            saw_ids: false,
            finished: false,
            answered: false,
            first_sent: false,
            chunk_ns: Vec::new(),
            chunk_tokens: Vec::new(),
            text_reserve: 0,
            unknown_chunks: 0,
            usage_chain: Some(0),
            completion_tokens: None,
            prompt_tokens: None,
        }
    }

    /// Output tokens, when known: the ids the server sent (what `data`
    /// holds, and what MLPerf's reference counts), else its usage count.
    fn n_tokens(&self) -> Option<u32> {
        if self.saw_ids {
            Some(self.ids.len() as u32)
        } else {
            self.completion_tokens
        }
    }

    /// Adds a choice's token ids and text. Once token ids arrived they are
    /// the answer's data and its text is never used, so it is not kept.
    fn append(&mut self, choice: &ChoiceDelta) {
        if choice.has_ids {
            if !self.saw_ids {
                self.saw_ids = true;
                self.text = String::new();
            }
            self.ids.extend_from_slice(&choice.ids);
        }
        if !self.saw_ids && !choice.text.is_empty() {
            if self.text.capacity() == 0 {
                self.text.reserve_exact(self.text_reserve);
            }
            self.text.push_str(&choice.text);
        }
    }
}

/// Told how many samples were just answered (the SUT counts outstanding
/// samples to know when it is drained).
pub(crate) trait AnswerHook: Send + Sync {
    /// `n` samples were answered.
    fn answered(&self, n: usize);
}

/// Tracks the samples of one request and answers each exactly once.
///
/// Dropping a tracker answers every sample it has not answered yet with
/// `Cancelled`: a task that is aborted (shutdown) or dropped with its
/// runtime still completes its samples.
pub(crate) struct Tracker {
    responder: Responder,
    samples: Vec<SampleState>,
    endpoint: u32,
    unanswered: usize,
    hook: Option<Arc<dyn AnswerHook>>,
    /// Dropped the moment the last sample is answered (before the
    /// responder hears of it): releases the request's endpoint slot.
    release: Option<Box<dyn std::any::Any + Send>>,
    /// A sample's usage count that disagreed with its token ids:
    /// (usage, ids).
    mismatch: Option<(u32, u32)>,
    /// Scratch for completions answered together.
    batch: Vec<QuerySampleResponse>,
    /// Answers are kept in `held` instead of sent (see [`Tracker::hold`]).
    hold: bool,
    held: Vec<QuerySampleResponse>,
    scratch_bytes: Vec<u8>,
    /// Every failure message passes through it before it is answered.
    secrets: Option<Arc<crate::Secrets>>,
    /// Per sample, the `max_tokens` it was sent with.
    max_tokens: Vec<Option<u32>>,
    /// Answers longer than their `max_tokens`.
    over_max_tokens: u64,
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracker")
            .field("samples", &self.samples.len())
            .field("unanswered", &self.unanswered)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Tracker {
    /// Tracks these samples (in prompt order: choice `index` i is sample i).
    pub fn new(
        responder: Responder,
        ids: impl IntoIterator<Item = ResponseId>,
        endpoint: u32,
        hook: Option<Arc<dyn AnswerHook>>,
    ) -> Tracker {
        let samples: Vec<SampleState> = ids.into_iter().map(SampleState::new).collect();
        Tracker {
            responder,
            unanswered: samples.len(),
            samples,
            endpoint,
            hook,
            release: None,
            mismatch: None,
            batch: Vec::new(),
            hold: false,
            held: Vec::new(),
            scratch_bytes: Vec::new(),
            secrets: None,
            max_tokens: Vec::new(),
            over_max_tokens: 0,
        }
    }

    /// The `max_tokens` each sample was sent with (in prompt order), so an
    /// answer longer than that is counted (see [`Tracker::over_max_tokens`]).
    pub fn set_max_tokens(&mut self, max_tokens: impl IntoIterator<Item = Option<u32>>) {
        self.max_tokens = max_tokens.into_iter().collect();
        // A sample's per-chunk buffers hold about one entry per output token:
        // sized once here, they are not grown (and copied) three or four
        // times per streamed answer. Capped so that a huge max_tokens does
        // not reserve memory the answer may never use.
        for (s, max) in self.samples.iter_mut().zip(&self.max_tokens) {
            if let Some(max) = *max {
                let n = max.min(RESERVE_TOKENS_CAP) as usize;
                s.chunk_ns.reserve_exact(n);
                s.chunk_tokens.reserve_exact(n);
                s.ids.reserve_exact(n);
                s.text_reserve = n * RESERVE_TEXT_BYTES_PER_TOKEN;
            }
        }
    }

    /// Samples answered with more tokens than their `max_tokens`.
    pub fn over_max_tokens(&self) -> u64 {
        self.over_max_tokens
    }

    /// Scrubs these secrets from every failure message (a server's error
    /// may echo the API key).
    pub fn set_secrets(&mut self, secrets: Arc<crate::Secrets>) {
        self.secrets = Some(secrets);
    }

    /// Drops `release` as soon as every sample is answered.
    pub fn set_release(&mut self, release: Box<dyn std::any::Any + Send>) {
        self.release = Some(release);
    }

    /// Keeps every answer until [`Tracker::send_held`] instead of sending
    /// it, so the request's task can still change its data (text turned
    /// into token ids). A tracker dropped while holding answers sends them
    /// as `Cancelled`.
    pub fn hold(&mut self) {
        self.hold = true;
    }

    /// The answers kept so far (see [`Tracker::hold`]).
    pub fn held_mut(&mut self) -> &mut [QuerySampleResponse] {
        &mut self.held
    }

    /// Sends the answers kept so far.
    pub fn send_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let n = self.held.len();
        self.responder.complete_all(&mut self.held);
        self.held.clear();
        if let Some(hook) = &self.hook {
            hook.answered(n);
        }
    }

    /// The run clock (see [`Responder::now_ns`]).
    pub fn now_ns(&self) -> u64 {
        self.responder.now_ns()
    }

    /// The first (usage, token ids) disagreement seen, if any.
    pub fn usage_mismatch(&self) -> Option<(u32, u32)> {
        self.mismatch
    }

    /// Applies one stream chunk that arrived at `t_ns`; answers first tokens
    /// and every sample whose result is now known.
    pub fn apply_chunk(&mut self, t_ns: u64, chunk: &ParsedChunk) -> Result<(), QueryError> {
        let single = self.samples.len() == 1;
        let choices = chunk.choices();
        for choice in choices {
            let n_samples = self.samples.len();
            let Some(s) = self.samples.get_mut(choice.index as usize) else {
                return Err(query_error(
                    ErrorKind::MalformedResponse,
                    format!(
                        "choice index {} out of range for a request of {n_samples} prompt(s)",
                        choice.index
                    ),
                ));
            };
            if s.answered {
                continue; // tokens after a finish: nothing left to measure
            }
            // Per-choice usage: the chunk carries exactly this choice, or the
            // request has one prompt so any usage is this sample's.
            let usage = chunk.usage.filter(|_| single || choices.len() == 1);
            if let Some(p) = choice.prompt_ids {
                s.prompt_tokens = Some(p);
            }
            if let Some(u) = usage
                && u.prompt_tokens.is_some()
            {
                s.prompt_tokens = u.prompt_tokens;
            }
            let usage_completion = usage.and_then(|u| u.completion_tokens);
            // How many tokens this chunk carried, if the server said.
            let tokens: Option<u32> = if choice.has_ids {
                Some(choice.ids.len() as u32)
            } else {
                match (usage_completion, s.usage_chain) {
                    (Some(total), Some(before)) => Some(total.saturating_sub(before)),
                    _ => None,
                }
            };
            let has_content = !choice.ids.is_empty()
                || !choice.text.is_empty()
                || choice.other_content
                || (!choice.has_ids && tokens.is_some_and(|n| n > 0));
            if has_content {
                s.chunk_ns.push(t_ns);
                match tokens {
                    Some(n) => s.chunk_tokens.push(n),
                    None => {
                        s.chunk_tokens.push(0);
                        s.unknown_chunks += 1;
                        s.usage_chain = None;
                    }
                }
                if !s.first_sent {
                    s.first_sent = true;
                    let data: &[u8] = if choice.has_ids {
                        self.scratch_bytes.clear();
                        for &t in &choice.ids {
                            self.scratch_bytes
                                .extend_from_slice(&(t as i32).to_le_bytes());
                        }
                        &self.scratch_bytes
                    } else {
                        choice.text.as_bytes()
                    };
                    self.responder.first_token_complete(s.id, data);
                }
            }
            if let (Some(total), Some(_)) = (usage_completion, s.usage_chain) {
                s.usage_chain = Some(total);
            }
            if let Some(total) = usage_completion {
                s.completion_tokens = Some(total);
            }
            s.append(choice);
            s.finished |= choice.finished;
        }
        // A usage chunk without choices: the request's totals (vLLM).
        if choices.is_empty()
            && let Some(u) = chunk.usage
        {
            // With several prompts it is the sum over all of them.
            if let Some(s) = self.samples.first_mut()
                && single
                && !s.answered
            {
                if u.prompt_tokens.is_some() {
                    s.prompt_tokens = u.prompt_tokens;
                }
                if u.completion_tokens.is_some() {
                    s.completion_tokens = u.completion_tokens;
                }
            }
        }
        self.answer_ready();
        Ok(())
    }

    /// Applies a whole non-streamed response.
    pub fn apply_response(&mut self, response: &ParsedChunk) -> Result<(), QueryError> {
        let single = self.samples.len() == 1;
        for choice in response.choices() {
            let n_samples = self.samples.len();
            let Some(s) = self.samples.get_mut(choice.index as usize) else {
                return Err(query_error(
                    ErrorKind::MalformedResponse,
                    format!(
                        "choice index {} out of range for a request of {n_samples} prompt(s)",
                        choice.index
                    ),
                ));
            };
            s.append(choice);
            if let Some(p) = choice.prompt_ids {
                s.prompt_tokens = Some(p);
            }
            s.finished = true;
        }
        if single && let (Some(u), Some(s)) = (response.usage, self.samples.first_mut()) {
            s.completion_tokens = u.completion_tokens;
            if u.prompt_tokens.is_some() {
                s.prompt_tokens = u.prompt_tokens;
            }
        }
        self.finish();
        Ok(())
    }

    /// Answers every sample whose result is known. With one prompt that is
    /// when the stream ends: its finish plus the usage that closes a stream
    /// (vLLM's separate usage chunk, llama.cpp's final chunk), else
    /// `[DONE]`. With several prompts, each sample is answered at its own
    /// finish once its token count is known, without waiting for the others.
    fn answer_ready(&mut self) {
        if self.unanswered == 0 {
            return;
        }
        let single = self.samples.len() == 1;
        for i in 0..self.samples.len() {
            let s = &self.samples[i];
            let known = if single {
                s.completion_tokens.is_some()
            } else {
                s.n_tokens().is_some()
            };
            if !s.answered && s.finished && known {
                let response = self.success(i);
                self.batch.push(response);
            }
        }
        self.flush_batch();
    }

    /// The response is complete (`[DONE]`, or a whole body): answers every
    /// sample whose token count is known, finish reason or not, and fails
    /// the rest.
    pub fn finish(&mut self) {
        if self.unanswered == 0 {
            return;
        }
        let prompts = self.samples.len();
        for i in 0..self.samples.len() {
            let s = &self.samples[i];
            if s.answered {
                continue;
            }
            let response = if s.n_tokens().is_some() {
                self.success(i)
            } else {
                let message = if prompts > 1 {
                    format!(
                        "the server sent no token ids for a request of {prompts} prompts, so \
                         per-sample output token counts are unknown (enable return_token_ids \
                         or send one prompt per request)"
                    )
                } else {
                    "the server sent neither usage nor token ids, so the output token count \
                     is unknown (enable stream_options.include_usage or return_token_ids)"
                        .to_string()
                };
                self.failure(i, query_error(ErrorKind::MalformedResponse, message))
            };
            self.batch.push(response);
        }
        self.flush_batch();
    }

    /// Fails every sample not answered yet.
    pub fn fail_all(&mut self, error: &QueryError) {
        for i in 0..self.samples.len() {
            if !self.samples[i].answered {
                let response = self.failure(i, error.clone());
                self.batch.push(response);
            }
        }
        self.flush_batch();
    }

    fn flush_batch(&mut self) {
        if !self.batch.is_empty() {
            let n = self.batch.len();
            if self.unanswered == 0 {
                self.release = None;
            }
            if self.hold {
                self.held.append(&mut self.batch);
                return;
            }
            self.responder.complete_all(&mut self.batch);
            self.batch.clear();
            if let Some(hook) = &self.hook {
                hook.answered(n);
            }
        }
    }

    fn success(&mut self, i: usize) -> QuerySampleResponse {
        let max_tokens = self.max_tokens.get(i).copied().flatten();
        let s = &mut self.samples[i];
        s.answered = true;
        self.unanswered -= 1;
        let n_tokens = s.n_tokens().unwrap_or(0);
        if max_tokens.is_some_and(|max| n_tokens > max) {
            self.over_max_tokens += 1;
        }
        if let Some(usage) = s.completion_tokens
            && s.saw_ids
            && usage != n_tokens
            && self.mismatch.is_none()
        {
            self.mismatch = Some((usage, n_tokens));
        }
        // Without per-chunk counts, a stream whose content chunks number
        // exactly the output tokens carried one token each: every content
        // chunk carries at least one token, so equal counts leave no other
        // split.
        if s.unknown_chunks == s.chunk_tokens.len() && s.chunk_tokens.len() == n_tokens as usize {
            s.chunk_tokens.fill(1);
        }
        let data = if s.saw_ids {
            loadgen::tokens_to_bytes(&s.ids)
        } else {
            std::mem::take(&mut s.text).into_bytes()
        };
        QuerySampleResponse {
            id: s.id,
            data,
            n_tokens: i64::from(n_tokens),
            detail: take_detail(s, self.endpoint, None),
        }
    }

    fn failure(&mut self, i: usize, mut error: QueryError) -> QuerySampleResponse {
        if let Some(secrets) = &self.secrets {
            error.message = secrets.scrub(&error.message);
        }
        let s = &mut self.samples[i];
        s.answered = true;
        self.unanswered -= 1;
        QuerySampleResponse {
            id: s.id,
            data: Vec::new(),
            n_tokens: 0,
            detail: take_detail(s, self.endpoint, Some(error)),
        }
    }
}

/// The detail of an answered sample (moves its chunk timings out).
fn take_detail(s: &mut SampleState, endpoint: u32, error: Option<QueryError>) -> ResponseDetail {
    ResponseDetail {
        error,
        input_tokens: s.prompt_tokens,
        endpoint: Some(endpoint),
        chunk_ns: std::mem::take(&mut s.chunk_ns),
        chunk_tokens: std::mem::take(&mut s.chunk_tokens),
        output_data: if s.saw_ids {
            OutputData::TokenIds
        } else {
            OutputData::Text
        },
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.hold = false;
        if !self.held.is_empty() {
            let error = query_error(
                ErrorKind::Cancelled,
                "the request was cancelled before its answer was complete",
            );
            for response in &mut self.held {
                response.data.clear();
                response.n_tokens = 0;
                response.detail.error = Some(error.clone());
            }
            self.send_held();
        }
        if self.unanswered > 0 {
            self.fail_all(&query_error(
                ErrorKind::Cancelled,
                "the request was cancelled before it completed",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen::CompletionSink;
    use std::sync::Mutex;

    #[derive(Debug, Clone, PartialEq)]
    enum Event {
        First(u64, Vec<u8>),
        Done(QuerySampleResponse),
    }

    #[derive(Default)]
    struct Sink {
        events: Mutex<Vec<Event>>,
    }

    impl CompletionSink for Sink {
        fn now_ns(&self) -> u64 {
            0
        }
        fn first_token_complete(&self, id: ResponseId, data: &[u8]) {
            self.events
                .lock()
                .unwrap()
                .push(Event::First(id.0, data.to_vec()));
        }
        fn query_samples_complete(&self, responses: &mut [QuerySampleResponse]) {
            let mut events = self.events.lock().unwrap();
            for r in responses {
                events.push(Event::Done(std::mem::take(r)));
            }
        }
    }

    fn setup(n: u64) -> (Arc<Sink>, Tracker) {
        let sink = Arc::new(Sink::default());
        let tracker = Tracker::new(
            Responder::new(sink.clone()),
            (0..n).map(|i| ResponseId(100 + i)),
            3,
            None,
        );
        (sink, tracker)
    }

    fn feed(tracker: &mut Tracker, t: u64, json: &str) -> Result<(), QueryError> {
        let mut chunk = ParsedChunk::default();
        chunk.parse(json.as_bytes()).unwrap();
        tracker.apply_chunk(t, &chunk)
    }

    fn events(sink: &Sink) -> Vec<Event> {
        std::mem::take(&mut *sink.events.lock().unwrap())
    }

    fn done(events: &[Event]) -> Vec<&QuerySampleResponse> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Done(r) => Some(r),
                Event::First(..) => None,
            })
            .collect()
    }

    #[test]
    fn vllm_stream_with_token_ids_completes_at_the_closing_usage_chunk() {
        let (sink, mut t) = setup(1);
        // vLLM serializes unset fields as null.
        feed(&mut t, 10, r#"{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":"Hel","logprobs":null,"finish_reason":null,"stop_reason":null,"token_ids":[11,12],"prompt_token_ids":[1,2,3,4]}],"usage":null}"#).unwrap();
        assert_eq!(
            events(&sink),
            vec![Event::First(100, loadgen::tokens_to_bytes(&[11, 12]))]
        );
        feed(&mut t, 20, r#"{"choices":[{"index":0,"text":"","token_ids":[],"prompt_token_ids":null,"finish_reason":null}]}"#).unwrap();
        feed(&mut t, 30, r#"{"choices":[{"index":0,"text":"lo","token_ids":[13],"finish_reason":"length","stop_reason":null}]}"#).unwrap();
        assert!(events(&sink).is_empty());
        feed(
            &mut t,
            40,
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}"#,
        )
        .unwrap();
        let got = events(&sink);
        let got = done(&got);
        assert_eq!(got.len(), 1);
        let r = got[0];
        assert_eq!(r.id, ResponseId(100));
        assert_eq!(r.data, loadgen::tokens_to_bytes(&[11, 12, 13]));
        assert_eq!(r.n_tokens, 3);
        // The usage's prompt count wins over the echoed prompt ids.
        assert_eq!(r.detail.input_tokens, Some(5));
        assert_eq!(r.detail.endpoint, Some(3));
        assert_eq!(r.detail.chunk_ns, vec![10, 30]);
        assert_eq!(r.detail.chunk_tokens, vec![2, 1]);
        assert_eq!(r.detail.output_data, OutputData::TokenIds);
        assert!(r.detail.error.is_none());
        t.finish();
        assert!(events(&sink).is_empty());
        assert_eq!(t.usage_mismatch(), None);
    }

    #[test]
    fn text_before_token_ids_and_text_only_answers_with_a_max_tokens_reserve() {
        // Text in a chunk before the first token ids: the ids are the data.
        let (sink, mut t) = setup(1);
        t.set_max_tokens([Some(4)]);
        feed(&mut t, 1, r#"{"choices":[{"index":0,"text":"x"}]}"#).unwrap();
        feed(
            &mut t,
            2,
            r#"{"choices":[{"index":0,"text":"yz","token_ids":[5,6]}]}"#,
        )
        .unwrap();
        feed(
            &mut t,
            3,
            r#"{"choices":[{"index":0,"text":"w","token_ids":[7],"finish_reason":"stop"}]}"#,
        )
        .unwrap();
        t.finish();
        let got = events(&sink);
        let r = done(&got)[0];
        assert_eq!(r.data, loadgen::tokens_to_bytes(&[5, 6, 7]));
        assert_eq!(r.detail.output_data, OutputData::TokenIds);
        // Text only, longer than the reserve: every piece is kept.
        let (sink, mut t) = setup(1);
        t.set_max_tokens([Some(1)]);
        feed(&mut t, 1, r#"{"choices":[{"index":0,"text":""}]}"#).unwrap();
        feed(&mut t, 2, r#"{"choices":[{"index":0,"text":"hello"}]}"#).unwrap();
        feed(&mut t, 3, r#"{"choices":[{"index":0,"text":" world","finish_reason":"length"}],"usage":{"completion_tokens":2}}"#).unwrap();
        let got = events(&sink);
        let r = done(&got)[0];
        assert_eq!(r.data, b"hello world");
        assert_eq!(r.detail.output_data, OutputData::Text);
    }

    #[test]
    fn without_usage_a_single_prompt_is_answered_at_done() {
        let (sink, mut t) = setup(1);
        feed(&mut t, 1, r#"{"choices":[{"index":0,"text":"a","token_ids":[1,2],"prompt_token_ids":[7,7],"finish_reason":"stop"}]}"#).unwrap();
        assert_eq!(events(&sink).len(), 1); // the first token only
        t.finish();
        let got = events(&sink);
        let r = done(&got)[0];
        assert_eq!((r.n_tokens, r.detail.input_tokens), (2, Some(2)));
    }

    #[test]
    fn token_ids_win_over_a_disagreeing_usage_and_the_mismatch_is_kept() {
        let (sink, mut t) = setup(1);
        feed(&mut t, 1, r#"{"choices":[{"index":0,"text":"a","token_ids":[1,2],"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":3}}"#).unwrap();
        let got = events(&sink);
        assert_eq!(done(&got)[0].n_tokens, 2);
        assert_eq!(t.usage_mismatch(), Some((3, 2)));
    }

    #[test]
    fn llama_cpp_stream_text_only_with_usage_in_the_final_chunk() {
        let (sink, mut t) = setup(1);
        feed(&mut t, 5, r#"{"choices":[{"text":"A","index":0,"logprobs":null,"finish_reason":null}],"created":1,"id":"chatcmpl-x","model":"m","object":"text_completion"}"#).unwrap();
        feed(
            &mut t,
            6,
            r#"{"choices":[{"text":" b","index":0,"finish_reason":null}],"id":"chatcmpl-x"}"#,
        )
        .unwrap();
        feed(&mut t, 7, r#"{"choices":[{"text":"c","index":0,"finish_reason":"length"}],"id":"chatcmpl-x","usage":{"completion_tokens":3,"prompt_tokens":9,"total_tokens":12},"timings":{"prompt_n":9,"predicted_n":3}}"#).unwrap();
        let got = events(&sink);
        assert_eq!(got[0], Event::First(100, b"A".to_vec()));
        let r = done(&got)[0];
        assert_eq!(r.data, b"A bc");
        assert_eq!(r.n_tokens, 3);
        assert_eq!(r.detail.input_tokens, Some(9));
        assert_eq!(r.detail.output_data, OutputData::Text);
        assert_eq!(r.detail.chunk_ns, vec![5, 6, 7]);
        // Three content chunks, three tokens: one each.
        assert_eq!(r.detail.chunk_tokens, vec![1, 1, 1]);
    }

    #[test]
    fn text_only_chunk_counts_stay_unknown_when_they_do_not_match() {
        let (sink, mut t) = setup(1);
        feed(&mut t, 1, r#"{"choices":[{"index":0,"text":"ab"}]}"#).unwrap();
        feed(&mut t, 2, r#"{"choices":[{"index":0,"text":"c","finish_reason":"stop"}],"usage":{"completion_tokens":5,"prompt_tokens":2}}"#).unwrap();
        let got = events(&sink);
        let r = done(&got)[0];
        assert_eq!(r.n_tokens, 5);
        assert_eq!(r.detail.chunk_tokens, vec![0, 0]);
    }

    #[test]
    fn without_ids_the_answer_waits_for_vllms_usage_chunk() {
        let (sink, mut t) = setup(1);
        feed(
            &mut t,
            1,
            r#"{"choices":[{"index":0,"text":"x","token_ids":null}]}"#,
        )
        .unwrap();
        feed(
            &mut t,
            2,
            r#"{"choices":[{"index":0,"text":"y","finish_reason":"length"}]}"#,
        )
        .unwrap();
        assert_eq!(events(&sink).len(), 1); // first token only
        feed(&mut t, 3, r#"{"id":"cmpl-1","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}"#).unwrap();
        let got = events(&sink);
        let r = done(&got)[0];
        assert_eq!((r.n_tokens, r.detail.input_tokens), (2, Some(7)));
        assert_eq!(r.detail.chunk_tokens, vec![1, 1]);
    }

    #[test]
    fn continuous_usage_gives_per_chunk_counts() {
        let (sink, mut t) = setup(1);
        feed(&mut t, 1, r#"{"choices":[{"index":0,"text":"ab"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#).unwrap();
        feed(&mut t, 2, r#"{"choices":[{"index":0,"text":"c"}],"usage":{"prompt_tokens":3,"completion_tokens":5}}"#).unwrap();
        feed(&mut t, 3, r#"{"choices":[{"index":0,"text":"","finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":5}}"#).unwrap();
        let got = events(&sink);
        let r = done(&got)[0];
        assert_eq!(r.n_tokens, 5);
        assert_eq!(r.detail.chunk_ns, vec![1, 2]);
        assert_eq!(r.detail.chunk_tokens, vec![2, 3]);
    }

    #[test]
    fn multi_prompt_stream_answers_each_sample_when_it_finishes() {
        let (sink, mut t) = setup(2);
        feed(
            &mut t,
            1,
            r#"{"choices":[{"index":1,"text":"b","token_ids":[7]}]}"#,
        )
        .unwrap();
        feed(
            &mut t,
            2,
            r#"{"choices":[{"index":0,"text":"a","token_ids":[5,6]}]}"#,
        )
        .unwrap();
        feed(
            &mut t,
            3,
            r#"{"choices":[{"index":1,"text":"","token_ids":[8],"finish_reason":"stop"}]}"#,
        )
        .unwrap();
        let got = events(&sink);
        assert_eq!(got[0], Event::First(101, loadgen::tokens_to_bytes(&[7])));
        assert_eq!(got[1], Event::First(100, loadgen::tokens_to_bytes(&[5, 6])));
        let first_done = done(&got);
        assert_eq!(first_done.len(), 1);
        assert_eq!(first_done[0].id, ResponseId(101));
        assert_eq!(first_done[0].data, loadgen::tokens_to_bytes(&[7, 8]));
        // The aggregate usage chunk says nothing about one sample.
        feed(
            &mut t,
            4,
            r#"{"choices":[{"index":0,"text":"","token_ids":[9],"finish_reason":"length"}]}"#,
        )
        .unwrap();
        feed(
            &mut t,
            5,
            r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5}}"#,
        )
        .unwrap();
        let got = events(&sink);
        let r = done(&got)[0];
        assert_eq!((r.id, r.n_tokens), (ResponseId(100), 3));
        assert_eq!(r.detail.chunk_tokens, vec![2, 1]);
    }

    #[test]
    fn multi_prompt_without_ids_fails_clearly_at_the_end() {
        let (sink, mut t) = setup(2);
        feed(&mut t, 1, r#"{"choices":[{"index":0,"text":"a","finish_reason":"stop"},{"index":1,"text":"b","finish_reason":"stop"}]}"#).unwrap();
        feed(
            &mut t,
            2,
            r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2}}"#,
        )
        .unwrap();
        t.finish();
        let got = events(&sink);
        let got = done(&got);
        assert_eq!(got.len(), 2);
        for r in got {
            let e = r.detail.error.as_ref().unwrap();
            assert_eq!(e.kind, ErrorKind::MalformedResponse);
            assert!(e.message.contains("return_token_ids"), "{}", e.message);
        }
    }

    #[test]
    fn chat_deltas_role_chunk_and_reasoning() {
        let (sink, mut t) = setup(1);
        feed(&mut t, 1, r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#).unwrap();
        assert!(events(&sink).is_empty());
        feed(
            &mut t,
            2,
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}"#,
        )
        .unwrap();
        assert_eq!(events(&sink), vec![Event::First(100, Vec::new())]);
        feed(
            &mut t,
            3,
            r#"{"choices":[{"index":0,"delta":{"content":"Hi \"x\"\n"},"finish_reason":"stop"}]}"#,
        )
        .unwrap();
        feed(
            &mut t,
            4,
            r#"{"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":6}}"#,
        )
        .unwrap();
        let got = events(&sink);
        let r = done(&got)[0];
        assert_eq!(r.data, b"Hi \"x\"\n");
        assert_eq!(r.n_tokens, 6);
        assert_eq!(r.detail.chunk_ns, vec![2, 3]);
    }

    #[test]
    fn non_streamed_responses() {
        let (sink, mut t) = setup(2);
        let mut chunk = ParsedChunk::default();
        chunk
            .parse(br#"{"id":"cmpl-9","choices":[{"index":1,"text":"y","token_ids":[4],"finish_reason":"length"},{"index":0,"text":"x","token_ids":[1,2],"finish_reason":"length"}],"usage":{"prompt_tokens":6,"completion_tokens":3}}"#)
            .unwrap();
        t.apply_response(&chunk).unwrap();
        let got = events(&sink);
        let got = done(&got);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].id, got[0].n_tokens), (ResponseId(100), 2));
        assert_eq!((got[1].id, got[1].n_tokens), (ResponseId(101), 1));
        assert!(got[0].detail.chunk_ns.is_empty());

        let (sink, mut t) = setup(1);
        chunk
            .parse(br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":6,"completion_tokens":2}}"#)
            .unwrap();
        t.apply_response(&chunk).unwrap();
        let got = events(&sink);
        let r = done(&got)[0];
        assert_eq!((r.data.as_slice(), r.n_tokens), (&b"hello"[..], 2));
        assert_eq!(r.detail.output_data, OutputData::Text);
    }

    #[test]
    fn choice_index_out_of_range_is_malformed() {
        let (_sink, mut t) = setup(1);
        let e = feed(&mut t, 1, r#"{"choices":[{"index":2,"text":"x"}]}"#).unwrap_err();
        assert_eq!(e.kind, ErrorKind::MalformedResponse);
        assert!(e.message.contains("index 2"), "{}", e.message);
    }

    #[test]
    fn unknown_count_at_the_end_and_drop_answer_every_sample() {
        let (sink, mut t) = setup(1);
        feed(
            &mut t,
            1,
            r#"{"choices":[{"index":0,"text":"x","finish_reason":"stop"}]}"#,
        )
        .unwrap();
        t.finish();
        let got = events(&sink);
        let e = done(&got)[0].detail.error.clone().unwrap();
        assert_eq!(e.kind, ErrorKind::MalformedResponse);
        assert!(e.message.contains("include_usage"), "{}", e.message);

        let (sink, t) = setup(3);
        drop(t);
        let got = events(&sink);
        let got = done(&got);
        assert_eq!(got.len(), 3);
        assert!(
            got.iter()
                .all(|r| r.detail.error.as_ref().unwrap().kind == ErrorKind::Cancelled)
        );
    }
}
