//! [`OpenAiSut`]: LoadGen's system under test for OpenAI-compatible servers.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dataset::Dataset;
use loadgen::{ErrorKind, QuerySample, QuerySampleResponse, Responder, SystemUnderTest};
use reqwest::header::HeaderValue;
use tokio::runtime::Handle;
use tokio::sync::{Notify, Semaphore};
use tokio::task::AbortHandle;

use crate::body::RequestTemplate;
use crate::client::{self, ServerIdentity, query_error};
use crate::config::{
    ApiKey, ClientOptions, Dispatch, EndpointKind, ExtraHeader, OutputTokenizer, RequestOptions,
    SutConfig,
};
use crate::tokenizer::RemoteTokenizer;
use crate::tracker::{AnswerHook, Tracker};
use crate::{Secrets, SutError, redact_url};

mod request;

/// Counters of one endpoint, as [`OpenAiSut::endpoint_stats`] reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStats {
    /// The endpoint's server root URL.
    pub url: String,
    /// Requests sent (or being sent) to it.
    pub requests: u64,
    /// Requests that failed (shutdown cancellations are not counted).
    pub errors: u64,
    /// Requests whose samples are not all answered yet.
    pub in_flight: u64,
    /// Requests sent a second time because the server closed a kept-alive
    /// connection after the request went out and before any answer (see
    /// [`client::closed_before_answer`]).
    pub resent: u64,
    /// Samples answered with more output tokens than the `max_tokens` they
    /// were sent with (the server ignored the limit).
    pub over_max_tokens: u64,
}

/// One server replica.
struct Endpoint {
    index: u32,
    root: String,
    url: reqwest::Url,
    requests: AtomicU64,
    errors: AtomicU64,
    in_flight: AtomicU64,
    resent: AtomicU64,
    over_max_tokens: AtomicU64,
    limit: Option<Arc<Semaphore>>,
    /// The plain-HTTP/1.1 transport, when the URL and options allow it;
    /// otherwise requests go through reqwest.
    plain: Option<crate::h1::Plain>,
}

/// Counts samples issued but not answered, so `drain` can wait for zero.
#[derive(Debug, Default)]
struct Outstanding {
    count: AtomicUsize,
    zero: Notify,
}

impl Outstanding {
    fn add(&self, n: usize) {
        self.count.fetch_add(n, Ordering::AcqRel);
    }

    fn done(&self, n: usize) {
        if n > 0 && self.count.fetch_sub(n, Ordering::AcqRel) == n {
            self.zero.notify_waiters();
        }
    }

