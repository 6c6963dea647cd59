//! The engine's Prometheus metrics, rendered as prometheus_client renders vLLM's
//! (vllm/v1/metrics/loggers.py): names, HELP texts, buckets, `_total` / `_created` series,
//! labels in sorted order, floats as Python's `repr`.

use std::fmt::Write as _;

const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
const LATENCY_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];
const N_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0];
const ITERATION_BUCKETS: &[f64] = &[
    1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
];

/// Why a request finished (the `finished_reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// EOS, a stop string or a stop token.
    Stop,
    /// `max_tokens` or `max_model_len` reached.
    Length,
    /// The client went away.
    Abort,
}

impl FinishReason {
    /// vLLM's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Abort => "abort",
        }
    }
}

#[derive(Debug, Clone)]
struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &[f64]) -> Histogram {
        Histogram {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    fn observe(&mut self, v: f64) {
        let i = self.bounds.partition_point(|&b| b < v);
        self.counts[i] += 1;
        self.sum += v;
    }
}

/// Per-request timings the engine reports when a request finishes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestTimes {
    pub(crate) e2e: f64,
    pub(crate) queue: f64,
    pub(crate) prefill: f64,
    pub(crate) decode: f64,
    pub(crate) inference: f64,
    pub(crate) ttft: Option<f64>,
    pub(crate) prompt_tokens: u32,
    pub(crate) generation_tokens: u32,
    pub(crate) max_tokens: u32,
    pub(crate) n: u32,
}

/// The engine's counters, gauges and histograms.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    created: f64,
    pub(crate) running: u32,
    pub(crate) waiting: u32,
    pub(crate) kv_usage: f64,
    pub(crate) prompt_tokens: u64,
    pub(crate) generation_tokens: u64,
    success: [u64; 3],
    pub(crate) preemptions: u64,
    pub(crate) prefix_queries: u64,
    pub(crate) prefix_hits: u64,
    ttft: Histogram,
    itl: Histogram,
    tpot: Histogram,
    e2e: Histogram,
    queue: Histogram,
    inference: Histogram,
    prefill: Histogram,
    decode: Histogram,
    prompt_hist: Histogram,
    gen_hist: Histogram,
    max_tokens_hist: Histogram,
    n_hist: Histogram,
    iteration: Histogram,
}

fn token_buckets(max_model_len: u32) -> Vec<f64> {
    // vLLM's build_1_2_5_buckets(max_model_len).
    let mut out = Vec::new();
    let mut mantissa = 1u64;
    loop {
        for m in [1, 2, 5] {
            let v = m * mantissa;
            if v > u64::from(max_model_len) {
                return out;
            }
            out.push(v as f64);
        }
        mantissa *= 10;
    }
}

impl Metrics {
    pub(crate) fn new(created_unix: f64, max_model_len: u32) -> Metrics {
        let tokens = token_buckets(max_model_len);
        Metrics {
            created: created_unix,
            running: 0,
            waiting: 0,
            kv_usage: 0.0,
            prompt_tokens: 0,
            generation_tokens: 0,
            success: [0; 3],
            preemptions: 0,
            prefix_queries: 0,
            prefix_hits: 0,
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            tpot: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(LATENCY_BUCKETS),
            queue: Histogram::new(LATENCY_BUCKETS),
            inference: Histogram::new(LATENCY_BUCKETS),
            prefill: Histogram::new(LATENCY_BUCKETS),
            decode: Histogram::new(LATENCY_BUCKETS),
            prompt_hist: Histogram::new(&tokens),
            gen_hist: Histogram::new(&tokens),
            max_tokens_hist: Histogram::new(&tokens),
            n_hist: Histogram::new(N_BUCKETS),
            iteration: Histogram::new(ITERATION_BUCKETS),
        }
    }

    pub(crate) fn success_abort(&mut self) {
        self.success[2] += 1;
    }

    pub(crate) fn observe_itl(&mut self, seconds: f64) {
        self.itl.observe(seconds);
    }

    pub(crate) fn observe_iteration(&mut self, tokens: u32) {
        if tokens > 0 {
            self.iteration.observe(f64::from(tokens));
        }
    }

