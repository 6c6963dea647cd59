//! Client micro-benchmark: how much CPU the SUT spends per streamed request,
//! and how many streaming requests per second it sustains.
//!
//! ```text
//! cargo run --release -p sut --example stream_bench [-- OPTIONS]
//!   --tokens N        output tokens per request (chunks of one token)  [64]
//!   --requests N      requests in the closed-loop CPU phase            [20000]
//!   --concurrency N   streams in flight in the closed-loop phase       [64]
//!   --rates A,B,...   open-loop rates (req/s) for the sweep             [500,1000,2000,4000]
//!   --seconds S       duration of each open-loop step                   [4]
//!   --itl-ms MS       server delay between tokens in the sweep          [20]
//!   --client-threads  tokio worker threads of the client                [2]
//!   --server-threads  tokio worker threads of the server                [1]
//!   --timeouts on|off request and stall timeouts armed                  [on]
//! ```
//!
//! The server is this same binary, started as a child process (`serve`), so
//! client and server CPU are measured apart (`/proc/<pid>/stat`, Linux only).
//! It is a minimal axum server streaming vLLM-shaped chunks (one token id
//! each, then a usage chunk and `[DONE]`) from pre-serialized bytes, so the
//! server costs as little as possible. Pin the two processes to separate
//! cores (`taskset`) for figures that are not mixed up.
//!
//! Phase 1 (closed loop): `--concurrency` streams in flight until
//! `--requests` complete, tokens sent back to back. Reports client CPU per
//! 1,000 requests and per 1,000 chunks, and the request rate reached.
//!
//! Phase 2 (open loop): requests issued on a fixed schedule at each rate,
//! tokens `--itl-ms` apart (so rate x tokens x itl concurrent streams).
//! Reports completed/offered, client CPU use, issue lag and first-token
//! latency percentiles. A rate is sustained when every request completed
//! without error and p99 first-token latency stays under 50 ms (the server
//! sends the first token at once).

use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use dataset::{Dataset, Sample};
use loadgen::SystemUnderTest;
use loadgen::{CompletionSink, QuerySample, QuerySampleResponse, Responder, ResponseId};
use sut::{OpenAiSut, SutConfig};

type AnyError = Box<dyn Error + Send + Sync>;

#[derive(Debug, Clone)]
struct Options {
    tokens: u32,
    requests: usize,
    concurrency: usize,
    rates: Vec<f64>,
    seconds: f64,
    itl_ms: u64,
    client_threads: usize,
    server_threads: usize,
    timeouts: bool,
}

fn parse_options(args: &[String]) -> Result<Options, AnyError> {
    let mut o = Options {
        tokens: 64,
        requests: 20_000,
        concurrency: 64,
        rates: vec![500.0, 1000.0, 2000.0, 4000.0],
        seconds: 4.0,
        itl_ms: 20,
        client_threads: 2,
        server_threads: 1,
        timeouts: true,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .as_str();
        match flag.as_str() {
            "--tokens" => o.tokens = value.parse()?,
            "--requests" => o.requests = value.parse()?,
            "--concurrency" => o.concurrency = value.parse()?,
            "--rates" => {
                o.rates = value.split(',').map(str::parse).collect::<Result<_, _>>()?;
            }
            "--seconds" => o.seconds = value.parse()?,
            "--itl-ms" => o.itl_ms = value.parse()?,
            "--client-threads" => o.client_threads = value.parse()?,
            "--server-threads" => o.server_threads = value.parse()?,
            "--timeouts" => o.timeouts = value == "on",
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(o)
}

fn main() -> Result<(), AnyError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        let threads: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1);
        return serve(threads);
    }
    let options = parse_options(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.client_threads)
        .enable_all()
        .build()?;
    let mut server = Server::start(options.server_threads)?;
    let result = runtime.block_on(bench(&options, &server));
    server.stop();
    result
}

// ---------------------------------------------------------------- server