    async fn wait_zero(&self) {
        // `enable` registers the waiter before the check, so a notification
        // between the check and the await is not lost.
        loop {
            let notified = self.zero.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl AnswerHook for Outstanding {
    fn answered(&self, n: usize) {
        self.done(n);
    }
}

/// Tasks that `shutdown` can abort.
#[derive(Default)]
struct Registry {
    next_id: u64,
    shutting_down: bool,
    /// `None` while the task is being spawned.
    tasks: HashMap<u64, Option<AbortHandle>>,
}

struct Inner {
    name: String,
    model: String,
    kind: EndpointKind,
    client: reqwest::Client,
    auth: Option<HeaderValue>,
    endpoints: Vec<Endpoint>,
    template: RequestTemplate,
    dataset: Arc<Dataset>,
    dispatch: Dispatch,
    options: ClientOptions,
    handle: Handle,
    registry: Mutex<Registry>,
    /// Notified when the last registered task ends.
    tasks_ended: Notify,
    outstanding: Arc<Outstanding>,
    round_robin: AtomicUsize,
    warned_usage_mismatch: AtomicBool,
    warned_resend: AtomicBool,
    /// Turns text answers into token ids (see [`OutputTokenizer`]).
    text_encoder: Option<TextEncoder>,
    /// Scrubs every failure message before it is answered.
    secrets: Arc<Secrets>,
}

/// A resolved [`OutputTokenizer`].
enum TextEncoder {
    Local(Arc<dyn dataset::tokenizer::Tokenizer>),
    Remote(Box<RemoteTokenizer>),
}

/// The server's `/tokenize`, checked once with a short text so a server
/// without it fails at connect, not at every sample.
async fn server_tokenizer(
    root: &str,
    api_key: Option<&ApiKey>,
    headers: &[ExtraHeader],
) -> Result<RemoteTokenizer, SutError> {
    let unusable = |e: crate::TokenizerError| SutError::Unhealthy {
        url: format!("{root}/tokenize"),
        reason: format!(
            "text answers are turned into token ids with the server's tokenizer, which \
             failed: {e} (give a local tokenizer instead)"
        ),
    };
    let remote = RemoteTokenizer::detect_with_headers(root, api_key, headers)
        .await
        .map_err(unusable)?;
    remote.tokenize("Hello", false).await.map_err(unusable)?;
    Ok(remote)
}

/// The system under test for vLLM, llama.cpp and any OpenAI-compatible
/// server.
///
/// `issue_query` never blocks: it picks an endpoint and spawns the request on
/// the tokio runtime that [`OpenAiSut::connect`] ran on. Every sample is
/// answered exactly once, failures included. Cheap to clone (shared state).
#[derive(Clone)]
pub struct OpenAiSut {
    inner: Arc<Inner>,
}

impl fmt::Debug for OpenAiSut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiSut")
            .field("name", &self.inner.name)
            .field("model", &self.inner.model)
            .field("kind", &self.inner.kind)
            .field(
                "endpoints",
                &self
                    .inner
                    .endpoints
                    .iter()
                    .map(|e| e.root.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("dispatch", &self.inner.dispatch)
            .field("api_key", &self.inner.auth.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

fn lock(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    // A panic while holding the lock cannot leave the map inconsistent.
    registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl OpenAiSut {
    /// Checks the configuration, builds the client, checks every endpoint's
    /// health, discovers the model if none is set, and returns a SUT whose
    /// requests run on the current tokio runtime.
    ///
    /// Every error is scrubbed of the API key and URL passwords.
    pub async fn connect(config: SutConfig, dataset: Arc<Dataset>) -> Result<OpenAiSut, SutError> {
        let secrets = Arc::new(
            Secrets::new(
                config.api_key.as_ref().map(ApiKey::expose),
                config.endpoints.iter().map(String::as_str),
            )
            .with_values(config.headers.iter().map(ExtraHeader::expose)),
        );
        Self::connect_unscrubbed(config, dataset, Arc::clone(&secrets))
            .await
            .map_err(|e| e.scrubbed(&secrets))
    }

    async fn connect_unscrubbed(
        config: SutConfig,
        dataset: Arc<Dataset>,
        secrets: Arc<Secrets>,
    ) -> Result<OpenAiSut, SutError> {
        let SutConfig {
            endpoints,
            endpoint_kind,
            request,
            dispatch,
            client: options,
            api_key,
            name,
            headers,
            output_tokenizer,
        } = config;
        if endpoints.is_empty() {
            return Err(SutError::Config("no endpoint given".into()));
        }
        if let Dispatch::Batched(policy) = dispatch {
            if policy.max_in_flight == 0 || policy.prompts_per_request == 0 {
                return Err(SutError::Config(format!(
                    "batching needs at least one request in flight and one prompt per request \
                     (got {} and {})",
                    policy.max_in_flight, policy.prompts_per_request
                )));
            }
            if endpoint_kind == EndpointKind::ChatCompletions && policy.prompts_per_request > 1 {
                return Err(SutError::Config(
                    "chat requests carry one prompt: set prompts per request to 1".into(),
                ));
            }
        }
        if let Some(prefix) = &options.request_id_prefix
            && HeaderValue::try_from(prefix.as_str()).is_err()
        {
            return Err(SutError::Config(format!(
                "request id prefix {prefix:?} has characters an HTTP header cannot carry"
            )));
        }
        if options.max_in_flight_per_endpoint == Some(0) {
            return Err(SutError::Config(
                "max in-flight requests per endpoint must be at least 1".into(),
            ));
        }
        if endpoint_kind.needs_text()
            && let Some(index) = dataset.samples.iter().position(|s| s.input_text.is_none())
        {
            return Err(SutError::MissingText {
                dataset: dataset.name.clone(),
                index,
                endpoint: endpoint_kind.path(),
            });
        }
        if !endpoint_kind.needs_text()
            && let Some(index) = dataset
                .samples
                .iter()
                .position(|s| s.input_tokens.is_empty())
        {
            return Err(SutError::MissingTokens {
                dataset: dataset.name.clone(),
                index,
                endpoint: endpoint_kind.path(),
            });
        }
        let roots = endpoints
            .iter()
            .map(|u| client::server_root(u))
            .collect::<Result<Vec<_>, _>>()?;
        let http = client::build_client(&options, &headers)?;
        let auth = api_key.as_ref().map(client::auth_header).transpose()?;

        let model = check_endpoints(&http, &roots, auth.as_ref(), &options, &request).await?;
        let template = RequestTemplate::new(endpoint_kind, &request, &model)?;
        let text_encoder = match output_tokenizer {
            None => None,
            Some(OutputTokenizer::Local(tokenizer)) => Some(TextEncoder::Local(tokenizer)),
            Some(OutputTokenizer::Server) => Some(TextEncoder::Remote(Box::new(
                server_tokenizer(&roots[0], api_key.as_ref(), &headers).await?,
            ))),
        };
        let endpoints = endpoints_of(roots, endpoint_kind, &options, api_key.as_ref(), &headers)?;
        let name = name.unwrap_or_else(|| format!("openai:{model}"));
        Ok(OpenAiSut {
            inner: Arc::new(Inner {
                name,
                model,
                kind: endpoint_kind,
                client: http,
                auth,
                endpoints,
                template,
                dataset,
                dispatch,
                options,
                handle: Handle::current(),
                registry: Mutex::new(Registry::default()),
                tasks_ended: Notify::new(),
                outstanding: Arc::new(Outstanding::default()),
                round_robin: AtomicUsize::new(0),
                warned_usage_mismatch: AtomicBool::new(false),
                warned_resend: AtomicBool::new(false),
                text_encoder,
                secrets,
            }),
        })
    }

    /// The model every request names.
    pub fn model(&self) -> &str {
        &self.inner.model
    }

    /// Whether requests stream.
    pub fn streams(&self) -> bool {
        self.inner.template.stream()
    }

    /// Per-endpoint counters, in endpoint order.
    pub fn endpoint_stats(&self) -> Vec<EndpointStats> {
        self.inner
            .endpoints
            .iter()
            .map(|e| EndpointStats {
                url: e.root.clone(),
                requests: e.requests.load(Ordering::Relaxed),
                errors: e.errors.load(Ordering::Relaxed),
                in_flight: e.in_flight.load(Ordering::Relaxed),
                resent: e.resent.load(Ordering::Relaxed),
                over_max_tokens: e.over_max_tokens.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// What each endpoint says about itself (see [`ServerIdentity`]),
    /// scrubbed of the API key and URL passwords; asked once, before a run,
    /// for run.json.
    pub async fn server_identities(&self) -> Vec<ServerIdentity> {
        let inner = &self.inner;
        let auth = inner.auth.as_ref();
        let asks = inner.endpoints.iter().map(|e| async move {
            let version =
                client::server_version(&inner.client, &e.root, auth, &inner.options).await;
            let owned_by = client::list_models(&inner.client, &e.root, auth, &inner.options)
                .await
                .ok()
                .and_then(|models| models.into_iter().next())
                .and_then(|m| m.owned_by);
            let scrub = |s: String| inner.secrets.scrub(&s);
            ServerIdentity {
                url: crate::redact_url(&e.root),
                version: version.map(scrub),
                owned_by: owned_by.map(scrub),
            }
        });
        futures_util::future::join_all(asks).await
    }

    /// Samples issued and not yet answered.
    pub fn outstanding_samples(&self) -> usize {
        self.inner.outstanding.count.load(Ordering::Acquire)
    }

    /// Waits until every issued sample has been answered and every request
    /// has ended (streams read to their end, connections back in the pool).
    pub async fn drain(&self) {
        self.inner.outstanding.wait_zero().await;
        loop {
            let ended = self.inner.tasks_ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if lock(&self.inner.registry).tasks.is_empty() {
                return;
            }
            ended.await;
        }
    }

    /// Stops: samples issued from now on, and every sample in flight or
    /// queued, are answered with `Cancelled`. Returns once all are answered.
    pub async fn shutdown(&self) {
        let handles: Vec<AbortHandle> = {
            let mut registry = lock(&self.inner.registry);
            registry.shutting_down = true;
            registry.tasks.drain().filter_map(|(_, h)| h).collect()
        };
        for handle in handles {
            handle.abort();
        }
        self.drain().await;
    }
}

/// The endpoints' state, each with the plain-HTTP/1.1 transport when its
/// URL and the options allow it.
fn endpoints_of(
    roots: Vec<String>,
    kind: EndpointKind,
    options: &ClientOptions,
    api_key: Option<&ApiKey>,
    headers: &[ExtraHeader],
) -> Result<Vec<Endpoint>, SutError> {
    let authorization = api_key.as_ref().map(|k| format!("Bearer {}", k.expose()));
    let per_request: &[&str] = if options.request_id_prefix.is_some() {
        &["accept", request::X_REQUEST_ID]
    } else {
        &["accept"]
    };
    let plain_setup = crate::h1::PlainSetup {
        connect_timeout: options.connect_timeout,
        max_idle: options.pool_max_idle_per_endpoint,
        idle_timeout: options.pool_idle_timeout,
        user_agent: client::USER_AGENT,
        authorization: authorization.as_deref(),
        extra: headers.iter().map(|h| (h.name(), h.expose())).collect(),
        per_request,
    };
    roots
        .into_iter()
        .enumerate()
        .map(|(i, root)| {
            let full = format!("{root}{}", kind.path());
            let url = reqwest::Url::parse(&full).map_err(|e| SutError::InvalidUrl {
                url: full.clone(),
                reason: e.to_string(),
            })?;
            let plain = if options.http == crate::config::HttpVersion::Http2 {
                None
            } else {
                crate::h1::Plain::for_url(&url, &plain_setup)
            };
            Ok(Endpoint {
                plain,
                index: i as u32,
                // Messages and statistics name it; requests use `url`.
                root: redact_url(&root),
                url,
                requests: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                in_flight: AtomicU64::new(0),
                resent: AtomicU64::new(0),
                over_max_tokens: AtomicU64::new(0),
                limit: options
                    .max_in_flight_per_endpoint
                    .map(|n| Arc::new(Semaphore::new(n))),
            })
        })
        .collect::<Result<Vec<_>, SutError>>()
}

/// Checks every endpoint's health (polling up to `wait_ready`) and that it
/// lists the model, which is discovered from the first endpoint when none is
/// set. Without health checks only the discovery is done.
async fn check_endpoints(
    http: &reqwest::Client,
    roots: &[String],
    auth: Option<&HeaderValue>,
    options: &ClientOptions,
    request: &RequestOptions,
) -> Result<String, SutError> {
    if options.health_check {
        let checks = roots.iter().map(|root| {
            async move {
                let deadline = options.wait_ready.map(|d| tokio::time::Instant::now() + d);
                loop {
                    match client::check_health(http, root, auth, options).await {
                        Ok(()) => break,
                        Err(e) => match deadline {
                            // Polling is the only way to see a server
                            // become ready.
                            Some(d) if tokio::time::Instant::now() < d => {
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                            _ => return Err(e),
                        },
                    }
                }
                let models = client::list_models(http, root, auth, options).await?;
                Ok::<_, SutError>((root.clone(), models))
            }
        });
        let listed = futures_util::future::try_join_all(checks).await?;
        let model = match &request.model {
            Some(model) => model.clone(),
            None => first_model(&listed[0].0, &listed[0].1)?,
        };
        for (root, models) in &listed {
            if !models.iter().any(|m| m.id == model) {
                return Err(SutError::ModelNotServed {
                    url: format!("{root}/v1/models"),
                    model,
                    served: models
                        .iter()
                        .map(|m| m.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        Ok(model)
    } else {
        match &request.model {
            Some(model) => Ok(model.clone()),
            None => {
                let models = client::list_models(http, &roots[0], auth, options).await?;
                first_model(&roots[0], &models)
            }
        }
    }
}

fn first_model(root: &str, models: &[client::ServedModel]) -> Result<String, SutError> {
    models
        .first()
        .map(|m| m.id.clone())
        .ok_or_else(|| SutError::Unhealthy {
            url: format!("{root}/v1/models"),
            reason: "the server lists no model".into(),
        })
}

impl SystemUnderTest for OpenAiSut {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn issue_query(&self, samples: &[QuerySample], responder: &Responder) {
        if samples.is_empty() {
            return;
        }
        let inner = &self.inner;
        inner.outstanding.add(samples.len());
        if inner.shutting_down() {
            cancel_all(samples, responder, &inner.outstanding);
            return;
        }
        match inner.dispatch {
            Dispatch::PerSample => {
                for &sample in samples {
                    // The endpoint is chosen here, on the issuing thread, so
                    // balancing sees every earlier pick. The request guard
                    // exists before the task does: a task aborted before it
                    // first runs still answers its sample.
                    let request = inner.start_request(&[sample], responder);
                    let task_inner = Arc::clone(inner);
                    inner.spawn(async move {
                        task_inner.execute(request, &[sample]).await;
                    });
                }
            }
            Dispatch::Batched(policy) => {
                let batches = batches(
                    &inner.dataset,
                    &inner.template,
                    samples,
                    policy.prompts_per_request,
                );
                let workers = policy.max_in_flight.min(batches.len());
                let queue = Arc::new(BatchQueue {
                    batches: Mutex::new(batches),
                    responder: responder.clone(),
                    outstanding: Arc::clone(&inner.outstanding),
                });
                for _ in 0..workers {
                    let task_inner = Arc::clone(inner);
                    let queue = Arc::clone(&queue);
                    inner.spawn(async move {
                        while let Some(batch) = queue.pop() {
                            let request = task_inner.start_request(&batch, &queue.responder);
                            task_inner.execute(request, &batch).await;
                        }
                    });
                }
                // Workers hold the queue now; if none could start (shutdown
                // began), dropping this last handle cancels every sample.
                drop(queue);
            }
        }
    }
}

/// Groups samples into requests of up to `per_request` prompts that share
/// one `max_tokens` (a request carries one), in issue order of first
/// appearance.
fn batches(
    dataset: &Dataset,
    template: &RequestTemplate,
    samples: &[QuerySample],
    per_request: usize,
) -> VecDeque<Vec<QuerySample>> {
    let mut out = VecDeque::new();
    if per_request == 1 {
        out.extend(samples.iter().map(|&s| vec![s]));
        return out;
    }
    // Open batch per max_tokens value, so same-cap samples fill requests.
    let mut open: HashMap<Option<u32>, usize> = HashMap::new();
    for &s in samples {
        let cap = dataset
            .samples
            .get(s.index)
            .and_then(|sample| template.max_tokens_for(sample));
        match open.get(&cap) {
            Some(&at) if out[at].len() < per_request => out[at].push(s),
            _ => {
                open.insert(cap, out.len());
                let mut batch = Vec::with_capacity(per_request);
                batch.push(s);
                out.push_back(batch);
            }
        }
    }
    out
}

/// The Offline work queue. Dropping it (the last worker ended or was
/// aborted) answers whatever is still queued with `Cancelled`.
struct BatchQueue {
    batches: Mutex<VecDeque<Vec<QuerySample>>>,
    responder: Responder,
    outstanding: Arc<Outstanding>,
}

impl BatchQueue {
    fn pop(&self) -> Option<Vec<QuerySample>> {
        self.batches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop_front()
    }
}

impl Drop for BatchQueue {
    fn drop(&mut self) {
        let left: Vec<QuerySample> = self
            .batches
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .drain(..)
            .flatten()
            .collect();
        if !left.is_empty() {
            cancel_all(&left, &self.responder, &self.outstanding);
        }
    }
}

fn cancel_all(samples: &[QuerySample], responder: &Responder, outstanding: &Outstanding) {
    let error = query_error(
        ErrorKind::Cancelled,
        "the SUT was shut down before the sample was sent",
    );
    let mut responses: Vec<QuerySampleResponse> = samples
        .iter()
        .map(|s| QuerySampleResponse::failed(s.id, error.clone()))
        .collect();
    responder.complete_all(&mut responses);
    outstanding.done(samples.len());
}

/// One request, from the moment its endpoint is chosen. Its tracker
/// answers the samples however it ends (even if its task is aborted before
/// it ever runs) and holds its endpoint slot until then.
struct StartedRequest {
    endpoint: usize,
    tracker: Tracker,
}

/// One request counted in its endpoint's `in_flight`; dropping it uncounts.
struct EndpointSlot {
    inner: Arc<Inner>,
    endpoint: usize,
}

impl Drop for EndpointSlot {
    fn drop(&mut self) {
        self.inner.endpoints[self.endpoint]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Removes a finished task from the registry.
struct Deregister {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for Deregister {
    fn drop(&mut self) {
        let mut registry = lock(&self.inner.registry);
        registry.tasks.remove(&self.id);
        if registry.tasks.is_empty() {
            self.inner.tasks_ended.notify_waiters();
        }
    }
}

impl Inner {
    /// Spawns a task that `shutdown` can abort. After shutdown began, the
    /// task is not started: dropping `work` answers the samples it owns
    /// (request guards and queues answer `Cancelled` when dropped).
    fn spawn(self: &Arc<Self>, work: impl Future<Output = ()> + Send + 'static) {
        // Registered before it is spawned, so the task's own removal (it
        // may end, or be dropped by a closed runtime, before `spawn`
        // returns) always follows its insertion. The lock is not held while
        // spawning: a dropped task takes it to remove itself.
        let id = {
            let mut registry = lock(&self.registry);
            if registry.shutting_down {
                drop(registry);
                drop(work);
                return;
            }
            let id = registry.next_id;
            registry.next_id += 1;
            registry.tasks.insert(id, None);
            id
        };
        let deregister = Deregister {
            inner: Arc::clone(self),
            id,
        };
        let handle = self.handle.spawn(async move {
            let _deregister = deregister;
            work.await;
        });
        let mut registry = lock(&self.registry);
        if registry.shutting_down {
            // Shutdown began while this task was being spawned.
            handle.abort();
        } else if let Some(slot) = registry.tasks.get_mut(&id) {
            *slot = Some(handle.abort_handle());
        }
    }

    fn shutting_down(&self) -> bool {
        lock(&self.registry).shutting_down
    }

    /// Chooses the endpoint for a request and takes charge of its samples.
    fn start_request(
        self: &Arc<Self>,
        samples: &[QuerySample],
        responder: &Responder,
    ) -> StartedRequest {
        let endpoint = self.pick_endpoint();
        let hook: Arc<dyn AnswerHook> = Arc::clone(&self.outstanding) as Arc<dyn AnswerHook>;
        let mut tracker = Tracker::new(
            responder.clone(),
            samples.iter().map(|s| s.id),
            self.endpoints[endpoint].index,
            Some(hook),
        );
        // Balancing counts a request until its samples are answered; the
        // trailing `[DONE]` read does not keep the endpoint busy.
        tracker.set_secrets(Arc::clone(&self.secrets));
        tracker.set_release(Box::new(EndpointSlot {
            inner: Arc::clone(self),
            endpoint,
        }));
        StartedRequest { endpoint, tracker }
    }

    /// Least outstanding requests; ties go round-robin (the scan starts one
    /// endpoint further each time).
    fn pick_endpoint(self: &Arc<Self>) -> usize {
        let n = self.endpoints.len();
        let best = if n == 1 {
            0
        } else {
            let start = self.round_robin.fetch_add(1, Ordering::Relaxed) % n;
            let mut best = start;
            let mut best_load = self.endpoints[start].in_flight.load(Ordering::Relaxed);
            for k in 1..n {
                let i = (start + k) % n;
                let load = self.endpoints[i].in_flight.load(Ordering::Relaxed);
                if load < best_load {
                    best = i;
                    best_load = load;
                }
            }
            best
        };
        let endpoint = &self.endpoints[best];
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        endpoint.requests.fetch_add(1, Ordering::Relaxed);
        best
    }
}