    pub(crate) fn finish(&mut self, reason: FinishReason, t: &RequestTimes) {
        let i = match reason {
            FinishReason::Stop => 0,
            FinishReason::Length => 1,
            FinishReason::Abort => 2,
        };
        self.success[i] += 1;
        if reason == FinishReason::Abort {
            return;
        }
        if let Some(ttft) = t.ttft {
            self.ttft.observe(ttft);
        }
        if t.generation_tokens > 1 {
            self.tpot
                .observe(t.decode / f64::from(t.generation_tokens - 1));
        }
        self.e2e.observe(t.e2e);
        self.queue.observe(t.queue);
        self.inference.observe(t.inference);
        self.prefill.observe(t.prefill);
        self.decode.observe(t.decode);
        self.prompt_hist.observe(f64::from(t.prompt_tokens));
        self.gen_hist.observe(f64::from(t.generation_tokens));
        self.max_tokens_hist.observe(f64::from(t.max_tokens));
        self.n_hist.observe(f64::from(t.n));
    }

    /// Renders the exposition text.
    pub(crate) fn render(&self, model: &str, legacy: bool, out: &mut String) {
        let labels = format!("engine=\"0\",model_name=\"{}\"", escape_label(model));
        let mut r = Renderer {
            out,
            labels: &labels,
            created: self.created,
        };
        r.gauge(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            f64::from(self.running),
        );
        r.gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            f64::from(self.waiting),
        );
        r.gauge(
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            self.kv_usage,
        );
        if legacy {
            r.gauge(
                "vllm:gpu_cache_usage_perc",
                "GPU KV-cache usage. 1 means 100 percent usage.",
                self.kv_usage,
            );
        }
        r.counter(
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            self.prefix_queries,
        );
        r.counter(
            "vllm:prefix_cache_hits",
            "Prefix cache hits, in terms of number of cached tokens.",
            self.prefix_hits,
        );
        if legacy {
            r.counter(
                "vllm:gpu_prefix_cache_queries",
                "GPU prefix cache queries, in terms of number of queried tokens.",
                self.prefix_queries,
            );
            r.counter(
                "vllm:gpu_prefix_cache_hits",
                "GPU prefix cache hits, in terms of number of cached tokens.",
                self.prefix_hits,
            );
        }
        r.counter(
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            self.preemptions,
        );
        r.counter(
            "vllm:prompt_tokens",
            "Number of prefill tokens processed.",
            self.prompt_tokens,
        );
        r.counter(
            "vllm:generation_tokens",
            "Number of generation tokens processed.",
            self.generation_tokens,
        );
        r.success(&self.success);
        r.histogram(
            "vllm:request_prompt_tokens",
            "Number of prefill tokens processed.",
            &self.prompt_hist,
        );
        r.histogram(
            "vllm:request_generation_tokens",
            "Number of generation tokens processed.",
            &self.gen_hist,
        );
        r.histogram(
            "vllm:iteration_tokens_total",
            "Histogram of number of tokens per engine_step.",
            &self.iteration,
        );
        r.histogram(
            "vllm:request_params_n",
            "Histogram of the n request parameter.",
            &self.n_hist,
        );
        r.histogram(
            "vllm:request_params_max_tokens",
            "Histogram of the max_tokens request parameter.",
            &self.max_tokens_hist,
        );
        r.histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            &self.ttft,
        );
        r.histogram(
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            &self.itl,
        );
        r.histogram(
            "vllm:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.",
            &self.tpot,
        );
        if legacy {
            r.histogram(
                "vllm:time_per_output_token_seconds",
                "Histogram of time per output token in seconds.",
                &self.itl,
            );
        }
        r.histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            &self.e2e,
        );
        r.histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            &self.queue,
        );
        r.histogram(
            "vllm:request_inference_time_seconds",
            "Histogram of time spent in RUNNING phase for request.",
            &self.inference,
        );
        r.histogram(
            "vllm:request_prefill_time_seconds",
            "Histogram of time spent in PREFILL phase for request.",
            &self.prefill,
        );
        r.histogram(
            "vllm:request_decode_time_seconds",
            "Histogram of time spent in DECODE phase for request.",
            &self.decode,
        );
    }
}

struct Renderer<'a> {
    out: &'a mut String,
    labels: &'a str,
    created: f64,
}

