//! One request's life: its body, sending it (with the one resend a closed
//! kept-alive connection earns), and reading the answer (a whole JSON body or
//! an SSE stream) under the request and stall timeouts, handing every parsed
//! chunk to the request's [`Tracker`].

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use dataset::Sample;
use loadgen::{ErrorKind, OutputData, QueryError, QuerySample, QuerySampleResponse};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use super::{Endpoint, Inner, StartedRequest, TextEncoder};
use crate::chunk::ParsedChunk;
use crate::client::{
    classify, classify_plain, closed_before_answer, error_body_message, one_line, query_error,
};
use crate::config::ClientOptions;
use crate::h1;
use crate::sse::{SseEvent, SseParser};
use crate::tracker::Tracker;

/// The request-id header vLLM reads (and echoes with
/// `--enable-request-id-headers`).
pub(super) const X_REQUEST_ID: &str = "x-request-id";

impl Inner {
    /// Runs one request for these samples (one prompt each, in order) and
    /// answers every sample.
    pub(super) async fn execute(&self, mut request: StartedRequest, samples: &[QuerySample]) {
        let ep = &self.endpoints[request.endpoint];
        let tracker = &mut request.tracker;
        if self.text_encoder.is_some() {
            tracker.hold();
        }
        tracker.set_max_tokens(samples.iter().map(|s| {
            self.dataset
                .samples
                .get(s.index)
                .and_then(|sample| self.template.max_tokens_for(sample))
        }));
        if let Err(error) = self.run_request(ep, samples, tracker).await {
            ep.errors.fetch_add(1, Ordering::Relaxed);
            tracker.fail_all(&error);
        }
        if let Some(encoder) = &self.text_encoder {
            encode_text_answers(encoder, tracker.held_mut()).await;
            tracker.send_held();
        }
        let over = tracker.over_max_tokens();
        if over > 0 {
            ep.over_max_tokens.fetch_add(over, Ordering::Relaxed);
        }
        if let Some((usage, ids)) = tracker.usage_mismatch()
            && !self.warned_usage_mismatch.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                endpoint = %ep.root,
                usage_completion_tokens = usage,
                token_ids = ids,
                "the server's usage disagrees with the token ids it streamed; n_tokens \
                 follows the token ids (reported once)"
            );
        }
    }

    /// Sends the request and reads its answer into the tracker. An error
    /// return leaves the unanswered samples to the caller.
    async fn run_request(
        &self,
        ep: &Endpoint,
        samples: &[QuerySample],
        tracker: &mut Tracker,
    ) -> Result<(), QueryError> {
        let body = self.request_body(samples)?;
        let _permit = acquire_slot(ep).await?;
        // One timer for the request's whole life, polled only when set.
        let limit = self.options.request_timeout;
        let deadline_sleep =
            tokio::time::sleep_until(limit.map_or_else(far_future, |d| Instant::now() + d));
        tokio::pin!(deadline_sleep);
        let mut deadline = Deadline {
            sleep: deadline_sleep.as_mut(),
            limit,
        };
        let response = self.send(ep, samples, body, &mut deadline).await?;

        let stall_sleep = tokio::time::sleep(self.options.stall_timeout.unwrap_or(Duration::ZERO));
        tokio::pin!(stall_sleep);
        let mut reader = BodyReader {
            response,
            url: ep.url.as_str(),
            options: &self.options,
            deadline,
            stall: stall_sleep.as_mut(),
            stall_armed: false,
            last_piece_ns: 0,
            pieces: 0,
        };
        let status = reader.response.status();
        if !(200..300).contains(&status) {
            return Err(reader.status_error(status).await);
        }
        if !(self.template.stream() && reader.is_sse()) {
            return reader.read_whole(tracker).await;
        }
        reader.read_stream(tracker).await?;
        tracker.finish();
        reader.drain().await;
        Ok(())
    }

    /// The request body for these samples' prompts.
    fn request_body(&self, samples: &[QuerySample]) -> Result<Vec<u8>, QueryError> {
        let mut prompts: Vec<&Sample> = Vec::with_capacity(samples.len());
        for s in samples {
            let sample = self.dataset.samples.get(s.index).ok_or_else(|| {
                query_error(
                    ErrorKind::Other,
                    format!(
                        "sample index {} is out of range (dataset {:?} has {} samples)",
                        s.index,
                        self.dataset.name,
                        self.dataset.samples.len()
                    ),
                )
            })?;
            prompts.push(sample);
        }
        let mut body = Vec::with_capacity(
            256 + prompts
                .iter()
                .map(|p| p.input_tokens.len() * 7)
                .sum::<usize>(),
        );
        self.template
            .write_body(&prompts, &mut body)
            .map_err(|e| query_error(ErrorKind::Other, e))?;
        Ok(body)
    }

    /// Sends the request and waits for the response head, within the
    /// request timeout. A request the server closed a kept-alive connection
    /// on before answering is sent once more (see [`closed_before_answer`]).
    async fn send<'a>(
        &self,
        ep: &'a Endpoint,
        samples: &[QuerySample],
        body: Vec<u8>,
        deadline: &mut Deadline<'_>,
    ) -> Result<Answer<'a>, QueryError> {
        let url = ep.url.as_str();
        let stream = self.template.stream();
        let request_id = match (&self.options.request_id_prefix, samples.first()) {
            (Some(prefix), Some(first)) => Some(format!("{prefix}{}", first.id.0)),
            _ => None,
        };
        // The stall timeout covers the wait for the response headers too: a
        // server that accepts a request and never answers is stalled.
        let stall = self.options.stall_timeout;
        let headers_sleep = tokio::time::sleep(stall.unwrap_or(Duration::ZERO));
        tokio::pin!(headers_sleep);
        let no_headers = || {
            query_error(
                ErrorKind::Stalled,
                format!(
                    "{url} sent no response headers within the stall timeout ({:?})",
                    stall.unwrap_or_default()
                ),
            )
        };
        if let Some(plain) = &ep.plain {
            let mut fields = Vec::with_capacity(80);
            fields.extend_from_slice(if stream {
                b"accept: text/event-stream\r\n".as_slice()
            } else {
                b"accept: */*\r\n".as_slice()
            });
            if let Some(id) = &request_id {
                fields.extend_from_slice(X_REQUEST_ID.as_bytes());
                fields.extend_from_slice(b": ");
                fields.extend_from_slice(id.as_bytes());
                fields.extend_from_slice(b"\r\n");
            }
            for attempt in 0..2 {
                let sent = tokio::select! {
                    biased;
                    r = plain.send(&fields, &body) => r,
                    () = deadline.sleep.as_mut(), if deadline.armed() => return Err(deadline.error(url)),
                    () = &mut headers_sleep, if stall.is_some() => return Err(no_headers()),
                };
                match sent {
                    Ok(response) => return Ok(Answer::Plain(response)),
                    Err(h1::Failure::ClosedBeforeAnswer) if attempt == 0 => self.note_resend(ep),
                    Err(failure) => return Err(classify_plain(&failure, url, &self.options)),
                }
            }
            return Err(classify_plain(
                &h1::Failure::ClosedBeforeAnswer,
                url,
                &self.options,
            ));
        }
        let request_id = request_id.and_then(|id| HeaderValue::try_from(id).ok());
        // Built again only for the rare resend, with its body written
        // again: the common path makes one request and neither copies nor
        // shares the body (a shared `Bytes` costs an allocation).
        let build_request = |body: Vec<u8>| {
            let mut request = self
                .client
                .post(ep.url.clone())
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(Bytes::from(body));
            if stream {
                request = request.header(ACCEPT, HeaderValue::from_static("text/event-stream"));
            }
            if let Some(auth) = &self.auth {
                request = request.header(AUTHORIZATION, auth.clone());
            }
            if let Some(id) = &request_id {
                request = request.header(X_REQUEST_ID, id.clone());
            }
            request
        };
        let first = tokio::select! {
            biased;
            r = build_request(body).send() => r,
            () = deadline.sleep.as_mut(), if deadline.armed() => return Err(deadline.error(url)),
            () = &mut headers_sleep, if stall.is_some() => return Err(no_headers()),
        };
        match first {
            Err(e) if closed_before_answer(&e) => {
                self.note_resend(ep);
                let body = self.request_body(samples)?;
                tokio::select! {
                    biased;
                    r = build_request(body).send() => r
                        .map(Answer::Pooled)
                        .map_err(|e| classify(&e, url, &self.options)),
                    () = deadline.sleep.as_mut(), if deadline.armed() => Err(deadline.error(url)),
                    () = &mut headers_sleep, if stall.is_some() => Err(no_headers()),
                }
            }
            r => r
                .map(Answer::Pooled)
                .map_err(|e| classify(&e, url, &self.options)),
        }
    }

    /// Counts a resend (and warns about the first).
    fn note_resend(&self, ep: &Endpoint) {
        ep.resent.fetch_add(1, Ordering::Relaxed);
        if !self.warned_resend.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                endpoint = %ep.root,
                "the server closed a kept-alive connection without answering a request \
                 on it; such requests are sent once more on a new connection \
                 (llama.cpp closes after every streamed answer: --no-keep-alive \
                 avoids the extra round trip; reported once)"
            );
        }
    }
}