/// Streams `max_tokens` one-token chunks, `itl_ms` apart (both read from the
/// request body), then a usage chunk and `[DONE]`.
fn serve(threads: usize) -> Result<(), AnyError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Pre-serialized chunks: the server should cost little.
        let chunks: Arc<Vec<Bytes>> = Arc::new(
            (0..4096u32)
                .map(|i| {
                    Bytes::from(format!(
                        "data: {{\"id\":\"cmpl-b\",\"object\":\"text_completion\",\"choices\":[{{\"index\":0,\"text\":\" t{i}\",\"token_ids\":[{}],\"finish_reason\":null}}]}}\n\n",
                        1000 + i
                    ))
                })
                .collect(),
        );
        let app = Router::new()
            .route("/health", get(|| async { "" }))
            .route(
                "/v1/models",
                get(|| async { r#"{"object":"list","data":[{"id":"bench","object":"model"}]}"# }),
            )
            .route(
                "/v1/completions",
                post(move |body: Bytes| {
                    let chunks = Arc::clone(&chunks);
                    async move { stream_reply(&body, chunks) }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
        drop(out);
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await?;
        Ok::<(), AnyError>(())
    })
}

fn stream_reply(body: &[u8], chunks: Arc<Vec<Bytes>>) -> Response {
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let tokens = request["max_tokens"].as_u64().unwrap_or(16).min(4096) as usize;
    let itl = Duration::from_millis(request["bench_itl_ms"].as_u64().unwrap_or(0));
    let tail = Bytes::from(format!(
        "data: {{\"id\":\"cmpl-b\",\"choices\":[{{\"index\":0,\"text\":\"\",\"token_ids\":[],\"finish_reason\":\"length\"}}]}}\n\ndata: {{\"id\":\"cmpl-b\",\"choices\":[],\"usage\":{{\"prompt_tokens\":8,\"completion_tokens\":{tokens},\"total_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
        tokens + 8
    ));
    let stream = futures_util::stream::unfold(0usize, move |i| {
        let chunks = Arc::clone(&chunks);
        let tail = tail.clone();
        async move {
            if i > tokens {
                return None;
            }
            if i == tokens {
                return Some((Ok::<Bytes, std::io::Error>(tail), i + 1));
            }
            if i > 0 && !itl.is_zero() {
                tokio::time::sleep(itl).await;
            }
            Some((Ok(chunks[i].clone()), i + 1))
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    response
}

/// The server child process.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(threads: usize) -> Result<Server, AnyError> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["serve", &threads.to_string()])
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("unexpected server output {line:?}"))?
            .to_string();
        Ok(Server { child, url })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- cpu

/// CPU time (user + system) of a process, from /proc/<pid>/stat.
fn cpu_seconds(pid: &str) -> Result<f64, AnyError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').ok_or("bad stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / clock_ticks())
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

// ---------------------------------------------------------------- sink

/// Counts completions and keeps per-request first-token and end times.
struct BenchSink {
    start: Instant,
    first_ns: Vec<AtomicU64>,
    end_ns: Vec<AtomicU64>,
    done: AtomicUsize,
    errors: AtomicUsize,
    chunks: AtomicUsize,
    done_notify: tokio::sync::Notify,
}

impl BenchSink {
    fn new(n: usize) -> BenchSink {
        BenchSink {
            start: Instant::now(),
            first_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
            end_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
            done: AtomicUsize::new(0),
            errors: AtomicUsize::new(0),
            chunks: AtomicUsize::new(0),
            done_notify: tokio::sync::Notify::new(),
        }
    }
}

impl CompletionSink for BenchSink {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    fn first_token_complete(&self, id: ResponseId, _data: &[u8]) {
        self.first_ns[id.0 as usize].store(self.now_ns(), Ordering::Relaxed);
    }
    fn query_samples_complete(&self, responses: &mut [QuerySampleResponse]) {
        let now = self.now_ns();
        for r in responses.iter() {
            self.end_ns[r.id.0 as usize].store(now, Ordering::Relaxed);
            if r.detail.error.is_some() {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
            self.chunks
                .fetch_add(r.detail.chunk_ns.len(), Ordering::Relaxed);
        }
        self.done.fetch_add(responses.len(), Ordering::Release);
        self.done_notify.notify_one();
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e6
}

// ---------------------------------------------------------------- bench

async fn connect(o: &Options, url: &str, itl_ms: u64) -> Result<OpenAiSut, AnyError> {
    let tokens = o.tokens;
    let mut config = SutConfig::new([url]);
    if !o.timeouts {
        config.client.request_timeout = None;
        config.client.stall_timeout = None;
    }
    config.request.max_tokens = Some(tokens);
    config.request.model = Some("bench".into());
    config
        .request
        .extra_body
        .insert("bench_itl_ms".into(), itl_ms.into());
    config.client.health_check = false;
    let dataset = Arc::new(Dataset {
        name: "bench".into(),
        samples: (0..1024)
            .map(|i| Sample {
                input_tokens: (0..128).map(|t| (i * 7 + t) as u32 % 32000).collect(),
                ..Sample::default()
            })
            .collect(),
        performance_sample_count: 1024,
    });
    Ok(OpenAiSut::connect(config, dataset).await?)
}

async fn bench(o: &Options, server: &Server) -> Result<(), AnyError> {
    let mut out = std::io::stdout().lock();
    let server_pid = server.child.id().to_string();
    writeln!(
        out,
        "stream_bench: {} client threads, {} server threads, {} cores visible",
        o.client_threads,
        o.server_threads,
        std::thread::available_parallelism().map_or(0, usize::from)
    )?;

    // Phase 1: closed loop.
    let sut = connect(o, &server.url, 0).await?;
    // Warm up the connection pool.
    closed_loop(&sut, o.concurrency.min(o.requests), o.concurrency).await?;
    let (c0, s0, t0) = (
        cpu_seconds("self")?,
        cpu_seconds(&server_pid)?,
        Instant::now(),
    );
    let sink = closed_loop(&sut, o.requests, o.concurrency).await?;
    let wall = t0.elapsed().as_secs_f64();
    let (client_cpu, server_cpu) = (cpu_seconds("self")? - c0, cpu_seconds(&server_pid)? - s0);
    let chunks = sink.chunks.load(Ordering::Relaxed);
    writeln!(
        out,
        "closed loop: {} requests x {} tokens, {} in flight: {:.0} req/s, {:.0} chunks/s, \
         {} errors\n  client CPU {:.1} ms per 1k requests, {:.2} ms per 1k chunks \
         ({:.0}% of one core); server CPU {:.1} ms per 1k requests",
        o.requests,
        o.tokens,
        o.concurrency,
        o.requests as f64 / wall,
        chunks as f64 / wall,
        sink.errors.load(Ordering::Relaxed),
        client_cpu * 1e3 / (o.requests as f64 / 1e3),
        client_cpu * 1e3 / (chunks as f64 / 1e3),
        100.0 * client_cpu / wall,
        server_cpu * 1e3 / (o.requests as f64 / 1e3),
    )?;

    // Phase 2: open loop.
    writeln!(
        out,
        "open loop: {} tokens {} ms apart, {} s per rate",
        o.tokens, o.itl_ms, o.seconds
    )?;
    let mut best = None;
    let sut = connect(o, &server.url, o.itl_ms).await?;
    for &rate in &o.rates {
        let n = (rate * o.seconds).round() as usize;
        let (c0, s0, t0) = (
            cpu_seconds("self")?,
            cpu_seconds(&server_pid)?,
            Instant::now(),
        );
        let (sink, lags) = open_loop(&sut, n, rate).await?;
        let wall = t0.elapsed().as_secs_f64();
        let (client_cpu, server_cpu) = (cpu_seconds("self")? - c0, cpu_seconds(&server_pid)? - s0);
        let schedule_ns = |i: usize| (i as f64 * 1e9 / rate) as u64;
        let mut ttft: Vec<u64> = (0..n)
            .map(|i| {
                sink.first_ns[i]
                    .load(Ordering::Relaxed)
                    .saturating_sub(schedule_ns(i))
            })
            .collect();
        ttft.sort_unstable();
        let mut lags = lags;
        lags.sort_unstable();
        let done = sink.done.load(Ordering::Relaxed);
        let errors = sink.errors.load(Ordering::Relaxed);
        let chunks = sink.chunks.load(Ordering::Relaxed);
        // Most streams open at once: +1 at each start, -1 at each end.
        let mut edges: Vec<(u64, i64)> = (0..n)
            .flat_map(|i| {
                [
                    (schedule_ns(i), 1),
                    (sink.end_ns[i].load(Ordering::Relaxed), -1),
                ]
            })
            .collect();
        edges.sort_unstable();
        let peak = edges
            .iter()
            .scan(0i64, |open, &(_, d)| {
                *open += d;
                Some(*open)
            })
            .max()
            .unwrap_or(0);
        let sustained = done == n && errors == 0 && percentile(&ttft, 99.0) < 50.0;
        if sustained {
            best = Some(rate);
        }
        writeln!(
            out,
            "  {rate:>6.0} req/s: {done}/{n} done, {errors} errors, peak {peak} open streams; \
             client CPU {:.0}% of one core, {:.1} ms per 1k requests, {:.2} ms per 1k chunks; \
             server CPU {:.0}%; issue lag p99 {:.2} ms; first token p50 {:.2} ms p99 {:.2} ms{}",
            100.0 * client_cpu / wall,
            client_cpu * 1e3 / (n as f64 / 1e3),
            client_cpu * 1e3 / (chunks as f64 / 1e3),
            100.0 * server_cpu / wall,
            percentile(&lags, 99.0),
            percentile(&ttft, 50.0),
            percentile(&ttft, 99.0),
            if sustained { "" } else { "  NOT SUSTAINED" },
        )?;
    }
    match best {
        Some(rate) => writeln!(out, "max sustained open-loop rate: {rate:.0} req/s")?,
        None => writeln!(out, "no rate was sustained")?,
    }
    Ok(())
}

/// `n` requests with `concurrency` in flight: each completion issues the
/// next one from a dispatcher task.
async fn closed_loop(
    sut: &OpenAiSut,
    n: usize,
    concurrency: usize,
) -> Result<Arc<BenchSink>, AnyError> {
    let sink = Arc::new(BenchSink::new(n));
    let responder = Responder::new(sink.clone());
    let samples = sut_samples(n);
    let mut issued = concurrency.min(n);
    sut.issue_query(&samples[..issued], &responder);
    loop {
        let notified = sink.done_notify.notified();
        let done = sink.done.load(Ordering::Acquire);
        if done >= n {
            break;
        }
        let target = (done + concurrency).min(n);
        if target > issued {
            sut.issue_query(&samples[issued..target], &responder);
            issued = target;
        }
        notified.await;
    }
    sut.drain().await;
    Ok(sink)
}

/// `n` requests issued at `rate` from a dedicated thread (as LoadGen's
/// issuer does); returns the sink and each request's issue lag in ns.
async fn open_loop(
    sut: &OpenAiSut,
    n: usize,
    rate: f64,
) -> Result<(Arc<BenchSink>, Vec<u64>), AnyError> {
    let sink = Arc::new(BenchSink::new(n));
    let responder = Responder::new(sink.clone());
    let samples = sut_samples(n);
    let issuer_sut = sut.clone();
    let issuer_sink = Arc::clone(&sink);
    let lags = tokio::task::spawn_blocking(move || {
        let mut lags = Vec::with_capacity(n);
        for (i, sample) in samples.iter().enumerate() {
            let due = Duration::from_nanos((i as f64 * 1e9 / rate) as u64);
            loop {
                let now = issuer_sink.start.elapsed();
                if now >= due {
                    break;
                }
                // No spinning: the issuer's CPU counts as the client's.
                std::thread::sleep(due - now);
            }
            let lag = issuer_sink.start.elapsed().saturating_sub(due);
            issuer_sut.issue_query(std::slice::from_ref(sample), &responder);
            lags.push(lag.as_nanos() as u64);
        }
        lags
    })
    .await?;
    sut.drain().await;
    Ok((sink, lags))
}

fn sut_samples(n: usize) -> Vec<QuerySample> {
    (0..n)
        .map(|i| QuerySample {
            id: ResponseId(i as u64),
            index: i % 1024,
        })
        .collect()
}