impl Renderer<'_> {
    fn head(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn gauge(&mut self, name: &str, help: &str, v: f64) {
        self.head(name, help, "gauge");
        let _ = writeln!(self.out, "{name}{{{}}} {}", self.labels, py_float(v));
    }

    fn created(&mut self, base: &str, help: &str) {
        let name = format!("{base}_created");
        self.head(&name, help, "gauge");
        let _ = writeln!(
            self.out,
            "{name}{{{}}} {}",
            self.labels,
            py_float(self.created)
        );
    }

    fn counter(&mut self, base: &str, help: &str, v: u64) {
        let name = format!("{base}_total");
        self.head(&name, help, "counter");
        let _ = writeln!(self.out, "{name}{{{}}} {}", self.labels, py_float(v as f64));
        self.created(base, help);
    }

    fn success(&mut self, counts: &[u64; 3]) {
        let base = "vllm:request_success";
        let help = "Count of successfully processed requests.";
        // Label names sort as engine, finished_reason, model_name.
        let (engine, model) = self.labels.split_once(',').unwrap_or((self.labels, ""));
        for (suffix, kind) in [("_total", "counter"), ("_created", "gauge")] {
            let name = format!("{base}{suffix}");
            self.head(&name, help, kind);
            for (reason, v) in ["stop", "length", "abort"].iter().zip(counts) {
                let v = if suffix == "_total" {
                    *v as f64
                } else {
                    self.created
                };
                let _ = writeln!(
                    self.out,
                    "{name}{{{engine},finished_reason=\"{reason}\",{model}}} {}",
                    py_float(v)
                );
            }
        }
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.head(name, help, "histogram");
        let (engine, model) = self.labels.split_once(',').unwrap_or((self.labels, ""));
        let mut cum = 0u64;
        for (i, c) in h.counts.iter().enumerate() {
            cum += c;
            let le = h
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| py_float(*b));
            let _ = writeln!(
                self.out,
                "{name}_bucket{{{engine},le=\"{le}\",{model}}} {}",
                py_float(cum as f64)
            );
        }
        let _ = writeln!(
            self.out,
            "{name}_count{{{}}} {}",
            self.labels,
            py_float(cum as f64)
        );
        let _ = writeln!(
            self.out,
            "{name}_sum{{{}}} {}",
            self.labels,
            py_float(h.sum)
        );
        self.created(name, help);
    }
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Formats a float as prometheus_client's `floatToGoString` does: Python's `repr` (shortest
/// round-trip digits, `.0` on integral values, scientific below 1e-4 and from 1e16 on), except
/// that positive values with more than six integral digits switch to `d.ddde+0N`.
pub(crate) fn py_float(v: f64) -> String {
    let s = py_repr(v);
    if v > 0.0
        && let Some(dot) = s.find('.')
        && dot > 6
    {
        let digits = format!("{}.{}{}", &s[..1], &s[1..dot], &s[dot + 1..]);
        let mantissa = digits.trim_end_matches(['0', '.']);
        return format!("{mantissa}e+0{}", dot - 1);
    }
    s
}

/// Python's `repr(float)`.
fn py_repr(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    let sci = format!("{v:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let s = format!("{v}");
        if s.contains('.') { s } else { s + ".0" }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_render_like_python_repr() {
        for (v, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (2560.0, "2560.0"),
            (1.7953683882986724e9, "1.7953683882986724e+09"),
            (1_000_000.0, "1e+06"),
            (999_999.5, "999999.5"),
            (5000.0, "5000.0"),
            (1e16, "1e+16"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (123456789012345680.0, "1.2345678901234568e+17"),
        ] {
            assert_eq!(py_float(v), want, "{v}");
        }
    }

    #[test]
    fn token_buckets_follow_1_2_5_up_to_max_model_len() {
        assert_eq!(
            token_buckets(100),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        assert_eq!(token_buckets(131_072).last(), Some(&100_000.0));
    }

    #[test]
    fn histogram_buckets_are_upper_inclusive() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0] {
            h.observe(v);
        }
        assert_eq!(h.counts, vec![2, 1, 1]);
        assert_eq!(h.sum, 6.0);
    }
}