/// A response whose head arrived, from either transport.
enum Answer<'a> {
    /// Through reqwest (`https://`, HTTP/2, credentials in the URL).
    Pooled(reqwest::Response),
    /// Through the plain-HTTP/1.1 transport.
    Plain(h1::Response<'a>),
}

impl Answer<'_> {
    fn status(&self) -> u16 {
        match self {
            Answer::Pooled(r) => r.status().as_u16(),
            Answer::Plain(r) => r.status(),
        }
    }

    fn is_sse(&self) -> bool {
        match self {
            Answer::Pooled(r) => r
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim_start().starts_with("text/event-stream")),
            Answer::Plain(r) => r.is_sse(),
        }
    }

    /// The next piece of the body, `None` at its end. Cancel-safe.
    async fn chunk(
        &mut self,
        url: &str,
        options: &ClientOptions,
    ) -> Result<Option<Bytes>, QueryError> {
        match self {
            Answer::Pooled(r) => r.chunk().await.map_err(|e| classify(&e, url, options)),
            Answer::Plain(r) => r
                .chunk()
                .await
                .map_err(|f| classify_plain(&f, url, options)),
        }
    }
}

/// Replaces each text answer's data with the token ids of its text
/// (little-endian int32, as LoadGen's LLM answers hold). The token count
/// stays the server's. A text that cannot be encoded fails its sample: the
/// accuracy log must not mix text with token ids.
async fn encode_text_answers(encoder: &TextEncoder, answers: &mut [QuerySampleResponse]) {
    for answer in answers {
        if answer.detail.error.is_some() || answer.detail.output_data != OutputData::Text {
            continue;
        }
        let text = String::from_utf8_lossy(&answer.data);
        let ids = match encoder {
            TextEncoder::Local(tokenizer) => {
                tokenizer.encode(&text, false).map_err(|e| e.to_string())
            }
            TextEncoder::Remote(remote) => remote
                .tokenize(&text, false)
                .await
                .map_err(|e| e.to_string()),
        };
        match ids {
            Ok(ids) => {
                answer.data = loadgen::tokens_to_bytes(&ids);
                answer.detail.output_data = OutputData::TokenIds;
            }
            Err(e) => {
                answer.data.clear();
                answer.n_tokens = 0;
                answer.detail.error = Some(query_error(
                    ErrorKind::Other,
                    format!("cannot turn the answer's text into token ids: {e}"),
                ));
            }
        }
    }
}

/// Waits for a free slot under the endpoint's in-flight limit, if it has one.
async fn acquire_slot(ep: &Endpoint) -> Result<Option<OwnedSemaphorePermit>, QueryError> {
    match &ep.limit {
        Some(limit) => Arc::clone(limit)
            .acquire_owned()
            .await
            .map(Some)
            .map_err(|_| query_error(ErrorKind::Cancelled, "endpoint limit closed")),
        None => Ok(None),
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

/// The request timeout: one timer for the request's whole life.
struct Deadline<'a> {
    sleep: Pin<&'a mut Sleep>,
    limit: Option<Duration>,
}

impl Deadline<'_> {
    /// Whether there is a timeout to wait for.
    fn armed(&self) -> bool {
        self.limit.is_some()
    }

    fn error(&self, url: &str) -> QueryError {
        query_error(
            ErrorKind::Timeout,
            format!(
                "no complete answer from {url} within the request timeout ({:?})",
                self.limit.unwrap_or_default()
            ),
        )
    }
}

/// Reads a response body piece by piece under the request and stall
/// timeouts.
///
/// The stall timer is armed at the first piece and not moved at each piece
/// after it (a timer reset per chunk costs more than the chunk): when it
/// fires, it checks how long the stream has really been quiet and re-arms
/// for the rest.
struct BodyReader<'a> {
    response: Answer<'a>,
    url: &'a str,
    options: &'a ClientOptions,
    deadline: Deadline<'a>,
    stall: Pin<&'a mut Sleep>,
    stall_armed: bool,
    last_piece_ns: u64,
    pieces: u64,
}

impl BodyReader<'_> {
    /// Whether the server answered with an event stream.
    fn is_sse(&self) -> bool {
        self.response.is_sse()
    }

    /// The next piece of the body (`None` at its end) and the run clock the
    /// moment its bytes were handed over, read once per piece and before
    /// anything parses them. (The tracker, whose clock this reads, is
    /// borrowed mutably because a shared borrow of it is not `Send`.)
    async fn next_piece(
        &mut self,
        clock: &mut Tracker,
    ) -> Result<(Option<Bytes>, u64), QueryError> {
        let stall_limit = self.options.stall_timeout;
        let piece = loop {
            tokio::select! {
                biased;
                r = self.response.chunk(self.url, self.options) => break r?,
                () = self.deadline.sleep.as_mut(), if self.deadline.armed() => {
                    return Err(self.deadline.error(self.url));
                }
                () = self.stall.as_mut(), if self.stall_armed => {
                    let limit = stall_limit.unwrap_or_default();
                    let quiet = Duration::from_nanos(
                        clock.now_ns().saturating_sub(self.last_piece_ns),
                    );
                    if quiet >= limit {
                        return Err(query_error(
                            ErrorKind::Stalled,
                            format!(
                                "{} sent nothing for {limit:?} after {} piece(s) of the response",
                                self.url, self.pieces
                            ),
                        ));
                    }
                    self.stall.as_mut().reset(Instant::now() + (limit - quiet));
                }
            }
        };
        let at = clock.now_ns();
        self.last_piece_ns = at;
        if let (Some(limit), false) = (stall_limit, self.stall_armed) {
            self.stall.as_mut().reset(Instant::now() + limit);
            self.stall_armed = true;
        }
        self.pieces += 1;
        Ok((piece, at))
    }

    /// The error for a failed status. The body only improves the message:
    /// a little of it is read, giving up quietly on any failure or timeout.
    async fn status_error(&mut self, status: u16) -> QueryError {
        let mut body = Vec::new();
        while body.len() < 4096 {
            let piece = tokio::select! {
                biased;
                r = self.response.chunk(self.url, self.options) => r,
                () = self.deadline.sleep.as_mut(), if self.deadline.armed() => break,
                () = tokio::time::sleep(Duration::from_secs(5)) => break,
            };
            match piece {
                Ok(Some(bytes)) => body.extend_from_slice(&bytes),
                _ => break,
            }
        }
        QueryError {
            kind: ErrorKind::HttpStatus,
            http_status: Some(status),
            message: format!("{}: {}", self.url, error_body_message(&body)),
        }
    }

    /// Reads a whole JSON body (also what a server that ignores `stream`
    /// sends) and applies it.
    async fn read_whole(&mut self, tracker: &mut Tracker) -> Result<(), QueryError> {
        let url = self.url;
        let limit = self.options.max_event_bytes;
        let mut body = Vec::new();
        while let (Some(bytes), _) = self.next_piece(tracker).await? {
            if body.len() + bytes.len() > limit {
                return Err(query_error(
                    ErrorKind::MalformedResponse,
                    format!("the response from {url} is larger than {limit} bytes"),
                ));
            }
            body.extend_from_slice(&bytes);
        }
        let mut chunk = ParsedChunk::default();
        chunk.parse(&body).map_err(|e| {
            query_error(
                ErrorKind::MalformedResponse,
                format!("the response from {url} is not valid JSON: {e}"),
            )
        })?;
        if let Some(message) = chunk.error.take() {
            return Err(query_error(
                ErrorKind::ServerError,
                format!("{url}: {}", one_line(&message, 300)),
            ));
        }
        tracker.apply_response(&chunk)
    }

    /// Reads an SSE stream up to `[DONE]`, applying each event's chunk as it
    /// arrives.
    async fn read_stream(&mut self, tracker: &mut Tracker) -> Result<(), QueryError> {
        let url = self.url;
        let mut parser = SseParser::new(self.options.max_event_bytes);
        let mut chunk = ParsedChunk::default();
        let mut events: u64 = 0;
        loop {
            let (piece, at) = self.next_piece(tracker).await?;
            let Some(bytes) = piece else {
                let message = if parser.has_partial_event() {
                    format!("the stream from {url} ended in the middle of an event")
                } else {
                    format!("the stream from {url} ended after {events} event(s) without [DONE]")
                };
                // Samples that finished and knew their token count were
                // answered already; the rest lost their ending.
                return Err(query_error(ErrorKind::Disconnected, message));
            };
            parser.feed(&bytes);
            while let Some(event) = parser.next_event().map_err(|e| {
                query_error(
                    ErrorKind::MalformedResponse,
                    format!("the stream from {url} is not valid SSE: {e}"),
                )
            })? {
                events += 1;
                if event.is_done() {
                    return Ok(());
                }
                apply_event(&event, events, at, url, &mut chunk, tracker)?;
            }
        }
    }

    /// Reads to the end so the connection can be reused; what comes after
    /// `[DONE]` no longer matters to any sample.
    async fn drain(&mut self) {
        for _ in 0..4 {
            let piece = tokio::select! {
                biased;
                r = self.response.chunk(self.url, self.options) => r,
                () = self.deadline.sleep.as_mut(), if self.deadline.armed() => break,
                () = self.stall.as_mut(), if self.stall_armed => break,
            };
            if !matches!(piece, Ok(Some(_))) {
                break;
            }
        }
    }
}

/// Parses event number `n` (arrived at `at`) into `chunk` and applies it; an
/// error event or error object ends the request.
fn apply_event(
    event: &SseEvent<'_>,
    n: u64,
    at: u64,
    url: &str,
    chunk: &mut ParsedChunk,
    tracker: &mut Tracker,
) -> Result<(), QueryError> {
    let is_error_event = event.event == "error";
    if let Err(e) = chunk.parse(event.data) {
        if is_error_event {
            let text = String::from_utf8_lossy(event.data);
            return Err(query_error(
                ErrorKind::ServerError,
                format!("{url}: {}", one_line(&text, 300)),
            ));
        }
        return Err(query_error(
            ErrorKind::MalformedResponse,
            format!("event {n} from {url} is not valid JSON: {e}"),
        ));
    }
    if let Some(message) = chunk.error.take() {
        return Err(query_error(
            ErrorKind::ServerError,
            format!("{url}: {}", one_line(&message, 300)),
        ));
    }
    if is_error_event {
        return Err(query_error(
            ErrorKind::ServerError,
            format!("{url} sent an error event"),
        ));
    }
    tracker.apply_chunk(at, chunk)
}
